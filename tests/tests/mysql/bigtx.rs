//! A transaction of 1,000,000 rows: it reaches the log whole and exactly
//! once while the source's memory stays bounded (it is appended in chunks
//! as it is read: the binlog holds only committed transactions). The
//! peak RSS of the source process is printed.

use std::time::Duration;

use super::resume::start_streaming;
use super::*;

const ROWS: u64 = 1_000_000;
/// Holding 1,000,000 decoded events takes well over a gigabyte.
const RSS_LIMIT_KB: u64 = 200 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_row_transaction_with_bounded_memory() {
    let mut db = MyDb::new("bigtx").await;
    db.exec("CREATE TABLE big (id BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL, n BIGINT, amount DECIMAL(12,2), at DATETIME(6))")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = start_streaming(&mut db, dir.path(), "big").await;
    db.exec(&format!(
        "BEGIN; INSERT INTO big SELECT seq, CONCAT('row ', seq), seq * 2, seq / 7, NOW(6) FROM seq_1_to_{ROWS}; COMMIT;"
    ))
    .await;
    let end = master_position(&mut db.conn).await;
    wait_stored(
        &dir.path().join("log"),
        "my",
        &end,
        Duration::from_secs(300),
    )
    .await;
    let rss = tributary_tests::peak_rss_kb(child.id());
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    println!(
        "mysql bigtx: {ROWS} rows in one transaction, source peak RSS {} MB",
        rss / 1024
    );
    let (total, per_key) =
        tributary_tests::pg::log_keys(dir.path(), &format!("my.{}.big", db.name));
    assert_eq!(per_key.len() as u64, ROWS, "every row reached the log");
    assert_eq!(total as u64, ROWS, "no row twice");
    assert!(
        rss < RSS_LIMIT_KB,
        "source peak RSS {} MB: memory is not bounded",
        rss / 1024
    );
    db.drop_db().await;
}
