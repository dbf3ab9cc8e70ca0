//! `tributary validate`'s checks of a mysql source against the server,
//! and the `initial_only` snapshot mode.

use tributary_connector_mysql::source::SnapshotMode;
use tributary_core::Op;
use tributary_log::Log;
use tributary_schemas::Registry;

use super::*;

fn pipeline(db: &str, pattern: &str) -> tributary_pipeline::config::Pipeline {
    let text = format!(
        "sources:\n  - name: maria\n    kind: mysql\n    url: {URL}\n    tables:\n      include: [\"{db}.{pattern}\"]\n"
    );
    tributary_pipeline::parse(std::path::Path::new("p.yaml"), &text, &|_| None).expect("parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_lists_tables_and_names_a_table_without_a_key() {
    let mut db = MyDb::new("validate").await;
    db.exec(
        "CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY);
         CREATE TABLE nokey (x INT);",
    )
    .await;
    let ok = pipeline(&db.name, "[ab]").sources[0].check_server().await;
    // Patterns are `*` globs: `[ab]` matches nothing.
    let err = ok.expect_err("no table matches").to_string();
    assert!(err.contains("no table matches"), "{err}");
    let tables = pipeline(&db.name, "a*").sources[0]
        .check_server()
        .await
        .expect("valid");
    assert_eq!(tables, vec![(db.name.clone(), "a".to_string())]);
    let err = pipeline(&db.name, "*").sources[0]
        .check_server()
        .await
        .expect_err("a table without a key")
        .to_string();
    assert!(
        err.contains(&format!("{}.nokey", db.name)) && err.contains("ADD PRIMARY KEY"),
        "{err}"
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_only_reads_the_tables_and_stops() {
    let mut db = MyDb::new("initonly").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = config(&db.name, &["t"], 1, SnapshotMode::InitialOnly);
    let topic = cfg.topic(&db.name, "t");
    let running = Running::start(cfg, &log, &registry);
    let stats = tokio::time::timeout(std::time::Duration::from_secs(30), running.task)
        .await
        .expect("stops by itself")
        .expect("join")
        .expect("snapshot");
    assert_eq!(stats.snapshot_rows, 2);
    assert_eq!(stats.sessions, 0, "nothing streamed");
    let ops: Vec<Op> = events(&log, &registry, &topic)
        .iter()
        .map(|(e, _)| e.op)
        .collect();
    assert_eq!(ops, [Op::Read, Op::Read]);
    db.drop_db().await;
}
