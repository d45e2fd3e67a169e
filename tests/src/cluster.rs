//! A cluster of real `tierlog serve` processes sharing one etcd and one object store.
//!
//! Lifecycle: [`TestCluster::start`] starts a real etcd ([`EtcdServer`]), a shared object store
//! (a `file://` directory, or a bucket on a real `moto_server`), and `N` [`TestNode`]s with node
//! ids `1..=N`, each with its own data directory and ports but the same `--metadata` prefix and
//! `--object-store`, and the cluster flags of [`ClusterOptions`]. A test then drives the cluster
//! with real clients through [`TestCluster::bootstrap`] (only nodes that are running and not
//! frozen), injects faults — [`TestCluster::kill9`], [`TestCluster::sigstop`] /
//! [`TestCluster::sigcont`], [`TestCluster::wipe_and_restart`] — and waits for the cluster to
//! react with the `wait_*` helpers, which poll Kafka Metadata (as librdkafka sees it) until a
//! condition holds or a deadline passes, and then fail with the last view they saw.
//!
//! [`BackgroundProducer`] keeps producing numbered records from its own thread and records the
//! acknowledged offset of each, and [`read_partition`] / [`check_acked`] check the log against
//! those acknowledgements: every acknowledged record at exactly its acknowledged offset, offsets
//! dense from 0.
//!
//! Dropping the cluster kills every node (frozen ones too; SIGKILL ends a stopped process) and
//! then etcd; a node dropped while the test panics prints its log tails first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Offset};

use crate::clients::{admin, admin_options, assigned_consumer, consume_exactly, consumer};
use crate::etcd::EtcdServer;
use crate::node::{NodeOptions, TestNode};
use crate::s3::MotoServer;
use crate::wait::{Poll, wait_for};

/// The etcd prefix every node of a cluster shares.
const METADATA_PREFIX: &str = "/tierlog-cluster";
/// The bucket of a moto-backed cluster.
const BUCKET: &str = "tierlog-cluster";
/// How long a single Metadata request may take: short, so a poll never hangs on a node that
/// accepts connections but does not answer.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the `wait_*` helpers poll Metadata.
const POLL: Duration = Duration::from_millis(200);

/// Where the nodes of a cluster keep their tiered data (the same place for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharedStore {
    /// `file:///<tempdir>`: no extra process.
    #[default]
    File,
    /// A bucket on a real `moto_server` (`s3://…`); the test skips when moto is missing.
    Moto,
}

/// How to start a [`TestCluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of nodes (ids `1..=nodes`).
    pub nodes: u32,
    /// `--lease-ttl` of every node: how soon a dead or frozen node loses its leadership.
    pub lease_ttl: String,
    /// `--replica-lag-time-max` of every node: how soon a lagging follower leaves the ISR.
    pub replica_lag_time_max: String,
    /// `--default-replication-factor`, `None` for the node's default.
    pub default_replication_factor: Option<u32>,
    /// `--min-insync-replicas`, `None` for the node's default.
    pub min_insync_replicas: Option<u32>,
    /// The shared object store.
    pub store: SharedStore,
    /// Options every node starts from (the harness sets node id, metadata, object store and
    /// the cluster flags on top).
    pub node: NodeOptions,
    /// Bound on every `wait_*` helper.
    pub settle_timeout: Duration,
    /// `--rack` of each node, node 1's first (none past the end).
    pub racks: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            lease_ttl: "2s".to_owned(),
            replica_lag_time_max: "3s".to_owned(),
            default_replication_factor: None,
            min_insync_replicas: None,
            store: SharedStore::File,
            node: NodeOptions::default(),
            settle_timeout: Duration::from_secs(60),
            racks: Vec::new(),
        }
    }
}

/// One partition as a Metadata response describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// The leader's node id; `None` when the response names none (-1).
    pub leader: Option<u32>,
    /// Assigned replicas, in the order the response lists them.
    pub replicas: Vec<u32>,
    /// In-sync replicas.
    pub isr: Vec<u32>,
    /// The partition's error code, if any.
    pub error: Option<String>,
}

