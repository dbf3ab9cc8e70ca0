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

struct OpenTx {
    ctx: TxContext,
    events: Vec<(String, ChangeEvent)>,
    per_table: HashMap<String, i64>,
}

/// The streaming source.
pub struct StreamSource {
    cfg: StreamConfig,
    client: Client,
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

impl StreamSource {
    /// A source writing through `writer` into `log`; `client` is a normal
    /// (SQL) connection to the same database, for the catalog.
    pub fn new(cfg: StreamConfig, client: Client, log: Log, writer: EventWriter) -> Self {
        Self {
            cfg,
            client,
            log,
            writer,
            relations: HashMap::new(),
        }
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
            &self.client,
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
        let total = tx.events.len() as i64 + 1;
        let per = tx.per_table.entry(rel.topic.clone()).or_insert(0);
        *per += 1;
        let ev = tx.ctx.event(&rel.table, op, before, after, total, *per);
        tx.events.push((rel.topic.clone(), ev));
    }

    /// Appends a committed transaction; returns the partitions it touched
    /// and the high watermark each must become durable past.
    fn write(&self, tx: OpenTx) -> Result<DurableMarks> {
        let mut touched: Vec<String> = Vec::new();
        let mut i = 0;
        let mut run = 0u32;
        while i < tx.events.len() {
            let topic = &tx.events[i].0;
            let mut j = i;
            while j < tx.events.len() && &tx.events[j].0 == topic {
                j += 1;
            }
            let batch: Vec<ChangeEvent> = tx.events[i..j].iter().map(|(_, e)| e.clone()).collect();
            // Position: commit LSN, then the run of this transaction, then
            // (added by the writer) the record: sorts in stream order, so
            // a replay after a crash skips what already reached the log.
            let position = [&tx.ctx.commit_lsn.to_be_bytes()[..], &run.to_be_bytes()[..]].concat();
            self.writer.append_at(topic, &batch, Some(&position))?;
            if !touched.contains(topic) {
                touched.push(topic.clone());
            }
            i = j;
            run += 1;
        }
        let mut marks = Vec::new();
        for t in touched {
            let topic = self.log.topic(&t).map_err(WriteError::from)?;
            for p in topic.partitions() {
                marks.push((Arc::clone(p), p.high_watermark()));
            }
        }
        Ok(marks)
    }

    /// The file that records a finished snapshot of this source's slot.
    fn snapshot_marker(&self) -> std::path::PathBuf {
        self.log
            .dir()
            .join("sources")
            .join(&self.cfg.name)
            .join(format!("snapshot-{}.done", self.cfg.slot))
    }

    /// Reads the captured tables inside the exported snapshot `name` and
    /// writes their rows as `op: r` events. Returns how many.
    async fn snapshot(&mut self, name: &str, consistent_point: u64) -> Result<u64> {
        use futures_util::StreamExt;
        let session: String = crate::types::SESSION_OPTIONS
            .split("-c ")
            .filter(|s| !s.trim().is_empty())
            .map(|s| format!("SET {};", s.trim()))
            .collect();
        self.client
            .batch_execute(&session)
            .await
            .map_err(sql("session settings"))?;
        self.client
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
                catalog::table_schema(&self.client, &self.cfg.connect.database, schema, table)
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
                .client
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
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(sql("ending the snapshot"))?;
        Ok(total)
    }

