//! The `tributary` binary as a user runs it. Needs the local Redis and
//! NATS (scripts/services.sh) for the benchmark's references.

use crate::common;

/// `tributary ARGS` (a benchmark), which must succeed: the last line it
/// printed.
fn summary_line(args: &[&str]) -> String {
    let stdout = common::ok(&common::tributary(args, None, &[]));
    stdout.lines().last().expect("a summary line").to_string()
}

#[test]
fn bench_log_prints_the_summary_line() {
    let last = summary_line(&["bench", "log", "--records", "20000"]);
    // log: append <N> rec/s, read <N> rec/s, redis-xadd <N> rec/s, jetstream <N> rec/s, append/redis <R>x, append/jetstream <R>x
    let words: Vec<&str> = last.split(' ').collect();
    assert_eq!(words.len(), 17, "{last}");
    assert_eq!(
        [
            words[0], words[1], words[3], words[4], words[6], words[7], words[9], words[10],
            words[12], words[13], words[15]
        ],
        [
            "log:",
            "append",
            "rec/s,",
            "read",
            "rec/s,",
            "redis-xadd",
            "rec/s,",
            "jetstream",
            "rec/s,",
            "append/redis",
            "append/jetstream"
        ],
        "{last}"
    );
    for i in [2, 5, 8, 11] {
        let n: u64 = words[i]
            .parse()
            .unwrap_or_else(|_| panic!("{:?} is not plain digits in {last}", words[i]));
        assert!(n > 0, "{last}");
    }
    for i in [14, 16] {
        let r = words[i].trim_end_matches(['x', ',']);
        assert!(
            words[i].contains('x') && r.parse::<f64>().is_ok(),
            "{:?} in {last}",
            words[i]
        );
    }
}

/// A data directory as a pipeline lays it out (`log/`, `registry/`),
/// holding topic `orders` (3 partitions, one record in partition 2).
fn pipeline_layout(dir: &std::path::Path) {
    let _registry = tributary_schemas::Registry::open(dir.join("registry")).expect("registry");
    let log = tributary_log::Log::open(dir.join("log")).expect("open");
    let t = log
        .create_topic(
            "orders",
            tributary_log::TopicConfig {
                partitions: 3,
                ..Default::default()
            },
        )
        .expect("create");
    let mut b = tributary_log::BatchBuilder::new();
    b.push(tributary_log::RecordIn {
        timestamp: 1,
        key: Some(b"a"),
        value: Some(b"b"),
        headers: &[],
    });
    t.partition(2).expect("p2").append(b).expect("append");
    log.flush().expect("flush");
}

/// `tributary ARGS --data-dir DIR`, which must succeed: its stdout.
fn stdout_of(args: &[&str], dir: &std::path::Path) -> String {
    common::ok(&common::tributary_on(dir, args, None))
}

#[test]
fn topics_describe_shows_what_the_log_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    pipeline_layout(dir.path());
    let out = stdout_of(&["topics", "describe", "orders"], dir.path());
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["partitions"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["partitions"][2]["high_watermark"], 1);
    assert_eq!(v["partitions"][0]["high_watermark"], 0);
    assert_eq!(v["config"]["partitions"], 3);
    let out = common::tributary_on(dir.path(), &["topics", "describe", "nope"], None);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("unknown topic \"nope\""));
}

