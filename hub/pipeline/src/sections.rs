//! `sources[i]` and `sinks[i]`: one type per kind, each holding exactly
//! its kind's fields, checked and resolved when the file is read
//! (connection settings merged, names and templates defaulted). What a
//! section does, it does through methods ([`SourceSection`]'s in
//! [`crate::source`], [`SinkSection::build`] in [`crate::targets`]), so
//! nothing above them branches on kinds.
//!
//! A section is read in two steps. Serde reads it flat ([`RawSource`],
//! [`RawSink`]: every kind's fields, each optional and located), because
//! serde-saphyr cannot keep the location of a field inside an internally
//! tagged enum and every error must name its line and column. The
//! conversion then refuses a field of another kind at that field's
//! location (`sources[0].slot: not a field of kind mysql`) and builds the
//! kind's type.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};
use tributary_core::changes::TableMap;
use tributary_postgres_conn::ConnectConfig;
use tributary_postgres_conn::tls::SslMode;

/// A value that must not be shown: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Snapshot modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotName {
    /// Read the tables when the slot is new, then stream.
    #[default]
    Initial,
    /// Only stream.
    Never,
    /// Read the tables and stop.
    InitialOnly,
    /// As initial, and again when the position was lost.
    WhenNeeded,
}

/// What a source does with a table it cannot capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOnError {
    /// Stop in state `failed` until restarted.
    #[default]
    Stop,
    /// Set only that table aside until `tributary tables resume`.
    Quarantine,
    /// Write each row that cannot be captured to `<source>.dlq`.
    Dlq,
}

impl SourceOnError {
    /// The capture engine's setting of this name.
    pub fn engine(self) -> tributary_capture::OnError {
        match self {
            Self::Stop => tributary_capture::OnError::Stop,
            Self::Quarantine => tributary_capture::OnError::Quarantine,
            Self::Dlq => tributary_capture::OnError::Dlq,
        }
    }
}

impl SnapshotName {
    /// The capture engine's mode of this name.
    pub fn mode(self) -> tributary_capture::SnapshotMode {
        use tributary_capture::SnapshotMode as M;
        match self {
            SnapshotName::Initial => M::Initial,
            SnapshotName::Never => M::Never,
            SnapshotName::InitialOnly => M::InitialOnly,
            SnapshotName::WhenNeeded => M::WhenNeeded,
        }
    }
}

/// `tables:`: `schema.table` patterns, `*` matching any run of
/// characters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesSection {
    /// Tables to capture.
    pub include: Vec<Spanned<String>>,
    /// Tables to leave out, of those included.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
}

impl TablesSection {
    /// Whether `schema.table` (or `database.table`) is captured.
    pub fn selects(&self, schema: &str, table: &str) -> bool {
        use tributary_core::pattern::matches;
        let name = format!("{schema}.{table}");
        self.include.iter().any(|p| matches(&p.value, &name))
            && !self.exclude.iter().any(|p| matches(&p.value, &name))
    }

    /// The include patterns, joined by `, ` (for messages).
    pub fn included(&self) -> String {
        let pats: Vec<&str> = self.include.iter().map(|p| p.value.as_str()).collect();
        pats.join(", ")
    }
}

/// `sources[i]`: what every source has, and its kind's own fields.
#[derive(Debug, Clone)]
pub struct SourceSection {
    /// Unique name: the topic prefix.
    pub name: String,
    /// Which tables.
    pub tables: TablesSection,
    /// Snapshot mode.
    pub snapshot: SnapshotName,
    /// Topic per table, from `{source}`, `{schema}`, `{table}`.
    pub topic: String,
    /// Heartbeat interval; 0 turns heartbeats off.
    pub heartbeat_ms: u64,
    /// Rows per key range of a big table's snapshot (mysql: rows per
    /// query of the primary-key ordered read).
    pub snapshot_chunk_rows: u64,
    /// What it does with a table it cannot capture.
    pub on_error: SourceOnError,
    /// What it reads, and how.
    pub kind: SourceKind,
}

