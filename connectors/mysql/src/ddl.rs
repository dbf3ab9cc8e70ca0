//! Schema history for the MySQL/MariaDB binlog source.
//!
//! Row events carry values but neither column names, signedness nor
//! character sets, so the source keeps an in-memory model of the captured
//! tables and replays the DDL found in binlog Query events against it. Each
//! row event is then decoded with the shape its table had at that binlog
//! position rather than the shape it has today. The model is seeded from
//! `SHOW CREATE TABLE` output through [`parse_create_table`].
//!
//! The parser is a small hand-written one that understands only what can
//! change a table's shape and ignores statements that are not table DDL.
//! Inside table DDL it refuses to guess: anything it cannot account for is an
//! error naming the table, because a silently wrong model would corrupt every
//! later row of that table.

use std::collections::BTreeMap;

/// A column of a captured table, reduced to what row decoding needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// Identifier as written, unquoted, case kept.
    pub name: String,
    /// Lowercased base type with aliases resolved, so decoders match on one
    /// spelling (`integer` is `int`, `numeric` is `decimal`, ...).
    pub base: String,
    /// Parenthesised type arguments; ENUM/SET labels unquoted and unescaped
    /// because the binlog stores their 1-based index, not the text.
    pub args: Vec<String>,
    /// `UNSIGNED` or `ZEROFILL` was given or implied (`SERIAL`).
    pub unsigned: bool,
    /// False with `NOT NULL` or when the column belongs to the primary key.
    pub nullable: bool,
    /// Explicit column character set, lowercased; `None` means the table's
    /// default, which this model does not track.
    pub charset: Option<String>,
}

/// The shape of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// Table name as stored (compared case-sensitively).
    pub name: String,
    /// Columns in their physical order, which is the order of row images.
    pub columns: Vec<ColumnDef>,
    /// Primary key column names, in key order; empty without a primary key.
    pub primary_key: Vec<String>,
}

/// What one applied statement changed in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A table was created (or replaced); its new shape is in the model.
    Created {
        /// Database of the table.
        db: String,
        /// Table name.
        table: String,
    },
    /// A tracked table was dropped and removed from the model.
    Dropped {
        /// Database of the table.
        db: String,
        /// Table name.
        table: String,
    },
    /// A tracked table now lives under another name, as `(db, table)`.
    Renamed {
        /// Previous `(db, table)`.
        from: (String, String),
        /// New `(db, table)`.
        to: (String, String),
    },
    /// A tracked table was altered; when the same ALTER also renamed it, this
    /// names the new table.
    Altered {
        /// Database of the table.
        db: String,
        /// Table name.
        table: String,
    },
    /// A tracked table was emptied; its shape is unchanged.
    Truncated {
        /// Database of the table.
        db: String,
        /// Table name.
        table: String,
    },
}

/// Why a statement could not be applied; the model is left untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DdlError {
    /// The statement is table DDL but its syntax is not understood.
    #[error("table {db}.{table}: cannot parse DDL at byte {at} ({reason}): {statement}")]
    Unparseable {
        /// Database of the table the statement targets.
        db: String,
        /// Table the statement targets (empty if the name itself was unreadable).
        table: String,
        /// Byte offset in the statement where parsing failed.
        at: usize,
        /// What the parser expected or rejected.
        reason: String,
        /// The statement, cut to its first 200 characters.
        statement: String,
    },
    /// The statement parses but contradicts the model, so the model is stale.
    #[error("table {db}.{table}: {reason}: {statement}")]
    Inconsistent {
        /// Database of the table the statement targets.
        db: String,
        /// Table the statement targets.
        table: String,
        /// What did not match.
        #[source]
        reason: Inconsistency,
        /// The statement, cut to its first 200 characters.
        statement: String,
    },
}

/// How a statement contradicts the model of its table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// A second primary key.
    #[error("multiple primary keys defined")]
    MultiplePrimaryKeys,
    /// A primary key on a column the table does not have.
    #[error("primary key column {0} does not exist")]
    NoKeyColumn(String),
    /// `AFTER` a column the table does not have.
    #[error("AFTER column {0} does not exist")]
    NoAfterColumn(String),
    /// A column the table does not have.
    #[error("column {0} does not exist")]
    NoColumn(String),
    /// Adding or renaming to a column the table has.
    #[error("column {0} already exists")]
    ColumnExists(String),
    /// A CREATE TABLE naming a column twice.
    #[error("duplicate column {0}")]
    DuplicateColumn(String),
    /// A column index past the table's columns.
    #[error("column index out of range")]
    ColumnIndex {
        /// The index.
        index: usize,
        /// How many columns the table has.
        columns: usize,
    },
    /// Dropping the only column.
    #[error("cannot drop the last column")]
    LastColumn,
    /// Dropping a primary key the table does not have.
    #[error("table has no primary key to drop")]
    NoPrimaryKey,
    /// `CREATE TABLE ... LIKE` a table that is not tracked.
    #[error("CREATE TABLE ... LIKE source {db}.{table} is not tracked")]
    LikeUntracked {
        /// Database of the source table.
        db: String,
        /// The source table.
        table: String,
    },
}

/// In-memory schema history: the current shape of every tracked table.
///
/// Only tables that were inserted or created through DDL are tracked; DDL on
/// other tables is ignored so the caller can decide what to capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaModel {
    // Nested so that lookups on the row-event path borrow `&str` keys
    // instead of allocating a `(String, String)` tuple.
    tables: BTreeMap<String, BTreeMap<String, TableDef>>,
}

impl SchemaModel {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shape of `db.table`, if tracked.
    pub fn table(&self, db: &str, table: &str) -> Option<&TableDef> {
        self.tables.get(db)?.get(table)
    }

    /// Every tracked table as `(db, table, def)`, ordered by db then table.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &str, &TableDef)> {
        self.tables.iter().flat_map(|(db, tables)| {
            tables
                .iter()
                .map(move |(name, def)| (db.as_str(), name.as_str(), def))
        })
    }

    /// Tracks `def` as `db.<def.name>`, replacing any previous shape.
    pub fn insert(&mut self, db: &str, def: TableDef) {
        self.tables
            .entry(db.to_string())
            .or_default()
            .insert(def.name.clone(), def);
    }

    /// Stops tracking `db.table`, returning its last shape.
    pub fn remove(&mut self, db: &str, table: &str) -> Option<TableDef> {
        let tables = self.tables.get_mut(db)?;
        let removed = tables.remove(table);
        if tables.is_empty() {
            // Keeps equality of models independent of their history.
            self.tables.remove(db);
        }
        removed
    }

    /// Applies one statement, executed with default database `default_db`
    /// (the Query event's schema; may be ""). Returns what changed.
    ///
    /// The model is only modified when `Ok` is returned. Statements that are
    /// not table DDL, temporary tables and ALTER/DROP/TRUNCATE of untracked
    /// tables return `Ok(vec![])`.
    pub fn apply(&mut self, default_db: &str, sql: &str) -> Result<Vec<Change>, DdlError> {
        let toks = lex(sql);
        let mut p = Parser::new(&toks, sql.len());
        let mut ctx = Ctx {
            db: default_db.to_string(),
            table: String::new(),
        };
        self.dispatch(&mut p, default_db, &mut ctx)
            .map_err(|f| f.into_error(&ctx, sql))
    }

    fn dispatch(
        &mut self,
        p: &mut Parser<'_>,
        default_db: &str,
        ctx: &mut Ctx,
    ) -> Result<Vec<Change>, Fail> {
        let Some(first) = p.peek().filter(|t| t.kind == Kind::Word) else {
            return Ok(Vec::new());
        };
        match first.text.to_ascii_uppercase().as_str() {
            "CREATE" => self.create(p, default_db, ctx),
            "DROP" => self.drop(p, default_db, ctx),
            "RENAME" => self.rename(p, default_db, ctx),
            "TRUNCATE" => self.truncate(p, default_db, ctx),
            "ALTER" => self.alter(p, default_db, ctx),
            _ => Ok(Vec::new()),
        }
    }

    fn create(
        &mut self,
        p: &mut Parser<'_>,
        default_db: &str,
        ctx: &mut Ctx,
    ) -> Result<Vec<Change>, Fail> {
        let Some(head) = parse_create_head(p, default_db)? else {
            return Ok(Vec::new());
        };
        ctx.set(&head.db, &head.table);
        if head.temporary {
            // Temporary tables never reach row events of captured tables.
            return Ok(Vec::new());
        }
        if head.if_not_exists && self.table(&head.db, &head.table).is_some() {
            return Ok(Vec::new());
        }
        let def = match parse_create_body(p, default_db, &head.table)? {
            Body::Def(def) => def,
            Body::Like(src_db, src_table) => {
                let Some(src) = self.table(&src_db, &src_table) else {
                    return Err(Fail::Inconsistent(Inconsistency::LikeUntracked {
                        db: src_db,
                        table: src_table,
                    }));
                };
                TableDef {
                    name: head.table.clone(),
                    ..src.clone()
                }
            }
        };
        let existed = self.remove(&head.db, &head.table).is_some();
        self.insert(&head.db, def);
        let mut changes = Vec::new();
        if existed && head.or_replace {
            changes.push(Change::Dropped {
                db: head.db.clone(),
                table: head.table.clone(),
            });
        }
        changes.push(Change::Created {
            db: head.db,
            table: head.table,
        });
        Ok(changes)
    }

    fn drop(
        &mut self,
        p: &mut Parser<'_>,
        default_db: &str,
        ctx: &mut Ctx,
    ) -> Result<Vec<Change>, Fail> {
        p.bump();
        if p.is_kw("INDEX") {
            return Ok(self.drop_index(p, default_db));
        }
        // A temporary table shadows, and never is, the captured table of the
        // same name; MySQL logs these drops on disconnect.
        let temporary = p.eat_kw("TEMPORARY");
        if !(p.eat_kw("TABLE") || p.eat_kw("TABLES")) || temporary {
            return Ok(Vec::new());
        }
        if p.eat_kw("IF") {
            p.expect_kw("EXISTS")?;
        }
        let mut names = Vec::new();
        loop {
            let (db, table) = p.qualified(default_db)?;
            ctx.set(&db, &table);
            names.push((db, table));
            if !p.eat_punct(b',') {
                break;
            }
        }
        skip_wait(p)?;
        while p.eat_kw("RESTRICT") || p.eat_kw("CASCADE") {}
        p.expect_end()?;
        let mut changes = Vec::new();
        for (db, table) in names {
            if self.remove(&db, &table).is_some() {
                changes.push(Change::Dropped { db, table });
            }
        }
        Ok(changes)
    }

    /// `DROP INDEX \`PRIMARY\` ON t` is the one index statement that changes
    /// a shape we model; anything unreadable here is not table DDL.
    fn drop_index(&mut self, p: &mut Parser<'_>, default_db: &str) -> Vec<Change> {
        p.bump();
        if p.eat_kw("IF") && !p.eat_kw("EXISTS") {
            return Vec::new();
        }
        let Ok(index) = p.ident("index name") else {
            return Vec::new();
        };
        if !index.eq_ignore_ascii_case("PRIMARY") || !p.eat_kw("ON") {
            return Vec::new();
        }
        let Ok((db, table)) = p.qualified(default_db) else {
            return Vec::new();
        };
        match self.tables.get_mut(&db).and_then(|t| t.get_mut(&table)) {
            Some(def) if !def.primary_key.is_empty() => {
                def.primary_key.clear();
                vec![Change::Altered { db, table }]
            }
            _ => Vec::new(),
        }
    }

    fn rename(
        &mut self,
        p: &mut Parser<'_>,
        default_db: &str,
        ctx: &mut Ctx,
    ) -> Result<Vec<Change>, Fail> {
        p.bump();
        if !(p.eat_kw("TABLE") || p.eat_kw("TABLES")) {
            return Ok(Vec::new());
        }
        if p.eat_kw("IF") {
            p.expect_kw("EXISTS")?;
        }
        let mut pairs = Vec::new();
        loop {
            let from = p.qualified(default_db)?;
            ctx.set(&from.0, &from.1);
            skip_wait(p)?;
            p.expect_kw("TO")?;
            let to = p.qualified(default_db)?;
            pairs.push((from, to));
            if !p.eat_punct(b',') {
                break;
            }
        }
        p.expect_end()?;
        // Sequential, as the server does, so swaps through a temporary name work.
        let mut changes = Vec::new();
        for (from, to) in pairs {
            if let Some(mut def) = self.remove(&from.0, &from.1) {
                def.name = to.1.clone();
                self.remove(&to.0, &to.1);
                self.insert(&to.0, def);
                changes.push(Change::Renamed { from, to });
            }
        }
        Ok(changes)
    }

    fn truncate(
        &mut self,
        p: &mut Parser<'_>,
        default_db: &str,
        ctx: &mut Ctx,
    ) -> Result<Vec<Change>, Fail> {
        p.bump();
        p.eat_kw("TABLE");
        let (db, table) = p.qualified(default_db)?;
        ctx.set(&db, &table);
        skip_wait(p)?;
        p.expect_end()?;
        if self.table(&db, &table).is_some() {
            Ok(vec![Change::Truncated { db, table }])
        } else {
            Ok(Vec::new())
        }
    }

    fn alter(
        &mut self,
        p: &mut Parser<'_>,
        default_db: &str,
        ctx: &mut Ctx,
    ) -> Result<Vec<Change>, Fail> {
        p.bump();
        while p.eat_kw("ONLINE") || p.eat_kw("OFFLINE") || p.eat_kw("IGNORE") {}
        if !p.eat_kw("TABLE") {
            return Ok(Vec::new());
        }
        if p.eat_kw("IF") {
            p.expect_kw("EXISTS")?;
        }
        let (db, table) = p.qualified(default_db)?;
        ctx.set(&db, &table);
        let Some(current) = self.table(&db, &table) else {
            return Ok(Vec::new());
        };
        skip_wait(p)?;
        let specs = parse_alter_specs(p, default_db)?;
        let only_rename = !specs.is_empty()
            && specs
                .iter()
                .all(|s| matches!(s, AlterSpec::RenameTable(..)));
        let mut def = current.clone();
        let rename = apply_specs(&mut def, specs).map_err(Fail::Inconsistent)?;
        match rename {
            Some((new_db, new_table)) if new_db != db || new_table != table => {
                self.remove(&db, &table);
                def.name = new_table.clone();
                self.remove(&new_db, &new_table);
                self.insert(&new_db, def);
                let mut changes = vec![Change::Renamed {
                    from: (db, table),
                    to: (new_db.clone(), new_table.clone()),
                }];
                if !only_rename {
                    changes.push(Change::Altered {
                        db: new_db,
                        table: new_table,
                    });
                }
                Ok(changes)
            }
            _ => {
                self.insert(&db, def);
                Ok(vec![Change::Altered { db, table }])
            }
        }
    }
}

