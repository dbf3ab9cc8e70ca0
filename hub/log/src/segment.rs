//! A segment: one log file of whole batches, named by its base offset,
//! with its sparse offset and time indexes.
//!
//! Files: `{base:020}.log`, `{base:020}.index`, `{base:020}.timeindex`.
//! Only the partition's last segment (the active one) is written; the
//! others are sealed: synced, with their indexes on disk.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::batch::{self, Batch, BatchHeader, FrameError, HEADER_LEN};
use crate::error::{LogError, Result};
use crate::index::{self, OffsetEntry, TimeEntry};

/// How the active segment looked when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Every byte belonged to a valid batch.
    Clean,
    /// The file ended in an incomplete or invalid batch with nothing valid
    /// after it (a write cut short by a crash); it was truncated.
    TornTail {
        /// The segment file.
        path: PathBuf,
        /// New length of the file.
        truncated_at: u64,
        /// Bytes removed.
        dropped_bytes: u64,
    },
}

pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

fn time_index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.timeindex"))
}

/// Parses `{base:020}.log`.
pub(crate) fn parse_log_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Where a scan of frames stopped.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    /// At the end of the range.
    Clean,
    /// At a frame that is incomplete or fails its checks.
    Bad { pos: u64, error: FrameError },
}

const SCAN_CHUNK: usize = 4 << 20;

/// Whether any valid batch starts after `bad` and before `end`: then the
/// damage at `bad` is not the torn end of the last write. Looks at every
/// byte position (only on damage); a position counts only if its header
/// names an offset in `[min_offset, min_offset + 2^32)`, where the next
/// batch would have to be, and its CRC matches. Reads the rest of the
/// segment into memory (at most `segment_bytes`).
fn valid_frame_after(
    file: &File,
    path: &Path,
    bad: u64,
    end: u64,
    min_offset: u64,
) -> Result<bool> {
    let mut rest = vec![0u8; (end - bad) as usize];
    file.read_exact_at(&mut rest, bad)
        .map_err(|e| LogError::io("read", path, e))?;
    let plausible = |h: &BatchHeader| {
        h.base_offset >= min_offset && h.base_offset - min_offset <= u64::from(u32::MAX)
    };
    Ok((1..rest.len().saturating_sub(HEADER_LEN - 1)).any(|i| {
        rest[i + 16] == 1
            && batch::parse_header(&rest[i..])
                .is_ok_and(|h| i + h.total_len <= rest.len() && plausible(&h))
            && batch::check_frame(&rest[i..]).is_ok()
    }))
}

/// Calls `f` with each valid batch in `[start, end)` of `file`, in order,
/// reading in large chunks. Stops at the first bad frame.
pub(crate) fn scan_frames(
    file: &File,
    path: &Path,
    start: u64,
    end: u64,
    mut f: impl FnMut(u64, &BatchHeader, &[u8]) -> Result<()>,
) -> Result<ScanEnd> {
    let mut pos = start;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = start;
    while pos < end {
        let off = (pos - buf_start) as usize;
        let avail = buf.len().saturating_sub(off);
        let need = match batch::parse_header(&buf[off.min(buf.len())..]) {
            Ok(h) => h.total_len,
            Err(FrameError::Incomplete { .. }) => HEADER_LEN,
            Err(_) => 0,
        };
        if need > avail {
            if avail as u64 >= end - pos {
                // Everything up to `end` is in the buffer and still not a
                // whole frame.
                return Ok(ScanEnd::Bad {
                    pos,
                    error: FrameError::Incomplete { needed: need },
                });
            }
            let want = ((end - pos) as usize).min(need.max(SCAN_CHUNK));
            buf.resize(want, 0);
            file.read_exact_at(&mut buf, pos)
                .map_err(|e| LogError::io("read", path, e))?;
            buf_start = pos;
            continue;
        }
        match batch::check_frame(&buf[off..]) {
            Ok(h) => {
                f(pos, &h, &buf[off..off + h.total_len])?;
                pos += h.total_len as u64;
            }
            Err(error) => {
                return Ok(ScanEnd::Bad { pos, error });
            }
        }
    }
    Ok(ScanEnd::Clean)
}

