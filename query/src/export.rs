//! Writing splits as files: one Parquet (or Arrow IPC) file per split, named by the offsets it
//! covers, `<start>-<last>.parquet`, in a directory the caller picks (Hive style:
//! `topic=T/partition=P/`).
//!
//! A file is written under a temporary name in the same directory and renamed once complete,
//! so a file with the final name is always whole and a re-run skips it. Parquet files are
//! zstd-compressed, with row groups of [`ROW_GROUP_ROWS`] rows and column statistics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tokio::io::AsyncWriteExt;

use crate::json::JsonValues;
use crate::{Error, QueryContext, ReadOptions, Result, Split};

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Apache Parquet, zstd.
    #[default]
    Parquet,
    /// Arrow IPC file format.
    Arrow,
}

impl Format {
    /// File name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Arrow => "arrow",
        }
    }
}

/// What exporting one split did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitExport {
    /// The file (written now or earlier).
    pub path: PathBuf,
    /// Rows written (0 when skipped or when the split held only control records).
    pub rows: u64,
    /// Bytes of the file (0 when none was written).
    pub bytes: u64,
    /// The file existed already (a re-run): nothing was read.
    pub skipped: bool,
}

/// The file name of `split` in `format`: `<start>-<last>.<ext>`.
pub fn file_name(split: &Split, format: Format) -> String {
    format!(
        "{}-{}.{}",
        split.start_offset,
        split.end_offset - 1,
        format.extension()
    )
}

/// Parquet writer settings of exports.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        // Keys and values rarely repeat enough for a dictionary to pay; zstd does the work.
        .set_column_dictionary_enabled(ColumnPath::from("value"), false)
        // Min/max of opaque payloads prune nothing and cost a comparison per value.
        .set_column_statistics_enabled(ColumnPath::from("value"), EnabledStatistics::None)
        .set_column_dictionary_enabled(ColumnPath::from("key"), false)
        // Offsets and timestamps rise steadily: deltas pack them small, dictionaries cannot.
        .set_column_dictionary_enabled(ColumnPath::from("offset"), false)
        .set_column_encoding(ColumnPath::from("offset"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("timestamp"), false)
        .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED)
        .build()
}

/// Reads `split` and writes it as `dir/<file_name>`, unless that file exists already.
/// `dir` must exist. A split that yields no rows writes no file. A committed read of a split
/// past the partition's last stable offset is cut there, yet the file is named by the split:
/// export only splits that end at or below [`QueryContext::last_stable_offset`] (as `tierlog
/// export` does) if a re-run is to complete what an open transaction held back.
pub async fn export_split(
    ctx: &QueryContext,
    split: Split,
    dir: &Path,
    format: Format,
    options: ReadOptions,
) -> Result<SplitExport> {
    export_split_with(ctx, split, dir, format, options, None).await
}

/// [`export_split`], with the values decoded as JSON by `json` when given.
pub async fn export_split_with(
    ctx: &QueryContext,
    split: Split,
    dir: &Path,
    format: Format,
    options: ReadOptions,
    json: Option<&JsonValues>,
) -> Result<SplitExport> {
    let path = dir.join(file_name(&split, format));
    if tokio::fs::try_exists(&path)
        .await
        .map_err(|e| Error::io("check", &path, e))?
    {
        return Ok(SplitExport {
            path,
            rows: 0,
            bytes: 0,
            skipped: true,
        });
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name(&split, format),
        std::process::id()
    ));
    let mut schema = ctx.schema(&options);
    if let Some(json) = json {
        schema = json.output_schema(&schema);
    }
    let mut stream = Box::pin(ctx.read(split, options));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let mut writer = Writer::new(file, schema, format)?;
    let mut rows = 0u64;
    let result: Result<()> = async {
        while let Some(batch) = stream.next().await {
            let mut batch = batch?;
            if let Some(json) = json {
                batch = json.apply(&batch)?;
            }
            rows += batch.num_rows() as u64;
            writer.write(&batch)?;
        }
        Ok(())
    }
    .await;
    finish(writer, result, &tmp, path, rows, false)
}

