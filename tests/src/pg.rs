//! PostgreSQL helpers of the end-to-end tests: a database per test, slot
//! positions, counting what reached the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, NoTls};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database made for one test; `drop_db` removes it.
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// A connection to it.
    pub client: Client,
    admin: Client,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("name", &self.name).finish()
    }
}

pub async fn connect(db: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        NoTls,
    )
    .await
    .expect("connect to the local PostgreSQL (run scripts/services.sh)");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("postgres connection: {e}");
        }
    });
    client
}

/// Drops the slots and databases that test processes no longer running
/// left behind (a test that fails does not clean up): slots hold WAL and
/// count against max_replication_slots. Once per process.
async fn sweep_dead_test_databases(admin: &Client) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let Ok(rows) = admin
                .query(
                    "SELECT datname::text FROM pg_database WHERE datname ~ '^tributary_.+_[0-9]+_[0-9]+$'",
                    &[],
                )
                .await
            else {
                return;
            };
            for r in rows {
                let db: String = r.get(0);
                // tributary_<tag>_<pid>_<n>: is <pid> still running?
                let mut parts = db.rsplit('_');
                let _n = parts.next();
                let alive = parts
                    .next()
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                if alive {
                    continue;
                }
                let _ = admin
                    .execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                         WHERE database = $1 AND NOT active",
                        &[&db],
                    )
                    .await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .await;
            }
        })
        .await;
}

