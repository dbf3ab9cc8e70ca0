//! Row images of binlog rows events to datums: each column's bytes read
//! with its binlog type and table-map metadata, then given the meaning of
//! its portable type (from the schema history).
//!
//! Our own decoder rather than mysql_common's `BinlogRow`: that one
//! allocates a column description per value and returns temporal values
//! as text, and we need typed values straight into [`Datum`]s.

use mysql_async::binlog::jsonb;
use tributary_core::convert::{days_from_civil, digits_to_twos, ewkb_from_mysql, i128_to_twos};
use tributary_core::{ColumnType, Datum};

/// Binlog column type codes (`enum_field_types`).
pub mod code {
    #![allow(missing_docs)]
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// How a text column's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb3 / utf8mb4 / ascii.
    Utf8,
    /// MySQL's latin1, which is Windows-1252.
    Latin1,
    /// Bytes.
    Binary,
    /// Anything else: decoded as UTF-8 with replacement.
    Other(u16),
}

impl Charset {
    /// The charset of a collation id.
    pub fn from_collation(id: u16) -> Self {
        match id {
            63 => Charset::Binary,
            5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
            11 | 65 | 33 | 83 | 45 | 46 | 192..=215 | 223..=247 | 255..=323 => Charset::Utf8,
            // MariaDB's utf8mb3/utf8mb4 NOPAD and UCA-14 collations.
            576..=671 | 1057..=1100 | 2048..=2400 => Charset::Utf8,
            other => Charset::Other(other),
        }
    }

    /// The charset named in DDL.
    pub fn from_name(name: &str) -> Self {
        match name {
            "binary" => Charset::Binary,
            "latin1" => Charset::Latin1,
            _ => Charset::Utf8,
        }
    }

    fn decode(self, b: &[u8]) -> String {
        match self {
            Charset::Latin1 => b.iter().map(|&c| cp1252(c)).collect(),
            _ => match std::str::from_utf8(b) {
                Ok(s) => s.to_string(),
                Err(_) => String::from_utf8_lossy(b).into_owned(),
            },
        }
    }
}

/// Windows-1252, MySQL's "latin1".
fn cp1252(c: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{8D}',
        '\u{017D}', '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}',
        '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}',
        '\u{9D}', '\u{017E}', '\u{0178}',
    ];
    match c {
        0x80..=0x9f => HIGH[usize::from(c - 0x80)],
        c => char::from(c),
    }
}

/// One column as the binlog writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinColumn {
    /// Binlog type (for `STRING`, the real type from the metadata:
    /// `ENUM`, `SET` or `STRING`).
    pub code: u8,
    /// Table-map metadata of the column.
    pub meta: Vec<u8>,
    /// Portable type.
    pub ty: ColumnType,
    /// For text columns.
    pub charset: Charset,
    /// `BINARY(n)`: the binlog drops trailing zero bytes, which the
    /// column keeps.
    pub pad_to: Option<usize>,
    /// Integer columns: UNSIGNED (the binlog does not say).
    pub unsigned: bool,
    /// Column name, for messages.
    pub name: String,
}

/// A value that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("column {column}: {reason} (binlog type {code}, at byte {at} of the row data)")]
pub struct RowError {
    /// Column.
    pub column: String,
    /// Binlog type.
    pub code: u8,
    /// Offset in the rows data.
    pub at: usize,
    /// Why.
    #[source]
    pub reason: DecodeError,
}

