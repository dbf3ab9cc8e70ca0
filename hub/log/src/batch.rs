//! The on-disk batch: the unit the log writes, checksums, indexes and
//! hands to readers.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! 0   base_offset        u64   offset of the first record slot
//! 8   batch_len          u32   bytes after this field (the batch is 12 + batch_len bytes)
//! 12  crc32c             u32   CRC32C of bytes [0, 12) followed by [16, end)
//! 16  magic              u8    1
//! 17  attributes         u8    bits 0-1: compression (0 none, 1 lz4, 2 zstd)
//! 18  last_offset_delta  u32   offset of the last record minus base_offset
//! 22  record_count       u32   records present (fewer than last_offset_delta + 1 after compaction)
//! 26  first_timestamp    i64   ms since the epoch, of the first record
//! 34  max_timestamp      i64   largest record timestamp
//! 42  records            ...   possibly compressed
//! ```
//!
//! A record, inside the (decompressed) records area:
//!
//! ```text
//! length            uvarint  bytes of the rest of the record
//! timestamp_delta   zigzag varint, against first_timestamp
//! offset_delta      uvarint
//! key_len           zigzag varint, -1 for no key
//! key               bytes
//! value_len         zigzag varint, -1 for no value (a tombstone)
//! value             bytes
//! header_count      uvarint
//!   name_len uvarint, name utf-8, value_len zigzag varint (-1 null), value
//! ```
//!
//! The CRC covers everything but itself, base offset included, so a flipped
//! bit anywhere in a batch is caught. The fixture test at the bottom pins
//! this format: changing it must be a conscious act.

use bytes::Bytes;

use crate::config::Compression;
use crate::error::{LogError, Result};

/// Bytes before the records area.
pub const HEADER_LEN: usize = 42;
/// Bytes of the length prefix plus the fields before it.
pub const LEN_PREFIX: usize = 12;
const MAGIC: u8 = 1;

/// One record handed to [`BatchBuilder::push`].
#[derive(Debug, Clone, Copy)]
pub struct RecordIn<'a> {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Key; `None` for no key.
    pub key: Option<&'a [u8]>,
    /// Value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// Encodes records into one batch. The base offset is filled in by the
/// partition when it appends.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    records: Vec<u8>,
    count: u32,
    first_timestamp: i64,
    max_timestamp: i64,
    last_offset_delta: u32,
    has_null_key: bool,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty batch with room for `bytes` of encoded records.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            records: Vec::with_capacity(bytes),
            count: 0,
            first_timestamp: 0,
            max_timestamp: i64::MIN,
            last_offset_delta: 0,
            has_null_key: false,
        }
    }

    /// Records pushed so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size of the records so far.
    pub fn encoded_len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn has_null_key(&self) -> bool {
        self.has_null_key
    }

    /// Appends a record; it gets the next offset of the batch.
    pub fn push(&mut self, record: RecordIn<'_>) {
        let delta = if self.count == 0 {
            0
        } else {
            self.last_offset_delta + 1
        };
        self.push_at(delta, record);
    }

    /// Appends a record at an explicit offset delta (compaction keeps the
    /// original offsets, leaving gaps). Deltas must increase.
    pub(crate) fn push_at(&mut self, offset_delta: u32, record: RecordIn<'_>) {
        if self.count == 0 {
            self.first_timestamp = record.timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        self.has_null_key |= record.key.is_none();
        let mut body_len = varint_len(zigzag(record.timestamp.wrapping_sub(self.first_timestamp)))
            + varint_len(u64::from(offset_delta))
            + opt_len(record.key)
            + opt_len(record.value)
            + varint_len(record.headers.len() as u64);
        for (name, value) in record.headers {
            body_len += varint_len(name.len() as u64) + name.len() + opt_len(*value);
        }
        let buf = &mut self.records;
        buf.reserve(body_len + 10);
        put_varint(buf, body_len as u64);
        put_varint(
            buf,
            zigzag(record.timestamp.wrapping_sub(self.first_timestamp)),
        );
        put_varint(buf, u64::from(offset_delta));
        put_opt(buf, record.key);
        put_opt(buf, record.value);
        put_varint(buf, record.headers.len() as u64);
        for (name, value) in record.headers {
            put_varint(buf, name.len() as u64);
            buf.extend_from_slice(name.as_bytes());
            put_opt(buf, *value);
        }
        self.count += 1;
        self.last_offset_delta = offset_delta;
    }

    /// Frames the batch with base offset 0 and no CRC yet; the partition
    /// calls [`seal_frame`] once it knows the base offset.
    pub(crate) fn finish(self, compression: Compression) -> Result<Vec<u8>> {
        let payload: std::borrow::Cow<'_, [u8]> = match compression {
            Compression::None => self.records.as_slice().into(),
            Compression::Lz4 => lz4_flex::compress_prepend_size(&self.records).into(),
            Compression::Zstd => zstd::bulk::compress(&self.records, 1)
                .map_err(|e| LogError::Codec {
                    codec: "zstd",
                    op: "compress",
                    reason: e.to_string(),
                })?
                .into(),
        };
        let total = HEADER_LEN + payload.len();
        let batch_len = u32::try_from(total - LEN_PREFIX).map_err(|_| LogError::InvalidBatch {
            reason: format!("batch of {total} bytes is larger than 4 GiB"),
        })?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&batch_len.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.push(MAGIC);
        out.push(compression.code());
        out.extend_from_slice(&self.last_offset_delta.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.first_timestamp.to_le_bytes());
        out.extend_from_slice(&self.max_timestamp.to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }
}

