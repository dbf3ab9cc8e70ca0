//! Where the source is in the binlog, and the file that remembers it.
//!
//! The stored position only ever covers transactions whose records the
//! log holds durably: it is written after the partitions' durable
//! watermarks pass what the transaction appended, atomically (a new file
//! renamed over the old, both synced), so a crash leaves the old or the
//! new position, never a torn one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A binlog position: file and offset, and the GTID state after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BinlogPosition {
    /// Binlog file name (`mariadb-bin.000003`).
    pub file: String,
    /// Offset of the next event to read in `file`.
    pub pos: u64,
    /// MariaDB: `domain-server-seq` per domain, comma separated (the form
    /// of `@@gtid_binlog_pos` and `@slave_connect_state`); MySQL: the
    /// executed GTID set. Empty when the server has no GTIDs.
    #[serde(default)]
    pub gtid: String,
}

impl BinlogPosition {
    /// Sort key in stream order on one server: the file's sequence
    /// number, then the offset.
    pub fn order_key(&self) -> (u32, u64) {
        (file_seq(&self.file), self.pos)
    }
}

/// The numeric suffix of a binlog file name (`x.000012` -> 12).
pub fn file_seq(file: &str) -> u32 {
    file.rsplit('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// MariaDB's GTID state: per replication domain, the last server id and
/// sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidState(BTreeMap<u32, (u32, u64)>);

impl GtidState {
    /// Parses `0-1-11,1-2-5` (empty: no GTIDs yet).
    pub fn parse(s: &str) -> Option<Self> {
        let mut m = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.splitn(3, '-');
            let d = it.next()?.parse().ok()?;
            let srv = it.next()?.parse().ok()?;
            let seq = it.next()?.parse().ok()?;
            m.insert(d, (srv, seq));
        }
        Some(Self(m))
    }

    /// Records transaction `domain-server-seq`.
    pub fn apply(&mut self, domain: u32, server: u32, seq: u64) {
        self.0.insert(domain, (server, seq));
    }
}

impl std::fmt::Display for GtidState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (d, (s, n)) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{d}-{s}-{n}")?;
        }
        Ok(())
    }
}

/// MySQL's executed GTID set: per server uuid, the transaction number
/// intervals (`uuid:1-100:105,uuid2:1-7`, as `@@gtid_executed` prints
/// it), which MySQL resumes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet(BTreeMap<String, Vec<(u64, u64)>>);

impl GtidSet {
    /// Parses `@@gtid_executed` (empty: nothing executed).
    pub fn parse(s: &str) -> Option<Self> {
        let mut m = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split(':');
            let uuid = it.next()?.trim().to_ascii_lowercase();
            let mut ivs = Vec::new();
            for iv in it {
                let (a, b) = match iv.split_once('-') {
                    Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                    None => {
                        let n = iv.parse().ok()?;
                        (n, n)
                    }
                };
                ivs.push((a, b));
            }
            m.insert(uuid, ivs);
        }
        Some(Self(m))
    }

    /// Adds transaction `gno` of server `uuid`.
    pub fn add(&mut self, uuid: &str, gno: u64) {
        let ivs = self.0.entry(uuid.to_ascii_lowercase()).or_default();
        ivs.push((gno, gno));
        ivs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(a, b) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ivs = merged;
    }
}

impl std::fmt::Display for GtidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (uuid, ivs) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(uuid)?;
            for (a, b) in ivs {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

/// What the source keeps between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Resume here.
    pub position: BinlogPosition,
    /// The initial snapshot finished (its records are durable).
    pub snapshot_done: bool,
    /// The server's `@@server_uuid`/`@@server_id` seen when stored, to
    /// notice a different server behind the same address.
    #[serde(default)]
    pub server: String,
}

/// The position file of source `name` under the log directory.
pub fn path(log_dir: &Path, name: &str) -> PathBuf {
    log_dir
        .join("sources")
        .join(name)
        .join("binlog-position.json")
}

/// Reads the stored position, if any.
pub fn load(path: &Path) -> std::io::Result<Option<Stored>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `s` durably (temporary file, fsync, rename, fsync the directory).
pub fn save(path: &Path, s: &Stored) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(s).map_err(std::io::Error::other)?;
    tributary_capture::write_durably(path, &body)
}

/// Removes the stored position (a re-snapshot starts over).
pub fn clear(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_state_round_trip() {
        let mut g = GtidState::parse("0-1-11,2-5-7").expect("parses");
        g.apply(0, 1, 12);
        g.apply(1, 3, 1);
        assert_eq!(g.to_string(), "0-1-12,1-3-1,2-5-7");
        assert_eq!(GtidState::parse("").expect("empty").to_string(), "");
        assert!(GtidState::parse("0-x-1").is_none());
    }

    #[test]
    fn mysql_gtid_sets_grow_and_merge() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut g = GtidSet::parse(&format!("{u}:1-5:7")).expect("parses");
        g.add(u, 6);
        assert_eq!(g.to_string(), format!("{u}:1-7"));
        g.add(u, 9);
        g.add("A1A1A1A1-0000-0000-0000-000000000001", 1);
        assert_eq!(
            g.to_string(),
            format!("{u}:1-7:9,a1a1a1a1-0000-0000-0000-000000000001:1"),
            "servers in uuid order"
        );
        assert_eq!(GtidSet::parse("").expect("empty").to_string(), "");
        assert!(GtidSet::parse("x:1-y").is_none());
    }

    #[test]
    fn order_follows_files_then_offsets() {
        let p = |f: &str, pos| BinlogPosition {
            file: f.into(),
            pos,
            gtid: String::new(),
        };
        assert!(p("b.000002", 4).order_key() > p("b.000001", 99999).order_key());
        assert!(p("b.000002", 5).order_key() > p("b.000002", 4).order_key());
    }

    #[test]
    fn saved_position_reads_back() {
        let d = tempdir();
        let path = path(&d, "src");
        assert_eq!(load(&path).expect("none"), None);
        let s = Stored {
            position: BinlogPosition {
                file: "m.000001".into(),
                pos: 42,
                gtid: "0-1-3".into(),
            },
            snapshot_done: true,
            server: "1".into(),
        };
        save(&path, &s).expect("saves");
        assert_eq!(load(&path).expect("reads"), Some(s));
        std::fs::remove_dir_all(&d).ok();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("trib-pos-{}", std::process::id()));
        std::fs::create_dir_all(&d).ok();
        d
    }
}
