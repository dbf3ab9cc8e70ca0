//! The tantivy sink: a full-text search index of the captured rows.
//!
//! One index per sink, in its own directory. Tables of several topics
//! share it, so its schema is fixed and does not follow the tables' (a
//! tantivy schema is fixed when the index is created; a column a table
//! gains needs no change):
//!
//! - `_key`: raw string, indexed and stored: `schema.table`, then each
//!   key column's value as text ([`tributary_core::render::text`]), all
//!   joined by [`KEY_SEP`] (`\u{1f}`; a `\u{1f}` or [`KEY_ESC`] inside a
//!   value is escaped by [`KEY_ESC`], so keys never collide). Upserts and
//!   deletes go by this term.
//! - `_table`: raw string, indexed and stored: `schema.table` (a truncate
//!   deletes by it).
//! - `_doc`: stored only: the row as a JSON object of column texts
//!   (`null` for NULL), what a hit returns.
//! - `row`: a tantivy JSON field, indexed (text with the sink's
//!   `analyzer`: `default`, `raw` or `en_stem`) and fast, holding the
//!   row's columns typed: text, JSON, enum and SET columns (and UUIDs,
//!   intervals, points, times) as text; integers as i64 (BIGINT UNSIGNED
//!   as u64); real, double and decimal as f64 (a decimal is lossy here,
//!   for search only: `_doc` and the log keep the exact value; NaN and
//!   infinities as such); dates, timestamps and timestamps with time zone
//!   as tantivy dates (timestamps without zone read as UTC; `infinity`
//!   is not indexed); booleans as bool; arrays as arrays of their
//!   elements. Binary columns (bytea, bit strings, geometry) are only in
//!   `_doc`. NULL is left out.
//!
//! - `_text`: indexed only, with the same analyzer: every text value of
//!   `row` again, so that words without a column (`ada lovelace`) match
//!   in any text column.
//!
//! Queries ([`search`], `tributary search`, `GET /search/{index}`) use
//! tantivy's query syntax over `row`: a field name that is not one of the
//! fields above is a column of `row` (`name:ada` means `row.name:ada`,
//! also for ranges: `balance:[10 TO 20]`, dates as
//! `born:[2020-01-01T00:00:00Z TO *]`); words without a field search
//! `_text`; `*` matches every row. A column named like one of the fields
//! above must be written `row.<name>`.
//!
//! A batch is applied in order: an upsert (create, update, snapshot read)
//! deletes the key's document and adds the new one (a changed key also
//! deletes the old key's); a delete removes the key's document; a
//! truncate every document of its table. A column the source could not
//! see (unchanged TOAST) keeps the stored value: it is taken from the
//! same key's latest document, in the batch or else in the last commit
//! (re-indexed from its text). Tombstones never reach a sink. Then one
//! commit whose payload holds, per partition, the offset after its last
//! record (merged with those of earlier commits): data and offsets are
//! one atomic commit, so a restart resumes exactly where the index is
//! (exactly-once effect). The sink's workers in one process share one
//! `IndexWriter` (tantivy allows one per directory).
//!
//! Between truncates a batch is written as one delete of every key it
//! touches, then each key's last document, built and handed to tantivy's
//! indexing thread one by one (building and indexing overlap). That work
//! runs on the borrowed batch in `block_in_place` (off the async
//! workers' duty, without copying the batch for `spawn_blocking`).
//!
//! Ordering across partitions is the log's: a truncate travels in
//! partition 0 and rows by key, so a row written just after a truncate
//! in another partition may be applied before it, and removed by it (as
//! for every sink).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, Query, QueryParser, TermQuery};
use tantivy::query_grammar::{UserInputAst, UserInputLeaf};
use tantivy::schema::{
    Field, IndexRecordOption, JsonObjectOptions, OwnedValue, STORED, STRING, Schema,
    TextFieldIndexing, Value as _,
};
use tantivy::{DateTime, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tributary_core::render;
use tributary_core::sink::{BoxFuture, StoredOffsets};
use tributary_core::{ColumnType, Datum, Op, Sink, SinkError, SinkRecord, TopicPartition};

/// Separates the table and the key values in `_key`.
pub const KEY_SEP: char = '\u{1f}';
/// Escapes [`KEY_SEP`] and itself inside a key value.
pub const KEY_ESC: char = '\u{1b}';

/// Longest `_key` the index can hold as one term (tantivy's limit is a
/// little above).
const MAX_KEY_BYTES: usize = 65_000;

/// Memory of the writer's indexing threads, together: a batch is
/// committed before they fill it.
const WRITER_HEAP: usize = 256 << 20;
/// Indexing threads: one, while the sink builds the next documents on
/// the other core of the machines we size for (two threads were no
/// faster, and make twice the segments).
const WRITER_THREADS: usize = 1;

/// How text is split into terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Analyzer {
    /// Words, lowercased (tantivy's `default`).
    #[default]
    Default,
    /// The whole text is one term.
    Raw,
    /// Words, lowercased, English stemming.
    EnStem,
}

