//! A Kafka-protocol connection from this node to a peer (the leader a follower fetches
//! from). Peers run the same tierlog, so versions are fixed rather than negotiated.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest response accepted from a peer.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// One connection to one peer.
#[derive(Debug)]
pub(crate) struct PeerConnection {
    addr: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_correlation_id: i32,
}

impl PeerConnection {
    pub(crate) async fn connect(addr: &str, timeout: std::time::Duration) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow::anyhow!("connect to `{addr}` timed out"))??;
        stream.set_nodelay(true).ok();
        let (r, w) = stream.into_split();
        Ok(PeerConnection {
            addr: addr.to_owned(),
            reader: BufReader::with_capacity(256 * 1024, r),
            writer: w,
            next_correlation_id: 1,
        })
    }

    /// Sends one request at `version` and decodes the response.
    pub(crate) async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let buf = crate::protocol::encode_request(
            key,
            version,
            correlation_id,
            "tierlog-replica",
            request,
        )
        .map_err(anyhow::Error::msg)?;
        self.writer.write_all(&buf).await?;
        let len = self.reader.read_i32().await?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| anyhow::anyhow!("bad response length {len} from `{}`", self.addr))?;
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body).await?;
        let mut frame = Bytes::from(body);
        let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
        anyhow::ensure!(
            header.correlation_id == correlation_id,
            "response from `{}` has correlation id {}, expected {correlation_id}",
            self.addr,
            header.correlation_id
        );
        Resp::decode(&mut frame, version)
    }
}
