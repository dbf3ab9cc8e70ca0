//! Reading a topic of the log back, record by record.

/// Calls `f` with every record of `topic` in `log`, partition by
/// partition, each from its earliest offset in offset order; nothing if
/// the topic does not exist.
pub fn each_record(
    log: &tributary_log::Log,
    topic: &str,
    mut f: impl FnMut(tributary_log::RecordView<'_>),
) {
    let Ok(t) = log.topic(topic) else {
        return;
    };
    for p in t.partitions() {
        let mut offset = p.earliest_offset();
        while offset < p.high_watermark() {
            let batches = p.read(offset, 1 << 20).expect("read");
            if batches.is_empty() {
                break;
            }
            for b in batches {
                for r in b.records().expect("records").iter() {
                    let r = r.expect("record");
                    // A batch read from the middle starts before `offset`.
                    if r.offset < offset {
                        continue;
                    }
                    offset = r.offset + 1;
                    f(r);
                }
            }
        }
    }
}
