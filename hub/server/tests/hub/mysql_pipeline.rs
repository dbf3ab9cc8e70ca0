//! PostgreSQL -> log -> MariaDB with `tributary run`: a MariaDB database
//! ends equal to the PostgreSQL one, row by row (values compared as text
//! both sides print the same way), through a snapshot, inserts, updates
//! (a key change, unchanged TOAST values), deletes, a truncate, a new
//! column, a value MariaDB refuses (to the dead-letter topic) and a
//! SIGKILL in the middle of sink batches.

use std::time::Duration;

use mysql_async::prelude::Queryable as _;
use tributary_tests::mysql::MyDb;
use tributary_tests::pg::{TestDb, texts};

use crate::common::{self, start};

/// `dir/pipeline.yaml`: the tables `include` of `src` into the MariaDB
/// sink `maria` on the database of the same name, one partition, batches
/// of `batch_size`, refused rows to the dead-letter topic.
fn pipeline(
    dir: &std::path::Path,
    src: &TestDb,
    include: &str,
    batch_size: u32,
) -> std::path::PathBuf {
    common::pipeline_file(
        dir,
        &format!(
            "{}{}sinks:\n{}    batch_size: {batch_size}\n    on_error: dlq\n",
            common::log_yaml(Some(1)),
            common::pg_source_yaml(&src.name, include),
            common::mysql_sink_yaml("maria", &src.name, "[\"pg.public.*\"]")
        ),
    )
}

/// The source's rows as text, in id order.
async fn pg_rows(db: &TestDb) -> Vec<String> {
    texts(
        db,
        "SELECT concat_ws('|', id, name, price::text,
                to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), day::text,
                uid::text, encode(raw, 'hex'), flag::int::text, array_to_json(tags)::text,
                meta::text, md5(big), extra)
           FROM items ORDER BY id",
    )
    .await
}

/// The target's rows as the same text; empty while the table is missing.
async fn my_rows(db: &mut MyDb) -> Vec<String> {
    let extra = if db.has_column("items", "extra").await {
        "extra"
    } else {
        "NULL"
    };
    db.conn
        .query(format!(
            "SELECT concat_ws('|', id, name, CAST(price AS CHAR),
                    DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f'), CAST(day AS CHAR), uid,
                    LOWER(HEX(raw)), CAST(flag AS CHAR), tags, meta, MD5(big), {extra})
               FROM items ORDER BY id"
        ))
        .await
        .unwrap_or_default()
}

