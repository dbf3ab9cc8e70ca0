//! Tailing: a reader waits for new data without polling and wakes when
//! the writer appends; many readers read while one writer appends.

use std::sync::Arc;
use std::time::Duration;

use tributary_log::{BatchBuilder, FsyncPolicy, Log, RecordIn, TopicConfig};

use super::{manual, read_from};

fn one(v: &[u8]) -> BatchBuilder {
    let mut b = BatchBuilder::new();
    b.push(RecordIn {
        timestamp: 1,
        key: Some(b"k"),
        value: Some(v),
        headers: &[],
    });
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_wakes_on_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open_with(dir.path(), manual()).expect("open");
    let topic = log
        .create_topic("tail", TopicConfig::default())
        .expect("create");
    let p = Arc::clone(topic.partition(0).expect("p0"));
    let waiter = {
        let p = Arc::clone(&p);
        tokio::spawn(async move {
            p.wait_for(0).await;
            read_from(&p, 0).expect("read")
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiter.is_finished(),
        "reader returned before anything was appended"
    );
    p.append(one(b"first")).expect("append");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("reader woke up")
        .expect("join");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value.as_deref(), Some(&b"first"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_watermark_follows_interval_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    // With the background thread: the interval flusher must move it.
    let log = Log::open(dir.path()).expect("open");
    let cfg = TopicConfig {
        fsync: FsyncPolicy::interval(20),
        ..TopicConfig::default()
    };
    let topic = log.create_topic("durable", cfg).expect("create");
    let p = Arc::clone(topic.partition(0).expect("p0"));
    p.append(one(b"x")).expect("append");
    assert_eq!(p.high_watermark(), 1);
    tokio::time::timeout(Duration::from_secs(5), p.wait_durable(0))
        .await
        .expect("durable watermark moved past offset 0");
    assert_eq!(p.durable_watermark(), 1);
}

#[test]
fn concurrent_readers_see_a_consistent_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open_with(dir.path(), manual()).expect("open");
    let cfg = TopicConfig {
        segment_bytes: 4096,
        fsync: FsyncPolicy::Never,
        ..TopicConfig::default()
    };
    let topic = log.create_topic("conc", cfg).expect("create");
    let p = Arc::clone(topic.partition(0).expect("p0"));
    const N: u64 = 3000;
    std::thread::scope(|s| {
        for _ in 0..3 {
            let p = Arc::clone(&p);
            s.spawn(move || {
                let mut seen = 0u64;
                while seen < N {
                    let got = read_from(&p, seen).expect("read while writing");
                    for r in &got {
                        assert_eq!(r.offset, seen);
                        assert_eq!(r.value.as_deref(), Some(seen.to_string().as_bytes()));
                        seen += 1;
                    }
                }
            });
        }
        for i in 0..N {
            p.append(one(i.to_string().as_bytes())).expect("append");
        }
    });
    assert!(
        p.segment_bases().len() > 5,
        "the test should span several segments"
    );
}

/// Every offset reads back as the first record handed out, whatever
/// `max_bytes`, with the default (sparse) index interval: batches skipped
/// on the way from the index entry to the offset must not use up the
/// read budget.
#[test]
fn every_offset_is_readable_with_a_small_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open_with(dir.path(), manual()).expect("open");
    let cfg = TopicConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes: 64 * 1024,
        ..TopicConfig::default()
    };
    let topic = log.create_topic("sparse", cfg).expect("create");
    let p = topic.partition(0).expect("p0");
    for i in 0..1500u64 {
        p.append(one(format!("{i:0>100}").as_bytes()))
            .expect("append");
    }
    assert!(p.segment_bases().len() > 2);
    for o in 0..1500u64 {
        let batches = p.read(o, 150).expect("read");
        let first = batches
            .first()
            .unwrap_or_else(|| panic!("nothing read at offset {o}"));
        assert_eq!(first.base_offset(), o);
    }
}
