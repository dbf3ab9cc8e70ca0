//! Decoder of PostgreSQL's `pgoutput` logical replication messages,
//! protocol versions 1 and 2 (v2 adds streamed in-progress transactions:
//! Stream Start/Stop/Commit/Abort, and an xid on every message sent inside
//! a stream).
//!
//! Reference: "Logical Replication Message Formats" in the PostgreSQL
//! documentation. Pure: bytes in, messages out; the decoder only remembers
//! whether it is inside a stream block, which decides whether messages
//! carry an xid.

use bytes::Bytes;

/// A decoding failure: the message type and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pgoutput {message} message: {reason}")]
pub struct DecodeError {
    /// The message type being decoded.
    pub message: &'static str,
    /// Why it failed.
    pub reason: String,
}

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (key).
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (e.g. numeric precision/scale, varchar length).
    pub type_modifier: i32,
}

/// A column value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value: not sent.
    UnchangedToast,
    /// Text format.
    Text(Bytes),
    /// Binary format.
    Binary(Bytes),
}

/// A replication message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Transaction start.
    Begin {
        /// LSN of the commit record.
        final_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_time: i64,
        /// Transaction id.
        xid: u32,
    },
    /// Transaction end.
    Commit {
        /// Flags (unused, 0).
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: u64,
        /// End of the commit record: the position to acknowledge.
        end_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_time: i64,
    },
    /// Replication origin of the transaction.
    Origin {
        /// Commit LSN on the origin server.
        lsn: u64,
        /// Origin name.
        name: String,
    },
    /// The shape of a table; sent before its first change in a session and
    /// again after it may have changed.
    Relation {
        /// Streamed transaction id, if inside a stream.
        xid: Option<u32>,
        /// Relation OID.
        oid: u32,
        /// Schema.
        namespace: String,
        /// Table name.
        name: String,
        /// Replica identity setting: `d` default, `n` nothing, `f` full, `i` index.
        replica_identity: u8,
        /// Columns.
        columns: Vec<RelationColumn>,
    },
    /// A custom type used by a relation.
    Type {
        /// Streamed transaction id, if inside a stream.
        xid: Option<u32>,
        /// Type OID.
        oid: u32,
        /// Schema.
        namespace: String,
        /// Type name.
        name: String,
    },
    /// A new row.
    Insert {
        /// Streamed transaction id, if inside a stream.
        xid: Option<u32>,
        /// Relation OID.
        oid: u32,
        /// New row.
        new: Vec<TupleValue>,
    },
    /// A changed row.
    Update {
        /// Streamed transaction id, if inside a stream.
        xid: Option<u32>,
        /// Relation OID.
        oid: u32,
        /// Old key (`K`, when the key changed) or old row (`O`, replica
        /// identity full).
        old: Option<(OldKind, Vec<TupleValue>)>,
        /// New row.
        new: Vec<TupleValue>,
    },
    /// A deleted row.
    Delete {
        /// Streamed transaction id, if inside a stream.
        xid: Option<u32>,
        /// Relation OID.
        oid: u32,
        /// Old key or old row.
        old: (OldKind, Vec<TupleValue>),
    },
    /// Tables truncated.
    Truncate {
        /// Streamed transaction id, if inside a stream.
        xid: Option<u32>,
        /// Bit 1: CASCADE, bit 2: RESTART IDENTITY.
        options: u8,
        /// Relation OIDs.
        oids: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    LogicalMessage {
        /// Streamed transaction id, if inside a stream.
        xid: Option<u32>,
        /// Emitted inside a transaction.
        transactional: bool,
        /// Its LSN.
        lsn: u64,
        /// Prefix.
        prefix: String,
        /// Content.
        content: Bytes,
    },
    /// Start of a block of a streamed (in-progress) transaction.
    StreamStart {
        /// Transaction id.
        xid: u32,
        /// First block of this transaction.
        first_segment: bool,
    },
    /// End of a block.
    StreamStop,
    /// A streamed transaction committed.
    StreamCommit {
        /// Transaction id.
        xid: u32,
        /// Flags.
        flags: u8,
        /// Commit LSN.
        commit_lsn: u64,
        /// End LSN.
        end_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_time: i64,
    },
    /// A streamed (sub)transaction aborted.
    StreamAbort {
        /// Top-level transaction id.
        xid: u32,
        /// Aborted subtransaction (equal to `xid` for the whole transaction).
        subxid: u32,
    },
}

