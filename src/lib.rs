//! costagg: koku's OpenShift daily usage summary, from Parquet to PostgreSQL.
//!
//! The pipeline for one unit of work: input (list and check files) → summary (DataFusion SQL
//! mirroring koku's) → sink (one PostgreSQL transaction).

pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod generate;
pub mod input;
pub mod memory;
pub mod report;
pub mod sink;
pub mod summary;
pub mod telemetry;
pub mod unit;

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use tracing::field::Empty;
use tracing::{Instrument, debug, info, info_span, warn};

use config::{BadRows, Config, Profile};
use error::{Error, Result};
use input::ReportType;
use input::store::InputStore;
use report::{InputCount, Preview, Progress, RunReport};
use summary::labels::EnabledKeys;
use summary::{Reference, RowCounts};
use unit::{ClusterIdentity, UnitOfWork};

/// Everything a run needs, resolved from flags, environment and config.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub unit: UnitOfWork,
    /// The input root: a folder or `s3://bucket/prefix`.
    pub input: InputStore,
    pub config: Config,
    pub profile: Profile,
    /// Required to write; optional for a dry run or `--explain` (reference data then comes
    /// from the config).
    pub database_url: Option<String>,
    pub mode: Mode,
}

impl RunRequest {
    /// Resolves what the user typed (flags over env over config file over defaults).
    pub fn from_args(args: &cli::RunArgs) -> Result<Self> {
        let (config, _) = Config::resolve(&config::Flags {
            config: args.config.as_deref(),
            profile: args.profile.as_deref(),
            schema: args.schema.as_deref(),
            input: args.input.as_deref(),
            database_url: args.database_url.as_deref(),
        })?;
        let root = config.input.root.clone().ok_or_else(|| {
            Error::config(
                "--input",
                "is required: the folder or s3://bucket/prefix holding koku's data/parquet tree",
            )
        })?;
        let input = InputStore::open(&root, &config.input.s3)?;
        let mode = match (args.dry_run, args.explain) {
            (_, Some(explain)) => Mode::Explain(explain),
            (true, None) => Mode::DryRun,
            (false, None) => Mode::Write,
        };
        let database_url = config.database.url.clone();
        if database_url.is_none() && mode == Mode::Write {
            return Err(Error::config(
                "--database-url",
                "is required to write (or set DATABASE_URL); --dry-run summarises without a database",
            ));
        }
        let (year, month) = UnitOfWork::parse_month(&args.month)?;
        let schema = config.database.schema.clone().unwrap_or_else(|| args.org.clone());
        sink::check_identifier(&schema).map_err(|e| Error::config("--schema", e))?;
        let unit = UnitOfWork {
            org: args.org.clone(),
            source: args.source,
            year,
            month,
            start_date: args
                .start_date
                .unwrap_or_else(|| UnitOfWork::first_day(year, month)),
            end_date: args.end_date.unwrap_or_else(|| {
                UnitOfWork::next_month_start(year, month)
                    .pred_opt()
                    .expect("valid date")
            }),
            cluster_id: args.cluster_id.clone(),
            cluster_alias: args.cluster_alias.clone(),
            report_period_id: args.report_period_id,
            schema,
        };
        unit.check_days()?;
        let profile = config.resolve_profile(&std::env::temp_dir())?;
        Ok(RunRequest {
            unit,
            input,
            config,
            profile,
            database_url,
            mode,
        })
    }
}

/// The checked files of one report type for the unit.
struct ReportFiles {
    report: ReportType,
    files: Vec<object_store::ObjectMeta>,
    /// Some file holds `interval_start` as text.
    text_timestamps: bool,
    /// Rows in the files (all days), from their footers.
    rows: u64,
    bytes: u64,
}

/// Files of each report type for the unit, all checked.
struct UnitFiles {
    by_report: Vec<ReportFiles>,
}

