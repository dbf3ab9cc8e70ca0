//! PostgreSQL and MariaDB restarted under a running source. A test binary
//! of its own: cargo runs test binaries one after another, so no other
//! test sees a server go away; here each test holds
//! `tributary_tests::services::exclusive()` so they take turns (and
//! .config/nextest.toml runs them alone under nextest).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_stream_loses_and_repeats_nothing() {
    let _services = tributary_tests::services::exclusive().await;
    tributary_tests::pg::stream_through_disruptions("restart", 2, |_| {
        tributary_tests::pg::restart_server()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_mid_stream_loses_and_repeats_nothing() {
    use mysql_async::prelude::Queryable;
    use tributary_connector_mysql::source::SnapshotMode;
    use tributary_tests::mysql::*;
    const TXS: u32 = 300;
    const ROWS_PER_TX: u32 = 10;
    let _services = tributary_tests::services::exclusive().await;
    tributary_tests::init_tracing();
    let mut db = MyDb::new("restart").await;
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = tributary_log::Log::open(dir.path().join("log")).expect("log");
    let registry =
        tributary_schemas::Registry::open(dir.path().join("registry")).expect("registry");
    let cfg = config(&db.name, &["items"], 2, SnapshotMode::Initial);
    let running = Running::start(cfg, &log, &registry);
    let start = master_position(&mut db.conn).await;
    wait_stored(
        &dir.path().join("log"),
        "my",
        &start,
        std::time::Duration::from_secs(20),
    )
    .await;
    let url = format!("{URL}{}", db.name);
    let writes = tokio::spawn(async move {
        let mut conn: Option<mysql_async::Conn> = None;
        let mut tx = 0;
        while tx < TXS {
            if conn.is_none() {
                conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).expect("url"))
                    .await
                    .ok();
            }
            let Some(c) = conn.as_mut() else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let base = tx * ROWS_PER_TX;
            let values: Vec<String> = (base..base + ROWS_PER_TX)
                .map(|i| format!("({i}, 'v{i}')"))
                .collect();
            // A failed commit (the server went away) is retried; a
            // duplicate key means it had landed after all.
            match c
                .query_drop(format!("INSERT INTO items VALUES {}", values.join(",")))
                .await
            {
                Ok(()) => tx += 1,
                Err(mysql_async::Error::Server(e)) if e.code == 1062 => tx += 1,
                Err(_) => {
                    conn = None;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
    });
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        restart_server().await;
    }
    writes.await.expect("writes");
    let mut db = db.reconnect().await;
    let end = master_position(&mut db.conn).await;
    wait_stored(
        &dir.path().join("log"),
        "my",
        &end,
        std::time::Duration::from_secs(60),
    )
    .await;
    let stats = running.stop_as("the source survives the restarts").await;
    assert!(
        stats.reconnects >= 2,
        "{} reconnects for 2 restarts",
        stats.reconnects
    );
    drop(log);
    let (total, per_key) =
        tributary_tests::pg::log_keys(dir.path(), &format!("my.{}.items", db.name));
    let want = (TXS * ROWS_PER_TX) as usize;
    assert_eq!(per_key.len(), want, "every committed row reached the log");
    assert_eq!(total, want, "no row twice");
    db.drop_db().await;
}

/// The source is stopped, MariaDB restarts twice while rows keep coming,
/// and the source resumes from a GTID in the first file: it must read on
/// across the two files each restart closed (each ends with a STOP event,
/// the next starts with a rotate) and find every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restarts_while_the_source_is_down_lose_nothing() {
    use tributary_connector_mysql::source::SnapshotMode;
    use tributary_tests::mysql::*;
    let _services = tributary_tests::services::exclusive().await;
    tributary_tests::init_tracing();
    let mut db = MyDb::new("restartdown").await;
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join("log");
    let run_until = async |db: &mut MyDb, what: &str| {
        let log = tributary_log::Log::open(&log_dir).expect("log");
        let registry =
            tributary_schemas::Registry::open(dir.path().join("registry")).expect("registry");
        let cfg = config(&db.name, &["items"], 2, SnapshotMode::Initial);
        let running = Running::start(cfg, &log, &registry);
        let at = master_position(&mut db.conn).await;
        wait_stored(&log_dir, "my", &at, std::time::Duration::from_secs(30)).await;
        running.stop_as(what).await;
    };
    let mut next = 0;
    let mut insert = async |db: &mut MyDb, n: u32| {
        for _ in 0..n {
            db.exec(&format!(
                "INSERT INTO items VALUES ({next}, 'v{next}'), ({}, 'w')",
                next + 1
            ))
            .await;
            next += 2;
        }
    };
    insert(&mut db, 5).await;
    run_until(&mut db, "first run").await;
    insert(&mut db, 5).await;
    for _ in 0..2 {
        restart_server().await;
        db = db.reconnect().await;
        insert(&mut db, 5).await;
    }
    run_until(&mut db, "after the restarts").await;
    let (total, per_key) =
        tributary_tests::pg::log_keys(dir.path(), &format!("my.{}.items", db.name));
    assert_eq!(per_key.len(), 40, "every committed row reached the log");
    assert_eq!(total, 40, "no row twice");
    db.drop_db().await;
}
