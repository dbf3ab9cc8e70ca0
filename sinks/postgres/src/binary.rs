//! The COPY binary format, for the column types where a value's binary
//! form is plain (integers, floats, booleans, text, bytea, json(b), date,
//! timestamps, uuid). The server then skips parsing text (integers,
//! floats, dates), which is most of what a text COPY costs it. Which
//! columns qualify is decided from the source type and the target
//! column's type together; a group of rows with any other column, or a
//! value the binary form would not give the same meaning to, goes as
//! text. Pure functions, unit-tested.

use tributary_core::event::{ColumnType, Datum};

/// How one column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// text, varchar, char(n), json: the UTF-8 bytes.
    Text,
    /// jsonb: version 1, then the text.
    Jsonb,
    Bytea,
    /// Days since 2000-01-01.
    Date,
    /// Microseconds since 2000-01-01 (both timestamp types).
    Timestamp,
    Uuid,
}

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Years 1 to 9999, as the text path writes them in place (others are
/// left to the text path, which knows BC dates and infinities).
const TS_RANGE: std::ops::Range<i64> = -62_135_596_800_000_000..253_402_300_800_000_000;
const DATE_RANGE: std::ops::Range<i32> = -719_162..2_932_897;

/// The binary writer for a source column of type `ty` going into a target
/// column of type `target` (as `format_type` prints it), if there is one.
pub fn encoder(ty: &ColumnType, target: &str) -> Option<Bin> {
    let t = target.trim();
    let text_target = t == "text"
        || t == "character varying"
        || t.starts_with("character varying(")
        || t.starts_with("character(");
    let ts_target = t.starts_with("timestamp")
        && (t.ends_with("with time zone") || t.ends_with("without time zone"));
    Some(match ty {
        ColumnType::Boolean if t == "boolean" => Bin::Bool,
        ColumnType::Int | ColumnType::Year if t == "smallint" => Bin::Int2,
        ColumnType::Int | ColumnType::Year if t == "integer" => Bin::Int4,
        ColumnType::Int | ColumnType::Year | ColumnType::Long if t == "bigint" => Bin::Int8,
        ColumnType::Float if t == "real" => Bin::Float4,
        ColumnType::Double if t == "double precision" => Bin::Float8,
        ColumnType::Text | ColumnType::Enum(_) | ColumnType::Set(_) if text_target => Bin::Text,
        ColumnType::Json if t == "json" || text_target => Bin::Text,
        ColumnType::Json if t == "jsonb" => Bin::Jsonb,
        ColumnType::Bytes | ColumnType::Geometry if t == "bytea" => Bin::Bytea,
        ColumnType::Date if t == "date" => Bin::Date,
        ColumnType::Timestamp | ColumnType::TimestampTz if ts_target => Bin::Timestamp,
        ColumnType::Uuid if t == "uuid" => Bin::Uuid,
        _ => return None,
    })
}

/// Whether `d` has a binary form under `b` that means what its text
/// would.
pub fn fits(b: Bin, d: &Datum) -> bool {
    match (b, d) {
        (_, Datum::Null) => true,
        (Bin::Bool, Datum::Bool(_)) => true,
        (Bin::Int2, Datum::Int(v)) => i16::try_from(*v).is_ok(),
        (Bin::Int4, Datum::Int(_)) => true,
        (Bin::Int8, Datum::Int(_) | Datum::Long(_)) => true,
        (Bin::Float4, Datum::Float(_)) => true,
        (Bin::Float8, Datum::Double(_)) => true,
        (Bin::Text | Bin::Jsonb, Datum::Text(_)) => true,
        (Bin::Bytea, Datum::Bytes(_)) => true,
        (Bin::Date, Datum::Int(v)) => DATE_RANGE.contains(v),
        (Bin::Timestamp, Datum::Long(v)) => TS_RANGE.contains(v),
        (Bin::Uuid, Datum::Uuid(_)) => true,
        _ => false,
    }
}

/// The header of a binary COPY stream.
pub fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// The trailer of a binary COPY stream.
pub fn trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// A tuple's field count.
pub fn tuple(out: &mut Vec<u8>, fields: usize) {
    out.extend_from_slice(&(fields as i16).to_be_bytes());
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Appends `d` as one field; `d` must [`fits`] `b` (anything else is
/// written as NULL, never as wrong bytes).
pub fn put(out: &mut Vec<u8>, b: Bin, d: &Datum) {
    match (b, d) {
        (Bin::Bool, Datum::Bool(v)) => field(out, &[u8::from(*v)]),
        (Bin::Int2, Datum::Int(v)) => match i16::try_from(*v) {
            Ok(v) => field(out, &v.to_be_bytes()),
            Err(_) => null(out),
        },
        (Bin::Int4, Datum::Int(v)) => field(out, &v.to_be_bytes()),
        (Bin::Int8, Datum::Int(v)) => field(out, &i64::from(*v).to_be_bytes()),
        (Bin::Int8, Datum::Long(v)) => field(out, &v.to_be_bytes()),
        (Bin::Float4, Datum::Float(v)) => field(out, &v.to_be_bytes()),
        (Bin::Float8, Datum::Double(v)) => field(out, &v.to_be_bytes()),
        (Bin::Text, Datum::Text(s)) => field(out, s.as_bytes()),
        (Bin::Jsonb, Datum::Text(s)) => {
            out.extend_from_slice(&(s.len() as i32 + 1).to_be_bytes());
            out.push(1);
            out.extend_from_slice(s.as_bytes());
        }
        (Bin::Bytea, Datum::Bytes(v)) => field(out, v),
        (Bin::Date, Datum::Int(v)) => field(out, &(v - PG_EPOCH_DAYS).to_be_bytes()),
        (Bin::Timestamp, Datum::Long(v)) => field(out, &(v - PG_EPOCH_US).to_be_bytes()),
        (Bin::Uuid, Datum::Uuid(v)) => field(out, v),
        _ => null(out),
    }
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders_follow_source_and_target_types() {
        assert_eq!(encoder(&ColumnType::Long, "bigint"), Some(Bin::Int8));
        assert_eq!(encoder(&ColumnType::Int, "bigint"), Some(Bin::Int8));
        assert_eq!(encoder(&ColumnType::Long, "integer"), None);
        assert_eq!(
            encoder(&ColumnType::TimestampTz, "timestamp(3) with time zone"),
            Some(Bin::Timestamp)
        );
        assert_eq!(
            encoder(&ColumnType::Text, "character varying(20)"),
            Some(Bin::Text)
        );
        assert_eq!(encoder(&ColumnType::Text, "inet"), None);
        assert_eq!(encoder(&ColumnType::Json, "jsonb"), Some(Bin::Jsonb));
        assert_eq!(encoder(&ColumnType::Float, "double precision"), None);
        assert_eq!(
            encoder(
                &ColumnType::Decimal {
                    precision: 10,
                    scale: 2,
                    specials: false
                },
                "numeric(10,2)"
            ),
            None
        );
    }

    #[test]
    fn values_outside_the_plain_range_go_as_text() {
        assert!(!fits(Bin::Int2, &Datum::Int(40_000)));
        assert!(fits(Bin::Int2, &Datum::Int(-32_768)));
        assert!(!fits(Bin::Timestamp, &Datum::Long(i64::MAX)));
        assert!(!fits(Bin::Date, &Datum::Int(i32::MIN)));
        assert!(!fits(Bin::Int4, &Datum::Long(1)));
        assert!(fits(Bin::Text, &Datum::Null));
    }

    #[test]
    fn fields_are_postgres_binary() {
        let mut out = Vec::new();
        // 2000-01-01T00:00:01Z is one second after PostgreSQL's epoch.
        put(&mut out, Bin::Timestamp, &Datum::Long(946_684_801_000_000));
        assert_eq!(out, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]);
        out.clear();
        put(&mut out, Bin::Date, &Datum::Int(10_958));
        assert_eq!(out, [0, 0, 0, 4, 0, 0, 0, 1]);
        out.clear();
        put(&mut out, Bin::Jsonb, &Datum::Text("{}".into()));
        assert_eq!(out, [0, 0, 0, 3, 1, b'{', b'}']);
        out.clear();
        put(&mut out, Bin::Int8, &Datum::Null);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff]);
    }
}
