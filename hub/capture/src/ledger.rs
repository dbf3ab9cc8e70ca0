//! Per-table snapshot bookkeeping, kept by the engine for every source:
//! which tables a snapshot read, as of which source position, and how
//! many rows. A table is recorded only after its rows are durable in
//! the log, in a file written durably, so a restart never reads a table
//! twice nor skips one whose rows could be lost.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tributary_log::Log;

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Reading or writing the file failed.
    #[error("snapshot ledger {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds something else than a ledger.
    #[error("snapshot ledger {path} cannot be read: {source}")]
    Corrupt {
        /// The file.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The table's rows could not be made durable first.
    #[error("flushing the log before recording table {table} as read: {source}")]
    Flush {
        /// `schema.table`.
        table: String,
        /// The log's error.
        #[source]
        source: tributary_log::LogError,
    },
}

/// One table fully read by a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRead<P> {
    /// Schema (PostgreSQL) or database (MySQL).
    pub schema: String,
    /// Table.
    pub table: String,
    /// The snapshot's consistent point: changes committed before it are
    /// in the table's snapshot rows.
    pub as_of: P,
    /// Rows read.
    pub rows: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "P: Serialize + DeserializeOwned")]
struct LedgerFile<P> {
    tables: Vec<TableRead<P>>,
}

/// The tables a source's snapshots read, stored at one path.
#[derive(Debug, Clone)]
pub struct SnapshotLedger<P> {
    path: PathBuf,
    log: Log,
    tables: Vec<TableRead<P>>,
}

impl<P: Clone + Serialize + DeserializeOwned> SnapshotLedger<P> {
    /// The ledger stored at `path` (empty when there is none), recording
    /// tables whose rows `log` holds.
    pub fn load(path: PathBuf, log: Log) -> Result<Self, LedgerError> {
        let tables = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<LedgerFile<P>>(&bytes)
                    .map_err(|source| LedgerError::Corrupt {
                        path: path.display().to_string(),
                        source,
                    })?
                    .tables
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(LedgerError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Ok(Self { path, log, tables })
    }

    /// An empty ledger for `path`, not stored yet (a source's state
    /// before its first session [`load`](Self::load)s the stored one).
    pub fn empty(path: PathBuf, log: Log) -> Self {
        Self {
            path,
            log,
            tables: Vec::new(),
        }
    }

    /// Where the ledger is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tables read, in the order they finished.
    pub fn tables(&self) -> &[TableRead<P>] {
        &self.tables
    }

    /// Whether no table was read.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The record of `schema.table`, if a snapshot read it.
    pub fn get(&self, schema: &str, table: &str) -> Option<&TableRead<P>> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.table == table)
    }

    /// Records `schema.table` as read at `as_of` with `rows` rows, after
    /// making every record appended so far durable, and stores the
    /// ledger. A table read again replaces its old record.
    pub fn table_read(
        &mut self,
        schema: &str,
        table: &str,
        as_of: P,
        rows: u64,
    ) -> Result<(), LedgerError> {
        self.log.flush().map_err(|source| LedgerError::Flush {
            table: format!("{schema}.{table}"),
            source,
        })?;
        self.tables
            .retain(|t| !(t.schema == schema && t.table == table));
        self.tables.push(TableRead {
            schema: schema.to_string(),
            table: table.to_string(),
            as_of,
            rows,
        });
        self.save()
    }

    /// Forgets `schema.table` (the next start reads it again, as a table
    /// added to the configuration) and stores that; whether it was there.
    pub fn forget(&mut self, schema: &str, table: &str) -> Result<bool, LedgerError> {
        let before = self.tables.len();
        self.tables
            .retain(|t| !(t.schema == schema && t.table == table));
        if self.tables.len() == before {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    /// Forgets every table (a new snapshot starts over) and stores that.
    pub fn clear(&mut self) -> Result<(), LedgerError> {
        self.tables.clear();
        self.save()
    }

    fn save(&self) -> Result<(), LedgerError> {
        let file = LedgerFile {
            tables: self.tables.clone(),
        };
        let body = serde_json::to_vec_pretty(&file).map_err(|source| LedgerError::Corrupt {
            path: self.path.display().to_string(),
            source,
        })?;
        write_durably(&self.path, &body).map_err(|source| LedgerError::Io {
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// Writes `body` to `path` so that a crash leaves either the old file or
/// the new one: a temporary file, fsync, rename, fsync the directory.
pub fn write_durably(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, body)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_table_reads_back_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path().join("log")).expect("log");
        let path = dir.path().join("sources/s/snapshot.json");
        let mut ledger = SnapshotLedger::<u64>::load(path.clone(), log.clone()).expect("load");
        assert!(ledger.is_empty());
        ledger.table_read("public", "a", 7, 3).expect("record a");
        ledger.table_read("public", "b", 7, 0).expect("record b");
        ledger
            .table_read("public", "a", 9, 4)
            .expect("record a again");
        let again = SnapshotLedger::<u64>::load(path.clone(), log.clone()).expect("reload");
        assert_eq!(
            again.get("public", "a").map(|t| (t.as_of, t.rows)),
            Some((9, 4))
        );
        assert_eq!(again.get("public", "b").map(|t| t.as_of), Some(7));
        assert!(again.get("public", "c").is_none());
        assert_eq!(again.tables().len(), 2);
        let mut again = again;
        again.clear().expect("clear");
        assert!(
            SnapshotLedger::<u64>::load(path, log)
                .expect("reload")
                .is_empty()
        );
    }

    #[test]
    fn a_corrupt_ledger_names_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path().join("log")).expect("log");
        let path = dir.path().join("snapshot.json");
        std::fs::write(&path, b"{not json").expect("write");
        let err = SnapshotLedger::<u64>::load(path.clone(), log).expect_err("corrupt");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
