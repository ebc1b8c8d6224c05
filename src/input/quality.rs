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
            let x = format!("coalesce({}, 0.0)", c.name);
            // `< -0.0` catches every negative number and -inf under IEEE and total ordering.
            format!("{x} < CAST('-0.0' AS DOUBLE) OR isnan({x}) OR {x} = CAST('Infinity' AS DOUBLE)")
        })
        .collect();
    format!("({})", checks.join(" OR "))
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
