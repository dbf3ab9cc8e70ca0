//! Every common PostgreSQL type: the catalog gives its portable type, and
//! the text PostgreSQL prints for it (in the session settings replication
//! uses) parses to the value PostgreSQL holds.

use tributary_connector_postgres::catalog::table_schema;
use tributary_connector_postgres::types::{SESSION_OPTIONS, days_from_civil, parse_text};
use tributary_core::{ColumnType, Datum, NumericSpecial};

use super::TestDb;

const DDL: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE every_type (
    id bigint PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    n numeric(30,10), nv numeric, r real, d double precision, b boolean,
    t text NOT NULL, vc varchar(20), c char(3), by bytea,
    dt date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, ia int[], ta text[], m mood, p posint,
    ip inet, cd cidr, mo money, pt point, bt bit(4), b1 bit(1)
);
INSERT INTO every_type VALUES (
    1, -32768, 2147483647, -9223372036854775808,
    '12345678901234567890.0123456789', '-3.14159', 1.5, -2.25e-300, true,
    'héllo', 'vc', 'ab', '\\x00ff',
    '2024-02-29', '13:45:10.5', '10:00:00+02', '2024-02-29 12:00:00.000001', '2024-01-01 02:00:00+02', '1 year 2 mons 3 days 04:05:06.5',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}', '{\"b\": [1, 2]}', '{1,NULL,3}', '{\"x y\",\"q\\\"z\"}', 'happy', 42,
    '192.168.0.1/24', '10.0.0.0/8', '-1234.56', '(1.5,-2)', B'1010', B'1'
), (
    2, NULL, NULL, NULL,
    'NaN', 'Infinity', 'NaN', '-Infinity', false,
    'x', NULL, NULL, NULL,
    '0044-03-15 BC', '24:00:00', NULL, 'infinity', '-infinity', '-1 days -02:00:00',
    NULL, NULL, NULL, '{}', NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL
);
";