/// A source's kind, with that kind's fields.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// PostgreSQL logical replication (`kind: postgres`).
    Postgres(Box<PostgresSection>),
    /// MySQL/MariaDB row binlog (`kind: mysql`).
    Mysql(MysqlSection),
}

impl SourceKind {
    /// The name YAML gives it.
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceKind::Postgres(_) => "postgres",
            SourceKind::Mysql(_) => "mysql",
        }
    }
}

/// `kind: postgres`.
#[derive(Debug, Clone)]
pub struct PostgresSection {
    /// Where and as whom (`url`, then `host`, `port`, `user`,
    /// `password`, `database`, `sslmode`, `sslrootcert` over it).
    pub connect: ConnectConfig,
    /// Publication (default `tributary_<name>`).
    pub publication: String,
    /// Replication slot (default `tributary_<name>`).
    pub slot: String,
    /// pgoutput protocol version (1 or 2).
    pub protocol: u32,
    /// Parallel snapshot connections.
    pub snapshot_workers: usize,
    /// Retained WAL (bytes) past which the slot is reported in the log.
    pub max_retained_wal: u64,
}

/// `kind: mysql`.
#[derive(Debug, Clone)]
pub struct MysqlSection {
    /// `mysql://user:password@host:port/database` (`url`, or one made of
    /// `host`, `port`, `user`, `password`, `database`).
    pub url: Secret,
    /// Our replica server id, unique among the server's replicas
    /// (default: derived from the source name).
    pub server_id: u32,
}

/// What a sink does with a record it cannot apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Pause at the committed offset, the error in status.
    #[default]
    Stop,
    /// Write it with error headers to `<sink>.dlq` and go on.
    Dlq,
    /// Count it, log it, and go on.
    Skip,
}

/// How the Redis sink stores a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFormat {
    /// A hash, a field per column.
    Hash,
    /// A JSON object in a string.
    Json,
}

/// `sinks[i]`: what every sink has, and its kind's own fields.
#[derive(Debug, Clone)]
pub struct SinkSection {
    /// Unique name.
    pub name: String,
    /// Topics or patterns (`*`).
    pub topics: Vec<String>,
    /// Consumer group (default: the sink's name).
    pub group: Option<String>,
    /// Records per write, as configured.
    pub batch_size: Option<u32>,
    /// At most this long before a partial batch is written.
    pub flush_interval_ms: u64,
    /// Workers of the consumer group (a topic's partitions split among
    /// them).
    pub parallelism: u32,
    /// Records it cannot apply.
    pub on_error: OnError,
    /// An attempt to write a batch that takes longer is abandoned and
    /// retried.
    pub timeout_ms: u64,
    /// Batches written at once across the sink's workers (default: its
    /// parallelism).
    pub max_in_flight: Option<u32>,
    /// At most this many batches per second per worker.
    pub max_batches_per_second: Option<u32>,
    /// What it writes to, and how.
    pub kind: SinkKind,
}

impl SinkSection {
    /// Records per write: as configured, else 10000 for databases and
    /// search indexes (a transaction and a bulk load per batch cost the
    /// same for 1000 rows as for 10000; a batch is only as large as the
    /// backlog, so this costs no latency) and 1000 for Redis (one script
    /// per batch holds Redis for its duration).
    pub fn batch_size(&self) -> usize {
        let default = match self.kind {
            SinkKind::Redis(_) => 1000,
            SinkKind::Postgres(_) | SinkKind::Mysql(_) | SinkKind::Tantivy(_) => 10_000,
        };
        self.batch_size.unwrap_or(default).max(1) as usize
    }
}

/// A sink's kind, with that kind's fields.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// A tantivy search index (`kind: tantivy`).
    Tantivy(TantivyTarget),
    /// Redis (`kind: redis`).
    Redis(RedisTarget),
    /// A PostgreSQL database (`kind: postgres`).
    Postgres(PostgresTarget),
    /// A MySQL/MariaDB database (`kind: mysql`).
    Mysql(MysqlTarget),
}

