//! Committed offsets in the metadata store.
//!
//! Keys: `/tierlog/groups/<group>/offsets/<topic>/<partition, 10 digits>` → JSON
//! [`CommittedOffset`]. Group ids are arbitrary strings, so `%` and `/` in them (and in topic
//! names, which cannot hold `/` but stay symmetric) are percent-encoded. A commit of many
//! partitions is one transaction: it lands whole or not at all, before it is acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use tierlog_metadata::{MetadataStore, Op};

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

/// Reads and writes committed offsets.
#[derive(Debug, Clone)]
pub(crate) struct OffsetStore {
    store: Arc<dyn MetadataStore>,
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

impl OffsetStore {
    pub(crate) fn new(store: Arc<dyn MetadataStore>) -> Self {
        OffsetStore { store }
    }

    /// Stores every offset of one commit in one transaction.
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
        self.store.txn(vec![], ops).await?;
        Ok(())
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
