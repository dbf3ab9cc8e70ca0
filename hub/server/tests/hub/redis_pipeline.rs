//! PostgreSQL -> log -> Redis with `tributary run`: the cache ends equal
//! to the table through a snapshot, updates, deletes, inserts and a
//! restart in between.

use std::collections::BTreeMap;
use std::time::Duration;

use tributary_tests::pg::TestDb;

use crate::common::{
    self, clean_up, customers_db, customers_pipeline, redis, redis_keys, start, stop,
};

/// Every cached row: id -> (name, balance).
fn cached(prefix: &str) -> BTreeMap<i32, (String, String)> {
    let mut c = redis();
    let keys = redis_keys(&format!("{prefix}public.customers:"));
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

/// What is published on `channel`, from a subscriber that listens
/// before this returns.
fn subscribe(channel: &str) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let channel = channel.to_string();
    std::thread::spawn(move || {
        let mut c = redis();
        let mut ps = c.as_pubsub();
        ps.subscribe(&channel).expect("subscribe");
        let _ = ready_tx.send(());
        while let Ok(m) = ps.get_message() {
            if tx.send(m.get_payload().unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("subscribed");
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_the_table_across_a_restart() {
    let (db, prefix) = customers_db("redis", 200, "g * 1.25").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = customers_pipeline(
        dir.path(),
        &db,
        &prefix,
        "",
        "    batch_size: 50\n    parallelism: 2\n",
    );

    let child = start(&file);
    wait_equal(&db, &prefix).await;
    db.exec(
        "UPDATE customers SET name = 'renamed', balance = 0.01 WHERE id = 1;
             DELETE FROM customers WHERE id BETWEEN 2 AND 20;
             INSERT INTO customers VALUES (1000, 'new', 99.99);
             UPDATE customers SET id = 5000 WHERE id = 50;",
    )
    .await;
    wait_equal(&db, &prefix).await;
    let out = stop(child);
    assert!(
        out.contains("sink cache#0: stopped") && out.contains("sink cache#1: stopped"),
        "two workers: {out}"
    );

    // Changes while it is down, then a restart.
    db.exec(
        "UPDATE customers SET name = 'while down' WHERE id = 30;
             DELETE FROM customers WHERE id = 31;",
    )
    .await;
    let child = start(&file);
    wait_equal(&db, &prefix).await;
    stop(child);
    assert_eq!(cached(&prefix).len(), 200 - 19 + 1 - 1);
    clean_up(db, &prefix).await;
}

/// SIGKILL in the middle of a large change, then a restart: the cache
/// ends equal to the table, and every row's effect happened exactly once
/// (each applied row publishes its key in the transaction that writes it
/// and moves the offsets, so a row applied twice would be heard twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_stream_neither_loses_nor_repeats_a_row() {
    let (db, prefix) = customers_db("rediskill", 200, "g * 1.25").await;
    let channel = format!("{}-changes", db.name);
    let rx = subscribe(&channel);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = customers_pipeline(
        dir.path(),
        &db,
        &prefix,
        "",
        &format!("    publish: {channel}\n    batch_size: 100\n    parallelism: 2\n"),
    );
    let mut heard: Vec<String> = Vec::new();
    let child = start(&file);
    wait_equal(&db, &prefix).await;
    db.exec(
            "INSERT INTO customers SELECT g, 'bulk ' || g, g * 0.5 FROM generate_series(10000, 29999) g",
        ).await;
    // Killed as soon as the first rows of the change are heard.
    let keys = format!("{prefix}public.customers:");
    tokio::task::block_in_place(|| {
        loop {
            let k = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the bulk rows never showed");
            let first = k
                .strip_prefix(&keys)
                .and_then(|id| id.parse::<i32>().ok())
                .is_some_and(|id| id >= 10_000);
            heard.push(k);
            if first {
                break;
            }
        }
    });
    common::kill(child);
    let after_kill = cached(&prefix).len();
    eprintln!("killed with {after_kill} of 20200 rows cached");
    assert!(
        after_kill < 20_200,
        "killed before the whole change was cached ({after_kill} rows)"
    );
    let child = start(&file);
    wait_equal(&db, &prefix).await;
    stop(child);
    // What was published in the meantime, until the channel is quiet.
    heard.extend(std::iter::from_fn(|| {
        rx.recv_timeout(Duration::from_secs(2)).ok()
    }));
    let mut times: BTreeMap<String, usize> = BTreeMap::new();
    for k in heard {
        *times.entry(k).or_default() += 1;
    }
    let repeated: Vec<_> = times.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(repeated.is_empty(), "rows applied twice: {repeated:?}");
    let want: Vec<String> = table(&db)
        .await
        .keys()
        .map(|id| format!("{prefix}public.customers:{id}"))
        .collect();
    assert_eq!(
        times.into_keys().collect::<std::collections::BTreeSet<_>>(),
        want.into_iter().collect(),
        "every row published once"
    );
    clean_up(db, &prefix).await;
}

/// A row Redis refuses (its key holds a string, not a hash) goes to the
/// dead-letter topic with the error, and every other row is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_goes_to_the_dead_letter_topic() {
    let (db, prefix, dir) = refused_row_setup("redisdlq", "dlq").await;
    let child = start(&dir.path().join("pipeline.yaml"));
    common::eventually_within(
        Duration::from_secs(30),
        "rows never cached",
        async || cached(&prefix).len(),
        |n| *n >= 49,
    )
    .await;
    stop(child);
    assert_eq!(cached(&prefix).len(), 49, "all but the refused row");

    let dead = common::dead_letters(&dir.path().join("data"), "cache");
    assert_eq!(dead.len(), 1, "one dead letter");
    let error = common::header(&dead[0], "tributary.error");
    assert!(error.contains("WRONGTYPE"), "{error}");
    assert_eq!(
        common::header(&dead[0], "tributary.topic"),
        "pg.public.customers"
    );
    clean_up(db, &prefix).await;
}

/// Writes a one-partition pipeline into a Redis sink with `on_error`,
/// over a 50-row table whose row 7 Redis will refuse.
async fn refused_row_setup(tag: &str, on_error: &str) -> (TestDb, String, tempfile::TempDir) {
    let (db, prefix) = customers_db(tag, 50, "g").await;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}public.customers:7"))
        .arg("not a hash")
        .query(&mut redis())
        .expect("set");
    let dir = tempfile::tempdir().expect("tempdir");
    customers_pipeline(
        dir.path(),
        &db,
        &prefix,
        "  partitions: 1\n",
        &format!("    on_error: {on_error}\n"),
    );
    (db, prefix, dir)
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

/// The offset the sink `cache` stored for partition 0 of the customers'
/// topic, with its rows.
fn stored_offset(prefix: &str) -> Option<u64> {
    redis::cmd("HGET")
        .arg(format!("{prefix}tributary:offsets:cache"))
        .arg("pg.public.customers/0")
        .query(&mut redis())
        .expect("HGET")
}

/// `on_error: stop` pauses the sink at the refused row: its stored
/// offset stops there (rows after it in the same transaction may be in
/// the cache already: applied again later, to the same effect); once the
/// cause is fixed, a restart applies it and the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_pauses_at_the_refused_row_and_loses_nothing() {
    let (db, prefix, dir) = refused_row_setup("redisstop", "stop").await;
    let file = dir.path().join("pipeline.yaml");
    let child = start(&file);
    let (stored, _) = common::eventually_within(
        Duration::from_secs(30),
        "nothing cached",
        async || (stored_offset(&prefix), cached(&prefix).len()),
        |(next, n)| next.is_some() && *n >= 6,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = stop(child);
    assert!(out.contains("sink cache: paused"), "{out}");
    assert!(out.contains("WRONGTYPE"), "the error is in status: {out}");
    let now = stored_offset(&prefix);
    assert_eq!(now, stored, "the offset did not move while paused");
    assert!(
        now.is_some_and(|n| n < 50),
        "the stored offset stops at the refused row: {now:?}"
    );
    assert!(!cached(&prefix).contains_key(&7), "row 7 is not cached");
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}public.customers:7"))
        .query(&mut redis())
        .expect("fix");
    let child = start(&file);
    settle_at(&prefix, 50).await;
    stop(child);
    clean_up(db, &prefix).await;
}

/// `on_error: skip` logs the refused row and goes on; no dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_goes_on_past_the_refused_row() {
    let (db, prefix, dir) = refused_row_setup("redisskip", "skip").await;
    let child = start(&dir.path().join("pipeline.yaml"));
    settle_at(&prefix, 49).await;
    stop(child);
    assert!(
        common::dead_letters(&dir.path().join("data"), "cache").is_empty(),
        "skip writes no dead letter"
    );
    clean_up(db, &prefix).await;
}

/// Every JSON row under `prefix`: id -> the object.
fn json_rows(prefix: &str) -> BTreeMap<String, serde_json::Value> {
    let mut c = redis();
    redis_keys(&format!("{prefix}docs:"))
        .into_iter()
        .filter_map(|k| {
            let v: String = redis::cmd("GET").arg(&k).query(&mut c).ok()?;
            let doc = serde_json::from_str(&v).unwrap_or_else(|e| panic!("{k}: {e}: {v}"));
            Some((k, doc))
        })
        .collect()
}

/// The table as the JSON rows should show it: key -> object of texts.
async fn json_table(db: &TestDb, prefix: &str) -> BTreeMap<String, serde_json::Value> {
    db.client
        .query("SELECT id, name, note, length(big)::text FROM docs", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| {
            let id: i32 = r.get(0);
            let note: Option<String> = r.get(2);
            (
                format!("{prefix}docs:{id}"),
                serde_json::json!({
                    "id": id.to_string(),
                    "name": r.get::<_, String>(1),
                    "note": note,
                    "big": r.get::<_, Option<String>>(3),
                }),
            )
        })
        .collect()
}

/// A key template, rows as JSON, a TTL and invalidation messages: the
/// JSON objects follow the table (a row whose big value did not change
/// keeps it), every written key expires, and each change publishes its
/// key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rows_with_a_key_template_ttl_and_invalidation() {
    let db = TestDb::new("redisjson").await;
    db.exec(
        "CREATE TABLE docs (id int PRIMARY KEY, name text NOT NULL, note text, big text);
             INSERT INTO docs SELECT g, 'doc ' || g, NULL,
                 (SELECT string_agg(md5((g * 1000 + i)::text), '') FROM generate_series(1, 300) i)
               FROM generate_series(1, 20) g;",
    )
    .await;
    let prefix = format!("{}:", db.name);
    let channel = format!("{}-changes", db.name);
    // Invalidation messages, collected by a subscriber.
    let rx = subscribe(&channel);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}sinks:\n{}\
             \x20   key: \"{{table}}:{{id}}\"\n    format: json\n    ttl_seconds: 3600\n\
             \x20   publish: {channel}\n",
            common::log_yaml(None),
            common::pg_source_yaml(&db.name, "public.docs"),
            common::redis_sink_yaml("cache", &prefix, "[\"pg.public.*\"]")
        ),
    );
    let child = start(&file);
    let wait = async |what: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let want = json_table(&db, &prefix).await;
            let got: BTreeMap<String, serde_json::Value> = json_rows(&prefix)
                .into_iter()
                .map(|(k, mut v)| {
                    // The big text by its length, as the table query has it.
                    if let Some(b) = v.get("big").and_then(|b| b.as_str()) {
                        v["big"] = serde_json::json!(b.len().to_string());
                    }
                    (k, v)
                })
                .collect();
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: the JSON rows never matched the table:\n{got:?}\n{want:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    wait("snapshot").await;
    db.exec(
        "UPDATE docs SET note = 'noted' WHERE id <= 5; -- big is unchanged TOAST
             DELETE FROM docs WHERE id = 20;
             INSERT INTO docs VALUES (100, 'new', 'n', NULL);",
    )
    .await;
    wait("changes").await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{prefix}docs:3"))
        .query(&mut redis())
        .expect("ttl");
    assert!(ttl > 3000 && ttl <= 3600, "keys expire: TTL {ttl}");
    let heard: Vec<String> = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(5)).ok())
        .take_while(|k| k != &format!("{prefix}docs:100"))
        .collect();
    assert!(
        heard.contains(&format!("{prefix}docs:20")) && heard.contains(&format!("{prefix}docs:5")),
        "the changed keys were published: {heard:?}"
    );
    // A truncate clears the table's keys, and only them.
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}other:1"))
        .arg("x")
        .query(&mut redis())
        .expect("set");
    db.exec("TRUNCATE docs").await;
    wait("truncate").await;
    let other: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}other:1"))
        .query(&mut redis())
        .expect("get");
    assert_eq!(other.as_deref(), Some("x"), "another table's key stays");
    stop(child);
    clean_up(db, &prefix).await;
}
