//! Child process of the crash test: appends to a `fsync: always` topic as
//! fast as it can and prints each acknowledged append, then commits a
//! consumer offset and prints that too. The test SIGKILLs it at random.
//!
//! Usage: log-writer DATA_DIR RUN
//! Output lines: `ack PARTITION BASE LAST RUN FIRST_SEQ` and
//! `commit PARTITION OFFSET`.

use std::io::Write;

use anyhow::Context;
use tributary_core::{OffsetStore, TopicPartition};
use tributary_log::{BatchBuilder, FsyncPolicy, Log, RecordIn, SledOffsetStore, TopicConfig};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("DATA_DIR")?;
    let run: u32 = args.next().context("RUN")?.parse()?;
    let log = Log::open(&dir)?;
    let offsets = SledOffsetStore::open(std::path::Path::new(&dir).join("offsets"))?;
    let topic = log.create_topic(
        "crash",
        TopicConfig {
            partitions: 2,
            fsync: FsyncPolicy::Always,
            segment_bytes: 16 * 1024,
            index_interval_bytes: 512,
            ..TopicConfig::default()
        },
    )?;
    let out = std::io::stdout();
    let mut seq: u64 = 0;
    let mut i: u64 = 0;
    loop {
        let p = (i % 2) as u32;
        let count = 1 + (i % 7);
        let values: Vec<Vec<u8>> = (0..count)
            .map(|k| tributary_tests::crash_value(run, seq + k))
            .collect();
        let mut b = BatchBuilder::new();
        for v in &values {
            b.push(RecordIn {
                timestamp: tributary_log::now_ms(),
                key: Some(b"k"),
                value: Some(v),
                headers: &[],
            });
        }
        let a = topic.partition(p)?.append(b)?;
        let mut o = out.lock();
        writeln!(o, "ack {p} {} {} {run} {seq}", a.base_offset, a.last_offset)?;
        o.flush()?;
        drop(o);
        offsets.commit(
            "crash-group",
            &TopicPartition::new("crash", p),
            a.last_offset + 1,
        )?;
        let mut o = out.lock();
        writeln!(o, "commit {p} {}", a.last_offset + 1)?;
        o.flush()?;
        seq += count;
        i += 1;
    }
}