impl Message {
    /// The (sub)transaction id a message inside a stream block carries.
    pub fn stream_xid(&self) -> Option<u32> {
        match self {
            Message::Relation { xid, .. }
            | Message::Type { xid, .. }
            | Message::Insert { xid, .. }
            | Message::Update { xid, .. }
            | Message::Delete { xid, .. }
            | Message::Truncate { xid, .. }
            | Message::LogicalMessage { xid, .. } => *xid,
            _ => None,
        }
    }
}

/// Whether an old tuple is the key only or the whole row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// `K`: the replica identity key columns (others are null).
    Key,
    /// `O`: the full old row (REPLICA IDENTITY FULL).
    Row,
}

/// Decodes a stream of pgoutput messages, tracking stream blocks.
#[derive(Debug, Default)]
pub struct Decoder {
    in_stream: bool,
}

struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
    message: &'static str,
}

impl<'a> Cursor<'a> {
    fn err(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            message: self.message,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.err(format!(
                "needs {n} bytes at byte {}, message has {}",
                self.pos,
                self.buf.len()
            )));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.i32().map(|v| v as u32)
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.i64().map(|v| v as u64)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let rest = &self.buf[self.pos..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("string without terminating NUL"))?;
        let s = std::str::from_utf8(&rest[..nul])
            .map_err(|_| self.err("string is not UTF-8"))?
            .to_string();
        self.pos += nul + 1;
        Ok(s)
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n)?;
        Ok(self.buf.slice(start..start + n))
    }

    fn tuple(&mut self) -> Result<Vec<TupleValue>, DecodeError> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| self.err(format!("negative column count {n}")))?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                kind @ (b't' | b'b') => {
                    let len = self.i32()?;
                    let len = usize::try_from(len)
                        .map_err(|_| self.err(format!("negative length {len}")))?;
                    let data = self.bytes(len)?;
                    if kind == b't' {
                        TupleValue::Text(data)
                    } else {
                        TupleValue::Binary(data)
                    }
                }
                other => {
                    return Err(self.err(format!("unknown tuple value kind {:?}", other as char)));
                }
            });
        }
        Ok(out)
    }

    fn old_kind(&mut self, b: u8) -> Result<OldKind, DecodeError> {
        match b {
            b'K' => Ok(OldKind::Key),
            b'O' => Ok(OldKind::Row),
            other => Err(self.err(format!("expected K or O, found {:?}", other as char))),
        }
    }

    fn done(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len() - self.pos)))
        }
    }
}

impl Decoder {
    /// A decoder outside any stream block.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder inside a stream block: for replaying the messages of a
    /// streamed transaction.
    pub fn in_stream() -> Self {
        Self { in_stream: true }
    }

