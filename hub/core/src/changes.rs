//! A batch of change records reduced, per table, to each key's last
//! state: what a table sink writes. Keys are compared by their text (the
//! sink's own rendering of the key values, which is also what its
//! statements use).

use std::collections::BTreeMap;
use std::hash::BuildHasherDefault;

use fxhash::FxHasher;
use indexmap::IndexMap;

use crate::event::{Column, ColumnType, Datum, Op, TableSchema};
use crate::sink::{SinkError, SinkRecord};

/// A row's key as text, one entry per key column (`None`: NULL).
pub type Key = Vec<Option<String>>;

/// A key's last state in the batch: the values borrowed from the batch's
/// records (an unavailable one is [`Datum::Unavailable`]).
#[derive(Debug)]
pub enum Action<'a> {
    /// The row, and whether it was last inserted (created or read) rather
    /// than updated.
    Upsert(Vec<&'a Datum>, bool),
    /// The row is gone.
    Delete,
}

/// What a batch does to one table: each key once, in the order keys
/// first appeared.
#[derive(Debug, Default)]
pub struct TableChanges<'a> {
    rows: IndexMap<Key, Action<'a>, BuildHasherDefault<FxHasher>>,
    /// The key columns' positions in a row (of the first record).
    key_cols: Vec<usize>,
}

/// The rows to write, split as statements need them.
#[derive(Debug, Default)]
pub struct Writes<'a> {
    /// Keys to delete.
    pub deletes: Vec<Key>,
    /// Rows to upsert, grouped by (which columns the source could not
    /// see, whether every row was inserted rather than updated).
    pub upserts: BTreeMap<(Vec<bool>, bool), Vec<Vec<&'a Datum>>>,
}

impl<'a> TableChanges<'a> {
    /// Adds a create, read, update or delete (truncates are the caller's:
    /// they clear the table). `render` gives a key value's text. A changed
    /// key deletes the old one.
    pub fn record(
        &mut self,
        r: &'a SinkRecord,
        render: impl Fn(&ColumnType, &Datum) -> Option<String>,
    ) {
        let key_text = |row: &[Datum]| -> Option<Key> {
            r.table
                .key
                .iter()
                .map(|&i| match (row.get(i), r.table.columns.get(i)) {
                    (Some(Datum::Unavailable) | None, _) | (_, None) => None,
                    (Some(d), Some(col)) => Some(render(&col.ty, d)),
                })
                .collect()
        };
        let Some(key) = r.key.as_deref() else {
            return;
        };
        if self.rows.is_empty() {
            self.key_cols.clone_from(&r.table.key);
        }
        let k: Key = r
            .table
            .key
            .iter()
            .zip(key)
            .map(|(&i, d)| r.table.columns.get(i).and_then(|c| render(&c.ty, d)))
            .collect();
        match r.event.op {
            Op::Truncate => {}
            Op::Delete => self.put(k, Action::Delete),
            Op::Create | Op::Update | Op::Read => {
                let Some(after) = r.event.after.as_ref() else {
                    return;
                };
                if let Some(old) = r.event.before.as_deref().and_then(key_text)
                    && old != k
                {
                    self.put(old, Action::Delete);
                }
                let row: Vec<&Datum> = after.iter().collect();
                self.put(k, Action::Upsert(row, r.event.op != Op::Update));
            }
        }
    }

    fn put(&mut self, key: Key, action: Action<'a>) {
        match self.rows.entry(key) {
            indexmap::map::Entry::Vacant(v) => {
                v.insert(action);
            }
            indexmap::map::Entry::Occupied(mut o) => {
                let slot = o.get_mut();
                *slot = match (std::mem::replace(slot, Action::Delete), action) {
                    // An update after an upsert keeps what it could not see.
                    (Action::Upsert(old, _), Action::Upsert(mut new, inserted)) => {
                        for (n, o) in new.iter_mut().zip(old) {
                            if matches!(n, Datum::Unavailable) {
                                *n = o;
                            }
                        }
                        Action::Upsert(new, inserted)
                    }
                    (_, a) => a,
                };
            }
        }
    }

