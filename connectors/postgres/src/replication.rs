//! The replication connection: PostgreSQL's frontend/backend protocol 3.0
//! with `replication=database`, enough of it for replication commands
//! (simple queries) and the CopyBoth stream of `START_REPLICATION`.
//!
//! Written on tokio directly rather than through a replication crate so
//! that we choose the pgoutput options (protocol 2 with streaming of large
//! transactions, logical messages) and when standby status goes out.
//! Authentication: trust, cleartext password, MD5 and SCRAM-SHA-256.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::SslMode;

/// The reading half of a plain or TLS connection.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half.
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

use crate::types::SESSION_OPTIONS;

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

pub use tributary_postgres_conn::ConnectConfig;

/// Errors of the replication connection.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The socket failed.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The server answered with an error.
    #[error("server error {code}: {message}{}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(), hint.as_deref().map(|h| format!(" hint: {h}")).unwrap_or_default())]
    Server {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
        /// Detail, if any.
        detail: Option<String>,
        /// Hint, if any.
        hint: Option<String>,
    },
    /// The server said something we do not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Authentication cannot proceed.
    #[error("authentication: {0}")]
    Auth(String),
    /// TLS could not be set up or negotiated.
    #[error("TLS: {0}")]
    Tls(String),
}

type Result<T, E = ReplicationError> = std::result::Result<T, E>;

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> ReplicationError {
    move |source| ReplicationError::Io { op, source }
}

/// Formats an LSN as PostgreSQL does (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Parses `16/B374D848`.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

pub use tributary_postgres_conn::quote_ident;

fn server_error(body: &Bytes) -> ReplicationError {
    let mut fields: HashMap<u8, String> = HashMap::new();
    let mut rest = &body[..];
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        fields.insert(kind, String::from_utf8_lossy(&tail[..end]).into_owned());
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    ReplicationError::Server {
        code: fields.remove(&b'C').unwrap_or_default(),
        message: fields.remove(&b'M').unwrap_or_default(),
        detail: fields.remove(&b'D'),
        hint: fields.remove(&b'H'),
    }
}

/// Reads whole backend messages. Cancel-safe: a dropped `message()`
/// future loses nothing, so it can sit in a `select!`.
pub struct MessageReader {
    rd: ReadHalf,
    buf: BytesMut,
}

impl MessageReader {
    async fn message(&mut self) -> Result<(u8, Bytes)> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                if len < 4 {
                    return Err(ReplicationError::Protocol(format!("message length {len}")));
                }
                let total = 1 + len as usize;
                if self.buf.len() >= total {
                    let frame = self.buf.split_to(total).freeze();
                    return Ok((frame[0], frame.slice(5..)));
                }
                self.buf.reserve(total - self.buf.len());
            } else {
                self.buf.reserve(64 * 1024);
            }
            let n = self.rd.read_buf(&mut self.buf).await.map_err(io("read"))?;
            if n == 0 {
                return Err(ReplicationError::Io {
                    op: "read",
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
        }
    }
}

fn frame(tag: u8, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::with_capacity(body.len() + 5);
    b.put_u8(tag);
    b.put_i32(body.len() as i32 + 4);
    b.put_slice(body);
    b
}

