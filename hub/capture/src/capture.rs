//! [`Capture`]: what the engine gives a source for one session. The
//! source registers table shapes, opens a transaction at a
//! [`StreamKey`], pushes its events and commits it at a source position;
//! the engine cuts the events into appends, hands them to a log-writer
//! thread (so the source decodes while the writer encodes and appends),
//! and reports a commit's position as durable only once every partition
//! the transaction appended to is durable past what it appended.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot, watch};
use tributary_core::telemetry::{Phase, SourceProgress};
use tributary_core::{ChangeEvent, SourceInfo};
use tributary_log::{Log, TopicConfig};
use tributary_schemas::EventSchema;

use crate::config::{Engine, RunStats};
use crate::error::CaptureError;
use crate::position::StreamKey;
use crate::writer::{EventWriter, Marks, WriteError};

/// Events of one transaction are appended in chunks of at least this
/// many (cut at the source's [`Capture::boundary`] calls), so a huge
/// transaction never sits in memory whole. The chunking is part of the
/// records' positions, so it must not change between runs that share a
/// log (a replay after a crash must cut the same chunks).
pub const CHUNK: usize = 4096;

/// Jobs in flight between a source and its log-writer thread.
const JOBS: usize = 32;

/// Called on the log-writer thread with each newly durable position
/// (MySQL stores it in its position file).
pub type AckHook<P> =
    Box<dyn FnMut(&P) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send>;

/// A job a source runs on the log-writer thread, in order with its
/// appends (MySQL records its schema history this way).
pub type WriterJob =
    Box<dyn FnOnce(&EventWriter) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send>;

/// An event's place in its transaction, for its `transaction` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// Events of the transaction so far, this one included.
    pub total: i64,
    /// Events of its topic in the transaction so far, this one included.
    pub in_table: i64,
}

/// Work for the log-writer thread, in stream order.
enum Job<P> {
    Register {
        topic: String,
        schema: Box<EventSchema>,
        config: TopicConfig,
        done: oneshot::Sender<Result<(), WriteError>>,
    },
    Run(WriterJob),
    Append {
        topic: Arc<str>,
        events: Vec<ChangeEvent>,
        key: StreamKey,
        run: u32,
    },
    Commit(P),
    Tick,
}

/// The transaction being pushed.
struct OpenTx {
    key: StreamKey,
    /// Appends so far: the middle part of the records' positions.
    run: u32,
    total: i64,
    /// Per topic: events so far, and a `source` block its events share.
    per_table: HashMap<Arc<str>, (i64, Option<Arc<SourceInfo>>)>,
    /// Events not yet handed to the writer, in runs of one topic.
    events: Vec<(Arc<str>, Vec<ChangeEvent>)>,
    pending: usize,
}

/// One session's handle on the engine (see the module docs).
pub struct Capture<P: Clone + Send + Sync + 'static> {
    writer: Arc<EventWriter>,
    progress: Arc<SourceProgress>,
    topic_config: TopicConfig,
    jobs: Option<mpsc::Sender<Job<P>>>,
    thread: Option<tokio::task::JoinHandle<Result<(), CaptureError>>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    durable: watch::Receiver<Option<P>>,
    /// Commits the writer found durable.
    durable_commits: Arc<AtomicU64>,
    /// Commits handed to the writer.
    commits: u64,
    tx: Option<OpenTx>,
    /// What this run did so far (the engine carries it across sessions).
    pub stats: RunStats,
}

