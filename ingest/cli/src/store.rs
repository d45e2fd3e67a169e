//! The metadata-store flags of the commands that work on the store directly (`tierlog user`,
//! `tierlog node`), as `tierlog serve` spells them.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

/// Where the metadata store is and how to reach it.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Metadata store URL: embedded | etcd://host:port[,host:port][/prefix].
    #[arg(
        long,
        global = true,
        env = "TIERLOG_METADATA",
        default_value = "embedded"
    )]
    pub metadata: String,
    /// The node's data directory (where the embedded metadata store lives).
    #[arg(
        long,
        global = true,
        env = "TIERLOG_DATA_DIR",
        default_value = "./tierlog-data"
    )]
    pub data_dir: PathBuf,
    /// PEM CA certificates of a TLS etcd (as `tierlog serve --etcd-ca-file`).
    #[arg(long, global = true, env = "TIERLOG_ETCD_CA_FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// PEM client certificate for an etcd that requires one.
    #[arg(long, global = true, env = "TIERLOG_ETCD_CERT_FILE")]
    pub etcd_cert_file: Option<PathBuf>,
    /// PEM key of `--etcd-cert-file`.
    #[arg(long, global = true, env = "TIERLOG_ETCD_KEY_FILE")]
    pub etcd_key_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The etcd TLS settings, checked.
    pub fn etcd_tls(&self) -> anyhow::Result<tierlog_metadata::EtcdTls> {
        let mut tls = tierlog_metadata::EtcdTls::default();
        tls.ca_file = self.etcd_ca_file.clone();
        tls.cert_file = self.etcd_cert_file.clone();
        tls.key_file = self.etcd_key_file.clone();
        tls.validate()
            .map_err(|e| anyhow::anyhow!("etcd TLS settings: {e}"))?;
        Ok(tls)
    }

    /// Opens the store.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn tierlog_metadata::MetadataStore>> {
        let url: tierlog_metadata::MetadataUrl = self.metadata.parse()?;
        Ok(tierlog_metadata::open_store_with(&url, &self.data_dir, &self.etcd_tls()?).await?)
    }
}
