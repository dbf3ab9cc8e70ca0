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
