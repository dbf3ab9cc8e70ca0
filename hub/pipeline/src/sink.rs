//! Running a sink: a consumer group's workers read the log from their
//! committed (or sink-stored) offsets, decode each record through the
//! registry, hand batches to the sink, and commit offsets only past what
//! the sink applied. `on_error` decides about records the target refuses.
//! Reading is bounded by the batch size: a slow sink never grows memory,
//! the log holds what it has not read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tributary_capture::position::{RecordMarks, RecordPosition};
use tributary_core::{OffsetStore, Sink, SinkError, SinkRecord, TopicPartition};
use tributary_log::{BatchBuilder, Log, RecordIn, SledOffsetStore, TopicConfig};
use tributary_schemas::RecordDecoder;

use crate::config::{OnError, SinkSection};
use crate::error::WorkerError;
use crate::telemetry::SinkTelemetry;
use crate::topics::{DLQ_SUFFIX, DataTopics};

/// What a worker needs.
pub(crate) struct Worker {
    pub section: SinkSection,
    pub worker: u32,
    pub workers: u32,
    pub log: Log,
    pub decoder: RecordDecoder,
    pub offsets: Arc<SledOffsetStore>,
    pub stop: watch::Receiver<bool>,
    pub sink: Option<Box<dyn Sink>>,
    /// In-flight batches allowed, shared by the sink's workers.
    pub permits: Arc<tokio::sync::Semaphore>,
    /// The group offsets committed so far.
    pub committed: BTreeMap<TopicPartition, u64>,
    /// Whether the sink stores its offsets with its data.
    pub sink_stores_offsets: bool,
    /// The sink's counters, shared by its workers.
    pub telemetry: Arc<SinkTelemetry>,
    /// Which topics hold data.
    pub data: Arc<DataTopics>,
}

/// How a worker's run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Asked to stop.
    Stopped { applied: u64 },
    /// Paused by `on_error: stop` or a fatal error, at its committed
    /// offsets.
    Paused { applied: u64, error: String },
}

impl Worker {
    fn group(&self) -> String {
        self.section
            .group
            .clone()
            .unwrap_or_else(|| self.section.name.clone())
    }

    /// The partitions of topics matching the sink's patterns that this
    /// worker owns: by a hash of topic and partition, so a new topic never
    /// moves a partition from one worker to another. Dead-letter topics
    /// and sources' schema histories are never data.
    fn assignment(&self) -> Vec<TopicPartition> {
        let mut mine = Vec::new();
        for t in self.log.topics() {
            let name = t.name();
            if !self.data.consumed_by(&self.section.topics, name) {
                continue;
            }
            for p in 0..t.partitions().len() as u32 {
                let hash = tributary_log::murmur2(format!("{name}/{p}").as_bytes());
                let owner = (hash & 0x7fff_ffff) as u32 % self.workers.max(1);
                if owner == self.worker {
                    mine.push(TopicPartition::new(name, p));
                }
            }
        }
        mine.sort();
        mine
    }