    /// The deletes and upserts, in the order keys first appeared.
    pub fn writes(self) -> Writes<'a> {
        let mut out = Writes::default();
        // Rows whose every column the source saw are nearly all of them:
        // grouped by (width, inserted) without a mask of their own.
        let mut full: Vec<(usize, bool, Vec<Vec<&'a Datum>>)> = Vec::new();
        for (k, action) in self.rows {
            match action {
                Action::Delete => out.deletes.push(k),
                Action::Upsert(row, inserted) => {
                    if row.iter().any(|v| matches!(v, Datum::Unavailable)) {
                        let mask: Vec<bool> = row
                            .iter()
                            .map(|v| matches!(v, Datum::Unavailable))
                            .collect();
                        out.upserts.entry((mask, inserted)).or_default().push(row);
                    } else {
                        let width = row.len();
                        match full
                            .iter_mut()
                            .find(|(w, i, _)| *w == width && *i == inserted)
                        {
                            Some((_, _, rows)) => rows.push(row),
                            None => full.push((width, inserted, vec![row])),
                        }
                    }
                }
            }
        }
        for (width, inserted, rows) in full {
            out.upserts
                .entry((vec![false; width], inserted))
                .or_default()
                .extend(rows);
        }
        // New rows in key order: a bulk load then appends to the key's
        // index (and InnoDB's clustered rows) instead of splitting pages
        // all over it, as rows read from several partitions would. Each
        // key is there once, so their order changes nothing else.
        let key_cols = &self.key_cols;
        for ((_, inserted), rows) in out.upserts.iter_mut() {
            if *inserted && !key_cols.is_empty() {
                rows.sort_by(|a, b| {
                    key_cols
                        .iter()
                        .map(|&i| match (a.get(i), b.get(i)) {
                            (Some(x), Some(y)) => key_order(x, y),
                            _ => std::cmp::Ordering::Equal,
                        })
                        .find(|o| o.is_ne())
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
            }
        }
        out
    }
}

/// The order of two key values as an index on them would have it, for
/// the types where that is plain (numbers, dates and times, binary and
/// text in byte order). Values of other types compare equal among
/// themselves (left as they came); different kinds by kind, so the order
/// stays total.
fn key_order(a: &Datum, b: &Datum) -> std::cmp::Ordering {
    fn kind(d: &Datum) -> u8 {
        match d {
            Datum::Null => 0,
            Datum::Unavailable => 1,
            Datum::Bool(_) => 2,
            Datum::Int(_) => 3,
            Datum::Long(_) => 4,
            Datum::Float(_) => 5,
            Datum::Double(_) => 6,
            Datum::Text(_) => 7,
            Datum::Bytes(_) => 8,
            Datum::Uuid(_) => 9,
            _ => 10,
        }
    }
    match (a, b) {
        (Datum::Bool(x), Datum::Bool(y)) => x.cmp(y),
        (Datum::Int(x), Datum::Int(y)) => x.cmp(y),
        (Datum::Long(x), Datum::Long(y)) => x.cmp(y),
        (Datum::Float(x), Datum::Float(y)) => x.total_cmp(y),
        (Datum::Double(x), Datum::Double(y)) => x.total_cmp(y),
        (Datum::Text(x), Datum::Text(y)) => x.cmp(y),
        (Datum::Bytes(x), Datum::Bytes(y)) => x.cmp(y),
        (Datum::Uuid(x), Datum::Uuid(y)) => x.cmp(y),
        _ => kind(a).cmp(&kind(b)),
    }
}

/// Per table (few in a batch), in order of first appearance.
#[derive(Debug, Default)]
pub struct Pending<'a, T> {
    tables: Vec<(T, TableChanges<'a>)>,
}

impl<'a, T: PartialEq + Clone> Pending<'a, T> {
    /// The changes of table `t`.
    pub fn table(&mut self, t: &T) -> &mut TableChanges<'a> {
        let i = match self.tables.iter().position(|(s, _)| s == t) {
            Some(i) => i,
            None => {
                self.tables.push((t.clone(), TableChanges::default()));
                self.tables.len() - 1
            }
        };
        &mut self.tables[i].1
    }

    /// Takes the changes of table `t`, if any.
    pub fn take(&mut self, t: &T) -> Option<TableChanges<'a>> {
        let i = self.tables.iter().position(|(s, _)| s == t)?;
        Some(self.tables.remove(i).1)
    }

    /// Every table's changes.
    pub fn into_tables(self) -> Vec<(T, TableChanges<'a>)> {
        self.tables
    }
}

/// Why a table sink's transaction failed, as [`apply_finding_refused`]
/// needs it.
#[derive(Debug)]
pub enum TxError {
    /// A value or constraint: some record's fault.
    Data(String),
    /// Anything else, as the sink contract says it.
    Sink(SinkError),
}

impl TxError {
    /// Retry: `message` in the target's words, `cause` behind it.
    pub fn transient(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TxError::Sink(SinkError::transient(message).with_cause(cause))
    }

    /// Stop: `message` in the target's words, `cause` behind it.
    pub fn fatal(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TxError::Sink(SinkError::fatal(message).with_cause(cause))
    }

    /// Stop, for a reason the sink found itself (no error behind it).
    pub fn refused(message: impl Into<String>) -> Self {
        TxError::Sink(SinkError::fatal(message))
    }

    /// Whether retrying the transaction on a new connection may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, TxError::Sink(SinkError::Transient { .. }))
    }

    /// A record's fault taken as transient: where the only constraint
    /// that can fail is another worker doing the same DDL at once.
    pub fn data_as_transient(self) -> Self {
        match self {
            TxError::Data(m) => TxError::Sink(SinkError::transient(m)),
            other => other,
        }
    }

    /// As a sink error, where no record is to blame (reading or storing
    /// offsets): a record's fault there is transient.
    pub fn into_sink(self) -> SinkError {
        match self {
            TxError::Data(m) => SinkError::transient(m),
            TxError::Sink(e) => e,
        }
    }
}

