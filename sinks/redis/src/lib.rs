//! The Redis sink: a cache of the captured tables.
//!
//! Each row is stored at a key made from a template (default
//! `{schema}.{table}:{key}`, after the sink's `prefix`; `{key}` is the key
//! columns joined by `:`, `{<column>}` one key column, `{database}` the
//! source database; `%` and `:` in values are escaped so keys never
//! collide), either as a hash with one field per column as text
//! ([`tributary_core::render::text`]) or as a JSON object of the same
//! texts. Creates, updates and snapshot reads set the row's visible
//! columns (a value the source could not see, unchanged TOAST, leaves the
//! field as it is; NULL removes a hash field, is `null` in JSON); deletes
//! remove the key; a truncate removes every key of the table. Optional:
//! a TTL on every written key, and the key published to a channel after
//! each change (cache invalidation).
//!
//! A batch runs in chunks, each one `MULTI`/`EXEC` of native commands:
//! per record its commands, then, per partition, the offset after its
//! last record into the hash `<prefix>tributary:offsets:<sink>`, so the
//! offsets move with the data and after a crash the sink resumes where
//! Redis is (exactly-once effect). A command Redis refuses at run time
//! (`WRONGTYPE`) does not stop a transaction: the offsets are set back to
//! just before its record at once (a crash in between those two steps
//! would leave them past it: the one window where a refused record could
//! be missed). Chunks with a JSON row to merge (values the source could
//! not see) run as a Lua script instead, which stops at a refused command.
//! The next chunk is built while Redis runs the previous. Once Redis held
//! a partition's offset, finding it gone means Redis lost its data: the
//! sink rewinds to what Redis stores and replays.
//! Durability is Redis's own (AOF/RDB).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use redis::Commands as _;
use tributary_core::render;
use tributary_core::sink::BoxFuture;
use tributary_core::{Op, Sink, SinkError, SinkRecord, TopicPartition};

/// Settings.
#[derive(Debug, Clone)]
pub struct RedisSinkConfig {
    /// The sink's name (names its offsets hash).
    pub name: String,
    /// `redis://host:port/db`.
    pub url: String,
    /// Prepended to every key.
    pub prefix: String,
    /// Key template (see the module documentation).
    pub key: String,
    /// How a row is stored.
    pub format: RowFormat,
    /// Expire written keys after this many seconds.
    pub ttl_seconds: Option<u64>,
    /// Publish each changed key to this channel.
    pub publish: Option<String>,
}

/// How a row is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowFormat {
    /// A hash, a field per column.
    #[default]
    Hash,
    /// A string holding a JSON object.
    Json,
}

/// The default key template.
pub const DEFAULT_KEY: &str = "{schema}.{table}:{key}";

/// The sink.
pub struct RedisSink {
    cfg: RedisSinkConfig,
    /// `cfg.key`, parsed.
    template: KeyTemplate,
    client: redis::Client,
    conn: Arc<Mutex<Option<redis::Connection>>>,
    /// The `topic/partition` fields of the offsets hash that Redis has
    /// held for this sink: one missing now means Redis lost the data.
    known: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("name", &self.cfg.name)
            .field("prefix", &self.cfg.prefix)
            .finish()
    }
}

