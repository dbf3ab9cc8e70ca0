//! Values as MySQL/MariaDB SQL literals (for a session in
//! `NO_BACKSLASH_ESCAPES` mode: a quote is doubled, nothing else is
//! special), column types as MySQL DDL. Pure functions, unit-tested.

use std::fmt::Write as _;

use tributary_core::event::{Column, ColumnType, Datum, NumericSpecial};
use tributary_core::render;

/// Appends `d` (of a column of type `ty`) as a SQL literal; an error
/// names what MySQL cannot hold.
pub fn literal(out: &mut String, ty: &ColumnType, d: &Datum) -> Result<(), String> {
    match (ty, d) {
        (_, Datum::Null | Datum::Unavailable) => out.push_str("NULL"),
        (_, Datum::Bool(b)) => out.push(if *b { '1' } else { '0' }),
        (ColumnType::Date, Datum::Int(v)) => quoted(out, &render::date(i64::from(*v))),
        (_, Datum::Int(v)) => {
            let _ = write!(out, "{v}");
        }
        (ColumnType::Time | ColumnType::Duration, Datum::Long(us)) => {
            let sign = if *us < 0 { "-" } else { "" };
            let m = us.unsigned_abs();
            let (s, f) = (m / 1_000_000, m % 1_000_000);
            let _ = write!(
                out,
                "'{sign}{}:{:02}:{:02}.{f:06}'",
                s / 3600,
                s / 60 % 60,
                s % 60
            );
        }
        (ColumnType::Timestamp | ColumnType::TimestampTz, Datum::Long(us)) => {
            if !(-62_135_596_800_000_000..253_402_300_800_000_000).contains(us) {
                return Err(format!(
                    "timestamp {} is outside MySQL's years 1 to 9999",
                    render::text(ty, d).unwrap_or_default()
                ));
            }
            let days = us.div_euclid(86_400_000_000);
            let rest = us.rem_euclid(86_400_000_000);
            let (y, m, dd) = render::civil_from_days(days);
            let s = rest / 1_000_000;
            let _ = write!(
                out,
                "'{y:04}-{m:02}-{dd:02} {:02}:{:02}:{:02}.{:06}'",
                s / 3600,
                s / 60 % 60,
                s % 60,
                rest % 1_000_000
            );
        }
        (_, Datum::Long(v)) => {
            let _ = write!(out, "{v}");
        }
        (_, Datum::Float(v)) => finite(out, f64::from(*v))?,
        (_, Datum::Double(v)) => finite(out, *v)?,
        (_, Datum::Decimal { .. }) => {
            out.push_str(&render::text(ty, d).unwrap_or_default());
        }
        (_, Datum::NumericSpecial(s)) => {
            let what = match s {
                NumericSpecial::NaN => "NaN",
                NumericSpecial::PositiveInfinity => "Infinity",
                NumericSpecial::NegativeInfinity => "-Infinity",
            };
            return Err(format!("{what}: MySQL's DECIMAL cannot hold it"));
        }
        // A MySQL zero date ("0000-00-00 00:00:00") goes as it is; a
        // PostgreSQL timestamp past year 9999 cannot.
        (ColumnType::Timestamp | ColumnType::TimestampTz, Datum::Text(s))
            if s.as_bytes().get(4) == Some(&b'-') =>
        {
            quoted(out, s);
        }
        (ColumnType::Timestamp | ColumnType::TimestampTz, Datum::Text(s)) => {
            return Err(format!("timestamp {s} is outside MySQL's years 1 to 9999"));
        }
        (ColumnType::Array(_), Datum::Text(s)) => {
            // An array only its source's text can say (several
            // dimensions, other bounds): that text, as a JSON string.
            let mut json = String::new();
            render::json_string(&mut json, s);
            quoted(out, &json);
        }
        (ColumnType::Geometry, Datum::Bytes(b)) => {
            let (srid, wkb) = tributary_core::convert::wkb_and_srid(b)
                .ok_or_else(|| format!("{} bytes that are not WKB", b.len()))?;
            out.push_str("ST_GeomFromWKB(X'");
            for byte in &wkb {
                let _ = write!(out, "{byte:02x}");
            }
            let _ = write!(out, "', {srid})");
        }
        (ColumnType::Bits(n), Datum::Bytes(b)) if *n <= 64 => {
            out.push_str("b'");
            for i in (0..*n).rev() {
                let byte = b.get((i / 8) as usize).copied().unwrap_or(0);
                out.push(if byte >> (i % 8) & 1 == 1 { '1' } else { '0' });
            }
            out.push('\'');
        }
        (_, Datum::Bytes(b)) => {
            if b.is_empty() {
                out.push_str("''");
            } else {
                out.push_str("X'");
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
                out.push('\'');
            }
        }
        (ColumnType::Array(elem), Datum::Array(items)) => {
            // Arrays become JSON arrays of their values' texts.
            let mut json = String::from("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                match render::text(elem, item) {
                    None => json.push_str("null"),
                    Some(t) => render::json_string(&mut json, &t),
                }
            }
            json.push(']');
            quoted(out, &json);
        }
        (ty, d) => quoted(out, &render::text(ty, d).unwrap_or_default()),
    }
    Ok(())
}