impl<P: Clone + Send + Sync + 'static> std::fmt::Debug for Capture<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("commits", &self.commits)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P: Clone + Send + Sync + 'static> Capture<P> {
    /// Starts a session's log-writer thread (needs a tokio runtime).
    pub(crate) fn open(engine: &Engine, on_durable: Option<AckHook<P>>, stats: RunStats) -> Self {
        let (jobs, queue) = mpsc::channel(JOBS);
        let (durable_tx, durable) = watch::channel(None);
        let durable_commits = Arc::new(AtomicU64::new(0));
        let flusher = Flusher {
            writer: Arc::clone(&engine.writer),
            log: engine.log.clone(),
            pending: VecDeque::new(),
            marks: Vec::new(),
            durable: durable_tx,
            durable_commits: Arc::clone(&durable_commits),
            on_durable,
        };
        let thread = tokio::task::spawn_blocking(move || flusher.run(queue));
        // Positions become durable while the source is idle too: the
        // writer looks at every status interval.
        let weak = jobs.downgrade();
        let every = engine.settings.status_interval;
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    // A full queue means the writer is busy and looks soon.
                    Some(q) => {
                        let _ = q.try_send(Job::Tick);
                    }
                    None => break,
                }
            }
        });
        Self {
            writer: Arc::clone(&engine.writer),
            progress: Arc::clone(&engine.progress),
            topic_config: engine.settings.topic_config.clone(),
            jobs: Some(jobs),
            thread: Some(thread),
            ticker: Some(ticker),
            durable,
            durable_commits,
            commits: 0,
            tx: None,
            stats,
        }
    }

    /// The write path, for appends outside the stream's order (snapshot
    /// rows, which carry no position).
    pub fn writer(&self) -> &Arc<EventWriter> {
        &self.writer
    }

    /// The source's live progress (phase, positions) for the hub.
    pub fn progress(&self) -> &Arc<SourceProgress> {
        &self.progress
    }

    /// The session reached the stream: phase streaming, one more session.
    pub fn streaming(&mut self) {
        self.stats.sessions += 1;
        self.progress.set_phase(Phase::Streaming);
    }

    async fn send(&self, job: Job<P>) -> Result<(), CaptureError> {
        match &self.jobs {
            Some(q) => q.send(job).await.map_err(|_| CaptureError::WriterStopped),
            None => Err(CaptureError::WriterStopped),
        }
    }

    /// Registers `topic`'s (new) shape (see [`EventWriter::register`]),
    /// in order with the stream: the topic's events pushed before are
    /// appended first, with the shape they had (only then: where a
    /// transaction is cut must not depend on when a source happens to
    /// register a shape, or a replay after a crash would cut it
    /// elsewhere). Returns once it is registered.
    pub async fn register(&mut self, topic: &str, schema: EventSchema) -> Result<(), CaptureError> {
        let pending_here = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.events.iter().any(|(t, _)| &**t == topic));
        if pending_here {
            self.write_pending().await?;
        }
        let (done, registered) = oneshot::channel();
        self.send(Job::Register {
            topic: topic.to_string(),
            schema: Box::new(schema),
            config: self.topic_config.clone(),
            done,
        })
        .await?;
        registered
            .await
            .map_err(|_| CaptureError::WriterStopped)?
            .map_err(CaptureError::from)
    }

    /// Runs `job` on the log-writer thread after everything handed to
    /// it before (a failure stops the writer and surfaces at the next
    /// call or at the session's end).
    pub async fn run_on_writer(&mut self, job: WriterJob) -> Result<(), CaptureError> {
        self.send(Job::Run(job)).await
    }

    /// Opens a transaction starting at `key` (which must sort after the
    /// key of every transaction before it). An open one is replaced.
    pub fn begin(&mut self, key: StreamKey) {
        self.tx = Some(OpenTx {
            key,
            run: 0,
            total: 0,
            per_table: HashMap::new(),
            events: Vec::new(),
            pending: 0,
        });
    }

    /// Whether nothing is in flight: no open transaction, and every
    /// commit handed to the writer is durable.
    pub fn is_idle(&self) -> bool {
        self.tx.is_none() && self.durable_commits.load(Ordering::Acquire) == self.commits
    }

    /// Adds an event of `topic` to the open transaction: `make` builds
    /// it from its place in the transaction and a `source` block slot its
    /// topic's events share in this transaction. Without an open
    /// transaction (a source's bug) the event is refused, not dropped.
    pub fn push(
        &mut self,
        topic: &Arc<str>,
        make: impl FnOnce(Order, &mut Option<Arc<SourceInfo>>) -> ChangeEvent,
    ) -> Result<(), CaptureError> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(CaptureError::NoTransaction {
                topic: topic.to_string(),
            });
        };
        tx.total += 1;
        tx.pending += 1;
        let (per, shared) = match tx.per_table.get_mut(topic) {
            Some(e) => e,
            None => tx.per_table.entry(Arc::clone(topic)).or_insert((0, None)),
        };
        *per += 1;
        let ev = make(
            Order {
                total: tx.total,
                in_table: *per,
            },
            shared,
        );
        match tx.events.last_mut() {
            Some((t, run)) if t == topic => run.push(ev),
            _ => {
                // Sized for a typical transaction's run, so it rarely moves.
                let mut run = Vec::with_capacity(256);
                run.push(ev);
                tx.events.push((Arc::clone(topic), run));
            }
        }
        Ok(())
    }

    /// A point where the source may cut the transaction (after an
    /// upstream message): the pending events are appended when they fill
    /// a [`CHUNK`].
    pub async fn boundary(&mut self) -> Result<(), CaptureError> {
        if self.tx.as_ref().is_some_and(|t| t.pending >= CHUNK) {
            self.write_pending().await?;
        }
        Ok(())
    }

    /// Hands the open transaction's pending events to the writer, one
    /// append per run of one topic.
    pub async fn write_pending(&mut self) -> Result<(), CaptureError> {
        let Some(tx) = self.tx.as_mut() else {
            return Ok(());
        };
        if tx.events.is_empty() {
            return Ok(());
        }
        tx.pending = 0;
        let runs = std::mem::take(&mut tx.events);
        let key = tx.key.clone();
        let first = tx.run;
        tx.run += runs.len() as u32;
        for (i, (topic, events)) in runs.into_iter().enumerate() {
            self.send(Job::Append {
                topic,
                events,
                key: key.clone(),
                run: first + i as u32,
            })
            .await?;
        }
        Ok(())
    }

    /// Ends the open transaction (if any) at `at`: the position that
    /// stands for everything up to and including it. It becomes durable
    /// ([`durable`](Self::durable)) once every record appended before it
    /// is. Without an open transaction it marks a position the source
    /// passed with nothing to capture (a file rotation, a keepalive).
    pub async fn commit(&mut self, at: P) -> Result<(), CaptureError> {
        self.write_pending().await?;
        if let Some(tx) = self.tx.take() {
            self.stats.transactions += 1;
            self.stats.events += tx.total as u64;
        }
        self.commits += 1;
        self.send(Job::Commit(at)).await
    }

    /// The newest committed position everything before which is durable
    /// in the log: the one a source may acknowledge upstream.
    pub fn durable(&self) -> Option<P> {
        self.durable.borrow().clone()
    }

    /// Ends the session: the writer appends what it was handed, flushes
    /// the log and acknowledges what became durable. Returns the stats
    /// and the writer's result.
    pub(crate) async fn close(mut self) -> (RunStats, Result<(), CaptureError>) {
        self.jobs = None;
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        let result = match self.thread.take() {
            Some(t) => t
                .await
                .map_err(CaptureError::WriterPanicked)
                .and_then(|r| r),
            None => Ok(()),
        };
        (self.stats, result)
    }
}

