//! The state every request handler draws on, and how it is opened.
//!
//! A [`Broker`] is composed of components that handlers take one by one — the [`Host`]
//! (topics, partitions, cluster view, fetchers), the group coordinator, the remote tier, the
//! counters, the clock — so a handler sees only what it uses. It is built without any
//! listener ([`Broker::open`]) so tests can run one in-process on an in-memory metadata store
//! and object store (`testing::TestBroker`); [`crate::Node`] adds the listeners and owns
//! start-up and shutdown.

#[cfg(test)]
mod read_replica_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tierlog_metadata::{
    AclRegistry, ListenerEndpoint, ManifestRegistry, MetadataStore, NodeId, SharedClock,
    TopicRegistry,
};
use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};
use tierlog_tiering::remote::reader::RemoteReader;
use tierlog_tiering::remote::store::{ObjectStoreConfig, S3Options, open_object_store_with_faults};

use crate::cluster::{Cluster, Membership};
use crate::config::NodeConfig;
use crate::group::Coordinator;
use crate::host::{Host, TopicDefaults};
use crate::metrics::Metrics;
use crate::partition::{Partitions, Tiering, TieringMetrics};
use crate::replication::fetcher::Fetchers;
use crate::security::acl::{Authorizer, AuthorizerConfig};
use crate::security::sasl::Authenticator;
use crate::txn::{TxnConfig, TxnCoordinator};

/// Who this node is, as Metadata, FindCoordinator and DescribeCluster report it.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) node_id: NodeId,
    /// The advertised host and port clients connect to.
    pub(crate) host: String,
    pub(crate) port: i32,
    /// Every listener's advertised endpoint (empty: one listener, at `host`/`port`).
    pub(crate) listeners: Vec<ListenerEndpoint>,
    pub(crate) cluster_id: String,
}

impl Identity {
    /// This node's advertised (host, port) on `listener`, if it has that listener.
    pub(crate) fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        ListenerEndpoint::find(&self.listeners, (&self.host, self.port), listener)
    }
}

/// The node's shared state: the components request handlers draw on.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(crate) config: NodeConfig,
    pub(crate) identity: Identity,
    pub(crate) host: Arc<Host>,
    /// The remote tier: object store, manifest, cached reader, counters.
    pub(crate) tiering: Arc<Tiering>,
    pub(crate) metrics: Arc<Metrics>,
    /// The group coordinator.
    pub(crate) groups: Arc<Coordinator>,
    /// The transaction coordinator (and producer ids).
    pub(crate) txns: Arc<TxnCoordinator>,
    /// Who may do what: ACLs from the metadata store, kept fresh by a watch task.
    pub(crate) authorizer: Arc<Authorizer>,
    /// The ACLs in the metadata store, as CreateAcls/DescribeAcls/DeleteAcls change them.
    pub(crate) acls: AclRegistry,
    pub(crate) clock: SharedClock,
    /// SASL: the enabled mechanisms, SCRAM credentials and the OAUTHBEARER validator every
    /// connection authenticates against.
    pub(crate) authenticator: Arc<Authenticator>,
    /// Client quotas and connection limits: what each client may use of this node.
    pub(crate) quotas: Arc<crate::security::quota::QuotaManager>,
    /// Consumers' and followers' fetch sessions (KIP-227).
    pub(crate) fetch_sessions: Arc<crate::api::fetch_session::FetchSessions>,
}

