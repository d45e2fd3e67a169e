//! Opening the object store tierlog tiers to, from a URL.
//!
//! [`open_object_store`] turns an [`ObjectStoreConfig`] into an `Arc<dyn ObjectStore>` already
//! scoped to the URL's prefix (object_store's `PrefixStore`), so every key the rest of tierlog
//! uses ([`super::layout`]) is relative. Backends are a closed set chosen by scheme
//! ([`StoreUrl`]):
//!
//! | URL | backend |
//! |---|---|
//! | `s3://bucket[/prefix]` | S3 or any S3-compatible server (`AmazonS3Builder`) |
//! | `file:///abs/path` | a local directory (the embedded default); created if missing |
//! | `memory://[prefix]` | in process memory (tests) |
//!
//! # S3 settings
//!
//! Resolved as the AWS CLI does, option first, then the environment:
//! - region: [`S3Options::region`], else `AWS_REGION` / `AWS_DEFAULT_REGION`, else
//!   `aws-config`'s region chain (profile files, honouring `AWS_PROFILE`; IMDS), else
//!   `us-east-1`;
//! - endpoint: [`S3Options::endpoint`], else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`
//!   (both ignored when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`); an `http://` endpoint
//!   turns on plain HTTP;
//! - addressing: virtual-hosted (`bucket.host`) unless [`S3Options::path_style`] — what MinIO
//!   and most local servers need. With a custom endpoint, virtual-hosted addressing puts the
//!   bucket in front of the endpoint's host name, except for IP addresses and `localhost`,
//!   which cannot carry a bucket and fall back to path style;
//! - credentials: `aws-config`'s default provider chain (environment variables, profile files,
//!   web identity, ECS, IMDS), bridged into object_store by [`AwsConfigCredentialProvider`],
//!   which caches each credential until shortly before it expires (neither side caches).
//!
//! Transient faults (5xx, throttling, resets, timeouts of idempotent requests) are retried
//! inside object_store with exponential backoff, bounded by [`retry_config`]; what is still
//! failing after that surfaces as [`Error::ObjectStore`] and is retried by the caller's loop.
//!
//! Secrets are never logged and never in `Debug` output: nothing here holds them but the
//! credential cache, whose `Debug` shows only the access key id.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, CredentialProvider, ObjectStore, RetryConfig};
use tracing::{debug, info, warn};

use crate::error::{Error, Result};

/// Region used when nothing else names one (as the AWS SDKs do for S3).
const DEFAULT_REGION: &str = "us-east-1";

/// A cached credential is refreshed this long before it expires, so a request signed with it
/// (and retried for up to [`retry_config`]'s timeout) never carries an expired one.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// S3 settings beyond the URL. Plain data; holds no secret (credentials come from the AWS
/// provider chain).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// AWS region; `None` = `AWS_REGION`/`AWS_DEFAULT_REGION`/profile/IMDS, else `us-east-1`.
    pub region: Option<String>,
    /// Endpoint of an S3-compatible server (`http://127.0.0.1:9000`); `None` =
    /// `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`, else AWS's own endpoint for the region.
    pub endpoint: Option<String>,
    /// Allow plain HTTP (also turned on by an `http://` endpoint).
    pub allow_http: bool,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted
    /// (`bucket.endpoint/key`): MinIO, moto and most local servers need this.
    pub path_style: bool,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // By hand so that a secret added here later does not leak by default.
        f.debug_struct("S3Options")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("allow_http", &self.allow_http)
            .field("path_style", &self.path_style)
            .finish()
    }
}

/// Where the remote tier lives.
#[derive(Clone)]
pub struct ObjectStoreConfig {
    /// `s3://bucket[/prefix]`, `file:///abs/path` or `memory://[prefix]`.
    pub url: String,
    /// Used for `s3://` URLs only.
    pub s3: S3Options,
}

impl std::fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreConfig")
            .field("url", &self.url)
            .field("s3", &self.s3)
            .finish()
    }
}

