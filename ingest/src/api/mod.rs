//! Request dispatch: one file per Kafka API, each a function from a decoded request to its
//! response. [`dispatch`] decodes the frame, routes it, and wraps the response for the writer.

mod api_versions;
mod configs;
mod consumer_group;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod fetch;
mod find_coordinator;
mod groups;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod produce;

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;
use tracing::{debug, error};

use crate::http::Metrics;
use crate::node::Broker;
use crate::protocol::{self, FrameError, ReplyTo, Request};
use crate::server::{Dispatch, Pending, Reply};

/// Decodes one frame and runs its request: the in-order part now, the rest deferred.
pub(crate) async fn dispatch(b: &Arc<Broker>, frame: Bytes, peer: &str) -> Dispatch {
    Metrics::add(&b.metrics.requests_total, 1);
    let raw = match protocol::peek_header(&frame) {
        Ok(r) => r,
        Err(e) => return refuse(b, &e),
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
        Err(e) => return refuse(b, &e),
    };
    let outcome = match req.api_key {
        ApiKey::Produce => match protocol::decode_body(&req) {
            Ok(body) => Ok(produce::handle(b, &req, body)),
            Err(e) => Err(e),
        },
        ApiKey::Fetch => match protocol::decode_body(&req) {
            Ok(body) => Ok(fetch::handle(b.clone(), &req, body)),
            Err(e) => Err(e),
        },
        ApiKey::ApiVersions => {
            simple(&req, |body| async { api_versions::handle(&req, body) }).await
        }
        ApiKey::Metadata => simple(&req, |body| metadata::handle(b, &req, body)).await,
        ApiKey::ListOffsets => simple(&req, |body| list_offsets::handle(b, &req, body)).await,
        ApiKey::CreateTopics => simple(&req, |body| create_topics::handle(b, &req, body)).await,
        ApiKey::DeleteTopics => simple(&req, |body| delete_topics::handle(b, &req, body)).await,
        ApiKey::CreatePartitions => {
            simple(&req, |body| create_partitions::handle(b, &req, body)).await
        }
        ApiKey::DescribeConfigs => {
            simple(&req, |body| async { configs::describe(b, &req, body) }).await
        }
        ApiKey::IncrementalAlterConfigs => {
            simple(&req, |body| configs::incremental_alter(b, &req, body)).await
        }
        ApiKey::AlterConfigs => simple(&req, |body| configs::alter(b, &req, body)).await,
        ApiKey::DeleteRecords => simple(&req, |body| delete_records::handle(b, &req, body)).await,
        ApiKey::JoinGroup => match protocol::decode_body(&req) {
            Ok(body) => Ok(groups::join(b, &req, body, peer)),
            Err(e) => Err(e),
        },
        ApiKey::SyncGroup => match protocol::decode_body(&req) {
            Ok(body) => Ok(groups::sync(b, &req, body)),
            Err(e) => Err(e),
        },
        ApiKey::Heartbeat => simple(&req, |body| async { groups::heartbeat(b, &req, body) }).await,
        ApiKey::LeaveGroup => simple(&req, |body| async { groups::leave(b, &req, body) }).await,
        ApiKey::OffsetCommit => simple(&req, |body| groups::offset_commit(b, &req, body)).await,
        ApiKey::OffsetFetch => simple(&req, |body| groups::offset_fetch(b, &req, body)).await,
        ApiKey::ListGroups => {
            simple(&req, |body| async { groups::list_groups(b, &req, body) }).await
        }
        ApiKey::DescribeGroups => {
            simple(&req, |body| async {
                groups::describe_groups(b, &req, body)
            })
            .await
        }
        ApiKey::DeleteGroups => simple(&req, |body| groups::delete_groups(b, &req, body)).await,
        ApiKey::ConsumerGroupHeartbeat => {
            simple(&req, |body| async {
                consumer_group::heartbeat(b, &req, body, peer)
            })
            .await
        }
        ApiKey::ConsumerGroupDescribe => {
            simple(&req, |body| async {
                consumer_group::describe(b, &req, body)
            })
            .await
        }
        ApiKey::OffsetDelete => simple(&req, |body| groups::offset_delete(b, &req, body)).await,
        ApiKey::FindCoordinator => {
            simple(&req, |body| async {
                find_coordinator::handle(b, &req, body)
            })
            .await
        }
        ApiKey::OffsetForLeaderEpoch => {
            simple(&req, |body| async {
                offset_for_leader_epoch::handle(b, &req, body)
            })
            .await
        }
        ApiKey::DescribeCluster => {
            simple(&req, |body| async {
                describe_cluster::handle(b, &req, body)
            })
            .await
        }
        other => Err(FrameError::UnknownApiKey(other as i16)),
    };
    match outcome {
        Ok(p) => Dispatch::Deferred(p),
        Err(e) => refuse(b, &e),
    }
}

fn refuse(b: &Broker, e: &FrameError) -> Dispatch {
    Metrics::add(&b.metrics.bad_requests, 1);
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

/// `StrBytes` from a `&str`.
pub(crate) fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_host_is_the_address_without_the_port() {
        assert_eq!(super::client_host("127.0.0.1:40312"), "/127.0.0.1");
        assert_eq!(super::client_host("[::1]:9092"), "/::1");
        assert_eq!(super::client_host("somewhere"), "/somewhere");
    }
}
