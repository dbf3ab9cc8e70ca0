//! The MySQL/MariaDB sink: each captured table kept as a table of a
//! MySQL or MariaDB database.
//!
//! - The target table is `table` (a template of the source's `{database}`,
//!   `{schema}` and `{table}`, default `{table}`, in the URL's database;
//!   `db.table` names another database), created from the record's schema
//!   when missing (types keep precision: see [`text::ddl_type`]; arrays
//!   become JSON), or mapped onto an existing one by column name
//!   (`columns` renames). A column the source gains is added. DDL commits
//!   implicitly in MySQL, so it runs before the batch's transaction.
//! - A batch is one InnoDB transaction: per table each key's last state
//!   ([`tributary_core::changes`]); deletes as one `DELETE ... WHERE key IN
//!   (...)`, upserts as multi-row `INSERT ... ON DUPLICATE KEY UPDATE`
//!   (a column the source could not see, unchanged TOAST, is left out of
//!   the update); a truncate is a `DELETE` of the table in its place
//!   (`TRUNCATE` would commit). The session is strict
//!   (`STRICT_ALL_TABLES`): a value that does not fit is an error, never
//!   silently cut.
//! - In the same transaction the offset after the batch is stored per
//!   partition in `tributary_offsets`: a restart resumes exactly where the
//!   tables are (exactly-once effect).
//! - A refused record is found by halving the batch and reported with
//!   the server's words.

pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mysql_async::prelude::Queryable as _;
use tributary_core::changes::{
    Pending, TableChanges, TableMap, TransactionalWriter, TxError, apply_finding_refused,
};
use tributary_core::event::{Op, TableSchema};
use tributary_core::sink::{BoxFuture, StoredOffsets};
use tributary_core::{Sink, SinkError, SinkRecord, TopicPartition};

use crate::text::{ident, quoted};

/// Settings.
#[derive(Clone)]
pub struct MySqlSinkConfig {
    /// The sink's name (its rows in `tributary_offsets`).
    pub name: String,
    /// `mysql://user:password@host:port/database` (never logged).
    pub url: String,
    /// Target tables (`db.table` or `table` in the URL's database) and
    /// columns.
    pub map: TableMap,
    /// Create missing tables and add missing columns.
    pub create_tables: bool,
}

impl std::fmt::Debug for MySqlSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSinkConfig")
            .field("name", &self.name)
            .field("table", &self.map.template)
            .finish()
    }
}

/// The default target table template.
pub const DEFAULT_TABLE: &str = "{table}";

const OFFSETS: &str = "tributary_offsets";

/// Rows per INSERT statement, at most.
const ROWS_PER_STATEMENT: usize = 1000;

/// Bytes of `LOAD DATA` text sent at a time.
const LOAD_CHUNK: usize = 64 * 1024;

/// A statement is ended past this many bytes (max_allowed_packet is 16
/// MiB by default on MariaDB, 64 MiB on MySQL 8).
const STATEMENT_BYTES: usize = 4 << 20;

/// Classifies an error; `what` names the table.
fn classify(what: &str, e: mysql_async::Error) -> TxError {
    let mysql_async::Error::Server(se) = &e else {
        let msg = format!("{what}: {e}");
        // The driver refuses a packet past max_allowed_packet: a row too
        // large, not a connection problem.
        if msg.contains("max_allowed_packet") {
            return TxError::Data(msg);
        }
        // The connection, the driver: try again on a new connection.
        return TxError::transient(msg, e);
    };
    let msg = format!(
        "{what}: {} (error {}, SQLSTATE {})",
        se.message, se.code, se.state
    );
    match se.code {
        // Deadlock, lock wait timeout, read-only (a failover), too many
        // connections, shutting down, connection killed.
        1213 | 1205 | 1290 | 1836 | 1040 | 1053 | 1927 | 2006 | 2013 | 1317 | 4031 => {
            TxError::transient(msg, e)
        }
        _ if se.state.starts_with("08") => TxError::transient(msg, e),
        // A statement past max_allowed_packet: some row is too large.
        1153 => TxError::Data(msg),
        // Access denied, unknown database or table.
        1044 | 1045 | 1142 | 1143 | 1049 | 1146 => TxError::fatal(msg, e),
        _ if se.state.starts_with("22") || se.state.starts_with("23") => TxError::Data(msg),
        // Out of range, bad value, too long, CHECK (MySQL, MariaDB).
        1264 | 1265 | 1292 | 1366 | 1367 | 1406 | 1690 | 3819 | 4025 => TxError::Data(msg),
        _ => TxError::fatal(msg, e),
    }
}