    /// Decodes one message (the payload of one XLogData).
    pub fn decode(&mut self, buf: &Bytes) -> Result<Message, DecodeError> {
        let Some(&tag) = buf.first() else {
            return Err(DecodeError {
                message: "empty",
                reason: "no message type byte".into(),
            });
        };
        let name = match tag {
            b'B' => "Begin",
            b'C' => "Commit",
            b'O' => "Origin",
            b'R' => "Relation",
            b'Y' => "Type",
            b'I' => "Insert",
            b'U' => "Update",
            b'D' => "Delete",
            b'T' => "Truncate",
            b'M' => "Message",
            b'S' => "Stream Start",
            b'E' => "Stream Stop",
            b'c' => "Stream Commit",
            b'A' => "Stream Abort",
            _ => "unknown",
        };
        let mut c = Cursor {
            buf,
            pos: 1,
            message: name,
        };
        let in_stream = self.in_stream;
        let xid = |c: &mut Cursor<'_>| -> Result<Option<u32>, DecodeError> {
            if in_stream {
                c.u32().map(Some)
            } else {
                Ok(None)
            }
        };
        let msg = match tag {
            b'B' => Message::Begin {
                final_lsn: c.u64()?,
                commit_time: c.i64()?,
                xid: c.u32()?,
            },
            b'C' => Message::Commit {
                flags: c.u8()?,
                commit_lsn: c.u64()?,
                end_lsn: c.u64()?,
                commit_time: c.i64()?,
            },
            b'O' => Message::Origin {
                lsn: c.u64()?,
                name: c.string()?,
            },
            b'R' => {
                let xid = xid(&mut c)?;
                let oid = c.u32()?;
                let namespace = c.string()?;
                let name = c.string()?;
                let replica_identity = c.u8()?;
                let n = c.i16()?;
                let n =
                    usize::try_from(n).map_err(|_| c.err(format!("negative column count {n}")))?;
                let mut columns = Vec::with_capacity(n);
                for _ in 0..n {
                    columns.push(RelationColumn {
                        key: c.u8()? & 1 == 1,
                        name: c.string()?,
                        type_oid: c.u32()?,
                        type_modifier: c.i32()?,
                    });
                }
                Message::Relation {
                    xid,
                    oid,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                }
            }
            b'Y' => Message::Type {
                xid: xid(&mut c)?,
                oid: c.u32()?,
                namespace: c.string()?,
                name: c.string()?,
            },
            b'I' => {
                let xid = xid(&mut c)?;
                let oid = c.u32()?;
                match c.u8()? {
                    b'N' => {}
                    other => return Err(c.err(format!("expected N, found {:?}", other as char))),
                }
                Message::Insert {
                    xid,
                    oid,
                    new: c.tuple()?,
                }
            }
            b'U' => {
                let xid = xid(&mut c)?;
                let oid = c.u32()?;
                let mut old = None;
                let mut marker = c.u8()?;
                if marker == b'K' || marker == b'O' {
                    let kind = c.old_kind(marker)?;
                    old = Some((kind, c.tuple()?));
                    marker = c.u8()?;
                }
                if marker != b'N' {
                    return Err(c.err(format!("expected N, found {:?}", marker as char)));
                }
                Message::Update {
                    xid,
                    oid,
                    old,
                    new: c.tuple()?,
                }
            }
            b'D' => {
                let xid = xid(&mut c)?;
                let oid = c.u32()?;
                let marker = c.u8()?;
                let kind = c.old_kind(marker)?;
                Message::Delete {
                    xid,
                    oid,
                    old: (kind, c.tuple()?),
                }
            }
            b'T' => {
                let xid = xid(&mut c)?;
                let n = c.i32()?;
                let n = usize::try_from(n)
                    .map_err(|_| c.err(format!("negative relation count {n}")))?;
                let options = c.u8()?;
                let oids = (0..n).map(|_| c.u32()).collect::<Result<_, _>>()?;
                Message::Truncate { xid, options, oids }
            }
            b'M' => {
                let xid = xid(&mut c)?;
                let transactional = c.u8()? & 1 == 1;
                let lsn = c.u64()?;
                let prefix = c.string()?;
                let len = c.i32()?;
                let len =
                    usize::try_from(len).map_err(|_| c.err(format!("negative length {len}")))?;
                Message::LogicalMessage {
                    xid,
                    transactional,
                    lsn,
                    prefix,
                    content: c.bytes(len)?,
                }
            }
            b'S' => {
                let m = Message::StreamStart {
                    xid: c.u32()?,
                    first_segment: c.u8()? == 1,
                };
                self.in_stream = true;
                m
            }
            b'E' => {
                self.in_stream = false;
                Message::StreamStop
            }
            b'c' => Message::StreamCommit {
                xid: c.u32()?,
                flags: c.u8()?,
                commit_lsn: c.u64()?,
                end_lsn: c.u64()?,
                commit_time: c.i64()?,
            },
            b'A' => {
                let m = Message::StreamAbort {
                    xid: c.u32()?,
                    subxid: c.u32()?,
                };
                // Protocol 4 (parallel apply) appends abort LSN and time.
                c.pos = c.buf.len();
                m
            }
            other => {
                return Err(DecodeError {
                    message: "unknown",
                    reason: format!("unknown message type {:?}", other as char),
                });
            }
        };
        c.done()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct W(Vec<u8>);
    impl W {
        fn new(tag: u8) -> Self {
            W(vec![tag])
        }
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn i16(mut self, v: i16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn s(mut self, v: &str) -> Self {
            self.0.extend_from_slice(v.as_bytes());
            self.0.push(0);
            self
        }
        fn text(self, v: &str) -> Self {
            let mut w = self.u8(b't').i32(v.len() as i32);
            w.0.extend_from_slice(v.as_bytes());
            w
        }
        fn b(self) -> Bytes {
            Bytes::from(self.0)
        }
    }