    pub(crate) async fn run(mut self) -> Result<Ended, WorkerError> {
        let group = self.group();
        let mut sink = self.sink.take().ok_or(WorkerError::NoSink)?;
        let mut stored_offsets = sink.stored_offsets().await.map_err(WorkerError::Sink)?;
        // `tributary offsets reset` of the group, for this worker's
        // partitions: the group's offsets already moved; a sink that
        // resumes from its own offsets is told first. Cleared only once
        // the sink stored them, before anything is applied, so a crash in
        // between stores the same reset again.
        let mine = self.assignment();
        let pending: Vec<(TopicPartition, u64)> = self
            .offsets
            .pending_resets(Some(&group))?
            .into_iter()
            .filter(|c| mine.contains(&c.tp))
            .map(|c| (c.tp, c.offset))
            .collect();
        if !pending.is_empty() {
            if stored_offsets.is_some() {
                sink.reset_offsets(&pending)
                    .await
                    .map_err(WorkerError::Reset)?;
                stored_offsets = sink.stored_offsets().await.map_err(WorkerError::Sink)?;
            }
            let tps: Vec<TopicPartition> = pending.iter().map(|(tp, _)| tp.clone()).collect();
            self.offsets.clear_resets(&group, &tps)?;
            tracing::info!(sink = %self.section.name, worker = self.worker, partitions = pending.len(), "offsets reset taken over");
        }
        let stack_cfg = crate::stack::StackConfig {
            name: self.section.name.clone(),
            timeout: Duration::from_millis(self.section.timeout_ms.max(1)),
            max_batches_per_second: self.section.max_batches_per_second,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        };
        let mut stack = crate::stack::build(
            sink,
            &stack_cfg,
            Arc::clone(&self.permits),
            self.stop.clone(),
        );
        let stored_any = stored_offsets.is_some();
        self.sink_stores_offsets = stored_any;
        let stored: BTreeMap<TopicPartition, u64> =
            stored_offsets.unwrap_or_default().into_iter().collect();
        let mut positions: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        let mut applied = 0u64;
        let mut ahead: Option<(
            Positions,
            tokio::task::JoinHandle<Result<Read, WorkerError>>,
        )> = None;
        // Where the time went (reading and decoding, the target).
        let (mut read_time, mut apply_time) = (Duration::ZERO, Duration::ZERO);
        let idle = Duration::from_millis(self.section.flush_interval_ms.clamp(10, 200));
        loop {
            if *self.stop.borrow() {
                tracing::info!(sink = %self.section.name, worker = self.worker, applied, read_ms = read_time.as_millis() as u64, apply_ms = apply_time.as_millis() as u64, "sink worker stopped");
                return Ok(Ended::Stopped { applied });
            }
            for tp in self.assignment() {
                if let std::collections::btree_map::Entry::Vacant(slot) = positions.entry(tp) {
                    let tp = slot.key();
                    // A sink that stores offsets and has none for this
                    // partition has applied nothing of it (its store may
                    // have been emptied): from the start, not from the
                    // group's offset.
                    let start = match (stored.get(tp), stored_any) {
                        (Some(&o), _) => o,
                        (None, true) => self
                            .log
                            .topic(&tp.topic)
                            .and_then(|t| t.partition(tp.partition).map(|p| p.earliest_offset()))?,
                        (None, false) => match self.offsets.get(&group, tp)? {
                            Some(o) => o,
                            None => self.log.topic(&tp.topic).and_then(|t| {
                                t.partition(tp.partition).map(|p| p.earliest_offset())
                            })?,
                        },
                    };
                    self.telemetry.committed(tp, start);
                    slot.insert(start);
                }
            }
            let t0 = std::time::Instant::now();
            // The batch read ahead while the previous one was applied, if
            // it was read from where things stand now.
            let (batch, skipped_to) = match ahead.take() {
                Some((from, handle)) if from == positions => {
                    handle.await.map_err(WorkerError::ReadAhead)??
                }
                _ => self.read(&positions, &group)?,
            };
            read_time += t0.elapsed();
            // Tombstones and the like carry nothing for a sink: move past.
            for (tp, off) in &skipped_to {
                positions.insert(tp.clone(), *off);
            }
            if batch.is_empty() {
                // All positions, not only the skipped: a worker held at a
                // truncate barrier waits on where the others are.
                self.commit_positions(&group, &positions)?;
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = self.stop.changed() => {}
                }
                continue;
            }
            // Read the next batch while this one is applied: where the
            // positions will be once it is (a different outcome discards
            // what was read).
            {
                let mut next = positions.clone();
                self.advance(&mut next, &batch);
                let (log, decoder) = (self.log.clone(), self.decoder.clone());
                let limit = self.section.batch_size();
                let from = next.clone();
                let (offsets, group) = (Arc::clone(&self.offsets), group.clone());
                ahead = Some((
                    next,
                    tokio::task::spawn_blocking(move || {
                        read_from(&log, &decoder, limit, &from, (&*offsets, &group))
                    }),
                ));
            }
            // Shared with the stack's retries, not copied.
            let batch: Arc<Vec<SinkRecord>> = Arc::new(batch);
            let mut from = 0;
            while from < batch.len() {
                let t0 = std::time::Instant::now();
                let result = match tower::ServiceExt::ready(&mut stack).await {
                    Ok(svc) => {
                        tower::Service::call(
                            svc,
                            crate::stack::Apply {
                                batch: Arc::clone(&batch),
                                from,
                            },
                        )
                        .await
                    }
                    Err(e) => Err(e),
                }
                .map_err(|e| crate::stack::sink_error(e, stack_cfg.timeout));
                apply_time += t0.elapsed();
                match result {
                    Ok(()) => {
                        applied += (batch.len() - from) as u64;
                        self.telemetry
                            .applied
                            .fetch_add((batch.len() - from) as u64, Ordering::Relaxed);
                        self.advance(&mut positions, &batch[from..]);
                        from = batch.len();
                    }
                    Err(SinkError::Record { index, reason }) => {
                        let bad = from + index;
                        if bad >= batch.len() {
                            self.commit_positions(&group, &positions)?;
                            return Ok(Ended::Paused {
                                applied,
                                error: format!(
                                    "the sink refused record {index} of a batch of {}: {reason}",
                                    batch.len() - from
                                ),
                            });
                        }
                        applied += index as u64;
                        self.telemetry
                            .applied
                            .fetch_add(index as u64, Ordering::Relaxed);
                        self.advance(&mut positions, &batch[from..bad]);
                        let r = &batch[bad];
                        let at = format!("{}[{}]@{}", r.topic, r.partition, r.offset);
                        match self.section.on_error {
                            OnError::Stop => {
                                self.commit_positions(&group, &positions)?;
                                return Ok(Ended::Paused {
                                    applied,
                                    error: format!("{at}: {reason}"),
                                });
                            }
                            OnError::Skip => {
                                self.telemetry.errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(sink = %self.section.name, record = %at, %reason, "record skipped");
                            }
                            OnError::Dlq => {
                                self.dead_letter(r, &reason)?;
                                self.telemetry.errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(sink = %self.section.name, record = %at, %reason, "record sent to the dead-letter topic");
                            }
                        }
                        self.advance(&mut positions, std::slice::from_ref(r));
                        from = bad + 1;
                    }
                    // The stack retries transient errors for as long as the
                    // pipeline runs: one that comes out means it stops.
                    Err(e @ SinkError::Transient { .. }) => {
                        self.commit_positions(&group, &positions)?;
                        if *self.stop.borrow() {
                            return Ok(Ended::Stopped { applied });
                        }
                        return Err(WorkerError::Sink(e));
                    }
                    Err(e @ SinkError::Fatal { .. }) => {
                        self.commit_positions(&group, &positions)?;
                        return Ok(Ended::Paused {
                            applied,
                            error: e.to_string(),
                        });
                    }
                    // Restarted by the supervisor, the worker resumes from
                    // what the target stores now.
                    Err(e @ SinkError::Rewind { .. }) => {
                        tracing::warn!(sink = %self.section.name, error = %e, "the target lost its data; replaying from its stored offsets");
                        return Err(WorkerError::Rewind(e));
                    }
                }
            }
            // Freed elsewhere: tens of thousands of records take a while,
            // and the next batch need not wait for it.
            tokio::task::spawn_blocking(move || drop(batch));
            self.commit_positions(&group, &positions)?;
        }
    }

    fn advance(&self, positions: &mut BTreeMap<TopicPartition, u64>, done: &[SinkRecord]) {
        // Once per run of a partition's records (a partition's records
        // are in offset order: its last run ends furthest).
        let mut run: Option<(&Arc<str>, u32, u64)> = None;
        for r in done {
            match &mut run {
                Some((t, p, next)) if *p == r.partition && Arc::ptr_eq(t, &r.topic) => {
                    *next = r.offset + 1;
                }
                _ => {
                    if let Some((t, p, next)) = run {
                        positions.insert(TopicPartition::new(&**t, p), next);
                    }
                    run = Some((&r.topic, r.partition, r.offset + 1));
                }
            }
        }
        if let Some((t, p, next)) = run {
            positions.insert(TopicPartition::new(&**t, p), next);
        }
    }

    /// Commits the group's offsets that moved. A sink that stores its
    /// offsets with its data resumes from those: the group's copy (for
    /// `offsets list`) need not wait for a flush; for other sinks it is
    /// flushed, once for all partitions.
    fn commit(
        &mut self,
        group: &str,
        to: &BTreeMap<TopicPartition, u64>,
    ) -> Result<(), WorkerError> {
        let moved: Vec<(TopicPartition, u64)> = to
            .iter()
            .filter(|(tp, off)| self.committed.get(*tp) != Some(*off))
            .map(|(tp, off)| (tp.clone(), *off))
            .collect();
        self.offsets
            .commit_many(group, &moved, !self.sink_stores_offsets)?;
        for (tp, off) in &moved {
            self.telemetry.committed(tp, *off);
        }
        self.committed.extend(moved);
        Ok(())
    }

    fn commit_positions(
        &mut self,
        group: &str,
        positions: &BTreeMap<TopicPartition, u64>,
    ) -> Result<(), WorkerError> {
        self.commit(group, positions)
    }

    fn read(&self, positions: &Positions, group: &str) -> Result<Read, WorkerError> {
        read_from(
            &self.log,
            &self.decoder,
            self.section.batch_size(),
            positions,
            (&*self.offsets, group),
        )
    }

    /// Writes `r` with error headers to `<sink>.dlq`.
    fn dead_letter(&self, r: &SinkRecord, reason: &str) -> Result<(), WorkerError> {
        // The record as it is in the log, read again (a batch does not
        // keep every record's bytes for the rare dead letter).
        let source = self.log.topic(&r.topic)?;
        let part = source.partition(r.partition)?;
        let mut raw = None;
        'find: for b in part.read(r.offset, 1 << 20)? {
            for x in b.records()?.iter() {
                let x = x?;
                if x.offset == r.offset {
                    raw = Some((
                        x.timestamp,
                        x.key.map(<[u8]>::to_vec),
                        x.value.map(<[u8]>::to_vec),
                    ));
                    break 'find;
                }
            }
        }
        let (timestamp, key, value) = raw.ok_or_else(|| WorkerError::DeadLetterGone {
            topic: r.topic.to_string(),
            partition: r.partition,
            offset: r.offset,
        })?;
        let name = format!("{}{DLQ_SUFFIX}", self.section.name);
        let topic = match self.log.topic(&name) {
            Ok(t) => t,
            Err(_) => self.log.create_topic(
                &name,
                TopicConfig {
                    partitions: 1,
                    ..TopicConfig::default()
                },
            )?,
        };
        let partition = r.partition.to_string();
        let offset = r.offset.to_string();
        let headers = [
            ("tributary.error", Some(reason.as_bytes())),
            ("tributary.topic", Some(r.topic.as_bytes())),
            ("tributary.partition", Some(partition.as_bytes())),
            ("tributary.offset", Some(offset.as_bytes())),
        ];
        let mut b = BatchBuilder::new();
        b.push(RecordIn {
            timestamp,
            key: key.as_deref(),
            value: value.as_deref(),
            headers: &headers,
        });
        let p = topic.partition(0)?;
        p.append(b)?;
        // Durable before the offset moves past the record.
        p.flush()?;
        Ok(())
    }
}

