//! Plan/read round trips over tiered segments: every codec, headers, null keys and values,
//! offset and time ranges (splits starting mid-segment), projection,
//! limit, and the Parquet export of a split.

#![allow(clippy::unwrap_used)]

mod common;

use arrow::array::{
    Array, AsArray, BinaryArray, Int8Array, Int32Array, Int64Array, ListArray, StringArray,
    StructArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Int32Type};
use arrow::record_batch::RecordBatch;
use common::{APPEND_TS, BASE_TS, Fixture, Row, TOPIC, TimestampTypeConfig, fixture, fixture_with};
use futures::TryStreamExt;
use tierlog_query::export::{Format, export_split};
use tierlog_query::{Bound, ErrorKind, Range, ReadOptions, Split};

fn bin(a: &BinaryArray, i: usize) -> Option<Vec<u8>> {
    a.is_valid(i).then(|| a.value(i).to_vec())
}

/// Rows of `batch` (which carries at least offset, timestamp, key, value and headers).
fn rows_of(batch: &RecordBatch, partition: i32) -> Vec<Row> {
    let col = |n: &str| batch.column_by_name(n).expect(n).clone();
    let offsets = col("offset");
    let offsets = offsets.as_any().downcast_ref::<Int64Array>().unwrap();
    let ts = col("timestamp");
    let ts = ts
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    let keys = col("key");
    let keys = keys.as_binary::<i32>();
    let values = col("value");
    let values = values.as_binary::<i32>();
    let headers = col("headers");
    let headers = headers.as_any().downcast_ref::<ListArray>().unwrap();
    (0..batch.num_rows())
        .map(|i| {
            let h = headers.value(i);
            let h = h.as_any().downcast_ref::<StructArray>().unwrap();
            let hk = h.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let hv = h.column(1).as_binary::<i32>();
            Row {
                partition,
                offset: offsets.value(i),
                timestamp: ts.value(i),
                key: bin(keys, i),
                value: bin(values, i),
                headers: (0..h.len())
                    .map(|j| (hk.value(j).to_string(), bin(hv, j)))
                    .collect(),
            }
        })
        .collect()
}

async fn read_all(f: &Fixture, splits: &[Split], options: &ReadOptions) -> Vec<Row> {
    let mut out = Vec::new();
    for s in splits {
        let batches: Vec<RecordBatch> = f
            .ctx
            .read(s.clone(), options.clone())
            .try_collect()
            .await
            .unwrap();
        for b in &batches {
            assert_eq!(b.schema(), f.ctx.schema(options));
            out.extend(rows_of(b, s.partition));
        }
    }
    out
}

#[tokio::test]
async fn whole_topic_round_trips_in_every_codec() {
    let f = fixture(2, 80).await;
    let splits = f.ctx.plan(TOPIC, None, &Range::default()).await.unwrap();
    assert!(
        splits.len() >= 10,
        "want many segments, got {}",
        splits.len()
    );
    // Splits tile each partition without gaps, in order.
    for p in 0..2 {
        let ps: Vec<&Split> = splits.iter().filter(|s| s.partition == p).collect();
        assert_eq!(ps[0].start_offset, 0);
        for w in ps.windows(2) {
            assert_eq!(w[0].end_offset, w[1].start_offset);
        }
        assert!(
            ps.iter()
                .all(|s| s.estimated_rows > 0 && s.estimated_bytes > 0)
        );
    }
    // A split survives the JSON a Flight ticket carries.
    let json = serde_json::to_vec(&splits[3]).unwrap();
    assert_eq!(serde_json::from_slice::<Split>(&json).unwrap(), splits[3]);

    let got = read_all(&f, &splits, &ReadOptions::default()).await;
    assert_eq!(got.len(), f.rows.len());
    assert_eq!(got, f.rows);
    assert!(got.iter().any(|r| r.key.is_none()));
    assert!(got.iter().any(|r| r.value.is_none()));
    assert!(
        got.iter()
            .any(|r| r.headers.iter().any(|(_, v)| v.is_none()))
    );
}

