//! PostgreSQL -> log -> Redis with `tributary run`: the cache ends equal
//! to the table through a snapshot, updates, deletes, inserts and a
//! restart in between.

use std::collections::BTreeMap;
use std::time::Duration;

use tributary_tests::pg::TestDb;

mod common;

use common::start;

/// SIGTERM; the stop must be clean. Returns what the process printed.
fn terminate(running: common::Running) -> String {
    let (status, out) = common::terminate(running);
    assert!(status.success(), "clean stop: {status}\n{out}");
    out
}

fn redis() -> redis::Connection {
    redis::Client::open("redis://127.0.0.1:6379")
        .expect("client")
        .get_connection()
        .expect("connect to Redis")
}

/// Every cached row: id -> (name, balance).
fn cached(prefix: &str) -> BTreeMap<i32, (String, String)> {
    let mut c = redis();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}public.customers:*"))
        .query(&mut c)
        .expect("keys");
    keys.iter()
        .map(|k| {
            // Not a hash (the dead-letter test plants a string): not a row.
            let h: BTreeMap<String, String> = redis::cmd("HGETALL")
                .arg(k)
                .query(&mut c)
                .unwrap_or_default();
            h
        })
        // A row deleted between KEYS and HGETALL reads as empty.
        .filter(|h| !h.is_empty())
        .map(|h| {
            let field = |f: &str| h.get(f).cloned().unwrap_or_default();
            let id = field("id").parse().unwrap_or(-1);
            (id, (field("name"), field("balance")))
        })
        .collect()
}

async fn table(db: &TestDb) -> BTreeMap<i32, (String, String)> {
    db.client
        .query("SELECT id, name, balance::text FROM customers", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

async fn wait_equal(db: &TestDb, prefix: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let want = table(db).await;
        if cached(prefix) == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cache never matched the table: {} cached, {} rows",
            cached(prefix).len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_the_table_across_a_restart() {
    let db = TestDb::new("redis").await;
    db.client
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2) NOT NULL);
             INSERT INTO customers SELECT g, 'c' || g, g * 1.25 FROM generate_series(1, 200) g;",
        )
        .await
        .expect("ddl");
    let prefix = format!("{}:", db.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(
        &file,
        format!(
            "log:\n  dir: data\n  fsync_interval_ms: 20\n\
             sources:\n  - name: pg\n    kind: postgres\n\
             \x20   url: postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable\n\
             \x20   slot: {db}_slot\n    publication: {db}_pub\n\
             \x20   tables:\n      include: [public.customers]\n\
             sinks:\n  - name: cache\n    kind: redis\n    prefix: \"{prefix}\"\n\
             \x20   topics: [\"pg.public.*\"]\n    batch_size: 50\n    parallelism: 2\n",
            db = db.name
        ),
    )
    .expect("pipeline file");

    let child = start(&file);
    wait_equal(&db, &prefix).await;
    db.client
        .batch_execute(
            "UPDATE customers SET name = 'renamed', balance = 0.01 WHERE id = 1;
             DELETE FROM customers WHERE id BETWEEN 2 AND 20;
             INSERT INTO customers VALUES (1000, 'new', 99.99);
             UPDATE customers SET id = 5000 WHERE id = 50;",
        )
        .await
        .expect("changes");
    wait_equal(&db, &prefix).await;
    let out = terminate(child);
    assert!(
        out.contains("sink cache#0: stopped") && out.contains("sink cache#1: stopped"),
        "two workers: {out}"
    );

    // Changes while it is down, then a restart.
    db.client
        .batch_execute(
            "UPDATE customers SET name = 'while down' WHERE id = 30;
             DELETE FROM customers WHERE id = 31;",
        )
        .await
        .expect("changes while down");
    let child = start(&file);
    wait_equal(&db, &prefix).await;
    terminate(child);
    assert_eq!(cached(&prefix).len(), 200 - 19 + 1 - 1);

    let mut c = redis();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .expect("keys");
    let _: () = redis::cmd("DEL").arg(keys).query(&mut c).expect("clean up");
    tributary_tests::pg::drop_slot(&db, &format!("{}_slot", db.name)).await;
    db.drop_db().await;
}

/// A row Redis refuses (its key holds a string, not a hash) goes to the
/// dead-letter topic with the error, and every other row is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_goes_to_the_dead_letter_topic() {
    let db = TestDb::new("redisdlq").await;
    db.client
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2) NOT NULL);
             INSERT INTO customers SELECT g, 'c' || g, g FROM generate_series(1, 50) g;",
        )
        .await
        .expect("ddl");
    let prefix = format!("{}:", db.name);
    let mut c = redis();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}public.customers:7"))
        .arg("not a hash")
        .query(&mut c)
        .expect("set");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(
        &file,
        format!(
            "log:\n  dir: data\n  partitions: 1\n  fsync_interval_ms: 20\n\
             sources:\n  - name: pg\n    kind: postgres\n\
             \x20   url: postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable\n\
             \x20   slot: {db}_slot\n    publication: {db}_pub\n\
             \x20   tables:\n      include: [public.customers]\n\
             sinks:\n  - name: cache\n    kind: redis\n    prefix: \"{prefix}\"\n\
             \x20   topics: [\"pg.public.*\"]\n    on_error: dlq\n",
            db = db.name
        ),
    )
    .expect("pipeline file");
    let child = start(&file);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cached(&prefix).len() < 49 {
        assert!(tokio::time::Instant::now() < deadline, "rows never cached");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    terminate(child);
    assert_eq!(cached(&prefix).len(), 49, "all but the refused row");

    let dead = common::dead_letters(&dir.path().join("data"), "cache");
    assert_eq!(dead.len(), 1, "one dead letter");
    let error = common::header(&dead[0], "tributary.error");
    assert!(error.contains("WRONGTYPE"), "{error}");
    assert_eq!(
        common::header(&dead[0], "tributary.topic"),
        "pg.public.customers"
    );

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .expect("keys");
    let _: () = redis::cmd("DEL").arg(keys).query(&mut c).expect("clean up");
    tributary_tests::pg::drop_slot(&db, &format!("{}_slot", db.name)).await;
    db.drop_db().await;
}