/// Where each partition is read from.
type Positions = BTreeMap<TopicPartition, u64>;

/// Decoded records, and for partitions where only records without a
/// change (tombstones) were read, how far.
type Read = (Vec<SinkRecord>, Positions);

/// Up to `limit` durable records from the positions on, shared among the
/// partitions that have some: each gets an equal part first, what is left
/// goes to those with more. A batch then holds every partition's next
/// records, as a Kafka fetch does: none waits for another to be drained,
/// and a table's new rows arrive in nearly key order (keys are spread
/// over partitions by hash), which bulk loads into an index want.
///
/// A truncate written to every partition (a barrier, see
/// `tributary_capture::BARRIER_HEADER`) stops each partition's read at its copy. Partition
/// 0's copy is the one applied: once every other partition of the topic
/// has reached its copy (or passed it), at the end of the batch. The
/// other copies are passed over once partition 0 is past its copy. So
/// every row written before the truncate is applied before it, and every
/// row after it after, whichever partition holds the row. Partitions of
/// other workers of the sink are seen through `group`'s committed
/// offsets.
fn read_from(
    log: &Log,
    decoder: &RecordDecoder,
    limit: usize,
    positions: &Positions,
    group: (&SledOffsetStore, &str),
) -> Result<Read, WorkerError> {
    let mut batch = Vec::with_capacity(limit.min(100_000));
    let mut skipped = BTreeMap::new();
    let mut parts = Vec::with_capacity(positions.len());
    for (tp, &from) in positions {
        let topic = log.topic(&tp.topic)?;
        let part = Arc::clone(topic.partition(tp.partition)?);
        let end = part.durable_watermark();
        let offset = from.max(part.earliest_offset());
        if offset < end {
            parts.push(PartRead {
                tp,
                topic: tp.topic.as_str().into(),
                part,
                offset,
                end,
                decoded: false,
                held: None,
            });
        }
    }
    let share = limit.div_ceil(parts.len().max(1));
    for round_cap in [Some(share), None] {
        for p in &mut parts {
            if batch.len() >= limit {
                break;
            }
            let cap = match round_cap {
                Some(s) => (batch.len() + s).min(limit),
                None => limit,
            };
            p.read(decoder, cap, &mut batch, &mut skipped)?;
        }
    }
    for i in 0..parts.len() {
        let Some(held) = &parts[i].held else {
            continue;
        };
        let tp = parts[i].tp;
        let topic = log.topic(&tp.topic)?;
        // Where partition q of the topic is read from after this batch.
        let next = |q: u32| -> Result<Option<u64>, WorkerError> {
            if let Some(p) = parts
                .iter()
                .find(|p| p.tp.partition == q && p.tp.topic == tp.topic)
            {
                return Ok(Some(p.offset));
            }
            let qtp = TopicPartition::new(&tp.topic, q);
            match positions.get(&qtp) {
                Some(&o) => Ok(Some(o)),
                None => group.0.get(group.1, &qtp).map_err(WorkerError::from),
            }
        };
        let state = |q: u32| -> Result<Barrier, WorkerError> {
            let part = topic.partition(q)?;
            match next(q)? {
                Some(at) => barrier_state(part, at, &held.position),
                None => Ok(Barrier::Before),
            }
        };
        if tp.partition == 0 {
            let mut reached = true;
            for q in 1..topic.partitions().len() as u32 {
                if state(q)? == Barrier::Before {
                    reached = false;
                    break;
                }
            }
            if reached && let Some(held) = parts[i].held.take() {
                batch.push(held.record);
            }
        } else if !parts[i].decoded && state(0)? == Barrier::Past {
            skipped.insert(tp.clone(), held.offset + 1);
        }
    }
    Ok((batch, skipped))
}

