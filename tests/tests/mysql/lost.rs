//! A stored position the server no longer has: with `snapshot: initial`
//! the source stops with an error naming the position and the fix; with
//! `when_needed` it takes a new snapshot and streams from there.

use tributary_connector_mysql::position::{self, BinlogPosition, Stored};
use tributary_connector_mysql::source::SnapshotMode;
use tributary_core::Op;
use tributary_log::Log;
use tributary_schemas::Registry;

use super::*;

/// A position from a server this one never was: its binlogs cannot
/// serve it, as if they had been purged.
fn lost_position(dir: &std::path::Path) {
    position::save(
        &position::path(dir, "my"),
        &Stored {
            position: BinlogPosition {
                file: "mariadb-bin.000001".into(),
                pos: 4,
                gtid: "0-424242-7".into(),
            },
            snapshot_done: true,
            server: String::new(),
        },
    )
    .expect("seed position");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_position_is_an_error_or_a_new_snapshot() {
    tributary_tests::init_tracing();
    let mut db = MyDb::new("lost").await;
    db.exec("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    lost_position(log.dir());
    let running = Running::start(
        config(&db.name, &["t"], 1, SnapshotMode::Initial),
        &log,
        &registry,
    );
    let err = tokio::time::timeout(std::time::Duration::from_secs(30), running.task)
        .await
        .expect("stops by itself")
        .expect("join")
        .expect_err("a lost position is an error");
    let msg = err.to_string();
    assert!(
        msg.contains("0-424242-7")
            && msg.contains("when_needed")
            && msg.contains("binlog-position.json"),
        "says where it was and how to recover: {msg}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    lost_position(log.dir());
    let cfg = config(&db.name, &["t"], 1, SnapshotMode::WhenNeeded);
    let topic = cfg.topic(&db.name, "t");
    let mut running = Running::start(cfg, &log, &registry);
    running.wait(&log, &topic, 2, "the new snapshot").await;
    db.exec("INSERT INTO t VALUES (3)").await;
    running.wait(&log, &topic, 3, "streaming after it").await;
    let stats = running.stop().await;
    assert_eq!(stats.snapshot_rows, 2);
    let ops: Vec<Op> = events(&log, &registry, &topic)
        .iter()
        .map(|(e, _)| e.op)
        .collect();
    assert_eq!(ops, [Op::Read, Op::Read, Op::Create]);
    db.drop_db().await;
}
