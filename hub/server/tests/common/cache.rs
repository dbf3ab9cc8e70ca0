//! The local Redis, where the Redis sinks write: connections, and the
//! keys under a test's prefix.

/// A connection to the local Redis.
pub fn redis() -> redis::Connection {
    try_redis().expect("Redis at 127.0.0.1:6379 (run scripts/services.sh)")
}

/// A connection to the local Redis, or `None` while it does not answer
/// (it is restarting).
pub fn try_redis() -> Option<redis::Connection> {
    redis::Client::open("redis://127.0.0.1:6379")
        .ok()?
        .get_connection()
        .ok()
}

/// Every key that starts with `prefix`.
pub fn redis_keys(prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut redis())
        .expect("KEYS")
}

/// Deletes every key that starts with `prefix`.
pub fn redis_clean(prefix: &str) {
    let keys = redis_keys(prefix);
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query(&mut redis())
            .expect("clean up");
    }
}

/// Removes what a Redis pipeline test made: the keys under `prefix`, the
/// source's slot `<db>_slot` and the database.
pub async fn clean_up(db: tributary_tests::pg::TestDb, prefix: &str) {
    redis_clean(prefix);
    tributary_tests::pg::drop_db_and_slot(db).await;
}
