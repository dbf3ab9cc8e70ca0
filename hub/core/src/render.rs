//! Values as text, for targets that store text (caches, search indexes,
//! `consume`): ISO 8601 dates and times, exact decimals, hex bytes.

use crate::event::{ColumnType, Datum, NumericSpecial};

/// `d` (of a column of type `ty`) as text; `None` for NULL and for a
/// value the source could not see (the target keeps what it has).
pub fn text(ty: &ColumnType, d: &Datum) -> Option<String> {
    let mut s = String::new();
    write_text(&mut s, ty, d).then_some(s)
}

/// [`text`] appended to `out`; `false` (and nothing appended) for NULL
/// and for a value the source could not see.
pub fn write_text(out: &mut String, ty: &ColumnType, d: &Datum) -> bool {
    use std::fmt::Write as _;
    match d {
        Datum::Null | Datum::Unavailable => return false,
        Datum::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Datum::Int(v) => match ty {
            ColumnType::Date => write_date(out, i64::from(*v)),
            _ => {
                let _ = write!(out, "{v}");
            }
        },
        Datum::Long(v) => match ty {
            ColumnType::Time => write_time(out, *v),
            ColumnType::Timestamp => write_timestamp(out, *v, ""),
            ColumnType::TimestampTz => write_timestamp(out, *v, "Z"),
            _ => {
                let _ = write!(out, "{v}");
            }
        },
        Datum::Float(v) => {
            let _ = write!(out, "{v}");
        }
        Datum::Double(v) => {
            let _ = write!(out, "{v}");
        }
        Datum::Text(s) => out.push_str(s),
        Datum::Bytes(b) => {
            out.reserve(2 + b.len() * 2);
            out.push_str("\\x");
            for &byte in b {
                push_hex(out, byte);
            }
        }
        Datum::Decimal { unscaled, scale } => out.push_str(&decimal(unscaled, *scale)),
        Datum::NumericSpecial(NumericSpecial::NaN) => out.push_str("NaN"),
        Datum::NumericSpecial(NumericSpecial::PositiveInfinity) => out.push_str("Infinity"),
        Datum::NumericSpecial(NumericSpecial::NegativeInfinity) => out.push_str("-Infinity"),
        Datum::Uuid(u) => {
            for (i, &b) in u.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                push_hex(out, b);
            }
        }
        Datum::Interval {
            months,
            days,
            micros,
        } => {
            let _ = write!(out, "P{months}M{days}DT{}S", seconds(*micros));
        }
        Datum::Point { x, y } => {
            let _ = write!(out, "({x},{y})");
        }
        Datum::Array(items) => {
            let elem = match ty {
                ColumnType::Array(e) => e.as_ref(),
                other => other,
            };
            out.push('{');
            for (n, i) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                if !write_text(out, elem, i) {
                    out.push_str("NULL");
                }
            }
            out.push('}');
        }
    }
    true
}

