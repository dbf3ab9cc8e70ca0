//! The two record headers the capture engine writes and every reader of
//! a source's records relies on, with one encoder and one parser:
//!
//! - [`POSITION_HEADER`] holds a [`RecordPosition`]: where the record
//!   stands in its source's stream. Positions of one source sort in
//!   stream order, bytewise, so a writer replaying a stream after a crash
//!   skips what a partition already holds, and a sink tells which of two
//!   records came first.
//! - [`BARRIER_HEADER`] marks a truncate written to every partition of
//!   its topic (one copy each, the same position): a consumer of several
//!   partitions applies it once, after every partition's records before
//!   it and before any record after it.
//!
//! The byte layout is part of the log's format (logs written by earlier
//! versions are read with it): `stream key ++ run ++ seq`, where the
//! stream key is the source's (PostgreSQL: the commit LSN, 8 bytes;
//! MySQL: binlog file number, 4 bytes, and the transaction's first event
//! offset, 8 bytes), `run` counts the appends within the transaction and
//! `seq` the records within the append, both u32 big-endian.

use tributary_log::RecordView;

/// Header carrying a record's [`RecordPosition`].
pub const POSITION_HEADER: &str = "tributary.pos";

/// Header marking a truncate barrier (value `1`).
pub const BARRIER_HEADER: &str = "tributary.barrier";

/// Where a transaction starts in its source's stream: bytes that sort in
/// stream order among every key the source ever gives. A source builds it
/// from its own position type with [`StreamKey::from_parts`].
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey(Vec<u8>);

impl StreamKey {
    /// The key of big-endian fixed-width parts, concatenated (fixed
    /// widths keep bytewise order equal to the parts' order).
    pub fn from_parts(parts: &[&[u8]]) -> Self {
        Self(parts.concat())
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The position of record `seq` of append `run` under this key.
    pub fn record(&self, run: u32, seq: u32) -> RecordPosition {
        let mut b = Vec::with_capacity(self.0.len() + 8);
        b.extend_from_slice(&self.0);
        b.extend_from_slice(&run.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        RecordPosition(b)
    }
}

/// A record's place in its source's stream: a [`StreamKey`], the append
/// within the transaction (`run`) and the record within the append
/// (`seq`). Ordered as stored: bytewise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordPosition(Vec<u8>);

impl RecordPosition {
    /// Parses a header value; `None` when it is too short to hold a run
    /// and a seq (not written by a source).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= 8).then(|| Self(bytes.to_vec()))
    }

    /// The bytes stored in the header.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The transaction's stream key.
    pub fn stream_key(&self) -> &[u8] {
        &self.0[..self.0.len() - 8]
    }

    /// The append within the transaction.
    pub fn run(&self) -> u32 {
        self.u32_at(self.0.len() - 8)
    }

    /// The record within the append.
    pub fn seq(&self) -> u32 {
        self.u32_at(self.0.len() - 4)
    }

    fn u32_at(&self, i: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[i..i + 4]);
        u32::from_be_bytes(b)
    }
}

/// What the capture headers say of one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordMarks {
    /// Its source position, if a source wrote it.
    pub position: Option<RecordPosition>,
    /// Whether it is a truncate barrier.
    pub barrier: bool,
}

impl RecordMarks {
    /// The marks of `record`.
    pub fn of(record: &RecordView<'_>) -> Self {
        Self {
            position: record
                .header(POSITION_HEADER)
                .flatten()
                .and_then(RecordPosition::parse),
            barrier: record.header(BARRIER_HEADER).is_some(),
        }
    }

    /// Whether `record` is a barrier (cheaper than [`of`](Self::of) when
    /// only that is asked).
    pub fn is_barrier(record: &RecordView<'_>) -> bool {
        record.header(BARRIER_HEADER).is_some()
    }
}

/// A record's headers as the writer builds them: the position, and for a
/// barrier copy the barrier mark.
pub(crate) fn headers(position: &RecordPosition, barrier: bool) -> Vec<(&str, Option<&[u8]>)> {
    let mut h = vec![(POSITION_HEADER, Some(position.as_bytes()))];
    if barrier {
        h.push((BARRIER_HEADER, Some(&b"1"[..])));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_keep_the_stored_layout_and_order() {
        // PostgreSQL: commit LSN; the layout earlier versions wrote.
        let k = StreamKey::from_parts(&[&0x0102_0304_0506_0708u64.to_be_bytes()]);
        let p = k.record(3, 9);
        assert_eq!(
            p.as_bytes(),
            [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 3, 0, 0, 0, 9]
        );
        assert_eq!((p.stream_key(), p.run(), p.seq()), (k.as_bytes(), 3, 9));
        assert_eq!(RecordPosition::parse(p.as_bytes()), Some(p.clone()));
        // Stream order: key, then run, then seq.
        let later_key = StreamKey::from_parts(&[&0x0102_0304_0506_0709u64.to_be_bytes()]);
        assert!(k.record(0, 1) < k.record(0, 2));
        assert!(k.record(0, u32::MAX) < k.record(1, 0));
        assert!(k.record(u32::MAX, u32::MAX) < later_key.record(0, 0));
        // MySQL: file number, then offset.
        let m =
            |file: u32, off: u64| StreamKey::from_parts(&[&file.to_be_bytes(), &off.to_be_bytes()]);
        assert!(m(1, u64::MAX).record(0, 0) < m(2, 4).record(0, 0));
        assert_eq!(RecordPosition::parse(&[1, 2, 3]), None);
    }
}
