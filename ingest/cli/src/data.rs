//! Where a node's data is — the flags `tierlog serve` takes for it — for the commands that
//! read history without a node (`tierlog export`, `tierlog query serve`). They resolve through
//! [`NodeConfig::load`], so defaults, the config file, `TIERLOG_*` variables and validation are
//! exactly those of `serve`.

use std::path::PathBuf;

use tierlog_query::QueryConfig;
use tierlog_tiering::remote::store::S3Options;

use tierlog_ingest::config::{NodeConfig, ServeArgs};

/// The data-finding flags shared by `export` and `query serve`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataLocation {
    /// TOML config file of the node (its data dir, metadata, object store and cache settings).
    #[arg(long, env = "TIERLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory of the node [default: ./tierlog-data].
    #[arg(long, env = "TIERLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata store URL: embedded | etcd://host:port[,host:port]/prefix [default: embedded].
    #[arg(long, env = "TIERLOG_METADATA")]
    pub metadata: Option<String>,
    /// Object store URL: s3://bucket/prefix | file:///path [default: file://<data-dir>/objects].
    #[arg(long, env = "TIERLOG_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Region of an s3:// object store [default: AWS_REGION, then the AWS config chain].
    #[arg(long, env = "TIERLOG_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3-compatible endpoint, e.g. http://minio:9000 [default: AWS_ENDPOINT_URL, else AWS].
    #[arg(long, env = "TIERLOG_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Allow a plain-HTTP S3 endpoint.
    #[arg(long, env = "TIERLOG_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub s3_allow_http: Option<bool>,
    /// Path-style S3 requests (MinIO and most local servers).
    #[arg(long, env = "TIERLOG_S3_PATH_STYLE", num_args = 0..=1, default_missing_value = "true")]
    pub s3_path_style: Option<bool>,
}

impl DataLocation {
    /// The node settings these flags (over the config file) describe.
    pub(crate) fn node_config(
        &self,
        cache_memory_bytes: Option<usize>,
    ) -> anyhow::Result<NodeConfig> {
        NodeConfig::load(&ServeArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            metadata: self.metadata.clone(),
            object_store: self.object_store.clone(),
            s3_region: self.s3_region.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            s3_allow_http: self.s3_allow_http,
            s3_path_style: self.s3_path_style,
            cache_memory_bytes,
            ..ServeArgs::default()
        })
    }
}

/// The query settings of a node's config, with `cache_memory_bytes` for the chunk cache.
pub(crate) fn query_config(
    node: &NodeConfig,
    cache_memory_bytes: usize,
) -> anyhow::Result<QueryConfig> {
    Ok(QueryConfig {
        data_dir: node.data_dir.clone(),
        metadata: node.metadata.clone(),
        object_store: Some(node.object_store_url()?.to_string()),
        s3: S3Options {
            region: node.s3_region.clone(),
            endpoint: node.s3_endpoint.clone(),
            allow_http: node.s3_allow_http,
            path_style: node.s3_path_style,
        },
        cache_memory_bytes,
    })
}
