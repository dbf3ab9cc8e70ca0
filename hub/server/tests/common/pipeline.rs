//! Pipeline files for `tributary run`, as a user writes them: the pieces
//! most tests share. Each piece is YAML text ending in a newline; a
//! section's entries may be followed by more settings of their own
//! (indented by 4).

use std::path::{Path, PathBuf};

use tributary_tests::pg::TestDb;

/// Database `db` of the local PostgreSQL, as a source or sink `url`.
pub fn pg_url(db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable")
}

/// `log:` in `data` next to the pipeline file, synced every 20 ms, with
/// `partitions` partitions per topic (`None`: the default).
pub fn log_yaml(partitions: Option<u32>) -> String {
    match partitions {
        Some(n) => format!("log:\n  dir: data\n  partitions: {n}\n  fsync_interval_ms: 20\n"),
        None => "log:\n  dir: data\n  fsync_interval_ms: 20\n".to_string(),
    }
}

/// `server:` with the HTTP API on a port of its own.
pub const SERVER_YAML: &str = "server:\n  http: 127.0.0.1:0\n";

/// `sources:` with the one PostgreSQL source `pg` on database `db` of the
/// local server, through slot `<db>_slot` and publication `<db>_pub`,
/// capturing `include` (the items of a YAML list: `public.items`).
pub fn pg_source_yaml(db: &str, include: &str) -> String {
    format!(
        "sources:\n  - name: pg\n    kind: postgres\n    url: {}\n\
         \x20   slot: {db}_slot\n    publication: {db}_pub\n\
         \x20   tables:\n      include: [{include}]\n",
        pg_url(db)
    )
}

/// An entry of `sinks:`: Redis sink `name` on the local Redis, its keys
/// under `prefix`, reading `topics` (a YAML list).
pub fn redis_sink_yaml(name: &str, prefix: &str, topics: &str) -> String {
    format!("  - name: {name}\n    kind: redis\n    prefix: \"{prefix}\"\n    topics: {topics}\n")
}

/// An entry of `sinks:`: PostgreSQL sink `name` into database `db` of the
/// local server, reading `topics` (a YAML list).
pub fn pg_sink_yaml(name: &str, db: &str, topics: &str) -> String {
    format!(
        "  - name: {name}\n    kind: postgres\n    url: {}\n    topics: {topics}\n",
        pg_url(db)
    )
}

/// An entry of `sinks:`: MariaDB sink `name` into database `db` of the
/// local server, reading `topics` (a YAML list).
pub fn mysql_sink_yaml(name: &str, db: &str, topics: &str) -> String {
    format!(
        "  - name: {name}\n    kind: mysql\n    url: mysql://root@127.0.0.1:3306/{db}\n\
         \x20   topics: {topics}\n"
    )
}

/// Writes `yaml` to `dir/pipeline.yaml`; its path.
pub fn pipeline_file(dir: &Path, yaml: &str) -> PathBuf {
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("pipeline file");
    file
}

/// A replica: every table of `public` in `src` into the PostgreSQL sink
/// `replica` on `dst` (2 partitions), the sink's further settings `sink`.
pub fn replica_yaml(src: &TestDb, dst: &TestDb, sink: &str) -> String {
    format!(
        "{}{}sinks:\n{}{sink}",
        log_yaml(Some(2)),
        pg_source_yaml(&src.name, "public.*"),
        pg_sink_yaml("replica", &dst.name, "[\"pg.public.*\"]")
    )
}

/// A database with a `customers` table (id, name, balance) of `rows` rows,
/// `balance` SQL over `g`, the row number; and its Redis key prefix
/// (`<db>:`).
pub async fn customers_db(tag: &str, rows: u32, balance: &str) -> (TestDb, String) {
    let db = TestDb::new(tag).await;
    db.exec(&format!(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2) NOT NULL);
             INSERT INTO customers SELECT g, 'c' || g, {balance} FROM generate_series(1, {rows}) g;"
        )).await;
    let prefix = format!("{}:", db.name);
    (db, prefix)
}

/// `dir/pipeline.yaml`: `db`'s customers into the Redis sink `cache` at
/// `prefix`, with the further log settings `log` (indented by 2) and sink
/// settings `sink` (indented by 4).
pub fn customers_pipeline(dir: &Path, db: &TestDb, prefix: &str, log: &str, sink: &str) -> PathBuf {
    pipeline_file(
        dir,
        &format!(
            "{}{log}{}sinks:\n{}{sink}",
            log_yaml(None),
            pg_source_yaml(&db.name, "public.customers"),
            redis_sink_yaml("cache", prefix, "[\"pg.public.*\"]")
        ),
    )
}
