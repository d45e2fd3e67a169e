//! A follower heals the damaged ranges of its log from its leader.
//!
//! The follower's fetch loop fetches at its log end, so a quarantined range in the middle of
//! its log (`partition/heal.rs`) would never be fetched again. Every [`HEAL_EVERY_MS`] a
//! follower with damage asks its leader for each damaged range with a consumer's Fetch
//! (replica id -1: a fetch with its own id at an old offset would tell the leader that its log
//! went back, and move it out of the ISR), takes the same batches (the leader wrote them
//! byte for byte as the follower holds them) and writes them over the bad bytes. The repair
//! checks every batch's CRC-32C and offsets before anything is written.

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use tracing::warn;

use tierlog_metadata::LeaderEpoch;

use super::client::PeerConnection;
use crate::partition::{Partition, RangeHeal, log_heal};
use crate::protocol::str_bytes;

/// Time between two heal attempts of one partition.
pub(super) const HEAL_EVERY_MS: i64 = 10_000;
/// Bytes asked for per heal fetch.
const HEAL_FETCH_BYTES: i32 = 8 * 1024 * 1024;

/// Repairs what it can of `p`'s damaged ranges from the leader on `c`; returns how many
/// ranges it repaired. A range the leader cannot serve (damaged there too) stays quarantined.
pub(super) async fn heal_from_leader(
    c: &mut PeerConnection,
    p: &Partition,
    epoch: LeaderEpoch,
) -> anyhow::Result<usize> {
    let mut healed = 0;
    for range in p.log.damaged_ranges() {
        let mut heal = RangeHeal::begin(p, &range)?;
        let mut at = Some(range.first_offset);
        while let Some(from) = at {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(HEAL_FETCH_BYTES)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(str_bytes(&p.tp.topic)))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(p.tp.partition)
                                .with_current_leader_epoch(epoch)
                                .with_fetch_offset(from)
                                .with_partition_max_bytes(HEAL_FETCH_BYTES),
                        ]),
                ]);
            let resp: FetchResponse = c
                .request(ApiKey::Fetch, super::fetcher::FETCH_VERSION, &request)
                .await?;
            let Some(pd) = resp.responses.into_iter().flat_map(|t| t.partitions).next() else {
                break;
            };
            if pd.error_code != 0 {
                warn!(
                    partition = %p.tp,
                    first_offset = range.first_offset,
                    last_offset = range.last_offset,
                    code = pd.error_code,
                    "the leader could not serve a damaged range"
                );
                break;
            }
            at = heal.add(&pd.records.unwrap_or_default()).await?;
        }
        if at == Some(range.first_offset) {
            continue;
        }
        if log_heal(p, &range, "the leader", &heal.finish(p).await) {
            healed += 1;
        }
    }
    Ok(healed)
}