/// `serve --data-dir DIR` and `topics` read the log where a pipeline
/// keeps it (DIR/log, not DIR); with `serve` running, `topics` goes
/// through its gRPC API (found in the directory) and prints the same.
#[test]
fn serve_and_topics_share_the_pipeline_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    pipeline_layout(dir.path());
    let list = stdout_of(&["topics", "list"], dir.path());
    assert!(
        list.starts_with("orders\tpartitions=3\toffsets=1\tbytes="),
        "{list}"
    );
    let describe = stdout_of(&["topics", "describe", "orders"], dir.path());

    let hub = common::serve(dir.path(), &[], None);
    let published = std::fs::read_to_string(dir.path().join("grpc.addr")).expect("grpc.addr");
    assert_eq!(format!("http://{}", published.trim()), hub.grpc);
    // The hub holds the directory: these are answered over gRPC.
    assert_eq!(stdout_of(&["topics", "list"], dir.path()), list);
    assert_eq!(
        stdout_of(&["topics", "describe", "orders"], dir.path()),
        describe
    );
    // And an explicit --hub, without a data directory at all.
    let addr = hub.grpc_addr();
    let out = common::tributary(
        &[
            "topics",
            "list",
            "--hub",
            &addr,
            "--data-dir",
            "/nonexistent",
        ],
        None,
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), list);
    hub.stop();
    assert!(
        !dir.path().join("topics").exists(),
        "serve made a log at the data directory's root"
    );
    assert!(
        !dir.path().join("grpc.addr").exists(),
        "left grpc.addr behind"
    );
    // Stopped: the directory is opened again, same answer.
    assert_eq!(stdout_of(&["topics", "list"], dir.path()), list);
}

/// `tributary serve` answers the registry API, and what it registered is
/// there after a restart (SIGTERM, then start again on the same data dir).
#[test]
fn serve_keeps_registered_schemas_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let schema = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
    let hub = common::serve(dir.path(), &[], None);
    let url = hub.base.clone();
    let id = rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{url}/subjects/orders-value/versions"))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(serde_json::json!({ "schema": schema }).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value = resp.json().await.expect("json");
        v["id"].as_u64().expect("id")
    });
    // serve exits cleanly on SIGTERM.
    hub.stop();
    let hub = common::serve(dir.path(), &[], None);
    let url = hub.base.clone();
    rt.block_on(async {
        let v: serde_json::Value =
            reqwest::get(format!("{url}/subjects/orders-value/versions/latest"))
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
        assert_eq!(v["id"].as_u64(), Some(id));
        assert_eq!(v["version"], 1);
    });
    hub.stop();
}

#[test]
fn bench_avro_prints_the_summary_line() {
    let last = summary_line(&["bench", "avro", "--events", "20000"]);
    // avro: encode <N> ev/s, decode <N> ev/s, apache-avro-value encode <N> ev/s, speedup <R>x
    let w: Vec<&str> = last.split(' ').collect();
    assert_eq!(w.len(), 13, "{last}");
    assert_eq!(
        [w[0], w[1], w[3], w[4], w[6], w[7], w[8], w[10], w[11]],
        [
            "avro:",
            "encode",
            "ev/s,",
            "decode",
            "ev/s,",
            "apache-avro-value",
            "encode",
            "ev/s,",
            "speedup"
        ],
        "{last}"
    );
    for i in [2, 5, 9] {
        assert!(
            w[i].parse::<u64>().is_ok_and(|n| n > 0),
            "{:?} in {last}",
            w[i]
        );
    }
    assert!(
        w[12]
            .strip_suffix('x')
            .is_some_and(|r| r.parse::<f64>().is_ok()),
        "{last}"
    );
}

#[test]
fn bench_pg_source_prints_the_summary_line() {
    let last = summary_line(&["bench", "pg-source", "--rows", "5000"]);
    // pg-source: <N> rows/s, pg_recvlogical <N> rows/s, ratio <R>
    let w: Vec<&str> = last.split(' ').collect();
    assert_eq!(w.len(), 8, "{last}");
    assert_eq!(
        [w[0], w[2], w[3], w[5], w[6]],
        [
            "pg-source:",
            "rows/s,",
            "pg_recvlogical",
            "rows/s,",
            "ratio"
        ],
        "{last}"
    );
    for i in [1, 4] {
        assert!(
            w[i].parse::<u64>().is_ok_and(|n| n > 0),
            "{:?} in {last}",
            w[i]
        );
    }
    assert!(w[7].parse::<f64>().is_ok(), "{last}");
}
