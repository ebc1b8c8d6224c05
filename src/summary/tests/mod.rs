//! Hand-worked fixtures for each summary rule (README "How the summary follows koku"), a module
//! per koku section. Every
//! expected number is derived in the comment above its assertion, never copied from costagg's
//! output. This module builds the line items and runs the summary on them.

mod pod;
mod storage;
mod unallocated;

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use super::{LabelGate, daily_summary, session};
use crate::config::{BadRows, ProfileSpec, Strings};
use crate::input::ReportType;
use crate::reference::{CostCategoryPattern, EnabledKeys, NodeRole, Reference};
use crate::unit::DayRange;

const HOUR_MS: i64 = 3_600_000;
/// 2025-10-01 00:00:00 UTC in milliseconds.
const OCT_1_MS: i64 = 1_759_276_800_000;
const GIB: f64 = 1_073_741_824.0;

/// One hourly pod usage line item; quantities default to zero.
#[derive(Clone, Default)]
struct Line {
    hour: i64,
    namespace: &'static str,
    pod: &'static str,
    node: &'static str,
    labels: &'static str,
    usage_cpu: f64,
    request_cpu: f64,
    limit_cpu: f64,
    usage_mem: f64,
    request_mem: f64,
    limit_mem: f64,
    cap_cores: f64,
    cap_cpu_seconds: f64,
    cap_mem_bytes: f64,
    cap_mem_byte_seconds: f64,
    effective_cpu: Option<f64>,
    effective_mem: Option<f64>,
    /// Defaults to `i-1` on a node, `''` without one.
    resource_id: Option<&'static str>,
}

fn line(hour: i64, namespace: &'static str, node: &'static str, labels: &'static str) -> Line {
    Line {
        hour,
        namespace,
        pod: "p",
        node,
        labels,
        ..Default::default()
    }
}

fn pod_batch(lines: &[Line]) -> RecordBatch {
    let f = |g: fn(&Line) -> f64| Arc::new(Float64Array::from_iter_values(lines.iter().map(g))) as ArrayRef;
    let o = |g: fn(&Line) -> Option<f64>| Arc::new(lines.iter().map(g).collect::<Float64Array>()) as ArrayRef;
    let s = |g: fn(&Line) -> &'static str| {
        Arc::new(StringArray::from_iter_values(lines.iter().map(g))) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(
            lines.iter().map(|l| OCT_1_MS + l.hour * HOUR_MS),
        )),
        s(|l| l.namespace),
        s(|l| l.pod),
        s(|l| l.node),
        s(|l| match (l.resource_id, l.node) {
            (Some(id), _) => id,
            (None, "") => "",
            (None, _) => "i-1",
        }),
        s(|l| l.labels),
        f(|l| l.usage_cpu),
        f(|l| l.request_cpu),
        f(|l| l.limit_cpu),
        f(|l| l.usage_mem),
        f(|l| l.request_mem),
        f(|l| l.limit_mem),
        f(|l| l.cap_cores),
        f(|l| l.cap_cpu_seconds),
        f(|l| l.cap_mem_bytes),
        f(|l| l.cap_mem_byte_seconds),
        o(|l| l.effective_cpu),
        o(|l| l.effective_mem),
        // node_role: only koku's nodes table reads it (input::inventory).
        Arc::new(StringArray::new_null(lines.len())),
    ];
    RecordBatch::try_new(ReportType::PodUsage.table_schema(), columns).unwrap()
}

/// One storage usage line item (hourly, or a day's roll-up at hour 0); quantities default to zero.
#[derive(Clone, Default)]
struct StorageLine {
    hour: i64,
    namespace: &'static str,
    pod: &'static str,
    pvc: &'static str,
    pv: &'static str,
    storageclass: &'static str,
    csi_volume_handle: Option<&'static str>,
    capacity_bytes: f64,
    capacity_byte_seconds: f64,
    request_byte_seconds: f64,
    usage_byte_seconds: f64,
    pv_labels: &'static str,
    pvc_labels: &'static str,
}

fn storage_line(hour: i64, namespace: &'static str, pod: &'static str, pvc: &'static str) -> StorageLine {
    StorageLine {
        hour,
        namespace,
        pod,
        pvc,
        pv: "pv-1",
        storageclass: "gp3",
        pv_labels: "{}",
        pvc_labels: "{}",
        ..Default::default()
    }
}

