//! A topic: a fixed number of partitions and the rule that picks one.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::batch::{BatchBuilder, RecordIn};
use crate::config::TopicConfig;
use crate::error::{LogError, Result};
use crate::partition::Partition;

/// Kafka's murmur2 (the 32-bit variant with seed 0x9747b28c, as in
/// `org.apache.kafka.common.utils.Utils.murmur2`).
///
/// The partition of a keyed record is `(murmur2(key) & 0x7fffffff) % n`,
/// exactly Kafka's default partitioner: the same key lands in the same
/// partition across restarts, versions of Tributary, and Kafka clients.
/// Changing this function would move keys between partitions and break
/// per-key order, so it is pinned by tests with Kafka's own vectors.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: i32 = 0x5bd1_e995;
    let len = data.len();
    let mut h: i32 = (0x9747_b28c_u32 as i32) ^ (len as i32);
    for c in data.chunks_exact(4) {
        let mut k = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = &data[len & !3..];
    if tail.len() == 3 {
        h ^= i32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= i32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= i32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(M);
    h ^= ((h as u32) >> 15) as i32;
    h
}

/// The partition a key goes to among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

/// Where a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// By the hash of its key; keyless records rotate over partitions.
    ByKey,
    /// To this partition.
    Partition(u32),
}

/// One topic of the log.
#[derive(Debug)]
pub struct Topic {
    name: String,
    config: Arc<TopicConfig>,
    partitions: Vec<Arc<Partition>>,
    round_robin: AtomicU32,
}

impl Topic {
    pub(crate) fn open(name: &str, dir: &Path, config: TopicConfig) -> Result<Self> {
        let config = Arc::new(config);
        let partitions = (0..config.partitions)
            .map(|p| {
                Partition::open(name, p, &dir.join(p.to_string()), Arc::clone(&config))
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name: name.to_string(),
            config,
            partitions,
            round_robin: AtomicU32::new(0),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration.
    pub fn config(&self) -> &TopicConfig {
        &self.config
    }

    /// All partitions, by number.
    pub fn partitions(&self) -> &[Arc<Partition>] {
        &self.partitions
    }

    /// One partition.
    pub fn partition(&self, id: u32) -> Result<&Arc<Partition>> {
        self.partitions
            .get(id as usize)
            .ok_or_else(|| LogError::UnknownPartition {
                topic: self.name.clone(),
                partition: id,
                partitions: self.config.partitions,
            })
    }

    /// The partition a record with this key is routed to.
    pub fn route(&self, route: Route, key: Option<&[u8]>) -> Result<u32> {
        match (route, key) {
            (Route::Partition(p), _) => self.partition(p).map(|_| p),
            (Route::ByKey, Some(k)) => Ok(partition_for_key(k, self.config.partitions)),
            (Route::ByKey, None) => {
                Ok(self.round_robin.fetch_add(1, Ordering::Relaxed) % self.config.partitions)
            }
        }
    }

    /// Appends records, each routed by `route`; one batch per partition
    /// touched. Returns each record's (partition, offset), in input order.
    ///
    /// Records going to different partitions are not atomic together: a
    /// failure may leave the earlier partitions' batches written.
    pub fn append(&self, route: Route, records: &[RecordIn<'_>]) -> Result<Vec<(u32, u64)>> {
        let mut builders: Vec<Option<BatchBuilder>> = vec![None; self.partitions.len()];
        let mut placed = Vec::with_capacity(records.len());
        for r in records {
            let p = self.route(route, r.key)?;
            let b = builders[p as usize].get_or_insert_with(BatchBuilder::new);
            placed.push((p, b.len()));
            b.push(*r);
        }
        let mut bases = vec![0u64; self.partitions.len()];
        for (p, b) in builders.into_iter().enumerate() {
            if let Some(b) = b {
                bases[p] = self.partitions[p].append(b)?.base_offset;
            }
        }
        Ok(placed
            .into_iter()
            .map(|(p, i)| (p, bases[p as usize] + u64::from(i)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (s, want) in cases {
            assert_eq!(murmur2(s.as_bytes()), want, "murmur2({s:?})");
        }
    }

    #[test]
    fn same_key_same_partition() {
        for n in [1, 3, 4, 16] {
            let p = partition_for_key(b"customer-42", n);
            assert!(p < n);
            assert_eq!(p, partition_for_key(b"customer-42", n));
        }
    }
}
