//! `costagg verify`: a unit's per-day totals from its Parquet input against what the summary
//! table holds for its source, as koku checks its PostgreSQL tables against Trino.
//!
//! koku's `DataValidator` (koku@768be82535f8e75523d966b4797e954ad054b52f,
//! `koku/masu/processor/_tasks/data_validation.py`) sums `pod_effective_usage_cpu_core_hours`
//! per `usage_start` for the source on both sides and flags each day whose sums differ by more
//! than 1, or which PostgreSQL lacks. costagg compares that quantity and three more, and its
//! input side is the line items themselves, selected as the summary's SQL selects them, so a
//! correct write verifies clean.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;
use tracing::{info, warn};

use crate::config::{Config, Profile};
use crate::error::{Error, Result};
use crate::input::ReportType;
use crate::input::discover::UnitFiles;
use crate::input::store::InputStore;
use crate::sink::ddl::SUMMARY_TABLE;
use crate::sink::{self, quote_ident};
use crate::summary::unallocated::EXCLUDED_NAMESPACES;
use crate::unit::{DayRange, Month, UnitOfWork};

/// koku's tolerance: `DataValidator.compare_data(pg_data, trino_data, tolerance=1)` accepts a
/// day whose two sums differ by at most 1 (koku@768be82535f8e75523d966b4797e954ad054b52f,
/// `koku/masu/processor/_tasks/data_validation.py`). costagg applies it to each quantity in
/// that quantity's own unit (core-hours, GiB-hours, GiB-months).
pub const KOKU_TOLERANCE: f64 = 1.0;

/// What `verify` compares: the unit (its whole month), its input, the config (the input's row
/// checks, the database), the profile (the engine's size), the database and the tolerance.
/// (No `Debug`: the URL may hold a password.)
#[derive(Clone)]
pub struct VerifyRequest {
    pub unit: UnitOfWork,
    pub input: InputStore,
    pub config: Config,
    pub profile: Profile,
    pub database_url: String,
    /// The largest difference of a day's totals that counts as agreement.
    pub tolerance: f64,
}

/// A quantity compared per day, named by its column in the summary table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Pod CPU usage.
    PodUsageCpuCoreHours,
    /// koku's own: usage, or the request when it is larger, unless the operator reports one.
    PodEffectiveUsageCpuCoreHours,
    /// Pod memory usage.
    PodUsageMemoryGigabyteHours,
    /// The claims' capacity over the day, as a share of the month.
    PersistentvolumeclaimCapacityGigabyteMonths,
}

impl Quantity {
    /// The Pod quantities, in the order of the Pod queries' columns.
    const POD: [Quantity; 3] = [
        Quantity::PodUsageCpuCoreHours,
        Quantity::PodEffectiveUsageCpuCoreHours,
        Quantity::PodUsageMemoryGigabyteHours,
    ];

    /// The Storage quantities, in the order of the Storage queries' columns.
    const STORAGE: [Quantity; 1] = [Quantity::PersistentvolumeclaimCapacityGigabyteMonths];

    /// The summary table's column.
    pub fn column(self) -> &'static str {
        match self {
            Quantity::PodUsageCpuCoreHours => "pod_usage_cpu_core_hours",
            Quantity::PodEffectiveUsageCpuCoreHours => "pod_effective_usage_cpu_core_hours",
            Quantity::PodUsageMemoryGigabyteHours => "pod_usage_memory_gigabyte_hours",
            Quantity::PersistentvolumeclaimCapacityGigabyteMonths => {
                "persistentvolumeclaim_capacity_gigabyte_months"
            }
        }
    }
}

/// Per (day, quantity) sums of one side.
type Totals = BTreeMap<(NaiveDate, Quantity), f64>;

/// One day's total of one quantity on both sides.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayCheck {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub quantity: Quantity,
    /// `None`: no line item of the day counts for the quantity.
    pub input: Option<f64>,
    /// `None`: the table has no row of the day for it.
    pub table: Option<f64>,
    /// table − input; `None` when one side lacks the day.
    pub difference: Option<f64>,
    /// Both sides have the day and differ by at most the tolerance.
    pub ok: bool,
}

/// The comparison of a unit's input with its rows in the table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verification {
    pub source: String,
    pub month: String,
    /// The input root, as the user would write it.
    pub input: String,
    /// The summary table, schema-qualified.
    pub table: String,
    pub table_exists: bool,
    pub tolerance: f64,
    pub compared: usize,
    pub drifted: usize,
    /// By day, then quantity.
    pub days: Vec<DayCheck>,
}

