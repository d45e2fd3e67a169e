//! An Arrow Flight service over a topic's tiered history: its endpoints are the splits.
//!
//! Batch readers (pyarrow, Spark connectors, DuckDB through pyarrow, any Flight client) ask
//! `GetFlightInfo` for a topic and an offset or time range; the answer has one endpoint per
//! split (one tiered segment clipped to the range, see [`QueryContext::plan`]), each with its
//! own ticket and this server's address, so a pool of workers can `DoGet` the splits in
//! parallel the way Hadoop and Spark read input splits. Nothing here needs an ingest node:
//! only the metadata store (the manifest) and the object store.
//!
//! # Descriptors
//!
//! - A **path** descriptor `["<topic>"]` means the whole topic: every partition, every
//!   tiered offset, every column.
//! - A **command** descriptor whose `cmd` is UTF-8 JSON ([`FlightCommand`]):
//!
//!   ```json
//!   {"topic": "orders", "partitions": [0, 2],
//!    "from": {"Offset": 1000}, "to": {"TimestampMs": 1767225600000},
//!    "columns": ["partition", "offset", "key", "value"]}
//!   ```
//!
//!   Only `topic` is required. `from`/`to` are [`Bound`]s with the planner's meaning (an
//!   offset, or a timestamp resolved through the segments' time indexes); `columns` is a
//!   projection of the schema `topic, partition, offset, timestamp, timestamp_type, key,
//!   value, headers` (kept in schema order). Unknown fields are refused, so a typo fails.
//!   Reads return committed history (records of aborted transactions dropped, stopping at the
//!   last stable offset); `"isolation": "read_uncommitted"` returns every record, and the
//!   opt-in columns `producer_id`, `is_transactional`, `aborted` and `committed` expose each
//!   record's transaction state.
//!
//! Errors are Flight (gRPC) statuses with a message saying what to fix: `InvalidArgument` for
//! a descriptor or ticket that does not parse, a negative offset, an empty or unknown column;
//! `NotFound` for an unknown topic or partition, or a ticket whose segment has left the
//! manifest since `GetFlightInfo` (retention, DeleteRecords: ask again); `Unavailable` when
//! the metadata or object store cannot be reached; `DataLoss` for corrupt stored data.
//!
//! # Calls
//!
//! - `GetFlightInfo`: plans the range. The info carries the schema, the total estimated rows
//!   and bytes, `ordered = true` (endpoints are in partition, then offset, order), and per
//!   endpoint a ticket, one location (this server, [`FlightConfig::location`]) and
//!   `app_metadata` — JSON `{"topic", "partition", "start_offset", "end_offset",
//!   "estimated_rows", "estimated_bytes"}` — so a scheduler can balance work without reading.
//! - `DoGet`: streams one split. The ticket is opaque to clients (today JSON holding the split
//!   and the projection); before reading, the server checks that the split's segment is still
//!   in the manifest and uses the manifest's copy, so a forged ticket cannot point the reader
//!   at other objects.
//! - `GetSchema`, `PollFlightInfo` (answers at once, complete): as `GetFlightInfo`.
//! - `ListFlights`: one info per topic (path descriptor, full schema; totals `-1`, since
//!   estimating needs a plan per topic — call `GetFlightInfo`). A non-empty criteria
//!   expression is a topic-name prefix.
//! - `DoPut`, `DoExchange`, `DoAction`, `Handshake`: `Unimplemented`; the service is read-only.
//!
//! # Memory
//!
//! A `DoGet` is a pull stream end to end: the split's reader decodes `batch_rows` records at a
//! time, the Flight encoder cuts each batch into messages of about 2 MiB, and tonic polls for
//! the next message only when HTTP/2 flow control lets it send, so a slow client slows the
//! read instead of growing a buffer. At most [`FlightConfig::max_concurrent_reads`] splits are
//! read at once across all clients; further `DoGet`s wait for a slot. Per read the memory is
//! about one decoded batch, one encoded message and the reader's prefetch.
//!
//! # Lifecycle
//!
//! [`serve`] runs the gRPC server on a bound listener until its shutdown future resolves;
//! then it stops accepting, lets running calls finish, and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::{Bound, ErrorKind, Isolation, QueryContext, Range, ReadOptions, Split};

