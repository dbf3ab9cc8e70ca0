//! Kill and resume: the source process is SIGKILLed at random moments
//! while transactions commit; after restarts the log holds every
//! committed change exactly once (the slot replays what was not
//! acknowledged; what already reached the log is recognised by its
//! position and not written again).

use std::time::Duration;

use rand::Rng;

use super::{TestDb, connect, log_keys, start_child};

const ROWS_PER_TX: i32 = 5;
const TXS: i32 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_source_resumes_with_every_change_exactly_once() {
    let db = TestDb::new("resume").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL)")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = start_child(dir.path(), &db.name, &[]);

    // Commit transactions in the background while the source is killed
    // and restarted.
    let writer_client = connect(&db.name).await;
    let writer = tokio::spawn(async move {
        for tx in 0..TXS {
            let base = tx * ROWS_PER_TX;
            writer_client
                .batch_execute(&format!(
                    "INSERT INTO items SELECT g, 'v' || g FROM generate_series({}, {}) g",
                    base,
                    base + ROWS_PER_TX - 1
                ))
                .await
                .expect("insert");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut kills = 0;
    while !writer.is_finished() || kills < 3 {
        let wait = rand::rng().random_range(150..600);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
        child = start_child(dir.path(), &db.name, &[]);
    }
    writer.await.expect("writer");
    let want = (TXS * ROWS_PER_TX) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Let the source catch up, then stop it and look at the log.
        tokio::time::sleep(Duration::from_millis(500)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let (total, per_key) = log_keys(dir.path(), "pg.public.items");
        if per_key.len() == want {
            assert_eq!(
                total, want,
                "every change exactly once, after {kills} kills"
            );
            assert!(per_key.values().all(|&n| n == 1));
            break;
        }
        assert!(
            total <= want,
            "duplicates: {total} records for {} keys",
            per_key.len()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {want} rows arrived",
            per_key.len()
        );
        child = start_child(dir.path(), &db.name, &[]);
    }
    let slot = format!("{}_slot", db.name);
    super::drop_slot(&db, &slot).await;
    db.drop_db().await;
}
