//! PostgreSQL types: from a column's type OID and modifier to a portable
//! [`ColumnType`], and from pgoutput's text format to a [`Datum`].
//!
//! The replication session pins `DateStyle=ISO`, `IntervalStyle=iso_8601`,
//! `TimeZone=UTC` and `extra_float_digits=3`, so the text forms parsed
//! here are the only ones that arrive.

pub use tributary_core::convert::days_from_civil;
use tributary_core::convert::digits_to_twos;
use tributary_core::{ColumnType, Datum, NumericSpecial};

pub use tributary_postgres_conn::SESSION_OPTIONS;

/// Well-known type OIDs (`pg_type.oid`).
pub mod oid {
    #![allow(missing_docs)]
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const POINT: u32 = 600;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// What the catalog says about a type the OID alone does not explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomType {
    /// An enum with its labels, in order.
    Enum(Vec<String>),
    /// A domain over a base type (OID and modifier).
    Domain {
        /// Base type OID.
        base: u32,
        /// Base type modifier.
        modifier: i32,
    },
    /// An array of an element type OID.
    Array(u32),
}

/// Why a value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// A value that does not parse as its type.
    #[error("cannot read {text:?} as {ty}: {reason}")]
    BadValue {
        /// The text received.
        text: String,
        /// The type.
        ty: &'static str,
        /// Why.
        reason: String,
    },
}

/// Maps a column type. `custom` answers for OIDs that are not built in
/// (enums, domains, arrays). Returns the type and whether it can be
/// TOASTed (varlena), i.e. arrive as "unchanged".
///
/// Every other type (ranges, multiranges, composites, geometric types
/// other than point, `tsvector`, `tsquery`, `macaddr8`, `pg_lsn`,
/// extension types such as `hstore`, `citext` and `ltree`) is carried as
/// its exact text, which PostgreSQL reads back into the same value.
pub fn column_type(
    type_oid: u32,
    modifier: i32,
    custom: &dyn Fn(u32) -> Option<CustomType>,
) -> Result<(ColumnType, bool), TypeError> {
    use oid::*;
    let t = match type_oid {
        BOOL => (ColumnType::Boolean, false),
        INT2 | INT4 => (ColumnType::Int, false),
        INT8 | OID => (ColumnType::Long, false),
        FLOAT4 => (ColumnType::Float, false),
        FLOAT8 => (ColumnType::Double, false),
        NUMERIC if modifier >= 4 => {
            let m = modifier - 4;
            let precision = ((m >> 16) & 0xffff) as u32;
            let scale = (m & 0xffff) as u32;
            (
                ColumnType::Decimal {
                    precision,
                    scale,
                    specials: true,
                },
                true,
            )
        }
        NUMERIC => (ColumnType::VariableDecimal, true),
        MONEY => (ColumnType::Money, false),
        TEXT | VARCHAR | BPCHAR | NAME | CHAR | XML | INET | CIDR | MACADDR => {
            (ColumnType::Text, true)
        }
        JSON | JSONB => (ColumnType::Json, true),
        BYTEA => (ColumnType::Bytes, true),
        BIT if modifier == 1 => (ColumnType::Boolean, false),
        BIT | VARBIT => (ColumnType::Bits(u32::try_from(modifier).unwrap_or(0)), true),
        DATE => (ColumnType::Date, false),
        TIME => (ColumnType::Time, false),
        TIMETZ => (ColumnType::TimeTz, false),
        TIMESTAMP => (ColumnType::Timestamp, false),
        TIMESTAMPTZ => (ColumnType::TimestampTz, false),
        INTERVAL => (ColumnType::Interval, false),
        UUID => (ColumnType::Uuid, false),
        POINT => (ColumnType::Point, false),
        other => match custom(other) {
            Some(CustomType::Enum(labels)) => (ColumnType::Enum(labels), false),
            Some(CustomType::Domain { base, modifier }) => {
                return column_type(base, modifier, custom);
            }
            Some(CustomType::Array(elem)) => {
                let (inner, _) = column_type(elem, -1, custom)?;
                (ColumnType::Array(Box::new(inner)), true)
            }
            None => (ColumnType::Text, true),
        },
    };
    Ok(t)
}

