//! Which partitions of a topic this node holds open: those whose state names it as a replica.
//! A node opens a partition when it gains a replica and closes it (deleting its files) when
//! it loses one, as the partition states change; the rest of a topic costs it nothing.

use std::sync::Arc;

use tierlog_metadata::{NodeId, PartitionState, TopicId};

use super::Partition;
use crate::cluster::ClusterView;
use crate::error::{Error, Result};

/// What a partition's state asks of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// This node is one of its replicas: open it.
    Host,
    /// Its replicas are elsewhere: close it and delete its files here.
    Drop,
    /// Its state is not known (being created, or being deleted with its topic): leave it.
    Keep,
}

impl Want {
    /// What `state` (if known) asks of node `me`.
    pub(crate) fn of(state: Option<&PartitionState>, me: NodeId) -> Want {
        match state {
            Some(s) if s.replicas.contains(&me) => Want::Host,
            Some(_) => Want::Drop,
            None => Want::Keep,
        }
    }

    /// What the newer (by mod revision) of the two views' states of a partition asks of
    /// `me`. Two views because a re-list may be applied while a newer view, built from watch
    /// events, is already published (and the other way round): the newer state decides.
    pub(crate) fn newest(
        a: &ClusterView,
        b: &ClusterView,
        topic: TopicId,
        index: i32,
        me: NodeId,
    ) -> Want {
        let key = (topic, index);
        let state = match (a.states.get(&key), b.states.get(&key)) {
            (Some(x), Some(y)) if y.mod_revision > x.mod_revision => Some(&y.value),
            (Some(x), _) => Some(&x.value),
            (None, y) => y.map(|s| &s.value),
        };
        Want::of(state, me)
    }
}

/// A topic's partitions as this node holds them: one slot per partition of the topic,
/// empty where this node holds no replica.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hosted {
    pub(super) slots: Vec<Option<Arc<Partition>>>,
}

impl Hosted {
    /// Partition `index`, if open here.
    pub(crate) fn get(&self, index: usize) -> Option<&Arc<Partition>> {
        self.slots.get(index)?.as_ref()
    }

    /// The partitions open here, by index.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.slots.iter().flatten()
    }

    /// How many partitions are open here.
    pub(crate) fn open_count(&self) -> usize {
        self.iter().count()
    }

    /// Whether the open partitions are those `want` asks for (where it knows).
    pub(crate) fn matches(&self, count: i32, want: impl Fn(i32) -> Want) -> bool {
        (0..count).all(|i| {
            let open = self.get(i as usize).is_some();
            match want(i) {
                Want::Host => open,
                Want::Drop => !open,
                Want::Keep => true,
            }
        })
    }
}

impl<'a> IntoIterator for &'a Hosted {
    type Item = &'a Arc<Partition>;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Option<Arc<Partition>>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.slots.iter().flatten()
    }
}

impl super::TopicState {
    /// Partition `index` of this topic, or Kafka's answer for a node without it:
    /// UNKNOWN_TOPIC_OR_PARTITION past the topic's partitions, NOT_LEADER_OR_FOLLOWER for a
    /// partition another node holds (as Kafka answers for a replica it does not host).
    pub(crate) fn lookup(&self, index: i32) -> Result<&Arc<Partition>> {
        if index < 0 || index >= self.meta.partitions {
            return Err(Error::UnknownTopicOrPartition(format!(
                "{}-{index}",
                self.meta.name
            )));
        }
        self.partitions.get(index as usize).ok_or_else(|| {
            Error::NotLeader(format!(
                "{}-{index} has no replica on this node",
                self.meta.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(replicas: Vec<NodeId>) -> PartitionState {
        crate::cluster::assign::new_state(uuid::Uuid::nil(), 0, replicas)
    }

    #[test]
    fn a_state_decides_by_its_replicas() {
        assert_eq!(Want::of(Some(&state(vec![1, 2])), 2), Want::Host);
        assert_eq!(Want::of(Some(&state(vec![1, 3])), 2), Want::Drop);
        assert_eq!(Want::of(None, 2), Want::Keep);
    }

    #[test]
    fn an_empty_topic_matches_only_what_asks_nothing_open() {
        let hosted = Hosted {
            slots: vec![None, None],
        };
        assert!(hosted.matches(2, |_| Want::Drop));
        assert!(hosted.matches(2, |_| Want::Keep));
        assert!(!hosted.matches(2, |i| if i == 1 { Want::Host } else { Want::Keep }));
        assert_eq!(hosted.open_count(), 0);
        assert!(hosted.get(5).is_none());
    }
}