/// The location URI that tells a Flight client to fetch an endpoint over the connection it
/// already has (Flight's `arrow-flight-reuse-connection` scheme); used when the server
/// listens on an unspecified address and no address to advertise was given.
pub const REUSE_CONNECTION: &str = "arrow-flight-reuse-connection://?";

/// Settings of the Flight service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlightConfig {
    /// URI placed in every endpoint, e.g. `grpc+tcp://query-1.internal:8815`. `None`: the
    /// listener's own address, or [`REUSE_CONNECTION`] if it is unspecified (`0.0.0.0`).
    pub location: Option<String>,
    /// Records per Arrow batch a split is decoded into. Larger batches amortise per-batch
    /// costs; smaller ones lower the memory of each read.
    pub batch_rows: usize,
    /// Splits read at once across all clients; a `DoGet` beyond this waits. Bounds memory
    /// and object-store load; raise it with the number of reading workers.
    pub max_concurrent_reads: usize,
}

impl Default for FlightConfig {
    fn default() -> Self {
        FlightConfig {
            location: None,
            batch_rows: 8192,
            max_concurrent_reads: 64,
        }
    }
}

/// The JSON of a command descriptor: which topic, partitions, range and columns to read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightCommand {
    /// The topic.
    pub topic: String,
    /// Partitions to read; `None` (or absent) = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<i32>>,
    /// Start of the range (inclusive); `None` = the tiered start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Bound>,
    /// End of the range; `None` = the tiered end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Bound>,
    /// Projection; `None` = every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// `read_committed` (`None`, the default: committed history only) or `read_uncommitted`
    /// (every record; the audit columns `producer_id`, `is_transactional`, `aborted` and
    /// `committed` can be asked for with either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
}

impl FlightCommand {
    /// The whole of `topic`.
    pub fn topic(topic: impl Into<String>) -> Self {
        FlightCommand {
            topic: topic.into(),
            ..FlightCommand::default()
        }
    }

    /// A command descriptor carrying this command as JSON.
    pub fn descriptor(&self) -> FlightDescriptor {
        // Serialising plain strings, integers and enums cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        FlightDescriptor::new_cmd(json)
    }
}

/// What a ticket holds. Private: clients treat tickets as opaque bytes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    split: Split,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    isolation: Option<Isolation>,
}

/// Per-endpoint `app_metadata`: where the split is and how big it is expected to be.
#[derive(Debug, Serialize)]
struct EndpointMetadata<'a> {
    topic: &'a str,
    partition: i32,
    start_offset: i64,
    end_offset: i64,
    estimated_rows: u64,
    estimated_bytes: u64,
}

/// The Flight service: a [`QueryContext`] behind the `FlightService` gRPC trait.
#[derive(Debug, Clone)]
pub struct QueryFlightService {
    ctx: Arc<QueryContext>,
    location: String,
    batch_rows: usize,
    /// One permit per split being read; held by the `DoGet` response stream until it ends
    /// or the client goes away, so concurrent reads (and their memory) stay bounded.
    reads: Arc<Semaphore>,
}

