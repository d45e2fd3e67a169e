//! JSON values as typed columns (`--value-format json`).
//!
//! A schema for the values is inferred from a sample of them ([`infer_value_schema`], arrow's
//! JSON inference), then every batch is rewritten by [`JsonValues::apply`]: the binary `value`
//! column becomes a struct column of that schema, and an `_invalid` binary column keeps, raw,
//! each value that is not a JSON object matching it (its struct entry is null). Nothing is
//! dropped: a row whose value does not parse still has its offset, key and headers.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, StructArray, new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::reader::{ReaderBuilder, infer_json_schema_from_iterator};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::{Error, QueryContext, ReadOptions, Result, Split};

/// Name of the column holding values that did not decode.
pub const INVALID_COLUMN: &str = "_invalid";

/// The schema of the JSON objects among `values` (non-objects and unparsable values are
/// ignored); `None` when none is an object.
pub fn infer_value_schema<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<Schema>> {
    let objects: Vec<serde_json::Value> = values
        .filter_map(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .filter(|v| v.is_object())
        .collect();
    if objects.is_empty() {
        return Ok(None);
    }
    let schema = infer_json_schema_from_iterator(objects.into_iter().map(Ok))?;
    Ok(Some(schema))
}

/// A decoder for the schema of up to `sample` values read from the first of `splits`;
/// `None` when none of them is a JSON object.
pub async fn sample_value_schema(
    ctx: &QueryContext,
    splits: &[Split],
    sample: usize,
) -> Result<Option<JsonValues>> {
    let mut values: Vec<Vec<u8>> = Vec::new();
    for split in splits {
        if values.len() >= sample {
            break;
        }
        let options = ReadOptions {
            projection: Some(vec!["value".into()]),
            limit: Some(sample - values.len()),
            ..ReadOptions::default()
        };
        let mut stream = Box::pin(ctx.read(split.clone(), options));
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let col = batch.column(0).as_binary::<i32>();
            values.extend(col.iter().flatten().map(<[u8]>::to_vec));
        }
    }
    let schema = infer_value_schema(values.iter().map(Vec::as_slice))?;
    Ok(schema.map(JsonValues::new))
}

/// Rewrites batches' `value` column as typed columns of a fixed schema.
#[derive(Debug, Clone)]
pub struct JsonValues {
    values: SchemaRef,
}

impl JsonValues {
    /// Decoding into `values` (the fields of the `value` struct).
    pub fn new(values: Schema) -> JsonValues {
        JsonValues {
            values: Arc::new(values),
        }
    }

    /// The schema of rewritten batches whose schema was `input`.
    pub fn output_schema(&self, input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = Vec::with_capacity(input.fields().len() + 1);
        for f in input.fields() {
            if f.name() == "value" {
                fields.push(Field::new(
                    "value",
                    DataType::Struct(self.values.fields().clone()),
                    true,
                ));
                fields.push(Field::new(INVALID_COLUMN, DataType::Binary, true));
            } else {
                fields.push(f.as_ref().clone());
            }
        }
        Arc::new(Schema::new(fields))
    }

