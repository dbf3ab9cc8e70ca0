//! The log: a data directory of topics, and the background thread that
//! syncs interval-policy partitions and runs retention and compaction.
//!
//! Layout: `<dir>/topics/<topic>/topic.json` and
//! `<dir>/topics/<topic>/<partition>/<segments>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::config::{Cleanup, TopicConfig};
use crate::error::{LogError, Result};
use crate::segment::{self, now_ms};
use crate::topic::Topic;

/// Options of the log as a whole.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// How often the background thread looks for partitions to sync.
    pub flush_tick: Duration,
    /// How often retention and compaction run.
    pub maintenance_interval: Duration,
    /// Run the background thread at all (tests drive it by hand).
    pub background: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            flush_tick: Duration::from_millis(10),
            maintenance_interval: Duration::from_secs(30),
            background: true,
        }
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    create: Mutex<()>,
    stop: AtomicBool,
}

/// The central log. Cheap to clone; the background thread stops when the
/// last clone is dropped, after a final flush.
#[derive(Debug, Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

fn check_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(LogError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 249 {
        return bad("must be 1 to 249 characters");
    }
    if name == "." || name == ".." {
        return bad("cannot be . or ..");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return bad("may hold only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

impl Log {
    /// Opens the log in `dir` (created if missing) with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, LogOptions::default())
    }

    /// Opens the log in `dir`, recovering every topic found there.
    pub fn open_with(dir: impl AsRef<Path>, options: LogOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let topics_dir = dir.join("topics");
        std::fs::create_dir_all(&topics_dir)
            .map_err(|e| LogError::io("create dir", &topics_dir, e))?;
        let mut topics = BTreeMap::new();
        for entry in
            std::fs::read_dir(&topics_dir).map_err(|e| LogError::io("list", &topics_dir, e))?
        {
            let entry = entry.map_err(|e| LogError::io("list", &topics_dir, e))?;
            let meta = entry.path().join("topic.json");
            if !meta.exists() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let raw = std::fs::read(&meta).map_err(|e| LogError::io("read", &meta, e))?;
            let config: TopicConfig =
                serde_json::from_slice(&raw).map_err(|source| LogError::Metadata {
                    path: meta.clone(),
                    source,
                })?;
            config.validate()?;
            let topic = Topic::open(&name, &entry.path(), config)?;
            topics.insert(name, Arc::new(topic));
        }
        let inner = Arc::new(Inner {
            dir,
            topics: RwLock::new(topics),
            create: Mutex::new(()),
            stop: AtomicBool::new(false),
        });
        if options.background {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("log-maintenance".into())
                .spawn(move || background(weak, options))
                .map_err(|e| LogError::io("spawn thread", "log-maintenance", e))?;
        }
        Ok(Self { inner })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a topic, or returns it when it exists with the same
    /// configuration.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        check_name(name)?;
        config.validate()?;
        let _g = self.inner.create.lock();
        if let Some(t) = self.inner.topics.read().get(name) {
            if *t.config() == config {
                return Ok(Arc::clone(t));
            }
            return Err(LogError::TopicExists(name.to_string()));
        }
        let dir = self.inner.dir.join("topics").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io("create dir", &dir, e))?;
        let meta = dir.join("topic.json");
        let tmp = dir.join("topic.json.tmp");
        let json = serde_json::to_vec_pretty(&config).map_err(|source| LogError::Metadata {
            path: meta.clone(),
            source,
        })?;
        std::fs::write(&tmp, json)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &meta))
            .map_err(|e| LogError::io("write", &meta, e))?;
        segment::sync_dir(&dir)?;
        segment::sync_dir(&self.inner.dir.join("topics"))?;
        let topic = Arc::new(Topic::open(name, &dir, config)?);
        self.inner
            .topics
            .write()
            .insert(name.to_string(), Arc::clone(&topic));
        Ok(topic)
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.inner.topics.read().values().cloned().collect()
    }

    /// Syncs every partition of every topic.
    pub fn flush(&self) -> Result<()> {
        for t in self.topics() {
            for p in t.partitions() {
                p.flush()?;
            }
        }
        Ok(())
    }

    /// Runs retention on every topic and compaction on compacted ones, now.
    pub fn maintain(&self) -> Result<()> {
        maintain(&self.inner)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.topics.get_mut().values() {
            for p in t.partitions() {
                if let Err(e) = p.flush() {
                    tracing::error!(error = %e, "final flush failed");
                }
            }
        }
    }
}

fn maintain(inner: &Inner) -> Result<()> {
    let topics: Vec<Arc<Topic>> = inner.topics.read().values().cloned().collect();
    let now = now_ms();
    for t in topics {
        for p in t.partitions() {
            let deleted = p.enforce_retention(now)?;
            if !deleted.is_empty() {
                tracing::info!(topic = t.name(), partition = p.id(), segments = ?deleted, "retention deleted segments");
            }
            if t.config().cleanup == Cleanup::Compact {
                let stats = p.compact(now)?;
                if stats.segments_rewritten > 0 {
                    tracing::info!(topic = t.name(), partition = p.id(), ?stats, "compacted");
                }
            }
        }
    }
    Ok(())
}

fn background(weak: Weak<Inner>, options: LogOptions) {
    let mut last_maintenance = std::time::Instant::now();
    loop {
        std::thread::sleep(options.flush_tick);
        let Some(inner) = weak.upgrade() else { return };
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        let now = now_ms();
        let topics: Vec<Arc<Topic>> = inner.topics.read().values().cloned().collect();
        for t in &topics {
            for p in t.partitions() {
                if let Err(e) = p.flush_if_due(now) {
                    tracing::error!(topic = t.name(), partition = p.id(), error = %e, "flush failed");
                }
            }
        }
        if last_maintenance.elapsed() >= options.maintenance_interval {
            last_maintenance = std::time::Instant::now();
            if let Err(e) = maintain(&inner) {
                tracing::error!(error = %e, "log maintenance failed");
            }
        }
    }
}
