//! Values as text, for targets that store text (caches, search indexes,
//! `consume`): ISO 8601 dates and times, exact decimals, hex bytes.

use crate::event::{ColumnType, Datum, NumericSpecial};

/// `d` (of a column of type `ty`) as text; `None` for NULL and for a
/// value the source could not see (the target keeps what it has).
pub fn text(ty: &ColumnType, d: &Datum) -> Option<String> {
    Some(match d {
        Datum::Null | Datum::Unavailable => return None,
        Datum::Bool(b) => b.to_string(),
        Datum::Int(v) => match ty {
            ColumnType::Date => date(i64::from(*v)),
            _ => v.to_string(),
        },
        Datum::Long(v) => match ty {
            ColumnType::Time => time(*v),
            ColumnType::Timestamp => timestamp(*v, ""),
            ColumnType::TimestampTz => timestamp(*v, "Z"),
            _ => v.to_string(),
        },
        Datum::Float(v) => v.to_string(),
        Datum::Double(v) => v.to_string(),
        Datum::Text(s) => s.clone(),
        Datum::Bytes(b) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Datum::Decimal { unscaled, scale } => decimal(unscaled, *scale),
        Datum::NumericSpecial(NumericSpecial::NaN) => "NaN".into(),
        Datum::NumericSpecial(NumericSpecial::PositiveInfinity) => "Infinity".into(),
        Datum::NumericSpecial(NumericSpecial::NegativeInfinity) => "-Infinity".into(),
        Datum::Uuid(u) => {
            let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                h[0..4].concat(),
                h[4..6].concat(),
                h[6..8].concat(),
                h[8..10].concat(),
                h[10..16].concat()
            )
        }
        Datum::Interval {
            months,
            days,
            micros,
        } => format!("P{months}M{days}DT{}S", seconds(*micros)),
        Datum::Point { x, y } => format!("({x},{y})"),
        Datum::Array(items) => {
            let elem = match ty {
                ColumnType::Array(e) => e.as_ref(),
                other => other,
            };
            let parts: Vec<String> = items
                .iter()
                .map(|i| text(elem, i).unwrap_or_else(|| "NULL".into()))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
    })
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
    let (y, m, d) = civil_from_days(days);
    if y < 1 {
        format!("{:04}-{m:02}-{d:02} BC", 1 - y)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

fn time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        s.push_str(&format!(".{frac:06}"));
    }
    s
}

fn timestamp(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    let d = date(days);
    // The era goes last: `0044-03-15T12:00:00Z BC` (PostgreSQL misreads
    // `0044-03-15 BCT12:00:00Z` without an error).
    match d.strip_suffix(" BC") {
        Some(d) => format!("{d}T{}{zone} BC", time(rest)),
        None => format!("{d}T{}{zone}", time(rest)),
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
        let mut j = String::new();
        json_string(&mut j, "a\"b\\c\n\u{1}");
        assert_eq!(j, r#""a\"b\\c\n\u0001""#);
    }
}