/// Why a column's bytes do not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The row data ends before the value does.
    #[error("needs {wanted} bytes, {left} left")]
    Truncated {
        /// Bytes the value needs.
        wanted: usize,
        /// Bytes left in the row data.
        left: usize,
    },
    /// An integer too wide for the 32-bit column.
    #[error("{value} does not fit a 32-bit integer")]
    IntOverflow {
        /// The value.
        value: i64,
        /// Cause.
        #[source]
        source: std::num::TryFromIntError,
    },
    /// An integer for a column that holds none.
    #[error("a {bits}-bit integer for a column of type {ty:?}")]
    IntegerFor {
        /// Width of the binlog integer.
        bits: u32,
        /// The column's type.
        ty: ColumnType,
    },
    /// An ENUM index past the column's labels.
    #[error("enum index {index} of {labels} labels")]
    EnumIndex {
        /// The index (1-based).
        index: usize,
        /// How many labels the column has.
        labels: usize,
    },
    /// An ENUM value for a column that is no enum.
    #[error("an ENUM value for a column of type {0:?}")]
    EnumFor(ColumnType),
    /// A SET value for a column that is no set.
    #[error("a SET value for a column of type {0:?}")]
    SetFor(ColumnType),
    /// A string for a column that holds none.
    #[error("a string for a column of type {0:?}")]
    StringFor(ColumnType),
    /// Bytes that are not MySQL's geometry format (SRID, then WKB).
    #[error("{len} bytes that are not a geometry (SRID and WKB)")]
    Geometry {
        /// How many bytes.
        len: usize,
    },
    /// A binlog type this decoder does not read.
    #[error("binlog type {0} is not supported")]
    UnsupportedType(u8),
    /// MySQL's binary JSON that does not parse.
    #[error("binary JSON: {0}")]
    JsonParse(#[source] std::io::Error),
    /// MySQL's binary JSON that has no JSON text.
    #[error("binary JSON: {0}")]
    JsonText(#[source] jsonb::JsonbToJsonError),
    /// A DECIMAL's precision and scale that are impossible.
    #[error("decimal({precision},{scale})")]
    DecimalSize {
        /// Digits in all.
        precision: usize,
        /// Digits after the point.
        scale: usize,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| DecodeError::Truncated {
                wanted: n,
                left: self.buf.len().saturating_sub(self.at),
            })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn le(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }
    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }
}

/// Decodes one row image starting at `*at` in `data`: `present[i]` says
/// whether column `i` is in the image (a column left out, as with
/// `binlog_row_image=MINIMAL`, becomes [`Datum::Unavailable`]). Advances
/// `*at` past the image.
pub fn decode_image(
    cols: &[BinColumn],
    present: &[bool],
    data: &[u8],
    at: &mut usize,
) -> Result<Vec<Datum>, RowError> {
    let mut r = Reader { buf: data, at: *at };
    let n_present = present.iter().take(cols.len()).filter(|p| **p).count();
    let nulls = r.take(n_present.div_ceil(8)).map_err(|reason| RowError {
        column: "(null bitmap)".into(),
        code: 0,
        at: *at,
        reason,
    })?;
    let mut out = Vec::with_capacity(cols.len());
    let mut image_idx = 0usize;
    for (i, c) in cols.iter().enumerate() {
        if !present.get(i).copied().unwrap_or(false) {
            out.push(Datum::Unavailable);
            continue;
        }
        let is_null = nulls
            .get(image_idx / 8)
            .is_some_and(|b| b >> (image_idx % 8) & 1 == 1);
        image_idx += 1;
        if is_null {
            out.push(Datum::Null);
            continue;
        }
        let start = r.at;
        let d = value(c, &mut r).map_err(|reason| RowError {
            column: c.name.clone(),
            code: c.code,
            at: start,
            reason,
        })?;
        out.push(d);
    }
    *at = r.at;
    Ok(out)
}

fn meta(c: &BinColumn, i: usize) -> u8 {
    c.meta.get(i).copied().unwrap_or(0)
}

fn int_datum(
    ty: &ColumnType,
    v: i64,
    unsigned_value: u64,
    bits: u32,
) -> Result<Datum, DecodeError> {
    Ok(match ty {
        ColumnType::Int | ColumnType::Year => Datum::Int(
            i32::try_from(v).map_err(|source| DecodeError::IntOverflow { value: v, source })?,
        ),
        ColumnType::Long => Datum::Long(v),
        ColumnType::UnsignedLong => Datum::Decimal {
            unscaled: i128_to_twos(i128::from(unsigned_value)),
            scale: 0,
        },
        ColumnType::Boolean => Datum::Bool(v != 0),
        other => {
            return Err(DecodeError::IntegerFor {
                bits,
                ty: other.clone(),
            });
        }
    })
}

