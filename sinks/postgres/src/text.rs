//! Values as PostgreSQL input text, column types as PostgreSQL DDL, and
//! the COPY text format. Pure functions, unit-tested.

use tributary_core::event::{Column, ColumnType, Datum};
use tributary_core::render;

/// `d` as text PostgreSQL parses into a column of the type [`ddl_type`]
/// gives `ty`; `None` for NULL (and for Unavailable, which callers
/// handle before).
pub fn value(ty: &ColumnType, d: &Datum) -> Option<String> {
    Some(match (ty, d) {
        (_, Datum::Null | Datum::Unavailable) => return None,
        (_, Datum::Float(v)) => float(f64::from(*v), v.to_string()),
        (_, Datum::Double(v)) => float(*v, v.to_string()),
        // A MySQL TIME: a signed duration, to an interval.
        (ColumnType::Duration, Datum::Long(us)) => format!("{us} microseconds"),
        (ColumnType::Bits(n), Datum::Bytes(b)) => bits(*n, b),
        (ColumnType::Array(elem), Datum::Array(items)) => {
            let mut s = String::from("{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                match value(elem, item) {
                    None => s.push_str("NULL"),
                    Some(v) => {
                        s.push('"');
                        for ch in v.chars() {
                            if ch == '"' || ch == '\\' {
                                s.push('\\');
                            }
                            s.push(ch);
                        }
                        s.push('"');
                    }
                }
            }
            s.push('}');
            s
        }
        (ty, d) => render::text(ty, d)?,
    })
}

fn float(v: f64, shown: String) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        shown
    }
}

/// A bit string of `n` bits from bytes least significant first, written
/// most significant bit first as PostgreSQL reads it.
fn bits(n: u32, b: &[u8]) -> String {
    (0..n)
        .rev()
        .map(|i| {
            let byte = b.get((i / 8) as usize).copied().unwrap_or(0);
            if byte >> (i % 8) & 1 == 1 { '1' } else { '0' }
        })
        .collect()
}

/// The PostgreSQL type a new target column gets for `c`: the value's
/// precision kept (numeric scale, microseconds, zones, bit widths).
pub fn ddl_type(c: &Column) -> String {
    ddl(&c.ty, &c.db_type)
}

fn ddl(ty: &ColumnType, db_type: &str) -> String {
    match ty {
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Int => "integer".into(),
        ColumnType::Long => "bigint".into(),
        ColumnType::UnsignedLong => "numeric(20,0)".into(),
        ColumnType::Float => "real".into(),
        ColumnType::Double => "double precision".into(),
        ColumnType::Decimal {
            precision, scale, ..
        } if *precision >= 1 && *precision <= 1000 => format!("numeric({precision},{scale})"),
        ColumnType::Decimal { .. } | ColumnType::VariableDecimal => "numeric".into(),
        ColumnType::Money => "numeric(19,2)".into(),
        ColumnType::Text => text_type(db_type),
        ColumnType::Json => if db_type == "json" { "json" } else { "jsonb" }.into(),
        ColumnType::Enum(_) | ColumnType::Set(_) => "text".into(),
        ColumnType::Bytes | ColumnType::Geometry => "bytea".into(),
        ColumnType::Bits(n) => format!("bit varying({n})"),
        ColumnType::Date => "date".into(),
        ColumnType::Time => "time".into(),
        ColumnType::Duration | ColumnType::Interval => "interval".into(),
        ColumnType::TimeTz => "time with time zone".into(),
        ColumnType::Timestamp => "timestamp".into(),
        ColumnType::TimestampTz => "timestamp with time zone".into(),
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Year => "smallint".into(),
        ColumnType::Point => "point".into(),
        ColumnType::Array(elem) => {
            let inner = db_type.strip_suffix("[]").unwrap_or("");
            format!("{}[]", ddl(elem, inner))
        }
    }
}

/// Text columns keep a declared length or a network type PostgreSQL
/// knows; anything else (MySQL's TEXT variants, PostgreSQL types the
/// target may not have) is `text`.
fn text_type(db_type: &str) -> String {
    let t = db_type.trim().to_ascii_lowercase();
    if matches!(
        t.as_str(),
        "inet" | "cidr" | "macaddr" | "macaddr8" | "xml" | "character varying" | "varchar"
    ) {
        return t;
    }
    for prefix in ["character varying(", "varchar(", "character(", "char("] {
        if let Some(rest) = t.strip_prefix(prefix)
            && let Some(n) = rest.strip_suffix(')')
            && n.parse::<u32>().is_ok_and(|n| n > 0)
        {
            return t;
        }
    }
    "text".into()
}

