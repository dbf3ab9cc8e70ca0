//! `tributary produce TOPIC`: JSON lines from stdin, each checked against
//! the topic's registered schemas, appended to the log.

use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value as Json;
use tributary_capture::writer::{EncodedRecord, append_records, partition_of};
use tributary_core::{Datum, Op};
use tributary_log::Topic;
use tributary_schemas::registry::VersionSel;
use tributary_schemas::{EventSchema, wire};

use tributary_api::v1;

use crate::client::{Access, Hub, failed};
use crate::datadir::DataDir;
use crate::records::{self, Invalid, SourceDefaults};

/// Appends records, one JSON object per line of stdin, in the shape
/// `consume` prints: `{"key": {...}, "value": {"op": "c", "after":
/// {...}, ...}, "timestamp": ms, "headers": [...]}` (`value: null` is a
/// tombstone; `source`, `ts_ms`, `timestamp` and `key` may be left out:
/// the key is the row's). `topic`, `partition` and `offset` are accepted
/// and ignored: the log assigns them (keyed records go to their key's
/// partition). The topic and its schema must exist. A line that does not
/// fit stops the command with an error naming the line and the field;
/// the lines before it are written, nothing from it on.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// The topic (it must exist, with its schema registered).
    topic: String,
    /// The data directory (a pipeline's log.dir).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data_dir: PathBuf,
    #[command(flatten)]
    hub: crate::client::HubArgs,
}

/// One checked record, encoded, with its partition.
pub type Encoded = EncodedRecord;

/// What a line is checked against: a topic's schemas, from the
/// registry. The hub's Produce checks each record with it too.
#[derive(Debug)]
pub struct Target {
    schema: EventSchema,
    value_id: u32,
    key_id: Option<u32>,
    connector: String,
    source: String,
    partitions: u32,
}

