//! Snapshot while writing: rows in the table when the slot is created
//! arrive as `op: r`, rows committed during and after the snapshot arrive
//! from the stream, and every row arrives exactly once.

use std::collections::HashMap;
use std::time::Duration;

use tributary_connector_postgres::source::{SnapshotMode, StreamSource, prepare, topic_name};
use tributary_core::{Datum, Op, SnapshotFlag};
use tributary_log::Log;
use tributary_schemas::writer::EventWriter;
use tributary_schemas::{Connector, EventSchema, Registry};

use super::{TestDb, connect};

const BEFORE: i32 = 20_000;
const DURING: i32 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_while_writing_gives_every_row_once() {
    let db = TestDb::new("snap").await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO items SELECT g, 'before ' || g FROM generate_series(1, {BEFORE}) g;"
        ))
        .await
        .expect("ddl");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = tributary_tests::pg_stream_config(&db.name, "items", 3, SnapshotMode::Initial);
    let sql = connect(&db.name).await;
    prepare(&sql, &cfg).await.expect("prepare");
    // Writes that race the slot's creation and the snapshot.
    let writer_client = connect(&db.name).await;
    let writes = tokio::spawn(async move {
        for i in 0..DURING {
            let id = 100_000 + i;
            writer_client
                .batch_execute(&format!("INSERT INTO items VALUES ({id}, 'during {id}')"))
                .await
                .expect("insert");
        }
    });
    let mut source = StreamSource::new(
        cfg.clone(),
        log.clone(),
        EventWriter::new(log.clone(), registry),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { source.run(stop_rx).await });
    writes.await.expect("writes");

    let want = (BEFORE + DURING) as u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let topic = loop {
        if let Ok(t) = log.topic(&topic_name("pg", "public", "items"))
            && t.partitions()
                .iter()
                .map(|p| p.high_watermark())
                .sum::<u64>()
                >= want
        {
            break t;
        }
        assert!(!task.is_finished(), "source stopped early");
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows did not all arrive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Settle: nothing more may arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("source ran cleanly");

    let table = tributary_connector_postgres::catalog::table_schema(
        &db.client, &db.name, "public", "items",
    )
    .await
    .expect("catalog");
    let schema = EventSchema::new("pg", Connector::Postgres, table).expect("schema");
    let mut seen: HashMap<i32, Vec<Op>> = HashMap::new();
    let mut last_flags = 0;
    for p in topic.partitions() {
        let mut offset = 0;
        while offset < p.high_watermark() {
            for b in p.read(offset, 1 << 20).expect("read") {
                for r in b.records().expect("records").iter() {
                    let r = r.expect("record");
                    if r.offset < offset {
                        continue;
                    }
                    offset = r.offset + 1;
                    let ev = schema
                        .decode_value(&r.value.expect("value")[5..])
                        .expect("decode");
                    if ev.source.snapshot == SnapshotFlag::Last {
                        last_flags += 1;
                    }
                    let Some(Datum::Int(id)) = ev.after.as_ref().map(|a| a[0].clone()) else {
                        panic!("row without id")
                    };
                    seen.entry(id).or_default().push(ev.op);
                }
            }
        }
    }
    assert_eq!(seen.len() as u64, want, "every row arrived");
    for (id, ops) in &seen {
        assert_eq!(ops.len(), 1, "id {id} arrived {} times: {ops:?}", ops.len());
        if *id <= BEFORE {
            assert_eq!(ops[0], Op::Read, "id {id} was there before the slot");
        }
    }
    assert_eq!(last_flags, 1, "one event closes the snapshot");
    let streamed = seen.values().filter(|o| o[0] == Op::Create).count();
    eprintln!(
        "snapshot rows: {}, streamed rows: {streamed}",
        seen.len() - streamed
    );

    super::drop_slot(&db, &cfg.slot).await;
    db.drop_db().await;
}

/// A slot whose snapshot never finished (here: made by hand, as a crash
/// mid-snapshot leaves it) is not trusted: the source takes the snapshot
/// again instead of streaming past rows it never read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_snapshot_is_taken_again() {
    let db = TestDb::new("resnap").await;
    db.client
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 500) g;",
        )
        .await
        .expect("ddl");
    let cfg = tributary_tests::pg_stream_config(&db.name, "items", 1, SnapshotMode::Initial);
    db.client
        .query_one(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&cfg.slot],
        )
        .await
        .expect("slot left behind");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let sql = connect(&db.name).await;
    prepare(&sql, &cfg).await.expect("prepare");
    let mut source = StreamSource::new(
        cfg.clone(),
        log.clone(),
        EventWriter::new(log.clone(), registry),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { source.run(stop_rx).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(t) = log.topic(&topic_name("pg", "public", "items"))
            && t.partitions()
                .iter()
                .map(|p| p.high_watermark())
                .sum::<u64>()
                >= 500
        {
            break;
        }
        assert!(!task.is_finished(), "source stopped early");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rows before the slot were never read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("source ran cleanly");
    assert!(
        dir.path()
            .join("log/sources/pg")
            .read_dir()
            .expect("marker dir")
            .count()
            == 1,
        "the finished snapshot is recorded"
    );
    super::drop_slot(&db, &cfg.slot).await;
    db.drop_db().await;
}
