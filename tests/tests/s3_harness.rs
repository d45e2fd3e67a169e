//! The S3 test server itself: `moto_server` starts, speaks path-style S3 to unsigned requests,
//! keeps its objects across a SIGSTOP/SIGCONT outage, and answers nothing while stopped. The
//! tiered-storage tests rely on each of these.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tierlog_tests::MotoServer;
use tierlog_tests::http;

#[test]
fn moto_serves_path_style_s3_and_survives_an_outage() {
    let Some(mut moto) = MotoServer::start_or_skip("moto_serves_path_style_s3").unwrap() else {
        return;
    };
    moto.create_bucket("harness").unwrap();
    assert!(moto.list_objects("harness", "").unwrap().is_empty());

    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    moto.put_object(
        "harness",
        "p/topics/t-1/0/00000000000000000000-e0-x.log",
        &bytes,
    )
    .unwrap();
    moto.put_object(
        "harness",
        "p/topics/t-1/0/00000000000000000000-e0-x.index",
        b"idx",
    )
    .unwrap();
    moto.put_object("harness", "other/key", b"elsewhere")
        .unwrap();

    let listed = moto.list_objects("harness", "p/").unwrap();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "p/topics/t-1/0/00000000000000000000-e0-x.index",
            "p/topics/t-1/0/00000000000000000000-e0-x.log"
        ]
    );
    assert_eq!(listed[1].size, 70_000);
    // Binary bytes round-trip exactly (the harness corrupts objects by rewriting them).
    let key = "p/topics/t-1/0/00000000000000000000-e0-x.log";
    assert_eq!(moto.get_object("harness", key).unwrap(), bytes);

    // Create-only puts are what the broker relies on for fencing: moto refuses a second one.
    let r = http::request(
        moto.addr(),
        "PUT",
        &format!("/harness/{key}"),
        &[
            ("If-None-Match", "*"),
            ("Content-Type", "application/octet-stream"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=t/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
        ],
        b"overwrite",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(
        r.status,
        412,
        "conditional put over an existing key: {}",
        r.text()
    );
    // Ranged reads, as the tiered read path issues them.
    let r = http::request(
        moto.addr(),
        "GET",
        &format!("/harness/{key}"),
        &[
            ("Range", "bytes=256-259"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=t/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
        ],
        b"",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (206, &[0u8, 1, 2, 3][..]));

    // Outage: a stopped server accepts connections (the kernel does) but never answers.
    moto.stop().unwrap();
    assert!(moto.is_stopped());
    let during = http::get(
        moto.addr(),
        "/harness?list-type=2",
        Duration::from_millis(500),
    );
    assert!(
        during.is_err(),
        "a stopped moto answered: {:?}",
        during.map(|r| r.status)
    );
    moto.cont().unwrap();
    assert_eq!(moto.get_object("harness", key).unwrap(), bytes);

    moto.delete_object("harness", "other/key").unwrap();
    assert!(!moto.object_exists("harness", "other/key").unwrap());
    assert!(moto.object_exists("harness", key).unwrap());
}
