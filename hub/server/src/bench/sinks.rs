//! `tributary bench sinks`: change events already in the log applied by
//! each sink through the pipeline runtime (read, decode, batch, apply,
//! store offsets), against a raw reference writing the same rows to the
//! same target in the same run.
//!
//! The events come from a snapshot of a 5-column table (as `pg-snapshot`
//! reads it) into a fresh log, untimed. Each sink is timed from its start
//! until the offsets it stores with its data cover every record.
//! References: PostgreSQL `COPY ... FROM STDIN` of the rows (text format)
//! into a table with the same key; MySQL/MariaDB `LOAD DATA LOCAL` of the
//! same text; Redis `HSET` of the same fields, pipelined 1000 rows at a
//! time. The tantivy sink (a search index in the scratch directory) has
//! no reference: its line is `sink-tantivy: <N> docs/s`.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::SinkExt as _;
use redis::Commands as _;
use tributary_capture::writer::EventWriter;
use tributary_connector_postgres::source::{SnapshotMode, StreamSource, prepare, sql_connect};
use tributary_log::Log;
use tributary_schemas::Registry;

use super::pg_source::{PgArgs, in_scratch_db};
use super::{rate, ratio};

#[derive(Debug, clap::Args)]
pub struct SinksBenchArgs {
    /// Change events in the log (rows of the snapshot).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Records per sink batch (the pipeline's `batch_size`; default: each
    /// sink's own).
    #[arg(long)]
    batch_size: Option<u32>,
    /// Redis for the Redis sink and its reference.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// MySQL/MariaDB server (a scratch database is made there) for the
    /// MySQL sink and its reference.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306/")]
    mysql: String,
    /// Only this sink (and its reference): postgres, mysql, redis or
    /// tantivy.
    #[arg(long, value_parser = ["postgres", "mysql", "redis", "tantivy"])]
    only: Option<String>,
    #[command(flatten)]
    pg: PgArgs,
}

const TOPIC: &str = "bench.public.bench";

pub fn run(args: SinksBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rows > 0, "--rows must be positive");
    let rt = crate::runtime()?;
    rt.block_on(async {
        let lines = in_scratch_db(&args.pg, async |db: &str| measure(&args, db).await).await?;
        for l in lines {
            println!("{l}");
        }
        Ok(())
    })
}

async fn measure(args: &SinksBenchArgs, db: &str) -> anyhow::Result<Vec<String>> {
    let client = sql_connect(&args.pg.connect_config(db)).await?;
    super::pg_snapshot::fill_table(&client, args.rows).await?;
    let dir = tempfile::Builder::new()
        .prefix("tributary-bench-sinks")
        .tempdir()?;
    let data = dir.path().join("data");
    // The change events: a snapshot into the log, untimed.
    let total = {
        let log = Log::open(data.join("log"))?;
        let registry = Registry::open(data.join("registry"))?;
        let cfg = args
            .pg
            .stream_config(db, "bench_sinks", SnapshotMode::InitialOnly);
        prepare(&client, &cfg).await?;
        let mut source =
            StreamSource::new(cfg, log.clone(), EventWriter::new(log.clone(), registry));
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        source.run(stop_rx).await?;
        log.flush()?;
        let topic = log.topic(TOPIC)?;
        topic
            .partitions()
            .iter()
            .map(|p| p.high_watermark())
            .sum::<u64>()
    };
    anyhow::ensure!(
        total == args.rows,
        "the log holds {total} events, not {}",
        args.rows
    );
    let mut rows = Vec::new();
    {
        let out = client.copy_out("COPY bench TO STDOUT").await?;
        let mut out = std::pin::pin!(out);
        while let Some(chunk) = futures_util::StreamExt::next(&mut out).await {
            rows.extend_from_slice(&chunk?);
        }
    }
    let mut lines = Vec::new();
    let wanted = |kind: &str| args.only.as_deref().is_none_or(|o| o == kind);

    if wanted("postgres") {
        lines.push(postgres(args, db, &client, &data, &rows).await?);
    }
    // MySQL/MariaDB: the reference is LOAD DATA LOCAL of the same rows
    // into a table with the same key.
    if wanted("mysql") {
        lines.push(mysql(args, db, &data, &rows).await?);
    }
    if wanted("redis") {
        lines.push(redis(args, &data, rows).await?);
    }
    if wanted("tantivy") {
        lines.push(tantivy(args, &data).await?);
    }
    Ok(lines)
}

