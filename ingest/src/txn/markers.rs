//! Transaction markers: the commit or abort control batch written to every partition of a
//! transaction, on its leader, and replicated to the ISR before it counts as written.
//!
//! The coordinator appends the markers of partitions this node leads itself and sends the
//! others to their leaders as one WriteTxnMarkers request per leader (the API Kafka's
//! coordinator uses, which `kafka-transactions abort` also sends). A partition whose leader
//! moved or is being elected is retried on a fresh view until [`MARKER_TIMEOUT`]; a deleted
//! topic needs no marker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use tierlog_tiering::ControlType;
use tracing::debug;

use crate::error::{Error, Result};
use crate::host::Host;
use crate::protocol::str_bytes;
use crate::replication::client::{PeerConnection, PeerTransport};

/// How long writing a transaction's markers may take before the coordinator gives up (the
/// transaction stays prepared and is finished later).
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait between rounds while some leaders are unavailable.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// WriteTxnMarkers version peers speak (tierlog serves exactly v1).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// One marker to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marker {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) commit: bool,
    pub(crate) coordinator_epoch: i32,
}

impl Marker {
    fn control(self) -> ControlType {
        if self.commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        }
    }
}

/// Appends `marker` to partition `index` of `topic`, led here, and waits until the ISR has
/// it (at most `timeout`).
pub(crate) async fn write_local(
    host: &Host,
    topic: &str,
    index: i32,
    marker: Marker,
    timeout: Duration,
) -> Result<()> {
    let p = host
        .partitions
        .partition(topic, index)
        .ok_or_else(|| Error::NotLeader(format!("{topic}-{index}")))?;
    let appended = p.append_control(
        marker.producer_id,
        marker.producer_epoch,
        marker.control(),
        marker.coordinator_epoch,
        host.clock.now_ms(),
        host.cluster.membership.lease_valid(),
    )?;
    p.wait_committed(appended.result.last_offset + 1, appended.role_gen, timeout)
        .await
}

/// Writes `marker` to every partition of `partitions` (topic → partition indexes) through
/// their leaders, retrying moved leaders until [`MARKER_TIMEOUT`].
pub(crate) async fn write(
    host: &Arc<Host>,
    marker: Marker,
    partitions: &BTreeMap<String, BTreeSet<i32>>,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + MARKER_TIMEOUT;
    let mut left: Vec<(String, i32)> = partitions
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
        .collect();
    let mut last_error = String::new();
    while !left.is_empty() {
        let view = host.cluster.view();
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut retry = Vec::new();
        for (t, p) in left {
            let Some(meta) = view.topics.get(&t) else {
                debug!(topic = %t, "no marker for a deleted topic");
                continue;
            };
            match view.state(meta.id, p).map(|s| s.leader) {
                Some(l) if l >= 0 => by_leader.entry(l).or_default().push((t, p)),
                _ => retry.push((t, p)),
            }
        }
        for (leader, parts) in by_leader {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if leader == host.node_id {
                for (t, p) in parts {
                    if let Err(e) = write_local(host, &t, p, marker, remaining).await {
                        last_error = format!("{t}-{p}: {e}");
                        retry.push((t, p));
                    }
                }
                continue;
            }
            let Some(node) = view.nodes.get(&leader) else {
                retry.extend(parts);
                continue;
            };
            let addr = format!("{}:{}", node.host, node.port);
            match send(&addr, host.fetchers.transport(), marker, &parts, remaining).await {
                Ok(failed) => {
                    for (t, p, code) in failed {
                        last_error = format!("{t}-{p}: error code {code} from node {leader}");
                        retry.push((t, p));
                    }
                }
                Err(e) => {
                    last_error = format!("node {leader} at {addr}: {e}");
                    retry.extend(parts);
                }
            }
        }
        left = retry;
        if left.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::RequestTimedOut(format!(
                "transaction markers for producer {} not written to {} partitions: {last_error}",
                marker.producer_id,
                left.len()
            )));
        }
        debug!(left = left.len(), error = %last_error, "retrying transaction markers");
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
    Ok(())
}

/// Sends one WriteTxnMarkers request; returns the partitions that failed, with their codes.
async fn send(
    addr: &str,
    transport: &PeerTransport,
    marker: Marker,
    parts: &[(String, i32)],
    timeout: Duration,
) -> anyhow::Result<Vec<(String, i32, i16)>> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    let req = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(str_bytes(t)))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ),
    ]);
    let exchange = async {
        let mut conn = PeerConnection::connect(addr, timeout, transport).await?;
        conn.request::<_, WriteTxnMarkersResponse>(
            ApiKey::WriteTxnMarkers,
            WRITE_TXN_MARKERS_VERSION,
            &req,
        )
        .await
    };
    let resp = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))??;
    let mut failed = Vec::new();
    for m in resp.markers {
        for t in m.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    failed.push((t.name.0.to_string(), p.partition_index, p.error_code));
                }
            }
        }
    }
    Ok(failed)
}
