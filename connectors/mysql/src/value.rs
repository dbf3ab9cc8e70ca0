//! Values of the snapshot's result sets (binary protocol) to datums,
//! with the same meaning the binlog decoder gives them.

use mysql_async::Value;
use tributary_core::convert::{days_from_civil, digits_to_twos};
use tributary_core::{ColumnType, Datum};

/// A value that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct ValueError {
    /// The column.
    pub column: String,
    /// Why.
    pub reason: String,
}

/// Decimal text (`-12.50`) to a datum of `scale` digits after the point.
pub fn decimal_text(text: &str, scale: u32) -> Result<Datum, String> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > scale as usize
    {
        return Err(format!("{text:?} is not a decimal of scale {scale}"));
    }
    let mut digits = format!("{int}{frac}");
    for _ in frac.len()..scale as usize {
        digits.push('0');
    }
    let trimmed = digits.trim_start_matches('0');
    Ok(Datum::Decimal {
        unscaled: digits_to_twos(if trimmed.is_empty() { "0" } else { trimmed }, negative),
        scale,
    })
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `v`, read from a column of type `ty` named `column`. `pad_to`: the
/// length of a `BINARY(n)` column.
pub fn datum(v: Value, ty: &ColumnType, column: &str) -> Result<Datum, ValueError> {
    let bad = |reason: String| ValueError {
        column: column.to_string(),
        reason,
    };
    let int = |i: i64| -> Result<Datum, ValueError> {
        Ok(match ty {
            ColumnType::Int | ColumnType::Year => {
                Datum::Int(i32::try_from(i).map_err(|_| bad(format!("{i} does not fit 32 bits")))?)
            }
            ColumnType::Long => Datum::Long(i),
            ColumnType::UnsignedLong => Datum::Decimal {
                unscaled: digits_to_twos(&i.unsigned_abs().to_string(), i < 0),
                scale: 0,
            },
            ColumnType::Boolean => Datum::Bool(i != 0),
            other => return Err(bad(format!("an integer for type {other:?}"))),
        })
    };
    Ok(match v {
        Value::NULL => Datum::Null,
        Value::Int(i) => int(i)?,
        Value::UInt(u) => match ty {
            ColumnType::UnsignedLong => Datum::Decimal {
                unscaled: digits_to_twos(&u.to_string(), false),
                scale: 0,
            },
            _ => int(i64::try_from(u).map_err(|_| bad(format!("{u} out of range")))?)?,
        },
        Value::Float(f) => match ty {
            ColumnType::Double => Datum::Double(f64::from(f)),
            _ => Datum::Float(f),
        },
        Value::Double(f) => match ty {
            ColumnType::Float => Datum::Float(f as f32),
            _ => Datum::Double(f),
        },
        Value::Date(y, m, d, h, mi, s, us) => {
            if m == 0 || d == 0 {
                return Ok(Datum::Null);
            }
            let days = days_from_civil(i64::from(y), u32::from(m), u32::from(d));
            match ty {
                ColumnType::Date => Datum::Int(days as i32),
                ColumnType::Timestamp | ColumnType::TimestampTz => Datum::Long(
                    (days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s))
                        * 1_000_000
                        + i64::from(us),
                ),
                other => return Err(bad(format!("a date for type {other:?}"))),
            }
        }
        Value::Time(neg, days, h, m, s, us) => {
            let micros =
                ((i64::from(days) * 24 + i64::from(h)) * 3600 + i64::from(m) * 60 + i64::from(s))
                    * 1_000_000
                    + i64::from(us);
            Datum::Long(if neg { -micros } else { micros })
        }
        Value::Bytes(b) => match ty {
            ColumnType::Decimal { scale, .. } => decimal_text(&text(b), *scale).map_err(bad)?,
            ColumnType::Text | ColumnType::Json | ColumnType::Enum(_) | ColumnType::Set(_) => {
                Datum::Text(text(b))
            }
            ColumnType::Bytes => Datum::Bytes(b),
            ColumnType::Geometry => Datum::Bytes(b.get(4..).unwrap_or_default().to_vec()),
            ColumnType::Bits(_) => Datum::Bytes(b.into_iter().rev().collect()),
            ColumnType::Boolean => Datum::Bool(b.iter().any(|&x| x != 0)),
            // Integers and years in text form (a text-protocol result).
            ColumnType::Int | ColumnType::Year | ColumnType::Long | ColumnType::UnsignedLong => {
                let t = text(b);
                match t.parse::<i64>() {
                    Ok(i) => int(i)?,
                    Err(_) if matches!(ty, ColumnType::UnsignedLong) => {
                        decimal_text(&t, 0).map_err(bad)?
                    }
                    Err(e) => return Err(bad(format!("{t:?}: {e}"))),
                }
            }
            other => return Err(bad(format!("bytes for type {other:?}"))),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_unsigned() {
        assert_eq!(
            decimal_text("-12.5", 2).expect("ok"),
            Datum::Decimal {
                unscaled: digits_to_twos("1250", true),
                scale: 2
            }
        );
        assert!(decimal_text("1.234", 2).is_err());
        assert_eq!(
            datum(Value::UInt(u64::MAX), &ColumnType::UnsignedLong, "c").expect("ok"),
            Datum::Decimal {
                unscaled: digits_to_twos("18446744073709551615", false),
                scale: 0
            }
        );
        assert_eq!(
            datum(
                Value::Date(0, 0, 0, 0, 0, 0, 0),
                &ColumnType::Timestamp,
                "c"
            )
            .expect("ok"),
            Datum::Null
        );
        assert_eq!(
            datum(Value::Time(true, 1, 2, 0, 0, 5), &ColumnType::Duration, "c").expect("ok"),
            Datum::Long(-(26 * 3_600_000_000 + 5))
        );
    }
}
