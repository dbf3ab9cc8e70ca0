//! A running pipeline's live telemetry: per connector, what it did
//! (records written or applied, errors), where it is (phase, position)
//! and how far behind it is (sink lag in records and seconds, a source's
//! replication lag). Sources and sink workers count as they go; lags are
//! computed from the log when asked, so they are never stale.
//! [`crate::metrics`] renders this for `/metrics`; the server's
//! `/pipelines` and `/ready` read [`Telemetry::connectors`] and
//! [`Telemetry::ready`].
//!
//! Nothing here holds a connector's configuration beyond its name and
//! kind: no URL, password or token can reach an output through it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tributary_core::TopicPartition;
use tributary_core::telemetry::{Phase, SourceProgress};
use tributary_log::Log;

use crate::config::Pipeline;
use crate::status::{State, Status, worker_label};

/// The window rates are measured over.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// How a kind of source's positions read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProgressFormat {
    /// The kind, as YAML names it.
    pub kind: &'static str,
    /// A position as the database prints it.
    pub position: fn(u64) -> Position,
    /// The replication lag in bytes, when the distance means bytes.
    pub lag_bytes: fn(u64) -> Option<u64>,
}

/// A source's counters.
#[derive(Debug)]
pub(crate) struct SourceTelemetry {
    pub name: String,
    pub format: ProgressFormat,
    /// Change events written to the log.
    pub written: Arc<AtomicU64>,
    /// Failures (each restarts the source).
    pub errors: AtomicU64,
    /// Phase and lag, as the source reports them (PostgreSQL: LSNs;
    /// MySQL: binlog positions as `progress_position` encodes them).
    pub progress: Arc<SourceProgress>,
}

impl SourceTelemetry {
    /// How many bytes of the server's change stream the source has not
    /// yet made durable and acknowledged. For MySQL/MariaDB only within
    /// one binlog file (positions in different files do not subtract).
    pub(crate) fn lag_bytes(&self) -> Option<u64> {
        (self.format.lag_bytes)(self.progress.lag()?)
    }
}

/// A sink's counters, shared by its workers.
#[derive(Debug)]
pub(crate) struct SinkTelemetry {
    pub name: String,
    pub kind: &'static str,
    /// The topic patterns it reads.
    pub topics: Vec<String>,
    /// Its workers' names in [`Status`].
    pub workers: Vec<String>,
    /// Records the target applied.
    pub applied: AtomicU64,
    /// Failures (restarts, pauses) and records the target refused.
    pub errors: AtomicU64,
    /// Per partition, the offset its consumer group resumes from (the
    /// workers own disjoint partitions).
    pub committed: Mutex<BTreeMap<TopicPartition, u64>>,
}

impl SinkTelemetry {
    /// The group now resumes `tp` from `offset`.
    pub(crate) fn committed(&self, tp: &TopicPartition, offset: u64) {
        let mut c = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        c.insert(tp.clone(), offset);
    }
}

/// Every connector of a running pipeline.
#[derive(Debug)]
pub struct Telemetry {
    log: Log,
    status: Status,
    data: Arc<crate::topics::DataTopics>,
    pub(crate) sources: Vec<Arc<SourceTelemetry>>,
    pub(crate) sinks: Vec<Arc<SinkTelemetry>>,
    /// Per connector, (when, records) samples of the last [`RATE_WINDOW`].
    samples: Mutex<BTreeMap<String, VecDeque<(Instant, u64)>>>,
    /// Per connector (a sink's workers share its name's), a count of the
    /// restarts asked for; a failed source or a paused sink waits for it
    /// to change.
    restarts: BTreeMap<String, tokio::sync::watch::Sender<u64>>,
}

/// Why a connector cannot be restarted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartError {
    /// The pipeline has no connector of that name.
    #[error("the pipeline has no source or sink named {0:?}")]
    Unknown(String),
    /// It is not stopped by a failure: there is nothing to restart.
    #[error("{name} is {state}: only a failed source or a paused sink can be restarted")]
    NotStopped {
        /// The connector.
        name: String,
        /// Its state.
        state: &'static str,
    },
}

/// Why a table cannot be taken back from quarantine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The pipeline has no source of that name.
    #[error("the pipeline has no source named {0:?}")]
    UnknownSource(String),
    /// The table is not quarantined.
    #[error("source {name} has no quarantined table {table} (give it as schema.table)")]
    NotQuarantined {
        /// The source.
        name: String,
        /// The table asked for.
        table: String,
    },
    /// The source's state could not be read or written.
    #[error("{0}")]
    State(String),
}

