//! `tributary consume TOPIC`: a topic's records, one JSON object per
//! line, decoded through the registry (or raw, base64).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tributary_core::{OffsetStore as _, TopicPartition};
use tributary_log::Log;
use tributary_schemas::registry::VersionSel;
use tributary_schemas::{EventSchema, RecordDecoder, Registry};

use tributary_api::v1;

use crate::client::{Access, Hub, failed};
use crate::datadir::DataDir;
use crate::records::{self, Out};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Key and value decoded with their registered schemas.
    Json,
    /// Key and value as stored (Confluent's wire format: magic byte,
    /// schema id, Avro body), base64.
    AvroRaw,
}

/// Prints a topic's records as JSON lines: `{"topic", "partition",
/// "offset", "timestamp", "key", "value", "headers"}`, partition by
/// partition, each in offset order. Without --from-beginning, --offset or
/// --group it starts at the end: only records appended from now on (with
/// --follow).
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Start at each partition's earliest offset.
    #[arg(long, conflicts_with_all = ["offset", "group"])]
    from_beginning: bool,
    /// Start at this offset of --partition.
    #[arg(long, requires = "partition", conflicts_with = "group")]
    offset: Option<u64>,
    /// Start at this consumer group's committed offsets (the earliest
    /// offset where it has none). Nothing is committed unless --commit.
    #[arg(long)]
    group: Option<String>,
    /// With --group: commit the group's offsets past what was printed,
    /// when the command ends.
    #[arg(long, requires = "group")]
    commit: bool,
    /// Keep waiting for new records until SIGINT (or SIGTERM). While
    /// another command holds the data directory, waits for it.
    #[arg(long)]
    follow: bool,
    /// Output: decoded JSON, or the stored bytes.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Only this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<u64>,
    /// The data directory (a pipeline's log.dir).
    #[arg(long, default_value_os_t = crate::default_data_dir())]
    data_dir: PathBuf,
    #[command(flatten)]
    hub: crate::client::HubArgs,
}

/// Decodes records with the registry, to the JSON `consume` prints of
/// their key and value (the hub's Fetch and Subscribe send the same).
#[derive(Debug)]
pub struct Decoding {
    registry: Registry,
    decoder: RecordDecoder,
    /// Event schemas by key schema id (for tombstones, which have no
    /// value to name their table).
    by_key_id: HashMap<u32, Arc<EventSchema>>,
}

impl Decoding {
    /// With `decoder` (which caches schemas) over `registry`.
    pub fn new(registry: Registry, decoder: RecordDecoder) -> Self {
        Self {
            registry,
            decoder,
            by_key_id: HashMap::new(),
        }
    }

    /// The event schema whose key schema has id `key_id`: the topic's
    /// value versions, newest first, compared by their derived key.
    fn schema_for_key(&mut self, topic: &str, key_id: u32) -> anyhow::Result<Arc<EventSchema>> {
        if let Some(s) = self.by_key_id.get(&key_id) {
            return Ok(Arc::clone(s));
        }
        let key_text = self.registry.schema_by_id(key_id)?;
        let subject = format!("{topic}-value");
        for v in self.registry.versions(&subject)?.into_iter().rev() {
            let sv = self.registry.version(&subject, VersionSel::Number(v))?;
            let s = self.decoder.schema(sv.id)?;
            let (derived, _) = tributary_schemas::registry::normalise(&s.key_schema().to_string())?;
            if derived == key_text {
                self.by_key_id.insert(key_id, Arc::clone(&s));
                return Ok(s);
            }
        }
        bail!("key schema {key_id} is the key of no version of {subject}")
    }

