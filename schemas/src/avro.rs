//! Avro schemas for change events, and a direct binary encoder and
//! decoder for them.
//!
//! For a table, [`EventSchema::new`] derives two Avro schemas, laid out as
//! Debezium lays out its envelope:
//!
//! - key: record `<ns>.Key` with the primary-key columns;
//! - value: record `<ns>.Envelope` with fields `before` and `after`
//!   (`["null", <ns>.Value]`), `source` (Debezium's
//!   `io.debezium.connector.{postgresql,mysql}.Source` fields), `op`,
//!   `ts_ms` and `transaction` (`["null", event.block]`),
//!
//! where `<ns>` is `<source>.<schema>.<table>`, each part made a valid
//! Avro name by [`crate::names::to_avro_name`].
//!
//! Column types map as documented on [`ColumnType`]; where we differ from
//! Debezium, it is to keep information Debezium loses:
//! - numeric NaN/±Infinity: a union branch `io.tributary.NumericSpecial`
//!   (enum `NaN`, `POSITIVE_INFINITY`, `NEGATIVE_INFINITY`) beside the
//!   decimal, instead of failing or turning it into null;
//! - variable-scale numeric: record `io.tributary.VariableScaleDecimal`
//!   `{scale: int, value: bytes}` (Debezium's shape, our namespace);
//! - interval: record `io.tributary.Interval {months, days, micros}`
//!   instead of an approximate microsecond count;
//! - timestamptz: `timestamp-micros` in UTC (Debezium: ISO string);
//! - a PostgreSQL value Avro's logical type cannot hold is PostgreSQL's
//!   own text in a union branch `{"type": "string", "connect.name":
//!   "io.tributary.SourceText"}` beside the main type, present on
//!   PostgreSQL timestamp, timestamptz and array columns only: a
//!   timestamp after 294247-01-10 (past microseconds since 1970; also the
//!   two finite values equal to the infinities' `long`s), an array of
//!   several dimensions, with bounds other than `[1:n]`, or holding a
//!   value its element type has no branch for (a numeric NaN, such a
//!   timestamp). Debezium fails on these or loses them; sinks write the
//!   text back and PostgreSQL reads the same value. On MySQL DATE,
//!   DATETIME and TIMESTAMP columns the branch holds zero dates
//!   (`0000-00-00`, `2024-00-15`; a permissive sql_mode stores them),
//!   which Debezium turns into null;
//! - an **unavailable** value (PostgreSQL unchanged TOAST) is its own
//!   union branch, the empty record `io.tributary.Unavailable`, present
//!   only on columns whose type can be TOASTed. Debezium writes a
//!   placeholder string a sink could store by mistake; ours cannot be
//!   mistaken for data, and costs no bytes beyond the branch index.
//!
//! The encoder writes Avro binary straight from [`ChangeEvent`]s, checking
//! each value against its column's type; it is tested byte for byte
//! against apache-avro's generic `Value` path.

use std::collections::HashSet;

use apache_avro::types::Value as AvroValue;
use serde_json::{Value as Json, json};
use tributary_core::{
    ChangeEvent, Column, ColumnType, Datum, NumericSpecial, Op, Position, SnapshotFlag, SourceInfo,
    TableSchema, TransactionInfo,
};

use crate::names::to_avro_name;

/// Why an event does not fit its schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct EncodeError {
    /// Path of the field, e.g. `after.price`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Why bytes do not decode as an event of the schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot decode {what} at byte {at}: {reason}")]
pub struct DecodeError {
    /// What was being read.
    pub what: String,
    /// Byte offset in the payload.
    pub at: usize,
    /// Why.
    pub reason: String,
}

/// Which source block a schema carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    /// `io.debezium.connector.postgresql.Source`.
    Postgres,
    /// `io.debezium.connector.mysql.Source`.
    Mysql,
}

impl Connector {
    /// The `source.connector` value.
    pub fn name(self) -> &'static str {
        match self {
            Connector::Postgres => "postgresql",
            Connector::Mysql => "mysql",
        }
    }
}

/// Union branches of one column, in schema order: `[null] main [special]
/// [unavailable] [text]`; `None` means the branch does not exist.
#[derive(Debug, Clone)]
struct Layout {
    ty: ColumnType,
    union: bool,
    null: Option<u8>,
    main: u8,
    special: Option<u8>,
    unavailable: Option<u8>,
    /// The source's own text for a value the main type cannot hold.
    text: Option<u8>,
}

impl Layout {
    fn new(c: &Column, allow_unavailable: bool, connector: Connector) -> Self {
        let mut next = 0u8;
        let mut take = |present: bool| {
            present.then(|| {
                next += 1;
                next - 1
            })
        };
        let null = take(c.nullable);
        let main = take(true).unwrap_or(0);
        let special = take(has_specials(&c.ty));
        let unavailable = take(allow_unavailable && c.may_be_unavailable);
        let text = take(has_source_text(connector, &c.ty));
        Layout {
            ty: c.ty.clone(),
            union: next > 1,
            null,
            main,
            special,
            unavailable,
            text,
        }
    }
}

/// Whether a column's values may come as the source's own text (see the
/// module documentation).
fn has_source_text(connector: Connector, ty: &ColumnType) -> bool {
    match connector {
        Connector::Postgres => matches!(
            ty,
            ColumnType::Timestamp | ColumnType::TimestampTz | ColumnType::Array(_)
        ),
        Connector::Mysql => matches!(
            ty,
            ColumnType::Date | ColumnType::Timestamp | ColumnType::TimestampTz
        ),
    }
}

fn has_specials(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::VariableDecimal | ColumnType::Decimal { specials: true, .. }
    )
}

/// The Avro schemas of one table's events and the compiled form used to
/// encode and decode them.
#[derive(Debug, Clone)]
pub struct EventSchema {
    table: std::sync::Arc<TableSchema>,
    /// The source block's strings as every event of this table has them:
    /// decoding shares them instead of allocating each event's own.
    interned: [std::sync::Arc<str>; 6],
    connector: Connector,
    columns: Vec<Layout>,
    key_columns: Vec<Layout>,
    value_json: Json,
    key_json: Json,
    value_avro: apache_avro::Schema,
    key_avro: apache_avro::Schema,
    /// Records hold the row state, not the envelope (see
    /// [`EventSchema::unwrapped`]).
    unwrapped: bool,
}

struct Names(HashSet<String>);