fn dec(digits: i128, scale: u32) -> Datum {
    let b = digits.to_be_bytes();
    let mut i = 0;
    while i < 15 && ((b[i] == 0 && b[i + 1] & 0x80 == 0) || (b[i] == 0xff && b[i + 1] & 0x80 != 0))
    {
        i += 1;
    }
    Datum::Decimal {
        unscaled: b[i..].to_vec(),
        scale,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_maps_and_parses() {
    let db = TestDb::new("types").await;
    db.client.batch_execute(DDL).await.expect("ddl");
    let schema = table_schema(&db.client, &db.name, "public", "every_type")
        .await
        .expect("catalog");
    assert_eq!(schema.key, vec![0]);
    let ty = |name: &str| {
        schema
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("column {name}"))
            .ty
            .clone()
    };
    assert_eq!(
        ty("n"),
        ColumnType::Decimal {
            precision: 30,
            scale: 10,
            specials: true
        }
    );
    assert_eq!(ty("nv"), ColumnType::VariableDecimal);
    assert_eq!(
        ty("m"),
        ColumnType::Enum(vec!["sad".into(), "ok".into(), "happy".into()])
    );
    assert_eq!(ty("p"), ColumnType::Int, "a domain maps to its base type");
    assert_eq!(ty("ia"), ColumnType::Array(Box::new(ColumnType::Int)));
    assert_eq!(ty("b1"), ColumnType::Boolean);
    assert!(
        !schema
            .columns
            .iter()
            .find(|c| c.name == "t")
            .expect("t")
            .nullable
    );
    assert!(
        schema
            .columns
            .iter()
            .find(|c| c.name == "t")
            .expect("t")
            .may_be_unavailable
    );
    let unavailable = |s: &tributary_core::TableSchema, name: &str| {
        s.columns
            .iter()
            .find(|c| c.name == name)
            .expect("column")
            .may_be_unavailable
    };
    // REPLICA IDENTITY DEFAULT: a delete carries only the key, so every
    // non-key column can be unavailable in a before-image.
    assert!(!unavailable(&schema, "id"));
    assert!(unavailable(&schema, "i4"));
    db.exec("ALTER TABLE every_type REPLICA IDENTITY FULL")
        .await;
    let full = table_schema(&db.client, &db.name, "public", "every_type")
        .await
        .expect("catalog");
    assert!(!unavailable(&full, "i4"), "FULL: only TOAST hides values");
    assert!(unavailable(&full, "t"));

    // The settings the replication session pins, as SQL.
    for opt in SESSION_OPTIONS
        .split("-c ")
        .filter(|s| !s.trim().is_empty())
    {
        db.exec(&format!("SET {}", opt.trim())).await;
    }
    // The simple query protocol returns each value as its type's output
    // function prints it: the same text pgoutput sends.
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let rows = db
        .client
        .simple_query(&format!(
            "SELECT {} FROM every_type ORDER BY id",
            cols.join(", ")
        ))
        .await
        .expect("select");
    let rows: Vec<_> = rows
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 2);
    let parsed: Vec<Vec<Datum>> =
        rows.iter()
            .map(|r| {
                schema
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match r.get(i) {
                        None => Datum::Null,
                        Some(text) => parse_text(&c.ty, text)
                            .unwrap_or_else(|e| panic!("column {}: {e}", c.name)),
                    })
                    .collect()
            })
            .collect();
    let get = |row: usize, name: &str| {
        let i = schema
            .columns
            .iter()
            .position(|c| c.name == name)
            .expect("column");
        parsed[row][i].clone()
    };
    let day = |y, m, d| days_from_civil(y, m, d);
    // Row 1: ordinary values.
    assert_eq!(get(0, "i2"), Datum::Int(-32768));
    assert_eq!(get(0, "i8"), Datum::Long(i64::MIN));
    assert_eq!(
        get(0, "n"),
        dec(123_456_789_012_345_678_900_123_456_789, 10)
    );
    assert_eq!(get(0, "nv"), dec(-314_159, 5));
    assert_eq!(get(0, "r"), Datum::Float(1.5));
    assert_eq!(get(0, "d"), Datum::Double(-2.25e-300));
    assert_eq!(get(0, "t"), Datum::Text("héllo".into()));
    assert_eq!(get(0, "c"), Datum::Text("ab ".into()));
    assert_eq!(get(0, "by"), Datum::Bytes(vec![0, 255]));
    assert_eq!(get(0, "dt"), Datum::Int(day(2024, 2, 29) as i32));
    assert_eq!(
        get(0, "tm"),
        Datum::Long(((13 * 60 + 45) * 60 + 10) * 1_000_000 + 500_000)
    );
    // timetz keeps its offset.
    assert_eq!(get(0, "ttz"), Datum::Text("10:00:00+02".into()));
    assert_eq!(
        get(0, "ts"),
        Datum::Long((day(2024, 2, 29) * 86_400 + 43_200) * 1_000_000 + 1)
    );
    assert_eq!(
        get(0, "tstz"),
        Datum::Long(day(2024, 1, 1) * 86_400_000_000)
    );
    assert_eq!(
        get(0, "iv"),
        Datum::Interval {
            months: 14,
            days: 3,
            micros: ((4 * 60 + 5) * 60 + 6) * 1_000_000 + 500_000
        }
    );
    assert!(matches!(get(0, "u"), Datum::Uuid(b) if b[0] == 0xa0 && b[15] == 0x11));
    assert_eq!(get(0, "jb"), Datum::Text("{\"b\": [1, 2]}".into()));
    assert_eq!(
        get(0, "ia"),
        Datum::Array(vec![Datum::Int(1), Datum::Null, Datum::Int(3)])
    );
    assert_eq!(
        get(0, "ta"),
        Datum::Array(vec![Datum::Text("x y".into()), Datum::Text("q\"z".into())])
    );
    assert_eq!(get(0, "m"), Datum::Text("happy".into()));
    assert_eq!(get(0, "p"), Datum::Int(42));
    assert_eq!(get(0, "ip"), Datum::Text("192.168.0.1/24".into()));
    assert_eq!(get(0, "cd"), Datum::Text("10.0.0.0/8".into()));
    assert_eq!(get(0, "mo"), dec(-123_456, 2));
    assert_eq!(get(0, "pt"), Datum::Point { x: 1.5, y: -2.0 });
    assert_eq!(get(0, "bt"), Datum::Bytes(vec![0b1010]));
    assert_eq!(get(0, "b1"), Datum::Bool(true));
    // Row 2: the edges.
    assert_eq!(get(1, "i2"), Datum::Null);
    assert_eq!(get(1, "n"), Datum::NumericSpecial(NumericSpecial::NaN));
    assert_eq!(
        get(1, "nv"),
        Datum::NumericSpecial(NumericSpecial::PositiveInfinity)
    );
    assert!(matches!(get(1, "r"), Datum::Float(f) if f.is_nan()));
    assert_eq!(get(1, "d"), Datum::Double(f64::NEG_INFINITY));
    assert_eq!(get(1, "dt"), Datum::Int(day(-43, 3, 15) as i32));
    assert_eq!(get(1, "tm"), Datum::Long(86_400_000_000));
    assert_eq!(get(1, "ts"), Datum::Long(i64::MAX));
    assert_eq!(get(1, "tstz"), Datum::Long(i64::MIN));
    assert_eq!(
        get(1, "iv"),
        Datum::Interval {
            months: 0,
            days: -1,
            micros: -2 * 3_600_000_000
        }
    );
    assert_eq!(get(1, "ia"), Datum::Array(vec![]));
    db.drop_db().await;
}

