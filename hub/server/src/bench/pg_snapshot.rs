//! `tributary bench pg-snapshot`: the PostgreSQL source's initial
//! snapshot of a table against `psql -c "\copy (...) to /dev/null"`
//! reading the same table, in the same run.
//!
//! The table (5 columns, like `pg-source`'s) is filled and analyzed
//! first; then psql copies it to /dev/null, then the source reads it with
//! snapshot mode `initial_only` into a fresh log, timed until its rows
//! are durable (the snapshot records each table only after a flush).

use std::time::Instant;

use anyhow::Context;
use tributary_capture::writer::EventWriter;
use tributary_connector_postgres::source::{SnapshotMode, StreamSource, prepare};
use tributary_log::Log;
use tributary_schemas::Registry;

use super::pg_source::{PgArgs, connect, in_scratch_db};
use super::{rate, ratio};

#[derive(Debug, clap::Args)]
pub struct PgSnapshotBenchArgs {
    /// Rows in the table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Connections reading the snapshot in parallel.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Rows per key range a big table is split into.
    #[arg(long, default_value_t = 250_000)]
    chunk_rows: u64,
    #[command(flatten)]
    pg: PgArgs,
}

pub fn run(args: PgSnapshotBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rows > 0, "--rows must be positive");
    let rt = crate::runtime()?;
    rt.block_on(async {
        let (ours, theirs) =
            in_scratch_db(&args.pg, async |db: &str| measure(&args, db).await).await?;
        println!(
            "pg-snapshot: {ours} rows/s, copy {theirs} rows/s, ratio {}",
            ratio(ours, theirs)
        );
        Ok(())
    })
}

/// The 5-column table `bench` with `rows` rows, analyzed, in publication
/// `bench_pub`.
pub(super) async fn fill_table(client: &tokio_postgres::Client, rows: u64) -> anyhow::Result<()> {
    for stmt in [
        "CREATE TABLE bench (id bigint PRIMARY KEY, a integer NOT NULL, b text NOT NULL, c double precision, d timestamptz NOT NULL)".to_string(),
        format!(
            "INSERT INTO bench SELECT g, g::int % 1000, 'row ' || g, g / 7.0, now() FROM generate_series(1, {rows}) g"
        ),
        "VACUUM ANALYZE bench".to_string(),
        "CREATE PUBLICATION bench_pub FOR TABLE bench".to_string(),
    ] {
        client
            .batch_execute(&stmt)
            .await
            .with_context(|| format!("running {stmt}"))?;
    }
    Ok(())
}

async fn measure(args: &PgSnapshotBenchArgs, db: &str) -> anyhow::Result<(u64, u64)> {
    let client = connect(&args.pg, db).await?;
    fill_table(&client, args.rows).await?;

    // The reference: psql's \copy of the same columns to /dev/null.
    let started = Instant::now();
    let status = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            &args.pg.host,
            "-p",
            &args.pg.port.to_string(),
        ])
        .args(["-U", &args.pg.user, "-d", db])
        .args([
            "-c",
            "\\copy (SELECT id, a, b, c, d FROM bench) to /dev/null",
        ])
        .env("PGSSLMODE", args.pg.sslmode.as_str())
        .envs(args.pg.sslrootcert.iter().map(|p| ("PGSSLROOTCERT", p)))
        .status()
        .await
        .context("running psql (postgresql-client)")?;
    anyhow::ensure!(status.success(), "psql failed: {status}");
    let theirs = rate(args.rows, started.elapsed().as_secs_f64());
    eprintln!("psql \\copy: {theirs} rows/s");

    let dir = tempfile::Builder::new()
        .prefix("tributary-bench-pg-snapshot")
        .tempdir()?;
    let log = Log::open(dir.path().join("log"))?;
    let registry = Registry::open(dir.path().join("registry"))?;
    let mut cfg = args
        .pg
        .stream_config(db, "bench_snapshot", SnapshotMode::InitialOnly);
    cfg.snapshot_workers = args.workers;
    cfg.snapshot_chunk_rows = args.chunk_rows;
    prepare(&client, &cfg).await?;
    let mut source = StreamSource::new(cfg, log.clone(), EventWriter::new(log, registry));
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let stats = source.run(stop_rx).await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        stats.snapshot_rows == args.rows,
        "the snapshot read {} rows of {}",
        stats.snapshot_rows,
        args.rows
    );
    let ours = rate(args.rows, secs);
    eprintln!("tributary: {ours} rows/s");
    Ok((ours, theirs))
}
