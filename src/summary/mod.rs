//! The daily summary: a DataFusion session from the profile, and koku's SQL run on it.
//!
//! This module takes tables of record batches and returns a stream of record batches; it never
//! sees a path or a connection.

pub mod cost_category;
pub mod date;
pub mod labels;
pub mod max_text;
pub mod unallocated;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::config::{BadRows, Profile};
use crate::error::{Error, Result};
use crate::reference::{NodeRole, Reference, RolesAfterWrite};
use crate::unit::{DayRange, Month};
use cost_category::CostCategory;
use labels::{FilterLabels, MalformedLabels, MergeLabels};
use unallocated::NodeTotals;

/// koku's label CTEs as views, with `{{start}}`/`{{end}}` for the day range.
const LABEL_VIEWS_SQL: &str = include_str!("cte_ocp_label_line_items_daily.sql");
/// koku's Pod section, with `{{start}}`/`{{end}}` for the day range.
const POD_SQL: &str = include_str!("reporting_ocpusagelineitem_daily_summary_pod.sql");
/// koku's Storage section, with the day range and `{{days_in_month}}`.
const STORAGE_SQL: &str = include_str!("reporting_ocpusagelineitem_daily_summary_storage.sql");

/// A DataFusion session sized by the profile, with the summary's functions (labels, cost
/// categories, dates, `koku_max_text`) and koku's node roles registered. (The input registers
/// its own functions with its tables.)
pub fn session(
    profile: &Profile,
    reference: &Reference,
    malformed_labels: Arc<labels::MalformedLabels>,
) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_target_partitions(profile.target_partitions)
        .with_batch_size(profile.batch_size)
        .with_information_schema(false);
    // A fair pool: the Pod section runs two spillable aggregations at once (by raw labels, then
    // by merged labels). Under the greedy pool the second one took nearly all of the budget and
    // the first failed instead of spilling (seen at 100M rows under the `small` profile).
    let pool = FairSpillPool::new(profile.memory_limit_bytes as usize);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(TrackConsumersPool::new(
            pool,
            std::num::NonZeroUsize::new(5).expect("5 is not zero"),
        )))
        .with_temp_file_path(&profile.spill_dir)
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_udf(FilterLabels::udf(
        reference.enabled_keys.clone(),
        malformed_labels,
    ));
    ctx.register_udf(MergeLabels::udf());
    ctx.register_udf(date::KokuDate::udf());
    ctx.register_udaf(max_text::MaxText::udaf());
    ctx.register_udf(CostCategory::udf(&reference.cost_categories));
    register_node_roles(&ctx, &reference.node_roles)?;
    Ok(ctx)
}

/// koku's `reporting_ocp_nodes` (the columns the unallocated SQL reads).
fn register_node_roles(ctx: &SessionContext, roles: &[NodeRole]) -> Result<()> {
    let schema = Arc::new(Schema::new(
        ["node", "resource_id", "node_role"]
            .map(|n| Field::new(n, DataType::Utf8, false))
            .to_vec(),
    ));
    let column = |f: fn(&NodeRole) -> &str| Arc::new(StringArray::from_iter_values(roles.iter().map(f))) as _;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            column(|r| &r.node),
            column(|r| &r.resource_id),
            column(|r| &r.node_role),
        ],
    )?;
    // The sink's roles replace those the session was opened with (`RolesAfterWrite`).
    ctx.deregister_table("reporting_ocp_nodes")?;
    ctx.register_table(
        "reporting_ocp_nodes",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

/// A column of a summary batch, by name, cast to `to` (a no-op when it already is). Every
/// section yields the same columns, so a missing one is a bug.
pub fn column_as(
    batch: &RecordBatch,
    name: &str,
    to: &DataType,
) -> Result<datafusion::arrow::array::ArrayRef> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("summary rows lack the column {name}")))?;
    Ok(datafusion::arrow::compute::cast(array, to)?)
}

fn with_day_range(sql: &str, days: DayRange) -> String {
    sql.replace("{{start}}", &days.start_literal())
        .replace("{{end}}", &days.end_literal())
}

/// Rows of each kind a summary stream has yielded so far.
#[derive(Debug, Default)]
pub struct RowCounts {
    pub pod: AtomicU64,
    pub storage: AtomicU64,
    pub unallocated: AtomicU64,
}