fn finite(out: &mut String, v: f64) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!(
            "{v}: MySQL's FLOAT and DOUBLE hold finite numbers only"
        ));
    }
    out.push_str(ryu::Buffer::new().format_finite(v));
    Ok(())
}

/// Whether values of `ty` can go through `LOAD DATA` as plain text
/// ([`load_field`]); bytes, bits, geometry and arrays take the INSERT
/// path.
pub fn loadable(ty: &ColumnType) -> bool {
    !matches!(
        ty,
        ColumnType::Bytes
            | ColumnType::Bits(_)
            | ColumnType::Geometry
            | ColumnType::Point
            | ColumnType::Array(_)
            | ColumnType::Interval
    )
}

/// Appends `d` (of a [`loadable`] type) as one `LOAD DATA` field with
/// backslash escapes (`\N` for NULL): the text its SQL literal quotes.
/// `scratch` is reused between calls.
pub fn load_field(
    out: &mut Vec<u8>,
    scratch: &mut String,
    ty: &ColumnType,
    d: &Datum,
) -> Result<(), String> {
    match d {
        Datum::Null | Datum::Unavailable => out.extend_from_slice(b"\\N"),
        Datum::Text(s) if !matches!(ty, ColumnType::Timestamp | ColumnType::TimestampTz) => {
            load_text(out, s)
        }
        _ => {
            scratch.clear();
            literal(scratch, ty, d)?;
            match scratch
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
            {
                Some(inner) => load_text(out, &inner.replace("''", "'")),
                None if scratch == "NULL" => out.extend_from_slice(b"\\N"),
                None => out.extend_from_slice(scratch.as_bytes()),
            }
        }
    }
    Ok(())
}

fn load_text(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            b => out.push(b),
        }
    }
}

/// `s` as a quoted string literal.
pub fn quoted(out: &mut String, s: &str) {
    out.push('\'');
    for ch in s.chars() {
        if ch == '\'' {
            out.push('\'');
        }
        out.push(ch);
    }
    out.push('\'');
}

