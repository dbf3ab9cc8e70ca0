//! A partition: an ordered list of segments with one writer and any number
//! of concurrent readers.
//!
//! Offsets are assigned here, under the writer lock. Two watermarks are
//! published: the *high watermark* (every offset below it can be read) and
//! the *durable watermark* (every offset below it is on stable storage,
//! per the topic's fsync policy). Readers wait on the high watermark with
//! [`Partition::wait_for`], not by polling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::batch::{self, Batch, BatchBuilder, RecordIn};
use crate::config::{Cleanup, FsyncPolicy, TopicConfig};
use crate::error::{LogError, Result};
use crate::segment::{self, Recovery, Segment};

/// Offsets given to one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
}

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments rewritten.
    pub segments_rewritten: usize,
    /// Records removed (superseded, or expired tombstones).
    pub records_removed: u64,
    /// Records kept in the rewritten segments.
    pub records_kept: u64,
}

/// One partition of a topic.
#[derive(Debug)]
pub struct Partition {
    topic: String,
    id: u32,
    dir: PathBuf,
    config: Arc<TopicConfig>,
    segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<()>,
    compactor: Mutex<()>,
    next_offset: AtomicU64,
    durable: AtomicU64,
    last_sync_ms: AtomicI64,
    high_watermark: watch::Sender<u64>,
    durable_watermark: watch::Sender<u64>,
    recovery: Recovery,
    /// Set when an fsync failed: after a failed fsync the kernel may have
    /// dropped the dirty pages, so nothing written since the last good
    /// sync can be called durable. The partition refuses appends and
    /// flushes until it is reopened (and recovered from what is on disk).
    failed: std::sync::atomic::AtomicBool,
}

