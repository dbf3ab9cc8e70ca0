//! Sparse offset and time indexes of a segment.
//!
//! Both live in memory while the segment is open and are written to disk
//! when the segment is sealed. A file starts with a 16-byte header: a
//! 4-byte magic, 4 reserved bytes, and the length of the log file it
//! describes; an index whose recorded length differs from the log file's
//! is stale and rebuilt by scanning the segment.
//!
//! - offset index entry: relative offset u32, byte position u32 (the
//!   batch whose base offset is `base + relative` starts at `position`);
//! - time index entry: timestamp i64, relative offset u32: the segment's
//!   largest timestamp reached `ts` in the batch starting at `rel`, so every
//!   record before that batch is older than `ts`. Written whenever the
//!   largest timestamp grows (and an offset entry is due).

use std::path::Path;

use crate::error::{LogError, Result};

const OFFSET_MAGIC: &[u8; 4] = b"TIX1";
const TIME_MAGIC: &[u8; 4] = b"TTI1";
const FILE_HEADER: usize = 16;

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: i64,
    pub rel: u32,
}

/// The entry to start a scan for `rel` from: the last with `entry.rel <= rel`.
pub(crate) fn lookup_offset(entries: &[OffsetEntry], rel: u32) -> Option<OffsetEntry> {
    let i = entries.partition_point(|e| e.rel <= rel);
    i.checked_sub(1).map(|i| entries[i])
}

/// The relative offset to start a timestamp search from: the last entry
/// whose timestamp is below `ts` (records before it all have smaller
/// timestamps), or the start of the segment.
pub(crate) fn lookup_time(entries: &[TimeEntry], ts: i64) -> u32 {
    let i = entries.partition_point(|e| e.ts < ts);
    i.checked_sub(1).map(|i| entries[i].rel).unwrap_or(0)
}

fn header(magic: &[u8; 4], covered_len: u64) -> [u8; FILE_HEADER] {
    let mut h = [0u8; FILE_HEADER];
    h[0..4].copy_from_slice(magic);
    h[8..16].copy_from_slice(&covered_len.to_le_bytes());
    h
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| LogError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_data())
        .map_err(|e| LogError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| LogError::io("rename", path, e))
}

pub(crate) fn write_offset_index(path: &Path, entries: &[OffsetEntry], covered: u64) -> Result<()> {
    let mut buf = Vec::with_capacity(FILE_HEADER + entries.len() * 8);
    buf.extend_from_slice(&header(OFFSET_MAGIC, covered));
    for e in entries {
        buf.extend_from_slice(&e.rel.to_le_bytes());
        buf.extend_from_slice(&e.pos.to_le_bytes());
    }
    write_file(path, &buf)
}

pub(crate) fn write_time_index(path: &Path, entries: &[TimeEntry], covered: u64) -> Result<()> {
    let mut buf = Vec::with_capacity(FILE_HEADER + entries.len() * 12);
    buf.extend_from_slice(&header(TIME_MAGIC, covered));
    for e in entries {
        buf.extend_from_slice(&e.ts.to_le_bytes());
        buf.extend_from_slice(&e.rel.to_le_bytes());
    }
    write_file(path, &buf)
}

/// Reads an index file; `None` when it is missing, from another log
/// length, or malformed (then the caller rebuilds it).
fn read_checked(path: &Path, magic: &[u8; 4], covered: u64, entry: usize) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < FILE_HEADER || &bytes[0..4] != magic {
        return None;
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    if u64::from_le_bytes(len) != covered || !(bytes.len() - FILE_HEADER).is_multiple_of(entry) {
        return None;
    }
    Some(bytes[FILE_HEADER..].to_vec())
}

pub(crate) fn read_offset_index(path: &Path, covered: u64) -> Option<Vec<OffsetEntry>> {
    let raw = read_checked(path, OFFSET_MAGIC, covered, 8)?;
    let entries: Vec<OffsetEntry> = raw
        .chunks_exact(8)
        .map(|c| OffsetEntry {
            rel: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            pos: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let ordered = entries
        .windows(2)
        .all(|w| w[0].rel < w[1].rel && w[0].pos < w[1].pos);
    let in_file = entries.iter().all(|e| u64::from(e.pos) < covered.max(1));
    (ordered && in_file).then_some(entries)
}

pub(crate) fn read_time_index(path: &Path, covered: u64) -> Option<Vec<TimeEntry>> {
    let raw = read_checked(path, TIME_MAGIC, covered, 12)?;
    let entries: Vec<TimeEntry> = raw
        .chunks_exact(12)
        .map(|c| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[0..8]);
            TimeEntry {
                ts: i64::from_le_bytes(ts),
                rel: u32::from_le_bytes([c[8], c[9], c[10], c[11]]),
            }
        })
        .collect();
    let ordered = entries
        .windows(2)
        .all(|w| w[0].ts < w[1].ts && w[0].rel <= w[1].rel);
    ordered.then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let idx = [
            OffsetEntry { rel: 0, pos: 0 },
            OffsetEntry { rel: 10, pos: 100 },
            OffsetEntry { rel: 20, pos: 200 },
        ];
        assert_eq!(lookup_offset(&idx, 0), Some(idx[0]));
        assert_eq!(lookup_offset(&idx, 15), Some(idx[1]));
        assert_eq!(lookup_offset(&idx, 25), Some(idx[2]));
        assert_eq!(lookup_offset(&[], 5), None);
        let t = [
            TimeEntry { ts: 100, rel: 0 },
            TimeEntry { ts: 200, rel: 10 },
        ];
        assert_eq!(lookup_time(&t, 50), 0);
        assert_eq!(lookup_time(&t, 150), 0);
        assert_eq!(lookup_time(&t, 250), 10);
    }

    #[test]
    fn stale_and_damaged_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.index");
        let e = [
            OffsetEntry { rel: 0, pos: 0 },
            OffsetEntry { rel: 5, pos: 64 },
        ];
        write_offset_index(&p, &e, 128).expect("write");
        assert_eq!(read_offset_index(&p, 128).as_deref(), Some(&e[..]));
        assert_eq!(read_offset_index(&p, 129), None, "stale length");
        let mut raw = std::fs::read(&p).expect("read");
        raw.truncate(raw.len() - 3);
        std::fs::write(&p, raw).expect("write");
        assert_eq!(read_offset_index(&p, 128), None, "torn file");
        assert_eq!(read_offset_index(&dir.path().join("none"), 128), None);
    }
}
