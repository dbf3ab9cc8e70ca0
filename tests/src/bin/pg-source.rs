//! Child process of the PostgreSQL kill-and-resume test: runs the
//! streaming source from a slot into a log directory until killed.
//!
//! Usage: pg-source DATA_DIR DATABASE SLOT PUBLICATION

use std::time::Duration;

use anyhow::Context;
use tributary_connector_postgres::replication::ConnectConfig;
use tributary_connector_postgres::source::{SnapshotMode, StreamConfig, StreamSource, prepare};
use tributary_log::{FsyncPolicy, Log, TopicConfig};
use tributary_schemas::Registry;
use tributary_schemas::writer::EventWriter;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().context("DATA_DIR")?);
    let database = args.next().context("DATABASE")?;
    let slot = args.next().context("SLOT")?;
    let publication = args.next().context("PUBLICATION")?;
    let log = Log::open(dir.join("log"))?;
    let registry = Registry::open(dir.join("registry"))?;
    let writer = EventWriter::new(log.clone(), registry);
    let cfg = StreamConfig {
        name: "pg".into(),
        connect: ConnectConfig {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            database: database.clone(),
            application_name: "tributary-kill-test".into(),
            extra_options: String::new(),
        },
        publication,
        slot,
        tables: vec![("public".into(), "items".into())],
        status_interval: Duration::from_millis(100),
        topic_config: TopicConfig {
            partitions: 2,
            fsync: FsyncPolicy::interval(50),
            ..TopicConfig::default()
        },
        snapshot: SnapshotMode::Never,
    };
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