/// `name` as a quoted identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The MySQL type a new target column gets for `c` (`key`: part of the
/// primary key, which MySQL indexes only with a bounded length).
pub fn ddl_type(c: &Column, key: bool) -> String {
    let db = c.db_type.trim().to_ascii_lowercase();
    match &c.ty {
        ColumnType::Boolean => "BOOLEAN".into(),
        ColumnType::Int => "INT".into(),
        ColumnType::Long => "BIGINT".into(),
        ColumnType::UnsignedLong => "BIGINT UNSIGNED".into(),
        ColumnType::Float => "FLOAT".into(),
        ColumnType::Double => "DOUBLE".into(),
        ColumnType::Decimal {
            precision, scale, ..
        } if *precision >= 1 && *precision <= 65 && *scale <= 30 => {
            format!("DECIMAL({precision},{scale})")
        }
        ColumnType::Decimal { .. } | ColumnType::VariableDecimal => "DECIMAL(65,30)".into(),
        ColumnType::Money => "DECIMAL(19,2)".into(),
        ColumnType::Text => {
            for prefix in ["character varying(", "varchar("] {
                if let Some(n) = db
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| (1..=16_383).contains(n))
                {
                    return format!("VARCHAR({n})");
                }
            }
            for prefix in ["character(", "char("] {
                if let Some(n) = db
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| (1..=255).contains(n))
                {
                    return format!("CHAR({n})");
                }
            }
            if key { "VARCHAR(255)" } else { "LONGTEXT" }.into()
        }
        ColumnType::Json | ColumnType::Array(_) if !key => "JSON".into(),
        ColumnType::Json
        | ColumnType::Array(_)
        | ColumnType::Enum(_)
        | ColumnType::Set(_)
        | ColumnType::TimeTz
        | ColumnType::Interval
        | ColumnType::Point => {
            if key {
                "VARCHAR(255)".into()
            } else {
                "TEXT".into()
            }
        }
        ColumnType::Bytes | ColumnType::Geometry => {
            if key { "VARBINARY(255)" } else { "LONGBLOB" }.into()
        }
        ColumnType::Bits(n) if *n <= 64 => format!("BIT({n})"),
        ColumnType::Bits(n) => format!("VARBINARY({})", n.div_ceil(8)),
        ColumnType::Date => "DATE".into(),
        ColumnType::Time | ColumnType::Duration => "TIME(6)".into(),
        ColumnType::Timestamp | ColumnType::TimestampTz => "DATETIME(6)".into(),
        ColumnType::Uuid => "CHAR(36)".into(),
        ColumnType::Year => "SMALLINT".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(ty: ColumnType, d: Datum) -> Result<String, String> {
        let mut s = String::new();
        literal(&mut s, &ty, &d)?;
        Ok(s)
    }

    fn field(ty: ColumnType, d: Datum) -> Result<String, String> {
        let (mut out, mut scratch) = (Vec::new(), String::new());
        load_field(&mut out, &mut scratch, &ty, &d)?;
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    #[test]
    fn load_data_fields_carry_the_literals_text() {
        assert_eq!(
            field(ColumnType::Text, Datum::Text("it's\ta\\b\nc\0".into())),
            Ok("it's\\ta\\\\b\\nc\\0".into())
        );
        assert_eq!(
            field(ColumnType::Text, Datum::Text("NULL".into())),
            Ok("NULL".into()),
            "the text NULL is not a NULL"
        );
        assert_eq!(field(ColumnType::Long, Datum::Null), Ok("\\N".into()));
        assert_eq!(field(ColumnType::Long, Datum::Long(-42)), Ok("-42".into()));
        assert_eq!(
            field(ColumnType::Boolean, Datum::Bool(true)),
            Ok("1".into())
        );
        assert_eq!(
            field(ColumnType::TimestampTz, Datum::Long(1_709_208_000_000_001)),
            Ok("2024-02-29 12:00:00.000001".into())
        );
        assert_eq!(
            field(ColumnType::Json, Datum::Text("{\"a\": \"x'y\"}".into())),
            Ok("{\"a\": \"x'y\"}".into())
        );
        assert!(field(ColumnType::Double, Datum::Double(f64::NAN)).is_err());
        assert!(!loadable(&ColumnType::Bytes));
        assert!(loadable(&ColumnType::Decimal {
            precision: 10,
            scale: 2,
            specials: false
        }));
    }

    #[test]
    fn literals_mysql_reads() {
        assert_eq!(
            lit(ColumnType::Text, Datum::Text("it's".into())),
            Ok("'it''s'".into())
        );
        assert_eq!(
            lit(ColumnType::TimestampTz, Datum::Long(1_709_208_000_000_001)),
            Ok("'2024-02-29 12:00:00.000001'".into())
        );
        assert_eq!(
            lit(ColumnType::Duration, Datum::Long(-(90_000_000_000 + 5))),
            Ok("'-25:00:00.000005'".into())
        );
        assert_eq!(
            lit(ColumnType::Bytes, Datum::Bytes(vec![0, 255])),
            Ok("X'00ff'".into())
        );
        assert_eq!(
            lit(ColumnType::Bits(10), Datum::Bytes(vec![0x01, 0x02])),
            Ok("b'1000000001'".into())
        );
        assert_eq!(
            lit(
                ColumnType::Array(Box::new(ColumnType::Text)),
                Datum::Array(vec![Datum::Text("a\"b".into()), Datum::Null])
            ),
            Ok(r#"'["a\"b",null]'"#.into())
        );
        assert_eq!(
            lit(
                ColumnType::Array(Box::new(ColumnType::Int)),
                Datum::Text("{{1,2},{3,4}}".into())
            ),
            Ok(r#"'"{{1,2},{3,4}}"'"#.into())
        );
        // POINT(0 0) with SRID 4326 (EWKB): WKB and the SRID.
        let mut ewkb = vec![1, 1, 0, 0, 0x20, 0xe6, 0x10, 0, 0];
        ewkb.extend_from_slice(&[0; 16]);
        assert_eq!(
            lit(ColumnType::Geometry, Datum::Bytes(ewkb)),
            Ok(format!(
                "ST_GeomFromWKB(X'0101000000{}', 4326)",
                "0".repeat(32)
            ))
        );
        assert!(lit(ColumnType::Geometry, Datum::Bytes(vec![9])).is_err());
        assert_eq!(
            lit(
                ColumnType::Timestamp,
                Datum::Text("0000-00-00 00:00:00".into())
            ),
            Ok("'0000-00-00 00:00:00'".into())
        );
        let far = Datum::Text("294276-12-31 23:59:59.999999".into());
        assert!(lit(ColumnType::Timestamp, far.clone()).is_err());
        assert!(field(ColumnType::Timestamp, far).is_err());
        assert!(lit(ColumnType::Double, Datum::Double(f64::NAN)).is_err());
        assert!(
            lit(
                ColumnType::VariableDecimal,
                Datum::NumericSpecial(NumericSpecial::NaN)
            )
            .is_err()
        );
        assert_eq!(ident("we`ird"), "`we``ird`");
    }
}
