//! Shared domain types, at the bottom of the dependency chain.
//!
//! Every other tierlog crate names partitions, offsets, epochs and nodes with these types, so
//! they live in the crate nothing else depends on. They are plain data: no I/O, no behaviour
//! beyond formatting.

use std::fmt;

/// A broker's id, as Kafka's `broker.id` / `node.id` (an `int32` on the wire).
pub type NodeId = i32;

/// A partition leader's epoch. Bumped, by compare-and-swap in the metadata store, on every
/// leadership change; a request carrying an older epoch is fenced.
pub type LeaderEpoch = i32;

/// A record's position in a partition log (an `int64` on the wire).
pub type Offset = i64;

/// A topic's immutable identity (Kafka's topic id), distinct from its name: a topic deleted and
/// re-created under the same name gets a new id.
pub use uuid::Uuid as TopicId;

/// One partition of one topic.
///
/// Orders by topic, then partition, so sorted collections group a topic's partitions together.
/// Displays as Kafka does in logs and directory names: `orders-3`.
///
/// ```
/// use tierlog_metadata::TopicPartition;
///
/// let tp = TopicPartition::new("orders", 3);
/// assert_eq!(tp.to_string(), "orders-3");
/// ```
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition index, `0..partitions`.
    pub partition: i32,
}

impl TopicPartition {
    /// Names partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_order() {
        let a = TopicPartition::new("a", 10);
        let b = TopicPartition::new("a", 2);
        let c = TopicPartition::new("b", 0);
        assert_eq!(a.to_string(), "a-10");
        let mut v = vec![c.clone(), a.clone(), b.clone()];
        v.sort();
        assert_eq!(v, vec![b, a, c]);
    }

    #[test]
    fn serde_round_trip() {
        let tp = TopicPartition::new("t", 1);
        let json = serde_json::to_string(&tp).expect("serialize");
        assert_eq!(json, r#"{"topic":"t","partition":1}"#);
        let back: TopicPartition = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, tp);
    }
}
