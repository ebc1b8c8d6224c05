//! Schema checks that name the file and column, and registering checked files as tables.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::prelude::SessionContext;
use datafusion::prelude::{Expr, col};
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::arrow::parquet_to_arrow_schema;

use crate::config::Strings;
use crate::error::{Error, Result};
use crate::input::store::InputStore;
use crate::input::timestamps::TextTimestamp;
use crate::input::{Kind, ReportType};

/// Whether a file's column type can be read as `kind`; `Err` says what was found.
pub fn check_type(kind: Kind, found: &DataType) -> std::result::Result<(), String> {
    let ok = match (kind, found) {
        (_, DataType::Null) => true,
        (Kind::Timestamp, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) => true,
        (Kind::Timestamp | Kind::Text, t) => is_text(t),
        (Kind::Quantity, t) => t.is_numeric(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("has type {found}"))
    }
}

/// Whether a file type is text (UTF8, LARGE_UTF8, view or dictionary-encoded).
pub fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

/// What a file's footer says about it: its rows, its columns as Arrow reads them, and the
/// columns whose every value is null by the footer's statistics.
#[derive(Debug)]
pub struct Footer {
    pub rows: i64,
    pub schema: Schema,
    pub all_null: Vec<String>,
    /// The first and last `interval_start` (ms since the epoch) by the statistics, when the
    /// column is a timestamp and every row group has them.
    pub span_ms: Option<(i64, i64)>,
}

/// Every problem of one file against a report type's columns: a required column missing,
/// of a type costagg cannot read, of Parquet's NULL type, or null in every row where that
/// would make the summary up from nothing (`Column::never_all_null`); a column costagg reads
/// that appears twice.
pub fn check_schema(file: &str, report: ReportType, footer: &Footer) -> Vec<Error> {
    let schema = &footer.schema;
    let mut problems = Vec::new();
    for column in report.columns() {
        let times = schema.fields().iter().filter(|f| f.name() == column.name).count();
        let problem = match schema.field_with_name(column.name) {
            Ok(_) if times > 1 => Some(format!("appears {times} times")),
            Ok(field) if column.required && field.data_type() == &DataType::Null => {
                Some("has Parquet's NULL type: no value at all".to_string())
            }
            Ok(_) if column.never_all_null && footer.all_null.iter().any(|c| c == column.name) => {
                Some(format!("is null in every one of the file's {} rows", footer.rows))
            }
            Ok(field) => check_type(column.kind, field.data_type()).err(),
            Err(_) if column.required => Some("is missing".to_string()),
            Err(_) => None,
        };
        if let Some(problem) = problem {
            problems.push(Error::InputSchema {
                file: file.to_string(),
                column: column.name.to_string(),
                expected: column.kind.describe().to_string(),
                problem,
            });
        }
    }
    problems
}

/// What checking a report type's files found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Every problem, each naming its file (and column).
    pub problems: Vec<Error>,
    /// Some file holds `interval_start` as text, so the table reads it as text and parses it.
    pub text_timestamps: bool,
    /// Rows in the readable files, from their footers.
    pub rows: u64,
    /// Size of the files.
    pub bytes: u64,
    /// Each file's first and last `interval_start` (ms), where its footer tells them.
    pub spans: Vec<FileSpan>,
}

