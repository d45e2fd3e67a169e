//! SASL/OAUTHBEARER against clients we did not write: the test is its own identity provider (an
//! EC P-256 key, its JWK in a JWKS file the node reads, JWTs signed here), and librdkafka (a
//! token supplied through rust-rdkafka's refresh callback) and the Java client (a token read
//! from a `file://` token endpoint) produce and consume with it. Tokens that are expired, for
//! another audience or issuer, or signed by a key the JWKS does not hold are refused and
//! counted, and a session lasts no longer than its token (KIP-368), checked on the wire and
//! by librdkafka re-authenticating with fresh short-lived tokens.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kafka_protocol::messages::SaslAuthenticateRequest;
use rdkafka::client::OAuthToken;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use serde_json::json;
use tierlog_tests::clients::{CLIENT_TIMEOUT, create_topic};
use tierlog_tests::tls::Pki;
use tierlog_tests::wire::Conn;
use tierlog_tests::{NodeOptions, TestNode};

const ISSUER: &str = "https://idp.tierlog.test";
const AUDIENCE: &str = "tierlog";
const SUBJECT: &str = "alice";

/// Seconds since the epoch, as JWT claims count time.
fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A signing key of an identity provider.
struct Issuer {
    key: EncodingKey,
    kid: String,
}

impl Issuer {
    /// A fresh ES256 key named `kid`.
    fn new(kid: &str) -> Result<Issuer> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Ok(Issuer {
            key: EncodingKey::from_ec_der(&pair.serialize_der()),
            kid: kid.to_owned(),
        })
    }

    /// The public half, as a JWKS entry.
    fn jwk(&self) -> Result<Jwk> {
        let mut jwk = Jwk::from_encoding_key(&self.key, Algorithm::ES256)?;
        jwk.common.key_id = Some(self.kid.clone());
        Ok(jwk)
    }

    /// A JWT with `claims`, signed by this key.
    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// A token the node accepts: right issuer and audience, valid for `lifetime_s` seconds.
    fn token(&self, lifetime_s: i64) -> String {
        self.sign(&claims(lifetime_s))
    }
}

/// The claims of a good token. The Java client checks `sub`, `exp` and `iat` itself (its
/// `ClientJwtValidator`); `scope` is what identity providers usually add.
fn claims(lifetime_s: i64) -> serde_json::Value {
    let now = now_s();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": now,
        "exp": now + lifetime_s,
        "scope": "kafka",
    })
}

/// A node with a SASL_SSL and a SASL_PLAINTEXT listener taking OAUTHBEARER (and
/// SCRAM-SHA-512) with tokens from `issuer`, whose JWKS file is in `dir`. ACLs are left open
/// (these tests are about authentication; `tests/tests/authorization.rs` covers ACLs).
fn oauth_node(pki: &Pki, issuer: &Issuer, dir: &Path, extra: &[&str]) -> Result<TestNode> {
    let jwks = dir.join("jwks.json");
    let set = JwkSet {
        keys: vec![issuer.jwk()?],
    };
    std::fs::write(&jwks, serde_json::to_vec(&set)?)?;
    TestNode::start(
        NodeOptions::default()
            .listener("SASL_SSL", "SASL_SSL")
            .listener("SASL_PLAINTEXT", "SASL_PLAINTEXT")
            .args(pki.node_args())
            .args(["--sasl-enabled-mechanisms", "OAUTHBEARER,SCRAM-SHA-512"])
            .args(["--sasl-oauthbearer-jwks", jwks.to_str().unwrap()])
            .args(["--sasl-oauthbearer-expected-issuer", ISSUER])
            .args(["--sasl-oauthbearer-expected-audience", AUDIENCE])
            .args(["--allow-everyone-if-no-acl-found", "true"])
            .args(extra.iter().copied()),
    )
}

/// A librdkafka client context that hands librdkafka tokens from `mint` whenever it asks
/// (at start and at 80% of each token's lifetime), counting how often it asked.
#[derive(Clone)]
struct Bearer {
    /// A token and its `exp` in ms, which librdkafka is told so it refreshes in time.
    mint: Arc<dyn Fn() -> (String, i64) + Send + Sync>,
    asked: Arc<AtomicUsize>,
}

