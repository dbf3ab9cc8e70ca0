//! Per-table fault isolation, kept by the engine for every source: what
//! a source does with a table it cannot capture (`on_error`), the tables
//! it set aside (`quarantine`), and the requests to take one back.
//!
//! A quarantined table's later changes are not captured; every other
//! table keeps flowing and the source's position keeps moving. The list
//! lives in `quarantine.json` in the source's state directory, written
//! durably. `tributary tables resume` writes `resume.json` beside it (only
//! the hub writes that file, only the source reads and removes it, so the
//! two never race on one file) and restarts the source, which forgets
//! the table's snapshot record: the table is read again at a new point,
//! as a table added to the configuration is.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ledger::write_durably;

/// What a source does with a table it cannot capture: a value it cannot
/// represent, a schema change the registry refuses, a table whose shape
/// it cannot read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnError {
    /// The source stops in state `failed`; nothing after the failing
    /// change is acknowledged.
    #[default]
    Stop,
    /// Only that table stops: its later changes are not captured until
    /// it is resumed; every other table keeps flowing.
    Quarantine,
    /// Each row that cannot be captured is written, as text with its
    /// table, position and the error, to the source's dead-letter topic
    /// (`<source>.dlq`), and capture goes on.
    Dlq,
}

impl OnError {
    /// Parses `stop`, `quarantine` or `dlq`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "stop" => Self::Stop,
            "quarantine" => Self::Quarantine,
            "dlq" => Self::Dlq,
            _ => return None,
        })
    }
}

/// Why the quarantine list could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// Reading or writing a file failed.
    #[error("quarantine list {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds something else.
    #[error("quarantine list {path} cannot be read: {source}")]
    Corrupt {
        /// The file.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// A table set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// Schema (PostgreSQL) or database (MySQL).
    pub schema: String,
    /// Table.
    pub table: String,
    /// Why (the error, with the column where one is to blame).
    pub reason: String,
    /// The source position of the change that could not be captured;
    /// the table's changes from there on are not captured.
    pub position: String,
    /// When, in milliseconds since the epoch.
    pub since_ms: i64,
}