/// `b` as two lower-case hex digits.
fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// `v` (0..=99) as two digits.
fn push_2(out: &mut String, v: u32) {
    out.push(char::from(b'0' + (v / 10 % 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

/// Appends `s` as a JSON string.
pub fn json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (proleptic Gregorian).
pub fn date(days: i64) -> String {
    let mut s = String::with_capacity(13);
    write_date(&mut s, days);
    s
}

/// [`date`] appended to `out`.
/// The infinities PostgreSQL's `date` has are `i32::MAX` and `i32::MIN`.
fn write_date(out: &mut String, days: i64) {
    match days {
        d if d == i64::from(i32::MAX) => return out.push_str("infinity"),
        d if d == i64::from(i32::MIN) => return out.push_str("-infinity"),
        _ => {}
    }
    if write_ymd(out, days) {
        out.push_str(" BC");
    }
}

/// `YYYY-MM-DD` of days since 1970-01-01 appended to `out`, the year
/// counted back from 1 BC for dates before year 1; whether it is BC.
fn write_ymd(out: &mut String, days: i64) -> bool {
    use std::fmt::Write as _;
    let (y, m, d) = civil_from_days(days);
    let bc = y < 1;
    let year = if bc { 1 - y } else { y };
    if (0..10_000).contains(&year) {
        push_2(out, (year / 100) as u32);
        push_2(out, (year % 100) as u32);
    } else {
        let _ = write!(out, "{year}");
    }
    out.push('-');
    push_2(out, m);
    out.push('-');
    push_2(out, d);
    bc
}

/// Microseconds since midnight as `HH:MM:SS[.ffffff]`.
fn write_time(out: &mut String, micros: i64) {
    use std::fmt::Write as _;
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    if (0..360_000).contains(&secs) {
        push_2(out, (secs / 3600) as u32);
        out.push(':');
        push_2(out, (secs / 60 % 60) as u32);
        out.push(':');
        push_2(out, (secs % 60) as u32);
    } else {
        // A MySQL TIME may be negative or past 99 hours.
        let _ = write!(
            out,
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }
    if frac != 0 {
        let _ = write!(out, ".{frac:06}");
    }
}

/// Microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS[.ffffff]<zone>`.
fn write_timestamp(out: &mut String, micros: i64, zone: &str) {
    match micros {
        i64::MAX => return out.push_str("infinity"),
        i64::MIN => return out.push_str("-infinity"),
        _ => {}
    }
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    // The era goes last: `0044-03-15T12:00:00Z BC` (PostgreSQL misreads
    // `0044-03-15 BCT12:00:00Z` without an error).
    let bc = write_ymd(out, days);
    out.push('T');
    write_time(out, rest);
    out.push_str(zone);
    if bc {
        out.push_str(" BC");
    }
}

fn seconds(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let (s, f) = (m / 1_000_000, m % 1_000_000);
    if f == 0 {
        format!("{sign}{s}")
    } else {
        format!("{sign}{s}.{}", format!("{f:06}").trim_end_matches('0'))
    }
}

/// Big-endian two's complement `unscaled` times 10^-scale, exactly.
fn decimal(unscaled: &[u8], scale: u32) -> String {
    // Sign-extend into a magnitude of base-10^9 limbs would be general;
    // values up to 16 bytes fit i128, wider ones are rendered by long
    // division on the bytes.
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    let mut mag: Vec<u8> = if negative {
        // Two's complement negation.
        let mut v: Vec<u8> = unscaled.iter().map(|b| !b).collect();
        for b in v.iter_mut().rev() {
            let (n, carry) = b.overflowing_add(1);
            *b = n;
            if !carry {
                break;
            }
        }
        v
    } else {
        unscaled.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    let scale = scale as usize;
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let mut s = String::from_utf8(digits).unwrap_or_default();
    if scale > 0 {
        s.insert(s.len() - scale, '.');
    }
    if negative {
        s.insert(0, '-');
    }
    s
}

/// Days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_as_text() {
        let dec = |v: i128, scale| Datum::Decimal {
            unscaled: v.to_be_bytes().to_vec(),
            scale,
        };
        let d = ColumnType::VariableDecimal;
        assert_eq!(text(&d, &dec(-123_456, 2)).as_deref(), Some("-1234.56"));
        assert_eq!(text(&d, &dec(5, 3)).as_deref(), Some("0.005"));
        assert_eq!(text(&d, &dec(0, 0)).as_deref(), Some("0"));
        assert_eq!(
            text(&ColumnType::Date, &Datum::Int(19_782)).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(
            text(
                &ColumnType::TimestampTz,
                &Datum::Long(1_709_208_000_000_001)
            )
            .as_deref(),
            Some("2024-02-29T12:00:00.000001Z")
        );
        assert_eq!(text(&ColumnType::Text, &Datum::Unavailable), None);
        assert_eq!(
            text(&ColumnType::Bytes, &Datum::Bytes(vec![0, 255])).as_deref(),
            Some("\\x00ff")
        );
        assert_eq!(
            text(
                &ColumnType::Interval,
                &Datum::Interval {
                    months: 14,
                    days: 3,
                    micros: 14_706_500_000
                }
            )
            .as_deref(),
            Some("P14M3DT14706.5S")
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 44 BC (year -43), March 15, noon UTC.
        assert_eq!(
            text(
                &ColumnType::TimestampTz,
                &Datum::Long(-63_517_780_800_000_000)
            )
            .as_deref(),
            Some("0044-03-15T12:00:00Z BC")
        );
        assert_eq!(
            text(
                &ColumnType::Uuid,
                &Datum::Uuid([
                    0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14,
                    0x17, 0x40, 0x00
                ])
            )
            .as_deref(),
            Some("123e4567-e89b-12d3-a456-426614174000")
        );
        assert_eq!(
            text(
                &ColumnType::Array(Box::new(ColumnType::Int)),
                &Datum::Array(vec![Datum::Int(1), Datum::Null, Datum::Int(-3)])
            )
            .as_deref(),
            Some("{1,NULL,-3}")
        );
        assert_eq!(
            text(&ColumnType::Boolean, &Datum::Bool(false)).as_deref(),
            Some("false")
        );
        assert_eq!(
            text(&ColumnType::Double, &Datum::Double(1.0 / 7.0)).as_deref(),
            Some("0.14285714285714285")
        );
        assert_eq!(
            text(&ColumnType::TimestampTz, &Datum::Long(i64::MIN)).as_deref(),
            Some("-infinity")
        );
        assert_eq!(
            text(&ColumnType::Date, &Datum::Int(i32::MAX)).as_deref(),
            Some("infinity")
        );
        assert_eq!(date(i64::from(i32::MIN)), "-infinity");
        // Dates and times as the format strings have them, over a wide range.
        for days in (-1_000_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            let want = if y < 1 {
                format!("{:04}-{m:02}-{d:02} BC", 1 - y)
            } else {
                format!("{y:04}-{m:02}-{d:02}")
            };
            assert_eq!(date(days), want);
        }
        for micros in [
            0_i64,
            1,
            999_999,
            1_000_000,
            86_399_999_999,
            3_020_399_000_000,
            -1,
            -3_020_399_000_000,
            45_296_500_000,
        ] {
            let secs = micros.div_euclid(1_000_000);
            let frac = micros.rem_euclid(1_000_000);
            let mut want = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            if frac != 0 {
                want.push_str(&format!(".{frac:06}"));
            }
            assert_eq!(
                text(&ColumnType::Time, &Datum::Long(micros)).as_deref(),
                Some(want.as_str())
            );
        }
        let mut j = String::new();
        json_string(&mut j, "a\"b\\c\n\u{1}");
        assert_eq!(j, r#""a\"b\\c\n\u0001""#);
    }
}
