//! The hub's gRPC API (`tributary.v1.Hub`, documented in
//! `hub/api/proto/tributary.proto`), served by `tributary serve` and
//! `tributary run` beside the HTTP API.
//!
//! Every call reuses what the commands do on a data directory: Produce
//! checks records with `produce`'s [`Target`], Fetch and Subscribe decode
//! with `consume`'s [`Decoding`], ListOffsets is `offsets list`'s
//! [`committed`](crate::offsets::committed), DescribeTopic `topics
//! describe`'s; PipelineStatus is what `GET /pipelines` serves. Log and
//! sled work runs on the blocking pool, never on the async threads.
//!
//! Codes: an unknown topic is NOT_FOUND; a bad partition, offset, format
//! or record INVALID_ARGUMENT with a message that starts with the field;
//! a topic without schemas, or a stored record the registry cannot
//! decode, FAILED_PRECONDITION; with a token, a call without `authorization:
//! Bearer <token>` UNAUTHENTICATED.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};
use tributary_api::v1::{self, hub_server::HubServer};
use tributary_core::{OffsetStore as _, TopicPartition};
use tributary_log::{Log, LogError, Partition, RecordView, SledOffsetStore};
use tributary_pipeline::telemetry::{ConnectorView, Position, Telemetry};
use tributary_schemas::{RecordDecoder, Registry};

use crate::consume::Decoding;
use crate::http::Token;
use crate::produce::Target;

/// Records a Fetch returns unless it asks for fewer, and the most it may.
const DEFAULT_MAX_RECORDS: u32 = 500;
const MAX_RECORDS: u32 = 10_000;

/// Records a subscription reads per look at the log: small enough that a
/// slow client does not make the hub hold many decoded records.
const SUBSCRIBE_CHUNK: usize = 256;

/// What the API serves.
#[derive(Debug, Clone)]
pub struct Api {
    log: Log,
    registry: Registry,
    decoder: RecordDecoder,
    offsets: Arc<SledOffsetStore>,
    telemetry: Option<Arc<Telemetry>>,
    /// Set when the hub stops: subscriptions end, so that the server's
    /// graceful shutdown does not wait for them.
    stop: watch::Receiver<bool>,
}

impl Api {
    /// Over the hub's log, registry and offsets; `telemetry` of the
    /// running pipeline, if any.
    pub fn new(
        log: Log,
        registry: Registry,
        offsets: Arc<SledOffsetStore>,
        telemetry: Option<Arc<Telemetry>>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            log,
            decoder: RecordDecoder::new(registry.clone()),
            registry,
            offsets,
            telemetry,
            stop,
        }
    }

    fn decoding(&self) -> Decoding {
        Decoding::new(self.registry.clone(), self.decoder.clone())
    }
}

/// A log error as the caller should see it.
fn log_status(e: LogError) -> Status {
    match e {
        LogError::UnknownTopic(_) => Status::not_found(e.to_string()),
        LogError::UnknownPartition { .. } => Status::invalid_argument(format!("partition: {e}")),
        LogError::OffsetOutOfRange { .. } => Status::invalid_argument(format!("offset: {e}")),
        LogError::InvalidTopicName { .. } => Status::invalid_argument(format!("topic: {e}")),
        e => {
            tracing::error!(error = %e, "gRPC call failed in the log");
            Status::internal(e.to_string())
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "gRPC call failed");
    Status::internal(e.to_string())
}

/// Runs `f` on the blocking pool (log reads, fsyncs, sled).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(format!("the call's task failed: {e}")))?
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field}: required")));
    }
    Ok(())
}

fn record_format(v: i32) -> Result<v1::RecordFormat, Status> {
    v1::RecordFormat::try_from(v)
        .map_err(|_| Status::invalid_argument(format!("format: unknown value {v}")))
}

/// `offset` must lie in `[earliest, hw]` (`hw`: nothing to read yet).
fn check_offset(tp: &TopicPartition, offset: u64, earliest: u64, hw: u64) -> Result<(), Status> {
    if offset < earliest || offset > hw {
        return Err(Status::invalid_argument(format!(
            "offset: {offset} is not in {tp}: it holds offsets {earliest} to {} (the next is {hw})",
            hw.saturating_sub(1)
        )));
    }
    Ok(())
}