fn bad(text: &str, ty: &'static str, reason: impl Into<String>) -> TypeError {
    TypeError::BadValue {
        text: text.chars().take(80).collect(),
        ty,
        reason: reason.into(),
    }
}

/// Parses pgoutput's text form of a value of type `ty`.
pub fn parse_text(ty: &ColumnType, text: &str) -> Result<Datum, TypeError> {
    Ok(match ty {
        ColumnType::Boolean => match text {
            "t" | "1" => Datum::Bool(true),
            "f" | "0" => Datum::Bool(false),
            _ => return Err(bad(text, "boolean", "expected t or f")),
        },
        ColumnType::Int | ColumnType::Year => Datum::Int(
            text.parse()
                .map_err(|e| bad(text, "integer", format!("{e}")))?,
        ),
        ColumnType::Long => Datum::Long(
            text.parse()
                .map_err(|e| bad(text, "bigint", format!("{e}")))?,
        ),
        ColumnType::Float => Datum::Float(
            text.parse()
                .map_err(|e| bad(text, "real", format!("{e}")))?,
        ),
        ColumnType::Double => Datum::Double(
            text.parse()
                .map_err(|e| bad(text, "double", format!("{e}")))?,
        ),
        ColumnType::Decimal { scale, .. } => parse_numeric(text, Some(*scale))?,
        ColumnType::VariableDecimal => parse_numeric(text, None)?,
        ColumnType::UnsignedLong => parse_numeric(text, Some(0))?,
        ColumnType::Money => parse_money(text)?,
        ColumnType::Text | ColumnType::Json | ColumnType::Enum(_) | ColumnType::Set(_) => {
            Datum::Text(text.to_string())
        }
        ColumnType::Bytes | ColumnType::Geometry => Datum::Bytes(parse_bytea(text)?),
        ColumnType::Bits(_) => Datum::Bytes(parse_bits(text)?),
        ColumnType::Date => Datum::Int(parse_date(text)?),
        ColumnType::Time => Datum::Long(parse_time(text)?),
        ColumnType::Duration => Datum::Long(parse_time(text)?),
        ColumnType::TimeTz => Datum::Text(parse_timetz(text)?),
        ColumnType::Timestamp => timestamp_datum(text, false)?,
        ColumnType::TimestampTz => timestamp_datum(text, true)?,
        ColumnType::Interval => parse_interval(text)?,
        ColumnType::Uuid => Datum::Uuid(parse_uuid(text)?),
        ColumnType::Point => parse_point(text)?,
        ColumnType::Array(inner) => array_datum(inner, text)?,
    })
}