impl TestDb {
    pub async fn new(tag: &str) -> Self {
        let name = format!(
            "tributary_{tag}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect("postgres").await;
        sweep_dead_test_databases(&admin).await;
        // Two calls: a multi-statement string runs as one transaction, and
        // neither statement may run inside one.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .expect("drop leftover database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let client = connect(&name).await;
        Self {
            name,
            client,
            admin,
        }
    }

    /// Runs `sql` (one or more statements) on the database; panics with
    /// the statement and the server's error if it fails.
    pub async fn exec(&self, sql: &str) {
        if let Err(e) = self.client.batch_execute(sql).await {
            panic!("{sql}: {e}");
        }
    }

    /// The same database over fresh connections (after a server restart),
    /// waiting up to 30 s for the server to accept them.
    pub async fn reconnect(self) -> Self {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let (Some(client), Some(admin)) =
                (try_connect(&self.name).await, try_connect("postgres").await)
            {
                return Self {
                    name: self.name,
                    client,
                    admin,
                };
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "PostgreSQL did not come back"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Drops the database.
    pub async fn drop_db(self) {
        let Self {
            name,
            client,
            admin,
        } = self;
        drop(client);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop database");
    }
}

/// Drops a replication slot, waiting for its walsender to let go.
pub async fn drop_slot(db: &TestDb, slot: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = db
            .client
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await;
        if r.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot {slot} still active: {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Drops the slot `<name>_slot` a source made for `db` (the name the
/// tests' pipelines give it), then the database.
pub async fn drop_db_and_slot(db: TestDb) {
    drop_slot(&db, &format!("{}_slot", db.name)).await;
    db.drop_db().await;
}

/// The slot's `confirmed_flush_lsn`; 0 while the slot is still being created
/// (PostgreSQL shows it as NULL until a consistent point is found, which waits
/// for transactions running in other databases, such as other tests').
pub async fn confirmed_flush_lsn(db: &TestDb, slot: &str) -> u64 {
    let row = db
        .client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("slot");
    match row.get::<_, Option<&str>>(0) {
        Some(lsn) => tributary_connector_postgres::replication::parse_lsn(lsn).expect("lsn"),
        None => 0,
    }
}

/// Waits (up to 20 s) until the slot's `confirmed_flush_lsn` reaches `lsn`.
pub async fn wait_confirmed(db: &TestDb, slot: &str, lsn: u64) {
    wait_confirmed_within(db, slot, lsn, std::time::Duration::from_secs(20)).await;
}

/// Waits up to `limit` until the slot's `confirmed_flush_lsn` reaches `lsn`.
pub async fn wait_confirmed_within(db: &TestDb, slot: &str, lsn: u64, limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let confirmed = confirmed_flush_lsn(db, slot).await;
        if confirmed >= lsn {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "confirmed_flush_lsn stuck at {confirmed:x}, want {lsn:x}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits (up to 20 s) until the slot's `confirmed_flush_lsn` reaches
/// `lsn` while `task` (the source) runs; a source that stopped is
/// reported with its result instead of a stuck slot. Returns the task.
pub async fn wait_confirmed_running<T: std::fmt::Debug>(
    db: &TestDb,
    slot: &str,
    lsn: u64,
    task: tokio::task::JoinHandle<T>,
) -> tokio::task::JoinHandle<T> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while confirmed_flush_lsn(db, slot).await < lsn {
        if task.is_finished() {
            panic!("the source stopped: {:?}", task.await);
        }
        let confirmed = confirmed_flush_lsn(db, slot).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "confirmed_flush_lsn stuck at {confirmed:x}, want {lsn:x}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    task
}

/// Opens the log under `dir` (no writer may hold it) and counts the
/// records of `topic`: in total and per key.
pub fn log_keys(dir: &std::path::Path, topic: &str) -> (usize, HashMap<Vec<u8>, usize>) {
    let log = tributary_log::Log::open_with(
        dir.join("log"),
        tributary_log::LogOptions {
            background: false,
            ..tributary_log::LogOptions::default()
        },
    )
    .expect("open log");
    let mut total = 0;
    let mut per_key: HashMap<Vec<u8>, usize> = HashMap::new();
    crate::topic::each_record(&log, topic, |r| {
        total += 1;
        *per_key.entry(r.key.expect("key").to_vec()).or_default() += 1;
    });
    (total, per_key)
}

/// The first column of every row `sql` returns, as text; `["<no table>"]`
/// when the query fails (its table is not there yet).
pub async fn rows(db: &TestDb, sql: &str) -> Vec<String> {
    match db.client.query(sql, &[]).await {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(_) => vec!["<no table>".into()],
    }
}

/// The first column of every row `sql` returns, as text; the query must
/// succeed.
pub async fn texts(db: &TestDb, sql: &str) -> Vec<String> {
    db.client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every row of `table` as PostgreSQL prints it (`t::text`), in `id`
/// order; `["<no table>"]` while the table does not exist.
pub async fn table_rows(db: &TestDb, table: &str) -> Vec<String> {
    rows(db, &format!("SELECT t::text FROM {table} t ORDER BY id")).await
}

/// Waits (up to 60 s each) until every table of `tables` holds the same
/// rows in `src` and in `dst`.
pub async fn wait_same_tables(src: &TestDb, dst: &TestDb, tables: &[&str]) {
    for t in tables {
        crate::wait_same_rows(
            t,
            async || table_rows(src, t).await,
            async || table_rows(dst, t).await,
        )
        .await;
    }
}

/// Waits up to `limit` until replication slot `slot` exists and `cond`
/// holds for it (SQL over the columns of `pg_replication_slots`, such as
/// `active`).
pub async fn wait_slot(db: &TestDb, slot: &str, cond: &str, limit: std::time::Duration) {
    let sql = format!("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND ({cond})");
    let deadline = tokio::time::Instant::now() + limit;
    while db
        .client
        .query_opt(&sql, &[&slot])
        .await
        .expect("slots")
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot {slot}: never {cond}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `pg_current_wal_lsn()`.
pub async fn current_lsn(db: &TestDb) -> u64 {
    let row = db
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn");
    match row.get::<_, Option<&str>>(0) {
        Some(lsn) => tributary_connector_postgres::replication::parse_lsn(lsn).expect("lsn"),
        None => 0,
    }
}

/// Streams a table through the source while `disrupt` breaks the
/// connection `times` times, and checks that the log ends with every
/// committed row exactly once and that the source reconnected each time.
pub async fn stream_through_disruptions<F, Fut>(tag: &str, times: u32, mut disrupt: F)
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use tributary_connector_postgres::source::{SnapshotMode, StreamSource, prepare};
    const TXS: i64 = 300;
    const ROWS_PER_TX: i64 = 10;
    crate::init_tracing();
    let db = TestDb::new(tag).await;
    db.client
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL)")
        .await
        .expect("ddl");
    let dir = std::env::temp_dir().join(format!("tributary-{}", db.name));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = crate::pg_stream_config(&db.name, "items", 2, SnapshotMode::Never);
    prepare(&db.client, &cfg).await.expect("prepare");
    let log = tributary_log::Log::open(dir.join("log")).expect("log");
    let registry = tributary_schemas::Registry::open(dir.join("registry")).expect("registry");
    let writer = tributary_capture::writer::EventWriter::new(log.clone(), registry);
    let mut source = StreamSource::new(cfg.clone(), log, writer);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { source.run(stop_rx).await });
    let name = db.name.clone();
    let writes = tokio::spawn(async move {
        let mut client: Option<Client> = None;
        let mut tx = 0;
        while tx < TXS {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = try_connect(&name).await;
            }
            let Some(c) = client.as_ref() else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let base = tx * ROWS_PER_TX;
            let sql = format!(
                "INSERT INTO items SELECT g, 'v' || g FROM generate_series({base}, {}) g",
                base + ROWS_PER_TX - 1
            );
            // A failed commit (the server went away) is retried; a
            // duplicate key means the commit had landed after all.
            match c.batch_execute(&sql).await {
                Ok(()) => tx += 1,
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                    tx += 1
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
    });
    for i in 0..times {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        disrupt(i).await;
    }
    writes.await.expect("writes");
    let db = TestDb::reconnect(db).await;
    let end = current_lsn(&db).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while confirmed_flush_lsn(&db, &cfg.slot).await < end {
        // A source that gave up says why, rather than a stuck slot.
        if task.is_finished() {
            let ended = task.await.expect("join");
            panic!("the source stopped by itself: {ended:?}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot's confirmed_flush_lsn did not reach {end:x}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop_tx.send(true).expect("stop");
    let stats = task
        .await
        .expect("join")
        .expect("source survives the disruptions");
    assert!(
        stats.reconnects >= u64::from(times),
        "{} reconnects for {times} disruptions",
        stats.reconnects
    );
    let (total, per_key) = log_keys(&dir, "pg.public.items");
    let want = (TXS * ROWS_PER_TX) as usize;
    assert_eq!(per_key.len(), want, "every committed row reached the log");
    assert_eq!(total, want, "no row twice");
    drop_slot(&db, &cfg.slot).await;
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A connection to database `db`, or `None` while the server does not
/// accept one (it is restarting).
pub async fn try_connect(db: &str) -> Option<Client> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        NoTls,
    )
    .await
    .ok()?;
    tokio::spawn(conn);
    Some(client)
}

/// Restarts the local PostgreSQL (the cluster on port 5432) with a fast
/// shutdown, as `pg_ctlcluster` does, and waits for it. Hold
/// [`crate::services::exclusive`] around it.
pub async fn restart_server() {
    let out = std::process::Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("5432"))
        .expect("a cluster on port 5432");
    let mut parts = line.split_whitespace();
    let version = parts.next().expect("version");
    let name = parts.next().expect("name");
    let status = tokio::process::Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            version,
            name,
            "restart",
            "-m",
            "fast",
        ])
        .status()
        .await
        .expect("pg_ctlcluster");
    assert!(status.success(), "restarting PostgreSQL failed");
}

/// A running PostgreSQL source: its stop switch and its task.
pub type SourceTask = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<
        Result<
            tributary_connector_postgres::source::RunStats,
            tributary_connector_postgres::source::SourceError,
        >,
    >,
);

/// Starts the source of `cfg` writing into `log` through `registry`:
/// send `true` to stop it, await the task for its stats.
pub fn spawn_source(
    cfg: &tributary_connector_postgres::source::StreamConfig,
    log: &tributary_log::Log,
    registry: tributary_schemas::Registry,
) -> SourceTask {
    let mut source = tributary_connector_postgres::source::StreamSource::new(
        cfg.clone(),
        log.clone(),
        tributary_capture::EventWriter::new(log.clone(), registry),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    (
        stop_tx,
        tokio::spawn(async move { source.run(stop_rx).await }),
    )
}

/// A PostgreSQL server of its own, for a test that needs server settings
/// the shared one must not get (a tiny `max_slot_wal_keep_size` would
/// invalidate every other test's slots): `initdb` in a directory of its
/// own, run as the `postgres` user on a free loopback port with
/// `wal_level=logical` and the `settings` given; stopped and removed
/// when dropped.
#[derive(Debug)]
pub struct PrivateServer {
    dir: std::path::PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PrivateServer {
    /// Starts one; `settings` are `name=value` server settings.
    pub fn start(settings: &[&str]) -> Self {
        use std::process::Command;
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("/usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("a PostgreSQL installation with initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "tributary-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("server dir");
        let owned = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(owned.success(), "chown {}", dir.display());
        let as_postgres = |program: &std::path::Path| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        };
        let data = dir.join("data");
        let out = as_postgres(&bin.join("initdb"))
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut options = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c wal_level=logical -c fsync=off",
            dir.display()
        );
        for s in settings {
            options.push_str(&format!(" -c {s}"));
        }
        let out = as_postgres(&bin.join("pg_ctl"))
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-l"])
            .arg(dir.join("server.log"))
            .args(["-o", &options, "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        Self { dir, port }
    }

    /// A connection to database `db`.
    pub async fn connect(&self, db: &str) -> Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={db}",
                self.port
            ),
            NoTls,
        )
        .await
        .unwrap_or_else(|e| panic!("private server on {}: {e}", self.port));
        tokio::spawn(conn);
        client
    }

    /// Its URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("pg_ctl").exists())
            .max()
        {
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join("pg_ctl"))
                .args(["-m", "immediate", "-D"])
                .arg(&data)
                .arg("stop")
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
