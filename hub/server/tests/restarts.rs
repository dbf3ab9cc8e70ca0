//! The hub's tests that stop or restart a shared service (Redis,
//! PostgreSQL) under a running `tributary run`: the sink retries,
//! resumes, and the target ends equal to the source. A test binary of its
//! own: cargo runs test binaries one after another, so no other test sees
//! the servers go away; here each test holds
//! `tributary_tests::services::exclusive()` so they take turns (and
//! .config/nextest.toml runs them alone under nextest).

use std::time::Duration;

use tributary_tests::pg::TestDb;

mod common;

/// Rows keep coming while the servers restart: `batches` inserts of ten
/// rows and an update of an earlier row each, a failed one tried again
/// (a key already there means it had landed).
async fn keep_writing(db_name: String, batches: i32) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut b = 0;
    while b < batches {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = tributary_tests::pg::try_connect(&db_name).await;
        }
        let Some(c) = client.as_ref() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let base = 1000 + b * 10;
        let sql = format!(
            "BEGIN;
             INSERT INTO customers SELECT g, 'c' || g, g * 1.25 FROM generate_series({base}, {}) g;
             UPDATE customers SET name = 'updated {b}' WHERE id = {};
             COMMIT;",
            base + 9,
            1 + b % 200
        );
        match c.batch_execute(&sql).await {
            Ok(()) => b += 1,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                b += 1
            }
            Err(_) => {
                client = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every customer as `id|name|balance`, in id order.
async fn customers(db: &TestDb) -> Vec<String> {
    tributary_tests::pg::rows(
        db,
        "SELECT id || '|' || name || '|' || balance FROM customers ORDER BY id",
    )
    .await
}

/// Every cached customer as `id|name|balance`, in id order.
fn cached(prefix: &str) -> Vec<String> {
    let Some(mut c) = common::try_redis() else {
        return vec!["<no redis>".into()];
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}public.customers:*"))
        .query(&mut c)
        .unwrap_or_default();
    let mut rows: Vec<(i64, String)> = keys
        .iter()
        .filter_map(|k| {
            let h: std::collections::BTreeMap<String, String> =
                redis::cmd("HGETALL").arg(k).query(&mut c).ok()?;
            let f = |n: &str| h.get(n).cloned().unwrap_or_default();
            let id = f("id").parse().ok()?;
            Some((id, format!("{}|{}|{}", f("id"), f("name"), f("balance"))))
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, r)| r).collect()
}

/// Shuts Redis down and starts it again as scripts/services.sh does.
/// With `save`, it saves its data (and so the sink's offsets hash, in the
/// same snapshot) and loads it back; without, it comes back empty, as
/// the machine's Redis (no persistence) does after any restart. The
/// snapshot file is removed afterwards.
async fn restart_redis(save: bool) {
    let _ = tokio::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "shutdown"])
        .arg(if save { "save" } else { "nosave" })
        .status()
        .await;
    for _ in 0..100 {
        if common::try_redis().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let services = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services.sh");
    let status = tokio::process::Command::new("bash")
        .args([services, "redis"])
        .status()
        .await
        .expect("services.sh redis");
    assert!(status.success(), "starting Redis again failed");
    let _ = std::fs::remove_file("/var/lib/redis/dump.rdb");
}

/// Redis goes away twice mid-stream while rows keep coming, once keeping
/// its data and once losing it: the sink retries until it answers again,
/// resumes (or, finding its offsets gone, replays the log into the empty
/// Redis), and the cache ends equal to the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_stream_the_cache_ends_equal() {
    let _services = tributary_tests::services::exclusive().await;
    let (db, prefix) = common::customers_db("redis_restart", 200, "g * 1.25").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::customers_pipeline(
        dir.path(),
        &db,
        &prefix,
        "",
        "    batch_size: 50\n    timeout_ms: 2000\n",
    );
    let child = common::start(&file);
    common::wait_same_rows(
        "customers",
        async || customers(&db).await,
        async || cached(&prefix),
    )
    .await;
    let writes = tokio::spawn(keep_writing(db.name.clone(), 100));
    for save in [true, false] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        restart_redis(save).await;
    }
    writes.await.expect("writes");
    common::wait_same_rows(
        "customers",
        async || customers(&db).await,
        async || cached(&prefix),
    )
    .await;
    assert_eq!(customers(&db).await.len(), 200 + 100 * 10);
    common::stop(child);
    common::clean_up(db, &prefix).await;
}

/// PostgreSQL, the source and the target of a replica pipeline, restarted
/// twice mid-stream: the source resumes from its slot, the sink retries
/// its batch on a new connection and resumes from the offsets stored in
/// the target; the replica ends equal, row by row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_target_restarted_mid_stream_ends_equal() {
    let _services = tributary_tests::services::exclusive().await;
    let (src, _) = common::customers_db("pg_restart_src", 200, "g * 1.25").await;
    let dst = TestDb::new("pg_restart_dst").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &common::replica_yaml(&src, &dst, "    batch_size: 50\n    timeout_ms: 5000\n"),
    );
    let child = common::start(&file);
    common::wait_same_rows(
        "customers",
        async || customers(&src).await,
        async || customers(&dst).await,
    )
    .await;
    let writes = tokio::spawn(keep_writing(src.name.clone(), 100));
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        tributary_tests::pg::restart_server().await;
    }
    writes.await.expect("writes");
    // The test's own connections went away with the restarts.
    let (src, dst) = (src.reconnect().await, dst.reconnect().await);
    common::wait_same_rows(
        "customers",
        async || customers(&src).await,
        async || customers(&dst).await,
    )
    .await;
    assert_eq!(customers(&dst).await.len(), 200 + 100 * 10);
    common::stop(child);
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}
