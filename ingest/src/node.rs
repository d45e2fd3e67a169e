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

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use tierlog_metadata::SystemClock;

use crate::broker::Broker;
use crate::config::NodeConfig;
use crate::security::listener::Listeners;
use crate::security::tls::TlsServer;
use crate::server::BoundListener;
use tierlog_metadata::ListenerEndpoint;

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard limit and logs both: every
/// partition holds log and index descriptors and every client a socket, and the common soft
/// default (1024) is far below what a node needs, while the hard limit is what the operator
/// allows (Kafka's packaging asks for a high `ulimit -n` for the same reason). A failure is
/// logged and the node goes on with the limit it has.
fn raise_open_files_limit() -> Option<u64> {
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        warn!("could not read the open-file limit (RLIMIT_NOFILE)");
        return None;
    };
    if soft >= hard {
        info!(soft, hard, "open-file limit");
        return Some(soft);
    }
    match rlimit::Resource::NOFILE.set(hard, hard) {
        Ok(()) => {
            info!(
                was = soft,
                soft = hard,
                hard,
                "open-file limit raised to the hard limit"
            );
            Some(hard)
        }
        Err(e) => {
            warn!(soft, hard, error = %e, "could not raise the open-file limit");
            Some(soft)
        }
    }
}

/// Sizes the process-wide pool of open segment files: `max_open_segment_files`, or half the
/// open-file limit (the rest is for connections, index and snapshot writes, the cache).
fn size_file_pool(configured: usize, limit: Option<u64>) {
    let capacity = match configured {
        0 => limit.map_or(1024, |l| {
            usize::try_from(l / 2)
                .unwrap_or(usize::MAX)
                .clamp(64, 1 << 20)
        }),
        n => n,
    };
    tierlog_tiering::FilePool::global().set_capacity(capacity);
    info!(capacity, "segment file pool sized");
}

/// Takes an exclusive lock on `<data_dir>/.lock` for the life of the node: a second process
/// on the same data directory refuses to start instead of writing beside the first.
fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("opening `{}`: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "data_dir `{}` is in use by another tierlog process",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::anyhow!("locking `{}`: {e}", path.display()))
        }
    }
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
    /// Held for the life of the node (see [`lock_data_dir`]).
    _data_dir_lock: std::fs::File,
}

impl Node {
    /// Opens everything and starts serving.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Node> {
        config.validate()?;
        size_file_pool(config.max_open_segment_files, raise_open_files_limit());
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!("creating data_dir `{}`: {e}", config.data_dir.display())
        })?;
        let data_dir_lock = lock_data_dir(&config.data_dir)?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();

        let listeners = Listeners::from_config(&config)
            .map_err(|(key, reason)| anyhow::anyhow!("invalid config `{key}`: {reason}"))?;
        let tls = if listeners.any_tls() || config.http_tls {
            Some(Arc::new(TlsServer::new(&config)?))
        } else {
            None
        };
        let mut bound = Vec::new();
        let mut endpoints = Vec::new();
        for spec in listeners.all {
            let socket = TcpListener::bind(spec.bind).await.map_err(|e| {
                anyhow::anyhow!("binding Kafka listener {} `{}`: {e}", spec.name, spec.bind)
            })?;
            let addr = socket.local_addr()?;
            let (host, port) = spec.advertised.clone().unwrap_or_else(|| {
                let ip = addr.ip();
                let host = if ip.is_unspecified() {
                    "127.0.0.1".to_owned()
                } else {
                    ip.to_string()
                };
                (host, addr.port())
            });
            endpoints.push(ListenerEndpoint {
                name: spec.name.clone(),
                host,
                port: i32::from(port),
            });
            let tls = if spec.protocol.tls() {
                tls.clone()
            } else {
                None
            };
            bound.push(BoundListener { socket, spec, tls });
        }
        let kafka_addr = bound[0].socket.local_addr()?;
        let http_listener = TcpListener::bind(&config.http)
            .await
            .map_err(|e| anyhow::anyhow!("binding admin HTTP `{}`: {e}", config.http))?;
        let http_addr = http_listener.local_addr()?;
        let http_options = crate::http::HttpOptions::from_config(&config, tls.as_deref())?;
        let inter = endpoints
            .iter()
            .find(|e| e.name == listeners.inter_broker)
            .unwrap_or(&endpoints[0]);
        let advertised_host = inter.host.clone();
        let advertised_port = u16::try_from(inter.port).unwrap_or(0);
        // One listener and no `listeners` setting: register as nodes always have (host and
        // port only), so the registration reads the same to nodes of any version.
        let endpoints = if config.listeners.is_none() {
            Vec::new()
        } else {
            endpoints
        };

        let broker = Broker::open(
            config,
            (advertised_host, advertised_port),
            endpoints,
            SystemClock::shared(),
            &cancel,
            &tracker,
        )
        .await?;
        broker.spawn_cluster_tasks(&cancel, &tracker).await;
        let limits = Arc::new(crate::server::Limits::new(&broker.config, &broker.clock));
        for l in bound {
            info!(listener = %l.spec.name, protocol = l.spec.protocol.name(),
                addr = %l.socket.local_addr()?, "Kafka listener bound");
            tracker.spawn(crate::server::run_listener(
                l,
                broker.clone(),
                limits.clone(),
                cancel.child_token(),
                tracker.clone(),
            ));
        }
        if let Some(tls) = tls {
            tracker.spawn(tls.reload_loop(broker.config.ssl_reload_interval, cancel.child_token()));
        }
        tracker.spawn(crate::http::serve(
            http_listener,
            http_options,
            broker.clone(),
            cancel.child_token(),
        ));
        info!(
            node_id = broker.identity.node_id,
            kafka = %kafka_addr,
            http = %http_addr,
            advertised = %format!("{}:{}", broker.identity.host, broker.identity.port),
            cluster_id = %broker.identity.cluster_id,
            flush_mode = ?broker.config.flush_mode,
            "tierlog node started"
        );
        Ok(Node {
            broker,
            cancel,
            tracker,
            kafka_addr,
            http_addr,
            _data_dir_lock: data_dir_lock,
        })
    }

    /// Serves until `signal` fires (SIGINT or SIGTERM), then shuts down.
    pub async fn run_until(self, signal: ShutdownSignal) -> anyhow::Result<()> {
        signal.recv().await;
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
        let b = &self.broker.host;
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
        b.partitions.close_all().await;
        info!("tierlog node stopped");
        Ok(())
    }
}

/// The SIGINT and SIGTERM handlers, installed when this is created. Create it before the
/// node starts serving: a signal that arrives as soon as clients can connect (a supervisor or
/// a test stopping a node it just started) must reach the clean shutdown, not the default
/// action, which kills the process with nothing flushed or tiered.
#[derive(Debug)]
pub struct ShutdownSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    /// Installs the handlers (needs a Tokio runtime).
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            ShutdownSignal {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignal {}
        }
    }

    /// Waits for SIGINT or SIGTERM.
    pub async fn recv(self) {
        #[cfg(unix)]
        {
            let (mut term, mut int) = (self.term, self.int);
            let term = async {
                match &mut term {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match &mut int {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                () = term => {}
                () = int => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
