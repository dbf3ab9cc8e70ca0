//! The commands on a data directory (`consume`, `produce`, `offsets`,
//! `schemas`) as a user runs them, on what a real pipeline wrote from the
//! local PostgreSQL; and examples/event-sourcing.yaml rebuilt after an
//! offsets reset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value as Json;
use tributary_tests::pg::TestDb;

use crate::common::{self, ok, stderr};

/// `tributary ARGS --data-dir DATA`.
fn tributary(args: &[&str], data: &Path) -> Output {
    common::tributary_on(data, args, None)
}

/// `tributary ARGS --data-dir DATA`, `stdin` written to its input.
fn tributary_with_stdin(args: &[&str], data: &Path, stdin: Option<&str>) -> Output {
    common::tributary_on(data, args, stdin)
}

/// Every line of `consume TOPIC --from-beginning` as JSON.
fn consume_all(data: &Path, topic: &str) -> Vec<Json> {
    ok(&tributary(&["consume", topic, "--from-beginning"], data))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

const ITEMS: &str = "CREATE TABLE items (
    id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), at timestamptz,
    tags text[], raw bytea, day date);
INSERT INTO items SELECT g, 'item ' || g, g * 1.25, TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * interval '1 hour',
    ARRAY['a,b', NULL, 'q\"' || g], decode(md5(g::text), 'hex'), DATE '2024-01-01' + g
  FROM generate_series(1, 200) g;";

/// The source's rows as `consume` prints a row (`after`), by id.
async fn source_rows(db: &TestDb) -> BTreeMap<i64, Json> {
    db.client
        .query(
            "SELECT id, json_build_object('id', id, 'name', name, 'price', price::text,
                 'at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                 'tags', to_jsonb(tags), 'raw', '\\x' || encode(raw, 'hex'), 'day', day::text)::text
             FROM items ORDER BY id",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| {
            let id: i32 = r.get(0);
            let text: String = r.get(1);
            (
                i64::from(id),
                serde_json::from_str(&text).expect("row json"),
            )
        })
        .collect()
}

/// A source database and a data directory a pipeline wrote into (a
/// snapshot of 200 rows, then an update, deletes and an insert), the
/// pipeline stopped.
struct Captured {
    db: TestDb,
    _dir: tempfile::TempDir,
    data: PathBuf,
    slot: String,
    /// `consume --from-beginning` while the pipeline ran (over gRPC).
    through_hub: String,
}

impl Captured {
    async fn new(tag: &str) -> Self {
        let db = TestDb::new(tag).await;
        db.client.batch_execute(ITEMS).await.expect("items");
        let dir = tempfile::tempdir().expect("tempdir");
        let slot = format!("{}_slot", db.name);
        let file = common::pipeline_file(
            dir.path(),
            &format!(
                "{}{}",
                common::log_yaml(Some(2)),
                common::pg_source_yaml(&db.name, "public.items")
            ),
        );
        let data = dir.path().join("data");
        let running = common::start(&file);
        // Changes made once the slot exists are streamed, not read by the
        // snapshot; acknowledged, they (and the snapshot before them) are
        // in the log.
        tributary_tests::pg::wait_slot(
            &db,
            &slot,
            "confirmed_flush_lsn IS NOT NULL",
            Duration::from_secs(60),
        )
        .await;
        db.exec(
            "UPDATE items SET name = 'renamed', price = NULL WHERE id = 1;
                 DELETE FROM items WHERE id BETWEEN 2 AND 4;
                 INSERT INTO items (id, name, tags) VALUES (1000, 'new', '{}');",
        )
        .await;
        let lsn = tributary_tests::pg::current_lsn(&db).await;
        tributary_tests::pg::wait_confirmed_within(&db, &slot, lsn, Duration::from_secs(60)).await;
        // While the pipeline runs, the data directory is its own: a
        // command reading it goes through the hub's gRPC API.
        let through_hub = ok(&tributary(
            &["consume", "pg.public.items", "--from-beginning"],
            &data,
        ));
        common::stop(running);
        Self {
            db,
            _dir: dir,
            data,
            slot,
            through_hub,
        }
    }

    async fn drop(self) {
        tributary_tests::pg::drop_slot(&self.db, &self.slot).await;
        self.db.drop_db().await;
    }
}

