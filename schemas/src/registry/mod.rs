//! The schema registry: subjects, versions, global ids and compatibility.
//!
//! Stored in sled rather than in a compacted log topic: the registry is
//! small, read by id and by subject/version at random, and must answer
//! right after start without replaying a topic; sled is already how the
//! hub keeps consumer offsets, and every write is flushed before the call
//! returns, so a registered schema survives a crash.
//!
//! Trees: `schemas` (id u32 BE -> schema JSON), `ids` (normalised schema
//! JSON -> id), `versions` (subject \0 version u32 BE -> {id, deleted}),
//! `config` (subject, or "" for the global default -> level).

pub mod http;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use apache_avro::schema_compatibility::SchemaCompatibility;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Compatibility levels, as Confluent names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// New schema reads data written with the latest.
    Backward,
    /// New schema reads data written with every version.
    BackwardTransitive,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Every version reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every version.
    FullTransitive,
    /// No check.
    None,
}

impl Compatibility {
    /// Confluent's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
            Compatibility::None => "NONE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compatibility {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "BACKWARD" => Compatibility::Backward,
            "BACKWARD_TRANSITIVE" => Compatibility::BackwardTransitive,
            "FORWARD" => Compatibility::Forward,
            "FORWARD_TRANSITIVE" => Compatibility::ForwardTransitive,
            "FULL" => Compatibility::Full,
            "FULL_TRANSITIVE" => Compatibility::FullTransitive,
            "NONE" => Compatibility::None,
            other => return Err(RegistryError::InvalidCompatibility(other.to_string())),
        })
    }
}

/// Errors of the registry; each maps to a Confluent error code.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402.
    #[error("Version {version} not found.")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The version asked for.
        version: String,
    },
    /// 40403.
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    /// 40404.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 42201 (as Confluent answers for a subject it cannot store).
    #[error("Invalid subject {0:?}: control characters are not allowed")]
    InvalidSubject(String),
    /// 40406.
    #[error(
        "Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted {
        /// Subject.
        subject: String,
        /// Version.
        version: u32,
    },
    /// 40407.
    #[error(
        "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
    )]
    VersionNotSoftDeleted {
        /// Subject.
        subject: String,
        /// Version.
        version: u32,
    },
    /// 409.
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{level}: {details}]"
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// The rule that failed.
        level: Compatibility,
        /// Which version and field, and why.
        details: String,
    },
    /// 42201.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// 42202.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// 42203.
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive (got {0:?})"
    )]
    InvalidCompatibility(String),
    /// 50001.
    #[error("Error in the backend data store: {0}")]
    Storage(#[from] sled::Error),
    /// 50001: a stored entry that does not parse.
    #[error("Error in the backend data store: malformed entry {0}")]
    Corrupt(String),
}

impl RegistryError {
    /// Confluent's `error_code`.
    pub fn code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_) | RegistryError::InvalidSubject(_) => 42201,
            RegistryError::VersionSoftDeleted { .. } => 40406,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibility(_) => 42203,
            RegistryError::Storage(_) | RegistryError::Corrupt(_) => 50001,
        }
    }
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A version selector: a number or `latest` (Confluent also takes -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSel {
    /// The newest non-deleted version.
    Latest,
    /// A number.
    Number(u32),
}

impl FromStr for VersionSel {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            s if s.trim().eq_ignore_ascii_case("latest") || s.trim() == "-1" => {
                Ok(VersionSel::Latest)
            }
            n => match n.parse::<u32>() {
                Ok(v) if v >= 1 && v <= i32::MAX as u32 => Ok(VersionSel::Number(v)),
                _ => Err(RegistryError::InvalidVersion(s.to_string())),
            },
        }
    }
}

/// One registered version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    /// The subject.
    pub subject: String,
    /// Version number, from 1.
    pub version: u32,
    /// Global schema id.
    pub id: u32,
    /// The schema, as JSON text.
    pub schema: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct VersionEntry {
    id: u32,
    deleted: bool,
}

/// The registry.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: std::sync::Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    schemas: sled::Tree,
    ids: sled::Tree,
    versions: sled::Tree,
    config: sled::Tree,
    write: Mutex<()>,
    default_level: Compatibility,
}

