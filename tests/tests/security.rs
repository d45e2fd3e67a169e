//! Listeners, TLS and SASL against clients we did not write: librdkafka (and the Java client)
//! over SSL, SASL_SSL and SASL_PLAINTEXT with PLAIN and both SCRAM hashes, mutual TLS,
//! certificate rotation without a restart, KIP-368 re-authentication, and bad input on the
//! SASL path (requests before authentication, wrong proofs, fuzzed frames).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tierlog_tests::clients::{CLIENT_TIMEOUT, consume_exactly, consumer, create_topic, producer};
use tierlog_tests::tls::Pki;
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::Conn;
use tierlog_tests::{NodeOptions, TestNode};

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-secret";

/// A node with SSL (client certificates requested), SASL_SSL and SASL_PLAINTEXT listeners
/// beside the PLAINTEXT one, and the bootstrap administrator `admin`. ACLs are left open
/// (allow.everyone.if.no.acl.found) here: these tests are about authentication; the
/// authorization of the principals it yields is tested below.
fn secure_node(pki: &Pki, extra: &[&str]) -> Result<TestNode> {
    let dir = tempfile::tempdir()?;
    let password_file = dir.path().join("admin-password");
    std::fs::write(&password_file, format!("{ADMIN_PASSWORD}\n"))?;
    let node = TestNode::start(
        NodeOptions::default()
            .listener("SSL", "SSL")
            .listener("SASL_SSL", "SASL_SSL")
            .listener("SASL_PLAINTEXT", "SASL_PLAINTEXT")
            .args(pki.node_args())
            .args(["--ssl-client-auth", "requested"])
            .args(["--allow-everyone-if-no-acl-found", "true"])
            .args([
                "--sasl-bootstrap-user",
                ADMIN,
                "--sasl-bootstrap-password-file",
                password_file.to_str().unwrap(),
            ])
            .args(extra.iter().copied()),
    )?;
    Ok(node)
}

fn sasl(mechanism: &str, user: &str, password: &str) -> Vec<(String, String)> {
    vec![
        ("sasl.mechanism".into(), mechanism.into()),
        ("sasl.username".into(), user.into()),
        ("sasl.password".into(), password.into()),
    ]
}

