//! The change event every source produces and every sink consumes, and
//! the table shape that gives its values meaning.
//!
//! The model follows Debezium's envelope (`before`, `after`, `source`,
//! `op`, `ts_ms`, `transaction`) so that consumers written for Debezium
//! topics read ours; `tributary-schemas` maps it to Avro.

use std::fmt;
use std::sync::Arc;

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Insert (`c`).
    Create,
    /// Update (`u`).
    Update,
    /// Delete (`d`).
    Delete,
    /// Row read by a snapshot (`r`).
    Read,
    /// Table truncated (`t`).
    Truncate,
}

impl Op {
    /// Debezium's one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }

    /// Parses Debezium's one-letter code.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Special values of PostgreSQL's numeric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumericSpecial {
    /// Not a number.
    NaN,
    /// +Infinity.
    PositiveInfinity,
    /// -Infinity.
    NegativeInfinity,
}

/// One column value. Each [`ColumnType`] accepts the variants its doc
/// names; anything else is a type error at encoding time.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// SQL NULL.
    Null,
    /// The source could not see the value (PostgreSQL unchanged TOAST).
    /// Never data: sinks leave the stored value as it is.
    Unavailable,
    /// boolean, bit(1).
    Bool(bool),
    /// 8, 16, 24 and 32-bit integers, YEAR, date as days since the epoch.
    Int(i32),
    /// 64-bit integers; times and timestamps in microseconds.
    Long(i64),
    /// real / FLOAT.
    Float(f32),
    /// double precision / DOUBLE.
    Double(f64),
    /// Text, JSON, enum labels, SET members joined by commas, inet,
    /// time with time zone.
    Text(String),
    /// Binary strings, bit strings, geometry as WKB.
    Bytes(Vec<u8>),
    /// An exact decimal: `unscaled * 10^-scale`, the unscaled value as
    /// big-endian two's complement bytes (Avro's decimal encoding).
    Decimal {
        /// Big-endian two's complement.
        unscaled: Vec<u8>,
        /// Digits after the point.
        scale: u32,
    },
    /// NaN or infinity of a PostgreSQL numeric.
    NumericSpecial(NumericSpecial),
    /// UUID.
    Uuid([u8; 16]),
    /// An interval: months, days and microseconds kept apart, as
    /// PostgreSQL does (a month is not a fixed number of days).
    Interval {
        /// Months.
        months: i32,
        /// Days.
        days: i32,
        /// Microseconds.
        micros: i64,
    },
    /// A 2-D point.
    Point {
        /// x.
        x: f64,
        /// y.
        y: f64,
    },
    /// An array (one dimension; elements may be NULL).
    Array(Vec<Datum>),
}

/// The portable column types the Avro mapping knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// boolean, bit(1): [`Datum::Bool`].
    Boolean,
    /// Integers that fit 32 bits signed (TINYINT..INT, unsigned up to
    /// MEDIUMINT): [`Datum::Int`].
    Int,
    /// 64-bit signed (BIGINT, INT UNSIGNED): [`Datum::Long`].
    Long,
    /// BIGINT UNSIGNED, as decimal(20,0): [`Datum::Decimal`] with scale 0.
    UnsignedLong,
    /// real, FLOAT: [`Datum::Float`].
    Float,
    /// double precision, DOUBLE: [`Datum::Double`].
    Double,
    /// numeric(p,s)/DECIMAL(p,s): [`Datum::Decimal`] with this scale;
    /// [`Datum::NumericSpecial`] when `specials`.
    Decimal {
        /// Precision.
        precision: u32,
        /// Scale.
        scale: u32,
        /// PostgreSQL numeric: NaN and infinities can occur.
        specials: bool,
    },
    /// numeric without precision: [`Datum::Decimal`] with any scale, or
    /// [`Datum::NumericSpecial`].
    VariableDecimal,
    /// money, as decimal(19, 2): [`Datum::Decimal`].
    Money,
    /// char, varchar, text, inet, cidr, macaddr...: [`Datum::Text`].
    Text,
    /// json, jsonb, JSON (the document as text): [`Datum::Text`].
    Json,
    /// An enum, with its labels: [`Datum::Text`].
    Enum(Vec<String>),
    /// MySQL SET, with its members: [`Datum::Text`] (members joined by `,`).
    Set(Vec<String>),
    /// bytea, BLOB, BINARY: [`Datum::Bytes`].
    Bytes,
    /// bit(n), n > 1: [`Datum::Bytes`], least significant byte first.
    Bits(u32),
    /// Geometry as WKB, or as EWKB (the SRID inside, as PostGIS writes
    /// it) when its SRID is not 0: [`Datum::Bytes`].
    Geometry,
    /// date, days since 1970-01-01: [`Datum::Int`].
    Date,
    /// time without time zone, microseconds since midnight: [`Datum::Long`].
    Time,
    /// MySQL TIME, a signed duration in microseconds (may be negative or
    /// over 24 hours): [`Datum::Long`].
    Duration,
    /// time with time zone, ISO-8601 text normalised to UTC: [`Datum::Text`].
    TimeTz,
    /// timestamp without time zone, microseconds since the epoch (wall
    /// clock, no zone): [`Datum::Long`].
    Timestamp,
    /// timestamp with time zone, microseconds since the epoch in UTC:
    /// [`Datum::Long`].
    TimestampTz,
    /// interval: [`Datum::Interval`].
    Interval,
    /// uuid: [`Datum::Uuid`].
    Uuid,
    /// YEAR: [`Datum::Int`].
    Year,
    /// point: [`Datum::Point`].
    Point,
    /// One-dimensional array of the element type: [`Datum::Array`].
    Array(Box<ColumnType>),
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    /// Name as in the database.
    pub name: String,
    /// Portable type.
    pub ty: ColumnType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Whether the source may report the value as unavailable (PostgreSQL
    /// TOAST-able types).
    pub may_be_unavailable: bool,
    /// The database's own type name, for messages and target DDL.
    pub db_type: String,
}

