//! Set-up mistakes end in errors that say what to run to fix them.

use std::time::Duration;

use tributary_capture::writer::EventWriter;
use tributary_connector_postgres::source::{SnapshotMode, SourceError, StreamSource, prepare};
use tributary_log::Log;
use tributary_schemas::Registry;

use super::{TestDb, connect};

fn source(
    dir: &std::path::Path,
    cfg: &tributary_connector_postgres::source::StreamConfig,
) -> StreamSource {
    let log = Log::open(dir.join("log")).expect("log");
    let registry = Registry::open(dir.join("registry")).expect("registry");
    StreamSource::new(cfg.clone(), log.clone(), EventWriter::new(log, registry))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_mistakes_say_how_to_fix_them() {
    let db = TestDb::new("errors").await;
    db.exec("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);")
        .await;

    // A publication that lacks a configured table.
    let mut cfg = tributary_tests::pg_stream_config(&db.name, "b", 1, SnapshotMode::Never);
    db.exec(&format!(
        "CREATE PUBLICATION {} FOR TABLE a",
        cfg.publication
    ))
    .await;
    let err = prepare(&db.client, &cfg)
        .await
        .expect_err("b is not published");
    let msg = err.to_string();
    assert!(matches!(err, SourceError::NotPublished { .. }), "{msg}");
    assert!(
        msg.contains(&format!(
            "ALTER PUBLICATION {} ADD TABLE public.b",
            cfg.publication
        )),
        "{msg}"
    );
    cfg.tables = vec![("public".into(), "a".into())];
    prepare(&db.client, &cfg).await.expect("a is published");

    // A slot that another consumer holds.
    let dir_a = tempfile::tempdir().expect("tempdir");
    let mut first = source(dir_a.path(), &cfg);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { first.run(stop_rx).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let active: bool = db
            .client
            .query_one(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&cfg.slot],
            )
            .await
            .expect("slot")
            .get(0);
        if active {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "first source never took the slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir_b = tempfile::tempdir().expect("tempdir");
    let mut second = source(dir_b.path(), &cfg);
    let (_stop2, stop_rx2) = tokio::sync::watch::channel(false);
    let err = second.run(stop_rx2).await.expect_err("the slot is taken");
    let msg = err.to_string();
    assert!(matches!(err, SourceError::SlotActive { .. }), "{msg}");
    assert!(msg.contains("pg_terminate_backend"), "{msg}");
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("first source ran cleanly");

    // A user without the REPLICATION attribute.
    let role = format!("{}_norepl", db.name);
    db.exec(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN"
    ))
    .await;
    let mut as_role = cfg.clone();
    as_role.connect.user = role.clone();
    let dir_c = tempfile::tempdir().expect("tempdir");
    let mut third = source(dir_c.path(), &as_role);
    let (_stop3, stop_rx3) = tokio::sync::watch::channel(false);
    let err = third
        .run(stop_rx3)
        .await
        .expect_err("no replication privilege");
    let msg = err.to_string();
    assert!(
        matches!(err, SourceError::NoReplicationPrivilege { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("ALTER ROLE {role} REPLICATION")),
        "{msg}"
    );

    // A table without a primary key or replica identity: its updates and
    // deletes could not say which row they change.
    db.exec("CREATE TABLE nokey (v text)").await;
    let mut nokey = tributary_tests::pg_stream_config(&db.name, "nokey", 1, SnapshotMode::Initial);
    nokey.publication = format!("{}_nokey", db.name);
    nokey.slot = format!("{}_nokey", db.name);
    let err = prepare(&db.client, &nokey)
        .await
        .expect_err("a table without a key");
    let msg = err.to_string();
    assert!(
        msg.contains("public.nokey has no primary key")
            && msg.contains("ALTER TABLE public.nokey REPLICA IDENTITY"),
        "{msg}"
    );
    // REPLICA IDENTITY FULL is a way out.
    db.exec("ALTER TABLE nokey REPLICA IDENTITY FULL").await;
    prepare(&db.client, &nokey).await.expect("full identity");

    super::drop_slot(&db, &cfg.slot).await;
    let name = db.name.clone();
    db.drop_db().await;
    let admin = connect("postgres").await;
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {name}_norepl"))
        .await
        .expect("drop role");
}
