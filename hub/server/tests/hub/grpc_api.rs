//! The hub's gRPC API on `tributary run` and `tributary serve`, as real
//! processes with a PostgreSQL source (and a Redis sink), through the
//! tonic client of tributary-api: Produce and Fetch round trips,
//! subscriptions that follow new records, committed offsets that
//! `tributary offsets list` shows, topic numbers, pipeline status, the
//! bearer token, malformed calls that get the right code and leave the
//! server up; and the CLI in client mode (`topics`, `produce`,
//! `offsets list`, `status`) against a running hub.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tributary_api::v1::{self, hub_client::HubClient};
use tributary_tests::pg::TestDb;

use crate::common::{self, Serving, eventually, ok, tributary};

const TOPIC: &str = "pg.public.items";
const ROWS: u64 = 5;

/// A pipeline from a fresh database's `items` (ROWS rows) into the log
/// (2 partitions) and a Redis sink, running as `tributary run`.
struct PgHub {
    db: TestDb,
    _dir: tempfile::TempDir,
    data: PathBuf,
    prefix: String,
    hub: Option<Serving>,
}

impl PgHub {
    async fn start(tag: &str) -> Self {
        let db = TestDb::new(tag).await;
        db.exec(&format!(
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
                 INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {ROWS}) g;"
        ))
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let prefix = format!("{}:", db.name);
        let file = common::pipeline_file(
            dir.path(),
            &format!(
                "{}{}{}    heartbeat_ms: 200\nsinks:\n{}",
                common::log_yaml(Some(2)),
                common::SERVER_YAML,
                common::pg_source_yaml(&db.name, "public.items"),
                common::redis_sink_yaml("cache", &prefix, "[\"pg.public.*\"]")
            ),
        );
        let hub = common::run_serving(&file, &[], None);
        let me = Self {
            db,
            data: dir.path().join("data"),
            _dir: dir,
            prefix,
            hub: Some(hub),
        };
        let mut c = me.client().await;
        eventually(
            "the snapshot in the log",
            async || records_in(&mut c).await,
            |n| *n == ROWS,
        )
        .await;
        me
    }

    fn grpc(&self) -> &str {
        self.hub.as_ref().map_or("", |h| h.grpc.as_str())
    }

    /// `host:port` of the gRPC API.
    fn addr(&self) -> String {
        self.hub.as_ref().map_or(String::new(), Serving::grpc_addr)
    }

    async fn client(&self) -> HubClient<Channel> {
        connect(self.grpc()).await
    }

    /// Stops the pipeline (cleanly) and removes what the test made.
    async fn stop(mut self) {
        if let Some(hub) = self.hub.take() {
            hub.stop();
        }
        self.clean().await;
    }

    async fn clean(self) {
        common::clean_up(self.db, &self.prefix).await;
    }
}

async fn connect(url: &str) -> HubClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("uri")
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    HubClient::new(channel)
}

/// Records in the topic (0 while it does not exist).
async fn records_in(c: &mut HubClient<Channel>) -> u64 {
    match c.list_topics(v1::ListTopicsRequest {}).await {
        Ok(r) => r
            .into_inner()
            .topics
            .iter()
            .find(|t| t.name == TOPIC)
            .map_or(0, |t| t.records),
        Err(s) => panic!("ListTopics: {s}"),
    }
}

