//! The initial snapshot: rows of the captured tables as of a consistent
//! point, read with COPY inside the snapshot a replication slot exported,
//! so the stream that follows starts exactly where the snapshot ends: no
//! gap, no duplicate.
//!
//! Several connections import the same exported snapshot and read in
//! parallel; a big table whose key is one integer column is split into
//! key ranges read as separate chunks. Progress goes to a live display on
//! an interactive terminal, to periodic log lines otherwise. Each finished
//! table is recorded (after its records are durable), so an interrupted
//! snapshot resumes with the tables it had not finished.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::Client;
use tributary_capture::writer::EventWriter;
use tributary_capture::{SnapshotProgress, TableProgress};
use tributary_core::{ChangeEvent, ColumnType, Datum, Op, SnapshotFlag, SourceInfo, TableSchema};

use crate::error::SourceError;
use crate::events::{self, TxContext};
use crate::replication::quote_ident;
use crate::types::parse_text;

/// Records appended per batch.
const BATCH: usize = 1000;

/// One table of a snapshot.
#[derive(Debug)]
pub(crate) struct TableJob {
    /// `schema.table`.
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// Its shape inside the snapshot.
    pub shape: TableSchema,
    /// The `source` block of its events.
    pub source: SourceInfo,
    /// `WHERE` clauses of its chunks; `None`: the whole table.
    pub chunks: Vec<Option<String>>,
    chunks_left: AtomicUsize,
    /// Rows, rate and ETA for the progress display.
    pub progress: Arc<TableProgress>,
}

