//! PostgreSQL -> log -> PostgreSQL with `tributary run`: a second
//! database ends equal to the first, row by row and type by type, through
//! a snapshot, inserts, updates (a key change, unchanged TOAST values),
//! deletes, truncates, a SIGKILL in the middle of sink batches and a sink
//! connection killed by the server.

use std::time::Duration;

use tributary_tests::pg::{TestDb, wait_same_tables};

use crate::common::{self, start, stop};

/// `src` replicated into `dst` (every table of `public`, 2 partitions) in
/// batches of 500, with the sink's further settings `extra`.
fn pipeline(src: &TestDb, dst: &TestDb, extra: &str) -> String {
    common::replica_yaml(src, dst, &format!("    batch_size: 500\n{extra}"))
}

const ITEMS: &str = "CREATE TABLE items (
    id int PRIMARY KEY, name varchar(20) NOT NULL, price numeric(12,3), tags text[],
    meta jsonb, at timestamptz, day date, uid uuid, raw bytea, flag boolean,
    dur interval, score double precision, big text);
INSERT INTO items SELECT g, 'item ' || g, g * 1.125, ARRAY['a,b', 'q\"' || g, NULL],
    jsonb_build_object('n', g, 's', 'x'), '2024-02-29 12:00:00.000001+00'::timestamptz + g * interval '1 hour',
    DATE '2024-01-01' + g, md5(g::text)::uuid, decode(md5(g::text), 'hex'), g % 2 = 0,
    make_interval(months => g, days => 3, secs => 14706.5), g / 7.0,
    CASE WHEN g % 50 = 0 THEN (SELECT string_agg(md5((g * 1000 + i)::text), '') FROM generate_series(1, 400) i) END
  FROM generate_series(1, 300) g;";

/// Columns of every type the sink sends in COPY's binary format, with
/// NULLs and edge values. Later rows 1000 and 2000 hold values only the
/// text format carries (infinities, a BC date): their group goes as text.
const TYPED: &str = "CREATE TABLE typed (
    id bigint PRIMARY KEY, s smallint, i int, r real, d double precision, tx text,
    v varchar(10), c char(3), j json, jb jsonb, b bytea, day date, ts timestamp,
    tz timestamptz, u uuid, f boolean);
INSERT INTO typed SELECT g, (g * 331 % 65536) - 32768, -g * 1000003, g / 3.0, g / 7.0 - 100,
    E'tab\\there\\nline \\\\ é ' || g, 'v' || g, chr(65 + g % 26),
    json_build_object('g', g, 'a', json_build_array(1, 'x')), jsonb_build_object('n', g),
    decode(lpad(to_hex(g), 8, '0') || '00ff', 'hex'), DATE '1999-12-31' + (g - 100) * 37,
    TIMESTAMP '2000-01-01 00:00:00' + (g - 100) * interval '13 days 1.000001 seconds',
    TIMESTAMPTZ '1970-01-01 00:00:00.5+00' + g * interval '101 days', md5(g::text)::uuid, g % 3 = 0
  FROM generate_series(1, 200) g;
UPDATE typed SET s = NULL, i = NULL, r = NULL, d = NULL, tx = NULL, v = NULL, c = NULL, j = NULL,
    jb = NULL, b = NULL, day = NULL, ts = NULL, tz = NULL, u = NULL, f = NULL WHERE id % 7 = 0;