impl Broker {
    /// Opens the metadata store, the remote tier and every partition, registers in the
    /// cluster (reachable by other nodes at `advertised`, the inter-broker listener, and by
    /// clients at `listeners`), and takes this node's roles. Starts the partitions' and groups' own tasks on
    /// `tracker`; the cluster loops start with [`Broker::spawn_cluster_tasks`].
    pub(crate) async fn open(
        config: NodeConfig,
        advertised: (String, u16),
        listeners: Vec<ListenerEndpoint>,
        clock: SharedClock,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Arc<Broker>> {
        let url: tierlog_metadata::MetadataUrl = config.metadata.parse()?;
        let store: Arc<dyn MetadataStore> =
            tierlog_metadata::open_store_with(&url, &config.data_dir, &config.etcd_tls()).await?;
        let cluster_id = tierlog_metadata::cluster_id(store.as_ref()).await?;
        let tiering = Arc::new(open_tiering(&config, store.clone(), clock.clone()).await?);
        let authenticator = Arc::new(Authenticator::new(store.clone(), &config, clock.clone())?);
        if let (Some(user), Some(file)) = (
            &config.sasl_bootstrap_user,
            &config.sasl_bootstrap_password_file,
        ) {
            let password = read_password_file(file)?;
            if crate::security::sasl::bootstrap_admin(store.clone(), user, &password).await? {
                tracing::info!(
                    user,
                    "created SCRAM credentials for the bootstrap SASL user"
                );
            }
        }

        let partitions = Partitions::new(
            config.node_id,
            &config.data_dir,
            tiering.clone(),
            (config.flush_mode, config.flush_interval),
            clock.clone(),
            cancel.child_token(),
            tracker.clone(),
        )?;
        // Dynamic configs first: the logs open with the topic defaults in force here.
        let dynamic = Arc::new(crate::dynamic_config::DynamicConfigs::new(
            Some(tierlog_metadata::DynamicConfigRegistry::new(store.clone())),
            crate::dynamic_config::StaticSettings {
                node_id: config.node_id,
                min_insync_replicas: config.min_insync_replicas,
                group_session_timeout: config.group_consumer_session_timeout,
                group_heartbeat_interval: config.group_consumer_heartbeat_interval,
            },
        ));
        dynamic.refresh().await?;
        partitions.set_log_defaults(dynamic.topic_defaults());
        let topics = TopicRegistry::new(store.clone());
        let known = topics.list().await?;
        partitions.remove_orphans(&known);
        let started = clock.now_ms();
        let topic_count = known.len();
        // The partitions whose states name this node as a replica; a partition without a
        // state yet (being created) opens when its state appears.
        let states: std::collections::HashMap<_, _> =
            tierlog_metadata::PartitionStateRegistry::new(store.clone())
                .list()
                .await?
                .into_iter()
                .map(|s| ((s.value.topic_id, s.value.partition), s.value))
                .collect();
        let me = config.node_id;
        let want = |id, index| crate::partition::Want::of(states.get(&(id, index)), me);
        // A few topics at once, each opening a few partitions at once (see `install`).
        futures::stream::iter(known)
            .map(|meta| {
                let id = meta.id;
                partitions.install(meta, move |i| want(id, i))
            })
            .buffer_unordered(4)
            .try_collect::<Vec<_>>()
            .await?;
        let count: usize = partitions
            .all()
            .iter()
            .map(|t| t.partitions.open_count())
            .sum();
        tracing::info!(
            topics = topic_count,
            partitions = count,
            elapsed_ms = clock.now_ms() - started,
            open_segment_files = tierlog_tiering::FilePool::global().stats().open,
            "partition logs opened"
        );

        let groups = crate::group::Coordinator::new(
            crate::group::offsets::OffsetStore::new(store.clone()),
            crate::group::GroupConfig {
                initial_rebalance_delay: config.group_initial_rebalance_delay,
                min_session_timeout: Duration::from_secs(1),
                max_session_timeout: Duration::from_secs(30 * 60),
                offsets_retention: config.offsets_retention,
                consumer: crate::group::consumer::ConsumerConfig {
                    groups: dynamic.clone(),
                },
            },
            clock.clone(),
            tracker.clone(),
            cancel.child_token(),
        )
        .await?;
        let (advertised_host, advertised_port) = advertised;
        let membership = Membership::new(
            tierlog_metadata::NodeInfo {
                id: config.node_id,
                host: advertised_host.clone(),
                port: i32::from(advertised_port),
                rack: config.rack.clone(),
                incarnation: uuid::Uuid::new_v4(),
                started_ms: clock.now_ms(),
                listeners: listeners.clone(),
            },
            config.lease_ttl,
            clock.clone(),
        );
        let cluster = Cluster::new(config.node_id, store.clone(), membership);
        cluster
            .membership
            .register(store.as_ref(), &cluster.nodes, cancel)
            .await?;
        let fetchers = Fetchers::new(
            config.node_id,
            clock.clone(),
            Arc::new(crate::replication::client::PeerTransport::from_config(
                &config,
            )?),
            Arc::new(crate::replication::throttle::FollowerThrottle::new(
                dynamic.clone(),
            )),
            cancel.child_token(),
            tracker.clone(),
        );
        let host = Arc::new(Host {
            node_id: config.node_id,
            topics,
            partitions,
            admin: tokio::sync::Mutex::new(()),
            cluster: Arc::new(cluster),
            fetchers,
            defaults: TopicDefaults {
                auto_create_topics: config.auto_create_topics,
                default_partitions: config.default_partitions,
                default_replication_factor: config.default_replication_factor,
                rack: config.rack.clone(),
                max_create_partitions: config.max_create_partitions,
                max_partitions_per_node: config.max_partitions_per_node,
                min_segment_bytes: config.min_segment_bytes,
            },
            clock: clock.clone(),
            isr_queue: Default::default(),
            dynamic,
            replication_throttle: Default::default(),
        });
        let txns = Arc::new(TxnCoordinator::new(
            store.clone(),
            TxnConfig {
                max_timeout: config.transaction_max_timeout,
                abort_check_interval: config.transaction_abort_check_interval,
                id_expiration: config.transactional_id_expiration,
            },
            clock.clone(),
            host.clone(),
            groups.clone(),
        ));
        let metrics = Arc::new(Metrics::default());
        // allow.everyone.if.no.acl.found defaults to true only while no listener
        // authenticates clients (SASL, or TLS that requires a client certificate).
        let authenticating = crate::security::listener::Listeners::from_config(&config)
            .map_err(|(key, reason)| anyhow::anyhow!("invalid config `{key}`: {reason}"))?
            .any_authenticated(config.ssl_client_auth == "required");
        let authz_config = AuthorizerConfig::from_settings(
            config.super_users.as_deref().unwrap_or_default(),
            config.allow_everyone_if_no_acl_found,
            authenticating,
        )
        .map_err(|r| anyhow::anyhow!("invalid config `super_users`: {r}"))?;
        let acls = AclRegistry::new(store.clone());
        let authorizer = Arc::new(Authorizer::new(
            authz_config,
            metrics.clone(),
            clock.clone(),
        ));
        // Loaded before serving, so the first request already sees every ACL.
        let from = authorizer.load(&acls).await?;
        tracker.spawn(
            authorizer
                .clone()
                .run(acls.clone(), from, cancel.child_token()),
        );
        let quotas = Arc::new(open_quotas(&config, store.clone(), &clock, &metrics).await?);
        let broker = Arc::new(Broker {
            identity: Identity {
                node_id: config.node_id,
                host: advertised_host,
                port: i32::from(advertised_port),
                listeners,
                cluster_id,
            },
            host,
            groups,
            txns,
            tiering,
            metrics,
            authorizer,
            acls,
            clock,
            quotas,
            fetch_sessions: Arc::new(crate::api::fetch_session::FetchSessions::new(
                config.max_incremental_fetch_session_cache_slots,
            )),
            config,
            authenticator,
        });
        // Take this node's roles before serving: a lone node elects itself controller and
        // creates what is missing; in a cluster the controller may be elsewhere.
        crate::host::sync::refresh(&broker.host).await?;
        Ok(broker)
    }

    /// Starts the cluster loops (sync, lease keep-alive, controller, ISR shrink, retention)
    /// and, on a node that is or becomes the controller, runs a first controller pass so it
    /// serves its partitions from the first request.
    pub(crate) async fn spawn_cluster_tasks(
        self: &Arc<Self>,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        let host = &self.host;
        tracker.spawn(crate::host::sync::run(host.clone(), cancel.child_token()));
        tracker.spawn(host.isr_queue.clone().run(
            host.cluster.clone(),
            self.metrics.clone(),
            cancel.child_token(),
        ));
        tracker.spawn(crate::host::sync::run_membership(
            host.clone(),
            cancel.child_token(),
        ));
        let settings = crate::cluster::controller::Settings {
            rebalance_every: self.config.leader_rebalance_interval,
            replacement_delay: self.config.replica_replacement_delay,
            moves: crate::cluster::balance::Limits {
                max_moves: self.config.max_concurrent_reassignments,
                balance: self.config.partition_balancing,
            },
        };
        tracker.spawn(crate::cluster::controller::run(
            host.cluster.clone(),
            settings,
            cancel.child_token(),
        ));
        tracker.spawn(run_isr_shrink(self.clone(), cancel.child_token()));
        tracker.spawn(run_retention(self.clone(), cancel.child_token()));
        if self.config.log_cleaner_enable {
            tracker.spawn(run_cleaner(self.clone(), cancel.child_token()));
        }
        tracker.spawn(crate::txn::run(self.txns.clone(), cancel.child_token()));
        tracker.spawn(crate::security::quota::run_sync(
            self.quotas.clone(),
            cancel.child_token(),
        ));
        tracker.spawn(crate::dynamic_config::run_sync(
            host.clone(),
            cancel.child_token(),
        ));
        crate::host::sync::settle(host).await;
    }
}

/// The first line of a password file (without its line ending); an empty one is an error.
pub(crate) fn read_password_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading password file `{}`: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    anyhow::ensure!(
        !line.is_empty(),
        "password file `{}` has an empty first line",
        path.display()
    );
    Ok(line.to_owned())
}

