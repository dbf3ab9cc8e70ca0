//! Every MySQL/MariaDB type through the binlog: inserted, updated and
//! deleted rows decode to the values the server holds (as its snapshot
//! read gives them), and edge values to what they mean.

use tributary_connector_mysql::source::SnapshotMode;
use tributary_core::convert::{days_from_civil, digits_to_twos};
use tributary_core::{Datum, Op};
use tributary_log::Log;
use tributary_schemas::Registry;

use super::*;

const TABLE: &str = "CREATE TABLE t (
    id INT PRIMARY KEY,
    i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED,
    i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i32 INT, u32 INT UNSIGNED,
    i64 BIGINT, u64 BIGINT UNSIGNED,
    dec65 DECIMAL(65,30), dec0 DECIMAL(5,0), f FLOAT, d DOUBLE,
    b1 BIT(1), b10 BIT(10), b64 BIT(64),
    dt DATE, dtm DATETIME(6), dtm0 DATETIME, ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), tm0 TIME, y YEAR,
    c CHAR(5), vc VARCHAR(300), tx TEXT, lc VARCHAR(10) CHARACTER SET latin1, lt TEXT CHARACTER SET latin1,
    bin BINARY(4), vbin VARBINARY(10), bl BLOB, lbl LONGBLOB,
    e ENUM('small','medium','large'), s SET('a','b','c','d'),
    j JSON, g GEOMETRY, p POINT
)";

const ROW1: &str = "INSERT INTO t VALUES (1,
    -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
    -9223372036854775808, 18446744073709551615,
    '-12345678901234567890123456789012345.123456789012345678901234567890', 99999, 1.5, -2.25e-300,
    b'1', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111',
    '2024-02-29', '1999-12-31 23:59:59.999999', '1000-01-01 00:00:00', '2038-01-19 03:14:07.5', '-838:59:59.000000', '25:00:00', 2155,
    'ab', REPEAT('v', 300), 'héllo ✓ 😀', 'é€', 'ÿ',
    x'0102', x'00ff', x'deadbeef', REPEAT(x'ab', 70000),
    'medium', 'a,c',
    '{\"a\": [1, 2], \"b\": null}', ST_GeomFromText('LINESTRING(0 0, 1 1)'), POINT(1, 2))";

const ROW2: &str = "INSERT INTO t (id, dt, dtm, tm) VALUES (2, '0000-00-00', '0000-00-00 00:00:00', '-00:00:01.5')";

const ROW3: &str = "INSERT INTO t (id) VALUES (3)";

