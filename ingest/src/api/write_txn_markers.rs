//! WriteTxnMarkers: the transaction coordinator (another node's, or `kafka-transactions
//! abort`) asks this partition leader to write commit or abort markers. Each marker is
//! answered once the ISR has it.

use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::RequestContext;
use crate::host::Host;
use crate::txn::markers::{Marker, write_local};
use tierlog_metadata::AclOperation;

/// How long a marker may wait for the ISR.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    h: &Host,
    body: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    // As Kafka: only brokers (CLUSTER_ACTION) write markers.
    let authorized = ctx.cluster(AclOperation::ClusterAction);
    let mut markers = Vec::with_capacity(body.markers.len());
    for m in &body.markers {
        let marker = Marker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in &m.topics {
            let name = t.name.0.as_str();
            let writes = t.partition_indexes.iter().map(|p| async move {
                if !authorized {
                    return WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(
                            crate::error::Error::ClusterAuthorizationFailed(String::new())
                                .kafka_code(),
                        );
                }
                let code = match write_local(h, name, *p, marker, REPLICATION_TIMEOUT).await {
                    Ok(()) => 0,
                    Err(e) => e.kafka_code(),
                };
                WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(*p)
                    .with_error_code(code)
            });
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(join_all(writes).await),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