/// Where a partition read from `at` on stands to a truncate barrier at
/// source position `position`.
#[derive(Debug, PartialEq, Eq)]
enum Barrier {
    /// Records before its copy are still to be read.
    Before,
    /// Its next record is its copy.
    At,
    /// Its copy is behind it.
    Past,
}

fn barrier_state(
    part: &tributary_log::Partition,
    at: u64,
    position: &RecordPosition,
) -> Result<Barrier, WorkerError> {
    let end = part.durable_watermark();
    // A partition's records are in source position order: its next one
    // says where it stands, or, at its end, the one before.
    if at < end {
        let next = record_at(part, at, at + 1, end)?;
        return Ok(match next {
            Some(RecordMarks {
                position: Some(p),
                barrier,
            }) if &p == position && barrier => Barrier::At,
            Some(RecordMarks {
                position: Some(p), ..
            }) if &p > position => Barrier::Past,
            _ => Barrier::Before,
        });
    }
    // The last record before `at` (compaction may have removed the ones
    // right before it; a barrier, keyless, is never removed).
    let earliest = part.earliest_offset();
    let mut back = 1;
    if at <= earliest {
        return Ok(Barrier::Before);
    }
    loop {
        let from = at.saturating_sub(back).max(earliest);
        if let Some(marks) = record_at(part, from, at, end)? {
            return Ok(match marks.position {
                Some(p) if &p >= position => Barrier::Past,
                _ => Barrier::Before,
            });
        }
        if from == earliest {
            return Ok(Barrier::Before);
        }
        back *= 16;
    }
}