impl Analyzer {
    /// The tokenizer's name in tantivy.
    pub fn name(self) -> &'static str {
        match self {
            Analyzer::Default => "default",
            Analyzer::Raw => "raw",
            Analyzer::EnStem => "en_stem",
        }
    }

    /// Parses `default`, `raw` or `en_stem`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "default" => Analyzer::Default,
            "raw" => Analyzer::Raw,
            "en_stem" => Analyzer::EnStem,
            _ => return None,
        })
    }
}

/// Settings.
#[derive(Debug, Clone)]
pub struct TantivySinkConfig {
    /// The sink's name.
    pub name: String,
    /// The index directory (created if missing).
    pub path: PathBuf,
    /// How `row`'s text is analysed (fixed when the index is created).
    pub analyzer: Analyzer,
}

/// Why the index could not be opened or searched.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// No index at that path.
    #[error("no search index at {0}")]
    NotAnIndex(PathBuf),
    /// The query does not parse.
    #[error("bad query: {0}")]
    Query(String),
    /// tantivy failed.
    #[error("search index {path}: {reason}")]
    Index {
        /// The index directory.
        path: PathBuf,
        /// What tantivy said.
        reason: String,
    },
}

/// The index's fields.
#[derive(Debug, Clone, Copy)]
struct Fields {
    key: Field,
    table: Field,
    doc: Field,
    row: Field,
    text: Field,
}

impl Fields {
    fn of(schema: &Schema) -> Option<Self> {
        Some(Self {
            key: schema.get_field("_key").ok()?,
            table: schema.get_field("_table").ok()?,
            doc: schema.get_field("_doc").ok()?,
            row: schema.get_field("row").ok()?,
            text: schema.get_field("_text").ok()?,
        })
    }
}

/// The schema every index of this sink has.
fn schema(analyzer: Analyzer) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let key = b.add_text_field("_key", STRING | STORED);
    let table = b.add_text_field("_table", STRING | STORED);
    let doc = b.add_text_field("_doc", STORED);
    let row = b.add_json_field(
        "row",
        JsonObjectOptions::default()
            .set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer.name())
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
            .set_fast("raw"),
    );
    let text = b.add_text_field(
        "_text",
        tantivy::schema::TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(analyzer.name())
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        ),
    );
    (
        b.build(),
        Fields {
            key,
            table,
            doc,
            row,
            text,
        },
    )
}

/// `v` with [`KEY_SEP`] and [`KEY_ESC`] escaped.
fn push_key_part(out: &mut String, v: &str) {
    for ch in v.chars() {
        if ch == KEY_SEP || ch == KEY_ESC {
            out.push(KEY_ESC);
        }
        out.push(ch);
    }
}

/// The `_key` term of the row of `table` whose key columns hold `key`;
/// `None` if a key value is unavailable.
fn key_term(
    qualified: &str,
    table: &tributary_core::TableSchema,
    key: &[&Datum],
) -> Option<String> {
    let mut out = String::with_capacity(qualified.len() + 16);
    out.push_str(qualified);
    for (&i, d) in table.key.iter().zip(key) {
        if matches!(d, Datum::Unavailable) {
            return None;
        }
        out.push(KEY_SEP);
        let ty = table.columns.get(i).map_or(&ColumnType::Text, |c| &c.ty);
        push_key_part(&mut out, &render::text(ty, d).unwrap_or_default());
    }
    Some(out)
}

/// A date from microseconds since the epoch, if tantivy can hold it.
fn micros_date(us: i64) -> Option<OwnedValue> {
    us.checked_mul(1000)
        .map(|ns| OwnedValue::Date(DateTime::from_timestamp_nanos(ns)))
}