impl Quarantined {
    /// `schema.table`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

#[derive(Serialize, Deserialize, Default)]
struct ListFile {
    tables: Vec<Quarantined>,
}

#[derive(Serialize, Deserialize, Default)]
struct ResumeFile {
    /// `schema.table` names.
    tables: Vec<String>,
}

/// The file of quarantined tables in a source's state directory.
pub const LIST_FILE: &str = "quarantine.json";
/// The file of resume requests beside it.
pub const RESUME_FILE: &str = "resume.json";
/// Requests moved away from [`RESUME_FILE`], on their way in.
const RESUME_MOVED: &str = "resume.moved.json";
/// Requests a source is taking (recorded what to read again, not yet
/// off the list).
const RESUME_TAKING: &str = "resume.taking.json";

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, QuarantineError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| QuarantineError::Corrupt {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(QuarantineError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), QuarantineError> {
    let body = serde_json::to_vec_pretty(v).map_err(|source| QuarantineError::Corrupt {
        path: path.display().to_string(),
        source,
    })?;
    write_durably(path, &body).map_err(|source| QuarantineError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A source's quarantined tables.
#[derive(Debug, Clone)]
pub struct Quarantine {
    dir: PathBuf,
    tables: Vec<Quarantined>,
}

impl Quarantine {
    /// The list stored in the state directory `dir` (empty when none).
    pub fn load(dir: &Path) -> Result<Self, QuarantineError> {
        let file: ListFile = read_json(&dir.join(LIST_FILE))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tables: file.tables,
        })
    }

    /// An empty list for `dir`, not read yet.
    pub fn empty(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            tables: Vec::new(),
        }
    }

    /// The list stored in `dir` (what status shows); empty when it
    /// cannot be read.
    pub fn listed(dir: &Path) -> Vec<Quarantined> {
        Self::load(dir).map(|q| q.tables).unwrap_or_default()
    }

    /// The tables set aside, in the order they were.
    pub fn tables(&self) -> &[Quarantined] {
        &self.tables
    }

    /// Whether `schema.table` is set aside.
    pub fn contains(&self, schema: &str, table: &str) -> bool {
        self.tables
            .iter()
            .any(|t| t.schema == schema && t.table == table)
    }

    /// Sets `schema.table` of source `source` aside for `reason` at source
    /// position `position`: logs it (with the command that takes it
    /// back) and stores the list.
    pub fn set_aside(
        &mut self,
        source: &str,
        schema: &str,
        table: &str,
        reason: &dyn std::fmt::Display,
        position: String,
    ) -> Result<(), QuarantineError> {
        tracing::error!(
            source,
            table = %format!("{schema}.{table}"),
            %position,
            error = %reason,
            "table quarantined: its changes are not captured until `tributary tables resume {source} {schema}.{table}`"
        );
        self.add(Quarantined {
            schema: schema.to_string(),
            table: table.to_string(),
            reason: reason.to_string(),
            position,
            since_ms: tributary_log::now_ms(),
        })
    }

    /// Sets `q`'s table aside and stores the list.
    pub fn add(&mut self, q: Quarantined) -> Result<(), QuarantineError> {
        self.tables
            .retain(|t| !(t.schema == q.schema && t.table == q.table));
        self.tables.push(q);
        self.save()
    }

    /// The tables asked back (`tributary tables resume`) and still set
    /// aside: what [`take`](Self::take) then takes. The requests move
    /// from `resume.json` (which the hub may be writing again) to
    /// `resume.taking.json` by a rename, so a request made meanwhile
    /// stays for the next start. A source records what it must read
    /// again before it takes the tables, so a crash in between loses no
    /// request.
    pub fn resume_requested(&self) -> Result<Vec<Quarantined>, QuarantineError> {
        let asked = self.dir.join(RESUME_FILE);
        let moved = self.dir.join(RESUME_MOVED);
        let taking = self.dir.join(RESUME_TAKING);
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| QuarantineError::Io { path, source }
        };
        match std::fs::rename(&asked, &moved) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&asked)(e)),
        }
        let mut names: ResumeFile = read_json(&taking)?;
        let new: ResumeFile = read_json(&moved)?;
        if !new.tables.is_empty() {
            for t in new.tables {
                if !names.tables.contains(&t) {
                    names.tables.push(t);
                }
            }
            write_json(&taking, &names)?;
        }
        remove_if_there(&moved).map_err(io(&moved))?;
        Ok(self
            .tables
            .iter()
            .filter(|t| names.tables.contains(&t.name()))
            .cloned()
            .collect())
    }

    /// Takes `back` (from [`resume_requested`](Self::resume_requested))
    /// off the list, stored, and ends those requests.
    pub fn take(&mut self, back: &[Quarantined]) -> Result<(), QuarantineError> {
        if !back.is_empty() {
            self.tables
                .retain(|t| !back.iter().any(|b| b.name() == t.name()));
            self.save()?;
        }
        let taking = self.dir.join(RESUME_TAKING);
        remove_if_there(&taking).map_err(|source| QuarantineError::Io {
            path: taking.display().to_string(),
            source,
        })
    }

    /// [`resume_requested`](Self::resume_requested), then
    /// [`take`](Self::take): the tables taken back.
    pub fn take_resumed(&mut self) -> Result<Vec<Quarantined>, QuarantineError> {
        let back = self.resume_requested()?;
        self.take(&back)?;
        Ok(back)
    }

    fn save(&self) -> Result<(), QuarantineError> {
        write_json(
            &self.dir.join(LIST_FILE),
            &ListFile {
                tables: self.tables.clone(),
            },
        )
    }
}

/// Asks the source whose state directory is `dir` to take `table`
/// (`schema.table`) back at its next start. `Ok(false)` when the table is
/// not quarantined.
pub fn request_resume(dir: &Path, table: &str) -> Result<bool, QuarantineError> {
    let list = Quarantine::load(dir)?;
    if !list.tables.iter().any(|t| t.name() == table) {
        return Ok(false);
    }
    let path = dir.join(RESUME_FILE);
    let mut asked: ResumeFile = read_json(&path)?;
    if !asked.tables.iter().any(|t| t == table) {
        asked.tables.push(table.to_string());
    }
    write_json(&path, &asked)?;
    Ok(true)
}