/// A target table.
#[derive(Debug)]
struct Target {
    /// Quoted, qualified if the template names a database.
    name: String,
    /// For messages.
    shown: String,
    /// Its columns, as last read.
    existing: Vec<String>,
    /// Batches left before new rows try `LOAD DATA` again (one of them
    /// was there already, or the load warned).
    direct_pause: u32,
}

/// The sink.
pub struct MySqlSink {
    cfg: MySqlSinkConfig,
    conn: Option<mysql_async::Conn>,
    targets: HashMap<(String, String), Target>,
    done: HashMap<(Arc<str>, u32), u64>,
    /// New rows are bulk loaded (`LOAD DATA LOCAL`) until the server
    /// refuses local files.
    load_data: bool,
    /// Binary, no-pad collation for new text key columns: keys that
    /// differ in case, accents or trailing spaces stay distinct rows, as in
    /// the source. Other columns keep the database's default.
    collation: String,
}

impl std::fmt::Debug for MySqlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSink")
            .field("name", &self.cfg.name)
            .finish()
    }
}

/// A key value as its SQL literal (`None` for NULL or a value MySQL
/// cannot hold, which matches no row).
fn key_literal(ty: &tributary_core::ColumnType, d: &tributary_core::Datum) -> Option<String> {
    let mut s = String::new();
    text::literal(&mut s, ty, d).ok()?;
    (s != "NULL").then_some(s)
}

/// A key column's type with the binary no-pad collation if it is text.
fn key_collated(ty: String, key: bool, collation: &str) -> String {
    if key && (ty.starts_with("VARCHAR") || ty.starts_with("CHAR") || ty.ends_with("TEXT")) {
        format!("{ty} COLLATE {collation}")
    } else {
        ty
    }
}

/// A source table's identity: database, schema and table.
fn source_key(t: &TableSchema) -> (String, String) {
    (format!("{}\u{0}{}", t.database, t.schema), t.table.clone())
}

impl MySqlSink {
    /// A sink for `cfg` (connects on first use); the URL is checked now.
    pub fn new(cfg: MySqlSinkConfig) -> Result<Self, SinkError> {
        mysql_async::Opts::from_url(&cfg.url).map_err(|e| SinkError::fatal_from("mysql URL", e))?;
        Ok(Self {
            cfg,
            conn: None,
            targets: HashMap::new(),
            done: HashMap::new(),
            load_data: true,
            collation: "utf8mb4_bin".into(),
        })
    }

