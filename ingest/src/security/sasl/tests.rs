//! The mechanisms end to end against an in-memory store: right and wrong passwords, unknown
//! users, tampered SCRAM messages, OAUTHBEARER tokens good and bad, and garbage.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tierlog_metadata::{Clock as _, ManualClock, MemoryStore, MetadataStore, ScramMechanism};

use super::*;

/// Now on the test clock: a fixed moment in 2025, in ms.
const NOW_MS: i64 = 1_750_000_000_000;

struct Fixture {
    auth: Authenticator,
    store: Arc<dyn MetadataStore>,
    _dir: tempfile::TempDir,
    /// The P-256 key whose public half is in the JWKS as `kid` `k1`.
    key: EncodingKey,
}

/// A P-256 key pair: the private key for signing, and its JWK (`kid` given).
fn ec_key(kid: &str) -> (EncodingKey, serde_json::Value) {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65, "uncompressed P-256 point");
    let jwk = serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    (EncodingKey::from_ec_der(doc.as_ref()), jwk)
}

async fn fixture_with(tweak: impl FnOnce(&mut NodeConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (key, jwk) = ec_key("k1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let mut config = NodeConfig {
        sasl_oauthbearer_jwks: Some(jwks.display().to_string()),
        sasl_oauthbearer_expected_issuer: Some("https://idp.example".into()),
        sasl_oauthbearer_expected_audience: Some("tierlog".into()),
        ..NodeConfig::default()
    };
    tweak(&mut config);
    let clock = ManualClock::starting_at(tierlog_metadata::SystemClock.now(), NOW_MS);
    let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
    let auth = Authenticator::new(store.clone(), &config, clock).unwrap();
    Fixture {
        auth,
        store,
        _dir: dir,
        key,
    }
}

async fn fixture() -> Fixture {
    let f = fixture_with(|_| {}).await;
    for (m, pw) in [
        (ScramMechanism::Sha256, "alice-secret"),
        (ScramMechanism::Sha512, "alice-secret"),
    ] {
        let cred = derive(m, "alice", pw, 4096).await.unwrap();
        f.auth
            .credentials()
            .put(&cred, None)
            .await
            .unwrap()
            .unwrap();
    }
    // bob has SCRAM-SHA-512 only.
    let cred = derive(ScramMechanism::Sha512, "bob", "bob-pw", 8192)
        .await
        .unwrap();
    f.auth
        .credentials()
        .put(&cred, None)
        .await
        .unwrap()
        .unwrap();
    f
}

async fn one_step(f: &Fixture, m: Mechanism, msg: &[u8]) -> Result<SaslStep, SaslError> {
    f.auth.start(m).step(&f.auth, msg).await
}

fn principal_of(step: SaslStep) -> Principal {
    match step {
        SaslStep::Done { principal, .. } => principal,
        other => panic!("not done: {other:?}"),
    }
}

#[tokio::test]
async fn plain_checks_the_password_against_scram_credentials() {
    let f = fixture().await;
    let ok = one_step(
        &f,
        Mechanism::Plain,
        &plain_client_message("alice", "alice-secret"),
    )
    .await
    .unwrap();
    assert_eq!(principal_of(ok), Principal::user("alice"));
    // A user with only a SHA-512 credential logs in too.
    let ok = one_step(&f, Mechanism::Plain, b"bob\0bob\0bob-pw")
        .await
        .unwrap();
    assert_eq!(principal_of(ok), Principal::user("bob"));

    let wrong = one_step(&f, Mechanism::Plain, &plain_client_message("alice", "nope"))
        .await
        .unwrap_err();
    let unknown = one_step(&f, Mechanism::Plain, &plain_client_message("carol", "nope"))
        .await
        .unwrap_err();
    assert_eq!(
        wrong.message,
        "Authentication failed: Invalid username or password"
    );
    assert_eq!(
        wrong, unknown,
        "an unknown user is told what a wrong password is"
    );

    // One message only.
    let mut ex = f.auth.start(Mechanism::Plain);
    ex.step(&f.auth, &plain_client_message("alice", "alice-secret"))
        .await
        .unwrap();
    assert!(
        ex.step(&f.auth, &plain_client_message("alice", "alice-secret"))
            .await
            .is_err()
    );
}

/// Runs a full SCRAM exchange with [`ScramClient`]; returns the server's outcome.
async fn scram_login(
    f: &Fixture,
    m: Mechanism,
    user: &str,
    password: &str,
) -> Result<Principal, SaslError> {
    let sm = m.scram().unwrap();
    let mut client = ScramClient::new(sm, user, password).unwrap();
    let mut ex = f.auth.start(m);
    let SaslStep::Challenge(server_first) = ex.step(&f.auth, &client.first()).await? else {
        panic!("scram's first step is a challenge");
    };
    let fin = client.finish(&server_first).unwrap();
    match ex.step(&f.auth, &fin).await? {
        SaslStep::Done {
            reply,
            principal,
            expires_at_ms,
        } => {
            assert_eq!(expires_at_ms, None);
            client
                .verify(&reply)
                .expect("the server proves it knows the credential");
            Ok(principal)
        }
        SaslStep::Challenge(c) => panic!("unexpected third challenge {c:?}"),
    }
}

#[tokio::test]
async fn scram_both_hashes_accept_the_right_password_only() {
    let f = fixture().await;
    for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        assert_eq!(
            scram_login(&f, m, "alice", "alice-secret").await.unwrap(),
            Principal::user("alice"),
            "{m:?}"
        );
        let wrong = scram_login(&f, m, "alice", "alice-secreT")
            .await
            .unwrap_err();
        assert_eq!(wrong.message, scram::INVALID_CREDENTIALS, "{m:?}");
        let unknown = scram_login(&f, m, "mallory", "x").await.unwrap_err();
        assert_eq!(
            unknown, wrong,
            "{m:?}: unknown users fail like wrong passwords"
        );
    }
    // bob has no SHA-256 credential: refused there, accepted with SHA-512 (8192 iterations).
    assert!(
        scram_login(&f, Mechanism::ScramSha256, "bob", "bob-pw")
            .await
            .is_err()
    );
    assert_eq!(
        scram_login(&f, Mechanism::ScramSha512, "bob", "bob-pw")
            .await
            .unwrap(),
        Principal::user("bob")
    );
}