fn storage_batch(lines: &[StorageLine]) -> RecordBatch {
    let f = |g: fn(&StorageLine) -> f64| {
        Arc::new(Float64Array::from_iter_values(lines.iter().map(g))) as ArrayRef
    };
    let s = |g: fn(&StorageLine) -> &'static str| {
        Arc::new(StringArray::from_iter_values(lines.iter().map(g))) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(
            lines.iter().map(|l| OCT_1_MS + l.hour * HOUR_MS),
        )),
        s(|l| l.namespace),
        s(|l| l.pod),
        s(|l| l.pvc),
        s(|l| l.pv),
        s(|l| l.storageclass),
        Arc::new(lines.iter().map(|l| l.csi_volume_handle).collect::<StringArray>()),
        f(|l| l.capacity_bytes),
        f(|l| l.capacity_byte_seconds),
        f(|l| l.request_byte_seconds),
        f(|l| l.usage_byte_seconds),
        s(|l| l.pv_labels),
        s(|l| l.pvc_labels),
    ];
    RecordBatch::try_new(ReportType::StorageUsage.table_schema(), columns).unwrap()
}

/// (hour, node or namespace, labels) rows of a label report type.
fn label_batch(report: ReportType, rows: &[(i64, &str, &str)]) -> RecordBatch {
    RecordBatch::try_new(
        report.table_schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| OCT_1_MS + r.0 * HOUR_MS),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap()
}

struct Fixture {
    lines: Vec<Line>,
    storage: Vec<StorageLine>,
    /// (node, resource_id, role) rows of `reporting_ocp_nodes`.
    node_roles: Vec<(&'static str, &'static str, &'static str)>,
    node_labels: Vec<(i64, &'static str, &'static str)>,
    namespace_labels: Vec<(i64, &'static str, &'static str)>,
    enabled: Vec<&'static str>,
    cost_categories: Vec<(&'static str, i32)>,
    start: NaiveDate,
    end: NaiveDate,
    /// How the line items' strings are held (the profile's `strings`).
    strings: Strings,
    /// The profile's `days_per_pass` (0: one pass).
    days_per_pass: u32,
}

fn fixture(lines: Vec<Line>) -> Fixture {
    Fixture {
        lines,
        storage: vec![],
        node_roles: vec![],
        node_labels: vec![],
        namespace_labels: vec![],
        enabled: vec!["app", "version", "team", "zone"],
        cost_categories: vec![],
        start: day(1),
        end: day(31),
        strings: Strings::View,
        days_per_pass: 0,
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 10, d).unwrap()
}

/// The fixture hour (hours from 2025-10-01 00:00 UTC) at which `date` starts.
fn hour_of(date: NaiveDate) -> i64 {
    (date - day(1)).num_hours()
}

/// The summary's rows, sorted by (day, namespace, node, labels).
struct Rows(RecordBatch);

impl Rows {
    fn len(&self) -> usize {
        self.0.num_rows()
    }
    fn f64(&self, column: &str, row: usize) -> f64 {
        let a = cast(self.0.column_by_name(column).unwrap(), &DataType::Float64).unwrap();
        a.as_any().downcast_ref::<Float64Array>().unwrap().value(row)
    }
    fn text(&self, column: &str, row: usize) -> Option<String> {
        let a = cast(self.0.column_by_name(column).unwrap(), &DataType::Utf8).unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        (!a.is_null(row)).then(|| a.value(row).to_string())
    }
    fn is_null(&self, column: &str, row: usize) -> bool {
        self.0.column_by_name(column).unwrap().is_null(row)
    }
    fn int(&self, column: &str, row: usize) -> Option<i32> {
        let a = cast(self.0.column_by_name(column).unwrap(), &DataType::Int32).unwrap();
        let a = a.as_any().downcast_ref::<Int32Array>().unwrap();
        (!a.is_null(row)).then(|| a.value(row))
    }
}

fn assert_close(found: f64, expected: f64) {
    assert!(
        (found - expected).abs() < 1e-9,
        "found {found}, expected {expected}"
    );
}

/// The rows of koku's Pod section (Pod rows with labels; unallocated rows have none).
async fn summarise(f: Fixture) -> Rows {
    summarise_noting(f, Arc::default()).await
}

/// Summarises a fixture, remembering malformed label strings in `malformed`.
async fn summarise_noting(f: Fixture, malformed: Arc<super::labels::MalformedLabels>) -> Rows {
    summarise_where(f, malformed, "data_source = 'Pod' AND pod_labels IS NOT NULL").await
}

/// The rows of koku's Storage section.
async fn summarise_storage(f: Fixture) -> Rows {
    summarise_where(f, Arc::default(), "data_source = 'Storage'").await
}

/// The unallocated capacity rows.
async fn summarise_unallocated(f: Fixture) -> Rows {
    summarise_where(f, Arc::default(), "data_source = 'Pod' AND pod_labels IS NULL").await
}

/// `batch` with string views cast to strings and every column nullable.
fn plain(batch: &RecordBatch) -> RecordBatch {
    let (fields, columns): (Vec<_>, Vec<_>) = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            let t = match f.data_type() {
                DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                t => t.clone(),
            };
            let c = cast(c, &t).unwrap();
            (datafusion::arrow::datatypes::Field::new(f.name(), t, true), c)
        })
        .unzip();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    RecordBatch::try_new(schema, columns).unwrap()
}

