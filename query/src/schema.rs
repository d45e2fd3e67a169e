//! The Arrow schema of a topic's history, and the column builders a split is decoded into.
//!
//! One row per record: `topic` (dictionary of utf8), `partition` (int32), `offset` (int64),
//! `timestamp` (ms, UTC), `timestamp_type` (int8: 0 CreateTime, 1 LogAppendTime), `key` and
//! `value` (binary, nullable), `headers` (list of struct{key: utf8, value: binary}). A
//! projection keeps a subset in this order; `topic` and `partition` only appear when the caller
//! asks for them ([`ReadOptions::include_partition_columns`]), since Hive-style exports carry
//! them in directory names instead.
//!
//! The [`AUDIT_COLUMNS`] are opt-in (only when a projection names them), so the default schema
//! stays the same: `producer_id` (int64, null for a batch without one), `is_transactional`,
//! `aborted` (the record is in an aborted transaction) and `committed` (a committed read
//! returns it: not aborted, and below the last stable offset). They tell the records of a
//! [`crate::Isolation::ReadUncommitted`] read apart.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, DictionaryArray, Int8Array, Int32Array,
    Int64Array, Int64Builder, ListArray, StringArray, StringBuilder, StructArray,
    TimestampMillisecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::{Error, ReadOptions, Result};

/// Column names, in schema order.
pub const COLUMNS: [&str; 8] = [
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestamp_type",
    "key",
    "value",
    "headers",
];

/// Opt-in transaction columns, after [`COLUMNS`] in schema order.
pub const AUDIT_COLUMNS: [&str; 4] = ["producer_id", "is_transactional", "aborted", "committed"];

/// Every column there is: [`COLUMNS`] then [`AUDIT_COLUMNS`].
const ALL: usize = COLUMNS.len() + AUDIT_COLUMNS.len();

/// Whether `name` is a column (default or audit).
pub fn is_column(name: &str) -> bool {
    column_index(name).is_some()
}

fn column_index(name: &str) -> Option<usize> {
    COLUMNS
        .iter()
        .chain(&AUDIT_COLUMNS)
        .position(|c| *c == name)
}

fn column_name(i: usize) -> &'static str {
    COLUMNS
        .iter()
        .chain(&AUDIT_COLUMNS)
        .nth(i)
        .copied()
        .unwrap_or("headers")
}

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

fn header_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(header_fields()), false))
}

fn field(name: &str) -> Field {
    match name {
        "topic" => Field::new(
            "topic",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        ),
        "partition" => Field::new("partition", DataType::Int32, false),
        "offset" => Field::new("offset", DataType::Int64, false),
        "timestamp" => Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        "timestamp_type" => Field::new("timestamp_type", DataType::Int8, false),
        "key" => Field::new("key", DataType::Binary, true),
        "value" => Field::new("value", DataType::Binary, true),
        "producer_id" => Field::new("producer_id", DataType::Int64, true),
        "is_transactional" => Field::new("is_transactional", DataType::Boolean, false),
        "aborted" => Field::new("aborted", DataType::Boolean, false),
        "committed" => Field::new("committed", DataType::Boolean, false),
        _ => Field::new("headers", DataType::List(header_item()), false),
    }
}

/// Which columns a read produces (in schema order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Columns {
    /// One flag per entry of [`COLUMNS`] then [`AUDIT_COLUMNS`].
    pub(crate) on: [bool; ALL],
}

impl Columns {
    /// The columns `options` asks for; an unknown name is [`Error::Invalid`].
    pub(crate) fn from_options(options: &ReadOptions) -> Result<Columns> {
        let mut on = [false; ALL];
        match &options.projection {
            None => on[..COLUMNS.len()].fill(true),
            Some(names) => {
                for n in names {
                    let i = column_index(n).ok_or_else(|| {
                        Error::invalid(format!(
                            "unknown column `{n}` in projection (columns: {}, and on request {})",
                            COLUMNS.join(", "),
                            AUDIT_COLUMNS.join(", ")
                        ))
                    })?;
                    on[i] = true;
                }
            }
        }
        if !options.include_partition_columns {
            on[0] = false;
            on[1] = false;
        }
        Ok(Columns { on })
    }