impl RedisSink {
    /// A sink for `cfg` (connects on first use).
    pub fn new(cfg: RedisSinkConfig) -> Result<Self, SinkError> {
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| SinkError::fatal_from("redis URL", e))?;
        Ok(Self {
            template: KeyTemplate::parse(&cfg.key),
            cfg,
            client,
            conn: Arc::new(Mutex::new(None)),
            known: Mutex::default(),
        })
    }

    fn offsets_key(&self) -> String {
        format!("{}tributary:offsets:{}", self.cfg.prefix, self.cfg.name)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request applying `chunk`: a transaction of native commands
    /// when every command of it is one that cannot fail once queued, else
    /// the Lua script; or the index of a record the cache cannot hold and
    /// why.
    fn request(&self, chunk: &[SinkRecord]) -> Result<Request, (usize, String)> {
        match self.transaction(chunk)? {
            Some(t) => Ok(Request::Multi(t)),
            None => self.script(chunk).map(Request::Lua),
        }
    }

    /// `MULTI`, per partition of the chunk its stored offset (`HMGET`,
    /// read before anything changes), each record's commands, the new
    /// offsets (`HSET`), `EXEC`: the data and the offsets go in together
    /// (a command refused when queued, as on OOM, aborts the whole). A
    /// command refused at run time (`WRONGTYPE`: the key holds another
    /// type) does not stop the others: [`Transaction::run`] then sets the
    /// offsets back to just before its record at once. `None` for a chunk
    /// that needs the script: a JSON row with values the source could not
    /// see is merged into the stored object.
    fn transaction(&self, chunk: &[SinkRecord]) -> Result<Option<Transaction>, (usize, String)> {
        let key = self.offsets_key();
        // The chunk's partitions (fields of the offsets hash), each
        // record's, and the offset after each partition's last record.
        let mut fields: Vec<String> = Vec::new();
        let mut next: Vec<u64> = Vec::new();
        let mut field_of = Vec::with_capacity(chunk.len());
        let mut last_tp: Option<(&Arc<str>, u32, usize)> = None;
        for r in chunk {
            let f = match last_tp {
                Some((t, p, f)) if p == r.partition && Arc::ptr_eq(t, &r.topic) => f,
                _ => {
                    let tp = format!("{}/{}", r.topic, r.partition);
                    let f = match fields.iter().position(|x| *x == tp) {
                        Some(f) => f,
                        None => {
                            fields.push(tp);
                            next.push(0);
                            fields.len() - 1
                        }
                    };
                    last_tp = Some((&r.topic, r.partition, f));
                    f
                }
            };
            next[f] = r.offset + 1;
            field_of.push(f);
        }
        // The request, encoded here (while Redis runs the previous one).
        let mut out = Resp {
            buf: Vec::with_capacity(chunk.len() * 160 + 256),
            commands: 0,
        };
        out.buf.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        out.command("HMGET", 1 + fields.len());
        out.arg(&key);
        for f in &fields {
            out.arg(f);
        }
        let mut records = Vec::with_capacity(chunk.len());
        let mut scratch = String::new();
        for (i, (r, &f)) in chunk.iter().zip(&field_of).enumerate() {
            let before = out.commands;
            if !commands(&self.cfg, &self.template, r, &mut out, &mut scratch)
                .map_err(|e| (i, e))?
            {
                return Ok(None);
            }
            records.push((f, r.offset, out.commands - before));
        }
        out.command("HSET", 1 + 2 * fields.len());
        out.arg(&key);
        for (f, n) in fields.iter().zip(&next) {
            out.arg(f);
            out.arg(&n.to_string());
        }
        out.buf.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        let known = self.known();
        let was_known = fields.iter().map(|f| known.contains(f)).collect();
        Ok(Some(Transaction {
            packed: out.buf,
            queued: out.commands,
            key,
            fields,
            was_known,
            records,
        }))
    }

    /// The script applying `chunk`, or the index of a record the cache
    /// cannot hold and why.
    fn script(&self, chunk: &[SinkRecord]) -> Result<redis::Cmd, (usize, String)> {
        let mut cmd = redis::cmd("EVAL");
        // EVAL, not EVALSHA: the script is small, and this needs no
        // script cache on the server.
        cmd.arg(APPLY_SCRIPT).arg(1).arg(self.offsets_key());
        // Once offsets were stored, a missing offsets hash means Redis
        // lost the data (restarted without persistence, flushed).
        cmd.arg(if self.known().is_empty() { "0" } else { "1" });
        let mut tp_text = String::new();
        let mut last_tp: Option<(&Arc<str>, u32)> = None;
        let mut scratch = String::new();
        for (i, r) in chunk.iter().enumerate() {
            let mut ops = ScriptArgs::default();
            commands(&self.cfg, &self.template, r, &mut ops, &mut scratch).map_err(|e| (i, e))?;
            if last_tp.is_none_or(|(t, p)| p != r.partition || !Arc::ptr_eq(t, &r.topic)) {
                tp_text = format!("{}/{}", r.topic, r.partition);
                last_tp = Some((&r.topic, r.partition));
            }
            cmd.arg(&tp_text).arg(r.offset + 1).arg(ops.commands);
            for a in ops.args {
                cmd.arg(a);
            }
        }
        Ok(cmd)
    }

    /// Runs `f` on the connection in a blocking thread, connecting first
    /// if needed; a failed connection is dropped for the next call.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T> + Send + 'static,
    ) -> Result<T, SinkError> {
        self.start(f)
            .await
            .map_err(|e| SinkError::transient_from("Redis worker", e))?
    }

    /// [`Self::with_conn`], started now; await the handle for its result.
    fn start<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T> + Send + 'static,
    ) -> tokio::task::JoinHandle<Result<T, SinkError>> {
        let (client, conn) = (self.client.clone(), Arc::clone(&self.conn));
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                *guard = Some(
                    client
                        .get_connection()
                        .map_err(|e| SinkError::transient_from("connecting to Redis", e))?,
                );
            }
            let Some(c) = guard.as_mut() else {
                return Err(SinkError::transient("no Redis connection"));
            };
            f(c).map_err(|e| {
                *guard = None;
                // A server that is loading, busy, read-only (a failover),
                // out of memory or asking to retry will take the batch later.
                let busy = matches!(
                    e.code(),
                    Some("LOADING" | "BUSY" | "READONLY" | "OOM" | "TRYAGAIN" | "MASTERDOWN")
                );
                if busy || e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    SinkError::transient_from("Redis", e)
                } else {
                    SinkError::fatal_from("Redis", e)
                }
            })
        })
    }
}

