//! SASL mechanisms, server side: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER, and the
//! SCRAM credentials they check.
//!
//! Lifecycle: the connection code (SaslHandshake/SaslAuthenticate framing) asks
//! [`Authenticator::is_enabled`] about the mechanism the client names, [`starts`]
//! (Authenticator::start) an exchange, and feeds it each SaslAuthenticate `auth_bytes` through
//! [`SaslExchange::step`] until it returns [`SaslStep::Done`] (the principal, and for
//! OAUTHBEARER the token's expiry, which bounds the session under KIP-368) or an error, whose
//! [`SaslError::message`] goes into SaslAuthenticate's `error_message` before the connection
//! closes. No message says whether a user exists: a wrong password and an unknown user fail
//! alike, at the same step.
//!
//! Credentials are SCRAM credentials in the metadata store ([`ScramRegistry`]), written by
//! AlterUserScramCredentials, by the bootstrap admin ([`bootstrap_admin`]) or by `tierlog user
//! add`; PLAIN checks its password against them too. Every exchange reads them afresh, so a
//! changed password applies to the next login on every node.
//!
//! # Layout
//!
//! - `plain` — PLAIN (RFC 4616) against SCRAM credentials; [`plain_client_message`].
//! - `scram` — SCRAM (RFC 5802/7677) server exchange, key derivation, and [`ScramClient`].
//! - `oauth` — OAUTHBEARER (RFC 7628): JWTs checked against a JWKS.

mod oauth;
mod plain;
mod scram;

use std::sync::Arc;

use tierlog_metadata::{
    MetadataStore, SCRAM_MIN_ITERATIONS, ScramCredential, ScramMechanism, ScramRegistry,
    SharedClock,
};

pub(crate) use oauth::{OAuthConfig, OAuthValidator};
// The client helpers are for tierlog's own connections (replication, the CLI) and tests.
#[allow(unused_imports)]
pub(crate) use plain::plain_client_message;
#[allow(unused_imports)]
pub(crate) use scram::{
    ScramClient, credential_from_password, credential_from_salted_password, random_bytes,
};

use crate::config::NodeConfig;
use crate::security::Principal;

/// A SASL mechanism the node can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    /// Every mechanism, in the order SaslHandshake lists enabled ones.
    pub(crate) const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::OAuthBearer,
    ];

    /// Kafka's name (`sasl.mechanism`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism named `s`; exact, as SASL mechanism names are case-sensitive (Kafka
    /// refuses `plain`).
    pub(crate) fn parse(s: &str) -> Option<Mechanism> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The SCRAM hash, for the SCRAM mechanisms.
    pub(crate) fn scram(self) -> Option<ScramMechanism> {
        match self {
            Mechanism::ScramSha256 => Some(ScramMechanism::Sha256),
            Mechanism::ScramSha512 => Some(ScramMechanism::Sha512),
            Mechanism::Plain | Mechanism::OAuthBearer => None,
        }
    }
}

/// The mechanisms `sasl_enabled_mechanisms` names, plus OAUTHBEARER when a JWKS is configured.
/// An unknown name, or OAUTHBEARER listed without a JWKS, is an error naming it.
pub(crate) fn enabled_mechanisms(config: &NodeConfig) -> Result<Vec<Mechanism>, String> {
    let mut enabled = Vec::new();
    for name in config
        .sasl_enabled_mechanisms
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let m = Mechanism::parse(name).ok_or_else(|| {
            format!(
                "unknown SASL mechanism `{name}` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
            )
        })?;
        if !enabled.contains(&m) {
            enabled.push(m);
        }
    }
    if config.sasl_oauthbearer_jwks.is_some() {
        if !enabled.contains(&Mechanism::OAuthBearer) {
            enabled.push(Mechanism::OAuthBearer);
        }
    } else if enabled.contains(&Mechanism::OAuthBearer) {
        return Err("OAUTHBEARER needs sasl_oauthbearer_jwks (a JWKS file or URL)".into());
    }
    Ok(enabled)
}

/// Why an exchange failed: the text for SaslAuthenticate's `error_message`. It never says
/// whether the user exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SaslError {
    pub(crate) message: String,
}

