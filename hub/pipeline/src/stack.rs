//! Every sink's writes go through one tower stack, outermost first:
//!
//! - an optional rate limit (`max_batches_per_second`);
//! - retry of transient errors (connection lost, deadlock, serialization
//!   failure, READONLY, a timed-out attempt) with exponential backoff and
//!   full jitter, for as long as the pipeline runs; records the target
//!   refuses and fatal errors are not retried (they go to `on_error`);
//! - a concurrency limit shared by the sink's workers (`max_in_flight`);
//! - a timeout per attempt (`timeout_ms`).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore, watch};
use tower::util::BoxService;
use tower::{BoxError, Service, ServiceBuilder};
use tributary_core::sink::BoxFuture;
use tributary_core::{Sink, SinkError, SinkRecord};

/// A request: the records of `batch` from index `from` on.
#[derive(Debug, Clone)]
pub(crate) struct Apply {
    pub batch: Arc<Vec<SinkRecord>>,
    pub from: usize,
}

/// The stack's service.
pub(crate) type SinkStack = BoxService<Apply, (), BoxError>;

/// Settings of the stack.
#[derive(Debug, Clone)]
pub(crate) struct StackConfig {
    pub name: String,
    pub timeout: Duration,
    pub max_batches_per_second: Option<u32>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// The sink at the bottom of the stack.
#[derive(Clone)]
struct SinkService(Arc<Mutex<Box<dyn Sink>>>);

impl Service<Apply> for SinkService {
    type Response = ();
    type Error = SinkError;
    type Future = BoxFuture<'static, Result<(), SinkError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), SinkError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Apply) -> Self::Future {
        let sink = Arc::clone(&self.0);
        Box::pin(async move {
            let mut sink = sink.lock().await;
            let records = req.batch.get(req.from..).unwrap_or_default();
            sink.apply(records).await
        })
    }
}

/// Retries transient errors with backoff and jitter until the pipeline
/// stops.
#[derive(Clone)]
struct RetryTransient {
    name: String,
    attempt: u32,
    initial: Duration,
    max: Duration,
    timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl tower::retry::Policy<Apply, (), BoxError> for RetryTransient {
    type Future = BoxFuture<'static, ()>;

    fn retry(&mut self, _: &mut Apply, result: &mut Result<(), BoxError>) -> Option<Self::Future> {
        let Err(e) = result else {
            return None;
        };
        let reason = transient(e, self.timeout)?;
        if *self.stop.borrow() {
            return None;
        }
        // Full jitter: a random wait up to the exponential bound, so
        // workers that failed together do not come back together.
        let bound = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        let wait = Duration::from_millis(rand::random_range(0..=bound.as_millis() as u64));
        self.attempt += 1;
        tracing::warn!(sink = %self.name, attempt = self.attempt, error = %reason, retry_in_ms = wait.as_millis() as u64, "sink unavailable; retrying");
        let mut stop = self.stop.clone();
        Some(Box::pin(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }))
    }

    fn clone_request(&mut self, req: &Apply) -> Option<Apply> {
        Some(req.clone())
    }
}

/// The reason to retry `e`, if it is worth retrying.
fn transient(e: &BoxError, timeout: Duration) -> Option<String> {
    if let Some(SinkError::Transient { message, .. }) = e.downcast_ref::<SinkError>() {
        return Some(message.clone());
    }
    if e.is::<tower::timeout::error::Elapsed>() {
        return Some(format!("no answer in {} ms", timeout.as_millis()));
    }
    None
}

/// The stack around `sink`; `permits` is shared by the sink's workers.
pub(crate) fn build(
    sink: Box<dyn Sink>,
    cfg: &StackConfig,
    permits: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) -> SinkStack {
    let policy = RetryTransient {
        name: cfg.name.clone(),
        attempt: 0,
        initial: cfg.backoff_initial,
        max: cfg.backoff_max,
        timeout: cfg.timeout,
        stop,
    };
    let inner = SinkService(Arc::new(Mutex::new(sink)));
    let stack = ServiceBuilder::new()
        .option_layer(cfg.max_batches_per_second.map(|n| {
            tower::limit::RateLimitLayer::new(u64::from(n.max(1)), Duration::from_secs(1))
        }))
        .layer(tower::retry::RetryLayer::new(policy))
        .layer(tower::layer::layer_fn(move |s| {
            tower::limit::ConcurrencyLimit::with_semaphore(s, Arc::clone(&permits))
        }))
        .layer(tower::timeout::TimeoutLayer::new(cfg.timeout))
        .service(inner);
    BoxService::new(stack)
}

/// The stack's error as the sink contract's.
pub(crate) fn sink_error(e: BoxError, timeout: Duration) -> SinkError {
    match e.downcast::<SinkError>() {
        Ok(e) => *e,
        Err(e) => SinkError::Transient {
            message: transient(&e, timeout).unwrap_or_else(|| e.to_string()),
            cause: Some(tributary_core::sink::Cause::from(e)),
        },
    }
}
