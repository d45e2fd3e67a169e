//! A connection's SASL state: SaslHandshake and SaslAuthenticate as Kafka's
//! `SaslServerAuthenticator` handles them, before and (KIP-368) after authentication.
//!
//! On a SASL listener the first requests must be, in order: ApiVersions (optional, any
//! number), SaslHandshake naming an enabled mechanism, then SaslAuthenticate until the
//! mechanism is done. Anything else before that closes the connection, as in Kafka. A failed
//! exchange is answered with SASL_AUTHENTICATION_FAILED and the connection closed.
//!
//! **Re-authentication (KIP-368).** With `connections_max_reauth` set, or a credential that
//! expires (an OAUTHBEARER token), SaslAuthenticate's response carries the session lifetime;
//! the client re-authenticates on the same connection (a new SaslHandshake with the same
//! mechanism, then SaslAuthenticate) before it runs out. A request other than SaslHandshake
//! that arrives after the session expired closes the connection. Re-authentication may not
//! change the principal.
//!
//! On listeners without SASL, SaslHandshake and SaslAuthenticate get ILLEGAL_SASL_STATE.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info};

use crate::api::{Pending, Reply};
use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::protocol::{self, ReplyTo};
use crate::security::Session;
use crate::security::sasl::{Mechanism, SaslExchange, SaslStep};

/// What the connection does with a frame the SASL state machine looked at.
pub(super) enum Intercept {
    /// Not a SASL matter: dispatch it as usual.
    Pass,
    /// Queue this reply.
    Reply(Pending),
    /// Queue this reply, then close the connection.
    ReplyAndClose(Pending),
    /// Close the connection without a reply.
    Close,
}

enum Phase {
    /// Waiting for SaslHandshake (ApiVersions allowed).
    Handshake,
    /// Handshake done: waiting for the first SaslAuthenticate of `mechanism`.
    Authenticate(Mechanism),
    /// An exchange in progress.
    Exchange(Mechanism, Box<SaslExchange>),
    /// Authenticated with `mechanism`.
    Done(Mechanism),
}

/// One connection's authentication state.
pub(super) struct Auth {
    /// Whether the listener requires SASL.
    required: bool,
    phase: Phase,
    /// Whether the current exchange re-authenticates an authenticated session.
    reauthenticating: bool,
    /// When the authenticated session ends (KIP-368), if it does.
    expires: Option<Instant>,
}

impl Auth {
    pub(super) fn new(session: &Session) -> Auth {
        Auth {
            required: session.protocol.sasl(),
            phase: Phase::Handshake,
            reauthenticating: false,
            expires: None,
        }
    }

    /// Looks at one frame before dispatch; may change `session` (its principal) when an
    /// exchange completes.
    pub(super) async fn intercept(
        &mut self,
        broker: &Arc<Broker>,
        frame: &Bytes,
        session: &mut Arc<Session>,
    ) -> Intercept {
        let Ok(raw) = protocol::peek_header(frame) else {
            return Intercept::Pass; // dispatch refuses it
        };
        let is_handshake = raw.api_key == ApiKey::SaslHandshake as i16;
        let is_authenticate = raw.api_key == ApiKey::SaslAuthenticate as i16;
        if !self.required {
            if is_handshake || is_authenticate {
                return self.illegal_state(broker, frame, is_handshake);
            }
            return Intercept::Pass;
        }
        match &self.phase {
            Phase::Done(mechanism) => {
                let mechanism = *mechanism;
                if is_handshake {
                    self.reauthenticating = true;
                    return self.handshake(broker, frame, Some(mechanism));
                }
                if is_authenticate {
                    return self.illegal_state(broker, frame, false);
                }
                if self.expires.is_some_and(|t| broker.clock.now() >= t) {
                    Metrics::add(&broker.metrics.expired_sessions_closed, 1);
                    info!(principal = %session.principal, peer = %session.peer_text,
                        "session expired without re-authentication; closing connection");
                    return Intercept::Close;
                }
                Intercept::Pass
            }
            Phase::Handshake => {
                if is_handshake {
                    return self.handshake(broker, frame, None);
                }
                if raw.api_key == ApiKey::ApiVersions as i16 && !self.reauthenticating {
                    return Intercept::Pass;
                }
                debug!(
                    api_key = raw.api_key,
                    "request before SASL authentication; closing connection"
                );
                Intercept::Close
            }
            Phase::Authenticate(_) | Phase::Exchange(..) => {
                if is_authenticate {
                    return self.authenticate(broker, frame, session).await;
                }
                debug!(
                    api_key = raw.api_key,
                    "request during a SASL exchange; closing connection"
                );
                Intercept::Close
            }
        }
    }

