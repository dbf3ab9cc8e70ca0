//! Values at the limits of what PostgreSQL and MariaDB can store, through
//! `tributary run` into a target table of the same definition: every
//! value arrives equal to the source's (compared in SQL, as the database
//! prints it), whether read by the snapshot or streamed, and `consume`
//! shows it exactly.

use mysql_async::prelude::Queryable as _;
use serde_json::Value as Json;
use tributary_tests::mysql::MyDb;
use tributary_tests::pg::{TestDb, wait_same_tables};

use crate::common::{self, ok};

/// Types, extensions and the table, created alike in source and target.
const PG_DDL: &str = "
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN small_ints AS int[] CHECK (cardinality(VALUE) < 100);
CREATE TABLE edges (
    id int PRIMARY KEY,
    ts timestamp, tstz timestamptz, d date, tz timetz,
    ia int[], na numeric[], tsa timestamp[], tza timetz[],
    r int4range, tr tstzrange, mr int4multirange, pr pair, dom small_ints,
    x xml, tv tsvector, tq tsquery, vb bit varying(70), mac macaddr, mac8 macaddr8,
    ln line, ls lseg, bx box, pa path, pg polygon, ci circle,
    hs hstore, ct citext, lt ltree
);
ALTER TABLE edges REPLICA IDENTITY FULL;";

/// Row `id` with values at the limits; `k` varies them between rows.
fn pg_row(id: i32, k: usize) -> String {
    let pick = |xs: &[&str]| xs[k % xs.len()].to_string();
    let ts = pick(&[
        "'294276-12-31 23:59:59.999999'",
        "'4713-01-01 00:00:00 BC'",
        "'infinity'",
        "'-infinity'",
        "'294247-01-10 04:00:54.775807'",
        "'2024-02-29 12:00:00.5'",
    ]);
    let tstz = pick(&[
        "'294276-12-31 23:59:59.999999+00'",
        "'4714-11-24 00:00:00+00 BC'",
        "'-infinity'",
        "'1970-01-01 00:00:00+00'",
    ]);
    let d = pick(&[
        "'5874897-12-31'",
        "'4714-11-24 BC'",
        "'infinity'",
        "'-infinity'",
        "'2000-02-29'",
    ]);
    let tz = pick(&[
        "'12:34:56.5+05:30'",
        "'00:00:00-15:59'",
        "'23:59:59.999999+15:59'",
        "'24:00:00+00'",
        "'10:00:00-03'",
    ]);
    let ia = pick(&[
        "'{{1,2},{3,4}}'",
        "'[0:2]={7,NULL,9}'",
        "'{{{1},{2}},{{3},{4}}}'",
        "'{}'",
        "'{1,NULL,3}'",
    ]);
    let na = pick(&[
        "'{1.5,NaN,-Infinity}'",
        "'{{1,2},{3.25,NULL}}'",
        "'{0.000000000000000000000000000001}'",
    ]);
    let tsa = pick(&[
        "ARRAY['294276-12-31 23:59:59.999999', 'infinity', NULL]::timestamp[]",
        "ARRAY['2024-01-01 00:00:00']::timestamp[]",
    ]);
    let tza = pick(&["'{12:00:00+05:30,NULL}'", "'{}'"]);
    format!(
        "INSERT INTO edges VALUES ({id}, {ts}, {tstz}, {d}, {tz}, {ia}, {na}, {tsa}, {tza},
            '[1,10)', '[2024-01-01 00:00:00+00,infinity)', '{{[1,3), [5,8)}}', ROW({id}, 'p \"q\" {id}'),
            '{{1,2,{id}}}', '<a x=\"1\">t{id}</a>', 'fat:2A cats:{id}', 'fat & (rat | !cat)',
            B'1011' || ({id}::bit(66)), '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
            '{{1,-1,{id}}}', '[(0,0),(1,{id})]', '(1,1),(0,0)', '[(0,0),(1,1),(2,{id})]',
            '((0,0),(1,1),(1,{id}))', '<(0,0),{id}>', 'a=>1, \"b c\"=>NULL', 'MiXeD {id}',
            'top.science.n{id}');"
    )
}