fn bad(field: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

impl Target {
    /// The latest schemas of `topic` (its key's must be the one derived
    /// from its value's).
    pub fn load(registry: &tributary_schemas::Registry, topic: &Topic) -> anyhow::Result<Self> {
        let name = topic.name();
        let subject = format!("{name}-value");
        let value = registry
            .version(&subject, VersionSel::Latest)
            .with_context(|| {
                format!("topic {name} has no value schema in the registry (subject {subject})")
            })?;
        let schema = tributary_schemas::described::event_schema(&value.schema)
            .with_context(|| format!("{subject} version {}", value.version))?;
        let described = &schema.value_schema()[tributary_schemas::described::TABLE_PROPERTY];
        let text = |k: &str| described[k].as_str().unwrap_or_default().to_string();
        let (connector, source) = (text("connector"), text("source"));
        let key_id = if schema.table().key.is_empty() {
            None
        } else {
            let subject = format!("{name}-key");
            let key = registry
                .version(&subject, VersionSel::Latest)
                .with_context(|| {
                    format!("topic {name} has no key schema in the registry (subject {subject})")
                })?;
            let (derived, _) =
                tributary_schemas::registry::normalise(&schema.key_schema().to_string())?;
            if derived != key.schema {
                bail!(
                    "{subject} version {} is not the key of {name}-value version {}: \
                     the registry's subjects disagree",
                    key.version,
                    value.version
                );
            }
            Some(key.id)
        };
        Ok(Self {
            schema,
            value_id: value.id,
            key_id,
            connector,
            source,
            partitions: topic.partitions().len() as u32,
        })
    }

    /// The key columns of a full row.
    fn key_of(&self, row: &[Datum]) -> Vec<Datum> {
        self.schema
            .table()
            .key
            .iter()
            .map(|&i| row.get(i).cloned().unwrap_or(Datum::Null))
            .collect()
    }

    fn encode_key(&self, key: &[Datum]) -> Result<Option<Vec<u8>>, Invalid> {
        let Some(id) = self.key_id else {
            return Ok(None);
        };
        let table = self.schema.table();
        // encode_key reads the key columns out of a full row.
        let mut row = vec![Datum::Null; table.columns.len()];
        for (&i, d) in table.key.iter().zip(key) {
            row[i] = d.clone();
        }
        let mut out = Vec::new();
        wire::put_header(&mut out, id);
        self.schema
            .encode_key(&row, &mut out)
            .map_err(|e| bad(&e.field, e.reason))?;
        Ok(Some(out))
    }

    /// A line checked and encoded.
    pub fn line(&self, text: &str, now_ms: i64) -> Result<Encoded, Invalid> {
        let v: Json = serde_json::from_str(text).map_err(|e| bad("", format!("not JSON: {e}")))?;
        let o = v
            .as_object()
            .ok_or_else(|| bad("", "expected a JSON object"))?;
        let allowed = [
            "topic",
            "partition",
            "offset",
            "timestamp",
            "key",
            "value",
            "headers",
        ];
        if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown field (expected one of {})", allowed.join(", ")),
            ));
        }
        let table = self.schema.table();
        let given_key = match o.get("key") {
            None | Some(Json::Null) => None,
            Some(_) if self.key_id.is_none() => {
                return Err(bad(
                    "key",
                    format!("table {} has no key: leave it out", table.qualified_name()),
                ));
            }
            Some(k) => Some(records::key_from(table, k)?),
        };
        let headers = match o.get("headers") {
            None | Some(Json::Null) => Vec::new(),
            Some(h) => records::headers_from(h)?,
        };
        let timestamp = match o.get("timestamp") {
            None | Some(Json::Null) => None,
            Some(t) => Some(
                t.as_i64()
                    .ok_or_else(|| bad("timestamp", "expected milliseconds since the epoch"))?,
            ),
        };
        let (key, value, ts) = match o.get("value") {
            None | Some(Json::Null) => {
                let key = given_key
                    .ok_or_else(|| bad("key", "missing: a tombstone (value null) needs the key"))?;
                (self.encode_key(&key)?, None, timestamp.unwrap_or(now_ms))
            }
            Some(v) => {
                let defaults = SourceDefaults {
                    connector: &self.connector,
                    name: &self.source,
                    now_ms,
                };
                let ev = records::event_from(&self.schema, &defaults, v)?;
                let mut value = Vec::new();
                wire::put_header(&mut value, self.value_id);
                self.schema
                    .encode_value(&ev, &mut value)
                    .map_err(|e| bad(&format!("value.{}", e.field), e.reason))?;
                let row = match ev.op {
                    Op::Truncate => None,
                    _ => ev.after.as_deref().or(ev.before.as_deref()),
                };
                let key = match (row, self.key_id) {
                    (Some(row), Some(_)) => {
                        let which = if ev.after.is_some() {
                            "after"
                        } else {
                            "before"
                        };
                        let derived = self.key_of(row);
                        if let (Op::Update, Some(before)) = (ev.op, ev.before.as_deref())
                            && self.key_of(before) != derived
                        {
                            return Err(bad(
                                "value.before",
                                "an update may not change the key: write a delete and a create",
                            ));
                        }
                        if let Some(given) = &given_key
                            && let Some(i) = (0..derived.len()).find(|&i| given[i] != derived[i])
                        {
                            let c = &table.columns[table.key[i]];
                            return Err(bad(
                                &format!("key.{}", c.name),
                                format!(
                                    "{}, but value.{which}.{} is {}",
                                    records::datum_json(&c.ty, &given[i]).to_line(),
                                    c.name,
                                    records::datum_json(&c.ty, &derived[i]).to_line()
                                ),
                            ));
                        }
                        self.encode_key(&derived)?
                    }
                    _ if given_key.is_some() => {
                        return Err(bad("key", "a truncate has no key: leave it out"));
                    }
                    _ => None,
                };
                (key, Some(value), timestamp.unwrap_or(ev.source.ts_ms))
            }
        };
        let partition = partition_of(key.as_deref(), self.partitions);
        Ok(Encoded {
            partition,
            timestamp: ts,
            key,
            value,
            headers,
        })
    }
}

/// Appends `pending` (in order within each partition) and syncs; the
/// partition and offset each record got, in `pending`'s order.
pub fn write(topic: &Topic, pending: &mut Vec<Encoded>) -> anyhow::Result<Vec<(u32, u64)>> {
    let positions = append_records(topic, pending)?;
    pending.clear();
    Ok(positions)
}

/// Why a topic takes no records from `produce`.
fn no_topic(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}: produce writes to an existing topic (one a source created)")
}