impl TableJob {
    /// Plans reading `schema.table` (`shape`) with `client`, which is
    /// inside the snapshot: estimates its rows and, when there are more
    /// than `chunk_rows` and the key is one integer column, splits it into
    /// key ranges.
    pub async fn plan(
        client: &Client,
        topic: String,
        shape: TableSchema,
        source: SourceInfo,
        chunk_rows: u64,
    ) -> Result<Self, SourceError> {
        let name = shape.qualified_name();
        let from = format!(
            "{}.{}",
            quote_ident(&shape.schema),
            quote_ident(&shape.table)
        );
        let sql = |what: &str| {
            let what = format!("{what} of {name}");
            move |source| SourceError::Sql { what, source }
        };
        let row = client
            .query_one(
                "SELECT c.reltuples::int8, pg_relation_size(c.oid) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&shape.schema, &shape.table],
            )
            .await
            .map_err(sql("estimating the size"))?;
        let (reltuples, bytes): (i64, i64) = (row.get(0), row.get(1));
        // Never analyzed (-1): count, unless that means reading a big
        // table twice.
        let estimate = if reltuples >= 0 {
            Some(reltuples as u64)
        } else if bytes < 512 << 20 {
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {from}"), &[])
                .await
                .map_err(sql("counting the rows"))?
                .get(0);
            Some(n as u64)
        } else {
            None
        };
        let mut chunks = vec![None];
        let integer_key = match shape.key.as_slice() {
            [k] => matches!(shape.columns[*k].ty, ColumnType::Int | ColumnType::Long)
                .then(|| quote_ident(&shape.columns[*k].name)),
            _ => None,
        };
        let estimate_rows = estimate.unwrap_or(u64::MAX);
        if let Some(key) = integer_key
            && chunk_rows > 0
            && estimate_rows > chunk_rows
        {
            let row = client
                .query_one(
                    &format!("SELECT min({key})::int8, max({key})::int8 FROM {from}"),
                    &[],
                )
                .await
                .map_err(sql("reading the key range"))?;
            if let (Some(lo), Some(hi)) =
                (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
            {
                let n = estimate_rows.div_ceil(chunk_rows).clamp(1, 10_000);
                chunks = key_ranges(&key, lo, hi, n);
            }
        }
        Ok(Self {
            progress: Arc::new(TableProgress::new(name.clone(), estimate)),
            name,
            topic,
            shape,
            source,
            chunks_left: AtomicUsize::new(chunks.len()),
            chunks,
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.progress.rows()
    }
}

/// `n` `WHERE` clauses that split `lo..=hi` of the integer column `key`
/// into ranges of about equal width; the first and last are open-ended,
/// so rows outside the range (there are none in the snapshot) would still
/// be read.
pub fn key_ranges(key: &str, lo: i64, hi: i64, n: u64) -> Vec<Option<String>> {
    let width = (i128::from(hi) - i128::from(lo) + 1).max(1);
    let n = i128::from(n).min(width).max(1);
    let bounds: Vec<i128> = (1..n).map(|i| i128::from(lo) + width * i / n).collect();
    if bounds.is_empty() {
        return vec![None];
    }
    let mut out = Vec::with_capacity(bounds.len() + 1);
    out.push(Some(format!("{key} < {}", bounds[0])));
    for w in bounds.windows(2) {
        out.push(Some(format!("{key} >= {} AND {key} < {}", w[0], w[1])));
    }
    out.push(Some(format!("{key} >= {}", bounds[bounds.len() - 1])));
    out
}

/// What a snapshot run shares between its workers.
pub(crate) struct Reader {
    /// The tables.
    pub jobs: Vec<TableJob>,
    /// Where rows go.
    pub writer: Arc<EventWriter>,
    /// The events' context (the consistent point as commit LSN).
    pub ctx: TxContext,
    /// Called once per table, after its last record is appended.
    pub on_table_done: TableDoneFn,
    /// How often progress is logged (when stderr is not a terminal).
    pub progress_interval: Duration,
    /// The source's name (in progress lines).
    pub source_name: String,
}

/// What a snapshot does when a table's rows are all appended.
pub(crate) type TableDoneFn = Box<dyn Fn(&TableJob) -> Result<(), SourceError> + Send + Sync>;

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("jobs", &self.jobs).finish()
    }
}

impl Reader {
    /// Reads every chunk of every table with `clients` (each inside the
    /// same snapshot), one chunk per client at a time, each client in a
    /// task of its own (so decoding uses every core). Returns the rows
    /// written and the clients, for ending their transactions.
    pub async fn read(self, clients: Vec<Client>) -> Result<(u64, Vec<Client>), SourceError> {
        let me = Arc::new(self);
        let queue: Arc<Mutex<VecDeque<(usize, usize)>>> = Arc::new(Mutex::new(
            me.jobs
                .iter()
                .enumerate()
                .flat_map(|(t, j)| (0..j.chunks.len()).map(move |c| (t, c)))
                .collect(),
        ));
        let tables_left = Arc::new(AtomicUsize::new(me.jobs.len()));
        let mut work = tokio::task::JoinSet::new();
        for client in clients {
            let (me, queue, tables_left) = (
                Arc::clone(&me),
                Arc::clone(&queue),
                Arc::clone(&tables_left),
            );
            work.spawn(async move {
                let rows = me.worker(&client, &queue, &tables_left).await?;
                Ok::<_, SourceError>((rows, client))
            });
        }
        let mut display = SnapshotProgress::new(
            &me.source_name,
            me.jobs.iter().map(|j| Arc::clone(&j.progress)).collect(),
            me.progress_interval,
        );
        let every = display.every();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut total = 0;
        let mut back = Vec::new();
        loop {
            tokio::select! {
                done = work.join_next() => match done {
                    None => break,
                    Some(Ok(Ok((rows, client)))) => {
                        total += rows;
                        back.push(client);
                    }
                    Some(Ok(Err(e))) => {
                        work.abort_all();
                        return Err(e);
                    }
                    Some(Err(e)) => {
                        work.abort_all();
                        return Err(SourceError::SnapshotWorker(e));
                    }
                },
                _ = tick.tick() => display.show(),
            }
        }
        display.finish();
        Ok((total, back))
    }