/// An unknown user gets a plausible server-first (same salt each time, 4096 iterations).
#[tokio::test]
async fn scram_unknown_user_gets_a_stable_server_first() {
    let f = fixture().await;
    let salt_of = |reply: SaslStep| -> String {
        let SaslStep::Challenge(c) = reply else {
            panic!("challenge")
        };
        let text = String::from_utf8(c).unwrap();
        let fields: Vec<&str> = text.split(',').collect();
        assert_eq!(fields[2], "i=4096");
        fields[1].to_owned()
    };
    let a = salt_of(
        one_step(&f, Mechanism::ScramSha256, b"n,,n=ghost,r=abc")
            .await
            .unwrap(),
    );
    let b = salt_of(
        one_step(&f, Mechanism::ScramSha256, b"n,,n=ghost,r=xyz")
            .await
            .unwrap(),
    );
    assert_eq!(a, b);
}

/// Tampering with the client-final message: a wrong proof, a wrong nonce, another channel
/// binding, and a client-final replayed into a new exchange are all refused.
#[tokio::test]
async fn scram_refuses_tampered_and_replayed_client_finals() {
    let f = fixture().await;
    let m = Mechanism::ScramSha256;
    let start = || async {
        let mut client = ScramClient::new(ScramMechanism::Sha256, "alice", "alice-secret").unwrap();
        let mut ex = f.auth.start(m);
        let SaslStep::Challenge(sf) = ex.step(&f.auth, &client.first()).await.unwrap() else {
            panic!("challenge")
        };
        let fin = String::from_utf8(client.finish(&sf).unwrap()).unwrap();
        (ex, client, fin)
    };

    // A flipped proof byte.
    let (mut ex, _, fin) = start().await;
    let (head, proof) = fin.rsplit_once(",p=").unwrap();
    let mut p = STANDARD.decode(proof).unwrap();
    p[0] ^= 1;
    let err = ex
        .step(
            &f.auth,
            format!("{head},p={}", STANDARD.encode(&p)).as_bytes(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, scram::INVALID_CREDENTIALS);

    // A truncated proof.
    let (mut ex, _, fin) = start().await;
    let (head, proof) = fin.rsplit_once(",p=").unwrap();
    let p = STANDARD.decode(proof).unwrap();
    assert!(
        ex.step(
            &f.auth,
            format!("{head},p={}", STANDARD.encode(&p[..16])).as_bytes()
        )
        .await
        .is_err()
    );

    // A changed nonce (the proof is over the message as sent, so only the nonce check can
    // catch it first).
    let (mut ex, _, fin) = start().await;
    let tampered = fin.replacen(",r=", ",r=X", 1);
    let err = ex.step(&f.auth, tampered.as_bytes()).await.unwrap_err();
    assert!(err.message.contains("nonce"), "{err:?}");

    // Another channel binding header (y,, instead of n,,).
    let (mut ex, _, fin) = start().await;
    let tampered = fin.replacen("c=biws", "c=eSws", 1);
    let err = ex.step(&f.auth, tampered.as_bytes()).await.unwrap_err();
    assert!(err.message.contains("channel binding"), "{err:?}");

    // A client-final that succeeded once, replayed into a new exchange: that exchange's server
    // nonce differs, so it is refused.
    let (mut ex, _, fin) = start().await;
    assert!(matches!(
        ex.step(&f.auth, fin.as_bytes()).await.unwrap(),
        SaslStep::Done { .. }
    ));
    assert!(
        ex.step(&f.auth, fin.as_bytes()).await.is_err(),
        "exchange is over"
    );
    let (mut ex2, _, _) = start().await;
    assert!(ex2.step(&f.auth, fin.as_bytes()).await.is_err());

    // Delegation tokens are refused.
    assert!(
        one_step(&f, m, b"n,,n=alice,r=abc,tokenauth=true")
            .await
            .is_err()
    );
}

/// A token for `claims`, signed with `key` (kid `k1`, ES256).
fn token(key: &EncodingKey, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn bearer(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

fn good_claims() -> serde_json::Value {
    serde_json::json!({
        "sub": "svc-orders",
        "iss": "https://idp.example",
        "aud": ["tierlog", "other"],
        "exp": NOW_MS / 1000 + 600,
        "nbf": NOW_MS / 1000 - 10,
        "client_id": "orders-app",
    })
}

/// Runs OAUTHBEARER on `msg`: the principal and expiry, or the error after the
/// `invalid_token` challenge.
async fn oauth_login(f: &Fixture, msg: &[u8]) -> Result<(Principal, Option<i64>), SaslError> {
    let mut ex = f.auth.start(Mechanism::OAuthBearer);
    match ex.step(&f.auth, msg).await? {
        SaslStep::Done {
            principal,
            expires_at_ms,
            reply,
        } => {
            assert!(reply.is_empty());
            Ok((principal, expires_at_ms))
        }
        SaslStep::Challenge(c) => {
            assert_eq!(c, br#"{"status":"invalid_token"}"#);
            let err = ex.step(&f.auth, b"\x01").await.unwrap_err();
            assert_eq!(err.message, r#"{"status":"invalid_token"}"#);
            Err(err)
        }
    }
}

#[tokio::test]
async fn oauthbearer_validates_signature_and_claims() {
    let f = fixture().await;
    let (principal, exp) = oauth_login(&f, &bearer(&token(&f.key, good_claims())))
        .await
        .unwrap();
    assert_eq!(principal, Principal::user("svc-orders"));
    assert_eq!(exp, Some((NOW_MS / 1000 + 600) * 1000));

    let mut expired = good_claims();
    expired["exp"] = (NOW_MS / 1000 - 120).into();
    assert!(
        oauth_login(&f, &bearer(&token(&f.key, expired)))
            .await
            .is_err()
    );

    let mut early = good_claims();
    early["nbf"] = (NOW_MS / 1000 + 300).into();
    assert!(
        oauth_login(&f, &bearer(&token(&f.key, early)))
            .await
            .is_err()
    );

    let mut issuer = good_claims();
    issuer["iss"] = "https://evil.example".into();
    assert!(
        oauth_login(&f, &bearer(&token(&f.key, issuer)))
            .await
            .is_err()
    );

    let mut audience = good_claims();
    audience["aud"] = "someone-else".into();
    assert!(
        oauth_login(&f, &bearer(&token(&f.key, audience)))
            .await
            .is_err()
    );

    let mut no_sub = good_claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    assert!(
        oauth_login(&f, &bearer(&token(&f.key, no_sub)))
            .await
            .is_err()
    );

    // Signed by another key claiming the same kid.
    let (other, _) = ec_key("k1");
    assert!(
        oauth_login(&f, &bearer(&token(&other, good_claims())))
            .await
            .is_err()
    );

    // alg none: the unsigned form of a good token.
    let payload = URL_SAFE_NO_PAD.encode(good_claims().to_string());
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#)
    );
    assert!(oauth_login(&f, &bearer(&none)).await.is_err());

    // HS256 "signed" with the public JWK's coordinates as a secret: refused by algorithm.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &good_claims(),
        &EncodingKey::from_secret(b"anything").unwrap(),
    )
    .unwrap();
    assert!(oauth_login(&f, &bearer(&hs)).await.is_err());

    // An authzid naming someone else.
    let msg = format!(
        "n,a=admin,\x01auth=Bearer {}\x01\x01",
        token(&f.key, good_claims())
    );
    assert!(oauth_login(&f, msg.as_bytes()).await.is_err());
}

#[tokio::test]
async fn oauthbearer_principal_claim_is_configurable() {
    let f = fixture_with(|c| {
        c.sasl_oauthbearer_sub_claim_name = "client_id".into();
        c.sasl_oauthbearer_expected_issuer = None;
        c.sasl_oauthbearer_expected_audience = None;
    })
    .await;
    let mut claims = good_claims();
    claims["iss"] = "anyone".into();
    let (principal, _) = oauth_login(&f, &bearer(&token(&f.key, claims)))
        .await
        .unwrap();
    assert_eq!(principal, Principal::user("orders-app"));
}

#[tokio::test]
async fn oauthbearer_off_without_a_jwks() {
    let f = fixture_with(|c| c.sasl_oauthbearer_jwks = None).await;
    assert!(!f.auth.is_enabled(Mechanism::OAuthBearer));
    assert!(f.auth.is_enabled(Mechanism::ScramSha512));
    assert!(
        one_step(&f, Mechanism::OAuthBearer, &bearer("a.b.c"))
            .await
            .is_err()
    );
}

#[test]
fn enabled_mechanisms_follow_the_config() {
    let mut c = NodeConfig::default();
    assert_eq!(
        enabled_mechanisms(&c).unwrap(),
        vec![
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512
        ]
    );
    c.sasl_enabled_mechanisms = "SCRAM-SHA-512".into();
    c.sasl_oauthbearer_jwks = Some("/jwks.json".into());
    assert_eq!(
        enabled_mechanisms(&c).unwrap(),
        vec![Mechanism::ScramSha512, Mechanism::OAuthBearer]
    );
    c.sasl_enabled_mechanisms = "OAUTHBEARER,plain".into();
    assert!(enabled_mechanisms(&c).unwrap_err().contains("`plain`"));
    c.sasl_enabled_mechanisms = "OAUTHBEARER".into();
    c.sasl_oauthbearer_jwks = None;
    assert!(enabled_mechanisms(&c).is_err());
    assert!(c.validate().is_err());
    for m in Mechanism::ALL {
        assert_eq!(Mechanism::parse(m.name()), Some(m));
    }
}

#[tokio::test]
async fn bootstrap_admin_creates_both_credentials_once() {
    let f = fixture_with(|_| {}).await;
    assert!(
        bootstrap_admin(f.store.clone(), "admin", "first")
            .await
            .unwrap()
    );
    assert_eq!(
        f.auth.credentials().list_user("admin").await.unwrap().len(),
        2
    );
    // Present already: a second start (or another node) changes nothing.
    assert!(
        !bootstrap_admin(f.store.clone(), "admin", "second")
            .await
            .unwrap()
    );
    for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        assert!(scram_login(&f, m, "admin", "first").await.is_ok());
        assert!(scram_login(&f, m, "admin", "second").await.is_err());
    }
}

/// A small deterministic generator for the garbage test (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Random bytes, biased towards the characters the parsers split on.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        const INTERESTING: &[u8] = b",=\x00\x01nrpcvas.biws ";
        let len = (self.next() % (max as u64 + 1)) as usize;
        (0..len)
            .map(|_| {
                let r = self.next();
                if r.is_multiple_of(3) {
                    INTERESTING[(r >> 8) as usize % INTERESTING.len()]
                } else {
                    (r >> 16) as u8
                }
            })
            .collect()
    }
}

