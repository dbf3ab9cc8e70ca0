//! Child process of the PostgreSQL kill-and-resume test: runs the
//! streaming source from a slot into a log directory until killed.
//!
//! Usage: pg-source DATA_DIR DATABASE (slot `<db>_slot`, publication `<db>_pub`)

use anyhow::Context;
use tributary_connector_postgres::source::{SnapshotMode, StreamSource, prepare};
use tributary_log::Log;
use tributary_schemas::Registry;
use tributary_schemas::writer::EventWriter;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().context("DATA_DIR")?);
    let database = args.next().context("DATABASE")?;
    let log = Log::open(dir.join("log"))?;
    let registry = Registry::open(dir.join("registry"))?;
    let writer = EventWriter::new(log.clone(), registry);
    let cfg = tributary_tests::pg_stream_config(&database, "items", 2, SnapshotMode::Never);
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 user=postgres dbname={database}"),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    prepare(&client, &cfg).await?;
    let mut source = StreamSource::new(cfg, client, log, writer);
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    println!("started");
    source.run(stop_rx).await?;
    Ok(())
}
