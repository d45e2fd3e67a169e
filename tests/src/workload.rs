//! Deterministic records, producing them with delivery reports, and checking what a consumer
//! read back against what the broker acknowledged.
//!
//! The checks never assume where the broker put a record: the acknowledged `(partition,
//! offset)` of every record comes from its delivery report, and the log is then checked
//! against those acknowledgements (every acknowledged record at its offset, offsets contiguous
//! from the partition start, each partition in production order).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::clients::RecordData;

/// Record `i` of a workload tagged `tag`: a key (null for every 1000th record), a compressible
/// value of varying length, and headers (none on every 7th record; a null-valued header on
/// every 10th).
pub fn record(i: usize, tag: &str) -> RecordData {
    let key = (i % 1000 != 999).then(|| format!("key-{i}").into_bytes());
    let filler_len = 20 + (i * 37) % 160;
    let filler: String = "tierlog-payload-"
        .chars()
        .cycle()
        .skip(i % 16)
        .take(filler_len)
        .collect();
    let value = Some(format!("value-{tag}-{i}-{filler}").into_bytes());
    let mut headers = Vec::new();
    if !i.is_multiple_of(7) {
        headers.push(("idx".to_owned(), Some(i.to_string().into_bytes())));
        headers.push(("tag".to_owned(), Some(tag.as_bytes().to_vec())));
        if i.is_multiple_of(10) {
            headers.push(("nullable".to_owned(), None));
        }
    }
    RecordData {
        key,
        value,
        headers,
    }
}

/// `n` records tagged `tag`.
pub fn records(n: usize, tag: &str) -> Vec<RecordData> {
    (0..n).map(|i| record(i, tag)).collect()
}

/// Builds the rdkafka record for `data`.
pub fn future_record<'a>(topic: &'a str, data: &'a RecordData) -> FutureRecord<'a, [u8], [u8]> {
    let mut rec: FutureRecord<'a, [u8], [u8]> = FutureRecord::to(topic);
    if let Some(key) = &data.key {
        rec = rec.key(key.as_slice());
    }
    if let Some(value) = &data.value {
        rec = rec.payload(value.as_slice());
    }
    if !data.headers.is_empty() {
        let mut headers = OwnedHeaders::new_with_capacity(data.headers.len());
        for (key, value) in &data.headers {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: value.as_deref(),
            });
        }
        rec = rec.headers(headers);
    }
    rec
}

/// Produces every record (enqueueing all before awaiting any, so batches form) and returns the
/// acknowledged `(partition, offset)` of each, in input order. Fails on the first failed
/// delivery. The producer's `queue.buffering.max.messages` must hold `records.len()`.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[RecordData],
) -> Result<Vec<(i32, i64)>> {
    let mut pending = Vec::with_capacity(records.len());
    for (i, data) in records.iter().enumerate() {
        let future = producer
            .send_result(future_record(topic, data))
            .map_err(|(e, _)| e)
            .with_context(|| format!("enqueueing record {i}"))?;
        pending.push(future);
    }
    let mut acks = Vec::with_capacity(records.len());
    for (i, future) in pending.into_iter().enumerate() {
        match future.await {
            Ok(Ok(delivery)) => acks.push((delivery.partition, delivery.offset)),
            Ok(Err((e, _))) => bail!("record {i} of {topic} was not acknowledged: {e}"),
            Err(_) => bail!("record {i} of {topic}: delivery report cancelled"),
        }
    }
    Ok(acks)
}

/// Checks acknowledgements of records produced in order by one producer: within each partition
/// the offsets increase in production order and form the contiguous range `start..start+n`.
/// Returns the number of records per partition.
pub fn check_acks(acks: &[(i32, i64)], start: &BTreeMap<i32, i64>) -> Result<BTreeMap<i32, i64>> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (i, &(partition, offset)) in acks.iter().enumerate() {
        let expected = next
            .entry(partition)
            .or_insert_with(|| start.get(&partition).copied().unwrap_or(0));
        ensure!(
            offset == *expected,
            "record {i}: acknowledged at {partition}/{offset}, expected {partition}/{expected} \
             (offsets must be contiguous and in production order)"
        );
        *expected += 1;
    }
    Ok(next
        .into_iter()
        .map(|(p, end)| (p, end - start.get(&p).copied().unwrap_or(0)))
        .collect())
}

/// Checks that `consumed` is exactly the acknowledged records: every `(partition, offset)` in
/// `acks` appears once with the key, value and headers of its record, each partition's offsets
/// are contiguous from that partition's first acknowledged offset and in order, and nothing
/// else was read.
pub fn check_consumed(
    consumed: &[OwnedMessage],
    records: &[RecordData],
    acks: &[(i32, i64)],
) -> Result<()> {
    ensure!(
        records.len() == acks.len(),
        "records and acks differ in length"
    );
    let by_position: HashMap<(i32, i64), usize> =
        acks.iter().enumerate().map(|(i, &pos)| (pos, i)).collect();
    ensure!(
        by_position.len() == acks.len(),
        "two records were acknowledged at the same offset"
    );
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for &(p, o) in acks {
        let e = first.entry(p).or_insert(o);
        *e = (*e).min(o);
    }
    let mut next = first.clone();
    for msg in consumed {
        let (p, o) = (msg.partition(), msg.offset());
        let expected = next.get_mut(&p).with_context(|| {
            format!("consumed a record from unexpected partition {p} (offset {o})")
        })?;
        ensure!(
            o == *expected,
            "partition {p}: consumed offset {o}, expected {expected} (gap, duplicate or reorder)"
        );
        *expected += 1;
        let i = *by_position
            .get(&(p, o))
            .with_context(|| format!("consumed {p}/{o}, which no delivery report acknowledged"))?;
        let got = RecordData::of(msg);
        if got != records[i] {
            bail!(
                "{p}/{o} (record {i}) differs:\n  expected {:?}\n  consumed {:?}",
                records[i],
                got
            );
        }
    }
    ensure!(
        consumed.len() == acks.len(),
        "consumed {} records, {} were acknowledged",
        consumed.len(),
        acks.len()
    );
    Ok(())
}

/// How long to wait for `n` records to be consumed: generous, proportional to `n`.
pub fn consume_timeout(n: usize) -> Duration {
    Duration::from_secs(30 + u64::try_from(n / 1000).unwrap_or(u64::MAX))
}
