//! The local services (PostgreSQL, MariaDB, Redis, NATS) are shared by
//! every test. A test that stops or restarts one holds [`exclusive`] for
//! its whole length, so no two such tests of one process overlap.
//!
//! Between processes: `cargo test` runs test binaries one after another,
//! and those tests live in binaries of their own (`restart` here,
//! `restarts` in the `tributary` package), so nothing else runs while a
//! server goes away. `cargo nextest run` starts a process per test: the
//! `service-restarts` test group of `.config/nextest.toml` keeps them
//! apart there, and runs each alone.

/// Held by whoever stops or restarts a service.
static SERVICES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until no other test of this process is stopping or restarting a
/// service, and keeps the others waiting until the guard is dropped: hold
/// it for the whole test (`let _services = exclusive().await;`). A test
/// that panics releases it (no poisoning).
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    SERVICES.lock().await
}