    /// `batch` with its `value` column decoded; a batch without one is returned as it is.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let Some(idx) = batch.schema().index_of("value").ok() else {
            return Ok(batch.clone());
        };
        let raw = batch
            .column(idx)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| Error::invalid("the value column is not binary"))?;
        let (decoded, invalid) = self.decode(raw)?;
        let schema = self.output_schema(&batch.schema());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + 1);
        for (i, c) in batch.columns().iter().enumerate() {
            if i == idx {
                columns.push(decoded.clone());
                columns.push(invalid.clone());
            } else {
                columns.push(c.clone());
            }
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// Decodes every value; on a decode error of the whole batch, row by row, so that only
    /// the rows at fault go to `_invalid`.
    fn decode(&self, raw: &BinaryArray) -> Result<(ArrayRef, ArrayRef)> {
        let n = raw.len();
        let struct_type = DataType::Struct(self.values.fields().clone());
        // Each row is either its own object or, when null or not an object, `null`.
        let mut ok = vec![false; n];
        let mut lines = Vec::with_capacity(raw.values().len() + n);
        for (i, v) in raw.iter().enumerate() {
            match v {
                Some(v) if is_object(v) => {
                    ok[i] = true;
                    lines.extend_from_slice(v);
                }
                _ => lines.extend_from_slice(b"null"),
            }
            lines.push(b'\n');
        }
        let decoded = match self.decode_lines(&lines, n) {
            Ok(a) => a,
            Err(_) => {
                // Row by row: the rows that fail are invalid.
                let mut parts: Vec<ArrayRef> = Vec::with_capacity(n);
                for (i, v) in raw.iter().enumerate() {
                    let one = match v {
                        Some(v) if ok[i] => self.decode_lines(v, 1).ok(),
                        _ => None,
                    };
                    parts.push(match one {
                        Some(a) => a,
                        None => {
                            ok[i] = false;
                            new_null_array(&struct_type, 1)
                        }
                    });
                }
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                if refs.is_empty() {
                    new_null_array(&struct_type, 0)
                } else {
                    arrow::compute::concat(&refs)?
                }
            }
        };
        let mut invalid = BinaryBuilder::new();
        for (i, v) in raw.iter().enumerate() {
            match v {
                Some(v) if !ok[i] => invalid.append_value(v),
                _ => invalid.append_null(),
            }
        }
        Ok((decoded, Arc::new(invalid.finish())))
    }

    /// `rows` newline-separated JSON values (objects or `null`) as one struct array.
    fn decode_lines(&self, lines: &[u8], rows: usize) -> Result<ArrayRef> {
        let mut decoder = ReaderBuilder::new(self.values.clone())
            .with_batch_size(rows.max(1))
            .build_decoder()?;
        let mut rest = lines;
        while !rest.is_empty() {
            let used = decoder.decode(rest)?;
            if used == 0 {
                break;
            }
            rest = &rest[used..];
        }
        let batch = decoder
            .flush()?
            .unwrap_or_else(|| RecordBatch::new_empty(self.values.clone()));
        if batch.num_rows() != rows {
            return Err(Error::invalid(format!(
                "json decoder returned {} rows for {rows}",
                batch.num_rows()
            )));
        }
        Ok(Arc::new(StructArray::from(batch)))
    }
}

/// Whether `v` parses as a JSON object.
fn is_object(v: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(v).is_ok_and(|j| j.is_object())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn objects_become_columns_and_the_rest_is_kept_raw() {
        let values: Vec<Option<&[u8]>> = vec![
            Some(br#"{"id": 1, "name": "a"}"#),
            Some(b"not json"),
            None,
            Some(br#"{"id": 3, "name": "c", "extra": true}"#),
            Some(br#"{"id": "four"}"#),
            Some(b"[1, 2]"),
        ];
        let schema = infer_value_schema(values[..1].iter().flatten().copied())
            .unwrap()
            .unwrap();
        let json = JsonValues::new(schema);
        let input = RecordBatch::try_from_iter([
            (
                "offset",
                Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4, 5])) as ArrayRef,
            ),
            ("value", Arc::new(BinaryArray::from(values)) as ArrayRef),
        ])
        .unwrap();
        let out = json.apply(&input).unwrap();
        assert_eq!(out.schema(), json.output_schema(&input.schema()));
        let s = out.column(1).as_struct();
        let ids = s.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        assert_eq!(ids.value(0), 1);
        assert_eq!(ids.value(3), 3);
        assert!(s.is_null(1) && s.is_null(2) && s.is_null(4) && s.is_null(5));
        let invalid = out.column(2).as_binary::<i32>();
        let got: Vec<Option<&[u8]>> = invalid.iter().collect();
        assert_eq!(
            got,
            [
                None,
                Some(&b"not json"[..]),
                None,
                None,
                Some(&br#"{"id": "four"}"#[..]),
                Some(&b"[1, 2]"[..])
            ]
        );
    }
}
