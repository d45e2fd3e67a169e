//! One Kafka connection as a client sees it: the one piece of `protocol/` that does I/O.
//!
//! Everything that talks to a Kafka-compatible broker goes through [`Connection`]: a
//! follower's fetcher, the `tierlog` CLI, and the raw-protocol tests. It owns the framing
//! (a big-endian `i32` length, then that many bytes), request headers, correlation ids and the
//! largest frame it will read, so each of those is decided once. (The mini-redis
//! `Connection` shape: a buffered stream plus `read_frame`/`write_frame`.)
//!
//! Lifecycle: [`Connection::connect`] opens the socket (with a timeout); each
//! [`request`](Connection::request) writes one frame and reads the next one, which must carry
//! the same correlation id. Requests on one connection are strictly sequential; callers that
//! need a deadline per request wrap the call in `tokio::time::timeout`, which is safe because
//! a timed-out connection is dropped, never reused (a half-read frame would desynchronise
//! it). No method is cancel-safe in the sense of leaving the stream usable.
//!
//! Tests that send malformed bytes use the raw half: [`write_raw`](Connection::write_raw),
//! [`write_frame`](Connection::write_frame), [`read_frame`](Connection::read_frame) and
//! [`read_until_closed`](Connection::read_until_closed).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Why an exchange on a [`Connection`] failed. After any error but [`Encode`] and [`Decode`]
/// the connection is out of step with the peer and should be dropped.
///
/// [`Encode`]: ConnectionError::Encode
/// [`Decode`]: ConnectionError::Decode
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The TCP connection could not be opened.
    #[error("connect to `{addr}`")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection was not open within the connect timeout.
    #[error("connect to `{addr}` timed out after {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    /// Reading or writing the socket failed, or the peer closed it mid-exchange.
    #[error("i/o with `{addr}`")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A frame length that is negative or above the connection's maximum.
    #[error("bad response length {len} from `{addr}` (max {max})")]
    BadLength { addr: String, len: i32, max: usize },
    /// The request could not be encoded at the asked version.
    #[error("encoding {api:?} v{version} request: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    /// The response header or body did not decode at the request's version.
    #[error("decode {api:?} v{version} response from `{addr}`: {reason}")]
    Decode {
        addr: String,
        api: ApiKey,
        version: i16,
        reason: String,
    },
    /// The response answers another request.
    #[error("{api:?} response from `{addr}` has correlation id {got}, expected {expected}")]
    CorrelationMismatch {
        addr: String,
        api: ApiKey,
        expected: i32,
        got: i32,
    },
    /// `R::KEY` of a typed request is not a Kafka API key.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The TLS handshake failed (an untrusted certificate, a name mismatch, a plaintext peer).
    #[error("TLS with `{addr}`: {reason}")]
    Tls { addr: String, reason: String },
}

/// What a [`Connection`] reads and writes: a TCP stream, or TLS over one.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug> Stream for T {}

/// One client connection to one broker.
#[derive(Debug)]
pub struct Connection {
    /// The peer's address as the caller named it, for messages.
    addr: String,
    /// Buffered for reads (a Fetch response arrives in many segments); writes pass through and
    /// each request is written whole with one `write_all`.
    stream: BufReader<Box<dyn Stream>>,
    /// The `client_id` in every request header.
    client_id: &'static str,
    /// Larger response frames fail with [`ConnectionError::BadLength`].
    max_frame_bytes: usize,
    next_correlation_id: i32,
}

impl Connection {
    /// The largest response frame a connection reads unless told otherwise
    /// ([`with_max_frame_bytes`](Self::with_max_frame_bytes)): a corrupt length must not make
    /// a client allocate gigabytes.
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

