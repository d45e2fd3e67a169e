//! The node's liveness lease: registration under it, its keep-alive, and fencing.
//!
//! The store deletes the registration (and the controller key, if this node holds it) when
//! the lease lapses; the controller then moves this node's leaderships elsewhere. So that two
//! leaders never both acknowledge writes, this node stops accepting them on its own before the
//! lease can have lapsed: the store starts a lease's TTL no earlier than the moment a
//! keep-alive is *sent*, so "sent + TTL − margin" is a deadline the store cannot beat.
//!
//! A restarted process waits for its predecessor's registration to vanish before registering,
//! so the controller always sees a node die before it comes back, and treats every
//! incarnation as new (its leaderships moved, out of every ISR until it catches up).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use tierlog_metadata::{ErrorKind, LeaseId, MetadataStore, NodeInfo, NodeRegistry, SharedClock};

/// Fraction of the TTL kept back from the fencing deadline, for scheduling delays.
const FENCE_MARGIN_DIVISOR: u32 = 5;

#[derive(Debug)]
struct Lease {
    id: LeaseId,
    /// Writes are accepted until then.
    valid_until: Instant,
}

/// This node's lease and registration.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) info: NodeInfo,
    pub(crate) ttl: Duration,
    lease: Mutex<Option<Lease>>,
    /// Store revision of the latest registration: partition states older than it were
    /// written before this incarnation existed.
    registered_revision: AtomicU64,
    clock: SharedClock,
}

impl Membership {
    pub(crate) fn new(info: NodeInfo, ttl: Duration, clock: SharedClock) -> Self {
        Membership {
            info,
            ttl,
            lease: Mutex::new(None),
            registered_revision: AtomicU64::new(u64::MAX),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Lease>> {
        self.lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn margin(&self) -> Duration {
        self.ttl / FENCE_MARGIN_DIVISOR
    }

    /// Whether this node may accept writes now (its lease cannot have lapsed).
    pub(crate) fn lease_valid(&self) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|l| self.clock.now() < l.valid_until)
    }

    /// The store revision of the latest registration (`u64::MAX` before the first).
    pub(crate) fn registered_revision(&self) -> u64 {
        self.registered_revision.load(Ordering::Acquire)
    }

    /// The current lease, if registered.
    pub(crate) fn lease(&self) -> Option<LeaseId> {
        self.lock().as_ref().map(|l| l.id)
    }

    /// Waits for a predecessor's registration of this node id to vanish (its lease lapses),
    /// then grants a lease and registers. Cancel-safe.
    pub(crate) async fn register(
        &self,
        store: &dyn MetadataStore,
        nodes: &NodeRegistry,
        cancel: &CancellationToken,
    ) -> anyhow::Result<LeaseId> {
        let mut warned = false;
        loop {
            let existing = nodes.list().await?;
            match existing.iter().find(|n| n.id == self.info.id) {
                Some(n) if n.incarnation != self.info.incarnation => {
                    if !warned {
                        info!(
                            node_id = self.info.id,
                            ttl = ?self.ttl,
                            "an earlier process of this node id is still registered; waiting for its lease to lapse"
                        );
                        warned = true;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => anyhow::bail!("cancelled while registering"),
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
                _ => break,
            }
        }
        let sent = self.clock.now();
        let id = store.grant_lease(self.ttl).await?;
        let revision = nodes.register(&self.info, id).await?;
        self.registered_revision.store(revision, Ordering::Release);
        *self.lock() = Some(Lease {
            id,
            valid_until: sent + self.ttl - self.margin(),
        });
        info!(node_id = self.info.id, lease = ?id, "registered in the cluster");
        Ok(id)
    }

    /// Renews the lease once. Ok(true) if renewed; Ok(false) if it had lapsed (this node is
    /// dead to the cluster and must re-register); Err if the store did not answer (the
    /// deadline is not moved, so writes stop if this goes on).
    pub(crate) async fn renew(&self, store: &dyn MetadataStore) -> anyhow::Result<bool> {
        let Some(id) = self.lease() else {
            return Ok(false);
        };
        let sent = self.clock.now();
        match store.keep_alive(id).await {
            Ok(granted) => {
                let mut l = self.lock();
                if let Some(l) = l.as_mut().filter(|l| l.id == id) {
                    let granted = granted.min(self.ttl);
                    l.valid_until = sent + granted.saturating_sub(self.margin());
                }
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                warn!(
                    node_id = self.info.id,
                    "liveness lease lapsed; this node has been removed from the cluster"
                );
                *self.lock() = None;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ends the lease now (clean shutdown): the registration goes at once and the controller
    /// moves leaderships without waiting for a TTL.
    pub(crate) async fn revoke(&self, store: &dyn MetadataStore) {
        let lease = self.lock().take();
        if let Some(l) = lease
            && let Err(e) = store.revoke_lease(l.id).await
        {
            warn!(error = %e, "revoking the liveness lease failed; it lapses after its TTL");
        }
    }

    /// How often to renew: a third of the TTL, so two renewals may fail before fencing.
    pub(crate) fn renew_interval(&self) -> Duration {
        self.ttl / 3
    }
}