async fn wait_equal(src: &TestDb, dst: &mut MyDb, what: &str) {
    common::wait_same_rows(
        what,
        async || pg_rows(src).await,
        async || my_rows(dst).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_mariadb_stays_equal() {
    let src = TestDb::new("mysink").await;
    let mut dst = MyDb::named(&src.name).await;
    src.exec(
        "CREATE TABLE items (
                 id int PRIMARY KEY, name varchar(20) NOT NULL, price numeric(12,3),
                 at timestamptz, day date, uid uuid, raw bytea, flag boolean, tags text[],
                 meta jsonb, big text);
             INSERT INTO items SELECT g, 'item ''' || g, g * 1.125,
                 '2024-02-29 12:00:00.000001+00'::timestamptz + g * interval '1 hour',
                 DATE '2024-01-01' + g, md5(g::text)::uuid, decode(md5(g::text), 'hex'), g % 2 = 0,
                 ARRAY['a,b', 'q\"' || g, NULL], jsonb_build_object('n', g),
                 CASE WHEN g % 50 = 0 THEN (SELECT string_agg(md5((g * 1000 + i)::text), '')
                                            FROM generate_series(1, 400) i) END
               FROM generate_series(1, 300) g;
             ALTER TABLE items ADD COLUMN extra text;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = pipeline(
        dir.path(),
        &src,
        "public.items, public.words, public.events",
        400,
    );
    // Keys that differ only in case or accents, and timestamp keys: rows
    // stay apart, and deletes find them.
    src.exec(
            "CREATE TABLE words (w text PRIMARY KEY, n int);
             INSERT INTO words VALUES ('abc', 1), ('ABC', 2), ('résumé', 3), ('resume', 4), ('x ', 5), ('x', 6);
             CREATE TABLE events (at timestamptz PRIMARY KEY, v text);
             INSERT INTO events SELECT '2024-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 day', 'e' || g
               FROM generate_series(1, 5) g;",
        ).await;
    let child = start(&file);
    wait_equal(&src, &mut dst, "snapshot").await;
    let keyed = async |src: &TestDb, dst: &mut MyDb| {
        let mut want = texts(
            src,
            "SELECT w || '=' || n FROM words UNION ALL
             SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '=' || v FROM events",
        )
        .await;
        // Compared in byte order, whatever each server's collation.
        want.sort();
        common::wait_same_rows(
            "keys",
            async || want.clone(),
            async || {
                let mut got: Vec<String> = dst
                    .conn
                    .query(
                        "SELECT CONCAT(w, '=', n) FROM words UNION ALL
                         SELECT CONCAT(DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f'), '=', v) FROM events",
                    )
                    .await
                    .unwrap_or_default();
                got.sort();
                got
            },
        )
        .await;
    };
    keyed(&src, &mut dst).await;
    src.exec(
        "DELETE FROM words WHERE w IN ('ABC', 'résumé', 'x ');
             DELETE FROM events WHERE v = 'e3';
             UPDATE events SET v = 'changed' WHERE v = 'e4';",
    )
    .await;
    keyed(&src, &mut dst).await;
    src.exec(
        "UPDATE items SET name = 'renamed', price = NULL, tags = '{}' WHERE id = 1;
             UPDATE items SET flag = NOT flag WHERE id % 50 = 0; -- big is unchanged TOAST
             UPDATE items SET id = 5000 WHERE id = 51;
             DELETE FROM items WHERE id BETWEEN 2 AND 20;
             INSERT INTO items (id, name) VALUES (1000, 'new');
             ALTER TABLE items ADD COLUMN IF NOT EXISTS extra2 int;
             UPDATE items SET extra = 'added' WHERE id = 1000;",
    )
    .await;
    wait_equal(&src, &mut dst, "changes").await;

    // A value MariaDB cannot hold (a year past 9999) goes to the
    // dead-letter topic; the rows around it are written.
    src.exec(
            "INSERT INTO items (id, name, at) VALUES (2000, 'before', now()), (2001, 'far', '12000-01-01'),
                 (2002, 'after', now());",
        ).await;
    common::eventually_within(
        Duration::from_secs(30),
        "rows around the refused one",
        async || -> Option<u64> {
            dst.conn
                .query_first("SELECT COUNT(*) FROM items WHERE id IN (2000, 2002)")
                .await
                .expect("count")
        },
        |n| *n == Some(2),
    )
    .await;
    let dead = common::wait_dead_letters(&dir.path().join("data"), "maria").await;
    assert_eq!(dead.len(), 1, "one dead letter");
    let error = common::header(&dead[0], "tributary.error");
    assert!(error.contains("items") && error.contains("9999"), "{error}");
    src.exec("DELETE FROM items WHERE id = 2001").await;

    // SIGKILL mid-batches, changes while down, restart.
    src.exec("INSERT INTO items (id, name) SELECT g, 'bulk' FROM generate_series(10000, 29999) g")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n: Option<u64> = dst
            .conn
            .query_first("SELECT COUNT(*) FROM items WHERE id >= 10000")
            .await
            .expect("count");
        if n.unwrap_or(0) > 0 {
            assert!(n < Some(20_000), "killed too late to be mid-way");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bulk never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    common::kill(child);
    src.exec(
        "UPDATE items SET name = 'while down' WHERE id % 1000 = 7; TRUNCATE items;
                        INSERT INTO items (id, name) VALUES (1, 'after truncate');",
    )
    .await;
    let child = start(&file);
    wait_equal(&src, &mut dst, "after the kill and a truncate").await;
    common::stop(child);
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// examples/postgres-to-mariadb.yaml as shipped, pointed at a scratch
/// database through its variables: the shop's tables appear in MariaDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mariadb_example_runs() {
    let src = TestDb::new("myexample").await;
    let mut dst = MyDb::named(&src.name).await;
    src.exec(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, since date NOT NULL);
             INSERT INTO customers SELECT g, 'customer ' || g, DATE '2024-01-01' + g
               FROM generate_series(1, 100) g;",
    )
    .await;
    let data = tempfile::tempdir().expect("tempdir");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/postgres-to-mariadb.yaml");
    let slot = format!("{}_slot", src.name);
    let url = format!("mysql://root@127.0.0.1:3306/{}", dst.name);
    let child = common::start_with_env(
        &example,
        &[
            ("TRIBUTARY_DATA", &data.path().display().to_string()),
            ("PGDATABASE", &src.name),
            ("TRIBUTARY_SLOT", &slot),
            ("TRIBUTARY_PUBLICATION", &format!("{}_pub", src.name)),
            ("MYSQL_URL", &url),
        ],
    );
    common::eventually(
        "the example never synced",
        async || -> Vec<(i32, String, String)> {
            dst.conn
                .query("SELECT id, name, CAST(since AS CHAR) FROM customers ORDER BY id")
                .await
                .unwrap_or_default()
        },
        |got| got.len() == 100 && got[41] == (42, "customer 42".into(), "2024-02-12".into()),
    )
    .await;
    common::stop(child);
    tributary_tests::pg::drop_slot(&src, &slot).await;
    src.drop_db().await;
    dst.drop_db().await;
}

/// How many `LOAD DATA` statements the server has run (a global counter:
/// other tests only add to it).
async fn loads(db: &mut MyDb) -> u64 {
    let row: Option<(String, String)> = db
        .conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Com_load'")
        .await
        .expect("status");
    row.and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
}

/// New rows of plain columns are bulk loaded (`LOAD DATA LOCAL`); what a
/// local load would only warn about is not lost: a key already in the
/// target (a replay) ends updated, a value MariaDB cannot hold is refused
/// by name to the dead-letter topic, and text with tabs, newlines,
/// backslashes, quotes and NUL arrives as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rows_are_bulk_loaded_without_losing_what_a_load_would_ignore() {
    let src = TestDb::new("myload").await;
    let mut dst = MyDb::named(&src.name).await;
    src.exec(
        "CREATE TABLE plain (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2),
                 at timestamptz, doc jsonb);
             INSERT INTO plain SELECT g, 'row ' || g || E'\\t\\n\\\\''\"' || chr(1), g * 0.25,
                 '2024-02-29 12:00:00.000001+00'::timestamptz + g * interval '1 minute',
                 jsonb_build_object('n', g, 's', E'a\\tb')
               FROM generate_series(1, 2000) g;",
    )
    .await;
    // A row the target already holds, stale: as after a replay.
    dst.conn
        .query_drop(
            "CREATE TABLE plain (id INT NOT NULL PRIMARY KEY, name LONGTEXT NOT NULL,
                 price DECIMAL(10,2), at DATETIME(6), doc LONGTEXT) DEFAULT CHARSET=utf8mb4;
             INSERT INTO plain VALUES (7, 'stale', 0, NULL, NULL)",
        )
        .await
        .expect("target table");
    let before = loads(&mut dst).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = pipeline(dir.path(), &src, "public.plain", 500);
    let pg = async |src: &TestDb| -> Vec<String> {
        texts(
            src,
            "SELECT concat_ws('|', id, encode(convert_to(name, 'UTF8'), 'hex'), price::text,
                    to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), doc->>'s')
               FROM plain ORDER BY id",
        )
        .await
    };
    let my = async |dst: &mut MyDb| -> Vec<String> {
        dst.conn
            .query(
                "SELECT concat_ws('|', id, LOWER(HEX(name)), CAST(price AS CHAR),
                        DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f'), JSON_UNQUOTE(JSON_EXTRACT(doc, '$.s')))
                   FROM plain ORDER BY id",
            )
            .await
            .unwrap_or_default()
    };
    let child = start(&file);
    common::wait_same_rows(
        "snapshot",
        async || pg(&src).await,
        async || my(&mut dst).await,
    )
    .await;
    // Streamed new rows, one MariaDB refuses, and an update.
    src.exec(
            "INSERT INTO plain (id, name, at) SELECT g, 'new ' || g, now() FROM generate_series(3000, 3999) g;
             INSERT INTO plain (id, name, at) VALUES (4000, 'far', '12000-01-01');
             INSERT INTO plain (id, name) VALUES (4001, 'after');
             UPDATE plain SET name = 'updated' WHERE id = 1;",
        ).await;
    let dead = common::wait_dead_letters(&dir.path().join("data"), "maria").await;
    assert_eq!(dead.len(), 1, "one dead letter");
    let error = common::header(&dead[0], "tributary.error");
    assert!(error.contains("plain") && error.contains("9999"), "{error}");
    src.exec("DELETE FROM plain WHERE id = 4000").await;
    common::wait_same_rows(
        "changes",
        async || pg(&src).await,
        async || my(&mut dst).await,
    )
    .await;
    assert!(
        loads(&mut dst).await > before,
        "new rows went through LOAD DATA"
    );
    common::stop(child);
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// `on_error: dlq` on a MariaDB source: a table whose schema change the
/// registry refuses sends its rows events to `<source>.dlq` (as the
/// binlog's bytes, with table, position and error), while the other
/// table keeps flowing and the source keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_rows_that_cannot_be_captured_go_to_dead_letters() {
    let mut src = MyDb::new("mydlq").await;
    src.exec(
        "CREATE TABLE a (id INT PRIMARY KEY, v INT);
         CREATE TABLE b (id INT PRIMARY KEY, v TEXT);
         INSERT INTO a VALUES (1, 1); INSERT INTO b VALUES (1, 'one');",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}sources:\n  - name: my\n    kind: mysql\n\
             \x20   url: mysql://root@127.0.0.1:3306/\n\
             \x20   server_id: {}\n    on_error: dlq\n\
             \x20   tables:\n      include: [\"{}.*\"]\n",
            common::log_yaml(None),
            common::SERVER_YAML,
            44000 + std::process::id() % 10000,
            src.name,
        ),
    );
    let hub = common::run_serving(&file, &[], None);
    let data = dir.path().join("data");
    let b_topic = format!("my.{}.b", src.name);
    let has_b = |id: i64| {
        let out = common::tributary_on(&data, &["consume", &b_topic, "--from-beginning"], None);
        // An unknown topic (not created yet) is an error.
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).lines().any(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["value"]["after"]["id"] == id)
            })
    };
    common::eventually("the snapshot", async || has_b(1), |x| *x).await;
    // A NOT NULL column without a default in Avro: refused by the registry.
    src.exec(
        "ALTER TABLE a ADD COLUMN w INT NOT NULL DEFAULT 5;
         INSERT INTO a (id, v) VALUES (100, 100);
         INSERT INTO b VALUES (2, 'two');",
    )
    .await;
    common::eventually("b flows on", async || has_b(2), |x| *x).await;
    let letters = common::eventually(
        "a dead letter",
        async || common::dead_letter_values(&data, "my"),
        |l| !l.is_empty(),
    )
    .await;
    let l = &letters[0];
    assert_eq!(l["table"], format!("{}.a", src.name), "{l}");
    assert_eq!(l["op"], "c", "{l}");
    assert!(
        l["error"]
            .as_str()
            .is_some_and(|e| e.contains("incompatible")),
        "{l}"
    );
    assert!(
        l["position"].as_str().is_some_and(|p| p.contains(':')),
        "{l}"
    );
    // The row's bytes: id 100 and v 100 as 4-byte little-endian ints.
    assert!(
        l["raw_hex"]
            .as_str()
            .is_some_and(|h| h.contains("64000000")),
        "{l}"
    );
    let status: serde_json::Value = reqwest::get(format!("{}/pipelines", hub.base))
        .await
        .expect("pipelines")
        .json()
        .await
        .expect("json");
    let my = status
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "my"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(my["state"], "running", "{my}");
    hub.stop();
    src.drop_db().await;
}

