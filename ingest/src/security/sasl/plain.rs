//! SASL/PLAIN (RFC 4616): one message, `authzid NUL user NUL password`, checked against the
//! user's SCRAM credentials (as Redpanda does, so one `kafka-configs --alter --add-config
//! SCRAM-SHA-256=[password=…]` serves both mechanisms): the password is salted with the stored
//! salt and iterations and the resulting stored key compared in constant time. Either SCRAM
//! credential of the user will do. Only over TLS is PLAIN safe: the password crosses the wire.

use tierlog_metadata::{SCRAM_MIN_ITERATIONS, ScramCredential, ScramMechanism};

use super::{SaslError, SaslStep, scram};
use crate::security::Principal;

/// Kafka's `PlainSaslServer` reply to a wrong user name or password (one message for both).
const INVALID: &str = "Authentication failed: Invalid username or password";

/// Splits `authzid\0user\0password`, as Kafka's `PlainSaslServer` does.
fn parse(msg: &[u8]) -> Result<(String, String), SaslError> {
    let text = std::str::from_utf8(msg)
        .map_err(|_| SaslError::new("Invalid SASL/PLAIN response: not UTF-8"))?;
    let tokens: Vec<&str> = text.split('\u{0}').collect();
    let [authzid, user, password] = tokens[..] else {
        return Err(SaslError::new(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            tokens.len()
        )));
    };
    if user.is_empty() {
        return Err(SaslError::new(
            "Authentication failed: username not specified",
        ));
    }
    if password.is_empty() {
        return Err(SaslError::new(
            "Authentication failed: password not specified",
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::new(
            "Authentication failed: Client requested an authorization id that is different \
             from username",
        ));
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// Runs the single PLAIN step.
pub(super) async fn step(auth: &super::Authenticator, msg: &[u8]) -> Result<SaslStep, SaslError> {
    let (user, password) = parse(msg)?;
    let creds = auth.credentials().list_user(&user).await.map_err(|e| {
        tracing::warn!(error = %e, "plain: cannot read credentials");
        SaslError::new("Authentication failed: credentials are unavailable")
    })?;
    let mut candidates: Vec<ScramCredential> = creds.into_iter().map(|v| v.value).collect();
    // An unknown user costs one PBKDF2 all the same, so timing does not tell it apart.
    let known = !candidates.is_empty();
    if !known {
        candidates.push(ScramCredential {
            user: user.clone(),
            mechanism: ScramMechanism::Sha256,
            salt: auth.fake_salt(&user),
            stored_key: vec![0; 32],
            server_key: vec![0; 32],
            iterations: SCRAM_MIN_ITERATIONS,
        });
    }
    // PBKDF2 is thousands of HMACs: off the async workers.
    let matched = tokio::task::spawn_blocking(move || {
        candidates
            .iter()
            .any(|c| scram::password_matches(c, password.as_bytes()))
    })
    .await
    .map_err(|e| SaslError::new(format!("Authentication failed: {e}")))?;
    if known && matched {
        Ok(SaslStep::Done {
            reply: Vec::new(),
            principal: Principal::user(user),
            expires_at_ms: None,
        })
    } else {
        Err(SaslError::new(INVALID))
    }
}

/// The PLAIN message a client sends: `\0user\0password` (no authzid).
pub(crate) fn plain_client_message(user: &str, password: &str) -> Vec<u8> {
    format!("\u{0}{user}\u{0}{password}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_follows_kafkas_plain_server() {
        assert_eq!(
            parse(b"\0alice\0pw").expect("parses"),
            ("alice".into(), "pw".into())
        );
        assert_eq!(
            parse(b"alice\0alice\0pw").expect("parses"),
            ("alice".into(), "pw".into())
        );
        for bad in [
            &b"bob\0alice\0pw"[..],
            b"\0\0pw",
            b"\0alice\0",
            b"alice\0pw",
            b"\0a\0b\0c",
            b"\0\xff\0pw",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(plain_client_message("u", "p"), b"\0u\0p");
    }
}