/// Every row of `every_type` as PostgreSQL prints it (in the replication
/// session's settings), parsed: what the stream must carry.
async fn rows_as_printed(
    db: &TestDb,
    schema: &tributary_core::TableSchema,
) -> std::collections::BTreeMap<i64, Vec<Datum>> {
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let rows = db
        .client
        .simple_query(&format!(
            "SELECT {} FROM every_type ORDER BY id",
            cols.join(", ")
        ))
        .await
        .expect("select");
    rows.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .map(|r| {
            let row: Vec<Datum> = schema
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| match r.get(i) {
                    None => Datum::Null,
                    Some(text) => {
                        parse_text(&c.ty, text).unwrap_or_else(|e| panic!("column {}: {e}", c.name))
                    }
                })
                .collect();
            let Datum::Long(id) = row[0] else {
                panic!("id")
            };
            (id, row)
        })
        .collect()
}

/// Compares rows by their printed form, so NaN equals NaN.
fn same(a: &[Datum], b: &[Datum]) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Every type through the stream: inserted, updated and deleted rows come
/// out of the log (decoded from Avro) equal to what PostgreSQL holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_through_the_stream() {
    use tributary_connector_postgres::source::{SnapshotMode, prepare, topic_name};
    use tributary_core::Op;

    let db = TestDb::new("typestream").await;
    let (create, insert) = DDL.split_at(DDL.find("INSERT").expect("insert"));
    db.exec(&format!(
        "{create}; ALTER TABLE every_type REPLICA IDENTITY FULL;"
    ))
    .await;
    for opt in SESSION_OPTIONS
        .split("-c ")
        .filter(|s| !s.trim().is_empty())
    {
        db.exec(&format!("SET {}", opt.trim())).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = tributary_log::Log::open(dir.path().join("log")).expect("log");
    let registry =
        tributary_schemas::Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = tributary_tests::pg_stream_config(&db.name, "every_type", 3, SnapshotMode::Never);
    prepare(&db.client, &cfg).await.expect("prepare");
    let (stop_tx, task) = tributary_tests::pg::spawn_source(&cfg, &log, registry);

    let schema = table_schema(&db.client, &db.name, "public", "every_type")
        .await
        .expect("catalog");
    db.client.batch_execute(insert).await.expect("insert");
    let inserted = rows_as_printed(&db, &schema).await;
    db.exec(
        "UPDATE every_type SET i4 = i4 - 1, t = 'changed ' || t, jb = '{\"c\": 3}', \
             ia = array_append(ia, 9), tstz = '2030-06-01 00:00:00+00', n = n * 2 WHERE id = 1",
    )
    .await;
    let updated = rows_as_printed(&db, &schema).await;
    db.exec("DELETE FROM every_type WHERE id = 2").await;
    let end = super::current_lsn(&db).await;
    let task = super::wait_confirmed_running(&db, &cfg.slot, end, task).await;
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("source ran cleanly");

    let avro = tributary_schemas::EventSchema::new(
        "pg",
        tributary_schemas::Connector::Postgres,
        schema.clone(),
    )
    .expect("schema");
    let topic = log
        .topic(&topic_name("pg", "public", "every_type"))
        .expect("topic");
    let (events, _) = tributary_tests::topic::events(&log, topic.name(), &avro);
    let find = |op: Op, id: i64| {
        events
            .iter()
            .find(|e| {
                e.op == op
                    && matches!(
                        e.after.as_ref().or(e.before.as_ref()).map(|r| &r[0]),
                        Some(Datum::Long(i)) if *i == id
                    )
            })
            .unwrap_or_else(|| panic!("no {op:?} of id {id}"))
    };
    assert_eq!(events.len(), 4, "2 inserts, 1 update, 1 delete");
    for id in [1, 2] {
        let ev = find(Op::Create, id);
        let got = ev.after.as_ref().expect("after");
        assert!(
            same(got, &inserted[&id]),
            "insert {id}:\n{got:?}\n{:?}",
            inserted[&id]
        );
    }
    let up = find(Op::Update, 1);
    assert!(
        same(up.before.as_ref().expect("before"), &inserted[&1]),
        "update before-image (REPLICA IDENTITY FULL)"
    );
    assert!(
        same(up.after.as_ref().expect("after"), &updated[&1]),
        "update after-image"
    );
    let del = find(Op::Delete, 2);
    assert!(
        same(del.before.as_ref().expect("before"), &inserted[&2]),
        "delete before-image"
    );
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(dir.path());
}