/// A session with `f`'s reference data and line items registered as a run registers them.
fn context(f: &Fixture, malformed: Arc<super::labels::MalformedLabels>) -> SessionContext {
    let reference = Reference {
        enabled_keys: EnabledKeys::from_enabled(f.enabled.iter().map(|k| k.to_string())),
        cost_categories: f
            .cost_categories
            .iter()
            .map(|(p, id)| CostCategoryPattern {
                namespace: p.to_string(),
                cost_category_id: *id,
            })
            .collect(),
        node_roles: f
            .node_roles
            .iter()
            .map(|(node, resource_id, role)| NodeRole {
                node: node.to_string(),
                resource_id: resource_id.to_string(),
                node_role: role.to_string(),
            })
            .collect(),
    };
    let spec = ProfileSpec {
        strings: Some(f.strings),
        ..Default::default()
    };
    let profile = spec.resolve("test", &std::env::temp_dir());
    let ctx: SessionContext = session(&profile, &reference, malformed).unwrap();
    let tables = [
        (ReportType::PodUsage, pod_batch(&f.lines)),
        (ReportType::StorageUsage, storage_batch(&f.storage)),
        (
            ReportType::NodeLabels,
            label_batch(ReportType::NodeLabels, &f.node_labels),
        ),
        (
            ReportType::NamespaceLabels,
            label_batch(ReportType::NamespaceLabels, &f.namespace_labels),
        ),
    ];
    for (report, batch) in tables {
        // Held as a run reads the files (string views unless the profile says otherwise).
        let schema = report.read_schema(profile.strings);
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| cast(c, f.data_type()).unwrap())
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table(report.table_name(), Arc::new(table)).unwrap();
    }
    ctx
}

/// Every row of the summary of `f` that satisfies `filter` (SQL), in a stable order.
async fn summarise_where(f: Fixture, malformed: Arc<super::labels::MalformedLabels>, filter: &str) -> Rows {
    let ctx = context(&f, malformed.clone());
    let gate = LabelGate {
        malformed,
        policy: BadRows::Skip,
    };
    let days = DayRange::new(f.start, f.end).unwrap();
    let summary = daily_summary(
        &ctx,
        days,
        !f.storage.is_empty(),
        f.days_per_pass,
        gate,
        Default::default(),
    )
    .await
    .unwrap();
    let batches: Vec<RecordBatch> = summary.rows.try_collect().await.unwrap();
    // Every section yields the same columns, so the batches make one table once string views
    // are plain strings and every column may hold nulls.
    let batches: Vec<RecordBatch> = batches.iter().map(plain).collect();
    let schema = batches.first().expect("the summary yields batches").schema();
    let all = SessionContext::new();
    all.register_table(
        "summary",
        Arc::new(MemTable::try_new(schema, vec![batches]).unwrap()),
    )
    .unwrap();
    let sql = format!(
        "SELECT * FROM summary WHERE {filter} ORDER BY usage_start, namespace NULLS FIRST, node, \
         persistentvolumeclaim, pod_labels, volume_labels"
    );
    let batches = all.sql(&sql).await.unwrap().collect().await.unwrap();
    Rows(concat_batches(&batches[0].schema(), &batches).unwrap())
}

