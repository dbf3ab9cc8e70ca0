//! Retention deletes whole sealed segments, oldest first, by size and by
//! age, and never the active segment.

use tributary_log::{BatchBuilder, FsyncPolicy, Log, LogError, RecordIn, TopicConfig, now_ms};

use super::{manual, read_from};

fn append(p: &tributary_log::Partition, ts: i64, n: usize) {
    for _ in 0..n {
        let mut b = BatchBuilder::new();
        b.push(RecordIn {
            timestamp: ts,
            key: Some(b"k"),
            value: Some(&[7u8; 200]),
            headers: &[],
        });
        p.append(b).expect("append");
    }
}

#[test]
fn size_retention_keeps_the_newest_segments_within_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open_with(dir.path(), manual()).expect("open");
    let cfg = TopicConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes: 2048,
        retention_bytes: Some(6000),
        ..TopicConfig::default()
    };
    let topic = log.create_topic("size", cfg).expect("create");
    let p = topic.partition(0).expect("p0");
    append(p, now_ms(), 100);
    let before = p.segment_bases();
    let (_, bytes_before) = p.disk_usage();
    assert!(bytes_before > 6000);
    log.maintain().expect("maintain");
    let after = p.segment_bases();
    let (_, bytes_after) = p.disk_usage();
    assert!(bytes_after <= 6000, "{bytes_after} bytes left");
    assert_eq!(after.last(), before.last(), "the active segment stays");
    assert_eq!(
        &before[before.len() - after.len()..],
        &after[..],
        "oldest segments went first"
    );
    let earliest = p.earliest_offset();
    assert_eq!(earliest, after[0]);
    // What is left reads from the new start; below it is out of range.
    assert_eq!(
        read_from(p, earliest).expect("read").len() as u64,
        100 - earliest
    );
    assert!(
        matches!(p.read(0, 1024), Err(LogError::OffsetOutOfRange { earliest: e, .. }) if e == earliest)
    );
    for base in &before[..before.len() - after.len()] {
        assert!(
            !dir.path()
                .join(format!("topics/size/0/{base:020}.log"))
                .exists()
        );
    }
}

#[test]
fn age_retention_deletes_segments_whose_newest_record_is_too_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open_with(dir.path(), manual()).expect("open");
    let cfg = TopicConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes: 2048,
        retention_ms: Some(3_600_000),
        ..TopicConfig::default()
    };
    let topic = log.create_topic("age", cfg).expect("create");
    let p = topic.partition(0).expect("p0");
    let old = now_ms() - 2 * 3_600_000;
    append(p, old, 30);
    p.roll().expect("roll");
    let first_new = p.high_watermark();
    append(p, now_ms(), 30);
    log.maintain().expect("maintain");
    assert_eq!(
        p.earliest_offset(),
        first_new,
        "every old segment went, no new one"
    );
    let left = read_from(p, first_new).expect("read");
    assert_eq!(left.len(), 30);
    assert!(left.iter().all(|r| r.timestamp > old));
}