#[tokio::test]
async fn partition_columns_and_schema() {
    let f = fixture(2, 20).await;
    let splits = f
        .ctx
        .plan(TOPIC, Some(&[1]), &Range::default())
        .await
        .unwrap();
    assert!(splits.iter().all(|s| s.partition == 1));
    let options = ReadOptions {
        include_partition_columns: true,
        ..ReadOptions::default()
    };
    let schema = f.ctx.schema(&options);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "topic",
            "partition",
            "offset",
            "timestamp",
            "timestamp_type",
            "key",
            "value",
            "headers"
        ]
    );
    assert_eq!(
        schema.field(0).data_type(),
        &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    );
    let b: Vec<RecordBatch> = f
        .ctx
        .read(splits[0].clone(), options)
        .try_collect()
        .await
        .unwrap();
    let topic = b[0].column(0).as_dictionary::<Int32Type>();
    let values = topic
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(values.value(0), TOPIC);
    let part = b[0]
        .column(1)
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    assert!(part.iter().all(|p| p == Some(1)));
    // Without them (the default), the first column is the offset.
    assert_eq!(
        f.ctx.schema(&ReadOptions::default()).field(0).name(),
        "offset"
    );
}

#[tokio::test]
async fn offset_range_starts_and_ends_mid_segment() {
    let f = fixture(1, 80).await;
    let all = f.ctx.plan(TOPIC, None, &Range::default()).await.unwrap();
    let seg = &all[2].segment;
    let from = seg.base_offset + 3;
    let to = all[5].segment.base_offset + 2;
    let range = Range {
        from: Some(Bound::Offset(from)),
        to: Some(Bound::Offset(to)),
    };
    let splits = f.ctx.plan(TOPIC, None, &range).await.unwrap();
    assert_eq!(splits.len(), 4);
    assert_eq!(splits[0].start_offset, from);
    assert_eq!(splits[0].segment, *seg);
    assert_eq!(splits[3].end_offset, to);
    let got = read_all(&f, &splits, &ReadOptions::default()).await;
    let want: Vec<Row> = f
        .rows
        .iter()
        .filter(|r| r.offset >= from && r.offset < to)
        .cloned()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    // A range past the end plans nothing.
    let past = Range {
        from: Some(Bound::Offset(1 << 40)),
        to: None,
    };
    assert!(f.ctx.plan(TOPIC, None, &past).await.unwrap().is_empty());
}

#[tokio::test]
async fn time_range_is_clipped_through_the_time_indexes() {
    let f = fixture(2, 80).await;
    let lo = BASE_TS + 1234 * 10 / 10 + 5; // between two records' timestamps
    let hi = BASE_TS + 3001 * 10 / 10 - 3;
    let range = Range {
        from: Some(Bound::TimestampMs(lo)),
        to: Some(Bound::TimestampMs(hi)),
    };
    let splits = f.ctx.plan(TOPIC, None, &range).await.unwrap();
    let all = f.ctx.plan(TOPIC, None, &Range::default()).await.unwrap();
    assert!(splits.len() < all.len(), "segments were pruned");
    // The first split of a partition starts mid-segment.
    let first = splits.iter().find(|s| s.partition == 0).unwrap();
    assert!(first.start_offset > first.segment.base_offset);
    let got = read_all(&f, &splits, &ReadOptions::default()).await;
    let want: Vec<Row> = f
        .rows
        .iter()
        .filter(|r| r.timestamp >= lo && r.timestamp < hi)
        .cloned()
        .collect();
    assert!(want.len() > 50);
    assert_eq!(got, want);
    // A time after every record plans nothing; one before all plans everything.
    let late = Range {
        from: Some(Bound::TimestampMs(BASE_TS + (1 << 30))),
        to: None,
    };
    assert!(f.ctx.plan(TOPIC, None, &late).await.unwrap().is_empty());
    let early = Range {
        from: Some(Bound::TimestampMs(0)),
        to: None,
    };
    assert_eq!(f.ctx.plan(TOPIC, None, &early).await.unwrap(), all);
}

