//! A Kafka-protocol connection from this node to a peer (the leader a follower fetches
//! from). Peers run the same tierlog, so versions are fixed rather than negotiated; framing,
//! correlation ids and the response size limit are [`Connection`]'s.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::protocol::Connection;

/// One connection to one peer.
#[derive(Debug)]
pub(crate) struct PeerConnection {
    conn: Connection,
}

impl PeerConnection {
    pub(crate) async fn connect(addr: &str, timeout: std::time::Duration) -> anyhow::Result<Self> {
        let conn = Connection::connect(addr, timeout)
            .await?
            .with_client_id("tierlog-replica");
        Ok(PeerConnection { conn })
    }

    /// Sends one request at `version` and decodes the response.
    pub(crate) async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let mut body = self.conn.round_trip(key, version, request).await?;
        Resp::decode(&mut body, version)
    }
}