impl Bearer {
    fn new(mint: impl Fn() -> (String, i64) + Send + Sync + 'static) -> Bearer {
        Bearer {
            mint: Arc::new(mint),
            asked: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Tokens from `idp`, each valid for `lifetime_s` seconds from when it is asked for.
    fn from(idp: &Arc<Issuer>, lifetime_s: i64) -> Bearer {
        let idp = idp.clone();
        Bearer::new(move || {
            let c = claims(lifetime_s);
            let exp_ms = c["exp"].as_i64().unwrap() * 1000;
            (idp.sign(&c), exp_ms)
        })
    }
}

impl ClientContext for Bearer {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let (token, lifetime_ms) = (self.mint)();
        Ok(OAuthToken {
            token,
            principal_name: SUBJECT.to_owned(),
            lifetime_ms,
        })
    }
}

impl ConsumerContext for Bearer {}

/// librdkafka settings for OAUTHBEARER over `protocol`, trusting `pki`'s CA.
fn rdkafka_config(bootstrap: &str, protocol: &str, pki: &Pki) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("security.protocol", protocol)
        .set("sasl.mechanism", "OAUTHBEARER");
    if protocol == "SASL_SSL" {
        cfg.set("ssl.ca.location", pki.ca_file().display().to_string());
    }
    cfg
}

fn bearer_producer(cfg: &ClientConfig, ctx: Bearer) -> Result<FutureProducer<Bearer>> {
    let mut cfg = cfg.clone();
    cfg.set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5");
    cfg.create_with_context(ctx).context("creating producer")
}

fn bearer_consumer(cfg: &ClientConfig, ctx: Bearer) -> Result<BaseConsumer<Bearer>> {
    let mut cfg = cfg.clone();
    cfg.set("group.id", "oauth-manual-assignment")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error");
    cfg.create_with_context(ctx).context("creating consumer")
}

/// Produces `n` records to `topic` partition 0 and reads them back, both clients
/// authenticating with `ctx`'s tokens.
async fn roundtrip(cfg: &ClientConfig, ctx: &Bearer, topic: &str, n: usize) -> Result<()> {
    let producer = bearer_producer(cfg, ctx.clone())?;
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
            .map_err(|(e, _)| anyhow::anyhow!("produce {i}: {e}"))?;
    }
    let consumer = bearer_consumer(cfg, ctx.clone())?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = 0;
        while got < n {
            ensure!(
                Instant::now() < deadline,
                "consumed {got} of {n} records of {topic}"
            );
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    ensure!(
                        m.payload() == Some(format!("v{got}").as_bytes()),
                        "record {got} is {:?}",
                        m.payload().map(String::from_utf8_lossy)
                    );
                    got += 1;
                }
                Some(Err(e)) => anyhow::bail!("consuming {topic}: {e}"),
                None => {}
            }
        }
        Ok(())
    })
    .await?
}

/// Whether a librdkafka client presenting `token` can read cluster metadata.
async fn metadata_with(cfg: &ClientConfig, token: String) -> Result<(), String> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let ctx = Bearer::new(move || (token.clone(), now_ms() + 3_600_000));
        // The producer's background thread serves librdkafka's token-refresh event.
        let p = bearer_producer(&cfg, ctx).map_err(|e| e.to_string())?;
        p.client()
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_authenticates_with_signed_tokens_and_bad_ones_are_refused() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let dir = tempfile::tempdir()?;
    let idp = Issuer::new("idp-key-1")?;
    let node = oauth_node(&pki, &idp, dir.path(), &[])?;
    let idp = Arc::new(idp);

    for (listener, topic) in [("SASL_SSL", "oauth-ssl"), ("SASL_PLAINTEXT", "oauth-plain")] {
        create_topic(&node.bootstrap(), topic, 1, &[]).await?;
        let cfg = rdkafka_config(&node.listener(listener), listener, &pki);
        let ctx = Bearer::from(&idp, 3600);
        roundtrip(&cfg, &ctx, topic, 50)
            .await
            .with_context(|| format!("a valid token via {listener}"))?;
        ensure!(
            ctx.asked.load(Ordering::SeqCst) >= 2,
            "no token was asked for"
        );
    }
    let m = node.metrics()?;
    ensure!(
        m.counter("tierlog_sasl_authentications_total") >= 4.0,
        "OAUTHBEARER logins not counted: {}",
        m.counter("tierlog_sasl_authentications_total")
    );
    let failures_before = m.counter("tierlog_sasl_authentication_failures_total");

    let stranger = Issuer::new("idp-key-1")?; // same key id, another key
    let unknown_kid = Issuer::new("idp-key-2")?;
    let with = |f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        let mut c = claims(3600);
        f(c.as_object_mut().unwrap());
        idp.sign(&c)
    };
    let now = now_s();
    let bad: Vec<(&str, String)> = vec![
        (
            "expired an hour ago",
            with(&|c| {
                c.insert("iat".into(), json!(now - 7200));
                c.insert("exp".into(), json!(now - 3600));
            }),
        ),
        (
            "another audience",
            with(&|c| {
                c.insert("aud".into(), json!("someone-else"));
            }),
        ),
        (
            "another issuer",
            with(&|c| {
                c.insert("iss".into(), json!("https://evil.test"));
            }),
        ),
        (
            "not yet valid",
            with(&|c| {
                c.insert("nbf".into(), json!(now + 3600));
            }),
        ),
        ("signed by another key", stranger.token(3600)),
        ("signed by a key the JWKS lacks", unknown_kid.token(3600)),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    let cfg = rdkafka_config(&node.listener("SASL_SSL"), "SASL_SSL", &pki);
    for (what, token) in &bad {
        ensure!(
            metadata_with(&cfg, token.clone()).await.is_err(),
            "a token {what} was accepted"
        );
    }
    let failures = node
        .metrics()?
        .counter("tierlog_sasl_authentication_failures_total");
    ensure!(
        failures - failures_before >= bad.len() as f64,
        "{} failures counted for {} refused tokens",
        failures - failures_before,
        bad.len()
    );
    // A good token still works afterwards.
    metadata_with(&cfg, idp.token(3600))
        .await
        .map_err(|e| anyhow::anyhow!("a valid token after the refusals: {e}"))?;
    Ok(())
}