fn item(id: i64, name: &str) -> String {
    format!(r#"{{"value":{{"op":"c","after":{{"id":{id},"name":"{name}"}}}}}}"#)
}

fn json(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn describe(c: &mut HubClient<Channel>) -> v1::TopicDescription {
    c.describe_topic(v1::DescribeTopicRequest {
        topic: TOPIC.into(),
    })
    .await
    .expect("DescribeTopic")
    .into_inner()
}

fn data_arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Produce returns where each record went; Fetch there gives them back,
/// key and envelope decoded (and the stored bytes when asked); ListTopics
/// and DescribeTopic count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_fetch_round_trips_and_the_topic_numbers_match() {
    let h = PgHub::start("grpcproduce").await;
    let mut c = h.client().await;
    let produced = c
        .produce(v1::ProduceRequest {
            topic: TOPIC.into(),
            records: vec![item(100, "from grpc"), item(101, "and another")],
        })
        .await
        .expect("Produce")
        .into_inner()
        .positions;
    assert_eq!(produced.len(), 2);
    for (p, id) in produced.iter().zip([100, 101]) {
        let got = c
            .fetch(v1::FetchRequest {
                topic: TOPIC.into(),
                partition: p.partition,
                offset: p.offset,
                max_records: 1,
                format: v1::RecordFormat::JsonAndRaw.into(),
            })
            .await
            .expect("Fetch")
            .into_inner();
        assert_eq!(got.records.len(), 1, "{got:?}");
        let r = &got.records[0];
        assert_eq!((r.partition, r.offset), (p.partition, p.offset));
        assert_eq!(got.next_offset, p.offset + 1);
        assert_eq!(json(&r.key), serde_json::json!({ "id": id }));
        let value = json(&r.value);
        assert_eq!(value["op"], "c");
        assert_eq!(value["after"]["id"], id);
        assert_eq!(
            value["after"]["name"],
            if id == 100 {
                "from grpc"
            } else {
                "and another"
            }
        );
        // Confluent's wire format: magic byte 0, then the schema id.
        let raw = r.value_raw.as_deref().expect("raw value");
        assert_eq!(raw[0], 0);
        assert!(r.key_raw.as_deref().is_some_and(|k| k[0] == 0));
    }
    // JSON only: no bytes.
    let got = c
        .fetch(v1::FetchRequest {
            topic: TOPIC.into(),
            partition: produced[0].partition,
            offset: produced[0].offset,
            max_records: 0,
            format: v1::RecordFormat::Json.into(),
        })
        .await
        .expect("Fetch")
        .into_inner();
    assert!(got.records.iter().all(|r| r.value_raw.is_none()));

    let d = describe(&mut c).await;
    assert_eq!(d.partitions.len(), 2);
    assert_eq!(d.config.as_ref().map(|c| c.partitions), Some(2));
    let total: u64 = d
        .partitions
        .iter()
        .map(|p| p.high_watermark - p.earliest_offset)
        .sum();
    assert_eq!(total, ROWS + 2);
    for p in &produced {
        let info = &d.partitions[p.partition as usize];
        assert!(p.offset < info.high_watermark, "{info:?}");
        assert!(info.segments >= 1 && info.bytes > 0, "{info:?}");
    }
    let topics = c
        .list_topics(v1::ListTopicsRequest {})
        .await
        .expect("ListTopics")
        .into_inner()
        .topics;
    let t = topics.iter().find(|t| t.name == TOPIC).expect("the topic");
    assert_eq!((t.partitions, t.records), (2, ROWS + 2));
    assert_eq!(t.bytes, d.partitions.iter().map(|p| p.bytes).sum::<u64>());

    // The CLI on the data directory the hub holds: through gRPC, the
    // same numbers.
    let list = ok(&tributary(
        &["topics", "list", "--data-dir", data_arg(&h.data)],
        None,
        &[],
    ));
    assert!(
        list.contains(&format!("{TOPIC}\tpartitions=2\toffsets={}\t", ROWS + 2)),
        "{list}"
    );
    h.stop().await;
}

/// A subscription from the end gets what is produced after it started,
/// and a row the source captures meanwhile; one from the beginning of a
/// partition starts there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_receives_records_produced_after_it_started() {
    let h = PgHub::start("grpcsubscribe").await;
    let mut c = h.client().await;
    let mut stream = c
        .subscribe(v1::SubscribeRequest {
            topic: TOPIC.into(),
            partition: None,
            start: Some(v1::subscribe_request::Start::At(v1::StartAt::Latest.into())),
            format: v1::RecordFormat::Json.into(),
        })
        .await
        .expect("Subscribe")
        .into_inner();
    let produced = c
        .produce(v1::ProduceRequest {
            topic: TOPIC.into(),
            records: (200..203).map(|i| item(i, "streamed")).collect(),
        })
        .await
        .expect("Produce")
        .into_inner()
        .positions;
    h.db.exec("INSERT INTO items VALUES (300, 'captured')")
        .await;
    let mut got = Vec::new();
    while got.len() < 4 {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .unwrap_or_else(|_| panic!("no record within 30 s; got {got:?}"))
            .expect("stream");
        let r = next.expect("the stream went on");
        got.push(r);
    }
    let mut ids: Vec<i64> = got
        .iter()
        .map(|r| json(&r.key)["id"].as_i64().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, [200, 201, 202, 300]);
    // Where Produce put them.
    for p in &produced {
        assert!(
            got.iter()
                .any(|r| r.partition == p.partition && r.offset == p.offset),
            "{p:?} not in {got:?}"
        );
    }
    drop(stream);

    // From the earliest offset of partition 0: that partition's records,
    // in order.
    let d = describe(&mut c).await;
    let p0 = &d.partitions[0];
    let mut stream = c
        .subscribe(v1::SubscribeRequest {
            topic: TOPIC.into(),
            partition: Some(0),
            start: Some(v1::subscribe_request::Start::Offset(0)),
            format: v1::RecordFormat::Raw.into(),
        })
        .await
        .expect("Subscribe")
        .into_inner();
    for want in 0..p0.high_watermark {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("in time")
            .expect("stream")
            .expect("a record");
        assert_eq!((r.partition, r.offset), (0, want));
        assert!(r.value_raw.is_some() && r.value.is_empty());
    }
    drop(stream);
    // The server still answers, and stops cleanly with no subscriber.
    assert!(records_in(&mut c).await >= ROWS + 4);
    h.stop().await;
}

