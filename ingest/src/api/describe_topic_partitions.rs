//! DescribeTopicPartitions (KIP-966): topics and their partitions a page at a time, which the
//! Java admin (3.8+) uses for `describeTopics` instead of Metadata, so a topic with many
//! thousands of partitions never has to fit in one response.
//!
//! Kafka's rules (`DescribeTopicPartitionsRequestHandler` and
//! `KRaftMetadataCache.getTopicMetadataForDescribeTopicResponse`): the named topics, or every
//! topic the principal may describe when none are named, in name order, starting at the
//! request's cursor (topic name, partition index). A page holds at most
//! `response_partition_limit` partitions, clamped to the node's
//! `max_request_partition_size_limit`; `next_cursor` names the first partition that did not
//! fit, or the next topic when the page filled up exactly at a topic's end. Named topics the
//! principal may not describe come last with TOPIC_AUTHORIZATION_FAILED (and no id); unknown
//! ones take no room on the page. The data is this node's cached cluster view, as Metadata's.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::RequestContext;
use super::metadata::PartitionView;
use crate::cluster::ClusterView;
use crate::host::Host;
use crate::partition::TopicState;
use crate::protocol::str_bytes;
use crate::security::acl::TOPIC_OPERATIONS;
use tierlog_metadata::{AclOperation, AclResourceType};

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    h: &Host,
    max_partitions: i32,
    body: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let all_topics = body.topics.is_empty();
    let cursor = body
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let cursor_topic = cursor.as_ref().map_or("", |(t, _)| t.as_str());
    // Sorted and without duplicates; topics before the cursor's are done.
    let names: BTreeSet<String> = if all_topics {
        h.partitions
            .all()
            .iter()
            .map(|t| t.meta.name.clone())
            .filter(|n| n.as_str() >= cursor_topic)
            .collect()
    } else {
        body.topics
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| n.as_str() >= cursor_topic)
            .collect()
    };
    if !all_topics && cursor.is_some() && !names.contains(cursor_topic) {
        // Kafka throws InvalidRequestException ("the topic list should contain the cursor
        // topic"), answered as INVALID_REQUEST on every requested topic.
        return invalid_request(&body);
    }

    // Without DESCRIBE a named topic is refused without saying whether it exists; when every
    // topic was asked for, it is left out quietly (as Metadata does).
    let mut denied = Vec::new();
    let authorized: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let ok = if all_topics {
                ctx.allowed(AclOperation::Describe, AclResourceType::Topic, name)
            } else {
                ctx.topic(AclOperation::Describe, name)
            };
            if !ok && !all_topics {
                denied.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(TopicName(str_bytes(name))))
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                );
            }
            ok
        })
        .collect();

    let view = h.cluster.view();
    let listener = ctx.session.listener.as_str();
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let mut remaining = max_partitions.min(body.response_partition_limit);
    for name in authorized {
        if remaining > 0 {
            let Some(t) = h.partitions.topic(&name) else {
                if !all_topics {
                    let code = match tierlog_metadata::validate_topic_name(&name) {
                        Ok(()) => ResponseError::UnknownTopicOrPartition.code(),
                        Err(_) => ResponseError::InvalidTopicException.code(),
                    };
                    topics.push(
                        DescribeTopicPartitionsResponseTopic::default()
                            .with_name(Some(TopicName(str_bytes(&name))))
                            .with_error_code(code),
                    );
                }
                continue;
            };
            let start = if name == cursor_topic {
                cursor.as_ref().map_or(0, |(_, p)| *p)
            } else {
                0
            };
            let (topic, next) = page(&view, listener, &t, start, remaining);
            remaining -= topic.partitions.len() as i32;
            topics.push(topic);
            if let Some(next) = next {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(str_bytes(&name)))
                        .with_partition_index(next),
                );
                break;
            }
        } else if remaining == 0 {
            // The page filled up exactly at the end of the previous topic: go on with this
            // one (which, Kafka notes, may not exist).
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_partition_index(0),
            );
            break;
        }
    }
    for t in &mut topics {
        if let Some(name) = &t.name {
            t.topic_authorized_operations = ctx.authz.authorized_operations(
                ctx.session,
                AclResourceType::Topic,
                name.0.as_str(),
                TOPIC_OPERATIONS,
            );
        }
    }
    topics.extend(denied);
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

