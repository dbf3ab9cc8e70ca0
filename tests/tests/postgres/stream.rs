//! The replication connection against the real server: pgoutput protocol
//! 2 over our CopyBoth transport, decoded; a large transaction arrives
//! streamed before it commits; the flush LSN we send moves the slot's
//! `confirmed_flush_lsn`.

use std::time::Duration;

use tributary_connector_postgres::pgoutput::{Decoder, Message, TupleValue};
use tributary_connector_postgres::replication::{ConnectConfig, Connection, StreamMessage};

use super::TestDb;

fn config(db: &str) -> ConnectConfig {
    ConnectConfig {
        host: "127.0.0.1".into(),
        port: 5432,
        user: "postgres".into(),
        password: None,
        database: db.into(),
        application_name: "tributary-test".into(),
        // Small enough that a few thousand rows are streamed in progress.
        extra_options: "-c logical_decoding_work_mem=64kB".into(),
        ssl_mode: tributary_connector_postgres::tls::SslMode::Disable,
        ssl_root_cert: None,
    }
}

fn text(v: &TupleValue) -> Option<&str> {
    match v {
        TupleValue::Text(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgoutput_v2_streams_decodes_and_acknowledges() {
    let db = TestDb::new("stream").await;
    let slot = format!("{}_slot", db.name);
    db.exec("CREATE TABLE t (id int PRIMARY KEY, body text); CREATE PUBLICATION p FOR TABLE t;")
        .await;
    db.client
        .query_one(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .expect("create slot");
    db.exec(
            "BEGIN; INSERT INTO t VALUES (1, 'one'), (2, 'two'); UPDATE t SET body = 'TWO' WHERE id = 2; DELETE FROM t WHERE id = 1; COMMIT;
             INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(10, 5009) g;",
        ).await;

    let conn = Connection::connect(&config(&db.name))
        .await
        .expect("replication connection");
    let (mut reader, mut status) = conn
        .start_replication(
            &slot,
            0,
            &[
                ("proto_version", "2"),
                ("publication_names", "p"),
                ("messages", "true"),
                ("streaming", "on"),
            ],
        )
        .await
        .expect("start replication");
    let mut decoder = Decoder::new();
    let mut small = Vec::new();
    let mut streamed_inserts = 0;
    let mut saw_stream_start = false;
    let mut commits = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while commits.len() < 2 {
        let msg = tokio::time::timeout_at(deadline, reader.next())
            .await
            .expect("the changes arrive in time")
            .expect("stream")
            .expect("stream open");
        let StreamMessage::XLogData { data, .. } = msg else {
            continue;
        };
        match decoder.decode(&data).expect("pgoutput") {
            Message::StreamStart { .. } => saw_stream_start = true,
            Message::Insert { xid: Some(_), .. } => streamed_inserts += 1,
            m @ (Message::Insert { xid: None, .. }
            | Message::Update { .. }
            | Message::Delete { .. }) => small.push(m),
            Message::Commit { end_lsn, .. } | Message::StreamCommit { end_lsn, .. } => {
                commits.push(end_lsn)
            }
            _ => {}
        }
    }
    assert_eq!(small.len(), 4, "{small:?}");
    assert!(
        matches!(&small[0], Message::Insert { new, .. } if text(&new[0]) == Some("1") && text(&new[1]) == Some("one"))
    );
    assert!(matches!(&small[2], Message::Update { new, .. } if text(&new[1]) == Some("TWO")));
    assert!(matches!(&small[3], Message::Delete { old, .. } if text(&old.1[0]) == Some("1")));
    assert!(
        saw_stream_start,
        "the 5000-row transaction was streamed in progress (protocol 2)"
    );
    assert_eq!(streamed_inserts, 5000);

    // Acknowledge the first transaction only: the slot moves there.
    status
        .send_status(commits[0], commits[0], commits[0], false)
        .await
        .expect("status");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let confirmed = super::confirmed_flush_lsn(&db, &slot).await;
        if confirmed >= commits[0] {
            assert!(confirmed < commits[1], "never past what we acknowledged");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "confirmed_flush_lsn did not move"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    status.close().await.expect("close");
    drop(reader);
    super::drop_slot(&db, &slot).await;
    db.drop_db().await;
}
