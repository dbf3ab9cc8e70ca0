//! Damaged files end in the documented outcome:
//! - a torn or damaged *last* batch of the active segment is truncated
//!   away on open (`Recovery::TornTail`); everything before it survives;
//! - damage in the active segment with valid batches after it, or inside
//!   a sealed segment, is `LogError::Corrupt` naming the file and the byte
//!   offset of the bad batch: on open when the segment is scanned, on read
//!   otherwise; never skipped;
//! - a missing or stale index is rebuilt from the segment.

use std::path::{Path, PathBuf};

use tributary_log::batch::parse_header;
use tributary_log::{BatchBuilder, FsyncPolicy, Log, LogError, RecordIn, Recovery, TopicConfig};

use super::{manual, read_from};

const BATCHES: u64 = 120;

fn cfg() -> TopicConfig {
    TopicConfig {
        fsync: FsyncPolicy::Never,
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..TopicConfig::default()
    }
}

fn value(i: u64) -> Vec<u8> {
    format!("{i:0>100}").into_bytes()
}

/// Writes BATCHES one-record batches; returns the partition directory.
fn fill(dir: &Path) -> PathBuf {
    let log = Log::open_with(dir, manual()).expect("open");
    let topic = log.create_topic("c", cfg()).expect("create");
    let p = topic.partition(0).expect("p0");
    for i in 0..BATCHES {
        let mut b = BatchBuilder::new();
        let v = value(i);
        b.push(RecordIn {
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(b"key"),
            value: Some(&v),
            headers: &[],
        });
        p.append(b).expect("append");
    }
    assert!(p.segment_bases().len() >= 3, "need sealed segments");
    dir.join("topics/c/0")
}

fn segments(pdir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(pdir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Byte positions of the batches in a segment file.
fn batch_positions(file: &Path) -> Vec<u64> {
    let bytes = std::fs::read(file).expect("read segment");
    let mut pos = 0usize;
    let mut out = Vec::new();
    while pos < bytes.len() {
        out.push(pos as u64);
        pos += parse_header(&bytes[pos..]).expect("header").total_len;
    }
    out
}

fn flip(file: &Path, at: u64) {
    let mut bytes = std::fs::read(file).expect("read");
    bytes[at as usize] ^= 0x5a;
    std::fs::write(file, bytes).expect("write");
}

fn reopen(dir: &Path) -> Result<Log, LogError> {
    Log::open_with(dir, manual())
}

fn check_values(log: &Log, upto: u64) {
    let p = log
        .topic("c")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    let got = read_from(&p, 0).expect("read");
    assert_eq!(got.len() as u64, upto);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.value.as_deref(), Some(&value(i as u64)[..]));
    }
}

#[test]
fn truncated_tail_is_cut_back_to_the_last_whole_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir = fill(dir.path());
    let active = segments(&pdir).pop().expect("active");
    let last = *batch_positions(&active).last().expect("a batch");
    let len = std::fs::metadata(&active).expect("stat").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .expect("open");
    f.set_len(len - 10).expect("truncate");
    drop(f);
    let log = reopen(dir.path()).expect("reopen recovers a torn tail");
    let p = log
        .topic("c")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    assert_eq!(
        p.recovery(),
        &Recovery::TornTail {
            path: active.clone(),
            truncated_at: last,
            dropped_bytes: len - 10 - last
        }
    );
    assert_eq!(p.high_watermark(), BATCHES - 1);
    check_values(&log, BATCHES - 1);
    // Appending goes on from the cut.
    let mut b = BatchBuilder::new();
    let v = value(BATCHES - 1);
    b.push(RecordIn {
        timestamp: 1,
        key: Some(b"key"),
        value: Some(&v),
        headers: &[],
    });
    assert_eq!(p.append(b).expect("append").base_offset, BATCHES - 1);
    check_values(&log, BATCHES);
}

#[test]
fn flipped_bytes_in_the_last_batch_are_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir = fill(dir.path());
    let active = segments(&pdir).pop().expect("active");
    let last = *batch_positions(&active).last().expect("a batch");
    flip(&active, last + 50);
    let log = reopen(dir.path()).expect("reopen");
    let p = log
        .topic("c")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    assert!(
        matches!(p.recovery(), Recovery::TornTail { truncated_at, .. } if *truncated_at == last)
    );
    check_values(&log, BATCHES - 1);
}

#[test]
fn damage_followed_by_valid_batches_in_the_active_segment_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir = fill(dir.path());
    let active = segments(&pdir).pop().expect("active");
    let positions = batch_positions(&active);
    assert!(positions.len() >= 3, "active segment needs several batches");
    let bad = positions[1];
    flip(&active, bad + 45);
    let err = reopen(dir.path()).expect_err("open must refuse");
    match &err {
        LogError::Corrupt { path, position, .. } => {
            assert_eq!(path, &active);
            assert_eq!(*position, bad);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&active.display().to_string()) && msg.contains(&format!("at byte {bad}")),
        "{msg}"
    );
}

#[test]
fn damage_in_a_sealed_segment_fails_the_read_naming_file_and_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir = fill(dir.path());
    let sealed = segments(&pdir)[1].clone();
    let positions = batch_positions(&sealed);
    let bad = positions[positions.len() / 2];
    flip(&sealed, bad + 60);
    let log = reopen(dir.path()).expect("sealed segments are not scanned on open");
    let p = log
        .topic("c")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    let err = read_from(&p, 0).expect_err("reading across the damage must fail");
    match err {
        LogError::Corrupt { path, position, .. } => {
            assert_eq!(path, sealed);
            assert_eq!(position, bad);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // And with its index gone, the rebuild on open finds it.
    drop(p);
    drop(log);
    std::fs::remove_file(sealed.with_extension("index")).expect("rm index");
    match reopen(dir.path()).expect_err("rebuild must refuse") {
        LogError::Corrupt { path, position, .. } => {
            assert_eq!(path, sealed);
            assert_eq!(position, bad);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn missing_or_stale_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir = fill(dir.path());
    let segs = segments(&pdir);
    let idx = segs[0].with_extension("index");
    let tidx = segs[1].with_extension("timeindex");
    let original = std::fs::read(&idx).expect("index exists after sealing");
    std::fs::remove_file(&idx).expect("rm");
    // A stale time index: written for a shorter log file.
    let mut t = std::fs::read(&tidx).expect("read");
    t[8] ^= 0xff;
    std::fs::write(&tidx, &t).expect("write");
    let log = reopen(dir.path()).expect("reopen");
    check_values(&log, BATCHES);
    assert_eq!(std::fs::read(&idx).expect("index rebuilt"), original);
    let p = log
        .topic("c")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    // The rebuilt time index answers timestamp lookups.
    assert_eq!(
        p.offset_for_timestamp(1_700_000_000_000 + 57)
            .expect("by time"),
        Some(57)
    );
    assert_ne!(std::fs::read(&tidx).expect("time index rebuilt"), t);
}

#[test]
fn a_damaged_length_in_a_sealed_segment_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdir = fill(dir.path());
    let sealed = segments(&pdir)[0].clone();
    let last = *batch_positions(&sealed).last().expect("a batch");
    // High byte of batch_len: the batch now claims to run far past the file.
    flip(&sealed, last + 11);
    let log = reopen(dir.path()).expect("sealed segments are not scanned on open");
    let p = log
        .topic("c")
        .expect("topic")
        .partition(0)
        .expect("p0")
        .clone();
    match read_from(&p, 0) {
        Err(LogError::Corrupt { path, position, .. }) => {
            assert_eq!(path, sealed);
            assert_eq!(position, last);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