/// Garbage, truncated and mutated messages at every step of every mechanism: an error or a
/// challenge, never a panic, and never a login.
#[tokio::test]
async fn garbage_never_panics_or_authenticates() {
    let f = fixture().await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let plain = plain_client_message("alice", "wrong");
    let scram_first = b"n,,n=alice,r=abcdef".to_vec();
    let oauth = bearer(&token(&f.key, good_claims()));
    for m in Mechanism::ALL {
        let valid_first = match m {
            Mechanism::Plain => plain.clone(),
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => scram_first.clone(),
            Mechanism::OAuthBearer => oauth.clone(),
        };
        let mut inputs: Vec<Vec<u8>> = (0..=valid_first.len())
            .map(|n| valid_first[..n].to_vec())
            .collect();
        for _ in 0..150 {
            inputs.push(rng.bytes(96));
            let mut mutated = valid_first.clone();
            let i = (rng.next() as usize) % mutated.len();
            mutated[i] = rng.next() as u8;
            inputs.push(mutated);
        }
        for input in &inputs {
            let mut ex = f.auth.start(m);
            let first = ex.step(&f.auth, input).await;
            if let Ok(SaslStep::Done { principal, .. }) = &first {
                // Only the untouched OAUTHBEARER token may log in.
                assert_eq!(m, Mechanism::OAuthBearer, "{input:?}");
                assert_eq!(input, &oauth);
                assert_eq!(principal, &Principal::user("svc-orders"));
                continue;
            }
            // Whatever the first step said, a second message is handled without a panic.
            let second = rng.bytes(128);
            if let Ok(SaslStep::Done { .. }) = ex.step(&f.auth, &second).await {
                panic!("{m:?} logged in on garbage {input:?} then {second:?}");
            }
        }
        // Garbage as a SCRAM client-final after a valid client-first.
        if let Some(_sm) = m.scram() {
            for _ in 0..200 {
                let mut ex = f.auth.start(m);
                ex.step(&f.auth, &scram_first).await.unwrap();
                let mut fin = b"c=biws,r=abcdef".to_vec();
                fin.extend(rng.bytes(100));
                assert!(ex.step(&f.auth, &fin).await.is_err());
            }
        }
    }
}
