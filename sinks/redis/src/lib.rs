//! The Redis sink: a cache of the captured tables.
//!
//! Each row is a hash at `<prefix><schema>.<table>:<key>` (key columns
//! joined by `:`), one field per column as text
//! ([`tributary_core::render::text`]). Creates, updates and snapshot
//! reads set the row's visible columns (a value the source could not see,
//! unchanged TOAST, leaves the field as it is; NULL removes it); deletes
//! remove the hash; a truncate removes every hash of the table.
//!
//! Each batch is one `MULTI`/`EXEC` that also stores, in the hash
//! `<prefix>tributary:offsets:<sink>`, the offset after the batch for each
//! partition: data and offsets move together, so after a crash the sink
//! resumes exactly where Redis is (exactly-once effect). Durability is
//! Redis's own (AOF/RDB): what `EXEC` acknowledged.

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
}

/// The sink.
pub struct RedisSink {
    cfg: RedisSinkConfig,
    client: redis::Client,
    conn: Arc<Mutex<Option<redis::Connection>>>,
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
            .map_err(|e| SinkError::Fatal(format!("redis URL: {e}")))?;
        Ok(Self {
            cfg,
            client,
            conn: Arc::new(Mutex::new(None)),
        })
    }

    fn offsets_key(&self) -> String {
        format!("{}tributary:offsets:{}", self.cfg.prefix, self.cfg.name)
    }

    /// Runs `f` on the connection in a blocking thread, connecting first
    /// if needed; a failed connection is dropped for the next call.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T> + Send + 'static,
    ) -> Result<T, SinkError> {
        let (client, conn) = (self.client.clone(), Arc::clone(&self.conn));
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                *guard = Some(
                    client
                        .get_connection()
                        .map_err(|e| SinkError::Transient(format!("connecting to Redis: {e}")))?,
                );
            }
            let Some(c) = guard.as_mut() else {
                return Err(SinkError::Transient("no Redis connection".into()));
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
                    SinkError::Transient(format!("Redis: {e}"))
                } else {
                    SinkError::Fatal(format!("Redis: {e}"))
                }
            })
        })
        .await
        .map_err(|e| SinkError::Transient(format!("Redis worker: {e}")))?
    }
}

/// Applies a batch: `ARGV` holds, per record, `topic/partition`, the
/// offset after it, its command count, then each command as an argument
/// count, a name and arguments. Returns the records applied and the error
/// that stopped it ("" if none).
const APPLY_SCRIPT: &str = r#"
local i = 1
local done = 0
while i <= #ARGV do
  local tp, off, nops = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  for _ = 1, nops do
    local n = tonumber(ARGV[i])
    local cmd = ARGV[i + 1]
    local args = {}
    for j = 1, n do args[j] = ARGV[i + 1 + j] end
    i = i + 2 + n
    local r = redis.pcall(cmd, unpack(args))
    if type(r) == 'table' and r.err then
      return {done, r.err}
    end
  end
  redis.call('HSET', KEYS[1], tp, off)
  done = done + 1
end
return {done, ''}
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

/// The hash key of a row.
fn row_key(prefix: &str, r: &SinkRecord) -> Option<String> {
    let key = r.key.as_ref()?;
    // `%` and `:` escaped, so parts cannot run into each other.
    let parts: Vec<String> = r
        .table
        .key
        .iter()
        .zip(key)
        .map(|(&i, d)| {
            let ty = r.table.columns.get(i).map(|c| &c.ty);
            ty.and_then(|t| render::text(t, d))
                .unwrap_or_default()
                .replace('%', "%25")
                .replace(':', "%3A")
        })
        .collect();
    Some(format!(
        "{prefix}{}.{}:{}",
        r.table.schema,
        r.table.table,
        parts.join(":")
    ))
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

    fn apply<'a>(&'a mut self, batch: &'a [SinkRecord]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let prefix = self.cfg.prefix.clone();
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
                let pattern = format!(
                    "{}:*",
                    glob_escape(&format!("{prefix}{}.{}", r.table.schema, r.table.table))
                );
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
                return if t + 1 < batch.len() {
                    self.apply(&batch[t + 1..]).await
                } else {
                    Ok(())
                };
            }
            // One script for the batch: per record, its commands, then its
            // offset. A command Redis refuses ends the script there, with
            // the offsets of the records before it stored and none after:
            // data and offsets never disagree.
            let mut args: Vec<String> = Vec::new();
            for r in batch {
                let mut ops: Vec<Vec<String>> = Vec::new();
                let ev = &r.event;
                match ev.op {
                    Op::Truncate => {}
                    Op::Delete => {
                        if let Some(k) = row_key(&prefix, r) {
                            ops.push(vec!["DEL".into(), k]);
                        }
                    }
                    Op::Create | Op::Update | Op::Read => {
                        if let (Some(k), Some(after)) = (row_key(&prefix, r), ev.after.as_ref()) {
                            // A changed key: the old row goes.
                            if let Some(before) = &ev.before {
                                let mut old = r.clone();
                                old.key = r
                                    .table
                                    .key
                                    .iter()
                                    .map(|&i| before.get(i).cloned())
                                    .collect::<Option<Vec<_>>>();
                                if let Some(ok) = row_key(&prefix, &old)
                                    && ok != k
                                    && !r.table.key.iter().any(|&i| {
                                        matches!(
                                            before.get(i),
                                            Some(tributary_core::Datum::Unavailable)
                                        )
                                    })
                                {
                                    ops.push(vec!["DEL".into(), ok]);
                                }
                            }
                            let mut set = vec!["HSET".to_string(), k.clone()];
                            let mut unset = vec!["HDEL".to_string(), k];
                            for (c, d) in r.table.columns.iter().zip(after) {
                                match d {
                                    tributary_core::Datum::Unavailable => {}
                                    tributary_core::Datum::Null => unset.push(c.name.clone()),
                                    d => {
                                        set.push(c.name.clone());
                                        set.push(render::text(&c.ty, d).unwrap_or_default());
                                    }
                                }
                            }
                            if set.len() > 2 {
                                ops.push(set);
                            }
                            if unset.len() > 2 {
                                ops.push(unset);
                            }
                        }
                    }
                }
                args.push(format!("{}/{}", r.topic, r.partition));
                args.push((r.offset + 1).to_string());
                args.push(ops.len().to_string());
                for op in ops {
                    args.push((op.len() - 1).to_string());
                    args.extend(op);
                }
            }
            let offsets_key = self.offsets_key();
            let n = batch.len();
            let (done, err): (usize, String) = self
                .with_conn(move |c| {
                    // EVAL, not EVALSHA: the script is small, and this
                    // needs no script cache on the server.
                    redis::cmd("EVAL")
                        .arg(APPLY_SCRIPT)
                        .arg(1)
                        .arg(offsets_key)
                        .arg(args)
                        .query(c)
                })
                .await?;
            if !err.is_empty() {
                return Err(SinkError::Record {
                    index: done,
                    reason: format!("Redis refused: {err}"),
                });
            }
            tracing::debug!(records = n, "applied to Redis");
            Ok(())
        })
    }
}