/// Sums the unit's input per day, then its rows in the table, and compares them. Input
/// problems fail as a run's would (exit 3), before the database is reached.
pub async fn verify(req: &VerifyRequest) -> Result<Verification> {
    let unit = &req.unit;
    info!(source = %unit.source, month = %unit.month, schema = %unit.schema, tolerance = req.tolerance, "verify started");
    let input = input_totals(req).await?;
    let client = sink::connect(&req.database_url, &req.config.database).await?;
    let table = table_totals(&client, unit).await?;
    if table.is_none() {
        warn!(schema = %unit.schema, "the summary table does not exist: every day with input drifts");
    }
    let verification = Verification::compare(req, input, table);
    info!(
        compared = verification.compared,
        drifted = verification.drifted,
        "verified"
    );
    Ok(verification)
}

/// The input's per-day totals: the unit's files listed, checked and registered as a run does
/// them, the malformed rows counted and handled as `input.bad_rows` says, then summed over the
/// days a run summarises.
async fn input_totals(req: &VerifyRequest) -> Result<Totals> {
    let files = crate::input::discover::discover(&req.input, &req.config.input, &req.unit).await?;
    let ctx = session(&req.profile)?;
    let work = async {
        let unparsable = files.register(&ctx, &req.input, req.profile.strings).await?;
        let policy = req.config.input.bad_rows;
        let checked = crate::input::quality::check(&ctx, &files, &req.unit, policy, unparsable).await?;
        let days = summarised_days(req, checked.problems.first_day)?;
        let mut totals = sums(&ctx, &input_pod_sql(days), &Quantity::POD).await?;
        totals.extend(sums(&ctx, &input_storage_sql(days), &Quantity::STORAGE).await?);
        Ok(totals)
    };
    located(&req.input, &files, work).await
}

/// A DataFusion session sized by the profile, as the summary's is.
fn session(profile: &Profile) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_target_partitions(profile.target_partitions)
        .with_batch_size(profile.batch_size)
        .with_information_schema(false);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(profile.memory_limit_bytes as usize)))
        .with_temp_file_path(&profile.spill_dir)
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// The days a run summarises: from the first day of the month with a good pod usage row to
/// its end (a run's Storage rows start there too).
fn summarised_days(req: &VerifyRequest, first_day: Option<NaiveDate>) -> Result<DayRange> {
    let days = req.unit.days;
    let first_day = first_day.ok_or_else(|| Error::NoRowsInRange {
        start: days.first().to_string(),
        end: days.last().to_string(),
        searched: req.input.display(&req.input.location("")),
    })?;
    Ok(days.starting(first_day))
}

/// `work`'s result; when it failed decoding the input's Parquet data, with the files and
/// columns it failed on (`input::locate`), as a run reports them.
async fn located<T>(
    store: &InputStore,
    files: &UnitFiles,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let e = match work.await {
        Err(e) if crate::input::locate::is_decode_error(&e) => e,
        other => return other,
    };
    let mut problems = crate::input::locate::unreadable(store, files).await;
    Err(match problems.len() {
        0 => e,
        1 => problems.remove(0),
        _ => Error::InputProblems(problems),
    })
}

/// The pod usage line items the Pod section summarises (its day range, and `li.node != ''`),
/// summed per day into the units of `Quantity::POD`, converted as the section converts them.
fn input_pod_sql(days: DayRange) -> String {
    format!(
        "SELECT CAST(interval_start AS DATE) AS day, \
         sum(pod_usage_cpu_core_seconds) / 3600.0, \
         sum(coalesce(pod_effective_usage_cpu_core_seconds, \
             greatest(pod_usage_cpu_core_seconds, pod_request_cpu_core_seconds))) / 3600.0, \
         sum(pod_usage_memory_byte_seconds) / 3600.0 * power(2.0, -30) \
         FROM {} WHERE interval_start >= {} AND interval_start < {} AND node != '' \
         GROUP BY CAST(interval_start AS DATE)",
        ReportType::PodUsage.table_name(),
        days.start_literal(),
        days.end_literal()
    )
}