/// The tantivy sink into a fresh index in the scratch directory, timed
/// until its last commit's offsets cover every record.
async fn tantivy(args: &SinksBenchArgs, data: &std::path::Path) -> anyhow::Result<String> {
    let index = data.join("search").join("bench-tantivy");
    let sink = format!(
        "  - name: bench-tantivy\n    kind: tantivy\n    path: {}\n",
        index.display()
    );
    let ours = run_sink(args, data, &sink, async || {
        let index = index.clone();
        let offsets =
            tokio::task::spawn_blocking(move || tributary_sink_tantivy::committed_offsets(&index))
                .await??;
        Ok(offsets.values().sum())
    })
    .await?;
    let n = tributary_sink_tantivy::num_docs(&index)?;
    anyhow::ensure!(n == args.rows, "the index holds {n} documents");
    eprintln!("sink-tantivy: {ours} docs/s");
    Ok(format!("sink-tantivy: {ours} docs/s"))
}

/// The PostgreSQL sink against `COPY` of the same rows.
async fn postgres(
    args: &SinksBenchArgs,
    db: &str,
    client: &tokio_postgres::Client,
    data: &std::path::Path,
    rows: &[u8],
) -> anyhow::Result<String> {
    client
        .batch_execute("CREATE SCHEMA sink; CREATE TABLE copied (LIKE bench INCLUDING ALL)")
        .await?;
    let started = Instant::now();
    {
        let sink = client.copy_in("COPY copied FROM STDIN").await?;
        let mut sink = std::pin::pin!(sink);
        for chunk in rows.chunks(1 << 20) {
            // Whole lines per message is not required by COPY.
            sink.send(Bytes::copy_from_slice(chunk)).await?;
        }
        sink.as_mut().finish().await?;
    }
    let copy = rate(args.rows, started.elapsed().as_secs_f64());
    eprintln!("copy: {copy} rows/s");
    let cfg = args.pg.connect_config(db);
    let sink = format!(
        "  - name: bench-pg\n    kind: postgres\n    url: postgres://{user}@{host}:{port}/{db}?sslmode={ssl}{root}\n    table: \"sink.{{table}}\"\n",
        user = cfg.user,
        host = cfg.host,
        port = cfg.port,
        ssl = cfg.ssl_mode.as_str(),
        root = cfg
            .ssl_root_cert
            .as_ref()
            .map(|p| format!("&sslrootcert={}", p.display()))
            .unwrap_or_default(),
    );
    let ours = run_sink(args, data, &sink, async || {
        let n: Option<i64> = client
            .query_one(
                "SELECT sum(next_offset)::bigint FROM tributary_offsets WHERE sink = 'bench-pg'",
                &[],
            )
            .await?
            .get(0);
        Ok(n.unwrap_or(0) as u64)
    })
    .await?;
    let n: i64 = client
        .query_one("SELECT count(*) FROM sink.bench", &[])
        .await?
        .get(0);
    anyhow::ensure!(n as u64 == args.rows, "the sink wrote {n} rows");
    eprintln!("sink-postgres: {ours} rows/s");
    Ok(format!(
        "sink-postgres: {ours} rows/s, copy {copy} rows/s, ratio {}",
        ratio(ours, copy)
    ))
}

/// The Redis sink against pipelined `HSET` of the same fields.
async fn redis(
    args: &SinksBenchArgs,
    data: &std::path::Path,
    rows: Vec<u8>,
) -> anyhow::Result<String> {
    let prefix = format!("tributary-bench-{}:", std::process::id());
    let redis = redis::Client::open(args.redis.as_str())?;
    let mut conn = redis.get_connection().context("connecting to Redis")?;
    let text = String::from_utf8(rows)?;
    let started = Instant::now();
    let names = ["id", "a", "b", "c", "d"];
    let mut pipe = redis::pipe();
    let mut n = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("{prefix}ref:{}", fields[0]));
        for (name, v) in names.iter().zip(&fields) {
            cmd.arg(*name).arg(*v);
        }
        pipe.add_command(cmd).ignore();
        n += 1;
        if n % 1000 == 0 {
            pipe.query::<()>(&mut conn)?;
            pipe = redis::pipe();
        }
    }
    if n % 1000 != 0 {
        pipe.query::<()>(&mut conn)?;
    }
    let hset = rate(args.rows, started.elapsed().as_secs_f64());
    eprintln!("pipelined-hset: {hset} rows/s");
    // The sink then writes into the keyspace the reference found, not
    // one already holding a million keys (a larger dictionary to grow
    // and probe).
    delete_matching(&mut conn, &format!("{prefix}ref:*"))?;
    let sink = format!(
        "  - name: bench-redis\n    kind: redis\n    url: {}\n    prefix: \"{prefix}\"\n",
        args.redis
    );
    let offsets_key = format!("{prefix}tributary:offsets:bench-redis");
    let result = run_sink(args, data, &sink, async || {
        let mut c = redis.get_connection()?;
        let all: std::collections::HashMap<String, u64> =
            redis::cmd("HGETALL").arg(&offsets_key).query(&mut c)?;
        Ok(all.values().sum())
    })
    .await;
    // Clean up whatever happened.
    delete_matching(&mut conn, &format!("{prefix}*"))?;
    let ours = result?;
    eprintln!("sink-redis: {ours} rows/s");
    Ok(format!(
        "sink-redis: {ours} rows/s, pipelined-hset {hset} rows/s, ratio {}",
        ratio(ours, hset)
    ))
}

