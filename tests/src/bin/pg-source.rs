//! Child process of the PostgreSQL kill-and-resume test: runs the
//! streaming source from a slot into a log directory until killed.
//!
//! Usage: pg-source DATA_DIR DATABASE [TABLE [PROTO_VERSION]] (slot
//! `<db>_slot`, publication `<db>_pub`, table `items`, protocol 2)

use anyhow::Context;
use tributary_capture::writer::EventWriter;
use tributary_connector_postgres::source::{SnapshotMode, StreamSource, prepare, sql_connect};
use tributary_log::Log;
use tributary_schemas::Registry;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().context("DATA_DIR")?);
    let database = args.next().context("DATABASE")?;
    let log = Log::open(dir.join("log"))?;
    let registry = Registry::open(dir.join("registry"))?;
    let writer = EventWriter::new(log.clone(), registry);
    let table = args.next().unwrap_or_else(|| "items".into());
    let mut cfg = tributary_tests::pg_stream_config(&database, &table, 2, SnapshotMode::Never);
    if let Some(v) = args.next() {
        cfg.proto_version = v.parse().context("PROTO_VERSION")?;
    }
    // The slot exists before "started": the parent's writes after that
    // line are all captured.
    prepare(&sql_connect(&cfg.connect).await?, &cfg).await?;
    let mut source = StreamSource::new(cfg, log, writer);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    println!("started");
    source.run(stop_rx).await?;
    Ok(())
}