/// A stored binlog position the server purged (on a MariaDB server of
/// the test's own): under `snapshot: initial` the source stops `failed`
/// before it streams, saying what was lost and how to recover; under
/// `when_needed` it reads the tables again and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_binlog_position_stops_the_source_or_is_read_again() {
    let server = tributary_tests::mysql::PrivateServer::start().await;
    let mut conn = server.connect().await;
    for sql in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO shop.t VALUES (1, 1)",
    ] {
        conn.query_drop(sql).await.expect(sql);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |snapshot: &str| {
        common::pipeline_file(
            dir.path(),
            &format!(
                "{}{}sources:\n  - name: my\n    kind: mysql\n    url: {}\n\
                 \x20   server_id: {}\n    snapshot: {snapshot}\n\
                 \x20   tables:\n      include: [\"shop.*\"]\n",
                common::log_yaml(None),
                common::SERVER_YAML,
                server.url(),
                46000 + std::process::id() % 10000,
            ),
        )
    };
    let data = dir.path().join("data");
    let has = |id: i64| {
        let out = common::tributary_on(&data, &["consume", "my.shop.t", "--from-beginning"], None);
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).lines().any(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["value"]["after"]["id"] == id)
            })
    };
    let state = async |base: &str| -> serde_json::Value {
        let all: serde_json::Value = reqwest::get(format!("{base}/pipelines"))
            .await
            .expect("pipelines")
            .json()
            .await
            .expect("json");
        all.as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "my"))
            .cloned()
            .unwrap_or_default()
    };
    let file = write("initial");
    let hub = common::run_serving(&file, &[], None);
    common::eventually("the snapshot", async || has(1), |x| *x).await;
    common::eventually(
        "streaming",
        async || state(&hub.base).await,
        |s| s["phase"] == "streaming",
    )
    .await;
    hub.stop();

    // Changes the source never read, then their binlog file purged.
    for sql in ["INSERT INTO shop.t VALUES (2, 2)", "FLUSH BINARY LOGS"] {
        conn.query_drop(sql).await.expect(sql);
    }
    let newest = tributary_tests::mysql::master_position(&mut conn).await;
    // The server keeps a file its binlog readers still use: the
    // stopped source's dump thread goes away a moment later.
    common::eventually(
        "the older binlog purged",
        async || {
            conn.query_drop(format!("PURGE BINARY LOGS TO '{}'", newest.file))
                .await
                .expect("purge");
            let logs: Vec<(String, u64)> = conn.query("SHOW BINARY LOGS").await.expect("logs");
            logs.first().map(|(f, _)| f.clone())
        },
        |oldest| oldest.as_deref() == Some(newest.file.as_str()),
    )
    .await;

    let hub = common::run_serving(&file, &[], None);
    let failed = common::eventually(
        "the source failed",
        async || state(&hub.base).await,
        |s| s["state"] == "failed",
    )
    .await;
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no longer on the server")
            && error.contains("changes since then are lost")
            && error.contains("when_needed"),
        "{failed}"
    );
    assert!(!has(2), "nothing was streamed past the lost position");
    hub.stop();

    let file = write("when_needed");
    let hub = common::run_serving(&file, &[], None);
    common::eventually("read again", async || has(2), |x| *x).await;
    conn.query_drop("INSERT INTO shop.t VALUES (3, 3)")
        .await
        .expect("insert");
    common::eventually("streamed after", async || has(3), |x| *x).await;
    assert_eq!(state(&hub.base).await["state"], "running");
    hub.stop();
}
