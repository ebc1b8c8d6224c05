//! The run report: what a run read and wrote, how long each stage took, and peak memory; and
//! the dry run's preview of per-day, per-namespace totals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use datafusion::arrow::array::{Array, AsArray, Date32Array, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::DataType;
use serde::Serialize;

use crate::error::Result;
use crate::sink::KokuTablesOutcome;
use crate::summary::column_as;
use crate::unit::UnitOfWork;

/// Files and rows of one report type.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct InputCount {
    pub files: usize,
    /// Rows in the files (every day in them), from their footers.
    pub rows: u64,
}

/// The nodes, namespaces and volume claims of the input (`reference::Inventory`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct InventoryCount {
    pub nodes: usize,
    pub projects: usize,
    pub pvcs: usize,
}

/// The same fields are printed as a table on a terminal, logged as one JSON event and written
/// with `--report`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub source: String,
    pub month: String,
    pub start_date: String,
    pub end_date: String,
    /// First day with pod usage rows: the replaced range starts here.
    pub first_day: String,
    /// Days from `first_day` to `end_date`.
    pub days: u32,
    pub schema: String,
    pub cluster_id: String,
    pub profile: String,
    /// The run summarised without writing (`--dry-run`).
    pub dry_run: bool,
    /// Per report type folder (`pod_usage`, `storage_usage`, …).
    pub input: BTreeMap<String, InputCount>,
    pub rows_deleted: u64,
    /// Rows written to PostgreSQL (with `--dry-run`: rows summarised).
    pub rows_written: u64,
    /// Rows by kind: koku's Pod section, Storage section and unallocated capacity
    /// (`data_source` 'Pod' too).
    pub pod_rows: u64,
    pub storage_rows: u64,
    pub unallocated_rows: u64,
    /// Distinct label strings that were not a JSON object of scalars (read as `{}`).
    pub malformed_labels: u64,
    /// Rows whose text `interval_start` could not be read (skipped).
    pub unparsable_timestamps: u64,
    /// Rows of pod or storage files dated outside the unit's month (never summarised).
    pub other_month_rows: u64,
    /// Rows with a negative, non-finite or implausibly large (over 1e18) quantity (left out of
    /// the summary).
    pub bad_quantity_rows: u64,
    pub table_created: bool,
    /// What the line items say about the cluster (distinct nodes, namespaces, claims).
    pub inventory: InventoryCount,
    /// What the write added to koku's tables around the summary (absent in a dry run).
    pub koku_tables: Option<KokuTablesOutcome>,
    /// Listing the files and checking their schemas.
    pub check_ms: u64,
    /// Connecting and reading the reference tables.
    pub reference_ms: u64,
    /// Scan, summary and COPY, streamed together, to commit.
    pub summarize_write_ms: u64,
    pub total_ms: u64,
    /// Pod usage rows read per second of `summarize_write_ms`.
    pub pod_rows_per_second: u64,
    pub peak_rss_bytes: Option<u64>,
    /// The memory limit the run lives under (cgroup, else host).
    pub memory_limit_bytes: u64,
    /// The digest of the files the run read, as listed: paths, sizes, versions
    /// (`fingerprint::of_files`); a sweep stores it with the write.
    pub input_fingerprint: String,
    /// The digest of the enabled tag keys and cost categories the run used
    /// (`fingerprint::of_settings`).
    pub settings_fingerprint: String,
}

impl RunReport {
    /// A report of `unit` with what is known before the run starts; each step records the rest.
    pub fn start(unit: &UnitOfWork, profile: &str, dry_run: bool) -> Self {
        RunReport {
            source: unit.source.to_string(),
            month: unit.month.to_string(),
            start_date: unit.days.first().to_string(),
            end_date: unit.days.last().to_string(),
            schema: unit.schema.to_string(),
            profile: profile.to_string(),
            dry_run,
            ..Default::default()
        }
    }

    /// The input's nodes, projects and claims, and what koku's tables gained.
    fn cluster_line(&self) -> String {
        let i = &self.inventory;
        let mut line = format!(
            "{} nodes, {} projects, {} claims in the input",
            i.nodes, i.projects, i.pvcs
        );
        if let Some(k) = &self.koku_tables {
            let period = match (k.report_period_id, k.report_period_created) {
                (Some(id), true) => format!("report period {id} created, "),
                _ => String::new(),
            };
            line.push_str(&format!(
                "; koku's tables: {period}{} cluster, {} nodes, {} claims, {} projects created; {} nodes, {} claims updated",
                k.clusters_created, k.nodes_created, k.pvcs_created, k.projects_created, k.nodes_updated, k.pvcs_updated
            ));
        }
        line
    }

