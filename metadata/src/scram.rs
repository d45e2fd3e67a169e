//! SCRAM credentials: what a node needs to check a SCRAM (RFC 5802) or PLAIN login, and never
//! the password itself.
//!
//! One [`ScramCredential`] per user per mechanism, as Kafka keeps them (a user may have a
//! SCRAM-SHA-256 credential, a SCRAM-SHA-512 one, or both). AlterUserScramCredentials writes
//! them, DescribeUserScramCredentials lists them (mechanism and iterations only), and the SASL
//! mechanisms read them at every login, so a change applies to the next connection anywhere in
//! the cluster. Writes are compare-and-swap like every registry's: [`put`](ScramRegistry::put)
//! with `None` creates only if absent (the bootstrap admin must not overwrite a password an
//! operator has since changed), with `Some(rev)` only over the value that was read.
//!
//! Keys: `/tierlog/scram/<user, percent-encoded>/<mechanism>` → JSON [`ScramCredential`], with
//! `%` → `%25` and `/` → `%2F` in the user name so that one user's prefix never holds another's
//! keys. The salt and keys are base64 in the JSON.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::partition_state::{Versioned, decode_versioned};
use crate::store::{Compare, KeyValue, MetadataStore, Op, Precondition};

/// Where SCRAM credentials live: `/tierlog/scram/<percent-encoded user>/<mechanism>`.
pub const SCRAM_PREFIX: &str = "/tierlog/scram/";

/// Fewest PBKDF2 iterations a credential may have (Kafka's `ScramMechanism.minIterations`):
/// fewer make an offline guess of a stolen credential cheap.
pub const SCRAM_MIN_ITERATIONS: i32 = 4096;

/// Most PBKDF2 iterations a credential may have (Kafka's `ScramMechanism.maxIterations`):
/// every PLAIN login of the user derives the key again, so more costs the node CPU per login.
pub const SCRAM_MAX_ITERATIONS: i32 = 16384;

/// Reads and compare-and-swap deletes tried by an unconditional delete before giving up.
const MAX_DELETE_ATTEMPTS: usize = 16;

/// A SCRAM hash function, named as Kafka names the SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (RFC 7677).
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms, SHA-256 first.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// Kafka's mechanism name.
    ///
    /// ```
    /// use tierlog_metadata::ScramMechanism;
    /// assert_eq!(ScramMechanism::Sha512.name(), "SCRAM-SHA-512");
    /// assert_eq!(ScramMechanism::parse("SCRAM-SHA-256"), Some(ScramMechanism::Sha256));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `s` (exactly, as SASL mechanism names are case-sensitive).
    pub fn parse(s: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// One user's credential for one mechanism (RFC 5802 §3): enough to verify a client's proof
/// and to prove the server knows it, not enough to log in as the user.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The user name (the principal's name: `User:<user>`), not empty; names the key.
    pub user: String,
    /// The hash function.
    pub mechanism: ScramMechanism,
    /// The PBKDF2 salt.
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    /// `H(HMAC(SaltedPassword, "Client Key"))`: what a client's proof is checked against.
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`: signs the server-final message.
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations, [`SCRAM_MIN_ITERATIONS`]..=[`SCRAM_MAX_ITERATIONS`].
    pub iterations: i32,
}

// Keys are secrets: `Debug` shows who and how, never the key material.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Checks what the registry refuses to store: an empty user, iterations out of Kafka's
    /// range, an empty salt or keys.
    pub fn validate(&self) -> Result<()> {
        if self.user.is_empty() {
            return Err(Error::invalid("scram credential user name is empty"));
        }
        if !(SCRAM_MIN_ITERATIONS..=SCRAM_MAX_ITERATIONS).contains(&self.iterations) {
            return Err(Error::invalid(format!(
                "scram credential of `{}`: iterations must be {SCRAM_MIN_ITERATIONS} to \
                 {SCRAM_MAX_ITERATIONS}, got {}",
                self.user, self.iterations
            )));
        }
        if self.salt.is_empty() || self.stored_key.is_empty() || self.server_key.is_empty() {
            return Err(Error::invalid(format!(
                "scram credential of `{}`: empty salt or key",
                self.user
            )));
        }
        Ok(())
    }
}

/// Base64 (standard alphabet, padded) for the byte fields.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Percent-encodes the two characters that would break a key segment: `%` and `/`.
fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

/// SCRAM credentials by user and mechanism, under `/tierlog/scram/`.
///
/// ```
/// use std::sync::Arc;
/// use tierlog_metadata::{MemoryStore, ScramCredential, ScramMechanism, ScramRegistry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let scram = ScramRegistry::new(Arc::new(MemoryStore::new()));
/// let cred = ScramCredential {
///     user: "alice".into(),
///     mechanism: ScramMechanism::Sha256,
///     salt: vec![1; 16],
///     stored_key: vec![2; 32],
///     server_key: vec![3; 32],
///     iterations: 4096,
/// };
/// let created = scram.put(&cred, None).await?.expect("created");
/// assert_eq!(scram.put(&cred, None).await?, None, "create-only");
/// assert_eq!(scram.get("alice", ScramMechanism::Sha256).await?, Some(created.clone()));
/// assert_eq!(scram.list_user("alice").await?.len(), 1);
/// assert!(scram.delete("alice", ScramMechanism::Sha256, Some(created.mod_revision as i64)).await?);
/// assert!(scram.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ScramRegistry {
    store: Arc<dyn MetadataStore>,
}