/// CommitOffset stores where `tributary offsets list` reads: through the
/// hub while it runs, and in the data directory after it stopped;
/// Subscribe from the group starts there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_offset_then_offsets_list_shows_it() {
    let mut h = PgHub::start("grpccommit").await;
    let mut c = h.client().await;
    let d = describe(&mut c).await;
    let p1 = &d.partitions[1];
    assert!(p1.high_watermark >= 1, "{d:?}");
    c.commit_offset(v1::CommitOffsetRequest {
        group: "readers".into(),
        topic: TOPIC.into(),
        partition: 1,
        offset: 1,
    })
    .await
    .expect("CommitOffset");
    let want = format!(
        "readers\t{TOPIC}/1\toffset=1\tend={}\tlag={}\n",
        p1.high_watermark,
        p1.high_watermark - 1
    );
    let args = [
        "offsets",
        "list",
        "--group",
        "readers",
        "--data-dir",
        data_arg(&h.data),
    ];
    assert_eq!(ok(&tributary(&args, None, &[])), want);
    // ListOffsets agrees, and the group's subscription starts at 1.
    let listed = c
        .list_offsets(v1::ListOffsetsRequest {
            group: Some("readers".into()),
        })
        .await
        .expect("ListOffsets")
        .into_inner()
        .offsets;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].offset, listed[0].end),
        (1, Some(p1.high_watermark))
    );
    let mut stream = c
        .subscribe(v1::SubscribeRequest {
            topic: TOPIC.into(),
            partition: Some(1),
            start: Some(v1::subscribe_request::Start::Group("readers".into())),
            format: v1::RecordFormat::Json.into(),
        })
        .await
        .expect("Subscribe")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("in time")
        .expect("stream")
        .expect("a record");
    assert_eq!((first.partition, first.offset), (1, 1));
    drop(stream);

    h.hub.take().expect("running").stop();
    // Stored: the directory itself says the same.
    assert_eq!(ok(&tributary(&args, None, &[])), want);
    h.clean().await;
}

