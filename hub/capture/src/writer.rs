//! The validated write path: change events in, Avro records (Confluent
//! wire format) in the log out. Sources append through
//! [`EventWriter`]; `produce` and the hub's Produce append records they
//! encoded themselves through [`append_records`]: one partitioning and
//! append step for every record that enters the log.
//!
//! Every event is encoded with its table's registered value schema before
//! anything is written; an event that does not fit is refused with an
//! error naming topic, table and field, and none of the batch is written.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use tributary_core::transform::{PlanError, TablePlan, Transforms};
use tributary_core::{ChangeEvent, Datum, Op};
use tributary_log::partition_for_key;
use tributary_log::{BatchBuilder, Log, LogError, Partition, RecordIn, Topic, TopicConfig};
use tributary_schemas::wire;

use crate::position::{self, RecordMarks, RecordPosition, StreamKey};

/// A record header: name and value.
type Header<'a> = (&'a str, Option<&'a [u8]>);

use tributary_schemas::{EventSchema, Registry, RegistryError, SchemaError};

/// Errors of the write path.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The pipeline's transforms refuse the table (a key column dropped,
    /// a mask on a non-text column); nothing was written.
    #[error("topic {topic}, table {table}: {reason}")]
    Transform {
        /// Topic (before transforms).
        topic: String,
        /// `schema.table`.
        table: String,
        /// Which transform and why.
        #[source]
        reason: Box<PlanError>,
    },
    /// The table's shape after the transforms has no valid schema (a
    /// renamed column Avro refuses); nothing was written.
    #[error("topic {topic}, table {table}: {source}")]
    TransformedSchema {
        /// Topic (before transforms).
        topic: String,
        /// `schema.table`.
        table: String,
        /// Cause.
        #[source]
        source: Box<SchemaError>,
    },
    /// An event does not fit its schema; nothing was written.
    #[error("topic {topic}, table {table}: {source}")]
    Invalid {
        /// Topic.
        topic: String,
        /// `schema.table`.
        table: String,
        /// Which field and why.
        #[source]
        source: tributary_schemas::EncodeError,
    },
    /// No schema was registered for the topic.
    #[error("topic {0}: no table schema registered with this writer")]
    UnknownTopic(String),
    /// The registry refused or failed.
    #[error("topic {topic}: schema registry: {source}")]
    Registry {
        /// Topic.
        topic: String,
        /// Cause.
        #[source]
        source: RegistryError,
    },
    /// A record names a partition the topic does not have.
    #[error("partition {partition} does not exist (the topic has {partitions})")]
    NoPartition {
        /// The partition asked for.
        partition: u32,
        /// The topic's partitions.
        partitions: u32,
    },
    /// A key the topic holds does not decode with the table's key
    /// schema (the key changed since); the table cannot be read again
    /// over it.
    #[error(
        "topic {topic} holds a key that does not decode with the table's current key schema; delete the topic to read the table again"
    )]
    StaleKey {
        /// The log topic.
        topic: String,
    },
    /// The log failed. Records of the batch that went to other partitions
    /// (or earlier runs of keyed and keyless records) may have been
    /// written: the log appends one batch per partition, and those are
    /// not atomic together.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl WriteError {
    /// Whether the error is about one table's schema or records (a
    /// transform it fails, a record its schema refuses, a schema the
    /// registry refuses), not about the log or the registry's storage:
    /// what a source may set the table aside for.
    pub fn is_about_table(&self) -> bool {
        use tributary_schemas::RegistryError as R;
        match self {
            WriteError::Transform { .. }
            | WriteError::TransformedSchema { .. }
            | WriteError::Invalid { .. } => true,
            WriteError::Registry { source, .. } => matches!(
                source,
                R::Incompatible { .. } | R::InvalidSchema(_) | R::InvalidSubject(_)
            ),
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Registered {
    /// The records' schema (the transformed shape, when transforms apply).
    schema: Arc<EventSchema>,
    key_id: u32,
    value_id: u32,
    /// The log topic the records go to.
    topic: String,
    /// What the pipeline's transforms do to the table's events, unless
    /// nothing.
    plan: Option<TablePlan>,
}

/// Writes change events of registered tables to their topics.
#[derive(Debug)]
pub struct EventWriter {
    log: Log,
    registry: Registry,
    topics: RwLock<HashMap<String, Arc<Registered>>>,
    /// Per topic, the last position header in each partition.
    floors: Mutex<HashMap<String, Vec<Option<RecordPosition>>>>,
    /// Follow each delete with a tombstone (same key, no value).
    pub tombstones_on_delete: bool,
    /// Counts the events written (not those skipped on resume).
    written: Option<Arc<AtomicU64>>,
    /// The pipeline's transforms.
    transforms: Option<Arc<Transforms>>,
}

/// Where one event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Partition.
    pub partition: u32,
    /// Offset of the event's record.
    pub offset: u64,
}

impl EventWriter {
    /// A writer on `log`, registering schemas in `registry`.
    pub fn new(log: Log, registry: Registry) -> Self {
        Self {
            log,
            registry,
            topics: RwLock::new(HashMap::new()),
            floors: Mutex::new(HashMap::new()),
            tombstones_on_delete: true,
            written: None,
            transforms: None,
        }
    }

    /// Applies `transforms` to every table registered from now on: its
    /// events are filtered and reshaped, and go to the topic the
    /// transforms route them to, with the shape they give registered as
    /// that topic's schema (see `tributary_core::transform`).
    pub fn with_transforms(mut self, transforms: Arc<Transforms>) -> Self {
        if !transforms.is_empty() {
            self.transforms = Some(transforms);
        }
        self
    }

    /// The log topic that events appended for `topic` go to (another one
    /// when a transform routes them), once the topic is registered.
    pub fn log_topic(&self, topic: &str) -> String {
        self.topics
            .read()
            .get(topic)
            .map_or_else(|| topic.to_string(), |r| r.topic.clone())
    }

    /// Adds the number of events each append writes to `written` (a
    /// counter that outlives the writer, for the hub's metrics).
    pub fn counting(mut self, written: Arc<AtomicU64>) -> Self {
        self.written = Some(written);
        self
    }

    /// Registers the table's key and value schemas under `<topic>-key` and
    /// `<topic>-value` (a changed shape becomes a new version, subject to
    /// the subject's compatibility level) and creates the topic if needed.
    /// With transforms, `topic` and the schema are the transformed ones.
    pub fn register(
        &self,
        topic: &str,
        schema: EventSchema,
        config: TopicConfig,
    ) -> Result<(), WriteError> {
        let source_topic = topic;
        let (topic, schema, plan) = match &self.transforms {
            None => (topic.to_string(), schema, None),
            Some(t) => {
                let plan =
                    t.plan(topic, schema.table())
                        .map_err(|reason| WriteError::Transform {
                            topic: source_topic.to_string(),
                            table: schema.table().qualified_name(),
                            reason: Box::new(reason),
                        })?;
                if plan.is_identity(topic, schema.table()) {
                    (topic.to_string(), schema, None)
                } else {
                    let build = if plan.unwrap {
                        EventSchema::unwrapped
                    } else {
                        EventSchema::new
                    };
                    let shaped =
                        build(schema.source_name(), schema.connector(), plan.table.clone())
                            .map_err(|source| WriteError::TransformedSchema {
                                topic: source_topic.to_string(),
                                table: schema.table().qualified_name(),
                                source: Box::new(source),
                            })?;
                    (plan.topic.clone(), shaped, Some(plan))
                }
            }
        };
        let topic = topic.as_str();
        let reg = |e| WriteError::Registry {
            topic: topic.to_string(),
            source: e,
        };
        let key_id = self
            .registry
            .register(&format!("{topic}-key"), &schema.key_schema().to_string())
            .map_err(reg)?;
        let value_id = self
            .registry
            .register(
                &format!("{topic}-value"),
                &schema.value_schema().to_string(),
            )
            .map_err(reg)?;
        if self.log.topic(topic).is_err() {
            self.log.create_topic(topic, config)?;
        }
        self.topics.write().insert(
            source_topic.to_string(),
            Arc::new(Registered {
                schema: Arc::new(schema),
                key_id,
                value_id,
                topic: topic.to_string(),
                plan,
            }),
        );
        Ok(())
    }

    /// The schema registered for `topic`: that of the records in its log
    /// topic ([`log_topic`](Self::log_topic)).
    pub fn schema(&self, topic: &str) -> Option<Arc<EventSchema>> {
        self.topics.read().get(topic).map(|r| Arc::clone(&r.schema))
    }

    /// Every key `topic`'s log topic holds, decoded with the key schema
    /// registered for it: what a source deletes before it reads a table
    /// again at a later point (a row deleted in between would otherwise
    /// live on in consumers). Empty when the topic or its schema is not
    /// there yet.
    pub fn keys_held(&self, topic: &str) -> Result<Vec<Vec<Datum>>, WriteError> {
        let (Some(schema), Ok(t)) = (self.schema(topic), self.log.topic(&self.log_topic(topic)))
        else {
            return Ok(Vec::new());
        };
        let mut keys: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        for p in t.partitions() {
            let mut offset = p.earliest_offset();
            while offset < p.high_watermark() {
                let before = offset;
                for b in p.read(offset, 1 << 20)? {
                    for r in b.records()?.iter() {
                        let r = r?;
                        if r.offset < offset {
                            continue;
                        }
                        offset = r.offset + 1;
                        if let Some(k) = r.key {
                            keys.insert(k.to_vec());
                        }
                    }
                }
                if offset == before {
                    // Nothing more to read (a gap at the end).
                    break;
                }
            }
        }
        keys.into_iter()
            .map(|k| {
                k.get(5..)
                    .and_then(|body| schema.decode_key(body).ok())
                    .ok_or_else(|| WriteError::StaleKey {
                        topic: t.name().to_string(),
                    })
            })
            .collect()
    }

    /// Validates and encodes every event, then appends them (with
    /// tombstones after deletes) to `topic`, partitioned by key. Returns
    /// where each event went, in order.
    pub fn append(&self, topic: &str, events: &[ChangeEvent]) -> Result<Vec<Written>, WriteError> {
        let placed = self.append_at(topic, events, None)?;
        Ok(placed.into_iter().flatten().collect())
    }

    /// Like [`append`](Self::append), for sources that resume: each record
    /// gets the header [`position::POSITION_HEADER`] with the position
    /// `key`, `run`, and its index in this call, which must sort after
    /// every earlier record of the source. A record whose partition
    /// already ends at or past its position is skipped: after a restart,
    /// the part of a transaction that reached the log before the crash is
    /// not written twice. A truncate (with a position) goes to every
    /// partition of a topic of several, each copy with the same position
    /// and [`position::BARRIER_HEADER`]. Returns `None` for skipped
    /// events.
    pub fn append_at(
        &self,
        topic: &str,
        events: &[ChangeEvent],
        at: Option<(&StreamKey, u32)>,
    ) -> Result<Vec<Option<Written>>, WriteError> {
        Ok(self.append_marked(topic, events, at)?.placed)
    }

    /// [`append_at`](Self::append_at), also returning each partition the
    /// call appended to with its new high watermark: once every one is
    /// durable past it, so is everything the call wrote.
    pub fn append_marked(
        &self,
        topic: &str,
        events: &[ChangeEvent],
        at: Option<(&StreamKey, u32)>,
    ) -> Result<Appended, WriteError> {
        let reg = self
            .topics
            .read()
            .get(topic)
            .cloned()
            .ok_or_else(|| WriteError::UnknownTopic(topic.to_string()))?;
        // The transformed events: `None` for those a filter drops (and
        // truncates, which an unwrapped topic cannot hold).
        let shaped: Option<Vec<Option<ChangeEvent>>> = reg.plan.as_ref().map(|plan| {
            events
                .iter()
                .map(|ev| {
                    let keep = plan.keeps(ev) && !(plan.unwrap && ev.op == Op::Truncate);
                    keep.then(|| plan.reshape(ev))
                })
                .collect()
        });
        let events: Vec<Option<&ChangeEvent>> = match &shaped {
            None => events.iter().map(Some).collect(),
            Some(s) => s.iter().map(Option::as_ref).collect(),
        };
        let topic = reg.topic.as_str();
        let invalid = |source| WriteError::Invalid {
            topic: topic.to_string(),
            table: reg.schema.table().qualified_name(),
            source,
        };
        // (key, value) spans in one buffer; value None for tombstones.
        // `report[i]` is the index of the record that stands for event i.
        let mut buf = Vec::with_capacity(events.len() * 128);
        type Span = (usize, usize);
        let mut spans: Vec<(Option<Span>, Option<Span>, i64)> = Vec::with_capacity(events.len());
        let mut report = Vec::with_capacity(events.len());
        // The spans that are truncates.
        let mut truncates: Vec<usize> = Vec::new();
        let keyed = !reg.schema.table().key.is_empty();
        let encode_key = |buf: &mut Vec<u8>, row: &[Datum]| -> Result<Span, WriteError> {
            let start = buf.len();
            wire::put_header(buf, reg.key_id);
            reg.schema.encode_key(row, buf).map_err(invalid)?;
            Ok((start, buf.len()))
        };
        let encode_value = |buf: &mut Vec<u8>, ev: &ChangeEvent| -> Result<Span, WriteError> {
            let start = buf.len();
            wire::put_header(buf, reg.value_id);
            reg.schema.encode_value(ev, buf).map_err(invalid)?;
            Ok((start, buf.len()))
        };
        for ev in events {
            let Some(ev) = ev else {
                report.push(None);
                continue;
            };
            let ts = ev.source.ts_ms;
            // An update that changes the key becomes, as in Debezium, a
            // delete of the old key (with its tombstone) and a create of
            // the new one, so compacted topics do not keep the old row.
            if let (Op::Update, true, Some(before), Some(after)) =
                (ev.op, keyed, &ev.before, &ev.after)
            {
                let old_key = encode_key(&mut buf, before)?;
                let new_key = encode_key(&mut buf, after)?;
                if buf[old_key.0..old_key.1] != buf[new_key.0..new_key.1] {
                    let delete = ChangeEvent {
                        op: Op::Delete,
                        after: None,
                        ..ev.clone()
                    };
                    let create = ChangeEvent {
                        op: Op::Create,
                        before: None,
                        ..ev.clone()
                    };
                    let v = encode_value(&mut buf, &delete)?;
                    spans.push((Some(old_key), Some(v), ts));
                    if self.tombstones_on_delete {
                        spans.push((Some(old_key), None, ts));
                    }
                    let v = encode_value(&mut buf, &create)?;
                    report.push(Some(spans.len()));
                    spans.push((Some(new_key), Some(v), ts));
                    continue;
                }
                let v = encode_value(&mut buf, ev)?;
                report.push(Some(spans.len()));
                spans.push((Some(new_key), Some(v), ts));
                continue;
            }
            let row: Option<&[Datum]> = ev.after.as_deref().or(ev.before.as_deref());
            let key = match (row, ev.op) {
                (Some(row), op) if keyed && op != Op::Truncate => Some(encode_key(&mut buf, row)?),
                _ => None,
            };
            let v = encode_value(&mut buf, ev)?;
            report.push(Some(spans.len()));
            if ev.op == Op::Truncate {
                truncates.push(spans.len());
            }
            spans.push((key, Some(v), ts));
            // Without a key there is nothing for a tombstone to remove.
            if ev.op == Op::Delete && self.tombstones_on_delete && key.is_some() {
                spans.push((key, None, ts));
            }
        }
        let slice = |s: Option<Span>| s.map(|(a, b)| &buf[a..b]);
        let t = self.log.topic(topic)?;
        let n = t.partitions().len() as u32;
        let positions: Vec<RecordPosition> = match at {
            None => Vec::new(),
            Some((key, run)) => (0..spans.len() as u32)
                .map(|seq| key.record(run, seq))
                .collect(),
        };
        let floors = match at {
            None => Vec::new(),
            Some(_) => self.floors(topic, &t)?,
        };
        let headers: Vec<Vec<Header<'_>>> = positions
            .iter()
            .map(|p| position::headers(p, false))
            .collect();
        // A truncate of a source that resumes goes to every partition, as
        // a barrier (each copy with the same position): a consumer orders
        // it with the rows of every partition. Other keyless records go to
        // partition 0, keyed ones by key.
        let barrier_headers: Vec<(usize, Vec<Header<'_>>)> = truncates
            .iter()
            .filter(|_| n > 1)
            .filter_map(|&i| Some((i, position::headers(positions.get(i)?, true))))
            .collect();
        let mut staged = Staged::new(n);
        let mut placed: Vec<Option<(u32, u32)>> = Vec::with_capacity(spans.len());
        // The last position written to each partition: its new floor.
        let mut last_written: Vec<Option<usize>> = vec![None; n as usize];
        for (i, &(k, v, ts)) in spans.iter().enumerate() {
            let key = slice(k);
            let barrier = barrier_headers.iter().find(|(b, _)| *b == i);
            let targets = match barrier {
                Some(_) => 0..n,
                None => {
                    let p = partition_of(key, n);
                    p..p + 1
                }
            };
            let mut at = None;
            for p in targets {
                if let (Some(pos), Some(Some(floor))) = (positions.get(i), floors.get(p as usize))
                    && pos <= floor
                {
                    continue;
                }
                let idx = staged.push(
                    p,
                    RecordIn {
                        timestamp: ts,
                        key,
                        value: slice(v),
                        headers: match barrier {
                            Some((_, h)) => &h[..],
                            None => headers.get(i).map_or(&[][..], |h| &h[..]),
                        },
                    },
                )?;
                at = at.or(Some((p, idx)));
                last_written[p as usize] = Some(i);
            }
            placed.push(at);
        }
        let appended = staged.append(&t)?;
        if let Some(floors) = self.floors.lock().get_mut(topic) {
            for (p, last) in last_written.iter().enumerate() {
                if let Some(i) = last {
                    floors[p] = positions.get(*i).cloned();
                }
            }
        }
        let out: Vec<Option<Written>> = report
            .into_iter()
            .map(|i| {
                i.and_then(|i| placed[i]).map(|(partition, idx)| Written {
                    partition,
                    offset: appended.bases[partition as usize] + u64::from(idx),
                })
            })
            .collect();
        if let Some(c) = &self.written {
            c.fetch_add(out.iter().flatten().count() as u64, Ordering::Relaxed);
        }
        Ok(Appended {
            placed: out,
            marks: appended.marks,
        })
    }

    /// The last position header of each partition of `topic`: read once
    /// from the partitions' tails, then kept up to date by
    /// [`append_at`](Self::append_at), so a source that reconnects and is
    /// sent again what it already wrote skips it.
    fn floors(&self, topic: &str, t: &Topic) -> Result<Vec<Option<RecordPosition>>, WriteError> {
        if let Some(f) = self.floors.lock().get(topic) {
            return Ok(f.clone());
        }
        let mut out = Vec::with_capacity(t.partitions().len());
        for p in t.partitions() {
            let hw = p.high_watermark();
            let mut last = None;
            if hw > p.earliest_offset() {
                for b in p.read(hw - 1, 1)? {
                    for r in b.records()?.iter() {
                        if let Some(pos) = RecordMarks::of(&r?).position {
                            last = Some(pos);
                        }
                    }
                }
            }
            out.push(last);
        }
        self.floors.lock().insert(topic.to_string(), out.clone());
        Ok(out)
    }
}

/// What one [`EventWriter::append_marked`] call did.
#[derive(Debug)]
pub struct Appended {
    /// Where each event went, in order; `None` for events a filter
    /// dropped or a replay skipped.
    pub placed: Vec<Option<Written>>,
    /// Each partition appended to, with its high watermark after the
    /// append.
    pub marks: Marks,
}

/// Partitions with the high watermark each must become durable past.
pub type Marks = Vec<(Arc<Partition>, u64)>;

/// Records already encoded (Confluent wire format) with the partition
/// each goes to: what `produce` and the hub's Produce append.
#[derive(Debug, Clone)]
pub struct EncodedRecord {
    /// Partition.
    pub partition: u32,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The partition of a record with `key` in a topic of `partitions`:
/// keyed records by the murmur2 hash of their key (as Kafka's default
/// partitioner), keyless ones to partition 0.
pub fn partition_of(key: Option<&[u8]>, partitions: u32) -> u32 {
    key.map_or(0, |k| partition_for_key(k, partitions))
}

/// Appends `records` to `topic` (in order within each partition, one
/// batch per partition) and syncs them; the partition and offset each
/// got, in order.
pub fn append_records(
    topic: &Topic,
    records: &[EncodedRecord],
) -> Result<Vec<(u32, u64)>, WriteError> {
    let headers: Vec<Vec<Header<'_>>> = records
        .iter()
        .map(|e| {
            e.headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect()
        })
        .collect();
    let mut staged = Staged::new(topic.partitions().len() as u32);
    let mut idx = Vec::with_capacity(records.len());
    for (e, h) in records.iter().zip(&headers) {
        idx.push(staged.push(
            e.partition,
            RecordIn {
                timestamp: e.timestamp,
                key: e.key.as_deref(),
                value: e.value.as_deref(),
                headers: h,
            },
        )?);
    }
    let appended = staged.append(topic)?;
    for (p, _) in &appended.marks {
        p.flush()?;
    }
    Ok(records
        .iter()
        .zip(idx)
        .map(|(e, i)| {
            (
                e.partition,
                appended.bases[e.partition as usize] + u64::from(i),
            )
        })
        .collect())
}

/// Records gathered per partition, appended one batch per partition.
struct Staged {
    builders: Vec<Option<BatchBuilder>>,
}

/// What [`Staged::append`] gave: each partition's base offset (0 where
/// nothing was appended) and the marks.
struct StagedOffsets {
    bases: Vec<u64>,
    marks: Marks,
}

impl Staged {
    fn new(partitions: u32) -> Self {
        Self {
            builders: vec![None; partitions as usize],
        }
    }

    /// Adds `record` to partition `p`'s batch; its index there.
    fn push(&mut self, p: u32, record: RecordIn<'_>) -> Result<u32, WriteError> {
        let n = self.builders.len();
        let b = self
            .builders
            .get_mut(p as usize)
            .ok_or(WriteError::NoPartition {
                partition: p,
                partitions: n as u32,
            })?
            .get_or_insert_with(BatchBuilder::new);
        let idx = b.len();
        b.push(record);
        Ok(idx)
    }

    fn append(self, topic: &Topic) -> Result<StagedOffsets, WriteError> {
        let mut bases = vec![0u64; self.builders.len()];
        let mut marks = Vec::new();
        for (p, b) in self.builders.into_iter().enumerate() {
            if let Some(b) = b {
                let part = topic.partition(p as u32)?;
                let appended = part.append(b)?;
                bases[p] = appended.base_offset;
                marks.push((Arc::clone(part), appended.last_offset + 1));
            }
        }
        Ok(StagedOffsets { bases, marks })
    }
}