/// The storage line items the Storage section summarises (its day range), their claims'
/// capacity summed per day into gigabyte-months as the section computes them.
fn input_storage_sql(days: DayRange) -> String {
    format!(
        "SELECT CAST(interval_start AS DATE) AS day, \
         sum(persistentvolumeclaim_capacity_byte_seconds) / (86400 * {}) * power(2.0, -30) \
         FROM {} WHERE interval_start >= {} AND interval_start < {} \
         GROUP BY CAST(interval_start AS DATE)",
        Month::of(days.first()).days(),
        ReportType::StorageUsage.table_name(),
        days.start_literal(),
        days.end_literal()
    )
}

/// Runs `sql` (a day, then one column per quantity) into per (day, quantity) totals; a null
/// sum (every value null) counts as 0.
async fn sums(ctx: &SessionContext, sql: &str, quantities: &[Quantity]) -> Result<Totals> {
    let mut totals = Totals::new();
    for batch in ctx.sql(sql).await?.collect().await? {
        let days = cast(batch.column(0), &DataType::Date32)?;
        let days = days.as_primitive::<Date32Type>();
        for (i, quantity) in quantities.iter().enumerate() {
            let values = cast(batch.column(i + 1), &DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>();
            for row in 0..batch.num_rows() {
                let day = days.value_as_date(row).ok_or_else(|| {
                    Error::Internal(format!("the input's day {} is not a date", days.value(row)))
                })?;
                let value = if values.is_valid(row) {
                    values.value(row)
                } else {
                    0.0
                };
                totals.insert((day, *quantity), value);
            }
        }
    }
    Ok(totals)
}

/// The table's per-day totals of the unit's month for its source, `None` when the table does
/// not exist: Pod rows of namespaces with line items (koku's unallocated and unattributed rows
/// left out) for the Pod quantities, Storage rows for the claims' capacity. Like a run's
/// delete, rows koku's OCP-on-cloud step owns (a non-zero `infrastructure_raw_cost`) are left
/// out where the table has that column.
async fn table_totals(client: &Client, unit: &UnitOfWork) -> Result<Option<Totals>> {
    let Some(cloud_column) = table_layout(client, &unit.schema).await? else {
        return Ok(None);
    };
    let table_q = format!("{}.{}", quote_ident(&unit.schema), quote_ident(SUMMARY_TABLE));
    let own_rows = match cloud_column {
        true => " AND coalesce(infrastructure_raw_cost, 0) = 0",
        false => "",
    };
    let (first, last) = (unit.days.first(), unit.days.last());
    let excluded: Vec<&str> = EXCLUDED_NAMESPACES.to_vec();
    let pod_params: [&(dyn ToSql + Sync); 4] = [&unit.source, &first, &last, &excluded];
    let mut totals = table_sums(
        client,
        &table_pod_sql(&table_q, own_rows),
        &pod_params,
        &Quantity::POD,
    )
    .await?;
    let storage_params: [&(dyn ToSql + Sync); 3] = [&unit.source, &first, &last];
    let storage_sql = table_storage_sql(&table_q, own_rows);
    totals.extend(table_sums(client, &storage_sql, &storage_params, &Quantity::STORAGE).await?);
    Ok(Some(totals))
}

/// Whether the summary table exists in `schema` (`None` if not) and has koku's
/// `infrastructure_raw_cost` column.
async fn table_layout(client: &Client, schema: &str) -> Result<Option<bool>> {
    let row = client
        .query_one(
            "SELECT count(c.oid) > 0, coalesce(bool_or(a.attname = 'infrastructure_raw_cost'), false) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &SUMMARY_TABLE],
        )
        .await
        .map_err(Error::database("look up the summary table"))?;
    Ok(row.get::<_, bool>(0).then(|| row.get(1)))
}

/// The Pod rows of the source and days (`$1`, `$2`, `$3`) summed per day, without the
/// namespaces `$4`. A null namespace is the unallocated row of a node with no known role (it
/// has no pod labels), unless a line item had no namespace (its Pod row has pod labels).
fn table_pod_sql(table_q: &str, own_rows: &str) -> String {
    format!(
        "SELECT usage_start, sum(pod_usage_cpu_core_hours)::float8, \
         sum(pod_effective_usage_cpu_core_hours)::float8, sum(pod_usage_memory_gigabyte_hours)::float8 \
         FROM {table_q} WHERE source_uuid = $1 AND usage_start >= $2 AND usage_start <= $3 \
         AND data_source = 'Pod' \
         AND (namespace <> ALL($4::text[]) OR (namespace IS NULL AND pod_labels IS NOT NULL)){own_rows} \
         GROUP BY usage_start"
    )
}

/// The Storage rows of the source and days (`$1`, `$2`, `$3`), their capacity summed per day.
fn table_storage_sql(table_q: &str, own_rows: &str) -> String {
    format!(
        "SELECT usage_start, sum(persistentvolumeclaim_capacity_gigabyte_months)::float8 \
         FROM {table_q} WHERE source_uuid = $1 AND usage_start >= $2 AND usage_start <= $3 \
         AND data_source = 'Storage'{own_rows} GROUP BY usage_start"
    )
}

/// Runs `sql` (a day, then one column per quantity) into per (day, quantity) totals; a null
/// sum counts as 0.
async fn table_sums(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    quantities: &[Quantity],
) -> Result<Totals> {
    let rows = client
        .query(sql, params)
        .await
        .map_err(Error::database("sum the summary table's rows"))?;
    let mut totals = Totals::new();
    for row in rows {
        let day: NaiveDate = row.get(0);
        for (i, quantity) in quantities.iter().enumerate() {
            let value: Option<f64> = row.get(i + 1);
            totals.insert((day, *quantity), value.unwrap_or(0.0));
        }
    }
    Ok(totals)
}

/// Why a day drifts that the table lacks.
const NOT_IN_TABLE: &str = "not in the table";
/// Why a day drifts that the input lacks.
const NOT_IN_INPUT: &str = "not in the input";

impl DayCheck {
    /// The check of one (day, quantity), from whichever sides hold it.
    fn new(
        day: NaiveDate,
        quantity: Quantity,
        input: Option<f64>,
        table: Option<f64>,
        tolerance: f64,
    ) -> Self {
        let difference = input.zip(table).map(|(i, t)| t - i);
        DayCheck {
            day: day.to_string(),
            quantity,
            input,
            table,
            difference,
            ok: difference.is_some_and(|d| d.abs() <= tolerance),
        }
    }

    /// Which side lacks the day, if one does.
    fn missing(&self) -> Option<&'static str> {
        match (self.input, self.table) {
            (Some(_), None) => Some(NOT_IN_TABLE),
            (None, Some(_)) => Some(NOT_IN_INPUT),
            _ => None,
        }
    }

    /// `ok`, or `DRIFT` and which side lacks the day when one does.
    fn status(&self) -> String {
        match (self.ok, self.missing()) {
            (true, _) => "ok".into(),
            (false, Some(side)) => format!("DRIFT ({side})"),
            (false, None) => "DRIFT".into(),
        }
    }
}

