//! The streaming half of the PostgreSQL source: from the replication slot
//! into the log, acknowledging to PostgreSQL only what the log holds
//! durably.
//!
//! Per transaction: changes are collected from Begin to Commit, encoded
//! and appended (one append per topic, in commit order), and the commit's
//! end LSN waits in a queue until every partition it touched reports a
//! durable watermark past what was appended; only then is it sent as the
//! flushed position. So `confirmed_flush_lsn` never covers a change the
//! log could lose, and after a restart PostgreSQL resends everything not
//! yet durable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tokio_postgres::Client;
use tributary_capture::writer::EventWriter;
use tributary_capture::{
    Capture, ChangeSource, Engine, ErrorKind, OnError, Quarantine, Settings, SnapshotLedger,
    StreamKey,
};
use tributary_core::telemetry::{Phase, SourceProgress};
use tributary_core::{Op, TableSchema};
use tributary_log::Log;
use tributary_schemas::{Connector, EventSchema};

use crate::catalog;
pub use crate::error::SourceError;
use crate::error::{Result, sql};
use crate::events::{self, TxContext};
use crate::pgoutput::{Decoder, Message};
use crate::replication::{ConnectConfig, Connection, ReplicationError, StreamMessage, quote_ident};
use crate::snapshot::{Reader, TableDoneFn, TableJob};
use crate::spill::Spill;

/// What the streaming source needs.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Source name: the first part of topic names and Avro namespaces.
    pub name: String,
    /// What the capture engine takes care of: topic settings, snapshot
    /// mode, reconnects, how often durable positions are looked for.
    pub engine: Settings,
    /// Replication connection.
    pub connect: ConnectConfig,
    /// Publication to stream (created for `tables` when missing).
    pub publication: String,
    /// Replication slot (created when missing).
    pub slot: String,
    /// Tables (`schema`, `table`) to capture, when `publication_scope`
    /// is [`PublicationScope::Tables`].
    pub tables: Vec<(String, String)>,
    /// What the publication (created when missing) covers.
    pub publication_scope: PublicationScope,
    /// pgoutput protocol version: 1, or 2 to receive large transactions
    /// while they are in progress (spilled to disk until they commit).
    pub proto_version: u32,
    /// Topic names: `{source}`, `{schema}` and `{table}` are replaced.
    pub topic_template: String,
    /// Connections reading the snapshot in parallel (each reads one table
    /// or key range at a time).
    pub snapshot_workers: usize,
    /// Tables with more rows than this and a one-column integer key are
    /// read in key ranges of about this many rows; 0 never splits.
    pub snapshot_chunk_rows: u64,
    /// Retained WAL (bytes) past which the slot is reported in the log
    /// (`max_retained_wal`).
    pub max_retained_wal: u64,
}

/// What the source's publication covers, and so what is captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PublicationScope {
    /// The configured `tables`.
    #[default]
    Tables,
    /// Every table in these schemas, present and future
    /// (`FOR TABLES IN SCHEMA`).
    Schemas(Vec<String>),
    /// Every table of the database, present and future
    /// (`FOR ALL TABLES`; creating it takes a superuser).
    AllTables,
}

impl StreamConfig {
    /// The topic of `schema.table`'s events.
    pub fn topic(&self, schema: &str, table: &str) -> String {
        self.topic_template
            .replace("{source}", &self.name)
            .replace("{schema}", schema)
            .replace("{table}", table)
    }
}

/// The default topic template.
pub const DEFAULT_TOPIC_TEMPLATE: &str = "{source}.{schema}.{table}";

pub use tributary_capture::{Backoff, RunStats, SnapshotMode};

impl SourceError {
    /// Turns the server errors a user can fix into errors that say how.
    fn explain(e: ReplicationError, cfg: &StreamConfig) -> Self {
        match &e {
            ReplicationError::Server { code, message, .. }
                if code == "42501" || message.contains("replication role") =>
            {
                SourceError::NoReplicationPrivilege {
                    user: cfg.connect.user.clone(),
                    message: message.clone(),
                }
            }
            ReplicationError::Server { code, message, .. } if code == "55006" => {
                SourceError::SlotActive {
                    slot: cfg.slot.clone(),
                    message: message.clone(),
                }
            }
            _ => SourceError::Replication(e),
        }
    }
}
/// The topic of a table's events.
pub fn topic_name(source: &str, schema: &str, table: &str) -> String {
    format!("{source}.{schema}.{table}")
}

/// Checks wal_level and creates the publication and slot if missing.
pub async fn prepare(client: &Client, cfg: &StreamConfig) -> Result<()> {
    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(sql("SHOW wal_level"))?
        .get(0);
    if wal_level != "logical" {
        return Err(SourceError::WalLevel(wal_level));
    }
    let exists = publication_exists(client, &cfg.publication).await?;
    if !exists {
        let what = match &cfg.publication_scope {
            PublicationScope::Tables => {
                let tables: Vec<String> = cfg
                    .tables
                    .iter()
                    .map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t)))
                    .collect();
                format!("TABLE {}", tables.join(", "))
            }
            PublicationScope::Schemas(schemas) => {
                let schemas: Vec<String> = schemas.iter().map(|s| quote_ident(s)).collect();
                format!("TABLES IN SCHEMA {}", schemas.join(", "))
            }
            PublicationScope::AllTables => "ALL TABLES".into(),
        };
        let ddl = format!(
            "CREATE PUBLICATION {} FOR {what}",
            quote_ident(&cfg.publication)
        );
        client.batch_execute(&ddl).await.map_err(sql(ddl.clone()))?;
    } else if cfg.publication_scope == PublicationScope::Tables {
        for (schema, table) in &cfg.tables {
            if !is_published(client, &cfg.publication, schema, table).await? {
                return Err(SourceError::NotPublished {
                    publication: cfg.publication.clone(),
                    table: format!("{schema}.{table}"),
                });
            }
        }
    }
    // Every captured table must identify its rows (a key, or REPLICA
    // IDENTITY): say so now, not at the first update.
    for (schema, table) in captured_tables(client, cfg).await? {
        catalog::table_schema(client, &cfg.connect.database, &schema, &table).await?;
    }
    let slot = client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&cfg.slot],
        )
        .await
        .map_err(sql("looking up the slot"))?;
    if slot.is_none() && cfg.engine.snapshot == SnapshotMode::Never {
        client
            .query_one(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&cfg.slot],
            )
            .await
            .map_err(sql(format!("creating replication slot {}", cfg.slot)))?;
    }
    Ok(())
}

