//! The PostgreSQL sink: each captured table kept as a table of a
//! PostgreSQL database.
//!
//! - The target table is `table` (a template, default `{schema}.{table}`),
//!   created from the record's schema when missing (types keep precision:
//!   see [`text::ddl_type`]), or mapped onto an existing one by column name
//!   (`columns` renames). A column the source gains is added.
//! - A batch is one transaction. Per table, the batch is reduced to each
//!   key's last state (an update of a column the source could not see,
//!   unchanged TOAST, keeps the value before it); deletes run as one
//!   `DELETE ... WHERE key IN (unnest(...))`, upserts as one COPY into a
//!   temporary staging table and one `INSERT ... SELECT ... ON CONFLICT
//!   (key) DO UPDATE`. A truncate clears the table at its place in the
//!   batch.
//! - In the same transaction, the offset after the batch is stored per
//!   partition in `tributary_offsets`: data and offsets commit together,
//!   so a restart resumes exactly where the table is (exactly-once effect).
//! - A value the target refuses (a constraint, a value the type cannot
//!   hold) is found by halving the batch, each half its own transaction:
//!   the records before it are applied and it is reported with the
//!   database's words, naming the table and column.

pub mod binary;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt as _;
use tokio_postgres::Client;
use tributary_core::changes::{
    Pending, TableChanges, TableMap, TransactionalWriter, TxError, apply_finding_refused,
};
use tributary_core::event::{Op, TableSchema};
use tributary_core::sink::{BoxFuture, StoredOffsets};
use tributary_core::{Sink, SinkError, SinkRecord, TopicPartition};
use tributary_postgres_conn::ConnectConfig;

use crate::text::ident;

/// Settings.
#[derive(Debug, Clone)]
pub struct PgSinkConfig {
    /// The sink's name (its rows in `tributary_offsets`).
    pub name: String,
    /// The target database.
    pub connect: ConnectConfig,
    /// Target tables (`schema.table` or `table`, schema `public`) and
    /// columns.
    pub map: TableMap,
    /// Create missing tables and add missing columns.
    pub create_tables: bool,
}

/// As a sink error where no record is to blame (connecting, reading or
/// storing offsets): a value or constraint error there is not retried.
fn no_record(e: TxError) -> SinkError {
    match e {
        TxError::Data(m) => SinkError::fatal(m),
        TxError::Sink(e) => e,
    }
}

/// Classifies a database error by SQLSTATE; `what` names the statement's
/// table.
fn classify(what: &str, e: tokio_postgres::Error) -> TxError {
    let Some(db) = e.as_db_error() else {
        return TxError::transient(format!("{what}: {e}"), e);
    };
    let code = db.code().code();
    let mut msg = format!("{what}: {}", db.message());
    if let Some(c) = db.column() {
        msg.push_str(&format!(" (column {c})"));
    }
    if let Some(d) = db.detail() {
        msg.push_str(&format!(": {d}"));
    }
    if let Some(w) = db.where_() {
        msg.push_str(&format!(" [{w}]"));
    }
    msg.push_str(&format!(" (SQLSTATE {code})"));
    let class = code.get(..2).unwrap_or("");
    match (class, code) {
        // Values, constraints, two keys the target holds equal (21000),
        // an index row too large (54000).
        ("22" | "23", _) | (_, "21000" | "54000") => TxError::Data(msg),
        (_, "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "57014")
        | ("08" | "53" | "58", _) => TxError::transient(msg, e),
        (_, "42P10") => TxError::fatal(
            format!(
                "{msg}: the target table needs a primary key or unique index on the source's key columns"
            ),
            e,
        ),
        _ => TxError::fatal(msg, e),
    }
}

/// A target table as mapped for one source shape.
#[derive(Debug)]
struct Target {
    /// `"schema"."table"`.
    name: String,
    /// For messages: `schema.table`.
    shown: String,
    /// The temporary staging table.
    stage: String,
    /// Rows in the staging table from an earlier group of this
    /// transaction.
    stage_dirty: bool,
    /// Groups of inserted rows to send through the staging table before
    /// trying a direct COPY again (one found its key taken).
    direct_pause: u32,
    /// The source shape this mapping is for.
    shape: Arc<TableSchema>,
    /// Per source column: the quoted target column and its type, or
    /// `None` when the target does not have it.
    cols: Vec<Option<(String, String)>>,
    /// Quoted target key columns.
    key: Vec<String>,
    /// Their types.
    key_types: Vec<String>,
}

/// The sink.
pub struct PostgresSink {
    cfg: PgSinkConfig,
    client: Option<Client>,
    /// Source `schema.table` to its target, for this connection.
    targets: HashMap<(String, String), Target>,
    stages: u32,
    /// Offsets stored so far: records below them are never applied twice.
    done: HashMap<(Arc<str>, u32), u64>,
    /// Statements prepared on this connection, by text.
    stmts: HashMap<String, tokio_postgres::Statement>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("name", &self.cfg.name)
            .field("table", &self.cfg.map.template)
            .finish()
    }
}