impl PartitionView {
    /// Whether every replica is in the ISR and the leader is one of them.
    pub fn isr_full(&self) -> bool {
        let replicas: BTreeSet<u32> = self.replicas.iter().copied().collect();
        let isr: BTreeSet<u32> = self.isr.iter().copied().collect();
        !replicas.is_empty() && replicas == isr && self.leader.is_some_and(|l| isr.contains(&l))
    }
}

/// What one Metadata response says about the cluster and one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// Node ids of the brokers listed.
    pub brokers: BTreeSet<u32>,
    /// The topic's partitions by id (empty when the topic is not listed).
    pub partitions: BTreeMap<i32, PartitionView>,
    /// The topic's error code, if any.
    pub topic_error: Option<String>,
}

impl ClusterView {
    /// The partition `p`, if listed.
    pub fn partition(&self, p: i32) -> Option<&PartitionView> {
        self.partitions.get(&p)
    }

    /// How many partitions each node leads.
    pub fn leader_counts(&self) -> BTreeMap<u32, usize> {
        let mut counts = BTreeMap::new();
        for leader in self.partitions.values().filter_map(|p| p.leader) {
            *counts.entry(leader).or_default() += 1;
        }
        counts
    }
}

/// A running cluster: etcd, a shared object store and `N` nodes.
#[derive(Debug)]
pub struct TestCluster {
    /// By node id. Declared first so the nodes die before the services they depend on.
    nodes: BTreeMap<u32, TestNode>,
    /// Nodes frozen by [`TestCluster::sigstop`]: left out of [`TestCluster::bootstrap`].
    frozen: BTreeSet<u32>,
    settle_timeout: Duration,
    /// Kept alive for the nodes; `None` for a `file://` store.
    _moto: Option<MotoServer>,
    /// The `file://` store's directory; `None` for moto.
    _store_dir: Option<tempfile::TempDir>,
    etcd: EtcdServer,
}

impl TestCluster {
    /// For tests: `Ok(Some(cluster))` once every node is ready; `Ok(None)` after a loud message
    /// when etcd (or, for [`SharedStore::Moto`], moto) is not installed outside CI.
    pub fn start_or_skip(test: &str, opts: ClusterOptions) -> Result<Option<Self>> {
        let Some(etcd) = EtcdServer::start_or_skip(test)? else {
            return Ok(None);
        };
        let moto = match opts.store {
            SharedStore::File => None,
            SharedStore::Moto => match MotoServer::start_or_skip(test)? {
                Some(moto) => Some(moto),
                None => return Ok(None),
            },
        };
        Self::start_on(etcd, moto, opts).map(Some)
    }

    /// Starts etcd and the cluster; fails when etcd is missing.
    pub fn start(opts: ClusterOptions) -> Result<Self> {
        let etcd = EtcdServer::start()?;
        let moto = match opts.store {
            SharedStore::File => None,
            SharedStore::Moto => Some(MotoServer::start()?),
        };
        Self::start_on(etcd, moto, opts)
    }

