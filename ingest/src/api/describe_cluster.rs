//! DescribeCluster: this node is the whole cluster and its controller.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::node::Broker;
use crate::protocol::Request;

pub(super) fn handle(
    b: &Broker,
    _req: &Request,
    body: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&b.cluster_id))
        .with_controller_id(BrokerId(b.node_id))
        .with_endpoint_type(body.endpoint_type);
    // endpoint_type 1 = brokers, 2 = controllers; a single node is both.
    if body.endpoint_type != 1 && body.endpoint_type != 2 {
        resp.error_code = ResponseError::UnsupportedEndpointType.code();
        return resp;
    }
    resp.brokers = vec![
        DescribeClusterBroker::default()
            .with_broker_id(BrokerId(b.node_id))
            .with_host(str_bytes(&b.advertised_host))
            .with_port(b.advertised_port),
    ];
    resp.cluster_authorized_operations = if body.include_cluster_authorized_operations {
        super::metadata::CLUSTER_OPERATIONS
    } else {
        i32::MIN
    };
    resp
}