impl SinkKind {
    /// The name YAML gives it.
    pub fn as_str(&self) -> &'static str {
        match self {
            SinkKind::Tantivy(_) => "tantivy",
            SinkKind::Redis(_) => "redis",
            SinkKind::Postgres(_) => "postgres",
            SinkKind::Mysql(_) => "mysql",
        }
    }
}

/// `kind: tantivy`.
#[derive(Debug, Clone)]
pub struct TantivyTarget {
    /// The index directory (relative paths are relative to the pipeline
    /// file; default `<log.dir>/search/<name>`).
    pub path: PathBuf,
    /// How text is split into terms; fixed when the index is created.
    pub analyzer: tributary_sink_tantivy::Analyzer,
}

/// `kind: redis`.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// `redis://host:port/db` (default `redis://127.0.0.1:6379`).
    pub url: Secret,
    /// Prepended to every key.
    pub prefix: String,
    /// The key template (`{schema}.{table}:{key}`; `{key}` is the key
    /// columns joined by `:`, `{<column>}` one of them).
    pub key: String,
    /// A hash (a field per column) or JSON (one string).
    pub format: tributary_sink_redis::RowFormat,
    /// Expire written keys after this many seconds.
    pub ttl_seconds: Option<u64>,
    /// Publish each changed key to this channel.
    pub publish: Option<String>,
}

/// `kind: postgres`.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    /// Where and as whom.
    pub connect: ConnectConfig,
    /// Target table names and column renames.
    pub map: TableMap,
    /// Create missing tables and add columns the source gains.
    pub create_tables: bool,
}

/// `kind: mysql`.
#[derive(Debug, Clone)]
pub struct MysqlTarget {
    /// `mysql://user:password@host:port/database`.
    pub url: Secret,
    /// Target table names and column renames.
    pub map: TableMap,
    /// Create missing tables and add columns the source gains.
    pub create_tables: bool,
}

/// A section the conversion refused: where, which field, why.
#[derive(Debug, Clone)]
pub(crate) struct Invalid {
    pub at: Option<Location>,
    /// The field, or empty for the section itself.
    pub field: String,
    pub message: String,
}

