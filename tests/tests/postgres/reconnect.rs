//! A dropped replication connection (the walsender terminated, as a
//! network failure or a failover would) is retried with backoff; the
//! log ends with every committed row exactly once.

use super::connect;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_and_nothing_is_lost_or_repeated() {
    let admin = connect("postgres").await;
    tributary_tests::pg::stream_through_disruptions("reconnect", 4, |_| {
        let admin = &admin;
        async move {
            // Every walsender of this test's slot: its name is unique to
            // the database the helper made.
            admin
                .batch_execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                     WHERE active_pid IS NOT NULL AND slot_name LIKE 'tributary_reconnect_%'",
                )
                .await
                .expect("terminate walsender");
        }
    })
    .await;
}