/// A row a source could not capture, for its dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// `schema.table`.
    pub table: String,
    /// The source position of its transaction.
    pub position: String,
    /// Why it could not be captured.
    pub error: String,
    /// `c`, `u` or `d`.
    pub op: &'static str,
    /// The old row (or key), as the source gave it: column -> text.
    pub before: Option<serde_json::Value>,
    /// The new row, as the source gave it: column -> text.
    pub after: Option<serde_json::Value>,
    /// Where the source cannot decode the row at all (MySQL: a table
    /// whose shape it could not follow), the source's bytes as hex (a
    /// MySQL rows event: every row of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_hex: Option<String>,
}

/// Why a dead letter could not be written.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter topic {topic}: {source}")]
pub struct DeadLetterError {
    /// The topic.
    pub topic: String,
    /// The log's error.
    #[source]
    pub source: tributary_log::LogError,
}

/// The dead-letter topic of source `name`.
pub fn dlq_topic(name: &str) -> String {
    format!("{name}.dlq")
}

/// Appends `letter` to source `name`'s dead-letter topic (created with
/// one partition when missing), durably, before returning: the value is
/// the letter as JSON, the headers `tributary.error`, `tributary.table`
/// and `tributary.position` repeat what it holds.
pub fn dead_letter(
    log: &tributary_log::Log,
    name: &str,
    letter: &DeadLetter,
) -> Result<(), DeadLetterError> {
    use tributary_log::{BatchBuilder, RecordIn, TopicConfig};
    let topic = dlq_topic(name);
    let err = |source| DeadLetterError {
        topic: topic.clone(),
        source,
    };
    let t = match log.topic(&topic) {
        Ok(t) => t,
        Err(_) => log
            .create_topic(
                &topic,
                TopicConfig {
                    partitions: 1,
                    ..TopicConfig::default()
                },
            )
            .map_err(err)?,
    };
    // A JSON value of strings cannot fail to serialise.
    let value = serde_json::to_vec(letter).unwrap_or_default();
    let headers = [
        ("tributary.error", Some(letter.error.as_bytes())),
        ("tributary.table", Some(letter.table.as_bytes())),
        ("tributary.position", Some(letter.position.as_bytes())),
    ];
    let mut b = BatchBuilder::new();
    b.push(RecordIn {
        timestamp: tributary_log::now_ms(),
        key: Some(letter.table.as_bytes()),
        value: Some(&value),
        headers: &headers,
    });
    let p = t.partition(0).map_err(err)?;
    p.append(b).map_err(err)?;
    p.flush().map_err(err)
}

/// Where source `name` keeps its state under the log's directory
/// `log_dir` (what [`Engine::state_dir`](crate::Engine::state_dir) gives).
pub fn state_dir(log_dir: &Path, name: &str) -> PathBuf {
    log_dir.join("sources").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(table: &str) -> Quarantined {
        Quarantined {
            schema: "public".into(),
            table: table.into(),
            reason: "refused".into(),
            position: "0/16B3748".into(),
            since_ms: 1,
        }
    }

    #[test]
    fn a_table_set_aside_stays_so_until_resumed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut list = Quarantine::load(dir.path()).expect("load");
        assert!(list.tables().is_empty());
        list.add(q("a")).expect("add a");
        list.add(q("b")).expect("add b");
        let again = Quarantine::load(dir.path()).expect("reload");
        assert!(again.contains("public", "a") && again.contains("public", "b"));
        assert!(!request_resume(dir.path(), "public.c").expect("not listed"));
        assert!(request_resume(dir.path(), "public.a").expect("listed"));
        assert!(request_resume(dir.path(), "public.a").expect("twice"));
        let mut again = again;
        let asked = again.resume_requested().expect("asked");
        assert_eq!(asked, vec![q("a")]);
        // A request made while a source takes the others waits for the
        // next start.
        assert!(request_resume(dir.path(), "public.b").expect("listed"));
        again.take(&asked).expect("take");
        assert_eq!(again.take_resumed().expect("b now"), vec![q("b")]);
        assert!(again.take_resumed().expect("none left").is_empty());
        let stored = Quarantine::load(dir.path()).expect("reload");
        assert!(stored.tables().is_empty());
    }

    #[test]
    fn a_corrupt_list_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LIST_FILE), b"[").expect("write");
        let err = Quarantine::load(dir.path()).expect_err("corrupt");
        assert!(err.to_string().contains(LIST_FILE), "{err}");
    }
}