/// librdkafka refreshes a token at 80% of its lifetime and re-authenticates (KIP-368) before
/// the session the node granted (the token's lifetime) ends: a producer with 4-second tokens
/// keeps working for 10 seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_reauthenticates_with_fresh_short_lived_tokens() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let dir = tempfile::tempdir()?;
    let idp = Arc::new(Issuer::new("idp-key-1")?);
    let node = oauth_node(&pki, &idp, dir.path(), &[])?;
    create_topic(&node.bootstrap(), "short-lived", 1, &[]).await?;
    let cfg = rdkafka_config(&node.listener("SASL_SSL"), "SASL_SSL", &pki);
    let ctx = Bearer::from(&idp, 4);
    let producer = bearer_producer(&cfg, ctx.clone())?;
    let until = Instant::now() + Duration::from_secs(10);
    let mut sent = 0_i64;
    while Instant::now() < until {
        producer
            .send(
                FutureRecord::to("short-lived")
                    .partition(0)
                    .key("k")
                    .payload("v"),
                CLIENT_TIMEOUT,
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce {sent} with short-lived tokens: {e}"))?;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        ctx.asked.load(Ordering::SeqCst) >= 3,
        "librdkafka asked for {} tokens in 10 s of 4-second tokens",
        ctx.asked.load(Ordering::SeqCst)
    );
    let end = Conn::connect(node.kafka_addr())?.log_end_offset("short-lived", 0)?;
    ensure!(
        end == sent,
        "{sent} records acknowledged, log end offset {end}"
    );
    let m = node.metrics()?;
    ensure!(
        m.counter("tierlog_reauthentications_total") >= 1.0,
        "no re-authentication in 10 s of 4-second sessions"
    );
    // Not asserted: a connection that authenticates late in its token's life gets a short
    // session, and librdkafka's re-authentication at 90% of it can lose the race by a few ms
    // (Kafka closes such a connection too); librdkafka then reconnects with its fresh token,
    // which the produce loop above proves.
    eprintln!(
        "{sent} records, {} tokens, {} re-authentications, {} expired sessions closed",
        ctx.asked.load(Ordering::SeqCst),
        m.counter("tierlog_reauthentications_total"),
        m.counter("tierlog_expired_sessions_closed_total")
    );
    Ok(())
}

/// Authenticates a raw connection with `token`; returns the SaslAuthenticate answer.
fn raw_login(
    c: &mut Conn,
    token: &str,
) -> Result<kafka_protocol::messages::SaslAuthenticateResponse> {
    c.sasl_authenticate(
        "OAUTHBEARER",
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes(),
    )
}