/// NULL in every column but the key.
const PG_NULLS: &str = "INSERT INTO edges (id) VALUES (999);";

/// PostgreSQL -> log -> PostgreSQL: the snapshot and the stream carry
/// every value above to an identical target table; `consume` shows the
/// values Avro's logical types cannot hold as PostgreSQL's own text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_values_at_their_limits_reach_a_replica_exactly() {
    let src = TestDb::new("exact_src").await;
    let dst = TestDb::new("exact_dst").await;
    src.exec(PG_DDL).await;
    dst.exec(PG_DDL).await;
    for k in 0..6 {
        src.exec(&pg_row(k as i32 + 1, k)).await;
    }
    src.exec(PG_NULLS).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(dir.path(), &common::replica_yaml(&src, &dst, ""));
    let child = common::start(&file);
    // Read by the snapshot.
    wait_same_tables(&src, &dst, &["edges"]).await;
    // Streamed: inserts, an update of every column, a delete.
    for k in 0..6 {
        src.exec(&pg_row(k as i32 + 101, k + 3)).await;
    }
    src.exec(
        "UPDATE edges e SET ts = o.ts, tstz = o.tstz, d = o.d, tz = o.tz, ia = o.ia, na = o.na
           FROM edges o WHERE e.id = 1 AND o.id = 102;
         DELETE FROM edges WHERE id = 2;",
    )
    .await;
    wait_same_tables(&src, &dst, &["edges"]).await;
    common::stop(child);

    let data = dir.path().join("data");
    let out = ok(&common::tributary_on(
        &data,
        &["consume", "pg.public.edges", "--from-beginning"],
        None,
    ));
    let rows: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let after = |id: i64| {
        rows.iter()
            .filter_map(|r| r["value"]["after"].as_object())
            .find(|a| a.get("id").and_then(Json::as_i64) == Some(id))
            .unwrap_or_else(|| panic!("no row {id} in consume output:\n{out}"))
            .clone()
    };
    let first = after(1);
    assert_eq!(first["tz"], "12:34:56.5+05:30", "{first:?}");
    assert_eq!(first["ts"], "294276-12-31 23:59:59.999999", "{first:?}");
    assert_eq!(first["ia"], "{{1,2},{3,4}}", "{first:?}");
    assert_eq!(
        first["tstz"], "294276-12-31 23:59:59.999999+00",
        "{first:?}"
    );
    let second = after(2);
    assert_eq!(second["ia"], "[0:2]={7,NULL,9}", "{second:?}");
    assert_eq!(second["tz"], "00:00:00-15:59", "{second:?}");
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

const MY_DDL: &str = "CREATE TABLE geo (
    id INT PRIMARY KEY, g GEOMETRY, p POINT, ls LINESTRING, pg POLYGON, gc GEOMETRYCOLLECTION,
    mp MULTIPOINT)";

fn my_row(id: u32, srid: u32) -> String {
    format!(
        "INSERT INTO geo VALUES ({id},
            ST_GeomFromText('POLYGON((0 0,{id} 0,{id} {id},0 0))', {srid}),
            ST_GeomFromText('POINT({id}.5 -2.25)', {srid}),
            ST_GeomFromText('LINESTRING(0 0,1 1,{id} 2)', {srid}),
            ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(1 1,2 1,2 2,1 1))', {srid}),
            ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 {id}),LINESTRING(0 0,1 1))', {srid}),
            ST_GeomFromText('MULTIPOINT(1 1,{id} 2)', {srid}))"
    )
}

async fn geo_rows(db: &mut MyDb) -> Vec<String> {
    db.conn
        .query(
            "SELECT CONCAT_WS('|', id, IFNULL(HEX(g), 'null'), IFNULL(HEX(p), 'null'),
                    IFNULL(HEX(ls), 'null'), IFNULL(HEX(pg), 'null'), IFNULL(HEX(gc), 'null'),
                    IFNULL(HEX(mp), 'null'))
               FROM geo ORDER BY id",
        )
        .await
        .unwrap_or_default()
}

