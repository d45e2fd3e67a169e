//! One implementation of transaction semantics, shared by the local backends.
//!
//! [`MemoryStore`](crate::MemoryStore) and [`EmbeddedStore`](crate::EmbeddedStore) differ only
//! in where keys live; validation, compares, op application and revision bookkeeping are
//! decided here, once, against the small [`TxnView`] trait. The caller holds whatever makes the
//! view exclusive (a mutex, a redb write transaction) and commits or discards it according to
//! [`Applied::changed`].

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::store::{Compare, KeyValue, Op, TxnResult};

/// Exclusive access to one backend's keys for the duration of a transaction.
pub(crate) trait TxnView {
    fn read(&self, key: &str) -> Result<Option<KeyValue>>;
    fn write(&mut self, kv: KeyValue) -> Result<()>;
    /// Removes `key`; returns whether it existed.
    fn remove(&mut self, key: &str) -> Result<bool>;
    /// Every key starting with `prefix`, in order.
    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>>;
}

/// What [`apply_txn`] did.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) result: TxnResult,
    /// Whether any key changed; if so the caller must persist `result.revision` as the new
    /// store revision along with the keys, atomically.
    pub(crate) changed: bool,
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
            Op::Put { key, .. } => {
                if key.is_empty() {
                    return Err(Error::invalid("txn put of an empty key"));
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

/// Validates, checks compares, and applies ops at `current + 1`.
pub(crate) fn apply_txn(
    view: &mut impl TxnView,
    current: u64,
    compares: &[Compare],
    ops: &[Op],
) -> Result<Applied> {
    validate(compares, ops)?;
    for compare in compares {
        if !compare.expect.holds(view.read(&compare.key)?.as_ref()) {
            return Ok(Applied {
                result: TxnResult {
                    succeeded: false,
                    revision: current,
                },
                changed: false,
            });
        }
    }
    let next = current
        .checked_add(1)
        .ok_or_else(|| Error::internal("metadata store revision overflowed u64"))?;
    let mut changed = false;
    // Validation guarantees puts and deletes touch disjoint keys, so order does not matter.
    for op in ops {
        match op {
            Op::Put { key, value } => {
                let create_revision = view.read(key)?.map_or(next, |kv| kv.create_revision);
                view.write(KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision,
                    mod_revision: next,
                })?;
                changed = true;
            }
            Op::Delete { key } => changed |= view.remove(key)?,
            Op::DeletePrefix { prefix } => {
                for key in view.keys_with_prefix(prefix)? {
                    changed |= view.remove(&key)?;
                }
            }
        }
    }
    Ok(Applied {
        result: TxnResult {
            succeeded: true,
            revision: if changed { next } else { current },
        },
        changed,
    })
}