    /// Starts the nodes on a running etcd (and moto, for [`SharedStore::Moto`]), in parallel,
    /// and waits until each is ready.
    pub fn start_on(
        etcd: EtcdServer,
        moto: Option<MotoServer>,
        opts: ClusterOptions,
    ) -> Result<Self> {
        let mut base = opts
            .node
            .clone()
            .metadata(&etcd.url(METADATA_PREFIX))
            .lease_ttl(&opts.lease_ttl)
            .replica_lag_time_max(&opts.replica_lag_time_max);
        base.default_replication_factor = opts.default_replication_factor;
        base.min_insync_replicas = opts.min_insync_replicas;
        let mut store_dir = None;
        base = match (&moto, opts.store) {
            (Some(moto), SharedStore::Moto) => {
                moto.create_bucket(BUCKET)?;
                base.s3(moto, BUCKET, "cluster")
            }
            _ => {
                let dir = tempfile::Builder::new()
                    .prefix("tierlog-cluster-store-")
                    .tempdir()
                    .context("creating the shared object store directory")?;
                let url = format!("file://{}", dir.path().display());
                store_dir = Some(dir);
                base.object_store(&url)
            }
        };
        let started: Vec<(u32, Result<TestNode>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..=opts.nodes)
                .map(|id| {
                    let mut node_opts = base.clone().node_id(id);
                    if let Some(rack) = opts.racks.get(id as usize - 1) {
                        node_opts = node_opts.args(["--rack", rack.as_str()]);
                    }
                    (id, scope.spawn(move || TestNode::start(node_opts)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(id, h)| {
                    let result = h
                        .join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("starting node {id} panicked")));
                    (id, result)
                })
                .collect()
        });
        let mut nodes = BTreeMap::new();
        for (id, node) in started {
            let node = node.with_context(|| format!("starting node {id}"))?;
            nodes.insert(id, node);
        }
        Ok(TestCluster {
            nodes,
            frozen: BTreeSet::new(),
            settle_timeout: opts.settle_timeout,
            _moto: moto,
            _store_dir: store_dir,
            etcd,
        })
    }

    /// The nodes' `--metadata` URL (etcd and the cluster's key prefix), for tools that work on
    /// the store directly (`tierlog node`).
    pub fn metadata_url(&self) -> String {
        self.etcd.url(METADATA_PREFIX)
    }

    /// All node ids, running or not.
    pub fn ids(&self) -> Vec<u32> {
        self.nodes.keys().copied().collect()
    }

    /// Ids of the nodes that are running and not frozen.
    pub fn live_ids(&self) -> BTreeSet<u32> {
        self.nodes
            .iter()
            .filter(|(id, n)| n.pid().is_some() && !self.frozen.contains(id))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Comma-separated Kafka addresses of the live nodes (running and not frozen), for
    /// `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.live_ids()
            .iter()
            .map(|id| self.nodes[id].bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node with id `id`. Panics on an unknown id (a bug in the test).
    pub fn node(&self, id: u32) -> &TestNode {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    fn node_mut(&mut self, id: u32) -> Result<&mut TestNode> {
        self.nodes
            .get_mut(&id)
            .with_context(|| format!("no node {id} in the cluster"))
    }

    /// Stops node `id` cleanly (SIGTERM) and waits for it to exit; returns its exit status.
    pub fn terminate(&mut self, id: u32) -> Result<std::process::ExitStatus> {
        self.node_mut(id)?.terminate()
    }

    /// The etcd every node uses.
    pub fn etcd(&self) -> &EtcdServer {
        &self.etcd
    }

    /// The etcd every node uses, for faults ([`EtcdServer::kill`], [`EtcdServer::restart`]).
    pub fn etcd_mut(&mut self) -> &mut EtcdServer {
        &mut self.etcd
    }

    /// SIGKILL node `id` (frozen or not) and reap it.
    pub fn kill9(&mut self, id: u32) -> Result<()> {
        self.node_mut(id)?.kill9()?;
        self.frozen.remove(&id);
        Ok(())
    }

    /// Starts node `id` again on its data directory and ports: after a kill it simply starts;
    /// a running node is first stopped with SIGTERM. Waits until it is ready.
    pub fn restart(&mut self, id: u32) -> Result<()> {
        let node = self.node_mut(id)?;
        if node.is_running() {
            node.restart()
        } else {
            node.start_again()
        }
    }

    /// Kills node `id` if it is running, deletes everything in its data directory, and starts
    /// it again with the same id and ports: a replacement machine with an empty disk.
    pub fn wipe_and_restart(&mut self, id: u32) -> Result<()> {
        let node = self.node_mut(id)?;
        if node.is_running() {
            node.kill9()?;
        }
        let dir = node.data_dir();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir:?}"))? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            }
            .with_context(|| format!("removing {path:?}"))?;
        }
        self.frozen.remove(&id);
        self.node_mut(id)?.start_again()
    }

    /// SIGSTOP node `id`: it keeps its sockets but answers nothing and renews no lease.
    pub fn sigstop(&mut self, id: u32) -> Result<()> {
        self.node_mut(id)?.sigstop()?;
        self.frozen.insert(id);
        Ok(())
    }

    /// SIGCONT node `id` after [`TestCluster::sigstop`].
    pub fn sigcont(&mut self, id: u32) -> Result<()> {
        self.node_mut(id)?.sigcont()?;
        self.frozen.remove(&id);
        Ok(())
    }

    /// Creates `name` with `partitions` partitions, replication factor `rf` and `configs`.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        rf: i32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let admin = admin(&self.bootstrap())?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let failed: Vec<_> = admin
            .create_topics([&topic], &admin_options())
            .await
            .context("CreateTopics request")?
            .into_iter()
            .filter_map(Result::err)
            .collect();
        ensure!(failed.is_empty(), "creating topic {name}: {failed:?}");
        Ok(())
    }

    /// Metadata for `topic` as the live nodes report it (the answer of whichever one
    /// librdkafka asks).
    pub fn metadata(&self, topic: &str) -> Result<ClusterView> {
        metadata(&self.bootstrap(), topic)
    }

    /// Metadata for `topic` as node `id` itself reports it.
    pub fn metadata_from(&self, id: u32, topic: &str) -> Result<ClusterView> {
        metadata(&self.node(id).bootstrap(), topic)
    }

    /// Polls [`TestCluster::metadata`] until `check` returns `Some`, for at most the settle
    /// timeout; on timeout the error shows the last view.
    pub fn wait_view<T>(
        &self,
        what: &str,
        topic: &str,
        mut check: impl FnMut(&ClusterView) -> Option<T>,
    ) -> Result<T> {
        wait_for(what, self.settle_timeout, POLL, || {
            let view = self.metadata(topic)?;
            Ok(match check(&view) {
                Some(v) => Poll::Ready(v),
                None => Poll::Pending(format!("{view:?}")),
            })
        })
        .with_context(|| format!("live nodes {:?}", self.live_ids()))
    }

    /// Waits until Metadata lists exactly `n` brokers.
    pub fn wait_brokers(&self, n: usize) -> Result<BTreeSet<u32>> {
        self.wait_view(&format!("{n} brokers"), "", |v| {
            (v.brokers.len() == n).then(|| v.brokers.clone())
        })
    }

    /// Waits until Metadata lists exactly the live nodes as brokers.
    pub fn wait_live_brokers(&self) -> Result<()> {
        let live = self.live_ids();
        self.wait_view(&format!("brokers {live:?}"), "", |v| {
            (v.brokers == live).then_some(())
        })
    }

    /// Waits until partition `p` has a leader that is a live node; returns it.
    pub fn wait_leader(&self, topic: &str, p: i32) -> Result<u32> {
        let live = self.live_ids();
        self.wait_view(&format!("a live leader of {topic}/{p}"), topic, |v| {
            v.partition(p)?.leader.filter(|l| live.contains(l))
        })
    }

    /// Waits until partition `p` has a live leader other than `node`; returns it.
    pub fn wait_leader_not(&self, topic: &str, p: i32, node: u32) -> Result<u32> {
        let live = self.live_ids();
        self.wait_view(
            &format!("a live leader of {topic}/{p} other than node {node}"),
            topic,
            |v| {
                v.partition(p)?
                    .leader
                    .filter(|l| *l != node && live.contains(l))
            },
        )
    }

    /// Waits until node `node` leads partition `p`.
    pub fn wait_leader_is(&self, topic: &str, p: i32, node: u32) -> Result<()> {
        self.wait_view(&format!("node {node} leading {topic}/{p}"), topic, |v| {
            (v.partition(p)?.leader == Some(node)).then_some(())
        })
    }

    /// Waits until `node` leads partition `p` alone (the ISR is just it): then its high
    /// watermark is its log end, so everything it has is readable.
    pub fn wait_sole_leader(&self, topic: &str, p: i32, node: u32) -> Result<()> {
        self.wait_view(
            &format!("node {node} leading {topic}/{p} alone"),
            topic,
            |v| {
                let part = v.partition(p)?;
                (part.leader == Some(node) && part.isr == [node]).then_some(())
            },
        )
    }

    /// Waits until every replica of partition `p` is in its ISR and the leader is live.
    pub fn wait_isr_full(&self, topic: &str, p: i32) -> Result<PartitionView> {
        let live = self.live_ids();
        self.wait_view(&format!("a full ISR on {topic}/{p}"), topic, |v| {
            let part = v.partition(p)?;
            (part.isr_full() && part.leader.is_some_and(|l| live.contains(&l)))
                .then(|| part.clone())
        })
    }

    /// Waits until the topic lists `partitions` partitions, each with `rf` replicas, all of
    /// them in the ISR, and a live leader. Returns that view.
    pub fn wait_topic_full(
        &self,
        topic: &str,
        partitions: usize,
        rf: usize,
    ) -> Result<ClusterView> {
        let live = self.live_ids();
        self.wait_view(
            &format!("{partitions} partitions of {topic} with {rf} in-sync replicas each"),
            topic,
            |v| {
                let ok = v.partitions.len() == partitions
                    && v.partitions.values().all(|p| {
                        p.replicas.len() == rf
                            && p.isr_full()
                            && p.leader.is_some_and(|l| live.contains(&l))
                    });
                ok.then(|| v.clone())
            },
        )
    }

    /// Waits until node `node` is not a broker, leads no partition of `topic` and is in none of
    /// its ISRs.
    pub fn wait_node_gone(&self, topic: &str, node: u32) -> Result<ClusterView> {
        self.wait_view(&format!("node {node} gone from {topic}"), topic, |v| {
            let gone = !v.brokers.contains(&node)
                && !v.partitions.is_empty()
                && v.partitions.values().all(|p| {
                    p.leader.is_some() && p.leader != Some(node) && !p.isr.contains(&node)
                });
            gone.then(|| v.clone())
        })
    }

    /// Waits until node `node` is in the ISR of partition `p`.
    pub fn wait_in_isr(&self, topic: &str, p: i32, node: u32) -> Result<PartitionView> {
        self.wait_view(
            &format!("node {node} in the ISR of {topic}/{p}"),
            topic,
            |v| {
                let part = v.partition(p)?;
                part.isr.contains(&node).then(|| part.clone())
            },
        )
    }
}