/// Writes the base offset into a framed batch and computes its CRC.
pub(crate) fn seal_frame(frame: &mut [u8], base_offset: u64) {
    frame[0..8].copy_from_slice(&base_offset.to_le_bytes());
    let crc = frame_crc(frame);
    frame[12..16].copy_from_slice(&crc.to_le_bytes());
}

fn frame_crc(frame: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&frame[0..12]), &frame[16..])
}

/// The fixed fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record slot.
    pub base_offset: u64,
    /// Bytes of the whole batch, header included.
    pub total_len: usize,
    /// Stored CRC.
    pub crc: u32,
    /// Compression of the records area.
    pub compression: Compression,
    /// Offset of the last record minus base offset.
    pub last_offset_delta: u32,
    /// Records present.
    pub record_count: u32,
    /// Timestamp of the first record.
    pub first_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
}

impl BatchHeader {
    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// Offset after the batch.
    pub fn next_offset(&self) -> u64 {
        self.last_offset() + 1
    }
}

/// Why a byte range does not hold a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header or the declared length: the end of a
    /// torn write, or the end of the data.
    Incomplete {
        /// Bytes the frame needs.
        needed: usize,
    },
    /// The header or CRC check failed.
    Invalid(String),
}

/// Parses the header at the start of `buf` (no CRC check).
pub fn parse_header(buf: &[u8]) -> std::result::Result<BatchHeader, FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Incomplete { needed: HEADER_LEN });
    }
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let batch_len = u32_at(8) as usize;
    if batch_len + LEN_PREFIX < HEADER_LEN {
        return Err(FrameError::Invalid(format!(
            "batch length {batch_len} is shorter than a header"
        )));
    }
    if buf[16] != MAGIC {
        return Err(FrameError::Invalid(format!(
            "unknown batch magic {}",
            buf[16]
        )));
    }
    let compression = Compression::from_code(buf[17] & 0b11)
        .ok_or_else(|| FrameError::Invalid(format!("unknown compression {}", buf[17] & 0b11)))?;
    Ok(BatchHeader {
        base_offset: u64_at(0),
        total_len: batch_len + LEN_PREFIX,
        crc: u32_at(12),
        compression,
        last_offset_delta: u32_at(18),
        record_count: u32_at(22),
        first_timestamp: u64_at(26) as i64,
        max_timestamp: u64_at(34) as i64,
    })
}