impl Names {
    /// The full definition the first time, the name after.
    fn named(&mut self, full: &str, def: impl FnOnce() -> Json) -> Json {
        if self.0.insert(full.to_string()) {
            def()
        } else {
            Json::String(full.to_string())
        }
    }
}

fn decimal_json(precision: u32, scale: u32) -> Json {
    json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale})
}

fn main_type_json(ty: &ColumnType, names: &mut Names) -> Json {
    match ty {
        ColumnType::Boolean => json!("boolean"),
        ColumnType::Int => json!("int"),
        ColumnType::Long => json!("long"),
        ColumnType::UnsignedLong => decimal_json(20, 0),
        ColumnType::Float => json!("float"),
        ColumnType::Double => json!("double"),
        ColumnType::Decimal {
            precision, scale, ..
        } => decimal_json(*precision, *scale),
        ColumnType::VariableDecimal => names.named("io.tributary.VariableScaleDecimal", || {
            json!({"type": "record", "name": "VariableScaleDecimal", "namespace": "io.tributary",
                   "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}]})
        }),
        ColumnType::Money => decimal_json(19, 2),
        ColumnType::Text => json!("string"),
        ColumnType::Json => json!({"type": "string", "connect.name": "io.debezium.data.Json"}),
        ColumnType::Enum(labels) => json!({"type": "string", "connect.name": "io.debezium.data.Enum",
                                           "connect.parameters": {"allowed": labels.join(",")}}),
        ColumnType::Set(members) => json!({"type": "string", "connect.name": "io.debezium.data.EnumSet",
                                           "connect.parameters": {"allowed": members.join(",")}}),
        ColumnType::Bytes => json!("bytes"),
        ColumnType::Bits(n) => json!({"type": "bytes", "connect.name": "io.debezium.data.Bits",
                                      "connect.parameters": {"length": n.to_string()}}),
        ColumnType::Geometry => json!({"type": "bytes", "connect.name": "io.tributary.Wkb"}),
        ColumnType::Date => json!({"type": "int", "logicalType": "date"}),
        ColumnType::Time => json!({"type": "long", "logicalType": "time-micros"}),
        ColumnType::Duration => json!({"type": "long", "connect.name": "io.debezium.time.MicroDuration"}),
        ColumnType::TimeTz => json!({"type": "string", "connect.name": "io.debezium.time.ZonedTime"}),
        ColumnType::Timestamp => json!({"type": "long", "logicalType": "timestamp-micros",
                                        "connect.name": "io.debezium.time.MicroTimestamp"}),
        ColumnType::TimestampTz => json!({"type": "long", "logicalType": "timestamp-micros"}),
        ColumnType::Interval => names.named("io.tributary.Interval", || {
            json!({"type": "record", "name": "Interval", "namespace": "io.tributary", "fields": [
                {"name": "months", "type": "int"}, {"name": "days", "type": "int"},
                {"name": "micros", "type": "long"}]})
        }),
        ColumnType::Uuid => json!({"type": "string", "logicalType": "uuid"}),
        ColumnType::Year => json!({"type": "int", "connect.name": "io.debezium.time.Year"}),
        ColumnType::Point => names.named("io.tributary.Point", || {
            json!({"type": "record", "name": "Point", "namespace": "io.tributary", "fields": [
                {"name": "x", "type": "double"}, {"name": "y", "type": "double"}]})
        }),
        ColumnType::Array(inner) => {
            json!({"type": "array", "items": ["null", main_type_json(inner, names)]})
        }
    }
}

fn column_json(l: &Layout, names: &mut Names) -> Json {
    let main = main_type_json(&l.ty, names);
    if !l.union {
        return main;
    }
    let mut branches = Vec::new();
    if l.null.is_some() {
        branches.push(json!("null"));
    }
    branches.push(main);
    if l.special.is_some() {
        branches.push(names.named("io.tributary.NumericSpecial", || {
            json!({"type": "enum", "name": "NumericSpecial", "namespace": "io.tributary",
                   "symbols": ["NaN", "POSITIVE_INFINITY", "NEGATIVE_INFINITY"]})
        }));
    }
    if l.unavailable.is_some() {
        branches.push(names.named("io.tributary.Unavailable", || {
            json!({"type": "record", "name": "Unavailable", "namespace": "io.tributary", "fields": [],
                   "doc": "The source could not see this value (unchanged TOAST): not data."})
        }));
    }
    if l.text.is_some() {
        branches.push(json!({"type": "string", "connect.name": "io.tributary.SourceText"}));
    }
    Json::Array(branches)
}

fn record_json(name: &str, ns: &str, cols: &[(&Column, &Layout)], names: &mut Names) -> Json {
    names.0.insert(format!("{ns}.{name}"));
    let fields: Vec<Json> = cols
        .iter()
        .map(|(c, l)| {
            let mut f = json!({"name": to_avro_name(&c.name), "type": column_json(l, names)});
            if l.null == Some(0) {
                f["default"] = Json::Null;
            }
            f
        })
        .collect();
    json!({"type": "record", "name": name, "namespace": ns, "fields": fields,
           "connect.name": format!("{ns}.{name}")})
}

fn source_json(connector: Connector) -> Json {
    let common = vec![
        json!({"name": "version", "type": "string"}),
        json!({"name": "connector", "type": "string"}),
        json!({"name": "name", "type": "string"}),
        json!({"name": "ts_ms", "type": "long"}),
        json!({"name": "snapshot", "type": ["string", "null"], "default": "false"}),
        json!({"name": "db", "type": "string"}),
        json!({"name": "sequence", "type": ["null", "string"], "default": null}),
    ];
    let (ns, rest) = match connector {
        Connector::Postgres => (
            "io.debezium.connector.postgresql",
            vec![
                json!({"name": "schema", "type": "string"}),
                json!({"name": "table", "type": "string"}),
                json!({"name": "txId", "type": ["null", "long"], "default": null}),
                json!({"name": "lsn", "type": ["null", "long"], "default": null}),
                json!({"name": "xmin", "type": ["null", "long"], "default": null}),
            ],
        ),
        Connector::Mysql => (
            "io.debezium.connector.mysql",
            vec![
                json!({"name": "table", "type": ["null", "string"], "default": null}),
                json!({"name": "server_id", "type": "long"}),
                json!({"name": "gtid", "type": ["null", "string"], "default": null}),
                json!({"name": "file", "type": "string"}),
                json!({"name": "pos", "type": "long"}),
                json!({"name": "row", "type": "int"}),
                json!({"name": "thread", "type": ["null", "long"], "default": null}),
                json!({"name": "query", "type": ["null", "string"], "default": null}),
            ],
        ),
    };
    let fields: Vec<Json> = common.into_iter().chain(rest).collect();
    json!({"type": "record", "name": "Source", "namespace": ns, "fields": fields,
           "connect.name": format!("{ns}.Source")})
}

/// An error building the schemas (a bug in the mapping, or a table apache-avro refuses).
#[derive(Debug, thiserror::Error)]
#[error("table {table}: derived Avro schema is invalid: {source}")]
pub struct SchemaError {
    /// The table.
    pub table: String,
    /// apache-avro's complaint.
    #[source]
    pub source: apache_avro::Error,
}

impl EventSchema {
    /// Derives the key and value schemas of `table`'s events, for a source
    /// named `source_name` (the first part of the namespace).
    pub fn new(
        source_name: &str,
        connector: Connector,
        table: TableSchema,
    ) -> Result<Self, SchemaError> {
        Self::build(source_name, connector, table, false)
    }

    /// The schemas of a topic that a pipeline's `unwrap` transform writes:
    /// the value is record `<ns>.Value` with the row's columns (the new
    /// state; for a delete, the old one) and three fields after them, as
    /// Debezium's `ExtractNewRecordState` with `add.fields=op,source.ts_ms`
    /// and `delete.handling.mode=rewrite` writes them: `__op` (`c`, `u`,
    /// `r`, `d`), `__source_ts_ms` and `__deleted`. A delete is followed
    /// by a tombstone as in envelope topics; a truncate has no row and is
    /// not written (see the writer). The key schema is the envelope's.
    pub fn unwrapped(
        source_name: &str,
        connector: Connector,
        table: TableSchema,
    ) -> Result<Self, SchemaError> {
        if let Some(c) = table
            .columns
            .iter()
            .find(|c| matches!(c.name.as_str(), "__op" | "__source_ts_ms" | "__deleted"))
        {
            return Err(SchemaError {
                table: table.qualified_name(),
                source: apache_avro::Error::new(apache_avro::error::Details::GetField(format!(
                    "column {:?} clashes with a field unwrap adds",
                    c.name
                ))),
            });
        }
        Self::build(source_name, connector, table, true)
    }

    /// Whether records hold the row state, not the envelope.
    pub fn is_unwrapped(&self) -> bool {
        self.unwrapped
    }

    /// The configured name of the source the table comes from.
    pub fn source_name(&self) -> &str {
        &self.interned[2]
    }

    /// The kind of source the table comes from.
    pub fn connector(&self) -> Connector {
        self.connector
    }

    fn build(
        source_name: &str,
        connector: Connector,
        table: TableSchema,
        unwrapped: bool,
    ) -> Result<Self, SchemaError> {
        let ns = format!(
            "{}.{}.{}",
            to_avro_name(source_name),
            to_avro_name(&table.schema),
            to_avro_name(&table.table)
        );
        if let Some(&bad) = table.key.iter().find(|&&i| i >= table.columns.len()) {
            return Err(SchemaError {
                table: table.qualified_name(),
                source: apache_avro::Error::new(apache_avro::error::Details::GetField(format!(
                    "key column index {bad} is past the {} columns",
                    table.columns.len()
                ))),
            });
        }
        let columns: Vec<Layout> = table
            .columns
            .iter()
            .map(|c| Layout::new(c, true, connector))
            .collect();
        let key_columns: Vec<Layout> = table
            .key
            .iter()
            .map(|&i| {
                let mut c = table.columns[i].clone();
                c.nullable = false;
                Layout::new(&c, false, connector)
            })
            .collect();
        let mut names = Names(HashSet::new());
        let value_cols: Vec<(&Column, &Layout)> = table.columns.iter().zip(&columns).collect();
        let value_record = record_json("Value", &ns, &value_cols, &mut names);
        let mut described = crate::table_json::describe(source_name, connector.name(), &table);
        if unwrapped {
            described["unwrapped"] = Json::Bool(true);
        }
        let value_json = if unwrapped {
            let mut v = value_record.clone();
            v[crate::table_json::TABLE_PROPERTY] = described;
            if let Some(fields) = v["fields"].as_array_mut() {
                fields.push(json!({"name": "__op", "type": "string"}));
                fields.push(json!({"name": "__source_ts_ms", "type": "long"}));
                fields.push(json!({"name": "__deleted", "type": "boolean"}));
            }
            v
        } else {
            json!({
            "type": "record", "name": "Envelope", "namespace": ns,
            "connect.name": format!("{ns}.Envelope"),
            (crate::table_json::TABLE_PROPERTY): described,
            "fields": [
                {"name": "before", "type": ["null", value_record], "default": null},
                {"name": "after", "type": ["null", format!("{ns}.Value")], "default": null},
                {"name": "source", "type": source_json(connector)},
                {"name": "op", "type": "string"},
                {"name": "ts_ms", "type": ["null", "long"], "default": null},
                {"name": "transaction", "type": ["null", {
                    "type": "record", "name": "block", "namespace": "event",
                    "fields": [
                        {"name": "id", "type": "string"},
                        {"name": "total_order", "type": "long"},
                        {"name": "data_collection_order", "type": "long"}
                    ]}], "default": null}
            ]
            })
        };
        let key_cols: Vec<(&Column, &Layout)> = table
            .key
            .iter()
            .map(|&i| &table.columns[i])
            .zip(&key_columns)
            .collect();
        let key_json = record_json("Key", &ns, &key_cols, &mut Names(HashSet::new()));
        let err = |source| SchemaError {
            table: table.qualified_name(),
            source,
        };
        let value_avro = apache_avro::Schema::parse(&value_json).map_err(err)?;
        let key_avro = apache_avro::Schema::parse(&key_json).map_err(err)?;
        let interned = [
            match connector {
                Connector::Postgres => "postgresql",
                Connector::Mysql => "mysql",
            }
            .into(),
            env!("CARGO_PKG_VERSION").into(),
            source_name.into(),
            table.database.as_str().into(),
            table.schema.as_str().into(),
            table.table.as_str().into(),
        ];
        Ok(Self {
            table: std::sync::Arc::new(table),
            interned,
            connector,
            columns,
            key_columns,
            value_json,
            key_json,
            value_avro,
            key_avro,
            unwrapped,
        })
    }

    /// The table.
    pub fn table(&self) -> &TableSchema {
        &self.table
    }

    /// The table, shared.
    pub fn table_arc(&self) -> std::sync::Arc<TableSchema> {
        std::sync::Arc::clone(&self.table)
    }

    /// `s` as an `Arc<str>`: the interned one when it is `interned[i]`.
    fn intern(&self, i: usize, s: &str) -> std::sync::Arc<str> {
        match self.interned.get(i) {
            Some(a) if &**a == s => std::sync::Arc::clone(a),
            _ => s.into(),
        }
    }

    /// The value (envelope) schema as JSON.
    pub fn value_schema(&self) -> &Json {
        &self.value_json
    }

    /// The key schema as JSON.
    pub fn key_schema(&self) -> &Json {
        &self.key_json
    }

    /// The parsed value schema.
    pub fn value_avro(&self) -> &apache_avro::Schema {
        &self.value_avro
    }

    /// The parsed key schema.
    pub fn key_avro(&self) -> &apache_avro::Schema {
        &self.key_avro
    }

    /// Appends the Avro binary of `ev`'s envelope to `out`. On error `out`
    /// may hold a partial encoding: truncate it.
    pub fn encode_value(&self, ev: &ChangeEvent, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.unwrapped {
            return self.encode_unwrapped(ev, out);
        }
        let needs = |what: &str| EncodeError {
            field: what.into(),
            reason: format!("required for op {}", ev.op),
        };
        match ev.op {
            Op::Create | Op::Read | Op::Update if ev.after.is_none() => return Err(needs("after")),
            Op::Delete if ev.before.is_none() => return Err(needs("before")),
            _ => {}
        }
        self.encode_row("before", ev.before.as_deref(), out)?;
        self.encode_row("after", ev.after.as_deref(), out)?;
        self.encode_source(&ev.source, out)?;
        put_str(out, ev.op.code());
        put_long(out, 1);
        put_long(out, ev.ts_ms);
        match &ev.transaction {
            None => put_long(out, 0),
            Some(t) => {
                put_long(out, 1);
                put_str(out, &t.id);
                put_long(out, t.total_order);
                put_long(out, t.data_collection_order);
            }
        }
        Ok(())
    }

    fn encode_unwrapped(&self, ev: &ChangeEvent, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (row, deleted) = match ev.op {
            Op::Delete => (ev.before.as_deref(), true),
            Op::Truncate => {
                return Err(EncodeError {
                    field: "__op".into(),
                    reason: "a truncate has no row to unwrap".into(),
                });
            }
            _ => (ev.after.as_deref(), false),
        };
        let row = row.ok_or_else(|| EncodeError {
            field: if deleted { "before" } else { "after" }.into(),
            reason: format!("required for op {}", ev.op),
        })?;
        let start = out.len();
        self.encode_row("row", Some(row), out)?;
        // encode_row writes the ["null", Value] branch first: not here.
        out.remove(start);
        put_str(out, ev.op.code());
        put_long(out, ev.source.ts_ms);
        out.push(u8::from(deleted));
        Ok(())
    }

    fn encode_row(
        &self,
        which: &str,
        row: Option<&[Datum]>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let Some(row) = row else {
            put_long(out, 0);
            return Ok(());
        };
        put_long(out, 1);
        if row.len() != self.columns.len() {
            return Err(EncodeError {
                field: which.into(),
                reason: format!(
                    "row has {} values, table {} has {} columns",
                    row.len(),
                    self.table.qualified_name(),
                    self.columns.len()
                ),
            });
        }
        for ((d, l), c) in row.iter().zip(&self.columns).zip(&self.table.columns) {
            encode_column(l, d, out).map_err(|reason| EncodeError {
                field: format!("{which}.{}", c.name),
                reason,
            })?;
        }
        Ok(())
    }

    /// Appends the Avro binary of the key of `row` (a full row, in table
    /// column order) to `out`.
    pub fn encode_key(&self, row: &[Datum], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for (l, &i) in self.key_columns.iter().zip(&self.table.key) {
            let c = &self.table.columns[i];
            let d = row.get(i).ok_or_else(|| EncodeError {
                field: format!("key.{}", c.name),
                reason: "missing from the row".into(),
            })?;
            encode_column(l, d, out).map_err(|reason| EncodeError {
                field: format!("key.{}", c.name),
                reason,
            })?;
        }
        Ok(())
    }

    fn encode_source(&self, s: &SourceInfo, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_str(out, &s.version);
        put_str(out, &s.connector);
        put_str(out, &s.name);
        put_long(out, s.ts_ms);
        put_long(out, 0);
        put_str(out, s.snapshot.as_str());
        put_str(out, &s.db);
        put_long(out, 0); // sequence: null
        match (&s.position, self.connector) {
            (Position::Postgres { lsn, tx_id }, Connector::Postgres) => {
                put_str(out, s.schema.as_deref().unwrap_or_default());
                put_str(out, &s.table);
                put_opt_long(out, *tx_id);
                put_opt_long(out, Some(*lsn as i64));
                put_long(out, 0); // xmin
            }
            (
                Position::Mysql {
                    file,
                    pos,
                    gtid,
                    server_id,
                    row,
                },
                Connector::Mysql,
            ) => {
                put_long(out, 1);
                put_str(out, &s.table);
                put_long(out, i64::from(*server_id));
                match gtid {
                    None => put_long(out, 0),
                    Some(g) => {
                        put_long(out, 1);
                        put_str(out, g);
                    }
                }
                put_str(out, file);
                put_long(out, *pos as i64);
                put_long(out, i64::from(*row));
                put_long(out, 0); // thread
                put_long(out, 0); // query
            }
            _ => {
                return Err(EncodeError {
                    field: "source".into(),
                    reason: format!(
                        "position {:?} does not belong to a {} source",
                        s.position,
                        self.connector.name()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Decodes an envelope written by [`encode_value`](Self::encode_value).
    pub fn decode_value(&self, buf: &[u8]) -> Result<ChangeEvent, DecodeError> {
        if self.unwrapped {
            return self.decode_unwrapped(buf);
        }
        let mut r = Reader { buf, pos: 0 };
        let before = self.decode_row(&mut r, "before")?;
        let after = self.decode_row(&mut r, "after")?;
        let source = self.decode_source(&mut r)?;
        let op_str = r.str_ref("op")?;
        let op =
            Op::from_code(op_str).ok_or_else(|| r.err("op", format!("unknown op {op_str:?}")))?;
        let ts_ms = match r.long("ts_ms")? {
            0 => 0,
            _ => r.long("ts_ms")?,
        };
        let transaction = match r.long("transaction")? {
            0 => None,
            _ => Some(TransactionInfo {
                id: r.string("transaction.id")?.into(),
                total_order: r.long("transaction.total_order")?,
                data_collection_order: r.long("transaction.data_collection_order")?,
            }),
        };
        if r.pos != buf.len() {
            return Err(r.err("envelope", format!("{} trailing bytes", buf.len() - r.pos)));
        }
        Ok(ChangeEvent {
            op,
            before,
            after,
            source: std::sync::Arc::new(source),
            ts_ms,
            transaction,
        })
    }

    /// An unwrapped record as the change it stands for: `before` holds
    /// the row of a delete, `after` the row of anything else; the source
    /// block has the table's names and the source's commit time, but no
    /// position (unwrapped records do not carry one).
    fn decode_unwrapped(&self, buf: &[u8]) -> Result<ChangeEvent, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let mut row = Vec::with_capacity(self.columns.len());
        for (l, c) in self.columns.iter().zip(&self.table.columns) {
            row.push(decode_column(l, &mut r, &c.name)?);
        }
        let op_str = r.str_ref("__op")?;
        let op =
            Op::from_code(op_str).ok_or_else(|| r.err("__op", format!("unknown op {op_str:?}")))?;
        let ts_ms = r.long("__source_ts_ms")?;
        let deleted = r.take("__deleted", 1)?[0] != 0;
        if r.pos != buf.len() {
            return Err(r.err("row", format!("{} trailing bytes", buf.len() - r.pos)));
        }
        let (op, before, after) = if deleted || op == Op::Delete {
            (Op::Delete, Some(row), None)
        } else {
            (op, None, Some(row))
        };
        let position = match self.connector {
            Connector::Postgres => Position::Postgres {
                lsn: 0,
                tx_id: None,
            },
            Connector::Mysql => Position::Mysql {
                file: String::new(),
                pos: 0,
                gtid: None,
                server_id: 0,
                row: 0,
            },
        };
        let i = |k: usize| std::sync::Arc::clone(&self.interned[k]);
        Ok(ChangeEvent {
            op,
            before,
            after,
            source: std::sync::Arc::new(SourceInfo {
                connector: i(0),
                version: i(1),
                name: i(2),
                ts_ms,
                snapshot: SnapshotFlag::False,
                db: i(3),
                schema: match self.connector {
                    Connector::Postgres => Some(i(4)),
                    Connector::Mysql => None,
                },
                table: i(5),
                position,
            }),
            ts_ms,
            transaction: None,
        })
    }

    fn decode_row(
        &self,
        r: &mut Reader<'_>,
        which: &str,
    ) -> Result<Option<Vec<Datum>>, DecodeError> {
        if r.long(which)? == 0 {
            return Ok(None);
        }
        let mut row = Vec::with_capacity(self.columns.len());
        for (l, c) in self.columns.iter().zip(&self.table.columns) {
            row.push(decode_column(l, r, &c.name)?);
        }
        Ok(Some(row))
    }

    /// Decodes a key written by [`encode_key`](Self::encode_key): the key
    /// columns' values, in key order.
    pub fn decode_key(&self, buf: &[u8]) -> Result<Vec<Datum>, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let mut out = Vec::with_capacity(self.key_columns.len());
        for (l, &i) in self.key_columns.iter().zip(&self.table.key) {
            out.push(decode_column(l, &mut r, &self.table.columns[i].name)?);
        }
        Ok(out)
    }

    fn decode_source(&self, r: &mut Reader<'_>) -> Result<SourceInfo, DecodeError> {
        let version = r.str_ref("source.version")?;
        let connector = r.str_ref("source.connector")?;
        let name = r.str_ref("source.name")?;
        let ts_ms = r.long("source.ts_ms")?;
        let snapshot = match r.long("source.snapshot")? {
            0 => match r.string("source.snapshot")?.as_str() {
                "true" => SnapshotFlag::True,
                "last" => SnapshotFlag::Last,
                "last_in_data_collection" => SnapshotFlag::LastInDataCollection,
                _ => SnapshotFlag::False,
            },
            _ => SnapshotFlag::False,
        };
        let db = r.str_ref("source.db")?;
        if r.long("source.sequence")? != 0 {
            r.string("source.sequence")?;
        }
        let opt_long = |r: &mut Reader<'_>, what: &str| -> Result<Option<i64>, DecodeError> {
            Ok(match r.long(what)? {
                0 => None,
                _ => Some(r.long(what)?),
            })
        };
        let (schema, table, position) = match self.connector {
            Connector::Postgres => {
                let schema = r.str_ref("source.schema")?;
                let table = r.str_ref("source.table")?;
                let tx_id = opt_long(r, "source.txId")?;
                let lsn = opt_long(r, "source.lsn")?.unwrap_or(0) as u64;
                opt_long(r, "source.xmin")?;
                (Some(schema), table, Position::Postgres { lsn, tx_id })
            }
            Connector::Mysql => {
                let table = match r.long("source.table")? {
                    0 => "",
                    _ => r.str_ref("source.table")?,
                };
                let server_id = r.long("source.server_id")? as u32;
                let gtid = match r.long("source.gtid")? {
                    0 => None,
                    _ => Some(r.string("source.gtid")?),
                };
                let file = r.string("source.file")?;
                let pos = r.long("source.pos")? as u64;
                let row = r.long("source.row")? as i32;
                opt_long(r, "source.thread")?;
                if r.long("source.query")? != 0 {
                    r.string("source.query")?;
                }
                (
                    None,
                    table,
                    Position::Mysql {
                        file,
                        pos,
                        gtid,
                        server_id,
                        row,
                    },
                )
            }
        };
        Ok(SourceInfo {
            connector: self.intern(0, connector),
            version: self.intern(1, version),
            name: self.intern(2, name),
            ts_ms,
            snapshot,
            db: self.intern(3, db),
            schema: schema.map(|s| self.intern(4, s)),
            table: self.intern(5, table),
            position,
        })
    }

    /// The event as apache-avro's generic value (the slow, reference path).
    pub fn to_avro_value(&self, ev: &ChangeEvent) -> Result<AvroValue, EncodeError> {
        let row = |which: &str, row: &Option<Vec<Datum>>| -> Result<AvroValue, EncodeError> {
            Ok(match row {
                None => AvroValue::Union(0, Box::new(AvroValue::Null)),
                Some(r) => {
                    let fields = r
                        .iter()
                        .zip(&self.columns)
                        .zip(&self.table.columns)
                        .map(|((d, l), c)| {
                            column_avro(l, d)
                                .map(|v| (to_avro_name(&c.name), v))
                                .map_err(|reason| EncodeError {
                                    field: format!("{which}.{}", c.name),
                                    reason,
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    AvroValue::Union(1, Box::new(AvroValue::Record(fields)))
                }
            })
        };
        let s = &ev.source;
        let opt_long = |v: Option<i64>| match v {
            None => AvroValue::Union(0, Box::new(AvroValue::Null)),
            Some(v) => AvroValue::Union(1, Box::new(AvroValue::Long(v))),
        };
        let opt_str = |v: Option<&str>| match v {
            None => AvroValue::Union(0, Box::new(AvroValue::Null)),
            Some(v) => AvroValue::Union(1, Box::new(AvroValue::String(v.to_string()))),
        };
        let mut source = vec![
            (
                "version".to_string(),
                AvroValue::String(s.version.to_string()),
            ),
            (
                "connector".into(),
                AvroValue::String(s.connector.to_string()),
            ),
            ("name".into(), AvroValue::String(s.name.to_string())),
            ("ts_ms".into(), AvroValue::Long(s.ts_ms)),
            (
                "snapshot".into(),
                AvroValue::Union(0, Box::new(AvroValue::String(s.snapshot.as_str().into()))),
            ),
            ("db".into(), AvroValue::String(s.db.to_string())),
            ("sequence".into(), opt_str(None)),
        ];
        match &s.position {
            Position::Postgres { lsn, tx_id } => source.extend([
                (
                    "schema".to_string(),
                    AvroValue::String(s.schema.as_deref().unwrap_or_default().to_string()),
                ),
                ("table".into(), AvroValue::String(s.table.to_string())),
                ("txId".into(), opt_long(*tx_id)),
                ("lsn".into(), opt_long(Some(*lsn as i64))),
                ("xmin".into(), opt_long(None)),
            ]),
            Position::Mysql {
                file,
                pos,
                gtid,
                server_id,
                row,
            } => source.extend([
                ("table".to_string(), opt_str(Some(&s.table))),
                ("server_id".into(), AvroValue::Long(i64::from(*server_id))),
                ("gtid".into(), opt_str(gtid.as_deref())),
                ("file".into(), AvroValue::String(file.clone())),
                ("pos".into(), AvroValue::Long(*pos as i64)),
                ("row".into(), AvroValue::Int(*row)),
                ("thread".into(), opt_long(None)),
                ("query".into(), opt_str(None)),
            ]),
        }
        let transaction = match &ev.transaction {
            None => AvroValue::Union(0, Box::new(AvroValue::Null)),
            Some(t) => AvroValue::Union(
                1,
                Box::new(AvroValue::Record(vec![
                    ("id".into(), AvroValue::String(t.id.to_string())),
                    ("total_order".into(), AvroValue::Long(t.total_order)),
                    (
                        "data_collection_order".into(),
                        AvroValue::Long(t.data_collection_order),
                    ),
                ])),
            ),
        };
        Ok(AvroValue::Record(vec![
            ("before".into(), row("before", &ev.before)?),
            ("after".into(), row("after", &ev.after)?),
            ("source".into(), AvroValue::Record(source)),
            ("op".into(), AvroValue::String(ev.op.code().into())),
            ("ts_ms".into(), opt_long(Some(ev.ts_ms))),
            ("transaction".into(), transaction),
        ]))
    }
}

fn type_error(ty: &ColumnType, d: &Datum) -> String {
    format!("a {} value does not fit column type {ty:?}", datum_kind(d))
}

fn datum_kind(d: &Datum) -> &'static str {
    match d {
        Datum::Null => "null",
        Datum::Unavailable => "unavailable",
        Datum::Bool(_) => "boolean",
        Datum::Int(_) => "int",
        Datum::Long(_) => "long",
        Datum::Float(_) => "float",
        Datum::Double(_) => "double",
        Datum::Text(_) => "text",
        Datum::Bytes(_) => "bytes",
        Datum::Decimal { .. } => "decimal",
        Datum::NumericSpecial(_) => "numeric special",
        Datum::Uuid(_) => "uuid",
        Datum::Interval { .. } => "interval",
        Datum::Point { .. } => "point",
        Datum::Array(_) => "array",
    }
}

fn special_index(s: NumericSpecial) -> i64 {
    match s {
        NumericSpecial::NaN => 0,
        NumericSpecial::PositiveInfinity => 1,
        NumericSpecial::NegativeInfinity => 2,
    }
}

fn encode_column(l: &Layout, d: &Datum, out: &mut Vec<u8>) -> Result<(), String> {
    let branch = |b: Option<u8>, what: &str| {
        b.ok_or_else(|| match what {
            "null" => "null in a NOT NULL column".to_string(),
            "unavailable" => "value marked unavailable, but the column cannot be".to_string(),
            _ => format!("{what} value does not fit column type {:?}", l.ty),
        })
    };
    match d {
        Datum::Null => {
            put_long(out, i64::from(branch(l.null, "null")?));
            Ok(())
        }
        Datum::Unavailable => {
            put_long(out, i64::from(branch(l.unavailable, "unavailable")?));
            Ok(())
        }
        Datum::NumericSpecial(s) => {
            put_long(out, i64::from(branch(l.special, "a numeric special")?));
            put_long(out, special_index(*s));
            Ok(())
        }
        Datum::Text(s) if l.text.is_some() => {
            put_long(out, i64::from(branch(l.text, "text")?));
            put_str(out, s);
            Ok(())
        }
        _ => {
            if l.union {
                put_long(out, i64::from(l.main));
            }
            encode_main(&l.ty, d, out)
        }
    }
}

fn encode_main(ty: &ColumnType, d: &Datum, out: &mut Vec<u8>) -> Result<(), String> {
    match (ty, d) {
        (ColumnType::Boolean, Datum::Bool(b)) => out.push(u8::from(*b)),
        (ColumnType::Int | ColumnType::Date | ColumnType::Year, Datum::Int(v)) => {
            put_long(out, i64::from(*v))
        }
        (
            ColumnType::Long
            | ColumnType::Time
            | ColumnType::Duration
            | ColumnType::Timestamp
            | ColumnType::TimestampTz,
            Datum::Long(v),
        ) => put_long(out, *v),
        (ColumnType::Float, Datum::Float(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (ColumnType::Double, Datum::Double(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (
            ColumnType::Text
            | ColumnType::Json
            | ColumnType::Enum(_)
            | ColumnType::Set(_)
            | ColumnType::TimeTz,
            Datum::Text(s),
        ) => put_str(out, s),
        (ColumnType::Bytes | ColumnType::Bits(_) | ColumnType::Geometry, Datum::Bytes(b)) => {
            put_bytes(out, b)
        }
        (ColumnType::UnsignedLong, Datum::Decimal { unscaled, scale }) => {
            check_scale(0, *scale)?;
            check_unscaled(unscaled)?;
            put_bytes(out, unscaled)
        }
        (ColumnType::Money, Datum::Decimal { unscaled, scale }) => {
            check_scale(2, *scale)?;
            check_unscaled(unscaled)?;
            put_bytes(out, unscaled)
        }
        (ColumnType::Decimal { scale: want, .. }, Datum::Decimal { unscaled, scale }) => {
            check_scale(*want, *scale)?;
            check_unscaled(unscaled)?;
            put_bytes(out, unscaled)
        }
        (ColumnType::VariableDecimal, Datum::Decimal { unscaled, scale }) => {
            let scale =
                i32::try_from(*scale).map_err(|_| format!("decimal scale {scale} is too large"))?;
            check_unscaled(unscaled)?;
            put_long(out, i64::from(scale));
            put_bytes(out, unscaled);
        }
        (ColumnType::Uuid, Datum::Uuid(u)) => {
            put_long(out, 36);
            write_uuid(out, u);
        }
        (
            ColumnType::Interval,
            Datum::Interval {
                months,
                days,
                micros,
            },
        ) => {
            put_long(out, i64::from(*months));
            put_long(out, i64::from(*days));
            put_long(out, *micros);
        }
        (ColumnType::Point, Datum::Point { x, y }) => {
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
        }
        (ColumnType::Array(inner), Datum::Array(items)) => {
            if !items.is_empty() {
                put_long(out, items.len() as i64);
                for it in items {
                    match it {
                        Datum::Null => put_long(out, 0),
                        _ => {
                            put_long(out, 1);
                            encode_main(inner, it, out)?;
                        }
                    }
                }
            }
            put_long(out, 0);
        }
        _ => return Err(type_error(ty, d)),
    }
    Ok(())
}

/// An empty byte string is no two's complement number (Java's BigInteger
/// refuses it): zero is `[0]`.
fn check_unscaled(unscaled: &[u8]) -> Result<(), String> {
    if unscaled.is_empty() {
        Err("decimal with no bytes (zero is [0])".into())
    } else {
        Ok(())
    }
}

fn check_scale(want: u32, got: u32) -> Result<(), String> {
    if want == got {
        Ok(())
    } else {
        Err(format!(
            "decimal with scale {got} in a column of scale {want}"
        ))
    }
}

fn write_uuid(out: &mut Vec<u8>, u: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let h = std::str::from_utf8(&hex[2 * i..2 * i + 2]).ok()?;
        *o = u8::from_str_radix(h, 16).ok()?;
    }
    Some(out)
}

fn column_avro(l: &Layout, d: &Datum) -> Result<AvroValue, String> {
    let wrap = |idx: Option<u8>, v: AvroValue, what: &str| -> Result<AvroValue, String> {
        let i = idx.ok_or_else(|| format!("{what} does not fit column type {:?}", l.ty))?;
        Ok(if l.union {
            AvroValue::Union(u32::from(i), Box::new(v))
        } else {
            v
        })
    };
    match d {
        Datum::Null => wrap(l.null, AvroValue::Null, "null"),
        Datum::Unavailable => wrap(l.unavailable, AvroValue::Record(vec![]), "unavailable"),
        Datum::NumericSpecial(s) => {
            let i = special_index(*s);
            let sym = ["NaN", "POSITIVE_INFINITY", "NEGATIVE_INFINITY"][i as usize];
            wrap(
                l.special,
                AvroValue::Enum(i as u32, sym.into()),
                "numeric special",
            )
        }
        Datum::Text(s) if l.text.is_some() => {
            wrap(l.text, AvroValue::String(s.clone()), "source text")
        }
        _ => wrap(Some(l.main), main_avro(&l.ty, d)?, "value"),
    }
}

fn main_avro(ty: &ColumnType, d: &Datum) -> Result<AvroValue, String> {
    Ok(match (ty, d) {
        (ColumnType::Boolean, Datum::Bool(b)) => AvroValue::Boolean(*b),
        (ColumnType::Int | ColumnType::Year, Datum::Int(v)) => AvroValue::Int(*v),
        (ColumnType::Date, Datum::Int(v)) => AvroValue::Date(*v),
        (ColumnType::Long | ColumnType::Duration, Datum::Long(v)) => AvroValue::Long(*v),
        (ColumnType::Time, Datum::Long(v)) => AvroValue::TimeMicros(*v),
        (ColumnType::Timestamp | ColumnType::TimestampTz, Datum::Long(v)) => {
            AvroValue::TimestampMicros(*v)
        }
        (ColumnType::Float, Datum::Float(v)) => AvroValue::Float(*v),
        (ColumnType::Double, Datum::Double(v)) => AvroValue::Double(*v),
        (
            ColumnType::Text
            | ColumnType::Json
            | ColumnType::Enum(_)
            | ColumnType::Set(_)
            | ColumnType::TimeTz,
            Datum::Text(s),
        ) => AvroValue::String(s.clone()),
        (ColumnType::Bytes | ColumnType::Bits(_) | ColumnType::Geometry, Datum::Bytes(b)) => {
            AvroValue::Bytes(b.clone())
        }
        (
            ColumnType::UnsignedLong | ColumnType::Money | ColumnType::Decimal { .. },
            Datum::Decimal { unscaled, .. },
        ) => AvroValue::Decimal(apache_avro::Decimal::from(unscaled.clone())),
        (ColumnType::VariableDecimal, Datum::Decimal { unscaled, scale }) => {
            AvroValue::Record(vec![
                ("scale".into(), AvroValue::Int(*scale as i32)),
                ("value".into(), AvroValue::Bytes(unscaled.clone())),
            ])
        }
        (ColumnType::Uuid, Datum::Uuid(u)) => AvroValue::Uuid(uuid::Uuid::from_bytes(*u)),
        (
            ColumnType::Interval,
            Datum::Interval {
                months,
                days,
                micros,
            },
        ) => AvroValue::Record(vec![
            ("months".into(), AvroValue::Int(*months)),
            ("days".into(), AvroValue::Int(*days)),
            ("micros".into(), AvroValue::Long(*micros)),
        ]),
        (ColumnType::Point, Datum::Point { x, y }) => AvroValue::Record(vec![
            ("x".into(), AvroValue::Double(*x)),
            ("y".into(), AvroValue::Double(*y)),
        ]),
        (ColumnType::Array(inner), Datum::Array(items)) => AvroValue::Array(
            items
                .iter()
                .map(|it| match it {
                    Datum::Null => Ok(AvroValue::Union(0, Box::new(AvroValue::Null))),
                    _ => Ok(AvroValue::Union(1, Box::new(main_avro(inner, it)?))),
                })
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err(type_error(ty, d)),
    })
}

fn decode_column(l: &Layout, r: &mut Reader<'_>, name: &str) -> Result<Datum, DecodeError> {
    if l.union {
        let b = r.long(name)?;
        let is = |x: Option<u8>| x.is_some_and(|x| i64::from(x) == b);
        if is(l.null) {
            return Ok(Datum::Null);
        }
        if is(l.unavailable) {
            return Ok(Datum::Unavailable);
        }
        if is(l.text) {
            return Ok(Datum::Text(r.string(name)?));
        }
        if is(l.special) {
            return Ok(Datum::NumericSpecial(match r.long(name)? {
                0 => NumericSpecial::NaN,
                1 => NumericSpecial::PositiveInfinity,
                2 => NumericSpecial::NegativeInfinity,
                s => return Err(r.err(name, format!("numeric special symbol {s}"))),
            }));
        }
        if b != i64::from(l.main) {
            return Err(r.err(name, format!("union branch {b} does not exist")));
        }
    }
    decode_main(&l.ty, r, name)
}

fn decode_main(ty: &ColumnType, r: &mut Reader<'_>, name: &str) -> Result<Datum, DecodeError> {
    let int = |r: &mut Reader<'_>| -> Result<i32, DecodeError> {
        let v = r.long(name)?;
        i32::try_from(v).map_err(|_| r.err(name, format!("{v} is not an int")))
    };
    Ok(match ty {
        ColumnType::Boolean => Datum::Bool(r.take(name, 1)?[0] != 0),
        ColumnType::Int | ColumnType::Date | ColumnType::Year => Datum::Int(int(r)?),
        ColumnType::Long
        | ColumnType::Time
        | ColumnType::Duration
        | ColumnType::Timestamp
        | ColumnType::TimestampTz => Datum::Long(r.long(name)?),
        ColumnType::Float => {
            let b = r.take(name, 4)?;
            Datum::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        ColumnType::Double => Datum::Double(r.double(name)?),
        ColumnType::Text
        | ColumnType::Json
        | ColumnType::Enum(_)
        | ColumnType::Set(_)
        | ColumnType::TimeTz => Datum::Text(r.string(name)?),
        ColumnType::Bytes | ColumnType::Bits(_) | ColumnType::Geometry => {
            Datum::Bytes(r.bytes(name)?.to_vec())
        }
        ColumnType::UnsignedLong => Datum::Decimal {
            unscaled: r.bytes(name)?.to_vec(),
            scale: 0,
        },
        ColumnType::Money => Datum::Decimal {
            unscaled: r.bytes(name)?.to_vec(),
            scale: 2,
        },
        ColumnType::Decimal { scale, .. } => Datum::Decimal {
            unscaled: r.bytes(name)?.to_vec(),
            scale: *scale,
        },
        ColumnType::VariableDecimal => {
            let scale = int(r)?;
            Datum::Decimal {
                scale: u32::try_from(scale)
                    .map_err(|_| r.err(name, format!("negative scale {scale}")))?,
                unscaled: r.bytes(name)?.to_vec(),
            }
        }
        ColumnType::Uuid => {
            let s = r.string(name)?;
            Datum::Uuid(parse_uuid(&s).ok_or_else(|| r.err(name, format!("{s:?} is not a uuid")))?)
        }
        ColumnType::Interval => Datum::Interval {
            months: int(r)?,
            days: int(r)?,
            micros: r.long(name)?,
        },
        ColumnType::Point => Datum::Point {
            x: r.double(name)?,
            y: r.double(name)?,
        },
        ColumnType::Array(inner) => {
            let mut items = Vec::new();
            loop {
                let mut n = r.long(name)?;
                if n == 0 {
                    break;
                }
                if n < 0 {
                    n = n
                        .checked_neg()
                        .ok_or_else(|| r.err(name, "bad array block count".into()))?;
                    r.long(name)?; // block size in bytes
                }
                // Every item takes at least one byte: a larger count is a lie.
                if n as u64 > (r.buf.len() - r.pos) as u64 {
                    return Err(r.err(
                        name,
                        format!("array block of {n} items in {} bytes", r.buf.len() - r.pos),
                    ));
                }
                for _ in 0..n {
                    items.push(match r.long(name)? {
                        0 => Datum::Null,
                        _ => decode_main(inner, r, name)?,
                    });
                }
            }
            Datum::Array(items)
        }
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &str, reason: String) -> DecodeError {
        DecodeError {
            what: what.into(),
            at: self.pos,
            reason,
        }
    }

    #[inline]
    fn long(&mut self, what: &str) -> Result<i64, DecodeError> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err(what, "truncated varint".into()));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
            shift += 7;
            if shift > 63 {
                return Err(self.err(what, "varint longer than 10 bytes".into()));
            }
        }
    }

    fn take(&mut self, what: &str, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.err(
                what,
                format!("needs {n} bytes, {} left", self.buf.len() - self.pos),
            ));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let n = self.long(what)?;
        let n = usize::try_from(n).map_err(|_| self.err(what, format!("negative length {n}")))?;
        self.take(what, n)
    }

    fn str_ref(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map_err(|_| self.err(what, "not UTF-8".into()))
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(what, "not UTF-8".into()))
    }

    fn double(&mut self, what: &str) -> Result<f64, DecodeError> {
        let b = self.take(what, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
}

#[inline]
fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_opt_long(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => put_long(out, 0),
        Some(v) => {
            put_long(out, 1);
            put_long(out, v);
        }
    }
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

#[inline]
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}