/// One Metadata request to `bootstrap` (all topics when `topic` is empty).
pub fn metadata(bootstrap: &str, topic: &str) -> Result<ClusterView> {
    let client = consumer(bootstrap, &[("socket.timeout.ms", "5000")])?;
    let md = client
        .fetch_metadata((!topic.is_empty()).then_some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("Metadata request to {bootstrap}"))?;
    let node_id = |id: i32| u32::try_from(id).ok();
    let mut view = ClusterView {
        brokers: md
            .brokers()
            .iter()
            .filter_map(|b| node_id(b.id()))
            .collect(),
        partitions: BTreeMap::new(),
        topic_error: None,
    };
    if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
        view.topic_error = t.error().map(|e| format!("{e:?}"));
        for p in t.partitions() {
            view.partitions.insert(
                p.id(),
                PartitionView {
                    leader: node_id(p.leader()),
                    replicas: p.replicas().iter().filter_map(|&r| node_id(r)).collect(),
                    isr: p.isr().iter().filter_map(|&r| node_id(r)).collect(),
                    error: p.error().map(|e| format!("{e:?}")),
                },
            );
        }
    }
    Ok(view)
}

// ---- a producer that keeps going across failures --------------------------------------------

/// The payload of record `seq` of a [`BackgroundProducer`] (its key is `seq` in decimal).
pub fn payload(seq: u64) -> String {
    format!("record-{seq:010}")
}

