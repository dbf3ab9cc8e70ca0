//! `tributary bench pg-source`: the PostgreSQL source against
//! `pg_recvlogical` reading the same changes, in the same run.
//!
//! Both get a slot created before the rows are inserted (1,000-row
//! transactions, 5 columns, inserted by the server itself), so both read
//! exactly the same WAL. Ours is timed until every row is durable in the
//! log; pg_recvlogical (pgoutput, same publication) until it reaches the
//! end position, writing to /dev/null.

use std::time::{Duration, Instant};

use anyhow::Context;
use tributary_capture::writer::EventWriter;
use tributary_connector_postgres::replication::{ConnectConfig, parse_lsn};
use tributary_connector_postgres::source::{
    Backoff, SnapshotMode, StreamConfig, StreamSource, prepare, topic_name,
};
use tributary_connector_postgres::tls::SslMode;
use tributary_log::{FsyncPolicy, Log, TopicConfig};
use tributary_schemas::Registry;

use super::{rate, ratio};

#[derive(Debug, clap::Args)]
pub struct PgSourceBenchArgs {
    /// Rows to insert and read.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    #[command(flatten)]
    pg: PgArgs,
}

/// Where the PostgreSQL benchmarks run.
#[derive(Debug, Clone, clap::Args)]
pub struct PgArgs {
    /// PostgreSQL host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// PostgreSQL port.
    #[arg(long, default_value_t = 5432)]
    pub port: u16,
    /// PostgreSQL user (needs REPLICATION and CREATEDB).
    #[arg(long, default_value = "postgres")]
    pub user: String,
    /// TLS: disable, prefer, require or verify-full (libpq's default,
    /// prefer, is what pg_recvlogical and psql use here too).
    #[arg(long, default_value = "prefer", value_parser = parse_ssl_mode)]
    pub sslmode: SslMode,
    /// CA certificate(s) for verify-full.
    #[arg(long)]
    pub sslrootcert: Option<std::path::PathBuf>,
}

fn parse_ssl_mode(s: &str) -> Result<SslMode, String> {
    SslMode::parse(s)
        .ok_or_else(|| format!("unknown sslmode {s:?}: disable, prefer, require or verify-full"))
}

impl PgArgs {
    /// The source's configuration for the benchmark table `public.bench`
    /// of database `db` (publication `bench_pub`), into 4 partitions
    /// synced every 100 ms.
    pub fn stream_config(&self, db: &str, slot: &str, snapshot: SnapshotMode) -> StreamConfig {
        StreamConfig {
            name: "bench".into(),
            connect: self.connect_config(db),
            publication: "bench_pub".into(),
            slot: slot.into(),
            tables: vec![("public".into(), "bench".into())],
            publication_scope: tributary_connector_postgres::source::PublicationScope::Tables,
            engine: tributary_capture::Settings {
                topic_config: TopicConfig {
                    partitions: 4,
                    fsync: FsyncPolicy::interval(100),
                    ..TopicConfig::default()
                },
                snapshot,
                reconnect: Backoff::default(),
                status_interval: Duration::from_millis(100),
                heartbeat: None,
                progress_interval: Duration::from_secs(10),
                on_error: Default::default(),
            },
            proto_version: 2,
            topic_template: tributary_connector_postgres::source::DEFAULT_TOPIC_TEMPLATE.into(),
            snapshot_workers: 2,
            max_retained_wal: 1 << 30,
            snapshot_chunk_rows: 250_000,
        }
    }

    /// The source's connection settings for database `db`.
    pub fn connect_config(&self, db: &str) -> ConnectConfig {
        ConnectConfig {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password: std::env::var("PGPASSWORD").ok(),
            database: db.to_string(),
            application_name: "tributary-bench".into(),
            extra_options: String::new(),
            ssl_mode: self.sslmode,
            ssl_root_cert: self.sslrootcert.clone(),
        }
    }
}

pub async fn connect(args: &PgArgs, db: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={} user={} dbname={db}",
            args.host, args.port, args.user
        ),
        tokio_postgres::NoTls,
    )
    .await
    .with_context(|| format!("connecting to PostgreSQL at {}:{}", args.host, args.port))?;
    tokio::spawn(conn);
    Ok(client)
}

pub fn run(args: PgSourceBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rows >= 1000 && args.rows.is_multiple_of(1000),
        "--rows must be a positive multiple of 1000"
    );
    let rt = crate::runtime()?;
    rt.block_on(bench(args))
}

/// Runs `measure` in a scratch database, removed afterwards with its
/// slots (they hold WAL) whatever happened.
pub async fn in_scratch_db<T>(
    args: &PgArgs,
    measure: impl AsyncFnOnce(&str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let db = format!("tributary_bench_{}", std::process::id());
    let admin = connect(args, "postgres").await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await?;
    let result = measure(&db).await;
    let _ = admin
        .batch_execute(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{db}'"
        ))
        .await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
    result
}

