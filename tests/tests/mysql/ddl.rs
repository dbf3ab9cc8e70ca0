//! DDL mid-stream: each statement changes the shape the rows after it are
//! decoded with (a new schema version), the rows before it keep theirs,
//! and a statement the schema history cannot follow stops the table's
//! rows instead of decoding them with a wrong shape.

use mysql_async::prelude::Queryable;
use tributary_connector_mysql::source::SnapshotMode;
use tributary_core::Datum;
use tributary_log::Log;
use tributary_schemas::Registry;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_drop_change_rename_column_and_rename_table() {
    tributary_tests::init_tracing();
    let mut db = MyDb::new("ddl").await;
    db.exec("CREATE TABLE a (id INT PRIMARY KEY, x INT, y VARCHAR(10)); INSERT INTO a VALUES (1, 10, 'one')")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    // Renaming columns and tightening NULL are not BACKWARD compatible in
    // Avro (the stream would stop with the registry's reason, as it
    // should); this topic's owner accepts any change.
    registry
        .set_compatibility(None, tributary_schemas::Compatibility::None)
        .expect("compatibility");
    let cfg = config(&db.name, &["a", "b"], 1, SnapshotMode::Initial);
    let (ta, tb) = (cfg.topic(&db.name, "a"), cfg.topic(&db.name, "b"));
    let mut running = Running::start(cfg.clone(), &log, &registry);
    running.wait(&log, &ta, 1, "snapshot").await;
    db.exec(
        "ALTER TABLE a ADD COLUMN z INT FIRST;
         INSERT INTO a (id, x, y, z) VALUES (2, 20, 'two', 2);
         ALTER TABLE a DROP COLUMN x;
         INSERT INTO a (id, y, z) VALUES (3, 'three', 3);
         ALTER TABLE a CHANGE y yy VARCHAR(20) NOT NULL DEFAULT '';
         INSERT INTO a (id, yy, z) VALUES (4, 'four-longer', 4);
         ALTER TABLE a RENAME COLUMN z TO zz, ADD COLUMN w DECIMAL(5,2) AFTER id;
         INSERT INTO a (id, w, yy, zz) VALUES (5, 1.25, 'five', 5);
         RENAME TABLE a TO b;
         INSERT INTO b (id, w, yy, zz) VALUES (6, 2.5, 'six', 6);
         UPDATE b SET yy = 'ONE' WHERE id = 1;
         TRUNCATE TABLE b;",
    )
    .await;
    running
        .wait(&log, &tb, 3, "rows after the rename, and the truncate")
        .await;
    running.stop().await;

    let evs = events(&log, &registry, &ta);
    let shapes: Vec<Vec<String>> = evs
        .iter()
        .map(|(_, t)| t.columns.iter().map(|c| c.name.clone()).collect())
        .collect();
    let names = |s: &[&str]| s.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shapes,
        vec![
            names(&["id", "x", "y"]),
            names(&["z", "id", "x", "y"]),
            names(&["z", "id", "y"]),
            names(&["z", "id", "yy"]),
            names(&["zz", "id", "w", "yy"]),
        ],
        "each row with the shape of its position"
    );
    let row = |i: usize| named(evs[i].0.after.as_ref().expect("after"), &evs[i].1);
    assert_eq!(row(2).get("y"), Some(&Datum::Text("three".into())));
    assert_eq!(row(3).get("yy"), Some(&Datum::Text("four-longer".into())));
    assert_eq!(row(4).get("zz"), Some(&Datum::Int(5)));
    assert_eq!(
        row(4).get("w"),
        Some(&Datum::Decimal {
            unscaled: vec![125],
            scale: 2
        })
    );
    let versions = registry.versions(&format!("{ta}-value")).expect("versions");
    assert_eq!(versions.len(), 5, "a version per shape");
    let evs_b = events(&log, &registry, &tb);
    assert_eq!(evs_b.len(), 3);
    assert_eq!(
        evs_b[2].0.op,
        tributary_core::Op::Truncate,
        "TRUNCATE is an op t event"
    );
    assert_eq!(
        named(evs_b[1].0.after.as_ref().expect("after"), &evs_b[1].1).get("yy"),
        Some(&Datum::Text("ONE".into())),
        "the renamed table's rows go to its new topic"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_it_cannot_follow_stops_at_the_table_with_nothing_after_acknowledged() {
    tributary_tests::init_tracing();
    let mut db = MyDb::new("ddlbad").await;
    db.exec("CREATE TABLE v (id INT PRIMARY KEY, x INT); CREATE TABLE other (id INT PRIMARY KEY)")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = config(&db.name, &["v", "other"], 1, SnapshotMode::Never);
    let mut running = Running::start(cfg.clone(), &log, &registry);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    db.exec(
        "INSERT INTO v VALUES (1, 1);
         ALTER TABLE v ADD SYSTEM VERSIONING;
         INSERT INTO other VALUES (1);",
    )
    .await;
    running
        .wait(
            &log,
            &cfg.topic(&db.name, "other"),
            1,
            "the other table goes on",
        )
        .await;
    db.exec("INSERT INTO v VALUES (2, 2)").await;
    // The refused transaction's GTID (other tests write to the binlog
    // too, so positions before it may still be stored).
    let refused: String = db
        .conn
        .query_first("SELECT @@last_gtid")
        .await
        .expect("last_gtid")
        .expect("a GTID");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !running.task.is_finished() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the source did not stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let err = running.task.await.expect("join").expect_err("stops");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{}.v", db.name)) && msg.contains("SYSTEM VERSIONING"),
        "names the table and the statement: {msg}"
    );
    let stored = tributary_connector_mysql::position::load(
        &tributary_connector_mysql::position::path(log.dir(), "my"),
    )
    .expect("read")
    .expect("stored");
    let seq = |g: &str| -> u64 {
        g.split(',')
            .find(|p| p.starts_with("0-"))
            .and_then(|p| p.rsplit('-').next())
            .and_then(|n| n.parse().ok())
            .expect("domain 0")
    };
    assert!(
        seq(&stored.position.gtid) < seq(&refused),
        "stored {} is past the refused transaction {refused}",
        stored.position.gtid
    );
    assert_eq!(events(&log, &registry, &cfg.topic(&db.name, "v")).len(), 1);
    db.drop_db().await;
}