/// `d` (of type `ty`) as `row` indexes it; `None`: not indexed.
fn indexed(ty: &ColumnType, d: &Datum) -> Option<OwnedValue> {
    use tributary_core::NumericSpecial as N;
    Some(match (ty, d) {
        (_, Datum::Null | Datum::Unavailable | Datum::Bytes(_)) => return None,
        // The source's own text for a value the type cannot hold (a
        // timestamp past microseconds, an array of several dimensions):
        // kept in the document, not indexed as its field's type.
        (
            ColumnType::Date
            | ColumnType::Timestamp
            | ColumnType::TimestampTz
            | ColumnType::Array(_),
            Datum::Text(_),
        ) => return None,
        (ColumnType::Date, Datum::Int(days)) => {
            return i64::from(*days)
                .checked_mul(86_400_000_000)
                .and_then(micros_date);
        }
        (ColumnType::Timestamp | ColumnType::TimestampTz, Datum::Long(us)) => {
            if matches!(*us, i64::MAX | i64::MIN) {
                return None;
            }
            return micros_date(*us);
        }
        (ColumnType::Time | ColumnType::Duration, Datum::Long(_)) => {
            OwnedValue::Str(render::text(ty, d)?)
        }
        (_, Datum::Bool(b)) => OwnedValue::Bool(*b),
        (_, Datum::Int(v)) => OwnedValue::I64(i64::from(*v)),
        (_, Datum::Long(v)) => OwnedValue::I64(*v),
        (_, Datum::Float(v)) => OwnedValue::F64(f64::from(*v)),
        (_, Datum::Double(v)) => OwnedValue::F64(*v),
        (ColumnType::UnsignedLong, Datum::Decimal { .. }) => {
            let t = render::text(ty, d)?;
            match t.parse::<u64>() {
                Ok(v) => OwnedValue::U64(v),
                Err(_) => OwnedValue::F64(t.parse().ok()?),
            }
        }
        (_, Datum::Decimal { .. }) => OwnedValue::F64(render::text(ty, d)?.parse().ok()?),
        (_, Datum::NumericSpecial(s)) => OwnedValue::F64(match s {
            N::NaN => f64::NAN,
            N::PositiveInfinity => f64::INFINITY,
            N::NegativeInfinity => f64::NEG_INFINITY,
        }),
        (_, Datum::Text(s)) => OwnedValue::Str(s.clone()),
        (_, Datum::Array(items)) => {
            let elem = match ty {
                ColumnType::Array(e) => e.as_ref(),
                other => other,
            };
            OwnedValue::Array(items.iter().filter_map(|i| indexed(elem, i)).collect())
        }
        (_, Datum::Uuid(_) | Datum::Interval { .. } | Datum::Point { .. }) => {
            OwnedValue::Str(render::text(ty, d)?)
        }
    })
}

/// A stored text (from `_doc`) of a column of type `ty`, indexed again:
/// for a column the source could not see, whose value is kept.
fn reindexed(ty: &ColumnType, text: &str) -> Option<OwnedValue> {
    Some(match ty {
        ColumnType::Bytes | ColumnType::Bits(_) | ColumnType::Geometry => return None,
        ColumnType::Boolean => OwnedValue::Bool(text.parse().ok()?),
        ColumnType::Int | ColumnType::Long | ColumnType::Year => {
            OwnedValue::I64(text.parse().ok()?)
        }
        ColumnType::UnsignedLong => OwnedValue::U64(text.parse().ok()?),
        ColumnType::Float
        | ColumnType::Double
        | ColumnType::Decimal { .. }
        | ColumnType::VariableDecimal
        | ColumnType::Money => OwnedValue::F64(text.parse().ok()?),
        _ => OwnedValue::Str(text.to_string()),
    })
}

/// The text values of `v` into `field` (`_text`).
fn add_texts(doc: &mut TantivyDocument, field: Field, v: &OwnedValue) {
    match v {
        OwnedValue::Str(s) => doc.add_text(field, s),
        OwnedValue::Array(items) => {
            for i in items {
                add_texts(doc, field, i);
            }
        }
        _ => {}
    }
}

/// What one record does to the index, from its key alone.
#[derive(Debug)]
enum Plan {
    /// Nothing (an upsert without a row).
    Nothing,
    /// The record cannot be indexed.
    Refused(String),
    /// Delete the document of this `_key`.
    Delete(String),
    /// Delete every document of this `_table`.
    Truncate(String),
    /// Replace the document of `key` (and delete `old_key`'s, a key
    /// changed); `partial`: the source could not see some columns.
    Upsert {
        key: String,
        old_key: Option<String>,
        partial: bool,
    },
}