/// A timestamp as microseconds since the epoch; a finite value that
/// microseconds cannot hold (after 294247-01-10, or the two values the
/// infinities use) as PostgreSQL's own text ([`Datum::Text`]), which the
/// schema carries in a branch of its own.
fn timestamp_datum(text: &str, with_zone: bool) -> Result<Datum, TypeError> {
    if matches!(text, "infinity" | "-infinity") {
        return parse_timestamp(text, with_zone).map(Datum::Long);
    }
    match parse_timestamp(text, with_zone) {
        Ok(us) if us != i64::MAX && us != i64::MIN => Ok(Datum::Long(us)),
        Ok(_) => Ok(Datum::Text(text.to_string())),
        Err(TypeError::BadValue { reason, .. }) if reason == OUT_OF_RANGE => {
            Ok(Datum::Text(text.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// An array as [`Datum::Array`] when it is one-dimensional, starts at 1
/// and every element has its element type's form; otherwise (several
/// dimensions, other bounds, a NaN in a numeric[], a timestamp past
/// microseconds) as PostgreSQL's own text ([`Datum::Text`]).
fn array_datum(inner: &ColumnType, text: &str) -> Result<Datum, TypeError> {
    let Some(items) = parse_array(text)? else {
        return Ok(Datum::Text(text.to_string()));
    };
    let mut out = Vec::with_capacity(items.len());
    for e in items {
        let d = match e {
            None => Datum::Null,
            Some(s) => parse_text(inner, &s)?,
        };
        if !element_fits(inner, &d) {
            return Ok(Datum::Text(text.to_string()));
        }
        out.push(d);
    }
    Ok(Datum::Array(out))
}

/// Whether `d` has its element type's own form (an array's element has
/// no union branch for numeric specials or text).
fn element_fits(ty: &ColumnType, d: &Datum) -> bool {
    match d {
        Datum::NumericSpecial(_) | Datum::Unavailable => false,
        Datum::Text(_) => matches!(
            ty,
            ColumnType::Text
                | ColumnType::Json
                | ColumnType::Enum(_)
                | ColumnType::Set(_)
                | ColumnType::TimeTz
        ),
        _ => true,
    }
}

fn parse_numeric(text: &str, scale: Option<u32>) -> Result<Datum, TypeError> {
    match text {
        "NaN" => return Ok(Datum::NumericSpecial(NumericSpecial::NaN)),
        "Infinity" => return Ok(Datum::NumericSpecial(NumericSpecial::PositiveInfinity)),
        "-Infinity" => return Ok(Datum::NumericSpecial(NumericSpecial::NegativeInfinity)),
        _ => {}
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad(text, "numeric", "not a decimal number"));
    }
    let mut digits = format!("{int}{frac}");
    let mut out_scale = frac.len() as u32;
    if let Some(want) = scale {
        if out_scale > want {
            return Err(bad(
                text,
                "numeric",
                format!("more than {want} digits after the point"),
            ));
        }
        while out_scale < want {
            digits.push('0');
            out_scale += 1;
        }
    }
    Ok(Datum::Decimal {
        unscaled: digits_to_twos(&digits, negative),
        scale: out_scale,
    })
}

fn parse_money(text: &str) -> Result<Datum, TypeError> {
    let negative = text.contains('-') || (text.starts_with('(') && text.ends_with(')'));
    let cleaned: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if cleaned.is_empty() {
        return Err(bad(text, "money", "no digits"));
    }
    let signed = if negative {
        format!("-{cleaned}")
    } else {
        cleaned
    };
    parse_numeric(&signed, Some(2)).map_err(|_| bad(text, "money", "not an amount"))
}

fn parse_bytea(text: &str) -> Result<Vec<u8>, TypeError> {
    let hex = text
        .strip_prefix("\\x")
        .ok_or_else(|| bad(text, "bytea", "expected hex format (bytea_output = hex)"))?;
    if hex.len() % 2 != 0 {
        return Err(bad(text, "bytea", "odd number of hex digits"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| bad(text, "bytea", format!("{e}")))
        })
        .collect()
}

/// Bit string (most significant bit first) to bytes, least significant
/// byte first.
fn parse_bits(text: &str) -> Result<Vec<u8>, TypeError> {
    let mut out = vec![0u8; text.len().div_ceil(8)];
    for (i, c) in text.bytes().rev().enumerate() {
        match c {
            b'1' => out[i / 8] |= 1 << (i % 8),
            b'0' => {}
            _ => return Err(bad(text, "bit", "expected 0 or 1")),
        }
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(s: &str, text: &str, ty: &'static str) -> Result<T, TypeError> {
    s.parse()
        .map_err(|_| bad(text, ty, format!("{s:?} is not a number")))
}

/// "YYYY-MM-DD[ BC]" to days; the BC flag is checked by the caller.
fn date_days(date: &str, bc: bool, text: &str, ty: &'static str) -> Result<i64, TypeError> {
    let mut parts = date.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(text, ty, "expected YYYY-MM-DD"));
    };
    let y: i64 = num(y, text, ty)?;
    let m: u32 = num(m, text, ty)?;
    let d: u32 = num(d, text, ty)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad(text, ty, "month or day out of range"));
    }
    let y = if bc { 1 - y } else { y };
    Ok(days_from_civil(y, m, d))
}

fn parse_date(text: &str) -> Result<i32, TypeError> {
    match text {
        "infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    let (date, bc) = match text.strip_suffix(" BC") {
        Some(d) => (d, true),
        None => (text, false),
    };
    let days = date_days(date, bc, text, "date")?;
    i32::try_from(days).map_err(|_| bad(text, "date", "out of range"))
}

/// "HH:MM:SS[.ffffff]" to microseconds.
fn time_micros(t: &str, text: &str, ty: &'static str) -> Result<i64, TypeError> {
    let mut parts = t.splitn(3, ':');
    let (Some(h), Some(m), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(text, ty, "expected HH:MM:SS"));
    };
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(text, ty, "bad fraction of a second"));
    }
    // Digits checked above: "5" is 500000 µs.
    let frac_us = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    let h: i64 = num(h, text, ty)?;
    let m: i64 = num(m, text, ty)?;
    let sec: i64 = num(sec, text, ty)?;
    Ok(((h * 60 + m) * 60 + sec) * 1_000_000 + frac_us)
}

