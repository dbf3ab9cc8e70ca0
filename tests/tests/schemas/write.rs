//! The validated write path: events are encoded with the registered
//! schema; a bad one is refused with topic, table and field, and nothing
//! of its batch is written.

use tributary_capture::writer::{EventWriter, WriteError};
use tributary_core::{Datum, Op};
use tributary_log::{Log, TopicConfig};
use tributary_schemas::{Connector, EventSchema, Registry, wire};

use super::{event, table};

#[test]
fn valid_events_land_bad_ones_are_refused_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let w = EventWriter::new(log.clone(), registry.clone());
    let schema = EventSchema::new("pg", Connector::Postgres, table()).expect("schema");
    let cfg = TopicConfig {
        partitions: 3,
        ..TopicConfig::default()
    };
    w.register("pg.public.customers", schema.clone(), cfg)
        .expect("register");
    let value_id = registry
        .version(
            "pg.public.customers-value",
            tributary_schemas::registry::VersionSel::Latest,
        )
        .expect("registered")
        .id;

    let events = vec![
        event(1, Op::Create),
        event(2, Op::Create),
        event(1, Op::Delete),
    ];
    let placed = w.append("pg.public.customers", &events).expect("append");
    let topic = log.topic("pg.public.customers").expect("topic");
    let total = |t: &tributary_log::Topic| {
        t.partitions()
            .iter()
            .map(|p| p.high_watermark())
            .sum::<u64>()
    };
    assert_eq!(total(&topic), 4, "three events and one tombstone");
    // Same key, same partition: the create and the delete of id 1.
    assert_eq!(placed[0].partition, placed[2].partition);
    let p = topic.partition(placed[2].partition).expect("partition");
    let batches = p.read(placed[2].offset, 1 << 20).expect("read");
    let recs: Vec<_> = batches
        .iter()
        .flat_map(|b| {
            b.records()
                .expect("records")
                .iter()
                .map(|r| {
                    let r = r.expect("record");
                    (
                        r.offset,
                        r.key.map(<[u8]>::to_vec),
                        r.value.map(<[u8]>::to_vec),
                    )
                })
                .collect::<Vec<_>>()
        })
        .filter(|r| r.0 >= placed[2].offset)
        .collect();
    let (_, key, value) = &recs[0];
    let (id, body) = wire::split(value.as_deref().expect("value")).expect("wire format");
    assert_eq!(id, value_id);
    assert_eq!(schema.decode_value(body).expect("decode"), events[2]);
    let (tomb_offset, tomb_key, tomb_value) = &recs[1];
    assert_eq!(*tomb_offset, placed[2].offset + 1);
    assert_eq!(tomb_key, key, "the tombstone carries the same key");
    assert_eq!(tomb_value, &None);

    // One bad event in a batch: nothing of the batch is written.
    let mut bad = event(5, Op::Create);
    if let Some(row) = bad.after.as_mut() {
        row[1] = Datum::Null; // name is NOT NULL
    }
    let err = w
        .append("pg.public.customers", &[event(4, Op::Create), bad])
        .expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, WriteError::Invalid { .. }));
    assert!(
        msg.contains("pg.public.customers")
            && msg.contains("public.customers")
            && msg.contains("after.name"),
        "{msg}"
    );
    assert_eq!(total(&topic), 4, "nothing written");
}

/// A record's key and value bytes.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// An update that changes the primary key becomes a delete of the old key
/// (with its tombstone) and a create of the new one, as in Debezium.
#[test]
fn key_change_is_delete_tombstone_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let w = EventWriter::new(log.clone(), registry);
    let schema = EventSchema::new("pg", Connector::Postgres, table()).expect("schema");
    let cfg = TopicConfig {
        partitions: 1,
        ..TopicConfig::default()
    };
    w.register("t", schema.clone(), cfg).expect("register");
    let mut ev = event(8, Op::Update);
    let mut before = ev.after.clone().expect("row");
    before[0] = Datum::Long(7);
    ev.before = Some(before);
    let placed = w.append("t", &[ev.clone()]).expect("append");
    let p = log
        .topic("t")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    assert_eq!(p.high_watermark(), 3);
    assert_eq!(
        placed[0].offset, 2,
        "the event is reported where its create landed"
    );
    let batches = p.read(0, 1 << 20).expect("read");
    let recs: Vec<KeyValue> = batches
        .iter()
        .flat_map(|b| {
            b.records()
                .expect("records")
                .iter()
                .map(|r| {
                    let r = r.expect("record");
                    (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let key = |r: &KeyValue| {
        let k = r.0.as_deref().expect("key");
        schema
            .decode_key(&k[wire::HEADER_LEN..])
            .expect("decode key")
    };
    let value = |r: &KeyValue| {
        let v = r.1.as_deref().expect("value");
        schema
            .decode_value(&v[wire::HEADER_LEN..])
            .expect("decode value")
    };
    assert_eq!(key(&recs[0]), vec![Datum::Long(7)]);
    assert_eq!(value(&recs[0]).op, Op::Delete);
    assert_eq!(key(&recs[1]), vec![Datum::Long(7)]);
    assert_eq!(recs[1].1, None, "tombstone for the old key");
    assert_eq!(key(&recs[2]), vec![Datum::Long(8)]);
    let create = value(&recs[2]);
    assert_eq!(
        (create.op, create.before, create.after),
        (Op::Create, None, ev.after)
    );
}