/// One segment. Shared by the writer and readers of its partition.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    dir: PathBuf,
    file: File,
    /// Bytes of complete batches: readers never look past it.
    size: AtomicU64,
    /// Offset after the last record stored here.
    next_offset: AtomicU64,
    max_timestamp: AtomicI64,
    /// Wall-clock ms when the first batch arrived (for `segment_ms`).
    first_append_ms: AtomicI64,
    index: RwLock<Vec<OffsetEntry>>,
    time_index: RwLock<Vec<TimeEntry>>,
    /// Bytes written since the last offset index entry (writer only).
    since_index: AtomicU64,
}

struct Built {
    size: u64,
    next_offset: u64,
    max_timestamp: i64,
    index: Vec<OffsetEntry>,
    time_index: Vec<TimeEntry>,
}

impl Segment {
    fn with(dir: &Path, base: u64, file: File, b: Built) -> Self {
        Segment {
            base_offset: base,
            path: log_path(dir, base),
            dir: dir.to_path_buf(),
            file,
            size: AtomicU64::new(b.size),
            next_offset: AtomicU64::new(b.next_offset),
            max_timestamp: AtomicI64::new(b.max_timestamp),
            first_append_ms: AtomicI64::new(if b.size > 0 { now_ms() } else { i64::MAX }),
            index: RwLock::new(b.index),
            time_index: RwLock::new(b.time_index),
            since_index: AtomicU64::new(0),
        }
    }