/// One acknowledged record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The record's sequence number (see [`payload`]).
    pub seq: u64,
    /// Partition and offset the broker acknowledged.
    pub partition: i32,
    /// See `partition`.
    pub offset: i64,
    /// When the record was handed to librdkafka.
    pub sent_at: Instant,
    /// When its delivery report arrived.
    pub acked_at: Instant,
}

/// Everything a [`BackgroundProducer`] saw.
#[derive(Debug, Default, Clone)]
pub struct Deliveries {
    /// Acknowledged records, in delivery-report order.
    pub acks: Vec<Ack>,
    /// Records that failed for good: `(seq, error)`.
    pub failures: Vec<(u64, String)>,
}

/// Settings of a [`BackgroundProducer`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Records in flight at most (sent but without a delivery report).
    pub window: u64,
    /// Send at most one record per `interval` (`None`: as fast as the window allows).
    pub interval: Option<Duration>,
    /// librdkafka settings applied last (e.g. `message.timeout.ms`).
    pub extra: Vec<(String, String)>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            window: 32,
            interval: None,
            extra: Vec::new(),
        }
    }
}

/// The producer's context: collects delivery reports.
struct DeliveryLog {
    /// Shared with [`BackgroundProducer`], which reads it while the producer thread appends.
    deliveries: Arc<Mutex<Deliveries>>,
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = Box<(u64, Instant)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (seq, sent_at) = *opaque;
        let mut d = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(msg) => d.acks.push(Ack {
                seq,
                partition: msg.partition(),
                offset: msg.offset(),
                sent_at,
                acked_at: Instant::now(),
            }),
            Err((e, _)) => d.failures.push((seq, e.to_string())),
        }
    }
}