impl ScramRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    /// The prefix of one user's keys: `/tierlog/scram/<user with % → %25, / → %2F>/`.
    pub fn user_prefix(user: &str) -> String {
        format!("{SCRAM_PREFIX}{}/", escape(user))
    }

    /// Key: `/tierlog/scram/<user with % → %25, / → %2F>/<mechanism name>`.
    pub fn key(user: &str, mechanism: ScramMechanism) -> String {
        format!("{}{}", Self::user_prefix(user), mechanism.name())
    }

    /// The user's credential for `mechanism` and its mod revision, if any (`None` for the
    /// empty user, which can never be stored).
    pub async fn get(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<Versioned<ScramCredential>>> {
        if user.is_empty() {
            return Ok(None);
        }
        match self.store.get(&Self::key(user, mechanism)).await? {
            Some(kv) => decode_credential(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Compare-and-swap on the credential's key: with `None`, creates it only if absent; with
    /// `Some(rev)`, writes only if the stored value's mod revision is still `rev`. Ok(Some(the
    /// value as stored)) on success, Ok(None) if the comparison failed.
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for a credential
    /// [`ScramCredential::validate`] refuses, or a negative revision.
    pub async fn put(
        &self,
        cred: &ScramCredential,
        expected_mod_revision: Option<i64>,
    ) -> Result<Option<Versioned<ScramCredential>>> {
        cred.validate()?;
        let key = Self::key(&cred.user, cred.mechanism);
        let compare = match expected_mod_revision {
            None => Compare::absent(&key),
            Some(rev) => Compare::mod_revision(&key, revision(rev)?),
        };
        let value = crate::registry::encode_json(&key, cred)?;
        let result = self
            .store
            .txn(vec![compare], vec![Op::put(&key, value)])
            .await?;
        Ok(result.succeeded.then(|| Versioned {
            value: cred.clone(),
            mod_revision: result.revision,
        }))
    }

    /// Writes the credential whatever is stored (AlterUserScramCredentials' upsert: the last
    /// writer wins, as in Kafka).
    pub async fn upsert(&self, cred: &ScramCredential) -> Result<Versioned<ScramCredential>> {
        cred.validate()?;
        let key = Self::key(&cred.user, cred.mechanism);
        let value = crate::registry::encode_json(&key, cred)?;
        let result = self.store.txn(vec![], vec![Op::put(&key, value)]).await?;
        Ok(Versioned {
            value: cred.clone(),
            mod_revision: result.revision,
        })
    }

    /// Deletes the user's credential for `mechanism`: with `Some(rev)` only if its mod
    /// revision is still `rev`, with `None` whatever it is. Returns whether a credential was
    /// deleted.
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for a negative revision.
    pub async fn delete(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        expected_mod_revision: Option<i64>,
    ) -> Result<bool> {
        if user.is_empty() {
            return Ok(false);
        }
        let key = Self::key(user, mechanism);
        if let Some(rev) = expected_mod_revision {
            let compare = Compare::mod_revision(&key, revision(rev)?);
            let result = self
                .store
                .txn(vec![compare], vec![Op::delete(&key)])
                .await?;
            return Ok(result.succeeded);
        }
        // Unconditional, yet reporting whether something was deleted: delete the revision
        // read, re-reading if another writer got in between.
        let mut last = 0;
        for _ in 0..MAX_DELETE_ATTEMPTS {
            let Some(kv) = self.store.get(&key).await? else {
                return Ok(false);
            };
            last = kv.mod_revision;
            let compare = Compare::mod_revision(&key, kv.mod_revision);
            if self
                .store
                .txn(vec![compare], vec![Op::delete(&key)])
                .await?
                .succeeded
            {
                return Ok(true);
            }
        }
        Err(Error::Conflict {
            key,
            expected: Precondition::ModRevision(last),
        })
    }

    /// The user's credentials, SHA-256 first.
    pub async fn list_user(&self, user: &str) -> Result<Vec<Versioned<ScramCredential>>> {
        if user.is_empty() {
            return Ok(Vec::new());
        }
        let mut creds = self
            .store
            .list(&Self::user_prefix(user))
            .await?
            .iter()
            .map(decode_credential)
            .collect::<Result<Vec<_>>>()?;
        creds.sort_by_key(|c| c.value.mechanism);
        Ok(creds)
    }

    /// Every credential, sorted by user then mechanism.
    pub async fn list(&self) -> Result<Vec<Versioned<ScramCredential>>> {
        let mut creds = self
            .store
            .list(SCRAM_PREFIX)
            .await?
            .iter()
            .map(decode_credential)
            .collect::<Result<Vec<_>>>()?;
        creds.sort_by(|a, b| {
            (&a.value.user, a.value.mechanism).cmp(&(&b.value.user, b.value.mechanism))
        });
        Ok(creds)
    }
}

/// A stored mod revision from the `i64` callers pass.
fn revision(rev: i64) -> Result<u64> {
    u64::try_from(rev).map_err(|_| Error::invalid(format!("mod revision is negative: {rev}")))
}

/// Decodes a stored credential and checks that it sits under its own key.
fn decode_credential(kv: &KeyValue) -> Result<Versioned<ScramCredential>> {
    let cred: Versioned<ScramCredential> = decode_versioned(kv)?;
    let expected = ScramRegistry::key(&cred.value.user, cred.value.mechanism);
    if kv.key != expected {
        return Err(Error::Corrupt {
            key: kv.key.clone(),
            message: format!("holds the scram credential of `{expected}`"),
        });
    }
    Ok(cred)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedStore;
    use crate::error::ErrorKind;
    use crate::memory::MemoryStore;

    fn cred(user: &str, mechanism: ScramMechanism, iterations: i32) -> ScramCredential {
        ScramCredential {
            user: user.into(),
            mechanism,
            salt: b"salt".to_vec(),
            stored_key: vec![7; 32],
            server_key: vec![9; 32],
            iterations,
        }
    }

    async fn registry_semantics(store: Arc<dyn MetadataStore>) {
        let scram = ScramRegistry::new(store);
        let a256 = cred("alice", ScramMechanism::Sha256, 4096);
        let a512 = cred("alice", ScramMechanism::Sha512, 8192);
        // A user whose name is alice's prefix must not show up in alice's list.
        let other = cred("alice/x", ScramMechanism::Sha256, 4096);

        let v1 = scram.put(&a256, None).await.unwrap().expect("created");
        assert_eq!(scram.put(&a256, None).await.unwrap(), None);
        scram.put(&a512, None).await.unwrap().expect("created");
        scram.put(&other, None).await.unwrap().expect("created");

        let listed = scram.list_user("alice").await.unwrap();
        assert_eq!(
            listed.iter().map(|c| c.value.clone()).collect::<Vec<_>>(),
            vec![a256.clone(), a512.clone()]
        );
        assert_eq!(scram.list().await.unwrap().len(), 3);

        // CAS update: the revision read wins once.
        let changed = ScramCredential {
            iterations: 10_000,
            ..a256.clone()
        };
        let rev = v1.mod_revision as i64;
        let v2 = scram.put(&changed, Some(rev)).await.unwrap().expect("cas");
        assert_eq!(scram.put(&changed, Some(rev)).await.unwrap(), None);
        assert_eq!(
            scram.get("alice", ScramMechanism::Sha256).await.unwrap(),
            Some(v2.clone())
        );

        // Upsert overwrites whatever is stored.
        scram.upsert(&a256).await.unwrap();
        assert_eq!(
            scram
                .get("alice", ScramMechanism::Sha256)
                .await
                .unwrap()
                .expect("present")
                .value,
            a256
        );

        // Deletes: a stale revision refused, unconditional works once.
        assert!(
            !scram
                .delete("alice", ScramMechanism::Sha256, Some(rev))
                .await
                .unwrap()
        );
        assert!(
            scram
                .delete("alice", ScramMechanism::Sha256, None)
                .await
                .unwrap()
        );
        assert!(
            !scram
                .delete("alice", ScramMechanism::Sha256, None)
                .await
                .unwrap()
        );
        assert_eq!(
            scram.get("alice", ScramMechanism::Sha256).await.unwrap(),
            None
        );
        assert_eq!(scram.get("", ScramMechanism::Sha256).await.unwrap(), None);
    }

    #[tokio::test]
    async fn scram_registry_memory() {
        registry_semantics(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn scram_registry_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        registry_semantics(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn iterations_outside_kafkas_range_are_refused() {
        let scram = ScramRegistry::new(Arc::new(MemoryStore::new()));
        for bad in [0, 4095, 16385] {
            let err = scram
                .put(&cred("bob", ScramMechanism::Sha512, bad), None)
                .await
                .expect_err("refused");
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad}");
        }
        let err = scram
            .upsert(&cred("", ScramMechanism::Sha512, 4096))
            .await
            .expect_err("empty user");
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn key_layout_and_json_shape() {
        assert_eq!(
            ScramRegistry::key("a/b%c", ScramMechanism::Sha512),
            "/tierlog/scram/a%2Fb%25c/SCRAM-SHA-512"
        );
        let json = serde_json::to_value(cred("u", ScramMechanism::Sha256, 4096)).unwrap();
        assert_eq!(json["mechanism"], "SCRAM-SHA-256");
        assert_eq!(json["salt"], "c2FsdA==");
        assert!(json.get("password").is_none());
        let debug = format!("{:?}", cred("u", ScramMechanism::Sha256, 4096));
        assert!(!debug.contains("stored_key"), "{debug}");
    }
}
