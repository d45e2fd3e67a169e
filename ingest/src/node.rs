//! One tierlog node: opens the metadata store and every partition, registers in the cluster and
//! takes its roles, then runs the Kafka listener, the admin HTTP server, the cluster tasks
//! (sync, lease keep-alive, controller, ISR shrink) and the periodic retention task until told
//! to stop.
//!
//! Shutdown (SIGINT/SIGTERM or [`Node::shutdown`]): stop accepting, stop reading new requests,
//! let the in-flight ones finish and their responses be written, stop the flushers; with other
//! live nodes, hand leadership over at once (resign every role, revoke the lease); alone, seal
//! and tier the committed active segments first; then flush and close every partition log
//! (writing its clean-shutdown marker), and return — or, past `shutdown_grace`, abandon what is
//! still running (the logs are still flushed and closed).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use tierlog_metadata::{ManifestRegistry, MetadataStore, TopicRegistry};
use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};
use tierlog_tiering::remote::reader::RemoteReader;
use tierlog_tiering::remote::store::{ObjectStoreConfig, S3Options, open_object_store};

use crate::config::{NodeConfig, parse_host_port};
use crate::partition::{Partitions, Tiering, TieringMetrics};

/// The state every request handler shares.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(crate) config: NodeConfig,
    pub(crate) node_id: i32,
    pub(crate) advertised_host: String,
    pub(crate) advertised_port: i32,
    pub(crate) cluster_id: String,
    pub(crate) topics: TopicRegistry,
    pub(crate) partitions: Partitions,
    /// The remote tier: object store, manifest, cached reader, counters.
    pub(crate) tiering: Arc<Tiering>,
    /// Serialises topic creation, deletion and changes on this node, so that the metadata
    /// store and the open partitions change together.
    pub(crate) admin: tokio::sync::Mutex<()>,
    pub(crate) metrics: crate::http::Metrics,
    /// The group coordinator (every group is coordinated by this node).
    pub(crate) groups: Arc<crate::group::Coordinator>,
    /// Membership, the cluster view, partition states, the controller election.
    pub(crate) cluster: crate::cluster::Cluster,
    /// The fetchers of the partitions this node follows.
    pub(crate) fetchers: crate::replication::fetcher::Fetchers,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    broker: Arc<Broker>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// The Kafka listener's bound address (useful with port 0).
    pub kafka_addr: std::net::SocketAddr,
    /// The admin HTTP server's bound address.
    pub http_addr: std::net::SocketAddr,
}

