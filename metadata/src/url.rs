//! Choosing a backend: [`MetadataUrl`] and [`open_store`].
//!
//! The node's config names its metadata store with a URL; parsing it gives a closed enum, and
//! [`open_store`] turns that into an `Arc<dyn MetadataStore>`.
//!
//! | URL | backend |
//! |---|---|
//! | `embedded` (or `embedded://`) | [`EmbeddedStore`] in `<data_dir>/metadata.redb` (the default) |
//! | `memory://` (or `memory`) | [`MemoryStore`]: nothing survives the process |
//! | `etcd://host:port[,host:port…][/prefix]` | `EtcdStore` (feature `etcd`), keys under `prefix` |
//!
//! TLS to etcd is not part of the URL (the files it needs are node settings): [`EtcdTls`] given
//! to [`open_store_with`] makes the same `etcd://` endpoints speak TLS.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::embedded::EmbeddedStore;
use crate::error::{Error, Result};
#[cfg(feature = "etcd")]
use crate::etcd::{EtcdOptions, EtcdStore};
use crate::memory::MemoryStore;
use crate::store::MetadataStore;

/// TLS to etcd's client port, as etcd's own `--cacert`/`--cert`/`--key` client flags: on when
/// `ca_file` is set. Plain paths, read when the store opens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdTls {
    /// PEM CA certificates etcd's server certificate must chain to; the endpoint's host (name
    /// or IP address) must be in that certificate. `None`: plain-text gRPC.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to etcd, for an etcd started with
    /// `--client-cert-auth` (goes with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl EtcdTls {
    /// TLS trusting the CAs in `ca_file`, without a client certificate.
    pub fn new(ca_file: impl Into<PathBuf>) -> Self {
        EtcdTls {
            ca_file: Some(ca_file.into()),
            cert_file: None,
            key_file: None,
        }
    }

    /// Presents `cert_file` (with its `key_file`) to etcd.
    pub fn with_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.cert_file = Some(cert_file.into());
        self.key_file = Some(key_file.into());
        self
    }

    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.ca_file.is_some()
    }

    /// Checks that the settings go together: a client certificate needs its key (and the
    /// other way round), and both need `ca_file` (TLS on).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming what is missing.
    pub fn validate(&self) -> Result<()> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(Error::invalid(
                "an etcd client certificate and its key go together",
            ));
        }
        if self.cert_file.is_some() && self.ca_file.is_none() {
            return Err(Error::invalid(
                "an etcd client certificate needs the CA file of etcd's server certificate",
            ));
        }
        Ok(())
    }
}

/// The file [`open_store`] uses for the embedded backend, inside the data directory.
pub const EMBEDDED_FILE_NAME: &str = "metadata.redb";

/// Which metadata backend to use.
///
/// ```
/// use tierlog_metadata::MetadataUrl;
///
/// let url: MetadataUrl = "etcd://10.0.0.1:2379,10.0.0.2:2379/prod".parse()?;
/// assert_eq!(
///     url,
///     MetadataUrl::Etcd {
///         endpoints: vec!["10.0.0.1:2379".into(), "10.0.0.2:2379".into()],
///         prefix: "/prod".into(),
///     }
/// );
/// assert_eq!(url.to_string(), "etcd://10.0.0.1:2379,10.0.0.2:2379/prod");
/// assert_eq!("embedded".parse::<MetadataUrl>()?, MetadataUrl::Embedded);
/// assert!("etcd://no-port".parse::<MetadataUrl>().is_err());
/// # Ok::<(), tierlog_metadata::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum MetadataUrl {
    /// The embedded single-node store, in the node's data directory.
    #[default]
    Embedded,
    /// An in-memory store: for tests and throwaway nodes.
    Memory,
    /// An etcd cluster.
    Etcd {
        /// `host:port` of each etcd member, in the order given.
        endpoints: Vec<String>,
        /// Namespace for every key, e.g. `/prod`; empty for none. No trailing slash.
        prefix: String,
    },
}

