//! The hub's HTTP API on `tributary run` and `tributary serve`, as real
//! processes against the local PostgreSQL and Redis: metrics that count
//! real rows, readiness, connector status without secrets, the bearer
//! token, and malformed requests that get a 4xx and leave the server up.

use std::collections::BTreeMap;
use std::time::Duration;

use tributary_tests::mysql::MyDb;
use tributary_tests::pg::TestDb;

use crate::common::{self, eventually, redis_keys};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn get(base: &str, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn json(base: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(base, path).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, v)
}

/// Every sample of a `/metrics` text, `name{labels}` -> value, after
/// checking the text is well formed: each sample belongs to a family
/// with `# HELP` and `# TYPE`, and its value is a number.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut families = BTreeMap::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let name = series.split('{').next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| families.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(families.contains_key(family), "no # TYPE for {line}");
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        out.insert(series.to_string(), v);
    }
    out
}

async fn metrics(base: &str) -> BTreeMap<String, f64> {
    let (status, text) = get(base, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    samples(&text)
}

fn connector<'a>(pipelines: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    pipelines
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no connector {name} in {pipelines}"))
}

const ROWS: i64 = 300;
const MORE: i64 = 40;

/// PostgreSQL -> log -> Redis: the metrics count the rows that flowed,
/// the live sink's lag reaches 0 while a sink whose Redis is down lags by
/// every record, and `/pipelines` says so; no password of the source's
/// URL reaches any output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_status_follow_rows_from_postgres_to_redis() {
    let db = TestDb::new("httpmetrics").await;
    db.exec(&format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, v text NOT NULL);
             INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g;"
    ))
    .await;
    let prefix = format!("{}:", db.name);
    let password = "pg-Pa55word-in-the-url";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}\
             sources:\n  - name: pg\n    kind: postgres\n\
             \x20   url: postgres://postgres:{password}@127.0.0.1:5432/{db}?sslmode=disable\n\
             \x20   slot: {db}_slot\n    publication: {db}_pub\n\
             \x20   heartbeat_ms: 200\n    tables:\n      include: [public.items]\n\
             sinks:\n{}    batch_size: 100\n{}    url: redis://127.0.0.1:1\n",
            common::log_yaml(Some(2)),
            common::SERVER_YAML,
            common::redis_sink_yaml("cache", &prefix, "[\"pg.public.*\"]"),
            common::redis_sink_yaml("down", &format!("{prefix}down:"), "[\"pg.public.*\"]"),
            db = db.name
        ),
    );
    let stderr = dir.path().join("stderr");
    let hub = common::run_serving(&file, &[], Some(&stderr));
    let base = hub.base.clone();

    eventually(
        "rows cached",
        async || redis_keys(&prefix).len(),
        |n| *n >= ROWS as usize,
    )
    .await;
    let m = eventually(
        "sink counted and caught up",
        async || metrics(&base).await,
        |m| {
            m.get(r#"tributary_sink_records_total{connector="cache",kind="redis"}"#)
                .is_some_and(|v| *v >= ROWS as f64)
                && m.get(r#"tributary_sink_lag_records{connector="cache"}"#) == Some(&0.0)
        },
    )
    .await;
    assert!(
        m[r#"tributary_source_records_total{connector="pg",kind="postgres"}"#] >= ROWS as f64,
        "{m:?}"
    );
    assert_eq!(m[r#"tributary_sink_lag_seconds{connector="cache"}"#], 0.0);
    // The sink that cannot reach its Redis has every record still to do,
    // the oldest of them waiting since the snapshot.
    assert_eq!(
        m[r#"tributary_sink_lag_records{connector="down"}"#], ROWS as f64,
        "{m:?}"
    );
    let age = m[r#"tributary_sink_lag_seconds{connector="down"}"#];
    assert!(
        age > 0.0 && age < 600.0,
        "waiting since the snapshot: {age} s"
    );
    assert_eq!(
        m[r#"tributary_sink_records_total{connector="down",kind="redis"}"#],
        0.0
    );
    assert!(m[r#"tributary_log_bytes{topic="pg.public.items"}"#] > 0.0);
    assert!(
        m[r#"tributary_log_segments{topic="pg.public.items"}"#] >= 2.0,
        "one per partition at least"
    );
    assert_eq!(
        m[r#"tributary_log_end_offset{topic="pg.public.items"}"#],
        ROWS as f64
    );
    assert!(
        m[r#"tributary_log_fsync_seconds_count"#] > 0.0,
        "the log synced"
    );
    assert_eq!(
        m[r#"tributary_log_fsync_seconds_bucket{le="+Inf"}"#],
        m["tributary_log_fsync_seconds_count"]
    );
    assert_eq!(
        m[r#"tributary_connector_running{connector="cache",role="sink"}"#],
        1.0
    );

    // More rows while streaming: the counters go on.
    db.exec(&format!(
        "INSERT INTO items SELECT g, 'more' || g FROM generate_series({}, {}) g;",
        ROWS + 1,
        ROWS + MORE
    ))
    .await;
    let m = eventually(
        "the new rows counted",
        async || metrics(&base).await,
        |m| {
            m.get(r#"tributary_sink_records_total{connector="cache",kind="redis"}"#)
                .is_some_and(|v| *v >= (ROWS + MORE) as f64)
                && m.get(r#"tributary_sink_lag_records{connector="cache"}"#) == Some(&0.0)
        },
    )
    .await;
    assert!(
        m[r#"tributary_source_records_total{connector="pg",kind="postgres"}"#]
            >= (ROWS + MORE) as f64
    );
    assert_eq!(
        redis_keys(&format!("{prefix}public.items:")).len(),
        (ROWS + MORE) as usize
    );
    // Once the source has confirmed everything, its replication lag is
    // small (heartbeats keep the stream moving).
    let m = eventually(
        "the source's replication lag known",
        async || metrics(&base).await,
        |m| m.contains_key(r#"tributary_source_replication_lag_bytes{connector="pg"}"#),
    )
    .await;
    assert!(m[r#"tributary_source_replication_lag_bytes{connector="pg"}"#] >= 0.0);

    let (status, p) = json(&base, "/pipelines").await;
    assert_eq!(status, 200);
    let pg = connector(&p, "pg");
    assert_eq!(pg["role"], "source");
    assert_eq!(pg["kind"], "postgres");
    assert_eq!(pg["state"], "running");
    assert_eq!(pg["phase"], "streaming");
    assert!(pg["records"].as_u64() >= Some((ROWS + MORE) as u64), "{pg}");
    assert!(
        pg["position"].as_str().is_some_and(|l| l.contains('/')),
        "an LSN: {pg}"
    );
    let cache = connector(&p, "cache");
    assert_eq!(cache["role"], "sink");
    assert_eq!(cache["kind"], "redis");
    assert_eq!(cache["state"], "running");
    assert_eq!(cache["lag_records"], 0);
    assert!(
        cache["records"].as_u64() >= Some((ROWS + MORE) as u64),
        "{cache}"
    );
    assert!(cache["records_per_second"].as_f64().is_some(), "{cache}");
    let committed: u64 = cache["position"]["pg.public.items"]
        .as_object()
        .map(|o| o.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(committed, (ROWS + MORE) as u64, "{cache}");
    let down = connector(&p, "down");
    assert_eq!(down["lag_records"], (ROWS + MORE) as u64, "{down}");
    assert_eq!(down["records"], 0);

    // The password is in no output: API, stdout, stderr.
    let (_, metrics_text) = get(&base, "/metrics").await;
    let (_, pipelines_text) = get(&base, "/pipelines").await;
    let (_, ready_text) = get(&base, "/ready").await;
    let out = hub.stop();
    let err = std::fs::read_to_string(&stderr).expect("stderr");
    for (what, text) in [
        ("/metrics", &metrics_text),
        ("/pipelines", &pipelines_text),
        ("/ready", &ready_text),
        ("stdout", &out),
        ("stderr", &err),
    ] {
        assert!(
            !text.contains(password),
            "{what} shows the password: {text}"
        );
    }
    assert!(out.contains("source pg: stopped"), "{out}");

    common::clean_up(db, &prefix).await;
}

/// `/health` answers at once; `/ready` is 503 with the reason while the
/// source cannot start (its table does not exist yet), then 200 once it
/// streams. A sink whose URL has a password shows its state and error in
/// `/pipelines`, never the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_200_once_the_source_streams() {
    let db = TestDb::new("httpready").await;
    let prefix = format!("{}:", db.name);
    let pg_password = "pg-secret-7a1f";
    let redis_password = "redis-secret-93bd";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}{}    password: {pg_password}\nsinks:\n{}\
             \x20   url: redis://:{redis_password}@127.0.0.1:6379\n",
            common::log_yaml(None),
            common::SERVER_YAML,
            common::pg_source_yaml(&db.name, "public.later"),
            common::redis_sink_yaml("locked", &prefix, "[\"pg.public.*\"]"),
        ),
    );
    let stderr = dir.path().join("stderr");
    let hub = common::run_serving(&file, &[], Some(&stderr));
    let base = hub.base.clone();

    let (status, health) = json(&base, "/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, ready) = eventually(
        "not ready, with the source's error",
        async || json(&base, "/ready").await,
        |(_, r)| r["reason"].as_str().is_some_and(|r| r.contains("no table")),
    )
    .await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["ready"], false);
    assert!(
        ready["reason"]
            .as_str()
            .is_some_and(|r| r.contains("source pg")),
        "{ready}"
    );
    let (_, p) = eventually(
        "the source restarting and the sink refused",
        async || json(&base, "/pipelines").await,
        |(_, p)| {
            connector(p, "pg")["state"] == "restarting"
                && connector(p, "locked")["last_error"].is_string()
        },
    )
    .await;
    let locked = connector(&p, "locked");
    assert_ne!(locked["state"], "running", "{locked}");
    let pipelines_before = p.to_string();

    db.exec(
        "CREATE TABLE later (id int PRIMARY KEY, v text);
             INSERT INTO later VALUES (1, 'a'), (2, 'b');",
    )
    .await;
    let (_, ready) = eventually(
        "ready once the table exists",
        async || json(&base, "/ready").await,
        |(s, _)| *s == 200,
    )
    .await;
    assert_eq!(ready["ready"], true, "{ready}");
    let (_, p) = json(&base, "/pipelines").await;
    assert_eq!(connector(&p, "pg")["state"], "running", "{p}");
    assert!(connector(&p, "pg")["restarts"].as_u64() >= Some(1));
    let m = metrics(&base).await;
    assert!(m[r#"tributary_connector_errors_total{connector="pg",role="source"}"#] >= 1.0);
    assert!(m[r#"tributary_connector_errors_total{connector="locked",role="sink"}"#] >= 1.0);

    let (_, metrics_text) = get(&base, "/metrics").await;
    let out = hub.stop();
    let err = std::fs::read_to_string(&stderr).expect("stderr");
    for (what, text) in [
        ("/pipelines", &pipelines_before),
        ("/pipelines", &p.to_string()),
        ("/metrics", &metrics_text),
        ("stdout", &out),
        ("stderr", &err),
    ] {
        assert!(
            !text.contains(pg_password),
            "{what} shows the password: {text}"
        );
        assert!(
            !text.contains(redis_password),
            "{what} shows the password: {text}"
        );
    }

    common::clean_up(db, &prefix).await;
}

/// A pipeline with nothing to read but a sink that waits: what the API
/// tests below need of `tributary run`.
fn idle_pipeline(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    common::pipeline_file(
        dir,
        &format!(
            "log:\n  dir: data\n{}{server}sinks:\n{}",
            common::SERVER_YAML,
            common::redis_sink_yaml("idle", "tributary-http-idle:", "[\"nothing.matches.this\"]")
        ),
    )
}

async fn status_with(base: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut r = client().get(format!("{base}{path}"));
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    let r = r.send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// Every route of every kind (the hub's, the registry's, search, unknown
/// ones) without the token or with a wrong one: 401 with a JSON error;
/// with it: the route's answer. The token is in no output.
async fn every_route_wants_the_token(base: &str, token: &str) {
    let good = format!("Bearer {token}");
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/pipelines",
        "/subjects",
        "/config",
        "/search/idle?q=*",
        "/no/such/route",
    ] {
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some(&format!("Bearer {token}x")[..]),
            Some(&format!("Basic {token}")[..]),
            Some(token),
        ] {
            let (status, body) = status_with(base, path, auth).await;
            assert_eq!(status, 401, "{path} with {auth:?}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
            assert_eq!(v["error_code"], 401, "{body}");
            assert!(v["message"].is_string(), "{body}");
            assert!(!body.contains(token), "{body}");
        }
        let (status, body) = status_with(base, path, Some(&good)).await;
        let want = match path {
            "/search/idle?q=*" | "/no/such/route" => 404,
            _ => 200,
        };
        assert_eq!(status, want, "{path} with the token: {body}");
        let (status, _) = status_with(base, path, Some(&format!("bearer {token}"))).await;
        assert_eq!(status, want, "{path}: the scheme is case-insensitive");
    }
}

/// `server.token` on `tributary run`: every route refuses requests
/// without it. The token (from the environment, `${VAR}`) is never
/// printed or logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_requests_without_the_token() {
    let token = "tok-6f1d2c9e8b";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = idle_pipeline(dir.path(), "  token: ${HTTP_TEST_TOKEN}\n");
    let stderr = dir.path().join("stderr");
    let hub = common::run_serving(
        &file,
        &[("HTTP_TEST_TOKEN", token), ("TRIBUTARY_LOG", "debug")],
        Some(&stderr),
    );
    every_route_wants_the_token(&hub.base, token).await;
    let out = hub.stop();
    let err = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(!out.contains(token), "stdout: {out}");
    assert!(!err.contains(token), "stderr: {err}");
}

/// `tributary serve` takes its token from TRIBUTARY_TOKEN, and serves
/// the hub's routes: healthy, ready once the log is open, no pipelines,
/// the log's metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_serves_the_hub_routes_behind_its_token() {
    let token = "serve-tok-41aa";
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = dir.path().join("stderr");
    let hub = common::serve(
        &dir.path().join("data"),
        &[("TRIBUTARY_TOKEN", token), ("TRIBUTARY_LOG", "debug")],
        Some(&stderr),
    );
    every_route_wants_the_token(&hub.base, token).await;
    let auth = Some(format!("Bearer {token}"));
    let (status, body) = status_with(&hub.base, "/ready", auth.as_deref()).await;
    assert_eq!((status, &body[..]), (200, r#"{"ready":true}"#));
    let (status, body) = status_with(&hub.base, "/pipelines", auth.as_deref()).await;
    assert_eq!((status, &body[..]), (200, "[]"));
    let (status, body) = status_with(&hub.base, "/metrics", auth.as_deref()).await;
    assert_eq!(status, 200);
    let m = samples(&body);
    assert!(
        m.contains_key(r#"tributary_log_fsync_seconds_bucket{le="+Inf"}"#),
        "{body}"
    );
    let out = hub.stop();
    let err = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(!out.contains(token), "stdout: {out}");
    assert!(!err.contains(token), "stderr: {err}");

    // `serve --help` does not show the environment's token either.
    let help = common::tributary(&["serve", "--help"], None, &[("TRIBUTARY_TOKEN", token)]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--token"), "{help}");
    assert!(!help.contains(token), "{help}");
}

/// Malformed requests get a 4xx, never a crash: the process answers
/// afterwards and a valid request still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_and_the_server_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = idle_pipeline(dir.path(), "");
    let mut hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    let c = client();
    let avro = "application/vnd.schemaregistry.v1+json";
    let posts: &[(&str, &str, &str)] = &[
        ("/subjects/s-value/versions", avro, "{not json"),
        ("/subjects/s-value/versions", avro, ""),
        ("/subjects/s-value/versions", avro, r#"{"schema": 42}"#),
        (
            "/subjects/s-value/versions",
            avro,
            r#"{"schema": "{\"type\": \"nope\"}"}"#,
        ),
        ("/subjects/s-value/versions", avro, r#"["an", "array"]"#),
        ("/subjects/s-value", avro, "\u{0}\u{1}binary"),
        ("/compatibility/subjects/s-value/versions/latest", avro, "{"),
        (
            "/compatibility/subjects/s-value/versions/notanumber",
            avro,
            r#"{"schema": "\"string\""}"#,
        ),
    ];
    for (path, ctype, body) in posts {
        let r = c
            .post(format!("{base}{path}"))
            .header("Content-Type", *ctype)
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "POST {path} {body:?}: {status}"
        );
    }
    let r = c
        .put(format!("{base}/config"))
        .header("Content-Type", avro)
        .body(r#"{"compatibility": "SOMETIMES"}"#)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_client_error(), "PUT /config: {}", r.status());
    for path in [
        "/search/idle",
        "/search/idle?q=*&limit=many",
        "/search/idle?q=*&limit=-1",
        "/search/idle?q=(((",
        "/search/..%2F..%2Fetc?q=*",
        "/search/?q=*",
        "/subjects/s-value/versions/notanumber",
        "/schemas/ids/notanumber",
        "/schemas/ids/99999999999999999999",
        "/no/such/route",
        "/metrics/extra",
    ] {
        let (status, body) = get(&base, path).await;
        assert!((400..500).contains(&status), "GET {path}: {status} {body}");
    }
    let r = c
        .delete(format!("{base}/health"))
        .send()
        .await
        .expect("request");
    assert!(
        r.status().is_client_error(),
        "DELETE /health: {}",
        r.status()
    );

    assert!(hub.alive(), "the process is still running");
    let (status, _) = get(&base, "/health").await;
    assert_eq!(status, 200);
    let r = c
        .post(format!("{base}/subjects/s-value/versions"))
        .header("Content-Type", avro)
        .body(r#"{"schema": "\"string\""}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200, "a valid registration still works");
    hub.stop();
}

/// A MariaDB source reports its phase, its binlog position and its lag
/// in `/pipelines` and `/metrics`, and `/ready` waits until it streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_source_reports_phase_position_and_readiness() {
    let mut db = tributary_tests::mysql::MyDb::new("httpmy").await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(20));
         INSERT INTO items VALUES (1, 'a'), (2, 'b');",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}\
             sources:\n  - name: my\n    kind: mysql\n\
             \x20   url: mysql://root@127.0.0.1:3306/\n\
             \x20   server_id: {}\n\
             \x20   tables:\n      include: [\"{}.*\"]\n\
             sinks:\n  - name: index\n    kind: tantivy\n    topics: [\"my.*\"]\n\
             {}",
            common::log_yaml(None),
            41000 + std::process::id() % 10000,
            db.name,
            common::SERVER_YAML
        ),
    );
    let hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    let (status, ready) = eventually(
        "ready once the binlog streams",
        async || json(&base, "/ready").await,
        |(s, _)| *s == 200,
    )
    .await;
    assert_eq!(ready["ready"], true, "{status} {ready}");
    db.exec("INSERT INTO items VALUES (3, 'c'); UPDATE items SET name = 'z' WHERE id = 1;")
        .await;
    let (_, p) = eventually(
        "the source streaming with a stored binlog position",
        async || json(&base, "/pipelines").await,
        |(_, p)| {
            let my = connector(p, "my");
            my["phase"] == "streaming"
                && my["records"].as_u64() >= Some(4)
                && my["position"].is_string()
        },
    )
    .await;
    let my = connector(&p, "my");
    assert_eq!(my["kind"], "mysql");
    let position = my["position"].as_str().unwrap_or_default();
    let (file_seq, offset) = position.split_once(':').expect("file:offset");
    assert!(
        file_seq.len() == 6 && file_seq.bytes().all(|b| b.is_ascii_digit()),
        "{position}"
    );
    assert!(offset.parse::<u64>().is_ok_and(|o| o > 4), "{position}");
    let m = eventually(
        "the source's lag known",
        async || metrics(&base).await,
        |m| m.contains_key(r#"tributary_source_replication_lag_bytes{connector="my"}"#),
    )
    .await;
    assert!(m[r#"tributary_source_replication_lag_bytes{connector="my"}"#] >= 0.0);
    hub.stop();
    db.drop_db().await;
}

/// A source whose failure would repeat (the registry refuses a table's
/// incompatible schema change) stops in state `failed`, says why in
/// `/pipelines`, `/ready` and the metrics, and is not restarted by
/// itself; `tributary restart` (refused while a connector runs) starts
/// it again once the cause is fixed, and every change made meanwhile
/// arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_would_fail_again_stays_failed_until_restarted() {
    let db = TestDb::new("httpfailed").await;
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v int);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a VALUES (1, 1); INSERT INTO b VALUES (1, 'one');",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}{}",
            common::log_yaml(None),
            common::SERVER_YAML,
            common::pg_source_yaml(&db.name, "public.*"),
        ),
    );
    let hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    // Streaming: the snapshot is done (a DDL would wait for its locks).
    eventually(
        "streaming",
        async || json(&base, "/pipelines").await,
        |(_, p)| connector(p, "pg")["phase"] == "streaming",
    )
    .await;
    let restart =
        |name: &str| common::tributary(&["restart", name, "--hub", &hub.grpc_addr()], None, &[]);
    let refused = restart("pg");
    assert!(!refused.status.success(), "a running source restarted");
    assert!(
        common::stderr(&refused).contains("pg is running"),
        "{}",
        common::stderr(&refused)
    );
    let unknown = restart("nope");
    assert!(common::stderr(&unknown).contains("no source or sink named"));

    // int -> text: Avro cannot read the old records with the new schema.
    db.exec(
        "ALTER TABLE a ALTER COLUMN v TYPE text USING v::text;
         INSERT INTO a VALUES (2, 'two');",
    )
    .await;
    let (_, p) = eventually(
        "the source failed",
        async || json(&base, "/pipelines").await,
        |(_, p)| connector(p, "pg")["state"] == "failed",
    )
    .await;
    let pg = connector(&p, "pg").clone();
    let error = pg["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("pg.public.a") && error.contains("incompatible"),
        "{pg}"
    );
    // Nothing retries it: the state and the restart count stay.
    db.exec("INSERT INTO b VALUES (2, 'while failed');").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, p) = json(&base, "/pipelines").await;
    assert_eq!(connector(&p, "pg")["state"], "failed", "{p}");
    assert_eq!(connector(&p, "pg")["restarts"], pg["restarts"], "{p}");
    let (status, ready) = json(&base, "/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["reason"]
            .as_str()
            .is_some_and(|r| r.contains("failed"))
    );
    let m = metrics(&base).await;
    assert_eq!(
        m[r#"tributary_connector_failed{connector="pg",role="source"}"#],
        1.0
    );

    // Fixed (the subject takes any change), then restarted by hand.
    let put = client()
        .put(format!("{base}/config/pg.public.a-value"))
        .json(&serde_json::json!({"compatibility": "NONE"}))
        .send()
        .await
        .expect("config");
    assert!(put.status().is_success(), "{put:?}");
    let out = restart("pg");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::ok(&out).contains("source pg: restarting"));
    eventually(
        "running again",
        async || json(&base, "/pipelines").await,
        |(_, p)| connector(p, "pg")["state"] == "running",
    )
    .await;
    let data = dir.path().join("data");
    for (topic, id) in [("pg.public.a", 2), ("pg.public.b", 2)] {
        eventually(
            "the changes made meanwhile",
            async || {
                common::ok(&common::tributary_on(
                    &data,
                    &["consume", topic, "--from-beginning"],
                    None,
                ))
            },
            |out| {
                out.lines().any(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .is_ok_and(|v| v["value"]["after"]["id"] == id)
                })
            },
        )
        .await;
    }
    let m = metrics(&base).await;
    assert_eq!(
        m[r#"tributary_connector_failed{connector="pg",role="source"}"#],
        0.0
    );
    hub.stop();
    tributary_tests::pg::drop_db_and_slot(db).await;
}

/// `on_error: quarantine`: a table whose change the registry refuses is
/// set aside (listed with reason and position in `/pipelines` and the
/// metrics) while the other table keeps flowing and the slot's confirmed
/// position keeps moving; `tributary tables resume` reads it again at a
/// new point, and the replica converges to the source, rows deleted
/// meanwhile included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_cannot_be_captured_is_set_aside_and_resumed() {
    let src = TestDb::new("quar_src").await;
    let dst = TestDb::new("quar_dst").await;
    src.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v int);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT g, g FROM generate_series(1, 20) g;
         INSERT INTO b VALUES (1, 'one');",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}{}    on_error: quarantine\nsinks:\n{}",
            common::log_yaml(None),
            common::SERVER_YAML,
            common::pg_source_yaml(&src.name, "public.*"),
            common::pg_sink_yaml("replica", &dst.name, "[\"pg.public.*\"]"),
        ),
    );
    let hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    tributary_tests::pg::wait_same_tables(&src, &dst, &["a", "b"]).await;

    // A NOT NULL column without a default in Avro: the registry refuses
    // the new schema (old records could not be read with it).
    src.exec(
        "ALTER TABLE a ADD COLUMN w int NOT NULL DEFAULT 5;
         INSERT INTO a (id, v) VALUES (100, 100);
         INSERT INTO b VALUES (2, 'two');",
    )
    .await;
    let (_, p) = eventually(
        "table a quarantined",
        async || json(&base, "/pipelines").await,
        |(_, p)| {
            connector(p, "pg")["quarantined"]
                .as_array()
                .is_some_and(|q| !q.is_empty())
        },
    )
    .await;
    let pg = connector(&p, "pg");
    assert_eq!(pg["state"], "running", "{pg}");
    let q = &pg["quarantined"][0];
    assert_eq!(
        (q["schema"].as_str(), q["table"].as_str()),
        (Some("public"), Some("a")),
        "{q}"
    );
    assert!(
        q["reason"]
            .as_str()
            .is_some_and(|r| r.contains("incompatible")),
        "{q}"
    );
    assert!(
        q["position"].as_str().is_some_and(|p| p.contains('/')),
        "{q}"
    );
    let m = metrics(&base).await;
    assert_eq!(
        m[r#"tributary_source_quarantined_tables{connector="pg"}"#],
        1.0
    );

    // The other table flows, and the slot moves past what a holds.
    src.exec(
        "INSERT INTO b SELECT g, 'later ' || g FROM generate_series(3, 50) g;
         UPDATE a SET v = -v WHERE id <= 5;
         DELETE FROM a WHERE id BETWEEN 6 AND 10;",
    )
    .await;
    let lsn = tributary_tests::pg::current_lsn(&src).await;
    tributary_tests::pg::wait_same_tables(&src, &dst, &["b"]).await;
    tributary_tests::pg::wait_confirmed(&src, &format!("{}_slot", src.name), lsn).await;
    let stale = tributary_tests::pg::table_rows(&dst, "a").await;
    assert_eq!(
        stale.len(),
        20,
        "a is not captured while quarantined: {stale:?}"
    );

    let resume = |table: &str| {
        common::tributary(
            &["tables", "resume", "pg", table, "--hub", &hub.grpc_addr()],
            None,
            &[],
        )
    };
    let refused = resume("public.b");
    assert!(!refused.status.success());
    assert!(
        common::stderr(&refused).contains("no quarantined table public.b"),
        "{}",
        common::stderr(&refused)
    );
    // Taken back before the cause is fixed: the source reads the table
    // again, the registry still refuses it, and it is set aside again
    // (the source keeps running).
    let since = q["since_ms"].as_i64().expect("since_ms");
    let again = resume("public.a");
    assert!(again.status.success(), "{}", common::stderr(&again));
    let (_, p) = eventually(
        "a quarantined again",
        async || json(&base, "/pipelines").await,
        |(_, p)| {
            connector(p, "pg")["quarantined"][0]["since_ms"]
                .as_i64()
                .is_some_and(|t| t > since)
        },
    )
    .await;
    assert_eq!(connector(&p, "pg")["state"], "running", "{p}");
    src.exec("INSERT INTO b VALUES (1000, 'after the second quarantine')")
        .await;
    tributary_tests::pg::wait_same_tables(&src, &dst, &["b"]).await;
    // The cause fixed, the table taken back.
    let put = client()
        .put(format!("{base}/config/pg.public.a-value"))
        .json(&serde_json::json!({"compatibility": "NONE"}))
        .send()
        .await
        .expect("config");
    assert!(put.status().is_success(), "{put:?}");
    let out = resume("public.a");
    assert!(out.status.success(), "{}", common::stderr(&out));
    tributary_tests::pg::wait_same_tables(&src, &dst, &["a", "b"]).await;
    let (_, p) = json(&base, "/pipelines").await;
    assert!(connector(&p, "pg").get("quarantined").is_none(), "{p}");
    src.exec("INSERT INTO a (id, v) VALUES (200, 200); UPDATE a SET w = 7 WHERE id = 1;")
        .await;
    tributary_tests::pg::wait_same_tables(&src, &dst, &["a"]).await;
    hub.stop();
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// Every row of `table` as the server gives it, in key order.
async fn my_table(db: &mut MyDb, table: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable as _;
    let rows: Vec<mysql_async::Row> = db
        .conn
        .query(format!("SELECT * FROM {table} ORDER BY id"))
        .await
        .unwrap_or_default();
    rows.into_iter()
        .map(|r| format!("{:?}", r.unwrap()))
        .collect()
}

async fn my_same(src: &mut MyDb, dst: &mut MyDb, table: &str) {
    let want = my_table(src, table).await;
    common::wait_same_rows(
        table,
        async || want.clone(),
        async || my_table(dst, table).await,
    )
    .await;
}

/// `on_error: quarantine` on a MariaDB source, as on PostgreSQL: a table
/// whose change the registry refuses is set aside (listed with reason
/// and binlog position) while the other table flows and the stored
/// binlog position moves on; `tributary tables resume` reads it again at
/// a new point, after a truncate barrier in each of its two partitions,
/// and the replica converges, rows deleted meanwhile included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_table_that_cannot_be_captured_is_set_aside_and_resumed() {
    let mut src = MyDb::new("myquar").await;
    let mut dst = MyDb::new("myquar_dst").await;
    let rows: Vec<String> = (1..=20).map(|i| format!("({i}, {i})")).collect();
    src.exec(&format!(
        "CREATE TABLE a (id INT PRIMARY KEY, v INT);
         CREATE TABLE b (id INT PRIMARY KEY, v TEXT);
         INSERT INTO a VALUES {};
         INSERT INTO b VALUES (1, 'one');",
        rows.join(", ")
    ))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}sources:\n  - name: my\n    kind: mysql\n\
             \x20   url: mysql://root@127.0.0.1:3306/\n\
             \x20   server_id: {}\n    on_error: quarantine\n\
             \x20   tables:\n      include: [\"{}.*\"]\nsinks:\n{}",
            common::log_yaml(Some(2)),
            common::SERVER_YAML,
            45000 + std::process::id() % 10000,
            src.name,
            common::mysql_sink_yaml("replica", &dst.name, "[\"my.*\"]"),
        ),
    );
    let hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    my_same(&mut src, &mut dst, "a").await;
    my_same(&mut src, &mut dst, "b").await;

    src.exec(
        "ALTER TABLE a ADD COLUMN w INT NOT NULL DEFAULT 5;
         INSERT INTO a (id, v) VALUES (100, 100);
         INSERT INTO b VALUES (2, 'two');",
    )
    .await;
    let (_, p) = eventually(
        "table a quarantined",
        async || json(&base, "/pipelines").await,
        |(_, p)| {
            connector(p, "my")["quarantined"]
                .as_array()
                .is_some_and(|q| !q.is_empty())
        },
    )
    .await;
    let my = connector(&p, "my");
    assert_eq!(my["state"], "running", "{my}");
    let q = &my["quarantined"][0];
    assert_eq!(
        (q["schema"].as_str(), q["table"].as_str()),
        (Some(src.name.as_str()), Some("a")),
        "{q}"
    );
    assert!(
        q["reason"]
            .as_str()
            .is_some_and(|r| r.contains("incompatible")),
        "{q}"
    );
    assert!(
        q["position"].as_str().is_some_and(|p| p.contains(':')),
        "{q}"
    );
    let m = metrics(&base).await;
    assert_eq!(
        m[r#"tributary_source_quarantined_tables{connector="my"}"#],
        1.0
    );

    // The other table flows, and the stored binlog position moves past
    // what a holds.
    let more: Vec<String> = (3..=50).map(|i| format!("({i}, 'later {i}')")).collect();
    src.exec(&format!(
        "INSERT INTO b VALUES {};
         UPDATE a SET v = -v WHERE id <= 5;
         DELETE FROM a WHERE id BETWEEN 6 AND 10;",
        more.join(", ")
    ))
    .await;
    let now = tributary_tests::mysql::master_position(&mut src.conn).await;
    my_same(&mut src, &mut dst, "b").await;
    tributary_tests::mysql::wait_stored(
        &dir.path().join("data").join("log"),
        "my",
        &now,
        Duration::from_secs(60),
    )
    .await;
    let stale = my_table(&mut dst, "a").await;
    assert_eq!(
        stale.len(),
        20,
        "a is not captured while quarantined: {stale:?}"
    );

    let table_a = format!("{}.a", src.name);
    let resume = || {
        common::tributary(
            &[
                "tables",
                "resume",
                "my",
                &table_a,
                "--hub",
                &hub.grpc_addr(),
            ],
            None,
            &[],
        )
    };
    // Taken back before the cause is fixed: read again, refused again,
    // set aside again; the source keeps running.
    let since = q["since_ms"].as_i64().expect("since_ms");
    let again = resume();
    assert!(again.status.success(), "{}", common::stderr(&again));
    let (_, p) = eventually(
        "a quarantined again",
        async || json(&base, "/pipelines").await,
        |(_, p)| {
            connector(p, "my")["quarantined"][0]["since_ms"]
                .as_i64()
                .is_some_and(|t| t > since)
        },
    )
    .await;
    assert_eq!(connector(&p, "my")["state"], "running", "{p}");
    src.exec("INSERT INTO b VALUES (1000, 'after the second quarantine')")
        .await;
    my_same(&mut src, &mut dst, "b").await;
    // The cause fixed, the table taken back.
    let put = client()
        .put(format!("{base}/config/my.{}.a-value", src.name))
        .json(&serde_json::json!({"compatibility": "NONE"}))
        .send()
        .await
        .expect("config");
    assert!(put.status().is_success(), "{put:?}");
    let out = resume();
    assert!(out.status.success(), "{}", common::stderr(&out));
    my_same(&mut src, &mut dst, "a").await;
    let (_, p) = json(&base, "/pipelines").await;
    assert!(connector(&p, "my").get("quarantined").is_none(), "{p}");
    src.exec(
        "INSERT INTO a (id, v) VALUES (200, 200);
         UPDATE a SET w = 7 WHERE id = 1;
         INSERT INTO b VALUES (2000, 'and after');",
    )
    .await;
    my_same(&mut src, &mut dst, "a").await;
    my_same(&mut src, &mut dst, "b").await;
    hub.stop();

    // A new snapshot (the position file removed, as the error for a
    // purged binlog says to) finds b's shape refused: b is set aside,
    // a is read and streamed.
    src.exec("ALTER TABLE b ADD COLUMN z INT NOT NULL DEFAULT 1; INSERT INTO a (id, v) VALUES (300, 300);")
        .await;
    let data = dir.path().join("data").join("log");
    std::fs::remove_file(tributary_connector_mysql::position::path(&data, "my"))
        .expect("remove the stored position");
    let hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    let (_, p) = eventually(
        "b quarantined by the snapshot",
        async || json(&base, "/pipelines").await,
        |(_, p)| {
            connector(p, "my")["quarantined"]
                .as_array()
                .is_some_and(|q| !q.is_empty())
        },
    )
    .await;
    let my = connector(&p, "my");
    assert_eq!(my["state"], "running", "{my}");
    assert_eq!(my["quarantined"][0]["table"], "b", "{my}");
    src.exec("INSERT INTO a (id, v) VALUES (400, 400);").await;
    my_same(&mut src, &mut dst, "a").await;
    hub.stop();
    src.drop_db().await;
    dst.drop_db().await;
}

/// `on_error: dlq`: each row of a table whose schema change the
/// registry refuses goes, as the source's text with table, position and
/// error, to `<source>.dlq`; the other table keeps flowing and the
/// source keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_cannot_be_captured_go_to_the_sources_dead_letters() {
    let src = TestDb::new("dlqsrc").await;
    let dst = TestDb::new("dlqdst").await;
    src.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v int);
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a VALUES (1, 1); INSERT INTO b VALUES (1, 'one');",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}{}    on_error: dlq\nsinks:\n{}",
            common::log_yaml(None),
            common::SERVER_YAML,
            common::pg_source_yaml(&src.name, "public.*"),
            common::pg_sink_yaml("replica", &dst.name, "[\"pg.public.*\"]"),
        ),
    );
    let hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    tributary_tests::pg::wait_same_tables(&src, &dst, &["a", "b"]).await;
    src.exec(
        "ALTER TABLE a ADD COLUMN w int NOT NULL DEFAULT 5;
         INSERT INTO a (id, v) VALUES (100, 100);
         UPDATE a SET v = 0 WHERE id = 1;
         INSERT INTO b VALUES (2, 'two');",
    )
    .await;
    tributary_tests::pg::wait_same_tables(&src, &dst, &["b"]).await;
    let data = dir.path().join("data");
    let letters = eventually(
        "two dead letters",
        async || common::dead_letter_values(&data, "pg"),
        |l| l.len() >= 2,
    )
    .await;
    let insert = &letters[0];
    assert_eq!(insert["table"], "public.a", "{insert}");
    assert_eq!(insert["op"], "c", "{insert}");
    assert_eq!(
        insert["after"],
        serde_json::json!({"id": "100", "v": "100", "w": "5"}),
        "{insert}"
    );
    assert!(
        insert["error"]
            .as_str()
            .is_some_and(|e| e.contains("incompatible")),
        "{insert}"
    );
    assert!(
        insert["position"].as_str().is_some_and(|p| p.contains('/')),
        "{insert}"
    );
    assert_eq!(insert["headers"]["tributary.table"], "public.a", "{insert}");
    let update = &letters[1];
    assert_eq!(update["op"], "u", "{update}");
    assert_eq!(update["after"]["v"], "0", "{update}");
    let (_, p) = json(&base, "/pipelines").await;
    assert_eq!(connector(&p, "pg")["state"], "running", "{p}");
    hub.stop();
    tributary_tests::pg::drop_db_and_slot(src).await;
    dst.drop_db().await;
}

/// The slot's retained WAL, `wal_status` and `safe_wal_size` are in
/// `/pipelines` and the metrics; past `max_retained_wal` the log says so.
/// An open transaction holds the slot's restart point back while other
/// sessions write WAL, so the slot retains at least what they wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slots_retained_wal_is_reported_and_warned_about() {
    let db = TestDb::new("httpslot").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (0, 'x');")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}{}    max_retained_wal: 1MiB\n",
            common::log_yaml(None),
            common::SERVER_YAML,
            common::pg_source_yaml(&db.name, "public.t"),
        ),
    );
    let stderr = dir.path().join("stderr");
    let hub = common::run_serving(&file, &[], Some(&stderr));
    let base = hub.base.clone();
    // Streaming, not just ready: a transaction opened while the slot is
    // being created would hold its creation up (it waits for every open
    // transaction to end).
    eventually(
        "streaming",
        async || json(&base, "/pipelines").await,
        |(_, p)| connector(p, "pg")["phase"] == "streaming",
    )
    .await;
    let holder = tributary_tests::pg::connect(&db.name).await;
    holder
        .batch_execute("BEGIN; INSERT INTO t VALUES (-1, 'held open');")
        .await
        .expect("open transaction");
    db.exec("INSERT INTO t SELECT g, repeat('w', 200) FROM generate_series(1, 20000) g;")
        .await;
    let (_, p) = eventually(
        "the slot retaining what was written",
        async || json(&base, "/pipelines").await,
        |(_, p)| {
            connector(p, "pg")["slot"]["retained_wal_bytes"]
                .as_u64()
                .is_some_and(|b| b > 2 << 20)
        },
    )
    .await;
    let slot = &connector(&p, "pg")["slot"];
    assert_eq!(slot["wal_status"], "reserved", "{slot}");
    assert!(
        slot["safe_wal_size"].is_null(),
        "no max_slot_wal_keep_size: {slot}"
    );
    let m = metrics(&base).await;
    assert!(
        m[r#"tributary_source_slot_retained_wal_bytes{connector="pg"}"#] > 2_000_000.0,
        "{m:?}"
    );
    assert!(!m.contains_key(r#"tributary_source_slot_safe_wal_size_bytes{connector="pg"}"#));
    let warned = eventually(
        "a warning in the log",
        async || std::fs::read_to_string(&stderr).unwrap_or_default(),
        |e| e.contains("retains more WAL than max_retained_wal"),
    )
    .await;
    assert!(
        warned.contains("1048576"),
        "the threshold in bytes: {warned}"
    );
    holder.batch_execute("COMMIT").await.expect("commit");
    hub.stop();
    tributary_tests::pg::drop_db_and_slot(db).await;
}

/// A slot PostgreSQL invalidated (`max_slot_wal_keep_size`) under
/// `snapshot: initial`: the source stops in state `failed` with an error
/// naming the slot, what was lost and the fix, and stays so. On a server
/// of its own: a tiny keep size would invalidate other tests' slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_slot_stops_an_initial_source_naming_the_fix() {
    let server = tributary_tests::pg::PrivateServer::start(&["max_slot_wal_keep_size=1MB"]);
    let admin = server.connect("postgres").await;
    admin
        .batch_execute("CREATE DATABASE app")
        .await
        .expect("db");
    let db = server.connect("app").await;
    db.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
        .await
        .expect("table");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = common::pipeline_file(
        dir.path(),
        &format!(
            "{}{}sources:\n  - name: pg\n    kind: postgres\n    url: {}\n\
             \x20   slot: app_slot\n    publication: app_pub\n\
             \x20   tables:\n      include: [public.t]\n",
            common::log_yaml(None),
            common::SERVER_YAML,
            server.url("app"),
        ),
    );
    let hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    eventually(
        "streaming",
        async || json(&base, "/ready").await,
        |(s, _)| *s == 200,
    )
    .await;
    hub.stop();
    // Far more WAL than the slot may keep, then checkpoints: PostgreSQL
    // invalidates the slot.
    db.batch_execute(
        "CREATE TABLE filler AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 20000) g;",
    )
    .await
    .expect("filler");
    let status = eventually(
        "the slot invalidated",
        async || {
            let _ = admin
                .batch_execute("SELECT pg_switch_wal(); CHECKPOINT;")
                .await;
            admin
                .query_one(
                    "SELECT COALESCE(wal_status, '') FROM pg_replication_slots WHERE slot_name = 'app_slot'",
                    &[],
                )
                .await
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_default()
        },
        |s| s == "lost",
    )
    .await;
    assert_eq!(status, "lost");

    let hub = common::run_serving(&file, &[], None);
    let base = hub.base.clone();
    let (_, p) = eventually(
        "the source failed",
        async || json(&base, "/pipelines").await,
        |(_, p)| connector(p, "pg")["state"] == "failed",
    )
    .await;
    let error = connector(&p, "pg")["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for part in [
        "app_slot",
        "invalidated",
        "changes in between are lost",
        "when_needed",
    ] {
        assert!(error.contains(part), "{part:?} not in {error}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, p) = json(&base, "/pipelines").await;
    assert_eq!(connector(&p, "pg")["state"], "failed", "{p}");
    assert_eq!(connector(&p, "pg")["restarts"], 0, "{p}");
    hub.stop();
}