/// What `/pipelines` shows of a connector.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorView {
    /// Its name in the pipeline.
    pub name: String,
    /// `source` or `sink`.
    pub role: &'static str,
    /// `postgres`, `mysql`, `redis`, ...
    pub kind: &'static str,
    /// `starting`, `running`, `restarting`, `paused`, `stopped` (a sink
    /// with several workers: the first of these any worker is in, in the
    /// order `restarting`, `paused`, `starting`, `running`, `stopped`).
    pub state: &'static str,
    /// A source's phase, where it reports one: `connecting`, `snapshot`,
    /// `streaming`.
    pub phase: Option<&'static str>,
    /// Restarts after failures (all workers).
    pub restarts: u32,
    /// The last failure (connection errors name host, port, database
    /// and user only).
    pub last_error: Option<String>,
    /// Records written to the log (source) or applied (sink).
    pub records: u64,
    /// Records per second over the last 10 seconds.
    pub records_per_second: f64,
    /// Failures and refused records.
    pub errors: u64,
    /// A PostgreSQL source: the LSN confirmed to the server; a sink: per
    /// topic, per partition, the offset its group resumes from.
    pub position: Option<Position>,
    /// A sink: records in the log it has not applied.
    pub lag_records: Option<u64>,
    /// A sink: age of the oldest record it has not applied.
    pub lag_seconds: Option<f64>,
    /// A PostgreSQL source: WAL bytes between the server's end and the
    /// confirmed position.
    pub replication_lag_bytes: Option<u64>,
    /// A source: the tables it set aside (`on_error: quarantine`), with
    /// reason and position.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<tributary_capture::Quarantined>,
    /// A PostgreSQL source: its replication slot as the server sees it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotView>,
}

/// A replication slot's health, as `/pipelines` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    /// WAL the slot keeps on the server (`pg_current_wal_lsn() -
    /// restart_lsn`).
    pub retained_wal_bytes: u64,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: String,
    /// WAL that can still be written before the slot may be invalidated
    /// (`null` without `max_slot_wal_keep_size`).
    pub safe_wal_size: Option<i64>,
}

/// Where a connector is.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Position {
    /// A PostgreSQL LSN, as PostgreSQL prints it.
    Lsn(String),
    /// A MySQL/MariaDB binlog position: the file's sequence number and
    /// the offset in it (`000036:1234`).
    Binlog(String),
    /// Topic -> partition -> offset.
    Offsets(BTreeMap<String, BTreeMap<u32, u64>>),
}

/// A sink's lag, computed from the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lag {
    /// Records between the committed offsets and the high watermarks.
    pub records: u64,
    /// Age of the oldest of them (0 with none).
    pub seconds: f64,
}

pub(crate) fn state_name(s: &State) -> &'static str {
    s.name()
}

impl Telemetry {
    pub(crate) fn new(p: &Pipeline, log: Log, status: Status) -> Self {
        let data = Arc::new(crate::topics::DataTopics::of(p));
        let sources = p
            .sources
            .iter()
            .map(|s| {
                Arc::new(SourceTelemetry {
                    name: s.name.clone(),
                    format: s.progress_format(),
                    written: Arc::default(),
                    errors: AtomicU64::new(0),
                    progress: Arc::default(),
                })
            })
            .collect();
        let sinks = p
            .sinks
            .iter()
            .map(|s| {
                let workers = (0..s.parallelism.max(1))
                    .map(|w| worker_label(&s.name, w, s.parallelism))
                    .collect();
                Arc::new(SinkTelemetry {
                    name: s.name.clone(),
                    kind: s.kind.as_str(),
                    topics: s.topics.clone(),
                    workers,
                    applied: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    committed: Mutex::new(BTreeMap::new()),
                })
            })
            .collect();
        let restarts = p
            .sources
            .iter()
            .map(|s| &s.name)
            .chain(p.sinks.iter().map(|s| &s.name))
            .map(|n| (n.clone(), tokio::sync::watch::channel(0).0))
            .collect();
        Self {
            log,
            status,
            data,
            sources,
            sinks,
            samples: Mutex::new(BTreeMap::new()),
            restarts,
        }
    }

    /// What a connector's supervisor waits on while failed or paused.
    pub(crate) fn restart_requests(&self, name: &str) -> tokio::sync::watch::Receiver<u64> {
        match self.restarts.get(name) {
            Some(tx) => tx.subscribe(),
            // Every connector has one; a lone receiver never changes.
            None => tokio::sync::watch::channel(0).1,
        }
    }

    /// Where source `name` keeps its state.
    fn state_dir(&self, name: &str) -> std::path::PathBuf {
        tributary_capture::quarantine::state_dir(self.log.dir(), name)
    }