impl Invalid {
    fn at(at: Location, field: &str, message: impl Into<String>) -> Self {
        Self {
            at: Some(at),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Source kinds as YAML names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SourceKindName {
    Postgres,
    Mysql,
}

impl SourceKindName {
    fn as_str(self) -> &'static str {
        match self {
            SourceKindName::Postgres => "postgres",
            SourceKindName::Mysql => "mysql",
        }
    }
}

/// `sources[i]` as serde reads it: every kind's fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    name: Spanned<String>,
    kind: SourceKindName,
    #[serde(default)]
    url: Option<Spanned<Secret>>,
    #[serde(default)]
    host: Option<Spanned<String>>,
    #[serde(default)]
    port: Option<Spanned<u16>>,
    #[serde(default)]
    user: Option<Spanned<String>>,
    #[serde(default)]
    password: Option<Spanned<Secret>>,
    #[serde(default)]
    database: Option<Spanned<String>>,
    #[serde(default)]
    sslmode: Option<Spanned<String>>,
    #[serde(default)]
    sslrootcert: Option<Spanned<PathBuf>>,
    tables: TablesSection,
    #[serde(default)]
    publication: Option<Spanned<String>>,
    #[serde(default)]
    slot: Option<Spanned<String>>,
    #[serde(default)]
    snapshot: SnapshotName,
    #[serde(default)]
    topic: Option<Spanned<String>>,
    #[serde(default = "default_heartbeat_ms")]
    heartbeat_ms: u64,
    #[serde(default)]
    protocol: Option<Spanned<u32>>,
    #[serde(default)]
    snapshot_workers: Option<Spanned<usize>>,
    #[serde(default = "default_chunk_rows")]
    snapshot_chunk_rows: u64,
    #[serde(default)]
    server_id: Option<Spanned<u32>>,
    #[serde(default)]
    on_error: Option<Spanned<SourceOnError>>,
    #[serde(default)]
    max_retained_wal: Option<Spanned<RawSize>>,
}

/// A size: bytes, or text such as `1GiB`, `512MB`, `64kB`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

/// Bytes of a size such as `1GiB`, `512MB`, `64kB` or `1048576`; units
/// count by 1024, as PostgreSQL's do.
fn size_bytes(s: &RawSize) -> Option<u64> {
    let text = match s {
        RawSize::Bytes(n) => return Some(*n),
        RawSize::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

fn default_heartbeat_ms() -> u64 {
    10_000
}
fn default_chunk_rows() -> u64 {
    250_000
}

/// Where a given field was written.
fn at<T>(field: &Option<Spanned<T>>) -> Option<Location> {
    field.as_ref().map(|s| s.referenced)
}

fn value<T>(field: Option<Spanned<T>>) -> Option<T> {
    field.map(|s| s.value)
}

/// The first field given that `kind` does not have.
fn foreign<K: Copy + PartialEq>(
    kind: K,
    name: &str,
    fields: &[(&str, Option<Location>, &[K])],
) -> Result<(), Invalid> {
    match fields
        .iter()
        .find(|(_, given, kinds)| given.is_some() && !kinds.contains(&kind))
    {
        Some((field, Some(loc), _)) => Err(Invalid::at(
            *loc,
            field,
            format!("not a field of kind {name}"),
        )),
        _ => Ok(()),
    }
}

impl TryFrom<RawSource> for SourceSection {
    type Error = Invalid;

    fn try_from(r: RawSource) -> Result<Self, Invalid> {
        use SourceKindName::{Mysql, Postgres};
        let name = r.name.value.clone();
        if !valid_name(&name) {
            return Err(Invalid::at(
                r.name.referenced,
                "name",
                format!("{name:?}: use letters, digits, `_` and `-` (it prefixes topic names)"),
            ));
        }
        foreign(
            r.kind,
            r.kind.as_str(),
            &[
                ("sslmode", at(&r.sslmode), &[Postgres]),
                ("sslrootcert", at(&r.sslrootcert), &[Postgres]),
                ("publication", at(&r.publication), &[Postgres]),
                ("slot", at(&r.slot), &[Postgres]),
                ("protocol", at(&r.protocol), &[Postgres]),
                ("snapshot_workers", at(&r.snapshot_workers), &[Postgres]),
                ("max_retained_wal", at(&r.max_retained_wal), &[Postgres]),
                ("server_id", at(&r.server_id), &[Mysql]),
            ],
        )?;
        if r.tables.include.is_empty() {
            return Err(Invalid::at(
                r.name.referenced,
                "tables.include",
                "needs at least one `schema.table` pattern",
            ));
        }
        let (include, exclude) = (&r.tables.include, &r.tables.exclude);
        let patterns = include
            .iter()
            .enumerate()
            .map(|(j, p)| (format!("tables.include[{j}]"), p))
            .chain(
                exclude
                    .iter()
                    .enumerate()
                    .map(|(j, p)| (format!("tables.exclude[{j}]"), p)),
            );
        for (field, pat) in patterns {
            if !pat.value.contains('.') {
                return Err(Invalid::at(
                    pat.referenced,
                    &field,
                    format!(
                        "{:?}: expected `schema.table` (`*` matches anything)",
                        pat.value
                    ),
                ));
            }
        }
        let topic = match &r.topic {
            None => "{source}.{schema}.{table}".to_string(),
            Some(t) if !t.value.contains("{table}") => {
                return Err(Invalid::at(
                    t.referenced,
                    "topic",
                    format!(
                        "{:?} must contain {{table}} (each table needs a topic of its own)",
                        t.value
                    ),
                ));
            }
            Some(t) => t.value.clone(),
        };
        let name_at = r.name.referenced;
        let kind = match r.kind {
            Postgres => SourceKind::Postgres(Box::new(postgres_source(&name, name_at, &r)?)),
            Mysql => SourceKind::Mysql(mysql_source(&name, &r)?),
        };
        Ok(SourceSection {
            name,
            tables: r.tables,
            snapshot: r.snapshot,
            topic,
            heartbeat_ms: r.heartbeat_ms,
            snapshot_chunk_rows: r.snapshot_chunk_rows,
            on_error: r.on_error.as_ref().map(|o| o.value).unwrap_or_default(),
            kind,
        })
    }
}

fn postgres_source(
    name: &str,
    name_at: Location,
    r: &RawSource,
) -> Result<PostgresSection, Invalid> {
    if r.url.is_none() && r.database.is_none() {
        return Err(Invalid::at(
            name_at,
            "",
            "needs `url` or `database` (with `host`, `port`, `user`)",
        ));
    }
    let mut c = match &r.url {
        Some(u) => ConnectConfig::from_url(u.value.expose())
            .map_err(|e| Invalid::at(u.referenced, "url", e.to_string()))?,
        None => ConnectConfig::default(),
    };
    if let Some(h) = &r.host {
        c.host.clone_from(&h.value);
    }
    if let Some(p) = &r.port {
        c.port = p.value;
    }
    if let Some(u) = &r.user {
        c.user.clone_from(&u.value);
    }
    if let Some(p) = &r.password {
        c.password = Some(p.value.expose().to_string());
    }
    if let Some(d) = &r.database {
        c.database.clone_from(&d.value);
    }
    if let Some(m) = &r.sslmode {
        c.ssl_mode = SslMode::parse(&m.value).ok_or_else(|| {
            Invalid::at(
                m.referenced,
                "sslmode",
                format!(
                    "unknown sslmode {:?}: expected disable, prefer, require or verify-full",
                    m.value
                ),
            )
        })?;
    }
    if let Some(p) = &r.sslrootcert {
        c.ssl_root_cert = Some(p.value.clone());
    }
    c.application_name = format!("tributary-{name}");
    let protocol = match &r.protocol {
        None => 2,
        Some(p) if matches!(p.value, 1 | 2) => p.value,
        Some(p) => {
            return Err(Invalid::at(
                p.referenced,
                "protocol",
                format!("pgoutput protocol {} : expected 1 or 2", p.value),
            ));
        }
    };
    let default = || format!("tributary_{}", name.replace('-', "_"));
    Ok(PostgresSection {
        connect: c,
        publication: r
            .publication
            .as_ref()
            .map_or_else(default, |p| p.value.clone()),
        slot: r.slot.as_ref().map_or_else(default, |s| s.value.clone()),
        protocol,
        snapshot_workers: r.snapshot_workers.as_ref().map_or(2, |w| w.value),
        max_retained_wal: match &r.max_retained_wal {
            None => 1 << 30,
            Some(m) => size_bytes(&m.value).ok_or_else(|| {
                Invalid::at(
                    m.referenced,
                    "max_retained_wal",
                    "expected a size such as 1GiB, 512MB or a number of bytes",
                )
            })?,
        },
    })
}

fn mysql_source(name: &str, r: &RawSource) -> Result<MysqlSection, Invalid> {
    use tributary_connector_mysql::source::check_url;
    let password = r
        .password
        .as_ref()
        .map(|p| p.value.expose())
        .filter(|p| !p.is_empty());
    let url = match &r.url {
        Some(u) => {
            let bad = |message: String| Invalid::at(u.referenced, "url", message);
            check_url(u.value.expose()).map_err(|e| bad(e.to_string()))?;
            let mut url =
                url::Url::parse(u.value.expose()).map_err(|e| bad(format!("not a URL: {e}")))?;
            if let Some(p) = password {
                url.set_password(Some(p))
                    .map_err(|()| bad("cannot set the password in the URL".into()))?;
            }
            url.to_string()
        }
        None => {
            let enc =
                |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let user = r.user.as_ref().map_or("root", |u| u.value.as_str());
            let auth = match password {
                Some(p) => format!("{}:{}", enc(user), enc(p)),
                None => enc(user),
            };
            format!(
                "mysql://{auth}@{}:{}/{}",
                r.host.as_ref().map_or("127.0.0.1", |h| h.value.as_str()),
                r.port.as_ref().map_or(3306, |p| p.value),
                r.database.as_ref().map_or("", |d| d.value.as_str())
            )
        }
    };
    // A stable id from the source's name: replicas of one server need
    // distinct ids; these stay clear of the small numbers servers are
    // usually given.
    let server_id = r.server_id.as_ref().map_or_else(
        || {
            let h = name.bytes().fold(0x811c_9dc5u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            1_000_000 + h % 1_000_000_000
        },
        |s| s.value,
    );
    Ok(MysqlSection {
        url: Secret::new(url),
        server_id,
    })
}

/// Sink kinds as YAML names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SinkKindName {
    Tantivy,
    Redis,
    Postgres,
    Mysql,
}

impl SinkKindName {
    fn as_str(self) -> &'static str {
        match self {
            SinkKindName::Tantivy => "tantivy",
            SinkKindName::Redis => "redis",
            SinkKindName::Postgres => "postgres",
            SinkKindName::Mysql => "mysql",
        }
    }
}

/// `sinks[i]` as serde reads it: every kind's fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSink {
    name: Spanned<String>,
    kind: SinkKindName,
    topics: Vec<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    url: Option<Spanned<Secret>>,
    #[serde(default)]
    path: Option<Spanned<PathBuf>>,
    #[serde(default)]
    analyzer: Option<Spanned<String>>,
    #[serde(default)]
    prefix: Option<Spanned<String>>,
    #[serde(default)]
    key: Option<Spanned<String>>,
    #[serde(default)]
    format: Option<Spanned<RedisFormat>>,
    #[serde(default)]
    ttl_seconds: Option<Spanned<u64>>,
    #[serde(default)]
    publish: Option<Spanned<String>>,
    #[serde(default)]
    table: Option<Spanned<String>>,
    #[serde(default)]
    columns: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    create_tables: Option<Spanned<bool>>,
    #[serde(default)]
    batch_size: Option<u32>,
    #[serde(default = "default_flush_ms")]
    flush_interval_ms: u64,
    #[serde(default = "default_parallelism")]
    parallelism: u32,
    #[serde(default)]
    on_error: OnError,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default)]
    max_batches_per_second: Option<u32>,
}

