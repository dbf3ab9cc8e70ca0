//! Tables taken back from quarantine (`tributary tables resume`), read
//! again at a later point than the one the stream resumes from.
//!
//! A resumed table is read inside a consistent snapshot at binlog
//! position `as_of`, after a truncate of its topic (a barrier in every
//! partition), so consumers drop what it held, rows deleted while it was
//! set aside included. The stream then goes on from the stored position,
//! which is earlier: it skips the table's rows and DDL before `as_of`
//! (the read holds them) and, on reaching `as_of`, decodes the table with
//! the definition read there, recorded in the schema history at that
//! position.
//!
//! The list lives in `rereads.json` in the source's state directory,
//! written durably: a table is listed (without `as_of`) before it leaves
//! the quarantine list, so a crash during the read reads it again; it
//! gets `as_of` once its rows are durable, and leaves the list once the
//! stream passed `as_of`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ddl::TableDef;
use crate::history::{def_from, def_json};
use crate::position::BinlogPosition;

/// The file in the source's state directory.
pub const FILE: &str = "rereads.json";

/// One table read again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reread {
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// The read's binlog position, once its rows are durable.
    pub as_of: Option<BinlogPosition>,
    /// The table's definition there (the history's JSON form).
    #[serde(default)]
    pub def: Option<serde_json::Value>,
    /// This session's stream reached `as_of` and took the definition.
    /// The entry stays listed until a session starts past `as_of`: a
    /// restart from before it skips the table's changes again.
    #[serde(skip)]
    pub installed: bool,
}

impl Reread {
    /// The definition read, if it was.
    pub fn def(&self) -> Option<TableDef> {
        self.def.as_ref().and_then(def_from)
    }

    /// Whether the stream skips this table's changes of a transaction
    /// starting at `at` (binlog file number, offset): those before the
    /// read's position (or all, while it is not read yet).
    pub fn skips(&self, at: (u32, u64)) -> bool {
        self.as_of.as_ref().is_none_or(|q| at < q.order_key())
    }
}

/// The tables being read again, stored in a source's state directory.
#[derive(Debug, Clone, Default)]
pub struct Rereads {
    path: PathBuf,
    /// The tables, in the order they were resumed.
    pub tables: Vec<Reread>,
}

#[derive(Serialize, Deserialize, Default)]
struct RereadFile {
    tables: Vec<Reread>,
}

impl Rereads {
    /// The list stored in `dir` (empty when there is none).
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(FILE);
        let tables = match std::fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice::<RereadFile>(&b)
                    .map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: {e}", path.display()),
                        )
                    })?
                    .tables
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Self { path, tables })
    }

    /// Where the list is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether no table is being read again.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The entry of `db.table`.
    pub fn get(&self, db: &str, table: &str) -> Option<&Reread> {
        self.tables.iter().find(|r| r.db == db && r.table == table)
    }

    /// Lists `db.table` as to be read (again from the start when it was
    /// listed) and stores the list.
    pub fn add(&mut self, db: &str, table: &str) -> std::io::Result<()> {
        self.tables.retain(|r| !(r.db == db && r.table == table));
        self.tables.push(Reread {
            db: db.to_string(),
            table: table.to_string(),
            as_of: None,
            def: None,
            installed: false,
        });
        self.save()
    }

    /// Records `db.table` as read at `as_of` with definition `def`.
    pub fn read(
        &mut self,
        db: &str,
        table: &str,
        as_of: BinlogPosition,
        def: &TableDef,
    ) -> std::io::Result<()> {
        for r in &mut self.tables {
            if r.db == db && r.table == table {
                r.as_of = Some(as_of.clone());
                r.def = Some(def_json(def));
            }
        }
        self.save()
    }

    /// Removes `db.table` and stores the list.
    pub fn remove(&mut self, db: &str, table: &str) -> std::io::Result<()> {
        self.tables.retain(|r| !(r.db == db && r.table == table));
        self.save()
    }

    /// Forgets every table (a new snapshot reads them all) and stores
    /// that.
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.tables.clear();
        self.save()
    }

    /// Drops the tables whose read the stream starting at `start` is
    /// past (their definition is in the history since the stream passed
    /// their position); stores the list when that changed.
    pub fn passed(&mut self, start: &BinlogPosition) -> std::io::Result<()> {
        let before = self.tables.len();
        self.tables.retain(|r| {
            r.as_of
                .as_ref()
                .is_none_or(|q| start.order_key() <= q.order_key())
        });
        if self.tables.len() != before {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> std::io::Result<()> {
        if self.tables.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let body = serde_json::to_vec_pretty(&RereadFile {
            tables: self.tables.clone(),
        })
        .map_err(std::io::Error::other)?;
        tributary_capture::write_durably(&self.path, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::parse_create_table;

    fn at(file: &str, pos: u64) -> BinlogPosition {
        BinlogPosition {
            file: file.into(),
            pos,
            gtid: String::new(),
        }
    }

    #[test]
    fn a_table_read_again_is_skipped_until_its_position_and_kept_until_passed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut list = Rereads::load(dir.path()).expect("load");
        list.add("db", "a").expect("add");
        assert!(list.get("db", "a").is_some_and(|r| r.skips((9, 9))));
        let def = parse_create_table("CREATE TABLE a (id INT PRIMARY KEY, v INT)").expect("def");
        list.read("db", "a", at("bin.000002", 500), &def)
            .expect("read");
        let again = Rereads::load(dir.path()).expect("reload");
        let r = again.get("db", "a").expect("listed");
        assert_eq!(r.def(), Some(def));
        assert!(r.skips((2, 499)) && r.skips((1, 9000)));
        assert!(!r.skips((2, 500)) && !r.skips((3, 4)));
        let mut again = again;
        again.passed(&at("bin.000002", 500)).expect("not passed");
        assert!(!again.is_empty());
        again.passed(&at("bin.000002", 501)).expect("passed");
        assert!(again.is_empty());
        assert!(Rereads::load(dir.path()).expect("reload").is_empty());
    }
}
