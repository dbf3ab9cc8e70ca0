//! Consumer offsets in sled.
//!
//! One tree, key `group \0 topic \0 partition(u32 BE)`, value the offset
//! (u64 BE). `commit` calls `flush()` before returning: sled writes are
//! durable only after a flush.
//!
//! A second tree, same keys, holds *pending resets* (`tributary offsets
//! reset`): a sink that stores its offsets in its target resumes from
//! those, not from the group's, so a reset of the group alone would not
//! move it. The sink runtime, at a worker's next start, hands each pending
//! reset to the sink (which stores it in its target), then clears it.

use std::path::Path;

use tributary_core::{ConsumerOffset, OffsetStore, OffsetStoreError, TopicPartition};

/// The sled-backed [`OffsetStore`].
#[derive(Debug, Clone)]
pub struct SledOffsetStore {
    tree: sled::Tree,
    resets: sled::Tree,
    db: sled::Db,
}

fn storage(what: &'static str) -> impl FnOnce(sled::Error) -> OffsetStoreError {
    move |e| OffsetStoreError::Storage {
        what,
        source: Box::new(e),
    }
}

fn key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + tp.topic.len() + 6);
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.extend_from_slice(tp.topic.as_bytes());
    k.push(0);
    k.extend_from_slice(&tp.partition.to_be_bytes());
    k
}

fn decode(k: &[u8], v: &[u8]) -> Result<ConsumerOffset, OffsetStoreError> {
    let malformed = || OffsetStoreError::Malformed {
        key: String::from_utf8_lossy(k).into_owned(),
    };
    let mut parts = k.splitn(3, |&b| b == 0);
    let group = parts.next().ok_or_else(malformed)?;
    let topic = parts.next().ok_or_else(malformed)?;
    let part: [u8; 4] = parts
        .next()
        .and_then(|p| p.try_into().ok())
        .ok_or_else(malformed)?;
    let off: [u8; 8] = v.try_into().map_err(|_| malformed())?;
    Ok(ConsumerOffset {
        group: String::from_utf8(group.to_vec()).map_err(|_| malformed())?,
        tp: TopicPartition::new(
            String::from_utf8(topic.to_vec()).map_err(|_| malformed())?,
            u32::from_be_bytes(part),
        ),
        offset: u64::from_be_bytes(off),
    })
}

/// Every entry of `tree`, or those of `group`.
fn scan(tree: &sled::Tree, group: Option<&str>) -> Result<Vec<ConsumerOffset>, OffsetStoreError> {
    let prefix = group.map(|g| {
        let mut p = g.as_bytes().to_vec();
        p.push(0);
        p
    });
    let iter = match &prefix {
        Some(p) => tree.scan_prefix(p),
        None => tree.iter(),
    };
    let mut out = Vec::new();
    for item in iter {
        let (k, v) = item.map_err(storage("scan"))?;
        out.push(decode(&k, &v)?);
    }
    Ok(out)
}

