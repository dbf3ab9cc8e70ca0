//! The table behind a value schema, kept in the schema itself (property
//! `tributary.table`), so whoever reads a record (a sink, `consume`) can
//! rebuild the exact [`EventSchema`] from the registry alone.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Value as Json, json};
use tributary_core::{ChangeEvent, Column, ColumnType, Datum, TableSchema};

use crate::avro::{Connector, EventSchema, SchemaError};
use crate::registry::Registry;

/// The property holding the table description.
pub const TABLE_PROPERTY: &str = "tributary.table";

/// `table` (of source `source_name`, read by `connector`) as JSON.
pub fn describe(source_name: &str, connector: Connector, table: &TableSchema) -> Json {
    json!({
        "source": source_name,
        "connector": connector.name(),
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

/// Rebuilds the event schema a value schema (as registered) was made
/// from.
pub fn event_schema(value_schema: &str) -> Result<EventSchema, SchemaError> {
    let bad = |why: &str| SchemaError {
        table: "?".into(),
        source: apache_avro::Error::new(apache_avro::error::Details::GetField(format!(
            "value schema without a usable {TABLE_PROPERTY}: {why}"
        ))),
    };
    let json: Json = serde_json::from_str(value_schema).map_err(|_| bad("not JSON"))?;
    let d = json.get(TABLE_PROPERTY).ok_or_else(|| bad("missing"))?;
    let s = |k: &str| d.get(k).and_then(Json::as_str).map(String::from);
    let connector = match s("connector").as_deref() {
        Some("postgresql") => Connector::Postgres,
        Some("mysql") => Connector::Mysql,
        _ => return Err(bad("connector")),
    };
    let columns = d
        .get("columns")
        .and_then(Json::as_array)
        .ok_or_else(|| bad("columns"))?
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
        .ok_or_else(|| bad("a column"))?;
    let key = d
        .get("key")
        .and_then(Json::as_array)
        .ok_or_else(|| bad("key"))?
        .iter()
        .map(|k| k.as_u64().and_then(|k| usize::try_from(k).ok()))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("key"))?;
    let table = TableSchema {
        database: s("database").ok_or_else(|| bad("database"))?,
        schema: s("schema").ok_or_else(|| bad("schema"))?,
        table: s("table").ok_or_else(|| bad("table"))?,
        columns,
        key,
    };
    let source = s("source").ok_or_else(|| bad("source"))?;
    if d.get("unwrapped").and_then(Json::as_bool) == Some(true) {
        EventSchema::unwrapped(&source, connector, table)
    } else {
        EventSchema::new(&source, connector, table)
    }
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeRecordError {
    /// Not in Confluent's wire format.
    #[error("not a schema-registry record (magic byte and schema id)")]
    Wire,
    /// The registry does not know the id, or its schema has no table.
    #[error("schema {id}: {reason}")]
    Schema {
        /// Schema id.
        id: u32,
        /// Why.
        reason: String,
    },
    /// The body does not decode with its schema.
    #[error("schema {id}: {reason}")]
    Body {
        /// Schema id.
        id: u32,
        /// Why.
        reason: String,
    },
}

/// Decodes records of any topic through the registry, caching schemas by
/// id.
#[derive(Debug, Clone)]
pub struct RecordDecoder {
    registry: Registry,
    cache: Arc<RwLock<HashMap<u32, Arc<EventSchema>>>>,
}

impl RecordDecoder {
    /// A decoder reading schemas from `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            cache: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    /// The event schema of schema id `id` (a value schema).
    pub fn schema(&self, id: u32) -> Result<Arc<EventSchema>, DecodeRecordError> {
        if let Some(s) = self.cache.read().get(&id) {
            return Ok(Arc::clone(s));
        }
        let text = self
            .registry
            .schema_by_id(id)
            .map_err(|e| DecodeRecordError::Schema {
                id,
                reason: e.to_string(),
            })?;
        let schema = Arc::new(event_schema(&text).map_err(|e| DecodeRecordError::Schema {
            id,
            reason: e.to_string(),
        })?);
        self.cache.write().insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    /// A record's value: its schema and event.
    pub fn value(
        &self,
        bytes: &[u8],
    ) -> Result<(Arc<EventSchema>, ChangeEvent), DecodeRecordError> {
        let (id, body) = crate::wire::split(bytes).ok_or(DecodeRecordError::Wire)?;
        let schema = self.schema(id)?;
        let ev = schema
            .decode_value(body)
            .map_err(|e| DecodeRecordError::Body {
                id,
                reason: e.to_string(),
            })?;
        Ok((schema, ev))
    }

    /// A record's key (its key columns' values), decoded with `schema`
    /// (the value's: key schemas carry no table description).
    pub fn key(&self, schema: &EventSchema, bytes: &[u8]) -> Result<Vec<Datum>, DecodeRecordError> {
        let (id, body) = crate::wire::split(bytes).ok_or(DecodeRecordError::Wire)?;
        schema
            .decode_key(body)
            .map_err(|e| DecodeRecordError::Body {
                id,
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_schema_gives_back_its_table() {
        let table = TableSchema {
            database: "db".into(),
            schema: "public".into(),
            table: "order lines".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    ty: ColumnType::Long,
                    nullable: false,
                    may_be_unavailable: false,
                    db_type: "bigint".into(),
                },
                Column {
                    name: "price".into(),
                    ty: ColumnType::Decimal {
                        precision: 10,
                        scale: 2,
                        specials: true,
                    },
                    nullable: true,
                    may_be_unavailable: true,
                    db_type: "numeric(10,2)".into(),
                },
                Column {
                    name: "tags".into(),
                    ty: ColumnType::Array(Box::new(ColumnType::Enum(vec!["a".into(), "b".into()]))),
                    nullable: true,
                    may_be_unavailable: true,
                    db_type: "mood[]".into(),
                },
            ],
            key: vec![0],
        };
        let s = EventSchema::new("src", Connector::Postgres, table.clone()).expect("schema");
        let back = event_schema(&s.value_schema().to_string()).expect("rebuilt");
        assert_eq!(back.table(), &table);
        assert_eq!(back.value_schema(), s.value_schema());
        assert!(event_schema(r#"{"type":"string"}"#).is_err());
    }
}
