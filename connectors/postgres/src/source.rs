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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio_postgres::Client;
use tributary_core::{ChangeEvent, Op, TableSchema};
use tributary_log::{Log, Partition, TopicConfig};
use tributary_schemas::writer::{EventWriter, WriteError};
use tributary_schemas::{Connector, EventSchema};

use crate::catalog::{self, CatalogError};
use crate::events::{self, EventError, TxContext};
use crate::pgoutput::{self, Decoder, Message};
use crate::replication::{ConnectConfig, Connection, ReplicationError, StreamMessage, quote_ident};
use crate::spill::Spill;

/// What the streaming source needs.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Source name: the first part of topic names and Avro namespaces.
    pub name: String,
    /// Replication connection.
    pub connect: ConnectConfig,
    /// Publication to stream (created for `tables` when missing).
    pub publication: String,
    /// Replication slot (created when missing).
    pub slot: String,
    /// Tables (`schema`, `table`) to capture.
    pub tables: Vec<(String, String)>,
    /// How often standby status goes out.
    pub status_interval: Duration,
    /// Configuration of topics the source creates.
    pub topic_config: TopicConfig,
    /// Whether to read the tables' current rows before streaming.
    pub snapshot: SnapshotMode,
    /// Interval of heartbeat messages (`pg_logical_emit_message`); `None`
    /// sends none.
    pub heartbeat: Option<Duration>,
    /// pgoutput protocol version: 1, or 2 to receive large transactions
    /// while they are in progress (spilled to disk until they commit).
    pub proto_version: u32,
    /// Waits between reconnection attempts.
    pub reconnect: Backoff,
}

/// Exponential backoff: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// When the source reads a snapshot of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// When the slot is created: the rows as of its consistent point
    /// (`op: r`), then the stream from that point.
    Initial,
    /// Never: only changes from the slot's creation on.
    Never,
}

/// Errors of the streaming source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// SQL on the normal connection failed.
    #[error("{what}: {source}")]
    Sql {
        /// What we were doing.
        what: String,
        /// Cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server is not set up for logical replication.
    #[error(
        "wal_level is {0}, logical replication needs logical: run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL"
    )]
    WalLevel(String),
    /// The replication connection failed.
    #[error(transparent)]
    Replication(ReplicationError),
    /// The user may not replicate.
    #[error(
        "user {user} may not start replication: {message}. Fix: ALTER ROLE {user} REPLICATION; (and allow it in pg_hba.conf)"
    )]
    NoReplicationPrivilege {
        /// The user.
        user: String,
        /// The server's words.
        message: String,
    },
    /// Another consumer holds the slot.
    #[error(
        "replication slot {slot} is in use by another connection: {message}. Fix: stop the other consumer, or SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{slot}';"
    )]
    SlotActive {
        /// The slot.
        slot: String,
        /// The server's words.
        message: String,
    },
    /// The existing publication lacks a configured table.
    #[error(
        "publication {publication} does not include table {table}. Fix: ALTER PUBLICATION {publication} ADD TABLE {table};"
    )]
    NotPublished {
        /// The publication.
        publication: String,
        /// `schema.table`.
        table: String,
    },
    /// The server ended the replication stream without being asked to
    /// (it is shutting down or restarting).
    #[error("PostgreSQL ended the replication stream of slot {0}")]
    StreamEnded(String),
    /// A pgoutput message did not decode.
    #[error(transparent)]
    Decode(#[from] pgoutput::DecodeError),
    /// The catalog could not describe a table.
    #[error(transparent)]
    Catalog(Box<CatalogError>),
    /// A row could not become an event.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Writing to the log failed.
    #[error(transparent)]
    Write(Box<WriteError>),
    /// A change for a relation we were not told about.
    #[error("change for relation {0} before its Relation message")]
    UnknownRelation(u32),
    /// The snapshot could not be read.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A streamed transaction's spill file failed.
    #[error("{0}")]
    Spill(String),
    /// The server sent something out of order.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Deriving the Avro schema failed.
    #[error(transparent)]
    Schema(#[from] tributary_schemas::avro::SchemaError),
}

impl From<ReplicationError> for SourceError {
    fn from(e: ReplicationError) -> Self {
        SourceError::Replication(e)
    }
}

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

/// SQLSTATEs after which a new connection may succeed: connection
/// exceptions, the server shutting down or starting up, too many clients.
fn transient_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

/// Whether a SQL error is a lost or refused connection.
fn pg_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(d) => transient_code(d.code().code()),
        None => std::error::Error::source(e)
            .is_some_and(|c| c.downcast_ref::<std::io::Error>().is_some()),
    }
}

