//! Child process of the MySQL kill-and-resume and big-transaction tests:
//! runs the source on one table of the local MariaDB into a log
//! directory until killed.
//!
//! Usage: my-source DATA_DIR DATABASE TABLE (source `my`, snapshot
//! `initial`, 2 partitions)

use anyhow::Context;
use tributary_capture::writer::EventWriter;
use tributary_connector_mysql::source::{MysqlSource, SnapshotMode};
use tributary_log::Log;
use tributary_schemas::Registry;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().context("DATA_DIR")?);
    let database = args.next().context("DATABASE")?;
    let table = args.next().context("TABLE")?;
    let log = Log::open(dir.join("log"))?;
    let registry = Registry::open(dir.join("registry"))?;
    let writer = EventWriter::new(log.clone(), registry);
    let cfg = tributary_tests::mysql::config(&database, &[&table], 2, SnapshotMode::Initial);
    let mut source = MysqlSource::new(cfg, log, writer);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    println!("started");
    source.run(stop_rx).await?;
    Ok(())
}