fn borrowed(props: &[(String, String)]) -> Vec<(&str, &str)> {
    props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Produces `n` records to `topic` partition 0 through `bootstrap` with `props`, then reads
/// them back through the same listener.
async fn roundtrip(
    bootstrap: &str,
    props: &[(String, String)],
    topic: &str,
    n: usize,
) -> Result<()> {
    let props = borrowed(props);
    let producer: FutureProducer = producer(bootstrap, &props)?;
    for i in 0..n {
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(0)
                    .key(&format!("k{i}"))
                    .payload(&format!("v{i}")),
                CLIENT_TIMEOUT,
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce via {bootstrap}: {e}"))?;
    }
    let consumer: BaseConsumer = consumer(bootstrap, &props)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let got = consume_exactly(&consumer, n, Duration::from_secs(30))?;
    for (i, m) in got.iter().enumerate() {
        ensure!(
            m.payload() == Some(format!("v{i}").as_bytes()),
            "record {i} via {bootstrap} is {:?}",
            m.payload().map(String::from_utf8_lossy)
        );
    }
    Ok(())
}

/// Whether a client with `props` can read cluster metadata through `bootstrap`.
fn metadata_ok(bootstrap: &str, props: &[(String, String)]) -> Result<(), String> {
    let mut cfg = rdkafka::ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in props {
        cfg.set(k, v);
    }
    let p: rdkafka::producer::BaseProducer = cfg.create().map_err(|e| e.to_string())?;
    p.client()
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_serves_librdkafka_with_each_mechanism() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let node = secure_node(&pki, &[])?;
    let ca = pki.ca_file().display().to_string();
    let ssl = vec![
        ("security.protocol".to_owned(), "SSL".to_owned()),
        ("ssl.ca.location".to_owned(), ca.clone()),
    ];
    type Props = Vec<(String, String)>;
    let cases: Vec<(&str, &str, Props)> = vec![
        ("ssl", "SSL", ssl.clone()),
        ("sasl-ssl-scram-256", "SASL_SSL", {
            let mut p = sasl("SCRAM-SHA-256", ADMIN, ADMIN_PASSWORD);
            p.push(("security.protocol".into(), "SASL_SSL".into()));
            p.push(("ssl.ca.location".into(), ca.clone()));
            p
        }),
        ("sasl-ssl-scram-512", "SASL_SSL", {
            let mut p = sasl("SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD);
            p.push(("security.protocol".into(), "SASL_SSL".into()));
            p.push(("ssl.ca.location".into(), ca.clone()));
            p
        }),
        ("sasl-ssl-plain", "SASL_SSL", {
            let mut p = sasl("PLAIN", ADMIN, ADMIN_PASSWORD);
            p.push(("security.protocol".into(), "SASL_SSL".into()));
            p.push(("ssl.ca.location".into(), ca.clone()));
            p
        }),
        ("sasl-plaintext-scram-512", "SASL_PLAINTEXT", {
            let mut p = sasl("SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD);
            p.push(("security.protocol".into(), "SASL_PLAINTEXT".into()));
            p
        }),
    ];
    for (topic, listener, props) in cases {
        create_topic(&node.bootstrap(), topic, 1, &[]).await?;
        // The client bootstraps on the secure listener and must be sent to the same listener
        // by Metadata (a PLAINTEXT address would fail its handshake).
        roundtrip(&node.listener(listener), &props, topic, 50)
            .await
            .with_context(|| format!("{topic} via {listener}"))?;
    }
    let m = node.metrics()?;
    ensure!(
        m.counter("tierlog_sasl_authentications_total") >= 8.0,
        "SASL authentications not counted: {}",
        m.counter("tierlog_sasl_authentications_total")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_and_counted() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let node = secure_node(&pki, &[])?;
    let addr = node.listener("SASL_PLAINTEXT");
    let attempts = [
        ("SCRAM-SHA-256", ADMIN, "wrong"),
        ("SCRAM-SHA-512", ADMIN, "wrong"),
        ("PLAIN", ADMIN, "wrong"),
        ("SCRAM-SHA-512", "nobody", ADMIN_PASSWORD),
        ("PLAIN", "nobody", ADMIN_PASSWORD),
    ];
    for (mechanism, user, password) in attempts {
        let mut props = sasl(mechanism, user, password);
        props.push(("security.protocol".into(), "SASL_PLAINTEXT".into()));
        let result = tokio::task::spawn_blocking({
            let addr = addr.clone();
            move || metadata_ok(&addr, &props)
        })
        .await?;
        ensure!(
            result.is_err(),
            "{mechanism} as {user} with a wrong password was let in"
        );
    }
    let failures = node
        .metrics()?
        .counter("tierlog_sasl_authentication_failures_total");
    ensure!(
        failures >= attempts.len() as f64,
        "{failures} failures counted for {} refused logins",
        attempts.len()
    );
    // The right password still works afterwards.
    let mut props = sasl("SCRAM-SHA-256", ADMIN, ADMIN_PASSWORD);
    props.push(("security.protocol".into(), "SASL_PLAINTEXT".into()));
    tokio::task::spawn_blocking(move || metadata_ok(&addr, &props))
        .await?
        .map_err(|e| anyhow::anyhow!("the right password was refused: {e}"))?;
    Ok(())
}

/// A SCRAM client-final message whose proof is wrong must be refused: the server may not
/// accept a proof it did not check.
#[test]
fn a_forged_scram_proof_is_refused_on_the_wire() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let node = secure_node(&pki, &[])?;
    let addr = node.listener("SASL_PLAINTEXT").parse()?;
    let mut c = Conn::connect(addr)?;
    let hs = c.request(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256")),
        1,
    )?;
    ensure!(hs.error_code == 0, "handshake: {}", hs.error_code);
    let first = c.request(
        &SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(b"n,,n=admin,r=clientnonce123")),
        2,
    )?;
    ensure!(first.error_code == 0, "client-first: {}", first.error_code);
    let server_first = String::from_utf8(first.auth_bytes.to_vec())?;
    let nonce = server_first
        .split(',')
        .find_map(|a| a.strip_prefix("r="))
        .context("no nonce in server-first")?;
    // A syntactically valid client-final with a made-up proof.
    let forged = format!(
        "c=biws,r={nonce},p={}",
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    );
    let last = c.request(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(forged)),
        2,
    )?;
    ensure!(
        last.error_code == 58,
        "a forged proof got error {} (expected SASL_AUTHENTICATION_FAILED)",
        last.error_code
    );
    c.expect_closed(Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn sasl_listeners_refuse_requests_before_authentication_and_survive_garbage() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let node = secure_node(&pki, &[])?;
    let addr = node.listener("SASL_PLAINTEXT").parse()?;

    // Metadata before authenticating: the connection is closed, nothing answered.
    let mut c = Conn::connect(addr)?;
    c.send_frame(&tierlog_tests::wire::metadata_frame())?;
    let got = c.expect_closed(Duration::from_secs(5))?;
    ensure!(
        got.is_empty(),
        "answered {} bytes before authentication",
        got.len()
    );

    // ApiVersions is allowed first; an unknown mechanism is answered, then closed.
    let mut c = Conn::connect(addr)?;
    c.api_versions(3)?;
    let hs = c.request(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
        1,
    )?;
    ensure!(hs.error_code == 33, "GSSAPI: error {}", hs.error_code);
    ensure!(
        hs.mechanisms.iter().any(|m| m.as_str() == "SCRAM-SHA-512"),
        "mechanisms listed: {:?}",
        hs.mechanisms
    );
    c.expect_closed(Duration::from_secs(5))?;

    // Fuzzed SaslAuthenticate payloads for every mechanism: an error and a closed connection
    // each time, never a crash.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        for round in 0..40 {
            let mut c = Conn::connect(addr)?;
            let hs = c.request(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(mechanism.to_owned())),
                1,
            )?;
            ensure!(
                hs.error_code == 0,
                "{mechanism}: handshake {}",
                hs.error_code
            );
            let len = (round * 7) % 300;
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed & 0xff) as u8
                })
                .collect();
            let resp = c.request(
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(garbage)),
                2,
            );
            if let Ok(r) = resp {
                if r.error_code == 0 {
                    // A SCRAM client-first can be valid by chance only if it parses; garbage
                    // never does, but the next message must then fail.
                    bail!("{mechanism} round {round}: garbage was accepted");
                }
                ensure!(r.error_code == 58, "{mechanism}: error {}", r.error_code);
            }
            c.expect_closed(Duration::from_secs(5))?;
        }
    }
    // A SaslAuthenticate without a handshake on a PLAINTEXT listener: ILLEGAL_SASL_STATE.
    let mut c = Conn::connect(node.kafka_addr())?;
    let r = c.request(&SaslAuthenticateRequest::default(), 2)?;
    ensure!(
        r.error_code == 34,
        "PLAINTEXT SaslAuthenticate: {}",
        r.error_code
    );
    // The node is unharmed: a real client still authenticates.
    let mut props = sasl("SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD);
    props.push(("security.protocol".into(), "SASL_PLAINTEXT".into()));
    metadata_ok(&node.listener("SASL_PLAINTEXT"), &props)
        .map_err(|e| anyhow::anyhow!("after the fuzzing: {e}"))?;
    Ok(())
}

