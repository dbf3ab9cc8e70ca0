//! The capture engine on a real log: a source's commits are reported
//! durable (and so may be acknowledged upstream) only once the log holds
//! their records durably; records carry their stream positions; an event
//! outside a transaction is refused, not dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tributary_capture::{
    AckHook, Backoff, Capture, CaptureError, ChangeSource, Engine, ErrorKind, RecordMarks,
    Settings, SnapshotMode, StreamKey,
};
use tributary_core::Op;
use tributary_log::{FsyncPolicy, Log, LogOptions, TopicConfig};
use tributary_schemas::{Connector, EventSchema, Registry};

use crate::schemas::{event, table};

const TOPIC: &str = "src.public.customers";

/// Two transactions, then waits to be stopped.
struct Scripted {
    /// Positions the engine reported durable, in order.
    acked: Arc<Mutex<Vec<u64>>>,
    /// Turns true once both commits were handed to the engine.
    handed: watch::Sender<bool>,
    /// What a push outside a transaction returned.
    stray: Arc<Mutex<Option<String>>>,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Failed(#[from] CaptureError);

impl ChangeSource for Scripted {
    type Position = u64;
    type Error = Failed;
    const DATABASE: &'static str = "scripted";

    async fn session(
        &mut self,
        capture: &mut Capture<u64>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Failed> {
        let schema = EventSchema::new("src", Connector::Postgres, table()).expect("schema");
        capture.register(TOPIC, schema).await?;
        let topic: Arc<str> = TOPIC.into();
        let stray = capture.push(&topic, |_, _| event(9, Op::Create));
        *self.stray.lock().expect("lock") = stray.err().map(|e| e.to_string());
        capture.streaming();
        for (key, ids, end) in [(1u64, vec![1, 2], 10u64), (2, vec![3], 20)] {
            capture.begin(StreamKey::from_parts(&[&key.to_be_bytes()]));
            for id in ids {
                capture.push(&topic, |_, _| event(id, Op::Create))?;
            }
            capture.boundary().await?;
            capture.commit(end).await?;
        }
        let _ = self.handed.send(true);
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        Ok(())
    }

    fn classify(&self, _: &Failed, _: bool) -> ErrorKind {
        ErrorKind::Fatal
    }

    fn on_durable(&self) -> Option<AckHook<u64>> {
        let acked = Arc::clone(&self.acked);
        Some(Box::new(move |p: &u64| {
            acked.lock().expect("lock").push(*p);
            Ok(())
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_acknowledged_only_once_the_log_holds_them_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No background fsync: records become durable only when flushed here.
    let log = Log::open_with(
        dir.path().join("log"),
        LogOptions {
            background: false,
            ..LogOptions::default()
        },
    )
    .expect("log");
    let registry = Registry::open(dir.path().join("registry")).expect("registry");
    let writer = tributary_capture::EventWriter::new(log.clone(), registry);
    let settings = Settings {
        topic_config: TopicConfig {
            partitions: 2,
            fsync: FsyncPolicy::interval(3_600_000),
            ..TopicConfig::default()
        },
        snapshot: SnapshotMode::Never,
        reconnect: Backoff::default(),
        status_interval: Duration::from_millis(20),
        heartbeat: None,
        progress_interval: Duration::from_secs(10),
        on_error: Default::default(),
    };
    let engine = Engine::new("src", log.clone(), writer, settings);
    let (handed_tx, mut handed) = watch::channel(false);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stray = Arc::new(Mutex::new(None));
    let mut source = Scripted {
        acked: Arc::clone(&acked),
        handed: handed_tx,
        stray: Arc::clone(&stray),
    };
    let (stop_tx, stop) = watch::channel(false);
    let task =
        tokio::spawn(async move { tributary_capture::run(&mut source, &engine, stop).await });
    tokio::time::timeout(Duration::from_secs(10), handed.wait_for(|h| *h))
        .await
        .expect("commits handed in time")
        .expect("handed");

    // Appended (visible to the writer) but not durable: nothing may be
    // acknowledged, however many status intervals pass.
    let topic = log.topic(TOPIC).expect("topic");
    let appended = || {
        topic
            .partitions()
            .iter()
            .map(|p| p.high_watermark())
            .sum::<u64>()
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while appended() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("three records appended");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*acked.lock().expect("lock"), Vec::<u64>::new());

    // Durable: the newest commit is acknowledged (once), at the next look.
    log.flush().expect("flush");
    tokio::time::timeout(Duration::from_secs(10), async {
        while acked.lock().expect("lock").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("acknowledged after the flush");
    assert_eq!(*acked.lock().expect("lock"), vec![20]);

    let _ = stop_tx.send(true);
    let stats = task.await.expect("task").expect("run");
    assert_eq!(
        (stats.transactions, stats.events, stats.sessions),
        (2, 3, 1)
    );
    assert_eq!(
        stray.lock().expect("lock").as_deref(),
        Some("an event of topic src.public.customers was pushed outside a transaction")
    );

    // Every record carries key ++ run ++ seq: transaction 1's two events
    // in append 0, transaction 2's one.
    let mut positions = Vec::new();
    for p in topic.partitions() {
        for b in p.read(0, 1 << 20).expect("read") {
            for r in b.records().expect("records").iter() {
                let r = r.expect("record");
                let pos = RecordMarks::of(&r).position.expect("position");
                positions.push((pos.stream_key().to_vec(), pos.run(), pos.seq()));
            }
        }
    }
    positions.sort();
    let key = |k: u64| k.to_be_bytes().to_vec();
    assert_eq!(
        positions,
        vec![(key(1), 0, 0), (key(1), 0, 1), (key(2), 0, 0)]
    );
}
