//! DescribeCluster: the live nodes and the controller, from this node's view.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::RequestContext;
use crate::broker::Identity;
use crate::cluster::Cluster;
use crate::error::Error;
use crate::protocol::str_bytes;
use tierlog_metadata::{AclOperation, AclResourceType};

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    cluster: &Cluster,
    id: &Identity,
    body: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let resp = DescribeClusterResponse::default();
    // As Kafka: DESCRIBE on the cluster.
    if !ctx.cluster(AclOperation::Describe) {
        let e = Error::ClusterAuthorizationFailed("DESCRIBE on the cluster".into());
        return resp
            .with_error_code(e.kafka_code())
            .with_error_message(Some(e.message()))
            .with_endpoint_type(body.endpoint_type);
    }
    let mut resp = resp
        .with_cluster_id(str_bytes(&id.cluster_id))
        .with_controller_id(BrokerId(cluster.view().controller.unwrap_or(-1)))
        .with_endpoint_type(body.endpoint_type);
    // endpoint_type 1 = brokers, 2 = controllers; every node is both.
    if body.endpoint_type != 1 && body.endpoint_type != 2 {
        resp.error_code = ResponseError::UnsupportedEndpointType.code();
        return resp;
    }
    resp.brokers = super::metadata::brokers(cluster, id, &ctx.session.listener)
        .into_iter()
        .map(|n| {
            DescribeClusterBroker::default()
                .with_broker_id(n.node_id)
                .with_host(n.host)
                .with_port(n.port)
                .with_rack(n.rack)
        })
        .collect();
    resp.cluster_authorized_operations = if body.include_cluster_authorized_operations {
        ctx.authz.authorized_operations(
            ctx.session,
            AclResourceType::Cluster,
            crate::security::acl::CLUSTER_NAME,
            crate::security::acl::CLUSTER_OPERATIONS,
        )
    } else {
        i32::MIN
    };
    resp
}
