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
//!
//! A hub also writes the address its gRPC API listens on to `grpc.addr`
//! while it runs: the commands that can talk to it (`topics`, `consume`,
//! `produce`, `offsets list`) find it there when the directory is held.

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

    /// `root` for a hub (`serve`, `run`): created when missing.
    pub fn create(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the data directory {}", root.display()))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    fn address_file(&self) -> PathBuf {
        self.root.join("grpc.addr")
    }

    /// Records where the hub holding the directory serves gRPC.
    pub fn publish_grpc(&self, addr: std::net::SocketAddr) -> anyhow::Result<()> {
        let file = self.address_file();
        let tmp = self.root.join("grpc.addr.tmp");
        std::fs::write(&tmp, format!("{addr}\n"))
            .and_then(|()| std::fs::rename(&tmp, &file))
            .with_context(|| format!("writing {}", file.display()))
    }

    /// Removes what [`publish_grpc`](Self::publish_grpc) wrote (the hub
    /// stops).
    pub fn withdraw_grpc(&self) {
        let file = self.address_file();
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %file.display(), error = %e, "cannot remove the gRPC address file");
        }
    }

    /// The gRPC address of the hub that holds the directory now, if one
    /// does and published it (a file left by a hub that crashed is not
    /// believed: no one holds the lock then).
    pub fn running_hub(&self) -> anyhow::Result<Option<String>> {
        if !self.busy()? {
            return Ok(None);
        }
        match std::fs::read_to_string(self.address_file()) {
            Ok(text) => Ok(Some(text.trim().to_string()).filter(|a| !a.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.address_file().display())),
        }
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
        let dir = self.log_dir();
        let opts = LogOptions {
            background: false,
            ..LogOptions::default()
        };
        Log::open_with(&dir, opts).with_context(|| format!("opening the log in {}", dir.display()))
    }

    /// The log for a hub that runs on (`serve`): with its background
    /// thread (interval fsyncs, retention, compaction).
    pub fn hub_log(&self, _held: &Registry) -> anyhow::Result<Log> {
        let dir = self.log_dir();
        // Before `serve` kept its log in `log/` as pipelines do, it wrote
        // topics at the root: say so rather than serve an empty log.
        let old = self.root.join("topics");
        if old.is_dir() && !dir.exists() {
            bail!(
                "{} holds topics at its root, where `serve` once kept them: move {} to {}",
                self.root.display(),
                old.display(),
                dir.join("topics").display()
            );
        }
        Log::open(&dir).with_context(|| format!("opening the log in {}", dir.display()))
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
