//! MariaDB helpers for the tests: a database of its own per test, the
//! source's configuration, and reading a topic's events back.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tributary_connector_mysql::source::{MysqlConfig, SnapshotMode};
use tributary_core::{ChangeEvent, Datum, TableSchema};

/// The local MariaDB as root over TCP.
pub const URL: &str = "mysql://root@127.0.0.1:3306/";

/// A database of one test, dropped by [`MyDb::drop_db`].
#[derive(Debug)]
pub struct MyDb {
    /// Its name.
    pub name: String,
    /// A connection with it as the default database.
    pub conn: mysql_async::Conn,
}

impl MyDb {
    /// Creates `trib_<tag>_<pid>_<n>` afresh (`n` counts the databases
    /// this process made: tests of one binary run side by side), in
    /// utf8mb4.
    pub async fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "trib_{tag}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        Self::create(name, " CHARACTER SET utf8mb4").await
    }

    /// Creates database `name` afresh, in the server's default character
    /// set (a sink's target named after its source's database).
    pub async fn named(name: &str) -> Self {
        Self::create(name.to_string(), "").await
    }

    async fn create(name: String, options: &str) -> Self {
        let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(URL).expect("url"))
            .await
            .expect("MariaDB at 127.0.0.1:3306 (run scripts/services.sh)");
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
            .expect("drop");
        conn.query_drop(format!("CREATE DATABASE `{name}`{options}"))
            .await
            .expect("create");
        conn.query_drop(format!("USE `{name}`")).await.expect("use");
        Self { name, conn }
    }

    /// The same database over a fresh connection (after a server restart).
    pub async fn reconnect(self) -> Self {
        let url = format!("{URL}{}", self.name);
        Self {
            conn: mysql_async::Conn::new(mysql_async::Opts::from_url(&url).expect("url"))
                .await
                .expect("reconnect"),
            name: self.name,
        }
    }

    /// Runs `sql` (several statements allowed).
    pub async fn exec(&mut self, sql: &str) {
        self.conn
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Whether `table` of this database has a column `column` (false while
    /// the table does not exist).
    pub async fn has_column(&mut self, table: &str, column: &str) -> bool {
        let found: Vec<String> = self
            .conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (table, column),
            )
            .await
            .unwrap_or_default();
        !found.is_empty()
    }

    /// Drops the database.
    pub async fn drop_db(mut self) {
        let _ = self
            .conn
            .query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .await;
        let _ = self.conn.disconnect().await;
    }
}

/// The source's configuration for the tests: source `my`, tables
/// `db.*` selected by `tables` (names), topics of `partitions`
/// partitions synced every 50 ms.
pub fn config(db: &str, tables: &[&str], partitions: u32, snapshot: SnapshotMode) -> MysqlConfig {
    let db = db.to_string();
    let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    MysqlConfig {
        name: "my".into(),
        url: URL.into(),
        // Distinct per source: the server refuses two replicas with one id.
        server_id: {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            4_000_000
                + (std::process::id() % 10_000) * 100
                + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100
        },
        captured: Arc::new(move |d: &str, t: &str| d == db && tables.iter().any(|x| x == t)),
        topic_template: "{source}.{schema}.{table}".into(),
        engine: crate::engine_settings(partitions, snapshot, Some(Duration::from_secs(1))),
        snapshot_chunk_rows: 1000,
    }
}

/// Every event of `topic` in `log`, partition by partition in offset
/// order, decoded through the registry, with the shape it was written
/// with. Tombstones are left out.
pub fn events(
    log: &tributary_log::Log,
    registry: &tributary_schemas::Registry,
    topic: &str,
) -> Vec<(ChangeEvent, Arc<TableSchema>)> {
    let decoder = tributary_schemas::RecordDecoder::new(registry.clone());
    let mut out = Vec::new();
    crate::topic::each_record(log, topic, |r| {
        if let Some(v) = r.value {
            let (schema, ev) = decoder.value(v).expect("decodes");
            out.push((ev, schema.table_arc()));
        }
    });
    out
}

/// A row as its non-NULL columns by name: rows written before a column
/// was added compare equal to the table's rows, which hold NULL there.
pub type NamedRow = std::collections::BTreeMap<String, Datum>;

/// `row` of `table` as a [`NamedRow`].
pub fn named(row: &[Datum], table: &TableSchema) -> NamedRow {
    table
        .columns
        .iter()
        .zip(row)
        .filter(|(_, d)| **d != Datum::Null)
        .map(|(c, d)| (c.name.clone(), d.clone()))
        .collect()
}

/// The key of `row` of `table`, as text.
pub fn key_text(row: &[Datum], table: &TableSchema) -> String {
    format!(
        "{:?}",
        table.key.iter().map(|&i| &row[i]).collect::<Vec<_>>()
    )
}

/// The final state the events describe: key to row.
pub fn replay(
    events: &[(ChangeEvent, Arc<TableSchema>)],
) -> std::collections::BTreeMap<String, NamedRow> {
    let mut state = std::collections::BTreeMap::new();
    for (ev, t) in events {
        match ev.op {
            tributary_core::Op::Truncate => state.clear(),
            tributary_core::Op::Delete => {
                if let Some(b) = &ev.before {
                    state.remove(&key_text(b, t));
                }
            }
            _ => {
                if let Some(a) = &ev.after {
                    state.insert(key_text(a, t), named(a, t));
                }
            }
        }
    }
    state
}

/// The server's binlog position now.
pub async fn master_position(
    conn: &mut mysql_async::Conn,
) -> tributary_connector_mysql::position::BinlogPosition {
    tributary_connector_mysql::source::current_position(
        conn,
        tributary_connector_mysql::types::Flavor::MariaDb,
    )
    .await
    .expect("SHOW MASTER STATUS")
}