UPDATE typed SET r = '-Infinity', d = 'NaN', day = '9999-12-31', ts = '9999-12-31 23:59:59.999999',
    tz = '0001-01-01 00:00:00+00' WHERE id = 200;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_follows_another_through_kills() {
    let src = TestDb::new("pgsink_src").await;
    let dst = TestDb::new("pgsink_dst").await;
    src.client.batch_execute(ITEMS).await.expect("source table");
    src.client.batch_execute(TYPED).await.expect("typed table");
    src.exec(
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);
             INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(dir.path(), &pipeline(&src, &dst, "    parallelism: 2\n"));

    // Snapshot, then changes of every kind.
    let child = start(&file);
    wait_same_tables(&src, &dst, &["items", "notes", "typed"]).await;
    src.exec(
            "UPDATE typed SET tx = tx || E'\\r', jb = jb || '{\"u\": 1}', tz = tz + interval '1 microsecond' WHERE id % 3 = 0;
             UPDATE typed SET id = id + 500 WHERE id % 10 = 1;
             DELETE FROM typed WHERE id % 10 = 2;
             INSERT INTO typed (id, tx, ts) VALUES (2000, 'new', 'infinity');
             INSERT INTO typed (id, r, d, day, ts, tz) VALUES
                 (1000, '-Infinity', 'NaN', '0044-03-15 BC', 'infinity', '-infinity');
             UPDATE items SET name = 'renamed', price = NULL, tags = '{}' WHERE id = 1;
             UPDATE items SET flag = NOT flag WHERE id % 50 = 0; -- big is unchanged TOAST
             UPDATE items SET id = 5000 WHERE id = 51;
             DELETE FROM items WHERE id BETWEEN 2 AND 20;
             INSERT INTO items (id, name, score) VALUES (1000, 'new', 'NaN'), (1001, 'inf', '-Infinity');
             UPDATE items SET name = 'twice' WHERE id = 1000;
             DELETE FROM notes WHERE id > 90;",
        ).await;
    wait_same_tables(&src, &dst, &["items", "notes", "typed"]).await;

    // SIGKILL while the sink is part-way through many batches.
    src.exec("INSERT INTO notes SELECT g, repeat('x', 200) FROM generate_series(1000, 40999) g;")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = dst
            .client
            .query_one("SELECT count(*) FROM notes", &[])
            .await
            .expect("count")
            .get(0);
        if n > 1000 {
            assert!(n < 40090, "killed too late to be mid-way ({n} rows)");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "notes never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    common::kill(child);
    src.exec("UPDATE notes SET body = 'after the kill' WHERE id % 1000 = 7")
        .await;
    let child = start(&file);
    wait_same_tables(&src, &dst, &["items", "notes"]).await;

    // The server ends the sink's connections: the sink reconnects.
    let killed: i64 = src
        .client
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND application_name = 'tributary-sink-replica') k",
            &[&dst.name],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed >= 1, "the sink holds connections");
    src.exec(
        "UPDATE items SET meta = '{\"after\": \"terminate\"}' WHERE id < 100;
             INSERT INTO notes VALUES (-1, 'after terminate');",
    )
    .await;
    wait_same_tables(&src, &dst, &["items", "notes"]).await;
    stop(child);

    // Offsets are kept with the data.
    let stored: i64 = dst
        .client
        .query_one(
            "SELECT count(*) FROM tributary_offsets WHERE sink = 'replica'",
            &[],
        )
        .await
        .expect("offsets")
        .get(0);
    assert_eq!(stored, 6, "three topics of two partitions");
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// Truncates are applied in their place, a column the source gains is
/// added, and a row the target refuses (an existing table's CHECK) goes
/// to the dead-letter topic with the database's words while every other
/// row is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncates_new_columns_and_refused_rows() {
    let src = TestDb::new("pgsink_trunc_src").await;
    let dst = TestDb::new("pgsink_trunc_dst").await;
    src.exec(
        "CREATE TABLE stock (id int PRIMARY KEY, qty int NOT NULL);
             INSERT INTO stock SELECT g, g FROM generate_series(1, 100) g;
             UPDATE stock SET qty = -1 WHERE id = 40;",
    )
    .await;
    // An existing target with a rule the source does not have, holding a
    // stale row the snapshot must overwrite (a bulk insert finds its key
    // taken and goes through the upsert).
    dst.exec(
        "CREATE TABLE stock (id int PRIMARY KEY, qty int NOT NULL CHECK (qty >= 0));
             INSERT INTO stock VALUES (7, 999);",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    // One partition (ordering over partitions: see
    // `a_truncate_is_ordered_with_every_partition`).
    let yaml =
        pipeline(&src, &dst, "    on_error: dlq\n").replace("partitions: 2", "partitions: 1");
    let file = common::pipeline_file(dir.path(), &yaml);
    let child = start(&file);
    common::eventually(
        "rows never arrived",
        async || -> i64 {
            dst.client
                .query_one("SELECT count(*) FROM stock", &[])
                .await
                .expect("count")
                .get(0)
        },
        |n| *n == 99,
    )
    .await;
    let stale: i32 = dst
        .client
        .query_one("SELECT qty FROM stock WHERE id = 7", &[])
        .await
        .expect("row 7")
        .get(0);
    assert_eq!(stale, 7, "the stale row is overwritten");
    let dead = common::wait_dead_letters(&dir.path().join("data"), "replica").await;
    assert_eq!(dead.len(), 1, "one dead letter");
    let error = common::header(&dead[0], "tributary.error");
    assert!(
        error.contains("stock_qty_check") && error.contains("public.stock"),
        "the database's words, naming the table: {error}"
    );

    src.exec(
        "UPDATE stock SET qty = 0 WHERE id = 40;
             TRUNCATE stock;
             INSERT INTO stock SELECT g, g FROM generate_series(500, 520) g;
             ALTER TABLE stock ADD COLUMN note text;
             INSERT INTO stock VALUES (600, 6, 'with a note');",
    )
    .await;
    wait_same_tables(&src, &dst, &["stock"]).await;
    stop(child);
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// A write that hangs (a lock held on the target table) is abandoned
/// after `timeout_ms` and tried again on a new connection; once the lock
/// goes, the rows arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_write_times_out_and_is_retried() {
    let src = TestDb::new("pgsink_timeout_src").await;
    let dst = TestDb::new("pgsink_timeout_dst").await;
    src.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g;",
    )
    .await;
    dst.exec("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(dir.path(), &pipeline(&src, &dst, "    timeout_ms: 300\n"));
    let child = start(&file);
    wait_same_tables(&src, &dst, &["t"]).await;
    // Hold a lock that blocks every write to the target table (taken once
    // the source streams: creating its slot waits for open transactions).
    let locker = tributary_tests::pg::connect(&dst.name).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    src.exec("INSERT INTO t SELECT g, 'later' FROM generate_series(11, 20) g")
        .await;
    // Each abandoned attempt leaves a backend waiting on the lock.
    common::eventually_within(
        Duration::from_secs(30),
        "the write was never tried again (backends waiting)",
        async || -> i64 {
            src.client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1
                       AND application_name = 'tributary-sink-replica' AND wait_event_type = 'Lock'",
                    &[&dst.name],
                )
                .await
                .expect("activity")
                .get(0)
        },
        |waiting| *waiting >= 2,
    )
    .await;
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    wait_same_tables(&src, &dst, &["t"]).await;
    stop(child);
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// The connector `name` as `GET /pipelines` of the hub at `base` shows it
/// (null while the hub does not answer).
async fn connector_view(base: &str, name: &str) -> serde_json::Value {
    let p: serde_json::Value = match reqwest::get(format!("{base}/pipelines")).await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    p.as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_default()
}