/// Produces numbered records (`acks=all`, no idempotence) to one topic from its own thread
/// until stopped, recording every delivery report. Failover-friendly defaults: a 60 s message
/// timeout, 10 s request and socket timeouts (a frozen leader is abandoned quickly), metadata
/// refreshed every second.
pub struct BackgroundProducer {
    stop: Arc<AtomicBool>,
    deliveries: Arc<Mutex<Deliveries>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl BackgroundProducer {
    /// Starts producing to `topic` through `bootstrap`.
    pub fn start(bootstrap: &str, topic: &str, opts: LoadOptions) -> Result<Self> {
        let deliveries = Arc::new(Mutex::new(Deliveries::default()));
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "false")
            .set("message.timeout.ms", "60000")
            .set("request.timeout.ms", "10000")
            .set("socket.timeout.ms", "10000")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("retry.backoff.ms", "100")
            .set("linger.ms", "5");
        for (k, v) in &opts.extra {
            config.set(k, v);
        }
        let producer: BaseProducer<DeliveryLog> = config
            .create_with_context(DeliveryLog {
                deliveries: Arc::clone(&deliveries),
            })
            .context("creating the background producer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, deliveries, topic) =
                (Arc::clone(&stop), Arc::clone(&deliveries), topic.to_owned());
            std::thread::spawn(move || produce_loop(&producer, &topic, &opts, &stop, &deliveries))
        };
        Ok(BackgroundProducer {
            stop,
            deliveries,
            thread: Some(thread),
        })
    }

    /// A copy of the delivery reports so far.
    pub fn snapshot(&self) -> Deliveries {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many records were acknowledged at or after `since`.
    pub fn acked_since(&self, since: Instant) -> usize {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .acks
            .iter()
            .filter(|a| a.acked_at >= since)
            .count()
    }

    /// Waits until at least `n` records were acknowledged at or after `since`.
    pub fn wait_acked_since(&self, since: Instant, n: usize, timeout: Duration) -> Result<()> {
        wait_for(
            &format!("{n} acknowledgements"),
            timeout,
            Duration::from_millis(20),
            || {
                let got = self.acked_since(since);
                Ok(if got >= n {
                    Poll::Ready(())
                } else {
                    let d = self.snapshot();
                    Poll::Pending(format!(
                        "{got} acknowledged since; {} failures, last: {:?}",
                        d.failures.len(),
                        d.failures.last()
                    ))
                })
            },
        )
    }

    /// Stops sending, waits for every outstanding delivery report, and returns them all.
    pub fn stop(mut self) -> Result<Deliveries> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
        }
        Ok(self.snapshot())
    }
}