/// Parses one CREATE TABLE statement (as SHOW CREATE TABLE prints it) into a
/// TableDef.
///
/// `CREATE TABLE ... LIKE` is rejected because it needs a model to copy from;
/// use [`SchemaModel::apply`] for that.
pub fn parse_create_table(sql: &str) -> Result<TableDef, DdlError> {
    let toks = lex(sql);
    let mut p = Parser::new(&toks, sql.len());
    let mut ctx = Ctx {
        db: String::new(),
        table: String::new(),
    };
    parse_create_only(&mut p, &mut ctx).map_err(|f| f.into_error(&ctx, sql))
}

fn parse_create_only(p: &mut Parser<'_>, ctx: &mut Ctx) -> Result<TableDef, Fail> {
    let Some(head) = parse_create_head(p, "")? else {
        return Err(p.err("expected CREATE TABLE").into());
    };
    ctx.set(&head.db, &head.table);
    let at = p.pos();
    match parse_create_body(p, "", &head.table)? {
        Body::Def(def) => Ok(def),
        Body::Like(..) => Err(Fail::Parse(PErr {
            at,
            reason: "CREATE TABLE ... LIKE needs a schema model".into(),
        })),
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A syntax error at a byte offset.
#[derive(Debug)]
struct PErr {
    at: usize,
    reason: String,
}

enum Fail {
    Parse(PErr),
    Inconsistent(Inconsistency),
}

impl From<PErr> for Fail {
    fn from(e: PErr) -> Self {
        Fail::Parse(e)
    }
}

/// The table a failing statement is about, updated as soon as it is known.
struct Ctx {
    db: String,
    table: String,
}

impl Ctx {
    fn set(&mut self, db: &str, table: &str) {
        db.clone_into(&mut self.db);
        table.clone_into(&mut self.table);
    }
}

impl Fail {
    fn into_error(self, ctx: &Ctx, sql: &str) -> DdlError {
        let statement: String = sql.chars().take(200).collect();
        match self {
            Fail::Parse(e) => DdlError::Unparseable {
                db: ctx.db.clone(),
                table: ctx.table.clone(),
                at: e.at,
                reason: e.reason,
                statement,
            },
            Fail::Inconsistent(reason) => DdlError::Inconsistent {
                db: ctx.db.clone(),
                table: ctx.table.clone(),
                reason,
                statement,
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unquoted identifier or keyword.
    Word,
    /// Backtick-quoted identifier: never a keyword.
    Ident,
    /// 'single' quoted string.
    Str,
    /// "double" quoted string (an identifier under ANSI_QUOTES).
    DStr,
    Num,
    Punct(u8),
    /// Lexing stopped here; `text` holds the reason.
    Bad,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// Unquoted, unescaped text.
    text: String,
    /// Byte offset in the original statement.
    pos: usize,
}

impl Token {
    fn is_kw(&self, kw: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(kw)
    }
}

fn is_ident_byte(c: u8) -> bool {
    // Bytes >= 0x80 belong to multi-byte UTF-8 characters, which MySQL allows
    // in unquoted identifiers; runs of them never split a character.
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Splits a statement into tokens, dropping comments but keeping the content
/// of executable comments, which the server runs as code.
fn lex(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0usize;
    let mut exec_depth = 0usize;
    while let Some(&c) = b.get(i) {
        let next = b.get(i + 1).copied();
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        match c {
            b'#' => i = line_end(b, i),
            b'-' if next == Some(b'-') && b.get(i + 2).is_none_or(|&n| n <= b' ') => {
                i = line_end(b, i);
            }
            b'/' if next == Some(b'*') => {
                let exec = match (b.get(i + 2), b.get(i + 3)) {
                    (Some(b'!'), _) => Some(3),
                    (Some(b'M'), Some(b'!')) => Some(4),
                    _ => None,
                };
                if let Some(skip) = exec {
                    i += skip;
                    while b.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    exec_depth += 1;
                } else {
                    match find_comment_end(b, i + 2) {
                        Some(end) => i = end,
                        None => {
                            out.push(bad(i, "unterminated comment"));
                            return out;
                        }
                    }
                }
            }
            b'*' if exec_depth > 0 && next == Some(b'/') => {
                exec_depth -= 1;
                i += 2;
            }
            b'`' | b'\'' | b'"' => match lex_quoted(b, i, c) {
                Some((text, end)) => {
                    let kind = match c {
                        b'`' => Kind::Ident,
                        b'\'' => Kind::Str,
                        _ => Kind::DStr,
                    };
                    out.push(Token { kind, text, pos: i });
                    i = end;
                }
                None => {
                    let what = if c == b'`' {
                        "unterminated quoted identifier"
                    } else {
                        "unterminated string"
                    };
                    out.push(bad(i, what));
                    return out;
                }
            },
            c if is_ident_byte(c) => {
                let mut end = i;
                while b.get(end).copied().is_some_and(is_ident_byte) {
                    end += 1;
                }
                let all_digits = b
                    .get(i..end)
                    .is_some_and(|r| r.iter().all(u8::is_ascii_digit));
                let kind = if all_digits {
                    end = number_end(b, end);
                    Kind::Num
                } else {
                    Kind::Word
                };
                out.push(Token {
                    kind,
                    text: sql.get(i..end).unwrap_or_default().to_string(),
                    pos: i,
                });
                i = end;
            }
            _ => {
                out.push(Token {
                    kind: Kind::Punct(c),
                    text: char::from(c).to_string(),
                    pos: i,
                });
                i += 1;
            }
        }
    }
    out
}

fn bad(pos: usize, reason: &str) -> Token {
    Token {
        kind: Kind::Bad,
        text: reason.to_string(),
        pos,
    }
}

fn line_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| c != b'\n') {
        i += 1;
    }
    i
}

/// Index just past the `*/` closing a comment whose body starts at `i`.
fn find_comment_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match (b.get(i)?, b.get(i + 1)) {
            (b'*', Some(b'/')) => return Some(i + 2),
            _ => i += 1,
        }
    }
}

/// Extends an integer that ends at `i` by a fraction and exponent.
fn number_end(b: &[u8], mut i: usize) -> usize {
    let digit_at = |j: usize| b.get(j).is_some_and(u8::is_ascii_digit);
    if b.get(i) == Some(&b'.') && digit_at(i + 1) {
        i += 1;
        while digit_at(i) {
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        if digit_at(i + 1 + sign) {
            i += 1 + sign;
            while digit_at(i) {
                i += 1;
            }
        }
    }
    i
}

/// Reads a quoted token starting at `start`; returns its unescaped text and
/// the index after the closing quote, or `None` when unterminated.
fn lex_quoted(b: &[u8], start: usize, q: u8) -> Option<(String, usize)> {
    let mut buf = Vec::new();
    let mut i = start + 1;
    loop {
        let c = *b.get(i)?;
        if c == q {
            if b.get(i + 1) == Some(&q) {
                buf.push(q);
                i += 2;
                continue;
            }
            return Some((String::from_utf8_lossy(&buf).into_owned(), i + 1));
        }
        if c == b'\\' && q != b'`' {
            let e = *b.get(i + 1)?;
            match e {
                b'0' => buf.push(0),
                b'b' => buf.push(8),
                b'n' => buf.push(b'\n'),
                b'r' => buf.push(b'\r'),
                b't' => buf.push(b'\t'),
                b'Z' => buf.push(26),
                // Kept escaped so LIKE patterns keep their meaning.
                b'%' | b'_' => buf.extend_from_slice(&[b'\\', e]),
                _ => buf.push(e),
            }
            i += 2;
            continue;
        }
        buf.push(c);
        i += 1;
    }
}

// ---------------------------------------------------------------------------
// Parser helpers
// ---------------------------------------------------------------------------

struct Parser<'a> {
    toks: &'a [Token],
    i: usize,
    /// Offset reported for errors at the end of the statement.
    end: usize,
}

impl<'a> Parser<'a> {
    fn new(toks: &'a [Token], end: usize) -> Self {
        let mut len = toks.len();
        // One statement per event; a trailing `;` is harmless.
        while len > 0
            && toks
                .get(len - 1)
                .is_some_and(|t| t.kind == Kind::Punct(b';'))
        {
            len -= 1;
        }
        Parser {
            toks: toks.get(..len).unwrap_or_default(),
            i: 0,
            end,
        }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.i)
    }

    fn peek_at(&self, k: usize) -> Option<&'a Token> {
        self.toks.get(self.i.saturating_add(k))
    }

    fn bump(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.i)?;
        self.i += 1;
        Some(t)
    }

    fn rest(&self) -> &'a [Token] {
        self.toks.get(self.i..).unwrap_or_default()
    }

    fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn kind(&self) -> Option<Kind> {
        self.peek().map(|t| t.kind)
    }

    /// An error at the current token, describing what was found there.
    fn err(&self, expected: &str) -> PErr {
        match self.peek() {
            Some(t) if t.kind == Kind::Bad => PErr {
                at: t.pos,
                reason: t.text.clone(),
            },
            Some(t) => PErr {
                at: t.pos,
                reason: format!("{expected}, found {}", describe(t)),
            },
            None => PErr {
                at: self.end,
                reason: format!("{expected}, found end of statement"),
            },
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is_kw(kw))
    }

    fn is_kw_at(&self, k: usize, kw: &str) -> bool {
        self.peek_at(k).is_some_and(|t| t.is_kw(kw))
    }

    fn is_any_kw(&self, kws: &[&str]) -> bool {
        kws.iter().any(|kw| self.is_kw(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), PErr> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {kw}")))
        }
    }

    fn is_punct(&self, c: u8) -> bool {
        self.kind() == Some(Kind::Punct(c))
    }

    fn eat_punct(&mut self, c: u8) -> bool {
        let hit = self.is_punct(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn expect_punct(&mut self, c: u8) -> Result<(), PErr> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", char::from(c))))
        }
    }

    fn expect_end(&self) -> Result<(), PErr> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.err("expected end of statement"))
        }
    }

    /// An identifier: unquoted, backticked, or double-quoted (ANSI_QUOTES).
    fn ident(&mut self, what: &str) -> Result<String, PErr> {
        match self.peek() {
            Some(t) if matches!(t.kind, Kind::Word | Kind::Ident | Kind::DStr) => {
                self.i += 1;
                Ok(t.text.clone())
            }
            _ => Err(self.err(&format!("expected {what}"))),
        }
    }

    /// A name or a string, as used for character sets and collations.
    fn name_or_string(&mut self, what: &str) -> Result<String, PErr> {
        match self.peek() {
            Some(t) if matches!(t.kind, Kind::Word | Kind::Ident | Kind::Str | Kind::DStr) => {
                self.i += 1;
                Ok(t.text.clone())
            }
            _ => Err(self.err(&format!("expected {what}"))),
        }
    }

    fn string(&mut self, what: &str) -> Result<(), PErr> {
        if matches!(self.kind(), Some(Kind::Str | Kind::DStr)) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected {what}")))
        }
    }

    fn number(&mut self, what: &str) -> Result<(), PErr> {
        if self.kind() == Some(Kind::Num) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected {what}")))
        }
    }

    /// `[db.]table`, each part possibly quoted.
    fn qualified(&mut self, default_db: &str) -> Result<(String, String), PErr> {
        let first = self.ident("table name")?;
        if self.eat_punct(b'.') {
            let second = self.ident("table name after '.'")?;
            Ok((first, second))
        } else {
            Ok((default_db.to_string(), first))
        }
    }

    /// Skips a parenthesised group starting at the current `(`.
    fn skip_balanced(&mut self) -> Result<(), PErr> {
        self.expect_punct(b'(')?;
        let mut depth = 1usize;
        while depth > 0 {
            match self.kind() {
                None => return Err(self.err("unbalanced parentheses")),
                Some(Kind::Bad) => return Err(self.err("")),
                Some(Kind::Punct(b'(')) => depth += 1,
                Some(Kind::Punct(b')')) => depth -= 1,
                Some(_) => {}
            }
            self.i += 1;
        }
        Ok(())
    }

    /// Skips to the next top-level `,` or `)` (not consumed) or the end.
    fn skip_element(&mut self) -> Result<(), PErr> {
        loop {
            match self.kind() {
                None | Some(Kind::Punct(b',' | b')')) => return Ok(()),
                Some(Kind::Punct(b'(')) => self.skip_balanced()?,
                Some(Kind::Bad) => return Err(self.err("")),
                Some(_) => self.i += 1,
            }
        }
    }

    /// Skips to the end of the statement, still rejecting lexing errors.
    fn skip_rest(&mut self) -> Result<(), PErr> {
        while let Some(t) = self.peek() {
            if t.kind == Kind::Bad {
                return Err(self.err(""));
            }
            self.i += 1;
        }
        Ok(())
    }
}