impl FromStr for MetadataUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: s.to_owned(),
            reason: reason.to_owned(),
        };
        match s {
            "embedded" | "embedded://" => return Ok(MetadataUrl::Embedded),
            "memory" | "memory://" => return Ok(MetadataUrl::Memory),
            _ => {}
        }
        let Some(rest) = s.strip_prefix("etcd://") else {
            return Err(invalid(
                "expected `embedded`, `memory://` or `etcd://host:port[,host:port...][/prefix]`",
            ));
        };
        let (hosts, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if hosts.is_empty() {
            return Err(invalid("no etcd endpoints"));
        }
        let mut endpoints = Vec::new();
        for endpoint in hosts.split(',') {
            let Some((host, port)) = endpoint.rsplit_once(':') else {
                return Err(invalid(&format!("endpoint `{endpoint}` has no port")));
            };
            if host.is_empty() {
                return Err(invalid(&format!("endpoint `{endpoint}` has no host")));
            }
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(invalid(&format!(
                    "endpoint `{endpoint}` has an invalid port"
                )));
            }
            endpoints.push(endpoint.to_owned());
        }
        if prefix.contains("//") {
            return Err(invalid("prefix has an empty path segment"));
        }
        Ok(MetadataUrl::Etcd {
            endpoints,
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for MetadataUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataUrl::Embedded => f.write_str("embedded"),
            MetadataUrl::Memory => f.write_str("memory://"),
            MetadataUrl::Etcd { endpoints, prefix } => {
                write!(f, "etcd://{}{prefix}", endpoints.join(","))
            }
        }
    }
}

/// Opens the store `url` names. The embedded backend lives in `data_dir/metadata.redb` (the
/// directory is created if missing); `data_dir` is unused by the others.
///
/// ```
/// use tierlog_metadata::{open_store, MetadataStoreExt, MetadataUrl};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let store = open_store(&MetadataUrl::Memory, std::path::Path::new("unused")).await?;
/// store.put("/k", "v".into()).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) if another process holds the
/// embedded file, or if etcd does not answer within the default connect timeout
/// (`EtcdOptions::connect_timeout`; use `EtcdStore::connect` to choose timeouts). With the
/// `etcd` feature off, an etcd URL is [`ErrorKind::Invalid`](crate::ErrorKind::Invalid).
pub async fn open_store(url: &MetadataUrl, data_dir: &Path) -> Result<Arc<dyn MetadataStore>> {
    open_store_with(url, data_dir, &EtcdTls::default()).await
}