/// What `r` does to the index.
fn plan(r: &SinkRecord) -> Plan {
    let t = &r.table;
    let qualified = t.qualified_name();
    if r.event.op == Op::Truncate {
        return Plan::Truncate(qualified);
    }
    let Some(key) = r.key.as_deref() else {
        return Plan::Refused(format!(
            "table {qualified} has no key: a search index needs one to update and delete rows"
        ));
    };
    let key_refs: Vec<&Datum> = key.iter().collect();
    let Some(k) = key_term(&qualified, t, &key_refs) else {
        return Plan::Refused(format!("a key value of table {qualified} is unavailable"));
    };
    if k.len() > MAX_KEY_BYTES {
        return Plan::Refused(format!(
            "the key of a row of table {qualified} is {} bytes of text: a search index takes at most {MAX_KEY_BYTES}",
            k.len()
        ));
    }
    match r.event.op {
        Op::Delete => Plan::Delete(k),
        Op::Truncate => Plan::Truncate(qualified),
        Op::Create | Op::Update | Op::Read => {
            let Some(after) = r.event.after.as_ref() else {
                return Plan::Nothing;
            };
            let old_key = r.event.before.as_deref().and_then(|before| {
                let old: Option<Vec<&Datum>> = t.key.iter().map(|&i| before.get(i)).collect();
                key_term(&qualified, t, &old?).filter(|o| *o != k)
            });
            Plan::Upsert {
                key: k,
                old_key,
                partial: after.iter().any(|d| matches!(d, Datum::Unavailable)),
            }
        }
    }
}

/// A stored `_doc`.
type StoredDoc = serde_json::Map<String, serde_json::Value>;

/// The document of upsert `r` under `key`, and its `_doc` JSON; a column
/// the source could not see is taken from `stored` (the key's document
/// before), or left out.
fn build(
    f: Fields,
    r: &SinkRecord,
    key: &str,
    stored: Option<&StoredDoc>,
) -> (TantivyDocument, String) {
    let t = &r.table;
    let after = r.event.after.as_deref().unwrap_or_default();
    let mut json = String::with_capacity(64 + t.columns.len() * 24);
    let mut row = BTreeMap::new();
    json.push('{');
    for (i, (c, d)) in t.columns.iter().zip(after).enumerate() {
        let (text, value) = if matches!(d, Datum::Unavailable) {
            let text = stored
                .and_then(|s| s.get(&c.name))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let value = text.as_deref().and_then(|t| reindexed(&c.ty, t));
            (text, value)
        } else {
            (render::text(&c.ty, d), indexed(&c.ty, d))
        };
        if i > 0 {
            json.push(',');
        }
        render::json_string(&mut json, &c.name);
        json.push(':');
        match &text {
            None => json.push_str("null"),
            Some(t) => render::json_string(&mut json, t),
        }
        if let Some(v) = value {
            row.insert(c.name.clone(), v);
        }
    }
    json.push('}');
    let mut doc = TantivyDocument::new();
    doc.add_text(f.key, key);
    doc.add_text(f.table, table_of(key));
    doc.add_text(f.doc, &json);
    for v in row.values() {
        add_texts(&mut doc, f.text, v);
    }
    doc.add_object(f.row, row);
    (doc, json)
}

/// An open index and its writer, shared by every sink instance of the
/// process on that directory.
struct Shared {
    path: PathBuf,
    analyzer: Analyzer,
    index: Index,
    fields: Fields,
    state: Mutex<State>,
}

struct State {
    writer: Option<IndexWriter>,
    reader: Option<IndexReader>,
    /// The reader predates the last commit.
    stale: bool,
    /// The last commit's payload.
    offsets: BTreeMap<String, u64>,
}

/// Indexes open in this process, by canonical path.
fn open_indexes() -> &'static Mutex<HashMap<PathBuf, Weak<Shared>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
    OPEN.get_or_init(|| Mutex::new(HashMap::new()))
}

fn fatal(path: &Path, e: impl std::fmt::Display) -> SinkError {
    SinkError::fatal(format!("search index {}: {e}", path.display()))
}