impl UnitFiles {
    fn get(&self, report: ReportType) -> Option<&ReportFiles> {
        self.by_report.iter().find(|r| r.report == report)
    }
    fn count(&self, report: ReportType) -> usize {
        self.get(report).map_or(0, |r| r.files.len())
    }
    fn total_files(&self) -> usize {
        self.by_report.iter().map(|r| r.files.len()).sum()
    }
}

/// Lists and checks every file of the unit; all problems are reported together, before
/// anything is written.
async fn discover(req: &RunRequest) -> Result<UnitFiles> {
    let mut by_report = Vec::new();
    let mut problems = Vec::new();
    for report in ReportType::ALL {
        let (searched, files) =
            input::layout::list_files(&req.input, &req.config.input, &req.unit, report).await?;
        if files.is_empty() && report.required() {
            return Err(Error::NoInput {
                report: report.folder().into(),
                searched,
            });
        }
        let found = input::schema::check_files(&req.input, report, &files).await;
        problems.extend(found.problems);
        tracing::debug!(report = report.folder(), files = files.len(), folder = %searched, "listed files");
        by_report.push(ReportFiles {
            report,
            files,
            text_timestamps: found.text_timestamps,
            rows: found.rows,
            bytes: found.bytes,
        });
    }
    match problems.len() {
        0 => Ok(UnitFiles { by_report }),
        1 => Err(problems.remove(0)),
        _ => Err(Error::InputProblems(problems)),
    }
}

/// Reference data: koku's tables when the schema has them, else the config's.
async fn reference(client: &tokio_postgres::Client, req: &RunRequest) -> Result<Reference> {
    let schema = &req.unit.schema;
    let configured = configured_reference(req);
    Ok(Reference {
        enabled_keys: sink::enabled_tag_keys(client, schema)
            .await?
            .unwrap_or(configured.enabled_keys),
        cost_categories: sink::cost_categories(client, schema)
            .await?
            .unwrap_or(configured.cost_categories),
        node_roles: sink::node_roles(client, schema)
            .await?
            .unwrap_or(configured.node_roles),
    })
}

/// Reference data from the config alone (a dry run without a database).
fn configured_reference(req: &RunRequest) -> Reference {
    let configured = &req.config.reference;
    Reference {
        enabled_keys: EnabledKeys::from_enabled(configured.enabled_tag_keys.iter().cloned()),
        cost_categories: configured.cost_categories.clone(),
        node_roles: configured.node_roles.clone(),
    }
}

/// What `run` does with the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Replace the unit's rows in PostgreSQL.
    Write,
    /// Summarise and gather a preview; write nothing.
    DryRun,
    /// Plan the summary and return the plans, running only the steps computed into tables
    /// first; or (`Explain::Analyze`) run it and return the plans with their metrics. Writes
    /// nothing.
    Explain(cli::Explain),
}

/// What a run gives back besides its report.
#[derive(Debug, Default)]
pub struct RunOutput {
    pub report: RunReport,
    /// `Mode::DryRun`: per (day, namespace) totals.
    pub preview: Option<Preview>,
    /// `Mode::Explain`: the query plans.
    pub plan: Option<String>,
}