#[tokio::test]
async fn projection_and_limit_are_pushed_down() {
    let f = fixture(1, 60).await;
    let splits = f.ctx.plan(TOPIC, None, &Range::default()).await.unwrap();
    let options = ReadOptions {
        projection: Some(vec!["value".into(), "offset".into()]),
        limit: Some(17),
        batch_rows: 5,
        ..ReadOptions::default()
    };
    let schema = f.ctx.schema(&options);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["offset", "value"]);
    let split = splits
        .iter()
        .find(|s| s.estimated_rows > 20)
        .expect("a segment with more than 20 offsets")
        .clone();
    let batches: Vec<RecordBatch> = f
        .ctx
        .read(split.clone(), options)
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes, [5, 5, 5, 2]);
    let offsets: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    let want: Vec<i64> = f
        .rows
        .iter()
        .filter(|r| r.offset >= split.start_offset)
        .take(17)
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, want);
    // Unknown names are invalid.
    let bad = ReadOptions {
        projection: Some(vec!["nope".into()]),
        ..ReadOptions::default()
    };
    let e = f
        .ctx
        .read(split, bad)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
}

#[tokio::test]
async fn bad_requests_are_invalid() {
    let f = fixture(1, 5).await;
    let e = f
        .ctx
        .plan("missing", None, &Range::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = f
        .ctx
        .plan(TOPIC, Some(&[3]), &Range::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = f
        .ctx
        .plan(
            TOPIC,
            None,
            &Range {
                from: Some(Bound::Offset(9)),
                to: Some(Bound::Offset(2)),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let topics = f.ctx.topics().await.unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name, TOPIC);
}

#[tokio::test]
async fn export_writes_parquet_once() {
    let f = fixture(1, 40).await;
    let splits = f.ctx.plan(TOPIC, None, &Range::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    for s in &splits {
        let r = export_split(
            &f.ctx,
            s.clone(),
            dir.path(),
            Format::Parquet,
            ReadOptions::default(),
        )
        .await
        .unwrap();
        assert!(!r.skipped);
        total += r.rows;
        let file = std::fs::File::open(&r.path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let meta = reader.metadata().clone();
        assert!(meta.row_group(0).column(0).statistics().is_some());
        let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows as u64, r.rows);
        // A second run skips it.
        let again = export_split(
            &f.ctx,
            s.clone(),
            dir.path(),
            Format::Parquet,
            ReadOptions::default(),
        )
        .await
        .unwrap();
        assert!(again.skipped);
    }
    assert_eq!(total as usize, f.rows.len());
    // No temporary files are left.
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.'))
    );
    // Arrow IPC too.
    let r = export_split(
        &f.ctx,
        splits[0].clone(),
        dir.path(),
        Format::Arrow,
        ReadOptions::default(),
    )
    .await
    .unwrap();
    let reader =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&r.path).unwrap(), None)
            .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows as u64, r.rows);
}

#[tokio::test]
async fn log_append_time_rows_carry_the_broker_timestamp() {
    let f = fixture_with(1, 30, TimestampTypeConfig::LogAppendTime).await;
    let splits = f.ctx.plan(TOPIC, None, &Range::default()).await.unwrap();
    let got = read_all(&f, &splits, &ReadOptions::default()).await;
    assert_eq!(got, f.rows);
    assert!(got.iter().all(|r| r.timestamp >= APPEND_TS));
    let b: Vec<RecordBatch> = f
        .ctx
        .read(splits[0].clone(), ReadOptions::default())
        .try_collect()
        .await
        .unwrap();
    let types = b[0]
        .column_by_name("timestamp_type")
        .unwrap()
        .as_any()
        .downcast_ref::<Int8Array>()
        .unwrap();
    assert!(types.iter().all(|t| t == Some(1)));
    // Time bounds resolve on the append times.
    let range = Range {
        from: Some(Bound::TimestampMs(APPEND_TS + 10)),
        to: Some(Bound::TimestampMs(APPEND_TS + 20)),
    };
    let splits = f.ctx.plan(TOPIC, None, &range).await.unwrap();
    let got = read_all(&f, &splits, &ReadOptions::default()).await;
    let want: Vec<Row> = f
        .rows
        .iter()
        .filter(|r| (APPEND_TS + 10..APPEND_TS + 20).contains(&r.timestamp))
        .cloned()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}