/// [`open_store`], with TLS to etcd (ignored by the other backends).
///
/// # Errors
///
/// As [`open_store`]; also [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) if `tls` does not
/// [validate](EtcdTls::validate) or its files do not load.
pub async fn open_store_with(
    url: &MetadataUrl,
    data_dir: &Path,
    tls: &EtcdTls,
) -> Result<Arc<dyn MetadataStore>> {
    match url {
        MetadataUrl::Embedded => {
            let path = data_dir.join(EMBEDDED_FILE_NAME);
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&path))
                .await
                .map_err(|source| Error::Task { source })??;
            Ok(Arc::new(store))
        }
        MetadataUrl::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "etcd")]
        MetadataUrl::Etcd { endpoints, prefix } => {
            let options = EtcdOptions::default().with_tls(tls.clone());
            let store = EtcdStore::connect(endpoints, prefix, options).await?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "etcd"))]
        MetadataUrl::Etcd { .. } => {
            let _ = tls;
            Err(Error::invalid(
                "this tierlog was built without etcd support: rebuild with `--features etcd` \
                 (needs protoc: Debian `protobuf-compiler libprotobuf-dev`)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ErrorKind;
    use crate::store::MetadataStoreExt;

    fn parse(s: &str) -> Result<MetadataUrl> {
        s.parse()
    }

    #[test]
    fn parses_valid_urls() {
        assert_eq!(parse("embedded").expect("ok"), MetadataUrl::Embedded);
        assert_eq!(parse("embedded://").expect("ok"), MetadataUrl::Embedded);
        assert_eq!(parse("memory://").expect("ok"), MetadataUrl::Memory);
        assert_eq!(
            parse("etcd://localhost:2379").expect("ok"),
            MetadataUrl::Etcd {
                endpoints: vec!["localhost:2379".into()],
                prefix: String::new(),
            }
        );
        assert_eq!(
            parse("etcd://a:1,b:2/x/y/").expect("ok"),
            MetadataUrl::Etcd {
                endpoints: vec!["a:1".into(), "b:2".into()],
                prefix: "/x/y".into(),
            }
        );
        assert_eq!(
            parse("etcd://[::1]:2379").expect("ok"),
            MetadataUrl::Etcd {
                endpoints: vec!["[::1]:2379".into()],
                prefix: String::new(),
            }
        );
        for s in ["embedded", "memory://", "etcd://a:1,b:2/p", "etcd://a:1"] {
            assert_eq!(parse(s).expect("ok").to_string(), s);
        }
    }

    #[test]
    fn rejects_invalid_urls_naming_them() {
        for s in [
            "",
            "file:///tmp",
            "Embedded",
            "etcd://",
            "etcd:///prefix",
            "etcd://host",
            "etcd://:2379",
            "etcd://h:0",
            "etcd://h:99999",
            "etcd://h:1,,h:2",
            "etcd://h:1//x",
        ] {
            let err = parse(s).expect_err(s);
            assert_eq!(err.kind(), ErrorKind::Invalid);
            assert!(err.to_string().contains(&format!("`{s}`")), "{err}");
        }
    }

    #[test]
    fn etcd_tls_settings_go_together() {
        assert!(!EtcdTls::default().enabled());
        assert!(EtcdTls::default().validate().is_ok());
        assert!(EtcdTls::new("/ca.pem").enabled());
        assert!(
            EtcdTls::new("/ca.pem")
                .with_client_cert("/c.pem", "/c.key")
                .validate()
                .is_ok()
        );
        let mut half = EtcdTls::new("/ca.pem");
        half.cert_file = Some("/c.pem".into());
        assert!(half.validate().is_err(), "a certificate without its key");
        let mut no_ca = EtcdTls::default().with_client_cert("/c.pem", "/c.key");
        assert!(
            no_ca.validate().is_err(),
            "a client certificate without a CA"
        );
        no_ca.ca_file = Some("/ca.pem".into());
        assert!(no_ca.validate().is_ok());
    }

    #[tokio::test]
    async fn open_store_dispatches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let store = open_store(&MetadataUrl::Embedded, &data_dir)
            .await
            .expect("embedded");
        store.put("/k", "v".into()).await.expect("put");
        assert!(data_dir.join(EMBEDDED_FILE_NAME).is_file());
        drop(store);

        let store = open_store(&MetadataUrl::Memory, &data_dir)
            .await
            .expect("memory");
        assert!(store.get("/k").await.expect("get").is_none());

        // Nothing listens on a port we just bound and released: refused, so Unavailable
        // within the connect timeout (the real-etcd tests live in tierlog-tests); without the
        // `etcd` feature the URL is refused as Invalid.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let etcd = parse(&format!("etcd://127.0.0.1:{port}/x")).expect("parse");
        #[allow(clippy::disallowed_methods)] // measures the real connect timeout
        let started = std::time::Instant::now();
        let err = open_store(&etcd, &data_dir).await.expect_err("etcd");
        #[cfg(feature = "etcd")]
        {
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(
                started.elapsed() < EtcdOptions::default().connect_timeout + Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
        }
        #[cfg(not(feature = "etcd"))]
        {
            assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
    }
}
