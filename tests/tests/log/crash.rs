//! Crash test: a child process appends with `fsync: always` and prints
//! each acknowledged append; we SIGKILL it at random moments, reopen the
//! log, and check that every acknowledged record is there, intact, and
//! that nothing appears that the child never appended. The child also
//! commits consumer offsets to sled after each append: every commit it
//! reported must survive the kill.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::Rng;
use tributary_core::{OffsetStore, TopicPartition};
use tributary_log::{Log, SledOffsetStore};
use tributary_tests::parse_crash_value;

use super::{manual, read_from};

const KILLS: u32 = 24;

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rng();
    // offset -> (run, seq) for each acknowledged record, per partition
    let mut acked: [HashMap<u64, (u32, u64)>; 2] = [HashMap::new(), HashMap::new()];
    let mut committed = [0u64; 2];
    let mut total_acks = 0usize;
    for run in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_log-writer"))
            .arg(dir.path())
            .arg(run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn log-writer");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(40..400)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let lines = reader.join().expect("reader thread");
        for line in &lines {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["ack", p, base, last, r, seq] => {
                    let (p, base, last): (usize, u64, u64) = (
                        p.parse().expect("p"),
                        base.parse().expect("base"),
                        last.parse().expect("last"),
                    );
                    let (r, seq): (u32, u64) = (r.parse().expect("run"), seq.parse().expect("seq"));
                    for (k, o) in (base..=last).enumerate() {
                        acked[p].insert(o, (r, seq + k as u64));
                    }
                    total_acks += 1;
                }
                ["commit", p, o] => {
                    let p: usize = p.parse().expect("p");
                    committed[p] = committed[p].max(o.parse().expect("offset"));
                }
                _ => panic!("unexpected line from log-writer: {line:?}"),
            }
        }
        verify(dir.path(), &acked, &committed);
    }
    assert!(
        total_acks > KILLS as usize * 5,
        "the child acknowledged only {total_acks} appends: the test did not exercise anything"
    );
}

fn verify(dir: &std::path::Path, acked: &[HashMap<u64, (u32, u64)>; 2], committed: &[u64; 2]) {
    let log = Log::open_with(dir, manual()).expect("reopen after SIGKILL");
    let Ok(topic) = log.topic("crash") else {
        assert!(
            acked.iter().all(HashMap::is_empty),
            "topic missing but appends were acknowledged"
        );
        return;
    };
    for (p, acked) in acked.iter().enumerate() {
        let part = topic.partition(p as u32).expect("partition");
        let records = read_from(part, 0).expect("read after SIGKILL");
        let mut prev: Option<(u32, u64)> = None;
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as u64, "offsets are dense from 0");
            let value = r.value.as_deref().expect("no tombstones were written");
            let id = parse_crash_value(value).unwrap_or_else(|| {
                panic!(
                    "partition {p} offset {} holds a value the child never wrote",
                    r.offset
                )
            });
            if let Some(prev) = prev {
                assert!(
                    id > prev,
                    "partition {p}: record {id:?} at {} is not after {prev:?}",
                    r.offset
                );
            }
            prev = Some(id);
        }
        for (&offset, &id) in acked {
            let got = records.get(offset as usize).unwrap_or_else(|| {
                panic!(
                    "partition {p}: acknowledged offset {offset} lost (high watermark {})",
                    records.len()
                )
            });
            assert_eq!(
                parse_crash_value(got.value.as_deref().unwrap_or_default()),
                Some(id)
            );
        }
    }
    drop(topic);
    drop(log);
    let store = SledOffsetStore::open(dir.join("offsets")).expect("open offsets");
    for (p, &c) in committed.iter().enumerate() {
        let got = store
            .get("crash-group", &TopicPartition::new("crash", p as u32))
            .expect("get offset")
            .unwrap_or(0);
        assert!(
            got >= c,
            "partition {p}: committed offset {c} was reported, store has {got}"
        );
    }
}
