//! DescribeUserScramCredentials (API 50) and AlterUserScramCredentials (API 51), KIP-554: what
//! `kafka-configs --entity-type users` and `Admin.describeUserScramCredentials` /
//! `alterUserScramCredentials` use. Semantics and error messages are those of Kafka's KRaft
//! `ScramImage.describe` and `ScramControlManager.alterCredentials`:
//!
//! - Describe: no users (null or empty) means every user with a credential; a user named twice
//!   gets DUPLICATE_RESOURCE, a user without credentials RESOURCE_NOT_FOUND. Only mechanisms and
//!   iterations are returned, never key material.
//! - Alter: each user may appear once in a request (a second deletion or upsertion of the same
//!   user fails it with DUPLICATE_RESOURCE); an empty name is UNACCEPTABLE_CREDENTIAL, an
//!   unknown mechanism UNSUPPORTED_SASL_MECHANISM, iterations outside 4096..=16384
//!   UNACCEPTABLE_CREDENTIAL, deleting a credential that does not exist RESOURCE_NOT_FOUND. The
//!   client sends the salted password; the node stores only the stored and server keys derived
//!   from it.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use tierlog_metadata::{SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS, ScramMechanism};
use tracing::warn;

use super::RequestContext;
use crate::protocol::str_bytes;
use crate::security::sasl::{Authenticator, credential_from_salted_password};
use tierlog_metadata::AclOperation;

/// Kafka's `ScramMechanism` type byte: 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512 (0 = unknown).
pub(crate) fn mechanism_type(m: ScramMechanism) -> i8 {
    match m {
        ScramMechanism::Sha256 => 1,
        ScramMechanism::Sha512 => 2,
    }
}

/// The mechanism of a type byte, `None` for unknown ones.
pub(crate) fn mechanism_of_type(t: i8) -> Option<ScramMechanism> {
    match t {
        1 => Some(ScramMechanism::Sha256),
        2 => Some(ScramMechanism::Sha512),
        _ => None,
    }
}

/// DescribeUserScramCredentials.
pub(super) async fn describe(
    ctx: &RequestContext<'_>,
    auth: &Authenticator,
    body: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let mut resp = DescribeUserScramCredentialsResponse::default().with_error_message(None);
    // Kafka: DESCRIBE on CLUSTER, else a top-level CLUSTER_AUTHORIZATION_FAILED, no results.
    if !ctx.cluster(AclOperation::Describe) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    let registry = auth.credentials();
    // user → named twice.
    let mut users: BTreeMap<String, bool> = BTreeMap::new();
    match body.users.filter(|u| !u.is_empty()) {
        None => match registry.list().await {
            Ok(all) => {
                for c in all {
                    users.insert(c.value.user, false);
                }
            }
            Err(e) => {
                warn!(error = %e, "describe scram credentials: cannot list");
                resp.error_code = ResponseError::UnknownServerError.code();
                resp.error_message = Some(str_bytes(&e.to_string()));
                return resp;
            }
        },
        Some(named) => {
            for u in named {
                let dup = users.contains_key(u.name.as_str());
                users.insert(u.name.to_string(), dup);
            }
        }
    }
    for (user, duplicate) in users {
        let mut result = DescribeUserScramCredentialsResult::default()
            .with_user(str_bytes(&user))
            .with_error_message(None);
        if duplicate {
            result.error_code = ResponseError::DuplicateResource.code();
            result.error_message = Some(str_bytes(&format!(
                "Cannot describe SCRAM credentials for the same user twice in a single request: \
                 {user}"
            )));
        } else {
            match registry.list_user(&user).await {
                Ok(creds) if !creds.is_empty() => {
                    result.credential_infos = creds
                        .into_iter()
                        .map(|c| {
                            CredentialInfo::default()
                                .with_mechanism(mechanism_type(c.value.mechanism))
                                .with_iterations(c.value.iterations)
                        })
                        .collect();
                }
                Ok(_) => {
                    result.error_code = ResponseError::ResourceNotFound.code();
                    result.error_message = Some(str_bytes(&format!(
                        "attemptToDescribeUserThatDoesNotExist: {user}"
                    )));
                }
                Err(e) => {
                    warn!(error = %e, user, "describe scram credentials: cannot read");
                    result.error_code = ResponseError::UnknownServerError.code();
                    result.error_message = Some(str_bytes(&e.to_string()));
                }
            }
        }
        resp.results.push(result);
    }
    resp
}

/// Kafka's `validateScramUsernameAndMechanism`.
fn validate_name_and_mechanism(
    name: &str,
    mechanism: i8,
) -> Result<ScramMechanism, (ResponseError, String)> {
    if name.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    mechanism_of_type(mechanism).ok_or((
        ResponseError::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism".into(),
    ))
}