    /// Streams until `stop` turns true or an error occurs. With
    /// [`SnapshotMode::Initial`] and no slot yet, first creates the slot
    /// and reads the snapshot it exports.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<RunStats> {
        let mut stats = RunStats::default();
        let mut conn = Connection::connect(&self.cfg.connect)
            .await
            .map_err(|e| SourceError::explain(e, &self.cfg))?;
        let slot_exists = self
            .client
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
            self.client
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
        let (mut reader, mut status) = conn
            .start_replication(
                &self.cfg.slot,
                0,
                &[
                    ("proto_version", "1"),
                    ("publication_names", &self.cfg.publication),
                    ("messages", "true"),
                ],
            )
            .await
            .map_err(|e| SourceError::explain(e, &self.cfg))?;
        let mut decoder = Decoder::new();
        let mut open: Option<OpenTx> = None;
        let mut pending: VecDeque<(u64, DurableMarks)> = VecDeque::new();
        let mut acked = 0u64;
        let mut sent = 0u64;
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
                    self.client
                        .execute("SELECT pg_logical_emit_message(true, 'tributary.heartbeat', now()::text)", &[])
                        .await
                        .map_err(sql("emitting a heartbeat"))?;
                }
                _ = ticker.tick() => {
                    while let Some((lsn, marks)) = pending.front() {
                        if marks.iter().all(|(p, hw)| p.durable_watermark() >= *hw) {
                            acked = acked.max(*lsn);
                            pending.pop_front();
                        } else {
                            break;
                        }
                    }
                    if acked > sent {
                        status.send_status(acked, acked, acked, false).await?;
                        sent = acked;
                    }
                }
                msg = reader.next() => {
                    let Some(msg) = msg? else { break };
                    match msg {
                        StreamMessage::Keepalive { end, reply, .. } => {
                            // Nothing in flight: everything up to the server's
                            // position is either ours and durable, or not ours.
                            if open.is_none() && pending.is_empty() {
                                acked = acked.max(end);
                            }
                            if reply {
                                status.send_status(acked, acked, acked, false).await?;
                                sent = acked;
                            }
                        }
                        StreamMessage::XLogData { data, .. } => {
                            match decoder.decode(&data)? {
                                Message::Begin { final_lsn, commit_time, xid } => {
                                    open = Some(OpenTx {
                                        ctx: TxContext {
                                            source_name: self.cfg.name.clone(),
                                            database: self.cfg.connect.database.clone(),
                                            xid,
                                            commit_lsn: final_lsn,
                                            commit_time,
                                            now_ms: tributary_log::now_ms(),
                                        },
                                        events: Vec::new(),
                                        per_table: HashMap::new(),
                                    });
                                }
                                Message::Relation { oid, namespace, name, replica_identity, columns, .. } => {
                                    self.on_relation(oid, &namespace, &name, &columns, replica_identity).await?;
                                }
                                Message::Insert { oid, new, .. } => {
                                    let rel = self.relation(oid)?;
                                    let after = events::row(&rel.table, &new)?;
                                    if let Some(tx) = open.as_mut() {
                                        Self::push(tx, rel, Op::Create, None, Some(after));
                                    }
                                }
                                Message::Update { oid, old, new, .. } => {
                                    let rel = self.relation(oid)?;
                                    let before = old.map(|(k, t)| events::old_row(&rel.table, k, &t)).transpose()?;
                                    let after = events::row(&rel.table, &new)?;
                                    if let Some(tx) = open.as_mut() {
                                        Self::push(tx, rel, Op::Update, before, Some(after));
                                    }
                                }
                                Message::Delete { oid, old: (kind, tuple), .. } => {
                                    let rel = self.relation(oid)?;
                                    let before = events::old_row(&rel.table, kind, &tuple)?;
                                    if let Some(tx) = open.as_mut() {
                                        Self::push(tx, rel, Op::Delete, Some(before), None);
                                    }
                                }
                                Message::Truncate { oids, .. } => {
                                    for oid in oids {
                                        let rel = self.relation(oid)?;
                                        if let Some(tx) = open.as_mut() {
                                            Self::push(tx, rel, Op::Truncate, None, None);
                                        }
                                    }
                                }
                                Message::Commit { end_lsn, .. } => {
                                    if let Some(tx) = open.take() {
                                        stats.transactions += 1;
                                        stats.events += tx.events.len() as u64;
                                        let marks = if tx.events.is_empty() { Vec::new() } else { self.write(tx)? };
                                        pending.push_back((end_lsn, marks));
                                    }
                                }
                                Message::LogicalMessage { prefix, .. } if prefix == "tributary.heartbeat" => {
                                    stats.heartbeats += 1;
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        status.close().await?;
        Ok(stats)
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
}
