//! Helpers shared by the end-to-end tests and the child processes they
//! start. Real files, real processes: nothing here fakes a service.

use std::time::Duration;

pub mod mysql;
pub mod pg;
pub mod services;
pub mod topic;
pub mod wait;

pub use wait::{eventually, eventually_within, wait_same_rows};

/// A self-checking record value written by the `log-writer` child: run
/// number, sequence number, and a CRC over both, so a reader can tell a
/// value the child wrote from anything else.
pub fn crash_value(run: u32, seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&run.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    // Padding makes batches span several index intervals and segments.
    v.extend(std::iter::repeat_n((seq % 251) as u8, 40));
    let crc = crc32c::crc32c(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// Parses a value made by [`crash_value`]: `None` if it is not one.
pub fn parse_crash_value(v: &[u8]) -> Option<(u32, u64)> {
    if v.len() != 56 {
        return None;
    }
    let (body, crc) = v.split_at(52);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    let run = u32::from_le_bytes(body[0..4].try_into().ok()?);
    let seq = u64::from_le_bytes(body[4..12].try_into().ok()?);
    (crash_value(run, seq) == v).then_some((run, seq))
}

/// The streaming source's configuration the PostgreSQL tests share: the
/// local server as `postgres`, source name `pg`, publication
/// `<db>_pub` and slot `<db>_slot` for `public.<table>`, topics with
/// `partitions` partitions synced every 50 ms.
pub fn pg_stream_config(
    database: &str,
    table: &str,
    partitions: u32,
    snapshot: tributary_connector_postgres::source::SnapshotMode,
) -> tributary_connector_postgres::source::StreamConfig {
    tributary_connector_postgres::source::StreamConfig {
        name: "pg".into(),
        connect: tributary_connector_postgres::replication::ConnectConfig {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            database: database.into(),
            application_name: "tributary-test".into(),
            extra_options: String::new(),
            // libpq's default: TLS, as the local server offers it.
            ssl_mode: tributary_connector_postgres::tls::SslMode::Prefer,
            ssl_root_cert: None,
        },
        publication: format!("{database}_pub"),
        slot: format!("{database}_slot"),
        tables: vec![("public".into(), table.into())],
        publication_scope: tributary_connector_postgres::source::PublicationScope::Tables,
        engine: engine_settings(partitions, snapshot, Some(Duration::from_millis(200))),
        proto_version: 2,
        topic_template: tributary_connector_postgres::source::DEFAULT_TOPIC_TEMPLATE.into(),
        snapshot_workers: 2,
        max_retained_wal: 1 << 30,
        // Small, so the tests' tables are read in several chunks.
        snapshot_chunk_rows: 5_000,
    }
}

/// The capture engine's settings the tests' sources share: fsync every
/// 50 ms, quick reconnects, durable positions looked for every 100 ms.
pub fn engine_settings(
    partitions: u32,
    snapshot: tributary_capture::SnapshotMode,
    heartbeat: Option<Duration>,
) -> tributary_capture::Settings {
    tributary_capture::Settings {
        topic_config: tributary_log::TopicConfig {
            partitions,
            fsync: tributary_log::FsyncPolicy::interval(50),
            ..tributary_log::TopicConfig::default()
        },
        snapshot,
        reconnect: tributary_capture::Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        },
        status_interval: Duration::from_millis(100),
        heartbeat,
        progress_interval: Duration::from_secs(1),
        on_error: Default::default(),
    }
}

/// Peak resident memory (VmHWM) of process `pid`, in kB.
pub fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Sends the code under test's `tracing` output to the test's captured
/// output (shown when a test fails), filtered by `RUST_LOG` (default
/// `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Opens the registry at `path`, waiting up to 10 s for a source that was
/// just aborted to let go of it: its writer thread still holds the sled
/// lock until it sees its queue close.
pub async fn reopen_registry(path: &std::path::Path) -> tributary_schemas::Registry {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tributary_schemas::Registry::open(path) {
            Ok(r) => return r,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("registry at {}: {e}", path.display()),
        }
    }
}
