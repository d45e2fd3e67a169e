//! SASL/OAUTHBEARER (RFC 7628) with signed-JWT validation, as Kafka's
//! `OAuthBearerValidatorCallbackHandler` (KIP-768) does it: the client-first message
//! `n,[a=<authzid>],\x01auth=Bearer <jwt>\x01[key=value\x01]*\x01` carries a JWT signed by an
//! identity provider; the node checks its signature against the provider's JWKS, its `iss`,
//! `aud`, `exp` and `nbf`, and takes the principal from the `sub` claim (or the claim
//! `sasl_oauthbearer_sub_claim_name` names). The token's `exp` bounds the session (KIP-368
//! re-authentication).
//!
//! A token that fails gets RFC 7628's error challenge `{"status":"invalid_token"}`; the client
//! answers `\x01` and the exchange fails with that same text, as Kafka's
//! `OAuthBearerSaslServer` does.
//!
//! The JWKS comes from a file or an http(s) URL. It is loaded at the first login, reloaded
//! when older than [`JWKS_REFRESH`] (Kafka's `sasl.oauthbearer.jwks.endpoint.refresh.ms`), and
//! reloaded early (at most every [`JWKS_RELOAD_BACKOFF`]) when a token names a key id the set
//! does not have, so a provider's key rotation is picked up without a restart. A reload that
//! fails keeps the keys already loaded.

use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tierlog_metadata::SharedClock;

use super::{SaslError, SaslStep};
use crate::security::Principal;

/// How long a loaded JWKS is used before it is fetched again (Kafka's default: one hour).
pub(crate) const JWKS_REFRESH: Duration = Duration::from_secs(3600);

/// Least time between two reloads prompted by an unknown key id: a client sending made-up key
/// ids must not turn the node into a load generator against the identity provider.
pub(crate) const JWKS_RELOAD_BACKOFF: Duration = Duration::from_secs(10);

/// How far `exp` and `nbf` may be off the node's clock (Kafka's
/// `sasl.oauthbearer.clock.skew.seconds`, 30).
const CLOCK_SKEW_MS: i64 = 30_000;

/// How long fetching a JWKS over http(s) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// RFC 7628 §3.2.2's error reply, as Kafka sends it.
pub(super) const INVALID_TOKEN: &str = r#"{"status":"invalid_token"}"#;

/// Asymmetric algorithms only: with an HMAC algorithm a public key from the JWKS would be
/// usable as a shared secret (the classic "alg confusion" forgery); `none` is not an
/// [`Algorithm`] at all.
const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// How tokens are checked: from the node's `sasl_oauthbearer_*` settings.
#[derive(Clone, Debug)]
pub(crate) struct OAuthConfig {
    /// A JWKS file path, or an `http://`/`https://` URL.
    pub(crate) jwks: String,
    /// The `iss` every token must carry, if set.
    pub(crate) expected_issuer: Option<String>,
    /// A value the token's `aud` must contain, if set.
    pub(crate) expected_audience: Option<String>,
    /// The claim naming the principal (Kafka's `sasl.oauthbearer.sub.claim.name`).
    pub(crate) sub_claim_name: String,
}

/// The loaded key set and when it was loaded (ms on the node's clock).
struct Loaded {
    keys: JwkSet,
    loaded_ms: i64,
}

/// Validates bearer tokens; shared by every connection of the node.
pub(crate) struct OAuthValidator {
    config: OAuthConfig,
    clock: SharedClock,
    http: reqwest::Client,
    /// The JWKS in use. A mutex (not a lock per read) so that many logins arriving when the
    /// set is stale cause one fetch, not one each; held across the fetch for that reason.
    keys: tokio::sync::Mutex<Option<Loaded>>,
    /// When a reload was last attempted (ms), successful or not: the backoff's reference.
    last_attempt_ms: std::sync::atomic::AtomicI64,
}

