//! The table behind a value schema as JSON (property
//! `tributary.table`): written into every value schema, read back by
//! whoever rebuilds the schema from the registry alone.

use serde_json::{Value as Json, json};
use tributary_core::{Column, ColumnType, TableSchema};

/// The property holding the table description.
pub const TABLE_PROPERTY: &str = "tributary.table";

/// `table` (of source `source_name`, read by `connector`) as JSON.
pub fn describe(source_name: &str, connector: &str, table: &TableSchema) -> Json {
    json!({
        "source": source_name,
        "connector": connector,
        "database": table.database,
        "schema": table.schema,
        "table": table.table,
        "key": table.key,
        "columns": table.columns.iter().map(|c| json!({
            "name": c.name,
            "type": type_json(&c.ty),
            "nullable": c.nullable,
            "may_be_unavailable": c.may_be_unavailable,
            "db_type": c.db_type,
        })).collect::<Vec<_>>(),
    })
}

fn type_json(t: &ColumnType) -> Json {
    match t {
        ColumnType::Boolean => json!("boolean"),
        ColumnType::Int => json!("int"),
        ColumnType::Long => json!("long"),
        ColumnType::UnsignedLong => json!("unsigned_long"),
        ColumnType::Float => json!("float"),
        ColumnType::Double => json!("double"),
        ColumnType::Decimal {
            precision,
            scale,
            specials,
        } => json!({"decimal": {"precision": precision, "scale": scale, "specials": specials}}),
        ColumnType::VariableDecimal => json!("variable_decimal"),
        ColumnType::Money => json!("money"),
        ColumnType::Text => json!("text"),
        ColumnType::Json => json!("json"),
        ColumnType::Enum(labels) => json!({ "enum": labels }),
        ColumnType::Set(members) => json!({ "set": members }),
        ColumnType::Bytes => json!("bytes"),
        ColumnType::Bits(n) => json!({ "bits": n }),
        ColumnType::Geometry => json!("geometry"),
        ColumnType::Date => json!("date"),
        ColumnType::Time => json!("time"),
        ColumnType::Duration => json!("duration"),
        ColumnType::TimeTz => json!("timetz"),
        ColumnType::Timestamp => json!("timestamp"),
        ColumnType::TimestampTz => json!("timestamptz"),
        ColumnType::Interval => json!("interval"),
        ColumnType::Uuid => json!("uuid"),
        ColumnType::Year => json!("year"),
        ColumnType::Point => json!("point"),
        ColumnType::Array(of) => json!({ "array": type_json(of) }),
    }
}

fn type_from(j: &Json) -> Option<ColumnType> {
    if let Some(s) = j.as_str() {
        return Some(match s {
            "boolean" => ColumnType::Boolean,
            "int" => ColumnType::Int,
            "long" => ColumnType::Long,
            "unsigned_long" => ColumnType::UnsignedLong,
            "float" => ColumnType::Float,
            "double" => ColumnType::Double,
            "variable_decimal" => ColumnType::VariableDecimal,
            "money" => ColumnType::Money,
            "text" => ColumnType::Text,
            "json" => ColumnType::Json,
            "bytes" => ColumnType::Bytes,
            "geometry" => ColumnType::Geometry,
            "date" => ColumnType::Date,
            "time" => ColumnType::Time,
            "duration" => ColumnType::Duration,
            "timetz" => ColumnType::TimeTz,
            "timestamp" => ColumnType::Timestamp,
            "timestamptz" => ColumnType::TimestampTz,
            "interval" => ColumnType::Interval,
            "uuid" => ColumnType::Uuid,
            "year" => ColumnType::Year,
            "point" => ColumnType::Point,
            _ => return None,
        });
    }
    let (k, v) = j.as_object()?.iter().next()?;
    let strings = |v: &Json| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(String::from))
            .collect()
    };
    Some(match k.as_str() {
        "decimal" => ColumnType::Decimal {
            precision: u32::try_from(v.get("precision")?.as_u64()?).ok()?,
            scale: u32::try_from(v.get("scale")?.as_u64()?).ok()?,
            specials: v.get("specials")?.as_bool()?,
        },
        "enum" => ColumnType::Enum(strings(v)?),
        "set" => ColumnType::Set(strings(v)?),
        "bits" => ColumnType::Bits(u32::try_from(v.as_u64()?).ok()?),
        "array" => ColumnType::Array(Box::new(type_from(v)?)),
        _ => return None,
    })
}

/// A table description read back: source name, connector name, the
/// table, and whether its topic holds unwrapped rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// The source's name.
    pub source: String,
    /// The connector's name (`postgresql`, `mysql`).
    pub connector: String,
    /// The table.
    pub table: TableSchema,
    /// Whether records hold the row itself, not the envelope.
    pub unwrapped: bool,
}

/// Reads a description made by [`describe`]; the error names the part
/// that is missing or unusable.
pub fn read(d: &Json) -> Result<Described, &'static str> {
    let s = |k: &str| d.get(k).and_then(Json::as_str).map(String::from);
    let columns = d
        .get("columns")
        .and_then(Json::as_array)
        .ok_or("columns")?
        .iter()
        .map(|c| {
            Some(Column {
                name: c.get("name")?.as_str()?.to_string(),
                ty: type_from(c.get("type")?)?,
                nullable: c.get("nullable")?.as_bool()?,
                may_be_unavailable: c.get("may_be_unavailable")?.as_bool()?,
                db_type: c.get("db_type")?.as_str()?.to_string(),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or("a column")?;
    let key = d
        .get("key")
        .and_then(Json::as_array)
        .ok_or("key")?
        .iter()
        .map(|k| k.as_u64().and_then(|k| usize::try_from(k).ok()))
        .collect::<Option<Vec<_>>>()
        .ok_or("key")?;
    let table = TableSchema {
        database: s("database").ok_or("database")?,
        schema: s("schema").ok_or("schema")?,
        table: s("table").ok_or("table")?,
        columns,
        key,
    };
    Ok(Described {
        source: s("source").ok_or("source")?,
        connector: s("connector").ok_or("connector")?,
        table,
        unwrapped: d.get("unwrapped").and_then(Json::as_bool) == Some(true),
    })
}