/// An object store URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `s3://bucket[/prefix]`.
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix without leading or trailing `/`; empty = the bucket's root.
        prefix: String,
    },
    /// `file:///abs/path`.
    File {
        /// The directory holding the objects.
        path: std::path::PathBuf,
    },
    /// `memory://[prefix]`.
    Memory {
        /// Key prefix (empty = none).
        prefix: String,
    },
}

impl StoreUrl {
    /// Parses a store URL; anything else than the three schemes is [`Error::InvalidConfig`].
    pub fn parse(url: &str) -> Result<StoreUrl> {
        let invalid = |why: &str| Error::InvalidConfig {
            reason: format!("object store url `{url}`: {why}"),
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        match parsed.scheme() {
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| invalid("missing bucket (s3://bucket/prefix)"))?;
                if parsed.query().is_some() || parsed.fragment().is_some() {
                    return Err(invalid("no query or fragment allowed"));
                }
                let prefix = parsed.path().trim_matches('/').to_string();
                validate_prefix(&prefix).map_err(|why| invalid(&why))?;
                Ok(StoreUrl::S3 {
                    bucket: bucket.to_string(),
                    prefix,
                })
            }
            "file" => {
                if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(invalid("use file:///absolute/path (no host)"));
                }
                let path = parsed
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute file path"))?;
                Ok(StoreUrl::File { path })
            }
            "memory" => {
                let prefix = format!("{}{}", parsed.host_str().unwrap_or_default(), parsed.path())
                    .trim_matches('/')
                    .to_string();
                validate_prefix(&prefix).map_err(|why| invalid(&why))?;
                Ok(StoreUrl::Memory { prefix })
            }
            other => Err(invalid(&format!(
                "unsupported scheme `{other}` (use s3://, file:// or memory://)"
            ))),
        }
    }
}

fn validate_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    object_store::path::Path::parse(prefix)
        .map(|_| ())
        .map_err(|e| format!("bad prefix `{prefix}`: {e}"))
}

/// S3 settings after applying the environment (everything but the region chain and the
/// credentials, which need I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedS3 {
    /// Region from the options or `AWS_REGION`/`AWS_DEFAULT_REGION`; `None` = ask
    /// `aws-config`'s region chain.
    pub region: Option<String>,
    /// The endpoint to talk to, bucket already placed for the addressing style; `None` = AWS.
    pub endpoint: Option<String>,
    /// Plain HTTP allowed.
    pub allow_http: bool,
    /// Virtual-hosted-style requests.
    pub virtual_hosted: bool,
}

/// Applies the environment (`env` looks a variable up) to `opts` for `bucket`.
pub fn resolve_s3(
    opts: &S3Options,
    bucket: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ResolvedS3> {
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let region = nonempty(opts.region.clone())
        .or_else(|| nonempty(env("AWS_REGION")))
        .or_else(|| nonempty(env("AWS_DEFAULT_REGION")));
    let ignore_env_endpoints =
        env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint = nonempty(opts.endpoint.clone()).or_else(|| {
        if ignore_env_endpoints {
            None
        } else {
            nonempty(env("AWS_ENDPOINT_URL_S3")).or_else(|| nonempty(env("AWS_ENDPOINT_URL")))
        }
    });
    let Some(endpoint) = endpoint else {
        return Ok(ResolvedS3 {
            region,
            endpoint: None,
            allow_http: opts.allow_http,
            virtual_hosted: !opts.path_style,
        });
    };
    let mut url = url::Url::parse(endpoint.trim()).map_err(|e| Error::InvalidConfig {
        reason: format!("s3 endpoint `{endpoint}`: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidConfig {
            reason: format!("s3 endpoint `{endpoint}`: scheme must be http or https"),
        });
    }
    let allow_http = opts.allow_http || url.scheme() == "http";
    let mut virtual_hosted = !opts.path_style;
    if virtual_hosted {
        match url.host() {
            Some(url::Host::Domain(d)) if d != "localhost" => {
                let host = format!("{bucket}.{d}");
                url.set_host(Some(&host))
                    .map_err(|e| Error::InvalidConfig {
                        reason: format!("s3 endpoint `{endpoint}` with bucket `{bucket}`: {e}"),
                    })?;
            }
            _ => {
                debug!(endpoint = %endpoint, "endpoint host cannot carry a bucket; using path-style requests");
                virtual_hosted = false;
            }
        }
    }
    Ok(ResolvedS3 {
        region,
        endpoint: Some(url.as_str().trim_end_matches('/').to_string()),
        allow_http,
        virtual_hosted,
    })
}

/// object_store's retry policy for tierlog: exponential backoff from 100 ms to 5 s, at most 8
/// retries within 60 s per request. Bounded so that a long outage surfaces to the uploader's
/// own loop (which backs off and resumes) instead of pinning a request for minutes.
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(60),
    }
}

