//! Committed offsets in the metadata store.
//!
//! Keys: `/tierlog/groups/<group>/offsets/<topic>/<partition, 10 digits>` → JSON
//! [`CommittedOffset`]. Group ids are arbitrary strings, so `%` and `/` in them (and in topic
//! names, which cannot hold `/` but stay symmetric) are percent-encoded. A commit of many
//! partitions is one transaction: it lands whole or not at all, before it is acknowledged.
//!
//! Commits arriving together are batched (group commit): one writer task takes every commit
//! queued while the previous transaction ran and writes them all in one transaction, so the
//! store's per-transaction cost (an fsync on the embedded store, a Raft round on etcd) is paid
//! once for many groups. A later commit of the same partition in a batch wins.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use tierlog_metadata::{MetadataStore, Op};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

const PREFIX: &str = "/tierlog/groups/";

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommittedOffset {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: Option<String>,
    pub(crate) commit_ms: i64,
}

/// `(topic, partition)` → committed offset, for one group.
pub(crate) type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// Most puts written in one transaction: etcd's default `--max-txn-ops`. A single commit of
/// more partitions is written in several transactions (each partition's offset still lands
/// whole).
const MAX_BATCH_OPS: usize = 128;

/// One commit waiting for the writer: its puts and where to report the outcome.
type Queued = (Vec<Op>, oneshot::Sender<Result<(), String>>);

/// Reads and writes committed offsets.
#[derive(Debug, Clone)]
pub(crate) struct OffsetStore {
    store: Arc<dyn MetadataStore>,
    /// Commits for the writer task; it ends when every sender is gone.
    commits: mpsc::Sender<Queued>,
}

