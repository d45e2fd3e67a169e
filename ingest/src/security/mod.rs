//! Security: who a connection is ([`Session`], [`Principal`]), how it proved it (listeners,
//! TLS, SASL), what it may do (ACLs) and how much of the node it may use (quotas).
//!
//! - `acl` — Kafka's ACL model and the authorizer every request handler asks.
//! - `sasl` — SASL mechanisms (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) and SCRAM credentials.
//! - `quota` — client quotas (byte rates, request time, connection rate) and throttling.

// The listeners, TLS, SASL, ACLs and quotas arrive piece by piece; until all use these types,
// some are unread.
#![allow(dead_code)]

pub(crate) mod acl;
pub(crate) mod listener;
pub(crate) mod quota;
pub(crate) mod sasl;
pub(crate) mod tls;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

/// A Kafka principal: a type and a name, written `User:alice` (Kafka's `KafkaPrincipal`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Principal {
    /// The principal type; `User` for every principal tierlog authenticates.
    pub(crate) kind: String,
    /// The name: a SASL user name, a certificate's mapped subject, or `ANONYMOUS`.
    pub(crate) name: String,
}

impl Principal {
    /// The principal of a connection that did not authenticate (Kafka's `User:ANONYMOUS`).
    pub(crate) fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }

    /// `User:<name>`.
    pub(crate) fn user(name: impl Into<String>) -> Principal {
        Principal {
            kind: "User".to_owned(),
            name: name.into(),
        }
    }

    /// Parses `Type:name` (the name may contain colons); `None` without a colon or with an
    /// empty type.
    pub(crate) fn parse(s: &str) -> Option<Principal> {
        let (kind, name) = s.split_once(':')?;
        if kind.is_empty() {
            return None;
        }
        Some(Principal {
            kind: kind.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// A listener's security protocol (Kafka's `SecurityProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name, as in `listener.security.protocol.map`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol named `s` (case-insensitive).
    pub(crate) fn parse(s: &str) -> Option<SecurityProtocol> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// Whether connections are wrapped in TLS.
    pub(crate) fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL before any other request.
    pub(crate) fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One client connection as request handlers see it: who it is and where it came from.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// `peer` as text, `ip:port`.
    pub(crate) peer_text: String,
    /// The authenticated principal (`User:ANONYMOUS` until a SASL exchange or a client
    /// certificate says otherwise).
    pub(crate) principal: Principal,
    /// The listener the connection arrived on (`PLAINTEXT`, `SASL_SSL`, or a custom name).
    pub(crate) listener: String,
    pub(crate) protocol: SecurityProtocol,
    /// Until when the connection is muted: a throttled client's next request is not read
    /// before this instant (Kafka mutes the channel and reports `throttle_time_ms`).
    muted_until: Mutex<Option<Instant>>,
}

impl Session {
    /// A session for a connection from `peer` on `listener`, not yet authenticated.
    pub(crate) fn new(peer: SocketAddr, listener: &str, protocol: SecurityProtocol) -> Session {
        Session {
            peer,
            peer_text: peer.to_string(),
            principal: Principal::anonymous(),
            listener: listener.to_owned(),
            protocol,
            muted_until: Mutex::new(None),
        }
    }

    /// This session as `principal` (after a SASL exchange), its throttle carried over.
    pub(crate) fn with_principal(&self, principal: Principal) -> Session {
        Session {
            peer: self.peer,
            peer_text: self.peer_text.clone(),
            principal,
            listener: self.listener.clone(),
            protocol: self.protocol,
            muted_until: Mutex::new(self.muted_until()),
        }
    }

    /// A session for in-process tests: `principal` from 127.0.0.1 on a PLAINTEXT listener.
    #[cfg(test)]
    pub(crate) fn for_tests(principal: Principal) -> Session {
        let mut s = Session::new(
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 50_000)),
            "PLAINTEXT",
            SecurityProtocol::Plaintext,
        );
        s.principal = principal;
        s
    }

    /// The client's IP address, as ACL host patterns match it.
    pub(crate) fn host(&self) -> IpAddr {
        self.peer.ip()
    }

    /// Mutes the connection until `until` (the later of this and any earlier mute wins).
    pub(crate) fn mute_until(&self, until: Instant) {
        let mut m = self.muted_until.lock().unwrap_or_else(|e| e.into_inner());
        if m.is_none_or(|t| t < until) {
            *m = Some(until);
        }
    }

    /// When the connection may read its next request, if it is muted.
    pub(crate) fn muted_until(&self) -> Option<Instant> {
        *self.muted_until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_and_print_as_kafka_writes_them() {
        let p = Principal::parse("User:CN=a,O=b:c").expect("parses");
        assert_eq!(p.kind, "User");
        assert_eq!(p.name, "CN=a,O=b:c");
        assert_eq!(p.to_string(), "User:CN=a,O=b:c");
        assert_eq!(Principal::parse("alice"), None);
        assert_eq!(Principal::parse(":alice"), None);
        assert_eq!(Principal::anonymous().to_string(), "User:ANONYMOUS");
    }
}
