//! Log records as JSON lines: what `consume` prints and `produce` reads.
//!
//! A record is `{"topic", "partition", "offset", "timestamp", "key",
//! "value", "headers"}`: the key an object of the key columns, the value
//! Debezium's envelope (`before`, `after`, `source`, `op`, `ts_ms`,
//! `transaction`), null for a tombstone. Column values keep their meaning
//! and their precision:
//!
//! | column type | JSON |
//! |---|---|
//! | boolean, integers, float, double | a JSON number or boolean (`"NaN"`, `"Infinity"`, `"-Infinity"` for those floats) |
//! | decimal, numeric, money, BIGINT UNSIGNED | a string, exact: `"1234.560"`, `"NaN"` |
//! | date | `"2024-02-29"` (`"0044-03-15 BC"`) |
//! | time | `"12:00:00.000001"`; MySQL TIME (a duration): microseconds |
//! | timestamp | `"2024-02-29T12:00:00.000001"`; with time zone, in UTC with `Z` |
//! | interval | `"P14M3DT14706.5S"` (months, days, seconds kept apart) |
//! | bytes, bit strings, geometry (WKB) | `"\\x00ff"` |
//! | uuid, text, json, enum, set, timetz | a string |
//! | point | `{"x": 1.5, "y": 2}` |
//! | array | a JSON array of its elements |
//! | unchanged TOAST (not data) | `{"unavailable": true}` |
//!
//! Objects keep the table's column order (not sorted), so a row reads as
//! the table does.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Number, Value as Json};
use tributary_core::convert::{days_from_civil, digits_to_twos};
use tributary_core::render;
use tributary_core::{
    ChangeEvent, ColumnType, Datum, NumericSpecial, Op, Position, SnapshotFlag, SourceInfo,
    TableSchema, TransactionInfo,
};
use tributary_schemas::EventSchema;

/// A JSON value whose objects keep the order they were built in.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// A scalar or a value kept as serde_json made it.
    Leaf(Json),
    /// An object, in order.
    Obj(Vec<(String, Out)>),
    /// An array.
    Arr(Vec<Out>),
}

impl serde::Serialize for Out {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Leaf(j) => j.serialize(s),
            Out::Obj(fields) => s.collect_map(fields.iter().map(|(k, v)| (k, v))),
            Out::Arr(items) => s.collect_seq(items),
        }
    }
}

impl Out {
    fn obj(fields: Vec<(&str, Out)>) -> Self {
        Out::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    fn str(s: impl Into<String>) -> Self {
        Out::Leaf(Json::String(s.into()))
    }

    fn num(n: impl Into<Number>) -> Self {
        Out::Leaf(Json::Number(n.into()))
    }

    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Out) -> Self {
        v.map_or(Out::Leaf(Json::Null), f)
    }