    async fn worker(
        &self,
        client: &Client,
        queue: &Mutex<VecDeque<(usize, usize)>>,
        tables_left: &AtomicUsize,
    ) -> Result<u64, SourceError> {
        use futures_util::StreamExt;
        let mut total = 0;
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            let Some((t, c)) = next else {
                return Ok(total);
            };
            let job = &self.jobs[t];
            job.progress.start();
            let cols: Vec<String> = job
                .shape
                .columns
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect();
            let filter = job.chunks[c]
                .as_ref()
                .map(|w| format!(" WHERE {w}"))
                .unwrap_or_default();
            let copy = format!(
                "COPY (SELECT {} FROM {}.{}{filter}) TO STDOUT",
                cols.join(", "),
                quote_ident(&job.shape.schema),
                quote_ident(&job.shape.table)
            );
            let sql = |source| SourceError::Sql {
                what: copy.clone(),
                source,
            };
            let stream = client.copy_out(&copy).await.map_err(sql)?;
            futures_util::pin_mut!(stream);
            let mut carry: Vec<u8> = Vec::new();
            let mut scratch: Vec<u8> = Vec::new();
            // This task's own copy of the shared strings: cloning them per
            // event then touches no reference count another core uses.
            let source = self.ctx.shared_source(&unshared(&job.source), true);
            let mut batch: Vec<ChangeEvent> = Vec::with_capacity(BATCH + 1);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(sql)?;
                // PostgreSQL sends a row per message: parse it where it
                // lies unless a partial line is carried over.
                if carry.is_empty() {
                    let used =
                        self.lines(job, &source, &chunk, &mut batch, &mut scratch, &mut total)?;
                    carry.extend_from_slice(&chunk[used..]);
                } else {
                    carry.extend_from_slice(&chunk);
                    let used =
                        self.lines(job, &source, &carry, &mut batch, &mut scratch, &mut total)?;
                    carry.drain(..used);
                }
            }
            // The chunk that finishes its table marks the table's last
            // record; the one that finishes the last table, the
            // snapshot's. (A key range with no rows has no record to
            // mark: then the mark is missing.)
            let table_done = job.chunks_left.fetch_sub(1, Ordering::AcqRel) == 1;
            let all_done = table_done && tables_left.fetch_sub(1, Ordering::AcqRel) == 1;
            if let Some(ev) = batch.last_mut() {
                if all_done {
                    Arc::make_mut(&mut ev.source).snapshot = SnapshotFlag::Last;
                } else if table_done {
                    Arc::make_mut(&mut ev.source).snapshot = SnapshotFlag::LastInDataCollection;
                }
            }
            total += self.append(job, &mut batch)?;
            if table_done {
                job.progress.finish();
                (self.on_table_done)(job)?;
            }
        }
    }

    /// Turns the complete lines at the start of `buf` into events of
    /// `batch`, appending full batches. Returns the bytes used.
    #[allow(clippy::too_many_arguments)]
    fn lines(
        &self,
        job: &TableJob,
        source: &Arc<SourceInfo>,
        buf: &[u8],
        batch: &mut Vec<ChangeEvent>,
        scratch: &mut Vec<u8>,
        total: &mut u64,
    ) -> Result<usize, SourceError> {
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            let row = copy_row(&job.shape, line, scratch)?;
            batch.push(self.ctx.snapshot_event(source, Op::Read, None, Some(row)));
            // One row is always held back: the chunk's last row may have
            // to carry the table's or snapshot's end.
            if batch.len() > BATCH {
                let held = batch.pop();
                *total += self.append(job, batch)?;
                batch.extend(held);
            }
        }
        Ok(start)
    }

    fn append(&self, job: &TableJob, batch: &mut Vec<ChangeEvent>) -> Result<u64, SourceError> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.writer
            .append(&job.topic, batch)
            .map_err(|e| SourceError::Write(Box::new(e)))?;
        let n = batch.len() as u64;
        job.progress.add(n);
        batch.clear();
        Ok(n)
    }
}

/// A copy of `s` whose strings are new allocations.
fn unshared(s: &SourceInfo) -> SourceInfo {
    let fresh = |a: &Arc<str>| Arc::<str>::from(&**a);
    SourceInfo {
        connector: fresh(&s.connector),
        version: fresh(&s.version),
        name: fresh(&s.name),
        db: fresh(&s.db),
        schema: s.schema.as_ref().map(fresh),
        table: fresh(&s.table),
        ..s.clone()
    }
}