/// The quota managers, with the stored quotas already loaded so they apply from the first
/// request ([`crate::security::quota::run_sync`] keeps them current).
async fn open_quotas(
    config: &NodeConfig,
    store: Arc<dyn MetadataStore>,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<crate::security::quota::QuotaManager> {
    use crate::security::quota::{QuotaManager, RateConfig, parse_overrides};
    let overrides = parse_overrides(
        config
            .max_connections_per_ip_overrides
            .as_deref()
            .unwrap_or(""),
    )
    .map_err(|e| anyhow::anyhow!("invalid config `max_connections_per_ip_overrides`: {e}"))?;
    let quotas = QuotaManager::new(
        RateConfig {
            samples: config.quota_window_num,
            window_ms: u64::try_from(config.quota_window_size.as_millis()).unwrap_or(u64::MAX),
        },
        config.max_connections_per_ip,
        overrides,
        Some(tierlog_metadata::QuotaRegistry::new(store)),
        clock.clone(),
        metrics.clone(),
    )
    .with_auto_create_allowance(config.auto_create_topics_per_ip_per_minute);
    quotas.refresh().await?;
    Ok(quotas)
}

/// Opens the object store, the tiered-read cache and the manifest.
async fn open_tiering(
    config: &NodeConfig,
    store: Arc<dyn MetadataStore>,
    clock: SharedClock,
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
    let object_store = open_object_store_with_faults(
        &ObjectStoreConfig {
            url: url.to_string(),
            s3: S3Options {
                region: config.s3_region.clone(),
                endpoint: config.s3_endpoint.clone(),
                allow_http: config.s3_allow_http,
                path_style: config.s3_path_style,
            },
        },
        config.object_store_faults.as_deref(),
    )
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
        verify_reads: config.verify_reads,
        upload_interval: config.upload_interval,
        gc_interval: config.tiering_gc_interval,
        gc_grace: config.tiering_gc_grace,
        metrics: TieringMetrics::default(),
        clock,
        scrub_interval: config.scrub_interval,
        scrub_bytes_per_sec: config.scrub_bytes_per_sec,
        scrub_tiered_interval: config.scrub_tiered_interval,
    })
}