/// Deletes the keys matching `pattern`.
fn delete_matching(conn: &mut redis::Connection, pattern: &str) -> anyhow::Result<()> {
    let keys: Vec<String> = conn
        .scan_match::<_, String>(pattern)?
        .collect::<redis::RedisResult<_>>()?;
    for chunk in keys.chunks(10_000) {
        redis::cmd("DEL").arg(chunk).query::<()>(conn)?;
    }
    Ok(())
}

async fn mysql(
    args: &SinksBenchArgs,
    db: &str,
    data: &std::path::Path,
    rows: &[u8],
) -> anyhow::Result<String> {
    use mysql_async::prelude::Queryable as _;
    let base = args.mysql.trim_end_matches('/');
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&format!("{base}/"))?)
        .await
        .context("connecting to MySQL/MariaDB")?;
    conn.query_drop(format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db};
         SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES', time_zone = '+00:00';
         CREATE TABLE copied (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, b LONGTEXT NOT NULL,
             c DOUBLE, d DATETIME(6) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    ))
    .await?;
    // LOAD DATA LOCAL of the rows PostgreSQL's COPY printed (tab-separated
    // text); the timestamp's zone suffix cut.
    // In packets well under max_allowed_packet.
    let chunks: Vec<std::io::Result<Bytes>> = rows
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    conn.set_infile_handler(async move {
        Ok(futures_util::StreamExt::boxed(futures_util::stream::iter(
            chunks,
        )))
    });
    let started = Instant::now();
    conn.query_drop(
        "LOAD DATA LOCAL INFILE 'rows' INTO TABLE copied FIELDS TERMINATED BY '\\t'
         (id, a, b, c, @d) SET d = LEFT(@d, 26)",
    )
    .await
    .context("LOAD DATA LOCAL (the server needs local_infile on)")?;
    let load = rate(args.rows, started.elapsed().as_secs_f64());
    eprintln!("load-data: {load} rows/s");
    let sink = format!(
        "  - name: bench-mysql\n    kind: mysql\n    url: {base}/{db}\n    table: \"sink_{{table}}\"\n"
    );
    let result = run_sink(args, data, &sink, async || {
        let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&format!("{base}/{db}"))?).await?;
        let n: Option<Option<u64>> = c
            .query_first("SELECT CAST(SUM(next_offset) AS UNSIGNED) FROM tributary_offsets WHERE sink = 'bench-mysql'")
            .await
            .unwrap_or(None);
        let _ = c.disconnect().await;
        Ok(n.flatten().unwrap_or(0))
    })
    .await;
    let written: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM sink_bench")
        .await
        .unwrap_or(None);
    conn.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    let ours = result?;
    anyhow::ensure!(
        written == Some(args.rows),
        "the sink wrote {written:?} rows"
    );
    eprintln!("sink-mysql: {ours} rows/s");
    Ok(format!(
        "sink-mysql: {ours} rows/s, load-data {load} rows/s, ratio {}",
        ratio(ours, load)
    ))
}

/// Runs a pipeline of the one sink `sink` (YAML) over the log in `data`
/// until `applied` reports every record; its rate.
async fn run_sink(
    args: &SinksBenchArgs,
    data: &std::path::Path,
    sink: &str,
    applied: impl AsyncFn() -> anyhow::Result<u64>,
) -> anyhow::Result<u64> {
    let batch = args
        .batch_size
        .map(|n| format!("    batch_size: {n}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "log:\n  dir: {}\nsinks:\n{sink}    topics: [\"bench.public.*\"]\n{batch}    flush_interval_ms: 10\n",
        data.display(),
    );
    let file = data.join("bench-sink.yaml");
    let pipeline = tributary_pipeline::config::parse(&file, &yaml, &|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(tributary_pipeline::runtime::run(
        pipeline,
        tributary_pipeline::runtime::RunOptions {
            shutdown: stop_rx,
            restart_initial: Duration::from_millis(200),
            restart_max: Duration::from_secs(2),
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(600);
    let secs = loop {
        // Before the sink's first write there may be nothing to read yet.
        if applied().await.unwrap_or(0) >= args.rows {
            break started.elapsed().as_secs_f64();
        }
        anyhow::ensure!(!task.is_finished(), "the pipeline stopped early");
        anyhow::ensure!(
            Instant::now() < deadline,
            "the sink did not finish in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = stop_tx.send(true);
    let status = task.await??;
    let status = status.lock().map_err(|_| anyhow::anyhow!("status lock"))?;
    if let Some((name, s)) = status.iter().find(|(_, s)| s.last_error.is_some()) {
        eprintln!("{name}: {:?}", s.last_error);
    }
    Ok(rate(args.rows, secs))
}
