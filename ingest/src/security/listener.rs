//! Listeners as Kafka configures them: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map` and `inter.broker.listener.name`.
//!
//! A listener is a name, a bind address and a [`SecurityProtocol`]. `listeners` is a
//! comma-separated list of `NAME://host:port`; a name is its own protocol (`PLAINTEXT`, `SSL`,
//! `SASL_PLAINTEXT`, `SASL_SSL`) unless `listener.security.protocol.map` maps it
//! (`INTERNAL:SSL,EXTERNAL:SASL_SSL`). `advertised.listeners` names, per listener, the host and
//! port clients are told to connect to; a listener it leaves out advertises its bind address
//! (an unspecified address, `0.0.0.0`, advertises `127.0.0.1`). Without `listeners`, the node
//! has one PLAINTEXT listener at `listen`, advertised as `advertise`.
//!
//! Metadata, FindCoordinator and DescribeCluster answer with each node's endpoint on the
//! listener the request arrived on, as Kafka does, so a client that bootstraps on the SASL_SSL
//! listener is sent to every other node's SASL_SSL listener. Replication and transaction
//! markers between nodes use the inter-broker listener (the first one unless
//! `inter_broker_listener_name` says otherwise).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::SecurityProtocol;
use crate::config::{NodeConfig, parse_host_port};

/// One listener of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerSpec {
    /// The listener's name (upper case), e.g. `SASL_SSL` or `INTERNAL`.
    pub(crate) name: String,
    pub(crate) protocol: SecurityProtocol,
    /// Where it binds.
    pub(crate) bind: SocketAddr,
    /// What it advertises, when `advertised_listeners` names it; otherwise the bound address
    /// is advertised once known (the port may be 0 until bound).
    pub(crate) advertised: Option<(String, u16)>,
}

/// Every listener of a node, the inter-broker one marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listeners {
    pub(crate) all: Vec<ListenerSpec>,
    /// The name of the listener nodes use to reach each other.
    pub(crate) inter_broker: String,
}

impl Listeners {
    /// The listeners `config` describes; an error names the setting at fault.
    pub(crate) fn from_config(config: &NodeConfig) -> Result<Listeners, (&'static str, String)> {
        let Some(spec) = &config.listeners else {
            let bind = config.listen.parse::<SocketAddr>().map_err(|e| {
                (
                    "listen",
                    format!("`{}` is not an ip:port address: {e}", config.listen),
                )
            })?;
            let advertised = match &config.advertise {
                Some(a) => Some(parse_host_port(a).map_err(|r| ("advertise", r))?),
                None => None,
            };
            if config.advertised_listeners.is_some() {
                return Err((
                    "advertised_listeners",
                    "needs `listeners` (use `advertise` with `listen`)".to_owned(),
                ));
            }
            return Ok(Listeners {
                all: vec![ListenerSpec {
                    name: "PLAINTEXT".to_owned(),
                    protocol: SecurityProtocol::Plaintext,
                    bind,
                    advertised,
                }],
                inter_broker: "PLAINTEXT".to_owned(),
            });
        };
        let map = match &config.listener_security_protocol_map {
            Some(m) => parse_protocol_map(m).map_err(|r| ("listener_security_protocol_map", r))?,
            None => HashMap::new(),
        };
        let mut all: Vec<ListenerSpec> = Vec::new();
        for (name, host, port) in parse_endpoints(spec).map_err(|r| ("listeners", r))? {
            let protocol = match map.get(&name) {
                Some(p) => *p,
                None => SecurityProtocol::parse(&name).ok_or_else(|| {
                    (
                        "listeners",
                        format!(
                            "listener `{name}` is not a security protocol and \
                             listener_security_protocol_map does not map it"
                        ),
                    )
                })?,
            };
            let ip = if host.is_empty() {
                "0.0.0.0".to_owned()
            } else {
                host.clone()
            };
            let bind: SocketAddr = format!("{}:{port}", bracket(&ip)).parse().map_err(|e| {
                (
                    "listeners",
                    format!("listener `{name}`: `{host}` is not an IP address to bind: {e}"),
                )
            })?;
            if all.iter().any(|l| l.name == name) {
                return Err(("listeners", format!("listener `{name}` is named twice")));
            }
            if port != 0 && all.iter().any(|l| l.bind.port() == port) {
                return Err((
                    "listeners",
                    format!("listener `{name}` reuses port {port} of another listener"),
                ));
            }
            all.push(ListenerSpec {
                name,
                protocol,
                bind,
                advertised: None,
            });
        }
        if all.is_empty() {
            return Err(("listeners", "names no listener".to_owned()));
        }
        if let Some(adv) = &config.advertised_listeners {
            for (name, host, port) in
                parse_endpoints(adv).map_err(|r| ("advertised_listeners", r))?
            {
                let Some(l) = all.iter_mut().find(|l| l.name == name) else {
                    return Err((
                        "advertised_listeners",
                        format!("`{name}` is not one of the listeners"),
                    ));
                };
                if host.is_empty() {
                    return Err((
                        "advertised_listeners",
                        format!("`{name}` needs a host to advertise"),
                    ));
                }
                l.advertised = Some((host, port));
            }
        }
        let inter_broker = match &config.inter_broker_listener_name {
            Some(n) => {
                let n = n.to_ascii_uppercase();
                if !all.iter().any(|l| l.name == n) {
                    return Err((
                        "inter_broker_listener_name",
                        format!("`{n}` is not one of the listeners"),
                    ));
                }
                n
            }
            None => all[0].name.clone(),
        };
        Ok(Listeners { all, inter_broker })
    }

