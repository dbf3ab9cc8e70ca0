//! The pipeline file: YAML, strictly parsed.
//!
//! * Unknown fields are errors, and every error names the file, line,
//!   column and path: `pipeline.yaml:14:7: sinks[1].batch_size: expected
//!   an integer, found "ten"`.
//! * `${VAR}` and `${VAR:-default}` take values from the environment
//!   (`$${` is a literal `${`); a missing variable without a default is an
//!   error. Substituted values are replaced by their `${...}` reference in
//!   every error message, so secrets never show.
//! * Passwords, URLs with credentials and tokens are [`Secret`]s: their
//!   `Debug` and `Display` print `<redacted>`.
//!
//! YAML is read with serde-saphyr (serde_yaml is archived; serde-saphyr is
//! maintained, never panics on input, and locates every error).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;
use tributary_core::Op;
use tributary_core::transform::{Predicate, Step, Transform, Transforms};

use crate::sections::{Invalid, RawSink, RawSource};
pub use crate::sections::{
    MysqlSection, MysqlTarget, OnError, PostgresSection, PostgresTarget, RedisFormat, RedisTarget,
    Secret, SinkKind, SinkSection, SnapshotName, SourceKind, SourceSection, TablesSection,
    TantivyTarget,
};

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// Where in the document (`sinks[1].batch_size`); empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        let mut out = self.file.display().to_string();
        if let Some(l) = self.line {
            out.push_str(&format!(":{l}"));
            if let Some(c) = self.column {
                out.push_str(&format!(":{c}"));
            }
        }
        out.push_str(": ");
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// A whole pipeline, checked: each source and sink section is its
/// kind's type (see [`crate::sections`]).
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The embedded log.
    pub log: LogSection,
    /// Change streams into the log.
    pub sources: Vec<SourceSection>,
    /// Record transformations between the log and sinks.
    pub transforms: Vec<TransformSection>,
    /// Consumers of the log.
    pub sinks: Vec<SinkSection>,
    /// The gRPC and HTTP APIs.
    pub server: ServerSection,
}

/// The file as serde reads it, before [`check`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    transforms: Vec<TransformSection>,
    #[serde(default)]
    sinks: Vec<RawSink>,
    #[serde(default)]
    server: ServerSection,
}

/// `log:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Data directory (relative paths are relative to the pipeline file).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Partitions of topics the pipeline creates.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// At most this long between a write and its fsync; 0: fsync every
    /// append before acknowledging it.
    #[serde(default = "default_fsync_ms")]
    pub fsync_interval_ms: u64,
    /// Delete segments older than this.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Delete the oldest segments beyond this many bytes per partition.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Keep only the newest record per key.
    #[serde(default)]
    pub compaction: bool,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            dir: default_dir(),
            partitions: default_partitions(),
            fsync_interval_ms: default_fsync_ms(),
            retention_ms: None,
            retention_bytes: None,
            compaction: false,
        }
    }
}

impl LogSection {
    /// Settings of the topics the pipeline creates.
    pub fn topic_config(&self) -> tributary_log::TopicConfig {
        use tributary_log::{Cleanup, FsyncPolicy, TopicConfig};
        TopicConfig {
            partitions: self.partitions,
            fsync: if self.fsync_interval_ms == 0 {
                FsyncPolicy::Always
            } else {
                FsyncPolicy::interval(self.fsync_interval_ms)
            },
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            cleanup: if self.compaction {
                Cleanup::Compact
            } else {
                TopicConfig::default().cleanup
            },
            ..TopicConfig::default()
        }
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("tributary-data")
}
fn default_partitions() -> u32 {
    4
}
fn default_fsync_ms() -> u64 {
    50
}

/// Transform kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransformKind {
    /// Keep records whose op is in `ops` and that satisfy `where`.
    Filter,
    /// Remove `columns`.
    DropColumns,
    /// Rename columns (`rename: {old: new}`).
    RenameColumns,
    /// Replace `columns`' values with a fixed mask.
    MaskColumns,
    /// Send records to topic `to`.
    Route,
    /// Replace the envelope by the new row state.
    Unwrap,
}

impl TransformKind {
    /// The name YAML gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            TransformKind::Filter => "filter",
            TransformKind::DropColumns => "drop_columns",
            TransformKind::RenameColumns => "rename_columns",
            TransformKind::MaskColumns => "mask_columns",
            TransformKind::Route => "route",
            TransformKind::Unwrap => "unwrap",
        }
    }
}