    /// Connects to `addr` (`host:port`) within `timeout`, with Nagle off (requests are small
    /// and each is waited for). Requests carry the client id `tierlog`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection, ConnectionError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectionError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout,
            })?
            .map_err(|source| ConnectionError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // Best effort: only latency depends on it.
        stream.set_nodelay(true).ok();
        Ok(Connection::over(addr, Box::new(stream)))
    }

    /// Connects to `addr` (`host:port`) and runs a TLS handshake with `tls`, checking the
    /// peer's certificate against the host part of `addr`, all within `timeout`.
    pub async fn connect_tls(
        addr: &str,
        timeout: Duration,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Connection, ConnectionError> {
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
            ConnectionError::Tls {
                addr: addr.to_owned(),
                reason: format!("`{host}` is not a server name: {e}"),
            }
        })?;
        let handshake = async {
            let tcp =
                TcpStream::connect(addr)
                    .await
                    .map_err(|source| ConnectionError::Connect {
                        addr: addr.to_owned(),
                        source,
                    })?;
            tcp.set_nodelay(true).ok();
            tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectionError::Tls {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })
        };
        let stream = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| ConnectionError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout,
            })??;
        Ok(Connection::over(addr, Box::new(stream)))
    }

    fn over(addr: &str, stream: Box<dyn Stream>) -> Connection {
        Connection {
            addr: addr.to_owned(),
            stream: BufReader::with_capacity(256 * 1024, stream),
            client_id: "tierlog",
            max_frame_bytes: Connection::DEFAULT_MAX_FRAME_BYTES,
            next_correlation_id: 1,
        }
    }

    /// Sets the `client_id` that request headers carry.
    pub fn with_client_id(mut self, client_id: &'static str) -> Connection {
        self.client_id = client_id;
        self
    }

    /// Sets the largest response frame this connection reads.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Connection {
        self.max_frame_bytes = max;
        self
    }

    /// The peer's address as given to [`connect`](Self::connect).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Hands out the next correlation id (ids start at 1 and wrap).
    pub fn take_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        id
    }

    /// Sends a typed request at `version` and decodes the typed response.
    pub async fn request<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ConnectionError> {
        let api = ApiKey::try_from(R::KEY).map_err(|()| ConnectionError::UnknownApiKey(R::KEY))?;
        let mut body = self.round_trip(api, version, request).await?;
        R::Response::decode(&mut body, version).map_err(|e| self.decode_error(api, version, e))
    }

    /// Sends `request` as API `api` at `version` and returns the response body, its header
    /// checked and removed, for callers that decode it themselves (at another version, as
    /// ApiVersions fallbacks do, or checking for trailing bytes).
    pub async fn round_trip<B: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &B,
    ) -> Result<Bytes, ConnectionError> {
        let correlation_id = self.take_correlation_id();
        let frame = super::encode_request(api, version, correlation_id, self.client_id, request)
            .map_err(|reason| ConnectionError::Encode {
                api,
                version,
                reason,
            })?;
        self.write_raw(&frame).await?;
        let Some(mut body) = self.read_frame().await? else {
            return Err(self.io_error(std::io::ErrorKind::UnexpectedEof.into()));
        };
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .map_err(|e| self.decode_error(api, version, e))?;
        if header.correlation_id != correlation_id {
            return Err(ConnectionError::CorrelationMismatch {
                addr: self.addr.clone(),
                api,
                expected: correlation_id,
                got: header.correlation_id,
            });
        }
        Ok(body)
    }

    /// Writes `bytes` exactly as given (no length prefix added).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ConnectionError> {
        let stream = self.stream.get_mut();
        let written = match stream.write_all(bytes).await {
            Ok(()) => stream.flush().await,
            Err(e) => Err(e),
        };
        written.map_err(|e| self.io_error(e))
    }

    /// Writes one frame: the length prefix, then `payload`.
    pub async fn write_frame(&mut self, payload: &[u8]) -> Result<(), ConnectionError> {
        let len = i32::try_from(payload.len()).map_err(|_| {
            self.io_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes is too large for an i32 length",
                    payload.len()
                ),
            ))
        })?;
        let mut buf = Vec::with_capacity(payload.len() + 4);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(payload);
        self.write_raw(&buf).await
    }

    /// Reads one frame and returns its payload (without the length prefix); `None` when the
    /// peer closed the connection cleanly before a new frame began.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, ConnectionError> {
        let len = match self.stream.read_i32().await {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(self.io_error(e)),
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= self.max_frame_bytes)
            .ok_or_else(|| ConnectionError::BadLength {
                addr: self.addr.clone(),
                len,
                max: self.max_frame_bytes,
            })?;
        match read_frame_body(&mut self.stream, len).await {
            Ok(frame) => Ok(Some(frame)),
            Err(e) => Err(self.io_error(e)),
        }
    }

    /// Reads until the peer closes the connection (end of file or a reset), appending every
    /// byte received to `received` as it arrives, for tests that expect the broker to hang up.
    /// Cancel-safe in that sense: a caller that stops waiting (a timeout) still has, in
    /// `received`, what came before it gave up.
    pub async fn read_until_closed(
        &mut self,
        received: &mut Vec<u8>,
    ) -> Result<(), ConnectionError> {
        match self.stream.read_to_end(received).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(self.io_error(e)),
        }
    }

    fn io_error(&self, source: std::io::Error) -> ConnectionError {
        ConnectionError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn decode_error(&self, api: ApiKey, version: i16, e: impl ToString) -> ConnectionError {
        ConnectionError::Decode {
            addr: self.addr.clone(),
            api,
            version,
            reason: e.to_string(),
        }
    }
}

