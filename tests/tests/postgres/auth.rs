//! Authentication and TLS against the real server, as
//! `scripts/services.sh` sets it up: `tributary_scram` must give its
//! password (SCRAM-SHA-256); `tributary_tls` is rejected without TLS; the
//! server's certificate is for `localhost`, signed by the test CA.

use std::path::PathBuf;
use std::time::Duration;

use tributary_connector_postgres::source::{
    SnapshotMode, StreamConfig, prepare, sql_connect, topic_name,
};
use tributary_connector_postgres::tls::SslMode;
use tributary_log::Log;
use tributary_schemas::Registry;

use super::TestDb;

fn ca() -> PathBuf {
    std::env::var_os("TRIBUTARY_PG_CA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/postgresql/tributary-tls/ca.crt"))
}

/// Snapshot of 100 rows, then 10 streamed, through `cfg`'s connections;
/// while streaming, whether the walsender's connection uses TLS.
async fn capture(db: &TestDb, cfg: StreamConfig) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path().join("log")).expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    prepare(&sql_connect(&cfg.connect).await.expect("sql"), &cfg)
        .await
        .expect("prepare");
    let (stop_tx, task) = tributary_tests::pg::spawn_source(&cfg, &log, registry);
    let topic = topic_name("pg", "public", "items");
    let rows = |log: &Log| {
        log.topic(&topic).map_or(0, |t| {
            t.partitions()
                .iter()
                .map(|p| p.high_watermark())
                .sum::<u64>()
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rows(&log) < 100 {
        assert!(!task.is_finished(), "source stopped: {:?}", task.await);
        assert!(
            tokio::time::Instant::now() < deadline,
            "snapshot did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.exec("INSERT INTO items SELECT g, 'more' FROM generate_series(101, 110) g")
        .await;
    while rows(&log) < 110 {
        assert!(!task.is_finished(), "source stopped");
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tls: bool = db
        .client
        .query_one(
            "SELECT coalesce(bool_and(s.ssl), false) FROM pg_stat_replication r \
             JOIN pg_stat_ssl s ON s.pid = r.pid WHERE r.application_name = 'tributary-test' \
             AND r.usename = $1",
            &[&cfg.connect.user],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    stop_tx.send(true).expect("stop");
    task.await.expect("join").expect("source ran cleanly");
    super::drop_slot(db, &cfg.slot).await;
    db.exec("DELETE FROM items WHERE id > 100").await;
    tls
}

async fn items_db(tag: &str) -> TestDb {
    let db = TestDb::new(tag).await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
    )
    .await;
    db
}

fn config(db: &TestDb, user: &str, host: &str, mode: SslMode) -> StreamConfig {
    let mut cfg = tributary_tests::pg_stream_config(&db.name, "items", 2, SnapshotMode::Initial);
    cfg.connect.user = user.into();
    cfg.connect.host = host.into();
    cfg.connect.ssl_mode = mode;
    cfg.connect.ssl_root_cert = Some(ca());
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_password_authenticates_both_connections() {
    let db = items_db("scram").await;
    let mut cfg = config(&db, "tributary_scram", "127.0.0.1", SslMode::Disable);
    cfg.connect.password = Some("tributary-scram-secret".into());
    assert!(
        !capture(&db, cfg.clone()).await,
        "sslmode disable is plain TCP"
    );

    cfg.connect.password = Some("wrong".into());
    let err = sql_connect(&cfg.connect).await.expect_err("wrong password");
    assert!(
        format!("{err} {:?}", std::error::Error::source(&err))
            .contains("password authentication failed"),
        "{err}"
    );
    let err = tributary_connector_postgres::replication::Connection::connect(&cfg.connect)
        .await
        .expect_err("wrong password, replication connection");
    assert!(err.to_string().contains("28P01"), "{err}");
    cfg.connect.password = None;
    let err = tributary_connector_postgres::replication::Connection::connect(&cfg.connect)
        .await
        .expect_err("no password");
    assert!(err.to_string().contains("wants a password"), "{err}");
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_and_verify_full() {
    let db = items_db("tls").await;
    // The role is rejected without TLS, so streaming at all proves both
    // connections use it; pg_stat_ssl says so for the walsender.
    for mode in [SslMode::Require, SslMode::Prefer] {
        let cfg = config(&db, "tributary_tls", "127.0.0.1", mode);
        assert!(capture(&db, cfg).await, "{mode:?}: the walsender uses TLS");
    }
    let cfg = config(&db, "tributary_tls", "localhost", SslMode::VerifyFull);
    assert!(capture(&db, cfg).await, "verify-full against localhost");

    // Refusals, each saying why.
    let plain = config(&db, "tributary_tls", "127.0.0.1", SslMode::Disable);
    let err = sql_connect(&plain.connect).await.expect_err("no TLS");
    assert!(format!("{err:?}").contains("no encryption"), "{err:?}");
    // The certificate names localhost, not 127.0.0.1.
    let wrong_name = config(&db, "tributary_tls", "127.0.0.1", SslMode::VerifyFull);
    let err = tributary_connector_postgres::replication::Connection::connect(&wrong_name.connect)
        .await
        .expect_err("name mismatch");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let err = sql_connect(&wrong_name.connect)
        .await
        .expect_err("name mismatch");
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    // A CA that did not sign the server's certificate.
    let mut other_ca = config(&db, "tributary_tls", "localhost", SslMode::VerifyFull);
    // (The server's own certificate: not a CA, and not its issuer.)
    other_ca.connect.ssl_root_cert = Some(ca().with_file_name("server.crt"));
    let err = tributary_connector_postgres::replication::Connection::connect(&other_ca.connect)
        .await
        .expect_err("unknown issuer");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let mut no_ca = config(&db, "tributary_tls", "localhost", SslMode::VerifyFull);
    no_ca.connect.ssl_root_cert = None;
    let err = sql_connect(&no_ca.connect).await.expect_err("no CA");
    assert!(err.to_string().contains("sslrootcert"), "{err}");
    db.drop_db().await;
}
