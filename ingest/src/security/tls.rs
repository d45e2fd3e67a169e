//! TLS for the SSL and SASL_SSL listeners, with `rustls` (TLS 1.2 and 1.3).
//!
//! - **Certificates from PEM files, reloaded without a restart.** The server's certificate
//!   chain and key are read from `ssl_cert_file` and `ssl_key_file`; a background task checks
//!   the files every `ssl_reload_interval` and, when either changed, loads the new pair and
//!   serves it from the next handshake on ([`ReloadingCert`]). A pair that does not load (a
//!   half-written file, a key that does not match) is logged and the old one kept.
//! - **Mutual TLS.** With `ssl_client_auth` requested or required, clients present a
//!   certificate signed by a CA of `ssl_ca_file`; its subject, written as RFC 2253 (Java's
//!   `X500Principal.getName()`, most specific first: `CN=alice,OU=eng,O=acme`), is mapped to a
//!   principal by `ssl_principal_mapping_rules` ([`MappingRules`], Kafka's
//!   `ssl.principal.mapping.rules`). A TLS connection without a client certificate is
//!   `User:ANONYMOUS`, as in Kafka.
//! - **Between nodes** ([`client_config`]): a node connecting to another node's TLS listener
//!   verifies it against `ssl_ca_file` and presents its own certificate, so an inter-broker
//!   SSL listener with client authentication maps nodes to their certificate principals.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Principal;
use crate::config::NodeConfig;

/// The crypto provider every TLS config here uses (aws-lc-rs, already built for the S3
/// client), passed explicitly so no process-wide default has to be installed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server side of TLS: the `rustls` config for every TLS listener, the certificate
/// reloader, and the principal mapping of client certificates.
#[derive(Debug)]
pub(crate) struct TlsServer {
    pub(crate) config: Arc<rustls::ServerConfig>,
    cert: Arc<ReloadingCert>,
    rules: MappingRules,
}

impl TlsServer {
    /// Loads the certificate, key and (for mutual TLS) the client CAs that `config` names.
    pub(crate) fn new(config: &NodeConfig) -> anyhow::Result<TlsServer> {
        let (Some(cert_file), Some(key_file)) = (&config.ssl_cert_file, &config.ssl_key_file)
        else {
            anyhow::bail!("TLS listeners need ssl_cert_file and ssl_key_file");
        };
        let provider = provider();
        let cert = Arc::new(ReloadingCert::load(
            cert_file.clone(),
            key_file.clone(),
            provider.clone(),
        )?);
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match config.ssl_client_auth.as_str() {
            "none" => builder.with_no_client_auth(),
            mode => {
                let Some(ca) = &config.ssl_ca_file else {
                    anyhow::bail!("ssl_client_auth {mode} needs ssl_ca_file");
                };
                let roots = Arc::new(load_roots(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if mode == "requested" {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build()?)
            }
        };
        let mut server = builder.with_cert_resolver(cert.clone());
        // Kafka clients do not negotiate ALPN; nothing to set. Session tickets let reconnecting
        // clients skip the full handshake.
        server.send_tls13_tickets = 2;
        Ok(TlsServer {
            config: Arc::new(server),
            cert,
            rules: MappingRules::parse(&config.ssl_principal_mapping_rules)
                .map_err(|e| anyhow::anyhow!("ssl_principal_mapping_rules: {e}"))?,
        })
    }

    /// The config of the admin HTTP endpoint under `http_tls`: the listeners' certificate
    /// (the same reloader, so a rotation reaches both), no client certificates (the endpoint
    /// authenticates with a bearer token instead), HTTP/1.1 by ALPN.
    pub(crate) fn http_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.cert.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(server))
    }

    /// Checks the certificate files every `interval` until `cancel`, reloading on change.
    pub(crate) async fn reload_loop(
        self: Arc<Self>,
        interval: Duration,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.cert.reload_if_changed();
        }
    }

    /// The principal of a TLS connection: its client certificate's mapped subject, or
    /// `User:ANONYMOUS` without one.
    pub(crate) fn principal(&self, conn: &rustls::ServerConnection) -> Principal {
        let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
            return Principal::anonymous();
        };
        match subject_rfc2253(cert) {
            Some(dn) => Principal::user(self.rules.apply(&dn)),
            None => Principal::anonymous(),
        }
    }
}

/// The subject of a DER certificate as RFC 2253 text (`CN=alice,O=acme`), as Java prints it.
pub(crate) fn subject_rfc2253(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    // x509-cert prints a name per RFC 4514 (RFC 2253's successor): last RDN first.
    Some(cert.tbs_certificate.subject.to_string())
}

/// The server certificate and key, swapped in place when their files change.
#[derive(Debug)]
struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// (modified time, length) of the certificate and key files when loaded.
    stamp: (FileStamp, FileStamp),
}

type FileStamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl ReloadingCert {
    fn load(
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> anyhow::Result<ReloadingCert> {
        let stamps = (stamp(&cert_file), stamp(&key_file));
        let key = load_certified_key(&cert_file, &key_file, &provider)?;
        Ok(ReloadingCert {
            cert_file,
            key_file,
            provider,
            current: RwLock::new(Loaded {
                key: Arc::new(key),
                stamp: stamps,
            }),
        })
    }

    fn reload_if_changed(&self) {
        let stamps = (stamp(&self.cert_file), stamp(&self.key_file));
        {
            let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
            if cur.stamp == stamps {
                return;
            }
        }
        match load_certified_key(&self.cert_file, &self.key_file, &self.provider) {
            Ok(key) => {
                let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
                *cur = Loaded {
                    key: Arc::new(key),
                    stamp: stamps,
                };
                info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                // Keep serving the old pair; remember the stamps so a broken pair is reported
                // once, not at every check, and retried when the files change again.
                let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
                cur.stamp = stamps;
                warn!(error = %format!("{e:#}"), cert = %self.cert_file.display(),
                    "TLS certificate files changed but do not load; still serving the previous certificate");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .key
                .clone(),
        )
    }
}

fn load_certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let certs = load_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| anyhow::anyhow!("reading private key `{}`: {e}", key_file.display()))?;
    let key = CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| anyhow::anyhow!("certificate `{}` and its key: {e}", cert_file.display()))?;
    Ok(key)
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("reading certificates `{}`: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("reading certificates `{}`: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("`{}` holds no PEM certificate", path.display());
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| anyhow::anyhow!("CA certificate in `{}`: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The client side of node-to-node TLS: trust `ssl_ca_file` (or, without one, nothing but
/// what the operator configured, so the connection fails rather than trusting anyone), and
/// present this node's own certificate for listeners that require client certificates.
pub(crate) fn client_config(config: &NodeConfig) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let Some(ca) = &config.ssl_ca_file else {
        anyhow::bail!("connecting to another node over TLS needs ssl_ca_file");
    };
    let roots = load_roots(ca)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let cfg = match (&config.ssl_cert_file, &config.ssl_key_file) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(
            load_certs(c)?,
            PrivateKeyDer::from_pem_file(k)
                .map_err(|e| anyhow::anyhow!("reading private key `{}`: {e}", k.display()))?,
        )?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Kafka's `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` rules and
/// `DEFAULT`, comma-separated, tried in order; the first rule whose pattern matches the whole
/// subject gives the name (`$1`… refer to the pattern's groups; `L`/`U` lower- or upper-case
/// it). `DEFAULT` is the subject unchanged. No rule matching is the subject unchanged too.
#[derive(Debug, Clone)]
pub(crate) struct MappingRules(Vec<Rule>);

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Map {
        pattern: regex::Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl MappingRules {
    /// Parses the rules; an error says what is wrong.
    pub(crate) fn parse(s: &str) -> Result<MappingRules, String> {
        let mut rules = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) = until_slash(r).ok_or("a RULE needs pattern/replacement/")?;
                let (replacement, r) = until_slash(r).ok_or("a RULE needs pattern/replacement/")?;
                let (case, r) = match r.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &r[1..]),
                    _ => (None, r),
                };
                let pattern = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("pattern `{pattern}`: {e}"))?;
                rules.push(Rule::Map {
                    pattern,
                    replacement,
                    case,
                });
                rest = r;
            } else {
                return Err(format!(
                    "`{rest}` is not DEFAULT or RULE:pattern/replacement/"
                ));
            }
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
                if rest.is_empty() {
                    return Err("a trailing comma".to_owned());
                }
            } else if !rest.is_empty() {
                return Err(format!("expected a comma before `{rest}`"));
            }
        }
        if rules.is_empty() {
            return Err("no rules (use DEFAULT)".to_owned());
        }
        Ok(MappingRules(rules))
    }

    /// The principal name for `subject`.
    pub(crate) fn apply(&self, subject: &str) -> String {
        for rule in &self.0 {
            match rule {
                Rule::Default => return subject.to_owned(),
                Rule::Map {
                    pattern,
                    replacement,
                    case,
                } => {
                    let Some(caps) = pattern.captures(subject) else {
                        continue;
                    };
                    let mut out = String::new();
                    caps.expand(replacement, &mut out);
                    return match case {
                        Some('L') => out.to_lowercase(),
                        Some('U') => out.to_uppercase(),
                        _ => out,
                    };
                }
            }
        }
        subject.to_owned()
    }
}

/// The text up to the first unescaped `/` (with `\/` unescaped) and what follows it.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if s[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mapping_rules_behave_as_kafkas() {
        // The examples of Kafka's documentation (ssl.principal.mapping.rules).
        let rules = MappingRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
             RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
             DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules.apply("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown"),
            "serviceuser"
        );
        assert_eq!(
            rules.apply("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown"),
            "adminuser@admin"
        );
        assert_eq!(rules.apply("OU=x,cn=Bob.Smith,O=y"), "bob.smith");
        assert_eq!(rules.apply("OU=nobody"), "OU=nobody");
        assert_eq!(
            MappingRules::parse("DEFAULT").unwrap().apply("CN=a,O=b"),
            "CN=a,O=b"
        );
        // An escaped slash is part of the pattern.
        let r = MappingRules::parse(r"RULE:^CN=(.*)\/x$/$1/U").unwrap();
        assert_eq!(r.apply("CN=ab/x"), "AB");
    }

    #[test]
    fn bad_mapping_rules_are_refused() {
        for bad in [
            "",
            "RULE:abc",
            "RULE:a/b",
            "RULE:(/b/",
            "DEFAULT,",
            "DEFAULT RULE:a/b/",
            "SOMETHING",
        ] {
            assert!(MappingRules::parse(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod subject_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_subject_is_written_as_java_writes_it() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "US");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "eng");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        // Most specific first, commas without spaces, a comma in a value escaped.
        assert_eq!(
            subject_rfc2253(cert.der()).unwrap(),
            r"CN=alice,OU=eng,O=Acme\, Inc.,C=US"
        );
    }
}