/// Parses and normalises a schema: the JSON with object keys sorted and
/// no whitespace (two texts that differ only in key order or spacing are
/// the same schema), and apache-avro's parse of it.
pub fn normalise(schema: &str) -> Result<(String, apache_avro::Schema)> {
    let json: serde_json::Value = serde_json::from_str(schema)
        .map_err(|e| RegistryError::InvalidSchema(format!("not JSON: {e}")))?;
    let parsed = apache_avro::Schema::parse(&json)
        .map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let text =
        serde_json::to_string(&json).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok((text, parsed))
}

fn version_key(subject: &str, version: u32) -> Vec<u8> {
    let mut k = subject.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn subject_prefix(subject: &str) -> Vec<u8> {
    let mut k = subject.as_bytes().to_vec();
    k.push(0);
    k
}

/// Why `reader` cannot read everything `writer` wrote, if it cannot.
/// apache-avro answers `Partial` when only some union branches or enum
/// symbols resolve; Avro's Java implementation (and so Confluent) calls
/// that incompatible, and so do we.
///
/// Named types used a second time are references (`"io.tributary.Unavailable"`),
/// and which use is the definition moves when a column is dropped;
/// apache-avro's checker does not follow references, so both schemas are
/// checked with their references replaced by what they name.
fn incompatibility(writer: &apache_avro::Schema, reader: &apache_avro::Schema) -> Option<String> {
    let (writer, reader) = (inline_refs(writer), inline_refs(reader));
    match SchemaCompatibility::can_read(&writer, &reader) {
        Ok(apache_avro::schema_compatibility::Compatibility::Full) => None,
        Ok(_) => Some(
            "only part of what the writer schema allows can be read (a union branch or enum symbol of the writer has no match in the reader)".into(),
        ),
        Err(e) => Some(compat_error(&e)),
    }
}

/// `schema` with every reference to a named type replaced by the type
/// itself, except inside that type (a recursive type keeps its reference).
fn inline_refs(schema: &apache_avro::Schema) -> apache_avro::Schema {
    let Ok(resolved) = apache_avro::schema::ResolvedSchema::try_from(schema) else {
        return schema.clone();
    };
    let names: HashMap<apache_avro::schema::Name, apache_avro::Schema> = resolved
        .get_names()
        .iter()
        .map(|(n, s)| (n.clone(), (*s).clone()))
        .collect();
    expand(schema, &names, &mut Vec::new())
}

fn expand(
    schema: &apache_avro::Schema,
    names: &HashMap<apache_avro::schema::Name, apache_avro::Schema>,
    open: &mut Vec<apache_avro::schema::Name>,
) -> apache_avro::Schema {
    use apache_avro::Schema;
    use apache_avro::schema::{ArraySchema, MapSchema, UnionSchema};
    match schema {
        Schema::Ref { name } if !open.contains(name) => match names.get(name) {
            Some(named) => expand(named, names, open),
            None => schema.clone(),
        },
        Schema::Record(r) => {
            open.push(r.name.clone());
            let mut r = r.clone();
            for f in &mut r.fields {
                f.schema = expand(&f.schema, names, open);
            }
            open.pop();
            Schema::Record(r)
        }
        Schema::Union(u) => {
            let variants = u
                .variants()
                .iter()
                .map(|v| expand(v, names, open))
                .collect();
            UnionSchema::new(variants).map_or_else(|_| schema.clone(), Schema::Union)
        }
        Schema::Array(a) => Schema::Array(ArraySchema {
            items: Box::new(expand(&a.items, names, open)),
            attributes: a.attributes.clone(),
        }),
        Schema::Map(m) => Schema::Map(MapSchema {
            types: Box::new(expand(&m.types, names, open)),
            attributes: m.attributes.clone(),
        }),
        other => other.clone(),
    }
}

fn compat_error(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

impl Registry {
    /// Opens (or creates) the registry in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let db = sled::open(dir.as_ref())?;
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                schemas: db.open_tree("schemas")?,
                ids: db.open_tree("ids")?,
                versions: db.open_tree("versions")?,
                config: db.open_tree("config")?,
                db,
                write: Mutex::new(()),
                default_level: Compatibility::Backward,
            }),
        })
    }

    fn entries(&self, subject: &str) -> Result<Vec<(u32, VersionEntry)>> {
        // The key is `subject \0 version`: a subject holding \0 would see
        // another subject's versions under its prefix.
        if subject.chars().any(char::is_control) {
            return Err(RegistryError::InvalidSubject(subject.into()));
        }
        let mut out = Vec::new();
        for item in self.inner.versions.scan_prefix(subject_prefix(subject)) {
            let (k, v) = item?;
            let ver: [u8; 4] = k[k.len() - 4..]
                .try_into()
                .map_err(|_| RegistryError::Corrupt("version key".into()))?;
            let entry: VersionEntry = serde_json::from_slice(&v)
                .map_err(|_| RegistryError::Corrupt(format!("version of {subject}")))?;
            out.push((u32::from_be_bytes(ver), entry));
        }
        Ok(out)
    }

    fn live(&self, subject: &str) -> Result<Vec<(u32, u32)>> {
        Ok(self
            .entries(subject)?
            .into_iter()
            .filter(|(_, e)| !e.deleted)
            .map(|(v, e)| (v, e.id))
            .collect())
    }

    /// The schema text of a global id.
    pub fn schema_by_id(&self, id: u32) -> Result<String> {
        let v = self
            .inner
            .schemas
            .get(id.to_be_bytes())?
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))?;
        String::from_utf8(v.to_vec()).map_err(|_| RegistryError::Corrupt(format!("schema {id}")))
    }

    fn parsed(&self, id: u32) -> Result<apache_avro::Schema> {
        let text = self.schema_by_id(id)?;
        apache_avro::Schema::parse_str(&text)
            .map_err(|_| RegistryError::Corrupt(format!("schema {id}")))
    }

    /// Subjects with at least one live version (or any, with `deleted`).
    pub fn subjects(&self, deleted: bool) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for item in self.inner.versions.iter() {
            let (k, v) = item?;
            let entry: VersionEntry =
                serde_json::from_slice(&v).map_err(|_| RegistryError::Corrupt("version".into()))?;
            if entry.deleted && !deleted {
                continue;
            }
            let subject = String::from_utf8_lossy(&k[..k.len() - 5]).into_owned();
            if out.last() != Some(&subject) {
                out.push(subject);
            }
        }
        Ok(out)
    }

    /// Live version numbers of a subject.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>> {
        let v: Vec<u32> = self.live(subject)?.into_iter().map(|(v, _)| v).collect();
        if v.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.into()));
        }
        Ok(v)
    }

    /// One version of a subject.
    pub fn version(&self, subject: &str, sel: VersionSel) -> Result<SchemaVersion> {
        let live = self.live(subject)?;
        if live.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.into()));
        }
        let found = match sel {
            VersionSel::Latest => live.last().copied(),
            VersionSel::Number(n) => live.iter().copied().find(|(v, _)| *v == n),
        };
        let (version, id) = found.ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.into(),
            version: match sel {
                VersionSel::Latest => "latest".into(),
                VersionSel::Number(n) => n.to_string(),
            },
        })?;
        Ok(SchemaVersion {
            subject: subject.into(),
            version,
            id,
            schema: self.schema_by_id(id)?,
        })
    }

    /// The compatibility level of a subject, or the global default.
    pub fn compatibility(&self, subject: Option<&str>) -> Result<Compatibility> {
        if let Some(s) = subject
            && let Some(level) = self.subject_compatibility(s)?
        {
            return Ok(level);
        }
        match self.inner.config.get(b"")? {
            Some(v) => String::from_utf8_lossy(&v).parse(),
            None => Ok(self.inner.default_level),
        }
    }

    /// The level set on the subject itself, if any.
    pub fn subject_compatibility(&self, subject: &str) -> Result<Option<Compatibility>> {
        match self.inner.config.get(subject.as_bytes())? {
            Some(v) => String::from_utf8_lossy(&v).parse().map(Some),
            None => Ok(None),
        }
    }

    /// Sets the level of a subject, or the global default.
    pub fn set_compatibility(&self, subject: Option<&str>, level: Compatibility) -> Result<()> {
        let key = subject.unwrap_or("").as_bytes();
        self.inner.config.insert(key, level.as_str().as_bytes())?;
        self.inner.db.flush()?;
        Ok(())
    }

    /// Checks `new` against the subject's versions under `level`; returns
    /// one message per failure, naming the version, the rule and the field.
    fn check(
        &self,
        subject: &str,
        new: &apache_avro::Schema,
        level: Compatibility,
        against: &[(u32, u32)],
    ) -> Result<Vec<String>> {
        if level == Compatibility::None || against.is_empty() {
            return Ok(Vec::new());
        }
        let targets: &[(u32, u32)] = if level.transitive() {
            against
        } else {
            &against[against.len() - 1..]
        };
        let mut problems = Vec::new();
        for &(version, id) in targets.iter().rev() {
            let old = self.parsed(id)?;
            if level.backward()
                && let Some(why) = incompatibility(&old, new)
            {
                problems.push(format!(
                    "{level}: the new schema cannot read data written with version {version} of {subject}: {why}"
                ));
            }
            if level.forward()
                && let Some(why) = incompatibility(new, &old)
            {
                problems.push(format!(
                    "{level}: version {version} of {subject} cannot read data written with the new schema: {why}"
                ));
            }
        }
        Ok(problems)
    }

    /// Registers `schema` under `subject`; returns its global id. An
    /// identical schema already in the subject returns the existing id;
    /// an incompatible one is refused.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32> {
        let (text, parsed) = normalise(schema)?;
        let _w = self.inner.write.lock();
        let entries = self.entries(subject)?;
        let live: Vec<(u32, u32)> = entries
            .iter()
            .filter(|(_, e)| !e.deleted)
            .map(|(v, e)| (*v, e.id))
            .collect();
        let existing_id = self
            .inner
            .ids
            .get(text.as_bytes())?
            .map(|v| v.as_ref().try_into().map(u32::from_be_bytes))
            .transpose()
            .map_err(|_| RegistryError::Corrupt("id".into()))?;
        if let Some(id) = existing_id
            && live.iter().any(|(_, i)| *i == id)
        {
            return Ok(id);
        }
        let level = self.compatibility(Some(subject))?;
        let problems = self.check(subject, &parsed, level, &live)?;
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.into(),
                level,
                details: problems.join("; "),
            });
        }
        let id = match existing_id {
            Some(id) => id,
            None => {
                let id = self
                    .inner
                    .schemas
                    .last()?
                    .map(|(k, _)| k.as_ref().try_into().map(u32::from_be_bytes))
                    .transpose()
                    .map_err(|_| RegistryError::Corrupt("id".into()))?
                    .unwrap_or(0)
                    + 1;
                self.inner
                    .schemas
                    .insert(id.to_be_bytes(), text.as_bytes())?;
                self.inner.ids.insert(text.as_bytes(), &id.to_be_bytes())?;
                id
            }
        };
        let version = entries.last().map(|(v, _)| v + 1).unwrap_or(1);
        let entry = serde_json::to_vec(&VersionEntry { id, deleted: false })
            .map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        self.inner
            .versions
            .insert(version_key(subject, version), entry)?;
        self.inner.db.flush()?;
        Ok(id)
    }

    /// The live version of `subject` holding this schema.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<SchemaVersion> {
        let (text, _) = normalise(schema)?;
        let live = self.live(subject)?;
        if live.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.into()));
        }
        let id = self
            .inner
            .ids
            .get(text.as_bytes())?
            .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes));
        let found = id.and_then(|id| live.iter().find(|(_, i)| *i == id).copied());
        let (version, id) =
            found.ok_or_else(|| RegistryError::SchemaNotFound("with this content".into()))?;
        Ok(SchemaVersion {
            subject: subject.into(),
            version,
            id,
            schema: text,
        })
    }

    /// Whether `schema` could be registered against version `sel` of the
    /// subject (Confluent checks against that one version only), and why not.
    pub fn test_compatibility(
        &self,
        subject: &str,
        sel: VersionSel,
        schema: &str,
    ) -> Result<Vec<String>> {
        let (_, parsed) = normalise(schema)?;
        let v = self.version(subject, sel)?;
        let level = self.compatibility(Some(subject))?;
        let level = match level {
            Compatibility::BackwardTransitive => Compatibility::Backward,
            Compatibility::ForwardTransitive => Compatibility::Forward,
            Compatibility::FullTransitive => Compatibility::Full,
            l => l,
        };
        self.check(subject, &parsed, level, &[(v.version, v.id)])
    }

    /// Whether `schema` could be registered against every live version of
    /// the subject (its level, made transitive). A subject with no
    /// versions accepts anything.
    pub fn test_compatibility_all(&self, subject: &str, schema: &str) -> Result<Vec<String>> {
        let (_, parsed) = normalise(schema)?;
        let level = match self.compatibility(Some(subject))? {
            Compatibility::Backward => Compatibility::BackwardTransitive,
            Compatibility::Forward => Compatibility::ForwardTransitive,
            Compatibility::Full => Compatibility::FullTransitive,
            l => l,
        };
        let live = self.live(subject)?;
        self.check(subject, &parsed, level, &live)
    }

    /// Deletes a subject's versions (soft: marked deleted; `permanent`:
    /// removed, only after a soft delete). Returns the versions deleted.
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let _w = self.inner.write.lock();
        let entries = self.entries(subject)?;
        if entries.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.into()));
        }
        let any_live = entries.iter().any(|(_, e)| !e.deleted);
        if permanent && any_live {
            return Err(RegistryError::SubjectNotSoftDeleted(subject.into()));
        }
        if !permanent && !any_live {
            return Err(RegistryError::SubjectSoftDeleted(subject.into()));
        }
        let mut out = Vec::new();
        for (v, e) in entries {
            if permanent {
                self.inner.versions.remove(version_key(subject, v))?;
                out.push(v);
            } else if !e.deleted {
                self.mark_deleted(subject, v, e)?;
                out.push(v);
            }
        }
        if permanent {
            self.inner.config.remove(subject.as_bytes())?;
        }
        self.inner.db.flush()?;
        Ok(out)
    }

    fn mark_deleted(&self, subject: &str, v: u32, e: VersionEntry) -> Result<()> {
        let entry = serde_json::to_vec(&VersionEntry {
            id: e.id,
            deleted: true,
        })
        .map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        self.inner.versions.insert(version_key(subject, v), entry)?;
        Ok(())
    }

    /// Deletes one version: soft (marked deleted), or `permanent`
    /// (removed; only after a soft delete). Returns its number.
    pub fn delete_version(&self, subject: &str, sel: VersionSel, permanent: bool) -> Result<u32> {
        let _w = self.inner.write.lock();
        let entries = self.entries(subject)?;
        if entries.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.into()));
        }
        let found = match sel {
            VersionSel::Latest => entries.iter().rev().find(|(_, e)| !e.deleted).copied(),
            VersionSel::Number(n) => entries.iter().find(|(v, _)| *v == n).copied(),
        };
        let (version, entry) = found.ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.into(),
            version: match sel {
                VersionSel::Latest => "latest".into(),
                VersionSel::Number(n) => n.to_string(),
            },
        })?;
        match (permanent, entry.deleted) {
            (false, true) => {
                return Err(RegistryError::VersionSoftDeleted {
                    subject: subject.into(),
                    version,
                });
            }
            (true, false) => {
                return Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.into(),
                    version,
                });
            }
            (false, false) => self.mark_deleted(subject, version, entry)?,
            (true, true) => {
                self.inner.versions.remove(version_key(subject, version))?;
            }
        }
        self.inner.db.flush()?;
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
    const V2_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string","default":""}]}"#;
    const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string"}]}"#;

    #[test]
    fn a_named_type_defined_at_another_field_is_still_compatible() {
        // Dropping field `a` moves the definition of `U` to `b`.
        let v1 = r#"{"type":"record","name":"R","fields":[
            {"name":"a","type":["null",{"type":"record","name":"U","fields":[]}]},
            {"name":"b","type":["null","int","U"]}]}"#;
        let v2 = r#"{"type":"record","name":"R","fields":[
            {"name":"b","type":["null","int",{"type":"record","name":"U","fields":[]}]}]}"#;
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("open");
        r.register("s", v1).expect("v1");
        r.register("s", v2).expect("v2 is backward compatible");
        // A real incompatibility is still one.
        let v3 = r#"{"type":"record","name":"R","fields":[
            {"name":"b","type":["null","string",{"type":"record","name":"U","fields":[]}]}]}"#;
        assert!(r.register("s", v3).is_err());
    }

    #[test]
    fn register_is_idempotent_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let r = Registry::open(dir.path()).expect("open");
            let id = r.register("t-value", V1).expect("register");
            // Same schema, other spacing and key order: same id.
            let respaced =
                r#"{ "name": "R", "type": "record", "fields": [ {"type": "long", "name": "a"} ] }"#;
            assert_eq!(r.register("t-value", respaced).expect("again"), id);
            // Same schema in another subject: same global id.
            assert_eq!(r.register("u-value", V1).expect("other subject"), id);
            let id2 = r.register("t-value", V2_DEFAULT).expect("v2");
            assert_ne!(id, id2);
        }
        let r = Registry::open(dir.path()).expect("reopen");
        assert_eq!(r.versions("t-value").expect("versions"), vec![1, 2]);
        assert_eq!(
            r.version("t-value", VersionSel::Latest)
                .expect("latest")
                .version,
            2
        );
        assert_eq!(
            r.subjects(false).expect("subjects"),
            vec!["t-value", "u-value"]
        );
    }

    #[test]
    fn backward_refuses_a_field_without_default_and_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("open");
        r.register("s", V1).expect("v1");
        let err = r.register("s", V2_NO_DEFAULT).expect_err("incompatible");
        let msg = err.to_string();
        assert_eq!(err.code(), 409);
        assert!(msg.contains("BACKWARD") && msg.contains("'b'"), "{msg}");
        r.set_compatibility(Some("s"), Compatibility::None)
            .expect("set");
        r.register("s", V2_NO_DEFAULT).expect("NONE allows it");
    }

    #[test]
    fn transitive_checks_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("open");
        let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
        let v2 = r#"{"type":"record","name":"R","fields":[]}"#;
        let v3 =
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string","default":""}]}"#;
        for s in ["plain", "transitive"] {
            r.register(s, v1).expect("v1");
            r.register(s, v2)
                .expect("v2: dropping a field is backward compatible");
        }
        r.set_compatibility(Some("transitive"), Compatibility::BackwardTransitive)
            .expect("set");
        // v3 reads v2 data (default) but not v1 data (long is no string).
        r.register("plain", v3)
            .expect("BACKWARD only looks at the latest");
        let err = r
            .register("transitive", v3)
            .expect_err("BACKWARD_TRANSITIVE looks at v1 too");
        let msg = err.to_string();
        assert!(
            msg.contains("BACKWARD_TRANSITIVE") && msg.contains("version 1") && msg.contains("'a'"),
            "{msg}"
        );
        // FORWARD: the old schema must read the new data.
        r.set_compatibility(Some("fwd"), Compatibility::Forward)
            .expect("set");
        r.register("fwd", v2).expect("v2");
        r.register("fwd", v1)
            .expect("v2 reads v1 data: it ignores a");
        let int = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
        r.set_compatibility(Some("fwd2"), Compatibility::Forward)
            .expect("set");
        r.register("fwd2", int).expect("int");
        let err = r
            .register("fwd2", v1)
            .expect_err("an int reader cannot read long data");
        assert!(err.to_string().contains("FORWARD"), "{err}");
        assert_eq!(
            r.compatibility(Some("fwd2")).expect("level"),
            Compatibility::Forward
        );
        assert_eq!(
            r.compatibility(Some("other")).expect("level"),
            Compatibility::Backward
        );
    }

    #[test]
    fn partial_union_resolution_is_incompatible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("open");
        let text = r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","string"],"default":null}]}"#;
        let int = r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":null}]}"#;
        r.register("u", text).expect("v1");
        let err = r
            .register("u", int)
            .expect_err("string data cannot be read as int");
        assert_eq!(err.code(), 409, "{err}");
        assert!(r.register("bad\0subject", text).is_err());
    }

    #[test]
    fn soft_and_permanent_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Registry::open(dir.path()).expect("open");
        let id = r.register("s", V1).expect("v1");
        r.register("s", V2_DEFAULT).expect("v2");
        assert_eq!(
            r.delete_version("s", VersionSel::Number(2), true)
                .expect_err("soft first")
                .code(),
            40407
        );
        assert_eq!(
            r.delete_version("s", VersionSel::Number(2), false)
                .expect("del"),
            2
        );
        assert_eq!(
            r.delete_version("s", VersionSel::Number(2), false)
                .expect_err("again")
                .code(),
            40406
        );
        assert_eq!(r.versions("s").expect("versions"), vec![1]);
        assert_eq!(r.delete_subject("s", false).expect("soft"), vec![1]);
        assert!(matches!(
            r.versions("s"),
            Err(RegistryError::SubjectNotFound(_))
        ));
        // Schemas stay readable by id.
        assert!(r.schema_by_id(id).is_ok());
        assert_eq!(
            r.delete_subject("s", false).expect_err("twice").code(),
            40404
        );
        assert_eq!(r.delete_subject("s", true).expect("hard"), vec![1, 2]);
        assert!(r.subjects(true).expect("subjects").is_empty());
        r.register("t", V1).expect("t");
        assert_eq!(
            r.delete_subject("t", true)
                .expect_err("hard before soft")
                .code(),
            40405
        );
    }
}