fn describe(t: &Token) -> String {
    match t.kind {
        Kind::Str | Kind::DStr => "a string".into(),
        Kind::Num => format!("number {}", t.text),
        Kind::Punct(c) => format!("'{}'", char::from(c)),
        Kind::Word | Kind::Ident => format!("'{}'", t.text.chars().take(64).collect::<String>()),
        Kind::Bad => t.text.clone(),
    }
}

/// MariaDB's `WAIT n` / `NOWAIT` lock-timeout clause.
fn skip_wait(p: &mut Parser<'_>) -> Result<(), PErr> {
    if p.eat_kw("WAIT") {
        p.number("lock wait timeout")?;
    } else {
        p.eat_kw("NOWAIT");
    }
    Ok(())
}

fn same_column(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

fn find_column(def: &TableDef, name: &str) -> Option<usize> {
    def.columns.iter().position(|c| same_column(&c.name, name))
}

// ---------------------------------------------------------------------------
// Column definitions
// ---------------------------------------------------------------------------

/// Base types accepted as written; anything else must be a known alias, so a
/// typo or unsupported type is an error rather than a made-up shape.
const KNOWN_TYPES: &[&str] = &[
    "bit",
    "tinyint",
    "smallint",
    "mediumint",
    "int",
    "bigint",
    "decimal",
    "float",
    "double",
    "date",
    "time",
    "datetime",
    "timestamp",
    "year",
    "char",
    "varchar",
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
    "tinytext",
    "text",
    "mediumtext",
    "longtext",
    "enum",
    "set",
    "json",
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
    "inet4",
    "inet6",
    "uuid",
    "vector",
];

struct TypeInfo {
    base: String,
    args: Vec<String>,
    serial: bool,
    charset: Option<String>,
}

fn parse_type(p: &mut Parser<'_>) -> Result<TypeInfo, PErr> {
    let Some(t) = p.peek().filter(|t| t.kind == Kind::Word) else {
        return Err(p.err("expected column type"));
    };
    p.i += 1;
    let word = t.text.to_ascii_lowercase();
    let mut serial = false;
    let mut national = false;
    let mut implied_args: Vec<String> = Vec::new();
    let base: &str = match word.as_str() {
        "bool" | "boolean" => {
            implied_args.push("1".into());
            "tinyint"
        }
        "integer" | "int4" => "int",
        "int1" => "tinyint",
        "int2" => "smallint",
        "int3" | "middleint" => "mediumint",
        "int8" => "bigint",
        "dec" | "numeric" | "fixed" => "decimal",
        "real" | "float8" => "double",
        "float4" => "float",
        "double" => {
            p.eat_kw("PRECISION");
            "double"
        }
        "char" | "character" => {
            if p.eat_kw("VARYING") {
                "varchar"
            } else {
                "char"
            }
        }
        "varcharacter" => "varchar",
        "nchar" => {
            national = true;
            if p.eat_kw("VARCHAR") || p.eat_kw("VARYING") {
                "varchar"
            } else {
                "char"
            }
        }
        "nvarchar" => {
            national = true;
            "varchar"
        }
        "national" => {
            national = true;
            if p.eat_kw("VARCHAR") {
                "varchar"
            } else if p.eat_kw("CHAR") || p.eat_kw("CHARACTER") {
                if p.eat_kw("VARYING") {
                    "varchar"
                } else {
                    "char"
                }
            } else {
                return Err(p.err("expected CHAR or VARCHAR after NATIONAL"));
            }
        }
        "long" => {
            if p.eat_kw("VARBINARY") {
                "mediumblob"
            } else {
                if p.is_kw("CHAR") && p.is_kw_at(1, "VARYING") {
                    p.i += 2;
                } else {
                    p.eat_kw("VARCHAR");
                }
                "mediumtext"
            }
        }
        "serial" => {
            serial = true;
            "bigint"
        }
        known if KNOWN_TYPES.contains(&known) => known,
        _ => {
            return Err(PErr {
                at: t.pos,
                reason: format!("unknown column type '{}'", t.text),
            });
        }
    };
    let base = base.to_string();
    let mut args = Vec::new();
    if p.eat_punct(b'(') && !p.eat_punct(b')') {
        loop {
            // Charset introducers such as _utf8mb4'x' in ENUM labels.
            if p.kind() == Some(Kind::Word)
                && p.peek().is_some_and(|t| t.text.starts_with('_'))
                && matches!(p.peek_at(1).map(|t| t.kind), Some(Kind::Str | Kind::DStr))
            {
                p.i += 1;
            }
            match p.peek() {
                Some(t) if matches!(t.kind, Kind::Num | Kind::Str | Kind::DStr | Kind::Word) => {
                    p.i += 1;
                    args.push(t.text.clone());
                }
                _ => return Err(p.err("expected type argument")),
            }
            if p.eat_punct(b',') {
                continue;
            }
            p.expect_punct(b')')?;
            break;
        }
    }
    if args.is_empty() {
        args = implied_args;
    }
    Ok(TypeInfo {
        base,
        args,
        serial,
        // The NATIONAL types are defined as the server's utf8 (utf8mb3).
        charset: national.then(|| "utf8mb3".to_string()),
    })
}

#[derive(Debug, Default, Clone, Copy)]
struct ColFlags {
    inline_pk: bool,
    /// `AS ROW START|END`: the column is an explicit system-versioning period.
    row_period: bool,
    /// `WITH SYSTEM VERSIONING` on the column, which versions the table.
    versioned: bool,
}

fn parse_column(p: &mut Parser<'_>) -> Result<(ColumnDef, ColFlags), PErr> {
    let name = p.ident("column name")?;
    let ty = parse_type(p)?;
    let mut col = ColumnDef {
        name,
        base: ty.base,
        args: ty.args,
        unsigned: ty.serial,
        nullable: !ty.serial,
        charset: ty.charset,
    };
    let mut flags = ColFlags::default();
    while let Some(t) = p.peek() {
        if t.kind != Kind::Word {
            if matches!(t.kind, Kind::Punct(b',' | b')')) {
                break;
            }
            return Err(p.err("unexpected token in column definition"));
        }
        let kw = t.text.to_ascii_uppercase();
        if kw == "FIRST" || kw == "AFTER" {
            break;
        }
        p.i += 1;
        match kw.as_str() {
            "UNSIGNED" | "ZEROFILL" => col.unsigned = true,
            "SIGNED" | "BINARY" | "BYTE" | "AUTO_INCREMENT" | "VIRTUAL" | "STORED"
            | "PERSISTENT" | "INVISIBLE" | "VISIBLE" | "ENFORCED" => {}
            "ASCII" => col.charset = Some("latin1".into()),
            "UNICODE" => col.charset = Some("ucs2".into()),
            "CHARACTER" | "CHAR" => {
                p.expect_kw("SET")?;
                col.charset = Some(p.name_or_string("character set")?.to_ascii_lowercase());
            }
            "CHARSET" => {
                col.charset = Some(p.name_or_string("character set")?.to_ascii_lowercase());
            }
            "COLLATE" => {
                p.name_or_string("collation")?;
            }
            "NULL" => col.nullable = true,
            "NOT" => {
                if p.eat_kw("NULL") {
                    col.nullable = false;
                } else if !p.eat_kw("ENFORCED") {
                    return Err(p.err("expected NULL after NOT"));
                }
            }
            "DEFAULT" => skip_value(p)?,
            "ON" => {
                p.expect_kw("UPDATE")?;
                skip_value(p)?;
            }
            "PRIMARY" => {
                p.eat_kw("KEY");
                flags.inline_pk = true;
            }
            // In a column definition a bare KEY means PRIMARY KEY.
            "KEY" => flags.inline_pk = true,
            "UNIQUE" => {
                p.eat_kw("KEY");
            }
            "COMMENT" => p.string("comment string")?,
            "COLUMN_FORMAT" | "STORAGE" => {
                p.ident("column format")?;
            }
            "GENERATED" => {
                p.expect_kw("ALWAYS")?;
                p.expect_kw("AS")?;
                generated(p, &mut flags)?;
            }
            "AS" => generated(p, &mut flags)?,
            "COMPRESSED" => {
                if p.eat_punct(b'=') {
                    p.ident("compression method")?;
                }
            }
            "CHECK" => p.skip_balanced()?,
            "CONSTRAINT" => {
                if !p.is_kw("CHECK") {
                    p.ident("constraint name")?;
                }
                p.expect_kw("CHECK")?;
                p.skip_balanced()?;
            }
            "REFERENCES" => references(p)?,
            "SRID" => p.number("SRID")?,
            "REF_SYSTEM_ID" => {
                p.eat_punct(b'=');
                p.number("REF_SYSTEM_ID")?;
            }
            "ENGINE_ATTRIBUTE" | "SECONDARY_ENGINE_ATTRIBUTE" => {
                p.eat_punct(b'=');
                p.string("attribute string")?;
            }
            "SERIAL" => {
                p.expect_kw("DEFAULT")?;
                p.expect_kw("VALUE")?;
                col.nullable = false;
            }
            "WITH" => {
                p.expect_kw("SYSTEM")?;
                p.expect_kw("VERSIONING")?;
                flags.versioned = true;
            }
            "WITHOUT" => {
                p.expect_kw("SYSTEM")?;
                p.expect_kw("VERSIONING")?;
            }
            _ => {
                return Err(PErr {
                    at: t.pos,
                    reason: format!("unexpected {} in column definition", describe(t)),
                });
            }
        }
    }
    if flags.inline_pk {
        col.nullable = false;
    }
    Ok((col, flags))
}

fn generated(p: &mut Parser<'_>, flags: &mut ColFlags) -> Result<(), PErr> {
    if p.eat_kw("ROW") {
        if !(p.eat_kw("START") || p.eat_kw("END")) {
            return Err(p.err("expected START or END"));
        }
        flags.row_period = true;
        Ok(())
    } else {
        p.skip_balanced()
    }
}

fn references(p: &mut Parser<'_>) -> Result<(), PErr> {
    p.qualified("")?;
    if p.is_punct(b'(') {
        p.skip_balanced()?;
    }
    loop {
        if p.eat_kw("MATCH") {
            p.ident("match type")?;
        } else if p.is_kw("ON") && p.is_kw_at(1, "DELETE") {
            p.i += 2;
            ref_action(p)?;
        } else if p.is_kw("ON")
            && p.is_kw_at(1, "UPDATE")
            && ["RESTRICT", "CASCADE", "SET", "NO"]
                .iter()
                .any(|kw| p.is_kw_at(2, kw))
        {
            // Without an action this is the column's own ON UPDATE clause.
            p.i += 2;
            ref_action(p)?;
        } else {
            return Ok(());
        }
    }
}

fn ref_action(p: &mut Parser<'_>) -> Result<(), PErr> {
    if p.eat_kw("RESTRICT") || p.eat_kw("CASCADE") {
        Ok(())
    } else if p.eat_kw("SET") {
        if p.eat_kw("NULL") || p.eat_kw("DEFAULT") {
            Ok(())
        } else {
            Err(p.err("expected NULL or DEFAULT"))
        }
    } else if p.eat_kw("NO") {
        p.expect_kw("ACTION")
    } else {
        Err(p.err("expected referential action"))
    }
}

/// Skips a DEFAULT / ON UPDATE value: a literal, a function call, a
/// parenthesised expression, or an unparenthesised arithmetic chain of those.
fn skip_value(p: &mut Parser<'_>) -> Result<(), PErr> {
    loop {
        while matches!(
            p.kind(),
            Some(Kind::Punct(b'-' | b'+' | b'~' | b'!' | b'.'))
        ) {
            p.i += 1;
        }
        let Some(t) = p.peek() else {
            return Err(p.err("expected a value"));
        };
        match t.kind {
            Kind::Punct(b'(') => p.skip_balanced()?,
            Kind::Str | Kind::DStr => {
                p.i += 1;
                // Adjacent literals concatenate.
                while matches!(p.kind(), Some(Kind::Str | Kind::DStr)) {
                    p.i += 1;
                }
            }
            Kind::Num => p.i += 1,
            Kind::Word => {
                p.i += 1;
                if p.is_punct(b'(') {
                    p.skip_balanced()?;
                } else if matches!(p.kind(), Some(Kind::Str | Kind::DStr)) && is_introducer(&t.text)
                {
                    p.i += 1;
                }
            }
            _ => return Err(p.err("expected a value")),
        }
        if matches!(
            p.kind(),
            Some(Kind::Punct(
                b'+' | b'-' | b'*' | b'/' | b'%' | b'|' | b'&' | b'^'
            ))
        ) {
            p.i += 1;
        } else {
            return Ok(());
        }
    }
}

/// Prefixes that turn the following string into a typed literal
/// (`b'0'`, `x'ff'`, `N'x'`, `_utf8mb4'x'`).
fn is_introducer(word: &str) -> bool {
    ["b", "x", "n"].iter().any(|w| word.eq_ignore_ascii_case(w)) || word.starts_with('_')
}

// ---------------------------------------------------------------------------
// CREATE TABLE
// ---------------------------------------------------------------------------

struct CreateHead {
    or_replace: bool,
    temporary: bool,
    if_not_exists: bool,
    db: String,
    table: String,
}

/// Reads `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] name`;
/// `None` when the statement creates something other than a table.
fn parse_create_head(p: &mut Parser<'_>, default_db: &str) -> Result<Option<CreateHead>, PErr> {
    if !p.eat_kw("CREATE") {
        return Ok(None);
    }
    let or_replace = p.is_kw("OR") && p.is_kw_at(1, "REPLACE");
    if or_replace {
        p.i += 2;
    }
    let temporary = p.eat_kw("TEMPORARY");
    if !p.eat_kw("TABLE") {
        return Ok(None);
    }
    let if_not_exists = p.eat_kw("IF");
    if if_not_exists {
        p.expect_kw("NOT")?;
        p.expect_kw("EXISTS")?;
    }
    let (db, table) = p.qualified(default_db)?;
    Ok(Some(CreateHead {
        or_replace,
        temporary,
        if_not_exists,
        db,
        table,
    }))
}

enum Body {
    Def(TableDef),
    Like(String, String),
}

enum Element {
    Column(ColumnDef, ColFlags),
    PrimaryKey(Vec<String>),
    Other,
}

fn ctas_error(p: &Parser<'_>) -> Fail {
    Fail::Parse(PErr {
        at: p.pos(),
        reason: "CREATE ... SELECT without columns: the table shape depends on the query".into(),
    })
}

fn parse_create_body(p: &mut Parser<'_>, default_db: &str, table: &str) -> Result<Body, Fail> {
    if p.eat_kw("LIKE") {
        let (db, t) = p.qualified(default_db)?;
        p.expect_end()?;
        return Ok(Body::Like(db, t));
    }
    if !p.is_punct(b'(') {
        if p.rest().iter().any(|t| t.is_kw("SELECT")) {
            return Err(ctas_error(p));
        }
        return Err(p.err("expected '(' or LIKE").into());
    }
    if p.is_kw_at(1, "LIKE") {
        p.i += 2;
        let (db, t) = p.qualified(default_db)?;
        p.expect_punct(b')')?;
        p.expect_end()?;
        return Ok(Body::Like(db, t));
    }
    if ["SELECT", "WITH", "VALUES", "TABLE"]
        .iter()
        .any(|kw| p.is_kw_at(1, kw))
    {
        return Err(ctas_error(p));
    }
    p.i += 1;
    let mut columns = Vec::new();
    let mut pk: Option<Vec<String>> = None;
    let mut versioned = false;
    let mut has_period = false;
    loop {
        let key = match parse_element(p)? {
            Element::Column(col, flags) => {
                versioned |= flags.versioned;
                has_period |= flags.row_period;
                let key = flags.inline_pk.then(|| vec![col.name.clone()]);
                columns.push(col);
                key
            }
            Element::PrimaryKey(cols) => Some(cols),
            Element::Other => None,
        };
        if let Some(key) = key {
            if pk.is_some() {
                return Err(Fail::Inconsistent(Inconsistency::MultiplePrimaryKeys));
            }
            pk = Some(key);
        }
        if p.eat_punct(b',') {
            continue;
        }
        if p.eat_punct(b')') {
            break;
        }
        return Err(p.err("expected ',' or ')' in table definition").into());
    }
    // Table options, partitioning and a trailing SELECT do not change the
    // listed columns, except implicit system-versioning columns.
    let mut versioning_at = None;
    while let Some(t) = p.peek() {
        if t.kind == Kind::Bad {
            return Err(p.err("").into());
        }
        if t.is_kw("WITH") && p.is_kw_at(1, "SYSTEM") && p.is_kw_at(2, "VERSIONING") {
            versioning_at = Some(t.pos);
        }
        p.i += 1;
    }
    if (versioned || versioning_at.is_some()) && !has_period {
        return Err(Fail::Parse(PErr {
            at: versioning_at.unwrap_or(p.end),
            reason:
                "system-versioned table with implicit row_start/row_end columns is not supported"
                    .into(),
        }));
    }
    let mut def = TableDef {
        name: table.to_string(),
        columns: Vec::new(),
        primary_key: Vec::new(),
    };
    for col in columns {
        if find_column(&def, &col.name).is_some() {
            return Err(Fail::Inconsistent(Inconsistency::DuplicateColumn(col.name)));
        }
        def.columns.push(col);
    }
    if let Some(key) = pk {
        set_primary_key(&mut def, key).map_err(Fail::Inconsistent)?;
    }
    Ok(Body::Def(def))
}

/// One element of a table definition; only columns and the primary key
/// matter, other indexes and constraints are skipped.
fn parse_element(p: &mut Parser<'_>) -> Result<Element, PErr> {
    const CONSTRAINT_KINDS: &[&str] = &["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"];
    if p.eat_kw("CONSTRAINT") {
        if p.eat_kw("IF") {
            p.expect_kw("NOT")?;
            p.expect_kw("EXISTS")?;
        }
        if !p.is_any_kw(CONSTRAINT_KINDS) {
            p.ident("constraint name")?;
        }
        if p.is_kw("PRIMARY") {
            return parse_primary_key(p).map(Element::PrimaryKey);
        }
        if !p.is_any_kw(CONSTRAINT_KINDS) {
            return Err(p.err("expected PRIMARY KEY, UNIQUE, FOREIGN KEY or CHECK"));
        }
        p.skip_element()?;
        return Ok(Element::Other);
    }
    if p.is_kw("PRIMARY") {
        return parse_primary_key(p).map(Element::PrimaryKey);
    }
    if p.is_any_kw(&[
        "UNIQUE", "KEY", "INDEX", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK",
    ]) || (p.is_kw("PERIOD") && p.is_kw_at(1, "FOR"))
    {
        p.i += 1;
        p.skip_element()?;
        return Ok(Element::Other);
    }
    let (col, flags) = parse_column(p)?;
    Ok(Element::Column(col, flags))
}

fn parse_primary_key(p: &mut Parser<'_>) -> Result<Vec<String>, PErr> {
    p.expect_kw("PRIMARY")?;
    p.expect_kw("KEY")?;
    while !p.is_punct(b'(') {
        if p.eat_kw("USING") {
            p.ident("index type")?;
        } else {
            p.ident("'(' after PRIMARY KEY")?;
        }
    }
    p.expect_punct(b'(')?;
    let mut cols = Vec::new();
    loop {
        if p.is_punct(b'(') {
            return Err(p.err("expected key column (expression key parts are not supported)"));
        }
        cols.push(p.ident("key column")?);
        if p.is_punct(b'(') {
            p.skip_balanced()?;
        }
        if !p.eat_kw("ASC") {
            p.eat_kw("DESC");
        }
        if p.eat_punct(b',') {
            continue;
        }
        p.expect_punct(b')')?;
        break;
    }
    p.skip_element()?;
    Ok(cols)
}

/// Sets the key, resolving names to the declared spelling; key columns are
/// implicitly NOT NULL.
fn set_primary_key(def: &mut TableDef, key: Vec<String>) -> Result<(), Inconsistency> {
    if !def.primary_key.is_empty() {
        return Err(Inconsistency::MultiplePrimaryKeys);
    }
    let mut resolved = Vec::with_capacity(key.len());
    for name in key {
        let Some(col) = def.columns.iter_mut().find(|c| same_column(&c.name, &name)) else {
            return Err(Inconsistency::NoKeyColumn(name));
        };
        col.nullable = false;
        resolved.push(col.name.clone());
    }
    def.primary_key = resolved;
    Ok(())
}

// ---------------------------------------------------------------------------
// ALTER TABLE
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Position {
    First,
    After(String),
}

#[derive(Debug)]
enum AlterSpec {
    AddColumn {
        col: ColumnDef,
        pos: Option<Position>,
        if_not_exists: bool,
        inline_pk: bool,
    },
    DropColumn {
        name: String,
        if_exists: bool,
    },
    Modify {
        col: ColumnDef,
        pos: Option<Position>,
        if_exists: bool,
        inline_pk: bool,
    },
    Change {
        old: String,
        col: ColumnDef,
        pos: Option<Position>,
        if_exists: bool,
        inline_pk: bool,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTable(String, String),
    AddPrimaryKey(Vec<String>),
    DropPrimaryKey {
        if_exists: bool,
    },
    ConvertCharset(String),
}

/// Table options that never change a column; they may follow each other
/// without commas.
const TABLE_OPTIONS: &[&str] = &[
    "ENGINE",
    "TYPE",
    "AUTO_INCREMENT",
    "AVG_ROW_LENGTH",
    "CHECKSUM",
    "TABLE_CHECKSUM",
    "PAGE_CHECKSUM",
    "COMMENT",
    "COMPRESSION",
    "CONNECTION",
    "DELAY_KEY_WRITE",
    "ENCRYPTION",
    "ENCRYPTED",
    "ENCRYPTION_KEY_ID",
    "ENGINE_ATTRIBUTE",
    "SECONDARY_ENGINE_ATTRIBUTE",
    "SECONDARY_ENGINE",
    "INSERT_METHOD",
    "KEY_BLOCK_SIZE",
    "MAX_ROWS",
    "MIN_ROWS",
    "PACK_KEYS",
    "PASSWORD",
    "ROW_FORMAT",
    "STATS_AUTO_RECALC",
    "STATS_PERSISTENT",
    "STATS_SAMPLE_PAGES",
    "TABLESPACE",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "TRANSACTIONAL",
    "IETF_QUOTES",
    "AUTOEXTEND_SIZE",
    "ALGORITHM",
    "LOCK",
    "CHARSET",
    "CHARACTER",
    "COLLATE",
    "UNION",
    "DATA",
    "STORAGE",
];

/// Words that start an ALTER specification, used to end an ORDER BY list.
const SPEC_STARTS: &[&str] = &[
    "ADD",
    "DROP",
    "MODIFY",
    "CHANGE",
    "ALTER",
    "RENAME",
    "CONVERT",
    "FORCE",
    "ORDER",
    "ENABLE",
    "DISABLE",
    "DISCARD",
    "IMPORT",
    "WITH",
    "WITHOUT",
    "PARTITION",
    "DEFAULT",
];

fn parse_alter_specs(p: &mut Parser<'_>, default_db: &str) -> Result<Vec<AlterSpec>, PErr> {
    let mut specs = Vec::new();
    while !p.at_end() {
        let is_option = parse_alter_spec(p, default_db, &mut specs)?;
        if p.at_end() {
            break;
        }
        if p.eat_punct(b',') {
            if p.at_end() {
                return Err(p.err("expected ALTER TABLE specification after ','"));
            }
            continue;
        }
        if !is_option {
            return Err(p.err("expected ',' or end of statement"));
        }
    }
    Ok(specs)
}

fn parse_position(p: &mut Parser<'_>) -> Result<Option<Position>, PErr> {
    if p.eat_kw("FIRST") {
        Ok(Some(Position::First))
    } else if p.eat_kw("AFTER") {
        Ok(Some(Position::After(p.ident("column name after AFTER")?)))
    } else {
        Ok(None)
    }
}

fn eat_if_exists(p: &mut Parser<'_>) -> bool {
    let hit = p.is_kw("IF") && p.is_kw_at(1, "EXISTS");
    if hit {
        p.i += 2;
    }
    hit
}

fn eat_if_not_exists(p: &mut Parser<'_>) -> Result<bool, PErr> {
    if p.is_kw("IF") && p.is_kw_at(1, "NOT") {
        p.i += 2;
        p.expect_kw("EXISTS")?;
        Ok(true)
    } else {
        Ok(false)
    }
}

/// Parses one specification into `specs`; returns whether it was a table
/// option (which may be followed by another without a comma).
fn parse_alter_spec(
    p: &mut Parser<'_>,
    default_db: &str,
    specs: &mut Vec<AlterSpec>,
) -> Result<bool, PErr> {
    let Some(t) = p.peek().filter(|t| t.kind == Kind::Word) else {
        return Err(p.err("expected ALTER TABLE specification"));
    };
    let kw = t.text.to_ascii_uppercase();
    match kw.as_str() {
        "ADD" => {
            p.i += 1;
            parse_add(p, specs)?;
        }
        "DROP" => {
            p.i += 1;
            parse_drop(p, specs)?;
        }
        "MODIFY" => {
            p.i += 1;
            p.eat_kw("COLUMN");
            let if_exists = eat_if_exists(p);
            let (col, flags) = parse_column(p)?;
            let pos = parse_position(p)?;
            specs.push(AlterSpec::Modify {
                col,
                pos,
                if_exists,
                inline_pk: flags.inline_pk,
            });
        }
        "CHANGE" => {
            p.i += 1;
            p.eat_kw("COLUMN");
            let if_exists = eat_if_exists(p);
            let old = p.ident("column name")?;
            let (col, flags) = parse_column(p)?;
            let pos = parse_position(p)?;
            specs.push(AlterSpec::Change {
                old,
                col,
                pos,
                if_exists,
                inline_pk: flags.inline_pk,
            });
        }
        "RENAME" => {
            p.i += 1;
            if p.eat_kw("COLUMN") {
                let from = p.ident("column name")?;
                p.expect_kw("TO")?;
                let to = p.ident("new column name")?;
                specs.push(AlterSpec::RenameColumn { from, to });
            } else if p.eat_kw("INDEX") || p.eat_kw("KEY") {
                p.ident("index name")?;
                p.expect_kw("TO")?;
                p.ident("new index name")?;
            } else {
                if !p.eat_kw("TO") {
                    p.eat_kw("AS");
                }
                let (db, table) = p.qualified(default_db)?;
                specs.push(AlterSpec::RenameTable(db, table));
            }
        }
        "ALTER" => {
            p.i += 1;
            if p.eat_kw("INDEX") || p.eat_kw("KEY") || p.eat_kw("CHECK") || p.eat_kw("CONSTRAINT") {
                p.skip_element()?;
            } else {
                p.eat_kw("COLUMN");
                eat_if_exists(p);
                p.ident("column name")?;
                if !(p.is_kw("SET") || p.is_kw("DROP")) {
                    return Err(p.err("expected SET or DROP after ALTER COLUMN"));
                }
                p.skip_element()?;
            }
        }
        "CONVERT" => {
            p.i += 1;
            p.expect_kw("TO")?;
            if p.eat_kw("CHARACTER") || p.eat_kw("CHAR") {
                p.expect_kw("SET")?;
            } else {
                p.expect_kw("CHARSET")?;
            }
            p.eat_punct(b'=');
            if p.is_kw("DEFAULT") {
                return Err(p.err("CONVERT TO CHARACTER SET DEFAULT is not supported"));
            }
            let charset = p.name_or_string("character set")?.to_ascii_lowercase();
            if p.eat_kw("COLLATE") {
                p.eat_punct(b'=');
                p.name_or_string("collation")?;
            }
            specs.push(AlterSpec::ConvertCharset(charset));
        }
        "FORCE" => p.i += 1,
        "ORDER" => {
            p.i += 1;
            p.expect_kw("BY")?;
            loop {
                p.qualified("")?;
                if !p.eat_kw("ASC") {
                    p.eat_kw("DESC");
                }
                let more = p.is_punct(b',')
                    && p.peek_at(1).is_some_and(|t| {
                        matches!(t.kind, Kind::Word | Kind::Ident | Kind::DStr)
                            && !SPEC_STARTS
                                .iter()
                                .chain(TABLE_OPTIONS)
                                .any(|kw| t.is_kw(kw))
                    });
                if !more {
                    break;
                }
                p.i += 1;
            }
        }
        "ENABLE" | "DISABLE" => {
            p.i += 1;
            p.expect_kw("KEYS")?;
        }
        "DISCARD" | "IMPORT" => {
            p.i += 1;
            if p.is_kw("PARTITION") {
                p.skip_rest()?;
            } else {
                p.expect_kw("TABLESPACE")?;
            }
        }
        "WITH" | "WITHOUT" => {
            p.i += 1;
            p.expect_kw("VALIDATION")?;
        }
        "PARTITION" => {
            // Partitioning clauses come last and never change columns.
            p.skip_rest()?;
        }
        "REMOVE" | "UPGRADE" => {
            p.i += 1;
            p.expect_kw("PARTITIONING")?;
        }
        "COALESCE" | "REORGANIZE" | "EXCHANGE" | "ANALYZE" | "CHECK" | "OPTIMIZE" | "REBUILD"
        | "REPAIR" | "TRUNCATE" => {
            p.i += 1;
            p.expect_kw("PARTITION")?;
            p.skip_rest()?;
        }
        "SECONDARY_LOAD" | "SECONDARY_UNLOAD" => p.i += 1,
        "DEFAULT"
            if p.is_kw_at(1, "CHARSET")
                || p.is_kw_at(1, "CHARACTER")
                || p.is_kw_at(1, "COLLATE") =>
        {
            p.i += 1;
            table_option(p)?;
            return Ok(true);
        }
        _ if TABLE_OPTIONS.contains(&kw.as_str()) => {
            table_option(p)?;
            return Ok(true);
        }
        _ => {
            return Err(PErr {
                at: t.pos,
                reason: format!("unrecognised ALTER TABLE specification {}", describe(t)),
            });
        }
    }
    Ok(false)
}

fn table_option(p: &mut Parser<'_>) -> Result<(), PErr> {
    let Some(t) = p.bump() else {
        return Err(p.err("expected table option"));
    };
    if t.is_kw("CHARACTER") {
        p.expect_kw("SET")?;
    } else if t.is_kw("DATA") {
        p.expect_kw("DIRECTORY")?;
    }
    p.eat_punct(b'=');
    match p.kind() {
        Some(Kind::Punct(b'(')) => p.skip_balanced()?,
        Some(Kind::Word | Kind::Ident | Kind::Str | Kind::DStr | Kind::Num) => p.i += 1,
        _ => return Err(p.err("expected table option value")),
    }
    if t.is_kw("TABLESPACE") && p.eat_kw("STORAGE") {
        p.ident("storage type")?;
    }
    Ok(())
}

fn parse_add(p: &mut Parser<'_>, specs: &mut Vec<AlterSpec>) -> Result<(), PErr> {
    let explicit_column = p.eat_kw("COLUMN");
    if !explicit_column {
        if p.eat_kw("CONSTRAINT") {
            eat_if_not_exists(p)?;
            if !p.is_any_kw(&["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"]) {
                p.ident("constraint name")?;
            }
            if p.is_kw("PRIMARY") {
                specs.push(AlterSpec::AddPrimaryKey(parse_primary_key(p)?));
                return Ok(());
            }
            if !p.is_any_kw(&["UNIQUE", "FOREIGN", "CHECK"]) {
                return Err(p.err("expected PRIMARY KEY, UNIQUE, FOREIGN KEY or CHECK"));
            }
            return p.skip_element();
        }
        if p.is_kw("PRIMARY") {
            specs.push(AlterSpec::AddPrimaryKey(parse_primary_key(p)?));
            return Ok(());
        }
        if p.is_any_kw(&[
            "INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK",
        ]) || (p.is_kw("PERIOD") && p.is_kw_at(1, "FOR"))
        {
            p.i += 1;
            return p.skip_element();
        }
        if p.is_kw("PARTITION") {
            return p.skip_rest();
        }
        if p.is_kw("SYSTEM") && p.is_kw_at(1, "VERSIONING") {
            return Err(p.err("ADD SYSTEM VERSIONING adds implicit columns and is not supported"));
        }
    }
    let if_not_exists = eat_if_not_exists(p)?;
    if p.eat_punct(b'(') {
        loop {
            match parse_element(p)? {
                Element::Column(col, flags) => specs.push(AlterSpec::AddColumn {
                    col,
                    pos: None,
                    if_not_exists,
                    inline_pk: flags.inline_pk,
                }),
                Element::PrimaryKey(cols) => specs.push(AlterSpec::AddPrimaryKey(cols)),
                Element::Other => {}
            }
            if p.eat_punct(b',') {
                continue;
            }
            p.expect_punct(b')')?;
            return Ok(());
        }
    }
    let (col, flags) = parse_column(p)?;
    let pos = parse_position(p)?;
    specs.push(AlterSpec::AddColumn {
        col,
        pos,
        if_not_exists,
        inline_pk: flags.inline_pk,
    });
    Ok(())
}

fn parse_drop(p: &mut Parser<'_>, specs: &mut Vec<AlterSpec>) -> Result<(), PErr> {
    if p.eat_kw("COLUMN") {
        let if_exists = eat_if_exists(p);
        let name = p.ident("column name")?;
        specs.push(AlterSpec::DropColumn { name, if_exists });
        return Ok(());
    }
    if p.eat_kw("PRIMARY") {
        p.expect_kw("KEY")?;
        specs.push(AlterSpec::DropPrimaryKey { if_exists: false });
        return Ok(());
    }
    if p.eat_kw("INDEX") || p.eat_kw("KEY") || p.eat_kw("CONSTRAINT") {
        let if_exists = eat_if_exists(p);
        // The primary key's index is named PRIMARY and can be dropped by name.
        if p.peek().is_some_and(|t| {
            matches!(t.kind, Kind::Word | Kind::Ident) && t.text.eq_ignore_ascii_case("PRIMARY")
        }) {
            p.i += 1;
            specs.push(AlterSpec::DropPrimaryKey { if_exists });
        }
        return p.skip_element();
    }
    if p.is_any_kw(&["FOREIGN", "CHECK", "UNIQUE"]) || (p.is_kw("PERIOD") && p.is_kw_at(1, "FOR")) {
        p.i += 1;
        return p.skip_element();
    }
    if p.is_kw("PARTITION") {
        return p.skip_rest();
    }
    if p.is_kw("SYSTEM") && p.is_kw_at(1, "VERSIONING") {
        return Err(p.err("DROP SYSTEM VERSIONING removes implicit columns and is not supported"));
    }
    let if_exists = eat_if_exists(p);
    let name = p.ident("column name")?;
    specs.push(AlterSpec::DropColumn { name, if_exists });
    Ok(())
}

/// Index at which a column placed at `pos` goes, `default` when unplaced.
fn insert_index(
    def: &TableDef,
    pos: Option<&Position>,
    default: usize,
) -> Result<usize, Inconsistency> {
    match pos {
        None => Ok(default),
        Some(Position::First) => Ok(0),
        Some(Position::After(name)) => find_column(def, name)
            .map(|i| i + 1)
            .ok_or_else(|| Inconsistency::NoAfterColumn(name.clone())),
    }
}

fn rename_in_key(def: &mut TableDef, old: &str, new: &str) {
    for k in &mut def.primary_key {
        if same_column(k, old) {
            new.clone_into(k);
        }
    }
}

/// Replaces the column at `idx` with `col`, moving it when `pos` is given.
fn replace_column(
    def: &mut TableDef,
    idx: usize,
    col: ColumnDef,
    pos: Option<&Position>,
) -> Result<(), Inconsistency> {
    if idx >= def.columns.len() {
        return Err(Inconsistency::ColumnIndex {
            index: idx,
            columns: def.columns.len(),
        });
    }
    if pos.is_none() {
        if let Some(slot) = def.columns.get_mut(idx) {
            *slot = col;
        }
        return Ok(());
    }
    def.columns.remove(idx);
    let at = insert_index(def, pos, idx)?.min(def.columns.len());
    def.columns.insert(at, col);
    Ok(())
}

fn missing(name: &str) -> Inconsistency {
    Inconsistency::NoColumn(name.to_string())
}

/// Applies specs in order to `def`; returns the new name if renamed.
/// Errors describe how the statement contradicts the model.
fn apply_specs(
    def: &mut TableDef,
    specs: Vec<AlterSpec>,
) -> Result<Option<(String, String)>, Inconsistency> {
    let mut rename = None;
    for spec in specs {
        match spec {
            AlterSpec::AddColumn {
                col,
                pos,
                if_not_exists,
                inline_pk,
            } => {
                if find_column(def, &col.name).is_some() {
                    if if_not_exists {
                        continue;
                    }
                    return Err(Inconsistency::ColumnExists(col.name));
                }
                let at = insert_index(def, pos.as_ref(), def.columns.len())?.min(def.columns.len());
                let name = col.name.clone();
                def.columns.insert(at, col);
                if inline_pk {
                    set_primary_key(def, vec![name])?;
                }
            }
            AlterSpec::DropColumn { name, if_exists } => {
                let Some(idx) = find_column(def, &name) else {
                    if if_exists {
                        continue;
                    }
                    return Err(missing(&name));
                };
                if def.columns.len() == 1 {
                    return Err(Inconsistency::LastColumn);
                }
                def.columns.remove(idx);
                def.primary_key.retain(|k| !same_column(k, &name));
            }
            AlterSpec::Modify {
                col,
                pos,
                if_exists,
                inline_pk,
            } => {
                let Some(idx) = find_column(def, &col.name) else {
                    if if_exists {
                        continue;
                    }
                    return Err(missing(&col.name));
                };
                let name = col.name.clone();
                replace_column(def, idx, col, pos.as_ref())?;
                rename_in_key(def, &name, &name);
                if inline_pk {
                    set_primary_key(def, vec![name])?;
                }
            }
            AlterSpec::Change {
                old,
                col,
                pos,
                if_exists,
                inline_pk,
            } => {
                let Some(idx) = find_column(def, &old) else {
                    if if_exists {
                        continue;
                    }
                    return Err(missing(&old));
                };
                if find_column(def, &col.name).is_some_and(|j| j != idx) {
                    return Err(Inconsistency::ColumnExists(col.name));
                }
                let name = col.name.clone();
                replace_column(def, idx, col, pos.as_ref())?;
                rename_in_key(def, &old, &name);
                if inline_pk {
                    set_primary_key(def, vec![name])?;
                }
            }
            AlterSpec::RenameColumn { from, to } => {
                let Some(idx) = find_column(def, &from) else {
                    return Err(missing(&from));
                };
                if find_column(def, &to).is_some_and(|j| j != idx) {
                    return Err(Inconsistency::ColumnExists(to));
                }
                if let Some(col) = def.columns.get_mut(idx) {
                    to.clone_into(&mut col.name);
                }
                rename_in_key(def, &from, &to);
            }
            AlterSpec::RenameTable(db, table) => rename = Some((db, table)),
            AlterSpec::AddPrimaryKey(cols) => set_primary_key(def, cols)?,
            AlterSpec::DropPrimaryKey { if_exists } => {
                if def.primary_key.is_empty() {
                    if if_exists {
                        continue;
                    }
                    return Err(Inconsistency::NoPrimaryKey);
                }
                def.primary_key.clear();
            }
            AlterSpec::ConvertCharset(charset) => convert_charset(def, &charset),
        }
    }
    let key = def.primary_key.clone();
    for col in &mut def.columns {
        if key.iter().any(|k| same_column(k, &col.name)) {
            col.nullable = false;
        }
    }
    Ok(rename)
}

/// `CONVERT TO CHARACTER SET`: text columns take the new charset, and
/// `binary` turns them into the matching binary string types.
fn convert_charset(def: &mut TableDef, charset: &str) {
    for col in &mut def.columns {
        let is_text = matches!(
            col.base.as_str(),
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        );
        if !is_text {
            continue;
        }
        if charset == "binary" {
            let binary = match col.base.as_str() {
                "char" => Some("binary"),
                "varchar" => Some("varbinary"),
                "tinytext" => Some("tinyblob"),
                "text" => Some("blob"),
                "mediumtext" => Some("mediumblob"),
                "longtext" => Some("longblob"),
                _ => None,
            };
            if let Some(base) = binary {
                col.base = base.to_string();
                col.charset = None;
                continue;
            }
        }
        col.charset = Some(charset.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: &str = "CREATE TABLE `t` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `d` decimal(65,30) DEFAULT NULL,
  `e` enum('a','b''c','x,y') NOT NULL DEFAULT 'a',
  `s` set('r','w') DEFAULT NULL,
  `j` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`j`)),
  `ts` timestamp(6) NOT NULL DEFAULT current_timestamp(6) ON UPDATE current_timestamp(6),
  `g` point DEFAULT NULL,
  `v` int(11) GENERATED ALWAYS AS (`id` + 1) VIRTUAL,
  `l1` varchar(10) CHARACTER SET latin1 COLLATE latin1_swedish_ci DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `u` (`l1`),
  KEY `k` (`d`,`e`)
) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";

    const MYSQL8: &str = "CREATE TABLE `orders` (
  `id` int NOT NULL AUTO_INCREMENT,
  `doc` json DEFAULT NULL,
  `secret` varchar(20) COLLATE utf8mb4_bin NOT NULL DEFAULT _utf8mb4'x',
  `hidden` int DEFAULT NULL /*!80023 INVISIBLE */,
  `amount` decimal(10,2) unsigned zerofill DEFAULT '0.00',
  `created` datetime(3) DEFAULT (now()),
  `flags` bit(8) DEFAULT b'0',
  `geo` point NOT NULL /*!80003 SRID 4326 */,
  PRIMARY KEY (`id`),
  KEY `f` ((lower(`secret`))),
  CONSTRAINT `chk` CHECK ((`id` > 0)),
  CONSTRAINT `fk` FOREIGN KEY (`id`) REFERENCES `other` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci
/*!50100 PARTITION BY HASH (`id`) PARTITIONS 4 */";

    fn col(def: &TableDef, name: &str) -> ColumnDef {
        let i = find_column(def, name).unwrap_or_else(|| panic!("no column {name}"));
        def.columns[i].clone()
    }

    fn names(def: &TableDef) -> Vec<&str> {
        def.columns.iter().map(|c| c.name.as_str()).collect()
    }

    fn model(sql: &str) -> SchemaModel {
        let mut m = SchemaModel::new();
        m.apply("db", sql).expect("should succeed");
        m
    }

    fn t<'a>(m: &'a SchemaModel, table: &str) -> &'a TableDef {
        m.table("db", table).expect("should succeed")
    }

    fn altered(table: &str) -> Vec<Change> {
        vec![Change::Altered {
            db: "db".into(),
            table: table.into(),
        }]
    }

    fn base_model() -> SchemaModel {
        model("CREATE TABLE t (id int NOT NULL, a varchar(10), b int, c text, PRIMARY KEY (id, b))")
    }

    #[test]
    fn mariadb_show_create() {
        let def = parse_create_table(MARIADB).expect("should succeed");
        assert_eq!(def.name, "t");
        assert_eq!(
            names(&def),
            ["id", "d", "e", "s", "j", "ts", "g", "v", "l1"]
        );
        assert_eq!(def.primary_key, ["id"]);
        let id = col(&def, "id");
        assert_eq!(
            (id.base.as_str(), id.args.clone()),
            ("bigint", vec!["20".to_string()])
        );
        assert!(id.unsigned && !id.nullable);
        let d = col(&def, "d");
        assert_eq!(d.base, "decimal");
        assert_eq!(d.args, ["65", "30"]);
        assert!(d.nullable && !d.unsigned);
        let e = col(&def, "e");
        assert_eq!(e.base, "enum");
        assert_eq!(e.args, ["a", "b'c", "x,y"]);
        assert!(!e.nullable);
        assert_eq!(col(&def, "s").args, ["r", "w"]);
        let j = col(&def, "j");
        assert_eq!(j.base, "longtext");
        assert_eq!(j.charset.as_deref(), Some("utf8mb4"));
        let ts = col(&def, "ts");
        assert_eq!(
            (ts.base.as_str(), ts.args.clone()),
            ("timestamp", vec!["6".to_string()])
        );
        assert!(!ts.nullable);
        assert_eq!(col(&def, "g").base, "point");
        assert_eq!(col(&def, "v").base, "int");
        assert!(col(&def, "v").nullable);
        let l1 = col(&def, "l1");
        assert_eq!(l1.charset.as_deref(), Some("latin1"));
        assert_eq!(l1.args, ["10"]);
    }

    #[test]
    fn mysql8_show_create() {
        let def = parse_create_table(MYSQL8).expect("should succeed");
        assert_eq!(
            names(&def),
            [
                "id", "doc", "secret", "hidden", "amount", "created", "flags", "geo"
            ]
        );
        assert_eq!(def.primary_key, ["id"]);
        assert_eq!(col(&def, "id").base, "int");
        assert!(col(&def, "id").args.is_empty());
        assert_eq!(col(&def, "doc").base, "json");
        assert!(!col(&def, "secret").nullable);
        assert_eq!(col(&def, "secret").charset, None);
        assert!(col(&def, "hidden").nullable);
        assert!(col(&def, "amount").unsigned);
        assert_eq!(col(&def, "flags").args, ["8"]);
        assert!(!col(&def, "geo").nullable);
    }

    #[test]
    fn composite_key_with_prefix_and_order() {
        let def = parse_create_table(
            "CREATE TABLE x.k (A int, b varchar(100), c int, \
             CONSTRAINT pk PRIMARY KEY USING BTREE (b(10) DESC, a ASC) COMMENT 'k')",
        )
        .expect("should succeed");
        assert_eq!(def.primary_key, ["b", "A"]);
        assert!(!col(&def, "a").nullable && !col(&def, "b").nullable);
        assert!(col(&def, "c").nullable);
    }

    #[test]
    fn inline_primary_key_and_bare_key() {
        let def = parse_create_table("create table t (id int primary key, v int)")
            .expect("should succeed");
        assert_eq!(def.primary_key, ["id"]);
        assert!(!def.columns[0].nullable);
        let def = parse_create_table("create table t (id int key)").expect("should succeed");
        assert_eq!(def.primary_key, ["id"]);
        let err = parse_create_table("create table t (id int primary key, v int, primary key (v))");
        assert!(matches!(err, Err(DdlError::Inconsistent { .. })));
        let err = parse_create_table("create table t (id int, primary key (nope))");
        assert!(matches!(err, Err(DdlError::Inconsistent { .. })));
    }

    #[test]
    fn type_aliases() {
        let def = parse_create_table(
            "CREATE TABLE a (c1 bool, c2 boolean, c3 integer, c4 int1, c5 int2, c6 int3, c7 int4, \
             c8 int8, c9 dec(5,2), c10 numeric(7), c11 fixed, c12 double precision, c13 real, \
             c14 character varying(20), c15 national varchar(5), c16 nvarchar(3), \
             c17 character(4), c18 nchar(2), c19 serial, c20 float(7,4), c21 long varbinary, \
             c22 national char varying(9), c23 int(10) zerofill, c24 int signed)",
        )
        .expect("should succeed");
        let expect = [
            ("c1", "tinyint", vec!["1"]),
            ("c2", "tinyint", vec!["1"]),
            ("c3", "int", vec![]),
            ("c4", "tinyint", vec![]),
            ("c5", "smallint", vec![]),
            ("c6", "mediumint", vec![]),
            ("c7", "int", vec![]),
            ("c8", "bigint", vec![]),
            ("c9", "decimal", vec!["5", "2"]),
            ("c10", "decimal", vec!["7"]),
            ("c11", "decimal", vec![]),
            ("c12", "double", vec![]),
            ("c13", "double", vec![]),
            ("c14", "varchar", vec!["20"]),
            ("c15", "varchar", vec!["5"]),
            ("c16", "varchar", vec!["3"]),
            ("c17", "char", vec!["4"]),
            ("c18", "char", vec!["2"]),
            ("c19", "bigint", vec![]),
            ("c20", "float", vec!["7", "4"]),
            ("c21", "mediumblob", vec![]),
            ("c22", "varchar", vec!["9"]),
        ];
        for (name, base, args) in expect {
            let c = col(&def, name);
            assert_eq!(c.base, base, "{name}");
            assert_eq!(c.args, args, "{name}");
        }
        let serial = col(&def, "c19");
        assert!(serial.unsigned && !serial.nullable);
        assert_eq!(col(&def, "c15").charset.as_deref(), Some("utf8mb3"));
        assert!(col(&def, "c23").unsigned);
        assert!(!col(&def, "c24").unsigned);
    }

    #[test]
    fn column_attributes_in_any_order() {
        let def = parse_create_table(
            "CREATE TABLE t (\
             a int DEFAULT -1 NOT NULL COMMENT 'c' COLUMN_FORMAT FIXED STORAGE DISK,\
             b varchar(5) BINARY CHARSET 'UTF8' COLLATE utf8_bin NULL UNIQUE KEY,\
             c int AS (a * 2) STORED INVISIBLE,\
             d int GENERATED ALWAYS AS ((a + 1)) PERSISTENT,\
             e int REFERENCES p(id) MATCH FULL ON DELETE SET NULL ON UPDATE NO ACTION,\
             f timestamp(3) NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP(3),\
             g datetime DEFAULT NOW() ON UPDATE NOW(),\
             h blob COMPRESSED,\
             i varbinary(4) DEFAULT x'ff',\
             j int CHECK (j > 0) CONSTRAINT cj CHECK (j < 9) NOT ENFORCED,\
             k double DEFAULT 1.5e-3,\
             l int DEFAULT 1 + 2,\
             m text CHARACTER SET ascii VISIBLE,\
             n int SERIAL DEFAULT VALUE,\
             o char(3) ASCII)",
        )
        .expect("should succeed");
        assert_eq!(def.columns.len(), 15);
        assert!(!col(&def, "a").nullable);
        let b = col(&def, "b");
        assert_eq!(b.charset.as_deref(), Some("utf8"));
        assert!(b.nullable);
        assert!(col(&def, "f").nullable);
        assert_eq!(col(&def, "m").charset.as_deref(), Some("ascii"));
        assert!(!col(&def, "n").nullable);
        assert_eq!(col(&def, "o").charset.as_deref(), Some("latin1"));
    }

    #[test]
    fn string_escapes_in_enum() {
        let def = parse_create_table(
            r#"CREATE TABLE t (e enum('it\'s', "dq""x", 'back\\slash', 'n\nl', _utf8mb4'intro'))"#,
        )
        .expect("should succeed");
        assert_eq!(
            def.columns[0].args,
            ["it's", "dq\"x", "back\\slash", "n\nl", "intro"]
        );
    }

    #[test]
    fn unknown_type_is_an_error() {
        let err = parse_create_table("CREATE TABLE t (a frobnicate)").expect_err("should fail");
        assert!(matches!(err, DdlError::Unparseable { at: 18, .. }), "{err}");
    }

    #[test]
    fn create_variants() {
        let mut m = SchemaModel::new();
        assert_eq!(
            m.apply("db", "CREATE TABLE t (a int)")
                .expect("should succeed"),
            vec![Change::Created {
                db: "db".into(),
                table: "t".into()
            }]
        );
        assert_eq!(
            m.apply("db", "CREATE TABLE IF NOT EXISTS t (a int, b int)")
                .expect("should succeed"),
            vec![]
        );
        assert_eq!(t(&m, "t").columns.len(), 1);
        let changes = m
            .apply("db", "CREATE OR REPLACE TABLE t (a int, b int)")
            .expect("should succeed");
        assert_eq!(
            changes,
            vec![
                Change::Dropped {
                    db: "db".into(),
                    table: "t".into()
                },
                Change::Created {
                    db: "db".into(),
                    table: "t".into()
                }
            ]
        );
        assert_eq!(t(&m, "t").columns.len(), 2);
        assert_eq!(
            m.apply("db", "CREATE TEMPORARY TABLE tmp (a int)")
                .expect("should succeed"),
            vec![]
        );
        assert!(m.table("db", "tmp").is_none());
        // Temporary tables are ignored even when their body is odd.
        assert_eq!(
            m.apply("db", "CREATE TEMPORARY TABLE tmp2 SELECT 1")
                .expect("should succeed"),
            vec![]
        );
    }

    #[test]
    fn create_like() {
        let mut m = base_model();
        m.apply("db", "CREATE TABLE t2 LIKE t")
            .expect("should succeed");
        m.apply("other", "CREATE TABLE IF NOT EXISTS `x` (LIKE db.`t`)")
            .expect("should succeed");
        let t2 = t(&m, "t2");
        assert_eq!(t2.name, "t2");
        assert_eq!(t2.columns, t(&m, "t").columns);
        assert_eq!(
            m.table("other", "x").expect("should succeed").primary_key,
            ["id", "b"]
        );
        let err = m
            .apply("db", "CREATE TABLE t3 LIKE nope")
            .expect_err("should fail");
        assert!(
            matches!(&err, DdlError::Inconsistent { table, .. } if table == "t3"),
            "{err}"
        );
        assert!(m.table("db", "t3").is_none());
        assert!(parse_create_table("CREATE TABLE a LIKE b").is_err());
    }

    #[test]
    fn create_select() {
        let mut m = SchemaModel::new();
        m.apply(
            "db",
            "CREATE TABLE c (a int, b varchar(3)) AS SELECT * FROM x",
        )
        .expect("should succeed");
        assert_eq!(names(t(&m, "c")), ["a", "b"]);
        m.apply("db", "CREATE TABLE c2 (a int) IGNORE SELECT 1 AS a, 2 AS b")
            .expect("should succeed");
        assert_eq!(names(t(&m, "c2")), ["a"]);
        for sql in [
            "CREATE TABLE c3 AS SELECT * FROM x",
            "CREATE TABLE c3 SELECT 1",
            "CREATE TABLE c3 ENGINE=InnoDB SELECT 1",
            "CREATE TABLE c3 (SELECT 1)",
        ] {
            let err = m.apply("db", sql).expect_err("should fail");
            match err {
                DdlError::Unparseable { table, reason, .. } => {
                    assert_eq!(table, "c3");
                    assert!(
                        reason.contains("CREATE ... SELECT without columns"),
                        "{reason}"
                    );
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn alter_add_with_placement() {
        let mut m = base_model();
        let ch = m
            .apply(
                "db",
                "ALTER TABLE t ADD COLUMN x int FIRST, ADD y int AFTER a, ADD z int, \
                 ADD COLUMN IF NOT EXISTS a int, ADD IF NOT EXISTS w int",
            )
            .expect("should succeed");
        assert_eq!(ch, altered("t"));
        assert_eq!(names(t(&m, "t")), ["x", "id", "a", "y", "b", "c", "z", "w"]);
        m.apply("db", "ALTER TABLE t ADD (p int, q int NOT NULL)")
            .expect("should succeed");
        assert_eq!(names(t(&m, "t")).last(), Some(&"q"));
        assert!(!col(t(&m, "t"), "q").nullable);
        let err = m
            .apply("db", "ALTER TABLE t ADD a int")
            .expect_err("should fail");
        assert!(matches!(err, DdlError::Inconsistent { .. }));
        let err = m
            .apply("db", "ALTER TABLE t ADD k int AFTER missing")
            .expect_err("should fail");
        assert!(matches!(err, DdlError::Inconsistent { .. }));
    }

    #[test]
    fn alter_modify_and_change() {
        let mut m = base_model();
        m.apply("db", "ALTER TABLE t MODIFY a varchar(50) NOT NULL FIRST")
            .expect("should succeed");
        let def = t(&m, "t");
        assert_eq!(names(def), ["a", "id", "b", "c"]);
        assert_eq!(col(def, "a").args, ["50"]);
        assert!(!col(def, "a").nullable);
        m.apply("db", "ALTER TABLE t MODIFY COLUMN A bigint AFTER c")
            .expect("should succeed");
        assert_eq!(names(t(&m, "t")), ["id", "b", "c", "A"]);
        m.apply("db", "ALTER TABLE t MODIFY c mediumtext")
            .expect("should succeed");
        assert_eq!(col(t(&m, "t"), "c").base, "mediumtext");
        assert_eq!(names(t(&m, "t")), ["id", "b", "c", "A"]);
        // CHANGE renaming a key column keeps it in the key and in place.
        m.apply("db", "ALTER TABLE t CHANGE b bb int unsigned")
            .expect("should succeed");
        let def = t(&m, "t");
        assert_eq!(def.primary_key, ["id", "bb"]);
        assert_eq!(names(def), ["id", "bb", "c", "A"]);
        assert!(col(def, "bb").unsigned && !col(def, "bb").nullable);
        m.apply("db", "ALTER TABLE t CHANGE COLUMN `ID` `key` int FIRST")
            .expect("should succeed");
        assert_eq!(t(&m, "t").primary_key, ["key", "bb"]);
        m.apply(
            "db",
            "ALTER TABLE t MODIFY IF EXISTS nope int, CHANGE IF EXISTS nope2 x int",
        )
        .expect("should succeed");
        assert!(matches!(
            m.apply("db", "ALTER TABLE t MODIFY nope int"),
            Err(DdlError::Inconsistent { .. })
        ));
        assert!(matches!(
            m.apply("db", "ALTER TABLE t CHANGE nope x int"),
            Err(DdlError::Inconsistent { .. })
        ));
        assert!(matches!(
            m.apply("db", "ALTER TABLE t CHANGE c bb int"),
            Err(DdlError::Inconsistent { .. })
        ));
    }

    #[test]
    fn alter_drop_and_rename_columns() {
        let mut m = base_model();
        m.apply(
            "db",
            "ALTER TABLE t DROP COLUMN b, DROP a, DROP IF EXISTS zz, DROP COLUMN IF EXISTS yy",
        )
        .expect("should succeed");
        let def = t(&m, "t");
        assert_eq!(names(def), ["id", "c"]);
        assert_eq!(def.primary_key, ["id"]);
        m.apply(
            "db",
            "ALTER TABLE t RENAME COLUMN id TO ident, RENAME COLUMN c TO d",
        )
        .expect("should succeed");
        assert_eq!(names(t(&m, "t")), ["ident", "d"]);
        assert_eq!(t(&m, "t").primary_key, ["ident"]);
        assert!(matches!(
            m.apply("db", "ALTER TABLE t DROP COLUMN missing"),
            Err(DdlError::Inconsistent { .. })
        ));
        assert!(matches!(
            m.apply("db", "ALTER TABLE t RENAME COLUMN d TO ident"),
            Err(DdlError::Inconsistent { .. })
        ));
        // Failed statements leave the model untouched.
        let before = m.clone();
        assert!(m.apply("db", "ALTER TABLE t DROP d, DROP missing").is_err());
        assert_eq!(m, before);
    }

    #[test]
    fn alter_primary_key() {
        let mut m = base_model();
        m.apply("db", "ALTER TABLE t DROP PRIMARY KEY")
            .expect("should succeed");
        assert!(t(&m, "t").primary_key.is_empty());
        m.apply(
            "db",
            "ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY (a, c(10))",
        )
        .expect("should succeed");
        assert_eq!(t(&m, "t").primary_key, ["a", "c"]);
        assert!(!col(t(&m, "t"), "a").nullable);
        m.apply(
            "db",
            "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY USING BTREE (id)",
        )
        .expect("should succeed");
        assert_eq!(t(&m, "t").primary_key, ["id"]);
        m.apply("db", "ALTER TABLE t DROP INDEX `PRIMARY`")
            .expect("should succeed");
        assert!(t(&m, "t").primary_key.is_empty());
        assert!(matches!(
            m.apply("db", "ALTER TABLE t DROP PRIMARY KEY"),
            Err(DdlError::Inconsistent { .. })
        ));
        m.apply("db", "ALTER TABLE t ADD CONSTRAINT PRIMARY KEY (id)")
            .expect("should succeed");
        assert!(matches!(
            m.apply("db", "ALTER TABLE t ADD PRIMARY KEY (a)"),
            Err(DdlError::Inconsistent { .. })
        ));
        assert_eq!(
            m.apply("db", "DROP INDEX `PRIMARY` ON t")
                .expect("should succeed"),
            altered("t")
        );
        assert!(t(&m, "t").primary_key.is_empty());
        m.apply(
            "db",
            "ALTER TABLE t ADD COLUMN nid int NOT NULL PRIMARY KEY FIRST",
        )
        .expect("should succeed");
        assert_eq!(t(&m, "t").primary_key, ["nid"]);
    }

    #[test]
    fn alter_noop_specs() {
        let mut m = base_model();
        let before = t(&m, "t").clone();
        for spec in [
            "ADD INDEX i (a)",
            "ADD KEY (a, b)",
            "ADD UNIQUE u (a)",
            "ADD UNIQUE KEY IF NOT EXISTS u (a)",
            "ADD FULLTEXT INDEX f (c)",
            "ADD SPATIAL INDEX s (c)",
            "ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES o (id) ON DELETE CASCADE",
            "ADD FOREIGN KEY (b) REFERENCES o (id)",
            "ADD CONSTRAINT c1 CHECK (b > 0)",
            "ADD CHECK (b > 0)",
            "DROP INDEX i",
            "DROP KEY IF EXISTS i",
            "DROP FOREIGN KEY fk",
            "DROP CONSTRAINT c1",
            "DROP CHECK c1",
            "RENAME INDEX a TO b",
            "RENAME KEY a TO b",
            "ALTER COLUMN a SET DEFAULT 'x,y'",
            "ALTER a DROP DEFAULT",
            "ALTER COLUMN a SET INVISIBLE",
            "ALTER INDEX i INVISIBLE",
            "ALGORITHM=INPLACE",
            "LOCK = NONE",
            "ENGINE=InnoDB",
            "DEFAULT CHARSET=utf8mb4",
            "CHARACTER SET = latin1",
            "DEFAULT COLLATE utf8mb4_bin",
            "FORCE",
            "ORDER BY a, b DESC",
            "COMMENT='hello'",
            "COMMENT 'hello'",
            "AUTO_INCREMENT=100",
            "ROW_FORMAT=DYNAMIC KEY_BLOCK_SIZE=8",
            "ENGINE=InnoDB ROW_FORMAT=COMPRESSED, ALGORITHM=COPY",
            "DISABLE KEYS",
            "ENABLE KEYS",
            "DISCARD TABLESPACE",
            "PARTITION BY HASH(id) PARTITIONS 4",
            "DROP PARTITION p0, p1",
            "ADD PARTITION (PARTITION p3 VALUES LESS THAN (2000))",
            "REMOVE PARTITIONING",
            "TRUNCATE PARTITION p0",
            "UNION=(a,b)",
            "STATS_PERSISTENT=0, STATS_SAMPLE_PAGES=10",
            "WITH VALIDATION",
        ] {
            let sql = format!("ALTER TABLE t {spec}");
            assert_eq!(
                m.apply("db", &sql).expect("should succeed"),
                altered("t"),
                "{sql}"
            );
            assert_eq!(t(&m, "t"), &before, "{sql}");
        }
    }

    #[test]
    fn alter_many_specs_and_options() {
        let mut m = base_model();
        m.apply(
            "db",
            "ALTER ONLINE IGNORE TABLE `db`.`t` ADD COLUMN n int AFTER id, DROP COLUMN c, \
             MODIFY a char(2), ADD INDEX (n), ALGORITHM=INPLACE, LOCK=NONE",
        )
        .expect("should succeed");
        let def = t(&m, "t");
        assert_eq!(names(def), ["id", "n", "a", "b"]);
        assert_eq!(col(def, "a").base, "char");
    }

    #[test]
    fn alter_convert_charset() {
        let mut m = model(
            "CREATE TABLE t (a varchar(5), b text CHARSET latin1, c int, d enum('x'), e json)",
        );
        m.apply(
            "db",
            "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        )
        .expect("should succeed");
        let def = t(&m, "t");
        for name in ["a", "b", "d"] {
            assert_eq!(col(def, name).charset.as_deref(), Some("utf8mb4"), "{name}");
        }
        assert_eq!(col(def, "c").charset, None);
        assert_eq!(col(def, "e").charset, None);
        m.apply("db", "ALTER TABLE t CONVERT TO CHARSET binary")
            .expect("should succeed");
        let def = t(&m, "t");
        assert_eq!(col(def, "a").base, "varbinary");
        assert_eq!(col(def, "b").base, "blob");
        assert_eq!(col(def, "a").charset, None);
    }

    #[test]
    fn alter_rename_table() {
        let mut m = base_model();
        let ch = m
            .apply("db", "ALTER TABLE t RENAME TO t2")
            .expect("should succeed");
        assert_eq!(
            ch,
            vec![Change::Renamed {
                from: ("db".into(), "t".into()),
                to: ("db".into(), "t2".into())
            }]
        );
        assert!(m.table("db", "t").is_none());
        assert_eq!(t(&m, "t2").name, "t2");
        let ch = m
            .apply("db", "ALTER TABLE t2 ADD z int, RENAME AS other.t3")
            .expect("should succeed");
        assert_eq!(
            ch,
            vec![
                Change::Renamed {
                    from: ("db".into(), "t2".into()),
                    to: ("other".into(), "t3".into())
                },
                Change::Altered {
                    db: "other".into(),
                    table: "t3".into()
                }
            ]
        );
        assert_eq!(
            names(m.table("other", "t3").expect("should succeed")).last(),
            Some(&"z")
        );
        m.apply("other", "ALTER TABLE t3 RENAME t4")
            .expect("should succeed");
        assert!(m.table("other", "t4").is_some());
    }

    #[test]
    fn alter_unknown_table_is_ignored() {
        let mut m = base_model();
        assert_eq!(
            m.apply("db", "ALTER TABLE nope FROBNICATE everything (")
                .expect("should succeed"),
            vec![]
        );
        // Table names are case-sensitive.
        assert_eq!(
            m.apply("db", "ALTER TABLE T ADD x int")
                .expect("should succeed"),
            vec![]
        );
        assert_eq!(
            m.apply("other", "ALTER TABLE t ADD x int")
                .expect("should succeed"),
            vec![]
        );
        assert_eq!(t(&m, "t").columns.len(), 4);
    }

    #[test]
    fn unparseable_alters() {
        let mut m = base_model();
        let sql = "ALTER TABLE t ADD COLUMN";
        match m.apply("db", sql).expect_err("should fail") {
            DdlError::Unparseable {
                db,
                table,
                at,
                statement,
                ..
            } => {
                assert_eq!((db.as_str(), table.as_str()), ("db", "t"));
                assert_eq!(at, sql.len());
                assert_eq!(statement, sql);
            }
            other => panic!("{other}"),
        }
        let sql = "ALTER TABLE t FROBNICATE x";
        let err = m.apply("db", sql).expect_err("should fail");
        assert!(matches!(err, DdlError::Unparseable { at: 14, .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("table db.t: cannot parse DDL at byte 14")
        );
        for sql in [
            "ALTER TABLE t ADD COLUMN x",
            "ALTER TABLE t ADD x int BOGUS",
            "ALTER TABLE t ADD x int,",
            "ALTER TABLE t DROP",
            "ALTER TABLE t MODIFY a int AFTER",
            "ALTER TABLE t ADD x int DEFAULT",
            "ALTER TABLE t ADD x int COMMENT 'oops",
            "ALTER TABLE t ADD x int CHECK (x > 0",
            "ALTER TABLE t ADD SYSTEM VERSIONING",
            "ALTER TABLE t ADD x int; ALTER TABLE t ADD y int",
            "ALTER TABLE t ENGINE=",
            "ALTER TABLE t ADD x int /* unterminated",
        ] {
            let err = m.apply("db", sql).expect_err("should fail");
            assert!(
                matches!(&err, DdlError::Unparseable { table, at, .. } if table == "t" && *at <= sql.len()),
                "{sql}: {err}"
            );
        }
    }

    #[test]
    fn unparseable_creates() {
        let mut m = SchemaModel::new();
        for sql in [
            "CREATE TABLE t",
            "CREATE TABLE t (",
            "CREATE TABLE t ()",
            "CREATE TABLE t (a int",
            "CREATE TABLE t (a int,)",
            "CREATE TABLE t (a int) WITH SYSTEM VERSIONING",
            "CREATE TABLE t (a int WITH SYSTEM VERSIONING)",
            "CREATE TABLE t (a int) COMMENT='x",
        ] {
            let err = m.apply("db", sql).expect_err("should fail");
            assert!(
                matches!(&err, DdlError::Unparseable { table, .. } if table == "t"),
                "{sql}: {err}"
            );
        }
        assert!(matches!(
            m.apply("db", "CREATE TABLE t (a int, A int)"),
            Err(DdlError::Inconsistent { .. })
        ));
        assert!(m.tables().next().is_none());
        // Explicit period columns are modelled like any other column.
        m.apply(
            "db",
            "CREATE TABLE v (a int, rs timestamp(6) GENERATED ALWAYS AS ROW START, \
             re timestamp(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME(rs, re)) \
             WITH SYSTEM VERSIONING",
        )
        .expect("should succeed");
        assert_eq!(names(t(&m, "v")), ["a", "rs", "re"]);
    }

    #[test]
    fn long_statement_is_truncated_in_errors() {
        let sql = format!("CREATE TABLE t (a int, {} é)", "b".repeat(300));
        let err = parse_create_table(&sql).expect_err("should fail");
        let DdlError::Unparseable { statement, .. } = err else {
            panic!("{err}");
        };
        assert_eq!(statement.chars().count(), 200);
        assert!(sql.starts_with(&statement));
        let sql = format!("CREATE TABLE t ({})", "é".repeat(300));
        let DdlError::Unparseable { statement, .. } =
            parse_create_table(&sql).expect_err("should fail")
        else {
            panic!();
        };
        assert_eq!(statement.chars().count(), 200);
    }

    #[test]
    fn rename_table_swap() {
        let mut m = model("CREATE TABLE a (x int)");
        m.apply("db", "CREATE TABLE b (y int)")
            .expect("should succeed");
        let ch = m
            .apply("db", "RENAME TABLE a TO tmp, b TO a, tmp TO b")
            .expect("should succeed");
        assert_eq!(ch.len(), 3);
        assert_eq!(names(t(&m, "a")), ["y"]);
        assert_eq!(names(t(&m, "b")), ["x"]);
        assert_eq!(t(&m, "a").name, "a");
        assert!(m.table("db", "tmp").is_none());
        // Unknown sources are skipped; other databases work.
        let ch = m
            .apply("db", "RENAME TABLE nope TO x, db.a TO `other`.`a2`")
            .expect("should succeed");
        assert_eq!(
            ch,
            vec![Change::Renamed {
                from: ("db".into(), "a".into()),
                to: ("other".into(), "a2".into())
            }]
        );
        assert!(m.apply("db", "RENAME TABLE b").is_err());
        assert!(m.apply("db", "RENAME TABLE b TO").is_err());
        assert_eq!(
            m.apply("db", "RENAME USER a TO b").expect("should succeed"),
            vec![]
        );
    }

    #[test]
    fn drop_and_truncate() {
        let mut m = model("CREATE TABLE a (x int)");
        m.apply("db", "CREATE TABLE b (x int)")
            .expect("should succeed");
        m.apply("o", "CREATE TABLE c (x int)")
            .expect("should succeed");
        assert_eq!(
            m.apply("db", "TRUNCATE TABLE a").expect("should succeed"),
            vec![Change::Truncated {
                db: "db".into(),
                table: "a".into()
            }]
        );
        assert_eq!(
            m.apply("db", "TRUNCATE o.c").expect("should succeed").len(),
            1
        );
        assert_eq!(
            m.apply("db", "TRUNCATE nope").expect("should succeed"),
            vec![]
        );
        assert_eq!(
            m.apply("db", "DROP TEMPORARY TABLE IF EXISTS a")
                .expect("should succeed"),
            vec![]
        );
        assert_eq!(
            m.apply("db", "DROP /*!40005 TEMPORARY */ TABLE IF EXISTS `a`")
                .expect("should succeed"),
            vec![]
        );
        assert!(m.table("db", "a").is_some());
        assert_eq!(
            m.apply("db", "DROP TABLE IF EXISTS `a` /* generated by server */")
                .expect("should succeed"),
            vec![Change::Dropped {
                db: "db".into(),
                table: "a".into()
            }]
        );
        let ch = m
            .apply("db", "DROP TABLE IF EXISTS b, nope, `o`.`c` CASCADE;")
            .expect("should succeed");
        assert_eq!(ch.len(), 2);
        assert!(m.tables().next().is_none());
        assert!(m.apply("db", "DROP TABLE").is_err());
    }

    #[test]
    fn comments_and_executable_comments() {
        let mut m = SchemaModel::new();
        m.apply(
            "db",
            "/* leading */ CREATE -- comment\n TABLE # hash comment\n `t` (\n\
             `a` int /*!50606 NOT NULL */, /*M!100301 `b` int, */\n\
             `c` int /* plain comment NOT NULL */ ) /*!50100 PARTITION BY KEY (a) */;",
        )
        .expect("should succeed");
        let def = t(&m, "t");
        assert_eq!(names(def), ["a", "b", "c"]);
        assert!(!col(def, "a").nullable);
        assert!(col(def, "c").nullable);
        m.apply(
            "db",
            "ALTER TABLE t /*!80000 ADD COLUMN d int, */ ALGORITHM=COPY",
        )
        .expect("should succeed");
        assert_eq!(names(t(&m, "t")), ["a", "b", "c", "d"]);
        // `--` without a following space is not a comment.
        let def = parse_create_table("CREATE TABLE t (a int DEFAULT --1)").expect("should succeed");
        assert_eq!(def.columns.len(), 1);
    }

    #[test]
    fn ignored_statements() {
        let mut m = base_model();
        let before = m.clone();
        for sql in [
            "",
            "   ",
            "# Dummy event replacing event type 160",
            "BEGIN",
            "COMMIT",
            "XA START 'x'",
            "XA END 'x'",
            "SAVEPOINT s1",
            "INSERT INTO t VALUES (1, 'unterminated",
            "UPDATE t SET a = 1",
            "DELETE FROM t",
            "CREATE DATABASE d",
            "CREATE SCHEMA IF NOT EXISTS d",
            "DROP DATABASE d",
            "CREATE INDEX i ON t (a)",
            "CREATE UNIQUE INDEX i ON t (a)",
            "DROP INDEX i ON t",
            "CREATE VIEW v AS SELECT * FROM t",
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            "CREATE DEFINER=`root`@`%` TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
            "CREATE DEFINER=`root`@`localhost` PROCEDURE p() BEGIN CREATE TABLE x (a int); END",
            "CREATE FUNCTION f() RETURNS int RETURN 1",
            "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM t",
            "CREATE USER 'u'@'%' IDENTIFIED BY 'p'",
            "CREATE ROLE r",
            "CREATE SEQUENCE s",
            "DROP VIEW v",
            "DROP TRIGGER tr",
            "DROP PROCEDURE IF EXISTS p",
            "DROP FUNCTION f",
            "DROP EVENT e",
            "DROP USER u",
            "DROP SEQUENCE s",
            "GRANT ALL ON *.* TO u",
            "REVOKE ALL ON *.* FROM u",
            "FLUSH PRIVILEGES",
            "SET @a = 1",
            "/*!40101 SET NAMES utf8mb4 */",
            "ANALYZE TABLE t",
            "OPTIMIZE TABLE t",
            "REPAIR TABLE t",
            "ALTER USER u IDENTIFIED BY 'x'",
            "ALTER DATABASE d CHARACTER SET utf8mb4",
            "ALTER DEFINER=root VIEW v AS SELECT 1",
            "ALTER EVENT e DISABLE",
            "(SELECT 1)",
            "'string first",
        ] {
            assert_eq!(m.apply("db", sql).expect("should succeed"), vec![], "{sql}");
        }
        assert_eq!(m, before);
    }

    #[test]
    fn qualified_names_and_default_db() {
        let mut m = SchemaModel::new();
        m.apply("", "CREATE TABLE `shop`.`items` (id int)")
            .expect("should succeed");
        m.apply("other", "CREATE TABLE shop.`odd``name` (id int)")
            .expect("should succeed");
        assert!(m.table("shop", "items").is_some());
        assert!(m.table("shop", "odd`name").is_some());
        m.apply("other", "ALTER TABLE shop.items ADD x int")
            .expect("should succeed");
        assert_eq!(
            m.table("shop", "items")
                .expect("should succeed")
                .columns
                .len(),
            2
        );
        let listed: Vec<_> = m.tables().map(|(d, t, _)| (d, t)).collect();
        assert_eq!(listed, [("shop", "items"), ("shop", "odd`name")]);
        let err = m
            .apply("other", "ALTER TABLE shop.items ADD")
            .expect_err("should fail");
        assert!(matches!(&err, DdlError::Unparseable { db, .. } if db == "shop"));
        assert!(m.remove("shop", "items").is_some());
        assert!(m.remove("shop", "items").is_none());
        m.insert(
            "x",
            TableDef {
                name: "y".into(),
                columns: vec![],
                primary_key: vec![],
            },
        );
        assert!(m.table("x", "y").is_some());
    }

    #[test]
    fn column_names_are_case_insensitive() {
        let mut m = model("CREATE TABLE t (Id int, Name varchar(3), PRIMARY KEY (id))");
        assert_eq!(t(&m, "t").primary_key, ["Id"]);
        m.apply("db", "ALTER TABLE t DROP COLUMN NAME, ADD ÉTÉ int")
            .expect("should succeed");
        m.apply("db", "ALTER TABLE t DROP COLUMN été")
            .expect("should succeed");
        assert_eq!(names(t(&m, "t")), ["Id"]);
    }

    #[test]
    fn no_panic_on_truncations_and_garbage() {
        let mut inputs = vec![
            MARIADB.to_string(),
            MYSQL8.to_string(),
            "ALTER TABLE t ADD COLUMN x int FIRST, CHANGE b bb int AFTER a, DROP PRIMARY KEY, \
             ADD PRIMARY KEY (id), RENAME TO db.z, CONVERT TO CHARACTER SET utf8mb4"
                .to_string(),
            "RENAME TABLE t TO u, u TO t".to_string(),
            "DROP TABLE IF EXISTS `t` /* generated by server */".to_string(),
            "CREATE TABLE é (`é` enum('a\\'b','c''d') /*!80023 INVISIBLE */) /*M!100 x */"
                .to_string(),
            "ALTER TABLE t ORDER BY a, b, ALTER COLUMN a SET DEFAULT (1+(2*3))".to_string(),
        ];
        inputs.push("((((((((((".repeat(50));
        inputs.push(")))))".to_string());
        inputs.push("\u{0}\u{1}`'\"\\/*!*/*/--#".to_string());
        for sql in &inputs {
            for end in 0..=sql.len() {
                let Some(prefix) = sql.get(..end) else {
                    continue;
                };
                let mut m = base_model();
                let _ = m.apply("db", prefix);
                let _ = m.apply("db", &prefix.replacen("`t`", "t", 1));
                let _ = parse_create_table(prefix);
                if let Some(suffix) = sql.get(end..) {
                    let _ = m.apply("db", suffix);
                }
            }
        }
    }

    #[test]
    fn no_panic_on_token_soup() {
        const VOCAB: &[&str] = &[
            "CREATE",
            "ALTER",
            "TABLE",
            "t",
            "ADD",
            "DROP",
            "COLUMN",
            "PRIMARY",
            "KEY",
            "(",
            ")",
            ",",
            ".",
            "int",
            "varchar",
            "enum",
            "'a'",
            "`b`",
            "NOT",
            "NULL",
            "DEFAULT",
            "FIRST",
            "AFTER",
            "CHANGE",
            "MODIFY",
            "RENAME",
            "TO",
            "IF",
            "EXISTS",
            "LIKE",
            "SELECT",
            "=",
            "/*!",
            "*/",
            "-",
            "1",
            "CHECK",
            "AS",
            "ON",
            "UPDATE",
            "CONVERT",
            "CHARACTER",
            "SET",
            "ORDER",
            "BY",
            "PARTITION",
            "WITH",
            "SYSTEM",
            "VERSIONING",
            ";",
            "\"",
            "é",
            "#",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(seed >> 33).unwrap_or(0)
        };
        for _ in 0..3000 {
            let len = next() % 24;
            let mut sql = String::from(if next() % 2 == 0 {
                "ALTER TABLE t "
            } else {
                "CREATE TABLE n "
            });
            for _ in 0..len {
                sql.push_str(VOCAB[next() % VOCAB.len()]);
                sql.push(' ');
            }
            let mut m = base_model();
            let before = m.clone();
            if m.apply("db", &sql).is_err() {
                assert_eq!(m, before, "{sql}");
            }
            let _ = parse_create_table(&sql);
        }
    }

    #[test]
    fn error_display() {
        let err = DdlError::Inconsistent {
            db: "d".into(),
            table: "t".into(),
            reason: Inconsistency::NoColumn("x".into()),
            statement: "ALTER TABLE t DROP x".into(),
        };
        assert_eq!(
            err.to_string(),
            "table d.t: column x does not exist: ALTER TABLE t DROP x"
        );
    }
}
