//! The table behind a value schema, kept in the schema itself (property
//! `tributary.table`), so whoever reads a record (a sink, `consume`) can
//! rebuild the exact [`EventSchema`] from the registry alone.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value as Json;
use tributary_core::{ChangeEvent, Datum};

use crate::avro::{Connector, EventSchema, SchemaError};
use crate::registry::Registry;

pub use crate::table_json::{TABLE_PROPERTY, describe};

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
    let d = crate::table_json::read(d).map_err(bad)?;
    let connector = match d.connector.as_str() {
        "postgresql" => Connector::Postgres,
        "mysql" => Connector::Mysql,
        _ => return Err(bad("connector")),
    };
    if d.unwrapped {
        EventSchema::unwrapped(&d.source, connector, d.table)
    } else {
        EventSchema::new(&d.source, connector, d.table)
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
    use tributary_core::{Column, ColumnType, TableSchema};

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