/// Periodically removes in-sync followers that stopped keeping up, and moves leadership off
/// damaged ranges (`replication::damage_pass`).
async fn run_isr_shrink(b: Arc<Broker>, cancel: CancellationToken) {
    let max_lag = b.config.replica_lag_time_max;
    let mut tick = tokio::time::interval((max_lag / 2).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let h = &b.host;
        crate::replication::shrink_isrs(&h.partitions, &h.isr_queue, b.clock.now(), max_lag);
        crate::replication::damage_pass(&h.partitions, &h.cluster, &h.isr_queue).await;
    }
}

/// Periodic time-based rolling and retention: the one-loop shape (cancel first, then ticks).
async fn run_retention(b: Arc<Broker>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(b.config.retention_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = b.clock.now_ms();
        b.host.partitions.enforce_retention(now).await;
        expire_producers(&b, now);
    }
}

/// The log cleaner (Kafka's `LogCleaner`, one thread): every `log_cleaner_backoff`, cleans
/// the hosted logs of compacted topics that need it, dirtiest first, one at a time on a
/// blocking thread, under one I/O throttle.
async fn run_cleaner(b: Arc<Broker>, cancel: CancellationToken) {
    let options = tierlog_tiering::CleanerOptions {
        dedupe_buffer_bytes: b.config.log_cleaner_dedupe_buffer_size,
    };
    let throttle = Arc::new(std::sync::Mutex::new(tierlog_tiering::Throttle::new(
        b.config.log_cleaner_io_max_bytes_per_second,
    )));
    let mut tick = tokio::time::interval(b.config.log_cleaner_backoff);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        b.host
            .partitions
            .clean_logs(b.clock.now_ms(), &options, &throttle, &b.metrics, &cancel)
            .await;
    }
}

/// Forgets idempotent producers idle past `producer_id_expiration` on every hosted partition
/// (Kafka's producer.id.expiration.ms).
fn expire_producers(b: &Broker, now: i64) {
    let expiration = i64::try_from(b.config.producer_id_expiration.as_millis()).unwrap_or(i64::MAX);
    for t in b.host.partitions.all() {
        for p in &t.partitions {
            let n = p.log.expire_producers(now, expiration);
            if n > 0 {
                tracing::debug!(partition = %p.tp, expired = n, "idle producer ids expired");
            }
        }
    }
}