/// PipelineStatus of a running pipeline shows the PostgreSQL source and
/// the Redis sink with what they did; `tributary status` prints them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_status_shows_the_source_and_the_sink() {
    let h = PgHub::start("grpcstatus").await;
    let mut c = h.client().await;
    let connectors = eventually(
        "the sink caught up",
        async || {
            c.pipeline_status(v1::PipelineStatusRequest {})
                .await
                .expect("PipelineStatus")
                .into_inner()
                .connectors
        },
        |cs| {
            cs.iter()
                .any(|c| c.name == "cache" && c.lag_records == Some(0) && c.records >= ROWS)
                && cs.iter().any(|c| {
                    c.name == "pg" && matches!(c.position, Some(v1::connector::Position::Lsn(_)))
                })
        },
    )
    .await;
    assert_eq!(connectors.len(), 2, "{connectors:?}");
    let source = &connectors[0];
    assert_eq!(
        (
            source.name.as_str(),
            source.role.as_str(),
            source.kind.as_str()
        ),
        ("pg", "source", "postgres")
    );
    assert_eq!(source.state, "running");
    assert!(source.records >= ROWS, "{source:?}");
    assert_eq!(source.restarts, 0);
    assert!(source.last_error.is_none());
    let sink = &connectors[1];
    assert_eq!(
        (sink.name.as_str(), sink.role.as_str(), sink.kind.as_str()),
        ("cache", "sink", "redis")
    );
    assert_eq!(sink.state, "running");
    assert_eq!(sink.lag_seconds, Some(0.0));
    let Some(v1::connector::Position::Offsets(o)) = &sink.position else {
        panic!("sink position {:?}", sink.position);
    };
    let committed: u64 = o.offsets.iter().map(|p| p.offset).sum();
    assert_eq!(committed, ROWS, "{o:?}");

    // `tributary status`: a table, and JSON lines.
    let addr = h.addr();
    let table = ok(&tributary(&["status", "--hub", &addr], None, &[]));
    let lines: Vec<&str> = table.lines().collect();
    // The table, then a line on the source's slot.
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[3].starts_with("pg slot: ")
            && lines[3].contains("bytes of WAL retained, wal_status reserved"),
        "{table}"
    );
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        head,
        [
            "NAME",
            "ROLE",
            "STATE",
            "POSITION",
            "LAG_RECORDS",
            "LAG_SECONDS",
            "RATE",
            "RESTARTS",
            "LAST_ERROR"
        ]
    );
    let src: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&src[..3], ["pg", "source", "running"], "{table}");
    assert!(src[3].contains('/'), "an LSN: {table}");
    assert_eq!(&src[4..6], ["-", "-"], "{table}");
    assert_eq!(&src[7..], ["0", "-"], "{table}");
    let snk: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&snk[..3], ["cache", "sink", "running"], "{table}");
    assert!(snk[3].starts_with(&format!("{TOPIC}/")), "{table}");
    assert_eq!(&snk[4..6], ["0", "0.0"], "{table}");
    assert!(snk[6].ends_with("/s"), "{table}");
    let out = ok(&tributary(
        &[
            "status",
            "--format",
            "json",
            "--data-dir",
            data_arg(&h.data),
        ],
        None,
        &[],
    ));
    let rows: Vec<Json> = out.lines().map(json).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0]["name"], "pg");
    assert_eq!(rows[1]["name"], "cache");
    assert_eq!(rows[1]["lag_records"], 0);
    assert_eq!(rows[1]["records"], ROWS);
    h.stop().await;
}

/// `tributary status` with no hub at the address: an error naming it.
#[test]
fn status_without_a_hub_names_the_address() {
    let out = tributary(&["status", "--hub", "127.0.0.1:1"], None, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no hub answers at 127.0.0.1:1"), "{err}");
}

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        tributary_api::AUTHORIZATION,
        tributary_api::bearer(token).expect("ascii"),
    );
    r
}

/// With a token (TRIBUTARY_TOKEN on `serve`): every call without it or
/// with another is UNAUTHENTICATED; with it, calls work, the CLI's too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_need_the_token() {
    let token = "grpc-tok-7f3c";
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let hub = common::serve(&data, &[("TRIBUTARY_TOKEN", token)], None);
    let mut c = connect(&hub.grpc).await;
    let refused = |r: Result<tonic::Response<v1::ListTopicsResponse>, tonic::Status>| match r {
        Ok(_) => panic!("answered without the right token"),
        Err(s) => s,
    };
    let s = refused(c.list_topics(v1::ListTopicsRequest {}).await);
    assert_eq!(s.code(), Code::Unauthenticated, "{s}");
    let s = refused(
        c.list_topics(with_token(v1::ListTopicsRequest {}, "grpc-tok-7f3d"))
            .await,
    );
    assert_eq!(s.code(), Code::Unauthenticated, "{s}");
    assert!(s.message().contains("not valid"), "{s}");
    // Every call, not just one.
    let s = c
        .pipeline_status(v1::PipelineStatusRequest {})
        .await
        .expect_err("no token");
    assert_eq!(s.code(), Code::Unauthenticated);
    let s = c
        .fetch(v1::FetchRequest {
            topic: "t".into(),
            ..Default::default()
        })
        .await
        .expect_err("no token");
    assert_eq!(s.code(), Code::Unauthenticated);

    let topics = c
        .list_topics(with_token(v1::ListTopicsRequest {}, token))
        .await
        .expect("with the token");
    assert!(topics.into_inner().topics.is_empty());
    let status = c
        .pipeline_status(with_token(v1::PipelineStatusRequest {}, token))
        .await
        .expect("with the token");
    assert!(
        status.into_inner().connectors.is_empty(),
        "serve runs no pipeline"
    );

    // The CLI: refused without the token, fine with it.
    let addr = hub.grpc_addr();
    let out = tributary(&["status", "--hub", &addr], None, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("the hub at {addr} refused")), "{err}");
    let out = tributary(
        &["topics", "list", "--data-dir", data_arg(&data)],
        None,
        &[("TRIBUTARY_TOKEN", token)],
    );
    assert_eq!(ok(&out), "");
    hub.stop();
}