/// Partitions `start..` of `t`, at most `max` of them, and the index of the first one left
/// for the next page (`None` when the topic is done). A negative `start` counts against `max`
/// without naming partitions, as Kafka's loop over `startIndex until upperIndex` does.
fn page(
    view: &ClusterView,
    listener: &str,
    t: &TopicState,
    start: i32,
    max: i32,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let count = t.meta.partitions;
    let upper = count.min(start.saturating_add(max));
    let next = (upper < count).then_some(upper);
    let partitions = (start.max(0)..upper)
        .map(|i| partition(view, listener, t, i))
        .collect();
    let topic = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.meta.name))))
        .with_topic_id(t.meta.id)
        .with_partitions(partitions);
    (topic, next)
}

fn partition(
    view: &ClusterView,
    listener: &str,
    t: &TopicState,
    index: i32,
) -> DescribeTopicPartitionsResponsePartition {
    let p = PartitionView::of(view, t.meta.id, index);
    // Kafka names the leader only while it is a registered node with this listener.
    let leader_alive = view
        .nodes
        .get(&p.leader)
        .is_some_and(|n| n.endpoint(listener).is_some());
    let known = view.state(t.meta.id, index).is_some();
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_error_code(if known {
            0
        } else {
            // The state has not reached this node's view yet (a topic being created).
            ResponseError::LeaderNotAvailable.code()
        })
        .with_leader_id(BrokerId(if leader_alive { p.leader } else { -1 }))
        .with_leader_epoch(p.leader_epoch)
        .with_replica_nodes(p.replicas)
        .with_isr_nodes(p.isr)
        // No eligible leader replicas (KIP-966's ELR) here: empty lists, as Kafka sends for a
        // partition without them.
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(p.offline)
}