/// Reads the `len` bytes of a frame whose length prefix the caller has read and checked; an
/// end of file before the last byte is `UnexpectedEof`. Shared by [`Connection`] and the
/// server's request reader, so both read frames the same way.
pub(crate) async fn read_frame_body<R: AsyncRead + Unpin>(
    rd: &mut R,
    len: usize,
) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(len);
    let mut take = rd.take(len as u64);
    while buf.len() < len {
        if take.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection peer that answers the first frame with `reply(correlation_id)`.
    async fn peer(reply: impl FnOnce(i32) -> Vec<u8> + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let len = s.read_i32().await.unwrap();
            let frame = read_frame_body(&mut s, usize::try_from(len).unwrap())
                .await
                .unwrap();
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            s.write_all(&reply(correlation_id)).await.unwrap();
            // Hold the socket until the client is done with it.
            let _ = s.read_u8().await;
        });
        addr
    }

    #[tokio::test]
    async fn typed_round_trip_checks_the_correlation_id() {
        // The peer answers with the request's correlation id plus `skew`.
        for skew in [0, 1] {
            let addr = peer(move |id| {
                let resp = ApiVersionsResponse::default();
                super::super::encode_response(ApiKey::ApiVersions, 3, id + skew, &resp)
                    .unwrap()
                    .to_vec()
            })
            .await;
            let mut c = Connection::connect(&addr, Duration::from_secs(5))
                .await
                .unwrap();
            let resp = c.request(3, &ApiVersionsRequest::default()).await;
            if skew == 0 {
                assert_eq!(resp.unwrap().error_code, 0);
            } else {
                assert!(
                    matches!(resp, Err(ConnectionError::CorrelationMismatch { .. })),
                    "{resp:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn oversized_and_negative_lengths_are_refused() {
        for len in [-1_i32, 1025] {
            let addr = peer(move |_| len.to_be_bytes().to_vec()).await;
            let mut c = Connection::connect(&addr, Duration::from_secs(5))
                .await
                .unwrap()
                .with_max_frame_bytes(1024);
            let err = c.request(3, &ApiVersionsRequest::default()).await;
            assert!(
                matches!(err, Err(ConnectionError::BadLength { len: l, .. }) if l == len),
                "{err:?}"
            );
        }
    }
}