/// Runs one unit: check input, summarise, and (in `Mode::Write`) replace the unit's rows.
/// Nothing is written unless everything succeeds. `progress` counts rows as they stream. When
/// `shutdown` resolves (to the signal's name) first, the work is dropped — its transaction
/// rolls back — and the run ends with `Error::Interrupted`. Once its files pass their checks
/// and the database is reached, a writing run leaves a row in `<schema>.costagg_runs`,
/// whatever its outcome.
pub async fn run(
    req: &RunRequest,
    progress: &Progress,
    shutdown: impl std::future::Future<Output = &'static str>,
) -> Result<RunOutput> {
    let unit = &req.unit;
    let span = info_span!("unit", source = %unit.source, month = %unit.month_label());
    async move {
        let started = Instant::now();
        info!(
            start = %unit.start_date, end = %unit.end_date, schema = %unit.schema, mode = ?req.mode,
            profile = %req.profile.name, partitions = req.profile.target_partitions,
            batch_rows = req.profile.batch_size, memory_limit_bytes = req.profile.memory_limit_bytes,
            strings = ?req.profile.strings, "run started"
        );
        let _watch = memory::MemoryWatch::start(
            memory::limit_bytes(),
            req.config.monitor.memory_warn_share,
            std::time::Duration::from_millis(req.config.monitor.memory_sample_ms),
        );
        progress.set_stage("checking input files");
        let scan = info_span!("scan", files = Empty, rows = Empty, bytes = Empty);
        let files = discover(req).instrument(scan.clone()).await?;
        scan.record("files", files.total_files());
        scan.record("rows", files.by_report.iter().map(|r| r.rows).sum::<u64>());
        scan.record("bytes", files.by_report.iter().map(|r| r.bytes).sum::<u64>());
        drop(scan);
        progress.set_files(files.total_files());
        let check_ms = started.elapsed().as_millis() as u64;
        progress.set_stage("connecting to the database");
        let mut client = match &req.database_url {
            Some(url) => Some(sink::connect(url, &req.config.database).await?),
            None => None,
        };
        let record = match (req.mode, client.as_mut()) {
            (Mode::Write, Some(c)) => sink::runs::start(c, unit).await,
            _ => None,
        };
        let result = {
            let work = run_unit(req, progress, files, client.as_mut(), (started, check_ms));
            futures::pin_mut!(shutdown);
            tokio::select! {
                result = work => result,
                signal = shutdown => {
                    warn!(signal, "stopping: the open transaction is rolled back");
                    Err(Error::Interrupted { signal })
                }
            }
        };
        if let (Some(record), Some(client)) = (record, &client) {
            sink::runs::finish(client, &unit.schema, record, result.as_ref().map(|o| &o.report)).await;
        }
        result
    }
    .instrument(span)
    .await
}

