//! The streaming source end to end against the real server: changes land
//! in the log as Avro events, and the slot is acknowledged only up to
//! what the log holds durably.

use std::time::Duration;

use tributary_connector_postgres::replication::parse_lsn;
use tributary_connector_postgres::source::{SnapshotMode, prepare, topic_name};
use tributary_core::{Datum, Op};
use tributary_log::Log;
use tributary_schemas::Registry;

use super::{TestDb, connect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_land_in_the_log_and_the_slot_follows_durability() {
    let db = TestDb::new("source").await;
    db.exec(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2))",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = tributary_tests::pg_stream_config(&db.name, "customers", 2, SnapshotMode::Never);
    let sql = connect(&db.name).await;
    prepare(&sql, &cfg).await.expect("prepare");
    let (stop_tx, task) = tributary_tests::pg::spawn_source(&cfg, &log, registry.clone());

    db.exec(
        "INSERT INTO customers VALUES (1, 'ada', 10.50), (2, 'bob', NULL), (3, 'cy', 0);
             UPDATE customers SET balance = 99.99 WHERE id = 2;
             DELETE FROM customers WHERE id = 3;",
    )
    .await;
    let end: String = db
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    let end = parse_lsn(&end).expect("lsn");

    let topic = topic_name("pg", "public", "customers");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let t = loop {
        if let Ok(t) = log.topic(&topic)
            && t.partitions()
                .iter()
                .map(|p| p.high_watermark())
                .sum::<u64>()
                >= 6
        {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Decode everything with the table's schema.
    let table = tributary_connector_postgres::catalog::table_schema(
        &db.client,
        &db.name,
        "public",
        "customers",
    )
    .await
    .expect("catalog");
    let schema =
        tributary_schemas::EventSchema::new("pg", tributary_schemas::Connector::Postgres, table)
            .expect("schema");
    let (events, tombstones) = tributary_tests::topic::events(&log, t.name(), &schema);
    assert_eq!(tombstones, 1);
    assert_eq!(events.len(), 5);
    let by_op = |op: Op| events.iter().filter(|e| e.op == op).count();
    assert_eq!(
        (by_op(Op::Create), by_op(Op::Update), by_op(Op::Delete)),
        (3, 1, 1)
    );
    let ada = events
        .iter()
        .find(|e| e.after.as_ref().is_some_and(|a| a[0] == Datum::Int(1)))
        .expect("ada");
    assert_eq!(
        ada.after.as_ref().expect("after")[1],
        Datum::Text("ada".into())
    );
    assert_eq!(
        ada.after.as_ref().expect("after")[2],
        Datum::Decimal {
            unscaled: vec![0x04, 0x1a],
            scale: 2
        }
    );
    let delete = events.iter().find(|e| e.op == Op::Delete).expect("delete");
    let before = delete.before.as_ref().expect("before");
    assert_eq!(before[0], Datum::Int(3));
    assert_eq!(
        before[1],
        Datum::Unavailable,
        "REPLICA IDENTITY DEFAULT: only the key is known"
    );

    // The slot moves once the log is durable, up to (at least) our changes.
    super::wait_confirmed(&db, &cfg.slot, end).await;
    for p in t.partitions() {
        assert_eq!(
            p.durable_watermark(),
            p.high_watermark(),
            "acknowledged only what is durable"
        );
    }

    // A column added mid-stream: a new schema version, registered before
    // the first event with the new shape.
    db.exec(
            "ALTER TABLE customers ADD COLUMN email text; INSERT INTO customers VALUES (4, 'dee', 1, 'd@example.com');",
        ).await;
    let subject = format!("{topic}-value");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while t
        .partitions()
        .iter()
        .map(|p| p.high_watermark())
        .sum::<u64>()
        < 7
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "event after ALTER did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.versions(&subject).expect("versions"), vec![1, 2]);
    let v2 = registry
        .version(&subject, tributary_schemas::registry::VersionSel::Latest)
        .expect("latest");
    let v2_schema = apache_avro::Schema::parse_str(&v2.schema).expect("schema");
    let mut found = false;
    for p in t.partitions() {
        for b in p.read(0, 1 << 20).expect("read") {
            for r in b.records().expect("records").iter() {
                let r = r.expect("record");
                let Some(v) = r.value else { continue };
                let (id, body) = tributary_schemas::wire::split(v).expect("wire");
                if id != v2.id {
                    continue;
                }
                #[allow(deprecated)]
                let value = apache_avro::from_avro_datum(&v2_schema, &mut &body[..], None)
                    .expect("decode v2");
                let text = format!("{value:?}");
                assert!(text.contains("d@example.com"), "{text}");
                found = true;
            }
        }
    }
    assert!(found, "the new row is written with version 2");

    // TRUNCATE becomes one `op: t` event, with no key and no rows.
    db.exec("TRUNCATE customers").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let truncate = loop {
        let p0 = t.partition(0).expect("partition 0");
        let mut hit = None;
        for b in p0.read(0, 1 << 20).expect("read") {
            for r in b.records().expect("records").iter() {
                let r = r.expect("record");
                let Some(v) = r.value else { continue };
                let (_, body) = tributary_schemas::wire::split(v).expect("wire");
                #[allow(deprecated)]
                let value = apache_avro::from_avro_datum(&v2_schema, &mut &body[..], None);
                if let Ok(apache_avro::types::Value::Record(fields)) = value
                    && fields.iter().any(|(n, v)| {
                        n == "op" && *v == apache_avro::types::Value::String("t".into())
                    })
                {
                    hit = Some((r.key.is_none(), fields));
                }
            }
        }
        if let Some(hit) = hit {
            break hit;
        }
        assert!(tokio::time::Instant::now() < deadline, "no truncate event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(truncate.0, "a truncate has no key");
    // Every partition holds a copy of it, a barrier with the same source
    // position, so consumers order it with every partition's rows.
    let mut copies = Vec::new();
    for p in t.partitions() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while p.durable_watermark() < p.high_watermark() {
            assert!(tokio::time::Instant::now() < deadline, "never durable");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut mine = Vec::new();
        for b in p.read(0, 1 << 20).expect("read") {
            for r in b.records().expect("records").iter() {
                let r = r.expect("record");
                if r.header(tributary_capture::BARRIER_HEADER).is_some() {
                    mine.push(
                        r.header(tributary_capture::POSITION_HEADER)
                            .flatten()
                            .map(<[u8]>::to_vec),
                    );
                }
            }
        }
        assert_eq!(mine.len(), 1, "one truncate copy in each partition");
        copies.extend(mine);
    }
    assert!(t.partitions().len() > 1, "a topic of several partitions");
    assert!(
        copies.iter().all(|c| c.is_some() && *c == copies[0]),
        "the copies share one source position: {copies:?}"
    );
    let field = |name: &str| {
        truncate
            .1
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        field("before"),
        Some(apache_avro::types::Value::Union(
            0,
            Box::new(apache_avro::types::Value::Null)
        ))
    );
    assert_eq!(
        field("after"),
        Some(apache_avro::types::Value::Union(
            0,
            Box::new(apache_avro::types::Value::Null)
        ))
    );

    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("source ran cleanly");
    super::drop_slot(&db, &cfg.slot).await;
    db.drop_db().await;
}