/// A token that passed every check.
pub(crate) struct ValidToken {
    /// The principal's name (the `sub` claim or its configured replacement).
    pub(crate) principal: String,
    /// `exp`, in ms since the epoch.
    pub(crate) expires_at_ms: i64,
}

impl OAuthValidator {
    /// A validator for `config`; nothing is loaded until the first token.
    pub(crate) fn new(config: OAuthConfig, clock: SharedClock) -> anyhow::Result<OAuthValidator> {
        let http = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
        Ok(OAuthValidator {
            config,
            clock,
            http,
            keys: tokio::sync::Mutex::new(None),
            last_attempt_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        })
    }

    /// Reads the JWKS from its file or URL.
    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        let src = &self.config.jwks;
        let text = if src.starts_with("http://") || src.starts_with("https://") {
            self.http
                .get(src)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?
        } else {
            tokio::fs::read_to_string(src).await?
        };
        Ok(serde_json::from_str(&text)?)
    }

    /// The key for `kid` (or the only key, for a token without a key id), reloading the set
    /// when it is stale or lacks the key.
    async fn key(&self, kid: Option<&str>) -> Option<Jwk> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => match set.keys.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            },
        };
        let now = self.clock.now_ms();
        let mut guard = self.keys.lock().await;
        let fresh = guard
            .as_ref()
            .is_some_and(|l| now - l.loaded_ms < JWKS_REFRESH.as_millis() as i64);
        if fresh && let Some(key) = guard.as_ref().and_then(|l| pick(&l.keys)) {
            return Some(key);
        }
        let last = self
            .last_attempt_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let may_reload = guard.is_none()
            || !fresh
            || now.saturating_sub(last) >= JWKS_RELOAD_BACKOFF.as_millis() as i64;
        if may_reload {
            self.last_attempt_ms
                .store(now, std::sync::atomic::Ordering::Relaxed);
            match self.fetch().await {
                Ok(keys) => {
                    *guard = Some(Loaded {
                        keys,
                        loaded_ms: now,
                    });
                }
                Err(e) => {
                    tracing::warn!(jwks = %self.config.jwks, error = %e,
                        "oauthbearer: cannot load the JWKS; keeping the keys loaded before");
                }
            }
        }
        guard.as_ref().and_then(|l| pick(&l.keys))
    }

    /// Checks a token: signature, algorithm, `iss`, `aud`, `exp`, `nbf`, and the principal
    /// claim. The error is for the node's log, never for the client.
    pub(crate) async fn validate(&self, token: &str) -> Result<ValidToken, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("bad header: {e}"))?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let jwk = self
            .key(header.kid.as_deref())
            .await
            .ok_or_else(|| format!("no key in the JWKS for kid {:?}", header.kid))?;
        if let Some(alg) = jwk.common.key_algorithm
            && alg.to_string() != format!("{:?}", header.alg)
        {
            return Err(format!("key is for {alg}, token is {:?}", header.alg));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable JWK: {e}"))?;
        let mut validation = Validation::new(header.alg);
        // exp and nbf are checked below against the node's clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp"]);
        match &self.config.expected_issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.config.expected_audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| format!("rejected: {e}"))?;
        let claims = data.claims;
        let seconds = |name: &str| -> Result<Option<i64>, String> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(|s| Some((s * 1000.0) as i64))
                    .ok_or_else(|| format!("`{name}` is not a number")),
            }
        };
        let now = self.clock.now_ms();
        let exp = seconds("exp")?.ok_or("no `exp`")?;
        if exp + CLOCK_SKEW_MS <= now {
            return Err(format!("expired at {exp} ms, now {now} ms"));
        }
        if let Some(nbf) = seconds("nbf")?
            && nbf - CLOCK_SKEW_MS > now
        {
            return Err(format!("not valid before {nbf} ms, now {now} ms"));
        }
        let principal = claims
            .get(&self.config.sub_claim_name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no `{}` claim", self.config.sub_claim_name))?;
        Ok(ValidToken {
            principal: principal.to_owned(),
            expires_at_ms: exp,
        })
    }
}