fn parse_time(text: &str) -> Result<i64, TypeError> {
    time_micros(text, text, "time")
}

/// Splits a trailing "+HH[:MM[:SS]]" or "-HH..." zone; returns the rest
/// and the offset east of UTC in seconds.
fn split_zone<'a>(s: &'a str, text: &str, ty: &'static str) -> Result<(&'a str, i64), TypeError> {
    let Some(i) = s.rfind(['+', '-']) else {
        return Ok((s, 0));
    };
    // A '-' inside the date part is not a zone.
    if !s[..i].contains(':') {
        return Ok((s, 0));
    }
    let sign = if s.as_bytes()[i] == b'-' { -1 } else { 1 };
    let mut secs = 0i64;
    for (k, part) in s[i + 1..].split(':').enumerate() {
        let v: i64 = num(part, text, ty)?;
        secs += v * [3600, 60, 1]
            .get(k)
            .copied()
            .ok_or_else(|| bad(text, ty, "bad zone"))?;
    }
    Ok((&s[..i], sign * secs))
}

/// `timetz` keeps its offset: checked, then passed on as PostgreSQL
/// prints it (`12:34:56.5+05:30`), which is ISO 8601 (an offset with
/// seconds, possible in PostgreSQL, adds `:SS`).
fn parse_timetz(text: &str) -> Result<String, TypeError> {
    let (t, _offset) = split_zone(text, text, "timetz")?;
    if t.len() == text.len() {
        return Err(bad(text, "timetz", "no offset"));
    }
    time_micros(t, text, "timetz")?;
    Ok(text.to_string())
}

fn parse_timestamp(text: &str, with_zone: bool) -> Result<i64, TypeError> {
    let ty = if with_zone {
        "timestamptz"
    } else {
        "timestamp"
    };
    match text {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let (date, rest) = body
        .split_once(' ')
        .ok_or_else(|| bad(text, ty, "expected date and time"))?;
    let (time, offset) = if with_zone {
        split_zone(rest, text, ty)?
    } else {
        (rest, 0)
    };
    let days = date_days(date, bc, text, ty)?;
    let us = time_micros(time, text, ty)?;
    days.checked_mul(86_400_000_000)
        .and_then(|d| d.checked_add(us))
        .and_then(|v| v.checked_sub(offset * 1_000_000))
        .ok_or_else(|| bad(text, ty, OUT_OF_RANGE))
}

/// The reason a timestamp past microseconds since 1970 gives.
const OUT_OF_RANGE: &str = "out of range";

/// ISO 8601 interval (IntervalStyle iso_8601), e.g. `P1Y2M3DT4H5M6.5S`.
fn parse_interval(text: &str) -> Result<Datum, TypeError> {
    let ty = "interval";
    let body = text
        .strip_prefix('P')
        .ok_or_else(|| bad(text, ty, "expected ISO 8601 (P...)"))?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut number = String::new();
    for c in date.chars() {
        match c {
            'Y' | 'M' | 'W' | 'D' => {
                let v: i64 = num(&number, text, ty)?;
                number.clear();
                match c {
                    'Y' => months += v * 12,
                    'M' => months += v,
                    'W' => days += v * 7,
                    _ => days += v,
                }
            }
            _ => number.push(c),
        }
    }
    for c in time.chars() {
        match c {
            'H' | 'M' | 'S' => {
                let (neg, n) = match number.strip_prefix('-') {
                    Some(n) => (true, n.to_string()),
                    None => (false, number.clone()),
                };
                let (whole, frac) = n.split_once('.').unwrap_or((&n, ""));
                let whole: i64 = num(whole, text, ty)?;
                let frac_us: i64 = if frac.is_empty() {
                    0
                } else {
                    num(&format!("{:0<6}", &frac[..frac.len().min(6)]), text, ty)?
                };
                let unit = match c {
                    'H' => 3_600_000_000,
                    'M' => 60_000_000,
                    _ => 1_000_000,
                };
                let v = whole * unit
                    + if c == 'S' {
                        frac_us
                    } else {
                        frac_us * (unit / 1_000_000)
                    };
                micros += if neg { -v } else { v };
                number.clear();
            }
            _ => number.push(c),
        }
    }
    if !number.is_empty() {
        return Err(bad(text, ty, "trailing number without a unit"));
    }
    Ok(Datum::Interval {
        months: i32::try_from(months).map_err(|_| bad(text, ty, "months out of range"))?,
        days: i32::try_from(days).map_err(|_| bad(text, ty, "days out of range"))?,
        micros,
    })
}

fn parse_uuid(text: &str) -> Result<[u8; 16], TypeError> {
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 {
        return Err(bad(text, "uuid", "expected 32 hex digits"));
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|e| bad(text, "uuid", format!("{e}")))?;
    }
    Ok(out)
}

