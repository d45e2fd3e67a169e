//! Reading a [`Split`] as a stream of Arrow record batches.
//!
//! The stream walks the split's segment from `start_offset`, fetching about one cache chunk of
//! whole Kafka batches at a time through the [`RemoteReader`] (so memory stays bounded by a
//! chunk plus one output batch), decodes each batch (CRC checked, any codec), skips control
//! batches and records outside the split, and fills only the projected columns. It stops at
//! `end_offset`, at the end of the segment, or once `limit` rows are out, fetching nothing
//! past what it needs.
//!
//! By default ([`Isolation::ReadCommitted`]) only committed history comes out: before its first
//! fetch the stream loads its split's [`TxnFilter`] (aborted transactions from the tiered
//! transaction indexes, the last stable offset from the newest producer snapshot; see
//! [`crate::txn`]), skips aborted transactional batches without decoding them and stops at the
//! last stable offset. Nothing runs until the stream is polled; dropping it cancels the read.
//!
//! [`RemoteReader`]: tierlog_tiering::remote::reader::RemoteReader

use std::collections::VecDeque;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::Stream;
use kafka_protocol::records::RecordBatchDecoder;
use tierlog_metadata::ManifestRegistry;
use tierlog_tiering::batch::{BatchHeader, HEADER_SIZE};
use tierlog_tiering::remote::reader::RemoteReader;

use crate::schema::{BatchTxn, Builder, Columns};
use crate::txn::TxnFilter;
use crate::{Error, Isolation, QueryContext, Result, Split};

/// Rows per output batch unless [`ReadOptions::batch_rows`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// Bytes of Kafka batches fetched per step (about one cache chunk).
const FETCH_BYTES: usize = 1 << 20;

/// How to read a split.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Columns to produce (names from [`crate::schema::COLUMNS`]), in schema order whatever
    /// the order given; `None` = all.
    pub projection: Option<Vec<String>>,
    /// Stop after this many rows.
    pub limit: Option<usize>,
    /// Rows per output batch (0 = 8192).
    pub batch_rows: usize,
    /// Produce the `topic` and `partition` columns (an export leaves them out: Hive
    /// directories carry them).
    pub include_partition_columns: bool,
    /// Committed history only (the default), or every record (audit; see
    /// [`crate::schema::AUDIT_COLUMNS`]).
    pub isolation: Isolation,
}

impl QueryContext {
    /// The schema of reads with `options`.
    pub fn schema(&self, options: &ReadOptions) -> SchemaRef {
        crate::schema::schema(options)
    }

    /// Streams `split` as record batches of `options.batch_rows` rows (the last one shorter),
    /// bounded in memory (one fetch of about a chunk at a time). An unknown projected column
    /// is an [`Error::Invalid`] as the first item.
    pub fn read(
        &self,
        split: Split,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<RecordBatch>> + Send + 'static {
        let state = Columns::from_options(&options).map(|cols| {
            let batch_rows = match options.batch_rows {
                0 => DEFAULT_BATCH_ROWS,
                n => n,
            };
            SplitReader {
                reader: self.reader.clone(),
                manifest: self.manifest.clone(),
                isolation: options.isolation,
                txns: None,
                next: split.start_offset,
                builder: Builder::new(cols, batch_rows),
                split,
                batch_rows,
                remaining: options.limit.unwrap_or(usize::MAX),
                out: VecDeque::new(),
                done: false,
            }
        });
        futures::stream::try_unfold(Some(state), |state| async move {
            let mut r = match state {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(r)) => r,
            };
            match r.next_batch().await? {
                Some(b) => Ok(Some((b, Some(Ok(r))))),
                None => Ok(None),
            }
        })
    }
}

