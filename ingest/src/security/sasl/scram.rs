//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's `ScramSaslServer` speaks
//! them: no channel binding (`n,,` or `n,a=<authzid>,`), the authzid empty or the user itself,
//! extensions other than `tokenauth` ignored (delegation tokens are not supported, so
//! `tokenauth=true` is refused), and the user name's `=2C`/`=3D` escapes undone as Kafka's
//! `ScramFormatter.username` does (no SASLprep, as Kafka).
//!
//! The server exchange is two steps: client-first → server-first (our nonce, the stored salt and
//! iterations), client-final → server-final (`v=<server signature>`) once the proof checks out.
//! A user without a credential for the mechanism gets a server-first all the same (a salt
//! derived from the name with a per-process secret, so it is stable across attempts) and fails
//! at the proof like a wrong password: the exchange never tells whether a user exists.
//!
//! The hash, HMAC and PBKDF2 primitives are RustCrypto's (`sha2`, `hmac`, `pbkdf2`); proofs and
//! keys are compared in constant time (`subtle`). [`ScramClient`] is the other side, for
//! tierlog's own clients (inter-node replication, the CLI) and the tests.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;
use tierlog_metadata::{SCRAM_MIN_ITERATIONS, ScramCredential, ScramMechanism};

use super::{SaslError, SaslStep};
use crate::security::Principal;

/// Random bytes in a server or client nonce (printed base64url, 32 characters).
const NONCE_BYTES: usize = 24;

/// Bytes of salt in credentials tierlog derives from a password itself.
const SALT_BYTES: usize = 24;

/// Kafka's reply to every failed proof, whether the password is wrong or the user unknown.
pub(super) const INVALID_CREDENTIALS: &str = "Authentication failed: Invalid user credentials";

/// `HMAC(key, data)` with the mechanism's hash.
fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn run<M: hmac::Mac + hmac::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length: new_from_slice cannot fail.
        let mut mac = <M as hmac::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match m {
        ScramMechanism::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, data),
        ScramMechanism::Sha512 => run::<hmac::Hmac<sha2::Sha512>>(key, data),
    }
}

/// `H(data)` with the mechanism's hash.
fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match m {
        ScramMechanism::Sha256 => sha2::Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => sha2::Sha512::digest(data).to_vec(),
    }
}

/// The hash's output length: the length of every key and proof.
fn hash_len(m: ScramMechanism) -> usize {
    match m {
        ScramMechanism::Sha256 => 32,
        ScramMechanism::Sha512 => 64,
    }
}

/// `Hi(password, salt, i)` (RFC 5802 §2.2): PBKDF2 with the mechanism's HMAC. CPU-heavy by
/// design (thousands of HMACs); async callers run it on a blocking thread.
pub(crate) fn salted_password(
    m: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut out = vec![0; hash_len(m)];
    match m {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, &mut out);
        }
    }
    out
}

/// The credential for `salted` (a SaltedPassword, as AlterUserScramCredentials carries it):
/// `StoredKey = H(HMAC(salted, "Client Key"))`, `ServerKey = HMAC(salted, "Server Key")`.
pub(crate) fn credential_from_salted_password(
    m: ScramMechanism,
    user: &str,
    salt: &[u8],
    salted: &[u8],
    iterations: i32,
) -> ScramCredential {
    let client_key = hmac(m, salted, b"Client Key");
    ScramCredential {
        user: user.to_owned(),
        mechanism: m,
        salt: salt.to_vec(),
        stored_key: hash(m, &client_key),
        server_key: hmac(m, salted, b"Server Key"),
        iterations,
    }
}

/// A fresh credential for `password` with a random salt. CPU-heavy (PBKDF2).
pub(crate) fn credential_from_password(
    m: ScramMechanism,
    user: &str,
    password: &str,
    iterations: i32,
) -> Result<ScramCredential, SaslError> {
    let salt = random_bytes(SALT_BYTES)?;
    let rounds = u32::try_from(iterations)
        .map_err(|_| SaslError::new(format!("iterations must be positive, got {iterations}")))?;
    let salted = salted_password(m, password.as_bytes(), &salt, rounds);
    Ok(credential_from_salted_password(
        m, user, &salt, &salted, iterations,
    ))
}

