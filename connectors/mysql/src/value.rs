//! Values of the snapshot's result sets (binary protocol) to datums,
//! with the same meaning the binlog decoder gives them.

use std::num::{ParseIntError, TryFromIntError};

use mysql_async::Value;
use tributary_core::convert::{days_from_civil, digits_to_twos, ewkb_from_mysql};
use tributary_core::{ColumnType, Datum};

/// A value that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {reason}")]
pub struct ValueError {
    /// The column.
    pub column: String,
    /// Why.
    #[source]
    pub reason: ValueReason,
}

/// Why a value does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueReason {
    /// An integer too wide for a 32-bit column.
    #[error("{value} does not fit 32 bits")]
    IntOverflow {
        /// The value.
        value: i64,
        /// Cause.
        #[source]
        source: TryFromIntError,
    },
    /// An unsigned integer too large for a signed 64-bit one.
    #[error("{value} out of range")]
    UnsignedOverflow {
        /// The value.
        value: u64,
        /// Cause.
        #[source]
        source: TryFromIntError,
    },
    /// Integer text that does not parse.
    #[error("{text:?}: {source}")]
    IntegerText {
        /// The text.
        text: String,
        /// Cause.
        #[source]
        source: ParseIntError,
    },
    /// Decimal text that does not fit the column.
    #[error(transparent)]
    Decimal(#[from] DecimalTextError),
    /// An integer for a column that holds none.
    #[error("an integer for type {0:?}")]
    IntegerFor(ColumnType),
    /// A date for a column that holds none.
    #[error("a date for type {0:?}")]
    DateFor(ColumnType),
    /// Bytes for a column that cannot take them.
    #[error("bytes for type {0:?}")]
    BytesFor(ColumnType),
    /// Bytes that are not MySQL's geometry format (SRID, then WKB).
    #[error("{len} bytes that are not a geometry (SRID and WKB)")]
    Geometry {
        /// How many bytes.
        len: usize,
    },
}

/// Text that is not a decimal of the column's scale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a decimal of scale {scale}")]
pub struct DecimalTextError {
    /// The text.
    pub text: String,
    /// The column's scale.
    pub scale: u32,
}

/// Decimal text (`-12.50`) to a datum of `scale` digits after the point.
pub fn decimal_text(text: &str, scale: u32) -> Result<Datum, DecimalTextError> {
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
        return Err(DecimalTextError {
            text: text.to_string(),
            scale,
        });
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
    let bad = |reason: ValueReason| ValueError {
        column: column.to_string(),
        reason,
    };
    let int = |i: i64| -> Result<Datum, ValueError> {
        Ok(match ty {
            ColumnType::Int | ColumnType::Year => Datum::Int(
                i32::try_from(i)
                    .map_err(|source| bad(ValueReason::IntOverflow { value: i, source }))?,
            ),
            ColumnType::Long => Datum::Long(i),
            ColumnType::UnsignedLong => Datum::Decimal {
                unscaled: digits_to_twos(&i.unsigned_abs().to_string(), i < 0),
                scale: 0,
            },
            ColumnType::Boolean => Datum::Bool(i != 0),
            other => return Err(bad(ValueReason::IntegerFor(other.clone()))),
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
            _ => int(i64::try_from(u)
                .map_err(|source| bad(ValueReason::UnsignedOverflow { value: u, source }))?)?,
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
                // A zero date (permissive sql_mode): as MySQL prints it.
                let time = (!matches!(ty, ColumnType::Date)).then_some((
                    i64::from(h),
                    i64::from(mi),
                    i64::from(s),
                    i64::from(us),
                ));
                return Ok(Datum::Text(tributary_core::convert::mysql_zero_date(
                    i64::from(y),
                    u32::from(m),
                    u32::from(d),
                    time,
                )));
            }
            let days = days_from_civil(i64::from(y), u32::from(m), u32::from(d));
            match ty {
                ColumnType::Date => Datum::Int(days as i32),
                ColumnType::Timestamp | ColumnType::TimestampTz => Datum::Long(
                    (days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s))
                        * 1_000_000
                        + i64::from(us),
                ),
                other => return Err(bad(ValueReason::DateFor(other.clone()))),
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
            ColumnType::Decimal { scale, .. } => {
                decimal_text(&text(b), *scale).map_err(|e| bad(e.into()))?
            }
            ColumnType::Text | ColumnType::Json | ColumnType::Enum(_) | ColumnType::Set(_) => {
                Datum::Text(text(b))
            }
            ColumnType::Bytes => Datum::Bytes(b),
            ColumnType::Geometry => Datum::Bytes(
                ewkb_from_mysql(&b).ok_or_else(|| bad(ValueReason::Geometry { len: b.len() }))?,
            ),
            ColumnType::Bits(_) => Datum::Bytes(b.into_iter().rev().collect()),
            ColumnType::Boolean => Datum::Bool(b.iter().any(|&x| x != 0)),
            // Integers and years in text form (a text-protocol result).
            ColumnType::Int | ColumnType::Year | ColumnType::Long | ColumnType::UnsignedLong => {
                let t = text(b);
                match t.parse::<i64>() {
                    Ok(i) => int(i)?,
                    Err(_) if matches!(ty, ColumnType::UnsignedLong) => {
                        decimal_text(&t, 0).map_err(|e| bad(e.into()))?
                    }
                    Err(source) => {
                        return Err(bad(ValueReason::IntegerText { text: t, source }));
                    }
                }
            }
            other => return Err(bad(ValueReason::BytesFor(other.clone()))),
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
            Datum::Text("0000-00-00 00:00:00".into()),
            "a zero date as MySQL prints it"
        );
        assert_eq!(
            datum(Value::Time(true, 1, 2, 0, 0, 5), &ColumnType::Duration, "c").expect("ok"),
            Datum::Long(-(26 * 3_600_000_000 + 5))
        );
    }
}