/// MariaDB -> log -> MariaDB: geometries (with their SRID) reach a
/// target of the same definition byte for byte, snapshot and stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_geometries_reach_a_replica_exactly() {
    let mut src = MyDb::new("geo_src").await;
    let mut dst = MyDb::new("geo_dst").await;
    src.exec(MY_DDL).await;
    dst.exec(MY_DDL).await;
    src.exec(&my_row(1, 0)).await;
    src.exec(&my_row(2, 4326)).await;
    src.exec("INSERT INTO geo (id) VALUES (3)").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}sources:\n  - name: my\n    kind: mysql\n\
             \x20   url: mysql://root@127.0.0.1:3306/\n\
             \x20   server_id: {}\n\
             \x20   tables:\n      include: [\"{}.geo\"]\n\
             sinks:\n{}",
            common::log_yaml(None),
            42000 + std::process::id() % 10000,
            src.name,
            common::mysql_sink_yaml("replica", &dst.name, "[\"my.*\"]"),
        ),
    );
    let child = common::start(&file);
    let want = geo_rows(&mut src).await;
    common::wait_same_rows(
        "snapshot",
        async || want.clone(),
        async || geo_rows(&mut dst).await,
    )
    .await;
    src.exec(&my_row(10, 3857)).await;
    src.exec(&my_row(11, 0)).await;
    src.exec(
        "UPDATE geo SET p = ST_GeomFromText('POINT(-1 -1)', 4326), g = NULL WHERE id = 2;
         UPDATE geo SET g = ST_GeomFromText('POINT(3 3)', 2154) WHERE id = 3;
         DELETE FROM geo WHERE id = 1;",
    )
    .await;
    let want = geo_rows(&mut src).await;
    common::wait_same_rows(
        "stream",
        async || want.clone(),
        async || geo_rows(&mut dst).await,
    )
    .await;
    common::stop(child);
    src.drop_db().await;
    dst.drop_db().await;
}

const MY_EDGES: &str = "CREATE TABLE edges (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
    mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
    f FLOAT, d DOUBLE, d65 DECIMAL(65,30), d1 DECIMAL(1,0),
    b1 BIT(1), b64 BIT(64),
    dt DATE, dtm DATETIME(6), dtm0 DATETIME, ts TIMESTAMP(6) NULL, tm TIME(6), y YEAR,
    c CHAR(10), vc VARCHAR(100), tx TEXT, bin BINARY(8), vb VARBINARY(20), bl BLOB,
    j JSON, e ENUM('a','b','c'), st SET('x','y','z'))";

/// Row `id` at the low (`low`) or high limits of every type.
fn my_edge_row(id: u32, low: bool) -> String {
    if low {
        format!(
            "INSERT INTO edges VALUES ({id}, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0,
                -9223372036854775808, 0, -3.40282e38, -1.7976931348623157e308,
                '-99999999999999999999999999999999999.999999999999999999999999999999', -9,
                b'0', b'0', '1000-01-01', '1000-01-01 00:00:00.000000', '1000-01-01 00:00:00',
                '1970-01-01 00:00:01.000000', '-838:59:59.999999', 1901,
                '', '', '', 'ab', '', '', '[]', 'a', '')"
        )
    } else {
        format!(
            "INSERT INTO edges VALUES ({id}, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647,
                4294967295, 9223372036854775807, 18446744073709551615, 3.40282e38,
                1.7976931348623157e308,
                '99999999999999999999999999999999999.999999999999999999999999999999', 9,
                b'1', b'1111111111111111111111111111111111111111111111111111111111111111',
                '9999-12-31', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59',
                '2038-01-19 03:14:07.999999', '838:59:59.999999', 2155,
                'ü😀 pad', 'it''s \\\\ \"q\" 😀', REPEAT('t', 70000 DIV 1000), UNHEX('00FF00FF00FF00FF'),
                UNHEX('000000'), UNHEX(REPEAT('AB', 300)), '{{\"a\": [1, 2.5, {{\"b\": null}}], \"c\": \"😀\"}}',
                'c', 'x,y,z')"
        )
    }
}