    async fn connect(&mut self) -> Result<mysql_async::Conn, TxError> {
        if let Some(c) = self.conn.take() {
            return Ok(c);
        }
        let opts = mysql_async::Opts::from_url(&self.cfg.url)
            .map_err(|e| TxError::fatal(format!("mysql URL: {e}"), e))?;
        let mut c = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| classify("connecting", e))?;
        // Strict: a value that does not fit is an error. No backslash
        // escapes: a literal's only special character is the quote.
        c.query_drop(
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_ENGINE_SUBSTITUTION',
                 time_zone = '+00:00', NAMES utf8mb4",
        )
        .await
        .map_err(|e| classify("session settings", e))?;
        // MariaDB's utf8mb4_bin pads (`'x'` = `'x '`); its no-pad twin, or
        // MySQL 8's, does not.
        let nopad: Option<String> = c
            .query_first(
                "SELECT COLLATION_NAME FROM information_schema.COLLATIONS
                  WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')
                  ORDER BY COLLATION_NAME DESC LIMIT 1",
            )
            .await
            .map_err(|e| classify("collations", e))?;
        if let Some(n) = nopad {
            self.collation = n;
        }
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {OFFSETS} (
                 sink VARCHAR(255) NOT NULL, topic VARCHAR(255) NOT NULL,
                 `partition` INT NOT NULL, next_offset BIGINT NOT NULL,
                 updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
                 PRIMARY KEY (sink, topic, `partition`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        ))
        .await
        .map_err(|e| classify(OFFSETS, e))?;
        Ok(c)
    }

    /// The target of `shape` exists with every mapped column (created or
    /// extended as configured).
    async fn ensure(
        &mut self,
        c: &mut mysql_async::Conn,
        shape: &TableSchema,
    ) -> Result<(), TxError> {
        let src = source_key(shape);
        if let Some(t) = self.targets.get(&src)
            && (!self.cfg.create_tables
                || self
                    .cfg
                    .map
                    .missing(shape, |n| t.existing.iter().any(|e| e == n))
                    .is_empty())
        {
            return Ok(());
        }
        let (db, table) = self.cfg.map.name(shape);
        let name = match &db {
            Some(d) => format!("{d}.{table}"),
            None => table.clone(),
        };
        let quoted_name = match &db {
            Some(d) => format!("{}.{}", ident(d), ident(&table)),
            None => ident(&table),
        };
        let mut db_lit = String::new();
        match &db {
            Some(d) => quoted(&mut db_lit, d),
            None => db_lit.push_str("DATABASE()"),
        }
        let mut table_lit = String::new();
        quoted(&mut table_lit, &table);
        let columns_sql = format!(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS
              WHERE TABLE_SCHEMA = {db_lit} AND TABLE_NAME = {table_lit} ORDER BY ORDINAL_POSITION"
        );
        let mut existing: Vec<String> = c
            .query(&columns_sql)
            .await
            .map_err(|e| classify(&name, e))?;
        if existing.is_empty() {
            if !self.cfg.create_tables {
                return Err(TxError::refused(format!(
                    "target table {name} does not exist (create_tables is off)"
                )));
            }
            let defs = self.cfg.map.create_defs(shape, ident, |col, key| {
                key_collated(text::ddl_type(col, key), key, &self.collation)
            });
            if let Some(d) = &db {
                c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", ident(d)))
                    .await
                    .map_err(|e| classify(&name, e))?;
            }
            c.query_drop(format!(
                "CREATE TABLE IF NOT EXISTS {quoted_name} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
                defs.join(", ")
            ))
            .await
            .map_err(|e| classify(&name, e))?;
            tracing::info!(sink = %self.cfg.name, table = %name, "target table created");
        } else if self.cfg.create_tables {
            for (i, col, t) in self
                .cfg
                .map
                .missing(shape, |n| existing.iter().any(|e| e == n))
            {
                c.query_drop(format!(
                    "ALTER TABLE {quoted_name} ADD COLUMN {} {}",
                    ident(&t),
                    key_collated(
                        text::ddl_type(col, shape.key.contains(&i)),
                        shape.key.contains(&i),
                        &self.collation
                    )
                ))
                .await
                .map_err(|e| classify(&name, e))?;
                tracing::info!(sink = %self.cfg.name, table = %name, column = %t, "target column added");
            }
        }
        existing = c
            .query(&columns_sql)
            .await
            .map_err(|e| classify(&name, e))?;
        self.targets.insert(
            src,
            Target {
                name: quoted_name,
                shown: name,
                existing,
                direct_pause: 0,
            },
        );
        Ok(())
    }

    async fn try_batch(&mut self, batch: &[SinkRecord]) -> Result<(), TxError> {
        let todo: Vec<&SinkRecord> = batch
            .iter()
            .filter(|r| {
                self.done
                    .get(&(Arc::clone(&r.topic), r.partition))
                    .is_none_or(|&next| r.offset >= next)
            })
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let mut c = self.connect().await?;
        let result = self.transaction(&mut c, &todo).await;
        match &result {
            Ok(()) => {
                for r in &todo {
                    let next = self
                        .done
                        .entry((Arc::clone(&r.topic), r.partition))
                        .or_insert(0);
                    *next = (*next).max(r.offset + 1);
                }
                self.conn = Some(c);
            }
            Err(e) if e.is_transient() => {
                // The connection may be broken: a new one next time.
                let _ = c.disconnect().await;
            }
            Err(_) => {
                if c.query_drop("ROLLBACK").await.is_ok() {
                    self.conn = Some(c);
                }
            }
        }
        result
    }

    async fn transaction(
        &mut self,
        c: &mut mysql_async::Conn,
        todo: &[&SinkRecord],
    ) -> Result<(), TxError> {
        // Tables and columns first: DDL commits.
        let mut last: Option<&Arc<TableSchema>> = None;
        for r in todo {
            if last.is_some_and(|t| Arc::ptr_eq(t, &r.table)) {
                continue;
            }
            last = Some(&r.table);
            // A constraint here is another worker creating the same table.
            self.ensure(c, &r.table)
                .await
                .map_err(TxError::data_as_transient)?;
        }
        c.query_drop("START TRANSACTION")
            .await
            .map_err(|e| classify("START TRANSACTION", e))?;
        let mut pending: Pending<'_, (String, String)> = Pending::default();
        let mut shapes: HashMap<(String, String), Arc<TableSchema>> = HashMap::new();
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
                let src = source_key(&r.table);
                // Another shape of a table with rows pending: those go
                // first, written as they were.
                let changed = shapes
                    .get(&src)
                    .is_some_and(|s| !(Arc::ptr_eq(s, &r.table) || **s == *r.table));
                if changed
                    && let Some(p) = pending.take(&src)
                    && let Some(shape) = shapes.get(&src).cloned()
                {
                    self.flush(c, &src, &shape, p).await?;
                }
                shapes.insert(src.clone(), Arc::clone(&r.table));
                cur = Some((Arc::clone(&r.table), src));
            }
            let Some((_, src)) = cur.as_ref() else {
                continue;
            };
            if r.event.op == Op::Truncate
                && let Some(p) = pending.take(src)
                && let Some(shape) = shapes.get(src).cloned()
            {
                self.flush(c, src, &shape, p).await?;
            }
            if r.event.op == Op::Truncate {
                let t = self.target(src)?;
                let (name, shown) = (t.name.clone(), t.shown.clone());
                c.query_drop(format!("DELETE FROM {name}"))
                    .await
                    .map_err(|e| classify(&shown, e))?;
                continue;
            }
            // Keys as the literals the statements use.
            pending.table(src).record(r, key_literal);
        }
        for (src, p) in pending.into_tables() {
            if let Some(shape) = shapes.get(&src).cloned() {
                self.flush(c, &src, &shape, p).await?;
            }
        }
        let mut sql =
            format!("INSERT INTO {OFFSETS} (sink, topic, `partition`, next_offset) VALUES ");
        for (i, ((t, p), next)) in offsets.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            quoted(&mut sql, &self.cfg.name);
            sql.push(',');
            quoted(&mut sql, t);
            sql.push_str(&format!(",{p},{next})"));
        }
        sql.push_str(" ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)");
        c.query_drop(sql).await.map_err(|e| classify(OFFSETS, e))?;
        c.query_drop("COMMIT")
            .await
            .map_err(|e| classify("COMMIT", e))?;
        Ok(())
    }

    fn target(&self, src: &(String, String)) -> Result<&Target, TxError> {
        self.targets
            .get(src)
            .ok_or_else(|| TxError::refused(format!("no target for table {}", src.1)))
    }

    /// Writes one table's changes: deletes, then upserts grouped by which
    /// columns the source could not see.
    async fn flush(
        &mut self,
        c: &mut mysql_async::Conn,
        src: &(String, String),
        shape: &TableSchema,
        changes: TableChanges<'_>,
    ) -> Result<(), TxError> {
        let t = self.target(src)?;
        let (name, shown) = (t.name.clone(), t.shown.clone());
        // Per source column: the quoted target column, if it has one.
        let cols: Vec<Option<String>> = shape
            .columns
            .iter()
            .map(|col| {
                let n = self.cfg.map.column(&col.name);
                t.existing.iter().any(|e| e == n).then(|| ident(n))
            })
            .collect();
        let mut key_cols = Vec::new();
        for &i in &shape.key {
            match cols.get(i).cloned().flatten() {
                Some(k) => key_cols.push(k),
                None => {
                    return Err(TxError::refused(format!(
                        "target table {shown} has no column for key column {}",
                        shape.columns.get(i).map_or("?", |c| c.name.as_str())
                    )));
                }
            }
        }
        let writes = changes.writes();
        for chunk in writes.deletes.chunks(ROWS_PER_STATEMENT) {
            let mut sql = format!("DELETE FROM {name} WHERE ({}) IN (", key_cols.join(", "));
            for (i, k) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for (j, v) in k.iter().enumerate() {
                    if j > 0 {
                        sql.push(',');
                    }
                    sql.push_str(v.as_deref().unwrap_or("NULL"));
                }
                sql.push(')');
            }
            sql.push(')');
            c.query_drop(sql).await.map_err(|e| classify(&shown, e))?;
        }
        for ((mask, inserted), rows) in writes.upserts {
            let written: Vec<usize> = (0..cols.len())
                .filter(|&i| cols[i].is_some() && !mask.get(i).copied().unwrap_or(false))
                .collect();
            let list: Vec<&str> = written.iter().filter_map(|&i| cols[i].as_deref()).collect();
            if inserted
                && self.direct(src, shape, &written)
                && self
                    .load(c, src, &name, &list, shape, &written, &rows)
                    .await?
            {
                continue;
            }
            let updates: Vec<String> = list
                .iter()
                .filter(|n| !key_cols.iter().any(|k| k == *n))
                .map(|n| format!("{n} = VALUES({n})"))
                .collect();
            let on_dup = if updates.is_empty() {
                format!("{0} = {0}", key_cols.first().map_or("", String::as_str))
            } else {
                updates.join(", ")
            };
            let head = format!("INSERT INTO {name} ({}) VALUES ", list.join(", "));
            let tail = format!(" ON DUPLICATE KEY UPDATE {on_dup}");
            let mut sql = String::new();
            let mut in_statement = 0;
            for (ri, row) in rows.iter().enumerate() {
                if in_statement == 0 {
                    sql.clear();
                    sql.push_str(&head);
                } else {
                    sql.push(',');
                }
                sql.push('(');
                for (j, &i) in written.iter().enumerate() {
                    if j > 0 {
                        sql.push(',');
                    }
                    let (Some(d), Some(col)) = (row.get(i), shape.columns.get(i)) else {
                        sql.push_str("NULL");
                        continue;
                    };
                    text::literal(&mut sql, &col.ty, d)
                        .map_err(|e| TxError::Data(format!("{shown}: column {}: {e}", col.name)))?;
                }
                sql.push(')');
                in_statement += 1;
                let last = ri + 1 == rows.len();
                if last || in_statement >= ROWS_PER_STATEMENT || sql.len() >= STATEMENT_BYTES {
                    sql.push_str(&tail);
                    c.query_drop(std::mem::take(&mut sql))
                        .await
                        .map_err(|e| classify(&shown, e))?;
                    in_statement = 0;
                }
            }
        }
        Ok(())
    }
}

