//! Temporary stand-in for ddl.rs while it is written.
#![allow(missing_docs, dead_code, clippy::all)]
use std::collections::BTreeMap;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef { pub name: String, pub base: String, pub args: Vec<String>, pub unsigned: bool, pub nullable: bool, pub charset: Option<String> }
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef { pub name: String, pub columns: Vec<ColumnDef>, pub primary_key: Vec<String> }
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change { Created { db: String, table: String }, Dropped { db: String, table: String }, Renamed { from: (String, String), to: (String, String) }, Altered { db: String, table: String }, Truncated { db: String, table: String } }
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DdlError {
    #[error("table {db}.{table}: cannot parse DDL at byte {at} ({reason}): {statement}")]
    Unparseable { db: String, table: String, at: usize, reason: String, statement: String },
    #[error("table {db}.{table}: {reason}: {statement}")]
    Inconsistent { db: String, table: String, reason: String, statement: String },
}
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaModel { t: BTreeMap<(String, String), TableDef> }
impl SchemaModel {
    pub fn new() -> Self { Self::default() }
    pub fn table(&self, db: &str, table: &str) -> Option<&TableDef> { self.t.get(&(db.to_string(), table.to_string())) }
    pub fn tables(&self) -> impl Iterator<Item = (&str, &str, &TableDef)> { self.t.iter().map(|((d, t), v)| (d.as_str(), t.as_str(), v)) }
    pub fn insert(&mut self, db: &str, def: TableDef) { self.t.insert((db.to_string(), def.name.clone()), def); }
    pub fn remove(&mut self, db: &str, table: &str) -> Option<TableDef> { self.t.remove(&(db.to_string(), table.to_string())) }
    pub fn apply(&mut self, _default_db: &str, _sql: &str) -> Result<Vec<Change>, DdlError> { Ok(vec![]) }
}
pub fn parse_create_table(_sql: &str) -> Result<TableDef, DdlError> { Err(DdlError::Inconsistent{db:String::new(),table:String::new(),reason:String::new(),statement:String::new()}) }
