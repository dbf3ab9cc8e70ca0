//! A pipeline's data directory (`log.dir`) opened by a command of its
//! own: `log/` (topics), `registry/` (schemas), `offsets/` (consumer
//! groups).
//!
//! The log keeps no lock of its own, and opening it recovers (truncates a
//! torn tail of) the active segments, so it must never be opened while
//! another process appends. Every process that writes the log (`tributary
//! run`, `serve`, `produce`) holds the registry's sled lock for as long as
//! it runs: a command takes that lock first, and refuses with a clear
//! error when a running hub holds it.

use std::fs::TryLockError;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tributary_log::{Log, LogOptions, SledOffsetStore};
use tributary_schemas::Registry;

/// The data directory's paths.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// Whether a sled database in `dir` is locked by another process.
fn locked(dir: &Path) -> anyhow::Result<bool> {
    // sled locks its `db` file exclusively (flock) while open.
    let file = dir.join("db");
    let f = match std::fs::OpenOptions::new().read(true).open(&file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("opening {}", file.display())),
    };
    match f.try_lock() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("checking the lock on {}", file.display()))
        }
    }
}

impl DataDir {
    /// `root`, which must exist and hold a registry (a pipeline ran
    /// there, or `serve`).
    pub fn existing(root: &Path) -> anyhow::Result<Self> {
        if !root.is_dir() {
            bail!(
                "no data directory at {} (give --data-dir: a pipeline's log.dir)",
                root.display()
            );
        }
        let d = Self {
            root: root.to_path_buf(),
        };
        if !d.registry_dir().join("db").exists() {
            bail!(
                "{} holds no schema registry: is it a data directory (a pipeline's log.dir)?",
                root.display()
            );
        }
        Ok(d)
    }

    fn registry_dir(&self) -> PathBuf {
        self.root.join("registry")
    }

    fn offsets_dir(&self) -> PathBuf {
        self.root.join("offsets")
    }

    fn in_use(&self, what: &Path) -> anyhow::Error {
        anyhow::anyhow!(
            "the data directory {} is in use by a running hub (`tributary run` or `serve` \
             holds {}): stop it first; commands cannot share a data directory with it yet",
            self.root.display(),
            what.display()
        )
    }

    /// Whether a running hub (or another command) holds the directory.
    pub fn busy(&self) -> anyhow::Result<bool> {
        locked(&self.registry_dir())
    }

    /// Whether `dir` stays locked for two seconds: another command (a
    /// `consume --follow` between its looks) holds it for moments only,
    /// a hub for as long as it runs.
    fn held_elsewhere(dir: &Path) -> anyhow::Result<bool> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while locked(dir)? {
            if std::time::Instant::now() > deadline {
                return Ok(true);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(false)
    }

    /// The registry, locked for this process: no one else writes the log
    /// while it is held.
    pub fn registry(&self) -> anyhow::Result<Registry> {
        let dir = self.registry_dir();
        if Self::held_elsewhere(&dir)? {
            return Err(self.in_use(&dir));
        }
        Registry::open(&dir)
            .map_err(|e| match e {
                // Taken between the check and the open.
                tributary_schemas::RegistryError::Storage(ref s)
                    if s.to_string().contains("could not acquire lock") =>
                {
                    self.in_use(&dir)
                }
                e => anyhow::Error::new(e),
            })
            .with_context(|| format!("opening the registry in {}", dir.display()))
    }

    /// The log, without background threads. Open it only while holding
    /// [`registry`](Self::registry).
    pub fn log(&self, _held: &Registry) -> anyhow::Result<Log> {
        let dir = self.root.join("log");
        let opts = LogOptions {
            background: false,
            ..LogOptions::default()
        };
        Log::open_with(&dir, opts).with_context(|| format!("opening the log in {}", dir.display()))
    }

    /// The consumer offsets, if any group ever committed (`None`: no
    /// offsets directory yet; nothing is created).
    pub fn offsets_if_any(&self) -> anyhow::Result<Option<SledOffsetStore>> {
        if !self.offsets_dir().join("db").exists() {
            return Ok(None);
        }
        self.offsets().map(Some)
    }

    /// The consumer offsets, created when missing.
    pub fn offsets(&self) -> anyhow::Result<SledOffsetStore> {
        let dir = self.offsets_dir();
        if Self::held_elsewhere(&dir)? {
            return Err(self.in_use(&dir));
        }
        SledOffsetStore::open(&dir)
            .with_context(|| format!("opening the consumer offsets in {}", dir.display()))
    }
}