/// Zero dates (whole, or a zero month or day), under a permissive
/// sql_mode for the rest of the session.
const ZERO_DATES_ROW_4: &str = "SET SESSION sql_mode = '';
    INSERT INTO edges (id, dt, dtm, dtm0, ts) VALUES
        (4, '2024-05-00', '0000-00-00 00:00:00', '2024-00-15 10:00:00', '0000-00-00 00:00:00')";

/// Every row of `edges` as the server gives it over the binary protocol
/// (floats and doubles as their bits, not as printed text).
async fn my_edge_rows(db: &mut MyDb) -> Vec<String> {
    let rows: Vec<mysql_async::Row> = db
        .conn
        .exec("SELECT * FROM edges ORDER BY id", ())
        .await
        .unwrap_or_default();
    rows.into_iter()
        .map(|r| format!("{:?}", r.unwrap()))
        .collect()
}

/// MariaDB -> log -> MariaDB: every type at both of its limits and NULL
/// reaches a target of the same definition equal to the source, through
/// the snapshot and the stream (inserts, an update, a delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_values_at_their_limits_reach_a_replica_exactly() {
    let mut src = MyDb::new("edges_src").await;
    let mut dst = MyDb::new("edges_dst").await;
    src.exec(MY_EDGES).await;
    dst.exec(MY_EDGES).await;
    src.exec(&my_edge_row(1, true)).await;
    src.exec(&my_edge_row(2, false)).await;
    src.exec("INSERT INTO edges (id) VALUES (3)").await;
    // Zero dates, where a permissive sql_mode lets them in.
    src.exec(ZERO_DATES_ROW_4).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}sources:\n  - name: my\n    kind: mysql\n\
             \x20   url: mysql://root@127.0.0.1:3306/\n\
             \x20   server_id: {}\n\
             \x20   tables:\n      include: [\"{}.edges\"]\n\
             sinks:\n{}",
            common::log_yaml(None),
            43000 + std::process::id() % 10000,
            src.name,
            common::mysql_sink_yaml("replica", &dst.name, "[\"my.*\"]"),
        ),
    );
    let child = common::start(&file);
    let want = my_edge_rows(&mut src).await;
    assert_eq!(want.len(), 4, "{want:?}");
    common::wait_same_rows(
        "snapshot",
        async || want.clone(),
        async || my_edge_rows(&mut dst).await,
    )
    .await;
    src.exec(&my_edge_row(11, true)).await;
    src.exec(&my_edge_row(12, false)).await;
    src.exec(
        "INSERT INTO edges (id, dt, dtm, dtm0, ts) VALUES
             (14, '0000-00-00', '2024-00-15 10:00:00.5', '0000-00-00 00:00:00', '0000-00-00 00:00:00');
         INSERT INTO edges (id) VALUES (13);
         UPDATE edges e JOIN (SELECT * FROM edges WHERE id = 2) h
            SET e.bi = h.bi, e.biu = h.biu, e.d65 = h.d65, e.b64 = h.b64, e.tm = h.tm,
                e.dtm = h.dtm, e.f = h.f, e.d = h.d, e.vc = h.vc
          WHERE e.id = 1;
         DELETE FROM edges WHERE id = 3;",
    )
    .await;
    let want = my_edge_rows(&mut src).await;
    assert_eq!(want.len(), 7, "{want:?}");
    common::wait_same_rows(
        "stream",
        async || want.clone(),
        async || my_edge_rows(&mut dst).await,
    )
    .await;
    common::stop(child);
    src.drop_db().await;
    dst.drop_db().await;
}