fn transient(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> SinkError {
    SinkError::transient_from(format!("search index {}", path.display()), e)
}

/// The offsets of a commit payload (`{"topic/partition": next, ...}`).
fn parse_payload(path: &Path, payload: Option<&str>) -> Result<BTreeMap<String, u64>, SinkError> {
    match payload {
        None | Some("") => Ok(BTreeMap::new()),
        Some(p) => serde_json::from_str(p)
            .map_err(|e| fatal(path, format!("the last commit's offsets do not parse: {e}"))),
    }
}

/// The offsets stored in the last commit of the index at `path`: per
/// `topic/partition`, the offset after the last record applied (empty
/// when there is no index yet).
pub fn committed_offsets(path: &Path) -> Result<BTreeMap<String, u64>, SinkError> {
    if !path.join("meta.json").exists() {
        return Ok(BTreeMap::new());
    }
    let index = Index::open_in_dir(path).map_err(|e| transient(path, e))?;
    let metas = index.load_metas().map_err(|e| transient(path, e))?;
    parse_payload(path, metas.payload.as_deref())
}

impl Shared {
    fn open(path: &Path, analyzer: Analyzer) -> Result<Arc<Self>, SinkError> {
        std::fs::create_dir_all(path).map_err(|e| fatal(path, e))?;
        let canonical = path.canonicalize().map_err(|e| fatal(path, e))?;
        let mut open = open_indexes().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = open.get(&canonical).and_then(Weak::upgrade) {
            if s.analyzer != analyzer {
                return Err(fatal(
                    path,
                    format!(
                        "open with analyzer {} here, not {}",
                        s.analyzer.name(),
                        analyzer.name()
                    ),
                ));
            }
            return Ok(s);
        }
        let (schema, _) = schema(analyzer);
        let dir = MmapDirectory::open(&canonical).map_err(|e| fatal(path, e))?;
        let index = Index::open_or_create(dir, schema).map_err(|e| match e {
            tantivy::TantivyError::SchemaError(_) => fatal(
                path,
                format!(
                    "made with another analyzer or by another program (this sink's analyzer: {})",
                    analyzer.name()
                ),
            ),
            other => transient(path, other),
        })?;
        let fields = Fields::of(&index.schema())
            .ok_or_else(|| fatal(path, "not an index of this sink's shape"))?;
        let metas = index.load_metas().map_err(|e| transient(path, e))?;
        let offsets = parse_payload(path, metas.payload.as_deref())?;
        let shared = Arc::new(Self {
            path: canonical.clone(),
            analyzer,
            index,
            fields,
            state: Mutex::new(State {
                writer: None,
                reader: None,
                stale: true,
                offsets,
            }),
        });
        open.retain(|_, w| w.strong_count() > 0);
        open.insert(canonical, Arc::downgrade(&shared));
        Ok(shared)
    }

    fn writer<'s>(&self, st: &'s mut State) -> Result<&'s mut IndexWriter, SinkError> {
        if st.writer.is_none() {
            let options = tantivy::indexer::IndexWriterOptions::builder()
                .num_worker_threads(WRITER_THREADS)
                .memory_budget_per_thread(WRITER_HEAP / WRITER_THREADS)
                .num_merge_threads(1)
                .build();
            let w: IndexWriter = self
                .index
                .writer_with_options(options)
                .map_err(|e| transient(&self.path, e))?;
            // Merges of 16 segments, not 8: a commit per batch makes many
            // small segments, and merging them less often is a tenth of
            // the bulk rate (bench sinks) for a few more segments to
            // search.
            let mut merges = tantivy::indexer::LogMergePolicy::default();
            merges.set_min_num_segments(16);
            w.set_merge_policy(Box::new(merges));
            // What the last commit holds, nothing else.
            let metas = self
                .index
                .load_metas()
                .map_err(|e| transient(&self.path, e))?;
            st.offsets = parse_payload(&self.path, metas.payload.as_deref())?;
            st.writer = Some(w);
        }
        st.writer.as_mut().ok_or_else(|| {
            SinkError::transient(format!("search index {}: no writer", self.path.display()))
        })
    }

    /// The `_doc` of `key` in the last commit.
    fn committed_doc(
        &self,
        st: &mut State,
        key: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, SinkError> {
        if st.reader.is_none() {
            st.reader = Some(
                self.index
                    .reader_builder()
                    .reload_policy(ReloadPolicy::Manual)
                    .try_into()
                    .map_err(|e| transient(&self.path, e))?,
            );
            st.stale = false;
        }
        let Some(reader) = st.reader.as_ref() else {
            return Ok(None);
        };
        if st.stale {
            reader.reload().map_err(|e| transient(&self.path, e))?;
            st.stale = false;
        }
        let searcher = reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.fields.key, key),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(&q, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| transient(&self.path, e))?;
        let Some((_, addr)) = top.first() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(*addr).map_err(|e| transient(&self.path, e))?;
        Ok(doc
            .get_first(self.fields.doc)
            .and_then(|v| v.as_str())
            .and_then(|s| serde_json::from_str(s).ok()))
    }

    /// Applies `batch` and commits it with its offsets. A record the
    /// index cannot take ends the batch there: those before it are
    /// committed.
    /// Commits `offsets` (an offsets reset) as the new payload, the
    /// documents unchanged.
    fn reset_offsets(&self, offsets: &[(TopicPartition, u64)]) -> Result<(), SinkError> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        let mut next = st.offsets.clone();
        for (tp, o) in offsets {
            next.insert(format!("{}/{}", tp.topic, tp.partition), *o);
        }
        let payload = serde_json::to_string(&next).map_err(|e| fatal(&self.path, e))?;
        let committed = self.writer(st).and_then(|w| {
            let mut prepared = w.prepare_commit().map_err(|e| transient(&self.path, e))?;
            prepared.set_payload(&payload);
            prepared.commit().map_err(|e| transient(&self.path, e))
        });
        match committed {
            Ok(_) => {
                st.offsets = next;
                Ok(())
            }
            Err(e) => {
                st.writer = None;
                st.stale = true;
                Err(e)
            }
        }
    }

    fn apply(&self, batch: &[SinkRecord]) -> Result<(), SinkError> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *guard;
        let result = self.apply_locked(st, batch);
        if let Err(SinkError::Transient { .. } | SinkError::Fatal { .. }) = &result {
            // What was added is not committed: a new writer starts from
            // the last commit.
            st.writer = None;
            st.stale = true;
        }
        result
    }

    /// Between truncates, the batch is one group: a delete of every key
    /// it touches, then each key's last document (one delete per group,
    /// not one per row, is what makes bulk loads fast). Documents are
    /// built and handed to the indexing threads one by one, so building
    /// and indexing overlap.
    fn apply_locked(&self, st: &mut State, batch: &[SinkRecord]) -> Result<(), SinkError> {
        let f = self.fields;
        let plans: Vec<Plan> = batch.iter().map(plan).collect();
        let (end, refused) = match plans.iter().position(|p| matches!(p, Plan::Refused(_))) {
            Some(i) => {
                let reason = match &plans[i] {
                    Plan::Refused(r) => r.clone(),
                    _ => String::new(),
                };
                (i, Some(SinkError::Record { index: i, reason }))
            }
            None => (plans.len(), None),
        };
        // Keys whose document a later record of the batch needs.
        let wanted: HashSet<&str> = plans[..end]
            .iter()
            .filter_map(|p| match p {
                Plan::Upsert {
                    key,
                    old_key,
                    partial: true,
                } => Some(old_key.as_deref().unwrap_or(key)),
                _ => None,
            })
            .collect();
        // Documents of wanted keys written by this batch (`None`: gone).
        let mut written: HashMap<&str, Option<StoredDoc>> = HashMap::new();
        let mut truncated: HashSet<&str> = HashSet::new();
        let mut i = 0;
        while i < end {
            let j = plans[i..end]
                .iter()
                .position(|p| matches!(p, Plan::Truncate(_)))
                .map_or(end, |n| i + n);
            // Where each key of the group last changes.
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(j - i);
            for (k, p) in plans.iter().enumerate().take(j).skip(i) {
                match p {
                    Plan::Delete(key) => {
                        last.insert(key, k);
                    }
                    Plan::Upsert { key, old_key, .. } => {
                        if let Some(o) = old_key {
                            last.insert(o, k);
                        }
                        last.insert(key, k);
                    }
                    _ => {}
                }
            }
            if !last.is_empty() {
                let terms: Vec<Term> = last
                    .keys()
                    .map(|k| Term::from_field_text(f.key, k))
                    .collect();
                self.writer(st)?
                    .delete_query(Box::new(tantivy::query::TermSetQuery::new(terms)))
                    .map_err(|e| transient(&self.path, e))?;
            }
            for k in i..j {
                match &plans[k] {
                    Plan::Delete(key) if wanted.contains(key.as_str()) => {
                        written.insert(key, None);
                    }
                    Plan::Upsert {
                        key,
                        old_key,
                        partial,
                    } => {
                        let is_last = last.get(key.as_str()) == Some(&k);
                        let keep = wanted.contains(key.as_str());
                        if is_last || keep {
                            let stored = if *partial {
                                let from = old_key.as_deref().unwrap_or(key);
                                match written.get(from) {
                                    Some(d) => d.clone(),
                                    None if truncated.contains(table_of(from)) => None,
                                    None => self.committed_doc(st, from)?,
                                }
                            } else {
                                None
                            };
                            let (doc, json) = build(f, &batch[k], key, stored.as_ref());
                            if keep {
                                written.insert(key, serde_json::from_str(&json).ok());
                            }
                            if is_last {
                                self.writer(st)?
                                    .add_document(doc)
                                    .map_err(|e| transient(&self.path, e))?;
                            }
                        }
                        if let Some(o) = old_key
                            && wanted.contains(o.as_str())
                        {
                            written.insert(o, None);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(Plan::Truncate(t)) = plans.get(j).filter(|_| j < end) {
                self.writer(st)?
                    .delete_term(Term::from_field_text(f.table, t));
                written.retain(|k, _| table_of(k) != t.as_str());
                truncated.insert(t);
                i = j + 1;
            } else {
                i = j;
            }
        }
        // Per partition, the offset after its last record applied.
        let mut offsets = st.offsets.clone();
        let mut runs: Vec<(&Arc<str>, u32, u64)> = Vec::new();
        for r in &batch[..end] {
            match runs.last_mut() {
                Some((t, p, o)) if *p == r.partition && Arc::ptr_eq(t, &r.topic) => {
                    *o = r.offset + 1;
                }
                _ => runs.push((&r.topic, r.partition, r.offset + 1)),
            }
        }
        for (t, p, o) in runs {
            offsets.insert(format!("{t}/{p}"), o);
        }
        let payload = serde_json::to_string(&offsets).map_err(|e| fatal(&self.path, e))?;
        let w = self.writer(st)?;
        let mut prepared = w.prepare_commit().map_err(|e| transient(&self.path, e))?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(|e| transient(&self.path, e))?;
        st.offsets = offsets;
        st.stale = true;
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The table part of a `_key`.
fn table_of(key: &str) -> &str {
    key.split(KEY_SEP).next().unwrap_or_default()
}

/// The sink.
pub struct TantivySink {
    cfg: TantivySinkConfig,
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for TantivySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivySink")
            .field("name", &self.cfg.name)
            .field("path", &self.cfg.path)
            .finish()
    }
}

impl TantivySink {
    /// A sink for `cfg` (the index is opened, or created, on first use).
    pub fn new(cfg: TantivySinkConfig) -> Self {
        Self { cfg, shared: None }
    }

    async fn shared(&mut self) -> Result<Arc<Shared>, SinkError> {
        if let Some(s) = &self.shared {
            return Ok(Arc::clone(s));
        }
        let (path, analyzer) = (self.cfg.path.clone(), self.cfg.analyzer);
        let s = tokio::task::spawn_blocking(move || Shared::open(&path, analyzer))
            .await
            .map_err(|e| SinkError::transient_from("search index worker", e))??;
        self.shared = Some(Arc::clone(&s));
        Ok(s)
    }
}

impl Sink for TantivySink {
    fn stored_offsets(&mut self) -> BoxFuture<'_, Result<Option<StoredOffsets>, SinkError>> {
        Box::pin(async move {
            let shared = self.shared().await?;
            let offsets = {
                let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                st.offsets.clone()
            };
            let mut out = Vec::new();
            for (tp, off) in offsets {
                if let Some((topic, p)) = tp.rsplit_once('/')
                    && let Ok(p) = p.parse()
                {
                    out.push((TopicPartition::new(topic, p), off));
                }
            }
            Ok(Some(out))
        })
    }

    fn apply<'a>(&'a mut self, batch: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let shared = self.shared().await?;
            // tantivy's work on the borrowed batch, off the async
            // workers' duty (no copy of the batch for spawn_blocking).
            let multi = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi {
                tokio::task::block_in_place(|| shared.apply(batch))?;
            } else {
                shared.apply(batch)?;
            }
            tracing::debug!(records = batch.len(), "committed to the search index");
            Ok(())
        })
    }

    fn reset_offsets<'a>(
        &'a mut self,
        offsets: &'a [(TopicPartition, u64)],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let shared = self.shared().await?;
            let offsets = offsets.to_vec();
            tokio::task::spawn_blocking(move || shared.reset_offsets(&offsets))
                .await
                .map_err(|e| SinkError::transient_from("search index worker", e))?
        })
    }
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// tantivy's score.
    pub score: f32,
    /// `schema.table`.
    pub table: String,
    /// The key columns' texts, joined by [`KEY_SEP`] (escaped as in
    /// `_key`).
    pub key: String,
    /// The row: column -> text (`null` for NULL).
    pub row: serde_json::Value,
}