/// Whether publication `name` exists.
pub async fn publication_exists(client: &Client, name: &str) -> Result<bool> {
    Ok(client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(sql("looking up the publication"))?
        .is_some())
}

/// Whether publication `name` covers `schema.table`.
pub async fn is_published(client: &Client, name: &str, schema: &str, table: &str) -> Result<bool> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
            &[&name, &schema, &table],
        )
        .await
        .map_err(sql("looking up the publication's tables"))?
        .is_some())
}

/// The tables `cfg` captures: its `tables`, or what its publication
/// covers now.
pub async fn captured_tables(client: &Client, cfg: &StreamConfig) -> Result<Vec<(String, String)>> {
    if cfg.publication_scope == PublicationScope::Tables {
        return Ok(cfg.tables.clone());
    }
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
            &[&cfg.publication],
        )
        .await
        .map_err(sql("listing the publication's tables"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A table whose rows go to the dead-letter topic.
struct DeadTable {
    name: String,
    columns: Vec<String>,
    reason: String,
}

/// A tuple as text: column -> the value PostgreSQL sent (`null`; an
/// unchanged TOAST value as `{"unchanged_toast": true}`).
fn tuple_json(columns: &[String], tuple: &[crate::pgoutput::TupleValue]) -> serde_json::Value {
    use crate::pgoutput::TupleValue as V;
    let mut row = serde_json::Map::new();
    for (i, v) in tuple.iter().enumerate() {
        let name = columns.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
        let value = match v {
            V::Null => serde_json::Value::Null,
            V::UnchangedToast => serde_json::json!({"unchanged_toast": true}),
            V::Text(b) | V::Binary(b) => {
                serde_json::Value::String(String::from_utf8_lossy(b).into_owned())
            }
        };
        row.insert(name, value);
    }
    serde_json::Value::Object(row)
}

/// A row change's relation, operation and images as sent (the old row
/// or key, the new row); `None` for any other message.
#[allow(clippy::type_complexity)]
fn row_images(
    msg: &Message,
) -> Option<(
    u32,
    Op,
    Option<&[crate::pgoutput::TupleValue]>,
    Option<&[crate::pgoutput::TupleValue]>,
)> {
    match msg {
        Message::Insert { oid, new, .. } => Some((*oid, Op::Create, None, Some(new))),
        Message::Update { oid, old, new, .. } => Some((
            *oid,
            Op::Update,
            old.as_ref().map(|(_, t)| t.as_slice()),
            Some(new),
        )),
        Message::Delete { oid, old, .. } => Some((*oid, Op::Delete, Some(&old.1), None)),
        _ => None,
    }
}

struct Relation {
    topic: Arc<str>,
    table: Arc<TableSchema>,
    /// The consistent point of the snapshot that read the table: changes
    /// that committed before it are in the snapshot's rows, so the stream
    /// skips them.
    as_of: u64,
    /// The `source` block of its events.
    source: tributary_core::SourceInfo,
}

/// How often the source asks the server about its slot.
const SLOT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a slot past `max_retained_wal` is reported in the log.
const SLOT_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The prefix of heartbeat messages.
const HEARTBEAT_PREFIX: &str = "tributary.heartbeat";

/// The state of one replication session.
#[derive(Default)]
struct Session {
    decoder: Decoder,
    /// The open transaction's context (its events are in the capture).
    open: Option<TxContext>,
    /// Streamed transactions in progress, by xid.
    streams: HashMap<u32, Spill>,
    /// The streamed transaction whose block is being received.
    in_block: Option<u32>,
    /// The position that may be confirmed.
    acked: u64,
    /// The position last confirmed.
    sent: u64,
}

/// The capture handle of a PostgreSQL session: positions are end LSNs.
type PgCapture = Capture<u64>;

/// The ledger file of the tables a source's snapshots read, per slot (a
/// new slot starts a new snapshot).
fn ledger_file(slot: &str) -> String {
    format!("snapshot-{slot}.json")
}

/// The streaming source.
pub struct StreamSource {
    cfg: StreamConfig,
    client: Option<Client>,
    engine: Engine,
    relations: HashMap<u32, Relation>,
    state: SnapshotLedger<u64>,
    /// Tables set aside (`on_error: quarantine`), loaded each session.
    quarantine: Quarantine,
    /// Relations of quarantined tables: their changes are skipped.
    skipped: HashSet<u32>,
    /// Relations whose shape could not be captured under `on_error:
    /// dlq`: `schema.table`, column names and why; each of their rows
    /// goes to the dead-letter topic.
    dead: HashMap<u32, DeadTable>,
    /// The commit LSN of the transaction being read (where a table that
    /// cannot be captured is set aside).
    at: u64,
}

impl std::fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSource")
            .field("cfg", &self.cfg)
            .finish()
    }
}

