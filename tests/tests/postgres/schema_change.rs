//! Table changes mid-stream: each new shape (ADD COLUMN, DROP COLUMN, a
//! type widened) registers a new schema version before the first record
//! that has it, and every record reads back with the schema its header
//! names. A change the subject's compatibility forbids stops the source
//! with a message naming the table, and nothing after it is acknowledged.

use std::collections::BTreeMap;
use std::time::Duration;

use apache_avro::types::Value;
use tributary_connector_postgres::source::{SnapshotMode, prepare, topic_name};
use tributary_log::Log;
use tributary_schemas::Registry;

use super::{TestDb, confirmed_flush_lsn, current_lsn};

/// The `after` image of every record, by id, with the schema id each
/// record names.
fn records(log: &Log, registry: &Registry) -> BTreeMap<i32, (u32, BTreeMap<String, Value>)> {
    let t = log
        .topic(&topic_name("pg", "public", "items"))
        .expect("topic");
    let mut out = BTreeMap::new();
    for p in t.partitions() {
        let mut offset = 0;
        while offset < p.high_watermark() {
            for batch in p.read(offset, 1 << 20).expect("read") {
                for r in batch.records().expect("records").iter() {
                    let r = r.expect("record");
                    if r.offset < offset {
                        continue;
                    }
                    offset = r.offset + 1;
                    let value = r.value.expect("value");
                    let id = u32::from_be_bytes(value[1..5].try_into().expect("id"));
                    let json = registry.schema_by_id(id).expect("schema by id");
                    let schema = apache_avro::Schema::parse_str(&json).expect("parse");
                    #[allow(deprecated)]
                    let v = apache_avro::from_avro_datum(&schema, &mut &value[5..], None)
                        .expect("decode with its own schema");
                    let Value::Record(fields) = v else {
                        panic!("record")
                    };
                    let after = fields
                        .into_iter()
                        .find(|(k, _)| k == "after")
                        .map(|(_, v)| v)
                        .expect("after");
                    let Value::Union(_, after) = after else {
                        panic!("union")
                    };
                    let Value::Record(cols) = *after else {
                        panic!("after record")
                    };
                    let cols: BTreeMap<String, Value> = cols.into_iter().collect();
                    let key = match cols.get("id") {
                        Some(Value::Int(i)) => *i,
                        other => panic!("id {other:?}"),
                    };
                    out.insert(key, (id, cols));
                }
            }
        }
    }
    out
}

fn column(cols: &BTreeMap<String, Value>, name: &str) -> Option<Value> {
    cols.get(name).map(|v| match v {
        Value::Union(_, inner) => (**inner).clone(),
        other => other.clone(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_changes_register_new_versions_in_order() {
    let db = TestDb::new("ddl").await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, a text)")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = tributary_tests::pg_stream_config(&db.name, "items", 2, SnapshotMode::Never);
    prepare(&db.client, &cfg).await.expect("prepare");
    let (stop_tx, task) = tributary_tests::pg::spawn_source(&cfg, &log, registry.clone());

    for step in [
        "INSERT INTO items VALUES (1, 'one')",
        "ALTER TABLE items ADD COLUMN b int; INSERT INTO items VALUES (2, 'two', 2)",
        "ALTER TABLE items DROP COLUMN a; INSERT INTO items VALUES (3, 3)",
        "ALTER TABLE items ALTER COLUMN b TYPE bigint; INSERT INTO items VALUES (4, 4000000000)",
        // Rows on both sides of an ALTER inside one transaction.
        "INSERT INTO items VALUES (5, 5); ALTER TABLE items ADD COLUMN c text;
         INSERT INTO items VALUES (6, 6, 'six')",
    ] {
        db.client.batch_execute(step).await.expect(step);
    }
    let end = current_lsn(&db).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while confirmed_flush_lsn(&db, &cfg.slot).await < end {
        if task.is_finished() {
            for v in registry
                .versions("pg.public.items-value")
                .expect("versions")
            {
                let sv = registry
                    .version(
                        "pg.public.items-value",
                        tributary_schemas::registry::VersionSel::Number(v),
                    )
                    .expect("version");
                eprintln!("v{v}: {}", sv.schema);
            }
            panic!("the source stopped: {:?}", task.await);
        }
        assert!(tokio::time::Instant::now() < deadline, "slot stuck");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let recs = records(&log, &registry);
    assert_eq!(recs.len(), 6);
    let versions = registry
        .versions("pg.public.items-value")
        .expect("versions");
    assert_eq!(versions.len(), 5, "one version per shape");
    let (id1, r1) = &recs[&1];
    let (id2, r2) = &recs[&2];
    let (id3, r3) = &recs[&3];
    let (id4, r4) = &recs[&4];
    assert!(
        id1 < id2 && id2 < id3 && id3 < id4,
        "each shape its own schema"
    );
    assert_eq!(column(r1, "a"), Some(Value::String("one".into())));
    assert_eq!(column(r1, "b"), None, "row 1 predates column b");
    assert_eq!(column(r2, "b"), Some(Value::Int(2)));
    assert_eq!(column(r3, "a"), None, "column a is gone");
    assert_eq!(column(r3, "b"), Some(Value::Int(3)));
    assert_eq!(column(r4, "b"), Some(Value::Long(4_000_000_000)));
    let (id5, r5) = &recs[&5];
    let (id6, r6) = &recs[&6];
    assert!(
        id4 == id5 && id5 < id6,
        "the row before the ALTER keeps its shape"
    );
    assert_eq!(column(r5, "b"), Some(Value::Long(5)));
    assert_eq!(column(r5, "c"), None);
    assert_eq!(column(r6, "c"), Some(Value::String("six".into())));

    // bigint to text: not readable by readers of the old schema under the
    // default BACKWARD compatibility. The source stops, says why, and the
    // slot keeps the change for after the fix.
    let before = confirmed_flush_lsn(&db, &cfg.slot).await;
    db.exec("ALTER TABLE items ALTER COLUMN b TYPE text; INSERT INTO items VALUES (7, 'seven')")
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the source stops")
        .expect("join");
    let err = ended.expect_err("incompatible schema");
    let msg = err.to_string();
    assert!(
        msg.contains("pg.public.items") && msg.to_lowercase().contains("compatib"),
        "{msg}"
    );
    assert_eq!(
        confirmed_flush_lsn(&db, &cfg.slot).await,
        before,
        "nothing after the change is acknowledged"
    );
    assert_eq!(records(&log, &registry).len(), 6, "row 7 is not written");
    let _ = stop_tx.send(true);
    super::drop_slot(&db, &cfg.slot).await;
    db.drop_db().await;
}