/// Whether `password` matches `cred` (PLAIN against SCRAM credentials, as Redpanda checks
/// it): derive the salted password with the stored salt and iterations and compare the stored
/// key in constant time. CPU-heavy (PBKDF2).
pub(crate) fn password_matches(cred: &ScramCredential, password: &[u8]) -> bool {
    let Ok(rounds) = u32::try_from(cred.iterations) else {
        return false;
    };
    let salted = salted_password(cred.mechanism, password, &cred.salt, rounds);
    let stored = hash(
        cred.mechanism,
        &hmac(cred.mechanism, &salted, b"Client Key"),
    );
    bool::from(stored.ct_eq(&cred.stored_key))
}

/// `n` bytes from the operating system's random source.
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, SaslError> {
    let mut buf = vec![0; n];
    getrandom::fill(&mut buf)
        .map_err(|e| SaslError::new(format!("no random source for a nonce or salt: {e}")))?;
    Ok(buf)
}

/// A nonce: random, printable, without `,` (RFC 5802's `printable`).
fn new_nonce() -> Result<String, SaslError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(NONCE_BYTES)?))
}

/// Undoes the `=2C` / `=3D` escapes of a `saslname`; `None` for any other `=` or an empty name.
fn unescape_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3)?;
        match esc {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

/// Escapes `,` and `=` in a user name for `n=`.
fn escape_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// RFC 5802's `printable`: `%x21-2B / %x2D-7E` (visible ASCII but `,`).
fn printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// The client-first message, parsed.
struct ClientFirst {
    /// `n,,` or `n,a=<authzid>,`: what `c=` in the client-final must encode.
    gs2_header: String,
    /// Everything after the GS2 header: the first part of the AuthMessage.
    bare: String,
    user: String,
    nonce: String,
}

/// Parses `n,[a=<authzid>],n=<saslname>,r=<nonce>[,<ext>=<value>]*` as Kafka's
/// `ClientFirstMessage` does.
fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, SaslError> {
    let bad = || SaslError::new("Invalid SCRAM client first message");
    let text = std::str::from_utf8(msg).map_err(|_| bad())?;
    let rest = text.strip_prefix("n,").ok_or_else(|| {
        SaslError::new("Invalid SCRAM client first message: channel binding is not supported")
    })?;
    let (authzid, bare) = rest.split_once(',').ok_or_else(bad)?;
    let authzid = match authzid {
        "" => None,
        a => Some(unescape_saslname(a.strip_prefix("a=").ok_or_else(bad)?).ok_or_else(bad)?),
    };
    let gs2_header = format!("n,{},", &rest[..rest.len() - bare.len() - 1]);
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .and_then(unescape_saslname)
        .ok_or_else(bad)?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| printable(n))
        .ok_or_else(bad)?
        .to_owned();
    for ext in fields {
        let (key, value) = ext.split_once('=').ok_or_else(bad)?;
        if key.is_empty() || !printable(key) || value.is_empty() {
            return Err(bad());
        }
        // Delegation tokens (KIP-48) are not supported.
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            return Err(SaslError::new(
                "Authentication failed: delegation tokens are not supported",
            ));
        }
    }
    if authzid.as_ref().is_some_and(|a| *a != user) {
        return Err(SaslError::new(
            "Authentication failed: Client requested an authorization id that is different from \
             username",
        ));
    }
    Ok(ClientFirst {
        gs2_header,
        bare: bare.to_owned(),
        user,
        nonce,
    })
}

/// Where one server exchange is.
enum State {
    /// Waiting for the client-first message.
    First,
    /// Server-first sent; waiting for the client-final message.
    Final {
        user: String,
        gs2_header: String,
        /// `client-first-bare + "," + server-first`: the AuthMessage's first two parts.
        auth_prefix: String,
        /// Client nonce + server nonce, which `r=` must repeat exactly.
        nonce: String,
        /// `None` for an unknown user: the proof fails whatever it is.
        credential: Option<ScramCredential>,
    },
    /// Finished, successfully or not: any further message is refused.
    Finished,
}

/// One SCRAM exchange, server side.
pub(crate) struct ScramExchange {
    mechanism: ScramMechanism,
    state: State,
}

