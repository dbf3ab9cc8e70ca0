//! Kill and resume: the source process is SIGKILLed at random moments
//! while transactions commit; after restarts the log holds every
//! committed change exactly once (the binlog is read again from the
//! stored position, and what already reached the log is recognised by
//! its position and not written again).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use rand::Rng;

use super::*;

const ROWS_PER_TX: u32 = 5;
const TXS: u32 = 400;

/// Starts the `my-source` child and waits for it to say it started.
pub fn start_child(dir: &std::path::Path, db: &str, table: &str) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_my-source"))
        .arg(dir)
        .arg(db)
        .arg(table)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn my-source");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    assert_eq!(line.trim(), "started", "my-source failed to start");
    child
}

/// Starts the child on `table` and waits until its (empty) snapshot is
/// done and its position stored, so every row written after this comes
/// from the binlog.
pub async fn start_streaming(db: &mut MyDb, dir: &std::path::Path, table: &str) -> Child {
    let child = start_child(dir, &db.name, table);
    let start = master_position(&mut db.conn).await;
    wait_stored(&dir.join("log"), "my", &start, Duration::from_secs(20)).await;
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_source_resumes_with_every_change_exactly_once() {
    let mut db = MyDb::new("resume").await;
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = start_streaming(&mut db, dir.path(), "items").await;

    let mut conn = mysql_async::Conn::new(
        mysql_async::Opts::from_url(&format!("{URL}{}", db.name)).expect("url"),
    )
    .await
    .expect("connect");
    let writer = tokio::spawn(async move {
        for tx in 0..TXS {
            let base = tx * ROWS_PER_TX;
            let values: Vec<String> = (base..base + ROWS_PER_TX)
                .map(|i| format!("({i}, 'v{i}')"))
                .collect();
            conn.query_drop(format!("INSERT INTO items VALUES {}", values.join(",")))
                .await
                .expect("insert");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        conn
    });
    let mut kills = 0;
    while !writer.is_finished() || kills < 3 {
        let wait = rand::rng().random_range(150..600);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
        child = start_child(dir.path(), &db.name, "items");
    }
    let _ = writer.await.expect("writer");
    let end = master_position(&mut db.conn).await;
    wait_stored(&dir.path().join("log"), "my", &end, Duration::from_secs(60)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let (total, per_key) =
        tributary_tests::pg::log_keys(dir.path(), &format!("my.{}.items", db.name));
    let want = (TXS * ROWS_PER_TX) as usize;
    assert_eq!(
        per_key.len(),
        want,
        "every committed row, after {kills} kills"
    );
    assert_eq!(total, want, "no row twice, after {kills} kills");
    db.drop_db().await;
}
