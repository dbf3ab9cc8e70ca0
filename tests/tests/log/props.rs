//! Property test: random sequences of append, read, roll and reopen return
//! exactly what was appended, in order, with the same offsets.

use proptest::prelude::*;
use tributary_log::{BatchBuilder, Compression, FsyncPolicy, Log, RecordIn, TopicConfig};

use super::{Owned, manual, read_from};

/// key, value, timestamp delta, whether to add a header.
type GenRecord = (Option<Vec<u8>>, Option<Vec<u8>>, i64, bool);
type Header<'a> = (&'a str, Option<&'a [u8]>);

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<GenRecord>),
    Read(u64),
    ReadByTime(i64),
    Roll,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let record = (
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..24)),
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..300)),
        0i64..1_000_000,
        any::<bool>(),
    );
    prop_oneof![
        6 => proptest::collection::vec(record, 1..40).prop_map(Op::Append),
        2 => any::<u64>().prop_map(Op::Read),
        1 => (0i64..1_000_000).prop_map(Op::ReadByTime),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
    ]
}

fn config(compression: Compression) -> TopicConfig {
    TopicConfig {
        partitions: 1,
        fsync: FsyncPolicy::Never,
        compression,
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..TopicConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_returns_what_was_appended(
        ops in proptest::collection::vec(op(), 1..40),
        compression in prop_oneof![Just(Compression::None), Just(Compression::Lz4), Just(Compression::Zstd)],
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open_with(dir.path(), manual()).expect("open");
        let cfg = config(compression);
        let mut topic = log.create_topic("t", cfg.clone()).expect("create");
        let mut model: Vec<Owned> = Vec::new();
        for op in ops {
            match op {
                Op::Append(records) => {
                    let base_ts = 1_700_000_000_000i64;
                    let mut b = BatchBuilder::new();
                    let headers: Vec<[Header<'_>; 1]> = records
                        .iter()
                        .map(|r| [("h", r.1.as_deref().filter(|_| r.3))])
                        .collect();
                    for (r, h) in records.iter().zip(&headers) {
                        b.push(RecordIn {
                            timestamp: base_ts + r.2,
                            key: r.0.as_deref(),
                            value: r.1.as_deref(),
                            headers: if r.3 { &h[..] } else { &[] },
                        });
                    }
                    let p = topic.partition(0).expect("p0");
                    let a = p.append(b).expect("append");
                    prop_assert_eq!(a.base_offset, model.len() as u64);
                    for (i, r) in records.into_iter().enumerate() {
                        let headers = if r.3 { vec![("h".to_string(), r.1.clone())] } else { vec![] };
                        model.push(Owned {
                            offset: a.base_offset + i as u64,
                            timestamp: base_ts + r.2,
                            key: r.0,
                            value: r.1,
                            headers,
                        });
                    }
                    prop_assert_eq!(a.last_offset + 1, model.len() as u64);
                }
                Op::Read(at) => {
                    let p = topic.partition(0).expect("p0");
                    let from = if model.is_empty() { 0 } else { at % (model.len() as u64 + 1) };
                    let got = read_from(p, from).expect("read");
                    prop_assert_eq!(&got[..], &model[from as usize..]);
                }
                Op::ReadByTime(t) => {
                    let ts = 1_700_000_000_000i64 + t;
                    let p = topic.partition(0).expect("p0");
                    let want = model.iter().find(|r| r.timestamp >= ts).map(|r| r.offset);
                    prop_assert_eq!(p.offset_for_timestamp(ts).expect("by time"), want);
                }
                Op::Roll => topic.partition(0).expect("p0").roll().expect("roll"),
                Op::Reopen => {
                    drop(topic);
                    drop(log);
                    log = Log::open_with(dir.path(), manual()).expect("reopen");
                    topic = log.topic("t").expect("topic after reopen");
                    let p = topic.partition(0).expect("p0");
                    prop_assert_eq!(p.recovery(), &tributary_log::Recovery::Clean);
                    prop_assert_eq!(p.high_watermark(), model.len() as u64);
                }
            }
        }
        let got = read_from(topic.partition(0).expect("p0"), 0).expect("read all");
        prop_assert_eq!(got, model);
    }
}