impl QueryFlightService {
    /// A service reading through `ctx`, advertising `location` in its endpoints.
    pub fn new(ctx: Arc<QueryContext>, location: impl Into<String>, config: &FlightConfig) -> Self {
        QueryFlightService {
            ctx,
            location: location.into(),
            batch_rows: config.batch_rows.max(1),
            reads: Arc::new(Semaphore::new(config.max_concurrent_reads.max(1))),
        }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> FlightServiceServer<QueryFlightService> {
        FlightServiceServer::new(self)
    }

    fn read_options(
        &self,
        columns: Option<Vec<String>>,
        isolation: Option<Isolation>,
    ) -> ReadOptions {
        ReadOptions {
            projection: columns,
            limit: None,
            batch_rows: self.batch_rows,
            include_partition_columns: true,
            isolation: isolation.unwrap_or_default(),
        }
    }

    /// Checks `query` against the topic list and the schema; returns the read options.
    async fn validate(&self, query: &FlightCommand) -> Result<ReadOptions, Status> {
        let topics = self.ctx.topics().await.map_err(|e| status_of(&e))?;
        let Some(meta) = topics.iter().find(|t| t.name == query.topic) else {
            return Err(Status::not_found(format!(
                "no topic `{}` in the metadata store",
                query.topic
            )));
        };
        if let Some(parts) = &query.partitions {
            if parts.is_empty() {
                return Err(Status::invalid_argument(
                    "`partitions` is empty; omit it to read every partition",
                ));
            }
            if let Some(p) = parts.iter().find(|&&p| p < 0 || p >= meta.partitions) {
                return Err(Status::not_found(format!(
                    "no partition {p} in topic `{}` (it has {} partitions: 0..{})",
                    query.topic, meta.partitions, meta.partitions
                )));
            }
        }
        for (name, bound) in [("from", &query.from), ("to", &query.to)] {
            if let Some(Bound::Offset(o)) = bound
                && *o < 0
            {
                return Err(Status::invalid_argument(format!(
                    "`{name}` offset {o} is negative"
                )));
            }
        }
        if let Some(cols) = &query.columns {
            if cols.is_empty() {
                return Err(Status::invalid_argument(
                    "`columns` is empty; omit it to read every column",
                ));
            }
            let all = self.ctx.schema(&self.read_options(None, None));
            if let Some(bad) = cols.iter().find(|c| !crate::schema::is_column(c)) {
                let names: Vec<&str> = all.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Status::invalid_argument(format!(
                    "unknown column `{bad}`; the columns are {}, and on request {}",
                    names.join(", "),
                    crate::schema::AUDIT_COLUMNS.join(", ")
                )));
            }
        }
        Ok(self.read_options(query.columns.clone(), query.isolation))
    }

    /// Plans `descriptor` into a [`FlightInfo`] with one endpoint per split.
    async fn flight_info(&self, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let query = parse_descriptor(&descriptor)?;
        let options = self.validate(&query).await?;
        let range = Range {
            from: query.from,
            to: query.to,
        };
        let splits = self
            .ctx
            .plan(&query.topic, query.partitions.as_deref(), &range)
            .await
            .map_err(|e| status_of(&e))?;
        let schema = self.ctx.schema(&options);
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let mut endpoints = Vec::with_capacity(splits.len());
        for split in splits {
            rows += split.estimated_rows;
            bytes += split.estimated_bytes;
            let meta = EndpointMetadata {
                topic: &split.topic,
                partition: split.partition,
                start_offset: split.start_offset,
                end_offset: split.end_offset,
                estimated_rows: split.estimated_rows,
                estimated_bytes: split.estimated_bytes,
            };
            let app_metadata = serde_json::to_vec(&meta).map_err(internal)?;
            let ticket = serde_json::to_vec(&TicketBody {
                split,
                columns: query.columns.clone(),
                isolation: query.isolation,
            })
            .map_err(internal)?;
            endpoints.push(
                FlightEndpoint::new()
                    .with_ticket(Ticket::new(ticket))
                    .with_location(self.location.clone())
                    .with_app_metadata(app_metadata),
            );
        }
        debug!(topic = %query.topic, splits = endpoints.len(), rows, "planned flight");
        FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))
            .map(|info| {
                info.with_descriptor(descriptor)
                    .with_endpoints(endpoints)
                    .with_total_records(i64::try_from(rows).unwrap_or(i64::MAX))
                    .with_total_bytes(i64::try_from(bytes).unwrap_or(i64::MAX))
                    .with_ordered(true)
            })
    }

    /// The split a ticket names, as the manifest has it now, clipped to the ticket's range.
    async fn current_split(&self, mut split: Split) -> Result<Split, Status> {
        let range = Range {
            from: Some(Bound::Offset(split.start_offset)),
            to: None,
        };
        let planned = self
            .ctx
            .plan(&split.topic, Some(&[split.partition]), &range)
            .await
            .map_err(|e| status_of(&e))?;
        let Some(current) = planned
            .into_iter()
            .find(|s| s.segment.data_key == split.segment.data_key)
        else {
            return Err(Status::not_found(format!(
                "the segment of this ticket (topic `{}`, partition {}, offsets {}..{}) is no \
                 longer tiered (retention or DeleteRecords removed it); call GetFlightInfo again",
                split.topic, split.partition, split.start_offset, split.end_offset
            )));
        };
        split.start_offset = split.start_offset.max(current.start_offset);
        split.end_offset = split.end_offset.min(current.segment.end_offset);
        split.segment = current.segment;
        split.topic_id = current.topic_id;
        Ok(split)
    }
}

