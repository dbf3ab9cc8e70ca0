//! `tributary offsets reset` on the sinks that keep their offsets in
//! their target (MariaDB's `tributary_offsets`, a Redis hash, a tantivy
//! commit's payload): after the targets lost their data, a reset to
//! earliest makes each replay the log and end equal to the source again;
//! without the reset they would resume where their stored offsets say.

use std::path::Path;

use mysql_async::prelude::Queryable as _;
use tributary_tests::mysql::MyDb;
use tributary_tests::pg::TestDb;

use crate::common::{self, redis_keys};

/// The ids of the rows cached under `prefix`.
fn cached_ids(prefix: &str) -> Vec<String> {
    let keys = redis_keys(&format!("{prefix}public.items:"));
    let mut ids: Vec<String> = keys
        .iter()
        .filter_map(|k| k.rsplit(':').next().map(str::to_string))
        .collect();
    ids.sort_by_key(|i| i.parse::<i64>().unwrap_or(i64::MAX));
    ids
}

async fn maria_ids(db: &mut MyDb) -> Vec<String> {
    db.conn
        .query::<i64, _>("SELECT id FROM items ORDER BY id")
        .await
        .map(|v| v.iter().map(i64::to_string).collect())
        .unwrap_or_default()
}

/// The ids the tantivy index holds (every hit of `*`).
fn indexed_ids(index: &Path) -> Vec<String> {
    let out = common::search(index, &["--all", "--limit", "100000"]);
    if !out.status.success() {
        return Vec::new();
    }
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|h| h["key"].as_str().map(str::to_string))
        .collect();
    ids.sort_by_key(|i| i.parse::<i64>().unwrap_or(i64::MAX));
    ids
}

async fn source_ids(db: &TestDb) -> Vec<String> {
    tributary_tests::pg::texts(db, "SELECT id::text FROM items ORDER BY items.id").await
}

async fn wait_all_equal(src: &TestDb, maria: &mut MyDb, prefix: &str, index: &Path) {
    let want = source_ids(src).await;
    common::wait_same_rows(
        "mariadb",
        async || want.clone(),
        async || maria_ids(maria).await,
    )
    .await;
    common::wait_same_rows("redis", async || want.clone(), async || cached_ids(prefix)).await;
    common::wait_same_rows(
        "tantivy",
        async || want.clone(),
        async || indexed_ids(index),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_rebuilds_mariadb_redis_and_tantivy_targets() {
    let src = TestDb::new("reset_src").await;
    let mut maria = MyDb::new("reset_dst").await;
    src.exec(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 120) g;",
    )
    .await;
    let prefix = format!("{}:", src.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let index = data.join("search/index");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}sinks:\n{}{}\
             \x20 - name: index\n    kind: tantivy\n    topics: [pg.public.items]\n",
            common::log_yaml(Some(2)),
            common::pg_source_yaml(&src.name, "public.items"),
            common::mysql_sink_yaml("maria", &maria.name, "[pg.public.items]"),
            common::redis_sink_yaml("cache", &prefix, "[pg.public.items]"),
        ),
    );
    let running = common::start(&file);
    wait_all_equal(&src, &mut maria, &prefix, &index).await;
    src.exec("DELETE FROM items WHERE id > 100; UPDATE items SET name = 'x' WHERE id = 1")
        .await;
    wait_all_equal(&src, &mut maria, &prefix, &index).await;
    common::stop(running);

    // The targets lose their rows; their stored offsets stay.
    maria.exec("DELETE FROM items").await;
    let keys = redis_keys(&format!("{prefix}public.items:"));
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query(&mut common::redis())
        .expect("DEL");
    std::fs::remove_dir_all(&index).expect("remove the index");

    // Without a reset, a restart resumes past everything: nothing comes back.
    let running = common::start(&file);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        maria_ids(&mut maria).await.is_empty(),
        "mariadb resumed from its stored offsets"
    );
    assert!(
        cached_ids(&prefix).is_empty(),
        "redis resumed from its stored offsets"
    );
    common::stop(running);

    for group in ["maria", "cache", "index"] {
        let out = common::tributary_on(
            &data,
            &[
                "offsets",
                "reset",
                "--group",
                group,
                "--topic",
                "pg.public.items",
                "--to",
                "earliest",
            ],
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{group}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text.lines().count(), 2, "one line per partition: {text}");
        assert!(text.lines().all(|l| l.ends_with(" -> 0")), "{text}");
    }
    let running = common::start(&file);
    wait_all_equal(&src, &mut maria, &prefix, &index).await;
    common::stop(running);

    common::clean_up(src, &prefix).await;
    maria.drop_db().await;
}
