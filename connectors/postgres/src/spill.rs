//! Streamed (in-progress) transactions of pgoutput protocol 2, kept on
//! disk until they commit.
//!
//! With `streaming 'on'`, PostgreSQL sends a transaction that outgrows
//! `logical_decoding_work_mem` in blocks before it commits, interleaved
//! with other transactions. Nothing of it may reach the log before its
//! Stream Commit (it may still abort), and holding it in memory is what
//! streaming exists to avoid: each block's raw messages are appended to a
//! file per transaction, and replayed from the file at commit. Aborted
//! subtransactions are remembered by id and skipped on replay.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// One streamed transaction's spill file.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    file: BufWriter<File>,
    aborted: HashSet<u32>,
    /// Messages written.
    pub messages: u64,
}

/// Errors of spill files.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// Reading, writing or creating the file (or its directory) failed.
    #[error("spill file {}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A message too long for the file's 32-bit length prefix.
    #[error("message over 4 GiB")]
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// Cause.
        #[source]
        source: std::num::TryFromIntError,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SpillError + '_ {
    move |source| SpillError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Spill {
    /// Starts (or, on a first segment, restarts) the file of `xid` in `dir`.
    pub fn create(dir: &Path, xid: u32) -> Result<Self, SpillError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(format!("{xid}.spill"));
        let file = File::create(&path).map_err(io(&path))?;
        Ok(Self {
            file: BufWriter::with_capacity(256 * 1024, file),
            path,
            aborted: HashSet::new(),
            messages: 0,
        })
    }

    /// Appends one raw pgoutput message of subtransaction `subxid`.
    pub fn push(&mut self, subxid: u32, data: &[u8]) -> Result<(), SpillError> {
        let len = u32::try_from(data.len()).map_err(|source| SpillError::MessageTooLarge {
            len: data.len(),
            source,
        })?;
        let path = &self.path;
        self.file
            .write_all(&subxid.to_le_bytes())
            .map_err(io(path))?;
        self.file.write_all(&len.to_le_bytes()).map_err(io(path))?;
        self.file.write_all(data).map_err(io(path))?;
        self.messages += 1;
        Ok(())
    }

    /// Forgets subtransaction `subxid`'s messages.
    pub fn abort_subxact(&mut self, subxid: u32) {
        self.aborted.insert(subxid);
    }

    /// Ends writing: a reader over the messages of subtransactions that
    /// did not abort, in stream order.
    pub fn finish(self) -> Result<SpillReader, SpillError> {
        let file = self
            .file
            .into_inner()
            .map_err(|e| io(&self.path)(e.into_error()))?;
        drop(file);
        let f = File::open(&self.path).map_err(io(&self.path))?;
        Ok(SpillReader {
            rd: BufReader::with_capacity(256 * 1024, f),
            aborted: self.aborted,
            path: self.path,
        })
    }

    /// Drops the file (the transaction aborted).
    pub fn discard(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}

/// Replays a spill file.
#[derive(Debug)]
pub struct SpillReader {
    rd: BufReader<File>,
    aborted: HashSet<u32>,
    path: PathBuf,
}

impl SpillReader {
    /// The next message, or `None` at the end.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, SpillError> {
        loop {
            let mut head = [0u8; 8];
            match self.rd.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(io(&self.path)(e)),
            }
            let subxid = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let mut data = vec![0u8; len];
            self.rd.read_exact(&mut data).map_err(io(&self.path))?;
            if !self.aborted.contains(&subxid) {
                return Ok(Some(Bytes::from(data)));
            }
        }
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborted_subtransactions_are_skipped_on_replay() {
        let dir = std::env::temp_dir().join(format!("tributary-spill-{}", std::process::id()));
        let mut s = Spill::create(&dir, 7).expect("create");
        s.push(7, b"a").expect("push");
        s.push(8, b"b").expect("push");
        s.push(7, b"c").expect("push");
        s.push(9, b"d").expect("push");
        s.abort_subxact(8);
        let mut r = s.finish().expect("finish");
        let mut got = Vec::new();
        while let Some(m) = r.next_message().expect("read") {
            got.push(m);
        }
        assert_eq!(got, vec![&b"a"[..], &b"c"[..], &b"d"[..]]);
        let path = dir.join("7.spill");
        assert!(path.exists());
        drop(r);
        assert!(!path.exists(), "the replayed file is removed");
        let _ = std::fs::remove_dir_all(dir);
    }
}