/// [`open_object_store`], wrapped in a [`FaultStore`](super::faults::FaultStore) when
/// `faults` is given: a fault spec such as `fail_first=3,ops=put;latency=50ms` (the syntax is
/// in [`super::faults`]). For tests and test clusters only; `None` is plain
/// [`open_object_store`]. A spec that does not parse is [`Error::InvalidConfig`].
pub async fn open_object_store_with_faults(
    cfg: &ObjectStoreConfig,
    faults: Option<&str>,
) -> Result<Arc<dyn ObjectStore>> {
    let spec = faults
        .map(str::parse::<super::faults::FaultSpec>)
        .transpose()?;
    let store = open_object_store(cfg).await?;
    Ok(match spec {
        Some(spec) => {
            warn!(store = %store, faults = faults.unwrap_or_default(), "object store faults injected");
            Arc::new(super::faults::FaultStore::new(store, spec))
        }
        None => store,
    })
}

/// Opens the store `cfg.url` names, scoped to its prefix. For S3 this resolves the region
/// (which may ask IMDS when nothing else names one) and builds the credential chain; no request
/// is made to the bucket itself.
pub async fn open_object_store(cfg: &ObjectStoreConfig) -> Result<Arc<dyn ObjectStore>> {
    let build_err = |source: object_store::Error| Error::ObjectStore {
        op: "open object store",
        key: cfg.url.clone(),
        source,
    };
    match StoreUrl::parse(&cfg.url)? {
        StoreUrl::Memory { prefix } => Ok(scoped(InMemory::new(), &prefix)),
        StoreUrl::File { path } => {
            std::fs::create_dir_all(&path)
                .map_err(|e| Error::io("create object store directory", &path, e))?;
            let fs = LocalFileSystem::new_with_prefix(&path)
                .map_err(build_err)?
                // Retention deletes objects; do not leave empty partition directories behind.
                .with_automatic_cleanup(true);
            info!(path = %path.display(), "object store: local directory");
            Ok(Arc::new(fs))
        }
        StoreUrl::S3 { bucket, prefix } => {
            let resolved = resolve_s3(&cfg.s3, &bucket, |k| std::env::var(k).ok())?;
            let region = match resolved.region.clone() {
                Some(r) => r,
                None => aws_config::default_provider::region::DefaultRegionChain::builder()
                    .build()
                    .region()
                    .await
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            };
            let chain =
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .region(aws_config::Region::new(region.clone()))
                    .build()
                    .await;
            let credentials =
                AwsConfigCredentialProvider::new(SharedCredentialsProvider::new(chain));
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(&bucket)
                .with_region(&region)
                .with_allow_http(resolved.allow_http)
                .with_virtual_hosted_style_request(resolved.virtual_hosted)
                .with_credentials(Arc::new(credentials))
                .with_retry(retry_config());
            if let Some(endpoint) = &resolved.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            let s3 = builder.build().map_err(build_err)?;
            info!(
                bucket = %bucket,
                prefix = %prefix,
                region = %region,
                endpoint = resolved.endpoint.as_deref().unwrap_or("aws"),
                virtual_hosted = resolved.virtual_hosted,
                "object store: s3"
            );
            Ok(scoped(s3, &prefix))
        }
    }
}

