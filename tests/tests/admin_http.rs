//! The admin HTTP endpoint's protections: HTTPS with the node's certificate (`--http-tls`,
//! rotated without a restart like the Kafka listeners') and a bearer token required on every
//! endpoint except `/health` (`--http-bearer-token-file`), checked with a Rust HTTPS client
//! (rustls) that trusts only the test's CA.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Result, ensure};
use tierlog_tests::http;
use tierlog_tests::tls::Pki;
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::{NodeOptions, TestNode};

const TOKEN: &str = "admin-token-7f3a9c";

#[test]
fn https_admin_endpoint_requires_the_bearer_token_except_for_health() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    // No TLS Kafka listener: the certificate serves the admin endpoint only.
    let node = TestNode::start(
        NodeOptions::default()
            .args(pki.node_args())
            .args(["--ssl-reload-interval", "200ms"])
            .http_tls(&pki.ca_file())
            .http_bearer_token(TOKEN),
    )?;
    // The harness became ready through HTTPS; /health needs no token.
    let health = node.http_get("/health", &[])?;
    ensure!(health.status == 200, "GET /health -> {}", health.status);

    let unauthorized = [
        ("no header", vec![]),
        ("a wrong token", vec![("Authorization", "Bearer wrong")]),
        (
            "the token with a suffix",
            vec![("Authorization", "Bearer admin-token-7f3a9cX")],
        ),
        ("an empty token", vec![("Authorization", "Bearer ")]),
        (
            "another scheme",
            vec![("Authorization", "Basic YWRtaW46eA==")],
        ),
    ];
    for (what, headers) in &unauthorized {
        let r = node.http_get("/metrics", headers)?;
        ensure!(r.status == 401, "GET /metrics with {what} -> {}", r.status);
        ensure!(
            r.header("www-authenticate") == Some("Bearer"),
            "401 without WWW-Authenticate: {:?}",
            r.headers
        );
        ensure!(
            !r.text().contains("tierlog_"),
            "a 401 leaked metrics: {}",
            r.text()
        );
    }
    // The scheme is case-insensitive (RFC 7235).
    let r = node.http_get("/metrics", &[("Authorization", &format!("bearer {TOKEN}"))])?;
    ensure!(r.status == 200, "lowercase scheme -> {}", r.status);
    // The harness sends the token.
    let m = node.metrics()?;
    ensure!(m.counter("tierlog_requests_total") >= 0.0);
    ensure!(
        node.metrics_text()?
            .contains("# TYPE tierlog_requests_total counter")
    );

    // Plain HTTP to the HTTPS port gets no answer, and counts as a failed handshake.
    let failures_before = m.counter("tierlog_tls_handshake_failures_total");
    let plain = http::get(node.http_addr(), "/health", Duration::from_secs(5));
    ensure!(
        plain.as_ref().map_or(true, |r| r.status != 200),
        "plain HTTP was answered: {:?}",
        plain.map(|r| r.status)
    );
    // A client that trusts another CA refuses the node's certificate.
    let other = Pki::new("another CA")?;
    let foreign = http::request_tls(
        node.http_addr(),
        &other.ca_file(),
        "GET",
        "/health",
        &[],
        &[],
        Duration::from_secs(5),
    );
    ensure!(
        foreign.is_err(),
        "a certificate of an unknown CA was trusted"
    );
    let failures = node
        .metrics()?
        .counter("tierlog_tls_handshake_failures_total");
    ensure!(
        failures >= failures_before + 2.0,
        "failed admin handshakes counted: {failures_before} -> {failures}"
    );

    // A rotated certificate is served without a restart.
    other.issue_server(&pki.server_cert(), &pki.server_key())?;
    wait_for(
        "the admin endpoint to serve the rotated certificate",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || match http::request_tls(
            node.http_addr(),
            &other.ca_file(),
            "GET",
            "/health",
            &[],
            &[],
            Duration::from_secs(5),
        ) {
            Ok(r) if r.status == 200 => Ok(Poll::Ready(())),
            Ok(r) => Ok(Poll::Pending(format!("status {}", r.status))),
            Err(e) => Ok(Poll::Pending(format!("{e:#}"))),
        },
    )?;
    Ok(())
}

#[test]
fn a_bearer_token_protects_plain_http_too() -> Result<()> {
    let node = TestNode::start(NodeOptions::default().http_bearer_token(TOKEN))?;
    ensure!(node.health_status()? == 200);
    let r = node.http_get("/metrics", &[])?;
    ensure!(
        r.status == 401,
        "GET /metrics without the token -> {}",
        r.status
    );
    let r = node.http_get("/metrics", &[("Authorization", &format!("Bearer {TOKEN}"))])?;
    ensure!(
        r.status == 200,
        "GET /metrics with the token -> {}",
        r.status
    );
    ensure!(r.text().contains("tierlog_requests_total"));
    Ok(())
}

#[test]
fn https_without_a_certificate_or_with_an_empty_token_does_not_start() -> Result<()> {
    let err = TestNode::start(NodeOptions::default().args(["--http-tls"]))
        .err()
        .map(|e| format!("{e:#}"));
    ensure!(
        err.as_deref().is_some_and(|e| e.contains("http_tls")),
        "--http-tls without a certificate: {err:?}"
    );
    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n")?;
    let err = TestNode::start(
        NodeOptions::default().args(["--http-bearer-token-file", empty.to_str().unwrap()]),
    )
    .err()
    .map(|e| format!("{e:#}"));
    ensure!(
        err.as_deref()
            .is_some_and(|e| e.contains("http_bearer_token_file")),
        "an empty token file: {err:?}"
    );
    Ok(())
}