/// The error for line `line_no` that does not fit, `written` records
/// having been written before it.
fn rejected(line_no: u64, e: &Invalid, written: u64) -> anyhow::Error {
    let what = if written == 0 {
        "nothing was written".to_string()
    } else {
        format!(
            "the {written} records of lines 1 to {} were written, nothing from line {line_no} on",
            line_no - 1
        )
    };
    anyhow::anyhow!("line {line_no}: {e} ({what})")
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    match args.hub.access(&args.data_dir)? {
        Access::Local(dd) => run_local(&args, &dd),
        Access::Remote(hub, rt) => rt.block_on(remote(&args, *hub)),
    }
}

/// `produce` through a running hub: the same chunks, each one Produce
/// call (all or nothing); a chunk refused at a record is sent again up
/// to that record, so what lands is what a local run writes.
async fn remote(args: &ProduceArgs, hub: Hub) -> anyhow::Result<()> {
    let call = |records: Vec<String>| {
        let mut c = hub.client.clone();
        let topic = args.topic.clone();
        async move { c.produce(v1::ProduceRequest { topic, records }).await }
    };
    // No records: the hub checks the topic and its schemas.
    call(Vec::new()).await.map_err(|s| match s.code() {
        tonic::Code::NotFound => no_topic(s.message()),
        _ => failed(&hub, s),
    })?;
    // Read on a thread of its own: stdin blocks.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<(u64, String)>>>(4);
    std::thread::spawn(move || {
        let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
        let (mut line_no, mut text, mut chunk) = (0u64, String::new(), Vec::new());
        loop {
            text.clear();
            let n = match input.read_line(&mut text).context("reading stdin") {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if n > 0 {
                line_no += 1;
                let trimmed = text.trim();
                if !trimmed.is_empty() {
                    chunk.push((line_no, trimmed.to_string()));
                }
            }
            // As a local run writes: when the next line would wait for
            // input, or in chunks.
            if n == 0 || chunk.len() >= 1000 || input.buffer().is_empty() {
                if !chunk.is_empty() && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                    return;
                }
                if n == 0 {
                    return;
                }
            }
        }
    });
    let mut written = 0u64;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        let records: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
        match call(records.clone()).await {
            Ok(r) => written += r.into_inner().positions.len() as u64,
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                let Ok(why) = <v1::ProduceRejection as prost::Message>::decode(s.details()) else {
                    return Err(failed(&hub, s));
                };
                let at = why.index as usize;
                let Some(&(line_no, _)) = chunk.get(at) else {
                    return Err(failed(&hub, s));
                };
                if at > 0 {
                    let before = records[..at].to_vec();
                    written += call(before)
                        .await
                        .map_err(|s| failed(&hub, s))?
                        .into_inner()
                        .positions
                        .len() as u64;
                }
                let e = Invalid {
                    field: why.field,
                    reason: why.reason,
                };
                return Err(rejected(line_no, &e, written));
            }
            Err(s) => return Err(failed(&hub, s)),
        }
    }
    records::stdout_line(format_args!("{written} records appended to {}", args.topic));
    Ok(())
}

fn run_local(args: &ProduceArgs, dd: &DataDir) -> anyhow::Result<()> {
    let registry = dd.registry()?;
    let log = dd.log(&registry)?;
    let topic = log.topic(&args.topic).map_err(no_topic)?;
    let target = Target::load(&registry, &topic)?;
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut pending = Vec::new();
    let (mut line_no, mut written, mut text) = (0u64, 0u64, String::new());
    loop {
        text.clear();
        let n = input.read_line(&mut text).context("reading stdin")?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        match target.line(trimmed, tributary_log::now_ms()) {
            Ok(e) => pending.push(e),
            Err(e) => {
                let before = pending.len() as u64;
                write(&topic, &mut pending)?;
                written += before;
                return Err(rejected(line_no, &e, written));
            }
        }
        // Written when the next line would wait for input (interactive
        // use sees each line land), or in chunks.
        if pending.len() >= 1000 || input.buffer().is_empty() {
            let n = pending.len() as u64;
            write(&topic, &mut pending)?;
            written += n;
        }
    }
    let n = pending.len() as u64;
    write(&topic, &mut pending)?;
    written += n;
    records::stdout_line(format_args!("{written} records appended to {}", args.topic));
    Ok(())
}
