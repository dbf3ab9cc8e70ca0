//! From decoded pgoutput messages to change events.
//!
//! Values arrive as text (we never ask for binary) and are parsed with the
//! column's type. An unchanged TOASTed value becomes
//! [`Datum::Unavailable`]; so do the non-key columns of a key-only old
//! tuple (REPLICA IDENTITY DEFAULT sends only the key of a deleted or
//! re-keyed row): the source never saw them, and the event says so
//! instead of inventing values. With REPLICA IDENTITY FULL the old tuple
//! is the whole row and only TOAST can hide a value.

use std::sync::Arc;

use tributary_core::{
    ChangeEvent, Datum, Op, Position, SnapshotFlag, SourceInfo, TableSchema, TransactionInfo,
};

use crate::pgoutput::{OldKind, TupleValue};
use crate::types::{TypeError, parse_text};

/// Milliseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_UNIX_MS: i64 = 946_684_800_000;

/// A row that cannot be turned into an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The tuple does not have the table's columns.
    #[error("table {table}: tuple has {got} columns, the table has {want}")]
    Shape {
        /// `schema.table`.
        table: String,
        /// Columns in the tuple.
        got: usize,
        /// Columns in the schema.
        want: usize,
    },
    /// A value does not parse as its column's type.
    #[error("table {table}, column {column}: {source}")]
    Value {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// Why.
        #[source]
        source: TypeError,
    },
    /// A binary value (we only ask for text).
    #[error("table {table}, column {column}: binary values are not requested and not supported")]
    Binary {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
    },
}

/// Converts a tuple to a row of datums in column order.
pub fn row(table: &TableSchema, tuple: &[TupleValue]) -> Result<Vec<Datum>, EventError> {
    if tuple.len() != table.columns.len() {
        return Err(EventError::Shape {
            table: table.qualified_name(),
            got: tuple.len(),
            want: table.columns.len(),
        });
    }
    tuple
        .iter()
        .zip(&table.columns)
        .map(|(v, c)| match v {
            TupleValue::Null => Ok(Datum::Null),
            TupleValue::UnchangedToast => Ok(Datum::Unavailable),
            TupleValue::Text(b) => {
                let text = String::from_utf8_lossy(b);
                parse_text(&c.ty, &text).map_err(|source| EventError::Value {
                    table: table.qualified_name(),
                    column: c.name.clone(),
                    source,
                })
            }
            TupleValue::Binary(_) => Err(EventError::Binary {
                table: table.qualified_name(),
                column: c.name.clone(),
            }),
        })
        .collect()
}

/// An old tuple as a before-image: the whole row (`O`), or the key with
/// every other column unavailable (`K`).
pub fn old_row(
    table: &TableSchema,
    kind: OldKind,
    tuple: &[TupleValue],
) -> Result<Vec<Datum>, EventError> {
    let mut r = row(table, tuple)?;
    if kind == OldKind::Key {
        for (i, d) in r.iter_mut().enumerate() {
            if !table.key.contains(&i) {
                *d = Datum::Unavailable;
            }
        }
    }
    Ok(r)
}

/// The `source` block of `table`'s events, less what each transaction
/// sets: built once per table, cloned (cheaply: its strings are shared)
/// into every event.
pub fn table_source(source_name: &str, database: &str, table: &TableSchema) -> SourceInfo {
    SourceInfo {
        connector: "postgresql".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        name: source_name.into(),
        ts_ms: 0,
        snapshot: SnapshotFlag::False,
        db: database.into(),
        schema: Some(table.schema.as_str().into()),
        table: table.table.as_str().into(),
        position: Position::Postgres {
            lsn: 0,
            tx_id: None,
        },
    }
}

/// What the events of one transaction share.
#[derive(Debug, Clone)]
pub struct TxContext {
    /// Transaction id.
    pub xid: u32,
    /// LSN of the commit record.
    pub commit_lsn: u64,
    /// Commit time, µs since 2000-01-01.
    pub commit_time: i64,
    /// When we processed it, ms since the Unix epoch.
    pub now_ms: i64,
    /// `xid:commit_lsn`, the events' `transaction.id`.
    id: Arc<str>,
}

impl TxContext {
    /// The context of transaction `xid` committed at `commit_lsn` and
    /// `commit_time` (µs since 2000-01-01).
    pub fn new(xid: u32, commit_lsn: u64, commit_time: i64) -> Self {
        Self {
            xid,
            commit_lsn,
            commit_time,
            now_ms: tributary_log::now_ms(),
            id: format!("{xid}:{commit_lsn}").into(),
        }
    }

    /// The context of a snapshot consistent at `point`, read now: its
    /// rows' `source.ts_ms` (and so their records' timestamps, from which
    /// a sink's lag in seconds is measured) is the time they were read,
    /// as in Debezium, not the epoch.
    pub fn snapshot(point: u64) -> Self {
        let mut ctx = Self::new(0, point, 0);
        ctx.commit_time = (ctx.now_ms - PG_EPOCH_UNIX_MS) * 1000;
        ctx
    }

