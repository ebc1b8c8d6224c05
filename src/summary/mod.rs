//! The daily summary: a DataFusion session from the profile, and koku's SQL run on it.
//!
//! This module takes tables of record batches and returns a stream of record batches; it never
//! sees a path or a connection.

pub mod labels;

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};

use crate::config::{CostCategoryPattern, Profile};
use crate::error::Result;
use labels::{EnabledKeys, FilterLabels, MergeLabels};

/// koku's Pod section, with `{{start}}`/`{{end}}` for the day range.
const POD_SQL: &str = include_str!("reporting_ocpusagelineitem_daily_summary_pod.sql");

/// The reference data the summary needs besides the line items.
#[derive(Debug, Clone)]
pub struct Reference {
    pub enabled_keys: EnabledKeys,
    pub cost_categories: Vec<CostCategoryPattern>,
}

/// A DataFusion session sized by the profile, with the label functions registered.
pub fn session(
    profile: &Profile,
    reference: &Reference,
    malformed_labels: Arc<labels::MalformedLabels>,
) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_target_partitions(profile.target_partitions)
        .with_batch_size(profile.batch_size)
        .with_information_schema(false);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(profile.memory_limit_bytes as usize, 1.0)
        .with_temp_file_path(&profile.spill_dir)
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_udf(FilterLabels::udf(
        reference.enabled_keys.clone(),
        malformed_labels,
    ));
    ctx.register_udf(MergeLabels::udf());
    register_cost_categories(&ctx, &reference.cost_categories)?;
    Ok(ctx)
}

fn register_cost_categories(ctx: &SessionContext, patterns: &[CostCategoryPattern]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("namespace", DataType::Utf8, false),
        Field::new("cost_category_id", DataType::Int32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                patterns.iter().map(|p| p.namespace.as_str()),
            )),
            Arc::new(Int32Array::from_iter_values(
                patterns.iter().map(|p| p.cost_category_id),
            )),
        ],
    )?;
    ctx.register_table(
        "reporting_ocp_cost_category_namespace",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

/// `TIMESTAMP 'YYYY-MM-DD 00:00:00'`: a day's start as a SQL literal.
fn day_start_literal(day: NaiveDate) -> String {
    format!("TIMESTAMP '{} 00:00:00'", day.format("%Y-%m-%d"))
}

fn with_day_range(sql: &str, start: NaiveDate, end: NaiveDate) -> String {
    let end_exclusive = end.succ_opt().unwrap_or(end);
    sql.replace("{{start}}", &day_start_literal(start))
        .replace("{{end}}", &day_start_literal(end_exclusive))
}

/// The first day in `start..=end` that has pod usage rows, or `None` when there are none.
/// koku moves the start of the replaced range to it, so a partial upload never wipes days it
/// carries no data for.
pub async fn first_pod_day(
    ctx: &SessionContext,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Option<NaiveDate>> {
    let sql = with_day_range(
        "SELECT CAST(min(interval_start) AS DATE) AS first_day FROM openshift_pod_usage_line_items \
         WHERE interval_start >= {{start}} AND interval_start < {{end}}",
        start,
        end,
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let Some(batch) = batches.first() else {
        return Ok(None);
    };
    let days = batch
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Date32Array>()
        .ok_or_else(|| crate::error::Error::Internal("first_day is not a date".into()))?;
    Ok((!days.is_empty() && !days.is_null(0))
        .then(|| days.value_as_date(0))
        .flatten())
}

/// koku's Pod rows for the day range, as a DataFrame to stream.
pub async fn pod_rows(ctx: &SessionContext, start: NaiveDate, end: NaiveDate) -> Result<DataFrame> {
    Ok(ctx.sql(&with_day_range(POD_SQL, start, end)).await?)
}

#[cfg(test)]
mod tests;