/// Each malformed call gets its code and a message naming the field; a
/// refused Produce writes nothing; the server answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_calls_get_the_right_codes_and_the_server_goes_on() {
    let h = PgHub::start("grpcmalformed").await;
    let mut c = h.client().await;
    let fetch = |topic: &str, partition: u32, offset: u64| v1::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        max_records: 10,
        format: v1::RecordFormat::Json.into(),
    };
    let s = c
        .fetch(fetch("pg.public.nope", 0, 0))
        .await
        .expect_err("unknown topic");
    assert_eq!(s.code(), Code::NotFound, "{s}");
    assert!(s.message().contains("pg.public.nope"), "{s}");
    let s = c
        .fetch(fetch(TOPIC, 2, 0))
        .await
        .expect_err("partition 2 of 2");
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().starts_with("partition: "), "{s}");
    let s = c
        .fetch(fetch(TOPIC, 0, 1_000_000))
        .await
        .expect_err("offset");
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().starts_with("offset: "), "{s}");
    let s = c.fetch(fetch("", 0, 0)).await.expect_err("no topic");
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().starts_with("topic: "), "{s}");
    let mut bad_format = fetch(TOPIC, 0, 0);
    bad_format.format = 42;
    let s = c.fetch(bad_format).await.expect_err("format");
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().starts_with("format: "), "{s}");
    let s = c
        .describe_topic(v1::DescribeTopicRequest {
            topic: "pg.public.nope".into(),
        })
        .await
        .expect_err("unknown topic");
    assert_eq!(s.code(), Code::NotFound, "{s}");

    let before = records_in(&mut c).await;
    let produce = |records: Vec<String>| v1::ProduceRequest {
        topic: TOPIC.into(),
        records,
    };
    let rejection = |s: &tonic::Status| -> v1::ProduceRejection {
        prost::Message::decode(s.details()).expect("a ProduceRejection in the details")
    };
    let s = c
        .produce(produce(vec!["{not json".into()]))
        .await
        .expect_err("invalid JSON");
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().starts_with("records[0]: not JSON"), "{s}");
    assert_eq!(rejection(&s).index, 0);
    // The second record does not fit the schema: neither is written.
    let s = c
        .produce(produce(vec![
            item(400, "fine"),
            r#"{"value":{"op":"c","after":{"id":"four hundred","name":"x"}}}"#.into(),
        ]))
        .await
        .expect_err("not the schema");
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    let why = rejection(&s);
    assert_eq!(
        (why.index, why.field.as_str()),
        (1, "value.after.id"),
        "{s}"
    );
    assert!(
        s.message().starts_with("records[1]: value.after.id: "),
        "{s}"
    );
    let s = c
        .produce(produce(vec![
            r#"{"value":{"op":"c","after":{"id":401,"nam":"x"}}}"#.into(),
        ]))
        .await
        .expect_err("no such column");
    assert_eq!(rejection(&s).field, "value.after.nam", "{s}");
    let s = c
        .produce(v1::ProduceRequest {
            topic: "pg.public.nope".into(),
            records: vec![item(1, "x")],
        })
        .await
        .expect_err("unknown topic");
    assert_eq!(s.code(), Code::NotFound, "{s}");
    assert_eq!(records_in(&mut c).await, before, "a refused Produce wrote");

    let s = c
        .commit_offset(v1::CommitOffsetRequest {
            group: String::new(),
            topic: TOPIC.into(),
            partition: 0,
            offset: 0,
        })
        .await
        .expect_err("no group");
    assert!(s.message().starts_with("group: "), "{s}");
    let s = c
        .commit_offset(v1::CommitOffsetRequest {
            group: "g".into(),
            topic: TOPIC.into(),
            partition: 0,
            offset: 1_000_000,
        })
        .await
        .expect_err("past the end");
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().starts_with("offset: "), "{s}");
    let s = c
        .commit_offset(v1::CommitOffsetRequest {
            group: "g".into(),
            topic: TOPIC.into(),
            partition: 9,
            offset: 0,
        })
        .await
        .expect_err("partition");
    assert!(s.message().starts_with("partition: "), "{s}");
    let s = c
        .subscribe(v1::SubscribeRequest {
            topic: TOPIC.into(),
            partition: None,
            start: Some(v1::subscribe_request::Start::Offset(0)),
            format: 0,
        })
        .await
        .expect_err("an offset needs a partition");
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().starts_with("partition: "), "{s}");

    // Still serving: a valid call works.
    let ok_produce = c
        .produce(produce(vec![item(402, "after all that")]))
        .await
        .expect("a valid Produce");
    assert_eq!(ok_produce.into_inner().positions.len(), 1);
    assert_eq!(records_in(&mut c).await, before + 1);
    h.stop().await;
}

