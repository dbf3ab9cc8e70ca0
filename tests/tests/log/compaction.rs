//! Compaction keeps the newest record of each key at its original offset;
//! a tombstone removes its key once older than the delete retention.

use std::collections::BTreeMap;

use tributary_log::{
    BatchBuilder, Cleanup, FsyncPolicy, Log, LogError, RecordIn, TopicConfig, now_ms,
};

use super::{Owned, manual, read_from};

#[test]
fn compaction_keeps_latest_per_key_and_expires_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = TopicConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes: 1024,
        cleanup: Cleanup::Compact,
        delete_retention_ms: 3_600_000,
        ..TopicConfig::default()
    };
    let now = now_ms();
    let old = now - 2 * 3_600_000;
    let mut expected: BTreeMap<Vec<u8>, Owned> = BTreeMap::new();
    let mut tombstoned_long_ago = Vec::new();
    {
        let log = Log::open_with(dir.path(), manual()).expect("open");
        let topic = log.create_topic("compact", cfg.clone()).expect("create");
        let p = topic.partition(0).expect("p0");
        let write = |key: &str, value: Option<String>, ts: i64| {
            let mut b = BatchBuilder::new();
            b.push(RecordIn {
                timestamp: ts,
                key: Some(key.as_bytes()),
                value: value.as_deref().map(str::as_bytes),
                headers: &[],
            });
            let a = p.append(b).expect("append");
            Owned {
                offset: a.base_offset,
                timestamp: ts,
                key: Some(key.as_bytes().to_vec()),
                value: value.map(String::into_bytes),
                headers: vec![],
            }
        };
        for round in 0..5 {
            for k in 0..20 {
                let key = format!("key-{k:02}");
                let rec = write(
                    &key,
                    Some(format!("{key} v{round} {}", "x".repeat(40))),
                    old,
                );
                expected.insert(key.into_bytes(), rec);
            }
        }
        // Old tombstones: these keys must disappear completely.
        for k in 0..5 {
            let key = format!("key-{k:02}");
            write(&key, None, old);
            expected.remove(key.as_bytes());
            tombstoned_long_ago.push(key);
        }
        // A recent tombstone stays (consumers that are behind still see it).
        let rec = write("key-10", None, now);
        expected.insert(b"key-10".to_vec(), rec);
        p.roll().expect("roll");
        // Keyless records are refused on a compacted topic.
        let mut b = BatchBuilder::new();
        b.push(RecordIn {
            timestamp: now,
            key: None,
            value: Some(b"v"),
            headers: &[],
        });
        assert!(matches!(p.append(b), Err(LogError::KeyRequired { .. })));
        let hw = p.high_watermark();
        let stats = p.compact(now).expect("compact");
        assert!(
            stats.segments_rewritten > 0 && stats.records_removed >= 85,
            "{stats:?}"
        );
        check(p, &expected);
        assert_eq!(p.high_watermark(), hw, "offsets do not move");
    }
    // The result survives a reopen.
    let log = Log::open_with(dir.path(), manual()).expect("reopen");
    let topic = log.topic("compact").expect("topic");
    check(topic.partition(0).expect("p0"), &expected);
    let got = read_from(topic.partition(0).expect("p0"), 0).expect("read");
    for key in tombstoned_long_ago {
        assert!(
            got.iter().all(|r| r.key.as_deref() != Some(key.as_bytes())),
            "{key} still present"
        );
    }
}

fn check(p: &tributary_log::Partition, expected: &BTreeMap<Vec<u8>, Owned>) {
    let got = read_from(p, p.earliest_offset()).expect("read");
    let mut want: Vec<&Owned> = expected.values().collect();
    want.sort_by_key(|r| r.offset);
    let got_refs: Vec<&Owned> = got.iter().collect();
    assert_eq!(
        got_refs, want,
        "exactly the newest record of each live key, at its original offset"
    );
}
