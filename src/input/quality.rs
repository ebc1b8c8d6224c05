//! Malformed rows: rows of another month, rows with a negative, non-finite or implausibly large
//! quantity and rows whose text time cannot be read, counted before anything is written; skipped (the
//! default) or failing the unit, as `input.bad_rows` says.

use std::sync::Arc;

use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use tracing::{debug, warn};

use crate::config::BadRows;
use crate::error::{Error, Result};
use crate::input::discover::UnitFiles;
use crate::input::inventory::Facts;
use crate::input::schema::FileSpan;
use crate::input::{Kind, ReportType};
use crate::unit::{DayRange, Month, UnitOfWork};

/// Malformed rows of one report type, or of the unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowProblems {
    /// Rows whose `interval_start` lies outside the unit's month.
    pub other_month: u64,
    /// Rows with a quantity below zero, NaN or infinite.
    pub bad_quantities: u64,
    /// Rows whose text `interval_start` is not a readable time.
    pub unparsable_timestamps: u64,
    /// The first day of the checked day range with a pod usage row that is not malformed.
    pub first_day: Option<NaiveDate>,
}

/// What the check found: the malformed rows, and the groups of its scan that the inventory is
/// read from (`inventory::Facts`).
#[derive(Debug, Default)]
pub struct Checked {
    pub problems: RowProblems,
    pub pod_groups: Vec<RecordBatch>,
    pub storage_groups: Vec<RecordBatch>,
}

/// Counts the malformed rows of the unit's registered pod and storage tables and applies
/// `policy`: fail the unit, or leave rows with bad quantities out and warn.
/// `unparsable_timestamps` were counted when the tables were registered. Returns the totals
/// and, from the same scan, the first day of the unit's range with a good pod usage row (koku
/// moves the start of the replaced range to that day, so a partial upload never wipes days it
/// carries no data for) and the groups the inventory is read from.
pub async fn check(
    ctx: &SessionContext,
    files: &UnitFiles,
    unit: &UnitOfWork,
    policy: BadRows,
    unparsable_timestamps: u64,
) -> Result<Checked> {
    let mut problems = Vec::new();
    let mut checked = Checked::default();
    checked.problems.unparsable_timestamps = unparsable_timestamps;
    for report in [ReportType::PodUsage, ReportType::StorageUsage] {
        if files.count(report) == 0 {
            continue;
        }
        let started = Instant::now();
        reported_twice(ctx, files, report).await?;
        let (found, groups) = count(ctx, report, unit.month, unit.days).await?;
        debug!(
            report = report.folder(),
            groups = groups.iter().map(|b| b.num_rows()).sum::<usize>(),
            ms = started.elapsed().as_millis() as u64,
            "counted problem rows"
        );
        let total = &mut checked.problems;
        if report == ReportType::PodUsage {
            total.first_day = found.first_day;
            checked.pod_groups = groups;
        } else {
            checked.storage_groups = groups;
        }
        if found.other_month > 0 {
            problems.push(format!(
                "{}: {} rows outside {}",
                report.folder(),
                found.other_month,
                unit.month
            ));
        }
        if found.bad_quantities > 0 {
            problems.push(format!(
                "{}: {} rows with a negative, non-finite or implausibly large (over 1e18) quantity",
                report.folder(),
                found.bad_quantities
            ));
            if policy == BadRows::Skip {
                skip_bad_quantities(ctx, report).await?;
            }
        }
        total.other_month += found.other_month;
        total.bad_quantities += found.bad_quantities;
    }
    if unparsable_timestamps > 0 {
        problems.push(format!(
            "{unparsable_timestamps} rows with an unreadable interval_start"
        ));
    }
    if problems.is_empty() {
        return Ok(checked);
    }
    match policy {
        BadRows::Fail => Err(Error::BadRows {
            problems: problems.join("; "),
        }),
        BadRows::Skip => {
            warn!(problems = %problems.join("; "), "malformed rows were left out of the summary");
            Ok(checked)
        }
    }
}