fn scoped<T: ObjectStore>(store: T, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

/// Bridges an `aws-config` credential provider into object_store, caching each credential
/// until [`REFRESH_BEFORE_EXPIRY`] before it expires (credentials without an expiry are
/// cached for good). Refreshes are serialised, so concurrent requests wait for one fetch
/// instead of stampeding IMDS/STS. If a refresh fails while the cached credential is still
/// valid, the cached one is used and the failure logged.
pub struct AwsConfigCredentialProvider {
    inner: SharedCredentialsProvider,
    /// Held across the fetch on purpose: one refresh at a time (see the type's docs).
    cache: tokio::sync::Mutex<Option<CachedCredential>>,
}

struct CachedCredential {
    credential: Arc<AwsCredential>,
    expires: Option<SystemTime>,
}

impl AwsConfigCredentialProvider {
    /// Wraps `inner` (typically `aws-config`'s default chain).
    pub fn new(inner: SharedCredentialsProvider) -> Self {
        AwsConfigCredentialProvider {
            inner,
            cache: tokio::sync::Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for AwsConfigCredentialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the session token; the key id is not secret (AWS logs it too).
        let cached = self
            .cache
            .try_lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| (c.credential.key_id.clone(), c.expires)));
        f.debug_struct("AwsConfigCredentialProvider")
            .field("inner", &self.inner)
            .field("cached", &cached)
            .finish()
    }
}

fn fresh_enough(expires: Option<SystemTime>, now: SystemTime) -> bool {
    expires.is_none_or(|e| now + REFRESH_BEFORE_EXPIRY < e)
}