impl Hit {
    /// `{"score": .., "table": .., "key": .., "row": {..}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "score": self.score,
            "table": self.table,
            "key": self.key,
            "row": self.row,
        })
    }
}

/// `ast` with every field name that is not one of the index's (`name`,
/// `a.b`) made a path in `row` (`row.name`): tantivy's parser does so
/// for terms and phrases, not for ranges and sets.
fn in_row(ast: UserInputAst, schema: &Schema) -> UserInputAst {
    let fix = |f: String| -> String {
        if schema.find_field(&f).is_some() {
            f
        } else {
            format!("row.{f}")
        }
    };
    match ast {
        UserInputAst::Clause(cs) => UserInputAst::Clause(
            cs.into_iter()
                .map(|(o, a)| (o, in_row(a, schema)))
                .collect(),
        ),
        UserInputAst::Boost(a, b) => UserInputAst::Boost(Box::new(in_row(*a, schema)), b),
        UserInputAst::Leaf(leaf) => UserInputAst::Leaf(Box::new(match *leaf {
            UserInputLeaf::Literal(mut l) => {
                l.field_name = l.field_name.map(fix);
                UserInputLeaf::Literal(l)
            }
            UserInputLeaf::Range {
                field,
                lower,
                upper,
            } => UserInputLeaf::Range {
                field: field.map(fix),
                lower,
                upper,
            },
            UserInputLeaf::Set { field, elements } => UserInputLeaf::Set {
                field: field.map(fix),
                elements,
            },
            UserInputLeaf::Exists { field } => UserInputLeaf::Exists { field: fix(field) },
            UserInputLeaf::Regex { field, pattern } => UserInputLeaf::Regex {
                field: field.map(fix),
                pattern,
            },
            other => other,
        })),
    }
}