    #[test]
    fn transaction_with_relation_insert_update_delete() {
        let mut d = Decoder::new();
        assert_eq!(
            d.decode(&W::new(b'B').i64(0x1_0000_0000).i64(5).i32(700).b()),
            Ok(Message::Begin {
                final_lsn: 0x1_0000_0000,
                commit_time: 5,
                xid: 700
            })
        );
        let rel = W::new(b'R')
            .i32(16384)
            .s("public")
            .s("t")
            .u8(b'd')
            .i16(2)
            .u8(1)
            .s("id")
            .i32(20)
            .i32(-1)
            .u8(0)
            .s("body")
            .i32(25)
            .i32(-1)
            .b();
        assert_eq!(
            d.decode(&rel),
            Ok(Message::Relation {
                xid: None,
                oid: 16384,
                namespace: "public".into(),
                name: "t".into(),
                replica_identity: b'd',
                columns: vec![
                    RelationColumn {
                        key: true,
                        name: "id".into(),
                        type_oid: 20,
                        type_modifier: -1
                    },
                    RelationColumn {
                        key: false,
                        name: "body".into(),
                        type_oid: 25,
                        type_modifier: -1
                    },
                ],
            })
        );
        let ins = W::new(b'I')
            .i32(16384)
            .u8(b'N')
            .i16(2)
            .text("1")
            .u8(b'n')
            .b();
        assert_eq!(
            d.decode(&ins),
            Ok(Message::Insert {
                xid: None,
                oid: 16384,
                new: vec![TupleValue::Text(Bytes::from_static(b"1")), TupleValue::Null]
            })
        );
        let upd = W::new(b'U')
            .i32(16384)
            .u8(b'K')
            .i16(2)
            .text("1")
            .u8(b'n')
            .u8(b'N')
            .i16(2)
            .text("2")
            .u8(b'u')
            .b();
        match d.decode(&upd) {
            Ok(Message::Update {
                old: Some((OldKind::Key, old)),
                new,
                ..
            }) => {
                assert_eq!(old[0], TupleValue::Text(Bytes::from_static(b"1")));
                assert_eq!(new[1], TupleValue::UnchangedToast);
            }
            other => panic!("{other:?}"),
        }
        let del = W::new(b'D').i32(16384).u8(b'O').i16(1).text("2").b();
        assert!(matches!(
            d.decode(&del),
            Ok(Message::Delete {
                old: (OldKind::Row, _),
                ..
            })
        ));
        let commit = W::new(b'C').u8(0).i64(10).i64(20).i64(5).b();
        assert_eq!(
            d.decode(&commit),
            Ok(Message::Commit {
                flags: 0,
                commit_lsn: 10,
                end_lsn: 20,
                commit_time: 5
            })
        );
    }

    #[test]
    fn streamed_messages_carry_an_xid() {
        let mut d = Decoder::new();
        assert_eq!(
            d.decode(&W::new(b'S').i32(900).u8(1).b()),
            Ok(Message::StreamStart {
                xid: 900,
                first_segment: true
            })
        );
        let ins = W::new(b'I')
            .i32(900)
            .i32(16384)
            .u8(b'N')
            .i16(1)
            .text("x")
            .b();
        assert!(matches!(
            d.decode(&ins),
            Ok(Message::Insert {
                xid: Some(900),
                oid: 16384,
                ..
            })
        ));
        let m = W::new(b'M')
            .i32(900)
            .u8(1)
            .i64(77)
            .s("tributary")
            .i32(2)
            .u8(b'h')
            .u8(b'i')
            .b();
        assert!(matches!(
            d.decode(&m),
            Ok(Message::LogicalMessage {
                xid: Some(900),
                transactional: true,
                lsn: 77,
                ..
            })
        ));
        assert_eq!(d.decode(&W::new(b'E').b()), Ok(Message::StreamStop));
        // Outside the block, no xid.
        let ins = W::new(b'I').i32(16384).u8(b'N').i16(1).text("x").b();
        assert!(matches!(
            d.decode(&ins),
            Ok(Message::Insert { xid: None, .. })
        ));
        let c = W::new(b'c').i32(900).u8(0).i64(1).i64(2).i64(3).b();
        assert!(matches!(
            d.decode(&c),
            Ok(Message::StreamCommit {
                xid: 900,
                end_lsn: 2,
                ..
            })
        ));
        let a = W::new(b'A').i32(900).i32(901).b();
        assert_eq!(
            d.decode(&a),
            Ok(Message::StreamAbort {
                xid: 900,
                subxid: 901
            })
        );
        let t = W::new(b'T').i32(2).u8(1).i32(1).i32(2).b();
        assert_eq!(
            d.decode(&t),
            Ok(Message::Truncate {
                xid: None,
                options: 1,
                oids: vec![1, 2]
            })
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let mut d = Decoder::new();
        let good = W::new(b'I')
            .i32(16384)
            .u8(b'N')
            .i16(2)
            .text("12345")
            .u8(b'n')
            .b();
        for cut in 0..good.len() {
            assert!(d.decode(&good.slice(..cut)).is_err(), "cut at {cut}");
        }
        assert!(d.decode(&W::new(b'I').i32(1).u8(b'N').i16(-1).b()).is_err());
        assert!(
            d.decode(&W::new(b'I').i32(1).u8(b'N').i16(1).u8(b't').i32(-5).b())
                .is_err()
        );
        assert!(d.decode(&W::new(b'Z').b()).is_err());
        let err = d.decode(&W::new(b'R').i32(1).b()).expect_err("truncated");
        assert_eq!(err.message, "Relation");
    }
}