/// AlterUserScramCredentials.
pub(super) async fn alter(
    ctx: &RequestContext<'_>,
    auth: &Authenticator,
    body: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Kafka: ALTER on CLUSTER, else every user of the request gets
    // CLUSTER_AUTHORIZATION_FAILED (one result per distinct user) and nothing is written.
    if !ctx.cluster(AclOperation::Alter) {
        let users: BTreeSet<String> = body
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(body.upsertions.iter().map(|u| u.name.to_string()))
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(
            users
                .into_iter()
                .map(|u| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(str_bytes(&u))
                        .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                })
                .collect(),
        );
    }
    let registry = auth.credentials();
    let duplicate = || {
        (
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request".to_owned(),
        )
    };
    let mut errors: BTreeMap<String, (ResponseError, String)> = BTreeMap::new();
    let mut deletions: BTreeMap<String, ScramCredentialDeletion> = BTreeMap::new();
    let mut upsertions: BTreeMap<String, ScramCredentialUpsertion> = BTreeMap::new();
    for d in body.deletions {
        let name = d.name.to_string();
        if errors.contains_key(&name) {
            continue;
        }
        if deletions.remove(&name).is_some() {
            errors.insert(name, duplicate());
            continue;
        }
        match validate_name_and_mechanism(&name, d.mechanism) {
            Err(e) => {
                errors.insert(name, e);
            }
            Ok(m) => match registry.get(&name, m).await {
                Ok(Some(_)) => {
                    deletions.insert(name, d);
                }
                Ok(None) => {
                    errors.insert(
                        name,
                        (
                            ResponseError::ResourceNotFound,
                            "Attempt to delete a user credential that does not exist".into(),
                        ),
                    );
                }
                Err(e) => {
                    errors.insert(name, (ResponseError::UnknownServerError, e.to_string()));
                }
            },
        }
    }
    for u in body.upsertions {
        let name = u.name.to_string();
        if errors.contains_key(&name) {
            continue;
        }
        if deletions.remove(&name).is_some() || upsertions.remove(&name).is_some() {
            errors.insert(name, duplicate());
            continue;
        }
        let checked = validate_name_and_mechanism(&name, u.mechanism).and_then(|m| {
            if u.iterations < SCRAM_MIN_ITERATIONS {
                Err((
                    ResponseError::UnacceptableCredential,
                    "Too few iterations".into(),
                ))
            } else if u.iterations > SCRAM_MAX_ITERATIONS {
                Err((
                    ResponseError::UnacceptableCredential,
                    "Too many iterations".into(),
                ))
            } else if u.salt.is_empty() || u.salted_password.is_empty() {
                Err((
                    ResponseError::UnacceptableCredential,
                    "Salt and salted password must not be empty".into(),
                ))
            } else {
                Ok(m)
            }
        });
        match checked {
            Ok(_) => {
                upsertions.insert(name, u);
            }
            Err(e) => {
                errors.insert(name, e);
            }
        }
    }

    let mut results = Vec::new();
    let mut done = BTreeSet::new();
    for (name, d) in deletions {
        let Some(m) = mechanism_of_type(d.mechanism) else {
            continue;
        };
        match registry.delete(&name, m, None).await {
            Ok(true) => {
                done.insert(name);
            }
            Ok(false) => {
                errors.insert(
                    name,
                    (
                        ResponseError::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist".into(),
                    ),
                );
            }
            Err(e) => {
                errors.insert(name, (ResponseError::UnknownServerError, e.to_string()));
            }
        }
    }
    for (name, u) in upsertions {
        let Some(m) = mechanism_of_type(u.mechanism) else {
            continue;
        };
        let cred =
            credential_from_salted_password(m, &name, &u.salt, &u.salted_password, u.iterations);
        match registry.upsert(&cred).await {
            Ok(_) => {
                done.insert(name);
            }
            Err(e) => {
                errors.insert(name, (ResponseError::UnknownServerError, e.to_string()));
            }
        }
    }
    for name in done {
        results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(str_bytes(&name))
                .with_error_message(None),
        );
    }
    for (name, (code, message)) in errors {
        results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(str_bytes(&name))
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(&message))),
        );
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

    use super::*;
    use crate::broker::testing::TestBroker;
    use crate::security::sasl::{Mechanism, SaslStep, ScramClient};

    fn upsert(
        name: &str,
        mechanism: i8,
        iterations: i32,
        password: &str,
    ) -> ScramCredentialUpsertion {
        let salt = b"0123456789abcdef".to_vec();
        let salted = match mechanism_of_type(mechanism) {
            Some(m) => crate::security::sasl::scram_salted_password(m, password, &salt, iterations),
            None => vec![1; 32],
        };
        ScramCredentialUpsertion::default()
            .with_name(str_bytes(name))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(salt.into())
            .with_salted_password(salted.into())
    }

    fn delete(name: &str, mechanism: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(str_bytes(name))
            .with_mechanism(mechanism)
    }

    async fn alter(
        b: &TestBroker,
        deletions: Vec<ScramCredentialDeletion>,
        upsertions: Vec<ScramCredentialUpsertion>,
    ) -> BTreeMap<String, (i16, Option<String>)> {
        let resp: AlterUserScramCredentialsResponse = b
            .request(
                ApiKey::AlterUserScramCredentials,
                0,
                &AlterUserScramCredentialsRequest::default()
                    .with_deletions(deletions)
                    .with_upsertions(upsertions),
            )
            .await;
        resp.results
            .into_iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    (r.error_code, r.error_message.map(|m| m.to_string())),
                )
            })
            .collect()
    }

    async fn describe(
        b: &TestBroker,
        users: Option<Vec<&str>>,
    ) -> Vec<(String, i16, Vec<(i8, i32)>)> {
        let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.into_iter()
                .map(|n| UserName::default().with_name(str_bytes(n)))
                .collect()
        }));
        let resp: DescribeUserScramCredentialsResponse = b
            .request(ApiKey::DescribeUserScramCredentials, 0, &req)
            .await;
        assert_eq!(resp.error_code, 0);
        resp.results
            .into_iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.error_code,
                    r.credential_infos
                        .iter()
                        .map(|c| (c.mechanism, c.iterations))
                        .collect(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn alter_and_describe_follow_kafka() {
        let b = TestBroker::start().await;
        let ok = alter(
            &b,
            vec![],
            vec![
                upsert("alice", 2, 4096, "secret"),
                upsert("bob", 1, 8192, "pw"),
            ],
        )
        .await;
        assert_eq!(ok["alice"], (0, None));
        assert_eq!(ok["bob"], (0, None));

        // One alteration per user and request; the errors of validation.
        let errs = alter(
            &b,
            vec![delete("carol", 1), delete("", 1)],
            vec![
                upsert("alice", 1, 4096, "x"),
                upsert("alice", 2, 4096, "y"),
                upsert("dave", 3, 4096, "x"),
                upsert("erin", 1, 4095, "x"),
                upsert("frank", 2, 16385, "x"),
            ],
        )
        .await;
        let code = |u: &str| errs[u].0;
        assert_eq!(code("alice"), ResponseError::DuplicateResource.code());
        assert_eq!(code("carol"), ResponseError::ResourceNotFound.code());
        assert_eq!(code(""), ResponseError::UnacceptableCredential.code());
        assert_eq!(code("dave"), ResponseError::UnsupportedSaslMechanism.code());
        assert_eq!(code("erin"), ResponseError::UnacceptableCredential.code());
        assert_eq!(errs["erin"].1.as_deref(), Some("Too few iterations"));
        assert_eq!(code("frank"), ResponseError::UnacceptableCredential.code());

        // Nothing of the refused request was written.
        assert_eq!(
            describe(&b, None).await,
            vec![
                ("alice".into(), 0, vec![(2, 4096)]),
                ("bob".into(), 0, vec![(1, 8192)]),
            ]
        );
        let named = describe(&b, Some(vec!["alice", "zed", "bob", "bob"])).await;
        assert_eq!(
            named,
            vec![
                ("alice".into(), 0, vec![(2, 4096)]),
                (
                    "bob".into(),
                    ResponseError::DuplicateResource.code(),
                    vec![]
                ),
                ("zed".into(), ResponseError::ResourceNotFound.code(), vec![]),
            ]
        );

        // The credential the API wrote logs in with SCRAM (the salted password was the
        // client's), and a deletion removes it.
        let auth = &b.broker.authenticator;
        let mut client = ScramClient::new(ScramMechanism::Sha512, "alice", "secret").unwrap();
        let mut ex = auth.start(Mechanism::ScramSha512);
        let SaslStep::Challenge(sf) = ex.step(auth, &client.first()).await.unwrap() else {
            panic!("challenge")
        };
        let fin = client.finish(&sf).unwrap();
        let SaslStep::Done { reply, .. } = ex.step(auth, &fin).await.unwrap() else {
            panic!("done")
        };
        client.verify(&reply).unwrap();

        let del = alter(&b, vec![delete("alice", 2)], vec![]).await;
        assert_eq!(del["alice"], (0, None));
        assert_eq!(
            describe(&b, Some(vec!["alice"])).await[0].1,
            ResponseError::ResourceNotFound.code()
        );
    }
}