async fn bench(args: PgSourceBenchArgs) -> anyhow::Result<()> {
    let (ours, theirs) = in_scratch_db(&args.pg, async |db: &str| measure(&args, db).await).await?;
    println!(
        "pg-source: {ours} rows/s, pg_recvlogical {theirs} rows/s, ratio {}",
        ratio(ours, theirs)
    );
    Ok(())
}

async fn measure(args: &PgSourceBenchArgs, db: &str) -> anyhow::Result<(u64, u64)> {
    let client = connect(&args.pg, db).await?;
    // One statement per call: a multi-statement string is one implicit
    // transaction, which neither slot creation nor COMMIT in a procedure
    // accepts.
    for stmt in [
        "CREATE TABLE bench (id bigint PRIMARY KEY, a integer NOT NULL, b text NOT NULL, c double precision, d timestamptz NOT NULL)",
        "CREATE PUBLICATION bench_pub FOR TABLE bench",
        "SELECT pg_create_logical_replication_slot('bench_ours', 'pgoutput')",
        "SELECT pg_create_logical_replication_slot('bench_recvlogical', 'pgoutput')",
        "CREATE PROCEDURE fill(n bigint) LANGUAGE plpgsql AS $$
         BEGIN
           FOR t IN 0..(n / 1000 - 1) LOOP
             INSERT INTO bench SELECT g, g::int % 1000, 'row ' || g, g / 7.0, now()
             FROM generate_series(t * 1000, t * 1000 + 999) g;
             COMMIT;
           END LOOP;
         END $$",
    ] {
        client
            .batch_execute(stmt)
            .await
            .with_context(|| format!("running {stmt}"))?;
    }
    eprintln!("inserting {} rows in 1000-row transactions", args.rows);
    let started = Instant::now();
    client
        .batch_execute(&format!("CALL fill({})", args.rows))
        .await
        .context("inserting the rows")?;
    eprintln!("inserted in {:.1} s", started.elapsed().as_secs_f64());
    let end: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let end_lsn = parse_lsn(&end).context("current WAL position")?;

    // Ours first, into a fresh log, until every row is durable: the
    // reference then reads WAL the server has just had in its cache,
    // which can only favour the reference.
    let dir = tempfile::Builder::new()
        .prefix("tributary-bench-pg")
        .tempdir()?;
    let log = Log::open(dir.path().join("log"))?;
    let registry = Registry::open(dir.path().join("registry"))?;
    let cfg = args.pg.stream_config(db, "bench_ours", SnapshotMode::Never);
    let sql = connect(&args.pg, db).await?;
    prepare(&sql, &cfg).await?;
    let mut source = StreamSource::new(cfg, log.clone(), EventWriter::new(log.clone(), registry));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(async move { source.run(stop_rx).await });
    let topic = topic_name("bench", "public", "bench");
    loop {
        if let Ok(t) = log.topic(&topic)
            && t.partitions()
                .iter()
                .map(|p| p.durable_watermark())
                .sum::<u64>()
                >= args.rows
        {
            break;
        }
        if task.is_finished() {
            task.await??;
            anyhow::bail!("the source stopped before all rows arrived");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ours = rate(args.rows, started.elapsed().as_secs_f64());
    eprintln!("tributary: {ours} rows/s (end LSN {end_lsn:x})");
    stop_tx.send(true)?;
    task.await??;
    // pg_recvlogical, to /dev/null, up to the end position.
    let started = Instant::now();
    let status = tokio::process::Command::new("pg_recvlogical")
        .args([
            "-h",
            &args.pg.host,
            "-p",
            &args.pg.port.to_string(),
            "-U",
            &args.pg.user,
            "-d",
            db,
        ])
        .args([
            "--slot",
            "bench_recvlogical",
            "--start",
            "--no-loop",
            "-f",
            "/dev/null",
        ])
        .args(["-o", "proto_version=1", "-o", "publication_names=bench_pub"])
        .args(["-E", &end])
        .env("PGSSLMODE", args.pg.sslmode.as_str())
        .envs(args.pg.sslrootcert.iter().map(|p| ("PGSSLROOTCERT", p)))
        .status()
        .await
        .context("running pg_recvlogical (postgresql-client)")?;
    anyhow::ensure!(status.success(), "pg_recvlogical failed: {status}");
    let theirs = rate(args.rows, started.elapsed().as_secs_f64());
    eprintln!("pg_recvlogical: {theirs} rows/s");

    Ok((ours, theirs))
}
