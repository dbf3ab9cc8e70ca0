//! The PostgreSQL connector against the real local PostgreSQL. Each test
//! works in a database of its own, created and dropped here.

mod bigtx;
mod errors;
mod heartbeat;
mod resume;
mod snapshot;
mod source;
mod stream;
mod types;

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, NoTls};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database made for one test; `drop_db` removes it.
pub struct TestDb {
    pub name: String,
    pub client: Client,
    admin: Client,
}

pub async fn connect(db: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        NoTls,
    )
    .await
    .expect("connect to the local PostgreSQL (run scripts/services.sh)");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("postgres connection: {e}");
        }
    });
    client
}

impl TestDb {
    pub async fn new(tag: &str) -> Self {
        let name = format!(
            "tributary_{tag}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect("postgres").await;
        // Two calls: a multi-statement string runs as one transaction, and
        // neither statement may run inside one.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .expect("drop leftover database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let client = connect(&name).await;
        Self {
            name,
            client,
            admin,
        }
    }

    pub async fn drop_db(self) {
        let Self {
            name,
            client,
            admin,
        } = self;
        drop(client);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop database");
    }
}

/// Drops a replication slot, waiting for its walsender to let go.
pub async fn drop_slot(db: &TestDb, slot: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = db
            .client
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await;
        if r.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot {slot} still active: {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The slot's `confirmed_flush_lsn`.
pub async fn confirmed_flush_lsn(db: &TestDb, slot: &str) -> u64 {
    let row = db
        .client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("slot");
    tributary_connector_postgres::replication::parse_lsn(row.get::<_, &str>(0)).expect("lsn")
}

/// Waits (up to 20 s) until the slot's `confirmed_flush_lsn` reaches `lsn`.
pub async fn wait_confirmed(db: &TestDb, slot: &str, lsn: u64) {
    wait_confirmed_within(db, slot, lsn, std::time::Duration::from_secs(20)).await;
}

/// Waits up to `limit` until the slot's `confirmed_flush_lsn` reaches `lsn`.
pub async fn wait_confirmed_within(db: &TestDb, slot: &str, lsn: u64, limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let confirmed = confirmed_flush_lsn(db, slot).await;
        if confirmed >= lsn {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "confirmed_flush_lsn stuck at {confirmed:x}, want {lsn:x}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Starts the `pg-source` child on `dir` and `db` (more arguments:
/// table, protocol version) and waits for it to say it started.
pub fn start_child(dir: &std::path::Path, db: &str, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pg-source"))
        .arg(dir)
        .arg(db)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn pg-source");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    assert_eq!(line.trim(), "started", "pg-source failed to start");
    child
}

/// Opens the log under `dir` (no writer may hold it) and counts the
/// records of `topic`: in total and per key.
pub fn log_keys(dir: &std::path::Path, topic: &str) -> (usize, HashMap<Vec<u8>, usize>) {
    let log = tributary_log::Log::open_with(
        dir.join("log"),
        tributary_log::LogOptions {
            background: false,
            ..tributary_log::LogOptions::default()
        },
    )
    .expect("open log");
    let Ok(t) = log.topic(topic) else {
        return (0, HashMap::new());
    };
    let mut total = 0;
    let mut per_key: HashMap<Vec<u8>, usize> = HashMap::new();
    for p in t.partitions() {
        let mut offset = p.earliest_offset();
        while offset < p.high_watermark() {
            for b in p.read(offset, 1 << 20).expect("read") {
                for r in b.records().expect("records").iter() {
                    let r = r.expect("record");
                    if r.offset < offset {
                        continue;
                    }
                    total += 1;
                    *per_key.entry(r.key.expect("key").to_vec()).or_default() += 1;
                    offset = r.offset + 1;
                }
            }
        }
    }
    (total, per_key)
}

/// `pg_current_wal_lsn()`.
pub async fn current_lsn(db: &TestDb) -> u64 {
    let row = db
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn");
    tributary_connector_postgres::replication::parse_lsn(row.get::<_, &str>(0)).expect("lsn")
}