impl SaslError {
    /// An error with `message`.
    pub(crate) fn new(message: impl Into<String>) -> SaslError {
        SaslError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SaslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SaslError {}

/// What one step of an exchange produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SaslStep {
    /// Send these bytes back (SaslAuthenticate `auth_bytes`) and wait for the next message.
    Challenge(Vec<u8>),
    /// Authenticated: send `reply` (possibly empty) and treat the connection as `principal`
    /// from now on.
    Done {
        reply: Vec<u8>,
        /// `User:<name>`.
        principal: Principal,
        /// When the credential stops being valid (an OAUTHBEARER token's `exp`, ms since the
        /// epoch): KIP-368's session lifetime. `None` for passwords.
        expires_at_ms: Option<i64>,
    },
}

/// The node's authentication state, shared by every connection: where credentials are, how
/// tokens are validated, which mechanisms are on.
pub(crate) struct Authenticator {
    scram: ScramRegistry,
    oauth: Option<OAuthValidator>,
    enabled: Vec<Mechanism>,
    /// Keys the salt an unknown user is offered (so a probe gets the same salt every time,
    /// as it would for a real user). Random per process: nothing to configure or leak.
    fake_salt_key: Vec<u8>,
}

// No key material in logs: Debug shows what is enabled.
impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("enabled", &self.enabled)
            .field("oauth", &self.oauth.is_some())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authenticator for `config`: credentials in `store`, tokens checked against the
    /// configured JWKS (loaded at the first OAUTHBEARER login).
    pub(crate) fn new(
        store: Arc<dyn MetadataStore>,
        config: &NodeConfig,
        clock: SharedClock,
    ) -> anyhow::Result<Authenticator> {
        let enabled = enabled_mechanisms(config).map_err(|e| anyhow::anyhow!(e))?;
        let oauth = match &config.sasl_oauthbearer_jwks {
            Some(jwks) => Some(OAuthValidator::new(
                OAuthConfig {
                    jwks: jwks.clone(),
                    expected_issuer: config.sasl_oauthbearer_expected_issuer.clone(),
                    expected_audience: config.sasl_oauthbearer_expected_audience.clone(),
                    sub_claim_name: config.sasl_oauthbearer_sub_claim_name.clone(),
                },
                clock,
            )?),
            None => None,
        };
        Ok(Authenticator {
            scram: ScramRegistry::new(store),
            oauth,
            enabled,
            fake_salt_key: random_bytes(32)?,
        })
    }

    /// The enabled mechanisms (what SaslHandshake's `mechanisms` lists).
    pub(crate) fn enabled_mechanisms(&self) -> &[Mechanism] {
        &self.enabled
    }

    /// Whether `m` may be used (SaslHandshake answers UNSUPPORTED_SASL_MECHANISM otherwise).
    pub(crate) fn is_enabled(&self, m: Mechanism) -> bool {
        self.enabled.contains(&m)
    }

    /// The SCRAM credentials.
    pub(crate) fn credentials(&self) -> &ScramRegistry {
        &self.scram
    }

    /// The token validator, if a JWKS is configured.
    pub(crate) fn oauth(&self) -> Option<&OAuthValidator> {
        self.oauth.as_ref()
    }

    /// A new exchange of mechanism `m`.
    pub(crate) fn start(&self, m: Mechanism) -> SaslExchange {
        match m {
            Mechanism::Plain => SaslExchange::Plain { done: false },
            Mechanism::ScramSha256 => {
                SaslExchange::Scram(Box::new(scram::ScramExchange::new(ScramMechanism::Sha256)))
            }
            Mechanism::ScramSha512 => {
                SaslExchange::Scram(Box::new(scram::ScramExchange::new(ScramMechanism::Sha512)))
            }
            Mechanism::OAuthBearer => SaslExchange::OAuthBearer(oauth::OAuthExchange::First),
        }
    }

    /// The salt offered to a user without a credential: stable per name, unguessable.
    fn fake_salt(&self, user: &str) -> Vec<u8> {
        use hmac::Mac as _;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&self.fake_salt_key)
                .unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
        mac.update(user.as_bytes());
        mac.finalize().into_bytes()[..24].to_vec()
    }
}