fn invalid_request(body: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    DescribeTopicPartitionsResponse::default().with_topics(
        body.topics
            .iter()
            .map(|t| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(t.name.clone()))
                    .with_error_code(ResponseError::InvalidRequest.code())
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kafka_protocol::messages::describe_topic_partitions_request::{self as req, TopicRequest};
    use kafka_protocol::messages::*;

    use crate::broker::testing::{TestBroker, name};
    use crate::security::Principal;

    const INVALID_REQUEST: i16 = 42;
    const UNKNOWN_TOPIC: i16 = 3;
    const INVALID_TOPIC: i16 = 17;
    const TOPIC_DENIED: i16 = 29;

    fn request(
        topics: &[&str],
        limit: i32,
        cursor: Option<(&str, i32)>,
    ) -> DescribeTopicPartitionsRequest {
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| TopicRequest::default().with_name(name(t)))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                req::Cursor::default()
                    .with_topic_name(name(t))
                    .with_partition_index(p)
            }))
    }

    async fn describe(
        b: &TestBroker,
        r: &DescribeTopicPartitionsRequest,
    ) -> DescribeTopicPartitionsResponse {
        b.request(ApiKey::DescribeTopicPartitions, 0, r).await
    }

    /// (topic, partition) of every partition in a response, in order.
    fn listed(r: &DescribeTopicPartitionsResponse) -> Vec<(String, i32)> {
        r.topics
            .iter()
            .flat_map(|t| {
                let n = t.name.as_ref().unwrap().0.to_string();
                t.partitions
                    .iter()
                    .map(move |p| (n.clone(), p.partition_index))
            })
            .collect()
    }

    fn cursor(r: &DescribeTopicPartitionsResponse) -> Option<(String, i32)> {
        r.next_cursor
            .as_ref()
            .map(|c| (c.topic_name.0.to_string(), c.partition_index))
    }

    #[tokio::test]
    async fn pages_through_every_partition_of_every_topic_within_the_node_limit() {
        let b = TestBroker::start_with(|c| c.max_request_partition_size_limit = 4).await;
        for (t, n) in [("b", 3), ("a", 5), ("c", 2)] {
            assert_eq!(b.create(t, n).await.topics[0].error_code, 0);
        }
        // The client asks for 100 a page; the node's limit (4) wins.
        let first = describe(&b, &request(&[], 100, None)).await;
        assert_eq!(
            listed(&first),
            [("a", 0), ("a", 1), ("a", 2), ("a", 3)].map(|(t, p)| (t.to_owned(), p))
        );
        assert_eq!(cursor(&first), Some(("a".into(), 4)));
        let p = &first.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.leader_id, BrokerId(1));
        assert!(p.leader_epoch >= 0);
        assert_eq!(p.replica_nodes, vec![BrokerId(1)]);
        assert_eq!(p.isr_nodes, vec![BrokerId(1)]);
        assert_eq!(p.eligible_leader_replicas, Some(vec![]));
        assert_eq!(p.last_known_elr, Some(vec![]));
        assert!(p.offline_replicas.is_empty());
        assert!(!first.topics[0].topic_id.is_nil());
        // Authorized operations are always filled in (everything is allowed here).
        assert!(first.topics[0].topic_authorized_operations > 0);

        // a-4 and all of b fill the page exactly: the cursor moves on to c's start.
        let second = describe(&b, &request(&[], 100, Some(("a", 4)))).await;
        assert_eq!(
            listed(&second),
            [("a", 4), ("b", 0), ("b", 1), ("b", 2)].map(|(t, p)| (t.to_owned(), p))
        );
        assert_eq!(cursor(&second), Some(("c".into(), 0)));
        let third = describe(&b, &request(&[], 100, Some(("c", 0)))).await;
        assert_eq!(listed(&third), [("c".to_owned(), 0), ("c".to_owned(), 1)]);
        assert_eq!(cursor(&third), None);

        // A smaller client limit pages by that; named topics page the same way.
        let r = describe(&b, &request(&["c", "a"], 3, Some(("a", 3)))).await;
        assert_eq!(
            listed(&r),
            [("a", 3), ("a", 4), ("c", 0)].map(|(t, p)| (t.to_owned(), p))
        );
        assert_eq!(cursor(&r), Some(("c".into(), 1)));
        b.stop().await;
    }

    #[tokio::test]
    async fn unknown_invalid_and_cursorless_topics_answer_as_kafka_does() {
        let b = TestBroker::start().await;
        assert_eq!(b.create("t", 2).await.topics[0].error_code, 0);
        let r = describe(&b, &request(&["t", "nope", "bad/name"], 1, None)).await;
        let by_name = |n: &str| {
            r.topics
                .iter()
                .find(|t| t.name.as_ref().unwrap().0.as_str() == n)
                .unwrap()
        };
        // Sorted by name; unknown topics take no room on the page and come before the cursor
        // stops the walk.
        assert_eq!(by_name("bad/name").error_code, INVALID_TOPIC);
        assert_eq!(by_name("nope").error_code, UNKNOWN_TOPIC);
        assert!(by_name("nope").topic_id.is_nil());
        assert_eq!(by_name("t").partitions.len(), 1);
        assert_eq!(cursor(&r), Some(("t".into(), 1)));

        // The cursor's topic must be one of those named.
        let r = describe(&b, &request(&["t"], 10, Some(("u", 0)))).await;
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].error_code, INVALID_REQUEST);
        assert!(r.topics[0].partitions.is_empty());
        b.stop().await;
    }

    #[tokio::test]
    async fn needs_describe_on_each_topic() {
        let mut b = TestBroker::start_with(|c| {
            c.super_users = Some("User:admin".into());
            c.allow_everyone_if_no_acl_found = Some(false);
        })
        .await;
        b.as_principal(Principal::user("admin"));
        assert_eq!(b.create("t", 2).await.topics[0].error_code, 0);
        assert_eq!(
            listed(&describe(&b, &request(&[], 10, None)).await).len(),
            2
        );

        b.as_principal(Principal::user("alice"));
        let r = describe(&b, &request(&["t", "missing"], 10, None)).await;
        assert_eq!(r.topics.len(), 2);
        for t in &r.topics {
            // Whether the topic exists is not revealed.
            assert_eq!(t.error_code, TOPIC_DENIED, "{t:?}");
            assert!(t.topic_id.is_nil());
            assert!(t.partitions.is_empty());
        }
        // Asking for every topic leaves out the ones alice may not see.
        let r = describe(&b, &request(&[], 10, None)).await;
        assert!(r.topics.is_empty(), "{r:?}");
        b.stop().await;
    }
}