impl<P: Clone + Send + Sync + 'static> Drop for Capture<P> {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
    }
}

/// The log-writer thread.
struct Flusher<P> {
    writer: Arc<EventWriter>,
    log: Log,
    /// Commits whose records are appended but maybe not yet durable.
    pending: VecDeque<(P, Marks)>,
    /// What the appends since the last commit touched.
    marks: Marks,
    durable: watch::Sender<Option<P>>,
    durable_commits: Arc<AtomicU64>,
    on_durable: Option<AckHook<P>>,
}

impl<P: Clone + Send + Sync + 'static> Flusher<P> {
    fn run(mut self, mut jobs: mpsc::Receiver<Job<P>>) -> Result<(), CaptureError> {
        while let Some(job) = jobs.blocking_recv() {
            self.job(job)?;
        }
        // Stopping: make what was written durable, then acknowledge it.
        self.log.flush()?;
        self.ack()
    }

    fn job(&mut self, job: Job<P>) -> Result<(), CaptureError> {
        match job {
            Job::Register {
                topic,
                schema,
                config,
                done,
            } => {
                // The source waits for the answer and reports a refusal
                // (the session then ends).
                let _ = done.send(self.writer.register(&topic, *schema, config));
            }
            Job::Run(f) => f(&self.writer).map_err(CaptureError::Source)?,
            Job::Append {
                topic,
                events,
                key,
                run,
            } => {
                let appended = self
                    .writer
                    .append_marked(&topic, &events, Some((&key, run)))?;
                for (p, hw) in appended.marks {
                    match self.marks.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &p)) {
                        Some((_, m)) => *m = (*m).max(hw),
                        None => self.marks.push((p, hw)),
                    }
                }
            }
            Job::Commit(at) => {
                let marks = std::mem::take(&mut self.marks);
                self.pending.push_back((at, marks));
            }
            Job::Tick => self.ack()?,
        }
        Ok(())
    }

    /// Publishes the newest position whose records are all durable.
    fn ack(&mut self) -> Result<(), CaptureError> {
        let mut newest = None;
        let mut n = 0;
        while let Some((_, marks)) = self.pending.front() {
            if marks.iter().all(|(p, hw)| p.durable_watermark() >= *hw) {
                newest = self.pending.pop_front().map(|(p, _)| p);
                n += 1;
            } else {
                break;
            }
        }
        if let Some(p) = newest {
            if let Some(hook) = &mut self.on_durable {
                hook(&p).map_err(CaptureError::Source)?;
            }
            self.durable.send_replace(Some(p));
            self.durable_commits.fetch_add(n, Ordering::Release);
        }
        Ok(())
    }
}