    /// Takes `table` (`schema.table`) of source `source` back from
    /// quarantine: the source restarts and reads it again at a new point
    /// (its old keys deleted first), then streams its changes with the
    /// others'.
    pub fn resume_table(&self, source: &str, table: &str) -> Result<(), ResumeError> {
        let tx = self
            .restarts
            .get(source)
            .filter(|_| self.sources.iter().any(|s| s.name == source))
            .ok_or_else(|| ResumeError::UnknownSource(source.to_string()))?;
        let asked = tributary_capture::quarantine::request_resume(&self.state_dir(source), table)
            .map_err(|e| ResumeError::State(e.to_string()))?;
        if !asked {
            return Err(ResumeError::NotQuarantined {
                name: source.to_string(),
                table: table.to_string(),
            });
        }
        tx.send_modify(|n| *n += 1);
        tracing::info!(%source, %table, "table resume asked for: the source restarts");
        Ok(())
    }

    /// Restarts a failed source or a paused sink (every worker of it that
    /// is paused): it starts again from its stored position or committed
    /// offsets. Returns its role.
    pub fn restart(&self, name: &str) -> Result<&'static str, RestartError> {
        let tx = self
            .restarts
            .get(name)
            .ok_or_else(|| RestartError::Unknown(name.to_string()))?;
        let (role, stopped, state) = {
            let st = self.status.lock().unwrap_or_else(|e| e.into_inner());
            if self.sources.iter().any(|s| s.name == name) {
                let state = st.get(name).map_or(State::Starting, |c| c.state.clone());
                ("source", state == State::Failed, state.name())
            } else {
                let workers = self
                    .sinks
                    .iter()
                    .find(|s| s.name == name)
                    .map(|s| s.workers.clone())
                    .unwrap_or_default();
                let states: Vec<State> = workers
                    .iter()
                    .filter_map(|w| st.get(w).map(|c| c.state.clone()))
                    .collect();
                let paused = states.contains(&State::Paused);
                let shown = states.first().map_or("starting", State::name);
                ("sink", paused, if paused { "paused" } else { shown })
            }
        };
        if !stopped {
            return Err(RestartError::NotStopped {
                name: name.to_string(),
                state,
            });
        }
        tx.send_modify(|n| *n += 1);
        tracing::info!(connector = %name, role, "restart asked for");
        Ok(role)
    }

    /// The log the pipeline writes.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Takes a rate sample of every connector (the runtime calls this
    /// every second).
    pub(crate) fn sample(&self) {
        let now = Instant::now();
        let counts = self
            .sources
            .iter()
            .map(|s| (&s.name, s.written.load(Ordering::Relaxed)))
            .chain(
                self.sinks
                    .iter()
                    .map(|s| (&s.name, s.applied.load(Ordering::Relaxed))),
            );
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        for (name, n) in counts {
            let q = samples.entry(name.clone()).or_default();
            q.push_back((now, n));
            while q
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                q.pop_front();
            }
        }
    }

    fn rate(&self, name: &str) -> f64 {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = samples.get(name) else {
            return 0.0;
        };
        match (q.front(), q.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                n1.saturating_sub(*n0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    /// Ready once every source is connected and capturing (reading its
    /// snapshot or streaming) or has finished; otherwise why not.
    pub fn ready(&self) -> Result<(), NotReady> {
        let st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let mut waiting = Vec::new();
        for s in &self.sources {
            let Some(c) = st.get(&s.name) else {
                waiting.push(format!("source {}: not started", s.name));
                continue;
            };
            let why = match c.state {
                State::Stopped => None,
                State::Running if s.progress.phase() != Phase::Connecting => None,
                State::Running => Some("connecting".to_string()),
                State::Restarting => Some(match &c.last_error {
                    Some(e) => format!("restarting after: {e}"),
                    None => "restarting".to_string(),
                }),
                State::Failed => Some(match &c.last_error {
                    Some(e) => format!("failed (restart it once fixed): {e}"),
                    None => "failed".to_string(),
                }),
                ref other => Some(state_name(other).to_string()),
            };
            if let Some(why) = why {
                waiting.push(format!("source {}: {why}", s.name));
            }
        }
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(NotReady(waiting))
        }
    }

    /// Which topics of the log hold data for sinks.
    pub fn data(&self) -> Arc<crate::topics::DataTopics> {
        Arc::clone(&self.data)
    }

    /// A sink's lag: over every partition of the topics it reads, the
    /// high watermark minus the offset its group resumes from, and the
    /// age of the oldest record in between.
    pub(crate) fn sink_lag(&self, sink: &SinkTelemetry) -> Lag {
        let committed = sink
            .committed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = tributary_log::now_ms();
        let mut lag = Lag::default();
        for t in self.log.topics() {
            if !self.data.consumed_by(&sink.topics, t.name()) {
                continue;
            }
            for p in t.partitions() {
                let tp = TopicPartition::new(t.name(), p.id());
                let from = committed
                    .get(&tp)
                    .copied()
                    .unwrap_or(0)
                    .max(p.earliest_offset());
                let behind = p.high_watermark().saturating_sub(from);
                if behind == 0 {
                    continue;
                }
                lag.records += behind;
                if let Some(ts) = first_timestamp(p, from) {
                    let age = (now - ts).max(0) as f64 / 1000.0;
                    lag.seconds = lag.seconds.max(age);
                }
            }
        }
        lag
    }

    /// Every connector, sources first, in the pipeline's order.
    pub fn connectors(&self) -> Vec<ConnectorView> {
        let mut out = Vec::with_capacity(self.sources.len() + self.sinks.len());
        for s in &self.sources {
            let c = self
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&s.name)
                .cloned();
            let acked = s.progress.acknowledged();
            out.push(ConnectorView {
                name: s.name.clone(),
                role: "source",
                kind: s.format.kind,
                state: c.as_ref().map_or("starting", |c| state_name(&c.state)),
                phase: Some(s.progress.phase().as_str()),
                restarts: c.as_ref().map_or(0, |c| c.restarts),
                last_error: c.and_then(|c| c.last_error),
                records: s.written.load(Ordering::Relaxed),
                records_per_second: self.rate(&s.name),
                errors: s.errors.load(Ordering::Relaxed),
                position: acked.map(s.format.position),
                lag_records: None,
                lag_seconds: None,
                replication_lag_bytes: s.lag_bytes(),
                quarantined: tributary_capture::Quarantine::listed(&self.state_dir(&s.name)),
                slot: s.progress.slot().map(|h| SlotView {
                    retained_wal_bytes: h.retained_wal_bytes,
                    wal_status: h.wal_status,
                    safe_wal_size: h.safe_wal_size,
                }),
            });
        }
        for s in &self.sinks {
            let (state, restarts, last_error) = self.workers_status(s);
            let lag = self.sink_lag(s);
            let mut offsets: BTreeMap<String, BTreeMap<u32, u64>> = BTreeMap::new();
            for (tp, o) in s.committed.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                offsets
                    .entry(tp.topic.clone())
                    .or_default()
                    .insert(tp.partition, *o);
            }
            out.push(ConnectorView {
                name: s.name.clone(),
                role: "sink",
                kind: s.kind,
                state,
                phase: None,
                restarts,
                last_error,
                records: s.applied.load(Ordering::Relaxed),
                records_per_second: self.rate(&s.name),
                errors: s.errors.load(Ordering::Relaxed),
                position: Some(Position::Offsets(offsets)),
                lag_records: Some(lag.records),
                lag_seconds: Some(lag.seconds),
                replication_lag_bytes: None,
                quarantined: Vec::new(),
                slot: None,
            });
        }
        out
    }

    /// A sink's state over its workers, their restarts, the last error
    /// any of them had.
    pub(crate) fn workers_status(&self, s: &SinkTelemetry) -> (&'static str, u32, Option<String>) {
        let st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let order = |s: &State| match s {
            State::Failed => 0,
            State::Restarting => 1,
            State::Paused => 2,
            State::Starting => 3,
            State::Running => 4,
            State::Stopped => 5,
        };
        let mut state = State::Stopped;
        let mut restarts = 0;
        let mut last_error = None;
        for w in &s.workers {
            let Some(c) = st.get(w) else {
                state = State::Starting;
                continue;
            };
            if order(&c.state) < order(&state) {
                state = c.state.clone();
            }
            restarts += c.restarts;
            if c.last_error.is_some() {
                last_error.clone_from(&c.last_error);
            }
        }
        (state_name(&state), restarts, last_error)
    }
}

/// The timestamp of the record at `offset` (or the first after it).
fn first_timestamp(p: &tributary_log::Partition, offset: u64) -> Option<i64> {
    for b in p.read(offset, 1).ok()? {
        for r in b.records().ok()?.iter() {
            let r = r.ok()?;
            if r.offset >= offset {
                return Some(r.timestamp);
            }
        }
    }
    None
}

/// Why the pipeline is not ready: one reason per source still waiting
/// (`source NAME: connecting`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct NotReady(pub Vec<String>);
