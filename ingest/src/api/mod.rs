//! Request dispatch: one file per Kafka API, each a function from a decoded request to its
//! response. [`dispatch`] decodes the frame, routes it, and wraps the response for the writer.

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod api_versions;
#[cfg(test)]
mod authz_tests;
mod client_quotas;
mod configs;
mod consumer_group;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_topic_partitions;
mod end_txn;
mod fetch;
pub(crate) mod fetch_session;
mod find_coordinator;
mod groups;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod read_replica;
mod reassignments;
mod scram_credentials;
mod sync_group;
#[cfg(test)]
mod tests;
mod throttle;
mod transactions;
mod txn_offset_commit;
mod write_txn_markers;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;
use tracing::{debug, error};

use crate::metrics::Metrics;
use tierlog_metadata::SharedClock;

use crate::broker::Broker;
use crate::protocol::{self, FrameError, ReplyTo, Request};
use crate::security::Session;
use crate::security::acl::Authorizer;
use tierlog_metadata::{AclOperation, AclResourceType};

/// What the writer does for one request.
pub(crate) enum Reply {
    /// Write this frame.
    Frame(Bytes),
    /// Nothing to write (Produce with acks=0).
    Nothing,
    /// Close the connection after the replies before this one.
    Close,
}

/// The deferred part of a request, awaited by the writer in arrival order.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// The outcome of dispatching one frame.
pub(crate) enum Dispatch {
    /// Queue this for the writer.
    Deferred(Pending),
    /// The frame was bad: close the connection.
    Close,
}

/// Who is asking and how: what a handler knows of the request besides its body.
pub(crate) struct RequestContext<'a> {
    pub(crate) req: &'a Request,
    /// The client's address (`ip:port`).
    pub(crate) peer: &'a str,
    /// The connection: its authenticated principal (what authorization checks), listener and
    /// throttling state.
    pub(crate) session: &'a Arc<Session>,
    /// Who may do what (every handler checks before acting).
    pub(crate) authz: &'a Authorizer,
    pub(crate) clock: &'a SharedClock,
    /// The node's client quotas: handlers record what a request uses (bytes produced or
    /// fetched) and throttle the connection when it is over.
    pub(crate) quotas: &'a Arc<crate::security::quota::QuotaManager>,
}

impl RequestContext<'_> {
    /// The request's API version.
    pub(crate) fn version(&self) -> i16 {
        self.req.version
    }

    /// Where the response goes.
    pub(crate) fn reply_to(&self) -> ReplyTo {
        ReplyTo::of(self.req)
    }

    /// The client id from the header ("" when the client sent none).
    pub(crate) fn client_id(&self) -> String {
        self.req.client_id()
    }

    /// The request's API name, as denial log lines name it.
    fn api_name(&self) -> &'static str {
        api_name(self.req.api_key)
    }

    /// Whether the session may do `op` on `rt`/`name`; a denial is counted and logged.
    pub(crate) fn authorize(&self, op: AclOperation, rt: AclResourceType, name: &str) -> bool {
        self.authz
            .authorize(self.session, self.api_name(), op, rt, name)
    }

    /// [`RequestContext::authorize`] without logging a denial: for filtering what a list
    /// shows (Kafka's `logIfDenied = false`).
    pub(crate) fn allowed(&self, op: AclOperation, rt: AclResourceType, name: &str) -> bool {
        self.authz.allowed(self.session, op, rt, name)
    }

    /// `op` on the topic `name`.
    pub(crate) fn topic(&self, op: AclOperation, name: &str) -> bool {
        self.authorize(op, AclResourceType::Topic, name)
    }

    /// `op` on the group `id`.
    pub(crate) fn group(&self, op: AclOperation, id: &str) -> bool {
        self.authorize(op, AclResourceType::Group, id)
    }

    /// `op` on the transactional id `id`.
    pub(crate) fn transactional_id(&self, op: AclOperation, id: &str) -> bool {
        self.authorize(op, AclResourceType::TransactionalId, id)
    }

    /// `op` on the cluster.
    pub(crate) fn cluster(&self, op: AclOperation) -> bool {
        self.authorize(
            op,
            AclResourceType::Cluster,
            crate::security::acl::CLUSTER_NAME,
        )
    }
}