    /// The key and the value of `r` (of `topic`, `partition`) as JSON
    /// text; `null` for a missing key and a tombstone's value.
    pub fn json(
        &mut self,
        topic: &str,
        partition: u32,
        r: &tributary_log::RecordView<'_>,
    ) -> anyhow::Result<(String, String)> {
        let at = || format!("{topic}[{partition}]@{}", r.offset);
        let null = || Out::Leaf(serde_json::Value::Null);
        let (key, value) = match r.value {
            Some(v) => {
                let (schema, ev) = self
                    .decoder
                    .value(v)
                    .with_context(|| format!("{}: value (try --format avro-raw)", at()))?;
                let key = match r.key {
                    Some(k) => {
                        let key = self
                            .decoder
                            .key(&schema, k)
                            .with_context(|| format!("{}: key", at()))?;
                        records::key_json(schema.table(), &key)
                    }
                    None => null(),
                };
                (key, records::event_json(schema.table(), &ev))
            }
            None => {
                let key = match r.key {
                    Some(k) => {
                        let (id, _) = tributary_schemas::wire::split(k).with_context(|| {
                            format!("{}: key is not in the registry's wire format", at())
                        })?;
                        let schema = self
                            .schema_for_key(topic, id)
                            .with_context(|| format!("{}: key", at()))?;
                        let key = self
                            .decoder
                            .key(&schema, k)
                            .with_context(|| format!("{}: key", at()))?;
                        records::key_json(schema.table(), &key)
                    }
                    None => null(),
                };
                (key, null())
            }
        };
        Ok((key.to_line(), value.to_line()))
    }
}

/// Stored bytes as `--format avro-raw` prints them: base64, or null.
fn raw_json(b: Option<&[u8]>) -> String {
    b.map_or(Out::Leaf(serde_json::Value::Null), |b| {
        Out::Leaf(records::base64(b).into())
    })
    .to_line()
}

/// What is open while the data directory is held.
struct Held {
    log: Log,
    decoding: Decoding,
}

impl Held {
    fn open(dd: &DataDir) -> anyhow::Result<Self> {
        let registry = dd.registry()?;
        let log = dd.log(&registry)?;
        Ok(Self {
            decoding: Decoding::new(registry.clone(), RecordDecoder::new(registry)),
            log,
        })
    }
}

/// One record as a JSON line.
fn line(
    held: &mut Held,
    format: Format,
    tp: &TopicPartition,
    r: &tributary_log::RecordView<'_>,
) -> anyhow::Result<String> {
    let (key, value) = match format {
        Format::AvroRaw => (raw_json(r.key), raw_json(r.value)),
        Format::Json => held.decoding.json(&tp.topic, tp.partition, r)?,
    };
    let headers: Vec<(&str, Option<&[u8]>)> =
        r.headers().collect::<Result<_, _>>().map_err(|e| {
            anyhow::anyhow!("{}[{}]@{}: headers: {e}", tp.topic, tp.partition, r.offset)
        })?;
    Ok(records::record_line(
        &tp.topic,
        tp.partition,
        r.offset,
        r.timestamp,
        &key,
        &value,
        &headers,
    ))
}

/// Where each partition starts.
fn start_positions(
    args: &ConsumeArgs,
    dd: &DataDir,
    log: &Log,
) -> anyhow::Result<BTreeMap<TopicPartition, u64>> {
    let topic = log.topic(&args.topic)?;
    let ids: Vec<u32> = match args.partition {
        Some(p) => {
            topic.partition(p)?;
            vec![p]
        }
        None => (0..topic.partitions().len() as u32).collect(),
    };
    let offsets = match &args.group {
        Some(_) => dd.offsets_if_any()?,
        None => None,
    };
    let mut out = BTreeMap::new();
    for id in ids {
        let p = topic.partition(id)?;
        let tp = TopicPartition::new(&args.topic, id);
        let committed = match (&args.group, &offsets) {
            (Some(g), Some(s)) => s.get(g, &tp)?,
            _ => None,
        };
        let start = start_of(
            args,
            &tp,
            p.earliest_offset(),
            p.high_watermark(),
            committed,
        )?;
        out.insert(tp, start);
    }
    Ok(out)
}

/// Where `tp` (holding `earliest` up to the high watermark `hw`) starts;
/// `committed`: the group's offset there, with --group.
fn start_of(
    args: &ConsumeArgs,
    tp: &TopicPartition,
    earliest: u64,
    hw: u64,
    committed: Option<u64>,
) -> anyhow::Result<u64> {
    Ok(if args.from_beginning {
        earliest
    } else if let Some(o) = args.offset {
        if o < earliest || o > hw {
            bail!(
                "offset {o} is not in {tp}: it holds offsets {earliest} to {} (the next is {hw})",
                hw.saturating_sub(1)
            );
        }
        o
    } else if args.group.is_some() {
        // Below the earliest: retention removed what the group had not
        // read.
        committed.unwrap_or(earliest).clamp(earliest, hw)
    } else {
        hw
    })
}