/// `transforms[i]:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSection {
    /// Unique name.
    pub name: Spanned<String>,
    /// What it does.
    pub kind: TransformKind,
    /// Topics (or patterns) it applies to.
    pub topics: Vec<String>,
    /// filter: ops to keep (`c`, `u`, `d`, `r`, `t`).
    #[serde(default)]
    pub ops: Vec<String>,
    /// filter: a column predicate (`column = value`, `!=`, `<`, `>`).
    #[serde(default, rename = "where")]
    pub predicate: Option<String>,
    /// drop_columns, mask_columns: the columns.
    #[serde(default)]
    pub columns: Vec<String>,
    /// rename_columns: old name to new.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// route: the target topic.
    #[serde(default)]
    pub to: Option<String>,
}

impl TransformSection {
    /// The transform this section declares, or the field that is wrong
    /// and why.
    pub fn compile(&self) -> Result<Transform, (&'static str, String)> {
        use TransformKind as K;
        let name = self.name.value.clone();
        if self.topics.is_empty() {
            return Err(("topics", "give at least one topic or pattern".into()));
        }
        // Fields that belong to other kinds are mistakes, not options.
        let unused: [(&'static str, bool, &[K]); 5] = [
            ("ops", !self.ops.is_empty(), &[K::Filter]),
            ("where", self.predicate.is_some(), &[K::Filter]),
            (
                "columns",
                !self.columns.is_empty(),
                &[K::DropColumns, K::MaskColumns],
            ),
            ("rename", !self.rename.is_empty(), &[K::RenameColumns]),
            ("to", self.to.is_some(), &[K::Route]),
        ];
        if let Some((field, _, _)) = unused
            .iter()
            .find(|(_, given, kinds)| *given && !kinds.contains(&self.kind))
        {
            return Err((field, format!("not a field of kind {}", self.kind.as_str())));
        }
        let columns = |what: &str| {
            if self.columns.is_empty() {
                Err(("columns", format!("name the columns to {what}")))
            } else {
                Ok(self.columns.clone())
            }
        };
        let step = match self.kind {
            K::Filter => {
                let ops = if self.ops.is_empty() {
                    None
                } else {
                    Some(
                        self.ops
                            .iter()
                            .map(|o| {
                                Op::from_code(o).ok_or_else(|| {
                                    ("ops", format!("{o:?}: expected c, u, d, r or t"))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    )
                };
                let predicate = match &self.predicate {
                    None => None,
                    Some(w) => Some(Predicate::parse(w).map_err(|e| ("where", e.to_string()))?),
                };
                if ops.is_none() && predicate.is_none() {
                    return Err(("ops", "a filter needs `ops`, `where` or both".into()));
                }
                Step::Filter { ops, predicate }
            }
            K::DropColumns => Step::DropColumns(columns("drop")?),
            K::MaskColumns => Step::MaskColumns(columns("mask")?),
            K::RenameColumns => {
                if self.rename.is_empty() {
                    return Err(("rename", "map old column names to new ones".into()));
                }
                Step::RenameColumns(
                    self.rename
                        .iter()
                        .map(|(a, b)| (a.clone(), b.clone()))
                        .collect(),
                )
            }
            K::Route => match &self.to {
                Some(to) if !to.trim().is_empty() => Step::Route(to.clone()),
                _ => {
                    return Err((
                        "to",
                        "a route needs `to`: the topic to send records to".into(),
                    ));
                }
            },
            K::Unwrap => Step::Unwrap,
        };
        Ok(Transform {
            name,
            topics: self.topics.clone(),
            step,
        })
    }
}

/// The pipeline's transforms, compiled (they were checked when the
/// pipeline was parsed).
pub fn transforms(p: &Pipeline) -> Result<Transforms, TransformError> {
    p.transforms
        .iter()
        .enumerate()
        .map(|(index, t)| {
            t.compile().map_err(|(field, message)| TransformError {
                index,
                field,
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Transforms)
}

/// A `transforms[i]` section that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transforms[{index}].{field}: {message}")]
pub struct TransformError {
    /// Its index.
    pub index: usize,
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// `server:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// gRPC listen address.
    #[serde(default = "default_grpc")]
    pub grpc: String,
    /// HTTP listen address.
    #[serde(default = "default_http")]
    pub http: String,
    /// Bearer token both APIs require, if set.
    #[serde(default)]
    pub token: Option<Secret>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            grpc: default_grpc(),
            http: default_http(),
            token: None,
        }
    }
}

fn default_grpc() -> String {
    "127.0.0.1:50051".into()
}
fn default_http() -> String {
    "127.0.0.1:8080".into()
}

/// Reads and checks the pipeline at `path`, with `env` for `${VAR}`.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Pipeline, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        path: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    let mut pipeline = parse(path, &text, env)?;
    if let Some(parent) = path.parent() {
        if pipeline.log.dir.is_relative() {
            pipeline.log.dir = parent.join(&pipeline.log.dir);
        }
        for s in &mut pipeline.sinks {
            if let SinkKind::Tantivy(t) = &mut s.kind
                && t.path.is_relative()
            {
                t.path = parent.join(&t.path);
            }
        }
    }
    Ok(pipeline)
}

/// Parses pipeline text (`file` names it in errors).
pub fn parse(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, ConfigError> {
    let (text, substituted) = interpolate(file, text, env)?;
    let redact = |mut message: String| {
        for (value, reference) in &substituted {
            if !value.is_empty() {
                message = message.replace(value.as_str(), reference);
            }
        }
        message
    };
    let located =
        |line: Option<u64>, column: Option<u64>, path: String, message: String| ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            path,
            message: redact(message),
        };
    let result: Result<RawPipeline, serde_saphyr::Error> =
        serde_saphyr::with_deserializer_from_str(&text, |de| {
            serde_path_to_error::deserialize::<_, RawPipeline>(de).map_err(|e| {
                // Carried through the parser's error type as text, then
                // split again below.
                <serde_saphyr::Error as serde::de::Error>::custom(format!(
                    "{}{PATH_END}{}",
                    e.path(),
                    e.inner()
                ))
            })
        });
    let pipeline = match result {
        Ok(p) => p,
        Err(e) => {
            let full = e.to_string();
            let (path, inner) = match full.split_once(PATH_END) {
                Some((p, i)) => (clean_path(p), i.to_string()),
                None => (String::new(), full),
            };
            let (message, line, column) = split_location(&inner);
            let message = explain(&message, &text, line, column);
            return Err(located(line, column, path, message));
        }
    };
    check(pipeline).map_err(|(loc, path, message)| {
        let known = loc.filter(|l| *l != serde_saphyr::Location::UNKNOWN);
        located(
            known.map(|l| l.line()),
            known.map(|l| l.column()),
            path,
            message,
        )
    })
}

/// Separates the path from the message while both travel as one error
/// text through the parser.
const PATH_END: &str = " @@path-end@@ ";

/// serde_path_to_error's path, without its `?` for unknown map keys and
/// the `.value` of a located (`Spanned`) field.
fn clean_path(p: &str) -> String {
    let p = p.trim();
    let p = p.strip_suffix(".?").unwrap_or(p);
    let p = p.strip_suffix(".value").unwrap_or(p);
    if p == "." || p == "?" {
        String::new()
    } else {
        p.to_string()
    }
}

/// Splits "message at line L, column C" (the parser's first line).
fn split_location(s: &str) -> (String, Option<u64>, Option<u64>) {
    let first = s.lines().next().unwrap_or(s).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    if let Some(i) = first.rfind(" at line ") {
        let (msg, loc) = first.split_at(i);
        let loc = loc.trim_start_matches(" at line ");
        let mut parts = loc.split(", column ");
        let line = parts.next().and_then(|l| l.trim().parse().ok());
        let column = parts.next().and_then(|c| c.trim().parse().ok());
        return (msg.to_string(), line, column);
    }
    // "line L column C: message"
    if let Some(rest) = first.strip_prefix("line ")
        && let Some((loc, msg)) = rest.split_once(": ")
    {
        let mut parts = loc.split(" column ");
        let line = parts.next().and_then(|l| l.trim().parse().ok());
        let column = parts.next().and_then(|c| c.trim().parse().ok());
        return (msg.to_string(), line, column);
    }
    (first.to_string(), None, None)
}

/// Clearer words for the parser's terse type errors: "invalid u32"
/// becomes `expected an integer, found "ten"`.
fn explain(message: &str, text: &str, line: Option<u64>, column: Option<u64>) -> String {
    if let Some(key) = message.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key).trim();
        return format!("`{key}` is given twice");
    }
    let wanted = match message.trim() {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => "an integer",
        m if m.starts_with("invalid f") => "a number",
        m if m.starts_with("invalid bool") => "true or false",
        _ => return message.to_string(),
    };
    let found = line
        .zip(column)
        .and_then(|(l, c)| scalar_at(text, l, c))
        .unwrap_or_default();
    if found.is_empty() {
        format!("expected {wanted}")
    } else {
        format!("expected {wanted}, found {found:?}")
    }
}

/// The plain scalar starting at 1-based `line`, `column`.
fn scalar_at(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let start = usize::try_from(column).ok()?.checked_sub(1)?;
    let rest: String = l.chars().skip(start).collect();
    let rest = rest.trim();
    let value = rest
        .split(" #")
        .next()
        .unwrap_or(rest)
        .trim_end_matches([',', ']', '}'])
        .trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some(value.to_string())
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$${` stays a literal `${`.
/// Returns the text and each substituted value with its reference.
fn interpolate(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<(String, String)>), ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut substituted = Vec::new();
    for (ln, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 1u64;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            col += rest[..i].chars().count() as u64;
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
                col += 3;
                continue;
            }
            let Some(body) = after.strip_prefix("${") else {
                out.push('$');
                rest = &after[1..];
                col += 1;
                continue;
            };
            let Some(end) = body.find('}') else {
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    line: Some(ln as u64 + 1),
                    column: Some(col),
                    path: String::new(),
                    message: "`${` without a closing `}`".into(),
                });
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    line: Some(ln as u64 + 1),
                    column: Some(col),
                    path: String::new(),
                    message: format!("`${{{inner}}}`: not a variable name"),
                });
            }
            let value = match (env(name), default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => {
                    return Err(ConfigError {
                        file: file.to_path_buf(),
                        line: Some(ln as u64 + 1),
                        column: Some(col),
                        path: String::new(),
                        message: format!(
                            "environment variable {name} is not set (write ${{{name}:-default}} for a default)"
                        ),
                    });
                }
            };
            out.push_str(&value);
            substituted.push((value, format!("${{{inner}}}")));
            let reference_len = 3 + inner.chars().count() as u64;
            col += reference_len;
            rest = &body[end + 1..];
        }
        out.push_str(rest);
    }
    // Longest first, so a value inside another is not replaced first.
    substituted.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    Ok((out, substituted))
}

type Located = (Option<serde_saphyr::Location>, String, String);

/// What parsing cannot check: unique names, each section's fields for
/// its kind and their values, transforms that compile.
fn check(p: RawPipeline) -> Result<Pipeline, Located> {
    let mut names = HashSet::new();
    let mut unique = |name: &Spanned<String>, path: String| {
        if names.insert(name.value.clone()) {
            Ok(())
        } else {
            Err((
                Some(name.referenced),
                path,
                format!("{:?} is used twice", name.value),
            ))
        }
    };
    let invalid = |section: String| {
        move |e: Invalid| {
            let path = if e.field.is_empty() {
                section.clone()
            } else {
                format!("{section}.{}", e.field)
            };
            (e.at, path, e.message)
        }
    };
    let mut sources = Vec::with_capacity(p.sources.len());
    for (i, s) in p.sources.into_iter().enumerate() {
        unique(s.name(), format!("sources[{i}].name"))?;
        sources.push(SourceSection::try_from(s).map_err(invalid(format!("sources[{i}]")))?);
    }
    for (i, t) in p.transforms.iter().enumerate() {
        unique(&t.name, format!("transforms[{i}].name"))?;
        if let Err((field, e)) = t.compile() {
            return Err((
                Some(t.name.referenced),
                format!("transforms[{i}].{field}"),
                e,
            ));
        }
    }
    let search = p.log.dir.join("search");
    let mut sinks = Vec::with_capacity(p.sinks.len());
    for (i, s) in p.sinks.into_iter().enumerate() {
        unique(s.name(), format!("sinks[{i}].name"))?;
        sinks.push(
            s.into_section(&search)
                .map_err(invalid(format!("sinks[{i}]")))?,
        );
    }
    Ok(Pipeline {
        log: p.log,
        sources,
        transforms: p.transforms,
        sinks,
        server: p.server,
    })
}

pub use tributary_core::pattern::matches;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("public.*", "public.orders"));
        assert!(matches("*.orders", "sales.orders"));
        assert!(matches("public.order_*", "public.order_lines"));
        assert!(!matches("public.order_*", "public.orders"));
        assert!(!matches("public.*", "private.orders"));
    }

    #[test]
    fn search_index_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("p.yaml");
        std::fs::write(
            &file,
            "log:\n  dir: data\nsinks:\n  - name: a\n    kind: tantivy\n    topics: [x]\n\
             \x20 - name: b\n    kind: tantivy\n    path: idx/b\n    topics: [x]\n\
             \x20 - name: c\n    kind: tantivy\n    path: /abs/c\n    topics: [x]\n",
        )
        .expect("write");
        let p = load(&file, &|_| None).expect("load");
        let paths: Vec<_> = p
            .sinks
            .iter()
            .map(|s| match &s.kind {
                SinkKind::Tantivy(t) => Some(t.path.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            paths,
            [
                Some(dir.path().join("data/search/a")),
                Some(dir.path().join("idx/b")),
                Some(PathBuf::from("/abs/c")),
            ]
        );
    }

    #[test]
    fn interpolation() {
        let env = |k: &str| (k == "PW").then(|| "s3cret".to_string());
        let (t, subs) = interpolate(
            Path::new("p.yaml"),
            "a: ${PW}\nb: ${NOPE:-x}\nc: $${LIT} $5\n",
            &env,
        )
        .expect("interpolate");
        assert_eq!(t, "a: s3cret\nb: x\nc: ${LIT} $5\n");
        assert_eq!(subs[0], ("s3cret".into(), "${PW}".into()));
        let err =
            interpolate(Path::new("p.yaml"), "x: 1\ny: ${MISSING}\n", &env).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "p.yaml:2:4: environment variable MISSING is not set (write ${MISSING:-default} for a default)"
        );
    }
}
