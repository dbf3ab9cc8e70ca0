//! An interrupted snapshot resumes per table: a table whose read finished
//! is not read again, the unfinished one is read again at a later point,
//! and consumers end with exactly the database's rows: rows the first
//! read had written and that were deleted before the second are deleted
//! in the log too.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tributary_connector_postgres::source::{SnapshotMode, prepare, topic_name};
use tributary_core::{Datum, Op};
use tributary_log::Log;
use tributary_schemas::{Connector, EventSchema, Registry};

use super::{TestDb, connect, current_lsn, wait_confirmed_within};

const SMALL: i32 = 2_000;
const BIG: i32 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_snapshot_resumes_with_unfinished_tables_only() {
    tributary_tests::init_tracing();
    let db = TestDb::new("snapresume").await;
    db.exec(&format!(
        "CREATE TABLE a (id int PRIMARY KEY, v text NOT NULL);
             CREATE TABLE b (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, {SMALL}) g;
             INSERT INTO b SELECT g, repeat('b', 200) || g FROM generate_series(1, {BIG}) g;"
    ))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let mut cfg = tributary_tests::pg_stream_config(&db.name, "a", 2, SnapshotMode::Initial);
    cfg.tables.push(("public".into(), "b".into()));
    // One connection: `a` first, then `b` in 40 chunks.
    cfg.snapshot_workers = 1;
    let sql = connect(&db.name).await;
    prepare(&sql, &cfg).await.expect("prepare");
    let state_path = dir
        .path()
        .join(format!("log/sources/pg/snapshot-{}.json", cfg.slot));
    let b_topic = topic_name("pg", "public", "b");
    let b_rows = |log: &Log| {
        log.topic(&b_topic).map_or(0, |t| {
            t.partitions()
                .iter()
                .map(|p| p.high_watermark())
                .sum::<u64>()
        })
    };

    // First run: stopped dead once `a` is recorded and `b` is under way.
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let (_stop_tx, task) = tributary_tests::pg::spawn_source(&cfg, &log, registry);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = std::fs::read_to_string(&state_path).unwrap_or_default();
        if state.contains("\"a\"") && b_rows(&log) >= 10_000 {
            assert!(
                !state.contains("\"b\""),
                "b finished too early for the test"
            );
            break;
        }
        assert!(!task.is_finished(), "source stopped early");
        assert!(tokio::time::Instant::now() < deadline, "snapshot stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    let _ = task.await;
    let b_first = b_rows(&log);
    assert!(b_first < BIG as u64, "b was interrupted ({b_first} rows)");

    // Changes while the source is down: to the finished table, and to
    // rows of the unfinished one the first read already wrote.
    db.exec(
        "UPDATE a SET v = 'changed' WHERE id = 1;
             DELETE FROM b WHERE id <= 100;
             INSERT INTO b VALUES (1000001, 'new');",
    )
    .await;

    let registry = tributary_tests::reopen_registry(&dir.path().join("registry")).await;
    let (stop_tx, task) = tributary_tests::pg::spawn_source(&cfg, &log, registry);
    let end = current_lsn(&db).await;
    wait_confirmed_within(&db, &cfg.slot, end, Duration::from_secs(120)).await;
    stop_tx.send(true).expect("stop");
    let stats = task.await.expect("join").expect("second run");
    assert_eq!(
        stats.snapshot_rows,
        (BIG - 100 + 1) as u64,
        "only b is read again"
    );

    // `a`: every row read once; the update streamed.
    let a = replay(&db, &log, "a").await;
    assert_eq!(a.reads.len(), SMALL as usize);
    assert!(a.reads.values().all(|&n| n == 1), "a was read once");
    assert_eq!(a.rows.get(&1).map(String::as_str), Some("changed"));
    // `b`: what consumers applying the log in order end with is the table.
    let b = replay(&db, &log, "b").await;
    let want: Vec<i32> = db
        .client
        .query("SELECT id FROM b ORDER BY id", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let got: Vec<i32> = b.rows.keys().copied().collect();
    assert_eq!(got.len(), want.len(), "b's rows in the log");
    assert_eq!(got, want, "b's keys");
    assert_eq!(b.rows.get(&1000001).map(String::as_str), Some("new"));

    super::drop_slot(&db, &cfg.slot).await;
    db.drop_db().await;
}

struct Replayed {
    /// The final row per id, as a consumer applying the log ends up.
    rows: BTreeMap<i32, String>,
    /// `op: r` events per id.
    reads: HashMap<i32, usize>,
}

/// Applies `table`'s topic partition by partition (per-key order).
async fn replay(db: &TestDb, log: &Log, table: &str) -> Replayed {
    let shape =
        tributary_connector_postgres::catalog::table_schema(&db.client, &db.name, "public", table)
            .await
            .expect("catalog");
    let schema = EventSchema::new("pg", Connector::Postgres, shape).expect("schema");
    let mut out = Replayed {
        rows: BTreeMap::new(),
        reads: HashMap::new(),
    };
    let id_of = |row: &[Datum]| match &row[0] {
        Datum::Int(i) => *i,
        other => panic!("id {other:?}"),
    };
    let topic = topic_name("pg", "public", table);
    assert!(log.topic(&topic).is_ok(), "no topic {topic}");
    let (events, _) = tributary_tests::topic::events(log, &topic, &schema);
    for ev in events {
        match (ev.op, &ev.before, &ev.after) {
            (Op::Delete, Some(before), _) => {
                out.rows.remove(&id_of(before));
            }
            (op, _, Some(after)) => {
                let id = id_of(after);
                if op == Op::Read {
                    *out.reads.entry(id).or_default() += 1;
                }
                let Datum::Text(v) = &after[1] else {
                    panic!("v {:?}", after[1])
                };
                out.rows.insert(id, v.clone());
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    out
}