/// The capture marks (position, barrier) of the last durable record in
/// `from..until`.
fn record_at(
    part: &tributary_log::Partition,
    from: u64,
    until: u64,
    end: u64,
) -> Result<Option<RecordMarks>, WorkerError> {
    let mut found = None;
    let mut offset = from;
    while offset < until.min(end) {
        let batches = part.read(offset, 64 << 10)?;
        let before = offset;
        for b in batches {
            for r in b.records()?.iter() {
                let r = r?;
                if r.offset < offset {
                    continue;
                }
                if r.offset >= until || r.offset >= end {
                    return Ok(found);
                }
                offset = r.offset + 1;
                found = Some(RecordMarks::of(&r));
            }
        }
        if offset == before {
            break;
        }
    }
    Ok(found)
}

/// One partition's part of a read.
struct PartRead<'a> {
    tp: &'a TopicPartition,
    topic: Arc<str>,
    part: Arc<tributary_log::Partition>,
    /// The next offset to read.
    offset: u64,
    /// The durable watermark when the read began.
    end: u64,
    /// Whether a record of it was decoded into the batch.
    decoded: bool,
    /// The truncate barrier its read stopped at.
    held: Option<Held>,
}

/// A truncate written to every partition, where a partition's read
/// stopped.
struct Held {
    /// Its source position (the same in every partition).
    position: RecordPosition,
    offset: u64,
    record: SinkRecord,
}