impl SourceError {
    /// Whether reconnecting may help: the connection broke, or the
    /// server is shutting down or starting up.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Replication(ReplicationError::Io { .. }) => true,
            SourceError::Replication(ReplicationError::Server { code, .. }) => transient_code(code),
            SourceError::Sql { source, .. } => pg_transient(source),
            SourceError::StreamEnded(_) => true,
            SourceError::Catalog(c) => {
                matches!(&**c, CatalogError::Query { source, .. } if pg_transient(source))
            }
            _ => false,
        }
    }

    fn is_slot_active(&self) -> bool {
        matches!(self, SourceError::SlotActive { .. })
    }
}

impl From<CatalogError> for SourceError {
    fn from(e: CatalogError) -> Self {
        SourceError::Catalog(Box::new(e))
    }
}

impl From<WriteError> for SourceError {
    fn from(e: WriteError) -> Self {
        SourceError::Write(Box::new(e))
    }
}

type Result<T, E = SourceError> = std::result::Result<T, E>;

/// Partitions a transaction touched, each with the high watermark its
/// durable watermark must reach before the commit is acknowledged.
type DurableMarks = Vec<(Arc<Partition>, u64)>;

fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Sql { what, source }
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
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&cfg.publication],
        )
        .await
        .map_err(sql("looking up the publication"))?
        .is_some();
    if !exists {
        let tables: Vec<String> = cfg
            .tables
            .iter()
            .map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t)))
            .collect();
        let ddl = format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            quote_ident(&cfg.publication),
            tables.join(", ")
        );
        client.batch_execute(&ddl).await.map_err(sql(ddl.clone()))?;
    } else {
        for (schema, table) in &cfg.tables {
            let published = client
                .query_opt(
                    "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                    &[&cfg.publication, schema, table],
                )
                .await
                .map_err(sql("looking up the publication's tables"))?
                .is_some();
            if !published {
                return Err(SourceError::NotPublished {
                    publication: cfg.publication.clone(),
                    table: format!("{schema}.{table}"),
                });
            }
        }
    }
    let slot = client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&cfg.slot],
        )
        .await
        .map_err(sql("looking up the slot"))?;
    if slot.is_none() && cfg.snapshot == SnapshotMode::Never {
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

struct Relation {
    topic: String,
    table: Arc<TableSchema>,
}

/// Events of one transaction are appended in chunks of this many, so a
/// huge transaction never sits in memory whole. The chunking is part of
/// the records' positions, so it must not change between runs that share
/// a log (a replay after a crash must cut the same chunks).
const CHUNK: usize = 4096;

/// The prefix of heartbeat messages.
const HEARTBEAT_PREFIX: &str = "tributary.heartbeat";

/// A transaction being written.
struct OpenTx {
    ctx: TxContext,
    /// Events not yet appended.
    events: Vec<(String, ChangeEvent)>,
    per_table: HashMap<String, i64>,
    total: i64,
    /// Appends so far: the middle part of the records' positions.
    run: u32,
    /// Topics appended to.
    touched: Vec<String>,
}

impl OpenTx {
    fn new(ctx: TxContext) -> Self {
        Self {
            ctx,
            events: Vec::new(),
            per_table: HashMap::new(),
            total: 0,
            run: 0,
            touched: Vec::new(),
        }
    }
}

/// The state of one replication session.
#[derive(Default)]
struct Session {
    decoder: Decoder,
    open: Option<OpenTx>,
    /// Streamed transactions in progress, by xid.
    streams: HashMap<u32, Spill>,
    /// The streamed transaction whose block is being received.
    in_block: Option<u32>,
    /// Commits whose records are appended but maybe not yet durable.
    pending: VecDeque<(u64, DurableMarks)>,
    /// The position that may be confirmed.
    acked: u64,
    /// The position last confirmed.
    sent: u64,
}

/// The streaming source.
pub struct StreamSource {
    cfg: StreamConfig,
    client: Option<Client>,
    log: Log,
    writer: EventWriter,
    relations: HashMap<u32, Relation>,
}

impl std::fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSource")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// Opens a normal (SQL) connection with the session settings the value
/// parsers expect.
pub async fn sql_connect(cfg: &ConnectConfig) -> Result<Client> {
    let mut c = tokio_postgres::Config::new();
    c.host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .dbname(&cfg.database)
        .application_name(&cfg.application_name)
        .options(crate::types::SESSION_OPTIONS)
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = &cfg.password {
        c.password(p);
    }
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.map_err(sql(format!(
        "connecting to {}:{} database {}",
        cfg.host, cfg.port, cfg.database
    )))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "SQL connection ended");
        }
    });
    Ok(client)
}

