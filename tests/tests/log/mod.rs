//! The central log, on real files.

mod compaction;
mod corruption;
mod crash;
mod props;
mod retention;
mod tail;

use tributary_log::{LogOptions, Partition};

/// A record as read back, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Every record of `p` from `from` to its high watermark, in order.
pub fn read_from(p: &Partition, from: u64) -> tributary_log::Result<Vec<Owned>> {
    let mut out = Vec::new();
    let mut offset = from;
    let hw = p.high_watermark();
    while offset < hw {
        let batches = p.read(offset, 4096)?;
        if batches.is_empty() {
            break;
        }
        for b in batches {
            for r in b.records()?.iter() {
                let r = r?;
                if r.offset < offset {
                    continue;
                }
                out.push(Owned {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.map(<[u8]>::to_vec),
                    value: r.value.map(<[u8]>::to_vec),
                    headers: r
                        .headers()
                        .map(|h| {
                            let (n, v) = h.expect("header decodes");
                            (n.to_string(), v.map(<[u8]>::to_vec))
                        })
                        .collect(),
                });
            }
            offset = b.last_offset() + 1;
        }
    }
    Ok(out)
}

/// Options for tests: no background thread, everything driven by hand.
pub fn manual() -> LogOptions {
    LogOptions {
        background: false,
        ..LogOptions::default()
    }
}