/// An existing target table without a unique index on the source's key:
/// rows could not be matched (a replay would add them twice), so the
/// sink pauses at once and says what to add; once the index exists,
/// `tributary restart` resumes it from its committed offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_a_key_index_is_refused() {
    let src = TestDb::new("pgsink_nokey_src").await;
    let dst = TestDb::new("pgsink_nokey_dst").await;
    src.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
        .await;
    dst.exec("CREATE TABLE t (id int, v text)").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!("{}{}", common::SERVER_YAML, pipeline(&src, &dst, "")),
    );
    let hub = common::run_serving(&file, &[], None);
    let replica = common::eventually(
        "the sink paused",
        async || connector_view(&hub.base, "replica").await,
        |c| c["state"] == "paused",
    )
    .await;
    assert!(
        replica["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no primary key or unique index on (id)")),
        "{replica}"
    );
    let n: i64 = dst
        .client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "nothing written");
    src.exec("INSERT INTO t VALUES (2, 'while paused')").await;
    dst.exec("ALTER TABLE t ADD PRIMARY KEY (id)").await;
    let out = common::tributary(
        &["restart", "replica", "--hub", &hub.grpc_addr()],
        None,
        &[],
    );
    assert!(common::ok(&out).contains("sink replica: restarting"));
    wait_same_tables(&src, &dst, &["t"]).await;
    let replica = connector_view(&hub.base, "replica").await;
    assert_eq!(replica["state"], "running", "{replica}");
    hub.stop();
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// A truncate is ordered with the rows of every partition, not only of
/// the one it is written to: rows written before it in the same
/// transaction go, rows written after it stay, over four partitions and
/// two sink workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncate_is_ordered_with_every_partition() {
    let src = TestDb::new("pgsink_barrier_src").await;
    let dst = TestDb::new("pgsink_barrier_dst").await;
    src.exec(
        "CREATE TABLE stock (id int PRIMARY KEY, qty int NOT NULL);
             INSERT INTO stock SELECT g, g FROM generate_series(1, 1000) g;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml =
        pipeline(&src, &dst, "    parallelism: 2\n").replace("partitions: 2", "partitions: 4");
    let file = common::pipeline_file(dir.path(), &yaml);
    let child = start(&file);
    wait_same_tables(&src, &dst, &["stock"]).await;
    // A reload: rows before the truncate (in every partition) must go,
    // rows after it must stay.
    src.exec(
        "BEGIN;
             INSERT INTO stock SELECT g, g FROM generate_series(1001, 1500) g;
             UPDATE stock SET qty = 0 WHERE id % 3 = 0;
             TRUNCATE stock;
             INSERT INTO stock SELECT g, -g FROM generate_series(1, 300) g;
             COMMIT;
             BEGIN;
             INSERT INTO stock SELECT g, g FROM generate_series(2000, 2100) g;
             TRUNCATE stock;
             INSERT INTO stock SELECT g, g * 2 FROM generate_series(5000, 5200) g;
             DELETE FROM stock WHERE id % 10 = 0;
             COMMIT;",
    )
    .await;
    wait_same_tables(&src, &dst, &["stock"]).await;
    // Still ordered after a restart in between truncates.
    stop(child);
    src.exec(
        "INSERT INTO stock SELECT g, g FROM generate_series(6000, 6400) g;
             TRUNCATE stock;
             INSERT INTO stock VALUES (1, 1), (2, 2), (3, 3);",
    )
    .await;
    let child = start(&file);
    wait_same_tables(&src, &dst, &["stock"]).await;
    stop(child);
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// A DDL on a table while the snapshot reads it in several chunks waits
/// for the snapshot, which finishes; then the stream carries the new
/// shape. (The snapshot's workers lock every table they will read up
/// front: a worker asking for a table's lock after the DDL queued would
/// wait behind it while the DDL waits for the other workers' locks.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ddl_during_the_snapshot_neither_hangs_it_nor_is_lost() {
    let src = TestDb::new("pgsnapddl_src").await;
    let dst = TestDb::new("pgsnapddl_dst").await;
    src.exec(
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 400000) g;
         ANALYZE big;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}{}    snapshot_chunk_rows: 2000\nsinks:\n{}",
            common::log_yaml(Some(2)),
            common::SERVER_YAML,
            common::pg_source_yaml(&src.name, "public.*"),
            common::pg_sink_yaml("replica", &dst.name, "[\"pg.public.*\"]"),
        ),
    );
    let hub = common::run_serving(&file, &[], None);
    // Once the snapshot has written rows, and before it is done.
    let (phase, records) = common::eventually(
        "the snapshot under way",
        async || {
            let pg = connector_view(&hub.base, "pg").await;
            (
                pg["phase"].as_str().unwrap_or_default().to_string(),
                pg["records"].as_u64().unwrap_or(0),
            )
        },
        |(phase, records)| phase != "connecting" && *records > 0,
    )
    .await;
    assert_eq!(
        phase, "snapshot",
        "the snapshot ended before the DDL ({records} records)"
    );
    tokio::time::timeout(
        Duration::from_secs(60),
        src.client.batch_execute(
            "ALTER TABLE big ADD COLUMN w int; UPDATE big SET w = id WHERE id % 1000 = 0;",
        ),
    )
    .await
    .expect("the DDL waited for the snapshot, not for ever")
    .expect("ddl");
    wait_same_tables(&src, &dst, &["big"]).await;
    hub.stop();
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}