fn parse_point(text: &str) -> Result<Datum, TypeError> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| bad(text, "point", "expected (x,y)"))?;
    let (x, y) = inner
        .split_once(',')
        .ok_or_else(|| bad(text, "point", "expected (x,y)"))?;
    Ok(Datum::Point {
        x: num(x, text, "point")?,
        y: num(y, text, "point")?,
    })
}

/// A one-dimensional array literal starting at 1: its elements, `None`
/// for NULL. `Ok(None)` for an array with explicit bounds (PostgreSQL
/// prints `[0:2]={...}` only when they are not the default) or several
/// dimensions: no list of elements says what it is.
fn parse_array(text: &str) -> Result<Option<Vec<Option<String>>>, TypeError> {
    if text.starts_with('[') {
        return Ok(None);
    }
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad(text, "array", "expected {...}"))?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Ok(Some(out));
    }
    if inner.starts_with('{') {
        return Ok(None);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => item.push(
                        chars
                            .next()
                            .ok_or_else(|| bad(text, "array", "dangling escape"))?,
                    ),
                    Some('"') => break,
                    Some(c) => item.push(c),
                    None => return Err(bad(text, "array", "unterminated quote")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' {
                    return Err(bad(text, "array", "unexpected {"));
                }
                item.push(c);
                chars.next();
            }
        }
        out.push(if !quoted && item == "NULL" {
            None
        } else {
            Some(item)
        });
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(c) => return Err(bad(text, "array", format!("unexpected {c:?}"))),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(unscaled: i64, scale: u32) -> Datum {
        Datum::Decimal {
            unscaled: digits_to_twos(&unscaled.unsigned_abs().to_string(), unscaled < 0),
            scale,
        }
    }

    #[test]
    fn twos_complement_matches_i64() {
        for v in [
            0i64,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            65535,
            -65536,
            i64::MAX,
            i64::MIN + 1,
        ] {
            let got = digits_to_twos(&v.unsigned_abs().to_string(), v < 0);
            let full = v.to_be_bytes();
            let skip = full.len() - got.len();
            assert_eq!(&full[skip..], &got[..], "{v}");
            // Minimal: dropping one more byte would change the value.
            assert!(
                got.len() == 1
                    || !(got[0] == 0 && got[1] & 0x80 == 0 || got[0] == 0xff && got[1] & 0x80 != 0),
                "{v}"
            );
        }
        // Beyond 64 bits: 2^64 = 0x01 00..00 (9 bytes) with a sign byte.
        assert_eq!(
            digits_to_twos("18446744073709551616", false),
            vec![1, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            digits_to_twos("18446744073709551615", false),
            vec![0, 255, 255, 255, 255, 255, 255, 255, 255]
        );
    }

    #[test]
    fn numerics() {
        let ty = |s| ColumnType::Decimal {
            precision: 10,
            scale: s,
            specials: true,
        };
        assert_eq!(parse_text(&ty(2), "12.30").expect("n"), dec(1230, 2));
        assert_eq!(parse_text(&ty(2), "-0.05").expect("n"), dec(-5, 2));
        assert_eq!(parse_text(&ty(3), "7").expect("n"), dec(7000, 3));
        assert!(parse_text(&ty(1), "1.25").is_err());
        assert_eq!(
            parse_text(&ColumnType::VariableDecimal, "-3.14159").expect("n"),
            dec(-314159, 5)
        );
        assert_eq!(
            parse_text(&ColumnType::VariableDecimal, "NaN").expect("n"),
            Datum::NumericSpecial(NumericSpecial::NaN)
        );
        assert_eq!(
            parse_text(&ty(2), "-Infinity").expect("n"),
            Datum::NumericSpecial(NumericSpecial::NegativeInfinity)
        );
        assert_eq!(
            parse_text(&ColumnType::Money, "-$1,234.50").expect("m"),
            dec(-123450, 2)
        );
        assert!(parse_text(&ColumnType::VariableDecimal, "1e5").is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2000-03-01"), Ok(11017));
        assert_eq!(parse_date("1969-12-31"), Ok(-1));
        assert_eq!(
            parse_date("0001-01-01 BC"),
            Ok(days_from_civil(0, 1, 1) as i32)
        );
        assert_eq!(parse_date("infinity"), Ok(i32::MAX));
        assert_eq!(
            parse_time("13:45:10.5"),
            Ok(((13 * 60 + 45) * 60 + 10) * 1_000_000 + 500_000)
        );
        assert_eq!(parse_time("24:00:00"), Ok(86_400_000_000));
        assert_eq!(parse_timetz("10:00:00+02"), Ok("10:00:00+02".into()));
        assert_eq!(
            parse_timetz("23:30:00.25-01:30"),
            Ok("23:30:00.25-01:30".into())
        );
        assert!(parse_timetz("23:30:00").is_err());
        assert_eq!(parse_timestamp("1970-01-01 00:00:01", false), Ok(1_000_000));
        assert_eq!(
            parse_timestamp("2024-02-29 12:00:00.000001+00", true),
            Ok((days_from_civil(2024, 2, 29) * 86_400 + 43_200) * 1_000_000 + 1)
        );
        assert_eq!(
            parse_timestamp("2024-01-01 02:00:00+02", true),
            Ok(days_from_civil(2024, 1, 1) * 86_400_000_000)
        );
        assert_eq!(parse_timestamp("-infinity", true), Ok(i64::MIN));
        // Past microseconds since 1970, or on the infinities' values: text.
        for (text, zone) in [
            ("294276-12-31 23:59:59.999999", false),
            ("294276-12-31 23:59:59.999999+00", true),
            ("294247-01-10 04:00:54.775807", false),
        ] {
            let ty = if zone {
                ColumnType::TimestampTz
            } else {
                ColumnType::Timestamp
            };
            assert_eq!(parse_text(&ty, text), Ok(Datum::Text(text.into())));
        }
        assert_eq!(
            parse_text(&ColumnType::Timestamp, "294247-01-10 04:00:54.775806"),
            Ok(Datum::Long(i64::MAX - 1))
        );
        assert_eq!(
            parse_text(&ColumnType::Timestamp, "infinity"),
            Ok(Datum::Long(i64::MAX))
        );
        assert!(parse_text(&ColumnType::Timestamp, "2024-13-01 00:00:00").is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(
            parse_text(&ColumnType::Interval, "P1Y2M3DT4H5M6.5S").expect("i"),
            Datum::Interval {
                months: 14,
                days: 3,
                micros: ((4 * 60 + 5) * 60 + 6) * 1_000_000 + 500_000
            }
        );
        assert_eq!(
            parse_text(&ColumnType::Interval, "P-1Y-2DT-3H").expect("i"),
            Datum::Interval {
                months: -12,
                days: -2,
                micros: -3 * 3_600_000_000
            }
        );
        assert_eq!(
            parse_text(&ColumnType::Interval, "PT0S").expect("i"),
            Datum::Interval {
                months: 0,
                days: 0,
                micros: 0
            }
        );
        assert!(parse_text(&ColumnType::Interval, "1 day").is_err());
    }

    #[test]
    fn misc() {
        assert_eq!(
            parse_text(&ColumnType::Bytes, "\\x00ff10").expect("b"),
            Datum::Bytes(vec![0, 255, 16])
        );
        assert_eq!(
            parse_text(&ColumnType::Bits(10), "1000000001").expect("b"),
            Datum::Bytes(vec![1, 2])
        );
        assert_eq!(
            parse_text(&ColumnType::Point, "(1.5,-2)").expect("p"),
            Datum::Point { x: 1.5, y: -2.0 }
        );
        let u = parse_text(&ColumnType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").expect("u");
        assert!(matches!(u, Datum::Uuid(b) if b[0] == 0xa0 && b[15] == 0x11));
        assert_eq!(
            parse_text(
                &ColumnType::Array(Box::new(ColumnType::Text)),
                r#"{a,"b c",NULL,"NULL","q\"x"}"#
            )
            .expect("a"),
            Datum::Array(vec![
                Datum::Text("a".into()),
                Datum::Text("b c".into()),
                Datum::Null,
                Datum::Text("NULL".into()),
                Datum::Text("q\"x".into()),
            ])
        );
        assert_eq!(
            parse_text(&ColumnType::Array(Box::new(ColumnType::Int)), "{}").expect("a"),
            Datum::Array(vec![])
        );
        // What a list of elements cannot say is kept as text.
        let ints = ColumnType::Array(Box::new(ColumnType::Int));
        for text in ["[0:1]={1,2}", "{{1,2},{3,4}}", "[0:1][1:1]={{1},{2}}"] {
            assert_eq!(parse_text(&ints, text), Ok(Datum::Text(text.into())));
        }
        let nums = ColumnType::Array(Box::new(ColumnType::VariableDecimal));
        assert_eq!(
            parse_text(&nums, "{1.5,NaN}"),
            Ok(Datum::Text("{1.5,NaN}".into()))
        );
        assert!(parse_text(&ints, "{1,x}").is_err());
        assert_eq!(
            parse_text(&ColumnType::Boolean, "t").expect("b"),
            Datum::Bool(true)
        );
        assert_eq!(
            parse_text(&ColumnType::Double, "Infinity").expect("d"),
            Datum::Double(f64::INFINITY)
        );
    }

    #[test]
    fn type_mapping() {
        let none = |_| None;
        assert_eq!(
            column_type(oid::NUMERIC, (12 << 16 | 4) + 4, &none),
            Ok((
                ColumnType::Decimal {
                    precision: 12,
                    scale: 4,
                    specials: true
                },
                true
            ))
        );
        assert_eq!(
            column_type(oid::NUMERIC, -1, &none),
            Ok((ColumnType::VariableDecimal, true))
        );
        assert_eq!(
            column_type(oid::BIT, 1, &none),
            Ok((ColumnType::Boolean, false))
        );
        let custom = |o| match o {
            5000 => Some(CustomType::Enum(vec!["sad".into(), "happy".into()])),
            5001 => Some(CustomType::Domain {
                base: oid::INT4,
                modifier: -1,
            }),
            5002 => Some(CustomType::Array(oid::TEXT)),
            _ => None,
        };
        assert_eq!(
            column_type(5000, -1, &custom),
            Ok((ColumnType::Enum(vec!["sad".into(), "happy".into()]), false))
        );
        assert_eq!(column_type(5001, -1, &custom), Ok((ColumnType::Int, false)));
        assert_eq!(
            column_type(5002, -1, &custom),
            Ok((ColumnType::Array(Box::new(ColumnType::Text)), true))
        );
        // Any other type: its exact text.
        assert_eq!(column_type(9999, -1, &custom), Ok((ColumnType::Text, true)));
    }
}