    /// A short table for a terminal.
    pub fn table(&self) -> String {
        let mib = |b: u64| format!("{:.0} MiB", b as f64 / 1_048_576.0);
        let mut lines: Vec<(&str, String)> = vec![
            (
                "unit",
                format!(
                    "source {} month {} days {}..{} ({} days)",
                    self.source, self.month, self.first_day, self.end_date, self.days
                ),
            ),
            (
                "written to",
                format!("{} (cluster {})", self.schema, self.cluster_id),
            ),
        ];
        for (folder, count) in &self.input {
            if count.files > 0 {
                lines.push((
                    "read",
                    format!("{folder}: {} rows in {} files", count.rows, count.files),
                ));
            }
        }
        let verb = if self.dry_run {
            "summarised (dry run)"
        } else {
            "written"
        };
        lines.push((
            verb,
            format!(
                "{} rows: {} Pod, {} Storage, {} unallocated; {} deleted",
                self.rows_written, self.pod_rows, self.storage_rows, self.unallocated_rows, self.rows_deleted
            ),
        ));
        lines.push(("cluster", self.cluster_line()));
        lines.push((
            "time",
            format!(
                "{:.2} s total: check {} ms, reference {} ms, summarise+write {} ms ({} pod rows/s)",
                self.total_ms as f64 / 1000.0,
                self.check_ms,
                self.reference_ms,
                self.summarize_write_ms,
                self.pod_rows_per_second
            ),
        ));
        lines.push((
            "memory",
            format!(
                "peak RSS {} of a {} limit; profile {}",
                self.peak_rss_bytes.map_or("unknown".into(), mib),
                mib(self.memory_limit_bytes),
                self.profile
            ),
        ));
        let anomalies = [
            (self.malformed_labels, "malformed label strings read as {}"),
            (self.unparsable_timestamps, "rows with an unreadable time skipped"),
            (self.other_month_rows, "rows of another month skipped"),
            (
                self.bad_quantity_rows,
                "rows with a negative, non-finite or over-1e18 quantity skipped",
            ),
        ];
        let found: Vec<String> = anomalies
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if !found.is_empty() {
            lines.push(("anomalies", found.join(", ")));
        }
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in lines {
            let _ = writeln!(out, "  {key:>width$}  {value}");
        }
        out
    }
}

/// Totals of one (day, namespace) in a dry run's preview.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PreviewRow {
    pub day: String,
    /// `None` for unallocated rows of nodes without a known role.
    pub namespace: Option<String>,
    pub rows: u64,
    pub cpu_core_hours: f64,
    pub memory_gigabyte_hours: f64,
    pub pvc_capacity_gigabyte_months: f64,
}

/// Per (day, namespace) totals of summary batches, gathered as they stream past.
#[derive(Debug, Default)]
pub struct Preview(BTreeMap<(i32, Option<String>), PreviewRow>);

impl Preview {
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let days = column_as(batch, "usage_start", &DataType::Date32)?;
        let days = days
            .as_any()
            .downcast_ref::<Date32Array>()
            .expect("cast to Date32");
        let namespaces = column_as(batch, "namespace", &DataType::Utf8)?;
        let namespaces: &StringArray = namespaces.as_string::<i32>();
        let number = |name| -> Result<Float64Array> {
            let a = column_as(batch, name, &DataType::Float64)?;
            Ok(a.as_primitive().clone())
        };
        let cpu = number("pod_usage_cpu_core_hours")?;
        let memory = number("pod_usage_memory_gigabyte_hours")?;
        let capacity = number("persistentvolumeclaim_capacity_gigabyte_months")?;
        let value = |a: &Float64Array, i| if a.is_valid(i) { a.value(i) } else { 0.0 };
        for i in 0..batch.num_rows() {
            let namespace = namespaces.is_valid(i).then(|| namespaces.value(i).to_string());
            let row = self
                .0
                .entry((days.value(i), namespace))
                .or_insert_with_key(|(_, ns)| PreviewRow {
                    day: days.value_as_date(i).map(|d| d.to_string()).unwrap_or_default(),
                    namespace: ns.clone(),
                    ..Default::default()
                });
            row.rows += 1;
            row.cpu_core_hours += value(&cpu, i);
            row.memory_gigabyte_hours += value(&memory, i);
            row.pvc_capacity_gigabyte_months += value(&capacity, i);
        }
        Ok(())
    }

    /// The first `limit` (day, namespace) rows as a table, then the count left out and the
    /// totals; `limit` 0 prints every row.
    pub fn table(&self, limit: usize) -> String {
        let mut out = format!(
            "{:<10}  {:<40}  {:>7}  {:>14}  {:>14}  {:>14}\n",
            "day", "namespace", "rows", "cpu core-h", "memory GiB-h", "PVC GiB-months"
        );
        let line = |out: &mut String, day: &str, ns: &str, r: &PreviewRow| {
            let _ = writeln!(
                out,
                "{day:<10}  {ns:<40}  {:>7}  {:>14.3}  {:>14.3}  {:>14.3}",
                r.rows, r.cpu_core_hours, r.memory_gigabyte_hours, r.pvc_capacity_gigabyte_months
            );
        };
        let shown = if limit == 0 { self.0.len() } else { limit };
        let mut total = PreviewRow::default();
        for (i, r) in self.0.values().enumerate() {
            if i < shown {
                line(&mut out, &r.day, r.namespace.as_deref().unwrap_or("(no role)"), r);
            }
            total.rows += r.rows;
            total.cpu_core_hours += r.cpu_core_hours;
            total.memory_gigabyte_hours += r.memory_gigabyte_hours;
            total.pvc_capacity_gigabyte_months += r.pvc_capacity_gigabyte_months;
        }
        if self.0.len() > shown {
            let _ = writeln!(
                out,
                "… {} more (day, namespace) rows; --preview-rows 0 prints them all",
                self.0.len() - shown
            );
        }
        line(&mut out, "total", "", &total);
        out
    }
}
