//! Pure encode/decode of the Kafka wire format around the messages: frames, request headers,
//! response headers, and the table of API versions this node implements. No I/O here, except
//! in `connection`: the one client [`Connection`] (framing, correlation ids, size limit) that
//! the replica fetcher, the `tierlog` CLI and the tests share, and the frame-body read the
//! server uses too.

mod connection;
mod versions;

pub(crate) use connection::read_frame_body;
pub use connection::{Connection, ConnectionError};
pub(crate) use versions::{SUPPORTED_APIS, supported_range};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Why a frame could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// Shorter than the fixed part of a request header.
    #[error("frame too short: {0} bytes")]
    TooShort(usize),
    /// An API key that Kafka does not define, or that this node does not serve.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// A version outside the range this node advertises.
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    /// The header or body did not decode.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// A decoded request header plus the undecoded body.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) api_key: ApiKey,
    pub(crate) version: i16,
    pub(crate) header: RequestHeader,
    pub(crate) body: Bytes,
}

impl Request {
    /// The client id from the header ("" when the client sent none).
    pub(crate) fn client_id(&self) -> String {
        self.header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}

/// The fixed first eight bytes of every request: api key, version, correlation id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawHeader {
    pub(crate) api_key: i16,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
}

/// Reads the fixed part of a request header without consuming the frame.
pub(crate) fn peek_header(frame: &[u8]) -> Result<RawHeader, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let mut b = &frame[..8];
    Ok(RawHeader {
        api_key: b.get_i16(),
        version: b.get_i16(),
        correlation_id: b.get_i32(),
    })
}

/// Decodes the request header of a frame whose api key and version this node supports.
pub(crate) fn decode_request(mut frame: Bytes) -> Result<Request, FrameError> {
    let raw = peek_header(&frame)?;
    let api_key =
        ApiKey::try_from(raw.api_key).map_err(|()| FrameError::UnknownApiKey(raw.api_key))?;
    let Some(range) = supported_range(api_key) else {
        return Err(FrameError::UnknownApiKey(raw.api_key));
    };
    if raw.version < range.0 || raw.version > range.1 {
        return Err(FrameError::UnsupportedVersion {
            api: api_key,
            version: raw.version,
        });
    }
    let header_version = api_key.request_header_version(raw.version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| FrameError::Malformed {
            api: api_key,
            version: raw.version,
            reason: e.to_string(),
        })?;
    Ok(Request {
        api_key,
        version: raw.version,
        header,
        body: frame,
    })
}

/// Where a response goes: enough of the request to encode its response later.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyTo {
    pub(crate) api_key: ApiKey,
    pub(crate) version: i16,
    pub(crate) correlation_id: i32,
}

impl ReplyTo {
    pub(crate) fn of(req: &Request) -> ReplyTo {
        ReplyTo {
            api_key: req.api_key,
            version: req.version,
            correlation_id: req.header.correlation_id,
        }
    }
}

/// Decodes a request body of type `T` at `version`.
pub(crate) fn decode_body<T: Decodable>(req: &Request) -> Result<T, FrameError> {
    let mut body = req.body.clone();
    T::decode(&mut body, req.version).map_err(|e| FrameError::Malformed {
        api: req.api_key,
        version: req.version,
        reason: e.to_string(),
    })
}

/// Encodes a response as a complete frame: length prefix, response header, body.
pub(crate) fn encode_response<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, String> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| body.compute_size(version).map(|b| h + b))
        .map_err(|e| format!("sizing {api_key:?} v{version} response: {e}"))?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_u32(size as u32);
    header
        .encode(&mut buf, header_version)
        .and_then(|()| body.encode(&mut buf, version))
        .map_err(|e| format!("encoding {api_key:?} v{version} response: {e}"))?;
    Ok(buf.freeze())
}

/// Encodes one request frame (length prefix, header, body), for [`Connection`].
pub(crate) fn encode_request<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    body: &T,
) -> Result<Bytes, String> {
    let header = kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str(
            client_id,
        )));
    let mut buf = BytesMut::with_capacity(512);
    buf.put_i32(0); // length, patched below
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .and_then(|()| body.encode(&mut buf, version))
        .map_err(|e| format!("encoding {api_key:?} v{version} request: {e}"))?;
    let len = i32::try_from(buf.len() - 4)
        .map_err(|_| format!("{api_key:?} v{version} request too large"))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// `StrBytes` from a `&str`.
pub(crate) fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;

    fn frame(api: i16, version: i16, header_version: i16, body: &impl Encodable) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api)
            .with_request_api_version(version)
            .with_correlation_id(7);
        let mut buf = BytesMut::new();
        header.encode(&mut buf, header_version).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_supported_request() {
        let f = frame(18, 3, 2, &ApiVersionsRequest::default());
        let req = decode_request(f).unwrap();
        assert_eq!(req.api_key, ApiKey::ApiVersions);
        assert_eq!(req.header.correlation_id, 7);
        let _body: ApiVersionsRequest = decode_body(&req).unwrap();
    }

    #[test]
    fn rejects_unknown_key_and_version_and_short_frames() {
        let f = frame(18, 3, 2, &ApiVersionsRequest::default());
        let mut bad_key = BytesMut::from(&f[..]);
        bad_key[0..2].copy_from_slice(&9999i16.to_be_bytes());
        assert!(matches!(
            decode_request(bad_key.freeze()),
            Err(FrameError::UnknownApiKey(9999))
        ));
        let mut bad_version = BytesMut::from(&f[..]);
        bad_version[2..4].copy_from_slice(&99i16.to_be_bytes());
        assert!(matches!(
            decode_request(bad_version.freeze()),
            Err(FrameError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 1, 2])),
            Err(FrameError::TooShort(3))
        ));
    }

    #[test]
    fn truncated_body_is_malformed_not_a_panic() {
        let f = frame(18, 3, 2, &ApiVersionsRequest::default());
        for cut in 8..f.len() {
            if let Ok(req) = decode_request(f.slice(..cut)) {
                assert!(decode_body::<ApiVersionsRequest>(&req).is_err() || cut == f.len());
            }
        }
    }

    #[test]
    fn huge_array_counts_are_errors_not_aborts() {
        // Metadata v1 (header v1: key, version, correlation id, null client id) whose topic
        // array claims i32::MAX entries; unpatched kafka-protocol would try to allocate
        // ~150 GB here and abort the process.
        let mut f = BytesMut::new();
        f.put_i16(3);
        f.put_i16(1);
        f.put_i32(1);
        f.put_i16(-1);
        f.put_i32(i32::MAX);
        let req = decode_request(f.freeze()).unwrap();
        assert!(decode_body::<kafka_protocol::messages::MetadataRequest>(&req).is_err());
        // The same through a compact (flexible) array: Metadata v9, header v2.
        let mut f = BytesMut::new();
        f.put_i16(3);
        f.put_i16(9);
        f.put_i32(1);
        f.put_i16(-1);
        f.put_u8(0); // no tagged fields in the header
        f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // varint u32::MAX
        let req = decode_request(f.freeze()).unwrap();
        assert!(decode_body::<kafka_protocol::messages::MetadataRequest>(&req).is_err());
    }

    #[test]
    fn response_frame_has_length_prefix() {
        let resp = kafka_protocol::messages::ApiVersionsResponse::default();
        let f = encode_response(ApiKey::ApiVersions, 3, 42, &resp).unwrap();
        let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len + 4, f.len());
        assert_eq!(i32::from_be_bytes([f[4], f[5], f[6], f[7]]), 42);
    }
}