const OFFSETS: &str = "public.tributary_offsets";

impl PostgresSink {
    /// A sink for `cfg` (connects on first use).
    pub fn new(cfg: PgSinkConfig) -> Self {
        Self {
            cfg,
            client: None,
            targets: HashMap::new(),
            stages: 0,
            done: HashMap::new(),
            stmts: HashMap::new(),
        }
    }

    async fn connect(&mut self) -> Result<Client, TxError> {
        if let Some(c) = self.client.take()
            && !c.is_closed()
        {
            return Ok(c);
        }
        // A new session: its temporary staging tables and prepared
        // statements are gone.
        self.targets.clear();
        self.stmts.clear();
        let c = tributary_postgres_conn::sql_connect(&self.cfg.connect)
            .await
            .map_err(|e| TxError::transient(e.to_string(), e))?;
        // Commits stay synchronous: the worker goes on from the offsets it
        // saw committed, so a commit the server lost in a crash would never
        // be applied again (with 10000-row batches the WAL flush per commit
        // costs little).
        c.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {OFFSETS} (
                 sink text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
                 next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (sink, topic, partition))"
        ))
        .await
        .or_else(|e| match e.code().map(|c| c.code()) {
            // Another worker of the sink created it at the same moment.
            Some("23505" | "42P07") => Ok(()),
            _ => Err(classify(OFFSETS, e)),
        })?;
        Ok(c)
    }

    /// The target for `shape`, created or extended as configured. A
    /// constraint error here is another worker creating the same table:
    /// retried, never blamed on a record.
    async fn ensure(&mut self, c: &Client, shape: &Arc<TableSchema>) -> Result<(), TxError> {
        self.ensure_inner(c, shape)
            .await
            .map_err(TxError::data_as_transient)
    }

    async fn ensure_inner(&mut self, c: &Client, shape: &Arc<TableSchema>) -> Result<(), TxError> {
        let src = source_key(shape);
        if let Some(t) = self.targets.get(&src)
            && (Arc::ptr_eq(&t.shape, shape) || *t.shape == **shape)
        {
            return Ok(());
        }
        let (schema, table) = self.cfg.map.name(shape);
        let schema = schema.unwrap_or_else(|| "public".into());
        let shown = format!("{schema}.{table}");
        let name = format!("{}.{}", ident(&schema), ident(&table));
        let mut existing = target_columns(c, &schema, &table)
            .await
            .map_err(|e| classify(&shown, e))?;
        if existing.is_empty() {
            if !self.cfg.create_tables {
                return Err(TxError::refused(format!(
                    "target table {shown} does not exist (create_tables is off)"
                )));
            }
            let defs = self
                .cfg
                .map
                .create_defs(shape, ident, |c, _| text::ddl_type(c));
            let ddl = format!(
                "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {name} ({})",
                ident(&schema),
                defs.join(", ")
            );
            c.batch_execute(&ddl)
                .await
                .map_err(|e| classify(&shown, e))?;
            tracing::info!(sink = %self.cfg.name, table = %shown, "target table created");
        } else {
            let mut added = false;
            for (_, col, t) in self
                .cfg
                .map
                .missing(shape, |t| existing.iter().any(|(n, _)| n == t))
            {
                if self.cfg.create_tables {
                    let ddl = format!(
                        "ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {} {}",
                        ident(&t),
                        text::ddl_type(col)
                    );
                    c.batch_execute(&ddl)
                        .await
                        .map_err(|e| classify(&shown, e))?;
                    tracing::info!(sink = %self.cfg.name, table = %shown, column = %t, "target column added");
                    added = true;
                } else {
                    tracing::warn!(sink = %self.cfg.name, table = %shown, column = %t, "the target has no such column: not written");
                }
            }
            if !added {
                // Mapped as it is.
                return self
                    .finish_ensure(c, shape, src, shown, name, existing)
                    .await;
            }
        }
        existing = target_columns(c, &schema, &table)
            .await
            .map_err(|e| classify(&shown, e))?;
        self.finish_ensure(c, shape, src, shown, name, existing)
            .await
    }

    async fn finish_ensure(
        &mut self,
        c: &Client,
        shape: &Arc<TableSchema>,
        src: (String, String),
        shown: String,
        name: String,
        existing: Vec<(String, String)>,
    ) -> Result<(), TxError> {
        let cols: Vec<Option<(String, String)>> = shape
            .columns
            .iter()
            .map(|col| {
                let t = self.cfg.map.column(&col.name);
                existing
                    .iter()
                    .find(|(n, _)| n == t)
                    .map(|(n, ty)| (ident(n), ty.clone()))
            })
            .collect();
        let mut key = Vec::new();
        let mut key_types = Vec::new();
        for &i in &shape.key {
            match cols.get(i).cloned().flatten() {
                Some((n, ty)) => {
                    key.push(n);
                    key_types.push(ty);
                }
                None => {
                    return Err(TxError::refused(format!(
                        "target table {shown} has no column for key column {}",
                        shape.columns.get(i).map_or("?", |c| c.name.as_str())
                    )));
                }
            }
        }
        // Rows are matched by key: the target must have a unique index on
        // exactly those columns (else a replay would add rows twice).
        let mut key_names: Vec<String> = shape
            .key
            .iter()
            .filter_map(|&i| shape.columns.get(i))
            .map(|col| self.cfg.map.column(&col.name).to_string())
            .collect();
        key_names.sort();
        if !key_names.is_empty() {
            let unique: Vec<Vec<String>> = c
                .query(
                    "SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                       FROM pg_index i
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                      WHERE i.indrelid = $1::text::regclass AND i.indisunique AND i.indpred IS NULL
                      GROUP BY i.indexrelid",
                    &[&name],
                )
                .await
                .map_err(|e| classify(&shown, e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !unique.contains(&key_names) {
                return Err(TxError::refused(format!(
                    "target table {shown} has no primary key or unique index on ({}): rows cannot be matched; add one",
                    key_names.join(", ")
                )));
            }
        }
        // The staging table: the mapped columns with the target's types,
        // no constraints (a column the source could not see stays NULL
        // there and is not written).
        self.stages += 1;
        let stage = format!("pg_temp.tributary_stage_{}", self.stages);
        let defs: Vec<String> = cols
            .iter()
            .flatten()
            .map(|(n, ty)| format!("{n} {ty}"))
            .collect();
        c.batch_execute(&format!(
            "CREATE TEMPORARY TABLE {stage} ({}) ON COMMIT DELETE ROWS",
            defs.join(", ")
        ))
        .await
        .map_err(|e| classify(&shown, e))?;
        if let Some(old) = self.targets.remove(&src) {
            // Dropped outside the batch's fate: a failed batch rolls back
            // only what it did.
            let _ = c
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", old.stage))
                .await;
        }
        self.targets.insert(
            src,
            Target {
                name,
                shown,
                stage,
                stage_dirty: false,
                direct_pause: 0,
                shape: Arc::clone(shape),
                cols,
                key,
                key_types,
            },
        );
        Ok(())
    }

    /// Applies `batch` (records not applied before) in one transaction.
    async fn try_batch(&mut self, batch: &[SinkRecord]) -> Result<(), TxError> {
        let mut seen: Option<(&Arc<str>, u32, Option<u64>)> = None;
        let todo: Vec<&SinkRecord> = batch
            .iter()
            .filter(|r| {
                let next = match seen {
                    Some((t, p, n)) if p == r.partition && Arc::ptr_eq(t, &r.topic) => n,
                    _ => {
                        let n = self.done.get(&(Arc::clone(&r.topic), r.partition)).copied();
                        seen = Some((&r.topic, r.partition, n));
                        n
                    }
                };
                next.is_none_or(|next| r.offset >= next)
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let c = self.connect().await?;
        // Tables and columns first, outside the transaction: DDL that
        // later batches rely on is kept even if this one fails.
        let mut last: Option<&Arc<TableSchema>> = None;
        for r in &todo {
            if last.is_some_and(|t| Arc::ptr_eq(t, &r.table)) {
                continue;
            }
            last = Some(&r.table);
            if let Err(e) = self.ensure(&c, &r.table).await {
                self.keep(c);
                return Err(e);
            }
        }
        let result = self.transaction(&c, &todo).await;
        match &result {
            Ok(()) => {
                // Each partition's records are in order: its last is the
                // furthest.
                let mut ends: Vec<(&Arc<str>, u32, u64)> = Vec::new();
                for r in &todo {
                    match ends
                        .iter_mut()
                        .find(|(t, p, _)| *p == r.partition && Arc::ptr_eq(t, &r.topic))
                    {
                        Some(e) => e.2 = r.offset + 1,
                        None => ends.push((&r.topic, r.partition, r.offset + 1)),
                    }
                }
                for (t, p, end) in ends {
                    let next = self.done.entry((Arc::clone(t), p)).or_insert(0);
                    *next = (*next).max(end);
                }
                for t in self.targets.values_mut() {
                    t.stage_dirty = false;
                }
                self.keep(c);
            }
            Err(_) => {
                // What the transaction did to the mapping (a staging table
                // or column made inside it) is undone: map again next time.
                let _ = c.batch_execute("ROLLBACK").await;
                for (_, t) in self.targets.drain() {
                    let _ = c
                        .batch_execute(&format!("DROP TABLE IF EXISTS {}", t.stage))
                        .await;
                }
                self.keep(c);
            }
        }
        result
    }

    fn keep(&mut self, c: Client) {
        if !c.is_closed() {
            self.client = Some(c);
        }
    }

    async fn transaction(&mut self, c: &Client, todo: &[&SinkRecord]) -> Result<(), TxError> {
        c.batch_execute("BEGIN")
            .await
            .map_err(|e| classify("BEGIN", e))?;
        // Per table (few in a batch), in order of appearance.
        let mut pending: Pending<'_, (String, String)> = Pending::default();
        let mut offsets: BTreeMap<(Arc<str>, u32), u64> = BTreeMap::new();
        // The previous record's table: most records share it.
        let mut cur: Option<(Arc<TableSchema>, (String, String))> = None;
        for r in todo {
            if let Some(next) = offsets.get_mut(&(Arc::clone(&r.topic), r.partition)) {
                *next = r.offset + 1;
            } else {
                offsets.insert((Arc::clone(&r.topic), r.partition), r.offset + 1);
            }
            let same = cur.as_ref().is_some_and(|(t, _)| Arc::ptr_eq(t, &r.table));
            if !same {
                cur = Some((Arc::clone(&r.table), source_key(&r.table)));
            }
            let Some((_, src)) = cur.as_ref() else {
                continue;
            };
            // A record of another shape than what is pending for its
            // table: the pending rows go first, mapped as they were.
            let shape_changed = !same
                && self
                    .targets
                    .get(src)
                    .is_some_and(|t| !(Arc::ptr_eq(&t.shape, &r.table) || *t.shape == *r.table));
            if r.event.op == Op::Truncate || shape_changed {
                if let Some(p) = pending.take(src) {
                    self.flush(c, src, p).await?;
                }
                if shape_changed {
                    self.ensure(c, &r.table).await?;
                }
            }
            let Some(target) = self.targets.get(src) else {
                return Err(TxError::refused(format!(
                    "no target for table {}",
                    r.table.qualified_name()
                )));
            };
            match r.event.op {
                Op::Truncate => {
                    c.batch_execute(&format!("TRUNCATE {}", target.name))
                        .await
                        .map_err(|e| classify(&target.shown, e))?;
                }
                _ => pending.table(src).record(r, text::value),
            }
        }
        for (src, p) in pending.into_tables() {
            self.flush(c, &src, p).await?;
        }
        let mut topics = Vec::new();
        let mut parts = Vec::new();
        let mut nexts = Vec::new();
        for ((t, p), next) in offsets {
            topics.push(t.to_string());
            parts.push(p as i32);
            nexts.push(next as i64);
        }
        let store = prepared(
            c,
            &mut self.stmts,
            &format!(
                "INSERT INTO {OFFSETS} (sink, topic, partition, next_offset)
                 SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
                 ON CONFLICT (sink, topic, partition)
                 DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()"
            ),
        )
        .await
        .map_err(|e| classify(OFFSETS, e))?;
        c.execute(&store, &[&self.cfg.name, &topics, &parts, &nexts])
            .await
            .map_err(|e| classify(OFFSETS, e))?;
        c.batch_execute("COMMIT")
            .await
            .map_err(|e| classify("COMMIT", e))?;
        Ok(())
    }

    /// Writes one table's pending rows: deletes, then upserts grouped by
    /// which columns the source could not see.
    async fn flush(
        &mut self,
        c: &Client,
        src: &(String, String),
        p: TableChanges<'_>,
    ) -> Result<(), TxError> {
        let Some(t) = self.targets.get_mut(src) else {
            return Ok(());
        };
        let writes = p.writes();
        // Deletes as one array per key column.
        let mut deletes: Vec<Vec<Option<String>>> = vec![Vec::new(); t.key.len()];
        for k in writes.deletes {
            for (col, v) in deletes.iter_mut().zip(k) {
                col.push(v);
            }
        }
        let groups = writes.upserts;
        if deletes.first().is_some_and(|d| !d.is_empty()) {
            let keys = t.key.join(", ");
            let n = t.key.len();
            let args: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
            let cols: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            let casts: Vec<String> = cols
                .iter()
                .zip(&t.key_types)
                .map(|(c, ty)| format!("{c}::{ty}"))
                .collect();
            let sql = format!(
                "DELETE FROM {} WHERE ({keys}) IN (SELECT {} FROM unnest({}) AS u({}))",
                t.name,
                casts.join(", "),
                args.join(", "),
                cols.join(", ")
            );
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = deletes
                .iter()
                .map(|d| d as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            c.execute(&sql, &params)
                .await
                .map_err(|e| classify(&t.shown, e))?;
        }
        for ((mask, inserted), rows) in groups {
            // The columns written: mapped and visible.
            let written: Vec<usize> = t
                .cols
                .iter()
                .enumerate()
                .filter(|(i, c)| c.is_some() && !mask.get(*i).copied().unwrap_or(false))
                .map(|(i, _)| i)
                .collect();
            let names: Vec<&str> = written
                .iter()
                .filter_map(|&i| t.cols.get(i).and_then(|c| c.as_ref()).map(|c| c.0.as_str()))
                .collect();
            let list = names.join(", ");
            let format = copy_format(&t.shape, &t.cols, &written, &rows);
            // New rows go straight into the table, as a bulk load does;
            // if one is there already (a replay, a re-snapshot), the
            // upsert path takes the group, and the next few batches.
            if inserted && t.direct_pause == 0 {
                c.batch_execute("SAVEPOINT tributary_direct")
                    .await
                    .map_err(|e| classify(&t.shown, e))?;
                let sql = format!("COPY {} ({list}) FROM STDIN{}", t.name, format.option());
                match copy_rows(c, &mut self.stmts, &sql, &t.shape, &written, &format, &rows).await
                {
                    Ok(()) => continue,
                    Err(e)
                        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                    {
                        c.batch_execute("ROLLBACK TO SAVEPOINT tributary_direct")
                            .await
                            .map_err(|e| classify(&t.shown, e))?;
                        t.direct_pause = 16;
                    }
                    Err(e) => return Err(classify(&t.shown, e)),
                }
            } else {
                t.direct_pause = t.direct_pause.saturating_sub(1);
            }
            if t.stage_dirty {
                c.batch_execute(&format!("DELETE FROM {}", t.stage))
                    .await
                    .map_err(|e| classify(&t.shown, e))?;
            }
            let sql = format!("COPY {} ({list}) FROM STDIN{}", t.stage, format.option());
            copy_rows(c, &mut self.stmts, &sql, &t.shape, &written, &format, &rows)
                .await
                .map_err(|e| classify(&t.shown, e))?;
            t.stage_dirty = true;
            let updates: Vec<String> = names
                .iter()
                .filter(|n| !t.key.iter().any(|k| k == *n))
                .map(|n| format!("{n} = EXCLUDED.{n}"))
                .collect();
            let conflict = if updates.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            let sql = format!(
                "INSERT INTO {} ({list}) SELECT {list} FROM {} ON CONFLICT ({}) {conflict}",
                t.name,
                t.stage,
                t.key.join(", ")
            );
            c.batch_execute(&sql)
                .await
                .map_err(|e| classify(&t.shown, e))?;
        }
        Ok(())
    }
}

/// A source table's identity: database, schema and table.
fn source_key(t: &TableSchema) -> (String, String) {
    (format!("{}\u{0}{}", t.database, t.schema), t.table.clone())
}

/// `sql` prepared once per connection.
async fn prepared(
    c: &Client,
    stmts: &mut HashMap<String, tokio_postgres::Statement>,
    sql: &str,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    if let Some(s) = stmts.get(sql) {
        return Ok(s.clone());
    }
    let s = c.prepare(sql).await?;
    stmts.insert(sql.to_string(), s.clone());
    Ok(s)
}

/// Bytes of COPY text sent at a time: the server parses one chunk while
/// the next is rendered.
const COPY_CHUNK: usize = 64 * 1024;

/// How a group of rows is sent.
enum CopyFormat {
    Text,
    /// Each written column's binary writer.
    Binary(Vec<binary::Bin>),
}

impl CopyFormat {
    /// The COPY statement's option.
    fn option(&self) -> &'static str {
        match self {
            CopyFormat::Text => "",
            CopyFormat::Binary(_) => " (FORMAT binary)",
        }
    }
}

/// Binary when every written column has a binary writer for its source
/// and target types and every value fits it; else text.
fn copy_format(
    shape: &TableSchema,
    cols: &[Option<(String, String)>],
    written: &[usize],
    rows: &[Vec<&tributary_core::Datum>],
) -> CopyFormat {
    let bins: Option<Vec<binary::Bin>> = written
        .iter()
        .map(|&i| {
            let ty = &shape.columns.get(i)?.ty;
            let target = cols.get(i)?.as_ref()?;
            binary::encoder(ty, &target.1)
        })
        .collect();
    match bins {
        Some(bins)
            if rows.iter().all(|row| {
                written
                    .iter()
                    .zip(&bins)
                    .all(|(&i, &b)| row.get(i).is_some_and(|d| binary::fits(b, d)))
            }) =>
        {
            CopyFormat::Binary(bins)
        }
        _ => CopyFormat::Text,
    }
}

/// `COPY ... FROM STDIN` of `rows`, the columns `written` of `shape`,
/// rendered a chunk at a time.
async fn copy_rows(
    c: &Client,
    stmts: &mut HashMap<String, tokio_postgres::Statement>,
    sql: &str,
    shape: &TableSchema,
    written: &[usize],
    format: &CopyFormat,
    rows: &[Vec<&tributary_core::Datum>],
) -> Result<(), tokio_postgres::Error> {
    let stmt = prepared(c, stmts, sql).await?;
    let sink = c.copy_in::<_, Bytes>(&stmt).await?;
    let mut sink = std::pin::pin!(sink);
    let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + 4096);
    if let CopyFormat::Binary(_) = format {
        binary::header(&mut buf);
    }
    for row in rows {
        match format {
            CopyFormat::Binary(bins) => {
                binary::tuple(&mut buf, written.len());
                for (&i, &b) in written.iter().zip(bins) {
                    match row.get(i) {
                        Some(d) => binary::put(&mut buf, b, d),
                        None => binary::put(&mut buf, b, &tributary_core::Datum::Null),
                    }
                }
            }
            CopyFormat::Text => {
                for (j, &i) in written.iter().enumerate() {
                    if j > 0 {
                        buf.push(b'\t');
                    }
                    match (row.get(i), shape.columns.get(i)) {
                        (Some(d), Some(col)) => text::copy_value(&mut buf, &col.ty, d),
                        _ => text::copy_field(&mut buf, None),
                    }
                }
                buf.push(b'\n');
            }
        }
        if buf.len() >= COPY_CHUNK {
            let full = std::mem::replace(&mut buf, Vec::with_capacity(COPY_CHUNK + 4096));
            sink.send(Bytes::from(full)).await?;
        }
    }
    if let CopyFormat::Binary(_) = format {
        binary::trailer(&mut buf);
    }
    if !buf.is_empty() {
        sink.send(Bytes::from(buf)).await?;
    }
    sink.as_mut().finish().await?;
    Ok(())
}

/// The columns of `schema.table` with their types, in table order; empty
/// if it does not exist.
async fn target_columns(
    c: &Client,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    Ok(c.query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
                AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
        &[&schema, &table],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

impl Sink for PostgresSink {
    fn stored_offsets(&mut self) -> BoxFuture<'_, Result<Option<StoredOffsets>, SinkError>> {
        Box::pin(async move {
            let c = self.connect().await.map_err(no_record)?;
            let rows = c
                .query(
                    &format!("SELECT topic, partition, next_offset FROM {OFFSETS} WHERE sink = $1"),
                    &[&self.cfg.name],
                )
                .await
                .map_err(|e| no_record(classify(OFFSETS, e)));
            self.keep(c);
            let mut out = Vec::new();
            self.done.clear();
            for r in rows? {
                let (topic, partition, next): (String, i32, i64) = (r.get(0), r.get(1), r.get(2));
                let (partition, next) = (partition as u32, next as u64);
                self.done.insert((topic.as_str().into(), partition), next);
                out.push((TopicPartition::new(topic, partition), next));
            }
            Ok(Some(out))
        })
    }

    fn apply<'a>(&'a mut self, batch: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        apply_finding_refused(self, batch)
    }

    fn reset_offsets<'a>(
        &'a mut self,
        offsets: &'a [(TopicPartition, u64)],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let c = self.connect().await.map_err(no_record)?;
            let topics: Vec<&str> = offsets.iter().map(|(tp, _)| tp.topic.as_str()).collect();
            let parts: Vec<i32> = offsets.iter().map(|(tp, _)| tp.partition as i32).collect();
            let nexts: Vec<i64> = offsets.iter().map(|(_, o)| *o as i64).collect();
            let done = c
                .execute(
                    &format!(
                        "INSERT INTO {OFFSETS} (sink, topic, partition, next_offset)
                         SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])
                         ON CONFLICT (sink, topic, partition)
                         DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()"
                    ),
                    &[&self.cfg.name, &topics, &parts, &nexts],
                )
                .await
                .map_err(|e| no_record(classify(OFFSETS, e)));
            self.keep(c);
            done?;
            for (tp, next) in offsets {
                self.done
                    .insert((tp.topic.as_str().into(), tp.partition), *next);
            }
            Ok(())
        })
    }
}

impl TransactionalWriter for PostgresSink {
    fn write<'a>(&'a mut self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), TxError>> {
        Box::pin(async move { self.try_batch(records).await })
    }
}
