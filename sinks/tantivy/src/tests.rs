use std::sync::Arc;

use tributary_core::{
    ChangeEvent, Column, ColumnType, Datum, Op, Position, Sink, SinkError, SinkRecord,
    SnapshotFlag, SourceInfo, TableSchema,
};

use super::*;

fn table() -> Arc<TableSchema> {
    let col = |name: &str, ty: ColumnType| Column {
        name: name.into(),
        ty,
        nullable: true,
        may_be_unavailable: true,
        db_type: String::new(),
    };
    Arc::new(TableSchema {
        database: "db".into(),
        schema: "public".into(),
        table: "people".into(),
        columns: vec![
            col("id", ColumnType::Int),
            col("name", ColumnType::Text),
            col("note", ColumnType::Text),
            col(
                "balance",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                    specials: false,
                },
            ),
            col("born", ColumnType::Date),
        ],
        key: vec![0],
    })
}

fn source() -> Arc<SourceInfo> {
    Arc::new(SourceInfo {
        connector: "postgresql".into(),
        version: "0".into(),
        name: "pg".into(),
        ts_ms: 0,
        snapshot: SnapshotFlag::False,
        db: "db".into(),
        schema: Some("public".into()),
        table: "people".into(),
        position: Position::Postgres {
            lsn: 0,
            tx_id: None,
        },
    })
}

fn dec(v: i128) -> Datum {
    Datum::Decimal {
        unscaled: v.to_be_bytes().to_vec(),
        scale: 2,
    }
}

fn row(id: i32, name: &str, note: Datum) -> Vec<Datum> {
    vec![
        Datum::Int(id),
        Datum::Text(name.into()),
        note,
        dec(i128::from(id) * 100 + 25),
        Datum::Int(19_000 + id),
    ]
}

fn record(
    offset: u64,
    op: Op,
    key: Option<i32>,
    before: Option<Vec<Datum>>,
    after: Option<Vec<Datum>>,
) -> SinkRecord {
    SinkRecord {
        topic: "pg.public.people".into(),
        partition: 0,
        offset,
        timestamp: 0,
        key: key.map(|k| vec![Datum::Int(k)]),
        event: ChangeEvent {
            op,
            before,
            after,
            source: source(),
            ts_ms: 0,
            transaction: None,
        },
        table: table(),
    }
}

fn upsert(offset: u64, id: i32, name: &str, note: Datum) -> SinkRecord {
    record(
        offset,
        Op::Create,
        Some(id),
        None,
        Some(row(id, name, note)),
    )
}

fn sink(dir: &Path) -> TantivySink {
    TantivySink::new(TantivySinkConfig {
        name: "search".into(),
        path: dir.to_path_buf(),
        analyzer: Analyzer::Default,
    })
}

