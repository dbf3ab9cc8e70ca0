//! What a `sources[i]` section does, whatever its kind: one life of its
//! source, the checks `validate` runs against its server, the internal
//! topics it announces, and how its progress reads. The kinds' own work
//! is in [`crate::postgres_source`] and [`crate::mysql_source`]; this is
//! the one place that chooses between them.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use std::time::Duration;
use tokio::sync::watch;

use tributary_capture::writer::EventWriter;
use tributary_capture::{Backoff, RunStats, Settings};
use tributary_connector_mysql::source::MysqlSource;
use tributary_connector_postgres::source::{SourceError, StreamSource, prepare, sql_connect};
use tributary_core::telemetry::SourceProgress;
use tributary_log::Log;
use tributary_schemas::Registry;

use crate::config::{LogSection, SourceKind, SourceSection};
use crate::error::{ServerCheckError, SourceRunError};
use crate::telemetry::{Position, ProgressFormat};

/// What one life of a source needs from the pipeline.
pub(crate) struct SourceRun<'a> {
    /// The pipeline's log settings.
    pub log_section: &'a LogSection,
    /// The log.
    pub log: Log,
    /// The schema registry.
    pub registry: Registry,
    /// The pipeline's transforms.
    pub transforms: Arc<tributary_core::transform::Transforms>,
    /// Counts the change events written.
    pub written: Arc<AtomicU64>,
    /// Where the source reports its phase and positions.
    pub progress: Arc<SourceProgress>,
    /// Turns true to stop.
    pub stop: watch::Receiver<bool>,
    /// Called once the source is set up and about to capture.
    pub running: &'a (dyn Fn() + Send + Sync),
}

impl SourceRun<'_> {
    fn writer(&self) -> EventWriter {
        EventWriter::new(self.log.clone(), self.registry.clone())
            .counting(Arc::clone(&self.written))
            .with_transforms(Arc::clone(&self.transforms))
    }
}

impl SourceSection {
    /// What the capture engine takes from this section, whatever the
    /// kind; `status_interval` is how often the source looks for
    /// durable positions to acknowledge.
    pub(crate) fn engine_settings(&self, log: &LogSection, status_interval: Duration) -> Settings {
        Settings {
            topic_config: log.topic_config(),
            snapshot: self.snapshot.mode(),
            reconnect: Backoff::default(),
            status_interval,
            heartbeat: (self.heartbeat_ms > 0).then(|| Duration::from_millis(self.heartbeat_ms)),
            progress_interval: Duration::from_secs(10),
            on_error: self.on_error.engine(),
        }
    }

    /// One life of the source: connect, set up, capture until stopped or
    /// failed. Returns the events and snapshot rows it wrote.
    pub(crate) async fn run_once(&self, run: SourceRun<'_>) -> Result<u64, SourceRunError> {
        let stats: RunStats = match &self.kind {
            SourceKind::Postgres(pg) => {
                use crate::postgres_source as p;
                let client = sql_connect(&pg.connect).await.map_err(SourceError::from)?;
                let tables = p::resolve_tables(&client, self).await?;
                if tables.is_empty() {
                    return Err(SourceRunError::NoTables {
                        database: pg.connect.database.clone(),
                    });
                }
                let cfg = p::stream_config(self, pg, run.log_section, tables);
                p::sync_publication(&client, &cfg).await?;
                prepare(&client, &cfg).await?;
                drop(client);
                let mut source = StreamSource::new(cfg, run.log.clone(), run.writer())
                    .with_progress(Arc::clone(&run.progress));
                (run.running)();
                source.run(run.stop.clone()).await?
            }
            SourceKind::Mysql(my) => {
                let cfg = crate::mysql_source::mysql_config(self, my, run.log_section);
                let mut source = MysqlSource::new(cfg, run.log.clone(), run.writer())
                    .with_progress(Arc::clone(&run.progress));
                (run.running)();
                source.run(run.stop.clone()).await?
            }
        };
        Ok(stats.events + stats.snapshot_rows)
    }

    /// What `validate` checks against the server: that it can serve as
    /// this source, and which tables the patterns select.
    pub async fn check_server(&self) -> Result<Vec<(String, String)>, ServerCheckError> {
        match &self.kind {
            SourceKind::Postgres(pg) => crate::postgres_source::check_server(self, pg).await,
            SourceKind::Mysql(my) => crate::mysql_source::check_server(self, my).await,
        }
    }

    /// The topics it writes that hold no data for sinks (MySQL's schema
    /// history), as its source announces them.
    pub fn internal_topics(&self, log: &LogSection) -> Vec<String> {
        match &self.kind {
            SourceKind::Postgres(_) => Vec::new(),
            SourceKind::Mysql(my) => {
                crate::mysql_source::mysql_config(self, my, log).internal_topics()
            }
        }
    }

    /// How its progress positions read.
    pub(crate) fn progress_format(&self) -> ProgressFormat {
        match &self.kind {
            SourceKind::Postgres(_) => ProgressFormat {
                kind: "postgres",
                position: |at| {
                    Position::Lsn(tributary_connector_postgres::replication::format_lsn(at))
                },
                lag_bytes: Some,
            },
            SourceKind::Mysql(_) => ProgressFormat {
                kind: "mysql",
                position: |at| {
                    let (file, pos) =
                        tributary_connector_mysql::source::split_progress_position(at);
                    Position::Binlog(format!("{file:06}:{pos}"))
                },
                // Positions in different binlog files do not subtract.
                lag_bytes: |lag| (lag < 1 << 32).then_some(lag),
            },
        }
    }
}
