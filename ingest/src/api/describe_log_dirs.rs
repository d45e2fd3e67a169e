//! DescribeLogDirs: the node's log directories and the partition logs in each, with their
//! sizes (`kafka-log-dirs --describe`, `Admin.describeLogDirs`).
//!
//! A node has one log directory, `<data_dir>/logs`, holding the hot tier of every partition
//! it is a replica of. As Kafka (`ReplicaManager.describeLogDirs`): DESCRIBE on the cluster
//! or CLUSTER_AUTHORIZATION_FAILED with no results; the requested partitions (every one when
//! `topics` is null) that have a log here, each with its size in bytes (the local segments
//! only: tiered data is in object storage, which is not a log directory), its offset lag
//! (high watermark minus log end, never below 0: 0 on a leader, what a follower still has to
//! copy of what it knows is committed) and `is_future_key` false (there are no replica moves
//! between directories); topics with no such partition are left out. From v4, the
//! directory's file system size and the space usable by the node (statvfs: blocks available
//! to unprivileged users), as Java's `FileStore` reports them.
//!
//! Sizes come from each log's segment list in memory: no file I/O per partition.

use std::collections::HashSet;
use std::path::Path;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use tracing::warn;

use super::RequestContext;
use crate::host::Host;
use crate::protocol::str_bytes;
use tierlog_metadata::AclOperation;

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    h: &Host,
    body: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !ctx.cluster(AclOperation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // None: every partition.
    let wanted: Option<HashSet<(String, i32)>> = body.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.iter().map(move |p| (name.clone(), *p))
            })
            .collect()
    });
    let dir = h.partitions.log_dir();
    // Kafka reports the configured directory made absolute (no symlinks resolved).
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let result = DescribeLogDirsResult::default().with_log_dir(str_bytes(&shown.to_string_lossy()));
    let Some((total, usable)) = space(dir) else {
        return DescribeLogDirsResponse::default().with_results(vec![
            result.with_error_code(ResponseError::KafkaStorageError.code()),
        ]);
    };
    let view = h.cluster.view();
    let topics = h
        .partitions
        .all()
        .iter()
        .filter_map(|t| {
            let partitions: Vec<_> = t
                .partitions
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let index = i32::try_from(i).ok()?;
                    // Every node opens every partition; only a replica's log holds data.
                    let replica = view
                        .state(t.meta.id, index)
                        .is_some_and(|s| s.replicas.contains(&h.node_id));
                    let asked = wanted
                        .as_ref()
                        .is_none_or(|w| w.contains(&(t.meta.name.clone(), index)));
                    (replica && asked).then(|| {
                        DescribeLogDirsPartition::default()
                            .with_partition_index(index)
                            .with_partition_size(
                                i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX),
                            )
                            .with_offset_lag((p.high_watermark() - p.log.log_end_offset()).max(0))
                            .with_is_future_key(false)
                    })
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(&t.meta.name)))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let mut result = result.with_topics(topics);
    if ctx.version() >= 4 {
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The file system's size and the bytes available to the node, or `None` (logged) when the
/// directory cannot be examined.
fn space(dir: &Path) -> Option<(i64, i64)> {
    match rustix::fs::statvfs(dir) {
        Ok(s) => {
            let bytes =
                |blocks: u64| i64::try_from(blocks.saturating_mul(s.f_frsize)).unwrap_or(i64::MAX);
            Some((bytes(s.f_blocks), bytes(s.f_bavail)))
        }
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot examine the log directory");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::*;

    use crate::broker::testing::{TestBroker, batch, name};
    use crate::security::Principal;

    const CLUSTER_DENIED: i16 = 31;

    async fn describe(
        b: &TestBroker,
        v: i16,
        topics: Option<&[(&str, &[i32])]>,
    ) -> DescribeLogDirsResponse {
        let req = DescribeLogDirsRequest::default().with_topics(topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    DescribableLogDirTopic::default()
                        .with_topic(name(t))
                        .with_partitions(ps.to_vec())
                })
                .collect()
        }));
        b.request(ApiKey::DescribeLogDirs, v, &req).await
    }

    /// (topic, partition, size, lag) of every partition in the one result.
    fn listed(r: &DescribeLogDirsResponse) -> Vec<(String, i32, i64, i64)> {
        assert_eq!(r.results.len(), 1);
        r.results[0]
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    assert!(!p.is_future_key);
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.partition_size,
                        p.offset_lag,
                    )
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn lists_the_log_dir_with_partition_sizes_that_grow() {
        let b = TestBroker::start().await;
        assert_eq!(b.create("t", 2).await.topics[0].error_code, 0);
        assert_eq!(b.create("u", 1).await.topics[0].error_code, 0);
        let r = describe(&b, 4, None).await;
        assert_eq!(r.error_code, 0);
        let dir = &r.results[0];
        assert_eq!(dir.error_code, 0);
        assert!(
            dir.log_dir.as_str().ends_with("/logs"),
            "{}",
            dir.log_dir.as_str()
        );
        assert!(std::path::Path::new(dir.log_dir.as_str()).is_absolute());
        assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
        assert_eq!(
            listed(&r),
            [("t", 0, 0, 0), ("t", 1, 0, 0), ("u", 0, 0, 0)].map(|(t, p, s, l)| (
                t.to_owned(),
                p,
                s,
                l
            ))
        );

        assert_eq!(b.produce("t", 1, batch(10), -1).await.0, 0);
        let after = listed(&describe(&b, 4, None).await);
        assert_eq!(after[0].2, 0);
        assert!(after[1].2 > 0, "{after:?}");
        assert_eq!(after[1].3, 0, "a leader has no lag");

        // Only the partitions asked for; topics with none of them are left out.
        let r = describe(&b, 4, Some(&[("t", &[1, 7]), ("missing", &[0])])).await;
        assert_eq!(listed(&r), [("t".to_owned(), 1, after[1].2, 0)]);
        let r = describe(&b, 4, Some(&[])).await;
        assert!(r.results[0].topics.is_empty());

        // Before v4 the space is not reported.
        let r = describe(&b, 1, None).await;
        assert_eq!(r.results[0].total_bytes, -1);
        assert_eq!(listed(&r).len(), 3);
        b.stop().await;
    }

    #[tokio::test]
    async fn needs_describe_on_the_cluster() {
        let mut b = TestBroker::start_with(|c| {
            c.super_users = Some("User:admin".into());
            c.allow_everyone_if_no_acl_found = Some(false);
        })
        .await;
        b.as_principal(Principal::user("alice"));
        let r = describe(&b, 4, None).await;
        assert_eq!(r.error_code, CLUSTER_DENIED);
        assert!(r.results.is_empty());
        b.as_principal(Principal::user("admin"));
        assert_eq!(describe(&b, 4, None).await.error_code, 0);
        b.stop().await;
    }
}