fn value(c: &BinColumn, r: &mut Reader<'_>) -> Result<Datum, DecodeError> {
    use code::*;
    match c.code {
        TINY | SHORT | INT24 | LONG | LONGLONG => {
            let n = match c.code {
                TINY => 1,
                SHORT => 2,
                INT24 => 3,
                LONG => 4,
                _ => 8,
            };
            let raw = r.le(n)?;
            let bits = (n * 8) as u32;
            let signed = if bits == 64 {
                raw as i64
            } else {
                let shift = 64 - bits;
                ((raw << shift) as i64) >> shift
            };
            let v = if c.unsigned { raw as i64 } else { signed };
            int_datum(&c.ty, v, raw, bits)
        }
        FLOAT => {
            let b = r.take(4)?;
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            Ok(match c.ty {
                ColumnType::Double => Datum::Double(f64::from(v)),
                _ => Datum::Float(v),
            })
        }
        DOUBLE => {
            let b = r.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let v = f64::from_le_bytes(a);
            Ok(match c.ty {
                ColumnType::Float => Datum::Float(v as f32),
                _ => Datum::Double(v),
            })
        }
        NEWDECIMAL => decimal(r, meta(c, 0), meta(c, 1)),
        YEAR => {
            let y = r.le(1)?;
            Ok(Datum::Int(if y == 0 { 0 } else { 1900 + y as i32 }))
        }
        NEWDATE | DATE => {
            let v = r.le(3)?;
            let (d, m, y) = (v & 31, (v >> 5) & 15, v >> 9);
            Ok(date(y as i64, m as u32, d as u32))
        }
        DATETIME2 => {
            let fsp = meta(c, 0);
            let packed = r.be(5)? as i64 - 0x80_0000_0000;
            let frac = fraction(r, fsp)?;
            let ymd = packed >> 17;
            let ym = ymd >> 5;
            let hms = packed & 0x1ffff;
            let (y, m, d) = (ym / 13, ym % 13, ymd & 31);
            let (h, mi, s) = (hms >> 12, (hms >> 6) & 63, hms & 63);
            Ok(datetime(y, m as u32, d as u32, h, mi, s, frac))
        }
        DATETIME => {
            let v = r.le(8)? as i64;
            let (dpart, tpart) = (v / 1_000_000, v % 1_000_000);
            Ok(datetime(
                dpart / 10000,
                (dpart / 100 % 100) as u32,
                (dpart % 100) as u32,
                tpart / 10000,
                tpart / 100 % 100,
                tpart % 100,
                0,
            ))
        }
        TIMESTAMP2 => {
            let secs = r.be(4)? as i64;
            let frac = fraction(r, meta(c, 0))?;
            Ok(if secs == 0 && frac == 0 {
                Datum::Text(tributary_core::convert::mysql_zero_date(
                    0,
                    0,
                    0,
                    Some((0, 0, 0, 0)),
                ))
            } else {
                Datum::Long(secs * 1_000_000 + frac)
            })
        }
        TIMESTAMP => {
            let secs = r.le(4)? as i64;
            Ok(if secs == 0 {
                Datum::Text(tributary_core::convert::mysql_zero_date(
                    0,
                    0,
                    0,
                    Some((0, 0, 0, 0)),
                ))
            } else {
                Datum::Long(secs * 1_000_000)
            })
        }
        TIME2 => Ok(Datum::Long(time2(r, meta(c, 0))?)),
        TIME => {
            let v = r.le(3)? as i64;
            let v = if v & 0x80_0000 != 0 {
                v - 0x100_0000
            } else {
                v
            };
            let (neg, v) = (v < 0, v.abs());
            let micros = ((v / 10000) * 3600 + (v / 100 % 100) * 60 + v % 100) * 1_000_000;
            Ok(Datum::Long(if neg { -micros } else { micros }))
        }
        BIT => {
            let n = usize::from(meta(c, 1)) + usize::from(meta(c, 0) > 0);
            let b = r.take(n)?;
            Ok(match c.ty {
                ColumnType::Boolean => Datum::Bool(b.iter().any(|&x| x != 0)),
                // Least significant byte first.
                _ => Datum::Bytes(b.iter().rev().copied().collect()),
            })
        }
        ENUM => {
            let idx = r.le(usize::from(meta(c, 1)).clamp(1, 2))? as usize;
            match &c.ty {
                ColumnType::Enum(labels) => Ok(Datum::Text(if idx == 0 {
                    // The error value '' MySQL stores for an invalid label.
                    String::new()
                } else {
                    labels.get(idx - 1).cloned().ok_or(DecodeError::EnumIndex {
                        index: idx,
                        labels: labels.len(),
                    })?
                })),
                other => Err(DecodeError::EnumFor(other.clone())),
            }
        }
        SET => {
            let n = usize::from(meta(c, 1)).clamp(1, 8);
            let bits = r.le(n)?;
            match &c.ty {
                ColumnType::Set(members) => {
                    let mut out = Vec::new();
                    for (i, m) in members.iter().enumerate().take(64) {
                        if bits >> i & 1 == 1 {
                            out.push(m.as_str());
                        }
                    }
                    Ok(Datum::Text(out.join(",")))
                }
                other => Err(DecodeError::SetFor(other.clone())),
            }
        }
        STRING => {
            let (b0, b1) = (usize::from(meta(c, 0)), usize::from(meta(c, 1)));
            let max = if b0 & 0x30 != 0x30 {
                b1 | (((b0 & 0x30) ^ 0x30) << 4)
            } else {
                b1
            };
            let len = r.le(if max < 256 { 1 } else { 2 })? as usize;
            bytes_or_text(c, r.take(len)?)
        }
        VARCHAR | VAR_STRING => {
            let max = usize::from(meta(c, 0)) | usize::from(meta(c, 1)) << 8;
            let len = r.le(if max < 256 { 1 } else { 2 })? as usize;
            bytes_or_text(c, r.take(len)?)
        }
        BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB => {
            let len = r.le(usize::from(meta(c, 0)).clamp(1, 4))? as usize;
            bytes_or_text(c, r.take(len)?)
        }
        GEOMETRY => {
            let len = r.le(usize::from(meta(c, 0)).clamp(1, 4))? as usize;
            let b = r.take(len)?;
            // SRID (4 bytes) then WKB: WKB, or EWKB with the SRID.
            Ok(Datum::Bytes(
                ewkb_from_mysql(b).ok_or(DecodeError::Geometry { len: b.len() })?,
            ))
        }
        JSON => {
            let len = r.le(usize::from(meta(c, 0)).clamp(1, 4))? as usize;
            let b = r.take(len)?;
            Ok(Datum::Text(json_text(b)?))
        }
        other => Err(DecodeError::UnsupportedType(other)),
    }
}