    pub(crate) fn key(&self) -> bool {
        self.on[5]
    }
    pub(crate) fn value(&self) -> bool {
        self.on[6]
    }
    pub(crate) fn headers(&self) -> bool {
        self.on[7]
    }
    pub(crate) fn timestamp(&self) -> bool {
        self.on[3]
    }
    /// Whether an audit column is produced (rows then carry their transaction state).
    pub(crate) fn audit(&self) -> bool {
        self.on[COLUMNS.len()..].iter().any(|&on| on)
    }
    /// Whether the `aborted` or `committed` column is produced (they need the aborted
    /// transactions even in a read that returns everything).
    pub(crate) fn txn_state(&self) -> bool {
        self.on[COLUMNS.len() + 2] || self.on[COLUMNS.len() + 3]
    }

    /// The schema of these columns.
    pub(crate) fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = (0..ALL)
            .filter(|&i| self.on[i])
            .map(|i| field(column_name(i)))
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// The schema of reads with `options`; names that are not columns are left out (a read with
/// them fails with [`Error::Invalid`]).
pub fn schema(options: &ReadOptions) -> SchemaRef {
    let mut options = options.clone();
    if let Some(p) = &mut options.projection {
        p.retain(|n| is_column(n));
    }
    Columns::from_options(&options)
        .unwrap_or_else(|_| {
            let mut on = [false; ALL];
            on[..COLUMNS.len()].fill(true);
            Columns { on }
        })
        .schema()
}

/// Rows being gathered for one output batch; only projected columns are filled.
pub(crate) struct Builder {
    cols: Columns,
    schema: SchemaRef,
    pub(crate) rows: usize,
    offsets: Vec<i64>,
    timestamps: Vec<i64>,
    timestamp_types: Vec<i8>,
    keys: BinaryBuilder,
    values: BinaryBuilder,
    header_offsets: Vec<i32>,
    header_keys: StringBuilder,
    header_values: BinaryBuilder,
    /// The current batch's transaction state (audit columns only).
    batch: BatchTxn,
    producer_ids: Int64Builder,
    transactional: BooleanBuilder,
    aborted: BooleanBuilder,
    committed: BooleanBuilder,
}

/// The transaction state of the batch being decoded, for the audit columns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BatchTxn {
    /// The batch's producer id (`None`: -1, not idempotent).
    pub(crate) producer_id: Option<i64>,
    pub(crate) transactional: bool,
    /// The batch is in an aborted transaction.
    pub(crate) aborted: bool,
    /// The partition's last stable offset: records at or past it are not committed.
    pub(crate) last_stable_offset: i64,
}

impl Builder {
    pub(crate) fn new(cols: Columns, capacity: usize) -> Builder {
        let mut header_offsets = Vec::with_capacity(capacity + 1);
        header_offsets.push(0);
        Builder {
            cols,
            schema: cols.schema(),
            rows: 0,
            offsets: Vec::with_capacity(capacity),
            timestamps: Vec::with_capacity(capacity),
            timestamp_types: Vec::with_capacity(capacity),
            keys: BinaryBuilder::with_capacity(if cols.key() { capacity } else { 0 }, 0),
            values: BinaryBuilder::with_capacity(if cols.value() { capacity } else { 0 }, 0),
            header_offsets,
            header_keys: StringBuilder::new(),
            header_values: BinaryBuilder::new(),
            batch: BatchTxn::default(),
            producer_ids: Int64Builder::new(),
            transactional: BooleanBuilder::new(),
            aborted: BooleanBuilder::new(),
            committed: BooleanBuilder::new(),
        }
    }

    /// Whether rows carry their batch's transaction state (an audit column is produced).
    pub(crate) fn wants_batch_txn(&self) -> bool {
        self.cols.audit()
    }