    /// One line of JSON.
    pub fn to_line(&self) -> String {
        // Serialising JSON values to a string cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn float(v: f64) -> Out {
    match Number::from_f64(v) {
        Some(n) => Out::Leaf(Json::Number(n)),
        None if v.is_nan() => Out::str("NaN"),
        None if v > 0.0 => Out::str("Infinity"),
        None => Out::str("-Infinity"),
    }
}

/// A column value as JSON (see the module table).
pub fn datum_json(ty: &ColumnType, d: &Datum) -> Out {
    match d {
        Datum::Null => Out::Leaf(Json::Null),
        Datum::Unavailable => Out::obj(vec![("unavailable", Out::Leaf(Json::Bool(true)))]),
        Datum::Bool(b) => Out::Leaf(Json::Bool(*b)),
        Datum::Int(v) if *ty != ColumnType::Date => Out::num(*v),
        Datum::Long(v)
            if !matches!(
                ty,
                ColumnType::Time | ColumnType::Timestamp | ColumnType::TimestampTz
            ) =>
        {
            Out::num(*v)
        }
        Datum::Float(v) => float(f64::from(*v)),
        Datum::Double(v) => float(*v),
        Datum::Point { x, y } => Out::obj(vec![("x", float(*x)), ("y", float(*y))]),
        Datum::Array(items) => {
            let elem = match ty {
                ColumnType::Array(e) => e.as_ref(),
                other => other,
            };
            Out::Arr(items.iter().map(|i| datum_json(elem, i)).collect())
        }
        other => Out::str(render::text(ty, other).unwrap_or_default()),
    }
}

fn row_json(table: &TableSchema, row: Option<&[Datum]>) -> Out {
    let Some(row) = row else {
        return Out::Leaf(Json::Null);
    };
    Out::Obj(
        table
            .columns
            .iter()
            .zip(row)
            .map(|(c, d)| (c.name.clone(), datum_json(&c.ty, d)))
            .collect(),
    )
}

/// The key columns' values (in key order) as an object.
pub fn key_json(table: &TableSchema, key: &[Datum]) -> Out {
    Out::Obj(
        table
            .key
            .iter()
            .zip(key)
            .map(|(&i, d)| {
                let c = &table.columns[i];
                (c.name.clone(), datum_json(&c.ty, d))
            })
            .collect(),
    )
}

fn source_json(s: &SourceInfo) -> Out {
    let mut f = vec![
        ("version", Out::str(&*s.version)),
        ("connector", Out::str(&*s.connector)),
        ("name", Out::str(&*s.name)),
        ("ts_ms", Out::num(s.ts_ms)),
        ("snapshot", Out::str(s.snapshot.as_str())),
        ("db", Out::str(&*s.db)),
    ];
    match &s.position {
        Position::Postgres { lsn, tx_id } => {
            f.push(("schema", Out::str(s.schema.as_deref().unwrap_or_default())));
            f.push(("table", Out::str(&*s.table)));
            f.push(("txId", Out::opt(*tx_id, Out::num)));
            f.push(("lsn", Out::num(*lsn)));
        }
        Position::Mysql {
            file,
            pos,
            gtid,
            server_id,
            row,
        } => {
            f.push(("table", Out::str(&*s.table)));
            f.push(("server_id", Out::num(*server_id)));
            f.push(("gtid", Out::opt(gtid.as_deref(), Out::str)));
            f.push(("file", Out::str(file)));
            f.push(("pos", Out::num(*pos)));
            f.push(("row", Out::num(*row)));
        }
    }
    Out::obj(f)
}

/// The envelope of `ev` (of `table`) as JSON.
pub fn event_json(table: &TableSchema, ev: &ChangeEvent) -> Out {
    Out::obj(vec![
        ("before", row_json(table, ev.before.as_deref())),
        ("after", row_json(table, ev.after.as_deref())),
        ("source", source_json(&ev.source)),
        ("op", Out::str(ev.op.code())),
        ("ts_ms", Out::num(ev.ts_ms)),
        (
            "transaction",
            Out::opt(ev.transaction.as_ref(), |t| {
                Out::obj(vec![
                    ("id", Out::str(&*t.id)),
                    ("total_order", Out::num(t.total_order)),
                    ("data_collection_order", Out::num(t.data_collection_order)),
                ])
            }),
        ),
    ])
}

/// One record as `consume` prints it: `{"topic", "partition", "offset",
/// "timestamp", "key", "value"}` and `"headers"` when there are any;
/// `key` and `value` are JSON text already (compact, as [`Out::to_line`]
/// writes it), spliced in as they are so that their objects keep their
/// column order.
pub fn record_line(
    topic: &str,
    partition: u32,
    offset: u64,
    timestamp: i64,
    key: &str,
    value: &str,
    headers: &[(&str, Option<&[u8]>)],
) -> String {
    let mut line = format!(
        "{{\"topic\":{},\"partition\":{partition},\"offset\":{offset},\"timestamp\":{timestamp},\"key\":{key},\"value\":{value}",
        Out::str(topic).to_line()
    );
    if !headers.is_empty() {
        line.push_str(",\"headers\":");
        line.push_str(&headers_json(headers.iter().copied()).to_line());
    }
    line.push('}');
    line
}

/// A line on stdout (a record, or another command's line); a closed
/// stdout (`| head`) ends the output quietly instead of panicking.
pub fn stdout_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Bytes as base64 (standard alphabet, padded).
pub fn base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Record headers: `{"name", "value"}` with the value as text when it is
/// UTF-8 (null when absent), else `{"name", "base64"}`.
pub fn headers_json<'a>(headers: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>) -> Out {
    Out::Arr(
        headers
            .map(|(k, v)| {
                let value = match v {
                    None => ("value", Out::Leaf(Json::Null)),
                    Some(v) => match std::str::from_utf8(v) {
                        Ok(s) => ("value", Out::str(s)),
                        Err(_) => ("base64", Out::str(base64(v))),
                    },
                };
                Out::obj(vec![("name", Out::str(k)), value])
            })
            .collect(),
    )
}

// ---- JSON to change events (`produce`) ----