    /// A new, empty segment.
    pub fn create(dir: &Path, base: u64) -> Result<Self> {
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| LogError::io("create", &path, e))?;
        sync_dir(dir)?;
        let built = Built {
            size: 0,
            next_offset: base,
            max_timestamp: i64::MIN,
            index: Vec::new(),
            time_index: Vec::new(),
        };
        Ok(Self::with(dir, base, file, built))
    }

    /// Scans `[0, len)` building indexes; returns them and how the scan ended.
    fn build(
        file: &File,
        path: &Path,
        base: u64,
        len: u64,
        interval: u64,
    ) -> Result<(Built, ScanEnd)> {
        let mut b = Built {
            size: 0,
            next_offset: base,
            max_timestamp: i64::MIN,
            index: Vec::new(),
            time_index: Vec::new(),
        };
        let mut since = u64::MAX;
        let end = scan_frames(file, path, 0, len, |pos, h, _| {
            let rel = rel_of(base, h.base_offset, path, pos)?;
            if pos > u64::from(u32::MAX) {
                return Err(LogError::Corrupt {
                    path: path.to_path_buf(),
                    position: pos,
                    reason: "segment larger than 4 GiB".into(),
                });
            }
            if since >= interval {
                b.index.push(OffsetEntry {
                    rel,
                    pos: pos as u32,
                });
                since = 0;
            }
            if h.max_timestamp > b.max_timestamp {
                b.max_timestamp = h.max_timestamp;
                b.time_index.push(TimeEntry {
                    ts: h.max_timestamp,
                    rel,
                });
            }
            since += h.total_len as u64;
            b.size = pos + h.total_len as u64;
            b.next_offset = h.next_offset();
            Ok(())
        })?;
        Ok((b, end))
    }

    /// Opens the partition's last segment: every batch is checked; a torn
    /// tail is truncated; damage followed by valid data is an error.
    pub fn recover_active(dir: &Path, base: u64, interval: u64) -> Result<(Self, Recovery)> {
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| LogError::io("stat", &path, e))?
            .len();
        let (built, end) = Self::build(&file, &path, base, len, interval)?;
        let recovery = match end {
            ScanEnd::Clean => Recovery::Clean,
            ScanEnd::Bad { pos, error } => {
                if valid_frame_after(&file, &path, pos, len, built.next_offset)? {
                    return Err(LogError::Corrupt {
                        path,
                        position: pos,
                        reason: format!("{error:?}, with valid batches after it"),
                    });
                }
                file.set_len(pos)
                    .map_err(|e| LogError::io("truncate", &path, e))?;
                tracing::warn!(path = %path.display(), truncated_at = pos, dropped = len - pos, "truncated torn tail");
                Recovery::TornTail {
                    path: path.clone(),
                    truncated_at: pos,
                    dropped_bytes: len - pos,
                }
            }
        };
        // What a killed process left in the page cache is on disk before
        // the durable watermark covers it.
        file.sync_all()
            .map_err(|e| LogError::io("fsync", &path, e))?;
        sync_dir(dir)?;
        // Stale index files of a once-sealed segment must not survive.
        let _ = std::fs::remove_file(index_path(dir, base));
        let _ = std::fs::remove_file(time_index_path(dir, base));
        Ok((Self::with(dir, base, file, built), recovery))
    }

    /// Opens a sealed segment, loading its index files, or rebuilding
    /// them (with every batch checked) when missing or stale. `next_base`
    /// is the base offset of the segment after it.
    pub fn open_sealed(dir: &Path, base: u64, next_base: u64, interval: u64) -> Result<Self> {
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| LogError::io("stat", &path, e))?
            .len();
        let ip = index_path(dir, base);
        let tp = time_index_path(dir, base);
        let loaded = index::read_offset_index(&ip, len).zip(index::read_time_index(&tp, len));
        let built = match loaded {
            Some((index, time_index)) => Built {
                size: len,
                next_offset: next_base,
                max_timestamp: time_index.last().map(|e| e.ts).unwrap_or(i64::MIN),
                index,
                time_index,
            },
            None => {
                tracing::info!(path = %path.display(), "rebuilding missing or stale index");
                let (mut built, end) = Self::build(&file, &path, base, len, interval)?;
                if let ScanEnd::Bad { pos, error } = end {
                    return Err(LogError::Corrupt {
                        path,
                        position: pos,
                        reason: format!("sealed segment: {error:?}"),
                    });
                }
                index::write_offset_index(&ip, &built.index, len)?;
                index::write_time_index(&tp, &built.time_index, len)?;
                built.next_offset = next_base;
                built
            }
        };
        Ok(Self::with(dir, base, file, built))
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub fn first_append_ms(&self) -> i64 {
        self.first_append_ms.load(Ordering::Relaxed)
    }

    /// Writes one sealed frame at the end. Writer only.
    pub fn append(&self, frame: &[u8], h: &BatchHeader, interval: u64) -> Result<()> {
        let pos = self.size();
        self.file
            .write_all_at(frame, pos)
            .map_err(|e| LogError::io("write", &self.path, e))?;
        let rel = rel_of(self.base_offset, h.base_offset, &self.path, pos)?;
        let since = self.since_index.load(Ordering::Relaxed);
        if pos == 0 || since >= interval {
            self.index.write().push(OffsetEntry {
                rel,
                pos: pos as u32,
            });
            self.since_index.store(0, Ordering::Relaxed);
        }
        self.since_index
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        if h.max_timestamp > self.max_timestamp() {
            self.time_index.write().push(TimeEntry {
                ts: h.max_timestamp,
                rel,
            });
            self.max_timestamp.store(h.max_timestamp, Ordering::Release);
        }
        if pos == 0 {
            self.first_append_ms.store(now_ms(), Ordering::Relaxed);
        }
        self.next_offset.store(h.next_offset(), Ordering::Release);
        self.size.store(pos + frame.len() as u64, Ordering::Release);
        Ok(())
    }

    /// fdatasync of the log file.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io("fsync", &self.path, e))
    }

    /// Syncs data and writes the index files: the segment is sealed.
    pub fn seal(&self) -> Result<()> {
        self.sync()?;
        let len = self.size();
        index::write_offset_index(
            &index_path(&self.dir, self.base_offset),
            &self.index.read(),
            len,
        )?;
        index::write_time_index(
            &time_index_path(&self.dir, self.base_offset),
            &self.time_index.read(),
            len,
        )?;
        Ok(())
    }

    /// Removes the index files (before the log file is replaced).
    pub fn delete_index_files(&self) -> Result<()> {
        for p in [
            index_path(&self.dir, self.base_offset),
            time_index_path(&self.dir, self.base_offset),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("remove", p, e)),
            }
        }
        Ok(())
    }

    /// Removes the segment's files. Readers that still hold it keep
    /// reading the unlinked file.
    pub fn delete_files(&self) -> Result<()> {
        self.delete_index_files()?;
        std::fs::remove_file(&self.path).map_err(|e| LogError::io("remove", &self.path, e))
    }

    /// Byte position to start reading `offset` from.
    fn position_for(&self, offset: u64) -> u64 {
        let rel = offset
            .saturating_sub(self.base_offset)
            .min(u64::from(u32::MAX)) as u32;
        index::lookup_offset(&self.index.read(), rel)
            .map(|e| u64::from(e.pos))
            .unwrap_or(0)
    }

    /// Whole batches holding records at or after `offset`, about
    /// `max_bytes` of them (always at least one when there is one). Each is
    /// CRC-checked; a bad one is a [`LogError::Corrupt`] naming file and
    /// byte.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<Batch>> {
        let size = self.size();
        let mut pos = self.position_for(offset);
        let mut out = Vec::new();
        // Bytes of batches handed out (skipped ones do not count).
        let mut taken = 0usize;
        while pos < size && (out.is_empty() || taken < max_bytes) {
            let want = ((size - pos) as usize).min(max_bytes.saturating_sub(taken).max(HEADER_LEN));
            let mut buf = vec![0u8; want];
            self.file
                .read_exact_at(&mut buf, pos)
                .map_err(|e| LogError::io("read", &self.path, e))?;
            let mut chunk = Bytes::from(buf);
            let chunk_start = pos;
            let mut off = 0usize;
            while off < chunk.len() {
                let at = chunk_start + off as u64;
                let h = match batch::parse_header(&chunk[off..]) {
                    Ok(h) => h,
                    Err(FrameError::Incomplete { .. }) if at + (HEADER_LEN as u64) <= size => break,
                    Err(FrameError::Incomplete { .. }) => {
                        return Err(self
                            .corrupt(at, "batch header runs past the end of the segment".into()));
                    }
                    Err(FrameError::Invalid(reason)) => return Err(self.corrupt(at, reason)),
                };
                if at + h.total_len as u64 > size {
                    return Err(self.corrupt(
                        at,
                        format!(
                            "batch of {} bytes runs past the end of the segment",
                            h.total_len
                        ),
                    ));
                }
                if off + h.total_len > chunk.len() {
                    if off == 0 {
                        // A batch bigger than what we asked for: read it whole.
                        let mut whole = vec![0u8; h.total_len];
                        self.file
                            .read_exact_at(&mut whole, pos)
                            .map_err(|e| LogError::io("read", &self.path, e))?;
                        chunk = Bytes::from(whole);
                        continue;
                    }
                    break;
                }
                let frame = chunk.slice(off..off + h.total_len);
                let h =
                    batch::check_frame(&frame).map_err(|e| self.corrupt(at, format!("{e:?}")))?;
                off += h.total_len;
                if h.last_offset() >= offset {
                    taken += h.total_len;
                    out.push(Batch::new(h, frame));
                    if taken >= max_bytes {
                        break;
                    }
                }
            }
            pos = chunk_start + off as u64;
        }
        Ok(out)
    }

    fn corrupt(&self, position: u64, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            position,
            reason,
        }
    }

    /// Calls `f` for every batch, in order, checking each.
    pub fn for_each_batch(
        &self,
        mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<()>,
    ) -> Result<()> {
        match scan_frames(&self.file, &self.path, 0, self.size(), |_, h, b| f(h, b))? {
            ScanEnd::Clean => Ok(()),
            ScanEnd::Bad { pos, error } => Err(self.corrupt(pos, format!("{error:?}"))),
        }
    }

    /// The first offset whose record timestamp is at least `ts`, if any is
    /// in this segment.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<u64>> {
        if self.max_timestamp() < ts {
            return Ok(None);
        }
        let start_rel = index::lookup_time(&self.time_index.read(), ts);
        let start = self.position_for(self.base_offset + u64::from(start_rel));
        let mut found = None;
        let end = scan_frames(&self.file, &self.path, start, self.size(), |_, h, bytes| {
            if found.is_some() || h.max_timestamp < ts {
                return Ok(());
            }
            let batch = Batch::new(*h, Bytes::copy_from_slice(bytes));
            for r in batch.records()?.iter() {
                let r = r?;
                if r.timestamp >= ts {
                    found = Some(r.offset);
                    break;
                }
            }
            Ok(())
        })?;
        if let ScanEnd::Bad { pos, error } = end {
            return Err(self.corrupt(pos, format!("{error:?}")));
        }
        Ok(found)
    }
}

fn rel_of(base: u64, offset: u64, path: &Path, pos: u64) -> Result<u32> {
    offset
        .checked_sub(base)
        .and_then(|d| u32::try_from(d).ok())
        .ok_or_else(|| LogError::Corrupt {
            path: path.to_path_buf(),
            position: pos,
            reason: format!("batch offset {offset} does not belong to segment {base}"),
        })
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync dir", dir, e))
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