fn bytes_or_text(c: &BinColumn, b: &[u8]) -> Result<Datum, DecodeError> {
    Ok(match c.ty {
        ColumnType::Bytes => {
            let mut v = b.to_vec();
            if let Some(n) = c.pad_to
                && v.len() < n
            {
                v.resize(n, 0);
            }
            Datum::Bytes(v)
        }
        ColumnType::Text | ColumnType::Json => Datum::Text(c.charset.decode(b)),
        ColumnType::Enum(_) | ColumnType::Set(_) => Datum::Text(c.charset.decode(b)),
        ref other => return Err(DecodeError::StringFor(other.clone())),
    })
}

/// MySQL's binary JSON to its text.
fn json_text(b: &[u8]) -> Result<String, DecodeError> {
    if b.is_empty() {
        return Ok("null".into());
    }
    let mut pb = mysql_common::io::ParseBuf(b);
    let v: jsonb::Value<'_> = pb.parse(()).map_err(DecodeError::JsonParse)?;
    let j = serde_json::Value::try_from(v).map_err(DecodeError::JsonText)?;
    Ok(j.to_string())
}

/// Fractional seconds of `fsp` digits, as microseconds.
fn fraction(r: &mut Reader<'_>, fsp: u8) -> Result<i64, DecodeError> {
    let n = usize::from(fsp.div_ceil(2));
    if n == 0 {
        return Ok(0);
    }
    let v = r.be(n)? as i64;
    Ok(match n {
        1 => v * 10_000,
        2 => v * 100,
        _ => v,
    })
}