/// Parses and checks the batch at the start of `buf`: header, length, CRC.
pub fn check_frame(buf: &[u8]) -> std::result::Result<BatchHeader, FrameError> {
    let header = parse_header(buf)?;
    if buf.len() < header.total_len {
        return Err(FrameError::Incomplete {
            needed: header.total_len,
        });
    }
    let crc = frame_crc(&buf[..header.total_len]);
    if crc != header.crc {
        return Err(FrameError::Invalid(format!(
            "crc32c mismatch: stored {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    Ok(header)
}

/// A stored batch as read from a segment: its bytes are exactly what was
/// written (shared, not copied), checked by CRC when it was read.
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    bytes: Bytes,
}

impl Batch {
    /// Wraps already checked bytes.
    pub(crate) fn new(header: BatchHeader, bytes: Bytes) -> Self {
        Self { header, bytes }
    }

    /// Checks and wraps the bytes of one batch.
    pub fn from_bytes(bytes: Bytes) -> std::result::Result<Self, FrameError> {
        let header = check_frame(&bytes)?;
        let bytes = bytes.slice(..header.total_len);
        Ok(Self { header, bytes })
    }

    /// The header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Offset of the first record slot.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// The stored bytes, header included, as written.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The records, decompressed if needed (uncompressed batches are not
    /// copied).
    pub fn records(&self) -> Result<Records> {
        let area = self.bytes.slice(HEADER_LEN..);
        let data = match self.header.compression {
            Compression::None => area,
            Compression::Lz4 => lz4_flex::decompress_size_prepended(&area)
                .map_err(|e| LogError::Codec {
                    codec: "lz4",
                    op: "decompress",
                    reason: e.to_string(),
                })?
                .into(),
            Compression::Zstd => {
                let mut out = Vec::new();
                zstd::stream::copy_decode(&area[..], &mut out).map_err(|e| LogError::Codec {
                    codec: "zstd",
                    op: "decompress",
                    reason: e.to_string(),
                })?;
                out.into()
            }
        };
        Ok(Records {
            data,
            base_offset: self.header.base_offset,
            first_timestamp: self.header.first_timestamp,
            count: self.header.record_count,
        })
    }
}

/// The decoded records area of one batch.
#[derive(Debug, Clone)]
pub struct Records {
    data: Bytes,
    base_offset: u64,
    first_timestamp: i64,
    count: u32,
}

impl Records {
    /// Iterates the records in offset order, borrowing their bytes.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            buf: &self.data,
            pos: 0,
            left: self.count,
            base_offset: self.base_offset,
            first_timestamp: self.first_timestamp,
        }
    }
}

/// One record, borrowed from its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Its offset in the partition.
    pub offset: u64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Key, if any.
    pub key: Option<&'a [u8]>,
    /// Value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: u64,
}

impl<'a> RecordView<'a> {
    /// The headers, in order.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            buf: self.headers,
            pos: 0,
            left: self.header_count,
        }
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.headers()
            .filter_map(|h| h.ok())
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// Iterates a record's headers.
#[derive(Debug)]
pub struct HeaderIter<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u64,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = std::result::Result<(&'a str, Option<&'a [u8]>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut step = || {
            let name_len = get_varint(self.buf, &mut self.pos)? as usize;
            let name = take(self.buf, &mut self.pos, name_len)?;
            let name = std::str::from_utf8(name).map_err(|_| "header name is not utf-8")?;
            let value = get_opt(self.buf, &mut self.pos)?;
            Ok((name, value))
        };
        let item = step().map_err(|e: &'static str| e.to_string());
        if item.is_err() {
            self.left = 0;
        }
        Some(item)
    }
}

/// Iterates the records of a batch.
#[derive(Debug)]
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u32,
    base_offset: u64,
    first_timestamp: i64,
}

