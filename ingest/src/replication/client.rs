//! A Kafka-protocol connection from this node to a peer (the leader a follower fetches from, a
//! partition leader that takes transaction markers). Peers run the same tierlog, so versions
//! are fixed rather than negotiated; framing, correlation ids and the response size limit are
//! [`Connection`]'s.
//!
//! Peers are reached on their inter-broker listener ([`PeerTransport`]): TLS when that
//! listener is SSL or SASL_SSL (verified against `ssl_ca_file`, presenting this node's own
//! certificate), and SASL when it is SASL_PLAINTEXT or SASL_SSL, as
//! `inter_broker_sasl_username` with the mechanism `inter_broker_sasl_mechanism`.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::config::NodeConfig;
use crate::protocol::Connection;
use crate::security::listener::Listeners;
use crate::security::sasl::{Mechanism, ScramClient, plain_client_message};

/// How this node reaches its peers' inter-broker listener.
#[derive(Debug, Default)]
pub(crate) struct PeerTransport {
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<PeerSasl>,
}

struct PeerSasl {
    mechanism: Mechanism,
    user: String,
    password: String,
}

// The password never goes to logs.
impl std::fmt::Debug for PeerSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSasl")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl PeerTransport {
    /// Plain TCP, no authentication (a PLAINTEXT inter-broker listener).
    pub(crate) fn plaintext() -> PeerTransport {
        PeerTransport::default()
    }

    /// The transport the inter-broker listener of `config` asks for.
    pub(crate) fn from_config(config: &NodeConfig) -> anyhow::Result<PeerTransport> {
        let listeners = Listeners::from_config(config)
            .map_err(|(key, reason)| anyhow::anyhow!("invalid config `{key}`: {reason}"))?;
        let Some(inter) = listeners
            .all
            .iter()
            .find(|l| l.name == listeners.inter_broker)
        else {
            return Ok(PeerTransport::plaintext());
        };
        let tls = if inter.protocol.tls() {
            Some(crate::security::tls::client_config(config)?)
        } else {
            None
        };
        let sasl = if inter.protocol.sasl() {
            let (Some(user), Some(file)) = (
                &config.inter_broker_sasl_username,
                &config.inter_broker_sasl_password_file,
            ) else {
                anyhow::bail!(
                    "the inter-broker listener {} uses SASL: set inter_broker_sasl_username and \
                     inter_broker_sasl_password_file",
                    inter.name
                );
            };
            let password = crate::broker::read_password_file(file)?;
            let mechanism = Mechanism::parse(&config.inter_broker_sasl_mechanism)
                .filter(|m| *m != Mechanism::OAuthBearer)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "inter_broker_sasl_mechanism `{}` is not PLAIN, SCRAM-SHA-256 or \
                         SCRAM-SHA-512",
                        config.inter_broker_sasl_mechanism
                    )
                })?;
            Some(PeerSasl {
                mechanism,
                user: user.clone(),
                password,
            })
        } else {
            None
        };
        Ok(PeerTransport { tls, sasl })
    }
}

/// One connection to one peer.
#[derive(Debug)]
pub(crate) struct PeerConnection {
    conn: Connection,
}

impl PeerConnection {
    /// Connects to `addr`, with TLS and SASL as `transport` says, all within `timeout`.
    pub(crate) async fn connect(
        addr: &str,
        timeout: std::time::Duration,
        transport: &PeerTransport,
    ) -> anyhow::Result<Self> {
        let conn = match &transport.tls {
            Some(tls) => Connection::connect_tls(addr, timeout, tls.clone()).await?,
            None => Connection::connect(addr, timeout).await?,
        };
        let mut peer = PeerConnection {
            conn: conn.with_client_id("tierlog-replica"),
        };
        if let Some(sasl) = &transport.sasl {
            tokio::time::timeout(timeout, peer.authenticate(sasl))
                .await
                .map_err(|_| anyhow::anyhow!("SASL with {addr} timed out"))??;
        }
        Ok(peer)
    }

    async fn authenticate(&mut self, sasl: &PeerSasl) -> anyhow::Result<()> {
        let hs: SaslHandshakeResponse = self
            .request(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name())),
            )
            .await?;
        anyhow::ensure!(
            hs.error_code == 0,
            "SaslHandshake {}: error {}",
            sasl.mechanism.name(),
            hs.error_code
        );
        match sasl.mechanism.scram() {
            None => {
                self.sasl_step(plain_client_message(&sasl.user, &sasl.password))
                    .await?;
            }
            Some(m) => {
                let mut client = ScramClient::new(m, &sasl.user, &sasl.password)?;
                let server_first = self.sasl_step(client.first()).await?;
                let client_final = client.finish(&server_first)?;
                let server_final = self.sasl_step(client_final).await?;
                client.verify(&server_final)?;
            }
        }
        Ok(())
    }

    async fn sasl_step(&mut self, message: Vec<u8>) -> anyhow::Result<Bytes> {
        let resp: SaslAuthenticateResponse = self
            .request(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)),
            )
            .await?;
        anyhow::ensure!(
            resp.error_code == 0,
            "SASL authentication as a peer failed: error {} {}",
            resp.error_code,
            resp.error_message.as_deref().unwrap_or("")
        );
        Ok(resp.auth_bytes)
    }

    /// Sends one request at `version` and decodes the response.
    pub(crate) async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let mut body = self.conn.round_trip(key, version, request).await?;
        Resp::decode(&mut body, version)
    }
}