/// MySQL 5.6+ TIME2 as signed microseconds.
fn time2(r: &mut Reader<'_>, fsp: u8) -> Result<i64, DecodeError> {
    const INT_OFS: i64 = 0x80_0000;
    let packed: i64 = match fsp {
        0 => (r.be(3)? as i64 - INT_OFS) << 24,
        1 | 2 => {
            let mut int = r.be(3)? as i64 - INT_OFS;
            let mut frac = r.be(1)? as i64;
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x100;
            }
            (int << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut int = r.be(3)? as i64 - INT_OFS;
            let mut frac = r.be(2)? as i64;
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 0x10000;
            }
            (int << 24) + frac * 100
        }
        _ => r.be(6)? as i64 - 0x8000_0000_0000,
    };
    let neg = packed < 0;
    let p = packed.abs();
    let int = p >> 24;
    let frac = p % (1 << 24);
    let h = (int >> 12) % (1 << 10);
    let m = (int >> 6) % (1 << 6);
    let s = int % (1 << 6);
    let micros = (h * 3600 + m * 60 + s) * 1_000_000 + frac;
    Ok(if neg { -micros } else { micros })
}

/// A date; a zero date, or one with a zero month or day (stored under a
/// permissive sql_mode), as MySQL prints it ([`Datum::Text`]), which no
/// day count can hold.
fn date(y: i64, m: u32, d: u32) -> Datum {
    if m == 0 || d == 0 {
        return Datum::Text(tributary_core::convert::mysql_zero_date(y, m, d, None));
    }
    Datum::Int(days_from_civil(y, m, d) as i32)
}