/// The records' offsets per partition, as consume printed them.
fn offsets_by_partition(records: &[Json]) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in records {
        out.entry(r["partition"].as_u64().expect("partition"))
            .or_default()
            .push(r["offset"].as_u64().expect("offset"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_prints_exactly_what_the_pipeline_wrote() {
    let c = Captured::new("consume").await;
    let records = consume_all(&c.data, "pg.public.items");
    // The hub printed the same lines, byte for byte (the pipeline had
    // written everything before it was asked).
    let local = ok(&tributary(
        &["consume", "pg.public.items", "--from-beginning"],
        &c.data,
    ));
    assert_eq!(
        c.through_hub, local,
        "consume over gRPC and on the directory"
    );

    // Every offset of every partition, once, in order.
    let log = tributary_log::Log::open(c.data.join("log")).expect("log");
    let topic = log.topic("pg.public.items").expect("topic");
    let by_partition = offsets_by_partition(&records);
    for p in topic.partitions() {
        let want: Vec<u64> = (p.earliest_offset()..p.high_watermark()).collect();
        assert_eq!(
            by_partition
                .get(&u64::from(p.id()))
                .cloned()
                .unwrap_or_default(),
            want,
            "partition {}",
            p.id()
        );
    }
    drop(log);

    // The snapshot is the table as it was; the stream, the changes.
    let ops: Vec<(&str, i64)> = records
        .iter()
        .map(|r| match r["value"]["op"].as_str() {
            Some(op) => (op, r["key"]["id"].as_i64().expect("key")),
            None => ("tombstone", r["key"]["id"].as_i64().expect("key")),
        })
        .collect();
    assert_eq!(ops.iter().filter(|(op, _)| *op == "r").count(), 200);
    let mut changes: Vec<(&str, i64)> = ops.iter().copied().filter(|(op, _)| *op != "r").collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            ("c", 1000),
            ("d", 2),
            ("d", 3),
            ("d", 4),
            ("tombstone", 2),
            ("tombstone", 3),
            ("tombstone", 4),
            ("u", 1)
        ]
    );
    // Each row in table column order, as the table has it.
    let raw = ok(&tributary(
        &[
            "consume",
            "pg.public.items",
            "--from-beginning",
            "--max",
            "1",
        ],
        &c.data,
    ));
    assert!(
        raw.contains("\"after\":{\"id\":")
            && raw.contains("\"day\":")
            && raw.find("\"id\":") < raw.find("\"day\":"),
        "{raw}"
    );
    assert_eq!(raw.lines().count(), 1);

    // Replayed in order per key, the records give the source's rows.
    let mut state: BTreeMap<i64, Json> = BTreeMap::new();
    for r in &records {
        let id = r["key"]["id"].as_i64().expect("key");
        match r["value"]["op"].as_str() {
            Some("d") | None => {
                state.remove(&id);
            }
            Some(_) => {
                state.insert(id, r["value"]["after"].clone());
            }
        }
    }
    assert_eq!(state, source_rows(&c.db).await);

    // --partition, --offset, --max; the raw form.
    let p1 = ok(&tributary(
        &[
            "consume",
            "pg.public.items",
            "--partition",
            "1",
            "--offset",
            "5",
            "--max",
            "3",
        ],
        &c.data,
    ));
    let p1: Vec<Json> = p1
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        p1.iter()
            .map(|r| (r["partition"].as_u64(), r["offset"].as_u64()))
            .collect::<Vec<_>>(),
        [(Some(1), Some(5)), (Some(1), Some(6)), (Some(1), Some(7))]
    );
    let raw = ok(&tributary(
        &[
            "consume",
            "pg.public.items",
            "--from-beginning",
            "--format",
            "avro-raw",
            "--max",
            "1",
        ],
        &c.data,
    ));
    let raw: Json = serde_json::from_str(raw.trim()).expect("json");
    let value = raw["value"].as_str().expect("base64 value");
    // Magic byte 0 and a 4-byte schema id: "AAAAAA" in base64.
    assert!(value.starts_with("AAAAAA"), "{value}");
    // Without a start, only what comes after the end: nothing.
    assert_eq!(ok(&tributary(&["consume", "pg.public.items"], &c.data)), "");
    let out = tributary(&["consume", "nope", "--from-beginning"], &c.data);
    assert_eq!(stderr(&out), "error: unknown topic \"nope\"\n");
    c.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_consume_round_trips() {
    let c = Captured::new("produce").await;
    let before = consume_all(&c.data, "pg.public.items");

    // What consume printed, produced again: the same records after the
    // old ones, in the same partitions (by key), field for field.
    let lines: String = ok(&tributary(
        &["consume", "pg.public.items", "--from-beginning"],
        &c.data,
    ));
    let out = tributary_with_stdin(&["produce", "pg.public.items"], &c.data, Some(&lines));
    assert_eq!(
        ok(&out),
        format!("{} records appended to pg.public.items\n", before.len())
    );
    let after = consume_all(&c.data, "pg.public.items");
    assert_eq!(after.len(), 2 * before.len());
    let strip = |r: &Json| {
        let mut r = r.clone();
        r.as_object_mut().expect("object").remove("offset");
        r
    };
    let old: Vec<Json> = after
        .iter()
        .filter(|r| before.contains(r))
        .map(strip)
        .collect();
    let new: Vec<Json> = after
        .iter()
        .filter(|r| !before.contains(r))
        .map(strip)
        .collect();
    assert_eq!(old, new);

    // Lines written by hand: the rest of the envelope defaults, the
    // timestamp and headers are kept.
    let hand = r#"{"value":{"op":"c","after":{"id":5000,"name":"hand","price":"7","at":"2024-02-29T12:00:00.000001Z","tags":["x",null],"raw":"\\x00ff","day":"2024-02-29"}},"timestamp":1234,"headers":[{"name":"h","value":"v"},{"name":"b","base64":"//4="}]}
{"key":{"id":5000},"value":null}
"#;
    ok(&tributary_with_stdin(
        &["produce", "pg.public.items"],
        &c.data,
        Some(hand),
    ));
    let last: Vec<Json> = consume_all(&c.data, "pg.public.items")
        .into_iter()
        .filter(|r| r["key"]["id"] == 5000)
        .collect();
    assert_eq!(last.len(), 2);
    let r = &last[0];
    assert_eq!(r["timestamp"], 1234);
    assert_eq!(
        r["value"]["after"],
        serde_json::json!({"id": 5000, "name": "hand", "price": "7.00",
            "at": "2024-02-29T12:00:00.000001Z", "tags": ["x", null], "raw": "\\x00ff", "day": "2024-02-29"})
    );
    assert_eq!(r["value"]["source"]["table"], "items");
    assert_eq!(r["value"]["source"]["name"], "pg");
    assert_eq!(
        r["headers"],
        serde_json::json!([{"name": "h", "value": "v"}, {"name": "b", "base64": "//4="}])
    );
    assert_eq!(last[1]["value"], Json::Null);
    assert_eq!(
        last[1]["partition"], r["partition"],
        "a key's records share a partition"
    );

    // --follow prints what a produce appends meanwhile, until SIGINT.
    let data = c.data.to_str().expect("utf-8 path");
    let follower = common::follow(&["consume", "pg.public.items", "--follow", "--data-dir", data]);
    std::thread::sleep(Duration::from_millis(500));
    let one = r#"{"value":{"op":"c","after":{"id":6000,"name":"followed","price":null,"at":null,"tags":null,"raw":null,"day":null}}}"#;
    ok(&tributary_with_stdin(
        &["produce", "pg.public.items"],
        &c.data,
        Some(one),
    ));
    let seen: Json = serde_json::from_str(
        &follower
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("followed line"),
    )
    .expect("json");
    assert_eq!(seen["value"]["after"]["name"], "followed");
    // consume --follow ends cleanly on SIGINT.
    follower.interrupt();
    c.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_produce_line_names_the_line_and_the_field() {
    let c = Captured::new("badproduce").await;
    let before = consume_all(&c.data, "pg.public.items");
    let n = before.len();
    let row = |id: i32, price: &str| {
        format!(
            r#"{{"value":{{"op":"c","after":{{"id":{id},"name":"n","price":{price},"at":null,"tags":null,"raw":null,"day":null}}}}}}"#
        )
    };
    let input = format!(
        "{}\n{}\n{}\n{}\n",
        row(7001, "\"1.5\""),
        row(7002, "null"),
        row(7003, "\"1.234\""),
        row(7004, "null")
    );
    let out = tributary_with_stdin(&["produce", "pg.public.items"], &c.data, Some(&input));
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: line 3: value.after.price: 1.234 has 3 digits after the point, the column keeps 2 \
         (the 2 records of lines 1 to 2 were written, nothing from line 3 on)\n"
    );
    let records = consume_all(&c.data, "pg.public.items");
    assert_eq!(records.len(), n + 2);
    let mut ids: Vec<i64> = records
        .iter()
        .filter(|r| !before.contains(r))
        .map(|r| r["key"]["id"].as_i64().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, [7001, 7002]);

    // Other mistakes, each on the first line: nothing written.
    for (line, want) in [
        (
            r#"{"value":{"op":"c","after":{"id":1,"nam":"x"}}}"#.to_string(),
            "error: line 1: value.after.nam: table public.items has no such column (nothing was written)\n",
        ),
        (
            row(7005, "\"x\""),
            "error: line 1: value.after.price: expected a decimal such as \"-12.50\", found a string \"x\" (nothing was written)\n",
        ),
        (
            r#"{"value":{"op":"c","after":{"id":null,"name":"n","price":null,"at":null,"tags":null,"raw":null,"day":null}}}"#.to_string(),
            "error: line 1: value.after.id: null in a NOT NULL column (nothing was written)\n",
        ),
        (
            "not json".to_string(),
            "error: line 1: not JSON: expected ident at line 1 column 2 (nothing was written)\n",
        ),
        (
            format!("{{\"key\":{{\"id\":1}},{}", &row(7006, "null")[1..]),
            "error: line 1: key.id: 1, but value.after.id is 7006 (nothing was written)\n",
        ),
    ] {
        let out = tributary_with_stdin(&["produce", "pg.public.items"], &c.data, Some(&line));
        assert_eq!(stderr(&out), want, "{line}");
    }
    assert_eq!(consume_all(&c.data, "pg.public.items").len(), n + 2);
    let out = tributary_with_stdin(&["produce", "pg.public.nope"], &c.data, Some(""));
    assert_eq!(
        stderr(&out),
        "error: unknown topic \"pg.public.nope\": produce writes to an existing topic (one a source created)\n"
    );
    c.drop().await;
}

/// `offsets list` lines of a group: partition -> (offset, pending reset).
fn group_offsets(data: &Path, group: &str) -> BTreeMap<String, (u64, Option<u64>)> {
    ok(&tributary(&["offsets", "list", "--group", group], data))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f[0], group, "{l}");
            let field = |name: &str| {
                f.iter()
                    .find_map(|x| x.strip_prefix(name))
                    .map(|v| v.parse::<u64>().expect("number"))
            };
            (
                f[1].to_string(),
                (field("offset=").expect("offset"), field("reset_pending=")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_list_and_reset_move_a_group() {
    let c = Captured::new("offsets").await;
    let topic = "pg.public.items";
    let ends: BTreeMap<u64, u64> = offsets_by_partition(&consume_all(&c.data, topic))
        .into_iter()
        .map(|(p, o)| (p, o.last().map_or(0, |l| l + 1)))
        .collect();
    // A group that read three records of each partition, committed.
    for p in ["0", "1"] {
        ok(&tributary(
            &[
                "consume",
                topic,
                "--group",
                "g",
                "--commit",
                "--partition",
                p,
                "--max",
                "3",
            ],
            &c.data,
        ));
    }
    let listed = group_offsets(&c.data, "g");
    let want: BTreeMap<String, (u64, Option<u64>)> = [
        (format!("{topic}/0"), (3, None)),
        (format!("{topic}/1"), (3, None)),
    ]
    .into();
    assert_eq!(listed, want);
    let line = ok(&tributary(&["offsets", "list"], &c.data));
    assert_eq!(
        line.lines().next(),
        Some(
            format!(
                "g\t{topic}/0\toffset=3\tend={}\tlag={}",
                ends[&0],
                ends[&0] - 3
            )
            .as_str()
        )
    );
    // --group G starts where the group is, without committing.
    let next = ok(&tributary(
        &[
            "consume",
            topic,
            "--group",
            "g",
            "--partition",
            "0",
            "--max",
            "1",
        ],
        &c.data,
    ));
    let next: Json = serde_json::from_str(next.trim()).expect("json");
    assert_eq!(next["offset"], 3);
    assert_eq!(group_offsets(&c.data, "g")[&format!("{topic}/0")].0, 3);

    // To the end, to an offset, to the start.
    let out = ok(&tributary(
        &[
            "offsets", "reset", "--group", "g", "--topic", topic, "--to", "latest",
        ],
        &c.data,
    ));
    assert_eq!(
        out,
        format!(
            "g\t{topic}/0\t3 -> {}\ng\t{topic}/1\t3 -> {}\n",
            ends[&0], ends[&1]
        )
    );
    let out = ok(&tributary(
        &[
            "offsets",
            "reset",
            "--group",
            "g",
            "--topic",
            topic,
            "--partition",
            "1",
            "--to",
            "10",
        ],
        &c.data,
    ));
    assert_eq!(out, format!("g\t{topic}/1\t{} -> 10\n", ends[&1]));
    let out = ok(&tributary(
        &[
            "offsets",
            "reset",
            "--group",
            "g",
            "--topic",
            "pg.public.*",
            "--to",
            "earliest",
        ],
        &c.data,
    ));
    assert_eq!(
        out,
        format!("g\t{topic}/0\t{} -> 0\ng\t{topic}/1\t10 -> 0\n", ends[&0])
    );
    assert_eq!(
        group_offsets(&c.data, "g"),
        [
            (format!("{topic}/0"), (0, Some(0))),
            (format!("{topic}/1"), (0, Some(0))),
        ]
        .into()
    );
    let out = tributary(
        &[
            "offsets", "reset", "--group", "g", "--topic", topic, "--to", "99999",
        ],
        &c.data,
    );
    assert_eq!(
        stderr(&out),
        format!(
            "error: offset 99999 is not in {topic}/0: it holds offsets 0 to {} (the end is {})\n",
            ends[&0] - 1,
            ends[&0]
        )
    );

    // To a time: records produced an hour, two and three hours ahead;
    // per partition the first at or after two hours, the end where none.
    let now = tributary_log::now_ms();
    let hour = 3_600_000;
    let mut lines = String::new();
    for (i, id) in (8000..8012).enumerate() {
        lines.push_str(&format!(
            r#"{{"value":{{"op":"c","after":{{"id":{id},"name":"t","price":null,"at":null,"tags":null,"raw":null,"day":null}}}},"timestamp":{}}}"#,
            now + hour * (1 + i as i64 % 3)
        ));
        lines.push('\n');
    }
    ok(&tributary_with_stdin(
        &["produce", topic],
        &c.data,
        Some(&lines),
    ));
    let records = consume_all(&c.data, topic);
    let at = now + 2 * hour;
    let mut want = BTreeMap::new();
    for p in [0u64, 1] {
        let mine: Vec<&Json> = records.iter().filter(|r| r["partition"] == p).collect();
        let first = mine
            .iter()
            .find(|r| r["timestamp"].as_i64().expect("ts") >= at)
            .map_or(mine.len() as u64, |r| r["offset"].as_u64().expect("offset"));
        want.insert(format!("{topic}/{p}"), (first, Some(first)));
    }
    let rfc3339 = {
        // Whole milliseconds of `at`, in UTC.
        let secs = at.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let (y, m, d) = tributary_core::render::civil_from_days(days);
        let s = secs.rem_euclid(86_400);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            s / 3600,
            s / 60 % 60,
            s % 60,
            at.rem_euclid(1000)
        )
    };
    ok(&tributary(
        &[
            "offsets", "reset", "--group", "g", "--topic", topic, "--to", &rfc3339,
        ],
        &c.data,
    ));
    assert_eq!(group_offsets(&c.data, "g"), want);
    // The same instant with an offset of its own.
    let shifted = rfc3339.replace('Z', "+00:00");
    ok(&tributary(
        &[
            "offsets", "reset", "--group", "g", "--topic", topic, "--to", &shifted,
        ],
        &c.data,
    ));
    assert_eq!(group_offsets(&c.data, "g"), want);
    let out = tributary(
        &[
            "offsets",
            "reset",
            "--group",
            "g",
            "--topic",
            topic,
            "--to",
            "yesterday",
        ],
        &c.data,
    );
    assert_eq!(
        stderr(&out),
        "error: --to \"yesterday\": expected earliest, latest, an offset, or an RFC 3339 timestamp such as 2024-02-29T12:00:00Z\n"
    );

    // The registry of the same directory.
    let subjects = ok(&tributary(&["schemas", "list"], &c.data));
    assert_eq!(
        subjects,
        "pg.public.items-key\tversions=1\tlatest=1\tid=1\npg.public.items-value\tversions=1\tlatest=1\tid=2\n"
    );
    let shown: Json = serde_json::from_str(&ok(&tributary(
        &["schemas", "show", "pg.public.items-value", "--version", "1"],
        &c.data,
    )))
    .expect("json");
    assert_eq!(shown["id"], 2);
    assert_eq!(shown["schema"]["name"], "Envelope");
    let out = tributary(
        &["schemas", "show", "pg.public.items-value", "--version", "2"],
        &c.data,
    );
    assert_eq!(stderr(&out), "error: Version 2 not found.\n");
    c.drop().await;
}

async fn wait_equal(src: &TestDb, dst: &TestDb) {
    tributary_tests::pg::wait_same_tables(src, dst, &["accounts", "entries"]).await;
}

/// examples/event-sourcing.yaml as shipped: the read model thrown away
/// and rebuilt from the log after `offsets reset --to earliest`, with
/// changes made while the pipeline was stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_sourcing_read_model_is_rebuilt_after_a_reset() {
    let src = TestDb::new("ledger").await;
    let dst = TestDb::new("ledger_read").await;
    src.exec(
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL);
             CREATE TABLE entries (id bigint PRIMARY KEY, account int NOT NULL, amount numeric(12,2) NOT NULL, at timestamptz NOT NULL);
             INSERT INTO accounts SELECT g, 'owner ' || g, 0 FROM generate_series(1, 50) g;
             INSERT INTO entries SELECT g, 1 + g % 50, g * 0.5, TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * interval '1 minute'
               FROM generate_series(1, 500) g;
             UPDATE accounts a SET balance = (SELECT sum(amount) FROM entries e WHERE e.account = a.id);",
        ).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/event-sourcing.yaml");
    let slot = format!("{}_slot", src.name);
    let publication = format!("{}_pub", src.name);
    let data_text = data.display().to_string();
    let env = [
        ("TRIBUTARY_DATA", data_text.as_str()),
        ("PGDATABASE", src.name.as_str()),
        ("TRIBUTARY_SLOT", slot.as_str()),
        ("TRIBUTARY_PUBLICATION", publication.as_str()),
        ("READ_MODEL_DATABASE", dst.name.as_str()),
    ];
    let running = common::start_with_env(&example, &env);
    wait_equal(&src, &dst).await;
    src.exec(
        "INSERT INTO entries VALUES (501, 7, 12.5, now());
             UPDATE accounts SET balance = balance + 12.5 WHERE id = 7;
             DELETE FROM entries WHERE id <= 10;",
    )
    .await;
    wait_equal(&src, &dst).await;
    common::stop(running);

    // Rebuild: reset the sink's group, throw the read model away, change
    // the source meanwhile, run again.
    let out = ok(&tributary(
        &[
            "offsets",
            "reset",
            "--group",
            "read_model",
            "--topic",
            "ledger.public.*",
            "--to",
            "earliest",
        ],
        &data,
    ));
    let changed: Vec<&str> = out.lines().collect();
    assert_eq!(changed.len(), 4, "{out}");
    for l in &changed {
        assert!(
            l.starts_with("read_model\tledger.public.") && l.ends_with(" -> 0"),
            "{l}"
        );
    }
    dst.exec("TRUNCATE accounts, entries").await;
    src.exec(
        "UPDATE accounts SET owner = 'renamed' WHERE id = 3;
             INSERT INTO entries VALUES (502, 3, 1.25, now());",
    )
    .await;
    let running = common::start_with_env(&example, &env);
    wait_equal(&src, &dst).await;
    common::stop(running);
    // The reset was taken over: nothing pending any more.
    let listed = ok(&tributary(
        &["offsets", "list", "--group", "read_model"],
        &data,
    ));
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert!(!listed.contains("reset_pending"), "{listed}");
    tributary_tests::pg::drop_slot(&src, &slot).await;
    src.drop_db().await;
    dst.drop_db().await;
}
