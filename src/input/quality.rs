//! Malformed rows (SPEC §5): rows of another month and rows with negative or non-finite
//! quantities, counted before anything is written; skipped (the default) or failing the unit.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Date32Type, Int64Type};
use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::input::{Kind, ReportType};

/// Malformed rows of one report type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowProblems {
    /// Rows whose `interval_start` lies outside the unit's month.
    pub other_month: u64,
    /// Rows with a quantity below zero, NaN or infinite.
    pub bad_quantities: u64,
    /// The first day of the checked day range with a row that is not malformed.
    pub first_day: Option<NaiveDate>,
}

impl RowProblems {
    pub fn any(&self) -> bool {
        self.other_month > 0 || self.bad_quantities > 0
    }
}

/// The SQL condition "some quantity of the row is negative or not finite"; null quantities
/// are missing values, not malformed ones.
fn bad_quantity(report: ReportType) -> String {
    let checks: Vec<String> = report
        .columns()
        .iter()
        .filter(|c| c.kind == Kind::Quantity)
        .map(|c| {
            // Two comparisons per value, right under IEEE and under Arrow's total ordering
            // alike: negatives and -inf fail `>= -0.0` (and -0.0 passes it); +inf fails
            // `< inf`; NaN fails one or the other (IEEE: both false; total order: NaN sorts
            // above +inf, or below -inf when its sign bit is set).
            let x = format!("coalesce({}, 0.0)", c.name);
            format!("{x} >= CAST('-0.0' AS DOUBLE) AND {x} < CAST('Infinity' AS DOUBLE)")
        })
        .collect();
    format!("(NOT ({}))", checks.join(" AND "))
}

/// Counts the malformed rows of a registered report table, and finds the first day of `days`
/// (first, last) holding a good row, in the same scan.
pub async fn count(
    ctx: &SessionContext,
    report: ReportType,
    month: (NaiveDate, NaiveDate),
    days: (NaiveDate, NaiveDate),
) -> Result<RowProblems> {
    let ts = crate::summary::day_start_literal;
    let (first, next) = (ts(month.0), ts(month.1));
    let (from, to) = (ts(days.0), ts(days.1.succ_opt().unwrap_or(days.1)));
    let bad = bad_quantity(report);
    let sql = format!(
        "SELECT count(*) FILTER (WHERE interval_start < {first} OR interval_start >= {next}), \
         count(*) FILTER (WHERE {bad}), \
         CAST(min(interval_start) FILTER (WHERE interval_start >= {from} \
             AND interval_start < {to} AND NOT {bad}) AS DATE) \
         FROM {}",
        report.table_name()
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let value = |i: usize| {
        batches
            .first()
            .map(|b| b.column(i).as_primitive::<Int64Type>())
            .filter(|a| !a.is_empty())
            .map_or(0, |a| a.value(0) as u64)
    };
    let first_day = batches
        .first()
        .map(|b| b.column(2).as_primitive::<Date32Type>())
        .filter(|a| !a.is_empty() && !a.is_null(0))
        .and_then(|a| a.value_as_date(0));
    Ok(RowProblems {
        other_month: value(0),
        bad_quantities: value(1),
        first_day,
    })
}

/// Replaces a registered report table with a view that leaves out the rows with a negative or
/// non-finite quantity. (Rows of other months never count: every section filters by day.)
pub async fn skip_bad_quantities(ctx: &SessionContext, report: ReportType) -> Result<()> {
    let name = report.table_name();
    let unchecked = format!("{name}_unchecked");
    if let Some(table) = ctx.deregister_table(name)? {
        ctx.register_table(unchecked.as_str(), table)?;
    }
    ctx.sql(&format!(
        "CREATE VIEW {name} AS SELECT * FROM {unchecked} WHERE NOT {}",
        bad_quantity(report)
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;

    use super::*;

    /// Each value in the first quantity column of a pod usage table (the others 0), and whether
    /// the malformed-row condition calls the row bad.
    #[tokio::test]
    async fn negatives_infinities_and_nans_are_bad_and_zeros_and_nulls_are_not() {
        let cases: [(Option<f64>, bool); 10] = [
            (Some(0.0), false),
            (Some(-0.0), false),
            (Some(3600.0), false),
            (Some(f64::MAX), false),
            (None, false),
            (Some(-1e-300), true),
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
        let columns: Vec<ArrayRef> = (0..quantities.len())
            .map(|i| -> ArrayRef {
                Arc::new(match i {
                    0 => Float64Array::from_iter(cases.iter().map(|(v, _)| *v)),
                    _ => Float64Array::from(vec![0.0; cases.len()]),
                })
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let sql = format!("SELECT {} FROM t", bad_quantity(ReportType::PodUsage));
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let bad: Vec<bool> = batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<BooleanArray>().unwrap();
                a.iter().map(|v| v.unwrap()).collect::<Vec<_>>()
            })
            .collect();
        let expected: Vec<bool> = cases.iter().map(|(_, b)| *b).collect();
        assert_eq!(bad, expected, "{cases:?}");
    }
}
