//! The database sinks' errors: what the target said, and the driver's
//! error behind it kept as the source, so a reader (or `{:#}`) can follow
//! the chain to the cause.

use tributary_core::changes::TableMap;
use tributary_core::sink::{Sink, SinkError};

/// The PostgreSQL sink cannot connect to a database that does not exist:
/// a transient error (the database may be created) whose source is the
/// driver's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sink_keeps_the_driver_error_as_the_cause() {
    let cfg = tributary_tests::pg_stream_config(
        "tributary_no_such_database",
        "t",
        1,
        tributary_capture::SnapshotMode::Never,
    );
    let mut sink =
        tributary_sink_postgres::PostgresSink::new(tributary_sink_postgres::PgSinkConfig {
            name: "errors".into(),
            connect: cfg.connect,
            map: TableMap::default(),
            create_tables: false,
        });
    let err = sink.stored_offsets().await.expect_err("no such database");
    assert!(matches!(err, SinkError::Transient { .. }), "{err:?}");
    assert!(
        err.to_string().contains("tributary_no_such_database"),
        "{err}"
    );
    let cause = std::error::Error::source(&err).expect("the driver's error kept");
    assert!(
        cause.to_string().contains("tributary_no_such_database"),
        "{cause}"
    );
}

/// The MySQL sink told to use a database that does not exist: stopped
/// (error 1049 will repeat), with the server's error as the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_sink_keeps_the_server_error_as_the_cause() {
    let mut sink = tributary_sink_mysql::MySqlSink::new(tributary_sink_mysql::MySqlSinkConfig {
        name: "errors".into(),
        url: format!("{}tributary_no_such_database", tributary_tests::mysql::URL),
        map: TableMap::default(),
        create_tables: false,
    })
    .expect("sink");
    let err = sink.stored_offsets().await.expect_err("no such database");
    assert!(matches!(err, SinkError::Fatal { .. }), "{err:?}");
    assert!(err.to_string().contains("error 1049"), "{err}");
    let cause = std::error::Error::source(&err).expect("the server's error kept");
    // The server's own words, not the sink's rendering of them.
    assert!(cause.to_string().contains("Unknown database"), "{cause}");
    assert!(!cause.to_string().contains("connecting"), "{cause}");
}
