//! Malformed and hostile input over real sockets. Each case checks the broker's answer (a
//! closed connection or an exact error code, and nothing appended), then that the node still
//! serves: a connection opened before the bad input keeps working, a new one works, and a real
//! client can still produce.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::records::Compression;
use rdkafka::producer::FutureRecord;
use tierlog_tests::clients::{CLIENT_TIMEOUT, create_topic, producer};
use tierlog_tests::wire::{self, Conn};
use tierlog_tests::{NodeOptions, TestNode};

const MAX_FRAME: u64 = 1024 * 1024;
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

async fn start() -> (TestNode, Conn) {
    let node = TestNode::start(NodeOptions::default().max_frame_bytes(MAX_FRAME)).unwrap();
    create_topic(&node.bootstrap(), "healthy", 1, &[])
        .await
        .unwrap();
    let mut bystander = Conn::connect(node.kafka_addr()).unwrap();
    bystander.api_versions(3).unwrap();
    (node, bystander)
}

/// The node still answers: on the connection opened before the bad input, on a new one, and
/// to a real producer.
async fn assert_still_serves(node: &TestNode, bystander: &mut Conn, case: &str) {
    let r = bystander.api_versions(3).unwrap_or_else(|e| {
        panic!("after {case}: the bystander connection stopped working: {e:#}")
    });
    assert_eq!(r.error_code, 0, "after {case}");
    let mut fresh = Conn::connect(node.kafka_addr()).unwrap();
    assert_eq!(fresh.api_versions(3).unwrap().error_code, 0, "after {case}");
    let p = producer(&node.bootstrap(), &[("message.timeout.ms", "10000")]).unwrap();
    p.send(
        FutureRecord::to("healthy").key(case).payload("still-alive"),
        CLIENT_TIMEOUT,
    )
    .await
    .map_err(|(e, _)| e)
    .unwrap_or_else(|e| panic!("after {case}: produce failed: {e}"));
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failure is reproducible.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_close_the_connection() {
    let (node, mut bystander) = start().await;
    for seed in [1u64, 7, 42, 1234, 99_999] {
        // A well-formed length prefix around random bytes: the header/body cannot be parsed.
        let mut conn = Conn::connect(node.kafka_addr()).unwrap();
        let mut body = garbage(seed, 200);
        // Keep the API key out of the valid range so the bytes are garbage for any decoder.
        body[0] = 0x7f;
        conn.send_frame(&body).unwrap();
        conn.expect_closed(CLOSE_WITHIN)
            .unwrap_or_else(|e| panic!("garbage frame (seed {seed}): {e:#}"));
        assert_still_serves(&node, &mut bystander, &format!("garbage seed {seed}")).await;
    }
    // Raw random bytes with no sensible length prefix at all.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    conn.send_raw(&garbage(3, 64)).unwrap();
    conn.expect_closed(CLOSE_WITHIN)
        .unwrap_or_else(|e| panic!("random bytes: {e:#}"));
    assert_still_serves(&node, &mut bystander, "random bytes").await;
    // A negative length prefix.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    conn.send_raw(&(-5i32).to_be_bytes()).unwrap();
    conn.expect_closed(CLOSE_WITHIN)
        .unwrap_or_else(|e| panic!("negative length: {e:#}"));
    assert_still_serves(&node, &mut bystander, "negative length").await;
    // A frame too short to hold a request header.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    conn.send_frame(&[0, 18]).unwrap();
    conn.expect_closed(CLOSE_WITHIN)
        .unwrap_or_else(|e| panic!("truncated header: {e:#}"));
    assert_still_serves(&node, &mut bystander, "truncated header").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_the_connection() {
    let (node, mut bystander) = start().await;
    // Only the length prefix is sent: the broker must refuse before reading (or allocating)
    // the body.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let len = i32::try_from(MAX_FRAME + 1).unwrap();
    conn.send_raw(&len.to_be_bytes()).unwrap();
    conn.expect_closed(CLOSE_WITHIN)
        .unwrap_or_else(|e| panic!("oversized frame: {e:#}"));
    assert_still_serves(&node, &mut bystander, "oversized frame").await;
    // Far beyond any limit.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    conn.send_raw(&i32::MAX.to_be_bytes()).unwrap();
    conn.expect_closed(CLOSE_WITHIN)
        .unwrap_or_else(|e| panic!("i32::MAX frame: {e:#}"));
    assert_still_serves(&node, &mut bystander, "i32::MAX frame").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_key_closes_the_connection() {
    let (node, mut bystander) = start().await;
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let frame = wire::raw_header_v1(9999, 0, 77);
    conn.send_frame(&frame).unwrap();
    conn.expect_closed(CLOSE_WITHIN)
        .unwrap_or_else(|e| panic!("api key 9999: {e:#}"));
    assert_still_serves(&node, &mut bystander, "unknown api key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_api_versions_version_gets_v0_error_with_api_list() {
    let (node, mut bystander) = start().await;
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let frame = wire::raw_header_v1(18, 99, 4242);
    conn.send_frame(&frame).unwrap();
    let response = wire::parse_api_versions_v0(conn.read_frame().unwrap()).unwrap();
    assert_eq!(response.correlation_id, 4242);
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    let find = |key: i16| response.apis.iter().find(|(k, _, _)| *k == key).copied();
    let (_, min, max) = find(18).expect("ApiVersions missing from the list");
    assert!(min == 0 && max >= 3, "ApiVersions range {min}..={max}");
    for key in [0i16, 1, 2, 3] {
        assert!(
            find(key).is_some(),
            "api {key} missing from {:?}",
            response.apis
        );
    }
    // The connection stays usable: clients retry with a version from the list.
    let retry = conn.api_versions(max.min(3)).unwrap();
    assert_eq!(retry.error_code, 0);
    assert_still_serves(&node, &mut bystander, "ApiVersions v99").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_batch_crc_is_rejected_and_not_appended() {
    let (node, mut bystander) = start().await;
    create_topic(&node.bootstrap(), "crc", 1, &[])
        .await
        .unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();

    let good = |tag: &str| {
        let keys = [format!("{tag}-0"), format!("{tag}-1"), format!("{tag}-2")];
        let recs: Vec<_> = keys
            .iter()
            .map(|k| (Some(k.as_bytes()), Some(k.as_bytes())))
            .collect();
        wire::encode_batch(&recs, Compression::None, 1_700_000_000_000).unwrap()
    };
    let first = conn.produce("crc", 0, good("a"), -1).unwrap();
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    assert_eq!(conn.log_end_offset("crc", 0).unwrap(), 3);

    // The CRC field itself is wrong.
    let mut bad = BytesMut::from(&good("b")[..]);
    for i in wire::BATCH_CRC_RANGE {
        bad[i] ^= 0x5a;
    }
    let r = conn.produce("crc", 0, bad.freeze(), -1).unwrap();
    assert_eq!(r.error_code, 2, "CORRUPT_MESSAGE for a bad CRC field");
    assert_eq!(
        conn.log_end_offset("crc", 0).unwrap(),
        3,
        "corrupt batch appended"
    );

    // The CRC field is intact but a byte it covers changed (last byte of the last value).
    let mut bad = BytesMut::from(&good("c")[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let r = conn.produce("crc", 0, bad.freeze(), -1).unwrap();
    assert_eq!(r.error_code, 2, "CORRUPT_MESSAGE for a flipped payload bit");
    assert_eq!(
        conn.log_end_offset("crc", 0).unwrap(),
        3,
        "corrupt batch appended"
    );

    // Same connection, next good batch lands right after the first.
    let next = conn.produce("crc", 0, good("d"), -1).unwrap();
    assert_eq!((next.error_code, next.base_offset), (0, 3));
    let fetched = conn.fetch("crc", 0, 0, 0, 1).unwrap();
    let records = wire::decode_records(fetched.records.as_ref().unwrap()).unwrap();
    let keys: Vec<_> = records
        .iter()
        .map(|r| String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(keys, ["a-0", "a-1", "a-2", "d-0", "d-1", "d-2"]);
    let offsets: Vec<_> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);
    assert_still_serves(&node, &mut bystander, "corrupt CRC").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_above_max_message_bytes_is_rejected() {
    let (node, mut bystander) = start().await;
    create_topic(
        &node.bootstrap(),
        "small",
        1,
        &[("max.message.bytes", "1024")],
    )
    .await
    .unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let big = vec![b'x'; 4096];
    let batch = wire::encode_batch(&[(Some(b"k"), Some(&big))], Compression::None, 0).unwrap();
    assert!(batch.len() > 1024);
    let r = conn.produce("small", 0, batch, -1).unwrap();
    assert_eq!(r.error_code, 10, "MESSAGE_TOO_LARGE");
    assert_eq!(
        conn.log_end_offset("small", 0).unwrap(),
        0,
        "oversized batch appended"
    );

    let ok =
        wire::encode_batch(&[(Some(b"k"), Some(b"small enough"))], Compression::None, 0).unwrap();
    assert!(ok.len() <= 1024);
    let r = conn.produce("small", 0, ok, -1).unwrap();
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    assert_eq!(conn.log_end_offset("small", 0).unwrap(), 1);
    assert_still_serves(&node, &mut bystander, "MESSAGE_TOO_LARGE").await;
}

/// A request frame: header for `api_key`/`version` plus `body`, for tests that need a frame
/// with a valid header but a broken body.
fn frame_with_body(api_key: i16, version: i16, body: &[u8]) -> BytesMut {
    let mut frame = wire::raw_header_v1(api_key, version, 5);
    frame.put_slice(body);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_produce_body_closes_the_connection() {
    let (node, mut bystander) = start().await;
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    // Produce v8 header, then a body cut off inside the topic array.
    let frame = frame_with_body(
        0,
        8,
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30, 0, 0, 0, 1],
    );
    conn.send_frame(&frame).unwrap();
    conn.expect_closed(CLOSE_WITHIN)
        .unwrap_or_else(|e| panic!("truncated produce: {e:#}"));
    assert_still_serves(&node, &mut bystander, "truncated produce").await;
}