/// Reads from `positions` to each partition's end, printing; returns
/// whether `max` was reached (or stdout closed).
fn drain(
    held: &mut Held,
    args: &ConsumeArgs,
    positions: &mut BTreeMap<TopicPartition, u64>,
    printed: &mut u64,
    out: &mut impl std::io::Write,
) -> anyhow::Result<bool> {
    let topic = held.log.topic(&args.topic)?;
    for (tp, pos) in positions.iter_mut() {
        let part = Arc::clone(topic.partition(tp.partition)?);
        let end = part.high_watermark();
        // Retention may have deleted what was next.
        *pos = (*pos).max(part.earliest_offset());
        while *pos < end {
            let batches = part.read(*pos, 1 << 20)?;
            if batches.is_empty() {
                break;
            }
            for b in batches {
                for r in b.records()?.iter() {
                    let r = r?;
                    if r.offset < *pos {
                        continue;
                    }
                    if r.offset >= end {
                        break;
                    }
                    if args.max.is_some_and(|m| *printed >= m) {
                        return Ok(true);
                    }
                    let text = line(held, args.format, tp, &r)?;
                    if let Err(e) = writeln!(out, "{text}") {
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(true);
                        }
                        return Err(e.into());
                    }
                    *pos = r.offset + 1;
                    *printed += 1;
                }
            }
        }
    }
    if let Err(e) = out.flush() {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(true);
        }
        return Err(e.into());
    }
    Ok(args.max.is_some_and(|m| *printed >= m))
}

/// Resolves at SIGINT or SIGTERM.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        }
        _ => {
            tracing::error!("cannot listen for SIGINT and SIGTERM; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    match args.hub.access(&args.data_dir)? {
        Access::Local(dd) => run_local(&args, &dd),
        Access::Remote(hub, rt) => rt.block_on(remote(&args, *hub)),
    }
}

/// Writes `line`; whether to stop (stdout closed).
fn emit(out: &mut impl std::io::Write, line: &str) -> anyhow::Result<bool> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Flushes; whether to stop (stdout closed).
fn flush(out: &mut impl std::io::Write) -> anyhow::Result<bool> {
    match out.flush() {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// A record from the hub as a JSON line (as [`line`] prints it).
fn remote_line(format: Format, r: &v1::Record) -> String {
    let (key, value) = match format {
        Format::AvroRaw => (
            raw_json(r.key_raw.as_deref()),
            raw_json(r.value_raw.as_deref()),
        ),
        Format::Json => (r.key.clone(), r.value.clone()),
    };
    let headers: Vec<(&str, Option<&[u8]>)> = r
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_deref()))
        .collect();
    records::record_line(
        &r.topic,
        r.partition,
        r.offset,
        r.timestamp,
        &key,
        &value,
        &headers,
    )
}