pub use tributary_postgres_conn::sql_connect;

impl ChangeSource for StreamSource {
    type Position = u64;
    type Error = SourceError;
    const DATABASE: &'static str = "PostgreSQL";

    /// One connection's life: connect, snapshot if needed, stream.
    async fn session(
        &mut self,
        capture: &mut PgCapture,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        self.relations.clear();
        self.skipped.clear();
        self.dead.clear();
        self.client = Some(sql_connect(&self.cfg.connect).await?);
        prepare(self.client()?, &self.cfg).await?;
        let mut conn = Connection::connect(&self.cfg.connect)
            .await
            .map_err(|e| SourceError::explain(e, &self.cfg))?;
        if !self.snapshot_if_needed(capture, &mut conn).await? {
            return Ok(());
        }
        let spill_dir = self.spill_dir();
        if spill_dir.exists() {
            std::fs::remove_dir_all(&spill_dir).map_err(|source| SourceError::State {
                path: spill_dir.display().to_string(),
                source,
            })?;
        }
        let proto = self.cfg.proto_version.to_string();
        let mut options = vec![
            ("proto_version", proto.as_str()),
            ("publication_names", self.cfg.publication.as_str()),
            ("messages", "true"),
        ];
        if self.cfg.proto_version >= 2 {
            options.push(("streaming", "on"));
        }
        let (mut reader, mut status) = conn
            .start_replication(&self.cfg.slot, 0, &options)
            .await
            .map_err(|e| SourceError::explain(e, &self.cfg))?;
        capture.streaming();
        tracing::info!(source = %self.cfg.name, slot = %self.cfg.slot, proto = self.cfg.proto_version, "streaming");
        let progress = Arc::clone(capture.progress());
        let mut s = Session::default();
        let mut ticker = tokio::time::interval(self.cfg.engine.status_interval);
        // Heartbeats: a transactional logical message commits a small
        // transaction into the stream, so the slot keeps advancing (and
        // retained WAL stays bounded) while the captured tables are idle.
        let mut heartbeat = self.engine.heartbeat();
        // The slot as the server sees it: retained WAL, wal_status.
        let mut slot_check = tokio::time::interval(SLOT_CHECK_EVERY);
        slot_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned: Option<std::time::Instant> = None;
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    if *stop.borrow() {
                        break;
                    }
                }
                _ = slot_check.tick() => {
                    self.check_slot(&progress, &mut warned).await;
                }
                _ = heartbeat.due() => {
                    self.client()?
                        .execute("SELECT pg_logical_emit_message(true, 'tributary.heartbeat', now()::text)", &[])
                        .await
                        .map_err(sql("emitting a heartbeat"))?;
                }
                _ = ticker.tick() => {
                    if let Some(lsn) = capture.durable() {
                        s.acked = s.acked.max(lsn);
                    }
                    if s.acked > s.sent {
                        status.send_status(s.acked, s.acked, s.acked, false).await?;
                        s.sent = s.acked;
                        progress.acknowledge(s.acked);
                    }
                }
                msg = reader.next() => {
                    // CopyDone from the server: it is going away, not us.
                    let Some(msg) = msg? else {
                        return Err(SourceError::StreamEnded(self.cfg.slot.clone()));
                    };
                    match msg {
                        StreamMessage::Keepalive { end, reply, .. } => {
                            progress.observe_upstream(end);
                            // Nothing in flight: everything up to the server's
                            // position is either ours and durable, or not ours.
                            if s.open.is_none() && capture.is_idle() && s.streams.is_empty() {
                                s.acked = s.acked.max(end);
                            }
                            if reply {
                                status.send_status(s.acked, s.acked, s.acked, false).await?;
                                s.sent = s.acked;
                                // Before anything is confirmed the position is 0: no lag known yet.
                                if s.acked > 0 {
                                    progress.acknowledge(s.acked);
                                }
                            }
                        }
                        StreamMessage::XLogData { end, data, .. } => {
                            progress.observe_upstream(end);
                            self.message(capture, &mut s, data).await?;
                        }
                    }
                }
            }
        }
        for (_, spill) in s.streams.drain() {
            spill.discard();
        }
        status.close().await?;
        Ok(())
    }

    fn classify(&self, error: &SourceError, streamed: bool) -> ErrorKind {
        // After a drop, the old walsender can hold the slot a moment.
        if error.is_transient() || (streamed && error.is_slot_active()) {
            ErrorKind::Transient
        } else if matches!(error, SourceError::SlotLost { .. }) {
            ErrorKind::PositionLost
        } else {
            ErrorKind::Fatal
        }
    }
}

impl StreamSource {
    /// A source writing through `writer` into `log`. It connects when
    /// run.
    pub fn new(cfg: StreamConfig, log: Log, writer: EventWriter) -> Self {
        let engine = Engine::new(&cfg.name, log, writer, cfg.engine.clone());
        let state = SnapshotLedger::empty(
            engine.state_dir().join(ledger_file(&cfg.slot)),
            engine.log.clone(),
        );
        let quarantine = Quarantine::empty(&engine.state_dir());
        Self {
            cfg,
            client: None,
            engine,
            relations: HashMap::new(),
            state,
            quarantine,
            skipped: HashSet::new(),
            dead: HashMap::new(),
            at: 0,
        }
    }

    /// Reports phase and lag (WAL bytes between the server's stream end
    /// and the position confirmed to it) to `progress`, which outlives
    /// this source (the runtime keeps one across restarts).
    pub fn with_progress(mut self, progress: Arc<SourceProgress>) -> Self {
        self.engine.progress = progress;
        self
    }