    /// `template` (from [`table_source`]) with this transaction's time
    /// and position.
    pub fn source(&self, template: &SourceInfo) -> SourceInfo {
        let mut s = template.clone();
        s.ts_ms = self.commit_time / 1000 + PG_EPOCH_UNIX_MS;
        s.position = Position::Postgres {
            lsn: self.commit_lsn,
            tx_id: Some(i64::from(self.xid)),
        };
        s
    }

    /// [`source`](Self::source), shared by the events of one table in
    /// this transaction; for a snapshot (`snapshot` true), flagged so.
    pub fn shared_source(&self, template: &SourceInfo, snapshot: bool) -> Arc<SourceInfo> {
        let mut s = self.source(template);
        if snapshot {
            s.snapshot = SnapshotFlag::True;
        }
        Arc::new(s)
    }

    /// An event of this transaction with `source` (from
    /// [`shared_source`](Self::shared_source)); `total_order` and
    /// `data_collection_order` count from 1.
    pub fn event(
        &self,
        source: &Arc<SourceInfo>,
        op: Op,
        before: Option<Vec<Datum>>,
        after: Option<Vec<Datum>>,
        total_order: i64,
        data_collection_order: i64,
    ) -> ChangeEvent {
        ChangeEvent {
            op,
            before,
            after,
            source: Arc::clone(source),
            ts_ms: self.now_ms,
            transaction: Some(TransactionInfo {
                id: Arc::clone(&self.id),
                total_order,
                data_collection_order,
            }),
        }
    }

    /// A snapshot event (no transaction block) with `source` (from
    /// [`shared_source`](Self::shared_source) with `snapshot` true).
    pub fn snapshot_event(
        &self,
        source: &Arc<SourceInfo>,
        op: Op,
        before: Option<Vec<Datum>>,
        after: Option<Vec<Datum>>,
    ) -> ChangeEvent {
        ChangeEvent {
            op,
            before,
            after,
            source: Arc::clone(source),
            ts_ms: self.now_ms,
            transaction: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tributary_core::{Column, ColumnType};

    fn table() -> TableSchema {
        let col = |name: &str, ty, unavailable| Column {
            name: name.into(),
            ty,
            nullable: name != "id",
            may_be_unavailable: unavailable,
            db_type: String::new(),
        };
        TableSchema {
            database: "db".into(),
            schema: "public".into(),
            table: "t".into(),
            columns: vec![
                col("id", ColumnType::Int, false),
                col("body", ColumnType::Text, true),
                col("n", ColumnType::Long, true),
            ],
            key: vec![0],
        }
    }

    fn t(s: &'static str) -> TupleValue {
        TupleValue::Text(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn rows_and_before_images() {
        let tb = table();
        assert_eq!(
            row(&tb, &[t("1"), TupleValue::UnchangedToast, TupleValue::Null]).expect("row"),
            vec![Datum::Int(1), Datum::Unavailable, Datum::Null]
        );
        assert_eq!(
            old_row(
                &tb,
                OldKind::Key,
                &[t("1"), TupleValue::Null, TupleValue::Null]
            )
            .expect("key"),
            vec![Datum::Int(1), Datum::Unavailable, Datum::Unavailable]
        );
        assert_eq!(
            old_row(&tb, OldKind::Row, &[t("1"), t("b"), TupleValue::Null]).expect("full"),
            vec![Datum::Int(1), Datum::Text("b".into()), Datum::Null]
        );
        let err = row(&tb, &[t("x"), TupleValue::Null, TupleValue::Null]).expect_err("bad int");
        assert!(err.to_string().contains("public.t, column id"), "{err}");
        assert!(matches!(
            row(&tb, &[t("1")]),
            Err(EventError::Shape {
                got: 1,
                want: 3,
                ..
            })
        ));
    }

    #[test]
    fn source_block() {
        let tb = table();
        let ctx = TxContext::new(700, 0x16_0000_0010, 1_000_000);
        let ev = ctx.event(
            &ctx.shared_source(&table_source("pg", "db", &tb), false),
            Op::Create,
            None,
            Some(vec![Datum::Int(1), Datum::Null, Datum::Null]),
            1,
            1,
        );
        assert_eq!(ev.source.ts_ms, PG_EPOCH_UNIX_MS + 1000);
        assert_eq!(
            ev.source.position,
            Position::Postgres {
                lsn: 0x16_0000_0010,
                tx_id: Some(700)
            }
        );
        assert_eq!(
            ev.transaction.as_ref().map(|t| &*t.id),
            Some("700:94489280528")
        );
    }

    #[test]
    fn snapshot_rows_carry_the_time_they_were_read() {
        let before = tributary_log::now_ms();
        let ctx = TxContext::snapshot(0x10);
        let src = ctx.shared_source(&table_source("pg", "db", &table()), true);
        assert!(
            src.ts_ms >= before && src.ts_ms <= tributary_log::now_ms(),
            "{}",
            src.ts_ms
        );
        assert_eq!(src.snapshot, SnapshotFlag::True);
    }
}