/// `consume` through a running hub: Fetch to each partition's end, then
/// (--follow) one Subscribe per partition.
async fn remote(args: &ConsumeArgs, hub: Hub) -> anyhow::Result<()> {
    let mut c = hub.client.clone();
    let desc = c
        .describe_topic(v1::DescribeTopicRequest {
            topic: args.topic.clone(),
        })
        .await
        .map_err(|s| failed(&hub, s))?
        .into_inner();
    let parts: BTreeMap<u32, &v1::PartitionInfo> =
        desc.partitions.iter().map(|p| (p.partition, p)).collect();
    let ids: Vec<u32> = match args.partition {
        Some(p) if !parts.contains_key(&p) => bail!(
            "{}",
            tributary_log::LogError::UnknownPartition {
                topic: args.topic.clone(),
                partition: p,
                partitions: parts.len() as u32,
            }
        ),
        Some(p) => vec![p],
        None => parts.keys().copied().collect(),
    };
    let committed: HashMap<u32, u64> = match &args.group {
        Some(g) => c
            .list_offsets(v1::ListOffsetsRequest {
                group: Some(g.clone()),
            })
            .await
            .map_err(|s| failed(&hub, s))?
            .into_inner()
            .offsets
            .into_iter()
            .filter(|o| o.topic == args.topic)
            .map(|o| (o.partition, o.offset))
            .collect(),
        None => HashMap::new(),
    };
    let mut positions = BTreeMap::new();
    for id in ids {
        let tp = TopicPartition::new(&args.topic, id);
        let p = parts[&id];
        let start = start_of(
            args,
            &tp,
            p.earliest_offset,
            p.high_watermark,
            committed.get(&id).copied(),
        )?;
        positions.insert(tp, (start, p.earliest_offset, p.high_watermark));
    }
    let format = match args.format {
        Format::Json => v1::RecordFormat::Json,
        Format::AvroRaw => v1::RecordFormat::Raw,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let reached = |printed: u64| args.max.is_some_and(|m| printed >= m);
    let mut done = false;
    'drain: for (tp, (pos, earliest, end)) in positions.iter_mut() {
        *pos = (*pos).max(*earliest);
        while *pos < *end {
            let got = c
                .fetch(v1::FetchRequest {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: *pos,
                    max_records: 0,
                    format: format.into(),
                })
                .await
                .map_err(|s| failed(&hub, s))?
                .into_inner();
            if got.records.is_empty() {
                break;
            }
            for r in &got.records {
                if r.offset >= *end {
                    break;
                }
                if reached(printed) || emit(&mut out, &remote_line(args.format, r))? {
                    done = true;
                    break 'drain;
                }
                *pos = r.offset + 1;
                printed += 1;
            }
        }
    }
    done = flush(&mut out)? || done || reached(printed);
    if args.follow && !done {
        let mut streams = Vec::new();
        for (tp, (pos, _, _)) in &positions {
            let s = c
                .subscribe(v1::SubscribeRequest {
                    topic: tp.topic.clone(),
                    partition: Some(tp.partition),
                    start: Some(v1::subscribe_request::Start::Offset(*pos)),
                    format: format.into(),
                })
                .await
                .map_err(|s| failed(&hub, s))?
                .into_inner();
            streams.push(s);
        }
        let mut all = futures_util::stream::select_all(streams);
        let stop = stopped();
        tokio::pin!(stop);
        loop {
            let r = tokio::select! {
                _ = &mut stop => break,
                r = futures_util::StreamExt::next(&mut all) => r,
            };
            let Some(r) = r else { break };
            let r = r.map_err(|s| failed(&hub, s))?;
            if reached(printed)
                || emit(&mut out, &remote_line(args.format, &r))?
                || flush(&mut out)?
            {
                break;
            }
            if let Some(p) = positions.get_mut(&TopicPartition::new(&r.topic, r.partition)) {
                p.0 = r.offset + 1;
            }
            printed += 1;
            if reached(printed) {
                break;
            }
        }
    }
    drop(out);
    if args.commit
        && let Some(g) = &args.group
    {
        for (tp, (o, _, _)) in &positions {
            c.commit_offset(v1::CommitOffsetRequest {
                group: g.clone(),
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: *o,
            })
            .await
            .map_err(|s| failed(&hub, s))?;
        }
        for (tp, (o, _, _)) in &positions {
            eprintln!("committed {g} {tp} at {o}");
        }
    }
    Ok(())
}

fn run_local(args: &ConsumeArgs, dd: &DataDir) -> anyhow::Result<()> {
    let mut held = Held::open(dd)?;
    let mut positions = start_positions(args, dd, &held.log)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let mut done = drain(&mut held, args, &mut positions, &mut printed, &mut out)?;
    if args.follow && !done {
        let rt = crate::runtime()?;
        rt.block_on(async {
            let stop = stopped();
            tokio::pin!(stop);
            // The data directory is let go between looks, so that a
            // `produce` (or a hub) can take it meanwhile: the log is
            // read again from the files each time.
            let mut idle = Some(held);
            loop {
                drop(idle.take());
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                if dd.busy()? {
                    continue;
                }
                let mut h = match Held::open(dd) {
                    Ok(h) => h,
                    // Taken between the look and the open.
                    Err(_) if dd.busy()? => continue,
                    Err(e) => return Err(e),
                };
                done = drain(&mut h, args, &mut positions, &mut printed, &mut out)?;
                idle = Some(h);
                if done {
                    break;
                }
            }
            anyhow::Ok(())
        })?;
    } else {
        drop(held);
    }
    drop(out);
    if args.commit
        && let Some(g) = &args.group
    {
        let offsets: Vec<(TopicPartition, u64)> = positions.into_iter().collect();
        dd.offsets()?.commit_many(g, &offsets, true)?;
        for (tp, o) in &offsets {
            eprintln!("committed {g} {tp} at {o}");
        }
    }
    Ok(())
}