    /// Whether rows need the aborted transactions (`aborted` or `committed` produced).
    pub(crate) fn wants_txn_state(&self) -> bool {
        self.cols.txn_state()
    }

    /// Sets the transaction state of the batch whose records are pushed next.
    pub(crate) fn set_batch(&mut self, batch: BatchTxn) {
        self.batch = batch;
    }

    /// Appends one record with timestamp `ts` (the batch's max timestamp under LogAppendTime).
    pub(crate) fn push(&mut self, r: &kafka_protocol::records::Record, ts: i64) {
        self.rows += 1;
        self.offsets.push(r.offset);
        if self.cols.timestamp() {
            self.timestamps.push(ts);
        }
        self.timestamp_types.push(r.timestamp_type as i8);
        if self.cols.key() {
            self.keys.append_option(r.key.as_deref());
        }
        if self.cols.value() {
            self.values.append_option(r.value.as_deref());
        }
        if self.cols.headers() {
            for (k, v) in &r.headers {
                self.header_keys.append_value(k.as_str());
                self.header_values.append_option(v.as_deref());
            }
            self.header_offsets.push(self.header_keys.len() as i32);
        }
        if self.cols.audit() {
            let b = self.batch;
            self.producer_ids.append_option(b.producer_id);
            self.transactional.append_value(b.transactional);
            self.aborted.append_value(b.aborted);
            self.committed
                .append_value(!b.aborted && r.offset < b.last_stable_offset);
        }
    }

    /// The rows gathered so far as a batch; the builder starts over.
    pub(crate) fn finish(&mut self, topic: &str, partition: i32) -> Result<RecordBatch> {
        let n = self.rows;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(ALL);
        let on = self.cols.on;
        if on[0] {
            let keys = Int32Array::from(vec![0; n]);
            let values = Arc::new(StringArray::from(vec![topic]));
            arrays.push(Arc::new(DictionaryArray::<Int32Type>::try_new(
                keys, values,
            )?));
        }
        if on[1] {
            arrays.push(Arc::new(Int32Array::from(vec![partition; n])));
        }
        let offsets = std::mem::take(&mut self.offsets);
        if on[2] {
            arrays.push(Arc::new(Int64Array::from(offsets)));
        }
        if on[3] {
            let ts = std::mem::take(&mut self.timestamps);
            arrays.push(Arc::new(
                TimestampMillisecondArray::from(ts).with_timezone("UTC"),
            ));
        }
        let types = std::mem::take(&mut self.timestamp_types);
        if on[4] {
            arrays.push(Arc::new(Int8Array::from(types)));
        }
        if on[5] {
            arrays.push(Arc::new(self.keys.finish()));
        }
        if on[6] {
            arrays.push(Arc::new(self.values.finish()));
        }
        if on[7] {
            let hk = self.header_keys.finish();
            let hv = self.header_values.finish();
            let items = StructArray::try_new(
                header_fields(),
                vec![Arc::new(hk) as ArrayRef, Arc::new(hv) as ArrayRef],
                None,
            )?;
            let offs = std::mem::replace(&mut self.header_offsets, vec![0]);
            let list = ListArray::try_new(
                header_item(),
                OffsetBuffer::new(offs.into()),
                Arc::new(items),
                None,
            )?;
            arrays.push(Arc::new(list));
        }
        if self.cols.audit() {
            // all four are filled when any is asked for; finishing resets them
            let audit: [ArrayRef; 4] = [
                Arc::new(self.producer_ids.finish()),
                Arc::new(self.transactional.finish()),
                Arc::new(self.aborted.finish()),
                Arc::new(self.committed.finish()),
            ];
            let wanted = &on[COLUMNS.len()..];
            arrays.extend(
                audit
                    .into_iter()
                    .zip(wanted)
                    .filter(|(_, on)| **on)
                    .map(|(a, _)| a),
            );
        }
        self.rows = 0;
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(batch)
    }
}
