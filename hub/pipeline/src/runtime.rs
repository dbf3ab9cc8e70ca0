//! Running a pipeline: every source is a supervised task. A source that
//! fails in a way that may heal (a lost connection, a table not created
//! yet) is restarted with exponential backoff (1 s doubling to 60 s)
//! while the others go on; one whose failure would repeat stops in state
//! `failed` until restarted ([`Telemetry::restart`]) or the pipeline runs
//! again. Its state and last error are in [`Status`]. Shutdown stops the sources (each acknowledges upstream
//! only what the log holds durably), then flushes the log.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tributary_log::Log;
use tributary_schemas::Registry;

use crate::config::{Pipeline, SinkSection, SourceSection};
use crate::error::{SourceRunError, WorkerError};
use crate::status::worker_label;
pub use crate::status::{ConnectorStatus, State, Status};
use crate::telemetry::{SinkTelemetry, SourceTelemetry, Telemetry};

/// Failures that stop the whole pipeline (a connector's own failures only
/// restart it).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The log could not be opened or flushed.
    #[error("log at {dir}: {source}")]
    Log {
        /// Its directory.
        dir: String,
        /// Cause.
        #[source]
        source: tributary_log::LogError,
    },
    /// The registry could not be opened.
    #[error("schema registry: {0}")]
    Registry(#[from] tributary_schemas::RegistryError),
    /// The pipeline asks for something this version cannot run.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// The consumer offsets store could not be opened.
    #[error("consumer offsets: {0}")]
    Offsets(#[source] tributary_core::OffsetStoreError),
    /// The task supervising the connectors panicked or was cancelled.
    #[error("the pipeline's task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// What [`run`] needs beyond the pipeline.
#[derive(Debug)]
pub struct RunOptions {
    /// Turns true to stop.
    pub shutdown: watch::Receiver<bool>,
    /// First wait before restarting a failed connector.
    pub restart_initial: Duration,
    /// Longest wait.
    pub restart_max: Duration,
}

/// What this version cannot run of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// A transform does not compile.
    #[error(transparent)]
    Transform(#[from] crate::config::TransformError),
}

/// Checks that this version can run everything `p` declares (every sink
/// kind the file can name is built in; transforms must compile).
pub fn supported(p: &Pipeline) -> Result<(), Unsupported> {
    crate::config::transforms(p)?;
    Ok(())
}

/// Runs `p` until `opts.shutdown` turns true (or every source stopped by
/// itself). Returns the final status.
pub async fn run(p: Pipeline, opts: RunOptions) -> Result<Status, RuntimeError> {
    start(p, opts)?.wait().await
}

/// A pipeline started by [`start`]: what the hub serves while it runs.
#[derive(Debug)]
pub struct Running {
    /// The pipeline's log.
    pub log: Log,
    /// The pipeline's schema registry.
    pub registry: Registry,
    /// Its connectors' live telemetry.
    pub telemetry: Arc<Telemetry>,
    /// The consumer groups' offsets (its sinks' and any other reader's):
    /// the process holds the store's lock, so the hub's APIs share this.
    pub offsets: Arc<tributary_log::SledOffsetStore>,
    done: tokio::task::JoinHandle<Result<Status, RuntimeError>>,
}

impl Running {
    /// Waits until the pipeline stopped (`opts.shutdown`, or every source
    /// stopped by itself) and the log is flushed; the final status.
    pub async fn wait(self) -> Result<Status, RuntimeError> {
        self.done.await.map_err(RuntimeError::Task)?
    }
}

/// Opens the log and registry and starts every connector of `p` (needs a
/// tokio runtime); [`Running::wait`] for the end.
pub fn start(p: Pipeline, mut opts: RunOptions) -> Result<Running, RuntimeError> {
    supported(&p)?;
    let dir = p.log.dir.display().to_string();
    let log_err = move |source| RuntimeError::Log {
        dir: dir.clone(),
        source,
    };
    let log = Log::open(p.log.dir.join("log")).map_err(&log_err)?;
    let registry = Registry::open(p.log.dir.join("registry"))?;
    let status: Status = Arc::new(Mutex::new(BTreeMap::new()));
    let telemetry = Arc::new(Telemetry::new(&p, log.clone(), Arc::clone(&status)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let transforms = Arc::new(crate::config::transforms(&p).map_err(Unsupported::from)?);
    for (s, t) in p.sources.iter().zip(&telemetry.sources) {
        set(&status, &s.name, |c| c.state = State::Starting);
        let sup = Supervised {
            section: s.clone(),
            pipeline: p.clone(),
            log: log.clone(),
            registry: registry.clone(),
            transforms: Arc::clone(&transforms),
            status: Arc::clone(&status),
            telemetry: Arc::clone(t),
            stop: stop_rx.clone(),
            restart: telemetry.restart_requests(&s.name),
            initial: opts.restart_initial,
            max: opts.restart_max,
        };
        tasks.push(tokio::spawn(sup.run()));
    }
    let offsets = Arc::new(
        tributary_log::SledOffsetStore::open(p.log.dir.join("offsets"))
            .map_err(RuntimeError::Offsets)?,
    );
    let decoder = tributary_schemas::RecordDecoder::new(registry.clone());
    for (s, t) in p.sinks.iter().zip(&telemetry.sinks) {
        let permits = Arc::new(tokio::sync::Semaphore::new(
            s.max_in_flight.unwrap_or(s.parallelism).max(1) as usize,
        ));
        for w in 0..s.parallelism.max(1) {
            let label = worker_label(&s.name, w, s.parallelism);
            set(&status, &label, |c| c.role = "sink");
            let sup = SupervisedSink {
                label,
                section: s.clone(),
                worker: w,
                log: log.clone(),
                decoder: decoder.clone(),
                offsets: Arc::clone(&offsets),
                permits: Arc::clone(&permits),
                status: Arc::clone(&status),
                telemetry: Arc::clone(t),
                data: telemetry.data(),
                stop: stop_rx.clone(),
                restart: telemetry.restart_requests(&s.name),
                initial: opts.restart_initial,
                max: opts.restart_max,
            };
            tasks.push(tokio::spawn(sup.run()));
        }
    }
    // Rates are measured from a sample a second.
    {
        let telemetry = Arc::clone(&telemetry);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !*stop.borrow() {
                tokio::select! {
                    _ = tick.tick() => telemetry.sample(),
                    _ = stop.changed() => {}
                }
            }
        });
    }
    tracing::info!(sources = p.sources.len(), sinks = p.sinks.len(), dir = %p.log.dir.display(), "pipeline running");
    let flush_log = log.clone();
    let done = tokio::spawn(async move {
        let all_done = futures_join(&mut tasks);
        tokio::pin!(all_done);
        tokio::select! {
            _ = &mut all_done => {}
            _ = async {
                while !*opts.shutdown.borrow() {
                    if opts.shutdown.changed().await.is_err() {
                        break;
                    }
                }
            } => {
                tracing::info!("stopping: sources first, then the log");
                let _ = stop_tx.send(true);
                all_done.await;
            }
        }
        // The rate sampler, if every connector stopped by itself.
        let _ = stop_tx.send(true);
        flush_log.flush().map_err(log_err)?;
        tracing::info!("stopped");
        Ok(status)
    });
    Ok(Running {
        log,
        registry,
        telemetry,
        offsets,
        done,
    })
}

async fn futures_join(tasks: &mut [tokio::task::JoinHandle<()>]) {
    for t in tasks.iter_mut() {
        let _ = t.await;
    }
}

/// A failed connector's wait before its restart: `error` in status, then
/// `delay` (cut short by a stop); the next delay, doubled up to `max`.
async fn restart_wait(
    status: &Status,
    name: &str,
    error: String,
    delay: Duration,
    max: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Duration {
    set(status, name, |c| {
        c.state = State::Restarting;
        c.restarts += 1;
        c.last_error = Some(error);
    });
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = stop.changed() => {}
    }
    (delay * 2).min(max)
}

/// Waits until a restart is asked for (true) or the pipeline stops
/// (false). Requests made before the wait began do not count: a failed
/// or paused connector, or a running source's life (which a table's
/// resume restarts), waits on this.
async fn wait_restart(
    restart: &mut watch::Receiver<u64>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    restart.borrow_and_update();
    loop {
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            changed = restart.changed() => {
                if changed.is_err() {
                    // The pipeline is going away: wait for its stop.
                    while !*stop.borrow() {
                        if stop.changed().await.is_err() {
                            return false;
                        }
                    }
                    return false;
                }
                return !*stop.borrow();
            }
            changed = stop.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
    }
}

fn set(status: &Status, name: &str, f: impl FnOnce(&mut ConnectorStatus)) {
    let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
    let entry = st.entry(name.to_string()).or_insert(ConnectorStatus {
        role: "source",
        state: State::Starting,
        restarts: 0,
        last_error: None,
        events: 0,
    });
    f(entry);
}

struct Supervised {
    section: SourceSection,
    pipeline: Pipeline,
    log: Log,
    registry: Registry,
    transforms: Arc<tributary_core::transform::Transforms>,
    status: Status,
    telemetry: Arc<SourceTelemetry>,
    stop: watch::Receiver<bool>,
    restart: watch::Receiver<u64>,
    initial: Duration,
    max: Duration,
}

impl Supervised {
    async fn run(mut self) {
        let name = self.section.name.clone();
        let mut delay = self.initial;
        loop {
            if *self.stop.borrow() {
                break;
            }
            match self.once().await {
                Ok((events, true)) => {
                    tracing::info!(source = %name, "restarting as asked");
                    set(&self.status, &name, |c| {
                        c.state = State::Starting;
                        c.events += events;
                    });
                    delay = self.initial;
                }
                Ok((events, false)) => {
                    set(&self.status, &name, |c| {
                        c.state = State::Stopped;
                        c.events += events;
                    });
                    break;
                }
                Err(e) if e.kind() != tributary_capture::ErrorKind::Transient => {
                    self.telemetry.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(source = %name, error = %e, "source failed; it stays stopped until restarted (tributary restart {name}) or the pipeline runs again");
                    set(&self.status, &name, |c| {
                        c.state = State::Failed;
                        c.last_error = Some(e.to_string());
                    });
                    if !wait_restart(&mut self.restart, &mut self.stop).await {
                        return;
                    }
                    tracing::info!(source = %name, "restarting");
                    set(&self.status, &name, |c| {
                        c.state = State::Starting;
                        c.restarts += 1;
                    });
                    delay = self.initial;
                }
                Err(e) => {
                    self.telemetry.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(source = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "source failed; restarting");
                    delay = restart_wait(
                        &self.status,
                        &name,
                        e.to_string(),
                        delay,
                        self.max,
                        &mut self.stop,
                    )
                    .await;
                }
            }
        }
        set(&self.status, &name, |c| c.state = State::Stopped);
    }

    /// One life of the source: until it stops by itself, the pipeline
    /// stops, or a restart is asked for (a table resumed), which ends
    /// this life as a stop does (`Ok((events, true))`).
    async fn once(&mut self) -> Result<(u64, bool), SourceRunError> {
        let (status, name) = (&self.status, &self.section.name);
        let running = || set(status, name, |c| c.state = State::Running);
        let (life_tx, life_rx) = watch::channel(false);
        let mut stop = self.stop.clone();
        let mut restart = self.restart.clone();
        let run = self.section.run_once(crate::source::SourceRun {
            log_section: &self.pipeline.log,
            log: self.log.clone(),
            registry: self.registry.clone(),
            transforms: Arc::clone(&self.transforms),
            written: Arc::clone(&self.telemetry.written),
            progress: Arc::clone(&self.telemetry.progress),
            stop: life_rx,
            running: &running,
        });
        tokio::pin!(run);
        let reload = tokio::select! {
            ended = &mut run => return ended.map(|n| (n, false)),
            reload = wait_restart(&mut restart, &mut stop) => reload,
        };
        let _ = life_tx.send(true);
        run.await.map(|n| (n, reload))
    }
}

struct SupervisedSink {
    label: String,
    section: SinkSection,
    worker: u32,
    log: Log,
    decoder: tributary_schemas::RecordDecoder,
    offsets: Arc<tributary_log::SledOffsetStore>,
    permits: Arc<tokio::sync::Semaphore>,
    status: Status,
    telemetry: Arc<SinkTelemetry>,
    data: Arc<crate::topics::DataTopics>,
    stop: watch::Receiver<bool>,
    restart: watch::Receiver<u64>,
    initial: Duration,
    max: Duration,
}

impl SupervisedSink {
    async fn run(mut self) {
        let mut delay = self.initial;
        loop {
            if *self.stop.borrow() {
                break;
            }
            let ended = match self.section.build() {
                Ok(sink) => {
                    set(&self.status, &self.label, |c| c.state = State::Running);
                    crate::sink::Worker {
                        section: self.section.clone(),
                        worker: self.worker,
                        workers: self.section.parallelism.max(1),
                        log: self.log.clone(),
                        decoder: self.decoder.clone(),
                        offsets: Arc::clone(&self.offsets),
                        stop: self.stop.clone(),
                        sink: Some(sink),
                        permits: Arc::clone(&self.permits),
                        committed: BTreeMap::new(),
                        sink_stores_offsets: false,
                        telemetry: Arc::clone(&self.telemetry),
                        data: Arc::clone(&self.data),
                    }
                    .run()
                    .await
                }
                Err(e) => Err(WorkerError::from(e)),
            };
            match ended {
                Ok(crate::sink::Ended::Stopped { applied }) => {
                    set(&self.status, &self.label, |c| c.events += applied);
                    break;
                }
                Ok(crate::sink::Ended::Paused { applied, error }) => {
                    self.telemetry.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(sink = %self.label, %error, "sink paused at its committed offset");
                    set(&self.status, &self.label, |c| {
                        c.events += applied;
                        c.last_error = Some(error);
                        c.state = State::Paused;
                    });
                    // Paused until restarted by hand or the pipeline stops.
                    if !wait_restart(&mut self.restart, &mut self.stop).await {
                        return;
                    }
                    tracing::info!(sink = %self.label, "restarting at the committed offsets");
                    set(&self.status, &self.label, |c| {
                        c.state = State::Starting;
                        c.restarts += 1;
                    });
                    delay = self.initial;
                }
                Err(e) => {
                    self.telemetry.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(sink = %self.label, error = %e, retry_in_ms = delay.as_millis() as u64, "sink failed; restarting");
                    delay = restart_wait(
                        &self.status,
                        &self.label,
                        e.to_string(),
                        delay,
                        self.max,
                        &mut self.stop,
                    )
                    .await;
                }
            }
        }
        set(&self.status, &self.label, |c| c.state = State::Stopped);
    }
}