#[test]
fn client_certificates_are_required_when_configured() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let node = TestNode::start(
        NodeOptions::default()
            .listener("SSL", "SSL")
            .args(pki.node_args())
            .args(["--ssl-client-auth", "required"]),
    )?;
    let (cert, key) = pki.client("alice", "eng")?;
    let ca = pki.ca_file().display().to_string();
    let without = vec![
        ("security.protocol".to_owned(), "SSL".to_owned()),
        ("ssl.ca.location".to_owned(), ca.clone()),
    ];
    ensure!(
        metadata_ok(&node.listener("SSL"), &without).is_err(),
        "a client without a certificate was let in"
    );
    let mut with = without.clone();
    with.push((
        "ssl.certificate.location".into(),
        cert.display().to_string(),
    ));
    with.push(("ssl.key.location".into(), key.display().to_string()));
    metadata_ok(&node.listener("SSL"), &with)
        .map_err(|e| anyhow::anyhow!("a client with a certificate: {e}"))?;
    // A certificate from another CA is refused.
    let other = Pki::new("another CA")?;
    let (cert, key) = other.client("mallory", "eng")?;
    let mut foreign = without.clone();
    foreign.push((
        "ssl.certificate.location".into(),
        cert.display().to_string(),
    ));
    foreign.push(("ssl.key.location".into(), key.display().to_string()));
    ensure!(
        metadata_ok(&node.listener("SSL"), &foreign).is_err(),
        "a certificate of an unknown CA was let in"
    );
    ensure!(
        node.metrics()?
            .counter("tierlog_tls_handshake_failures_total")
            >= 2.0
    );
    Ok(())
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart() -> Result<()> {
    let pki = Pki::new("first CA")?;
    let mut node = TestNode::start(
        NodeOptions::default()
            .listener("SSL", "SSL")
            .args(pki.node_args())
            .args(["--ssl-reload-interval", "200ms"]),
    )?;
    let next = Pki::new("second CA")?;
    let trusting = |p: &Pki| {
        vec![
            ("security.protocol".to_owned(), "SSL".to_owned()),
            (
                "ssl.ca.location".to_owned(),
                p.ca_file().display().to_string(),
            ),
        ]
    };
    let addr = node.listener("SSL");
    metadata_ok(&addr, &trusting(&pki)).map_err(|e| anyhow::anyhow!("before: {e}"))?;
    ensure!(
        metadata_ok(&addr, &trusting(&next)).is_err(),
        "trusted an unrelated CA"
    );
    // Replace the node's certificate and key in place with ones the second CA signed.
    next.issue_server(&pki.server_cert(), &pki.server_key())?;
    let started = Instant::now();
    wait_for(
        "the node to serve the rotated certificate",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || match metadata_ok(&addr, &trusting(&next)) {
            Ok(()) => Ok(Poll::Ready(())),
            Err(e) => Ok(Poll::Pending(e)),
        },
    )?;
    ensure!(
        metadata_ok(&addr, &trusting(&pki)).is_err(),
        "the old certificate is still served after the rotation"
    );
    ensure!(node.is_running(), "the node restarted");
    eprintln!("rotation picked up after {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_reauthenticate_and_expired_ones_are_closed() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let node = secure_node(&pki, &["--connections-max-reauth", "1s"])?;
    let addr = node.listener("SASL_PLAINTEXT");
    create_topic(&node.bootstrap(), "reauth", 1, &[]).await?;
    let mut props = sasl("SCRAM-SHA-512", ADMIN, ADMIN_PASSWORD);
    props.push(("security.protocol".into(), "SASL_PLAINTEXT".into()));
    // librdkafka re-authenticates before each session ends; a producer that keeps working for
    // several session lifetimes must never be cut off.
    let p: FutureProducer = producer(&addr, &borrowed(&props))?;
    let until = Instant::now() + Duration::from_secs(4);
    let mut sent = 0;
    while Instant::now() < until {
        p.send(
            FutureRecord::to("reauth")
                .partition(0)
                .key("k")
                .payload("v"),
            CLIENT_TIMEOUT,
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("produce {sent} during re-authentication: {e}"))?;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = node.metrics()?;
    ensure!(
        m.counter("tierlog_reauthentications_total") >= 1.0,
        "no re-authentication in 4 s with a 1 s session lifetime"
    );

    // A raw client that authenticates and then outlives its session is closed at its next
    // request.
    let sock = addr.parse()?;
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut c = Conn::connect(sock)?;
        let auth =
            c.sasl_authenticate("PLAIN", format!("\0{ADMIN}\0{ADMIN_PASSWORD}").into_bytes())?;
        ensure!(auth.error_code == 0, "PLAIN: {}", auth.error_code);
        ensure!(
            (1..=1000).contains(&auth.session_lifetime_ms),
            "session lifetime {} ms",
            auth.session_lifetime_ms
        );
        std::thread::sleep(Duration::from_millis(1200));
        c.send_frame(&tierlog_tests::wire::metadata_frame())?;
        let got = c.expect_closed(Duration::from_secs(5))?;
        ensure!(got.is_empty(), "an expired session was answered");
        Ok(())
    })
    .await??;
    ensure!(
        node.metrics()?
            .counter("tierlog_expired_sessions_closed_total")
            >= 1.0
    );
    Ok(())
}