/// The hours a file reports, by its footer: its first and last `interval_start`.
#[derive(Debug, Clone)]
pub struct FileSpan {
    pub file: String,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Reads each file's footer (eight at a time) and checks its columns.
pub async fn check_files(store: &InputStore, report: ReportType, files: &[ObjectMeta]) -> Checked {
    let footers: Vec<_> = futures::stream::iter(files)
        .map(|meta| async move { (meta, read_footer(store, meta).await) })
        .buffered(8)
        .collect()
        .await;
    let mut checked = Checked::default();
    for (meta, footer) in footers {
        let file = store.display(&meta.location);
        match footer {
            Ok(footer) => {
                checked.rows += footer.rows.max(0) as u64;
                checked.bytes += meta.size;
                checked.problems.extend(check_schema(&file, report, &footer));
                if let Ok(f) = footer.schema.field_with_name("interval_start") {
                    checked.text_timestamps |= is_text(f.data_type());
                }
                if let Some((first_ms, last_ms)) = footer.span_ms {
                    checked.spans.push(FileSpan {
                        file,
                        first_ms,
                        last_ms,
                    });
                }
            }
            Err(problem) => checked.problems.push(Error::InputUnreadable { file, problem }),
        }
    }
    checked
}

/// The file's row count and Arrow schema from its footer, or why it cannot be read. The
/// footer's frame is checked before the Parquet reader sees it (a file that is too short, lacks
/// the magic bytes or claims a footer larger than itself made the reader panic), and a panic of
/// the reader on a footer that passes is caught here as a last resort: a bad file is an input
/// problem naming the file, never a crash.
async fn read_footer(store: &InputStore, meta: &ObjectMeta) -> std::result::Result<Footer, String> {
    use futures::FutureExt;
    check_frame(store, meta).await?;
    let read = async {
        let footer = DFParquetMetadata::new(store.store.as_ref(), meta)
            .fetch_metadata()
            .await?;
        let file = footer.file_metadata();
        let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
        Ok::<_, datafusion::error::DataFusionError>(Footer {
            rows: file.num_rows(),
            span_ms: interval_span_ms(&footer, &schema),
            schema,
            all_null: all_null_columns(&footer),
        })
    };
    match std::panic::AssertUnwindSafe(read).catch_unwind().await {
        Ok(Ok(footer)) => Ok(footer),
        Ok(Err(e)) => Err(format!("not a readable Parquet file ({e})")),
        Err(panic) => Err(format!(
            "not a readable Parquet file (the Parquet reader failed on its footer: {})",
            panic_text(&panic)
        )),
    }
}

/// The columns whose every value is null, by the row groups' statistics; a column some row
/// group has no null count for is not listed.
fn all_null_columns(footer: &parquet::file::metadata::ParquetMetaData) -> Vec<String> {
    let rows = footer.file_metadata().num_rows();
    let columns = footer.file_metadata().schema_descr();
    if rows <= 0 {
        return Vec::new();
    }
    (0..columns.num_columns())
        .filter(|&i| {
            let nulls: Option<u64> = (footer.row_groups().iter())
                .map(|g| g.column(i).statistics().and_then(|s| s.null_count_opt()))
                .sum();
            nulls == Some(rows as u64)
        })
        .map(|i| columns.column(i).name().to_string())
        .collect()
}

/// The first and last `interval_start` in ms, from the row groups' statistics of a timestamp
/// column stored as 64-bit integers; `None` for text or INT96 times, or missing statistics.
fn interval_span_ms(
    footer: &parquet::file::metadata::ParquetMetaData,
    schema: &Schema,
) -> Option<(i64, i64)> {
    use datafusion::arrow::datatypes::TimeUnit;
    use parquet::file::statistics::Statistics;
    let to_ms = match schema.field_with_name("interval_start").ok()?.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => |v: i64| v.saturating_mul(1000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => |v: i64| v,
        DataType::Timestamp(TimeUnit::Microsecond, _) => |v: i64| v.div_euclid(1000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => |v: i64| v.div_euclid(1_000_000),
        _ => return None,
    };
    let columns = footer.file_metadata().schema_descr();
    let i = (0..columns.num_columns()).find(|&i| columns.column(i).name() == "interval_start")?;
    let mut span: Option<(i64, i64)> = None;
    for group in footer.row_groups() {
        let Some(Statistics::Int64(stats)) = group.column(i).statistics() else {
            return None;
        };
        let (first, last) = (to_ms(*stats.min_opt()?), to_ms(*stats.max_opt()?));
        span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
    }
    span
}

/// Parquet's frame: `PAR1`, the data, the footer, the footer's length (4 bytes, little
/// endian), `PAR1`.
async fn check_frame(store: &InputStore, meta: &ObjectMeta) -> std::result::Result<(), String> {
    const FRAME_BYTES: u64 = 12;
    if meta.size < FRAME_BYTES {
        return Err(format!(
            "not a Parquet file: {} bytes, fewer than Parquet's {FRAME_BYTES}-byte frame",
            meta.size
        ));
    }
    let tail = store
        .store
        .get_range(&meta.location, meta.size - 8..meta.size)
        .await
        .map_err(|e| format!("cannot read its footer ({e})"))?;
    if tail.len() != 8 || &tail[4..] != b"PAR1" {
        return Err("not a Parquet file: it does not end with Parquet's magic bytes PAR1".into());
    }
    let footer_bytes = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_bytes + FRAME_BYTES > meta.size {
        return Err(format!(
            "a truncated or corrupt Parquet file: its footer claims {footer_bytes} bytes, more than \
             its {} bytes hold",
            meta.size
        ));
    }
    Ok(())
}

/// A caught panic's message.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Registers the checked files of a report type as the table the summary SQL reads, in the
/// report type's read schema for `strings` (DataFusion casts each file's columns and fills
/// absent optional columns with nulls). No files gives an empty table. With `text_timestamps`,
/// the files are read with `interval_start` as text into `<table>_text`, and `<table>` is a
/// view that parses it (`koku_timestamp`).
pub fn register(
    ctx: &SessionContext,
    store: &InputStore,
    report: ReportType,
    files: &[ObjectMeta],
    text_timestamps: bool,
    strings: Strings,
) -> Result<()> {
    let canonical = report.read_schema(strings);
    let schema = if text_timestamps {
        let fields: Vec<Field> = canonical
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "interval_start" => Field::new("interval_start", DataType::Utf8, true),
                _ => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    } else {
        canonical.clone()
    };
    let table: Arc<dyn datafusion::catalog::TableProvider> = if files.is_empty() {
        Arc::new(MemTable::try_new(schema, vec![vec![]])?)
    } else {
        store.register(ctx);
        let urls = files
            .iter()
            .map(|f| store.table_url(&f.location))
            .collect::<Result<Vec<_>>>()?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        Arc::new(ListingTable::try_new(config)?)
    };
    if !text_timestamps {
        ctx.register_table(report.table_name(), table)?;
        return Ok(());
    }
    ctx.register_table(text_table(report), table.clone())?;
    let parse = TextTimestamp::udf();
    let columns: Vec<Expr> = canonical
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "interval_start" => parse.call(vec![col("interval_start")]).alias("interval_start"),
            name => col(name),
        })
        .collect();
    let view = ctx.read_table(table)?.select(columns)?.into_view();
    ctx.register_table(report.table_name(), view)?;
    Ok(())
}