/// How many rows the index at `dir` holds (as of its last commit).
pub fn num_docs(dir: &Path) -> Result<u64, SearchError> {
    if !dir.join("meta.json").is_file() {
        return Err(SearchError::NotAnIndex(dir.to_path_buf()));
    }
    let err = |e: tantivy::TantivyError| SearchError::Index {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let index = Index::open_in_dir(dir).map_err(err)?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(err)?;
    Ok(reader.searcher().num_docs())
}

/// Most hits one search returns.
pub const MAX_HITS: usize = 1_000_000;

/// Runs `query` (tantivy's syntax, `row` the default field; `*` matches
/// every row) on the index at `dir`: the best `limit` hits (at most
/// [`MAX_HITS`]). The index may be written meanwhile, by this process or
/// another: a segment merged away between reading the index's metadata
/// and opening it is retried.
pub fn search(dir: &Path, query: &str, limit: usize) -> Result<Vec<Hit>, SearchError> {
    let mut tries = 0;
    loop {
        match search_once(dir, query, limit.clamp(1, MAX_HITS)) {
            Err(SearchError::Index { .. }) if tries < 3 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn search_once(dir: &Path, query: &str, limit: usize) -> Result<Vec<Hit>, SearchError> {
    let err = |e: tantivy::TantivyError| SearchError::Index {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    if !dir.join("meta.json").is_file() {
        return Err(SearchError::NotAnIndex(dir.to_path_buf()));
    }
    let index = Index::open_in_dir(dir).map_err(err)?;
    let fields =
        Fields::of(&index.schema()).ok_or_else(|| SearchError::NotAnIndex(dir.to_path_buf()))?;
    let q: Box<dyn Query> = if query.trim() == "*" {
        Box::new(AllQuery)
    } else {
        let ast = tantivy::query_grammar::parse_query(query)
            .map_err(|_| SearchError::Query(format!("syntax error in {query:?}")))?;
        let schema = index.schema();
        QueryParser::for_index(&index, vec![fields.text])
            .build_query_from_user_input_ast(in_row(ast, &schema))
            .map_err(|e| SearchError::Query(e.to_string()))?
    };
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(err)?;
    let searcher = reader.searcher();
    let top = searcher
        .search(&*q, &TopDocs::with_limit(limit).order_by_score())
        .map_err(err)?;
    let mut hits = Vec::with_capacity(top.len());
    for (score, addr) in top {
        let doc: TantivyDocument = searcher.doc(addr).map_err(err)?;
        let text = |f: Field| {
            doc.get_first(f)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let table = text(fields.table);
        let key = text(fields.key);
        let key = key
            .strip_prefix(&table)
            .and_then(|k| k.strip_prefix(KEY_SEP))
            .unwrap_or(&key)
            .to_string();
        let row = serde_json::from_str(&text(fields.doc)).unwrap_or(serde_json::Value::Null);
        hits.push(Hit {
            score,
            table,
            key,
            row,
        });
    }
    Ok(hits)
}

#[cfg(test)]
mod tests;