/// Parses one line of COPY's text format straight into `table`'s row.
/// Fields without escapes are parsed where they lie; `scratch` holds an
/// unescaped field otherwise.
pub(crate) fn copy_row(
    table: &TableSchema,
    line: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<Vec<Datum>, SourceError> {
    let not_utf8 = || {
        SourceError::Snapshot(format!(
            "table {}: a value is not UTF-8",
            table.qualified_name()
        ))
    };
    let line = std::str::from_utf8(line).map_err(|_| not_utf8())?;
    let mut row = Vec::with_capacity(table.columns.len());
    let mut columns = table.columns.iter();
    for field in line.split('\t') {
        let Some(column) = columns.next() else {
            return Err(events::EventError::Shape {
                table: table.qualified_name(),
                got: line.split('\t').count(),
                want: table.columns.len(),
            }
            .into());
        };
        if field == "\\N" {
            row.push(Datum::Null);
            continue;
        }
        let text = if field.contains('\\') {
            scratch.clear();
            unescape(field.as_bytes(), scratch).map_err(|reason| {
                SourceError::Snapshot(format!(
                    "table {}, column {}: {reason}",
                    table.qualified_name(),
                    column.name
                ))
            })?;
            std::str::from_utf8(scratch).map_err(|_| not_utf8())?
        } else {
            field
        };
        row.push(
            parse_text(&column.ty, text).map_err(|source| events::EventError::Value {
                table: table.qualified_name(),
                column: column.name.clone(),
                source,
            })?,
        );
    }
    if row.len() != table.columns.len() {
        return Err(events::EventError::Shape {
            table: table.qualified_name(),
            got: row.len(),
            want: table.columns.len(),
        }
        .into());
    }
    Ok(row)
}

/// Why a field of COPY's text format could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyTextError {
    /// A backslash with nothing after it.
    #[error("line ends in a lone backslash")]
    LoneBackslash,
    /// The unescaped bytes are not UTF-8.
    #[error("field is not UTF-8")]
    NotUtf8,
}

/// Splits one line of COPY's text format into fields (`None` for `\N`),
/// undoing its backslash escapes.
pub fn copy_fields(line: &[u8]) -> Result<Vec<Option<String>>, CopyTextError> {
    let mut out = Vec::new();
    for field in line.split(|&b| b == b'\t') {
        if field == b"\\N" {
            out.push(None);
            continue;
        }
        let mut v: Vec<u8> = Vec::with_capacity(field.len());
        unescape(field, &mut v)?;
        out.push(Some(
            String::from_utf8(v).map_err(|_| CopyTextError::NotUtf8)?,
        ));
    }
    Ok(out)
}

/// Appends `field` to `v` with COPY's backslash escapes undone.
fn unescape(field: &[u8], v: &mut Vec<u8>) -> Result<(), CopyTextError> {
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            v.push(b);
            i += 1;
            continue;
        }
        let Some(&e) = field.get(i + 1) else {
            return Err(CopyTextError::LoneBackslash);
        };
        i += 2;
        match e {
            b'b' => v.push(8),
            b'f' => v.push(12),
            b'n' => v.push(b'\n'),
            b'r' => v.push(b'\r'),
            b't' => v.push(b'\t'),
            b'v' => v.push(11),
            b'0'..=b'7' => {
                let mut n = u32::from(e - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            n = n * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                v.push((n & 0xff) as u8);
            }
            b'x' => {
                let mut n = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            n = n * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                v.push(n as u8);
            }
            other => v.push(other),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_cover_the_range_once() {
        assert_eq!(key_ranges("id", 1, 100, 1), vec![None]);
        assert_eq!(
            key_ranges("id", 1, 100, 4),
            vec![
                Some("id < 26".to_string()),
                Some("id >= 26 AND id < 51".to_string()),
                Some("id >= 51 AND id < 76".to_string()),
                Some("id >= 76".to_string()),
            ]
        );
        // More chunks than keys: one per key at most.
        assert_eq!(key_ranges("id", 5, 6, 10).len(), 2);
        // The whole i64 range does not overflow.
        assert_eq!(key_ranges("id", i64::MIN, i64::MAX, 3).len(), 3);
    }

    #[test]
    fn copy_text_format() {
        assert_eq!(
            copy_fields(b"1\t\\N\ta\\tb\\\\c\\nd\t\\101\\x42"),
            Ok(vec![
                Some("1".into()),
                None,
                Some("a\tb\\c\nd".into()),
                Some("AB".into()),
            ])
        );
        assert_eq!(copy_fields(b""), Ok(vec![Some(String::new())]));
        assert!(copy_fields(b"x\\").is_err());
    }
}