/// Ends a file written under `tmp`: on success fsyncs it and renames it to `path` (unless it
/// holds no rows and `keep_empty` is false: then no file is left), on failure removes it.
fn finish(
    writer: Writer,
    result: Result<()>,
    tmp: &Path,
    path: PathBuf,
    rows: u64,
    keep_empty: bool,
) -> Result<SplitExport> {
    if let Err(e) = result {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    let file = writer.finish()?;
    if rows == 0 && !keep_empty {
        drop(file);
        let _ = std::fs::remove_file(tmp);
        return Ok(SplitExport {
            path,
            rows: 0,
            bytes: 0,
            skipped: false,
        });
    }
    file.sync_all().map_err(|e| Error::io("sync", tmp, e))?;
    let bytes = file
        .metadata()
        .map_err(|e| Error::io("stat", tmp, e))?
        .len();
    drop(file);
    std::fs::rename(tmp, &path).map_err(|e| Error::io("rename", tmp, e))?;
    Ok(SplitExport {
        path,
        rows,
        bytes,
        skipped: false,
    })
}

/// The file name of a latest-per-key snapshot of `splits`: `latest-<start>-<last>.<ext>`.
pub fn latest_file_name(splits: &[Split], format: Format) -> String {
    let start = splits.iter().map(|s| s.start_offset).min().unwrap_or(0);
    let end = splits.iter().map(|s| s.end_offset).max().unwrap_or(0);
    format!("latest-{start}-{}.{}", end - 1, format.extension())
}

/// A table snapshot of one partition of a compacted topic: the latest record of every key in
/// `splits` (one partition's, any order), written as `dir/<latest_file_name>` in offset order.
/// Keys whose latest record is a tombstone (a null value) are left out, as are records without
/// a key. Two passes over the splits, the first reading only keys and offsets: memory holds one
/// offset per distinct key, never the rows. With `options.isolation` read_committed (the
/// default) aborted records never count as a key's latest.
pub async fn export_latest_per_key(
    ctx: &QueryContext,
    splits: &[Split],
    dir: &Path,
    format: Format,
    options: ReadOptions,
) -> Result<SplitExport> {
    use arrow::array::{Array, AsArray, BooleanArray};
    use arrow::datatypes::Int64Type;

    let mut splits = splits.to_vec();
    splits.sort_by_key(|s| s.start_offset);
    let path = dir.join(latest_file_name(&splits, format));
    // Pass 1: key → offset of its latest record, and whether that one is a tombstone.
    let mut latest: std::collections::HashMap<Vec<u8>, i64> = std::collections::HashMap::new();
    let keys_only = ReadOptions {
        projection: Some(vec!["offset".into(), "key".into(), "value".into()]),
        ..options.clone()
    };
    for split in &splits {
        let mut stream = Box::pin(ctx.read(split.clone(), keys_only.clone()));
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let (Some(offsets), Some(keys)) =
                (batch.column_by_name("offset"), batch.column_by_name("key"))
            else {
                continue;
            };
            let offsets = offsets.as_primitive::<Int64Type>();
            let keys = keys.as_binary::<i32>();
            for i in 0..batch.num_rows() {
                if keys.is_valid(i) {
                    latest.insert(keys.value(i).to_vec(), offsets.value(i));
                }
            }
        }
    }
    // Pass 2: the rows that are their key's latest and not a tombstone.
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        latest_file_name(&splits, format),
        std::process::id()
    ));
    let schema = ctx.schema(&options);
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let mut writer = Writer::new(file, schema, format)?;
    let mut rows = 0u64;
    let result: Result<()> = async {
        for split in &splits {
            let mut stream = Box::pin(ctx.read(split.clone(), options.clone()));
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let (Some(offsets), Some(keys), Some(values)) = (
                    batch.column_by_name("offset"),
                    batch.column_by_name("key"),
                    batch.column_by_name("value"),
                ) else {
                    return Err(Error::invalid(
                        "a latest-per-key export needs the offset, key and value columns",
                    ));
                };
                let offsets = offsets.as_primitive::<Int64Type>();
                let keys = keys.as_binary::<i32>();
                let keep: BooleanArray = (0..batch.num_rows())
                    .map(|i| {
                        Some(
                            keys.is_valid(i)
                                && values.is_valid(i)
                                && latest.get(keys.value(i)) == Some(&offsets.value(i)),
                        )
                    })
                    .collect();
                let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
                if kept.num_rows() > 0 {
                    rows += kept.num_rows() as u64;
                    writer.write(&kept)?;
                }
            }
        }
        Ok(())
    }
    .await;
    // A snapshot of a table with no live key is still a (empty) snapshot.
    finish(writer, result, &tmp, path, rows, true)
}

/// Whether `key` exists in `store` (an export to object storage skips what a previous run
/// finished: objects appear only complete).
pub async fn object_exists(store: &Arc<dyn ObjectStore>, key: &str) -> Result<bool> {
    match store.head(&ObjectPath::from(key)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(source) => Err(Error::ObjectStore {
            op: "head",
            key: key.to_owned(),
            source,
        }),
    }
}

/// Uploads the local file `local` to `key` in `store` (multipart when large; the object
/// appears only once complete), then removes `local`.
pub async fn upload_file(store: &Arc<dyn ObjectStore>, local: &Path, key: &str) -> Result<()> {
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| Error::io("open", local, e))?;
    let mut writer = BufWriter::new(store.clone(), ObjectPath::from(key));
    let io_err = |e| Error::io("upload", local, e);
    tokio::io::copy(&mut file, &mut writer)
        .await
        .map_err(io_err)?;
    writer.shutdown().await.map_err(io_err)?;
    drop(file);
    tokio::fs::remove_file(local)
        .await
        .map_err(|e| Error::io("remove", local, e))?;
    Ok(())
}

enum Writer {
    Parquet(ArrowWriter<std::fs::File>),
    Arrow(arrow::ipc::writer::FileWriter<std::fs::File>),
}

impl Writer {
    fn new(file: std::fs::File, schema: SchemaRef, format: Format) -> Result<Writer> {
        Ok(match format {
            Format::Parquet => Writer::Parquet(ArrowWriter::try_new(
                file,
                schema,
                Some(writer_properties()),
            )?),
            Format::Arrow => Writer::Arrow(arrow::ipc::writer::FileWriter::try_new(file, &schema)?),
        })
    }

    fn write(&mut self, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        match self {
            Writer::Parquet(w) => w.write(batch)?,
            Writer::Arrow(w) => w.write(batch)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<std::fs::File> {
        Ok(match self {
            Writer::Parquet(w) => w.into_inner()?,
            Writer::Arrow(mut w) => {
                w.finish()?;
                w.into_inner()?
            }
        })
    }
}