/// The unit's work once its files are checked and the database connected: read reference
/// data, summarise, write.
async fn run_unit(
    req: &RunRequest,
    progress: &Progress,
    files: UnitFiles,
    client: Option<&mut tokio_postgres::Client>,
    (started, check_ms): (Instant, u64),
) -> Result<RunOutput> {
    let unit = &req.unit;

    let t = Instant::now();
    progress.set_stage("reading reference data");
    let (reference, period) = match &client {
        Some(c) => (reference(c, req).await?, sink::report_period(c, unit).await?),
        None => (configured_reference(req), None),
    };
    let identity = ClusterIdentity::resolve(unit, period.as_ref());
    info!(
        cluster_id = %identity.cluster_id, cluster_alias = %identity.cluster_alias,
        report_period_id = ?identity.report_period_id, from_report_period = period.is_some(),
        node_roles = reference.node_roles.len(), from_database = client.is_some(),
        "reference data read"
    );
    let reference_ms = t.elapsed().as_millis() as u64;

    let malformed = Arc::new(summary::labels::MalformedLabels::default());
    let ctx = summary::session(&req.profile, &reference, malformed.clone())?;
    let mut unparsable_timestamps = 0;
    for r in &files.by_report {
        input::schema::register(
            &ctx,
            &req.input,
            r.report,
            &r.files,
            r.text_timestamps,
            req.profile.strings,
        )?;
        if r.text_timestamps {
            unparsable_timestamps += input::schema::count_unparsable_timestamps(&ctx, r.report).await?;
        }
    }
    let checked = check_rows(req, &ctx, &files, unparsable_timestamps).await?;
    let (other_month_rows, bad_quantity_rows) = (checked.other_month, checked.bad_quantities);
    let first_day = checked.first_day.ok_or_else(|| Error::NoRowsInRange {
        start: unit.start_date.to_string(),
        end: unit.end_date.to_string(),
        searched: req.input.display(&req.input.location("")),
    })?;
    if first_day > unit.start_date {
        info!(first_day = %first_day, "input starts after the range start; earlier days are kept");
    }
    let storage = files.count(ReportType::StorageUsage) > 0;
    if let Mode::Explain(explain) = req.mode {
        let analyze = explain == cli::Explain::Analyze;
        let plan = summary::explain(&ctx, first_day, unit.end_date, storage, analyze).await?;
        return Ok(RunOutput {
            plan: Some(plan),
            ..Default::default()
        });
    }

    let t = Instant::now();
    progress.set_stage("summarising and writing");
    let pod_rows_read = files.get(ReportType::PodUsage).map_or(0, |r| r.rows);
    let days = (unit.end_date - first_day).num_days() as u32 + 1;
    let days_per_pass = req.profile.days_per_pass_for(pod_rows_read, days);
    let summary = summary::daily_summary(&ctx, first_day, unit.end_date, storage, days_per_pass).await?;
    // With `input.bad_rows: fail`, malformed label JSON (known once the labels have been read)
    // fails the unit before the commit.
    let labels_checked = {
        let malformed = malformed.clone();
        let fail = req.config.input.bad_rows == BadRows::Fail;
        futures::stream::once(async move {
            match malformed.count() {
                n if fail && n > 0 => Some(Err(Error::BadRows {
                    problems: format!(
                        "{n} distinct label strings are not a JSON object of scalars (e.g. {:?})",
                        malformed.examples(2)
                    ),
                })),
                _ => None,
            }
        })
        .filter_map(futures::future::ready)
        .boxed()
    };
    let rows = summary
        .rows
        .chain(labels_checked)
        .inspect_ok(|b| progress.add_rows(b.num_rows() as u64));
    let mut preview = None;
    let outcome = match (req.mode, client) {
        (Mode::Write, Some(client)) => {
            let write = info_span!("write", rows = Empty, deleted = Empty);
            let outcome = sink::replace_unit(
                client,
                &req.config.database,
                unit,
                &identity,
                first_day,
                sink::WriteOptions {
                    url: req.database_url.as_deref().unwrap_or_default(),
                    copy_buffer_bytes: req.profile.copy_buffer_bytes,
                    // A swap COPies and indexes on this many connections; PostgreSQL takes
                    // little from more than a few.
                    connections: req.profile.target_partitions.clamp(1, 4),
                    input_rows: pod_rows_read,
                },
                rows,
            )
            .instrument(write.clone())
            .await?;
            write.record("rows", outcome.rows_written);
            write.record("deleted", outcome.rows_deleted);
            outcome
        }
        (Mode::Write, None) => {
            return Err(Error::config(
                "--database-url",
                "is required (or set DATABASE_URL)",
            ));
        }
        _ => {
            let mut gathered = Preview::default();
            let summarize = info_span!("summarize", rows = Empty);
            let rows_summarised = preview_rows(rows, &mut gathered)
                .instrument(summarize.clone())
                .await?;
            summarize.record("rows", rows_summarised);
            preview = Some(gathered);
            sink::WriteOutcome {
                rows_written: rows_summarised,
                ..Default::default()
            }
        }
    };
    let summarize_write_ms = t.elapsed().as_millis() as u64;
    progress.set_stage("done");

    let malformed_labels = malformed.count();
    if malformed_labels > 0 {
        let examples = malformed.examples(3);
        warn!(
            values = malformed_labels,
            ?examples,
            "malformed label JSON was read as {{}}"
        );
    }
    if unparsable_timestamps > 0 {
        warn!(
            rows = unparsable_timestamps,
            "rows with an unreadable interval_start were skipped"
        );
    }
    let report = RunReport {
        source: unit.source.to_string(),
        month: unit.month_label(),
        start_date: unit.start_date.to_string(),
        end_date: unit.end_date.to_string(),
        first_day: first_day.to_string(),
        days,
        schema: unit.schema.clone(),
        cluster_id: identity.cluster_id.clone(),
        profile: req.profile.name.clone(),
        dry_run: req.mode == Mode::DryRun,
        input: files
            .by_report
            .iter()
            .map(|r| {
                let count = InputCount {
                    files: r.files.len(),
                    rows: r.rows,
                };
                (r.report.folder().to_string(), count)
            })
            .collect(),
        rows_deleted: outcome.rows_deleted,
        rows_written: outcome.rows_written,
        pod_rows: RowCounts::get(&summary.counts.pod),
        storage_rows: RowCounts::get(&summary.counts.storage),
        unallocated_rows: RowCounts::get(&summary.counts.unallocated),
        malformed_labels,
        unparsable_timestamps,
        other_month_rows,
        bad_quantity_rows,
        table_created: outcome.table_created,
        check_ms,
        reference_ms,
        summarize_write_ms,
        total_ms: started.elapsed().as_millis() as u64,
        pod_rows_per_second: (pod_rows_read as f64 / (summarize_write_ms.max(1) as f64 / 1000.0)) as u64,
        peak_rss_bytes: memory::peak_rss_bytes(),
        memory_limit_bytes: memory::limit_bytes(),
    };
    Ok(RunOutput {
        report,
        preview,
        plan: None,
    })
}