/// The session the node grants lasts as long as the token (KIP-368's `session_lifetime_ms` is
/// `exp - now`, capped by `connections_max_reauth`), and a connection that outlives it is
/// closed at its next request. A refused token gets RFC 7628's error challenge, then
/// SASL_AUTHENTICATION_FAILED.
#[test]
fn the_session_lifetime_follows_the_token() -> Result<()> {
    let pki = Pki::new("tierlog test CA")?;
    let dir = tempfile::tempdir()?;
    let idp = Issuer::new("idp-key-1")?;
    let node = oauth_node(&pki, &idp, dir.path(), &["--connections-max-reauth", "1h"])?;
    let addr = node.listener("SASL_PLAINTEXT").parse()?;

    // A token for 3 more seconds: the session ends with it.
    let mut c = Conn::connect(addr)?;
    let exp_ms = (now_s() + 3) * 1000;
    let before = now_ms();
    let auth = raw_login(&mut c, &idp.token(3))?;
    ensure!(auth.error_code == 0, "login: error {}", auth.error_code);
    let most = exp_ms - before;
    ensure!(
        (most - 1500..=most).contains(&auth.session_lifetime_ms),
        "session lifetime {} ms for a token expiring in {most} ms",
        auth.session_lifetime_ms
    );
    // Still answered within the lifetime...
    c.send_frame(&tierlog_tests::wire::metadata_frame())?;
    let _ = c.read_frame()?;
    // ...and closed at the first request after it.
    std::thread::sleep(Duration::from_millis(
        u64::try_from(auth.session_lifetime_ms).unwrap() + 300,
    ));
    c.send_frame(&tierlog_tests::wire::metadata_frame())?;
    let got = c.expect_closed(Duration::from_secs(5))?;
    ensure!(
        got.is_empty(),
        "a session past its token's expiry was answered"
    );
    ensure!(
        node.metrics()?
            .counter("tierlog_expired_sessions_closed_total")
            >= 1.0
    );

    // A token for a day: connections_max_reauth (1 h) caps the session.
    let mut c = Conn::connect(addr)?;
    let auth = raw_login(&mut c, &idp.token(86_400))?;
    ensure!(auth.error_code == 0, "login: error {}", auth.error_code);
    ensure!(
        auth.session_lifetime_ms == 3_600_000,
        "session lifetime {} ms under a 1 h connections_max_reauth",
        auth.session_lifetime_ms
    );

    // A wrong audience: the error challenge, then SASL_AUTHENTICATION_FAILED.
    let mut c = Conn::connect(addr)?;
    let mut bad = claims(3600);
    bad["aud"] = json!("someone-else");
    let challenge = raw_login(&mut c, &idp.sign(&bad))?;
    ensure!(
        challenge.error_code == 0
            && challenge.auth_bytes.as_ref() == br#"{"status":"invalid_token"}"#,
        "wrong audience: error {}, challenge {:?}",
        challenge.error_code,
        String::from_utf8_lossy(&challenge.auth_bytes)
    );
    let last = c.request(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\x01")),
        2,
    )?;
    ensure!(
        last.error_code == 58,
        "after the error challenge: error {} (expected SASL_AUTHENTICATION_FAILED)",
        last.error_code
    );
    c.expect_closed(Duration::from_secs(5))?;
    Ok(())
}

/// The Java client's own OAUTHBEARER login (KIP-768's `OAuthBearerLoginCallbackHandler`)
/// reading its token from a file: Kafka ≥ 3.1 takes a `file://` token endpoint, and Kafka 4
/// opens it only when the JVM property `org.apache.kafka.sasl.oauthbearer.allowed.urls`
/// names it. The client checks the token's `sub`, `exp` and `iat` itself before sending it.
#[test]
fn the_java_client_authenticates_with_a_token_file() -> Result<()> {
    if !tierlog_tests::kafka::require_kafka("the_java_client_authenticates_with_a_token_file")? {
        return Ok(());
    }
    let pki = Pki::new("tierlog test CA")?;
    let dir = tempfile::tempdir()?;
    let idp = Issuer::new("idp-key-1")?;
    let node = oauth_node(&pki, &idp, dir.path(), &[])?;
    let token_file: PathBuf = dir.path().join("token.jwt");
    std::fs::write(&token_file, idp.token(3600))?;
    let url = format!("file://{}", token_file.display());
    let props = java_props(&pki, &url);
    let jvm = [
        format!("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={url}"),
        format!(
            "-Dorg.apache.kafka.sasl.oauthbearer.allowed.files={}",
            token_file.display()
        ),
    ];
    let jvm: Vec<&str> = jvm.iter().map(String::as_str).collect();
    let outcome = java_check(&node, "java-oauth", &jvm, &props)?;
    outcome
        .expect_passed("the Java client with an OAUTHBEARER token file")
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", outcome.describe()))?;
    let logins = node
        .metrics()?
        .counter("tierlog_sasl_authentications_total");
    ensure!(logins >= 2.0, "{logins} SASL logins counted");

    // The same client with a token for another audience is refused.
    let failures_before = node
        .metrics()?
        .counter("tierlog_sasl_authentication_failures_total");
    let mut bad = claims(3600);
    bad["aud"] = json!("someone-else");
    std::fs::write(&token_file, idp.sign(&bad))?;
    let outcome = java_check(&node, "java-oauth-refused", &jvm, &props)?;
    ensure!(
        !outcome.passed(),
        "the Java client got in with a token for another audience\n{}",
        outcome.describe()
    );
    let failures = node
        .metrics()?
        .counter("tierlog_sasl_authentication_failures_total");
    ensure!(
        failures > failures_before,
        "the refused Java login was not counted"
    );
    Ok(())
}