/// One authentication exchange in progress on one connection.
pub(crate) enum SaslExchange {
    /// PLAIN: a single message.
    Plain { done: bool },
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(Box<scram::ScramExchange>),
    /// OAUTHBEARER.
    OAuthBearer(oauth::OAuthExchange),
}

impl SaslExchange {
    /// Feeds the client's next message (SaslAuthenticate `auth_bytes`). After an error or
    /// [`SaslStep::Done`] the exchange is over; any further message is refused. Never panics,
    /// whatever the bytes. Not cancel-safe in the middle of a step (drop the exchange and the
    /// connection together).
    pub(crate) async fn step(
        &mut self,
        auth: &Authenticator,
        client_message: &[u8],
    ) -> Result<SaslStep, SaslError> {
        match self {
            SaslExchange::Plain { done } => {
                if std::mem::replace(done, true) {
                    return Err(SaslError::new(
                        "Authentication failed: the PLAIN exchange is already complete",
                    ));
                }
                plain::step(auth, client_message).await
            }
            SaslExchange::Scram(s) => s.step(auth, client_message).await,
            SaslExchange::OAuthBearer(o) => o.step(auth, client_message).await,
        }
    }
}

/// Gives `user` SCRAM-SHA-256 and SCRAM-SHA-512 credentials for `password` if it has no
/// credential at all (the first admin of a SASL-only cluster, from `sasl_bootstrap_user` and
/// `sasl_bootstrap_password_file`). Create-only: a password changed since is never
/// overwritten, and two nodes starting at once create it once. Returns whether it created any.
pub(crate) async fn bootstrap_admin(
    store: Arc<dyn MetadataStore>,
    user: &str,
    password: &str,
) -> anyhow::Result<bool> {
    anyhow::ensure!(!user.is_empty(), "the bootstrap SASL user name is empty");
    anyhow::ensure!(!password.is_empty(), "the bootstrap SASL password is empty");
    let registry = ScramRegistry::new(store);
    if !registry.list_user(user).await?.is_empty() {
        return Ok(false);
    }
    let mut created = false;
    for m in ScramMechanism::ALL {
        let cred = derive(m, user, password, SCRAM_MIN_ITERATIONS).await?;
        created |= registry.put(&cred, None).await?.is_some();
    }
    Ok(created)
}

/// `Hi(password, salt, iterations)` as a client computes it for AlterUserScramCredentials.
#[cfg(test)]
pub(crate) fn scram_salted_password(
    m: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> Vec<u8> {
    scram::salted_password(m, password.as_bytes(), salt, iterations as u32)
}

/// `tierlog user add`: writes `user`'s credentials for `mechanisms` straight into the metadata
/// store at `metadata` (`embedded` under `data_dir`, or `etcd://…`), overwriting any it had.
/// For the embedded store only while the node is stopped (it holds the file open); with etcd
/// at any time, as AlterUserScramCredentials would (over TLS when `etcd_tls` has a CA).
/// Iterations: 4096..=16384.
pub async fn add_scram_user(
    metadata: &str,
    data_dir: &std::path::Path,
    etcd_tls: &tierlog_metadata::EtcdTls,
    user: &str,
    password: &str,
    mechanisms: &[ScramMechanism],
    iterations: i32,
) -> anyhow::Result<()> {
    anyhow::ensure!(!user.is_empty(), "the user name is empty");
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let url: tierlog_metadata::MetadataUrl = metadata.parse()?;
    let store = tierlog_metadata::open_store_with(&url, data_dir, etcd_tls).await?;
    let registry = ScramRegistry::new(store);
    for &m in mechanisms {
        let cred = derive(m, user, password, iterations).await?;
        registry.upsert(&cred).await?;
    }
    Ok(())
}

/// [`credential_from_password`] on a blocking thread (PBKDF2 is CPU work).
pub(crate) async fn derive(
    m: ScramMechanism,
    user: &str,
    password: &str,
    iterations: i32,
) -> anyhow::Result<ScramCredential> {
    let (user, password) = (user.to_owned(), password.to_owned());
    Ok(tokio::task::spawn_blocking(move || {
        credential_from_password(m, &user, &password, iterations)
    })
    .await??)
}

#[cfg(test)]
mod tests;