impl Node {
    /// Opens everything and starts serving.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Node> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!("creating data_dir `{}`: {e}", config.data_dir.display())
        })?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();

        let url: tierlog_metadata::MetadataUrl = config.metadata.parse()?;
        let store: Arc<dyn MetadataStore> =
            tierlog_metadata::open_store(&url, &config.data_dir).await?;
        let cluster_id = tierlog_metadata::cluster_id(store.as_ref()).await?;
        let tiering = Arc::new(open_tiering(&config, store.clone()).await?);

        let listener = TcpListener::bind(config.listen_addr()?)
            .await
            .map_err(|e| anyhow::anyhow!("binding Kafka listener `{}`: {e}", config.listen))?;
        let kafka_addr = listener.local_addr()?;
        let http_listener = TcpListener::bind(&config.http)
            .await
            .map_err(|e| anyhow::anyhow!("binding admin HTTP `{}`: {e}", config.http))?;
        let http_addr = http_listener.local_addr()?;
        let (advertised_host, advertised_port) = match &config.advertise {
            Some(a) => parse_host_port(a)
                .map_err(|r| anyhow::anyhow!("invalid config `advertise`: {r}"))?,
            None => {
                let ip = kafka_addr.ip();
                let host = if ip.is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    ip.to_string()
                };
                (host, kafka_addr.port())
            }
        };

        let partitions = Partitions::new(
            config.node_id,
            &config.data_dir,
            tiering.clone(),
            config.flush_mode,
            config.flush_interval,
            cancel.child_token(),
            tracker.clone(),
        )?;
        let topics = TopicRegistry::new(store.clone());
        let known = topics.list().await?;
        partitions.remove_orphans(&known);
        for meta in known {
            partitions.install(meta).await?;
        }

        let groups = crate::group::Coordinator::new(
            crate::group::offsets::OffsetStore::new(store.clone()),
            crate::group::GroupConfig {
                initial_rebalance_delay: config.group_initial_rebalance_delay,
                min_session_timeout: std::time::Duration::from_secs(1),
                max_session_timeout: std::time::Duration::from_secs(30 * 60),
                offsets_retention: config.offsets_retention,
                consumer: crate::group::consumer::ConsumerConfig {
                    heartbeat_interval: config.group_consumer_heartbeat_interval,
                    session_timeout: config.group_consumer_session_timeout,
                },
            },
            tracker.clone(),
            cancel.child_token(),
        )
        .await?;
        let membership = crate::cluster::Membership::new(
            tierlog_metadata::NodeInfo {
                id: config.node_id,
                host: advertised_host.clone(),
                port: i32::from(advertised_port),
                rack: config.rack.clone(),
                incarnation: uuid::Uuid::new_v4(),
                started_ms: now_ms(),
            },
            config.lease_ttl,
        );
        let cluster = crate::cluster::Cluster::new(config.node_id, store.clone(), membership);
        cluster
            .membership
            .register(store.as_ref(), &cluster.nodes, &cancel)
            .await?;
        let fetchers = crate::replication::fetcher::Fetchers::new(
            config.node_id,
            cancel.child_token(),
            tracker.clone(),
        );
        let broker = Arc::new(Broker {
            cluster,
            fetchers,
            groups,
            node_id: config.node_id,
            advertised_host,
            advertised_port: i32::from(advertised_port),
            cluster_id,
            topics,
            partitions,
            tiering,
            admin: tokio::sync::Mutex::new(()),
            metrics: crate::http::Metrics::default(),
            config,
        });

        // Take this node's roles before serving: a lone node elects itself controller and
        // creates what is missing; in a cluster the controller may be elsewhere.
        crate::cluster::sync::refresh(&broker).await?;
        tracker.spawn(crate::cluster::sync::run(
            broker.clone(),
            cancel.child_token(),
        ));
        tracker.spawn(crate::cluster::sync::run_membership(
            broker.clone(),
            cancel.child_token(),
        ));
        tracker.spawn(crate::cluster::controller::run(
            broker.clone(),
            cancel.child_token(),
        ));
        tracker.spawn(crate::replication::run_isr_shrink(
            broker.clone(),
            cancel.child_token(),
        ));
        crate::cluster::controller::settle(&broker).await;
        tracker.spawn(crate::server::run_listener(
            listener,
            broker.clone(),
            cancel.child_token(),
            tracker.clone(),
        ));
        tracker.spawn(crate::http::serve(
            http_listener,
            broker.clone(),
            cancel.child_token(),
        ));
        tracker.spawn(run_retention(broker.clone(), cancel.child_token()));
        info!(
            node_id = broker.node_id,
            kafka = %kafka_addr,
            http = %http_addr,
            advertised = %format!("{}:{}", broker.advertised_host, broker.advertised_port),
            cluster_id = %broker.cluster_id,
            flush_mode = ?broker.config.flush_mode,
            "tierlog node started"
        );
        Ok(Node {
            broker,
            cancel,
            tracker,
            kafka_addr,
            http_addr,
        })
    }

    /// Serves until SIGINT or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        wait_for_signal().await;
        info!("shutdown signal received");
        self.shutdown().await
    }

    /// Stops the node: see the module docs for the order.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.tracker.close();
        let grace = self.broker.config.shutdown_grace;
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                ?grace,
                "shutdown grace period passed; abandoning in-flight work"
            );
        }
        // With other live nodes, hand over first: give up every role and end the lease, so the
        // controller moves leadership now rather than after a TTL (a rolling restart costs
        // clients one metadata refresh); the new leaders tier what is committed.
        let b = &self.broker;
        let others_alive = b.cluster.live_nodes().iter().any(|n| *n != b.node_id);
        if others_alive {
            b.partitions.resign_all();
            b.cluster.membership.revoke(b.cluster.store.as_ref()).await;
        }
        // Alone, seal and tier what is still in the active segments, so that after a clean
        // stop the object store holds everything acknowledged (batch readers need no node).
        // Bounded by the grace period: an unreachable object store must not hold the stop
        // hostage; what is not tiered now is on local disk and is tiered after the next start.
        let sealed = tokio::time::timeout(grace, b.partitions.seal_and_tier_all()).await;
        if sealed.is_err() {
            warn!(
                ?grace,
                "tiering the active segments did not finish within the grace period"
            );
        }
        b.partitions.resign_all();
        b.cluster.membership.revoke(b.cluster.store.as_ref()).await;
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.partitions.close_all()).await?;
        info!("tierlog node stopped");
        Ok(())
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens the object store, the tiered-read cache and the manifest.
async fn open_tiering(
    config: &NodeConfig,
    store: Arc<dyn MetadataStore>,
) -> anyhow::Result<Tiering> {
    let url = config.object_store_url()?;
    if url.scheme() == "file" {
        let path = url.to_file_path().map_err(|()| {
            anyhow::anyhow!("invalid config `object_store`: `{url}` is not a local path")
        })?;
        std::fs::create_dir_all(&path).map_err(|e| {
            anyhow::anyhow!("creating object store directory `{}`: {e}", path.display())
        })?;
    }
    let object_store = open_object_store(&ObjectStoreConfig {
        url: url.to_string(),
        s3: S3Options {
            region: config.s3_region.clone(),
            endpoint: config.s3_endpoint.clone(),
            allow_http: config.s3_allow_http,
            path_style: config.s3_path_style,
        },
    })
    .await
    .map_err(|e| anyhow::anyhow!("invalid config `object_store`: {e}"))?;
    let cache = ChunkCache::new(&CacheConfig {
        memory_bytes: config.cache_memory_bytes,
        disk_dir: (config.cache_disk_bytes > 0).then(|| config.cache_dir()),
        disk_bytes: config.cache_disk_bytes,
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "opening the tiered-read cache in `{}`: {e}",
            config.cache_dir().display()
        )
    })?;
    Ok(Tiering {
        reader: RemoteReader::new(object_store.clone(), cache),
        store: object_store,
        manifest: ManifestRegistry::new(store),
        upload_interval: config.upload_interval,
        // TODO(merge): from config.tiering_gc_interval / tiering_gc_grace
        gc_interval: tierlog_tiering::remote::gc::DEFAULT_INTERVAL,
        gc_grace: tierlog_tiering::remote::gc::DEFAULT_GRACE,
        metrics: TieringMetrics::default(),
    })
}

/// Periodic time-based rolling and retention: the one-loop shape (cancel first, then ticks).
async fn run_retention(broker: Arc<Broker>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(broker.config.retention_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        broker.partitions.enforce_retention(now_ms()).await;
    }
}
