//! PostgreSQL -> log -> tantivy with `tributary run`: the search index
//! ends equal to the table, row by row, through a snapshot, inserts,
//! updates (a key change among them), deletes, a TRUNCATE, and a SIGKILL
//! in the middle of a large batch; `tributary search` and `GET
//! /search/{index}` on `tributary serve` answer queries over it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tributary_tests::pg::TestDb;

use crate::common;

/// `tributary search INDEX QUERY ...`, which must succeed: the hits, one
/// JSON object each.
fn search(index: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    common::ok(&common::search(index, args))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every indexed row as key -> (name, age), and how many hits there were
/// (more than keys: a row indexed twice). No index yet: nothing.
fn indexed(index: &Path) -> (BTreeMap<String, (String, String)>, usize) {
    if !index.join("meta.json").exists() {
        return (BTreeMap::new(), 0);
    }
    let hits = search(index, &["--all", "--limit", "1000000"]);
    let n = hits.len();
    let rows = hits
        .into_iter()
        .map(|h| {
            assert_eq!(h["table"], "public.people", "{h}");
            let text = |f: &str| h["row"][f].as_str().unwrap_or("NULL").to_string();
            let key = h["key"].as_str().expect("key").to_string();
            assert_eq!(key, text("id"), "the key is the id: {h}");
            (key, (text("name"), text("age")))
        })
        .collect();
    (rows, n)
}

async fn table(db: &TestDb) -> BTreeMap<String, (String, String)> {
    db.client
        .query(
            "SELECT id::text, name, coalesce(age::text, 'NULL') FROM people",
            &[],
        )
        .await
        .expect("select")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// Waits until the index holds exactly the table's rows, each once.
async fn wait_equal(what: &str, db: &TestDb, index: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let want = table(db).await;
        let (got, hits) = indexed(index);
        if got == want && hits == want.len() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let diff: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .take(3)
                .collect();
            panic!(
                "{what}: the index never matched the table: {} rows, {} indexed in {hits} hits; missing or different: {diff:?}",
                want.len(),
                got.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pipeline(dir: &Path, db: &TestDb, batch_size: u32) -> PathBuf {
    common::pipeline_file(
        dir,
        &format!(
            "{}{}\
             sinks:\n  - name: people\n    kind: tantivy\n\
             \x20   topics: [\"pg.public.*\"]\n    batch_size: {batch_size}\n    parallelism: 2\n\
             \x20   flush_interval_ms: 20\n",
            common::log_yaml(None),
            common::pg_source_yaml(&db.name, "public.people")
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_follows_the_table_through_changes_and_a_crash() {
    let db = TestDb::new("tantivy").await;
    db.exec(
        "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, age int);
             INSERT INTO people SELECT g, 'person ' || g, g % 90 FROM generate_series(1, 200) g;",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = pipeline(dir.path(), &db, 200);
    // No `path:`: the index is the data directory's search/<sink>.
    let index = dir.path().join("data/search/people");

    let child = common::start(&file);
    wait_equal("snapshot", &db, &index).await;
    db.exec("INSERT INTO people SELECT g, 'late ' || g, NULL FROM generate_series(201, 250) g")
        .await;
    wait_equal("inserts", &db, &index).await;
    db.exec(
        "UPDATE people SET name = 'Ada Lovelace', age = 36 WHERE id = 1;
             UPDATE people SET age = age + 1 WHERE id BETWEEN 100 AND 120;
             UPDATE people SET id = 5000 WHERE id = 50;",
    )
    .await;
    wait_equal("updates and a key change", &db, &index).await;
    // Queries over the row's columns: words, a range.
    let hits = search(&index, &["name:lovelace"]);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["key"], "1");
    assert_eq!(hits[0]["row"]["name"], "Ada Lovelace");
    assert!(hits[0]["score"].as_f64().is_some_and(|s| s > 0.0));
    let hits = search(&index, &["age:[80 TO 89]", "--limit", "1000"]);
    let want: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM people WHERE age BETWEEN 80 AND 89",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(hits.len() as i64, want, "a range over an integer column");
    db.exec("DELETE FROM people WHERE id BETWEEN 2 AND 40 OR id = 5000")
        .await;
    wait_equal("deletes", &db, &index).await;
    // A truncate between rows in one transaction: the rows before it go,
    // the rows after it stay, whichever partition holds them.
    db.exec(
        "BEGIN;
             INSERT INTO people SELECT g, 'before ' || g, 2 FROM generate_series(6000, 6100) g;
             TRUNCATE people;
             INSERT INTO people VALUES (7, 'after the truncate', 1), (8, 'also after', NULL);
             COMMIT;",
    )
    .await;
    wait_equal("a truncate between rows", &db, &index).await;

    // A large change, killed in the middle: the first rows searchable,
    // not all.
    db.exec(
        "INSERT INTO people SELECT g, 'bulk ' || g, g % 50 FROM generate_series(10000, 29999) g",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let (rows, _) = indexed(&index);
        if rows.len() > 2 {
            break rows.len();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bulk rows never showed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    common::kill(child);
    let (after_kill, _) = indexed(&index);
    eprintln!(
        "killed with {seen}..{} of 20002 rows searchable",
        after_kill.len()
    );
    assert!(
        after_kill.len() < 20_002,
        "killed before the whole change was indexed ({} rows)",
        after_kill.len()
    );
    let child = common::start(&file);
    wait_equal("after the SIGKILL", &db, &index).await;
    common::stop(child);

    // The HTTP API of `tributary serve` over the same data directory.
    http_search(&dir.path().join("data")).await;

    tributary_tests::pg::drop_db_and_slot(db).await;
}

/// `GET /search/people?q=...` on `tributary serve --data-dir data`.
async fn http_search(data: &Path) {
    let serving = common::serve(data, &[], Some(&data.with_file_name("serve.stderr")));
    let url = serving.base.clone();
    let get = async |path: &str| {
        let resp = reqwest::get(format!("{url}{path}")).await.expect("get");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.expect("a JSON body");
        (status, body)
    };
    let (status, body) = get("/search/people?q=name:truncate").await;
    assert_eq!(status, 200, "{body}");
    let hits = body["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 1, "{body}");
    assert_eq!(hits[0]["key"], "7");
    assert_eq!(hits[0]["table"], "public.people");
    assert_eq!(hits[0]["row"]["name"], "after the truncate");
    let (status, body) = get("/search/people?q=bulk&limit=5").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hits"].as_array().map(Vec::len), Some(5), "limit");
    let (status, body) = get("/search/people?q=name:(oops").await;
    assert_eq!(status, 400, "a malformed query: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let (status, body) = get("/search/nope?q=x").await;
    assert_eq!(status, 404, "an unknown index: {body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, _) = get("/search/people").await;
    assert_eq!(status, 400, "no query");
    // serve exits cleanly on SIGTERM.
    serving.stop();
}