impl PartRead<'_> {
    /// Decodes records into `batch` until it holds `cap` or the partition
    /// has no more.
    fn read(
        &mut self,
        decoder: &RecordDecoder,
        cap: usize,
        batch: &mut Vec<SinkRecord>,
        skipped: &mut Positions,
    ) -> Result<(), WorkerError> {
        let tp = self.tp;
        'read: while self.held.is_none() && self.offset < self.end && batch.len() < cap {
            // About what the records still wanted take (more rounds if
            // they are larger): a partition's share of a small batch does
            // not read (and check) a whole MiB.
            let bytes = ((cap - batch.len()) * 512).clamp(16 << 10, 1 << 20);
            let batches = self.part.read(self.offset, bytes)?;
            if batches.is_empty() {
                break;
            }
            for b in batches {
                for r in b.records()?.iter() {
                    let r = r?;
                    if r.offset < self.offset {
                        continue;
                    }
                    if r.offset >= self.end || batch.len() >= cap {
                        break 'read;
                    }
                    // A barrier is keyless: keyed records need no look.
                    if r.key.is_none()
                        && RecordMarks::is_barrier(&r)
                        && let (Some(position), Some(value)) =
                            (RecordMarks::of(&r).position, r.value)
                    {
                        self.held = Some(Held {
                            position,
                            offset: r.offset,
                            record: self.decode(decoder, r.offset, r.timestamp, r.key, value)?,
                        });
                        break 'read;
                    }
                    self.offset = r.offset + 1;
                    let Some(value) = r.value else {
                        // Moved past now only if nothing before it in
                        // this batch may still fail; else next round.
                        if !self.decoded {
                            skipped.insert(tp.clone(), self.offset);
                        }
                        continue;
                    };
                    self.decoded = true;
                    batch.push(self.decode(decoder, r.offset, r.timestamp, r.key, value)?);
                }
            }
        }
        Ok(())
    }

    /// The record at `offset` decoded.
    fn decode(
        &self,
        decoder: &RecordDecoder,
        offset: u64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SinkRecord, WorkerError> {
        let tp = self.tp;
        let undecodable = |part, source| WorkerError::Decode {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset,
            part,
            source,
        };
        let (schema, event) = decoder.value(value).map_err(|e| undecodable("", e))?;
        let key = match key {
            Some(k) => Some(
                decoder
                    .key(&schema, k)
                    .map_err(|e| undecodable("key: ", e))?,
            ),
            None => None,
        };
        Ok(SinkRecord {
            topic: Arc::clone(&self.topic),
            partition: tp.partition,
            offset,
            timestamp,
            key,
            event,
            table: schema.table_arc(),
        })
    }
}