#[test]
fn the_java_client_works_over_sasl_ssl_and_mutual_tls() -> Result<()> {
    if !tierlog_tests::kafka::require_kafka("the_java_client_works_over_sasl_ssl_and_mutual_tls")? {
        return Ok(());
    }
    let pki = Pki::new("tierlog test CA")?;
    let node = secure_node(&pki, &[])?;
    let ca = pki.ca_file().display().to_string();
    let (cert, key) = pki.client("java-client", "eng")?;
    // The Java client reads PEM trust and key stores (KIP-651); a PEM key store takes the
    // certificate chain and the key in one file.
    let keystore = pki.ca_file().with_file_name("java-client-keystore.pem");
    std::fs::write(
        &keystore,
        format!(
            "{}{}",
            std::fs::read_to_string(&key)?,
            std::fs::read_to_string(&cert)?
        ),
    )?;
    let scram = [
        "security.protocol=SASL_SSL".to_owned(),
        "sasl.mechanism=SCRAM-SHA-512".to_owned(),
        format!(
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"{ADMIN}\" password=\"{ADMIN_PASSWORD}\";"
        ),
        "ssl.truststore.type=PEM".to_owned(),
        format!("ssl.truststore.location={ca}"),
    ];
    let mtls = [
        "security.protocol=SSL".to_owned(),
        "ssl.truststore.type=PEM".to_owned(),
        format!("ssl.truststore.location={ca}"),
        "ssl.keystore.type=PEM".to_owned(),
        format!("ssl.keystore.location={}", keystore.display()),
    ];
    for (topic, listener, props) in [
        ("java-sasl-ssl", "SASL_SSL", &scram),
        ("java-mtls", "SSL", &mtls),
    ] {
        let mut args: Vec<String> = Vec::new();
        for kind in ["--producer-prop", "--consumer-prop", "--admin-prop"] {
            for p in props.iter() {
                args.push(kind.to_owned());
                args.push(p.clone());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let outcome = tierlog_tests::programs::java_client_check(
            &tierlog_tests::kafka::Listener(node.listener(listener)),
            topic,
            &args,
            Duration::from_secs(90),
        )?;
        outcome
            .expect_passed(&format!("the Java client over {listener}"))
            .map_err(|e| anyhow::anyhow!("{e:#}\n{}", outcome.describe()))?;
    }
    Ok(())
}

/// Three nodes whose inter-broker listener is SASL_SSL (SCRAM-SHA-512 over TLS): followers
/// replicate through it, so the ISR fills, and after the leader is killed the new leader
/// serves every acknowledged record. Clients use the PLAINTEXT listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_runs_over_a_sasl_ssl_inter_broker_listener() -> Result<()> {
    use tierlog_tests::cluster::{ClusterOptions, TestCluster};
    use tierlog_tests::workload::{check_consumed, consume_timeout, produce_all, records};

    let test = "replication_runs_over_a_sasl_ssl_inter_broker_listener";
    let pki = Pki::new("cluster CA")?;
    let dir = tempfile::tempdir()?;
    let password_file = dir.path().join("admin-password");
    std::fs::write(&password_file, format!("{ADMIN_PASSWORD}\n"))?;
    let password_file = password_file.display().to_string();
    let node = NodeOptions::default()
        .listener("INTERNAL", "SASL_SSL")
        .args(pki.node_args())
        .args(["--inter-broker-listener-name", "INTERNAL"])
        // Followers fetch as `admin` (CLUSTER_ACTION); clients use PLAINTEXT, left open.
        .args(["--super-users", "User:admin"])
        .args(["--allow-everyone-if-no-acl-found", "true"])
        .args(["--sasl-bootstrap-user", ADMIN])
        .args(["--sasl-bootstrap-password-file", &password_file])
        .args(["--inter-broker-sasl-username", ADMIN])
        .args(["--inter-broker-sasl-password-file", &password_file])
        .args(["--inter-broker-sasl-mechanism", "SCRAM-SHA-512"]);
    let opts = ClusterOptions {
        node,
        ..ClusterOptions::default()
    };
    let Some(mut c) = TestCluster::start_or_skip(test, opts)? else {
        return Ok(());
    };
    c.wait_brokers(3)?;
    let topic = "over-sasl-ssl";
    c.create_topic(topic, 1, 3, &[]).await?;
    c.wait_topic_full(topic, 1, 3)?;
    let data = records(500, topic);
    let p = producer(&c.bootstrap(), &[("message.timeout.ms", "60000")])?;
    let acks = produce_all(&p, topic, &data).await?;
    // Followers fetched everything over the SASL_SSL listener: the ISR is still full.
    c.wait_topic_full(topic, 1, 3)?;
    let leader = c.wait_leader(topic, 0)?;
    let authenticated: f64 = c
        .ids()
        .iter()
        .map(|id| {
            c.node(*id)
                .metrics()
                .map(|m| m.counter("tierlog_sasl_authentications_total"))
                .unwrap_or(0.0)
        })
        .sum();
    ensure!(
        authenticated >= 2.0,
        "followers did not authenticate to the leader ({authenticated} authentications)"
    );
    c.kill9(leader)?;
    c.wait_leader_not(topic, 0, leader)?;
    let consumer =
        tierlog_tests::clients::assigned_consumer(&c.bootstrap(), topic, 0..1, Offset::Beginning)?;
    let consumed = consume_exactly(&consumer, data.len(), consume_timeout(data.len()))?;
    check_consumed(&consumed, &data, &acks)?;
    Ok(())
}