fn cstr(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

/// A connection in replication mode, before streaming starts.
pub struct Connection {
    reader: MessageReader,
    wr: WriteHalf,
    /// Server parameters reported at start-up.
    pub parameters: HashMap<String, String>,
}

impl Connection {
    /// Connects and authenticates.
    pub async fn connect(cfg: &ConnectConfig) -> Result<Self> {
        let mut stream = TcpStream::connect((cfg.host.as_str(), cfg.port))
            .await
            .map_err(io("connect"))?;
        stream.set_nodelay(true).map_err(io("set TCP_NODELAY"))?;
        let tls = crate::tls::client_config(cfg.ssl_mode, cfg.ssl_root_cert.as_deref())?;
        let (rd, wr): (ReadHalf, WriteHalf) = match tls {
            Some(config) if Self::ssl_request(&mut stream).await? => {
                let name = crate::tls::server_name(&cfg.host)?;
                // rustls reads 4 KiB at a time: a buffer under it turns
                // that into one system call per 256 KiB.
                let buffered = tokio::io::BufReader::with_capacity(256 * 1024, stream);
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, buffered)
                    .await
                    .map_err(|e| {
                        ReplicationError::Tls(format!("TLS handshake with {}: {e}", cfg.host))
                    })?;
                let (rd, wr) = tokio::io::split(tls);
                (Box::new(rd), Box::new(wr))
            }
            Some(_) if cfg.ssl_mode != SslMode::Prefer => {
                return Err(ReplicationError::Tls(format!(
                    "{}:{} does not accept TLS, and sslmode is {}",
                    cfg.host,
                    cfg.port,
                    cfg.ssl_mode.as_str()
                )));
            }
            _ => {
                let (rd, wr) = stream.into_split();
                (Box::new(rd), Box::new(wr))
            }
        };
        let mut conn = Connection {
            reader: MessageReader {
                rd,
                buf: BytesMut::with_capacity(64 * 1024),
            },
            wr,
            parameters: HashMap::new(),
        };
        let mut body = BytesMut::new();
        body.put_i32(196_608); // protocol 3.0
        let options = format!("{SESSION_OPTIONS} {}", cfg.extra_options);
        for (k, v) in [
            ("user", cfg.user.as_str()),
            ("database", cfg.database.as_str()),
            ("replication", "database"),
            ("application_name", cfg.application_name.as_str()),
            ("options", options.trim()),
        ] {
            cstr(&mut body, k);
            cstr(&mut body, v);
        }
        body.put_u8(0);
        let mut startup = BytesMut::with_capacity(body.len() + 4);
        startup.put_i32(body.len() as i32 + 4);
        startup.put_slice(&body);
        conn.send(&startup).await?;
        conn.authenticate(cfg).await?;
        Ok(conn)
    }

    /// Asks the server for TLS; true when it agrees.
    async fn ssl_request(stream: &mut TcpStream) -> Result<bool> {
        let mut req = BytesMut::with_capacity(8);
        req.put_i32(8);
        req.put_i32(80_877_103);
        stream
            .write_all(&req)
            .await
            .map_err(io("write SSLRequest"))?;
        let answer = stream
            .read_u8()
            .await
            .map_err(io("read SSLRequest answer"))?;
        match answer {
            b'S' => Ok(true),
            b'N' => Ok(false),
            other => Err(ReplicationError::Protocol(format!(
                "unexpected answer {:?} to SSLRequest",
                other as char
            ))),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.wr.write_all(bytes).await.map_err(io("write"))
    }

    fn password(cfg: &ConnectConfig) -> Result<&str> {
        cfg.password.as_deref().ok_or_else(|| {
            ReplicationError::Auth(format!("the server wants a password for user {}", cfg.user))
        })
    }

    async fn authenticate(&mut self, cfg: &ConnectConfig) -> Result<()> {
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, mut body) = self.reader.message().await?;
            match tag {
                b'R' => {
                    if body.len() < 4 {
                        return Err(ReplicationError::Protocol(
                            "short authentication message".into(),
                        ));
                    }
                    match body.get_i32() {
                        0 => {}
                        3 => {
                            let mut b = BytesMut::new();
                            cstr(&mut b, Self::password(cfg)?);
                            self.send(&frame(b'p', &b)).await?;
                        }
                        5 => {
                            if body.len() < 4 {
                                return Err(ReplicationError::Protocol("short MD5 salt".into()));
                            }
                            let salt = [body[0], body[1], body[2], body[3]];
                            let hash = postgres_protocol::authentication::md5_hash(
                                cfg.user.as_bytes(),
                                Self::password(cfg)?.as_bytes(),
                                salt,
                            );
                            let mut b = BytesMut::new();
                            cstr(&mut b, &hash);
                            self.send(&frame(b'p', &b)).await?;
                        }
                        10 => {
                            let mechanisms = String::from_utf8_lossy(&body);
                            if !mechanisms.split('\0').any(|m| m == "SCRAM-SHA-256") {
                                return Err(ReplicationError::Auth(format!(
                                    "no supported SASL mechanism in {mechanisms:?}"
                                )));
                            }
                            let s = ScramSha256::new(
                                Self::password(cfg)?.as_bytes(),
                                ChannelBinding::unsupported(),
                            );
                            let mut b = BytesMut::new();
                            cstr(&mut b, "SCRAM-SHA-256");
                            b.put_i32(s.message().len() as i32);
                            b.put_slice(s.message());
                            self.send(&frame(b'p', &b)).await?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                ReplicationError::Protocol("SASL continue before SASL start".into())
                            })?;
                            s.update(&body)
                                .map_err(|e| ReplicationError::Auth(e.to_string()))?;
                            let msg = s.message().to_vec();
                            self.send(&frame(b'p', &msg)).await?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                ReplicationError::Protocol("SASL final before SASL start".into())
                            })?;
                            s.finish(&body)
                                .map_err(|e| ReplicationError::Auth(e.to_string()))?;
                        }
                        other => {
                            return Err(ReplicationError::Auth(format!(
                                "unsupported authentication method {other}"
                            )));
                        }
                    }
                }
                b'S' => {
                    let mut parts = body.split(|&b| b == 0);
                    if let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                        self.parameters.insert(
                            String::from_utf8_lossy(k).into_owned(),
                            String::from_utf8_lossy(v).into_owned(),
                        );
                    }
                }
                b'K' | b'N' => {}
                b'E' => return Err(server_error(&body)),
                b'Z' => return Ok(()),
                other => {
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected message {:?} during start-up",
                        other as char
                    )));
                }
            }
        }
    }

    /// Runs a command with the simple query protocol; returns the rows of
    /// its result as text (None for NULL).
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut b = BytesMut::new();
        cstr(&mut b, sql);
        self.send(&frame(b'Q', &b)).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, mut body) = self.reader.message().await?;
            match tag {
                b'D' => {
                    let n = body.get_i16();
                    let mut row = Vec::with_capacity(n.max(0) as usize);
                    for _ in 0..n {
                        if body.len() < 4 {
                            return Err(ReplicationError::Protocol("short data row".into()));
                        }
                        let len = body.get_i32();
                        if len < 0 {
                            row.push(None);
                        } else {
                            let len = len as usize;
                            if body.len() < len {
                                return Err(ReplicationError::Protocol("short data row".into()));
                            }
                            row.push(Some(
                                String::from_utf8_lossy(&body.split_to(len)).into_owned(),
                            ));
                        }
                    }
                    rows.push(row);
                }
                b'T' | b'C' | b'I' | b'N' | b'S' => {}
                b'E' => error = Some(server_error(&body)),
                b'Z' => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    };
                }
                other => {
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected message {:?} in a query",
                        other as char
                    )));
                }
            }
        }
    }

    /// Starts logical replication from `slot` at `start_lsn` with pgoutput
    /// `options` (name, value); returns the stream.
    pub async fn start_replication(
        mut self,
        slot: &str,
        start_lsn: u64,
        options: &[(&str, &str)],
    ) -> Result<(ReplicationReader, StatusSender)> {
        let opts: Vec<String> = options
            .iter()
            .map(|(k, v)| format!("{} '{}'", quote_ident(k), v.replace('\'', "''")))
            .collect();
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} ({})",
            quote_ident(slot),
            format_lsn(start_lsn),
            opts.join(", ")
        );
        let mut b = BytesMut::new();
        cstr(&mut b, &sql);
        self.send(&frame(b'Q', &b)).await?;
        loop {
            let (tag, body) = self.reader.message().await?;
            match tag {
                b'W' => break,
                b'N' => {}
                b'E' => return Err(server_error(&body)),
                other => {
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected message {:?} after START_REPLICATION",
                        other as char
                    )));
                }
            }
        }
        Ok((
            ReplicationReader {
                reader: self.reader,
            },
            StatusSender { wr: self.wr },
        ))
    }
}

