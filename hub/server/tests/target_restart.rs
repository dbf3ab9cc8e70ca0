//! A sink's target restarted under a running `tributary run`: the sink
//! retries, resumes, and the target ends equal to the source. A test
//! binary of its own (cargo runs test binaries one after another, so no
//! other test sees the servers go away); its tests take turns.

use std::time::Duration;

use tributary_tests::pg::TestDb;

mod common;

/// The tests restart shared servers: one at a time.
static SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Rows keep coming while the servers restart: `batches` inserts of ten
/// rows and an update of an earlier row each, a failed one tried again
/// (a key already there means it had landed).
async fn keep_writing(db_name: String, batches: i32) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut b = 0;
    while b < batches {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = tokio_postgres::connect(
                &format!("host=127.0.0.1 port=5432 user=postgres dbname={db_name}"),
                tokio_postgres::NoTls,
            )
            .await
            .ok()
            .map(|(c, conn)| {
                tokio::spawn(conn);
                c
            });
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

async fn customers(db: &TestDb) -> Vec<String> {
    match db
        .client
        .query(
            "SELECT id || '|' || name || '|' || balance FROM customers ORDER BY id",
            &[],
        )
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(_) => vec!["<no table>".into()],
    }
}

fn redis() -> Option<redis::Connection> {
    redis::Client::open("redis://127.0.0.1:6379")
        .ok()?
        .get_connection()
        .ok()
}

/// Every cached customer as `id|name|balance`, in id order.
fn cached(prefix: &str) -> Vec<String> {
    let Some(mut c) = redis() else {
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
        if redis().is_none() {
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
    let _servers = SERVERS.lock().await;
    let db = TestDb::new("redis_restart").await;
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
             \x20   topics: [\"pg.public.*\"]\n    batch_size: 50\n    timeout_ms: 2000\n",
            db = db.name
        ),
    )
    .expect("pipeline file");
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
    let (status, out) = common::terminate(child);
    assert!(status.success(), "clean stop: {status}\n{out}");
    if let Some(mut c) = redis() {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut c)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut c);
        }
    }
    tributary_tests::pg::drop_slot(&db, &format!("{}_slot", db.name)).await;
    db.drop_db().await;
}

/// PostgreSQL, the source and the target of a replica pipeline, restarted
/// twice mid-stream: the source resumes from its slot, the sink retries
/// its batch on a new connection and resumes from the offsets stored in
/// the target; the replica ends equal, row by row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_target_restarted_mid_stream_ends_equal() {
    let _servers = SERVERS.lock().await;
    let src = TestDb::new("pg_restart_src").await;
    let dst = TestDb::new("pg_restart_dst").await;
    src.client
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2) NOT NULL);
             INSERT INTO customers SELECT g, 'c' || g, g * 1.25 FROM generate_series(1, 200) g;",
        )
        .await
        .expect("ddl");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(
        &file,
        format!(
            "log:\n  dir: data\n  partitions: 2\n  fsync_interval_ms: 20\n\
             sources:\n  - name: pg\n    kind: postgres\n\
             \x20   url: postgres://postgres@127.0.0.1:5432/{src}?sslmode=disable\n\
             \x20   slot: {src}_slot\n    publication: {src}_pub\n\
             \x20   tables:\n      include: [public.*]\n\
             sinks:\n  - name: replica\n    kind: postgres\n\
             \x20   url: postgres://postgres@127.0.0.1:5432/{dst}?sslmode=disable\n\
             \x20   topics: [\"pg.public.*\"]\n    batch_size: 50\n    timeout_ms: 5000\n",
            src = src.name,
            dst = dst.name
        ),
    )
    .expect("pipeline file");
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
    let (status, out) = common::terminate(child);
    assert!(status.success(), "clean stop: {status}\n{out}");
    tributary_tests::pg::drop_slot(&src, &format!("{}_slot", src.name)).await;
    src.drop_db().await;
    dst.drop_db().await;
}
