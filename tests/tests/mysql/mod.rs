//! The MySQL/MariaDB source against the real local MariaDB. Each test
//! works in a database of its own, created and dropped here.

mod bigtx;
mod ddl;
mod lost;
mod resume;
mod snapshot;
mod stream;
mod types;
mod validate;

pub use tributary_tests::mysql::*;

use mysql_async::prelude::Queryable;
use tributary_capture::writer::EventWriter;
use tributary_connector_mysql::source::MysqlSource;
use tributary_log::Log;
use tributary_schemas::Registry;

/// A running source on `dir` and its stop switch.
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
        cfg: tributary_connector_mysql::source::MysqlConfig,
        log: &Log,
        registry: &Registry,
    ) -> Self {
        let writer = EventWriter::new(log.clone(), registry.clone());
        let mut source = MysqlSource::new(cfg, log.clone(), writer);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move { source.run(rx).await });
        Self { stop, task }
    }

    /// Waits until `topic` holds `n` records; fails with the source's
    /// error if it stops first.
    pub async fn wait(&mut self, log: &Log, topic: &str, n: u64, what: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
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
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
}

/// Rows of `SELECT * FROM table ORDER BY 1` as the snapshot reads them.
pub async fn table_rows(
    db: &mut MyDb,
    table: &str,
) -> std::collections::BTreeMap<String, NamedRow> {
    let def = tributary_connector_mysql::source::show_create(&mut db.conn, &db.name, table)
        .await
        .expect("show create");
    let shape = tributary_connector_mysql::types::table_schema(
        &db.name,
        &def,
        tributary_connector_mysql::types::Flavor::MariaDb,
    )
    .expect("shape");
    let rows: Vec<mysql_async::Row> = db
        .conn
        .exec(format!("SELECT * FROM `{table}`"), ())
        .await
        .expect("select");
    let mut out = std::collections::BTreeMap::new();
    for r in rows {
        let row: Vec<tributary_core::Datum> = r
            .unwrap()
            .into_iter()
            .zip(&shape.columns)
            .map(|(v, c)| {
                tributary_connector_mysql::value::datum(v, &c.ty, &c.name).expect("value")
            })
            .collect();
        out.insert(key_text(&row, &shape), named(&row, &shape));
    }
    out
}