/// One message of the replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// WAL data: one pgoutput message.
    XLogData {
        /// WAL position of the data.
        start: u64,
        /// Server's current end of WAL.
        end: u64,
        /// Server time, µs since 2000-01-01.
        time: i64,
        /// The pgoutput message.
        data: Bytes,
    },
    /// Server keepalive.
    Keepalive {
        /// Server's current end of WAL.
        end: u64,
        /// Server time.
        time: i64,
        /// The server wants a status update now.
        reply: bool,
    },
}

/// The reading side of a replication stream.
#[derive(Debug)]
pub struct ReplicationReader {
    reader: MessageReader,
}

impl ReplicationReader {
    /// The next message, or `None` when the server ended the stream.
    /// Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<StreamMessage>> {
        loop {
            let (tag, mut body) = self.reader.message().await?;
            match tag {
                b'd' => {
                    let short = || ReplicationError::Protocol("short CopyData message".into());
                    let kind = *body.first().ok_or_else(short)?;
                    body.advance(1);
                    match kind {
                        b'w' if body.len() >= 24 => {
                            let start = body.get_u64();
                            let end = body.get_u64();
                            let time = body.get_i64();
                            return Ok(Some(StreamMessage::XLogData {
                                start,
                                end,
                                time,
                                data: body,
                            }));
                        }
                        b'k' if body.len() >= 17 => {
                            return Ok(Some(StreamMessage::Keepalive {
                                end: body.get_u64(),
                                time: body.get_i64(),
                                reply: body.get_u8() == 1,
                            }));
                        }
                        b'w' | b'k' => return Err(short()),
                        other => {
                            return Err(ReplicationError::Protocol(format!(
                                "unknown CopyData kind {:?}",
                                other as char
                            )));
                        }
                    }
                }
                // CopyDone; or CommandComplete alone, which a walsender
                // shutting down sends once the client confirmed all it sent.
                b'c' | b'C' => return Ok(None),
                b'N' => {}
                b'E' => return Err(server_error(&body)),
                other => {
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected message {:?} in the stream",
                        other as char
                    )));
                }
            }
        }
    }
}