    /// Whether any listener makes clients authenticate (SASL, or TLS with client
    /// certificates required): what turns `allow.everyone.if.no.acl.found` off by default.
    pub(crate) fn any_authenticated(&self, client_auth_required: bool) -> bool {
        self.all
            .iter()
            .any(|l| l.protocol.sasl() || (l.protocol.tls() && client_auth_required))
    }

    /// Whether any listener speaks TLS.
    pub(crate) fn any_tls(&self) -> bool {
        self.all.iter().any(|l| l.protocol.tls())
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// `NAME://host:port,...` → (upper-case name, host (may be empty), port).
fn parse_endpoints(s: &str) -> Result<Vec<(String, String, u16)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, rest) = part
            .split_once("://")
            .ok_or_else(|| format!("`{part}` is not NAME://host:port"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("`{part}` has no valid listener name"));
        }
        let (host, port) = if let Some(port) = rest.strip_prefix(':') {
            // Kafka's `PLAINTEXT://:9092`: every interface.
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("`{part}` has no valid port"))?;
            (String::new(), port)
        } else {
            parse_host_port(rest).map_err(|r| format!("`{part}`: {r}"))?
        };
        out.push((name.to_ascii_uppercase(), host, port));
    }
    Ok(out)
}

/// `NAME:PROTOCOL,...` → map from upper-case name to protocol.
fn parse_protocol_map(s: &str) -> Result<HashMap<String, SecurityProtocol>, String> {
    let mut out = HashMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, proto) = part
            .split_once(':')
            .ok_or_else(|| format!("`{part}` is not NAME:PROTOCOL"))?;
        let p = SecurityProtocol::parse(proto.trim())
            .ok_or_else(|| format!("`{proto}` is not a security protocol"))?;
        out.insert(name.trim().to_ascii_uppercase(), p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg(f: impl FnOnce(&mut NodeConfig)) -> NodeConfig {
        let mut c = NodeConfig::default();
        f(&mut c);
        c
    }

    #[test]
    fn without_listeners_the_node_has_one_plaintext_listener() {
        let l =
            Listeners::from_config(&cfg(|c| c.advertise = Some("kafka-1:19092".into()))).unwrap();
        assert_eq!(l.all.len(), 1);
        assert_eq!(l.all[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l.all[0].bind, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(l.all[0].advertised, Some(("kafka-1".into(), 19092)));
        assert_eq!(l.inter_broker, "PLAINTEXT");
    }

    #[test]
    fn listeners_map_names_to_protocols_and_advertise_per_listener() {
        let l = Listeners::from_config(&cfg(|c| {
            c.listeners = Some("internal://0.0.0.0:9091, SASL_SSL://:9093,SSL://[::1]:9094".into());
            c.listener_security_protocol_map = Some("INTERNAL:SSL".into());
            c.advertised_listeners = Some("SASL_SSL://kafka.example.com:443".into());
            c.inter_broker_listener_name = Some("internal".into());
        }))
        .unwrap();
        let names: Vec<_> = l
            .all
            .iter()
            .map(|l| (l.name.as_str(), l.protocol))
            .collect();
        assert_eq!(
            names,
            [
                ("INTERNAL", SecurityProtocol::Ssl),
                ("SASL_SSL", SecurityProtocol::SaslSsl),
                ("SSL", SecurityProtocol::Ssl),
            ]
        );
        assert_eq!(l.all[1].bind, "0.0.0.0:9093".parse().unwrap());
        assert_eq!(l.all[2].bind, "[::1]:9094".parse().unwrap());
        assert_eq!(l.all[1].advertised, Some(("kafka.example.com".into(), 443)));
        assert_eq!(l.all[0].advertised, None);
        assert_eq!(l.inter_broker, "INTERNAL");
        assert!(l.any_authenticated(false));
        assert!(l.any_tls());
    }

    #[test]
    fn bad_listener_settings_name_the_setting() {
        type Case = (&'static str, fn(&mut NodeConfig));
        let cases: [Case; 6] = [
            ("listeners", |c| {
                c.listeners = Some("FOO://127.0.0.1:1".into())
            }),
            ("listeners", |c| {
                c.listeners = Some("PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2".into())
            }),
            ("listeners", |c| {
                c.listeners = Some("PLAINTEXT://127.0.0.1:7,SSL://127.0.0.1:7".into())
            }),
            ("listeners", |c| {
                c.listeners = Some("PLAINTEXT://host.name:1".into())
            }),
            ("advertised_listeners", |c| {
                c.listeners = Some("PLAINTEXT://127.0.0.1:1".into());
                c.advertised_listeners = Some("SSL://x:1".into());
            }),
            ("inter_broker_listener_name", |c| {
                c.listeners = Some("PLAINTEXT://127.0.0.1:1".into());
                c.inter_broker_listener_name = Some("SSL".into());
            }),
        ];
        for (key, f) in cases {
            let err = Listeners::from_config(&cfg(f)).unwrap_err();
            assert_eq!(err.0, key, "{err:?}");
        }
    }
}
