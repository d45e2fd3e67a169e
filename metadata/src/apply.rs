//! One implementation of transaction semantics, shared by the local backends.
//!
//! [`MemoryStore`](crate::MemoryStore) and [`EmbeddedStore`](crate::EmbeddedStore) differ only
//! in where keys live; validation, compares, op application and revision bookkeeping are
//! decided here, once, against the small [`TxnView`] trait. The caller holds whatever makes the
//! view exclusive (a mutex, a redb write transaction) and commits or discards it according to
//! [`Applied::changed`], then hands [`Applied::events`] to its watchers.
//!
//! Leases touch keys here too: which key is attached to which lease is part of the view (so the
//! embedded store persists it with the key), while which leases are alive is the caller's
//! business (a timer table in memory), asked through a closure.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::store::{Compare, KeyValue, LeaseId, Op, TxnResult, WatchEvent};

/// Exclusive access to one backend's keys for the duration of a transaction.
pub(crate) trait TxnView {
    fn read(&self, key: &str) -> Result<Option<KeyValue>>;
    fn write(&mut self, kv: KeyValue) -> Result<()>;
    /// Removes `key`; returns whether it existed.
    fn remove(&mut self, key: &str) -> Result<bool>;
    /// Every key starting with `prefix`, in order.
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>>;
    /// Attaches `key` to `lease`, or detaches it (`None`).
    fn set_lease(&mut self, key: &str, lease: Option<LeaseId>) -> Result<()>;
    /// Every key attached to `lease`, in order.
    fn keys_with_lease(&self, lease: LeaseId) -> Result<Vec<String>>;
}

/// What [`apply_txn`] did.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) result: TxnResult,
    /// Whether any key changed; if so the caller must persist `result.revision` as the new
    /// store revision along with the keys, atomically.
    pub(crate) changed: bool,
    /// What changed, in op order, all at `result.revision`: for watchers, once committed.
    pub(crate) events: Vec<WatchEvent>,
}

impl Applied {
    fn unchanged(succeeded: bool, current: u64) -> Self {
        Applied {
            result: TxnResult {
                succeeded,
                revision: current,
            },
            changed: false,
            events: Vec::new(),
        }
    }
}

/// Rejects transactions etcd would reject, before looking at any data.
pub(crate) fn validate(compares: &[Compare], ops: &[Op]) -> Result<()> {
    if let Some(c) = compares.iter().find(|c| c.key.is_empty()) {
        return Err(Error::invalid(format!(
            "txn compare on an empty key (expect {})",
            c.expect
        )));
    }
    let mut puts = HashSet::new();
    let mut deleted_keys = Vec::new();
    let mut deleted_prefixes = Vec::new();
    for op in ops {
        match op {
            Op::Put { key, .. } | Op::PutWithLease { key, .. } => {
                if key.is_empty() {
                    return Err(Error::invalid("txn put of an empty key"));
                }
                if let Op::PutWithLease { lease, .. } = op
                    && lease.0 <= 0
                {
                    return Err(Error::invalid(format!(
                        "txn puts key `{key}` under lease {}, not a lease id",
                        lease.0
                    )));
                }
                if !puts.insert(key.as_str()) {
                    return Err(Error::invalid(format!("txn puts key `{key}` twice")));
                }
            }
            Op::Delete { key } => {
                if key.is_empty() {
                    return Err(Error::invalid("txn delete of an empty key"));
                }
                deleted_keys.push(key.as_str());
            }
            Op::DeletePrefix { prefix } => {
                if prefix.is_empty() {
                    return Err(Error::invalid("txn delete of an empty prefix"));
                }
                deleted_prefixes.push(prefix.as_str());
            }
        }
    }
    for key in puts {
        if deleted_keys.contains(&key) || deleted_prefixes.iter().any(|p| key.starts_with(p)) {
            return Err(Error::invalid(format!(
                "txn both puts and deletes key `{key}`"
            )));
        }
    }
    Ok(())
}

/// Validates, checks compares, and applies ops at `current + 1`. `lease_alive` says whether a
/// lease exists; a put under one that does not fails the transaction with kind NotFound before
/// anything is written.
pub(crate) fn apply_txn(
    view: &mut impl TxnView,
    current: u64,
    compares: &[Compare],
    ops: &[Op],
    lease_alive: &dyn Fn(LeaseId) -> bool,
) -> Result<Applied> {
    validate(compares, ops)?;
    for compare in compares {
        if !compare.expect.holds(view.read(&compare.key)?.as_ref()) {
            return Ok(Applied::unchanged(false, current));
        }
    }
    for op in ops {
        if let Op::PutWithLease { key, lease, .. } = op
            && !lease_alive(*lease)
        {
            return Err(Error::not_found(format!("lease {lease} (for key `{key}`)")));
        }
    }
    let next = next_revision(current)?;
    let mut events = Vec::new();
    // Validation guarantees puts and deletes touch disjoint keys, so order does not matter.
    for op in ops {
        match op {
            Op::Put { key, value } => put(view, next, key, value, None, &mut events)?,
            Op::PutWithLease { key, value, lease } => {
                put(view, next, key, value, Some(*lease), &mut events)?
            }
            Op::Delete { key } => remove(view, next, key, &mut events)?,
            Op::DeletePrefix { prefix } => {
                for key in view.keys_with_prefix(prefix)? {
                    remove(view, next, &key, &mut events)?;
                }
            }
        }
    }
    Ok(finish(current, next, events))
}

/// Deletes every key attached to `lease` at `current + 1` (nothing changes if there is none):
/// what a lease's expiry or revocation does, as one transaction.
pub(crate) fn expire_lease(
    view: &mut impl TxnView,
    current: u64,
    lease: LeaseId,
) -> Result<Applied> {
    let next = next_revision(current)?;
    let mut events = Vec::new();
    for key in view.keys_with_lease(lease)? {
        remove(view, next, &key, &mut events)?;
    }
    Ok(finish(current, next, events))
}

fn next_revision(current: u64) -> Result<u64> {
    current
        .checked_add(1)
        .ok_or_else(|| Error::internal("metadata store revision overflowed u64"))
}

fn put(
    view: &mut impl TxnView,
    next: u64,
    key: &str,
    value: &bytes::Bytes,
    lease: Option<LeaseId>,
    events: &mut Vec<WatchEvent>,
) -> Result<()> {
    let create_revision = view.read(key)?.map_or(next, |kv| kv.create_revision);
    let kv = KeyValue {
        key: key.to_owned(),
        value: value.clone(),
        create_revision,
        mod_revision: next,
    };
    view.write(kv.clone())?;
    // A plain put detaches the key from any lease, as in etcd.
    view.set_lease(key, lease)?;
    events.push(WatchEvent::Put(kv));
    Ok(())
}

fn remove(
    view: &mut impl TxnView,
    next: u64,
    key: &str,
    events: &mut Vec<WatchEvent>,
) -> Result<()> {
    if view.remove(key)? {
        view.set_lease(key, None)?;
        events.push(WatchEvent::Delete {
            key: key.to_owned(),
            mod_revision: next,
        });
    }
    Ok(())
}

fn finish(current: u64, next: u64, events: Vec<WatchEvent>) -> Applied {
    let changed = !events.is_empty();
    Applied {
        result: TxnResult {
            succeeded: true,
            revision: if changed { next } else { current },
        },
        changed,
        events,
    }
}