/// The state of one split's stream.
struct SplitReader {
    reader: RemoteReader,
    /// Where the split's partition's later segments are (for its transaction state).
    manifest: ManifestRegistry,
    isolation: Isolation,
    /// The split's transaction state, loaded before the first fetch.
    txns: Option<TxnFilter>,
    split: Split,
    /// Next offset to fetch.
    next: i64,
    builder: Builder,
    batch_rows: usize,
    /// Rows still allowed out (the limit).
    remaining: usize,
    /// Batches ready to hand out.
    out: VecDeque<RecordBatch>,
    /// Nothing more to fetch.
    done: bool,
}

impl SplitReader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(b) = self.out.pop_front() {
                return Ok(Some(b));
            }
            if self.done {
                return Ok(None);
            }
            self.step().await?;
        }
    }

    /// Fetches and decodes one run of batches, queueing full output batches (and the rest at
    /// the end).
    async fn step(&mut self) -> Result<()> {
        if self.txns.is_none() {
            self.load_txns().await?;
        }
        let seg = &self.split.segment;
        if self.remaining == 0 || self.next >= self.split.end_offset || self.next >= seg.end_offset
        {
            self.done = true;
            return self.flush();
        }
        let bytes = self.reader.read(seg, self.next, FETCH_BYTES).await?;
        if bytes.is_empty() {
            // Every batch of the segment ends below `next`: the rest of a compacted segment
            // is a hole.
            self.done = true;
            return self.flush();
        }
        self.decode(bytes)?;
        if self.done {
            self.flush()?;
        }
        Ok(())
    }

    /// Loads the split's transaction state when the read needs it (a committed read, or
    /// `aborted`/`committed` columns), and clips a committed read at the last stable offset.
    async fn load_txns(&mut self) -> Result<()> {
        let committed = self.isolation == Isolation::ReadCommitted;
        let filter = if committed || self.builder.wants_txn_state() {
            TxnFilter::load(&self.reader, &self.manifest, &self.split, committed).await?
        } else {
            TxnFilter::new(Vec::new(), i64::MAX)
        };
        if committed {
            self.split.end_offset = self.split.end_offset.min(filter.last_stable_offset);
        }
        self.txns = Some(filter);
        Ok(())
    }

    fn decode(&mut self, bytes: Bytes) -> Result<()> {
        let (start, end) = (self.split.start_offset, self.split.end_offset);
        let mut pos = 0usize;
        while bytes.len() - pos >= HEADER_SIZE {
            let h = BatchHeader::parse(&bytes[pos..]).map_err(|e| Error::Decode {
                key: self.split.segment.data_key.clone(),
                offset: self.next,
                reason: e.to_string(),
            })?;
            let size = h.size() as usize;
            if pos + size > bytes.len() {
                break;
            }
            let batch = bytes.slice(pos..pos + size);
            pos += size;
            self.next = h.last_offset() + 1;
            if h.base_offset >= end {
                self.done = true;
                break;
            }
            if !h.is_control() && h.last_offset() >= start {
                let aborted = h.is_transactional()
                    && self
                        .txns
                        .as_ref()
                        .is_some_and(|t| t.is_aborted(h.producer_id, h.base_offset));
                if self.builder.wants_batch_txn() {
                    self.builder.set_batch(BatchTxn {
                        producer_id: (h.producer_id >= 0).then_some(h.producer_id),
                        transactional: h.is_transactional(),
                        aborted,
                        last_stable_offset: self
                            .txns
                            .as_ref()
                            .map_or(i64::MAX, |t| t.last_stable_offset),
                    });
                }
                if !aborted || self.isolation == Isolation::ReadUncommitted {
                    self.decode_batch(&h, batch)?;
                }
            }
            if self.remaining == 0 || self.next >= end {
                self.done = true;
                break;
            }
        }
        Ok(())
    }

    fn decode_batch(&mut self, h: &BatchHeader, mut batch: Bytes) -> Result<()> {
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| Error::Decode {
            key: self.split.segment.data_key.clone(),
            offset: h.base_offset,
            reason: e.to_string(),
        })?;
        let log_append = h.timestamp_type() == tierlog_tiering::TimestampType::LogAppendTime;
        let (start, end) = (self.split.start_offset, self.split.end_offset);
        for r in &set.records {
            if r.offset < start || r.offset >= end {
                continue;
            }
            let ts = if log_append {
                h.max_timestamp
            } else {
                r.timestamp
            };
            self.builder.push(r, ts);
            self.remaining -= 1;
            if self.builder.rows >= self.batch_rows {
                self.flush()?;
            }
            if self.remaining == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Queues the rows gathered so far as one batch.
    fn flush(&mut self) -> Result<()> {
        if self.builder.rows > 0 {
            let b = self
                .builder
                .finish(&self.split.topic, self.split.partition)?;
            self.out.push_back(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use object_store::memory::InMemory;
    use tierlog_metadata::RemoteSegment;
    use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};

    use super::*;

    fn batch(base: i64, n: usize, control: bool) -> Bytes {
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: control,
                control,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: if control { 9 } else { -1 },
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: -1,
                timestamp: 100 + i as i64,
                key: Some(Bytes::from(vec![0, 0, 0, 1])),
                value: Some(Bytes::from(format!("v{}", base + i as i64))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::Lz4,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    async fn split_reader(start: i64, end: i64, limit: usize) -> SplitReader {
        let cache = ChunkCache::new(&CacheConfig {
            memory_bytes: 1 << 20,
            ..CacheConfig::default()
        })
        .await
        .expect("cache");
        let opts = ReadOptions {
            projection: Some(vec!["offset".into(), "timestamp".into(), "value".into()]),
            ..ReadOptions::default()
        };
        let cols = Columns::from_options(&opts).expect("columns");
        SplitReader {
            reader: RemoteReader::new(Arc::new(InMemory::new()), cache),
            manifest: tierlog_metadata::ManifestRegistry::new(Arc::new(
                tierlog_metadata::MemoryStore::new(),
            )),
            isolation: Isolation::ReadCommitted,
            txns: None,
            split: Split {
                topic: "t".into(),
                topic_id: uuid::Uuid::nil(),
                partition: 0,
                segment: RemoteSegment {
                    base_offset: 0,
                    end_offset: 100,
                    size_bytes: 0,
                    first_timestamp: 0,
                    max_timestamp: 0,
                    leader_epoch: 0,
                    data_key: "k".into(),
                    index_key: "i".into(),
                    time_index_key: "t".into(),
                    chunk_size: 1,
                    chunk_crcs: vec![],
                    index_crc: 0,
                    time_index_crc: 0,
                    uploaded_ms: 0,
                },
                start_offset: start,
                end_offset: end,
                estimated_rows: 0,
                estimated_bytes: 0,
            },
            next: start,
            builder: Builder::new(cols, 4),
            batch_rows: 4,
            remaining: limit,
            out: VecDeque::new(),
            done: false,
        }
    }

    fn offsets(out: &VecDeque<RecordBatch>) -> Vec<i64> {
        out.iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .expect("offsets")
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn control_batches_are_skipped_and_the_split_bounds_hold() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, 3, false));
        data.extend_from_slice(&batch(3, 1, true));
        data.extend_from_slice(&batch(4, 5, false));
        data.extend_from_slice(&batch(9, 3, false));
        let data = data.freeze();

        let mut r = split_reader(1, 11, usize::MAX).await;
        r.decode(data.clone()).expect("decode");
        assert!(r.done, "stopped at the split end");
        r.flush().expect("flush");
        assert_eq!(offsets(&r.out), [1, 2, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(
            r.out.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [4, 4, 1]
        );

        let mut r = split_reader(0, 100, 4).await;
        r.decode(data).expect("decode");
        assert!(r.done, "stopped at the limit");
        r.flush().expect("flush");
        assert_eq!(offsets(&r.out), [0, 1, 2, 4]);
    }
}