/// `tributary produce` through the hub: the records land, and a line that
/// does not fit is reported as on a data directory (line, field, what
/// was written), the lines before it written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_produce_through_the_hub_reports_like_on_the_directory() {
    let h = PgHub::start("grpccliproduce").await;
    let mut c = h.client().await;
    let data = data_arg(&h.data).to_string();
    let input = format!("{}\n\n{}\n", item(500, "a"), item(501, "b"));
    let out = tributary(&["produce", TOPIC, "--data-dir", &data], Some(&input), &[]);
    assert_eq!(ok(&out), format!("2 records appended to {TOPIC}\n"));
    assert_eq!(records_in(&mut c).await, ROWS + 2);
    let input = format!(
        "{}\n{}\n{}\n",
        item(502, "c"),
        item(503, "d"),
        r#"{"value":{"op":"c","after":{"id":504,"name":null}}}"#
    );
    let out = tributary(&["produce", TOPIC, "--data-dir", &data], Some(&input), &[]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: line 3: value.after.name: null in a NOT NULL column \
         (the 2 records of lines 1 to 2 were written, nothing from line 3 on)\n"
    );
    assert_eq!(records_in(&mut c).await, ROWS + 4);
    let out = tributary(
        &["produce", "pg.public.nope", "--data-dir", &data],
        Some(""),
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: unknown topic \"pg.public.nope\": produce writes to an existing topic (one a source created)\n"
    );
    // What `consume` prints through the hub is what it prints on the
    // directory once the hub stopped.
    let consume = ["consume", TOPIC, "--from-beginning", "--data-dir", &data];
    let through_hub = ok(&tributary(&consume, None, &[]));
    assert_eq!(through_hub.lines().count() as u64, ROWS + 4);
    let mut h = h;
    h.hub.take().expect("running").stop();
    assert_eq!(ok(&tributary(&consume, None, &[])), through_hub);
    h.clean().await;
}

/// `consume --follow` through the hub prints what is appended after it
/// started (over Subscribe) and ends cleanly on SIGINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_consume_follow_through_the_hub_prints_new_records() {
    let h = PgHub::start("grpcfollow").await;
    let mut c = h.client().await;
    let follower = common::follow(&[
        "consume",
        TOPIC,
        "--follow",
        "--data-dir",
        data_arg(&h.data),
    ]);
    let rx = &follower.lines;
    // The follower subscribes from the end: produce until it has printed
    // a record (it may not be subscribed yet when the first lands).
    let mut first = None;
    for i in 0..100 {
        c.produce(v1::ProduceRequest {
            topic: TOPIC.into(),
            records: vec![item(600 + i, "followed")],
        })
        .await
        .expect("Produce");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            first = Some(line);
            break;
        }
    }
    let first = json(&first.expect("consume --follow printed a record"));
    assert_eq!(first["topic"], TOPIC);
    assert_eq!(first["value"]["after"]["name"], "followed");
    let id = first["key"]["id"].as_i64().expect("id");
    // And the next one.
    c.produce(v1::ProduceRequest {
        topic: TOPIC.into(),
        records: vec![item(700, "next")],
    })
    .await
    .expect("Produce");
    let mut ids = vec![id];
    while !ids.contains(&700) {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the next record");
        ids.push(json(&line)["key"]["id"].as_i64().expect("id"));
    }
    assert!(ids.iter().all(|i| *i >= 600), "only new records: {ids:?}");
    follower.interrupt();
    h.stop().await;
}