impl RowCounts {
    fn counter(
        counter: fn(&RowCounts) -> &AtomicU64,
        counts: &Arc<RowCounts>,
    ) -> impl FnMut(&RecordBatch) + use<> {
        let counts = counts.clone();
        move |b| {
            counter(&counts).fetch_add(b.num_rows() as u64, Ordering::Relaxed);
        }
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// koku's daily summary of a day range as one stream of batches, all with the same columns
/// (`data_source` and onwards of the summary table, without the unit's constants).
pub struct DailySummary {
    pub rows: BoxStream<'static, Result<RecordBatch>>,
    pub counts: Arc<RowCounts>,
}

/// What the summary does with label JSON that is not an object of scalars: with
/// `BadRows::Fail`, its stream ends with an error once the labels have been read, so a sink
/// that commits only after the stream's end (as `sink::replace_unit` does) writes nothing.
pub struct LabelGate {
    pub malformed: Arc<MalformedLabels>,
    pub policy: BadRows,
}

/// koku's daily summary of `days`: the Pod rows, then the Storage rows (only when `storage`,
/// like koku's `{% if storage_exists %}`), then the Unallocated rows, which koku computes
/// from the Pod rows and costagg from their totals gathered as they stream past. The stream
/// ends with an error when `gate` says malformed labels fail the unit.
///
/// costagg: with `days_per_pass`, the Pod and Storage sections run for that many days at a
/// time, one pass after the other, and each pass's rows stream out (to PostgreSQL) while the
/// next pass is summarised; the unallocated rows follow the last pass. Every rule of the
/// summary is per day (koku groups by `usage_start` throughout), so the rows are the same as
/// in one pass. The first pass is planned here, so SQL errors show before anything is written.
/// The unallocated rows take the node roles from `roles` when the sink has filled it by then,
/// else those the session was opened with.
pub async fn daily_summary(
    ctx: &SessionContext,
    days: DayRange,
    storage: bool,
    days_per_pass: u32,
    gate: LabelGate,
    roles: RolesAfterWrite,
) -> Result<DailySummary> {
    let passes = days.chunks(days_per_pass);
    tracing::info!(days_per_pass, passes = passes.len(), "summarising");
    let mut passes = passes.into_iter();
    let first = plan(ctx, passes.next().unwrap_or(days), storage).await?;
    let later = {
        let ctx = ctx.clone();
        stream::iter(passes).then(move |pass| {
            let ctx = ctx.clone();
            async move {
                tracing::debug!(days = %pass, "planning a pass");
                plan(&ctx, pass, storage).await
            }
        })
    };
    let counts = Arc::new(RowCounts::default());
    let totals = Arc::new(Mutex::new(NodeTotals::default()));
    let sections = {
        let (counts, totals) = (counts.clone(), totals.clone());
        stream::once(futures::future::ready(Ok(first)))
            .chain(later)
            .map_ok(move |(pod, storage)| pass_rows(pod, storage, &counts, &totals))
            .try_flatten()
    };
    let ctx = ctx.clone();
    let unallocated = stream::once(async move {
        let totals = std::mem::take(
            &mut *totals
                .lock()
                .map_err(|_| Error::Internal("node totals lock poisoned".into()))?,
        );
        if let Some(roles) = roles.take() {
            // The nodes table as the sink's transaction left it (`RolesAfterWrite`).
            register_node_roles(&ctx, &roles)?;
        }
        Ok::<_, Error>(execute_later(unallocated::rows(&ctx, totals).await?))
    })
    .try_flatten()
    .inspect_ok(RowCounts::counter(|c| &c.unallocated, &counts));
    Ok(DailySummary {
        rows: sections.chain(unallocated).chain(gate.check()).boxed(),
        counts,
    })
}

impl LabelGate {
    /// A stream that, polled once every label has been read, yields the error of
    /// `BadRows::Fail` when there were malformed labels, and nothing otherwise.
    fn check(self) -> impl Stream<Item = Result<RecordBatch>> + Send + 'static {
        stream::once(async move {
            match self.malformed.count() {
                n if self.policy == BadRows::Fail && n > 0 => Some(Err(Error::BadRows {
                    problems: format!(
                        "{n} distinct label strings are not a JSON object of scalars (e.g. {:?})",
                        self.malformed.examples(2)
                    ),
                })),
                _ => None,
            }
        })
        .filter_map(futures::future::ready)
    }
}

/// The rows of one pass: its Pod rows, whose totals go into `totals`, then its Storage rows.
fn pass_rows(
    pod: DataFrame,
    storage: Option<DataFrame>,
    counts: &Arc<RowCounts>,
    totals: &Arc<Mutex<NodeTotals>>,
) -> BoxStream<'static, Result<RecordBatch>> {
    let pod_totals = totals.clone();
    let pod = execute_later(pod)
        .and_then(move |b| {
            let added = pod_totals
                .lock()
                .map_err(|_| Error::Internal("node totals lock poisoned".into()))
                .and_then(|mut t| t.add(&b));
            futures::future::ready(added.map(|()| b))
        })
        .inspect_ok(RowCounts::counter(|c| &c.pod, counts));
    let storage = match storage {
        Some(df) => execute_later(df).boxed(),
        None => stream::empty().boxed(),
    }
    .inspect_ok(RowCounts::counter(|c| &c.storage, counts));
    pod.chain(storage).boxed()
}