impl StreamSource {
    /// A source writing through `writer` into `log`. It connects when
    /// run.
    pub fn new(cfg: StreamConfig, log: Log, writer: EventWriter) -> Self {
        Self {
            cfg,
            client: None,
            log,
            writer,
            relations: HashMap::new(),
        }
    }

    fn client(&self) -> Result<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| SourceError::Snapshot("no SQL connection".into()))
    }

    fn spill_dir(&self) -> std::path::PathBuf {
        self.log
            .dir()
            .join("sources")
            .join(&self.cfg.name)
            .join("spill")
    }

    async fn on_relation(
        &mut self,
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
        let topic = topic_name(&self.cfg.name, namespace, name);
        let unchanged = self.relations.get(&oid).is_some_and(|r| *r.table == table);
        if !unchanged {
            let schema = EventSchema::new(&self.cfg.name, Connector::Postgres, table.clone())?;
            self.writer
                .register(&topic, schema, self.cfg.topic_config.clone())?;
            self.relations.insert(
                oid,
                Relation {
                    topic,
                    table: Arc::new(table),
                },
            );
        }
        Ok(())
    }

    fn relation(&self, oid: u32) -> Result<&Relation> {
        self.relations
            .get(&oid)
            .ok_or(SourceError::UnknownRelation(oid))
    }

    fn push(
        tx: &mut OpenTx,
        rel: &Relation,
        op: Op,
        before: Option<Vec<tributary_core::Datum>>,
        after: Option<Vec<tributary_core::Datum>>,
    ) {
        tx.total += 1;
        let per = tx.per_table.entry(rel.topic.clone()).or_insert(0);
        *per += 1;
        let ev = tx.ctx.event(&rel.table, op, before, after, tx.total, *per);
        tx.events.push((rel.topic.clone(), ev));
    }

    /// Applies one message of a transaction: a change becomes an event of
    /// `tx`, a Relation updates the table's shape first. Appends when a
    /// chunk is full.
    async fn change(&mut self, tx: &mut OpenTx, msg: Message, stats: &mut RunStats) -> Result<()> {
        match msg {
            Message::Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
                ..
            } => {
                self.on_relation(oid, &namespace, &name, &columns, replica_identity)
                    .await?;
            }
            Message::Insert { oid, new, .. } => {
                let rel = self.relation(oid)?;
                let after = events::row(&rel.table, &new)?;
                Self::push(tx, rel, Op::Create, None, Some(after));
            }
            Message::Update { oid, old, new, .. } => {
                let rel = self.relation(oid)?;
                let before = old
                    .map(|(k, t)| events::old_row(&rel.table, k, &t))
                    .transpose()?;
                let after = events::row(&rel.table, &new)?;
                Self::push(tx, rel, Op::Update, before, Some(after));
            }
            Message::Delete {
                oid,
                old: (kind, tuple),
                ..
            } => {
                let rel = self.relation(oid)?;
                let before = events::old_row(&rel.table, kind, &tuple)?;
                Self::push(tx, rel, Op::Delete, Some(before), None);
            }
            Message::Truncate { oids, .. } => {
                for oid in oids {
                    let rel = self.relation(oid)?;
                    Self::push(tx, rel, Op::Truncate, None, None);
                }
            }
            Message::LogicalMessage { prefix, .. } if prefix == HEARTBEAT_PREFIX => {
                stats.heartbeats += 1;
            }
            // Type: custom types are read from the catalog with the
            // relation. Origin: recorded by nothing downstream yet.
            _ => {}
        }
        if tx.events.len() >= CHUNK {
            self.write(tx)?;
        }
        Ok(())
    }

    /// Appends the transaction's pending events, one append per run of
    /// events of the same topic.
    fn write(&self, tx: &mut OpenTx) -> Result<()> {
        let events = std::mem::take(&mut tx.events);
        let mut it = events.into_iter().peekable();
        while let Some((topic, ev)) = it.next() {
            let mut batch = vec![ev];
            while let Some((_, e)) = it.next_if(|(t, _)| *t == topic) {
                batch.push(e);
            }
            // Position: commit LSN, then the append within the
            // transaction, then (added by the writer) the record: sorts in
            // stream order, so a replay after a crash skips what already
            // reached the log.
            let position = [
                &tx.ctx.commit_lsn.to_be_bytes()[..],
                &tx.run.to_be_bytes()[..],
            ]
            .concat();
            self.writer.append_at(&topic, &batch, Some(&position))?;
            if !tx.touched.contains(&topic) {
                tx.touched.push(topic);
            }
            tx.run += 1;
        }
        Ok(())
    }

    /// Appends the rest of a committed transaction; returns the
    /// partitions it touched and the high watermark each must become
    /// durable past.
    fn commit(&self, mut tx: OpenTx, stats: &mut RunStats) -> Result<DurableMarks> {
        self.write(&mut tx)?;
        stats.transactions += 1;
        stats.events += tx.total as u64;
        let mut marks = Vec::new();
        for t in &tx.touched {
            let topic = self.log.topic(t).map_err(WriteError::from)?;
            for p in topic.partitions() {
                marks.push((Arc::clone(p), p.high_watermark()));
            }
        }
        Ok(marks)
    }

    fn tx_context(&self, xid: u32, commit_lsn: u64, commit_time: i64) -> TxContext {
        TxContext {
            source_name: self.cfg.name.clone(),
            database: self.cfg.connect.database.clone(),
            xid,
            commit_lsn,
            commit_time,
            now_ms: tributary_log::now_ms(),
        }
    }

    /// The file that records a finished snapshot of this source's slot.
    fn snapshot_marker(&self) -> std::path::PathBuf {
        self.log
            .dir()
            .join("sources")
            .join(&self.cfg.name)
            .join(format!("snapshot-{}.done", self.cfg.slot))
    }

    /// Streams until `stop` turns true or a permanent error occurs. A
    /// lost connection (PostgreSQL restarted, the network dropped) is
    /// retried with exponential backoff; the slot keeps the position, and
    /// what was already written is not written again.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<RunStats> {
        let mut stats = RunStats::default();
        let mut delay = self.cfg.reconnect.initial;
        loop {
            let streamed = stats.sessions;
            let err = match self.session(&mut stop, &mut stats).await {
                Ok(()) => return Ok(stats),
                Err(e) => e,
            };
            // After a drop, the old walsender can hold the slot a moment.
            let retry = err.is_transient() || (stats.sessions > 0 && err.is_slot_active());
            if !retry || *stop.borrow() {
                return Err(err);
            }
            if stats.sessions > streamed {
                delay = self.cfg.reconnect.initial;
            }
            stats.reconnects += 1;
            tracing::warn!(source = %self.cfg.name, error = %err, retry_in_ms = delay.as_millis() as u64, "PostgreSQL connection lost; reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return Ok(stats);
            }
            delay = (delay * 2).min(self.cfg.reconnect.max);
        }
    }

    /// One connection's life: connect, snapshot if needed, stream.
    async fn session(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        stats: &mut RunStats,
    ) -> Result<()> {
        if *stop.borrow() {
            return Ok(());
        }
        self.relations.clear();
        self.client = Some(sql_connect(&self.cfg.connect).await?);
        prepare(self.client()?, &self.cfg).await?;
        let mut conn = Connection::connect(&self.cfg.connect)
            .await
            .map_err(|e| SourceError::explain(e, &self.cfg))?;
        self.snapshot_if_needed(&mut conn).await?;
        let spill_dir = self.spill_dir();
        if spill_dir.exists() {
            std::fs::remove_dir_all(&spill_dir).map_err(|e| {
                SourceError::Snapshot(format!("clearing {}: {e}", spill_dir.display()))
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
        stats.sessions += 1;
        tracing::info!(source = %self.cfg.name, slot = %self.cfg.slot, proto = self.cfg.proto_version, "streaming");
        let mut s = Session::default();
        let mut ticker = tokio::time::interval(self.cfg.status_interval);
        // Heartbeats: a transactional logical message commits a small
        // transaction into the stream, so the slot keeps advancing (and
        // retained WAL stays bounded) while the captured tables are idle.
        let mut heartbeat =
            tokio::time::interval(self.cfg.heartbeat.unwrap_or(Duration::from_secs(3600)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    if *stop.borrow() {
                        break;
                    }
                }
                _ = heartbeat.tick(), if self.cfg.heartbeat.is_some() => {
                    self.client()?
                        .execute("SELECT pg_logical_emit_message(true, 'tributary.heartbeat', now()::text)", &[])
                        .await
                        .map_err(sql("emitting a heartbeat"))?;
                }
                _ = ticker.tick() => {
                    while let Some((lsn, marks)) = s.pending.front() {
                        if marks.iter().all(|(p, hw)| p.durable_watermark() >= *hw) {
                            s.acked = s.acked.max(*lsn);
                            s.pending.pop_front();
                        } else {
                            break;
                        }
                    }
                    if s.acked > s.sent {
                        status.send_status(s.acked, s.acked, s.acked, false).await?;
                        s.sent = s.acked;
                    }
                }
                msg = reader.next() => {
                    // CopyDone from the server: it is going away, not us.
                    let Some(msg) = msg? else {
                        return Err(SourceError::StreamEnded(self.cfg.slot.clone()));
                    };
                    match msg {
                        StreamMessage::Keepalive { end, reply, .. } => {
                            // Nothing in flight: everything up to the server's
                            // position is either ours and durable, or not ours.
                            if s.open.is_none() && s.pending.is_empty() && s.streams.is_empty() {
                                s.acked = s.acked.max(end);
                            }
                            if reply {
                                status.send_status(s.acked, s.acked, s.acked, false).await?;
                                s.sent = s.acked;
                            }
                        }
                        StreamMessage::XLogData { data, .. } => {
                            self.message(&mut s, data, stats).await?;
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

    /// Handles one pgoutput message of the stream.
    async fn message(&mut self, s: &mut Session, data: Bytes, stats: &mut RunStats) -> Result<()> {
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
                s.open = Some(OpenTx::new(self.tx_context(xid, final_lsn, commit_time)));
            }
            Message::Commit { end_lsn, .. } => {
                if let Some(tx) = s.open.take() {
                    let marks = self.commit(tx, stats)?;
                    s.pending.push_back((end_lsn, marks));
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
                let mut tx = OpenTx::new(self.tx_context(xid, commit_lsn, commit_time));
                if let Some(spill) = s.streams.remove(&xid) {
                    let mut rd = spill.finish().map_err(SourceError::Spill)?;
                    let mut dec = Decoder::in_stream();
                    while let Some(raw) = rd.next_message().map_err(SourceError::Spill)? {
                        let m = dec.decode(&raw)?;
                        self.change(&mut tx, m, stats).await?;
                    }
                }
                let marks = self.commit(tx, stats)?;
                s.pending.push_back((end_lsn, marks));
            }
            msg => match s.open.take() {
                Some(mut tx) => {
                    self.change(&mut tx, msg, stats).await?;
                    s.open = Some(tx);
                }
                None => match msg {
                    Message::Relation {
                        oid,
                        namespace,
                        name,
                        replica_identity,
                        columns,
                        ..
                    } => {
                        self.on_relation(oid, &namespace, &name, &columns, replica_identity)
                            .await?;
                    }
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

    /// Takes the initial snapshot when the mode asks for one and it has
    /// not finished before.
    async fn snapshot_if_needed(&mut self, conn: &mut Connection) -> Result<()> {
        let slot_exists = self
            .client()?
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.cfg.slot],
            )
            .await
            .map_err(sql("looking up the slot"))?
            .is_some();
        let marker = self.snapshot_marker();
        if slot_exists && self.cfg.snapshot == SnapshotMode::Initial && !marker.exists() {
            // The slot exists but its snapshot never finished (a crash or
            // stop mid-snapshot). Streaming from it would skip the rows
            // the snapshot did not reach: drop it and snapshot again.
            // Rows already written arrive a second time as `op: r`, which
            // sinks apply idempotently; nothing is lost.
            tracing::warn!(slot = %self.cfg.slot, "slot without a finished snapshot: taking the snapshot again");
            self.client()?
                .execute("SELECT pg_drop_replication_slot($1)", &[&self.cfg.slot])
                .await
                .map_err(sql(format!(
                    "dropping the unfinished slot {}",
                    self.cfg.slot
                )))?;
        }
        if (!slot_exists || !marker.exists()) && self.cfg.snapshot == SnapshotMode::Initial {
            let rows = conn
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
                    quote_ident(&self.cfg.slot)
                ))
                .await?;
            let row = rows.first().ok_or_else(|| {
                SourceError::Snapshot("CREATE_REPLICATION_SLOT returned no row".into())
            })?;
            let point = row
                .get(1)
                .and_then(|v| v.as_deref())
                .and_then(crate::replication::parse_lsn)
                .ok_or_else(|| SourceError::Snapshot("no consistent point".into()))?;
            let name = row
                .get(2)
                .and_then(|v| v.clone())
                .ok_or_else(|| SourceError::Snapshot("no exported snapshot".into()))?;
            // The exported snapshot lives as long as this connection stays
            // idle; the stream starts on it once the snapshot is read.
            let rows = self.snapshot(&name, point).await?;
            // Every snapshot record durable before the marker says done.
            self.log.flush().map_err(WriteError::from)?;
            write_marker(&marker, point)?;
            tracing::info!(slot = %self.cfg.slot, rows, "snapshot done");
        }
        Ok(())
    }

    /// Reads the captured tables inside the exported snapshot `name` and
    /// writes their rows as `op: r` events. Returns how many.
    async fn snapshot(&mut self, name: &str, consistent_point: u64) -> Result<u64> {
        use futures_util::StreamExt;
        self.client()?
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                name.replace('\'', "''")
            ))
            .await
            .map_err(sql("importing the slot's snapshot"))?;
        let mut total = 0u64;
        let tables = self.cfg.tables.clone();
        for (ti, (schema, table)) in tables.iter().enumerate() {
            let shape =
                catalog::table_schema(self.client()?, &self.cfg.connect.database, schema, table)
                    .await?;
            let topic = topic_name(&self.cfg.name, schema, table);
            let avro = EventSchema::new(&self.cfg.name, Connector::Postgres, shape.clone())?;
            self.writer
                .register(&topic, avro, self.cfg.topic_config.clone())?;
            let cols: Vec<String> = shape.columns.iter().map(|c| quote_ident(&c.name)).collect();
            let copy = format!(
                "COPY (SELECT {} FROM {}.{}) TO STDOUT",
                cols.join(", "),
                quote_ident(schema),
                quote_ident(table)
            );
            let stream = self
                .client()?
                .copy_out(&copy)
                .await
                .map_err(sql(copy.clone()))?;
            futures_util::pin_mut!(stream);
            let ctx = TxContext {
                source_name: self.cfg.name.clone(),
                database: self.cfg.connect.database.clone(),
                xid: 0,
                commit_lsn: consistent_point,
                commit_time: 0,
                now_ms: tributary_log::now_ms(),
            };
            let mut carry: Vec<u8> = Vec::new();
            let mut batch: Vec<ChangeEvent> = Vec::with_capacity(1000);
            let last_table = ti + 1 == tables.len();
            let mut flush = |batch: &mut Vec<ChangeEvent>, last: bool| -> Result<()> {
                if let (true, Some(ev)) = (last, batch.last_mut()) {
                    ev.source.snapshot = tributary_core::SnapshotFlag::Last;
                }
                if !batch.is_empty() {
                    self.writer.append(&topic, batch)?;
                    total += batch.len() as u64;
                    batch.clear();
                }
                Ok(())
            };
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(sql(copy.clone()))?;
                carry.extend_from_slice(&chunk);
                let mut start = 0;
                while let Some(nl) = carry[start..].iter().position(|&b| b == b'\n') {
                    let line = &carry[start..start + nl];
                    start += nl + 1;
                    let fields = crate::snapshot::copy_fields(line).map_err(|reason| {
                        SourceError::Snapshot(format!("table {schema}.{table}: {reason}"))
                    })?;
                    let tuple: Vec<crate::pgoutput::TupleValue> = fields
                        .into_iter()
                        .map(|f| match f {
                            None => crate::pgoutput::TupleValue::Null,
                            Some(s) => crate::pgoutput::TupleValue::Text(bytes::Bytes::from(s)),
                        })
                        .collect();
                    let row = events::row(&shape, &tuple)?;
                    let mut ev = ctx.event(&shape, Op::Read, None, Some(row), 0, 0);
                    ev.transaction = None;
                    ev.source.snapshot = tributary_core::SnapshotFlag::True;
                    batch.push(ev);
                    if batch.len() == 1000 {
                        flush(&mut batch, false)?;
                    }
                }
                carry.drain(..start);
            }
            flush(&mut batch, last_table)?;
        }
        self.client()?
            .batch_execute("COMMIT")
            .await
            .map_err(sql("ending the snapshot"))?;
        Ok(total)
    }
}

fn write_marker(path: &std::path::Path, point: u64) -> Result<()> {
    let io = |e: std::io::Error| {
        SourceError::Snapshot(format!(
            "recording the finished snapshot in {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, crate::replication::format_lsn(point)).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// What one `run` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Committed transactions received (heartbeats included).
    pub transactions: u64,
    /// Change events written.
    pub events: u64,
    /// Heartbeat messages that came back through the stream.
    pub heartbeats: u64,
    /// Sessions that reached streaming.
    pub sessions: u64,
    /// Reconnections after a lost connection.
    pub reconnects: u64,
}