/// The writing side: standby status updates.
pub struct StatusSender {
    wr: WriteHalf,
}

impl StatusSender {
    /// Tells the server what is written, flushed (durable: the slot's
    /// `confirmed_flush_lsn` moves to it) and applied.
    pub async fn send_status(
        &mut self,
        written: u64,
        flushed: u64,
        applied: u64,
        reply: bool,
    ) -> Result<()> {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
            - PG_EPOCH_UNIX_SECS * 1_000_000;
        let mut b = BytesMut::with_capacity(34);
        b.put_u8(b'r');
        b.put_u64(written);
        b.put_u64(flushed);
        b.put_u64(applied);
        b.put_i64(now_us);
        b.put_u8(u8::from(reply));
        self.wr
            .write_all(&frame(b'd', &b))
            .await
            .map_err(io("write status"))
    }

    /// Ends the stream (CopyDone), so the server releases the slot.
    pub async fn close(mut self) -> Result<()> {
        self.wr
            .write_all(&frame(b'c', &[]))
            .await
            .map_err(io("write CopyDone"))?;
        self.wr
            .write_all(&frame(b'X', &[]))
            .await
            .map_err(io("write Terminate"))?;
        self.wr.shutdown().await.map_err(io("shutdown"))
    }
}

impl std::fmt::Debug for MessageReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageReader")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("parameters", &self.parameters)
            .finish()
    }
}

impl std::fmt::Debug for StatusSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusSender").finish()
    }
}

impl From<crate::tls::TlsError> for ReplicationError {
    fn from(e: crate::tls::TlsError) -> Self {
        ReplicationError::Tls(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text() {
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("nope"), None);
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn server_errors_keep_their_fields() {
        let body =
            Bytes::from_static(b"SERROR\0C55006\0Mreplication slot \"s\" is active\0Hstop it\0\0");
        match server_error(&body) {
            ReplicationError::Server {
                code,
                message,
                hint,
                ..
            } => {
                assert_eq!(code, "55006");
                assert_eq!(message, "replication slot \"s\" is active");
                assert_eq!(hint.as_deref(), Some("stop it"));
            }
            other => panic!("{other:?}"),
        }
    }
}