/// Every section at once: pods with labels on two nodes (one a worker, one without a role) on
/// days 1, 2 and 5, node and namespace labels, and claims on days 1 and 5.
fn every_section(strings: Strings, days_per_pass: u32) -> Fixture {
    let pod = |hour, namespace, node, labels| Line {
        usage_cpu: 1800.0,
        request_cpu: 3600.0,
        cap_cores: 4.0,
        cap_cpu_seconds: 4.0 * 3600.0,
        cap_mem_bytes: 8.0 * GIB,
        cap_mem_byte_seconds: 8.0 * GIB * 3600.0,
        resource_id: Some(if node == "w1" { "i-w" } else { "i-x" }),
        ..line(hour, namespace, node, labels)
    };
    let mut f = fixture(vec![
        pod(0, "shop", "w1", r#"{"app":"cart","pod_template_hash":"1"}"#),
        pod(1, "shop", "w1", r#"{"app":"cart","pod_template_hash":"2"}"#),
        pod(2, "openshift-dns", "x1", r#"{"team":"net"}"#),
        pod(30, "shop", "x1", "{}"),
        pod(4 * 24, "shop", "w1", r#"{"app":"cart"}"#),
    ]);
    f.storage = vec![
        storage_line(0, "shop", "p", "pvc-a"),
        storage_line(4 * 24 + 1, "shop", "p", "pvc-a"),
    ];
    f.node_roles = vec![("w1", "i-w", "worker")];
    f.node_labels = vec![(0, "w1", r#"{"zone":"a"}"#), (4 * 24, "w1", r#"{"zone":"b"}"#)];
    f.namespace_labels = vec![(0, "shop", r#"{"team":"shop"}"#)];
    f.cost_categories = vec![("openshift-%", 1)];
    f.strings = strings;
    f.days_per_pass = days_per_pass;
    f
}

fn pretty(rows: &Rows) -> String {
    datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(&rows.0))
        .unwrap()
        .to_string()
}

/// The profile's `strings` changes how the line items are held, never the rows.
#[tokio::test]
async fn string_views_and_plain_strings_give_the_same_rows() {
    let view = summarise_where(every_section(Strings::View, 0), Arc::default(), "true").await;
    let plain = summarise_where(every_section(Strings::Plain, 0), Arc::default(), "true").await;
    // Pod rows: day 1 cart on w1 (both hours, pod_template_hash not enabled) and dns on x1,
    // day 2 shop on x1, day 5 cart on w1; Storage rows on days 1 and 5; unallocated rows per
    // node and day: w1 and x1 on day 1, x1 on day 2, w1 on day 5. 4 + 2 + 4.
    assert_eq!(view.len(), 10);
    assert_eq!(pretty(&view), pretty(&plain));
}

/// Summarising a few days at a time gives the rows of one pass: every rule is per day. Passes
/// of 1 day, and of 4 days (days 1-4 and 5-8, the last one short: the range ends on day 7).
#[tokio::test]
async fn passes_of_a_few_days_give_the_rows_of_one_pass() {
    let whole = {
        let mut f = every_section(Strings::View, 0);
        f.end = day(7);
        summarise_where(f, Arc::default(), "true").await
    };
    assert_eq!(whole.len(), 10);
    for days in [1, 4] {
        let mut f = every_section(Strings::View, days);
        f.end = day(7);
        let passes = summarise_where(f, Arc::default(), "true").await;
        assert_eq!(pretty(&passes), pretty(&whole), "{days} days per pass");
    }
}

#[test]
fn a_range_is_cut_into_passes_of_whole_days() {
    let passes = |first, last, days| -> Vec<(NaiveDate, NaiveDate)> {
        let range = DayRange::new(day(first), day(last)).unwrap();
        range.chunks(days).iter().map(|p| (p.first(), p.last())).collect()
    };
    assert_eq!(passes(1, 31, 0), [(day(1), day(31))]);
    assert_eq!(
        passes(1, 10, 4),
        [(day(1), day(4)), (day(5), day(8)), (day(9), day(10))]
    );
    assert_eq!(passes(3, 3, 4), [(day(3), day(3))]);
    assert_eq!(passes(1, 2, 1), [(day(1), day(1)), (day(2), day(2))]);
}

/// The summary's columns, in the order of the table's (`sink::ddl::COLUMNS`) without those the
/// sink fills in for the whole unit. A misnamed alias in one section's SELECT fails here,
/// naming the section, rather than writing a column of nulls.
#[tokio::test]
async fn each_section_yields_the_tables_columns_in_order() {
    let unit_columns = [
        "uuid",
        "report_period_id",
        "cluster_id",
        "cluster_alias",
        "source_uuid",
    ];
    let expected: Vec<&str> = crate::sink::ddl::COLUMNS
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|name| !unit_columns.contains(name))
        .collect();
    let f = every_section(Strings::View, 0);
    let ctx = context(&f, Arc::default());
    let days = DayRange::new(f.start, f.end).unwrap();
    let (pod, storage) = super::plan(&ctx, days, true).await.unwrap();
    let unallocated = super::unallocated::rows(&ctx, Default::default()).await.unwrap();
    let sections = [
        ("Pod", pod),
        ("Storage", storage.unwrap()),
        ("unallocated", unallocated),
    ];
    for (section, df) in sections {
        let names: Vec<&str> = df.schema().fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, expected, "the {section} section's columns");
    }
}