/// A script started: how many records it applied, and the error that
/// stopped it ("" if none).
type Running = tokio::task::JoinHandle<Result<(usize, String), SinkError>>;

/// How a chunk is applied.
enum Request {
    /// The Lua script ([`APPLY_SCRIPT`]).
    Lua(redis::Cmd),
    /// A transaction of native commands ([`RedisSink::transaction`]).
    Multi(Transaction),
}

/// A chunk as one `MULTI`/`EXEC`.
struct Transaction {
    /// `MULTI`, the commands, `EXEC`, encoded.
    packed: Vec<u8>,
    /// The commands between `MULTI` and `EXEC`.
    queued: usize,
    /// The offsets hash.
    key: String,
    /// Its fields the chunk writes (`topic/partition`).
    fields: Vec<String>,
    /// Per field, whether Redis held it before for this sink.
    was_known: Vec<bool>,
    /// Per record: its field, its offset, its command count.
    records: Vec<(usize, u64, usize)>,
}

impl Transaction {
    /// Runs it: how many records were applied and the error that stopped
    /// the rest ("" if none; `TRIBUTARY_LOST` if Redis no longer held
    /// offsets it held before: then the fields it just wrote are removed
    /// again, so the sink replays those partitions from the start).
    fn run(self, c: &mut redis::Connection) -> redis::RedisResult<(usize, String)> {
        use redis::{ConnectionLike as _, Value};
        // The replies to MULTI and to each queued command (`QUEUED`, or
        // an error that aborts the transaction), then EXEC's.
        let vals: Vec<Value> = match c
            .req_packed_commands(&self.packed, self.queued + 1, 1)?
            .pop()
        {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "EXEC did not answer with the commands' replies",
                )));
            }
        };
        let before: Vec<Option<u64>> = match vals.first() {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    redis::from_redis_value::<Option<u64>>(v.clone())
                        .ok()
                        .flatten()
                })
                .collect(),
            _ => vec![None; self.fields.len()],
        };
        let lost = self
            .was_known
            .iter()
            .zip(&before)
            .any(|(known, b)| *known && b.is_none());
        if lost {
            redis::cmd("HDEL")
                .arg(&self.key)
                .arg(&self.fields)
                .query::<()>(c)?;
            return Ok((0, "TRIBUTARY_LOST".into()));
        }
        let mut at = 1;
        for (i, &(_, _, n)) in self.records.iter().enumerate() {
            for _ in 0..n {
                if let Some(Value::ServerError(e)) = vals.get(at) {
                    // Not expected (see `transaction`): the offsets go back
                    // to just before record i, so nothing is skipped.
                    let mut back: Vec<Option<u64>> = before.clone();
                    for &(f, off, _) in &self.records[..i] {
                        back[f] = Some(off + 1);
                    }
                    let mut set = redis::cmd("HSET");
                    set.arg(&self.key);
                    let mut gone = Vec::new();
                    for (f, b) in self.fields.iter().zip(&back) {
                        match b {
                            Some(o) => {
                                set.arg(f).arg(*o);
                            }
                            None => gone.push(f),
                        }
                    }
                    let mut fix = redis::pipe();
                    fix.atomic();
                    if gone.len() < self.fields.len() {
                        fix.add_command(set).ignore();
                    }
                    if !gone.is_empty() {
                        fix.cmd("HDEL").arg(&self.key).arg(&gone).ignore();
                    }
                    fix.query::<()>(c)?;
                    return Ok((i, e.to_string()));
                }
                at += 1;
            }
        }
        Ok((self.records.len(), String::new()))
    }
}