/// Waits until source `name`'s stored position under `log_dir` reaches
/// `target` (everything before it is durable in the log), or `limit`.
pub async fn wait_stored(
    log_dir: &std::path::Path,
    name: &str,
    target: &tributary_connector_mysql::position::BinlogPosition,
    limit: Duration,
) {
    let path = tributary_connector_mysql::position::path(log_dir, name);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let stored = tributary_connector_mysql::position::load(&path);
        if let Ok(Some(s)) = &stored
            && s.position.order_key() >= target.order_key()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stored position did not reach {}:{} (stored: {stored:?})",
            target.file,
            target.pos
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running source on `dir` and its stop switch.
#[derive(Debug)]
pub struct Running {
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<
        Result<
            tributary_connector_mysql::source::RunStats,
            tributary_connector_mysql::source::SourceError,
        >,
    >,
}

impl Running {
    /// Starts a source with `cfg` writing into `log`.
    pub fn start(
        cfg: MysqlConfig,
        log: &tributary_log::Log,
        registry: &tributary_schemas::Registry,
    ) -> Self {
        let writer = tributary_capture::writer::EventWriter::new(log.clone(), registry.clone());
        let mut source =
            tributary_connector_mysql::source::MysqlSource::new(cfg, log.clone(), writer);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move { source.run(rx).await });
        Self { stop, task }
    }

    /// Waits until `topic` holds `n` records; fails with the source's
    /// error if it stops first.
    pub async fn wait(&mut self, log: &tributary_log::Log, topic: &str, n: u64, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(t) = log.topic(topic)
                && t.partitions()
                    .iter()
                    .map(|p| p.high_watermark())
                    .sum::<u64>()
                    >= n
            {
                return;
            }
            if self.task.is_finished() {
                let r = (&mut self.task).await.expect("join");
                panic!("{what}: the source stopped before {n} records: {r:?}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: fewer than {n} records in {topic}: {}",
                log.topic(topic)
                    .map(|t| t
                        .partitions()
                        .iter()
                        .map(|p| p.high_watermark())
                        .sum::<u64>())
                    .unwrap_or(0)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it and returns its statistics.
    pub async fn stop(self) -> tributary_connector_mysql::source::RunStats {
        let _ = self.stop.send(true);
        self.task
            .await
            .expect("join")
            .expect("source ran without error")
    }

    /// Stops it, which must still be running, and returns its statistics;
    /// a source that had ended, or ends with an error, fails the test,
    /// named `what`.
    pub async fn stop_as(self, what: &str) -> tributary_connector_mysql::source::RunStats {
        self.stop
            .send(true)
            .unwrap_or_else(|_| panic!("{what}: the source had stopped by itself"));
        self.task
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

/// Stops the local MariaDB cleanly and starts it again the way
/// scripts/services.sh does, waiting until it answers. Hold
/// [`crate::services::exclusive`] around it.
pub async fn restart_server() {
    let status = tokio::process::Command::new("mariadb-admin")
        .args(["--protocol=socket", "-u", "root", "shutdown"])
        .status()
        .await
        .expect("mariadb-admin");
    assert!(status.success(), "stopping MariaDB failed");
    for _ in 0..600 {
        let running = std::process::Command::new("start-stop-daemon")
            .args(["--status", "--exec", "/usr/sbin/mariadbd"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::create_dir_all("/run/mysqld").expect("/run/mysqld");
    let _ = std::process::Command::new("chown")
        .args(["mysql:mysql", "/run/mysqld"])
        .status();
    let status = tokio::process::Command::new("start-stop-daemon")
        .args([
            "--start",
            "--oknodo",
            "--background",
            "--exec",
            "/usr/sbin/mariadbd",
        ])
        .status()
        .await
        .expect("start-stop-daemon");
    assert!(status.success(), "starting MariaDB failed");
    for _ in 0..600 {
        if mysql_async::Conn::new(mysql_async::Opts::from_url(URL).expect("url"))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("MariaDB did not come back");
}

/// A MariaDB server of one test's own (`mariadb-install-db`, `mariadbd`
/// on a free port of 127.0.0.1, root without a password, row binlog),
/// for what a test cannot do to the shared one (purging its binlogs);
/// stopped and removed on drop.
#[derive(Debug)]
pub struct PrivateServer {
    dir: std::path::PathBuf,
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PrivateServer {
    /// Starts one and waits until it takes connections.
    pub async fn start() -> Self {
        use std::process::{Command, Stdio};
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "tributary-my-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("server dir");
        let owned = Command::new("chown")
            .args(["mysql:mysql"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(owned.success(), "chown {}", dir.display());
        let data = dir.join("data");
        let out = Command::new("mariadb-install-db")
            .args([
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let child = Command::new("mariadbd")
            .args([
                "--no-defaults",
                "--user=mysql",
                "--bind-address=127.0.0.1",
                "--binlog-format=ROW",
                "--server-id=7",
                "--innodb-flush-log-at-trx-commit=2",
                "--skip-name-resolve",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--log-bin={}", data.join("bin").display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mariadbd");
        let server = Self { dir, child, port };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if mysql_async::Conn::new(mysql_async::Opts::from_url(&server.url()).expect("url"))
                .await
                .is_ok()
            {
                return server;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "mariadbd did not start: {}",
                std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `mysql://root@127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    /// A connection as root.
    pub async fn connect(&self) -> mysql_async::Conn {
        mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url()).expect("url"))
            .await
            .expect("private MariaDB")
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