fn datetime(y: i64, m: u32, d: u32, h: i64, mi: i64, s: i64, frac: i64) -> Datum {
    if m == 0 || d == 0 {
        return Datum::Text(tributary_core::convert::mysql_zero_date(
            y,
            m,
            d,
            Some((h, mi, s, frac)),
        ));
    }
    let days = days_from_civil(y, m, d);
    Datum::Long(((days * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000) + frac)
}

/// A binary DECIMAL(precision, scale). Up to 38 digits (every common
/// column) the unscaled value is built in an i128; wider ones go through
/// their digits.
fn decimal(r: &mut Reader<'_>, precision: u8, scale: u8) -> Result<Datum, DecodeError> {
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    const POW10: [i128; 10] = [
        1,
        10,
        100,
        1000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
        1_000_000_000,
    ];
    let (precision, scale) = (usize::from(precision), usize::from(scale));
    if scale > precision || precision > 65 {
        return Err(DecodeError::DecimalSize { precision, scale });
    }
    let intg = precision - scale;
    let (intg0, intg0x) = (intg / 9, intg % 9);
    let (frac0, frac0x) = (scale / 9, scale % 9);
    let size = intg0 * 4 + DIG2BYTES[intg0x] + frac0 * 4 + DIG2BYTES[frac0x];
    let raw = r.take(size)?;
    let negative = raw.first().is_some_and(|x| x & 0x80 == 0);
    let mask = if negative { 0xff } else { 0 };
    let byte = |i: usize| {
        let x = raw[i] ^ mask;
        if i == 0 { x ^ 0x80 } else { x }
    };
    // Groups in order: (bytes, digits).
    let mut groups = Vec::with_capacity(intg0 + frac0 + 2);
    if intg0x > 0 {
        groups.push((DIG2BYTES[intg0x], intg0x));
    }
    groups.extend(std::iter::repeat_n((4, 9), intg0 + frac0));
    if frac0x > 0 {
        groups.push((DIG2BYTES[frac0x], frac0x));
    }
    let mut at = 0usize;
    let mut read = |n: usize| {
        let v = (at..at + n).fold(0u64, |a, i| (a << 8) | u64::from(byte(i)));
        at += n;
        v
    };
    let scale = scale as u32;
    if precision <= 38 {
        let mut acc: i128 = 0;
        for &(n, width) in &groups {
            acc = acc * POW10[width] + i128::from(read(n));
        }
        let v = if negative { -acc } else { acc };
        return Ok(Datum::Decimal {
            unscaled: i128_to_twos(v),
            scale,
        });
    }
    let mut digits = String::with_capacity(precision);
    for &(n, width) in &groups {
        let v = read(n);
        digits.push_str(&format!("{v:0width$}"));
    }
    let trimmed = digits.trim_start_matches('0');
    Ok(Datum::Decimal {
        unscaled: digits_to_twos(if trimmed.is_empty() { "0" } else { trimmed }, negative),
        scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(code: u8, meta: &[u8], ty: ColumnType) -> BinColumn {
        BinColumn {
            code,
            meta: meta.to_vec(),
            ty,
            charset: Charset::Utf8,
            pad_to: None,
            unsigned: false,
            name: "c".into(),
        }
    }

    fn unsigned(code: u8, ty: ColumnType) -> BinColumn {
        BinColumn {
            unsigned: true,
            ..col(code, &[], ty)
        }
    }

    fn one(c: &BinColumn, bytes: &[u8]) -> Datum {
        let mut data = vec![0u8]; // null bitmap: not null
        data.extend_from_slice(bytes);
        let mut at = 0;
        let row = decode_image(std::slice::from_ref(c), &[true], &data, &mut at).expect("decodes");
        assert_eq!(at, data.len(), "consumed everything");
        row.into_iter().next().expect("one value")
    }

    #[test]
    fn decimal_as_mysql_documents_it() {
        // 1234567890.1234 as DECIMAL(14,4), from the MySQL source docs.
        let c = col(
            code::NEWDECIMAL,
            &[14, 4],
            ColumnType::Decimal {
                precision: 14,
                scale: 4,
                specials: false,
            },
        );
        let d = one(&c, &[0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2]);
        assert_eq!(
            d,
            Datum::Decimal {
                unscaled: digits_to_twos("12345678901234", false),
                scale: 4
            }
        );
        // -1234567890.1234: every byte inverted.
        let d = one(&c, &[0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D]);
        assert_eq!(
            d,
            Datum::Decimal {
                unscaled: digits_to_twos("12345678901234", true),
                scale: 4
            }
        );
    }

    #[test]
    fn integers_signed_and_unsigned() {
        assert_eq!(
            one(&col(code::TINY, &[], ColumnType::Int), &[0xff]),
            Datum::Int(-1)
        );
        assert_eq!(
            one(
                &unsigned(code::LONG, ColumnType::Long),
                &[0xff, 0xff, 0xff, 0xff]
            ),
            Datum::Long(4_294_967_295)
        );
        assert_eq!(
            one(
                &unsigned(code::LONGLONG, ColumnType::UnsignedLong),
                &[0xff; 8]
            ),
            Datum::Decimal {
                unscaled: digits_to_twos("18446744073709551615", false),
                scale: 0
            }
        );
        let mut u = col(code::TINY, &[], ColumnType::Int);
        u.unsigned = true;
        assert_eq!(one(&u, &[0xff]), Datum::Int(255));
    }

    #[test]
    fn time2_negative_with_fraction() {
        // Round trip through the encoding MySQL uses.
        fn enc(micros: i64, fsp: u8) -> Vec<u8> {
            let neg = micros < 0;
            let m = micros.abs();
            let secs = m / 1_000_000;
            let frac = m % 1_000_000;
            let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
            let int = (h << 12) | (mi << 6) | s;
            let mut packed = (int << 24) + frac;
            if neg {
                packed = -packed;
            }
            match fsp {
                0 => ((packed >> 24) + 0x80_0000).to_be_bytes()[5..].to_vec(),
                1 | 2 => {
                    // As MySQL's my_time_packed_to_binary: the integer
                    // part floored, the fraction's remainder as a byte.
                    let int = packed >> 24;
                    let f = (packed % (1 << 24)) / 10_000;
                    let mut v = (int + 0x80_0000).to_be_bytes()[5..].to_vec();
                    v.push(f as u8);
                    v
                }
                _ => (packed + 0x8000_0000_0000).to_be_bytes()[2..].to_vec(),
            }
        }
        for (micros, fsp) in [
            (-1_500_000, 1),
            (838 * 3_600_000_000 + 59 * 60_000_000 + 59_000_000, 0),
            (-(838 * 3_600_000_000), 0),
            (-123_456, 6),
            (90_000_000_000, 6),
        ] {
            let c = col(code::TIME2, &[fsp], ColumnType::Duration);
            assert_eq!(
                one(&c, &enc(micros, fsp)),
                Datum::Long(micros),
                "{micros} fsp {fsp}"
            );
        }
    }

    #[test]
    fn datetime2_and_zero_dates() {
        // 2024-02-29 12:34:56.789 at fsp 3.
        let ym = 2024 * 13 + 2;
        let ymd = (ym << 5) | 29;
        let hms = (12 << 12) | (34 << 6) | 56;
        let packed: i64 = ((ymd << 17) | hms) + 0x80_0000_0000;
        let mut b = packed.to_be_bytes()[3..].to_vec();
        b.extend_from_slice(&(7890u16).to_be_bytes());
        let c = col(code::DATETIME2, &[3], ColumnType::Timestamp);
        let want = (days_from_civil(2024, 2, 29) * 86_400 + 12 * 3600 + 34 * 60 + 56) * 1_000_000
            + 789_000;
        assert_eq!(one(&c, &b), Datum::Long(want));
        let zero = (0x80_0000_0000i64).to_be_bytes()[3..].to_vec();
        let c0 = col(code::DATETIME2, &[0], ColumnType::Timestamp);
        // Zero dates are kept as MySQL prints them.
        assert_eq!(one(&c0, &zero), Datum::Text("0000-00-00 00:00:00".into()));
        assert_eq!(
            one(&col(code::NEWDATE, &[], ColumnType::Date), &[0, 0, 0]),
            Datum::Text("0000-00-00".into())
        );
        // 2024-00-15: a zero month.
        let v: u32 = (2024 << 9) | 15;
        assert_eq!(
            one(
                &col(code::NEWDATE, &[], ColumnType::Date),
                &v.to_le_bytes()[..3]
            ),
            Datum::Text("2024-00-15".into())
        );
    }

    #[test]
    fn strings_enums_sets_bits() {
        let mut l = col(code::VARCHAR, &[10, 0], ColumnType::Text);
        l.charset = Charset::Latin1;
        assert_eq!(one(&l, &[2, 0xe9, 0x80]), Datum::Text("é€".into()));
        let e = col(
            code::ENUM,
            &[code::ENUM, 1],
            ColumnType::Enum(vec!["a".into(), "b".into()]),
        );
        assert_eq!(one(&e, &[2]), Datum::Text("b".into()));
        let s = col(
            code::SET,
            &[code::SET, 1],
            ColumnType::Set(vec!["r".into(), "w".into(), "x".into()]),
        );
        assert_eq!(one(&s, &[0b101]), Datum::Text("r,x".into()));
        let b = col(code::BIT, &[2, 1], ColumnType::Bits(10));
        assert_eq!(one(&b, &[0x02, 0x01]), Datum::Bytes(vec![0x01, 0x02]));
        let mut bin = col(code::STRING, &[code::STRING, 4], ColumnType::Bytes);
        bin.pad_to = Some(4);
        assert_eq!(one(&bin, &[1, 7]), Datum::Bytes(vec![7, 0, 0, 0]));
    }

    #[test]
    fn mysql8_binary_json() {
        // MySQL 8's binary JSON of [1, "x"]: a small array of two
        // entries, an inlined int16 and a string at offset 10.
        let doc = [
            0x02, 0x02, 0x00, 0x0c, 0x00, 0x05, 0x01, 0x00, 0x0c, 0x0a, 0x00, 0x01, b'x',
        ];
        let mut bytes = (doc.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&doc);
        let c = col(code::JSON, &[4], ColumnType::Json);
        assert_eq!(one(&c, &bytes), Datum::Text("[1,\"x\"]".into()));
        // {"a": true}: a small object, key "a" at offset 11, literal true.
        let obj = [
            0x00, 0x01, 0x00, 0x0c, 0x00, 0x0b, 0x00, 0x01, 0x00, 0x04, 0x01, 0x00, b'a',
        ];
        let mut bytes = (obj.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&obj);
        assert_eq!(one(&c, &bytes), Datum::Text("{\"a\":true}".into()));
    }

    #[test]
    fn short_data_is_an_error_not_a_panic() {
        let c = col(code::LONGLONG, &[], ColumnType::Long);
        let mut at = 0;
        let err = decode_image(std::slice::from_ref(&c), &[true], &[0, 1, 2], &mut at)
            .expect_err("short");
        assert!(err.to_string().contains("needs 8 bytes"), "{err}");
    }
}