/// An API's name for logs (`Fetch`, `CreateAcls`).
fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::AddPartitionsToTxn => "AddPartitionsToTxn",
        ApiKey::AddOffsetsToTxn => "AddOffsetsToTxn",
        ApiKey::EndTxn => "EndTxn",
        ApiKey::WriteTxnMarkers => "WriteTxnMarkers",
        ApiKey::TxnOffsetCommit => "TxnOffsetCommit",
        ApiKey::DescribeAcls => "DescribeAcls",
        ApiKey::CreateAcls => "CreateAcls",
        ApiKey::DeleteAcls => "DeleteAcls",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::OffsetDelete => "OffsetDelete",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::DescribeProducers => "DescribeProducers",
        ApiKey::DescribeTransactions => "DescribeTransactions",
        ApiKey::ListTransactions => "ListTransactions",
        ApiKey::ConsumerGroupHeartbeat => "ConsumerGroupHeartbeat",
        ApiKey::ConsumerGroupDescribe => "ConsumerGroupDescribe",
        ApiKey::DescribeTopicPartitions => "DescribeTopicPartitions",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::ElectLeaders => "ElectLeaders",
        _ => "other",
    }
}

/// Decodes one frame and runs its request: the in-order part now, the rest deferred.
pub(crate) async fn dispatch(b: &Arc<Broker>, frame: Bytes, session: &Arc<Session>) -> Dispatch {
    Metrics::add(&b.metrics.requests_total, 1);
    let raw = match protocol::peek_header(&frame) {
        Ok(r) => r,
        Err(e) => return refuse(&b.metrics, &e),
    };
    if raw.api_key == ApiKey::ApiVersions as i16 {
        let (_, max) = protocol::supported_range(ApiKey::ApiVersions).unwrap_or((0, 0));
        if raw.version > max {
            // Kafka's fallback: answer in v0 with UNSUPPORTED_VERSION and our ranges, so the
            // client can retry with a version we speak.
            debug!(
                version = raw.version,
                "ApiVersions version unsupported; answering v0"
            );
            return ready(api_versions::unsupported_version_reply(raw.correlation_id));
        }
    }
    let req = match protocol::decode_request(frame) {
        Ok(r) => r,
        Err(e) => return refuse(&b.metrics, &e),
    };
    let ctx = RequestContext {
        req: &req,
        peer: &session.peer_text,
        session,
        authz: &b.authorizer,
        clock: &b.clock,
        quotas: &b.quotas,
    };
    let ctx = &ctx;
    let (h, g, id, m, tx) = (&b.host, &b.groups, &b.identity, &b.metrics, &b.txns);
    let started = b.clock.now();
    let outcome = match req.api_key {
        ApiKey::Produce => match protocol::decode_body(&req) {
            Ok(body) => Ok(produce::handle(ctx, h, m, tx, body).await),
            Err(e) => Err(e),
        },
        ApiKey::Fetch => match protocol::decode_body(&req) {
            Ok(body) => Ok(fetch::handle(
                ctx,
                h.clone(),
                m.clone(),
                b.fetch_sessions.clone(),
                b.config.replica_selector,
                body,
            )),
            Err(e) => Err(e),
        },
        ApiKey::ApiVersions => {
            simple(&req, |body| async {
                api_versions::handle(ctx, b.config.transaction_version, body)
            })
            .await
        }
        ApiKey::Metadata => simple(&req, |body| metadata::handle(ctx, h, id, body)).await,
        ApiKey::ListOffsets => simple(&req, |body| list_offsets::handle(ctx, h, body)).await,
        ApiKey::CreateTopics => simple(&req, |body| create_topics::handle(ctx, h, body)).await,
        ApiKey::DeleteTopics => simple(&req, |body| delete_topics::handle(ctx, h, body)).await,
        ApiKey::CreatePartitions => {
            simple(&req, |body| create_partitions::handle(ctx, h, body)).await
        }
        ApiKey::DescribeConfigs => {
            simple(&req, |body| async {
                configs::describe(ctx, h, id, &b.config, body)
            })
            .await
        }
        ApiKey::IncrementalAlterConfigs => {
            simple(&req, |body| configs::incremental_alter(ctx, h, body)).await
        }
        ApiKey::AlterConfigs => simple(&req, |body| configs::alter(ctx, h, body)).await,
        ApiKey::DeleteRecords => simple(&req, |body| delete_records::handle(ctx, h, body)).await,
        ApiKey::JoinGroup => match protocol::decode_body(&req) {
            Ok(body) => Ok(join_group::handle(ctx, g, h, body)),
            Err(e) => Err(e),
        },
        ApiKey::SyncGroup => match protocol::decode_body(&req) {
            Ok(body) => Ok(sync_group::handle(ctx, g, h, body)),
            Err(e) => Err(e),
        },
        ApiKey::Heartbeat => {
            simple(&req, |body| async { heartbeat::handle(ctx, g, h, body) }).await
        }
        ApiKey::LeaveGroup => {
            simple(&req, |body| async { leave_group::handle(ctx, g, h, body) }).await
        }
        ApiKey::OffsetCommit => simple(&req, |body| offset_commit::handle(ctx, g, h, body)).await,
        ApiKey::OffsetFetch => simple(&req, |body| offset_fetch::handle(ctx, g, h, tx, body)).await,
        ApiKey::ListGroups => {
            simple(&req, |body| async { list_groups::handle(ctx, g, h, body) }).await
        }
        ApiKey::DescribeGroups => {
            simple(&req, |body| async {
                describe_groups::handle(ctx, g, h, body)
            })
            .await
        }
        ApiKey::DeleteGroups => simple(&req, |body| delete_groups::handle(ctx, g, h, body)).await,
        ApiKey::ConsumerGroupHeartbeat => {
            simple(&req, |body| async {
                consumer_group::heartbeat(ctx, g, h, body)
            })
            .await
        }
        ApiKey::ConsumerGroupDescribe => {
            simple(&req, |body| async {
                consumer_group::describe(ctx, g, h, body)
            })
            .await
        }
        ApiKey::OffsetDelete => simple(&req, |body| offset_delete::handle(ctx, g, h, body)).await,
        ApiKey::FindCoordinator => {
            simple(&req, |body| async {
                find_coordinator::handle(ctx, &h.cluster, id, body)
            })
            .await
        }
        ApiKey::OffsetForLeaderEpoch => {
            simple(&req, |body| async {
                offset_for_leader_epoch::handle(ctx, h, body)
            })
            .await
        }
        ApiKey::DescribeCluster => {
            simple(&req, |body| async {
                describe_cluster::handle(ctx, &h.cluster, id, body)
            })
            .await
        }
        ApiKey::InitProducerId => {
            simple(&req, |body| init_producer_id::handle(ctx, tx, body)).await
        }
        ApiKey::AddPartitionsToTxn => {
            simple(&req, |body| add_partitions_to_txn::handle(ctx, tx, h, body)).await
        }
        ApiKey::AddOffsetsToTxn => {
            simple(&req, |body| add_offsets_to_txn::handle(ctx, tx, body)).await
        }
        ApiKey::EndTxn => simple(&req, |body| end_txn::handle(ctx, tx, body)).await,
        ApiKey::TxnOffsetCommit => {
            simple(&req, |body| txn_offset_commit::handle(ctx, tx, g, h, body)).await
        }
        ApiKey::WriteTxnMarkers => {
            simple(&req, |body| write_txn_markers::handle(ctx, h, body)).await
        }
        ApiKey::DescribeProducers => {
            simple(&req, |body| async {
                describe_producers::handle(ctx, h, body)
            })
            .await
        }
        ApiKey::DescribeTopicPartitions => {
            simple(&req, |body| async {
                let limit = b.config.max_request_partition_size_limit;
                describe_topic_partitions::handle(ctx, h, limit, body)
            })
            .await
        }
        ApiKey::DescribeLogDirs => {
            simple(&req, |body| async {
                describe_log_dirs::handle(ctx, h, body)
            })
            .await
        }
        ApiKey::AlterPartitionReassignments => {
            simple(&req, |body| reassignments::alter(ctx, h, body)).await
        }
        ApiKey::ListPartitionReassignments => {
            simple(&req, |body| async { reassignments::list(ctx, h, body) }).await
        }
        ApiKey::ElectLeaders => simple(&req, |body| reassignments::elect(ctx, h, body)).await,
        ApiKey::ListTransactions => simple(&req, |body| transactions::list(ctx, tx, h, body)).await,
        ApiKey::DescribeTransactions => {
            simple(&req, |body| transactions::describe(ctx, tx, body)).await
        }
        ApiKey::DescribeUserScramCredentials => {
            simple(&req, |body| {
                scram_credentials::describe(ctx, &b.authenticator, body)
            })
            .await
        }
        ApiKey::AlterUserScramCredentials => {
            simple(&req, |body| {
                scram_credentials::alter(ctx, &b.authenticator, body)
            })
            .await
        }
        ApiKey::CreateAcls => simple(&req, |body| acls::create(ctx, &b.acls, body)).await,
        ApiKey::DescribeAcls => simple(&req, |body| acls::describe(ctx, &b.acls, body)).await,
        ApiKey::DeleteAcls => simple(&req, |body| acls::delete(ctx, &b.acls, body)).await,
        ApiKey::DescribeClientQuotas => {
            simple(&req, |body| async {
                client_quotas::describe(ctx, &b.quotas, body)
            })
            .await
        }
        ApiKey::AlterClientQuotas => {
            simple(&req, |body| client_quotas::alter(ctx, &b.quotas, body)).await
        }
        other => Err(FrameError::UnknownApiKey(other as i16)),
    };
    match outcome {
        Ok(p) => Dispatch::Deferred(throttle::request_quota(b, session, &req, started, p)),
        Err(e) => refuse(&b.metrics, &e),
    }
}

