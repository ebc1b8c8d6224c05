//! Input tolerance: files of one report type in differing physical types (nanosecond or zoned
//! timestamps, timestamps as koku's text, integer quantities, large strings) are read as one
//! table and summarised alike.

use std::sync::Arc;

use costagg::config::BadRows;
use costagg::config::ProfileSpec;
use costagg::input::ReportType;
use costagg::input::store::InputStore;
use costagg::reference::{EnabledKeys, Reference};
use costagg::summary::{LabelGate, RowCounts, daily_summary, session};
use costagg::unit::DayRange;
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use futures::TryStreamExt;

fn write(path: &std::path::Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// One row per file: 1 core-hour used on node n1, namespace ns, each file's own types.
fn file(
    interval_start: (Field, ArrayRef),
    text: fn(&str) -> (DataType, ArrayRef),
    integers: bool,
) -> RecordBatch {
    let mut fields = vec![interval_start.0];
    let mut columns = vec![interval_start.1];
    for (name, value) in [
        ("namespace", "ns"),
        ("pod", "p"),
        ("node", "n1"),
        ("resource_id", "i-1"),
        ("pod_labels", ""),
    ] {
        let (t, a) = text(value);
        fields.push(Field::new(name, t, true));
        columns.push(a);
    }
    for q in ReportType::PodUsage.required_quantities() {
        let v = match q {
            "pod_usage_cpu_core_seconds" => 3600,
            "node_capacity_cpu_core_seconds" => 4 * 3600,
            _ => 0,
        };
        if integers {
            fields.push(Field::new(q, DataType::Int64, true));
            columns.push(Arc::new(Int64Array::from(vec![v])));
        } else {
            fields.push(Field::new(q, DataType::Float64, true));
            columns.push(Arc::new(Float64Array::from(vec![v as f64])));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

#[tokio::test]
async fn nanosecond_zoned_integer_large_string_and_text_timestamp_files_read_as_one_table() {
    let dir = tempfile::tempdir().unwrap();
    // 2025-10-01 00:00 UTC as a zoned nanosecond timestamp, integers, large strings.
    let ns = TimestampNanosecondArray::from(vec![1_759_276_800_000_000_000]).with_timezone("UTC");
    let a = file(
        (
            Field::new(
                "interval_start",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Arc::new(ns),
        ),
        |v| (DataType::LargeUtf8, Arc::new(LargeStringArray::from(vec![v]))),
        true,
    );
    // 01:00 UTC as koku's Go-style text, doubles, plain strings.
    let b = file(
        (
            Field::new("interval_start", DataType::Utf8, true),
            Arc::new(StringArray::from(vec!["2025-10-01 01:00:00 +0000 UTC"])),
        ),
        |v| (DataType::Utf8, Arc::new(StringArray::from(vec![v]))),
        false,
    );
    // 02:00 UTC written at +02:00 → 00:00 + 2h offset = 04:00 local; and a row that is not a time.
    let c = file(
        (
            Field::new("interval_start", DataType::Utf8, true),
            Arc::new(StringArray::from(vec!["2025-10-01 04:00:00 +0200 CEST"])),
        ),
        |v| (DataType::Utf8, Arc::new(StringArray::from(vec![v]))),
        false,
    );
    let d = file(
        (
            Field::new("interval_start", DataType::Utf8, true),
            Arc::new(StringArray::from(vec!["soon"])),
        ),
        |v| (DataType::Utf8, Arc::new(StringArray::from(vec![v]))),
        false,
    );
    for (name, batch) in [("a", a), ("b", b), ("c", c), ("d", d)] {
        write(&dir.path().join(format!("{name}.parquet")), &batch);
    }
    let store = InputStore::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    let files = store.list(&store.location("")).await.unwrap();
    assert_eq!(files.len(), 4);

    let checked = costagg::input::schema::check_files(&store, ReportType::PodUsage, &files).await;
    assert!(checked.problems.is_empty(), "{:?}", checked.problems);
    assert!(checked.text_timestamps);

    let reference = Reference {
        enabled_keys: EnabledKeys::from_enabled(vec![]),
        ..Default::default()
    };
    let profile = ProfileSpec::default().resolve("test", &std::env::temp_dir());
    let ctx = session(&profile, &reference, Arc::default()).unwrap();
    costagg::input::schema::register(&ctx, &store, ReportType::PodUsage, &files, true, profile.strings)
        .unwrap();
    for report in [ReportType::NodeLabels, ReportType::NamespaceLabels] {
        costagg::input::schema::register(&ctx, &store, report, &[], false, profile.strings).unwrap();
    }
    let day = chrono::NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
    let gate = LabelGate {
        malformed: Arc::default(),
        policy: BadRows::Skip,
    };
    let days = DayRange::new(day, day).unwrap();
    let summary = daily_summary(&ctx, days, false, 0, gate, Default::default())
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = summary.rows.try_collect().await.unwrap();
    // The Pod section comes first: one Pod row, then the node's unallocated row.
    assert_eq!(RowCounts::get(&summary.counts.pod), 1);
    assert_eq!(RowCounts::get(&summary.counts.unallocated), 1);
    let rows = batches.iter().find(|b| b.num_rows() > 0).unwrap();
    let value = |name: &str| {
        let a = cast(rows.column_by_name(name).unwrap(), &DataType::Float64).unwrap();
        a.as_any().downcast_ref::<Float64Array>().unwrap().value(0)
    };
    // Hours 00, 01 and 02 UTC: 3 core-hours used, 3 × 4 = 12 core-hours of capacity; the
    // unreadable row is skipped and counted.
    assert_eq!(value("pod_usage_cpu_core_hours"), 3.0);
    assert_eq!(value("node_capacity_cpu_core_hours"), 12.0);
    let unparsable = costagg::input::schema::count_unparsable_timestamps(&ctx, ReportType::PodUsage);
    assert_eq!(unparsable.await.unwrap(), 1);
    assert!(rows.column_by_name("pod_labels").unwrap().is_valid(0));
}