impl Partition {
    /// Opens (or creates) the partition in `dir`, recovering its last
    /// segment.
    pub(crate) fn open(topic: &str, id: u32, dir: &Path, config: Arc<TopicConfig>) -> Result<Self> {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| LogError::io("create dir", dir, e))?;
            if let Some(parent) = dir.parent() {
                segment::sync_dir(parent)?;
            }
        }
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| LogError::io("list", dir, e))? {
            let entry = entry.map_err(|e| LogError::io("list", dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = segment::parse_log_name(&name) {
                bases.push(base);
            } else if name.ends_with(".cleaned") || name.ends_with(".tmp") {
                // Leftovers of an interrupted compaction or index write.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        let interval = u64::from(config.index_interval_bytes);
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let recovery = match bases.split_last() {
            None => {
                segments.push(Arc::new(Segment::create(dir, 0)?));
                Recovery::Clean
            }
            Some((&last, sealed)) => {
                for (i, &base) in sealed.iter().enumerate() {
                    let next_base = bases[i + 1];
                    segments.push(Arc::new(Segment::open_sealed(
                        dir, base, next_base, interval,
                    )?));
                }
                let (active, rec) = Segment::recover_active(dir, last, interval)?;
                segments.push(Arc::new(active));
                rec
            }
        };
        let next = segments.last().map(|s| s.next_offset()).unwrap_or(0);
        Ok(Self {
            topic: topic.to_string(),
            id,
            dir: dir.to_path_buf(),
            config,
            segments: RwLock::new(segments),
            writer: Mutex::new(()),
            compactor: Mutex::new(()),
            next_offset: AtomicU64::new(next),
            durable: AtomicU64::new(next),
            last_sync_ms: AtomicI64::new(segment::now_ms()),
            high_watermark: watch::Sender::new(next),
            durable_watermark: watch::Sender::new(next),
            recovery,
            failed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn check_healthy(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(LogError::Failed {
                topic: self.topic.clone(),
                partition: self.id,
            });
        }
        Ok(())
    }

    /// Syncs `seg`; a failure poisons the partition.
    fn sync_segment(&self, seg: &Segment) -> Result<()> {
        let started = std::time::Instant::now();
        let r = seg.sync();
        crate::metrics::record_fsync(started.elapsed());
        if r.is_err() {
            self.failed.store(true, Ordering::Release);
            tracing::error!(topic = %self.topic, partition = self.id, "fsync failed: partition stopped until reopened");
        }
        r
    }

    /// Partition number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Directory of its segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery found when the partition was opened.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The offset the next appended record gets; every offset below it can
    /// be read.
    pub fn high_watermark(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Every offset below this is on stable storage (for `fsync: never`,
    /// it follows the high watermark; see [`FsyncPolicy::Never`]).
    pub fn durable_watermark(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The first offset still stored.
    pub fn earliest_offset(&self) -> u64 {
        self.segments
            .read()
            .first()
            .map(|s| s.base_offset)
            .unwrap_or(0)
    }

    /// Number of segments and their total bytes.
    pub fn disk_usage(&self) -> (usize, u64) {
        let segs = self.segments.read();
        (segs.len(), segs.iter().map(|s| s.size()).sum())
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.segments.read().iter().map(|s| s.base_offset).collect()
    }

    fn active(&self) -> Arc<Segment> {
        let segs = self.segments.read();
        Arc::clone(&segs[segs.len() - 1])
    }

    /// Appends one batch; returns the offsets it got. With `fsync: always`
    /// it returns only after the data is synced.
    pub fn append(&self, batch: BatchBuilder) -> Result<Appended> {
        if batch.is_empty() {
            return Err(LogError::InvalidBatch {
                reason: "a batch needs at least one record".into(),
            });
        }
        if self.config.cleanup == Cleanup::Compact && batch.has_null_key() {
            return Err(LogError::KeyRequired {
                topic: self.topic.clone(),
            });
        }
        let mut frame = batch.finish(self.config.compression)?;
        if frame.len() as u64
            > self
                .config
                .segment_bytes
                .max(crate::config::MAX_SEGMENT_BYTES / 2)
        {
            return Err(LogError::InvalidBatch {
                reason: format!("batch of {} bytes is too large", frame.len()),
            });
        }
        let _w = self.writer.lock();
        self.check_healthy()?;
        let base = self.next_offset.load(Ordering::Acquire);
        batch::seal_frame(&mut frame, base);
        let header = batch::parse_header(&frame).map_err(|e| LogError::InvalidBatch {
            reason: format!("{e:?}"),
        })?;
        let mut active = self.active();
        if active.size() > 0
            && (active.size() + frame.len() as u64 > self.config.segment_bytes
                || self.segment_expired(&active))
        {
            active = self.roll_locked(&active)?;
        }
        if let Err(e) = active.append(&frame, &header, u64::from(self.config.index_interval_bytes))
        {
            // A partial write may sit past the visible end: poison rather
            // than let a later append land after garbage.
            self.failed.store(true, Ordering::Release);
            return Err(e);
        }
        let next = header.next_offset();
        // With `always`, the batch becomes visible only once synced, so no
        // reader sees a record a crash could take back.
        if self.config.fsync == FsyncPolicy::Always {
            self.sync_segment(&active)?;
        }
        self.next_offset.store(next, Ordering::Release);
        if matches!(self.config.fsync, FsyncPolicy::Always | FsyncPolicy::Never) {
            self.publish_durable(next);
        }
        self.high_watermark.send_replace(next);
        Ok(Appended {
            base_offset: base,
            last_offset: header.last_offset(),
        })
    }

    fn segment_expired(&self, seg: &Segment) -> bool {
        self.config
            .segment_ms
            .is_some_and(|ms| segment::now_ms().saturating_sub(seg.first_append_ms()) >= ms as i64)
    }

    fn publish_durable(&self, upto: u64) {
        let prev = self.durable.fetch_max(upto, Ordering::AcqRel);
        if upto > prev {
            self.durable_watermark.send_replace(upto);
        }
    }

    /// Seals `active` and starts a new segment. Caller holds the writer lock.
    fn roll_locked(&self, active: &Arc<Segment>) -> Result<Arc<Segment>> {
        if let Err(e) = active.seal() {
            self.failed.store(true, Ordering::Release);
            return Err(e);
        }
        // Sealing synced everything written so far.
        self.publish_durable(active.next_offset());
        let next = Arc::new(Segment::create(&self.dir, active.next_offset())?);
        self.segments.write().push(Arc::clone(&next));
        tracing::debug!(topic = %self.topic, partition = self.id, base = next.base_offset, "rolled segment");
        Ok(next)
    }

    /// Seals the active segment and starts a new one (if it holds data).
    pub fn roll(&self) -> Result<()> {
        let _w = self.writer.lock();
        let active = self.active();
        if active.size() > 0 {
            self.roll_locked(&active)?;
        }
        Ok(())
    }

    /// Syncs what was appended so far and moves the durable watermark.
    pub fn flush(&self) -> Result<()> {
        let (active, upto) = {
            let _w = self.writer.lock();
            self.check_healthy()?;
            (self.active(), self.next_offset.load(Ordering::Acquire))
        };
        if upto > self.durable_watermark() {
            self.sync_segment(&active)?;
            self.publish_durable(upto);
        }
        self.last_sync_ms
            .store(segment::now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Flushes if the topic syncs by interval and the interval has passed.
    pub(crate) fn flush_if_due(&self, now_ms: i64) -> Result<()> {
        if let FsyncPolicy::Interval { interval_ms } = self.config.fsync
            && now_ms - self.last_sync_ms.load(Ordering::Relaxed) >= interval_ms as i64
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Batches holding records at or after `offset`, roughly `max_bytes`
    /// of them; empty when `offset` is the high watermark. The first batch
    /// may start before `offset`: skip records below it.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<Batch>> {
        let hw = self.high_watermark();
        let segs: Vec<Arc<Segment>> = self.segments.read().clone();
        let earliest = segs.first().map(|s| s.base_offset).unwrap_or(0);
        if offset < earliest || offset > hw {
            return Err(LogError::OffsetOutOfRange {
                topic: self.topic.clone(),
                partition: self.id,
                requested: offset,
                earliest,
                next: hw,
            });
        }
        let start = segs
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        for seg in &segs[start..] {
            let batches = seg.read(offset, max_bytes)?;
            if !batches.is_empty() {
                return Ok(batches);
            }
        }
        Ok(Vec::new())
    }

    /// Waits until a record at `offset` can be read (the high watermark
    /// passes it). Returns at once when it already can.
    pub async fn wait_for(&self, offset: u64) {
        let mut rx = self.high_watermark.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|&hw| hw > offset).await;
    }

    /// Waits until the durable watermark passes `offset`.
    pub async fn wait_durable(&self, offset: u64) {
        let mut rx = self.durable_watermark.subscribe();
        let _ = rx.wait_for(|&d| d > offset).await;
    }

    /// A receiver of the high watermark, for select loops.
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// A receiver of the durable watermark.
    pub fn watch_durable_watermark(&self) -> watch::Receiver<u64> {
        self.durable_watermark.subscribe()
    }

    /// The first offset whose record timestamp is at least `ts`, or `None`
    /// when every record is older.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>> {
        let segs: Vec<Arc<Segment>> = self.segments.read().clone();
        for seg in segs {
            if let Some(o) = seg.offset_for_timestamp(ts)? {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }

    /// Rolls the active segment when it is older than `segment_ms`, then
    /// deletes whole sealed segments past the size or age limit, oldest
    /// first. Returns the base offsets deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<Vec<u64>> {
        // Same lock order as `compact`: a segment being compacted is not
        // deleted under it (the rename would bring it back).
        let _c = self.compactor.lock();
        let _w = self.writer.lock();
        let active = self.active();
        if active.size() > 0 && self.segment_expired(&active) {
            self.roll_locked(&active)?;
        }
        let segs: Vec<Arc<Segment>> = self.segments.read().clone();
        let mut total: u64 = segs.iter().map(|s| s.size()).sum();
        let mut doomed = 0;
        for seg in &segs[..segs.len() - 1] {
            let by_size = self
                .config
                .retention_bytes
                .is_some_and(|limit| total > limit);
            let by_age = self
                .config
                .retention_ms
                .is_some_and(|ms| seg.max_timestamp() < now_ms.saturating_sub(ms as i64));
            if !(by_size || by_age) {
                break;
            }
            total -= seg.size();
            doomed += 1;
        }
        if doomed == 0 {
            return Ok(Vec::new());
        }
        let removed: Vec<Arc<Segment>> = self.segments.write().drain(..doomed).collect();
        for seg in &removed {
            seg.delete_files()?;
        }
        segment::sync_dir(&self.dir)?;
        Ok(removed.iter().map(|s| s.base_offset).collect())
    }

    /// Rewrites sealed segments to keep only the newest record of each key;
    /// a tombstone whose timestamp is older than `delete_retention_ms`
    /// removes its key entirely. Offsets never change; gaps appear.
    ///
    /// The key map holds every distinct key of the partition in memory.
    pub fn compact(&self, now_ms: i64) -> Result<CompactionStats> {
        let _c = self.compactor.lock();
        let segs: Vec<Arc<Segment>> = self.segments.read().clone();
        let mut stats = CompactionStats::default();
        if segs.len() < 2 {
            return Ok(stats);
        }
        let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
        for seg in &segs {
            seg.for_each_batch(|h, bytes| {
                let b = Batch::new(*h, Bytes::copy_from_slice(bytes));
                for r in b.records()?.iter() {
                    let r = r?;
                    if let Some(k) = r.key {
                        match latest.get_mut(k) {
                            Some(o) => *o = r.offset,
                            None => {
                                latest.insert(k.to_vec(), r.offset);
                            }
                        }
                    }
                }
                Ok(())
            })?;
        }
        let horizon = now_ms.saturating_sub(self.config.delete_retention_ms as i64);
        for (i, seg) in segs[..segs.len() - 1].iter().enumerate() {
            let cleaned = self.compact_segment(seg, &latest, horizon, &mut stats)?;
            if let Some(tmp) = cleaned {
                let _w = self.writer.lock();
                // Index files first: a crash between the two steps must not
                // leave an old index beside the new log file.
                seg.delete_index_files()?;
                std::fs::rename(&tmp, &seg.path).map_err(|e| LogError::io("rename", &tmp, e))?;
                segment::sync_dir(&self.dir)?;
                let next_base = segs[i + 1].base_offset;
                let fresh = Arc::new(Segment::open_sealed(
                    &self.dir,
                    seg.base_offset,
                    next_base,
                    u64::from(self.config.index_interval_bytes),
                )?);
                let mut list = self.segments.write();
                if let Some(slot) = list.iter_mut().find(|s| s.base_offset == seg.base_offset) {
                    *slot = fresh;
                }
                stats.segments_rewritten += 1;
            }
        }
        Ok(stats)
    }

    /// Writes the kept records of `seg` to a `.cleaned` file; `None` when
    /// nothing would be removed.
    fn compact_segment(
        &self,
        seg: &Segment,
        latest: &HashMap<Vec<u8>, u64>,
        horizon: i64,
        stats: &mut CompactionStats,
    ) -> Result<Option<PathBuf>> {
        const OUT_BATCH_BYTES: usize = 1 << 20;
        let mut out: Vec<u8> = Vec::new();
        let mut removed = 0u64;
        let mut kept = 0u64;
        let mut builder: Option<(u64, BatchBuilder)> = None;
        let compression = self.config.compression;
        let flush = |builder: &mut Option<(u64, BatchBuilder)>, out: &mut Vec<u8>| -> Result<()> {
            if let Some((base, b)) = builder.take() {
                let mut frame = b.finish(compression)?;
                batch::seal_frame(&mut frame, base);
                out.extend_from_slice(&frame);
            }
            Ok(())
        };
        seg.for_each_batch(|h, bytes| {
            let b = Batch::new(*h, Bytes::copy_from_slice(bytes));
            for r in b.records()?.iter() {
                let r = r?;
                let newest = r.key.is_none_or(|k| latest.get(k) == Some(&r.offset));
                let expired_tombstone = r.value.is_none() && r.timestamp < horizon;
                if !newest || expired_tombstone {
                    removed += 1;
                    continue;
                }
                kept += 1;
                let headers: Vec<(&str, Option<&[u8]>)> = r
                    .headers()
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|reason| LogError::InvalidBatch { reason })?;
                let record = RecordIn {
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: &headers,
                };
                if builder
                    .as_ref()
                    .is_some_and(|(_, b)| b.encoded_len() >= OUT_BATCH_BYTES)
                {
                    flush(&mut builder, &mut out)?;
                }
                let (base, b) = builder.get_or_insert_with(|| (r.offset, BatchBuilder::new()));
                let delta =
                    u32::try_from(r.offset - *base).map_err(|_| LogError::InvalidBatch {
                        reason: "offset span of a compacted batch exceeds 32 bits".into(),
                    })?;
                b.push_at(delta, record);
            }
            Ok(())
        })?;
        flush(&mut builder, &mut out)?;
        stats.records_removed += removed;
        if removed == 0 {
            return Ok(None);
        }
        stats.records_kept += kept;
        let tmp = seg.path.with_extension("log.cleaned");
        std::fs::write(&tmp, &out)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .map_err(|e| LogError::io("write", &tmp, e))?;
        Ok(Some(tmp))
    }
}