fn default_timeout_ms() -> u64 {
    60_000
}
fn default_flush_ms() -> u64 {
    500
}
fn default_parallelism() -> u32 {
    1
}

impl RawSink {
    /// Converts, with `search` the directory of default index paths.
    pub(crate) fn into_section(self, search: &std::path::Path) -> Result<SinkSection, Invalid> {
        use SinkKindName::{Mysql, Postgres, Redis, Tantivy};
        let r = self;
        let name = r.name.value.clone();
        let name_at = r.name.referenced;
        if !valid_name(&name) {
            return Err(Invalid::at(
                name_at,
                "name",
                format!("{name:?}: use letters, digits, `_` and `-`"),
            ));
        }
        if r.topics.is_empty() {
            return Err(Invalid::at(
                name_at,
                "topics",
                "needs at least one topic or pattern",
            ));
        }
        foreign(
            r.kind,
            r.kind.as_str(),
            &[
                ("url", at(&r.url), &[Redis, Postgres, Mysql]),
                ("path", at(&r.path), &[Tantivy]),
                ("analyzer", at(&r.analyzer), &[Tantivy]),
                ("prefix", at(&r.prefix), &[Redis]),
                ("key", at(&r.key), &[Redis]),
                ("format", at(&r.format), &[Redis]),
                ("ttl_seconds", at(&r.ttl_seconds), &[Redis]),
                ("publish", at(&r.publish), &[Redis]),
                ("table", at(&r.table), &[Postgres, Mysql]),
                ("columns", at(&r.columns), &[Postgres, Mysql]),
                ("create_tables", at(&r.create_tables), &[Postgres, Mysql]),
            ],
        )?;
        let needs_url = |example: &str| {
            Invalid::at(
                name_at,
                "url",
                format!("a {} sink needs `url: {example}`", r.kind.as_str()),
            )
        };
        let table_map = |default: &str| -> Result<TableMap, Invalid> {
            let template = match &r.table {
                None => default.to_string(),
                Some(t) if !t.value.contains("{table}") => {
                    return Err(Invalid::at(
                        t.referenced,
                        "table",
                        format!(
                            "{:?} must contain {{table}} (each source table needs its own target)",
                            t.value
                        ),
                    ));
                }
                Some(t) => t.value.clone(),
            };
            Ok(TableMap {
                template,
                columns: r
                    .columns
                    .as_ref()
                    .map(|c| c.value.clone())
                    .unwrap_or_default(),
            })
        };
        let create_tables = r.create_tables.as_ref().is_none_or(|c| c.value);
        let kind = match r.kind {
            Tantivy => {
                let analyzer = match &r.analyzer {
                    None => tributary_sink_tantivy::Analyzer::default(),
                    Some(a) => {
                        tributary_sink_tantivy::Analyzer::parse(&a.value).ok_or_else(|| {
                            Invalid::at(
                                a.referenced,
                                "analyzer",
                                format!(
                                    "unknown analyzer {:?}: expected default, raw or en_stem",
                                    a.value
                                ),
                            )
                        })?
                    }
                };
                SinkKind::Tantivy(TantivyTarget {
                    path: value(r.path.clone()).unwrap_or_else(|| search.join(&name)),
                    analyzer,
                })
            }
            Redis => {
                if let Some(k) = &r.key
                    && !k.value.contains("{table}")
                {
                    return Err(Invalid::at(
                        k.referenced,
                        "key",
                        format!(
                            "{:?} must contain {{table}} (a truncate clears the keys of one table)",
                            k.value
                        ),
                    ));
                }
                SinkKind::Redis(RedisTarget {
                    url: value(r.url.clone())
                        .unwrap_or_else(|| Secret::new("redis://127.0.0.1:6379".into())),
                    prefix: value(r.prefix.clone()).unwrap_or_default(),
                    key: value(r.key.clone())
                        .unwrap_or_else(|| tributary_sink_redis::DEFAULT_KEY.to_string()),
                    format: match value(r.format) {
                        Some(RedisFormat::Json) => tributary_sink_redis::RowFormat::Json,
                        _ => tributary_sink_redis::RowFormat::Hash,
                    },
                    ttl_seconds: value(r.ttl_seconds),
                    publish: value(r.publish.clone()),
                })
            }
            Postgres => {
                let url = r
                    .url
                    .as_ref()
                    .ok_or_else(|| needs_url("postgres://user@host:port/database"))?;
                let mut connect = ConnectConfig::from_url(url.value.expose())
                    .map_err(|e| Invalid::at(url.referenced, "url", e.to_string()))?;
                connect.application_name = format!("tributary-sink-{name}");
                SinkKind::Postgres(PostgresTarget {
                    connect,
                    map: table_map("{schema}.{table}")?,
                    create_tables,
                })
            }
            Mysql => {
                let url = r
                    .url
                    .as_ref()
                    .ok_or_else(|| needs_url("mysql://user@host:port/database"))?;
                if !url.value.expose().starts_with("mysql://") {
                    return Err(Invalid::at(
                        url.referenced,
                        "url",
                        "expected mysql://user:password@host:port/database",
                    ));
                }
                SinkKind::Mysql(MysqlTarget {
                    url: url.value.clone(),
                    map: table_map(tributary_sink_mysql::DEFAULT_TABLE)?,
                    create_tables,
                })
            }
        };
        Ok(SinkSection {
            name,
            topics: r.topics,
            group: r.group,
            batch_size: r.batch_size,
            flush_interval_ms: r.flush_interval_ms,
            parallelism: r.parallelism,
            on_error: r.on_error,
            timeout_ms: r.timeout_ms,
            max_in_flight: r.max_in_flight,
            max_batches_per_second: r.max_batches_per_second,
            kind,
        })
    }

    /// Its name, and where it is written.
    pub(crate) fn name(&self) -> &Spanned<String> {
        &self.name
    }
}

impl RawSource {
    /// Its name, and where it is written.
    pub(crate) fn name(&self) -> &Spanned<String> {
        &self.name
    }
}

/// Letters, digits, `_` and `-`.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