/// One stored record as the API sends it.
fn record_message(
    decoding: &mut Decoding,
    topic: &str,
    partition: u32,
    r: &RecordView<'_>,
    format: v1::RecordFormat,
) -> Result<v1::Record, Status> {
    let (key, value) = match format {
        v1::RecordFormat::Raw => (String::new(), String::new()),
        _ => decoding
            .json(topic, partition, r)
            .map_err(|e| Status::failed_precondition(format!("{e:#}")))?,
    };
    let raw = format != v1::RecordFormat::Json;
    let headers = r
        .headers()
        .map(|h| {
            h.map(|(name, value)| v1::Header {
                name: name.to_string(),
                value: value.map(<[u8]>::to_vec),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| internal(format!("{topic}[{partition}]@{}: headers: {e}", r.offset)))?;
    Ok(v1::Record {
        topic: topic.to_string(),
        partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key,
        value,
        key_raw: if raw { r.key.map(<[u8]>::to_vec) } else { None },
        value_raw: if raw {
            r.value.map(<[u8]>::to_vec)
        } else {
            None
        },
        headers,
    })
}

/// Up to `max` records of `part` from `from` (below `end`).
fn read(
    part: &Partition,
    decoding: &mut Decoding,
    from: u64,
    end: u64,
    max: usize,
    format: v1::RecordFormat,
) -> Result<Vec<v1::Record>, Status> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < end && out.len() < max {
        let batches = part.read(pos, 1 << 20).map_err(log_status)?;
        let before = pos;
        for b in batches {
            for r in b.records().map_err(log_status)?.iter() {
                let r = r.map_err(log_status)?;
                if r.offset < pos {
                    continue;
                }
                if r.offset >= end || out.len() >= max {
                    return Ok(out);
                }
                out.push(record_message(
                    decoding,
                    part.topic(),
                    part.id(),
                    &r,
                    format,
                )?);
                pos = r.offset + 1;
            }
        }
        if pos == before {
            break;
        }
    }
    Ok(out)
}

/// A Produce refused at record `index`.
fn rejection(index: usize, why: crate::records::Invalid) -> Status {
    let details = prost::Message::encode_to_vec(&v1::ProduceRejection {
        index: index as u32,
        field: why.field.clone(),
        reason: why.reason.clone(),
    });
    Status::with_details(
        tonic::Code::InvalidArgument,
        format!("records[{index}]: {why}"),
        details.into(),
    )
}

fn connector_message(c: ConnectorView) -> v1::Connector {
    let position = c.position.map(|p| match p {
        Position::Lsn(l) => v1::connector::Position::Lsn(l),
        Position::Binlog(b) => v1::connector::Position::Binlog(b),
        Position::Offsets(by_topic) => v1::connector::Position::Offsets(v1::SinkOffsets {
            offsets: by_topic
                .into_iter()
                .flat_map(|(topic, parts)| {
                    parts
                        .into_iter()
                        .map(move |(partition, offset)| v1::PartitionOffset {
                            topic: topic.clone(),
                            partition,
                            offset,
                        })
                })
                .collect(),
        }),
    });
    v1::Connector {
        name: c.name,
        role: c.role.into(),
        kind: c.kind.to_string(),
        state: c.state.into(),
        phase: c.phase.map(str::to_string),
        restarts: c.restarts,
        last_error: c.last_error,
        records: c.records,
        records_per_second: c.records_per_second,
        errors: c.errors,
        position,
        lag_records: c.lag_records,
        lag_seconds: c.lag_seconds,
        replication_lag_bytes: c.replication_lag_bytes,
        slot: c.slot.map(|h| v1::SlotHealth {
            retained_wal_bytes: h.retained_wal_bytes,
            wal_status: h.wal_status,
            safe_wal_size: h.safe_wal_size,
        }),
        quarantined: c
            .quarantined
            .into_iter()
            .map(|q| v1::QuarantinedTable {
                schema: q.schema,
                table: q.table,
                reason: q.reason,
                position: q.position,
                since_ms: q.since_ms,
            })
            .collect(),
    }
}

/// Sends `item` unless the client went away or the hub stops; whether
/// it was sent.
async fn send(
    tx: &mpsc::Sender<Result<v1::Record, Status>>,
    stop: &mut watch::Receiver<bool>,
    item: Result<v1::Record, Status>,
) -> bool {
    tokio::select! {
        r = tx.send(item) => r.is_ok(),
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// A subscription: each partition from its position to its end, then
/// whatever is appended, until the client goes away or the hub stops.
async fn follow(
    parts: Vec<(Arc<Partition>, u64)>,
    mut decoding: Decoding,
    format: v1::RecordFormat,
    tx: mpsc::Sender<Result<v1::Record, Status>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut watches: Vec<watch::Receiver<u64>> = parts
        .iter()
        .map(|(p, _)| p.watch_high_watermark())
        .collect();
    let mut positions: Vec<u64> = parts.iter().map(|(_, o)| *o).collect();
    if watches.is_empty() {
        return;
    }
    loop {
        // Seen before reading: an append from here on wakes the wait.
        for w in &mut watches {
            w.borrow_and_update();
        }
        for (i, (part, _)) in parts.iter().enumerate() {
            loop {
                let end = part.high_watermark();
                // Retention may have deleted what was next.
                let from = positions[i].max(part.earliest_offset());
                if from >= end {
                    break;
                }
                let p = Arc::clone(part);
                let got = tokio::task::spawn_blocking(move || {
                    let r = read(&p, &mut decoding, from, end, SUBSCRIBE_CHUNK, format);
                    (decoding, r)
                })
                .await;
                let records = match got {
                    Ok((d, Ok(records))) => {
                        decoding = d;
                        records
                    }
                    Ok((_, Err(status))) => {
                        send(&tx, &mut stop, Err(status)).await;
                        return;
                    }
                    Err(e) => {
                        send(&tx, &mut stop, Err(internal(e))).await;
                        return;
                    }
                };
                let Some(last) = records.last().map(|r| r.offset) else {
                    break;
                };
                for r in records {
                    if !send(&tx, &mut stop, Ok(r)).await {
                        return;
                    }
                }
                positions[i] = last + 1;
            }
        }
        let changed =
            futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = tx.closed() => return,
            _ = stop.wait_for(|s| *s) => return,
            (r, _, _) = changed => if r.is_err() { return },
        }
    }
}

/// The stream Subscribe answers with.
pub type RecordStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<v1::Record, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl v1::hub_server::Hub for Api {
    async fn produce(
        &self,
        request: Request<v1::ProduceRequest>,
    ) -> Result<Response<v1::ProduceResponse>, Status> {
        let r = request.into_inner();
        required("topic", &r.topic)?;
        let (log, registry) = (self.log.clone(), self.registry.clone());
        blocking(move || {
            let topic = log.topic(&r.topic).map_err(log_status)?;
            let target = Target::load(&registry, &topic)
                .map_err(|e| Status::failed_precondition(format!("{e:#}")))?;
            let now = tributary_log::now_ms();
            let mut pending = Vec::with_capacity(r.records.len());
            for (i, text) in r.records.iter().enumerate() {
                match target.line(text.trim(), now) {
                    Ok(e) => pending.push(e),
                    Err(why) => return Err(rejection(i, why)),
                }
            }
            let positions = crate::produce::write(&topic, &mut pending)
                .map_err(|e| internal(format!("{e:#}")))?;
            Ok(Response::new(v1::ProduceResponse {
                positions: positions
                    .into_iter()
                    .map(|(partition, offset)| v1::RecordPosition { partition, offset })
                    .collect(),
            }))
        })
        .await
    }

    async fn fetch(
        &self,
        request: Request<v1::FetchRequest>,
    ) -> Result<Response<v1::FetchResponse>, Status> {
        let r = request.into_inner();
        required("topic", &r.topic)?;
        let format = record_format(r.format)?;
        let max = match r.max_records {
            0 => DEFAULT_MAX_RECORDS,
            n => n.min(MAX_RECORDS),
        } as usize;
        let log = self.log.clone();
        let mut decoding = self.decoding();
        blocking(move || {
            let topic = log.topic(&r.topic).map_err(log_status)?;
            let part = topic.partition(r.partition).map_err(log_status)?;
            let (earliest, hw) = (part.earliest_offset(), part.high_watermark());
            let tp = TopicPartition::new(&r.topic, r.partition);
            check_offset(&tp, r.offset, earliest, hw)?;
            let records = read(part, &mut decoding, r.offset, hw, max, format)?;
            Ok(Response::new(v1::FetchResponse {
                next_offset: records.last().map_or(r.offset, |x| x.offset + 1),
                records,
                earliest_offset: earliest,
                high_watermark: hw,
            }))
        })
        .await
    }

    type SubscribeStream = RecordStream;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        use v1::subscribe_request::Start;
        let r = request.into_inner();
        required("topic", &r.topic)?;
        let format = record_format(r.format)?;
        let (log, offsets) = (self.log.clone(), Arc::clone(&self.offsets));
        let parts = blocking(move || {
            let topic = log.topic(&r.topic).map_err(log_status)?;
            let ids: Vec<u32> = match r.partition {
                Some(p) => {
                    topic.partition(p).map_err(log_status)?;
                    vec![p]
                }
                None => (0..topic.partitions().len() as u32).collect(),
            };
            let mut parts = Vec::with_capacity(ids.len());
            for id in ids {
                let part = Arc::clone(topic.partition(id).map_err(log_status)?);
                let tp = TopicPartition::new(&r.topic, id);
                let (earliest, hw) = (part.earliest_offset(), part.high_watermark());
                let start = match &r.start {
                    None => hw,
                    Some(Start::At(a)) => match v1::StartAt::try_from(*a) {
                        Ok(v1::StartAt::Latest) => hw,
                        Ok(v1::StartAt::Earliest) => earliest,
                        Err(_) => {
                            return Err(Status::invalid_argument(format!(
                                "start.at: unknown value {a}"
                            )));
                        }
                    },
                    Some(Start::Offset(o)) => {
                        if r.partition.is_none() {
                            return Err(Status::invalid_argument(
                                "partition: required with start.offset",
                            ));
                        }
                        check_offset(&tp, *o, earliest, hw)?;
                        *o
                    }
                    Some(Start::Group(g)) => {
                        required("start.group", g)?;
                        let committed = offsets.get(g, &tp).map_err(internal)?;
                        committed.unwrap_or(earliest).clamp(earliest, hw)
                    }
                };
                parts.push((part, start));
            }
            Ok(parts)
        })
        .await?;
        let (tx, mut rx) = mpsc::channel(SUBSCRIBE_CHUNK);
        tokio::spawn(follow(
            parts,
            self.decoding(),
            format,
            tx,
            self.stop.clone(),
        ));
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn commit_offset(
        &self,
        request: Request<v1::CommitOffsetRequest>,
    ) -> Result<Response<v1::CommitOffsetResponse>, Status> {
        let r = request.into_inner();
        required("group", &r.group)?;
        required("topic", &r.topic)?;
        let (log, offsets) = (self.log.clone(), Arc::clone(&self.offsets));
        blocking(move || {
            let topic = log.topic(&r.topic).map_err(log_status)?;
            let hw = topic
                .partition(r.partition)
                .map_err(log_status)?
                .high_watermark();
            let tp = TopicPartition::new(&r.topic, r.partition);
            if r.offset > hw {
                return Err(Status::invalid_argument(format!(
                    "offset: {} is past the end of {tp} (the next offset is {hw})",
                    r.offset
                )));
            }
            offsets.commit(&r.group, &tp, r.offset).map_err(internal)?;
            tracing::info!(group = %r.group, %tp, offset = r.offset, "offset committed over gRPC");
            Ok(Response::new(v1::CommitOffsetResponse {}))
        })
        .await
    }

    async fn list_offsets(
        &self,
        request: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        let group = request.into_inner().group;
        let (log, offsets) = (self.log.clone(), Arc::clone(&self.offsets));
        blocking(move || {
            let offsets = crate::offsets::committed(&offsets, &log, group.as_deref())
                .map_err(|e| internal(format!("{e:#}")))?;
            Ok(Response::new(v1::ListOffsetsResponse { offsets }))
        })
        .await
    }

    async fn list_topics(
        &self,
        _request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let log = self.log.clone();
        blocking(move || {
            Ok(Response::new(v1::ListTopicsResponse {
                topics: crate::topics::summaries(&log),
            }))
        })
        .await
    }

    async fn describe_topic(
        &self,
        request: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::TopicDescription>, Status> {
        let r = request.into_inner();
        required("topic", &r.topic)?;
        let log = self.log.clone();
        blocking(move || {
            let topic = log.topic(&r.topic).map_err(log_status)?;
            Ok(Response::new(crate::topics::description(&topic)))
        })
        .await
    }

    async fn pipeline_status(
        &self,
        _request: Request<v1::PipelineStatusRequest>,
    ) -> Result<Response<v1::PipelineStatusResponse>, Status> {
        let Some(t) = self.telemetry.clone() else {
            return Ok(Response::new(v1::PipelineStatusResponse::default()));
        };
        // Lags read the log.
        blocking(move || {
            Ok(Response::new(v1::PipelineStatusResponse {
                connectors: t.connectors().into_iter().map(connector_message).collect(),
            }))
        })
        .await
    }

    async fn restart_connector(
        &self,
        request: Request<v1::RestartConnectorRequest>,
    ) -> Result<Response<v1::RestartConnectorResponse>, Status> {
        use tributary_pipeline::telemetry::RestartError;
        let Some(t) = self.telemetry.as_deref() else {
            return Err(Status::not_found("no pipeline runs in this hub"));
        };
        match t.restart(&request.into_inner().name) {
            Ok(role) => Ok(Response::new(v1::RestartConnectorResponse {
                role: role.to_string(),
            })),
            Err(e @ RestartError::Unknown(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ RestartError::NotStopped { .. }) => {
                Err(Status::failed_precondition(e.to_string()))
            }
        }
    }

    async fn resume_table(
        &self,
        request: Request<v1::ResumeTableRequest>,
    ) -> Result<Response<v1::ResumeTableResponse>, Status> {
        use tributary_pipeline::telemetry::ResumeError;
        let Some(t) = self.telemetry.as_deref() else {
            return Err(Status::not_found("no pipeline runs in this hub"));
        };
        let r = request.into_inner();
        match t.resume_table(&r.source, &r.table) {
            Ok(()) => Ok(Response::new(v1::ResumeTableResponse {})),
            Err(e @ ResumeError::UnknownSource(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ ResumeError::NotQuarantined { .. }) => {
                Err(Status::failed_precondition(e.to_string()))
            }
            Err(e @ ResumeError::State(_)) => Err(Status::internal(e.to_string())),
        }
    }
}

/// Binds `addr` (a taken port stops the hub before anything starts).
pub async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the gRPC API to {addr}"))
}

/// Prints where `listener` listens, as [`crate::http::announce`] does:
/// `grpc listening on <addr>` (the line after the HTTP one). A reader
/// that took the first line and closed our stdout does not stop the hub.
pub fn announce(listener: &tokio::net::TcpListener) -> anyhow::Result<SocketAddr> {
    use std::io::Write as _;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "grpc listening");
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "grpc listening on {addr}").and_then(|()| out.flush()) {
        tracing::warn!(error = %e, "cannot print the gRPC address on stdout");
    }
    Ok(addr)
}

/// Serves `api` on `listener` until `stop` turns true; with a token,
/// every call must present it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    token: Option<Token>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let service = HubServer::with_interceptor(api, move |req: Request<()>| {
        let Some(token) = &token else {
            return Ok(req);
        };
        let presented = req
            .metadata()
            .get(tributary_api::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match token.admits(presented).refusal() {
            None => Ok(req),
            Some(why) => Err(Status::unauthenticated(why)),
        }
    });
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )
        .await
}