impl Drop for BackgroundProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn produce_loop(
    producer: &BaseProducer<DeliveryLog>,
    topic: &str,
    opts: &LoadOptions,
    stop: &AtomicBool,
    deliveries: &Mutex<Deliveries>,
) -> Result<()> {
    let mut next: u64 = 0;
    let mut next_send = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let done = {
            let d = deliveries.lock().unwrap_or_else(PoisonError::into_inner);
            (d.acks.len() + d.failures.len()) as u64
        };
        let now = Instant::now();
        if next - done < opts.window && now >= next_send {
            let (key, value) = (next.to_string(), payload(next));
            let record = BaseRecord::with_opaque_to(topic, Box::new((next, now)))
                .key(&key)
                .payload(&value);
            match producer.send(record) {
                Ok(()) => {
                    next += 1;
                    if let Some(interval) = opts.interval {
                        next_send += interval;
                    }
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
                Err((e, _)) => bail!("enqueueing record {next}: {e}"),
            }
        }
        producer.poll(Duration::from_millis(2));
    }
    producer
        .flush(Duration::from_secs(120))
        .context("flushing the background producer")
}

// ---- reading a partition back ---------------------------------------------------------------

/// Reads partition `p` of `topic` from offset 0 up to its high watermark through `bootstrap`,
/// and checks that the offsets are dense from 0.
pub fn read_partition(bootstrap: &str, topic: &str, p: i32) -> Result<Vec<OwnedMessage>> {
    let (low, high) = consumer(bootstrap, &[])?
        .fetch_watermarks(topic, p, METADATA_TIMEOUT * 6)
        .with_context(|| format!("watermarks of {topic}/{p}"))?;
    ensure!(low == 0, "{topic}/{p} starts at {low}, not 0");
    let consumer = assigned_consumer(bootstrap, topic, [p], Offset::Beginning)?;
    let n = usize::try_from(high).context("negative high watermark")?;
    let timeout = Duration::from_secs(60 + u64::try_from(n / 1000).unwrap_or(0));
    let messages = consume_exactly(&consumer, n, timeout)?;
    for (i, m) in messages.iter().enumerate() {
        ensure!(
            m.offset() == i as i64,
            "{topic}/{p}: record {i} has offset {} (offsets must be dense from 0)",
            m.offset()
        );
    }
    Ok(messages)
}

/// Checks that every acknowledgement in `acks` (all for partition `p`) is in `log` (as read by
/// [`read_partition`]) at exactly its acknowledged offset, with the key and payload of its
/// sequence number.
pub fn check_acked(log: &[OwnedMessage], p: i32, acks: &[Ack]) -> Result<()> {
    for ack in acks.iter().filter(|a| a.partition == p) {
        let msg = usize::try_from(ack.offset)
            .ok()
            .and_then(|o| log.get(o))
            .with_context(|| {
                format!(
                    "record {} acknowledged at {p}/{} is beyond the log's end {}",
                    ack.seq,
                    ack.offset,
                    log.len()
                )
            })?;
        let expected = payload(ack.seq);
        ensure!(
            msg.payload() == Some(expected.as_bytes())
                && msg.key() == Some(ack.seq.to_string().as_bytes()),
            "{p}/{}: acknowledged record {} ({expected}) but the log holds key {:?} payload {:?}",
            ack.offset,
            ack.seq,
            msg.key().map(String::from_utf8_lossy),
            msg.payload().map(String::from_utf8_lossy)
        );
    }
    Ok(())
}