/// Runs the Flight service on `listener` until `shutdown` resolves, then stops accepting and
/// waits for running calls. Endpoints advertise `config.location`, or the listener's address.
pub async fn serve(
    ctx: Arc<QueryContext>,
    listener: TcpListener,
    config: FlightConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let location = match (&config.location, listener.local_addr()) {
        (Some(l), _) => l.clone(),
        (None, Ok(addr)) => default_location(addr),
        (None, Err(_)) => REUSE_CONNECTION.to_owned(),
    };
    let service = QueryFlightService::new(ctx, location, &config);
    tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

/// `grpc+tcp://addr`, or [`REUSE_CONNECTION`] when `addr` is unspecified (clients could not
/// connect to `0.0.0.0`).
pub fn default_location(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        REUSE_CONNECTION.to_owned()
    } else {
        format!("grpc+tcp://{addr}")
    }
}

/// Reads a descriptor into a command; errors say what was expected.
fn parse_descriptor(d: &FlightDescriptor) -> Result<FlightCommand, Status> {
    match DescriptorType::try_from(d.r#type) {
        Ok(DescriptorType::Path) => match d.path.as_slice() {
            [topic] if !topic.is_empty() => Ok(FlightCommand::topic(topic.clone())),
            _ => Err(Status::invalid_argument(format!(
                "a path descriptor must be one element, the topic name; got {:?}",
                d.path
            ))),
        },
        Ok(DescriptorType::Cmd) => {
            let cmd: FlightCommand = serde_json::from_slice(&d.cmd).map_err(|e| {
                Status::invalid_argument(format!(
                    "descriptor command is not a tierlog query ({e}); expected JSON like \
                     {{\"topic\": \"t\", \"partitions\": [0], \"from\": {{\"Offset\": 0}}, \
                     \"to\": {{\"TimestampMs\": 1700000000000}}, \"columns\": [\"offset\", \
                     \"value\"]}}"
                ))
            })?;
            if cmd.topic.is_empty() {
                return Err(Status::invalid_argument("`topic` is empty"));
            }
            Ok(cmd)
        }
        _ => Err(Status::invalid_argument(
            "descriptor type must be PATH ([topic]) or CMD (a JSON query)",
        )),
    }
}

/// The Flight status for a query error.
fn status_of(e: &crate::Error) -> Status {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::Invalid => Status::invalid_argument(msg),
        ErrorKind::Unavailable => Status::unavailable(msg),
        ErrorKind::Data => Status::data_loss(msg),
        _ => Status::internal(msg),
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn read_only<T>(call: &str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "{call} is not supported: tierlog's Flight service is read-only (GetFlightInfo, DoGet, \
         GetSchema, PollFlightInfo, ListFlights)"
    )))
}