/// A table's shape at some point of the change stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableSchema {
    /// Database (PostgreSQL database or MySQL schema).
    pub database: String,
    /// PostgreSQL schema; for MySQL, the database again.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key (or replica identity).
    pub key: Vec<usize>,
}

impl TableSchema {
    /// `schema.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// Where in the source's change stream an event comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// PostgreSQL: commit LSN of the transaction and its id.
    Postgres {
        /// LSN (of the change, or of the commit for ordering).
        lsn: u64,
        /// Transaction id.
        tx_id: Option<i64>,
    },
    /// MySQL/MariaDB: binlog file and position, and GTID if any.
    Mysql {
        /// Binlog file name.
        file: String,
        /// Position in the file.
        pos: u64,
        /// GTID of the transaction.
        gtid: Option<String>,
        /// Server id of the origin.
        server_id: u32,
        /// Row number within the event.
        row: i32,
    },
}

/// Debezium's snapshot flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFlag {
    /// Streaming, not a snapshot.
    False,
    /// A snapshot row.
    True,
    /// The last row of a snapshot.
    Last,
    /// The last row of one table of a snapshot (Debezium's
    /// `last_in_data_collection`).
    LastInDataCollection,
}

impl SnapshotFlag {
    /// Debezium's string form.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotFlag::False => "false",
            SnapshotFlag::True => "true",
            SnapshotFlag::Last => "last",
            SnapshotFlag::LastInDataCollection => "last_in_data_collection",
        }
    }
}

/// The `source` block of an event. Its strings are shared: every event
/// of a table carries the same ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// `postgresql` or `mysql`.
    pub connector: Arc<str>,
    /// Tributary's version.
    pub version: Arc<str>,
    /// The source's configured name (the topic prefix).
    pub name: Arc<str>,
    /// When the change was made in the database (commit time), ms.
    pub ts_ms: i64,
    /// Snapshot flag.
    pub snapshot: SnapshotFlag,
    /// Database.
    pub db: Arc<str>,
    /// Schema (PostgreSQL) — None for MySQL.
    pub schema: Option<Arc<str>>,
    /// Table.
    pub table: Arc<str>,
    /// Position.
    pub position: Position,
}

/// The `transaction` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    /// Transaction id as text (PostgreSQL `txid:lsn`, MySQL GTID).
    pub id: Arc<str>,
    /// Position of the event among all events of the transaction, from 1.
    pub total_order: i64,
    /// Position among the events of the same table, from 1.
    pub data_collection_order: i64,
}

/// One change to one row (or a truncate of a table).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// What happened.
    pub op: Op,
    /// Row before (updates with full replica identity, deletes); one
    /// datum per column of the table schema.
    pub before: Option<Vec<Datum>>,
    /// Row after (creates, updates, snapshot reads).
    pub after: Option<Vec<Datum>>,
    /// Where it comes from.
    pub source: Arc<SourceInfo>,
    /// When Tributary processed it, ms.
    pub ts_ms: i64,
    /// Its transaction, when known.
    pub transaction: Option<TransactionInfo>,
}