/// Appends `d` (of a column of type `ty`) as one COPY text-format field,
/// without an intermediate string for the common types.
pub fn copy_value(out: &mut Vec<u8>, ty: &ColumnType, d: &Datum) {
    use std::io::Write as _;
    match (ty, d) {
        (_, Datum::Null | Datum::Unavailable) => out.extend_from_slice(b"\\N"),
        (ColumnType::Int | ColumnType::Year, Datum::Int(v)) => {
            let _ = write!(out, "{v}");
        }
        (ColumnType::Long, Datum::Long(v)) => {
            let _ = write!(out, "{v}");
        }
        (_, Datum::Bool(b)) => out.push(if *b { b't' } else { b'f' }),
        (_, Datum::Double(v)) if v.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(*v).as_bytes());
        }
        (ColumnType::Timestamp | ColumnType::TimestampTz, Datum::Long(us))
            if (-62_135_596_800_000_000..253_402_300_800_000_000).contains(us) =>
        {
            // Years 1 to 9999: written in place.
            let days = us.div_euclid(86_400_000_000);
            let rest = us.rem_euclid(86_400_000_000);
            let (y, m, d) = render::civil_from_days(days);
            let secs = rest / 1_000_000;
            let frac = rest % 1_000_000;
            let _ = write!(
                out,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
            if frac != 0 {
                let _ = write!(out, ".{frac:06}");
            }
            if matches!(ty, ColumnType::TimestampTz) {
                out.push(b'Z');
            }
        }
        (_, Datum::Text(s)) => copy_field(out, Some(s)),
        (ty, d) => copy_field(out, value(ty, d).as_deref()),
    }
}

/// Appends `v` as one COPY text-format field.
pub fn copy_field(out: &mut Vec<u8>, v: Option<&str>) {
    let Some(v) = v else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &b in v.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b => out.push(b),
        }
    }
}

/// `name` as a quoted identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColumnType, db_type: &str) -> Column {
        Column {
            name: "c".into(),
            ty,
            nullable: true,
            may_be_unavailable: false,
            db_type: db_type.into(),
        }
    }

    #[test]
    fn values_parse_as_postgresql_reads_them() {
        let arr = ColumnType::Array(Box::new(ColumnType::Text));
        let items = Datum::Array(vec![
            Datum::Text("a,b".into()),
            Datum::Null,
            Datum::Text("q\"\\".into()),
        ]);
        assert_eq!(
            value(&arr, &items).as_deref(),
            Some(r#"{"a,b",NULL,"q\"\\"}"#)
        );
        assert_eq!(
            value(&ColumnType::Double, &Datum::Double(f64::NEG_INFINITY)).as_deref(),
            Some("-Infinity")
        );
        assert_eq!(
            value(&ColumnType::Float, &Datum::Float(f32::NAN)).as_deref(),
            Some("NaN")
        );
        assert_eq!(
            value(&ColumnType::Duration, &Datum::Long(-3_600_000_001)).as_deref(),
            Some("-3600000001 microseconds")
        );
        // bit(10) 1000000001: bytes least significant first.
        assert_eq!(
            value(&ColumnType::Bits(10), &Datum::Bytes(vec![0x01, 0x02])).as_deref(),
            Some("1000000001")
        );
        assert_eq!(value(&ColumnType::Text, &Datum::Unavailable), None);
    }

    #[test]
    fn target_types_keep_precision() {
        let dec = ColumnType::Decimal {
            precision: 12,
            scale: 3,
            specials: true,
        };
        assert_eq!(ddl_type(&col(dec, "numeric(12,3)")), "numeric(12,3)");
        assert_eq!(
            ddl_type(&col(ColumnType::Text, "character varying(20)")),
            "character varying(20)"
        );
        assert_eq!(ddl_type(&col(ColumnType::Text, "longtext")), "text");
        assert_eq!(ddl_type(&col(ColumnType::Text, "mood")), "text");
        assert_eq!(ddl_type(&col(ColumnType::Json, "json")), "json");
        assert_eq!(ddl_type(&col(ColumnType::Json, "JSON")), "jsonb");
        assert_eq!(
            ddl_type(&col(
                ColumnType::Array(Box::new(ColumnType::Text)),
                "character varying(5)[]"
            )),
            "character varying(5)[]"
        );
        assert_eq!(
            ddl_type(&col(ColumnType::TimestampTz, "timestamp with time zone")),
            "timestamp with time zone"
        );
    }

    #[test]
    fn copy_values_match_the_text_path() {
        let cases = [
            (ColumnType::Int, Datum::Int(-42)),
            (ColumnType::Long, Datum::Long(i64::MIN)),
            (ColumnType::Boolean, Datum::Bool(true)),
            (ColumnType::Text, Datum::Text("tab\there".into())),
            (ColumnType::Date, Datum::Int(19_782)),
            (ColumnType::TimestampTz, Datum::Long(1_709_208_000_000_001)),
            (ColumnType::Double, Datum::Double(f64::INFINITY)),
            (ColumnType::Timestamp, Datum::Long(-1)),
            (ColumnType::TimestampTz, Datum::Long(0)),
            (ColumnType::TimestampTz, Datum::Long(i64::MAX)),
            (
                ColumnType::TimestampTz,
                Datum::Long(-62_135_596_800_000_001),
            ),
            (ColumnType::Text, Datum::Null),
        ];
        for (ty, d) in cases {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            copy_value(&mut fast, &ty, &d);
            let v = value(&ty, &d);
            copy_field(&mut slow, v.as_deref());
            // PostgreSQL reads `t` and `true`, `1e300` and `1000...0`,
            // alike.
            if matches!(d, Datum::Bool(_)) {
                assert_eq!(fast, b"t");
                continue;
            }
            assert_eq!(fast, slow, "{ty:?} {d:?}");
        }
    }

    #[test]
    fn copy_fields_escape() {
        let mut out = Vec::new();
        copy_field(&mut out, Some("a\tb\\c\nd"));
        out.push(b'\t');
        copy_field(&mut out, None);
        assert_eq!(out, b"a\\tb\\\\c\\nd\t\\N");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
    }
}