impl MySqlSink {
    /// Whether new rows of `src` (columns `written` of `shape`) go
    /// through `LOAD DATA`; counts down a pause.
    fn direct(&mut self, src: &(String, String), shape: &TableSchema, written: &[usize]) -> bool {
        if !self.load_data {
            return false;
        }
        let Some(t) = self.targets.get_mut(src) else {
            return false;
        };
        if t.direct_pause > 0 {
            t.direct_pause -= 1;
            return false;
        }
        written
            .iter()
            .all(|&i| shape.columns.get(i).is_some_and(|c| text::loadable(&c.ty)))
    }

    /// New rows straight into the table with `LOAD DATA LOCAL`, as a bulk
    /// load does, rendered while the server reads what came before.
    /// MySQL turns a duplicate key or a value that does not fit into a
    /// warning for a local file (it cannot stop the client's transfer):
    /// a load that did not insert every row without a warning is rolled
    /// back to its savepoint, and the rows take the INSERT path, which
    /// updates a row already there and refuses a bad value by name.
    /// Returns whether the rows were loaded.
    #[allow(clippy::too_many_arguments)]
    async fn load(
        &mut self,
        c: &mut mysql_async::Conn,
        src: &(String, String),
        name: &str,
        list: &[&str],
        shape: &TableSchema,
        written: &[usize],
        rows: &[Vec<&tributary_core::Datum>],
    ) -> Result<bool, TxError> {
        let shown = self.target(src)?.shown.clone();
        c.query_drop("SAVEPOINT tributary_direct")
            .await
            .map_err(|e| classify(&shown, e))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let data = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        c.set_infile_handler(async move { Ok(futures_util::StreamExt::boxed(data)) });
        // Separators as hex: the session has NO_BACKSLASH_ESCAPES.
        let sql = format!(
            "LOAD DATA LOCAL INFILE 'tributary' INTO TABLE {name} CHARACTER SET utf8mb4
             FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' ({})",
            list.join(", ")
        );
        let render = async move {
            let (mut buf, mut scratch) = (Vec::with_capacity(LOAD_CHUNK + 4096), String::new());
            for row in rows {
                for (j, &i) in written.iter().enumerate() {
                    if j > 0 {
                        buf.push(b'\t');
                    }
                    let (Some(d), Some(col)) = (row.get(i), shape.columns.get(i)) else {
                        buf.extend_from_slice(b"\\N");
                        continue;
                    };
                    if let Err(e) = text::load_field(&mut buf, &mut scratch, &col.ty, d) {
                        // The file ends here; the load is rolled back and
                        // the INSERT path names the value.
                        return Some(format!("column {}: {e}", col.name));
                    }
                }
                buf.push(b'\n');
                if buf.len() >= LOAD_CHUNK {
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(LOAD_CHUNK + 4096));
                    if tx.send(Ok(full.into())).await.is_err() {
                        return None;
                    }
                }
            }
            if !buf.is_empty() {
                let _ = tx.send(Ok(buf.into())).await;
            }
            None
        };
        // Until the statement ends: a server that refuses local files
        // never reads the file, and the rendering is dropped.
        let (loaded, unrendered) = {
            let mut render = std::pin::pin!(render);
            let mut query = std::pin::pin!(c.query_drop(sql));
            let (mut unrendered, mut rendered) = (None, false);
            let loaded = loop {
                tokio::select! {
                    r = &mut query => break r,
                    u = &mut render, if !rendered => {
                        rendered = true;
                        unrendered = u;
                    }
                }
            };
            (loaded, unrendered)
        };
        let outcome = match loaded {
            Ok(()) if unrendered.is_some() => unrendered.unwrap_or_default(),
            Ok(()) if c.affected_rows() == rows.len() as u64 && c.get_warnings() == 0 => {
                return Ok(true);
            }
            Ok(()) => "a row was there already or a value did not fit".to_string(),
            Err(e) => {
                let refuses_local = matches!(&e, mysql_async::Error::Server(se) if matches!(se.code, 1148 | 3948 | 4166));
                let failed = classify(&shown, e);
                if failed.is_transient() {
                    return Err(failed);
                }
                let m = failed.to_string();
                if refuses_local {
                    tracing::warn!(sink = %self.cfg.name, error = %m, "the server refuses LOAD DATA LOCAL; new rows take the INSERT path");
                    self.load_data = false;
                }
                m
            }
        };
        c.query_drop("ROLLBACK TO SAVEPOINT tributary_direct")
            .await
            .map_err(|e| classify(&shown, e))?;
        tracing::debug!(sink = %self.cfg.name, table = %shown, reason = %outcome, "bulk load rolled back; the INSERT path takes these rows");
        if let Some(t) = self.targets.get_mut(src) {
            t.direct_pause = 16;
        }
        Ok(false)
    }
}