/// Writes a one-partition pipeline into a Redis sink with `on_error`,
/// over a 50-row table whose row 7 Redis will refuse.
async fn refused_row_setup(tag: &str, on_error: &str) -> (TestDb, String, tempfile::TempDir) {
    let db = TestDb::new(tag).await;
    db.client
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2) NOT NULL);
             INSERT INTO customers SELECT g, 'c' || g, g FROM generate_series(1, 50) g;",
        )
        .await
        .expect("ddl");
    let prefix = format!("{}:", db.name);
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}public.customers:7"))
        .arg("not a hash")
        .query(&mut redis())
        .expect("set");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        format!(
            "log:\n  dir: data\n  partitions: 1\n  fsync_interval_ms: 20\n\
             sources:\n  - name: pg\n    kind: postgres\n\
             \x20   url: postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable\n\
             \x20   slot: {db}_slot\n    publication: {db}_pub\n\
             \x20   tables:\n      include: [public.customers]\n\
             sinks:\n  - name: cache\n    kind: redis\n    prefix: \"{prefix}\"\n\
             \x20   topics: [\"pg.public.*\"]\n    on_error: {on_error}\n",
            db = db.name
        ),
    )
    .expect("pipeline file");
    (db, prefix, dir)
}

async fn cleanup(db: TestDb, prefix: &str) {
    let mut c = redis();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .expect("keys");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query(&mut c).expect("clean up");
    }
    tributary_tests::pg::drop_slot(&db, &format!("{}_slot", db.name)).await;
    db.drop_db().await;
}

/// Waits until the cache has `n` rows and keeps them for half a second.
async fn settle_at(prefix: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut since = None;
    loop {
        let now = cached(prefix).len();
        if now == n {
            let t = *since.get_or_insert_with(tokio::time::Instant::now);
            if t.elapsed() > Duration::from_millis(500) {
                return;
            }
        } else {
            since = None;
            assert!(now < n, "{now} rows cached, want {n}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} rows cached, want {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `on_error: stop` pauses the sink at the refused row (rows after it
/// wait); once the cause is fixed, a restart applies it and the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_pauses_at_the_refused_row_and_loses_nothing() {
    let (db, prefix, dir) = refused_row_setup("redisstop", "stop").await;
    let file = dir.path().join("pipeline.yaml");
    let child = start(&file);
    settle_at(&prefix, 6).await;
    let out = terminate(child);
    assert!(out.contains("sink cache: paused"), "{out}");
    assert!(out.contains("WRONGTYPE"), "the error is in status: {out}");
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}public.customers:7"))
        .query(&mut redis())
        .expect("fix");
    let child = start(&file);
    settle_at(&prefix, 50).await;
    terminate(child);
    cleanup(db, &prefix).await;
}

/// `on_error: skip` logs the refused row and goes on; no dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_goes_on_past_the_refused_row() {
    let (db, prefix, dir) = refused_row_setup("redisskip", "skip").await;
    let child = start(&dir.path().join("pipeline.yaml"));
    settle_at(&prefix, 49).await;
    terminate(child);
    assert!(
        common::dead_letters(&dir.path().join("data"), "cache").is_empty(),
        "skip writes no dead letter"
    );
    cleanup(db, &prefix).await;
}