impl SledOffsetStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OffsetStoreError> {
        // sled releases its file lock from its flusher thread, a moment
        // after the last handle of the previous opening is dropped: a
        // store opened again right away waits for that (briefly; a lock
        // another process holds is still an error).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match sled::open(dir.as_ref()) {
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::Other
                        && e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.map_err(storage("open"))?,
            }
        };
        let tree = db
            .open_tree("consumer_offsets")
            .map_err(storage("open tree"))?;
        let resets = db
            .open_tree("pending_resets")
            .map_err(storage("open tree"))?;
        Ok(Self { tree, resets, db })
    }

    /// Sets `group`'s offsets to `offsets` and records each as a pending
    /// reset, durably, in one sled transaction: either the group and its
    /// pending resets both change or neither does.
    pub fn reset(
        &self,
        group: &str,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<(), OffsetStoreError> {
        use sled::Transactional as _;
        (&self.tree, &self.resets)
            .transaction(|(tree, resets)| {
                for (tp, offset) in offsets {
                    tree.insert(key(group, tp), &offset.to_be_bytes())?;
                    resets.insert(key(group, tp), &offset.to_be_bytes())?;
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| OffsetStoreError::Storage {
                what: "reset",
                source: Box::new(std::io::Error::other(format!("{e:?}"))),
            })?;
        self.db.flush().map_err(storage("flush"))?;
        Ok(())
    }

    /// Pending resets (see [`reset`](Self::reset)), optionally of one group
    /// only, sorted by group, topic and partition.
    pub fn pending_resets(
        &self,
        group: Option<&str>,
    ) -> Result<Vec<ConsumerOffset>, OffsetStoreError> {
        scan(&self.resets, group)
    }

    /// Clears the pending resets of `group` on `tps`, durably: the sink
    /// has stored them in its target.
    pub fn clear_resets(
        &self,
        group: &str,
        tps: &[TopicPartition],
    ) -> Result<(), OffsetStoreError> {
        for tp in tps {
            self.resets
                .remove(key(group, tp))
                .map_err(storage("remove"))?;
        }
        if !tps.is_empty() {
            self.db.flush().map_err(storage("flush"))?;
        }
        Ok(())
    }

    /// Commits offsets of several partitions of `group` together: one
    /// flush for all when `durable` (otherwise sled writes them within its
    /// flush interval, half a second).
    pub fn commit_many(
        &self,
        group: &str,
        offsets: &[(TopicPartition, u64)],
        durable: bool,
    ) -> Result<(), OffsetStoreError> {
        for (tp, offset) in offsets {
            self.tree
                .insert(key(group, tp), &offset.to_be_bytes())
                .map_err(storage("insert"))?;
        }
        if durable && !offsets.is_empty() {
            self.db.flush().map_err(storage("flush"))?;
        }
        Ok(())
    }
}

impl OffsetStore for SledOffsetStore {
    fn commit(
        &self,
        group: &str,
        tp: &TopicPartition,
        offset: u64,
    ) -> Result<(), OffsetStoreError> {
        self.tree
            .insert(key(group, tp), &offset.to_be_bytes())
            .map_err(storage("insert"))?;
        self.db.flush().map_err(storage("flush"))?;
        Ok(())
    }

    fn get(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, OffsetStoreError> {
        let Some(v) = self.tree.get(key(group, tp)).map_err(storage("get"))? else {
            return Ok(None);
        };
        let k = key(group, tp);
        decode(&k, &v).map(|c| Some(c.offset))
    }

    fn list(&self, group: Option<&str>) -> Result<Vec<ConsumerOffset>, OffsetStoreError> {
        scan(&self.tree, group)
    }

    fn delete(&self, group: &str, tp: &TopicPartition) -> Result<bool, OffsetStoreError> {
        let old = self
            .tree
            .remove(key(group, tp))
            .map_err(storage("remove"))?;
        self.db.flush().map_err(storage("flush"))?;
        Ok(old.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tp = TopicPartition::new("orders", 3);
        {
            let s = SledOffsetStore::open(dir.path()).expect("open");
            s.commit("g1", &tp, 10).expect("commit");
            s.commit("g1", &tp, 42).expect("commit");
            s.commit("g2", &TopicPartition::new("orders", 0), 7)
                .expect("commit");
        }
        let s = SledOffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(s.get("g1", &tp).expect("get"), Some(42));
        assert_eq!(
            s.get("g1", &TopicPartition::new("orders", 0)).expect("get"),
            None
        );
        let g1 = s.list(Some("g1")).expect("list");
        assert_eq!(g1.len(), 1);
        assert_eq!(g1[0].offset, 42);
        assert_eq!(s.list(None).expect("list").len(), 2);
        assert!(
            s.delete("g2", &TopicPartition::new("orders", 0))
                .expect("delete")
        );
        assert_eq!(s.list(None).expect("list").len(), 1);
    }

    #[test]
    fn a_reset_moves_the_group_and_stays_pending_until_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p0, p1) = (
            TopicPartition::new("orders", 0),
            TopicPartition::new("orders", 1),
        );
        {
            let s = SledOffsetStore::open(dir.path()).expect("open");
            s.commit("sink", &p0, 40).expect("commit");
            s.commit("other", &p0, 9).expect("commit");
            s.reset("sink", &[(p0.clone(), 0), (p1.clone(), 5)])
                .expect("reset");
        }
        let s = SledOffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(s.get("sink", &p0).expect("get"), Some(0));
        assert_eq!(s.get("sink", &p1).expect("get"), Some(5));
        assert_eq!(s.get("other", &p0).expect("get"), Some(9));
        let pending = s.pending_resets(Some("sink")).expect("pending");
        assert_eq!(
            pending
                .iter()
                .map(|c| (c.tp.clone(), c.offset))
                .collect::<Vec<_>>(),
            [(p0.clone(), 0), (p1.clone(), 5)]
        );
        assert!(s.pending_resets(Some("other")).expect("pending").is_empty());
        s.clear_resets("sink", std::slice::from_ref(&p0))
            .expect("clear");
        assert_eq!(s.pending_resets(None).expect("pending").len(), 1);
        // Clearing a reset leaves the group's offset as it is.
        assert_eq!(s.get("sink", &p0).expect("get"), Some(0));
    }
}
