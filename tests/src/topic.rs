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

/// The change events of `topic` in `log` decoded with `schema`, partition
/// by partition in offset order, and the number of tombstones left out.
pub fn events(
    log: &tributary_log::Log,
    topic: &str,
    schema: &tributary_schemas::EventSchema,
) -> (Vec<tributary_core::ChangeEvent>, usize) {
    let (mut events, mut tombstones) = (Vec::new(), 0);
    each_record(log, topic, |r| match r.value {
        // The Confluent wire format: magic byte and schema id first.
        Some(v) => events.push(schema.decode_value(&v[5..]).expect("decode")),
        None => tombstones += 1,
    });
    (events, tombstones)
}
