//! The PostgreSQL connector against the real local PostgreSQL. Each test
//! works in a database of its own, created and dropped here.

mod errors;
mod heartbeat;
mod resume;
mod snapshot;
mod source;
mod stream;
mod types;

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
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
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