impl TransactionalWriter for MySqlSink {
    fn write<'a>(&'a mut self, records: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), TxError>> {
        Box::pin(self.try_batch(records))
    }
}

impl Sink for MySqlSink {
    fn stored_offsets(&mut self) -> BoxFuture<'_, Result<Option<StoredOffsets>, SinkError>> {
        Box::pin(async move {
            let mut c = self.connect().await.map_err(TxError::into_sink)?;
            let mut sql =
                format!("SELECT topic, `partition`, next_offset FROM {OFFSETS} WHERE sink = ");
            quoted(&mut sql, &self.cfg.name);
            let rows: Result<Vec<(String, u32, u64)>, _> = c.query(sql).await;
            let rows = match rows {
                Ok(r) => {
                    self.conn = Some(c);
                    r
                }
                Err(e) => {
                    return Err(classify(OFFSETS, e).into_sink());
                }
            };
            self.done.clear();
            let mut out = Vec::new();
            for (topic, partition, next) in rows {
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
            if offsets.is_empty() {
                return Ok(());
            }
            let mut c = self.connect().await.map_err(TxError::into_sink)?;
            let mut sql =
                format!("INSERT INTO {OFFSETS} (sink, topic, `partition`, next_offset) VALUES ");
            for (i, (tp, next)) in offsets.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                quoted(&mut sql, &self.cfg.name);
                sql.push(',');
                quoted(&mut sql, &tp.topic);
                sql.push_str(&format!(",{},{next})", tp.partition));
            }
            sql.push_str(" ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset)");
            // Autocommit: one statement, durable when it returns.
            c.query_drop(sql)
                .await
                .map_err(|e| classify(OFFSETS, e).into_sink())?;
            self.conn = Some(c);
            for (tp, next) in offsets {
                self.done
                    .insert((tp.topic.as_str().into(), tp.partition), *next);
            }
            Ok(())
        })
    }
}