fn refuse(metrics: &Metrics, e: &FrameError) -> Dispatch {
    Metrics::add(&metrics.bad_requests, 1);
    debug!(error = %e, "refusing request; closing connection");
    Dispatch::Close
}

fn ready(reply: Reply) -> Dispatch {
    Dispatch::Deferred(Box::pin(std::future::ready(reply)))
}

/// Decodes the body, runs `f` to completion now, and queues the encoded response.
async fn simple<T, R, F, Fut>(req: &Request, f: F) -> Result<Pending, FrameError>
where
    T: kafka_protocol::protocol::Decodable,
    R: Encodable,
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let body: T = protocol::decode_body(req)?;
    let resp = f(body).await;
    Ok(Box::pin(std::future::ready(encode(
        ReplyTo::of(req),
        &resp,
    ))))
}

/// Encodes a response; an encoding failure (a bug) closes the connection.
pub(crate) fn encode<R: Encodable>(to: ReplyTo, resp: &R) -> Reply {
    match protocol::encode_response(to.api_key, to.version, to.correlation_id, resp) {
        Ok(frame) => Reply::Frame(frame),
        Err(e) => {
            error!(error = %e, "could not encode response; closing connection");
            Reply::Close
        }
    }
}

/// A client's host as the group APIs report it: `/` and the peer's address without its port,
/// as Kafka writes it (Java's `InetAddress.toString()` of an unresolved address).
pub(crate) fn client_host(peer: &str) -> String {
    match peer.parse::<std::net::SocketAddr>() {
        Ok(addr) => format!("/{}", addr.ip()),
        Err(_) => format!("/{peer}"),
    }
}