impl Verification {
    /// Every (day, quantity) either side holds, compared; a table that does not exist holds none.
    fn compare(req: &VerifyRequest, input: Totals, table: Option<Totals>) -> Self {
        let table_exists = table.is_some();
        let table = table.unwrap_or_default();
        let keys: BTreeSet<&(NaiveDate, Quantity)> = input.keys().chain(table.keys()).collect();
        let days: Vec<DayCheck> = keys
            .into_iter()
            .map(|key| {
                let (i, t) = (input.get(key).copied(), table.get(key).copied());
                DayCheck::new(key.0, key.1, i, t, req.tolerance)
            })
            .collect();
        let unit = &req.unit;
        Verification {
            source: unit.source.to_string(),
            month: unit.month.to_string(),
            input: req.input.display(&req.input.location("")),
            table: format!("{}.{SUMMARY_TABLE}", unit.schema),
            table_exists,
            tolerance: req.tolerance,
            compared: days.len(),
            drifted: days.iter().filter(|d| !d.ok).count(),
            days,
        }
    }

    /// The comparison as a table, one line per (day, quantity), under a header naming both
    /// sides and over a last line counting the drift.
    pub fn text(&self) -> String {
        let missing = if self.table_exists {
            ""
        } else {
            " (it does not exist)"
        };
        let mut out = format!(
            "verify source {} month {}, tolerance {} per day and quantity\ninput: {}\ntable: {}{missing}\n",
            self.source, self.month, self.tolerance, self.input, self.table
        );
        let width = self
            .days
            .iter()
            .map(|d| d.quantity.column().len())
            .max()
            .unwrap_or(8);
        let number = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "{:<10}  {:<width$}  {:>14}  {:>14}  {:>11}",
            "day", "quantity", "input", "table", "difference"
        );
        for d in &self.days {
            let _ = writeln!(
                out,
                "{:<10}  {:<width$}  {:>14}  {:>14}  {:>11}  {}",
                d.day,
                d.quantity.column(),
                number(d.input),
                number(d.table),
                d.difference.map_or("-".to_string(), signed),
                d.status()
            );
        }
        out.push_str(&self.summary_line());
        out
    }

    /// `N day totals compared: N ok, N DRIFT (how many of each kind): the first few`.
    fn summary_line(&self) -> String {
        let ok = self.compared - self.drifted;
        if self.drifted == 0 {
            return format!(
                "{} day totals compared: all {ok} within {}\n",
                self.compared, self.tolerance
            );
        }
        // How many drifted over the tolerance, and how many because one side lacks the day.
        let kinds: Vec<String> = [None, Some(NOT_IN_TABLE), Some(NOT_IN_INPUT)]
            .into_iter()
            .map(|why| {
                let n = self.days.iter().filter(|d| !d.ok && d.missing() == why).count();
                (n, why.unwrap_or("over the tolerance"))
            })
            .filter(|(n, _)| *n > 0)
            .map(|(n, kind)| format!("{n} {kind}"))
            .collect();
        format!(
            "{} day totals compared: {ok} ok, {} DRIFT ({}): {}\n",
            self.compared,
            self.drifted,
            kinds.join(", "),
            self.first_drifted(3)
        )
    }

    /// The first `limit` drifted (day, quantity) pairs, with their differences, and how many
    /// more there are.
    fn first_drifted(&self, limit: usize) -> String {
        let drifted: Vec<String> = self
            .days
            .iter()
            .filter(|d| !d.ok)
            .take(limit)
            .map(|d| {
                let why = d
                    .difference
                    .map_or(d.missing().unwrap_or_default().to_string(), signed);
                format!("{} {} {why}", d.day, d.quantity.column())
            })
            .collect();
        let more = self.drifted.saturating_sub(limit);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", drifted.join(", "))
    }

    /// `Error::Drift` (exit 7) when some day drifted.
    pub fn drift(&self) -> Option<Error> {
        (self.drifted > 0).then(|| Error::Drift {
            unit: format!("{}/{}", self.source, self.month),
            count: self.drifted,
            compared: self.compared,
            tolerance: self.tolerance,
            drifted: self.first_drifted(3),
        })
    }
}

