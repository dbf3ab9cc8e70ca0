//! The schema history: every captured table's definition as of each DDL
//! statement, in the compacted topic `<source>.schema-history`, so a
//! restart decodes the binlog from its stored position with the shapes
//! the tables had there, not the shapes they have now.
//!
//! One record per change, keyed by `db.table`, its value JSON:
//! `{"db", "table", "position": {file, pos, gtid}, "ddl", "def"}` with
//! `def` null once the table is dropped. Loading keeps, per table, the
//! newest record at or before the resume position: records past it
//! (written before a crash, for DDL the stored position does not cover
//! yet) are left for the replayed statements to write again. Compaction
//! keeps the newest record per table, which is the one a resume at the
//! newest stored position needs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value as Json, json};
use tributary_log::{Cleanup, Log, RecordIn, Route, Topic, TopicConfig};

use crate::ddl::{ColumnDef, SchemaModel, TableDef};
use crate::position::BinlogPosition;

/// The history topic of source `s` is `s` followed by this.
pub const TOPIC_SUFFIX: &str = ".schema-history";

/// The schema history topic of source `source`.
pub fn topic_name(source: &str) -> String {
    format!("{source}{TOPIC_SUFFIX}")
}

/// Errors of the history topic.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The log failed.
    #[error("schema history topic {topic}: {source}")]
    Log {
        /// Topic.
        topic: String,
        /// Cause.
        #[source]
        source: tributary_log::LogError,
    },
    /// A record does not parse.
    #[error("schema history topic {topic}, offset {offset}: {reason}")]
    Corrupt {
        /// Topic.
        topic: String,
        /// Offset.
        offset: u64,
        /// Why.
        reason: String,
    },
}

/// The history topic of one source.
#[derive(Debug, Clone)]
pub struct History {
    topic: Arc<Topic>,
}

pub(crate) fn def_json(d: &TableDef) -> Json {
    json!({
        "name": d.name,
        "primary_key": d.primary_key,
        "columns": d.columns.iter().map(|c| json!({
            "name": c.name, "base": c.base, "args": c.args,
            "unsigned": c.unsigned, "nullable": c.nullable, "charset": c.charset,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn def_from(j: &Json) -> Option<TableDef> {
    let strs = |v: &Json| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    Some(TableDef {
        name: j.get("name")?.as_str()?.to_string(),
        primary_key: strs(j.get("primary_key")?)?,
        columns: j
            .get("columns")?
            .as_array()?
            .iter()
            .map(|c| {
                Some(ColumnDef {
                    name: c.get("name")?.as_str()?.to_string(),
                    base: c.get("base")?.as_str()?.to_string(),
                    args: strs(c.get("args")?)?,
                    unsigned: c.get("unsigned")?.as_bool()?,
                    nullable: c.get("nullable")?.as_bool()?,
                    charset: c.get("charset")?.as_str().map(str::to_string),
                })
            })
            .collect::<Option<Vec<_>>>()?,
    })
}

impl History {
    /// Opens (creating when missing) `<source>.schema-history` in `log`.
    pub fn open(log: &Log, source: &str, base: &TopicConfig) -> Result<Self, HistoryError> {
        let name = topic_name(source);
        let err = |source| HistoryError::Log {
            topic: name.clone(),
            source,
        };
        let topic = match log.topic(&name) {
            Ok(t) => t,
            Err(_) => {
                let cfg = TopicConfig {
                    partitions: 1,
                    cleanup: Cleanup::Compact,
                    retention_ms: None,
                    retention_bytes: None,
                    ..base.clone()
                };
                log.create_topic(&name, cfg).map_err(err)?
            }
        };
        Ok(Self { topic })
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        self.topic.name()
    }

    /// Records `def` (None: dropped) for `db.table` at `at`, caused by
    /// `ddl`, and waits until it is durable: rows decoded with the new
    /// shape are written only after it.
    pub fn record(
        &self,
        db: &str,
        table: &str,
        def: Option<&TableDef>,
        ddl: &str,
        at: &BinlogPosition,
    ) -> Result<(), HistoryError> {
        let value = json!({
            "db": db, "table": table,
            "position": {"file": at.file, "pos": at.pos, "gtid": at.gtid},
            "ddl": ddl,
            "def": def.map(def_json),
        })
        .to_string();
        let key = format!("{db}.{table}");
        let err = |source| HistoryError::Log {
            topic: self.topic.name().to_string(),
            source,
        };
        self.topic
            .append(
                Route::Partition(0),
                &[RecordIn {
                    timestamp: now_ms(),
                    key: Some(key.as_bytes()),
                    value: Some(value.as_bytes()),
                    headers: &[],
                }],
            )
            .map_err(err)?;
        self.topic.partition(0).map_err(err)?.flush().map_err(err)?;
        Ok(())
    }

    /// The model as of `at`: per table, its newest record at or before it.
    pub fn load(&self, at: &BinlogPosition) -> Result<SchemaModel, HistoryError> {
        let name = self.topic.name().to_string();
        let err = |source| HistoryError::Log {
            topic: name.clone(),
            source,
        };
        let p = self.topic.partition(0).map_err(err)?;
        let mut latest: BTreeMap<String, (String, Option<TableDef>)> = BTreeMap::new();
        let mut offset = p.earliest_offset();
        let end = p.high_watermark();
        let limit = at.order_key();
        while offset < end {
            let batches = p.read(offset, 1 << 20).map_err(err)?;
            if batches.is_empty() {
                break;
            }
            for b in batches {
                for r in b.records().map_err(err)?.iter() {
                    let r = r.map_err(err)?;
                    offset = offset.max(r.offset + 1);
                    let Some(v) = r.value else { continue };
                    let corrupt = |reason: &str| HistoryError::Corrupt {
                        topic: name.clone(),
                        offset: r.offset,
                        reason: reason.to_string(),
                    };
                    let j: Json = serde_json::from_slice(v).map_err(|e| corrupt(&e.to_string()))?;
                    let pos = BinlogPosition {
                        file: j["position"]["file"].as_str().unwrap_or_default().into(),
                        pos: j["position"]["pos"].as_u64().unwrap_or_default(),
                        gtid: String::new(),
                    };
                    if pos.order_key() > limit {
                        continue;
                    }
                    let db = j["db"].as_str().ok_or_else(|| corrupt("no db"))?;
                    let table = j["table"].as_str().ok_or_else(|| corrupt("no table"))?;
                    let def = match &j["def"] {
                        Json::Null => None,
                        d => Some(def_from(d).ok_or_else(|| corrupt("bad table definition"))?),
                    };
                    latest.insert(format!("{db}.{table}"), (db.to_string(), def));
                }
            }
        }
        let mut model = SchemaModel::new();
        for (db, def) in latest.into_values() {
            if let Some(def) = def {
                model.insert(&db, def);
            }
        }
        Ok(model)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