/// Fails when two files whose hours overlap (by their footers) report the same hour of the same
/// pod (and node, or claim): the same upload sent twice, which koku has seen double a day's
/// usage. Only the overlapping hours are read, and only when files overlap at all: files of
/// an ordinary month cover hours of their own, and this costs nothing.
async fn reported_twice(ctx: &SessionContext, files: &UnitFiles, report: ReportType) -> Result<()> {
    let spans = files.get(report).map_or(&[][..], |r| &r.spans[..]);
    let key = match report {
        ReportType::StorageUsage => "interval_start, namespace, pod, persistentvolumeclaim",
        _ => "interval_start, namespace, pod, node",
    };
    for (first_ms, last_ms, names) in overlapping(spans) {
        let at = |ms: i64| {
            let t = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .naive_utc();
            format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.3f"))
        };
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {} WHERE interval_start >= {} AND interval_start <= {} \
             GROUP BY {key} HAVING count(*) > 1) AS twice",
            report.table_name(),
            at(first_ms),
            at(last_ms)
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let keys = batches
            .first()
            .map(|b| b.column(0).as_primitive::<Int64Type>())
            .filter(|a| !a.is_empty())
            .map_or(0, |a| a.value(0) as u64);
        if keys > 0 {
            return Err(Error::ReportedTwice {
                report: report.folder().into(),
                key: key.into(),
                keys,
                files: names.join(", "),
            });
        }
    }
    Ok(())
}

/// The windows in which two or more files' hours overlap, each with the files in it.
fn overlapping(spans: &[FileSpan]) -> Vec<(i64, i64, Vec<String>)> {
    let mut sorted: Vec<&FileSpan> = spans.iter().collect();
    sorted.sort_by_key(|s| (s.first_ms, s.last_ms));
    let mut windows: Vec<(i64, i64, Vec<String>)> = Vec::new();
    for (i, a) in sorted.iter().enumerate() {
        for b in sorted[i + 1..].iter().take_while(|b| b.first_ms <= a.last_ms) {
            let (first, last) = (b.first_ms, a.last_ms.min(b.last_ms));
            match windows.last_mut() {
                Some(w) if first <= w.1 => {
                    w.1 = w.1.max(last);
                    for f in [&a.file, &b.file] {
                        if !w.2.contains(f) {
                            w.2.push(f.clone());
                        }
                    }
                }
                _ => windows.push((first, last, vec![a.file.clone(), b.file.clone()])),
            }
        }
    }
    windows
}

/// The SQL condition "some quantity of the row is negative, not finite or over
/// [`QUANTITY_LIMIT`]"; null quantities are missing values, not malformed ones. Registers `koku_bad_quantity` ([`BadQuantity`]),
/// which the condition calls, with `ctx`.
fn bad_quantity(ctx: &SessionContext, report: ReportType) -> String {
    ctx.register_udf(BadQuantity::udf());
    let quantities: Vec<&str> = report
        .columns()
        .iter()
        .filter(|c| c.kind == Kind::Quantity)
        .map(|c| c.name)
        .collect();
    format!("koku_bad_quantity({})", quantities.join(", "))
}

/// The largest plausible quantity: koku drops rows with a byte or second quantity above 1e18
/// at ingest as anomalies (`THRESHOLD_MAP` in `koku/masu/util/ocp/common.py`, koku@768be82),
/// and a summary column is `numeric(33,15)`, which holds nothing from 1e18 up. costagg applies
/// the bound to every quantity (the cores columns too), so a corrupt value is left out and
/// counted instead of ending the write with a numeric overflow.
pub const QUANTITY_LIMIT: f64 = 1e18;

/// `koku_bad_quantity(q, ...) -> boolean`: whether any of the quantities is below zero, NaN,
/// infinite or above [`QUANTITY_LIMIT`] (nulls are none of these; -0.0 is zero). One pass over each column; as SQL (a
/// `coalesce` and two comparisons per column, then a chain of ANDs) it built four arrays per
/// column, and the check reads every pod usage row before the summary starts.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BadQuantity {
    signature: Signature,
}