/// The parts of the client-first message.
struct ClientFirst {
    authzid: Option<String>,
    token: String,
}

/// Parses `n,[a=<authzid>],\x01auth=Bearer <token>\x01[k=v\x01]*\x01` (RFC 7628 §3.1).
fn parse_client_first(msg: &[u8]) -> Option<ClientFirst> {
    let text = std::str::from_utf8(msg).ok()?;
    let rest = text.strip_prefix("n,")?;
    let (authzid, rest) = rest.split_once(',')?;
    let authzid = match authzid {
        "" => None,
        a => Some(a.strip_prefix("a=")?.to_owned()),
    };
    let body = rest.strip_prefix('\u{1}')?.strip_suffix("\u{1}\u{1}")?;
    let mut token = None;
    for kv in body.split('\u{1}') {
        let (key, value) = kv.split_once('=')?;
        if key == "auth" {
            let (scheme, t) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") || t.is_empty() || token.is_some() {
                return None;
            }
            token = Some(t.trim().to_owned());
        } else if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
    }
    Some(ClientFirst {
        authzid,
        token: token?,
    })
}

/// Where one OAUTHBEARER exchange is.
pub(crate) enum OAuthExchange {
    /// Waiting for the client-first message.
    First,
    /// The error challenge was sent; the client's `\x01` ends the exchange in failure.
    Failed,
    /// Finished.
    Finished,
}

impl OAuthExchange {
    /// Feeds one client message.
    pub(super) async fn step(
        &mut self,
        auth: &super::Authenticator,
        msg: &[u8],
    ) -> Result<SaslStep, SaslError> {
        match std::mem::replace(self, OAuthExchange::Finished) {
            OAuthExchange::First => {
                let Some(validator) = auth.oauth() else {
                    return Err(SaslError::new(
                        "Authentication failed: OAUTHBEARER is not configured on this node",
                    ));
                };
                let Some(first) = parse_client_first(msg) else {
                    return Err(SaslError::new("Invalid OAUTHBEARER client first message"));
                };
                match validator.validate(&first.token).await {
                    Ok(valid) if first.authzid.as_ref().is_none_or(|a| *a == valid.principal) => {
                        Ok(SaslStep::Done {
                            reply: Vec::new(),
                            principal: Principal::user(valid.principal),
                            expires_at_ms: Some(valid.expires_at_ms),
                        })
                    }
                    Ok(_) => {
                        tracing::info!("oauthbearer: authzid differs from the token's principal");
                        *self = OAuthExchange::Failed;
                        Ok(SaslStep::Challenge(INVALID_TOKEN.as_bytes().to_vec()))
                    }
                    Err(reason) => {
                        tracing::info!(%reason, "oauthbearer: token refused");
                        *self = OAuthExchange::Failed;
                        Ok(SaslStep::Challenge(INVALID_TOKEN.as_bytes().to_vec()))
                    }
                }
            }
            OAuthExchange::Failed | OAuthExchange::Finished => Err(SaslError::new(INVALID_TOKEN)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_parsing() {
        let m = parse_client_first(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01").expect("parses");
        assert_eq!(m.token, "abc.def.ghi");
        assert_eq!(m.authzid, None);
        let m = parse_client_first(b"n,a=bob,\x01host=x\x01auth=bearer t\x01\x01").expect("ok");
        assert_eq!(m.authzid.as_deref(), Some("bob"));
        for bad in [
            &b"n,,\x01auth=Bearer t\x01"[..],
            b"y,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01host=x\x01\x01",
            b"n,,\x01auth=Bearer a\x01auth=Bearer b\x01\x01",
            b"n,,auth=Bearer t\x01\x01",
        ] {
            assert!(parse_client_first(bad).is_none(), "{bad:?}");
        }
    }
}