/// Records per script: large enough to amortise a round trip, small
/// enough that building the next overlaps Redis running this one.
const CHUNK: usize = 250;

/// Applies a batch: `ARGV` holds, per record, `topic/partition`, the
/// offset after it, its command count, then each command as an argument
/// count, a name and arguments. A command Redis refuses ends it there.
/// Then it stores, for each partition, the offset after its last applied
/// record (atomically with the data: a script runs whole). Returns the
/// records applied and the error that stopped it ("" if none).
const APPLY_SCRIPT: &str = r#"
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 'TRIBUTARY_LOST'}
end
local i = 2
local done = 0
local err = ''
local offs = {}
while i <= #ARGV do
  local tp, off, nops = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  for _ = 1, nops do
    local n = tonumber(ARGV[i])
    local name = ARGV[i + 1]
    local r
    if name == '__MERGE' then
      local k, doc, ttl = ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
      local cur = redis.pcall('GET', k)
      if type(cur) == 'string' then
        local ok, o = pcall(cjson.decode, cur)
        if ok and type(o) == 'table' then
          for f, v in pairs(cjson.decode(doc)) do o[f] = v end
          doc = cjson.encode(o)
        end
      end
      if ttl > 0 then
        r = redis.pcall('SET', k, doc, 'EX', ttl)
      else
        r = redis.pcall('SET', k, doc)
      end
    else
      r = redis.pcall(name, unpack(ARGV, i + 2, i + 1 + n))
    end
    i = i + 2 + n
    if type(r) == 'table' and r.err then
      err = r.err
      break
    end
  end
  if err ~= '' then break end
  offs[tp] = off
  done = done + 1