#[tonic::async_trait]
impl FlightService for QueryFlightService {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        read_only("Handshake (no authentication is configured)")
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let prefix = String::from_utf8(request.into_inner().expression.to_vec())
            .map_err(|_| Status::invalid_argument("criteria must be a UTF-8 topic-name prefix"))?;
        let mut topics = self.ctx.topics().await.map_err(|e| status_of(&e))?;
        topics.retain(|t| t.name.starts_with(&prefix));
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        let schema = self.ctx.schema(&self.read_options(None, None));
        let infos: Vec<Result<FlightInfo, Status>> = topics
            .into_iter()
            .map(|t| {
                FlightInfo::new()
                    .try_with_schema(&schema)
                    .map(|i| {
                        i.with_descriptor(FlightDescriptor::new_path(vec![t.name]))
                            .with_total_records(-1)
                            .with_total_bytes(-1)
                    })
                    .map_err(|e| Status::internal(format!("encoding the schema: {e}")))
            })
            .collect();
        Ok(Response::new(stream::iter(infos).boxed()))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.flight_info(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let info = self.flight_info(request.into_inner()).await?;
        let poll = PollInfo::new()
            .with_info(info)
            .try_with_progress(1.0)
            .map_err(internal)?;
        Ok(Response::new(poll))
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let query = parse_descriptor(request.get_ref())?;
        let options = self.validate(&query).await?;
        let schema = self.ctx.schema(&options);
        let result = SchemaResult::try_from(SchemaAsIpc::new(&schema, &IpcWriteOptions::default()))
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?;
        Ok(Response::new(result))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let body: TicketBody = serde_json::from_slice(&request.get_ref().ticket).map_err(|e| {
            Status::invalid_argument(format!(
                "not a ticket from this service's GetFlightInfo ({e})"
            ))
        })?;
        let split = self.current_split(body.split).await?;
        let options = self.read_options(body.columns, body.isolation);
        let schema: SchemaRef = self.ctx.schema(&options);
        // Wait for a read slot before touching the object store; the permit lives inside the
        // response stream, so it is released when the stream ends or the client cancels.
        let permit = Arc::clone(&self.reads)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the Flight service is shutting down"))?;
        let (topic, partition, start) = (split.topic.clone(), split.partition, split.start_offset);
        debug!(%topic, partition, start, end = split.end_offset, "DoGet");
        let batches = self.ctx.read(split, options).map(move |r| {
            let _slot = &permit;
            r.map_err(|e| {
                warn!(%topic, partition, start, error = %e, "reading a split failed");
                FlightError::from(status_of(&e))
            })
        });
        let frames = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_dictionary_handling(DictionaryHandling::Resend)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(frames.boxed()))
    }

    async fn do_put(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        read_only("DoPut")
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        read_only("DoExchange")
    }

    async fn do_action(
        &self,
        _request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        read_only("DoAction")
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(stream::empty().boxed()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use arrow::array::{Array, BinaryArray, BooleanArray, Int32Array, Int64Array};
    use arrow::record_batch::RecordBatch;
    use arrow_flight::FlightClient;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use tierlog_metadata::{
        ManifestRegistry, MemoryStore, MetadataStore, TopicMeta, TopicRegistry,
    };
    use tierlog_tiering::remote::RemotePartition;
    use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};
    use tierlog_tiering::{LogConfig, PartitionLog};
    use tonic::Code;
    use tonic::transport::Channel;

    use super::*;

    const PARTITIONS: i32 = 2;
    const BATCHES: usize = 30;
    const PER_BATCH: usize = 10;

    /// (partition, offset, key, value) of every record, as produced.
    type Row = (i32, i64, Option<Vec<u8>>, Option<Vec<u8>>);

    struct Fixture {
        ctx: Arc<QueryContext>,
        manifest: ManifestRegistry,
        topic_id: uuid::Uuid,
        expected: BTreeSet<Row>,
        segments: usize,
        _dir: tempfile::TempDir,
    }

    fn batch(partition: i32, first: usize) -> Bytes {
        let records: Vec<Record> = (0..PER_BATCH)
            .map(|i| {
                let n = first + i;
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    sequence: i as i32,
                    timestamp: 1_000 + n as i64,
                    // Every 7th record has a null key, every 11th a null value.
                    key: (!n.is_multiple_of(7)).then(|| Bytes::from(format!("k-{partition}-{n}"))),
                    value: (!n.is_multiple_of(11))
                        .then(|| Bytes::from(format!("value {partition}/{n}"))),
                    headers: Default::default(),
                }
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    }

    /// A topic of two partitions, each rolled into small segments, all tiered into memory.
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let metadata: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let topic_id = uuid::Uuid::new_v4();
        TopicRegistry::new(Arc::clone(&metadata))
            .create(&TopicMeta {
                name: "t".into(),
                id: topic_id,
                partitions: PARTITIONS,
                replication_factor: 1,
                configs: Default::default(),
                created_ms: 0,
            })
            .await
            .unwrap();
        let manifest = ManifestRegistry::new(Arc::clone(&metadata));
        let mut expected = BTreeSet::new();
        let mut segments = 0;
        for p in 0..PARTITIONS {
            let config = LogConfig {
                segment_bytes: 2048,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(&dir.path().join(format!("t-{p}")), config).unwrap();
            for b in 0..BATCHES {
                let first = b * PER_BATCH;
                let appended = log.append(batch(p, first), 0, 0).unwrap();
                let _ = appended;
                for i in 0..PER_BATCH {
                    let n = first + i;
                    expected.insert((
                        p,
                        n as i64,
                        (!n.is_multiple_of(7)).then(|| format!("k-{p}-{n}").into_bytes()),
                        (!n.is_multiple_of(11)).then(|| format!("value {p}/{n}").into_bytes()),
                    ));
                }
            }
            log.roll_now().unwrap();
            for seg in log.sealed_segments().unwrap() {
                RemotePartition::new(objects.clone(), manifest.clone(), "t", topic_id, p)
                    .upload(&seg, 0, 0)
                    .await
                    .unwrap();
                segments += 1;
            }
            log.close().unwrap();
        }
        let cache = ChunkCache::new(&CacheConfig {
            memory_bytes: 16 << 20,
            disk_dir: None,
            ..CacheConfig::default()
        })
        .await
        .unwrap();
        Fixture {
            ctx: Arc::new(QueryContext::from_parts(metadata, objects, cache)),
            manifest,
            topic_id,
            expected,
            segments,
            _dir: dir,
        }
    }

    /// Starts the service on a free loopback port; the sender stops it.
    async fn start(
        ctx: Arc<QueryContext>,
        config: FlightConfig,
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            serve(ctx, listener, config, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        (addr, tx)
    }

    async fn client(addr: SocketAddr) -> FlightClient {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        FlightClient::new(channel)
    }

    fn rows_of(batch: &RecordBatch, into: &mut BTreeSet<Row>) {
        let col = |n: &str| batch.column_by_name(n).unwrap();
        let partition = col("partition")
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        let offset = col("offset").as_any().downcast_ref::<Int64Array>().unwrap();
        let key = col("key").as_any().downcast_ref::<BinaryArray>().unwrap();
        let value = col("value").as_any().downcast_ref::<BinaryArray>().unwrap();
        for i in 0..batch.num_rows() {
            let fresh = into.insert((
                partition.value(i),
                offset.value(i),
                key.is_valid(i).then(|| key.value(i).to_vec()),
                value.is_valid(i).then(|| value.value(i).to_vec()),
            ));
            assert!(
                fresh,
                "row read twice: partition {}, offset {}",
                partition.value(i),
                offset.value(i)
            );
        }
    }

    async fn read_all(client: &mut FlightClient, info: &FlightInfo) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for ep in &info.endpoint {
            let ticket = ep.ticket.clone().unwrap();
            let batches: Vec<RecordBatch> = client
                .do_get(ticket)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            out.extend(batches);
        }
        out
    }

    fn code_of(e: FlightError) -> (Code, String) {
        match e {
            FlightError::Tonic(s) => (s.code(), s.message().to_owned()),
            other => panic!("expected a gRPC status, got {other}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_endpoint_read_back_equals_what_was_tiered() {
        let f = fixture().await;
        let (addr, _stop) = start(Arc::clone(&f.ctx), FlightConfig::default()).await;
        let mut c = client(addr).await;

        for descriptor in [
            FlightCommand::topic("t").descriptor(),
            FlightDescriptor::new_path(vec!["t".into()]),
        ] {
            let info = c.get_flight_info(descriptor).await.unwrap();
            assert!(
                f.segments > 2 * PARTITIONS as usize,
                "fixture should have many segments"
            );
            assert_eq!(
                info.endpoint.len(),
                f.segments,
                "one endpoint per tiered segment"
            );
            assert_eq!(info.total_records, f.expected.len() as i64);
            assert!(info.total_bytes > 0);
            for ep in &info.endpoint {
                assert_eq!(ep.location.len(), 1);
                assert_eq!(ep.location[0].uri, format!("grpc+tcp://{addr}"));
                let meta: serde_json::Value = serde_json::from_slice(&ep.app_metadata).unwrap();
                assert!(meta["estimated_rows"].as_u64().unwrap() > 0, "{meta}");
            }
            let schema = info.clone().try_decode_schema().unwrap();
            assert_eq!(schema.fields().len(), 8);

            let mut got = BTreeSet::new();
            for b in read_all(&mut c, &info).await {
                rows_of(&b, &mut got);
            }
            assert_eq!(got, f.expected);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn range_partitions_and_columns_are_applied() {
        let f = fixture().await;
        let (addr, _stop) = start(Arc::clone(&f.ctx), FlightConfig::default()).await;
        let mut c = client(addr).await;
        let cmd = FlightCommand {
            topic: "t".into(),
            partitions: Some(vec![1]),
            from: Some(Bound::Offset(5)),
            to: Some(Bound::Offset(125)),
            columns: Some(vec!["value".into(), "offset".into()]),
            isolation: None,
        };
        let info = c.get_flight_info(cmd.descriptor()).await.unwrap();
        assert_eq!(info.total_records, 120);
        let schema = info.clone().try_decode_schema().unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["offset", "value"]);
        let mut offsets = Vec::new();
        for b in read_all(&mut c, &info).await {
            assert_eq!(b.num_columns(), 2);
            let o = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            offsets.extend(o.values().iter().copied());
        }
        assert_eq!(offsets, (5..125).collect::<Vec<i64>>());

        let schema = c.get_schema(cmd.descriptor()).await.unwrap();
        assert_eq!(schema.fields().len(), 2);

        // the audit columns on request, with either isolation (no transactions here)
        let audit: FlightCommand = serde_json::from_str(
            r#"{"topic": "t", "partitions": [1], "from": {"Offset": 5}, "to": {"Offset": 125},
                "columns": ["committed", "offset", "is_transactional"],
                "isolation": "read_uncommitted"}"#,
        )
        .unwrap();
        let info = c.get_flight_info(audit.descriptor()).await.unwrap();
        let (mut rows, mut committed) = (0, 0);
        for b in read_all(&mut c, &info).await {
            let names: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            assert_eq!(names, ["offset", "is_transactional", "committed"]);
            let flag = |i: usize| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .unwrap()
                    .true_count()
            };
            assert_eq!(flag(1), 0);
            committed += flag(2);
            rows += b.num_rows();
        }
        assert_eq!((rows, committed), (120, 120));

        let listed: Vec<FlightInfo> = c
            .list_flights(Bytes::new())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].flight_descriptor.as_ref().unwrap().path, ["t"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_descriptors_and_tickets_get_clear_errors() {
        let f = fixture().await;
        let (addr, _stop) = start(Arc::clone(&f.ctx), FlightConfig::default()).await;
        let mut c = client(addr).await;

        let cases: Vec<(FlightDescriptor, Code, &str)> = vec![
            (
                FlightDescriptor::new_cmd("SELECT 1"),
                Code::InvalidArgument,
                "not a tierlog query",
            ),
            (
                FlightDescriptor::new_cmd(r#"{"topic": "t", "form": {"Offset": 1}}"#),
                Code::InvalidArgument,
                "unknown field",
            ),
            (
                FlightCommand::topic("nope").descriptor(),
                Code::NotFound,
                "no topic `nope`",
            ),
            (
                FlightDescriptor::new_path(vec!["t".into(), "x".into()]),
                Code::InvalidArgument,
                "one element",
            ),
            (
                FlightCommand {
                    partitions: Some(vec![0, 9]),
                    ..FlightCommand::topic("t")
                }
                .descriptor(),
                Code::NotFound,
                "no partition 9",
            ),
            (
                FlightCommand {
                    columns: Some(vec!["offset".into(), "colour".into()]),
                    ..FlightCommand::topic("t")
                }
                .descriptor(),
                Code::InvalidArgument,
                "unknown column `colour`",
            ),
            (
                FlightCommand {
                    from: Some(Bound::Offset(-3)),
                    ..FlightCommand::topic("t")
                }
                .descriptor(),
                Code::InvalidArgument,
                "negative",
            ),
            (
                FlightCommand {
                    from: Some(Bound::Offset(30)),
                    to: Some(Bound::Offset(10)),
                    ..FlightCommand::topic("t")
                }
                .descriptor(),
                Code::InvalidArgument,
                "starts after it ends",
            ),
        ];
        for (descriptor, code, needle) in cases {
            let (got, msg) = code_of(c.get_flight_info(descriptor.clone()).await.unwrap_err());
            assert_eq!(got, code, "{descriptor:?}: {msg}");
            assert!(
                msg.contains(needle),
                "{descriptor:?}: `{msg}` lacks `{needle}`"
            );
        }

        let (code, msg) = code_of(c.do_get(Ticket::new("garbage")).await.unwrap_err());
        assert_eq!(code, Code::InvalidArgument, "{msg}");

        // A ticket whose segment left the manifest (retention) is NotFound, not a read error.
        let info = c
            .get_flight_info(FlightCommand::topic("t").descriptor())
            .await
            .unwrap();
        let ep = &info.endpoint[0];
        let body: TicketBody = serde_json::from_slice(&ep.ticket.as_ref().unwrap().ticket).unwrap();
        assert!(
            f.manifest
                .remove(
                    f.topic_id,
                    body.split.partition,
                    body.split.segment.base_offset
                )
                .await
                .unwrap()
        );
        let (code, msg) = code_of(c.do_get(ep.ticket.clone().unwrap()).await.unwrap_err());
        assert_eq!(code, Code::NotFound, "{msg}");
        assert!(msg.contains("GetFlightInfo again"), "{msg}");

        let (code, _) = code_of(
            c.do_action(Action::new("drop", Bytes::new()))
                .await
                .err()
                .unwrap(),
        );
        assert_eq!(code, Code::Unimplemented);
    }

    /// Many concurrent DoGets through a single read slot all finish: slots are released when
    /// each stream ends, and waiting reads are served in turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_bounded_slots() {
        let f = fixture().await;
        let config = FlightConfig {
            max_concurrent_reads: 1,
            batch_rows: 7,
            ..FlightConfig::default()
        };
        let (addr, _stop) = start(Arc::clone(&f.ctx), config).await;
        let mut c = client(addr).await;
        let info = c
            .get_flight_info(FlightCommand::topic("t").descriptor())
            .await
            .unwrap();
        let reads = info.endpoint.iter().map(|ep| {
            let ticket = ep.ticket.clone().unwrap();
            async move {
                let mut c = client(addr).await;
                let batches: Vec<RecordBatch> =
                    c.do_get(ticket).await.unwrap().try_collect().await.unwrap();
                assert!(batches.iter().all(|b| b.num_rows() <= 7));
                batches
            }
        });
        let mut got = BTreeSet::new();
        for batches in futures::future::join_all(reads).await {
            for b in batches {
                rows_of(&b, &mut got);
            }
        }
        assert_eq!(got, f.expected);
    }

    #[test]
    fn locations_of_unspecified_addresses_reuse_the_connection() {
        assert_eq!(
            default_location("0.0.0.0:8815".parse().unwrap()),
            REUSE_CONNECTION
        );
        assert_eq!(
            default_location("127.0.0.1:8815".parse().unwrap()),
            "grpc+tcp://127.0.0.1:8815"
        );
    }
}