impl<'a> RecordIter<'a> {
    fn decode(&mut self) -> std::result::Result<RecordView<'a>, &'static str> {
        let len = get_varint(self.buf, &mut self.pos)? as usize;
        let body = take(self.buf, &mut self.pos, len)?;
        let mut p = 0;
        let ts_delta = unzigzag(get_varint(body, &mut p)?);
        let offset_delta = get_varint(body, &mut p)?;
        let key = get_opt(body, &mut p)?;
        let value = get_opt(body, &mut p)?;
        let header_count = get_varint(body, &mut p)?;
        Ok(RecordView {
            offset: self.base_offset + offset_delta,
            timestamp: self.first_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers: &body[p..],
            header_count,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match self.decode() {
            Ok(r) => Some(Ok(r)),
            Err(reason) => {
                self.left = 0;
                Some(Err(LogError::InvalidBatch {
                    reason: format!(
                        "record in batch at offset {} is malformed: {reason}",
                        self.base_offset
                    ),
                }))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn opt_len(v: Option<&[u8]>) -> usize {
    match v {
        None => 1,
        Some(b) => varint_len(zigzag(b.len() as i64)) + b.len(),
    }
}

fn put_opt(buf: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_varint(buf, zigzag(-1)),
        Some(b) => {
            put_varint(buf, zigzag(b.len() as i64));
            buf.extend_from_slice(b);
        }
    }
}

#[inline]
fn get_varint(buf: &[u8], pos: &mut usize) -> std::result::Result<u64, &'static str> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err("varint overflows 64 bits");
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err("varint overflows 64 bits");
        }
    }
}

#[inline]
fn take<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    n: usize,
) -> std::result::Result<&'a [u8], &'static str> {
    let end = pos.checked_add(n).ok_or("length overflows")?;
    let s = buf.get(*pos..end).ok_or("length runs past the batch")?;
    *pos = end;
    Ok(s)
}

#[inline]
fn get_opt<'a>(
    buf: &'a [u8],
    pos: &mut usize,
) -> std::result::Result<Option<&'a [u8]>, &'static str> {
    let len = unzigzag(get_varint(buf, pos)?);
    if len == -1 {
        return Ok(None);
    }
    if len < 0 {
        return Err("negative length");
    }
    take(buf, pos, len as usize).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(compression: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        b.push(RecordIn {
            timestamp: 1_700_000_000_000,
            key: Some(b"k1"),
            value: Some(b"hello"),
            headers: &[("op", Some(b"c")), ("null", None)],
        });
        b.push(RecordIn {
            timestamp: 1_699_999_999_990,
            key: None,
            value: None,
            headers: &[],
        });
        let mut frame = b.finish(compression).expect("finish");
        seal_frame(&mut frame, 42);
        frame
    }

    #[test]
    fn round_trip_all_codecs() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let frame = sample(c);
            let batch = Batch::from_bytes(Bytes::from(frame)).expect("valid");
            assert_eq!(batch.base_offset(), 42);
            assert_eq!(batch.last_offset(), 43);
            assert_eq!(batch.header().max_timestamp, 1_700_000_000_000);
            let recs = batch.records().expect("records");
            let all: Vec<_> = recs.iter().collect::<Result<_>>().expect("decode");
            assert_eq!(all.len(), 2);
            assert_eq!(all[0].offset, 42);
            assert_eq!(all[0].key, Some(&b"k1"[..]));
            assert_eq!(all[0].value, Some(&b"hello"[..]));
            let hs: Vec<_> = all[0].headers().map(|h| h.expect("header")).collect();
            assert_eq!(hs, vec![("op", Some(&b"c"[..])), ("null", None)]);
            assert_eq!(all[1].offset, 43);
            assert_eq!(all[1].timestamp, 1_699_999_999_990);
            assert_eq!(all[1].key, None);
            assert_eq!(all[1].value, None);
        }
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let frame = sample(Compression::None);
        for i in 0..frame.len() {
            for bit in 0..8 {
                let mut f = frame.clone();
                f[i] ^= 1 << bit;
                assert!(
                    check_frame(&f).is_err(),
                    "flip of bit {bit} in byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncated_frame_is_incomplete() {
        let frame = sample(Compression::None);
        for cut in 0..frame.len() {
            match check_frame(&frame[..cut]) {
                Err(FrameError::Incomplete { .. }) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    /// Pins the on-disk format: if this fails, the format changed, and
    /// existing logs would no longer read. Bump MAGIC and write a migration
    /// instead of editing the fixture.
    #[test]
    fn format_fixture() {
        let frame = sample(Compression::None);
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, include_str!("../fixtures/batch-v1.hex").trim());
    }

    #[test]
    fn zigzag_round_trip() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