/// The Pod and (when `storage`) Storage sections as DataFrames, with the label views
/// registered for the day range.
async fn plan(ctx: &SessionContext, days: DayRange, storage: bool) -> Result<(DataFrame, Option<DataFrame>)> {
    script(ctx, &with_day_range(LABEL_VIEWS_SQL, days)).await?;
    let pod = script(ctx, &with_day_range(POD_SQL, days))
        .await?
        .ok_or_else(|| Error::Internal("the Pod section has no query".into()))?;
    let storage = match storage {
        true => {
            let days_in_month = Month::of(days.first()).days();
            let sql =
                with_day_range(STORAGE_SQL, days).replace("{{days_in_month}}", &days_in_month.to_string());
            Some(
                script(ctx, &sql)
                    .await?
                    .ok_or_else(|| Error::Internal("the Storage section has no query".into()))?,
            )
        }
        false => None,
    };
    Ok((pod, storage))
}

/// Runs the statements of a SQL file in order (`CREATE VIEW`, and `CREATE TABLE ... AS`, which
/// DataFusion runs at once into memory) and returns the last one's DataFrame when it is a query.
/// Statements end with `;`; `--` comments are dropped first, so they may hold any text.
async fn script(ctx: &SessionContext, sql: &str) -> Result<Option<DataFrame>> {
    let code: String = sql
        .lines()
        .map(|l| l.find("--").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let mut last = None;
    for statement in code.split(';').filter(|s| !s.trim().is_empty()) {
        let started = std::time::Instant::now();
        last = Some(ctx.sql(statement).await?);
        let first_line = statement.trim().lines().next().unwrap_or_default();
        tracing::debug!(
            statement = first_line,
            ms = started.elapsed().as_millis() as u64,
            "ran"
        );
    }
    Ok(last)
}

/// The physical plans of the Pod and Storage sections, as `EXPLAIN` prints them, or run and
/// with their metrics (`analyze`, `EXPLAIN ANALYZE`), for the whole range in one pass (a run in
/// passes runs the same plans over fewer days each). (The unallocated section is planned once
/// the Pod rows' totals exist; it reads only those.)
pub async fn explain(ctx: &SessionContext, days: DayRange, storage: bool, analyze: bool) -> Result<String> {
    let (pod, storage) = plan(ctx, days, storage).await?;
    let mut out = String::new();
    for (section, df) in [("Pod", Some(pod)), ("Storage", storage)] {
        let Some(df) = df else {
            out.push_str(&format!("-- {section} section: no storage files, not run\n\n"));
            continue;
        };
        let batches = df.explain(false, analyze)?.collect().await?;
        let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)?;
        out.push_str(&format!("-- {section} section\n{table}\n\n"));
    }
    Ok(out)
}

/// The batches of `df`, executed when first polled.
fn execute_later(df: DataFrame) -> impl Stream<Item = Result<RecordBatch>> + Send + 'static {
    stream::once(async move { Ok::<_, Error>(df.execute_stream().await?.map_err(Error::from)) }).try_flatten()
}

#[cfg(test)]
mod tests;