/// The Java client's OAUTHBEARER settings over SASL_SSL with a `file://` token endpoint.
fn java_props(pki: &Pki, url: &str) -> Vec<String> {
    vec![
        "security.protocol=SASL_SSL".to_owned(),
        "sasl.mechanism=OAUTHBEARER".to_owned(),
        "sasl.login.callback.handler.class=\
         org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
            .to_owned(),
        format!("sasl.oauthbearer.token.endpoint.url={url}"),
        "sasl.jaas.config=\
         org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;"
            .to_owned(),
        "ssl.truststore.type=PEM".to_owned(),
        format!("ssl.truststore.location={}", pki.ca_file().display()),
    ]
}

fn java_check(
    node: &TestNode,
    topic: &str,
    jvm: &[&str],
    props: &[String],
) -> Result<tierlog_tests::programs::Outcome> {
    let mut args: Vec<String> = Vec::new();
    for kind in ["--producer-prop", "--consumer-prop", "--admin-prop"] {
        for p in props {
            args.push(kind.to_owned());
            args.push(p.clone());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tierlog_tests::programs::java_client_check_with(
        &tierlog_tests::kafka::Listener(node.listener("SASL_SSL")),
        topic,
        jvm,
        &args,
        Duration::from_secs(60),
    )
}

/// The JWKS can come from the identity provider over HTTP (as `sasl_oauthbearer_jwks =
/// http(s)://…` says): a tiny server here serves it, the node fetches it at the first login,
/// and librdkafka authenticates with a token it verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_fetched_over_http_verifies_tokens() -> Result<()> {
    use std::io::{Read as _, Write as _};

    let pki = Pki::new("tierlog test CA")?;
    let idp = Arc::new(Issuer::new("http-key")?);
    let body = serde_json::to_vec(&JwkSet {
        keys: vec![idp.jwk()?],
    })?;
    let server = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/jwks.json", server.local_addr()?);
    let served = Arc::new(AtomicUsize::new(0));
    {
        let served = served.clone();
        std::thread::spawn(move || {
            for stream in server.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut req = [0u8; 4096];
                let _ = s.read(&mut req);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
                served.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let node = TestNode::start(
        NodeOptions::default()
            .listener("SASL_PLAINTEXT", "SASL_PLAINTEXT")
            .args(pki.node_args())
            .args(["--sasl-enabled-mechanisms", "OAUTHBEARER"])
            .args(["--sasl-oauthbearer-jwks", url.as_str()])
            .args(["--sasl-oauthbearer-expected-issuer", ISSUER])
            .args(["--sasl-oauthbearer-expected-audience", AUDIENCE])
            .args(["--allow-everyone-if-no-acl-found", "true"]),
    )?;
    create_topic(&node.bootstrap(), "oauth-http-jwks", 1, &[]).await?;
    let cfg = rdkafka_config(&node.listener("SASL_PLAINTEXT"), "SASL_PLAINTEXT", &pki);
    roundtrip(&cfg, &Bearer::from(&idp, 3600), "oauth-http-jwks", 20)
        .await
        .context("a token verified against the JWKS served over HTTP")?;
    ensure!(
        served.load(Ordering::SeqCst) >= 1,
        "the node never fetched the JWKS"
    );
    let stranger = Issuer::new("http-key")?; // same key id, another key
    ensure!(
        metadata_with(&cfg, stranger.sign(&claims(3600)))
            .await
            .is_err(),
        "a token of a key the served JWKS lacks was accepted"
    );
    Ok(())
}