    fn handshake(
        &mut self,
        broker: &Arc<Broker>,
        frame: &Bytes,
        previous: Option<Mechanism>,
    ) -> Intercept {
        let Some((to, body)) = decode::<SaslHandshakeRequest>(frame) else {
            return Intercept::Close;
        };
        let auth = &broker.authenticator;
        let mechanisms = auth
            .enabled_mechanisms()
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let mut resp = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
        let asked = Mechanism::parse(&body.mechanism).filter(|m| auth.is_enabled(*m));
        match asked {
            Some(m) if previous.is_none_or(|p| p == m) => {
                self.phase = Phase::Authenticate(m);
                Intercept::Reply(ready(to, &resp))
            }
            _ => {
                // Kafka answers and then closes: the client cannot go on without a mechanism.
                // Re-authentication must keep the mechanism it started with.
                resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
                Metrics::add(&broker.metrics.sasl_authentication_failures, 1);
                info!(mechanism = %body.mechanism.as_str(), "SASL mechanism refused");
                Intercept::ReplyAndClose(ready(to, &resp))
            }
        }
    }

    async fn authenticate(
        &mut self,
        broker: &Arc<Broker>,
        frame: &Bytes,
        session: &mut Arc<Session>,
    ) -> Intercept {
        let Some((to, body)) = decode::<SaslAuthenticateRequest>(frame) else {
            return Intercept::Close;
        };
        let auth = &broker.authenticator;
        let (mechanism, mut exchange) = match std::mem::replace(&mut self.phase, Phase::Handshake) {
            Phase::Authenticate(m) => (m, Box::new(auth.start(m))),
            Phase::Exchange(m, e) => (m, e),
            other => {
                self.phase = other;
                return Intercept::Close;
            }
        };
        let step = exchange.step(auth, &body.auth_bytes).await;
        let mut resp = SaslAuthenticateResponse::default();
        match step {
            Ok(SaslStep::Challenge(bytes)) => {
                resp.auth_bytes = Bytes::from(bytes);
                self.phase = Phase::Exchange(mechanism, exchange);
                Intercept::Reply(ready(to, &resp))
            }
            Ok(SaslStep::Done {
                reply,
                principal,
                expires_at_ms,
            }) => {
                if self.reauthenticating && principal != session.principal {
                    return self.fail(
                        broker,
                        to,
                        session,
                        "Cannot change principals during re-authentication",
                    );
                }
                resp.auth_bytes = Bytes::from(reply);
                let now_ms = broker.clock.now_ms();
                let reauth = broker.config.connections_max_reauth;
                let mut lifetime: Option<Duration> = (!reauth.is_zero()).then_some(reauth);
                if let Some(exp) = expires_at_ms {
                    let left = Duration::from_millis(u64::try_from(exp - now_ms).unwrap_or(0));
                    lifetime = Some(lifetime.map_or(left, |l| l.min(left)));
                }
                let now = broker.clock.now();
                self.expires = lifetime.map(|l| now + l);
                if let Some(l) = lifetime {
                    resp.session_lifetime_ms = i64::try_from(l.as_millis()).unwrap_or(i64::MAX);
                }
                Metrics::add(&broker.metrics.sasl_authentications, 1);
                if self.reauthenticating {
                    Metrics::add(&broker.metrics.reauthentications, 1);
                } else {
                    *session = Arc::new(session.with_principal(principal));
                    debug!(principal = %session.principal, mechanism = mechanism.name(),
                        "authenticated");
                }
                self.reauthenticating = false;
                self.phase = Phase::Done(mechanism);
                Intercept::Reply(ready(to, &resp))
            }
            Err(e) => self.fail(broker, to, session, &e.message),
        }
    }

    fn fail(
        &mut self,
        broker: &Arc<Broker>,
        to: ReplyTo,
        session: &Session,
        message: &str,
    ) -> Intercept {
        Metrics::add(&broker.metrics.sasl_authentication_failures, 1);
        info!(peer = %session.peer_text, listener = %session.listener, reason = message,
            "SASL authentication failed; closing connection");
        let resp = SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
            .with_error_message(Some(StrBytes::from_string(message.to_owned())));
        self.phase = Phase::Handshake;
        Intercept::ReplyAndClose(ready(to, &resp))
    }

    /// SaslHandshake or SaslAuthenticate where no exchange is expected: ILLEGAL_SASL_STATE.
    fn illegal_state(&self, broker: &Arc<Broker>, frame: &Bytes, handshake: bool) -> Intercept {
        let code = ResponseError::IllegalSaslState.code();
        let reply = if handshake {
            decode::<SaslHandshakeRequest>(frame)
                .map(|(to, _)| ready(to, &SaslHandshakeResponse::default().with_error_code(code)))
        } else {
            decode::<SaslAuthenticateRequest>(frame).map(|(to, _)| {
                ready(
                    to,
                    &SaslAuthenticateResponse::default().with_error_code(code),
                )
            })
        };
        match reply {
            Some(r) if !self.required => Intercept::Reply(r),
            Some(r) => {
                Metrics::add(&broker.metrics.sasl_authentication_failures, 1);
                Intercept::ReplyAndClose(r)
            }
            None => Intercept::Close,
        }
    }
}

fn decode<T: kafka_protocol::protocol::Decodable>(frame: &Bytes) -> Option<(ReplyTo, T)> {
    let req = protocol::decode_request(frame.clone()).ok()?;
    let body = protocol::decode_body::<T>(&req).ok()?;
    Some((ReplyTo::of(&req), body))
}

fn ready<R: kafka_protocol::protocol::Encodable>(to: ReplyTo, resp: &R) -> Pending {
    let reply: Reply = crate::api::encode(to, resp);
    Box::pin(std::future::ready(reply))
}