/// Every hit: key -> row.
fn all(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    search(dir, "*", 10_000)
        .expect("search")
        .into_iter()
        .map(|h| (h.key, h.row))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_deletes_truncates_and_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("idx");
    let mut s = sink(&path);
    assert_eq!(s.stored_offsets().await.expect("offsets"), Some(vec![]));
    let batch: Vec<SinkRecord> = (1..=5)
        .map(|i| {
            upsert(
                u64::from(i as u32) - 1,
                i,
                &format!("person {i}"),
                Datum::Null,
            )
        })
        .collect();
    s.apply(&batch).await.expect("apply");
    assert_eq!(all(&path).len(), 5);
    let hits = search(&path, "name:\"person 3\"", 10).expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].table, "public.people");
    assert_eq!(hits[0].key, "3");
    assert_eq!(hits[0].row["name"], "person 3");
    assert_eq!(hits[0].row["balance"], "3.25");
    assert_eq!(hits[0].row["note"], serde_json::Value::Null);
    // Words without a column: any text column.
    assert_eq!(search(&path, "\"person 3\"", 10).expect("words").len(), 1);
    assert_eq!(search(&path, "person", 10).expect("words").len(), 5);
    // Typed: ranges over integers, decimals (as f64) and dates.
    assert_eq!(search(&path, "id:[2 TO 4]", 10).expect("range").len(), 3);
    assert_eq!(search(&path, "balance:>4.0", 10).expect("range").len(), 2);
    assert_eq!(
        search(&path, "born:[2022-01-11T00:00:00Z TO *]", 10)
            .expect("dates")
            .len(),
        3,
        "day 19003 is 2022-01-11"
    );
    // An update, a delete, a key change, an update with an unavailable
    // column that was written earlier in the same batch.
    let batch = vec![
        upsert(5, 1, "renamed", Datum::Text("first note".into())),
        record(6, Op::Delete, Some(2), Some(row(2, "x", Datum::Null)), None),
        record(
            7,
            Op::Update,
            Some(30),
            Some(vec![
                Datum::Int(3),
                Datum::Null,
                Datum::Null,
                Datum::Null,
                Datum::Null,
            ]),
            Some(row(30, "moved", Datum::Unavailable)),
        ),
        record(
            8,
            Op::Update,
            Some(1),
            None,
            Some(row(1, "again", Datum::Unavailable)),
        ),
    ];
    s.apply(&batch).await.expect("apply");
    let rows = all(&path);
    let keys: Vec<&str> = rows.keys().map(String::as_str).collect();
    assert_eq!(keys, ["1", "30", "4", "5"]);
    assert_eq!(rows["1"]["name"], "again");
    assert_eq!(rows["1"]["note"], "first note", "kept from the same batch");
    assert_eq!(search(&path, "note:first", 10).expect("s").len(), 1);
    // An unavailable column kept from the last commit.
    s.apply(&[record(
        9,
        Op::Update,
        Some(1),
        None,
        Some(row(1, "third", Datum::Unavailable)),
    )])
    .await
    .expect("apply");
    let rows = all(&path);
    assert_eq!(rows["1"]["name"], "third");
    assert_eq!(rows["1"]["note"], "first note", "kept from the index");
    assert_eq!(search(&path, "note:first", 10).expect("s").len(), 1);
    assert_eq!(
        s.stored_offsets().await.expect("offsets"),
        Some(vec![(TopicPartition::new("pg.public.people", 0), 10)])
    );
    // A truncate, then a row: only the row.
    let batch = vec![
        record(10, Op::Truncate, None, None, None),
        upsert(11, 7, "after", Datum::Null),
    ];
    s.apply(&batch).await.expect("apply");
    let keys: Vec<String> = all(&path).into_keys().collect();
    assert_eq!(keys, ["7"]);
    drop(s);
    // Offsets come back from the commit, after a reopen too.
    assert_eq!(
        committed_offsets(&path).expect("committed"),
        BTreeMap::from([("pg.public.people/0".to_string(), 12)])
    );
    let mut s = sink(&path);
    assert_eq!(
        s.stored_offsets().await.expect("offsets"),
        Some(vec![(TopicPartition::new("pg.public.people", 0), 12)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_row_is_refused_after_the_rows_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("idx");
    let mut s = sink(&path);
    let batch = vec![
        upsert(0, 1, "one", Datum::Null),
        record(1, Op::Create, None, None, Some(row(2, "two", Datum::Null))),
        upsert(2, 3, "three", Datum::Null),
    ];
    match s.apply(&batch).await {
        Err(SinkError::Record { index, reason }) => {
            assert_eq!(index, 1);
            assert!(reason.contains("no key"), "{reason}");
        }
        other => panic!("expected a refused record: {other:?}"),
    }
    let keys: Vec<String> = all(&path).into_keys().collect();
    assert_eq!(keys, ["1"]);
    assert_eq!(
        committed_offsets(&path).expect("committed"),
        BTreeMap::from([("pg.public.people/0".to_string(), 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_share_one_writer_and_keys_are_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("idx");
    let (mut a, mut b) = (sink(&path), sink(&path));
    a.apply(&[upsert(0, 1, "a", Datum::Null)]).await.expect("a");
    let mut r = upsert(0, 2, "b", Datum::Null);
    r.partition = 1;
    b.apply(&[r]).await.expect("b");
    assert_eq!(all(&path).len(), 2);
    assert_eq!(
        committed_offsets(&path).expect("committed"),
        BTreeMap::from([
            ("pg.public.people/0".to_string(), 1),
            ("pg.public.people/1".to_string(), 1)
        ])
    );
    let mut k = String::new();
    push_key_part(&mut k, "a\u{1f}b\u{1b}");
    assert_eq!(k, "a\u{1b}\u{1f}b\u{1b}\u{1b}");
}

#[test]
fn bad_queries_and_missing_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        search(dir.path(), "x", 1),
        Err(SearchError::NotAnIndex(_))
    ));
    let (schema, _) = schema(Analyzer::Default);
    Index::create_in_dir(dir.path(), schema).expect("create");
    assert!(matches!(
        search(dir.path(), "name:(", 1),
        Err(SearchError::Query(_))
    ));
    assert!(search(dir.path(), "name:x", 1).expect("empty").is_empty());
}

#[test]
fn values_as_indexed() {
    assert_eq!(
        indexed(&ColumnType::TimestampTz, &Datum::Long(i64::MAX)),
        None
    );
    assert_eq!(
        indexed(&ColumnType::TimestampTz, &Datum::Long(1_000_000)),
        Some(OwnedValue::Date(DateTime::from_timestamp_secs(1)))
    );
    assert_eq!(indexed(&ColumnType::Bytes, &Datum::Bytes(vec![1])), None);
    assert_eq!(
        indexed(
            &ColumnType::UnsignedLong,
            &Datum::Decimal {
                unscaled: u64::MAX.to_be_bytes().iter().fold(vec![0], |mut v, b| {
                    v.push(*b);
                    v
                }),
                scale: 0
            }
        ),
        Some(OwnedValue::U64(u64::MAX))
    );
    assert_eq!(
        indexed(
            &ColumnType::Array(Box::new(ColumnType::Int)),
            &Datum::Array(vec![Datum::Int(1), Datum::Null])
        ),
        Some(OwnedValue::Array(vec![OwnedValue::I64(1)]))
    );
    assert_eq!(Analyzer::parse("en_stem"), Some(Analyzer::EnStem));
    assert_eq!(Analyzer::parse("nope"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_text_and_stemming() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("idx");
    let mut s = TantivySink::new(TantivySinkConfig {
        name: "search".into(),
        path: path.clone(),
        analyzer: Analyzer::EnStem,
    });
    let long = "word ".repeat(40_000);
    s.apply(&[
        upsert(0, 1, "running dogs", Datum::Text(long.clone())),
        upsert(1, 2, "cat", Datum::Null),
    ])
    .await
    .expect("apply");
    assert_eq!(search(&path, "name:run", 10).expect("s").len(), 1);
    assert_eq!(search(&path, "name:dog", 10).expect("s").len(), 1);
    let hits = search(&path, "note:word", 10).expect("s");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].row["note"].as_str().map(str::len), Some(long.len()));
    drop(s);
    // Another analyzer on the same index is refused, by name.
    let mut other = sink(&path);
    match other.stored_offsets().await {
        Err(SinkError::Fatal { message: m, .. }) => assert!(m.contains("analyzer"), "{m}"),
        r => panic!("expected a fatal error: {r:?}"),
    }
}