impl std::fmt::Display for TxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxError::Data(m) => f.write_str(m),
            TxError::Sink(e) => e.fmt(f),
        }
    }
}

/// A sink that writes a run of records in one transaction (with their
/// offsets), or nothing of it.
pub trait TransactionalWriter: Send {
    /// Writes `records` in one transaction.
    fn write<'a>(
        &'a mut self,
        records: &'a [SinkRecord],
    ) -> crate::sink::BoxFuture<'a, Result<(), TxError>>;
}

/// Applies `batch` through `w`; when a record is refused, finds it by
/// halving (each half its own transaction, so the records before it are
/// applied) and reports it with the database's words. A record without a
/// key is refused up front: rows cannot be matched in a table without
/// one.
pub fn apply_finding_refused<'a, W: TransactionalWriter>(
    w: &'a mut W,
    batch: &'a [SinkRecord],
) -> crate::sink::BoxFuture<'a, Result<(), SinkError>> {
    Box::pin(async move {
        if let Some(i) = batch
            .iter()
            .position(|r| r.event.op != Op::Truncate && r.key.is_none())
        {
            if i > 0 {
                apply_finding_refused(w, &batch[..i]).await?;
            }
            return Err(SinkError::Record {
                index: i,
                reason: format!(
                    "table {} has no key: rows cannot be matched in the target",
                    batch[i].table.qualified_name()
                ),
            });
        }
        match w.write(batch).await {
            Ok(()) => return Ok(()),
            // Which record: the single one the halving ends on says.
            Err(TxError::Data(_)) => {}
            Err(TxError::Sink(e)) => return Err(e),
        }
        // batch[..base] is applied, batch[base..hi] fails.
        let (mut base, mut hi) = (0, batch.len());
        while hi - base > 1 {
            let mid = base + (hi - base) / 2;
            match w.write(&batch[base..mid]).await {
                Ok(()) => base = mid,
                Err(TxError::Data(_)) => hi = mid,
                Err(TxError::Sink(e)) => return Err(e),
            }
        }
        match w.write(&batch[base..=base]).await {
            Err(TxError::Data(r)) => Err(SinkError::Record {
                index: base,
                reason: r,
            }),
            Err(TxError::Sink(e)) => Err(e),
            // It failed only with others: the rest goes on its own.
            Ok(()) => match apply_finding_refused(w, &batch[base + 1..]).await {
                Err(SinkError::Record { index, reason: r }) => Err(SinkError::Record {
                    index: index + base + 1,
                    reason: r,
                }),
                other => other,
            },
        }
    })
}

/// How source tables map onto a target database's tables: a name template
/// of the source's `{database}`, `{schema}` and `{table}` (`ns.table` names
/// a schema or database of the target), and column renames.
#[derive(Debug, Clone, Default)]
pub struct TableMap {
    /// The name template.
    pub template: String,
    /// Source column name to target column name.
    pub columns: BTreeMap<String, String>,
}

impl TableMap {
    /// The target of `t`: its namespace if the template names one, and
    /// its table.
    pub fn name(&self, t: &TableSchema) -> (Option<String>, String) {
        let name = self
            .template
            .replace("{database}", &t.database)
            .replace("{schema}", &t.schema)
            .replace("{table}", &t.table);
        match name.split_once('.') {
            Some((ns, table)) => (Some(ns.to_string()), table.to_string()),
            None => (None, name),
        }
    }

    /// The target column of source column `name`.
    pub fn column<'a>(&'a self, name: &'a str) -> &'a str {
        self.columns.get(name).map_or(name, String::as_str)
    }

    /// The column definitions and primary key of a new target table for
    /// `shape`, in a dialect's quoting and types (`ddl(column, in_key)`).
    pub fn create_defs(
        &self,
        shape: &TableSchema,
        ident: impl Fn(&str) -> String,
        ddl: impl Fn(&Column, bool) -> String,
    ) -> Vec<String> {
        let mut defs: Vec<String> = shape
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| {
                format!(
                    "{} {}",
                    ident(self.column(&col.name)),
                    ddl(col, shape.key.contains(&i))
                )
            })
            .collect();
        let keys: Vec<String> = shape
            .key
            .iter()
            .filter_map(|&i| shape.columns.get(i))
            .map(|col| ident(self.column(&col.name)))
            .collect();
        if !keys.is_empty() {
            defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        defs
    }

    /// The columns of `shape` a target lacks (`has(target column)`): their
    /// index, the column, and the target name.
    pub fn missing<'s>(
        &self,
        shape: &'s TableSchema,
        has: impl Fn(&str) -> bool,
    ) -> Vec<(usize, &'s Column, String)> {
        shape
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, col)| {
                let t = self.column(&col.name);
                (!has(t)).then(|| (i, col, t.to_string()))
            })
            .collect()
    }
}
