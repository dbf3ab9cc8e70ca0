//! A transaction of 1,000,000 rows: it reaches the log whole and exactly
//! once while the source's memory stays bounded. With protocol 2
//! PostgreSQL streams it before it commits and the source spills it to
//! disk; with protocol 1 it arrives after the commit and the source
//! appends it in chunks. The peak RSS of the source process is printed
//! and must stay far below what holding the transaction would take.

use super::{TestDb, current_lsn, log_keys, start_child, wait_confirmed_within};

const ROWS: i64 = 1_000_000;
/// Holding 1,000,000 decoded events takes well over a gigabyte.
const RSS_LIMIT_KB: u64 = 200 * 1024;

async fn one_big_transaction(proto: &str) {
    let db = TestDb::new(&format!("bigtx{proto}")).await;
    db.exec(
            "CREATE TABLE big (id bigint PRIMARY KEY, name text NOT NULL, n bigint, amount numeric(12,2), at timestamptz)",
        ).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = start_child(dir.path(), &db.name, &["big", proto]);
    db.exec(&format!(
            "INSERT INTO big SELECT g, 'row ' || g, g * 2, g / 7.0, now() FROM generate_series(1, {ROWS}) g"
        )).await;
    let end = current_lsn(&db).await;
    let slot = format!("{}_slot", db.name);
    wait_confirmed_within(&db, &slot, end, std::time::Duration::from_secs(300)).await;
    let rss = tributary_tests::peak_rss_kb(child.id());
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let streamed: i64 = db
        .client
        .query_one(
            "SELECT coalesce(stream_txns, 0) FROM pg_stat_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    println!(
        "bigtx proto {proto}: {ROWS} rows, source peak RSS {} MB, streamed transactions {streamed}",
        rss / 1024
    );
    if proto == "2" {
        assert!(
            streamed >= 1,
            "protocol 2 should have streamed the transaction"
        );
    }
    let (total, per_key) = log_keys(dir.path(), "pg.public.big");
    assert_eq!(per_key.len() as i64, ROWS, "every row reached the log");
    assert_eq!(total as i64, ROWS, "no row twice");
    assert!(
        rss < RSS_LIMIT_KB,
        "source peak RSS {} MB: memory is not bounded",
        rss / 1024
    );
    super::drop_slot(&db, &slot).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_row_transaction_streamed_proto2() {
    one_big_transaction("2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_row_transaction_proto1() {
    one_big_transaction("1").await;
}