/// Counts the malformed rows of the pod and storage files (SPEC §5) and applies
/// `input.bad_rows`: fail the unit, or leave rows with bad quantities out and warn. Returns their
/// totals and, from the same scan, the first day of the unit's range with a good pod usage row:
/// koku moves the start of the replaced range to that day, so a partial upload never wipes days
/// it carries no data for.
async fn check_rows(
    req: &RunRequest,
    ctx: &datafusion::prelude::SessionContext,
    files: &UnitFiles,
    unparsable_timestamps: u64,
) -> Result<input::quality::RowProblems> {
    let unit = &req.unit;
    let month = (
        UnitOfWork::first_day(unit.year, unit.month),
        UnitOfWork::next_month_start(unit.year, unit.month),
    );
    let mut problems = Vec::new();
    let mut total = input::quality::RowProblems::default();
    for report in [ReportType::PodUsage, ReportType::StorageUsage] {
        if files.count(report) == 0 {
            continue;
        }
        let days = (unit.start_date, unit.end_date);
        let started = Instant::now();
        let found = input::quality::count(ctx, report, month, days).await?;
        debug!(
            report = report.folder(),
            ms = started.elapsed().as_millis() as u64,
            "counted problem rows"
        );
        if report == ReportType::PodUsage {
            total.first_day = found.first_day;
        }
        if found.other_month > 0 {
            problems.push(format!(
                "{}: {} rows outside {}",
                report.folder(),
                found.other_month,
                unit.month_label()
            ));
        }
        if found.bad_quantities > 0 {
            problems.push(format!(
                "{}: {} rows with a negative or non-finite quantity",
                report.folder(),
                found.bad_quantities
            ));
            if req.config.input.bad_rows == BadRows::Skip {
                input::quality::skip_bad_quantities(ctx, report).await?;
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
        return Ok(total);
    }
    match req.config.input.bad_rows {
        BadRows::Fail => Err(Error::BadRows {
            problems: problems.join("; "),
        }),
        BadRows::Skip => {
            warn!(problems = %problems.join("; "), "malformed rows were left out of the summary");
            Ok(total)
        }
    }
}

/// Consumes the summary rows into `preview`; returns how many there were.
async fn preview_rows(
    rows: impl futures::Stream<Item = Result<datafusion::arrow::array::RecordBatch>>,
    preview: &mut Preview,
) -> Result<u64> {
    futures::pin_mut!(rows);
    let mut count = 0;
    while let Some(batch) = rows.try_next().await? {
        preview.add(&batch)?;
        count += batch.num_rows() as u64;
    }
    Ok(count)
}
