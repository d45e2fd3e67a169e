//! Per-topic settings of a partition log.
//!
//! [`LogConfig`] is plain serde data whose defaults are Kafka's topic defaults. It is read on
//! every append (limits, timestamp type) and by [`PartitionLog::enforce_retention`]; it can be
//! replaced at runtime with [`PartitionLog::update_config`], taking effect on the next call.
//! Durations are written as humantime strings (`"7days"`, `"100ms"`); sizes are bytes.
//!
//! [`PartitionLog::enforce_retention`]: crate::PartitionLog::enforce_retention
//! [`PartitionLog::update_config`]: crate::PartitionLog::update_config

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Seven days, Kafka's default for `segment.ms` and `retention.ms`.
const SEVEN_DAYS: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Largest segment the format can address: positions in the offset index are `u32`, and Kafka
/// (whose files we mirror) caps `segment.bytes` at `i32::MAX`.
pub(crate) const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Settings of one partition log (Kafka topic-level configs of the same names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before an append would make it larger than
    /// this. Bigger segments mean fewer files and uploads; smaller ones let retention and
    /// tiering act at a finer grain. Range `14..=2^31-1`.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment once its first append is this old, so that time
    /// retention and tiering can act on low-traffic partitions. `None` = never roll on time.
    #[serde(with = "opt_duration")]
    pub segment_ms: Option<Duration>,
    /// `retention.ms`: delete a closed segment once its newest record is older than this.
    /// `None` = keep forever (an archive topic).
    #[serde(with = "opt_duration")]
    pub retention_ms: Option<Duration>,
    /// `retention.bytes`: delete the oldest closed segments while the log is larger than this.
    /// `None` = unlimited.
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: largest record batch (header included) accepted by an append.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`: whether records keep the producer's timestamps or get the
    /// broker's append time.
    pub message_timestamp_type: TimestampType,
    /// `index.interval.bytes`: add a sparse index entry every this many bytes. Smaller means
    /// shorter scans on reads and more index memory (8 + 12 bytes per entry).
    pub index_interval_bytes: u32,
    /// `remote.storage.enable`: sealed segments are uploaded to object storage, and a local
    /// segment is deleted only once it is tiered (below
    /// [`PartitionLog::tiered_end`](crate::PartitionLog::tiered_end)) and past the local
    /// retention below. Off: `retention_*` delete local segments as a plain Kafka log does.
    pub remote_storage: bool,
    /// `local.retention.ms` (only with `remote_storage`): how long a tiered segment is also
    /// kept on local disk, by its newest record. Longer keeps more catch-up reads on the hot
    /// tier at the cost of disk. `None` = no local time limit (the effective limit is still at
    /// most `retention_ms`). Kafka's `-2` ("same as retention.ms") is resolved by the caller.
    #[serde(with = "opt_duration")]
    pub local_retention_ms: Option<Duration>,
    /// `local.retention.bytes` (only with `remote_storage`): the local segments are trimmed,
    /// oldest tiered first, while they exceed this. `None` = no local size limit (the
    /// effective limit is still at most `retention_bytes`). `-2` is resolved by the caller.
    pub local_retention_bytes: Option<u64>,
    /// `cleanup.policy` holds `delete`: `retention_*` delete old segments. Without it
    /// (`compact` alone) nothing is deleted by age or size; local retention of tiered
    /// segments still applies, since they stay in object storage.
    pub cleanup_delete: bool,
    /// `cleanup.policy` holds `compact`: the cleaner keeps the latest record of every key.
    pub cleanup_compact: bool,
    /// `min.cleanable.dirty.ratio`: clean once dirty bytes are this share of the cleanable
    /// log. Lower cleans more often (more I/O, less space).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a record stays uncompacted at least this long.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty records older than this are cleaned whatever the
    /// dirty ratio (`i64::MAX`: never forced).
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone stays after the cleaning that reached it,
    /// so consumers reading from the start see the delete.
    pub delete_retention_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(SEVEN_DAYS),
            retention_ms: Some(SEVEN_DAYS),
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            index_interval_bytes: 4096,
            remote_storage: false,
            local_retention_ms: None,
            local_retention_bytes: None,
            cleanup_delete: true,
            cleanup_compact: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

impl LogConfig {
    /// Checks that every value is in range.
    pub fn validate(&self) -> Result<()> {
        if !(14..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "segment_bytes={} must be in 14..={MAX_SEGMENT_BYTES}",
                    self.segment_bytes
                ),
            });
        }
        if self.max_message_bytes > i32::MAX as u32 {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "max_message_bytes={} must be at most {}",
                    self.max_message_bytes,
                    i32::MAX
                ),
            });
        }
        if self.segment_ms == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig {
                reason: "segment_ms must be at least 1ms (use None to never roll on time)".into(),
            });
        }
        Ok(())
    }

    /// `segment_ms` in milliseconds, `None` when rolling on time is off.
    pub(crate) fn segment_ms_i64(&self) -> Option<i64> {
        self.segment_ms.map(duration_ms)
    }

    /// `retention_ms` in milliseconds, `None` when kept forever (or when the policy does not
    /// delete).
    pub(crate) fn retention_ms_i64(&self) -> Option<i64> {
        self.retention_ms
            .filter(|_| self.cleanup_delete)
            .map(duration_ms)
    }

    /// `retention_bytes`, `None` when unlimited (or when the policy does not delete).
    pub(crate) fn retention_bytes_eff(&self) -> Option<u64> {
        self.retention_bytes.filter(|_| self.cleanup_delete)
    }

    /// How long a tiered segment stays on local disk (ms): the smaller of `local_retention_ms`
    /// and `retention_ms` (Kafka requires local <= total; taking the minimum keeps a bad pair
    /// safe). `None` = no time limit.
    pub(crate) fn local_retention_ms_i64(&self) -> Option<i64> {
        min_some(
            self.local_retention_ms.map(duration_ms),
            self.retention_ms_i64(),
        )
    }

    /// How many bytes of segments are kept locally: the smaller of `local_retention_bytes` and
    /// `retention_bytes`. `None` = no size limit.
    pub(crate) fn local_retention_bytes_eff(&self) -> Option<u64> {
        min_some(self.local_retention_bytes, self.retention_bytes_eff())
    }
}

fn min_some<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TimestampType {
    /// Records keep the timestamp the producer gave them.
    #[default]
    CreateTime,
    /// The broker stamps every batch with the time it was appended.
    LogAppendTime,
}

/// serde for `Option<Duration>` as a humantime string (`"7days"`), `null` for `None`.
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafka_defaults_and_valid() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1_073_741_824);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.retention_ms, Some(Duration::from_millis(604_800_000)));
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn serde_round_trip_with_humantime_durations() {
        let c = LogConfig {
            segment_ms: None,
            retention_ms: Some(Duration::from_millis(1500)),
            retention_bytes: Some(1 << 30),
            message_timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let json = serde_json::to_value(&c).expect("serialize");
        assert_eq!(json["retention_ms"], "1s 500ms");
        assert_eq!(json["segment_ms"], serde_json::Value::Null);
        assert_eq!(json["message_timestamp_type"], "LogAppendTime");
        let back: LogConfig = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, c);
        // missing fields take Kafka's defaults; durations parse from humantime strings
        let partial: LogConfig =
            serde_json::from_str(r#"{"segment_ms": "1h", "segment_bytes": 1048576}"#)
                .expect("deserialize");
        assert_eq!(partial.segment_ms, Some(Duration::from_secs(3600)));
        assert_eq!(partial.segment_bytes, 1 << 20);
        assert_eq!(partial.retention_ms, LogConfig::default().retention_ms);
        assert!(serde_json::from_str::<LogConfig>(r#"{"segment_ms": "soon"}"#).is_err());
        assert!(serde_json::from_str::<LogConfig>(r#"{"segmnt_ms": "1h"}"#).is_err());
    }

    #[test]
    fn remote_storage_fields_default_off_and_round_trip() {
        let c = LogConfig::default();
        assert!(!c.remote_storage);
        assert_eq!(c.local_retention_ms, None);
        assert_eq!(c.local_retention_bytes, None);
        let c = LogConfig {
            remote_storage: true,
            local_retention_ms: Some(Duration::from_secs(60)),
            local_retention_bytes: Some(1 << 20),
            ..LogConfig::default()
        };
        let json = serde_json::to_value(&c).expect("serialize");
        assert_eq!(json["local_retention_ms"], "1m");
        let back: LogConfig = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, c);
    }

    #[test]
    fn effective_local_retention_is_the_smaller_limit() {
        let c = LogConfig {
            retention_ms: Some(Duration::from_secs(10)),
            local_retention_ms: Some(Duration::from_secs(60)),
            retention_bytes: None,
            local_retention_bytes: Some(5),
            ..LogConfig::default()
        };
        assert_eq!(c.local_retention_ms_i64(), Some(10_000));
        assert_eq!(c.local_retention_bytes_eff(), Some(5));
        let c = LogConfig {
            retention_ms: None,
            local_retention_ms: None,
            retention_bytes: Some(7),
            local_retention_bytes: Some(9),
            ..LogConfig::default()
        };
        assert_eq!(c.local_retention_ms_i64(), None);
        assert_eq!(c.local_retention_bytes_eff(), Some(7));
    }

    #[test]
    fn rejects_out_of_range_values() {
        let c = LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::InvalidConfig { .. })));
        let c = LogConfig {
            segment_bytes: 1 << 32,
            ..LogConfig::default()
        };
        assert!(c.validate().is_err());
        let c = LogConfig {
            segment_ms: Some(Duration::ZERO),
            ..LogConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