fn dec(digits: &str, negative: bool, scale: u32) -> Datum {
    Datum::Decimal {
        unscaled: digits_to_twos(digits, negative),
        scale,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_through_insert_update_delete() {
    tributary_tests::init_tracing();
    let mut db = MyDb::new("types").await;
    db.exec(TABLE).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = config(&db.name, &["t"], 1, SnapshotMode::Never);
    let topic = cfg.topic(&db.name, "t");
    let mut running = Running::start(cfg, &log, &registry);
    // Let the source reach the binlog before the rows are written.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    db.exec("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'")
        .await;
    db.exec(ROW1).await;
    db.exec(ROW2).await;
    db.exec(ROW3).await;
    running.wait(&log, &topic, 3, "inserts").await;
    let inserted = table_rows(&mut db, "t").await;
    db.exec(
        "UPDATE t SET i8 = 127, u64 = 0, dec65 = 0.000000000000000000000000000001, b10 = b'0000000011',
                      tm = '838:59:59', y = 1901, lc = 'Ä', e = 'large', s = '', j = '[]', p = POINT(-1.5, 3),
                      bin = x'01020304', ts = '1970-01-01 00:00:01' WHERE id = 1;
         UPDATE t SET i32 = 7, dt = '2000-01-01' WHERE id = 2;
         UPDATE t SET tx = 'now set' WHERE id = 3;",
    )
    .await;
    running.wait(&log, &topic, 6, "updates").await;
    let updated = table_rows(&mut db, "t").await;
    db.exec("DELETE FROM t WHERE id IN (1, 2, 3)").await;
    running.wait(&log, &topic, 12, "deletes").await;
    running.stop().await;

    let evs = events(&log, &registry, &topic);
    let ops: Vec<Op> = evs.iter().map(|(e, _)| e.op).collect();
    assert_eq!(
        ops,
        [
            Op::Create,
            Op::Create,
            Op::Create,
            Op::Update,
            Op::Update,
            Op::Update,
            Op::Delete,
            Op::Delete,
            Op::Delete
        ]
    );
    let by_key = |range: std::ops::Range<usize>, after: bool| {
        evs[range]
            .iter()
            .map(|(e, t)| {
                let row = if after { &e.after } else { &e.before };
                let row = row.as_ref().expect("image");
                (key_text(row, t), named(row, t))
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(by_key(0..3, true), inserted, "inserted rows");
    assert_eq!(by_key(3..6, false), inserted, "update before-images");
    assert_eq!(by_key(3..6, true), updated, "updated rows");
    assert_eq!(by_key(6..9, false), updated, "delete before-images");

    // What the values mean, independently of our decoders.
    let (e1, t) = &evs[0];
    let row = named(e1.after.as_ref().expect("after"), t);
    let v = |c: &str| row.get(c).cloned().unwrap_or(Datum::Null);
    assert_eq!(v("i8"), Datum::Int(-128));
    assert_eq!(v("u8"), Datum::Int(255));
    assert_eq!(v("u24"), Datum::Int(16_777_215));
    assert_eq!(v("i32"), Datum::Int(i32::MIN));
    assert_eq!(v("u32"), Datum::Long(4_294_967_295));
    assert_eq!(v("i64"), Datum::Long(i64::MIN));
    assert_eq!(v("u64"), dec("18446744073709551615", false, 0));
    assert_eq!(
        v("dec65"),
        dec(
            "12345678901234567890123456789012345123456789012345678901234567890",
            true,
            30
        )
    );
    assert_eq!(v("dec0"), dec("99999", false, 0));
    assert_eq!(v("f"), Datum::Float(1.5));
    assert_eq!(v("d"), Datum::Double(-2.25e-300));
    assert_eq!(v("b1"), Datum::Bool(true));
    assert_eq!(
        v("b10"),
        Datum::Bytes(vec![0x01, 0x02]),
        "least significant byte first"
    );
    assert_eq!(v("b64"), Datum::Bytes(vec![0xff; 8]));
    assert_eq!(v("dt"), Datum::Int(days_from_civil(2024, 2, 29) as i32));
    let day_us = |y, m, d| days_from_civil(y, m, d) * 86_400_000_000;
    assert_eq!(
        v("dtm"),
        Datum::Long(day_us(1999, 12, 31) + (23 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999)
    );
    assert_eq!(v("dtm0"), Datum::Long(day_us(1000, 1, 1)));
    assert_eq!(
        v("ts"),
        Datum::Long(2_147_483_647_500_000),
        "UTC microseconds"
    );
    assert_eq!(
        v("tm"),
        Datum::Long(-(838 * 3600 + 59 * 60 + 59) * 1_000_000)
    );
    assert_eq!(v("tm0"), Datum::Long(25 * 3_600_000_000));
    assert_eq!(v("y"), Datum::Int(2155));
    assert_eq!(v("c"), Datum::Text("ab".into()));
    assert_eq!(v("tx"), Datum::Text("héllo ✓ 😀".into()));
    assert_eq!(
        v("lc"),
        Datum::Text("é€".into()),
        "latin1 (cp1252) to UTF-8"
    );
    assert_eq!(v("lt"), Datum::Text("ÿ".into()));
    assert_eq!(
        v("bin"),
        Datum::Bytes(vec![1, 2, 0, 0]),
        "BINARY(4) keeps its padding"
    );
    assert_eq!(v("vbin"), Datum::Bytes(vec![0, 0xff]));
    assert_eq!(v("bl"), Datum::Bytes(vec![0xde, 0xad, 0xbe, 0xef]));
    assert_eq!(v("lbl"), Datum::Bytes(vec![0xab; 70_000]));
    assert_eq!(v("e"), Datum::Text("medium".into()));
    assert_eq!(v("s"), Datum::Text("a,c".into()));
    assert_eq!(v("j"), Datum::Text("{\"a\": [1, 2], \"b\": null}".into()));
    let mut point = vec![1u8, 1, 0, 0, 0];
    point.extend_from_slice(&1f64.to_le_bytes());
    point.extend_from_slice(&2f64.to_le_bytes());
    assert_eq!(v("p"), Datum::Bytes(point), "POINT as WKB");

    let (e2, t2) = &evs[1];
    let zero = e2.after.as_ref().expect("after");
    let col = |n: &str| t2.columns.iter().position(|c| c.name == n).expect("column");
    // Zero dates as MySQL prints them, not NULL.
    assert_eq!(
        zero[col("dt")],
        Datum::Text("0000-00-00".into()),
        "zero date"
    );
    assert_eq!(
        zero[col("dtm")],
        Datum::Text("0000-00-00 00:00:00".into()),
        "zero datetime"
    );
    assert_eq!(zero[col("tm")], Datum::Long(-1_500_000));
    let (e3, _) = &evs[5];
    assert_eq!(
        named(e3.after.as_ref().expect("after"), t2).get("tx"),
        Some(&Datum::Text("now set".into()))
    );
    db.drop_db().await;
}