/// Writes queued commits, many per transaction.
async fn run_writer(store: Arc<dyn MetadataStore>, mut rx: mpsc::Receiver<Queued>) {
    // A queued commit that did not fit into the previous batch.
    let mut carry: Option<Queued> = None;
    loop {
        let first = match carry.take() {
            Some(q) => q,
            None => match rx.recv().await {
                Some(q) => q,
                None => break,
            },
        };
        let mut ops = first.0.len();
        let mut batch = vec![first];
        while ops < MAX_BATCH_OPS {
            match rx.try_recv() {
                Ok(next) if ops + next.0.len() > MAX_BATCH_OPS => {
                    carry = Some(next);
                    break;
                }
                Ok(next) => {
                    ops += next.0.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let mut rest = merge(&mut batch, ops);
        let mut outcome = Ok(());
        while !rest.is_empty() && outcome.is_ok() {
            let tail = rest.split_off(rest.len().min(MAX_BATCH_OPS));
            outcome = store
                .txn(vec![], rest)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            rest = tail;
        }
        for (_, done) in batch {
            let _ = done.send(outcome.clone());
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

fn unescape(s: &str) -> String {
    s.replace("%2F", "/").replace("%25", "%")
}

fn group_prefix(group: &str) -> String {
    format!("{PREFIX}{}/offsets/", escape(group))
}

fn key(group: &str, topic: &str, partition: i32) -> String {
    format!("{}{}/{partition:010}", group_prefix(group), escape(topic))
}

/// The puts of a batch in queue order, keeping only the last put of each key (the store
/// refuses two puts of one key in a transaction; the later commit wins).
fn merge(batch: &mut [Queued], ops: usize) -> Vec<Op> {
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut merged: Vec<Option<Op>> = Vec::with_capacity(ops);
    for (commit_ops, _) in batch.iter_mut() {
        for op in commit_ops.drain(..) {
            if let Op::Put { key, .. } = &op
                && let Some(i) = latest.insert(key.clone(), merged.len())
            {
                merged[i] = None;
            }
            merged.push(Some(op));
        }
    }
    merged.into_iter().flatten().collect()
}

impl OffsetStore {
    /// A store over `store`; spawns the batching writer on the current runtime.
    pub(crate) fn new(store: Arc<dyn MetadataStore>) -> Self {
        let (commits, rx) = mpsc::channel(4096);
        tokio::spawn(run_writer(store.clone(), rx));
        OffsetStore { store, commits }
    }

    /// Stores every offset of one commit, atomically (possibly in one transaction with other
    /// groups' commits); returns once it is durable in the store.
    pub(crate) async fn commit(
        &self,
        group: &str,
        offsets: &[(String, i32, CommittedOffset)],
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::with_capacity(offsets.len());
        for (topic, partition, o) in offsets {
            let value = serde_json::to_vec(o)
                .map_err(|e| Error::Internal(format!("encoding offset: {e}")))?;
            ops.push(Op::Put {
                key: key(group, topic, *partition),
                value: Bytes::from(value),
            });
        }
        let (done, outcome) = oneshot::channel();
        self.commits
            .send((ops, done))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("storing committed offsets: {e}"))),
            Err(_) => Err(Error::ShuttingDown),
        }
    }

    /// Every committed offset of `group`.
    pub(crate) async fn fetch(&self, group: &str) -> Result<GroupOffsets> {
        let prefix = group_prefix(group);
        let mut out = BTreeMap::new();
        for kv in self.store.list(&prefix).await? {
            let Some((topic, partition)) = kv.key[prefix.len()..].rsplit_once('/') else {
                continue;
            };
            let Ok(partition) = partition.parse::<i32>() else {
                continue;
            };
            let o: CommittedOffset = serde_json::from_slice(&kv.value).map_err(|e| {
                Error::Internal(format!("decoding committed offset `{}`: {e}", kv.key))
            })?;
            out.insert((unescape(topic), partition), o);
        }
        Ok(out)
    }

    /// Deletes the given offsets of `group`.
    pub(crate) async fn delete(&self, group: &str, partitions: &[(String, i32)]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let ops = partitions
            .iter()
            .map(|(t, p)| Op::Delete {
                key: key(group, t, *p),
            })
            .collect();
        self.store.txn(vec![], ops).await?;
        Ok(())
    }

    /// Deletes every offset of `group`.
    pub(crate) async fn delete_group(&self, group: &str) -> Result<()> {
        self.store
            .txn(
                vec![],
                vec![Op::DeletePrefix {
                    prefix: group_prefix(group),
                }],
            )
            .await?;
        Ok(())
    }

    /// Names of every group with committed offsets.
    pub(crate) async fn groups(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .store
            .list(PREFIX)
            .await?
            .iter()
            .filter_map(|kv| {
                kv.key[PREFIX.len()..]
                    .split_once("/offsets/")
                    .map(|(g, _)| unescape(g))
            })
            .collect();
        names.dedup();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn o(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: Some("m".into()),
            commit_ms: 1,
        }
    }

    #[tokio::test]
    async fn many_concurrent_commits_all_land() {
        let s = OffsetStore::new(Arc::new(tierlog_metadata::MemoryStore::new()));
        let commits = (0..200).map(|i| {
            let s = s.clone();
            async move {
                s.commit(
                    &format!("g{}", i % 20),
                    &[("t".into(), i / 20, o(i as i64))],
                )
                .await
            }
        });
        for r in futures::future::join_all(commits).await {
            r.unwrap();
        }
        for g in 0..20 {
            let got = s.fetch(&format!("g{g}")).await.unwrap();
            assert_eq!(got.len(), 10, "group g{g}");
            for p in 0..10 {
                assert_eq!(got[&("t".to_owned(), p)].offset, i64::from(p * 20 + g));
            }
        }
    }

    #[tokio::test]
    async fn a_commit_larger_than_one_transaction_lands_whole() {
        let s = OffsetStore::new(Arc::new(tierlog_metadata::MemoryStore::new()));
        let many: Vec<_> = (0..300)
            .map(|p| ("t".to_owned(), p, o(i64::from(p))))
            .collect();
        s.commit("big", &many).await.unwrap();
        let got = s.fetch("big").await.unwrap();
        assert_eq!(got.len(), 300);
        assert_eq!(got[&("t".to_owned(), 299)].offset, 299);
    }

    #[test]
    fn a_batch_keeps_the_last_put_of_each_key_in_queue_order() {
        let put = |k: &str, v: &'static [u8]| Op::Put {
            key: k.into(),
            value: Bytes::from_static(v),
        };
        let (a, _) = oneshot::channel();
        let (b, _) = oneshot::channel();
        let mut batch: Vec<Queued> = vec![
            (vec![put("x", b"1"), put("y", b"1")], a),
            (vec![put("x", b"2")], b),
        ];
        let merged = merge(&mut batch, 3);
        let keys: Vec<(String, Bytes)> = merged
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value } => (key, value),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("y".into(), Bytes::from_static(b"1")),
                ("x".into(), Bytes::from_static(b"2"))
            ]
        );
    }

    #[tokio::test]
    async fn commit_fetch_delete_round_trip_with_odd_group_names() {
        let s = OffsetStore::new(Arc::new(tierlog_metadata::MemoryStore::new()));
        let g = "team/a%b";
        s.commit(
            g,
            &[
                ("t".into(), 0, o(5)),
                ("t".into(), 11, o(7)),
                ("u".into(), 2, o(9)),
            ],
        )
        .await
        .unwrap();
        s.commit("other", &[("t".into(), 0, o(1))]).await.unwrap();
        let got = s.fetch(g).await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[&("t".to_owned(), 11)].offset, 7);
        assert_eq!(
            s.groups().await.unwrap(),
            vec!["other".to_owned(), g.to_owned()]
        );
        s.delete(g, &[("t".into(), 0)]).await.unwrap();
        assert_eq!(s.fetch(g).await.unwrap().len(), 2);
        s.delete_group(g).await.unwrap();
        assert!(s.fetch(g).await.unwrap().is_empty());
        assert_eq!(s.fetch("other").await.unwrap().len(), 1);
    }
}