impl BadQuantity {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(BadQuantity {
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }

    /// A bitmap of the bad values, built a word at a time over slices (no index checks), which
    /// the compiler vectorises; `BooleanBuffer::collect_bool` took ~15 instructions per value.
    fn bad_bits(values: &[f64]) -> BooleanBuffer {
        let words: Vec<u64> = values
            .chunks(64)
            .map(|chunk| {
                (chunk.iter().enumerate())
                    .fold(0, |word, (bit, &v)| word | (u64::from(Self::is_bad(v)) << bit))
            })
            .collect();
        BooleanBuffer::new(Buffer::from_vec(words), 0, values.len())
    }

    /// `!(0.0 <= v && v <= QUANTITY_LIMIT)` on the bits: the bit patterns of +0.0 and the
    /// positive numbers grow with their values, so those up to the limit lie at or below its
    /// pattern; larger ones, +inf, NaNs and every negative (sign bit set) lie above it, except
    /// -0.0, which is zero. As float comparisons the compiler turned this into a classification
    /// of ~25 instructions per value; as integers it is two comparisons and vectorises.
    fn is_bad(v: f64) -> bool {
        const LIMIT: u64 = QUANTITY_LIMIT.to_bits();
        const NEGATIVE_ZERO: u64 = 0x8000_0000_0000_0000;
        let bits = v.to_bits();
        (bits > LIMIT) & (bits != NEGATIVE_ZERO)
    }
}

impl ScalarUDFImpl for BadQuantity {
    fn name(&self) -> &str {
        "koku_bad_quantity"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        // Bitmaps, 64 values to a word: a column's bad values, masked by its valid ones, are
        // or-ed into the row's answer with word-wide operations.
        let mut bad = BooleanBuffer::new_unset(rows);
        for arg in &args.args {
            let array = arg.to_array(rows)?;
            let array = match array.data_type() {
                DataType::Float64 => array,
                _ => cast(&array, &DataType::Float64)?,
            };
            let values = array.as_primitive::<Float64Type>().values();
            let column = Self::bad_bits(values);
            let column = match array.nulls() {
                Some(nulls) => &column & nulls.inner(),
                None => column,
            };
            bad = &bad | &column;
        }
        let out = BooleanArray::new(bad, None);
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Counts the malformed rows of a registered report table, and finds the first day of `days`
/// holding a good row, in one scan; grouped by the inventory's keys for the report
/// (`inventory::Facts`), whose groups, with `kept_rows` (the good rows of `days`) and the
/// inventory's aggregates, are returned beside the totals.
pub async fn count(
    ctx: &SessionContext,
    report: ReportType,
    month: Month,
    days: DayRange,
) -> Result<(RowProblems, Vec<RecordBatch>)> {
    let whole = month.all_days();
    let (first, next) = (whole.start_literal(), whole.end_literal());
    let (from, to) = (days.start_literal(), days.end_literal());
    let facts = Facts::of(report);
    let (keys, columns, aggregates) = match &facts {
        Some(f) => (
            f.keys.join(", "),
            [f.keys, f.columns].concat().join(", "),
            f.aggregates,
        ),
        None => (String::new(), String::new(), ""),
    };
    let (keys_out, columns_in, aggregates) = match facts {
        Some(_) => (
            format!("{keys}, "),
            format!(", {columns}"),
            format!(", {aggregates}"),
        ),
        None => (String::new(), String::new(), String::new()),
    };
    let group_by = if keys.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {keys}")
    };
    let sql = format!(
        "SELECT {keys_out}count(*) FILTER (WHERE interval_start < {first} OR interval_start >= {next}) AS other_month, \
         count(*) FILTER (WHERE bad) AS bad, \
         CAST(min(interval_start) FILTER (WHERE kept) AS DATE) AS first_day, \
         count(*) FILTER (WHERE kept) AS kept_rows{aggregates} \
         FROM (SELECT *, interval_start >= {from} AND interval_start < {to} AND NOT bad AS kept \
               FROM (SELECT interval_start{columns_in}, {} AS bad FROM {}) AS r) AS q{group_by}",
        bad_quantity(ctx, report),
        report.table_name()
    );
    let groups = ctx.sql(&sql).await?.collect().await?;
    Ok((totals(&groups), groups))
}

/// The counts of the scan's groups added up, and the earliest first day.
fn totals(groups: &[RecordBatch]) -> RowProblems {
    let mut found = RowProblems::default();
    for batch in groups {
        let count = |name: &str| -> u64 {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .map_or(0, |a| a.iter().flatten().sum::<i64>() as u64)
        };
        found.other_month += count("other_month");
        found.bad_quantities += count("bad");
        let first = batch
            .column_by_name("first_day")
            .and_then(|c| c.as_primitive_opt::<Date32Type>())
            .and_then(|a| {
                (0..a.len())
                    .filter(|&i| a.is_valid(i))
                    .filter_map(|i| a.value_as_date(i))
                    .min()
            });
        found.first_day = match (found.first_day, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    found
}

/// Replaces a registered report table with a view that leaves out the rows with a bad quantity
/// (negative, non-finite or over [`QUANTITY_LIMIT`]). (Rows of other months never count: every section filters by day.)
pub async fn skip_bad_quantities(ctx: &SessionContext, report: ReportType) -> Result<()> {
    let name = report.table_name();
    let unchecked = format!("{name}_unchecked");
    if let Some(table) = ctx.deregister_table(name)? {
        ctx.register_table(unchecked.as_str(), table)?;
    }
    ctx.sql(&format!(
        "CREATE VIEW {name} AS SELECT * FROM {unchecked} WHERE NOT {}",
        bad_quantity(ctx, report)
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod overlap_tests {
    use super::*;

    fn span(file: &str, first_h: i64, last_h: i64) -> FileSpan {
        FileSpan {
            file: file.into(),
            first_ms: first_h * 3_600_000,
            last_ms: last_h * 3_600_000,
        }
    }

    #[test]
    fn only_files_whose_hours_overlap_are_read_again_and_only_those_hours() {
        // Half-days of their own, as koku's files and the generator's are: nothing to read.
        let own = [span("a0", 0, 11), span("a1", 12, 23), span("b0", 24, 35)];
        assert!(overlapping(&own).is_empty());
        // A copy of a1 (hours 12..23) and a file spanning hours 30..40 over b0 (24..35).
        let twice = [
            span("a0", 0, 11),
            span("a1", 12, 23),
            span("a1 copy", 12, 23),
            span("b0", 24, 35),
            span("late", 30, 40),
        ];
        let windows = overlapping(&twice);
        let hours: Vec<(i64, i64)> = windows
            .iter()
            .map(|w| (w.0 / 3_600_000, w.1 / 3_600_000))
            .collect();
        assert_eq!(hours, [(12, 23), (30, 35)]);
        assert_eq!(windows[0].2, ["a1", "a1 copy"]);
        assert_eq!(windows[1].2, ["b0", "late"]);
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch};
    use datafusion::arrow::buffer::NullBuffer;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;

    use super::*;

    /// Each value in a quantity column of a pod usage table (the first, then the last; the
    /// others 0), and whether the malformed-row condition calls the row bad.
    #[tokio::test]
    async fn negatives_infinities_nans_and_values_over_1e18_are_bad_and_zeros_and_nulls_are_not() {
        let cases: [(Option<f64>, bool); 15] = [
            (Some(0.0), false),
            (Some(5e-324), false),
            (Some(-0.0), false),
            (Some(3600.0), false),
            (Some(1e18), false),
            (None, false),
            // The next f64 above 1e18.
            (Some(1e18 + 128.0), true),
            (Some(1.5e308), true),
            (Some(f64::MAX), true),
            (Some(-1e-300), true),
            (Some(f64::MIN), true),
            (Some(f64::NEG_INFINITY), true),
            (Some(f64::INFINITY), true),
            (Some(f64::NAN), true),
            (Some(-f64::NAN), true),
        ];
        let quantities: Vec<&str> = ReportType::PodUsage
            .columns()
            .iter()
            .filter(|c| c.kind == Kind::Quantity)
            .map(|c| c.name)
            .collect();
        let fields: Vec<Field> = quantities
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true))
            .collect();
        let expected: Vec<bool> = cases.iter().map(|(_, b)| *b).collect();
        // The values in the first quantity column, then in the last (the others 0).
        for target in [0, quantities.len() - 1] {
            let columns: Vec<ArrayRef> = (0..quantities.len())
                .map(|i| -> ArrayRef {
                    Arc::new(match i == target {
                        // A null's slot holds NaN: the nulls must be masked, not read.
                        true => Float64Array::new(
                            cases.iter().map(|(v, _)| v.unwrap_or(f64::NAN)).collect(),
                            Some(NullBuffer::from_iter(cases.iter().map(|(v, _)| v.is_some()))),
                        ),
                        false => Float64Array::from(vec![0.0; cases.len()]),
                    })
                })
                .collect();
            let schema = Arc::new(Schema::new(fields.clone()));
            let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
            let ctx = SessionContext::new();
            let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
            ctx.register_table("t", Arc::new(table)).unwrap();
            let sql = format!("SELECT {} FROM t", bad_quantity(&ctx, ReportType::PodUsage));
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let bad: Vec<bool> = batches
                .iter()
                .flat_map(|b| {
                    let a = b.column(0).as_any().downcast_ref::<BooleanArray>().unwrap();
                    a.iter().map(|v| v.unwrap()).collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(bad, expected, "column {}: {cases:?}", quantities[target]);
        }
    }
}