impl ScramExchange {
    /// A new exchange waiting for the client-first message.
    pub(super) fn new(mechanism: ScramMechanism) -> ScramExchange {
        ScramExchange {
            mechanism,
            state: State::First,
        }
    }

    /// Feeds one client message. Any error finishes the exchange.
    pub(super) async fn step(
        &mut self,
        auth: &super::Authenticator,
        msg: &[u8],
    ) -> Result<SaslStep, SaslError> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        match state {
            State::First => {
                let first = parse_client_first(msg)?;
                let credential = auth
                    .credentials()
                    .get(&first.user, self.mechanism)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "scram: cannot read credentials");
                        SaslError::new("Authentication failed: credentials are unavailable")
                    })?
                    .map(|v| v.value);
                let (salt, iterations) = match &credential {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (auth.fake_salt(&first.user), SCRAM_MIN_ITERATIONS),
                };
                let nonce = format!("{}{}", first.nonce, new_nonce()?);
                let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(&salt));
                self.state = State::Final {
                    user: first.user,
                    gs2_header: first.gs2_header,
                    auth_prefix: format!("{},{server_first}", first.bare),
                    nonce,
                    credential,
                };
                Ok(SaslStep::Challenge(server_first.into_bytes()))
            }
            State::Final {
                user,
                gs2_header,
                auth_prefix,
                nonce,
                credential,
            } => {
                let reply = self.finish(msg, &gs2_header, &auth_prefix, &nonce, credential)?;
                Ok(SaslStep::Done {
                    reply,
                    principal: Principal::user(user),
                    expires_at_ms: None,
                })
            }
            State::Finished => Err(SaslError::new(
                "Authentication failed: the SCRAM exchange is already complete",
            )),
        }
    }

    /// Checks the client-final message `c=<gs2 header>,r=<nonce>[,ext]*,p=<proof>` and returns
    /// the server-final `v=<signature>`.
    fn finish(
        &self,
        msg: &[u8],
        gs2_header: &str,
        auth_prefix: &str,
        nonce: &str,
        credential: Option<ScramCredential>,
    ) -> Result<Vec<u8>, SaslError> {
        let m = self.mechanism;
        let bad = || SaslError::new("Invalid SCRAM client final message");
        let text = std::str::from_utf8(msg).map_err(|_| bad())?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(bad)?;
        let proof = STANDARD.decode(proof).map_err(|_| bad())?;
        let mut fields = without_proof.split(',');
        let channel = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(bad)?;
        if STANDARD.decode(channel).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(SaslError::new(
                "Authentication failed: Invalid channel binding in the final client message",
            ));
        }
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(bad)?;
        if client_nonce != nonce {
            return Err(SaslError::new(
                "Authentication failed: Invalid client nonce in the final client message.",
            ));
        }
        if fields.any(|f| !f.contains('=')) {
            return Err(bad());
        }
        let Some(cred) = credential else {
            return Err(SaslError::new(INVALID_CREDENTIALS));
        };
        let auth_message = format!("{auth_prefix},{without_proof}");
        let client_signature = hmac(m, &cred.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(SaslError::new(INVALID_CREDENTIALS));
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(hash(m, &client_key).ct_eq(&cred.stored_key)) {
            return Err(SaslError::new(INVALID_CREDENTIALS));
        }
        let server_signature = hmac(m, &cred.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

/// The client side of a SCRAM exchange, for tierlog's own connections to a node (inter-node
/// replication, the CLI) and for tests: [`first`](Self::first), then
/// [`finish`](Self::finish) with the server-first message, then [`verify`](Self::verify) the
/// server-final message, which proves the server holds the user's credential.
pub(crate) struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    /// Set by `finish`: the server signature `verify` expects.
    expected_server_signature: Option<Vec<u8>>,
}

// The password never goes to logs.
impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A client for `user` with `password`, with a fresh nonce.
    pub(crate) fn new(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
    ) -> Result<ScramClient, SaslError> {
        Ok(Self::with_nonce(mechanism, user, password, new_nonce()?))
    }

    /// As [`ScramClient::new`] with a given nonce (RFC test vectors).
    pub(crate) fn with_nonce(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        nonce: String,
    ) -> ScramClient {
        ScramClient {
            mechanism,
            user: user.to_owned(),
            password: password.to_owned(),
            nonce,
            expected_server_signature: None,
        }
    }

    /// The client-first-message without its GS2 header.
    fn first_bare(&self) -> String {
        format!("n={},r={}", escape_saslname(&self.user), self.nonce)
    }

    /// The client-first message: `n,,n=<user>,r=<nonce>`.
    pub(crate) fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare()).into_bytes()
    }

    /// The client-final message answering `server_first`, with the proof. CPU-heavy (PBKDF2
    /// with the server's iteration count).
    pub(crate) fn finish(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let m = self.mechanism;
        let bad = || SaslError::new("invalid SCRAM server first message");
        let text = std::str::from_utf8(server_first).map_err(|_| bad())?;
        let mut fields = text.split(',');
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or_else(bad)?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() || !printable(nonce) {
            return Err(SaslError::new("SCRAM server nonce does not extend ours"));
        }
        let salt = fields
            .next()
            .and_then(|f| f.strip_prefix("s="))
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(bad)?;
        let iterations: u32 = fields
            .next()
            .and_then(|f| f.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .ok_or_else(bad)?;
        if iterations < SCRAM_MIN_ITERATIONS as u32 {
            return Err(SaslError::new(format!(
                "SCRAM server asks for {iterations} iterations, fewer than {SCRAM_MIN_ITERATIONS}"
            )));
        }
        let salted = salted_password(m, self.password.as_bytes(), &salt, iterations);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c={},r={nonce}", STANDARD.encode("n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.first_bare());
        let signature = hmac(m, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(m, &salted, b"Server Key");
        self.expected_server_signature = Some(hmac(m, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks the server-final message `v=<signature>` (or reports its `e=<error>`).
    pub(crate) fn verify(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| SaslError::new("invalid SCRAM server final message"))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(SaslError::new(format!("SCRAM server error: {e}")));
        }
        let signature = text
            .split(',')
            .next()
            .and_then(|f| f.strip_prefix("v="))
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or_else(|| SaslError::new("invalid SCRAM server final message"))?;
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or_else(|| SaslError::new("SCRAM server final message before the proof"))?;
        if bool::from(signature.ct_eq(expected)) {
            Ok(())
        } else {
            Err(SaslError::new("SCRAM server signature does not match"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslnames_unescape_as_kafka_does() {
        assert_eq!(unescape_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_saslname("a=2"), None);
        assert_eq!(unescape_saslname("a=41"), None);
        assert_eq!(unescape_saslname(""), None);
        assert_eq!(escape_saslname("a,b=c"), "a=2Cb=3Dc");
    }

    #[test]
    fn client_first_parsing() {
        let f = parse_client_first(b"n,,n=user,r=abc,tokenauth=false").expect("parses");
        assert_eq!(f.user, "user");
        assert_eq!(f.nonce, "abc");
        assert_eq!(f.gs2_header, "n,,");
        assert_eq!(f.bare, "n=user,r=abc,tokenauth=false");
        let f = parse_client_first(b"n,a=user,n=user,r=abc").expect("parses");
        assert_eq!(f.gs2_header, "n,a=user,");
        assert!(parse_client_first(b"n,a=other,n=user,r=abc").is_err());
        assert!(parse_client_first(b"y,,n=user,r=abc").is_err());
        assert!(parse_client_first(b"p=tls-unique,,n=user,r=abc").is_err());
        assert!(parse_client_first(b"n,,n=user,r=abc,tokenauth=true").is_err());
        assert!(parse_client_first(b"n,,n=user,r=").is_err());
        assert!(parse_client_first(b"n,,r=abc,n=user").is_err());
    }

    /// RFC 7677 §3's SCRAM-SHA-256 example: user `user`, password `pencil`.
    #[test]
    fn rfc7677_client_vector() {
        let mut c = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(c.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.finish(server_first).expect("finishes");
        assert_eq!(
            String::from_utf8(fin).expect("utf8"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("server signature");
        assert!(c.verify(b"v=AAAA").is_err());
        assert!(c.verify(b"e=invalid-proof").is_err());
    }
}