#[async_trait::async_trait]
impl CredentialProvider for AwsConfigCredentialProvider {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cache = self.cache.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cache.as_ref()
            && fresh_enough(c.expires, now)
        {
            return Ok(c.credential.clone());
        }
        match self.inner.provide_credentials().await {
            Ok(creds) => {
                let credential = Arc::new(AwsCredential {
                    key_id: creds.access_key_id().to_string(),
                    secret_key: creds.secret_access_key().to_string(),
                    token: creds.session_token().map(str::to_string),
                });
                debug!(expires = ?creds.expiry(), "loaded aws credentials");
                *cache = Some(CachedCredential {
                    credential: credential.clone(),
                    expires: creds.expiry(),
                });
                Ok(credential)
            }
            Err(e) => {
                if let Some(c) = cache.as_ref()
                    && c.expires.is_none_or(|exp| now < exp)
                {
                    warn!(error = %e, "refreshing aws credentials failed; using the cached ones until they expire");
                    return Ok(c.credential.clone());
                }
                Err(object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(e),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::future;
    use object_store::ObjectStoreExt;

    use super::*;

    #[test]
    fn parses_the_three_schemes() {
        assert_eq!(
            StoreUrl::parse("s3://bucket/some/prefix/").unwrap(),
            StoreUrl::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("s3://bucket").unwrap(),
            StoreUrl::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            StoreUrl::parse("file:///var/lib/tierlog/objects").unwrap(),
            StoreUrl::File {
                path: "/var/lib/tierlog/objects".into()
            }
        );
        assert_eq!(
            StoreUrl::parse("memory://").unwrap(),
            StoreUrl::Memory {
                prefix: String::new()
            }
        );
        assert_eq!(
            StoreUrl::parse("memory://test/a").unwrap(),
            StoreUrl::Memory {
                prefix: "test/a".into()
            }
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "gs://bucket",
            "s3://",
            "s3:///prefix",
            "file://host/path",
            "not a url",
            "s3://bucket/p?x=1",
        ] {
            let e = StoreUrl::parse(url).unwrap_err();
            assert!(matches!(e, Error::InvalidConfig { .. }), "{url}: {e}");
            assert!(e.to_string().contains(url), "{e}");
        }
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn options_win_over_the_environment() {
        let opts = S3Options {
            region: Some("eu-west-1".into()),
            endpoint: Some("http://127.0.0.1:9000".into()),
            allow_http: false,
            path_style: true,
        };
        let r = resolve_s3(
            &opts,
            "b",
            env(&[
                ("AWS_REGION", "us-west-2"),
                ("AWS_ENDPOINT_URL", "https://elsewhere"),
            ]),
        )
        .unwrap();
        assert_eq!(
            r,
            ResolvedS3 {
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:9000".into()),
                allow_http: true, // from the http:// endpoint
                virtual_hosted: false,
            }
        );
    }

    #[test]
    fn environment_as_the_aws_cli_reads_it() {
        let none = S3Options::default();
        let r = resolve_s3(&none, "b", env(&[])).unwrap();
        assert_eq!(r.region, None); // left to aws-config's chain, then us-east-1
        assert_eq!(r.endpoint, None);
        assert!(!r.allow_http && r.virtual_hosted);

        let r = resolve_s3(&none, "b", env(&[("AWS_DEFAULT_REGION", "ap-south-1")])).unwrap();
        assert_eq!(r.region.as_deref(), Some("ap-south-1"));
        let r = resolve_s3(
            &none,
            "b",
            env(&[("AWS_REGION", "us-west-2"), ("AWS_DEFAULT_REGION", "x")]),
        )
        .unwrap();
        assert_eq!(r.region.as_deref(), Some("us-west-2"));

        // the service-specific endpoint wins over the global one
        let both = [
            ("AWS_ENDPOINT_URL", "https://global.example"),
            ("AWS_ENDPOINT_URL_S3", "http://s3.example:9000/"),
        ];
        let path = S3Options {
            path_style: true,
            ..S3Options::default()
        };
        let r = resolve_s3(&path, "b", env(&both)).unwrap();
        assert_eq!(r.endpoint.as_deref(), Some("http://s3.example:9000"));
        assert!(r.allow_http);
        let r = resolve_s3(
            &path,
            "b",
            env(&[("AWS_ENDPOINT_URL", "https://global.example")]),
        )
        .unwrap();
        assert_eq!(r.endpoint.as_deref(), Some("https://global.example"));
        assert!(!r.allow_http);
        // and both can be switched off
        let r = resolve_s3(
            &path,
            "b",
            env(&[
                both[0],
                both[1],
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(r.endpoint, None);
    }

    #[test]
    fn virtual_hosted_custom_endpoints_carry_the_bucket() {
        let vh = S3Options {
            endpoint: Some("https://storage.example:8443".into()),
            ..S3Options::default()
        };
        let r = resolve_s3(&vh, "logs", env(&[])).unwrap();
        assert_eq!(
            r.endpoint.as_deref(),
            Some("https://logs.storage.example:8443")
        );
        assert!(r.virtual_hosted);
        for ip in [
            "http://127.0.0.1:9000",
            "http://localhost:9000",
            "http://[::1]:9000",
        ] {
            let opts = S3Options {
                endpoint: Some(ip.into()),
                ..S3Options::default()
            };
            let r = resolve_s3(&opts, "logs", env(&[])).unwrap();
            assert!(!r.virtual_hosted, "{ip}");
            assert_eq!(r.endpoint.as_deref(), Some(ip));
        }
        let bad = S3Options {
            endpoint: Some("ftp://x".into()),
            ..S3Options::default()
        };
        assert!(resolve_s3(&bad, "b", env(&[])).is_err());
    }

    #[test]
    fn debug_output_is_plain() {
        let cfg = ObjectStoreConfig {
            url: "s3://b/p".into(),
            s3: S3Options {
                region: Some("r".into()),
                ..S3Options::default()
            },
        };
        let s = format!("{cfg:?}");
        assert!(
            s.contains("s3://b/p") && s.contains("region: Some(\"r\")"),
            "{s}"
        );
        let json = serde_json::to_value(&cfg.s3).unwrap();
        let back: S3Options = serde_json::from_value(json).unwrap();
        assert_eq!(back, cfg.s3);
    }

    #[tokio::test]
    async fn memory_and_file_stores_are_scoped_to_their_prefix() {
        let store = open_object_store(&ObjectStoreConfig {
            url: "memory://a/b".into(),
            s3: S3Options::default(),
        })
        .await
        .unwrap();
        let p = object_store::path::Path::from("k");
        store.put(&p, "v".into()).await.unwrap();
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), "v");

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        let store = open_object_store(&ObjectStoreConfig {
            url: format!("file://{}", root.display()),
            s3: S3Options::default(),
        })
        .await
        .unwrap();
        store
            .put(&object_store::path::Path::from("x/y"), "z".into())
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("x/y")).unwrap(), b"z");
    }

    #[tokio::test]
    async fn a_fault_spec_wraps_the_store() {
        let cfg = ObjectStoreConfig {
            url: "memory://".into(),
            s3: S3Options::default(),
        };
        let p = object_store::path::Path::from("k");
        let store = open_object_store_with_faults(&cfg, Some("fail_first=1,ops=put"))
            .await
            .unwrap();
        assert!(store.to_string().starts_with("FaultStore("), "{store}");
        let e = store.put(&p, "v".into()).await.unwrap_err();
        assert!(e.to_string().contains("HTTP 503"), "{e}");
        store.put(&p, "v".into()).await.unwrap();
        // none: the plain store
        let plain = open_object_store_with_faults(&cfg, None).await.unwrap();
        assert!(!plain.to_string().starts_with("FaultStore("), "{plain}");
        plain.put(&p, "v".into()).await.unwrap();
        let e = open_object_store_with_faults(&cfg, Some("fail_first=many"))
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Invalid, "{e}");
    }

    #[tokio::test]
    async fn s3_store_builds_without_touching_the_network() {
        // Region and endpoint given: no IMDS lookup, no request until first use.
        let store = open_object_store(&ObjectStoreConfig {
            url: "s3://bucket/prefix".into(),
            s3: S3Options {
                region: Some("eu-central-1".into()),
                endpoint: Some("http://127.0.0.1:1".into()),
                allow_http: false,
                path_style: true,
            },
        })
        .await
        .unwrap();
        assert!(format!("{store}").contains("prefix"), "{store}");
        let debug = format!("{store:?}");
        assert!(
            debug.contains("bucket") && debug.contains("eu-central-1"),
            "{debug}"
        );
    }

    /// Counts fetches; hands out credentials expiring `ttl` from now.
    #[derive(Debug)]
    struct Counting {
        calls: AtomicUsize,
        ttl: Option<Duration>,
        fail: bool,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                return future::ProvideCredentials::ready(Err(
                    aws_credential_types::provider::error::CredentialsError::not_loaded(
                        "no credentials here",
                    ),
                ));
            }
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("AKID{n}"),
                "top-secret",
                Some("session-token".into()),
                self.ttl.map(|t| SystemTime::now() + t),
                "test",
            )))
        }
    }

    fn provider(ttl: Option<Duration>, fail: bool) -> (AwsConfigCredentialProvider, Arc<Counting>) {
        let counting = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            ttl,
            fail,
        });
        let shared =
            SharedCredentialsProvider::from(counting.clone() as Arc<dyn ProvideCredentials>);
        (AwsConfigCredentialProvider::new(shared), counting)
    }

    #[tokio::test]
    async fn credentials_are_cached_until_shortly_before_expiry() {
        let (p, counting) = provider(Some(Duration::from_secs(3600)), false);
        let a = p.get_credential().await.unwrap();
        let b = p.get_credential().await.unwrap();
        assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
        assert_eq!(a.key_id, "AKID0");
        assert_eq!(b.secret_key, "top-secret");
        assert_eq!(b.token.as_deref(), Some("session-token"));

        // Expiring within the refresh margin: fetched again every time.
        let (p, counting) = provider(Some(Duration::from_secs(60)), false);
        p.get_credential().await.unwrap();
        assert_eq!(p.get_credential().await.unwrap().key_id, "AKID1");
        assert_eq!(counting.calls.load(Ordering::SeqCst), 2);

        // No expiry: cached for good.
        let (p, counting) = provider(None, false);
        for _ in 0..3 {
            p.get_credential().await.unwrap();
        }
        assert_eq!(counting.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_object_store_errors_and_debug_hides_secrets() {
        let (p, _) = provider(None, true);
        let e = p.get_credential().await.unwrap_err();
        assert!(matches!(e, object_store::Error::Generic { .. }), "{e}");

        let (p, _) = provider(None, false);
        p.get_credential().await.unwrap();
        let shown = format!("{p:?}");
        assert!(shown.contains("AKID0"), "{shown}");
        assert!(
            !shown.contains("top-secret") && !shown.contains("session-token"),
            "{shown}"
        );
    }
}