/// Why a JSON line is not a record of the topic: the field (a path such
/// as `value.after.price`; empty for the line as a whole) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Where.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn expected(field: &str, what: &str, v: &Json) -> Invalid {
    let shown = v.to_string();
    let shown = if shown.chars().count() > 40 {
        format!("{}...", shown.chars().take(40).collect::<String>())
    } else {
        shown
    };
    invalid(field, format!("expected {what}, found {} {shown}", kind(v)))
}

/// Decimal text (`-12.50`, `3`, `1e3` is refused) to digits, sign and the
/// digits after the point.
fn decimal_parts(s: &str) -> Option<(String, bool, u32)> {
    let (negative, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    Some((
        digits.to_string(),
        negative,
        u32::try_from(frac.len()).ok()?,
    ))
}

fn special(s: &str) -> Option<NumericSpecial> {
    Some(match s {
        "NaN" => NumericSpecial::NaN,
        "Infinity" => NumericSpecial::PositiveInfinity,
        "-Infinity" => NumericSpecial::NegativeInfinity,
        _ => return None,
    })
}

/// A decimal of exactly `scale` digits after the point (fewer are padded
/// with zeros; more are refused, never rounded), at most `precision`
/// digits in all; `None` scale: as written.
fn decimal(
    field: &str,
    v: &Json,
    scale: Option<u32>,
    precision: Option<u32>,
) -> Result<Datum, Invalid> {
    let text = match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        other => return Err(expected(field, "a decimal as a string", other)),
    };
    if let Some(s) = special(&text) {
        return Ok(Datum::NumericSpecial(s));
    }
    let (mut digits, negative, got) =
        decimal_parts(&text).ok_or_else(|| expected(field, "a decimal such as \"-12.50\"", v))?;
    let scale = match scale {
        None => got,
        Some(want) if got > want => {
            return Err(invalid(
                field,
                format!("{text} has {got} digits after the point, the column keeps {want}"),
            ));
        }
        Some(want) => {
            if digits != "0" {
                digits.push_str(&"0".repeat((want - got) as usize));
            }
            want
        }
    };
    if let Some(p) = precision
        && digits.len() > p as usize
        && digits != "0"
    {
        return Err(invalid(
            field,
            format!("{text} has more than the column's {p} digits"),
        ));
    }
    Ok(Datum::Decimal {
        unscaled: digits_to_twos(&digits, negative && digits != "0"),
        scale,
    })
}