fn text_table(report: ReportType) -> String {
    format!("{}_text", report.table_name())
}

/// Rows of a report type registered with text timestamps whose `interval_start` is not a
/// readable time (they count in no day).
pub async fn count_unparsable_timestamps(ctx: &SessionContext, report: ReportType) -> Result<u64> {
    let table = ctx.table(text_table(report).as_str()).await?;
    let parse = TextTimestamp::udf();
    let unreadable = col("interval_start")
        .is_not_null()
        .and(parse.call(vec![col("interval_start")]).is_null());
    Ok(table.filter(unreadable)?.count().await? as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, TimeUnit};

    /// Files that made the Parquet reader panic or that are not Parquet at all: each is a
    /// problem naming the file, and checking them never panics.
    #[tokio::test]
    async fn broken_footers_are_input_problems_naming_the_file_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let footer_claiming = |bytes: u32| {
            let mut f = b"PAR1".to_vec();
            f.extend([7u8; 100]);
            f.extend(bytes.to_le_bytes());
            f.extend(b"PAR1");
            f
        };
        let cases: [(&str, Vec<u8>, &str); 5] = [
            (
                "magic_only.parquet",
                b"PAR1PAR1".to_vec(),
                "fewer than Parquet's 12-byte frame",
            ),
            ("empty.parquet", vec![], "fewer than Parquet's 12-byte frame"),
            (
                "two_gib.parquet",
                footer_claiming(1 << 31),
                "its footer claims 2147483648 bytes",
            ),
            (
                "not_parquet.parquet",
                b"namespace,pod\nshop,cart-1\n".to_vec(),
                "magic bytes PAR1",
            ),
            // A frame that holds, around a footer of garbage: the reader's own error (or a
            // panic it raised, caught).
            (
                "garbage_footer.parquet",
                footer_claiming(50),
                "not a readable Parquet file",
            ),
        ];
        for (name, bytes, _) in &cases {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let store = InputStore::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let files = store.list(&store.location("")).await.unwrap();
        let checked = check_files(&store, ReportType::PodUsage, &files).await;
        assert_eq!(checked.problems.len(), cases.len(), "{:?}", checked.problems);
        for (name, _, expected) in cases {
            let found = checked
                .problems
                .iter()
                .map(ToString::to_string)
                .find(|p| p.contains(name));
            let found = found.unwrap_or_else(|| panic!("no problem names {name}"));
            assert!(found.contains(expected), "{found}");
            assert!(found.starts_with("cannot read "), "{found}");
        }
    }

    /// Degenerate files, each named with its column: a key column null in every row, a required
    /// column of Parquet's NULL type, a column that appears twice. An optional column of the
    /// NULL type is an absent one.
    #[test]
    fn null_key_columns_null_typed_and_duplicate_columns_are_named() {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let schema = Schema::new(vec![
            Field::new(
                "interval_start",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            text("node"),
            Field::new("node_labels", DataType::Null, true),
        ]);
        let footer = Footer {
            rows: 24,
            schema,
            all_null: vec!["node".into()],
            span_ms: None,
        };
        let problems: Vec<String> = check_schema("d.parquet", ReportType::NodeLabels, &footer)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                "d.parquet: column `node` is null in every one of the file's 24 rows (expected a string (UTF8))",
                "d.parquet: column `node_labels` has Parquet's NULL type: no value at all (expected a string (UTF8))",
            ]
        );
        let schema = Schema::new(vec![
            Field::new(
                "interval_start",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            text("node"),
            text("node"),
            text("node_labels"),
        ]);
        let footer = Footer {
            rows: 24,
            schema,
            all_null: vec![],
            span_ms: None,
        };
        let problems = check_schema("t.parquet", ReportType::NodeLabels, &footer);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("column `node` appears 2 times"));
        let optional_null = Schema::new(
            ReportType::StorageUsage
                .columns()
                .iter()
                .map(|c| match c.name {
                    "csi_volume_handle" => Field::new(c.name, DataType::Null, true),
                    "interval_start" => {
                        Field::new(c.name, DataType::Timestamp(TimeUnit::Millisecond, None), true)
                    }
                    _ if c.kind == Kind::Quantity => Field::new(c.name, DataType::Float64, true),
                    _ => text(c.name),
                })
                .collect::<Vec<_>>(),
        );
        let footer = Footer {
            rows: 24,
            schema: optional_null,
            all_null: vec!["csi_volume_handle".into(), "persistentvolume".into()],
            span_ms: None,
        };
        assert!(check_schema("s.parquet", ReportType::StorageUsage, &footer).is_empty());
    }

    /// The statistics a Parquet writer puts in the footer are what tells an all-null column.
    #[tokio::test]
    async fn a_file_whose_node_is_null_in_every_row_is_named_from_its_footer() {
        use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "interval_start",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("node", DataType::Utf8, true),
            Field::new("node_labels", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from(vec![0, 3_600_000])),
            Arc::new(StringArray::from(vec![None::<&str>, None])),
            Arc::new(StringArray::from(vec!["{}", "{}"])),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let file = std::fs::File::create(dir.path().join("nodes.parquet")).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let store = InputStore::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let files = store.list(&store.location("")).await.unwrap();
        let checked = check_files(&store, ReportType::NodeLabels, &files).await;
        let problems: Vec<String> = checked.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].ends_with("nodes.parquet: column `node` is null in every one of the file's 2 rows (expected a string (UTF8))"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_missing_required_column_and_a_bad_type_are_both_named() {
        let schema = Schema::new(vec![
            Field::new(
                "interval_start",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Field::new("node", DataType::Int64, true),
        ]);
        let footer = Footer {
            rows: 1,
            schema,
            all_null: vec![],
            span_ms: None,
        };
        let problems = check_schema("x.parquet", ReportType::NodeLabels, &footer);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "x.parquet: column `node` has type Int64 (expected a string (UTF8))",
                "x.parquet: column `node_labels` is missing (expected a string (UTF8))",
            ]
        );
    }

    #[test]
    fn integers_decimals_and_large_strings_are_usable() {
        assert!(check_type(Kind::Quantity, &DataType::Int64).is_ok());
        assert!(check_type(Kind::Quantity, &DataType::Decimal128(20, 4)).is_ok());
        assert!(check_type(Kind::Text, &DataType::LargeUtf8).is_ok());
        assert!(check_type(Kind::Text, &DataType::Null).is_ok());
        assert!(check_type(Kind::Quantity, &DataType::Utf8).is_err());
        assert!(check_type(Kind::Timestamp, &DataType::Utf8).is_ok());
        assert!(check_type(Kind::Timestamp, &DataType::Float64).is_err());
    }
}