end
local kv = {}
for tp, off in pairs(offs) do
  kv[#kv + 1] = tp
  kv[#kv + 1] = off
end
if #kv > 0 then redis.call('HSET', KEYS[1], unpack(kv)) end
return {done, err}
"#;

/// `s` with Redis glob characters escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// A key template, parsed once.
#[derive(Debug)]
struct KeyTemplate {
    /// As configured (for messages).
    text: String,
    parts: Vec<Part>,
    /// Whether it has `{key}`.
    whole: bool,
}

/// A piece of a key template.
#[derive(Debug, PartialEq)]
enum Part {
    Lit(String),
    Database,
    Schema,
    Table,
    /// `{key}`: the key columns' values joined by `:`.
    Key,
    /// `{name}`: that key column's value (the text as written if no key
    /// column has the name).
    Column(String),
}

impl KeyTemplate {
    fn parse(text: &str) -> Self {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let inner = &rest[open + 1..];
            let Some(close) = inner.find('}') else {
                lit.push_str(&rest[open..]);
                rest = "";
                break;
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(match &inner[..close] {
                "database" => Part::Database,
                "schema" => Part::Schema,
                "table" => Part::Table,
                "key" => Part::Key,
                name => Part::Column(name.to_string()),
            });
            rest = &inner[close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let whole = parts.contains(&Part::Key);
        Self {
            text: text.to_string(),
            parts,
            whole,
        }
    }
}

/// `d` as text appended to `out`, `%` and `:` escaped so key parts
/// cannot run into each other (NULL as nothing).
fn push_key_part(out: &mut String, ty: &tributary_core::ColumnType, d: &tributary_core::Datum) {
    let start = out.len();
    render::write_text(out, ty, d);
    if out[start..].contains(['%', ':']) {
        let raw = out.split_off(start);
        for ch in raw.chars() {
            match ch {
                '%' => out.push_str("%25"),
                ':' => out.push_str("%3A"),
                c => out.push(c),
            }
        }
    }
}

/// The key of the row whose key column values are `key`; an error names
/// a key column the template leaves out (rows would share a key).
fn row_key(
    prefix: &str,
    template: &KeyTemplate,
    table: &tributary_core::TableSchema,
    key: &[tributary_core::Datum],
) -> Result<String, String> {
    let key_col = |name: &str| {
        table.key.iter().zip(key).find_map(|(&i, d)| {
            table
                .columns
                .get(i)
                .filter(|c| c.name == name)
                .map(|c| (c, d))
        })
    };
    if !template.whole {
        for &i in &table.key {
            let Some(col) = table.columns.get(i) else {
                continue;
            };
            if !template
                .parts
                .iter()
                .any(|p| matches!(p, Part::Column(n) if *n == col.name))
            {
                return Err(format!(
                    "key template {:?} leaves out key column {} of table {}: rows would share keys",
                    template.text,
                    col.name,
                    table.qualified_name()
                ));
            }
        }
    }
    let mut out = String::with_capacity(prefix.len() + 48);
    out.push_str(prefix);
    for part in &template.parts {
        match part {
            Part::Lit(s) => out.push_str(s),
            Part::Database => out.push_str(&table.database),
            Part::Schema => out.push_str(&table.schema),
            Part::Table => out.push_str(&table.table),
            Part::Key => {
                let mut first = true;
                for (&i, d) in table.key.iter().zip(key) {
                    let Some(col) = table.columns.get(i) else {
                        continue;
                    };
                    if !first {
                        out.push(':');
                    }
                    first = false;
                    push_key_part(&mut out, &col.ty, d);
                }
            }
            Part::Column(name) => match key_col(name) {
                Some((col, d)) => push_key_part(&mut out, &col.ty, d),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            },
        }
    }
    Ok(out)
}

/// The SCAN pattern of every key of `table`.
fn table_pattern(
    prefix: &str,
    template: &KeyTemplate,
    table: &tributary_core::TableSchema,
) -> String {
    // Literal text escaped, placeholders (key values) matching anything.
    let mut out = glob_escape(prefix);
    for part in &template.parts {
        match part {
            Part::Lit(s) => out.push_str(&glob_escape(s)),
            Part::Database => out.push_str(&glob_escape(&table.database)),
            Part::Schema => out.push_str(&glob_escape(&table.schema)),
            Part::Table => out.push_str(&glob_escape(&table.table)),
            Part::Key | Part::Column(_) => out.push('*'),
        }
    }
    out
}

/// Where a record's commands go: a command's name and argument count,
/// then its arguments.
trait Out {
    fn command(&mut self, name: &str, args: usize);
    fn arg(&mut self, a: &str);
    /// Whether it takes `__MERGE` (only the script does).
    fn merges(&self) -> bool;
}

/// Commands encoded as Redis's protocol (RESP) for a transaction.
struct Resp {
    buf: Vec<u8>,
    commands: usize,
}

impl Resp {
    fn header(&mut self, kind: u8, n: usize) {
        self.buf.push(kind);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&digits[at..]);
        self.buf.extend_from_slice(b"\r\n");
    }
}

impl Out for Resp {
    fn command(&mut self, name: &str, args: usize) {
        self.header(b'*', args + 1);
        self.arg(name);
        self.commands += 1;
    }

    fn arg(&mut self, a: &str) {
        self.header(b'$', a.len());
        self.buf.extend_from_slice(a.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    fn merges(&self) -> bool {
        false
    }
}

/// A record's commands as [`APPLY_SCRIPT`] takes them: per command its
/// argument count, its name, its arguments.
#[derive(Default)]
struct ScriptArgs {
    commands: usize,
    args: Vec<String>,
}

impl Out for ScriptArgs {
    fn command(&mut self, name: &str, args: usize) {
        self.commands += 1;
        self.args.push(args.to_string());
        self.args.push(name.to_string());
    }

    fn arg(&mut self, a: &str) {
        self.args.push(a.to_string());
    }

    fn merges(&self) -> bool {
        true
    }
}

/// Writes the commands that apply `r` to `out` (`scratch` is room to
/// render values in): `Ok(false)` if they need the script (a JSON row
/// with values the source could not see is merged into the stored one)
/// and `out` does not take it; an error says why the cache cannot.
fn commands(
    cfg: &RedisSinkConfig,
    template: &KeyTemplate,
    r: &SinkRecord,
    out: &mut impl Out,
    scratch: &mut String,
) -> Result<bool, String> {
    use tributary_core::Datum;
    let ev = &r.event;
    let Some(key) = r.key.as_deref() else {
        return Ok(true);
    };
    let k = row_key(&cfg.prefix, template, &r.table, key)?;
    match ev.op {
        Op::Truncate => return Ok(true),
        Op::Delete => {
            out.command("DEL", 1);
            out.arg(&k);
        }
        Op::Create | Op::Update | Op::Read => {
            let Some(after) = ev.after.as_ref() else {
                return Ok(true);
            };
            let row = || r.table.columns.iter().zip(after);
            let partial = row().any(|(_, d)| matches!(d, Datum::Unavailable));
            if partial && cfg.format == RowFormat::Json && !out.merges() {
                return Ok(false);
            }
            // A changed key: the old row goes.
            if let Some(before) = &ev.before {
                let old: Option<Vec<Datum>> = r
                    .table
                    .key
                    .iter()
                    .map(|&i| match before.get(i) {
                        Some(Datum::Unavailable) | None => None,
                        Some(d) => Some(d.clone()),
                    })
                    .collect();
                if let Some(old) = old {
                    let ok = row_key(&cfg.prefix, template, &r.table, &old)?;
                    if ok != k {
                        out.command("DEL", 1);
                        out.arg(&ok);
                        if let Some(ch) = &cfg.publish {
                            out.command("PUBLISH", 2);
                            out.arg(ch);
                            out.arg(&ok);
                        }
                    }
                }
            }
            match cfg.format {
                RowFormat::Hash => {
                    let (mut set, mut unset) = (0, 0);
                    for (_, d) in row() {
                        match d {
                            Datum::Unavailable => {}
                            Datum::Null => unset += 1,
                            _ => set += 1,
                        }
                    }
                    if set > 0 {
                        out.command("HSET", 1 + 2 * set);
                        out.arg(&k);
                        for (c, d) in row() {
                            scratch.clear();
                            if render::write_text(scratch, &c.ty, d) {
                                out.arg(&c.name);
                                out.arg(scratch);
                            }
                        }
                    }
                    if unset > 0 {
                        out.command("HDEL", 1 + unset);
                        out.arg(&k);
                        for (c, d) in row() {
                            if matches!(d, Datum::Null) {
                                out.arg(&c.name);
                            }
                        }
                    }
                    if let Some(ttl) = cfg.ttl_seconds {
                        out.command("EXPIRE", 2);
                        out.arg(&k);
                        out.arg(&ttl.to_string());
                    }
                }
                RowFormat::Json => {
                    let mut doc = String::from("{");
                    for (c, d) in row() {
                        if matches!(d, Datum::Unavailable) {
                            continue;
                        }
                        if doc.len() > 1 {
                            doc.push(',');
                        }
                        render::json_string(&mut doc, &c.name);
                        doc.push(':');
                        scratch.clear();
                        if render::write_text(scratch, &c.ty, d) {
                            render::json_string(&mut doc, scratch);
                        } else {
                            doc.push_str("null");
                        }
                    }
                    doc.push('}');
                    let ttl = cfg.ttl_seconds.unwrap_or(0);
                    if partial {
                        // Merged into the stored object by the script.
                        out.command("__MERGE", 3);
                        out.arg(&k);
                        out.arg(&doc);
                        out.arg(&ttl.to_string());
                    } else if ttl > 0 {
                        out.command("SET", 4);
                        out.arg(&k);
                        out.arg(&doc);
                        out.arg("EX");
                        out.arg(&ttl.to_string());
                    } else {
                        out.command("SET", 2);
                        out.arg(&k);
                        out.arg(&doc);
                    }
                }
            }
        }
    }
    if let Some(ch) = &cfg.publish {
        out.command("PUBLISH", 2);
        out.arg(ch);
        out.arg(&k);
    }
    Ok(true)
}

impl Sink for RedisSink {
    fn stored_offsets(
        &mut self,
    ) -> BoxFuture<'_, Result<Option<tributary_core::sink::StoredOffsets>, SinkError>> {
        let key = self.offsets_key();
        Box::pin(async move {
            let all: BTreeMap<String, u64> = self
                .with_conn(move |c| redis::cmd("HGETALL").arg(&key).query(c))
                .await?;
            let mut out = Vec::new();
            {
                let mut known = self.known();
                known.clear();
                known.extend(all.keys().cloned());
            }
            for (tp, off) in all {
                if let Some((topic, p)) = tp.rsplit_once('/')
                    && let Ok(p) = p.parse()
                {
                    out.push((TopicPartition::new(topic, p), off));
                }
            }
            Ok(Some(out))
        })
    }

    fn reset_offsets<'a>(
        &'a mut self,
        offsets: &'a [(TopicPartition, u64)],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        let key = self.offsets_key();
        let kv: Vec<(String, u64)> = offsets
            .iter()
            .map(|(tp, next)| (format!("{}/{}", tp.topic, tp.partition), *next))
            .collect();
        let fields: Vec<String> = kv.iter().map(|(f, _)| f.clone()).collect();
        Box::pin(async move {
            if kv.is_empty() {
                return Ok(());
            }
            self.with_conn(move |c| {
                let mut cmd = redis::cmd("HSET");
                cmd.arg(&key);
                for (tp, next) in &kv {
                    cmd.arg(tp).arg(next);
                }
                cmd.query::<()>(c)
            })
            .await?;
            self.known().extend(fields);
            Ok(())
        })
    }

    fn apply<'a>(&'a mut self, batch: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            // Records the cache cannot hold come first: a keyless row.
            if let Some(i) = batch
                .iter()
                .position(|r| r.event.op != Op::Truncate && r.key.is_none())
            {
                if i > 0 {
                    self.apply(&batch[..i]).await?;
                }
                return Err(SinkError::Record {
                    index: i,
                    reason: format!(
                        "table {}.{} has no key: a cache needs one",
                        batch[i].table.schema, batch[i].table.table
                    ),
                });
            }
            // A truncate splits the batch: what comes before it is applied
            // first, then the table is cleared, then the rest.
            if let Some(t) = batch.iter().position(|r| r.event.op == Op::Truncate) {
                if t > 0 {
                    self.apply(&batch[..t]).await?;
                }
                let r = &batch[t];
                let pattern = table_pattern(&self.cfg.prefix, &self.template, &r.table);
                let (offsets_key, tp, next) = (
                    self.offsets_key(),
                    format!("{}/{}", r.topic, r.partition),
                    r.offset + 1,
                );
                self.with_conn(move |c| {
                    // SCAN, not KEYS: it does not block Redis.
                    let keys: Vec<String> = c
                        .scan_match::<_, String>(&pattern)?
                        .collect::<redis::RedisResult<_>>()?;
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    if !keys.is_empty() {
                        pipe.cmd("DEL").arg(keys).ignore();
                    }
                    pipe.cmd("HSET")
                        .arg(&offsets_key)
                        .arg(tp)
                        .arg(next)
                        .ignore();
                    pipe.query::<()>(c)
                })
                .await?;
                self.known().insert(format!("{}/{}", r.topic, r.partition));
                return if t + 1 < batch.len() {
                    self.apply(&batch[t + 1..]).await.map_err(|e| match e {
                        SinkError::Record { index, reason } => SinkError::Record {
                            index: index + t + 1,
                            reason,
                        },
                        other => other,
                    })
                } else {
                    Ok(())
                };
            }
            // Scripts of up to CHUNK records; the next is built while
            // Redis runs the previous one.
            let mut inflight: Option<(usize, Running)> = None;
            let mut start = 0;
            while start < batch.len() || inflight.is_some() {
                let next = if start < batch.len() {
                    let end = (start + CHUNK).min(batch.len());
                    let built = self.request(&batch[start..end]);
                    Some((start, end, built))
                } else {
                    None
                };
                if let Some((at, handle)) = inflight.take() {
                    let (done, err) = handle
                        .await
                        .map_err(|e| SinkError::transient_from("Redis worker", e))??;
                    if err == "TRIBUTARY_LOST" {
                        return Err(SinkError::Rewind {
                            what: format!(
                                "Redis no longer holds the sink's offsets ({}): it lost its data (restarted without persistence, or flushed)",
                                self.offsets_key()
                            ),
                        });
                    }
                    if done > 0 {
                        let mut known = self.known();
                        for r in &batch[at..at + done] {
                            let tp = format!("{}/{}", r.topic, r.partition);
                            if !known.contains(&tp) {
                                known.insert(tp);
                            }
                        }
                    }
                    if !err.is_empty() {
                        // A server out of memory, busy, loading or read-only
                        // takes the rest later (the records before are in,
                        // with their offsets); anything else is the record's.
                        let busy = [
                            "OOM",
                            "BUSY",
                            "LOADING",
                            "READONLY",
                            "MASTERDOWN",
                            "TRYAGAIN",
                        ]
                        .iter()
                        .any(|p| err.starts_with(p));
                        return Err(if busy {
                            SinkError::transient(format!("Redis: {err}"))
                        } else {
                            SinkError::Record {
                                index: at + done,
                                reason: format!("Redis refused: {err}"),
                            }
                        });
                    }
                }
                if let Some((at, end, built)) = next {
                    match built {
                        Ok(req) => {
                            inflight = Some((
                                at,
                                match req {
                                    Request::Lua(cmd) => self.start(move |c| cmd.query(c)),
                                    Request::Multi(t) => self.start(move |c| t.run(c)),
                                },
                            ));
                            start = end;
                        }
                        // A record the cache cannot hold: what is before
                        // it goes first.
                        Err((i, reason)) => {
                            if i > 0 {
                                self.apply(&batch[at..at + i]).await.map_err(|e| match e {
                                    SinkError::Record { index, reason } => SinkError::Record {
                                        index: at + index,
                                        reason,
                                    },
                                    other => other,
                                })?;
                            }
                            return Err(SinkError::Record {
                                index: at + i,
                                reason,
                            });
                        }
                    }
                }
            }
            let n = batch.len();
            tracing::debug!(records = n, "applied to Redis");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::{Column, ColumnType, Datum, TableSchema};

    #[test]
    fn a_bad_url_is_refused_with_the_parser_error_as_its_source() {
        let err = RedisSink::new(RedisSinkConfig {
            name: "cache".into(),
            url: "redis://127.0.0.1:notaport".into(),
            prefix: String::new(),
            key: DEFAULT_KEY.into(),
            format: RowFormat::Hash,
            ttl_seconds: None,
            publish: None,
        })
        .expect_err("refused");
        assert!(matches!(err, SinkError::Fatal { .. }), "{err:?}");
        assert!(err.to_string().starts_with("redis URL: "), "{err}");
        let cause = std::error::Error::source(&err).expect("the parser's error kept");
        assert!(
            err.to_string().ends_with(&cause.to_string()),
            "{err} / {cause}"
        );
    }

    fn table() -> TableSchema {
        let col = |name: &str, ty| Column {
            name: name.into(),
            ty,
            nullable: false,
            may_be_unavailable: false,
            db_type: String::new(),
        };
        TableSchema {
            database: "shop".into(),
            schema: "public".into(),
            table: "or*ders".into(),
            columns: vec![
                col("region", ColumnType::Text),
                col("id", ColumnType::Long),
                col("note", ColumnType::Text),
            ],
            key: vec![0, 1],
        }
    }

    #[test]
    fn keys_from_templates() {
        let t = table();
        let key = [Datum::Text("eu:west%1".into()), Datum::Long(42)];
        let k = |tpl: &str| row_key("p:", &KeyTemplate::parse(tpl), &t, &key);
        assert_eq!(
            k(DEFAULT_KEY).as_deref(),
            Ok("p:public.or*ders:eu%3Awest%251:42")
        );
        assert_eq!(
            k("{database}/{table}/{id}-{region}").as_deref(),
            Ok("p:shop/or*ders/42-eu%3Awest%251")
        );
        // A placeholder that is no key column stays as written.
        assert_eq!(
            k("{table}:{id}:{region}:{note}").as_deref(),
            Ok("p:or*ders:42:eu%3Awest%251:{note}")
        );
        // An unclosed brace is text.
        assert_eq!(k("{key}{x").as_deref(), Ok("p:eu%3Awest%251:42{x"));
        let err = k("{table}:{id}").expect_err("region left out");
        assert!(
            err.contains("key column region") && err.contains("public.or*ders"),
            "{err}"
        );
        assert_eq!(
            table_pattern("p*", &KeyTemplate::parse(DEFAULT_KEY), &t),
            "p\\*public.or\\*ders:*"
        );
    }

    #[test]
    fn commands_encode_as_the_client_does() {
        let mut out = Resp {
            buf: Vec::new(),
            commands: 0,
        };
        out.command("HSET", 3);
        out.arg("k:1");
        out.arg("name");
        out.arg("ünïcode and a long value ".repeat(5).as_str());
        let want = redis::cmd("HSET")
            .arg("k:1")
            .arg("name")
            .arg("ünïcode and a long value ".repeat(5))
            .get_packed_command();
        assert_eq!(out.buf, want);
        assert_eq!(out.commands, 1);
    }
}