fn fixed(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD`, optionally followed by ` BC`: days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i64> {
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(s) => (s, true),
        None => (s, false),
    };
    let mut p = s.splitn(3, '-');
    let y = i64::from(fixed(p.next()?, 4)?);
    let m = fixed(p.next()?, 2)?;
    let d = fixed(p.next()?, 2)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if bc { 1 - y } else { y };
    let days = days_from_civil(y, m, d);
    // 2023-02-30 is no date: it would come back as another one.
    (render::civil_from_days(days) == (y, m, d)).then_some(days)
}

/// `HH:MM:SS[.ffffff]`: microseconds since midnight (24:00:00 allowed).
pub fn parse_time(s: &str) -> Option<i64> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut p = hms.splitn(3, ':');
    let h = i64::from(fixed(p.next()?, 2)?);
    let m = i64::from(fixed(p.next()?, 2)?);
    let sec = i64::from(fixed(p.next()?, 2)?);
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) || m > 59 || sec > 59 {
        return None;
    }
    let micros = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse::<i64>().ok()?
    };
    let total = ((h * 60 + m) * 60 + sec) * 1_000_000 + micros;
    (total <= 86_400_000_000).then_some(total)
}

/// A timestamp: `YYYY-MM-DD[T ]HH:MM:SS[.ffffff]`, then a zone (`Z`,
/// `+HH:MM`, `-HH:MM`) unless `zone` is false, then optionally ` BC`; or
/// `infinity`/`-infinity`. Microseconds since the epoch (in UTC when the
/// text has a zone).
pub fn parse_timestamp(s: &str, zone: bool) -> Option<i64> {
    match s {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(s) => (s, true),
        None => (s, false),
    };
    let date = s.get(..10)?;
    let sep = s.get(10..11)?;
    if sep != "T" && sep != "t" && sep != " " {
        return None;
    }
    let rest = s.get(11..)?;
    let (time, offset_minutes) = if zone {
        if let Some(t) = rest.strip_suffix(['Z', 'z']) {
            (t, 0)
        } else {
            let at = rest.rfind(['+', '-'])?;
            let (t, z) = rest.split_at(at);
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (zh, zm) = z.get(1..)?.split_once(':')?;
            (
                t,
                sign * (i64::from(fixed(zh, 2)?) * 60 + i64::from(fixed(zm, 2)?)),
            )
        }
    } else {
        (rest, 0)
    };
    let days = parse_date(&if bc {
        format!("{date} BC")
    } else {
        date.to_string()
    })?;
    let micros = days
        .checked_mul(86_400_000_000)?
        .checked_add(parse_time(time)?)?;
    micros.checked_sub(offset_minutes * 60_000_000)
}

/// `P{months}M{days}DT{seconds}S`, as [`render::text`] writes intervals.
fn parse_interval(s: &str) -> Option<Datum> {
    let rest = s.strip_prefix('P')?;
    let (months, rest) = rest.split_once('M')?;
    let (days, rest) = rest.split_once("DT")?;
    let secs = rest.strip_suffix('S')?;
    let (digits, negative, scale) = decimal_parts(secs)?;
    if scale > 6 {
        return None;
    }
    let magnitude: i64 = format!("{digits}{}", "0".repeat(6 - scale as usize))
        .parse()
        .ok()?;
    Some(Datum::Interval {
        months: months.parse().ok()?,
        days: days.parse().ok()?,
        micros: if negative { -magnitude } else { magnitude },
    })
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let h = s.strip_prefix("\\x")?;
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex = groups.concat();
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn float_of(field: &str, v: &Json) -> Result<f64, Invalid> {
    match v {
        Json::Number(n) => n.as_f64().ok_or_else(|| expected(field, "a number", v)),
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(expected(
                field,
                "a number (or \"NaN\", \"Infinity\", \"-Infinity\")",
                v,
            )),
        },
        other => Err(expected(field, "a number", other)),
    }
}

fn int_of(field: &str, v: &Json) -> Result<i64, Invalid> {
    v.as_i64().ok_or_else(|| expected(field, "an integer", v))
}

/// A column value from JSON (see the module table); whether it fits the
/// column (NULL allowed, unavailable allowed) is the encoder's check.
pub fn datum_from(field: &str, ty: &ColumnType, v: &Json) -> Result<Datum, Invalid> {
    if v.is_null() {
        return Ok(Datum::Null);
    }
    if let Some(o) = v.as_object()
        && o.len() == 1
        && o.get("unavailable") == Some(&Json::Bool(true))
    {
        return Ok(Datum::Unavailable);
    }
    let text = |what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| expected(field, what, v))
    };
    let parsed = |what: &str, ok: Option<Datum>| ok.ok_or_else(|| expected(field, what, v));
    Ok(match ty {
        ColumnType::Boolean => Datum::Bool(
            v.as_bool()
                .ok_or_else(|| expected(field, "true or false", v))?,
        ),
        ColumnType::Int | ColumnType::Year => Datum::Int(
            i32::try_from(int_of(field, v)?)
                .map_err(|_| invalid(field, format!("{v} does not fit a 32-bit integer")))?,
        ),
        ColumnType::Long | ColumnType::Duration => Datum::Long(int_of(field, v)?),
        ColumnType::Float => Datum::Float(float_of(field, v)? as f32),
        ColumnType::Double => Datum::Double(float_of(field, v)?),
        ColumnType::Decimal {
            precision, scale, ..
        } => decimal(field, v, Some(*scale), Some(*precision))?,
        ColumnType::VariableDecimal => decimal(field, v, None, None)?,
        ColumnType::Money => decimal(field, v, Some(2), Some(19))?,
        ColumnType::UnsignedLong => decimal(field, v, Some(0), Some(20))?,
        ColumnType::Json => match v {
            Json::String(s) => Datum::Text(s.clone()),
            // A document given as JSON is stored as its text.
            other => Datum::Text(other.to_string()),
        },
        ColumnType::Text | ColumnType::Enum(_) | ColumnType::Set(_) | ColumnType::TimeTz => {
            Datum::Text(text("a string")?)
        }
        ColumnType::Bytes | ColumnType::Bits(_) | ColumnType::Geometry => {
            let hex = text("bytes as \"\\\\x\" and hex digits")?;
            parsed(
                "bytes as \"\\\\x\" and hex digits",
                parse_hex(&hex).map(Datum::Bytes),
            )?
        }
        ColumnType::Date => match v {
            Json::Number(_) => Datum::Int(
                i32::try_from(int_of(field, v)?)
                    .map_err(|_| invalid(field, format!("{v} days is out of range")))?,
            ),
            _ => {
                let s = text("a date such as \"2024-02-29\"")?;
                let days = parse_date(&s)
                    .and_then(|d| i32::try_from(d).ok())
                    .map(Datum::Int);
                parsed("a date such as \"2024-02-29\"", days)?
            }
        },
        ColumnType::Time => match v {
            Json::Number(_) => Datum::Long(int_of(field, v)?),
            _ => {
                let s = text("a time such as \"12:00:00.5\"")?;
                parsed(
                    "a time such as \"12:00:00.5\"",
                    parse_time(&s).map(Datum::Long),
                )?
            }
        },
        ColumnType::Timestamp | ColumnType::TimestampTz => match v {
            Json::Number(_) => Datum::Long(int_of(field, v)?),
            _ => {
                let zone = *ty == ColumnType::TimestampTz;
                let what = if zone {
                    "a timestamp with a zone such as \"2024-02-29T12:00:00Z\""
                } else {
                    "a timestamp such as \"2024-02-29T12:00:00\""
                };
                let s = text(what)?;
                parsed(what, parse_timestamp(&s, zone).map(Datum::Long))?
            }
        },
        ColumnType::Interval => {
            let what = "an interval such as \"P1M2DT3.5S\"";
            let s = text(what)?;
            parsed(what, parse_interval(&s))?
        }
        ColumnType::Uuid => {
            let what = "a UUID such as \"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"";
            let s = text(what)?;
            parsed(what, parse_uuid(&s).map(Datum::Uuid))?
        }
        ColumnType::Point => {
            let o = v
                .as_object()
                .ok_or_else(|| expected(field, "a point {\"x\": .., \"y\": ..}", v))?;
            if let Some(k) = o.keys().find(|k| *k != "x" && *k != "y") {
                return Err(invalid(
                    &format!("{field}.{k}"),
                    "unknown field (a point has x and y)",
                ));
            }
            let coord = |k: &str| {
                let f = format!("{field}.{k}");
                o.get(k)
                    .ok_or_else(|| invalid(&f, "missing"))
                    .and_then(|c| float_of(&f, c))
            };
            Datum::Point {
                x: coord("x")?,
                y: coord("y")?,
            }
        }
        ColumnType::Array(elem) => {
            let items = v.as_array().ok_or_else(|| expected(field, "an array", v))?;
            Datum::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| datum_from(&format!("{field}[{i}]"), elem, item))
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

fn object<'a>(field: &str, v: &'a Json) -> Result<&'a Map<String, Json>, Invalid> {
    v.as_object().ok_or_else(|| expected(field, "an object", v))
}

fn only(field: &str, o: &Map<String, Json>, allowed: &[&str]) -> Result<(), Invalid> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            &format!("{field}.{k}"),
            format!("unknown field (expected one of {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A full row (every column, by name) from JSON.
fn row_from(field: &str, table: &TableSchema, v: &Json) -> Result<Option<Vec<Datum>>, Invalid> {
    if v.is_null() {
        return Ok(None);
    }
    let o = object(field, v)?;
    if let Some(k) = o
        .keys()
        .find(|k| !table.columns.iter().any(|c| &c.name == *k))
    {
        return Err(invalid(
            &format!("{field}.{k}"),
            format!("table {} has no such column", table.qualified_name()),
        ));
    }
    table
        .columns
        .iter()
        .map(|c| {
            let f = format!("{field}.{}", c.name);
            let v = o.get(&c.name).ok_or_else(|| {
                invalid(&f, "missing (every column needs a value; null for NULL)")
            })?;
            datum_from(&f, &c.ty, v)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The key columns' values (in key order) from a key object.
pub fn key_from(table: &TableSchema, v: &Json) -> Result<Vec<Datum>, Invalid> {
    let o = object("key", v)?;
    let names: Vec<&str> = table
        .key
        .iter()
        .map(|&i| table.columns[i].name.as_str())
        .collect();
    only("key", o, &names)?;
    table
        .key
        .iter()
        .map(|&i| {
            let c = &table.columns[i];
            let f = format!("key.{}", c.name);
            let v = o.get(&c.name).ok_or_else(|| invalid(&f, "missing"))?;
            datum_from(&f, &c.ty, v)
        })
        .collect()
}

/// What the envelope's `source` says when a line leaves it out (or some
/// of its fields): the table's own names, a zero position.
pub struct SourceDefaults<'a> {
    /// `postgresql` or `mysql`.
    pub connector: &'a str,
    /// The source's name, as in the registered schema.
    pub name: &'a str,
    /// Now, ms.
    pub now_ms: i64,
}

fn source_from(
    table: &TableSchema,
    d: &SourceDefaults<'_>,
    v: Option<&Json>,
) -> Result<SourceInfo, Invalid> {
    let empty = Map::new();
    let o = match v {
        None | Some(Json::Null) => &empty,
        Some(v) => object("value.source", v)?,
    };
    let pg = d.connector == "postgresql";
    let allowed: &[&str] = if pg {
        &[
            "version",
            "connector",
            "name",
            "ts_ms",
            "snapshot",
            "db",
            "schema",
            "table",
            "txId",
            "lsn",
        ]
    } else {
        &[
            "version",
            "connector",
            "name",
            "ts_ms",
            "snapshot",
            "db",
            "table",
            "server_id",
            "gtid",
            "file",
            "pos",
            "row",
        ]
    };
    only("value.source", o, allowed)?;
    let f = |k: &str| format!("value.source.{k}");
    let string = |k: &str, default: &str| -> Result<String, Invalid> {
        match o.get(k) {
            None => Ok(default.to_string()),
            Some(Json::String(s)) => Ok(s.clone()),
            Some(other) => Err(expected(&f(k), "a string", other)),
        }
    };
    let long = |k: &str, default: i64| -> Result<i64, Invalid> {
        o.get(k).map_or(Ok(default), |v| int_of(&f(k), v))
    };
    let connector = string("connector", d.connector)?;
    if connector != d.connector {
        return Err(invalid(
            &f("connector"),
            format!(
                "{connector:?}, but the topic's schema is of a {} source",
                d.connector
            ),
        ));
    }
    let snapshot = match string("snapshot", "false")?.as_str() {
        "false" => SnapshotFlag::False,
        "true" => SnapshotFlag::True,
        "last" => SnapshotFlag::Last,
        "last_in_data_collection" => SnapshotFlag::LastInDataCollection,
        other => {
            return Err(invalid(
                &f("snapshot"),
                format!(
                    "{other:?} is not one of \"false\", \"true\", \"last\", \"last_in_data_collection\""
                ),
            ));
        }
    };
    let position = if pg {
        Position::Postgres {
            lsn: u64::try_from(long("lsn", 0)?)
                .map_err(|_| invalid(&f("lsn"), "must not be negative"))?,
            tx_id: match o.get("txId") {
                None | Some(Json::Null) => None,
                Some(v) => Some(int_of(&f("txId"), v)?),
            },
        }
    } else {
        Position::Mysql {
            file: string("file", "")?,
            pos: u64::try_from(long("pos", 0)?)
                .map_err(|_| invalid(&f("pos"), "must not be negative"))?,
            gtid: match o.get("gtid") {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) => Some(s.clone()),
                Some(other) => return Err(expected(&f("gtid"), "a string", other)),
            },
            server_id: u32::try_from(long("server_id", 0)?)
                .map_err(|_| invalid(&f("server_id"), "out of range"))?,
            row: i32::try_from(long("row", 0)?).map_err(|_| invalid(&f("row"), "out of range"))?,
        }
    };
    Ok(SourceInfo {
        connector: connector.into(),
        version: string("version", env!("CARGO_PKG_VERSION"))?.into(),
        name: string("name", d.name)?.into(),
        ts_ms: long("ts_ms", d.now_ms)?,
        snapshot,
        db: string("db", &table.database)?.into(),
        schema: pg
            .then(|| string("schema", &table.schema))
            .transpose()?
            .map(Arc::from),
        table: string("table", &table.table)?.into(),
        position,
    })
}

/// A change event of `schema`'s table from an envelope in JSON.
pub fn event_from(
    schema: &EventSchema,
    d: &SourceDefaults<'_>,
    v: &Json,
) -> Result<ChangeEvent, Invalid> {
    let table = schema.table();
    let o = object("value", v)?;
    only(
        "value",
        o,
        &["before", "after", "source", "op", "ts_ms", "transaction"],
    )?;
    let op = match o.get("op") {
        None => return Err(invalid("value.op", "missing (one of c, u, d, r, t)")),
        Some(Json::String(s)) => Op::from_code(s)
            .ok_or_else(|| invalid("value.op", format!("{s:?} is not one of c, u, d, r, t")))?,
        Some(other) => return Err(expected("value.op", "a string", other)),
    };
    let before = row_from(
        "value.before",
        table,
        o.get("before").unwrap_or(&Json::Null),
    )?;
    let after = row_from("value.after", table, o.get("after").unwrap_or(&Json::Null))?;
    let source = source_from(table, d, o.get("source"))?;
    let ts_ms = match o.get("ts_ms") {
        None | Some(Json::Null) => source.ts_ms,
        Some(v) => int_of("value.ts_ms", v)?,
    };
    let transaction = match o.get("transaction") {
        None | Some(Json::Null) => None,
        Some(v) => {
            let t = object("value.transaction", v)?;
            only(
                "value.transaction",
                t,
                &["id", "total_order", "data_collection_order"],
            )?;
            let get = |k: &str| {
                t.get(k)
                    .ok_or_else(|| invalid(&format!("value.transaction.{k}"), "missing"))
            };
            Some(TransactionInfo {
                id: get("id")?
                    .as_str()
                    .ok_or_else(|| invalid("value.transaction.id", "expected a string"))?
                    .into(),
                total_order: int_of("value.transaction.total_order", get("total_order")?)?,
                data_collection_order: int_of(
                    "value.transaction.data_collection_order",
                    get("data_collection_order")?,
                )?,
            })
        }
    };
    Ok(ChangeEvent {
        op,
        before,
        after,
        source: Arc::new(source),
        ts_ms,
        transaction,
    })
}

/// A record header as `produce` reads it: name and value (none: absent).
pub type OwnedHeader = (String, Option<Vec<u8>>);

/// Headers from the JSON `consume` prints.
pub fn headers_from(v: &Json) -> Result<Vec<OwnedHeader>, Invalid> {
    let items = v
        .as_array()
        .ok_or_else(|| expected("headers", "an array", v))?;
    items
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let field = format!("headers[{i}]");
            let o = object(&field, h)?;
            let name = o
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| invalid(&format!("{field}.name"), "missing (a string)"))?;
            let value = match (o.get("value"), o.get("base64")) {
                (Some(Json::Null), None) => None,
                (Some(Json::String(s)), None) => Some(s.as_bytes().to_vec()),
                (None, Some(Json::String(b))) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| invalid(&format!("{field}.base64"), e.to_string()))?,
                ),
                _ => {
                    return Err(invalid(
                        &field,
                        "expected {\"name\", \"value\": text or null} or {\"name\", \"base64\"}",
                    ));
                }
            };
            only(&field, o, &["name", "value", "base64"])?;
            Ok((name.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::Column;

    fn col(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.into(),
            ty,
            nullable: true,
            may_be_unavailable: true,
            db_type: String::new(),
        }
    }

    /// Every type's JSON reads back as the same value.
    #[test]
    fn values_round_trip_through_json() {
        let dec = |v: i128, scale| Datum::Decimal {
            unscaled: tributary_core::convert::i128_to_twos(v),
            scale,
        };
        let cases = [
            (ColumnType::Boolean, Datum::Bool(true)),
            (ColumnType::Int, Datum::Int(-7)),
            (ColumnType::Long, Datum::Long(1 << 60)),
            (ColumnType::Double, Datum::Double(0.1)),
            (ColumnType::Double, Datum::Double(f64::NEG_INFINITY)),
            (ColumnType::Float, Datum::Float(1.5)),
            (
                ColumnType::Decimal {
                    precision: 12,
                    scale: 3,
                    specials: true,
                },
                dec(-1_234_560, 3),
            ),
            (
                ColumnType::Decimal {
                    precision: 12,
                    scale: 3,
                    specials: true,
                },
                Datum::NumericSpecial(NumericSpecial::NaN),
            ),
            (ColumnType::VariableDecimal, dec(5, 3)),
            (ColumnType::Money, dec(0, 2)),
            (ColumnType::UnsignedLong, dec(i128::from(u64::MAX), 0)),
            (ColumnType::Text, Datum::Text("a\"b\n".into())),
            (ColumnType::Bytes, Datum::Bytes(vec![0, 255, 16])),
            (ColumnType::Date, Datum::Int(19_782)),
            (ColumnType::Date, Datum::Int(-740_000)),
            (ColumnType::Time, Datum::Long(43_200_000_001)),
            (ColumnType::Duration, Datum::Long(-5)),
            (ColumnType::Timestamp, Datum::Long(1_709_208_000_000_001)),
            (ColumnType::TimestampTz, Datum::Long(1_709_208_000_000_001)),
            (
                ColumnType::TimestampTz,
                Datum::Long(-63_517_780_800_000_000),
            ),
            (ColumnType::TimestampTz, Datum::Long(i64::MAX)),
            (
                ColumnType::Interval,
                Datum::Interval {
                    months: 14,
                    days: -3,
                    micros: -14_706_500_000,
                },
            ),
            (ColumnType::Uuid, Datum::Uuid(*b"0123456789abcdef")),
            (ColumnType::Point, Datum::Point { x: 1.5, y: -2.0 }),
            (
                ColumnType::Array(Box::new(ColumnType::Text)),
                Datum::Array(vec![Datum::Text("x".into()), Datum::Null]),
            ),
            (ColumnType::Text, Datum::Unavailable),
            (ColumnType::Text, Datum::Null),
        ];
        for (ty, d) in cases {
            let j = serde_json::to_value(datum_json(&ty, &d)).expect("json");
            let back = datum_from("c", &ty, &j).unwrap_or_else(|e| panic!("{ty:?} {j}: {e}"));
            assert_eq!(back, d, "{ty:?} as {j}");
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let num = ColumnType::Decimal {
            precision: 5,
            scale: 2,
            specials: false,
        };
        let e = datum_from("value.after.price", &num, &Json::String("1.234".into()))
            .expect_err("too many digits");
        assert_eq!(e.field, "value.after.price");
        assert_eq!(
            e.reason,
            "1.234 has 3 digits after the point, the column keeps 2"
        );
        let e = datum_from("value.after.price", &num, &Json::String("12345.6".into()))
            .expect_err("too wide");
        assert_eq!(e.reason, "12345.6 has more than the column's 5 digits");
        let e = datum_from(
            "value.after.id",
            &ColumnType::Int,
            &Json::String("x".into()),
        )
        .expect_err("string for int");
        assert_eq!(
            e.to_string(),
            "value.after.id: expected an integer, found a string \"x\""
        );
        assert!(datum_from("d", &ColumnType::Date, &Json::String("2023-02-30".into())).is_err());
        let t = TableSchema {
            database: "db".into(),
            schema: "public".into(),
            table: "t".into(),
            columns: vec![col("id", ColumnType::Int), col("name", ColumnType::Text)],
            key: vec![0],
        };
        let e = row_from("value.after", &t, &serde_json::json!({"id": 1, "nme": "x"}))
            .expect_err("unknown column");
        assert_eq!(e.field, "value.after.nme");
        let e =
            row_from("value.after", &t, &serde_json::json!({"id": 1})).expect_err("missing column");
        assert_eq!(e.field, "value.after.name");
    }

    #[test]
    fn timestamps_with_zones() {
        assert_eq!(
            parse_timestamp("2024-02-29T13:30:00+01:30", true),
            parse_timestamp("2024-02-29T12:00:00Z", true)
        );
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00.5Z", true),
            Some(500_000)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00", true), None);
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:01", false),
            Some(1_000_000)
        );
        assert_eq!(parse_time("24:00:00"), Some(86_400_000_000));
        assert_eq!(parse_time("24:00:01"), None);
    }

    #[test]
    fn a_record_line_is_what_an_ordered_object_prints() {
        let key = Out::obj(vec![("z", Out::num(1)), ("a", Out::str("x\"y"))]);
        let value = Out::Leaf(Json::Null);
        let headers: Vec<(&str, Option<&[u8]>)> = vec![("h", Some(b"v")), ("n", None)];
        let want = Out::obj(vec![
            ("topic", Out::str("t.\"q")),
            ("partition", Out::num(2)),
            ("offset", Out::num(7u64)),
            ("timestamp", Out::num(-5i64)),
            ("key", key.clone()),
            ("value", value.clone()),
            ("headers", headers_json(headers.iter().copied())),
        ]);
        let got = record_line(
            "t.\"q",
            2,
            7,
            -5,
            &key.to_line(),
            &value.to_line(),
            &headers,
        );
        assert_eq!(got, want.to_line());
        let bare = record_line("t", 0, 0, 0, "null", "null", &[]);
        assert_eq!(
            bare,
            r#"{"topic":"t","partition":0,"offset":0,"timestamp":0,"key":null,"value":null}"#
        );
    }

    #[test]
    fn rows_keep_column_order() {
        let t = TableSchema {
            database: "db".into(),
            schema: "public".into(),
            table: "t".into(),
            columns: vec![col("z", ColumnType::Int), col("a", ColumnType::Int)],
            key: vec![0],
        };
        let line = row_json(&t, Some(&[Datum::Int(1), Datum::Int(2)])).to_line();
        assert_eq!(line, r#"{"z":1,"a":2}"#);
    }
}