/// A difference with its sign, to 3 decimals; `0.000` when it rounds to nothing.
fn signed(v: f64) -> String {
    if v.abs() < 0.0005 {
        "0.000".into()
    } else {
        format!("{v:+.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 10, d).unwrap()
    }

    #[test]
    fn a_day_within_the_tolerance_is_ok_and_a_day_on_one_side_only_drifts() {
        let cpu = Quantity::PodUsageCpuCoreHours;
        // |3.9 − 3| = 0.9 ≤ 1: koku's `abs(pg − trino) <= tolerance`.
        assert!(DayCheck::new(day(1), cpu, Some(3.0), Some(3.9), KOKU_TOLERANCE).ok);
        // +5 over the input.
        let check = DayCheck::new(day(3), cpu, Some(2.0), Some(7.0), KOKU_TOLERANCE);
        assert_eq!(
            (check.ok, check.difference, check.status().as_str()),
            (false, Some(5.0), "DRIFT")
        );
        let missing = DayCheck::new(day(4), cpu, Some(0.5), None, KOKU_TOLERANCE);
        assert_eq!(
            (missing.ok, missing.status().as_str()),
            (false, "DRIFT (not in the table)")
        );
        let extra = DayCheck::new(day(5), cpu, None, Some(0.0), KOKU_TOLERANCE);
        assert_eq!(
            (extra.ok, extra.status().as_str()),
            (false, "DRIFT (not in the input)")
        );
        let nan = DayCheck::new(day(6), cpu, Some(f64::NAN), Some(1.0), KOKU_TOLERANCE);
        assert!(!nan.ok);
    }

    #[test]
    fn quantities_serialise_as_the_summary_tables_columns() {
        for q in [Quantity::POD.as_slice(), Quantity::STORAGE.as_slice()].concat() {
            assert_eq!(serde_json::to_value(q).unwrap(), q.column());
        }
    }
}