    fn client(&self) -> Result<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| SourceError::Snapshot("no SQL connection".into()))
    }

    fn log(&self) -> &Log {
        &self.engine.log
    }

    fn spill_dir(&self) -> std::path::PathBuf {
        self.engine.state_dir().join("spill")
    }

    async fn on_relation(
        &mut self,
        capture: &mut PgCapture,
        oid: u32,
        namespace: &str,
        name: &str,
        columns: &[crate::pgoutput::RelationColumn],
        replica_identity: u8,
    ) -> Result<()> {
        if self.quarantine.contains(namespace, name) {
            self.relations.remove(&oid);
            self.skipped.insert(oid);
            return Ok(());
        }
        let registered = self
            .register_relation(capture, oid, namespace, name, columns, replica_identity)
            .await;
        match registered {
            Err(e) if self.sets_aside(&e) => {
                if self.cfg.engine.on_error == OnError::Dlq {
                    tracing::error!(source = %self.cfg.name, table = %format!("{namespace}.{name}"), error = %e, "table cannot be captured: its rows go to the dead-letter topic {}", tributary_capture::quarantine::dlq_topic(&self.cfg.name));
                    self.relations.remove(&oid);
                    self.dead.insert(
                        oid,
                        DeadTable {
                            name: format!("{namespace}.{name}"),
                            columns: columns.iter().map(|c| c.name.clone()).collect(),
                            reason: e.to_string(),
                        },
                    );
                    return Ok(());
                }
                self.set_aside(oid, namespace, name, &e)
            }
            other => other,
        }
    }

    /// Asks the server how much WAL the slot retains and whether it is in
    /// danger (`wal_status`, `safe_wal_size`), for status and metrics; a
    /// slot past `max_retained_wal` is reported in the log (once a
    /// minute). A failed query is logged, not fatal: the stream decides.
    async fn check_slot(&self, progress: &SourceProgress, warned: &mut Option<std::time::Instant>) {
        let Ok(client) = self.client() else { return };
        let row = client
            .query_opt(
                "SELECT GREATEST(pg_current_wal_lsn() - restart_lsn, 0)::bigint, \
                        COALESCE(wal_status, 'unknown'), safe_wal_size \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.cfg.slot],
            )
            .await;
        let row = match row {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(source = %self.cfg.name, error = %e, "cannot read the slot's retained WAL");
                return;
            }
        };
        let retained: Option<i64> = row.get(0);
        let health = tributary_core::telemetry::SlotHealth {
            retained_wal_bytes: retained.map_or(0, |r| r.max(0) as u64),
            wal_status: row.get(1),
            safe_wal_size: row.get(2),
        };
        if health.retained_wal_bytes > self.cfg.max_retained_wal
            && warned.is_none_or(|w| w.elapsed() >= SLOT_WARN_EVERY)
        {
            *warned = Some(std::time::Instant::now());
            tracing::warn!(
                source = %self.cfg.name,
                slot = %self.cfg.slot,
                retained_wal_bytes = health.retained_wal_bytes,
                max_retained_wal = self.cfg.max_retained_wal,
                wal_status = %health.wal_status,
                safe_wal_size = ?health.safe_wal_size,
                "the replication slot retains more WAL than max_retained_wal: the server's disk fills while the source is behind"
            );
        }
        progress.set_slot(health);
    }

    /// Whether `on_error` sets a table aside (or its rows to the
    /// dead-letter topic) for `e`, rather than stopping the source.
    fn sets_aside(&self, e: &SourceError) -> bool {
        self.cfg.engine.on_error != OnError::Stop && e.is_about_table()
    }

    /// Writes a row that cannot be captured to the dead-letter topic,
    /// durably, before anything after it is acknowledged.
    fn dead_letter(
        &self,
        table: &str,
        columns: &[String],
        op: Op,
        before: Option<&[crate::pgoutput::TupleValue]>,
        after: Option<&[crate::pgoutput::TupleValue]>,
        reason: &str,
    ) -> Result<()> {
        let letter = tributary_capture::DeadLetter {
            table: table.to_string(),
            position: crate::replication::format_lsn(self.at),
            error: reason.to_string(),
            op: op.code(),
            before: before.map(|t| tuple_json(columns, t)),
            after: after.map(|t| tuple_json(columns, t)),
            raw_hex: None,
        };
        tributary_capture::quarantine::dead_letter(self.log(), &self.cfg.name, &letter)
            .map_err(|e| SourceError::DeadLetter(Box::new(e)))?;
        tracing::warn!(source = %self.cfg.name, %table, position = %letter.position, error = %reason, "row written to the dead-letter topic");
        Ok(())
    }

    /// Sets `schema.table` aside: stored with the reason and the position
    /// of the transaction being read; its changes are skipped from here
    /// on, every other table's keep flowing.
    fn set_aside(&mut self, oid: u32, schema: &str, table: &str, e: &SourceError) -> Result<()> {
        self.set_aside_table(schema, table, e)?;
        self.relations.remove(&oid);
        self.skipped.insert(oid);
        Ok(())
    }

    /// Stores `schema.table` as set aside, at the position being read.
    fn set_aside_table(&mut self, schema: &str, table: &str, e: &SourceError) -> Result<()> {
        let position = crate::replication::format_lsn(self.at);
        self.quarantine
            .set_aside(&self.cfg.name, schema, table, e, position)?;
        Ok(())
    }

    async fn register_relation(
        &mut self,
        capture: &mut PgCapture,
        oid: u32,
        namespace: &str,
        name: &str,
        columns: &[crate::pgoutput::RelationColumn],
        replica_identity: u8,
    ) -> Result<()> {
        // pgoutput resends Relation after any relcache invalidation: only a
        // changed shape registers a new schema version.
        let table = catalog::relation_schema(
            self.client()?,
            &self.cfg.connect.database,
            namespace,
            name,
            columns,
            replica_identity,
        )
        .await?;
        let topic = self.cfg.topic(namespace, name);
        let unchanged = self.relations.get(&oid).is_some_and(|r| *r.table == table);
        if !unchanged {
            let as_of = self.state.get(namespace, name).map_or(0, |t| t.as_of);
            self.first_seen(namespace, name)?;
            let schema = EventSchema::new(&self.cfg.name, Connector::Postgres, table.clone())?;
            // An ALTER TABLE inside a transaction: the table's earlier
            // rows are written under the shape they had first.
            capture.register(&topic, schema).await?;
            self.relations.insert(
                oid,
                Relation {
                    topic: topic.into(),
                    source: events::table_source(
                        &self.cfg.name,
                        &self.cfg.connect.database,
                        &table,
                    ),
                    table: Arc::new(table),
                    as_of,
                },
            );
        }
        Ok(())
    }

    /// A Relation message (inside a transaction or not): the table's
    /// shape, registered when it changed.
    async fn relation_message(&mut self, capture: &mut PgCapture, msg: Message) -> Result<()> {
        if let Message::Relation {
            oid,
            namespace,
            name,
            replica_identity,
            columns,
            ..
        } = msg
        {
            self.on_relation(capture, oid, &namespace, &name, &columns, replica_identity)
                .await?;
        }
        Ok(())
    }

    /// A table that appears in the stream of a schema or all-tables
    /// publication without having been snapshotted was created after the
    /// snapshot: the stream has all its rows. Recorded, so a restart does
    /// not read it again.
    fn first_seen(&mut self, schema: &str, table: &str) -> Result<()> {
        let snapshots = matches!(
            self.cfg.engine.snapshot,
            SnapshotMode::Initial | SnapshotMode::WhenNeeded
        );
        if !snapshots
            || self.cfg.publication_scope == PublicationScope::Tables
            || self.state.get(schema, table).is_some()
        {
            return Ok(());
        }
        self.state.table_read(schema, table, 0, 0)?;
        tracing::info!(source = %self.cfg.name, table = %format!("{schema}.{table}"), "new table in the publication: captured from its creation");
        Ok(())
    }

    fn relation(&self, oid: u32) -> Result<&Relation> {
        self.relations
            .get(&oid)
            .ok_or(SourceError::UnknownRelation(oid))
    }

    fn push(
        capture: &mut PgCapture,
        ctx: &TxContext,
        rel: &Relation,
        op: Op,
        before: Option<Vec<tributary_core::Datum>>,
        after: Option<Vec<tributary_core::Datum>>,
    ) -> Result<()> {
        capture.push(&rel.topic, |order, shared| {
            let source = shared.get_or_insert_with(|| ctx.shared_source(&rel.source, false));
            ctx.event(source, op, before, after, order.total, order.in_table)
        })?;
        Ok(())
    }

    /// Applies one message of the transaction `ctx`: a change becomes an
    /// event, a Relation updates the table's shape first. Appends when a
    /// chunk is full.
    async fn change(
        &mut self,
        capture: &mut PgCapture,
        ctx: &TxContext,
        msg: Message,
    ) -> Result<()> {
        match msg {
            msg @ Message::Relation { .. } => self.relation_message(capture, msg).await?,
            Message::Insert { oid, .. }
            | Message::Update { oid, .. }
            | Message::Delete { oid, .. }
                if self.skipped.contains(&oid) =>
            {
                // A quarantined table.
            }
            ref m if row_images(m).is_some_and(|(oid, ..)| self.dead.contains_key(&oid)) => {
                if let Some((oid, op, before, after)) = row_images(m)
                    && let Some(d) = self.dead.get(&oid)
                {
                    self.dead_letter(&d.name, &d.columns, op, before, after, &d.reason)?;
                }
            }
            Message::Insert { oid, .. }
            | Message::Update { oid, .. }
            | Message::Delete { oid, .. }
                if self.relation(oid)?.as_of > ctx.commit_lsn =>
            {
                // Already in the table's snapshot.
            }
            Message::Insert { oid, new, .. } => {
                let rel = self.relation(oid)?;
                match events::row(&rel.table, &new) {
                    Ok(after) => Self::push(capture, ctx, rel, Op::Create, None, Some(after))?,
                    Err(e) => self.row_failed(oid, Op::Create, None, Some(&new), e.into())?,
                }
            }
            Message::Update { oid, old, new, .. } => {
                let rel = self.relation(oid)?;
                let rows = old
                    .as_ref()
                    .map(|(k, t)| events::old_row(&rel.table, *k, t))
                    .transpose()
                    .and_then(|before| Ok((before, events::row(&rel.table, &new)?)));
                match rows {
                    Ok((before, after)) => {
                        Self::push(capture, ctx, rel, Op::Update, before, Some(after))?
                    }
                    Err(e) => {
                        let before = old.as_ref().map(|(_, t)| t.as_slice());
                        self.row_failed(oid, Op::Update, before, Some(&new), e.into())?
                    }
                }
            }
            Message::Delete {
                oid,
                old: (kind, tuple),
                ..
            } => {
                let rel = self.relation(oid)?;
                match events::old_row(&rel.table, kind, &tuple) {
                    Ok(before) => Self::push(capture, ctx, rel, Op::Delete, Some(before), None)?,
                    Err(e) => self.row_failed(oid, Op::Delete, Some(&tuple), None, e.into())?,
                }
            }
            Message::Truncate { oids, .. } => {
                for oid in oids {
                    if self.skipped.contains(&oid) || self.dead.contains_key(&oid) {
                        continue;
                    }
                    let rel = self.relation(oid)?;
                    if rel.as_of <= ctx.commit_lsn {
                        Self::push(capture, ctx, rel, Op::Truncate, None, None)?;
                    }
                }
            }
            Message::LogicalMessage { prefix, .. } if prefix == HEARTBEAT_PREFIX => {
                capture.stats.heartbeats += 1;
            }
            // Type: custom types are read from the catalog with the
            // relation. Origin: recorded by nothing downstream yet.
            _ => {}
        }
        capture.boundary().await?;
        Ok(())
    }

    /// A row of relation `oid` that cannot become an event: the table is
    /// set aside under `on_error: quarantine`, the row goes to the
    /// dead-letter topic under `dlq`, else the source stops.
    fn row_failed(
        &mut self,
        oid: u32,
        op: Op,
        before: Option<&[crate::pgoutput::TupleValue]>,
        after: Option<&[crate::pgoutput::TupleValue]>,
        e: SourceError,
    ) -> Result<()> {
        if !self.sets_aside(&e) {
            return Err(e);
        }
        let table = Arc::clone(&self.relation(oid)?.table);
        if self.cfg.engine.on_error == OnError::Dlq {
            let columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
            return self.dead_letter(
                &table.qualified_name(),
                &columns,
                op,
                before,
                after,
                &e.to_string(),
            );
        }
        self.set_aside(oid, &table.schema, &table.table, &e)
    }

    /// Opens the transaction that commits at `commit_lsn`: its records'
    /// positions start with the commit LSN, so they sort in stream order
    /// and a replay after a crash skips what already reached the log.
    fn begin(capture: &mut PgCapture, xid: u32, commit_lsn: u64, commit_time: i64) -> TxContext {
        capture.begin(StreamKey::from_parts(&[&commit_lsn.to_be_bytes()]));
        TxContext::new(xid, commit_lsn, commit_time)
    }

    /// Streams until `stop` turns true or a permanent error occurs. A
    /// lost connection (PostgreSQL restarted, the network dropped) is
    /// retried with exponential backoff; the slot keeps the position, and
    /// what was already written is not written again.
    pub async fn run(&mut self, stop: watch::Receiver<bool>) -> Result<RunStats> {
        let engine = self.engine.clone();
        tributary_capture::run(self, &engine, stop).await
    }

    /// Handles one pgoutput message of the stream.
    async fn message(
        &mut self,
        capture: &mut PgCapture,
        s: &mut Session,
        data: Bytes,
    ) -> Result<()> {
        let msg = s.decoder.decode(&data)?;
        if let Some(xid) = s.in_block {
            // Inside a block of a streamed transaction: to its file.
            match msg {
                Message::StreamStop => s.in_block = None,
                msg => {
                    let subxid = msg.stream_xid().unwrap_or(xid);
                    let spill = s.streams.get_mut(&xid).ok_or_else(|| {
                        SourceError::Snapshot(format!("stream block of unknown transaction {xid}"))
                    })?;
                    spill.push(subxid, &data).map_err(SourceError::Spill)?;
                }
            }
            return Ok(());
        }
        match msg {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                self.at = final_lsn;
                s.open = Some(Self::begin(capture, xid, final_lsn, commit_time));
            }
            Message::Commit { end_lsn, .. } => {
                if s.open.take().is_some() {
                    capture.commit(end_lsn).await?;
                }
            }
            Message::StreamStart { xid, first_segment } => {
                if first_segment || !s.streams.contains_key(&xid) {
                    let spill =
                        Spill::create(&self.spill_dir(), xid).map_err(SourceError::Spill)?;
                    if let Some(old) = s.streams.insert(xid, spill) {
                        old.discard();
                    }
                }
                s.in_block = Some(xid);
            }
            Message::StreamAbort { xid, subxid } => {
                if xid == subxid {
                    if let Some(spill) = s.streams.remove(&xid) {
                        spill.discard();
                    }
                } else if let Some(spill) = s.streams.get_mut(&xid) {
                    spill.abort_subxact(subxid);
                }
            }
            Message::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                commit_time,
                ..
            } => {
                self.at = commit_lsn;
                let ctx = Self::begin(capture, xid, commit_lsn, commit_time);
                if let Some(spill) = s.streams.remove(&xid) {
                    let mut rd = spill.finish().map_err(SourceError::Spill)?;
                    let mut dec = Decoder::in_stream();
                    while let Some(raw) = rd.next_message().map_err(SourceError::Spill)? {
                        let m = dec.decode(&raw)?;
                        self.change(capture, &ctx, m).await?;
                    }
                }
                capture.commit(end_lsn).await?;
            }
            msg => match s.open.take() {
                Some(ctx) => {
                    self.change(capture, &ctx, msg).await?;
                    s.open = Some(ctx);
                }
                None => match msg {
                    msg @ Message::Relation { .. } => self.relation_message(capture, msg).await?,
                    // Non-transactional messages and Origin/Type outside a
                    // transaction carry no rows.
                    Message::LogicalMessage { .. }
                    | Message::Type { .. }
                    | Message::Origin { .. } => {}
                    other => {
                        return Err(SourceError::Protocol(format!(
                            "{other:?} outside a transaction"
                        )));
                    }
                },
            },
        }
        Ok(())
    }

    /// Takes the snapshot the mode asks for, of the tables not read yet.
    /// Returns whether to stream afterwards.
    async fn snapshot_if_needed(
        &mut self,
        capture: &mut PgCapture,
        conn: &mut Connection,
    ) -> Result<bool> {
        let mode = self.cfg.engine.snapshot;
        self.state = self.engine.ledger(&ledger_file(&self.cfg.slot))?;
        self.quarantine = self.engine.quarantine()?;
        // Read again at a new point, as a table added to the
        // configuration is (its old keys deleted first): forgotten by the
        // ledger before it leaves the quarantine list, so a crash in
        // between still reads it.
        let asked = self.quarantine.resume_requested()?;
        for back in &asked {
            self.state.forget(&back.schema, &back.table)?;
        }
        self.quarantine.take(&asked)?;
        for back in asked {
            tracing::info!(source = %self.cfg.name, table = %back.name(), quarantined_at = %back.position, "table taken back from quarantine: reading it again");
        }
        if mode == SnapshotMode::Never {
            return Ok(true);
        }
        let streaming = mode != SnapshotMode::InitialOnly;
        let slot: Option<Option<String>> = self
            .client()?
            .query_opt(
                "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.cfg.slot],
            )
            .await
            .map_err(sql("looking up the slot"))?
            .map(|r| r.get(0));
        let lost = matches!(&slot, Some(Some(w)) if w == "lost");
        let mut slot_exists = slot.is_some();
        if streaming && (lost || (!slot_exists && !self.state.is_empty())) {
            let how = if lost {
                "was invalidated by PostgreSQL (its WAL was removed: max_slot_wal_keep_size)"
            } else {
                "no longer exists"
            };
            if mode == SnapshotMode::Initial {
                return Err(SourceError::SlotLost {
                    slot: self.cfg.slot.clone(),
                    how: how.into(),
                    state: self.state.path().display().to_string(),
                });
            }
            tracing::warn!(slot = %self.cfg.slot, how, "slot lost: taking a new snapshot (snapshot mode when_needed)");
            if slot_exists {
                self.client()?
                    .execute("SELECT pg_drop_replication_slot($1)", &[&self.cfg.slot])
                    .await
                    .map_err(sql(format!("dropping the lost slot {}", self.cfg.slot)))?;
                slot_exists = false;
            }
            self.state.clear()?;
        }
        let todo: Vec<(String, String)> = captured_tables(self.client()?, &self.cfg)
            .await?
            .into_iter()
            .filter(|(s, t)| self.state.get(s, t).is_none() && !self.quarantine.contains(s, t))
            .collect();
        if todo.is_empty() {
            return Ok(streaming);
        }
        capture.progress().set_phase(Phase::Snapshot);
        if streaming && !slot_exists {
            // A new slot: the snapshot it exports is exactly where its
            // stream begins. The connection stays idle (keeping the
            // snapshot alive) until the stream starts on it.
            let (point, name) = create_slot(conn, &self.cfg.slot, false).await?;
            self.read_snapshot(capture, &name, point, &todo).await?;
            // A table that joined a schema or all-tables publication while
            // the slot was being created may hold rows committed before
            // its consistent point: neither the list read above nor the
            // stream has them. Such tables are read at a later point.
            let late: Vec<(String, String)> = captured_tables(self.client()?, &self.cfg)
                .await?
                .into_iter()
                .filter(|(s, t)| self.state.get(s, t).is_none() && !self.quarantine.contains(s, t))
                .collect();
            if !late.is_empty() {
                tracing::info!(source = %self.cfg.name, tables = late.len(), "tables created while the slot was created: reading them at a later point");
                self.read_at_temporary_slot(capture, &late).await?;
            }
        } else {
            self.read_at_temporary_slot(capture, &todo).await?;
        }
        Ok(streaming)
    }

    /// Reads `tables` when the stream's slot exists (an interrupted
    /// snapshot, tables added to the configuration) or none is wanted:
    /// inside the snapshot of a temporary slot, at a later point; the
    /// stream skips these tables' changes from before it.
    async fn read_at_temporary_slot(
        &mut self,
        capture: &mut PgCapture,
        tables: &[(String, String)],
    ) -> Result<()> {
        let mut tmp = Connection::connect(&self.cfg.connect)
            .await
            .map_err(|e| SourceError::explain(e, &self.cfg))?;
        let mut name = format!("{}_snap", self.cfg.slot);
        name.truncate(63);
        let (point, snapshot) = create_slot(&mut tmp, &name, true).await?;
        self.read_snapshot(capture, &snapshot, point, tables)
            .await?;
        // Temporary slots go with their connection anyway; dropping it
        // now means none is left when this returns.
        tmp.simple_query(&format!("DROP_REPLICATION_SLOT {}", quote_ident(&name)))
            .await?;
        Ok(())
    }

    /// Reads `tables` inside the exported snapshot `name` (consistent at
    /// `point`) with parallel connections, writing their rows as `op: r`
    /// events and recording each table once its rows are durable.
    async fn read_snapshot(
        &mut self,
        capture: &mut PgCapture,
        name: &str,
        point: u64,
        tables: &[(String, String)],
    ) -> Result<()> {
        let begin = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            name.replace('\'', "''")
        );
        // Every worker locks every table up front (ACCESS SHARE, what a
        // read takes anyway): a worker asking for a table's lock only when
        // it reaches the table would queue behind a DDL that came in
        // meanwhile, while the DDL waits for the locks the other workers
        // hold until the snapshot ends: neither would ever finish.
        let lock = format!(
            "LOCK TABLE {} IN ACCESS SHARE MODE",
            tables
                .iter()
                .map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut clients = Vec::new();
        for _ in 0..self.cfg.snapshot_workers.clamp(1, tables.len() * 64) {
            let c = sql_connect(&self.cfg.connect).await?;
            c.batch_execute(&begin)
                .await
                .map_err(sql("importing the slot's snapshot"))?;
            if !tables.is_empty() {
                c.batch_execute(&lock)
                    .await
                    .map_err(sql("locking the snapshot's tables"))?;
            }
            clients.push(c);
        }
        let mut jobs = Vec::with_capacity(tables.len());
        for (schema, table) in tables {
            let topic = self.cfg.topic(schema, table);
            let registered = async {
                let shape =
                    catalog::table_schema(&clients[0], &self.cfg.connect.database, schema, table)
                        .await?;
                let avro = EventSchema::new(&self.cfg.name, Connector::Postgres, shape.clone())?;
                capture.register(&topic, avro).await?;
                Ok::<_, SourceError>(shape)
            }
            .await;
            let shape = match registered {
                Ok(shape) => shape,
                // A table whose shape cannot be captured (a schema the
                // registry refuses, a table resumed before its cause was
                // fixed) is set aside again under quarantine; the others
                // are read.
                Err(e) if self.cfg.engine.on_error == OnError::Quarantine && e.is_about_table() => {
                    self.at = point;
                    self.set_aside_table(schema, table, &e)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let retracted = self.retract(capture.writer(), &topic, &shape, point)?;
            if retracted > 0 {
                tracing::info!(table = %shape.qualified_name(), keys = retracted, "deleted the rows of an interrupted read before reading the table again");
            }
            let source = events::table_source(&self.cfg.name, &self.cfg.connect.database, &shape);
            jobs.push(
                TableJob::plan(
                    &clients[0],
                    topic,
                    shape,
                    source,
                    self.cfg.snapshot_chunk_rows,
                )
                .await?,
            );
        }
        let chunks: usize = jobs.iter().map(|j| j.chunks.len()).sum();
        tracing::info!(
            source = %self.cfg.name,
            tables = jobs.len(),
            chunks,
            workers = clients.len(),
            point = %crate::replication::format_lsn(point),
            "snapshot started"
        );
        let state = Arc::new(std::sync::Mutex::new(self.state.clone()));
        let on_done: TableDoneFn = {
            let state = Arc::clone(&state);
            Box::new(move |job: &TableJob| -> Result<()> {
                // The ledger makes the table's records durable before it
                // records the table as read.
                let recording = std::time::Instant::now();
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.table_read(&job.shape.schema, &job.shape.table, point, job.rows())?;
                let flush_ms = recording.elapsed().as_millis() as u64;
                tracing::info!(table = %job.name, rows = job.rows(), flush_ms, "snapshot of table done");
                Ok(())
            })
        };
        let reader = Reader {
            jobs,
            writer: Arc::clone(capture.writer()),
            ctx: TxContext::snapshot(point),
            on_table_done: on_done,
            progress_interval: self.cfg.engine.progress_interval,
            source_name: self.cfg.name.clone(),
        };
        let read = reader.read(clients).await;
        self.state = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (rows, clients) = read?;
        capture.stats.snapshot_rows += rows;
        for c in &clients {
            c.batch_execute("COMMIT")
                .await
                .map_err(sql("ending the snapshot"))?;
        }
        Ok(())
    }
}

impl StreamSource {
    /// Before a table is read again (its earlier read was interrupted, or
    /// it was captured without a snapshot): a delete event for every key
    /// its topic already holds. The new read is at a later point than
    /// what the topic holds, and the stream skips the table's changes from
    /// before that point, deletes included; so a row deleted in between
    /// would otherwise live on in consumers. Each key's delete precedes
    /// its new `op: r` in the key's partition. Returns the keys deleted.
    fn retract(
        &self,
        writer: &EventWriter,
        topic: &str,
        shape: &TableSchema,
        point: u64,
    ) -> Result<u64> {
        let keys = writer.keys_held(topic)?;
        let ctx = TxContext::snapshot(point);
        let template = ctx.shared_source(
            &events::table_source(&self.cfg.name, &self.cfg.connect.database, shape),
            true,
        );
        let mut batch = Vec::with_capacity(1000);
        let mut n = 0;
        for datums in keys {
            let mut before = vec![tributary_core::Datum::Unavailable; shape.columns.len()];
            for (&i, d) in shape.key.iter().zip(datums) {
                before[i] = d;
            }
            batch.push(ctx.snapshot_event(&template, Op::Delete, Some(before), None));
            if batch.len() == 1000 {
                writer.append(topic, &batch)?;
                n += batch.len() as u64;
                batch.clear();
            }
        }
        writer.append(topic, &batch)?;
        Ok(n + batch.len() as u64)
    }
}

/// Creates a logical slot (`temporary`: dropped with the connection) that
/// exports its snapshot. Returns its consistent point and the snapshot's
/// name; the snapshot lives while `conn` stays idle.
async fn create_slot(conn: &mut Connection, slot: &str, temporary: bool) -> Result<(u64, String)> {
    let rows = conn
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {}{} LOGICAL pgoutput EXPORT_SNAPSHOT",
            quote_ident(slot),
            if temporary { " TEMPORARY" } else { "" }
        ))
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| SourceError::Snapshot("CREATE_REPLICATION_SLOT returned no row".into()))?;
    let point = row
        .get(1)
        .and_then(|v| v.as_deref())
        .and_then(crate::replication::parse_lsn)
        .ok_or_else(|| SourceError::Snapshot("no consistent point".into()))?;
    let name = row
        .get(2)
        .and_then(|v| v.clone())
        .ok_or_else(|| SourceError::Snapshot("no exported snapshot".into()))?;
    Ok((point, name))
}
