//! The steps of a run, in order: discover (list and check the files) → prepare (reference
//! data, the session, the row checks) → summarize → write or preview; and the report built
//! from what each step returned.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use tokio_postgres::Client;
use tracing::field::Empty;
use tracing::{Instrument, debug, info, info_span, warn};

use super::RunRequest;
use crate::error::{Error, Result};
use crate::input::discover::UnitFiles;
use crate::input::quality::RowProblems;
use crate::input::{ReportType, inventory};
use crate::memory;
use crate::reference::{Inventory, Reference, RolesAfterWrite};
use crate::report::{InputCount, InventoryCount, Preview, RunReport};
use crate::sink::{self, KokuTables, WriteOptions, WriteOutcome};
use crate::summary::labels::MalformedLabels;
use crate::summary::{self, DailySummary, LabelGate, RowCounts};
use crate::telemetry::Progress;
use crate::unit::{ClusterIdentity, DayRange};

/// The unit's files, listed and checked.
pub(super) struct Discovered {
    files: UnitFiles,
    check_ms: u64,
}

impl Discovered {
    pub fn files(&self) -> &UnitFiles {
        &self.files
    }
}

/// `work`'s result; when it failed decoding the input's Parquet data, with the files and
/// columns it failed on, where a second read finds them (`input::locate`): the engine's
/// error names neither.
pub(super) async fn located<T>(
    req: &RunRequest,
    files: &UnitFiles,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let e = match work.await {
        Err(e) if crate::input::locate::is_decode_error(&e) => e,
        other => return other,
    };
    let mut problems = crate::input::locate::unreadable(&req.input, files).await;
    Err(match problems.len() {
        0 => e,
        1 => problems.remove(0),
        _ => Error::InputProblems(problems),
    })
}

/// Lists and checks every file of the unit (see `input::discover`).
pub(super) async fn discover(req: &RunRequest, progress: &Progress) -> Result<Discovered> {
    let started = Instant::now();
    progress.set_stage("checking input files");
    let scan = info_span!("scan", files = Empty, rows = Empty, bytes = Empty);
    let files = crate::input::discover::discover(&req.input, &req.config.input, &req.unit)
        .instrument(scan.clone())
        .await?;
    scan.record("files", files.total_files());
    scan.record("rows", files.total_rows());
    scan.record("bytes", files.total_bytes());
    progress.set_files(files.total_files());
    Ok(Discovered {
        files,
        check_ms: started.elapsed().as_millis() as u64,
    })
}

/// Everything the summary needs, ready: the session with the unit's tables, the cluster
/// columns, the days to replace, and what the row checks found.
pub(super) struct Prepared {
    found: Discovered,
    pub ctx: SessionContext,
    identity: ClusterIdentity,
    /// From the first day with pod usage rows to the unit's last day: the days replaced.
    pub days: DayRange,
    problems: RowProblems,
    malformed: Arc<MalformedLabels>,
    /// What the line items say about the cluster, for koku's tables around the summary.
    pub inventory: Inventory,
    /// The node roles the sink reads back once it has written the nodes, for the unallocated
    /// rows.
    roles: RolesAfterWrite,
    /// The digest of the reference data that changes the rows (`fingerprint::of_settings`).
    settings: String,
    reference_ms: u64,
}

impl Prepared {
    /// koku's `storage_exists`: the Storage section runs only when there are storage files.
    pub fn has_storage(&self) -> bool {
        self.found.files.count(ReportType::StorageUsage) > 0
    }
}

/// Reads the reference data (koku's tables through `client` when given, else the config),
/// opens the session, registers the unit's files, and counts and applies the malformed rows.
pub(super) async fn prepare(
    req: &RunRequest,
    progress: &Progress,
    found: Discovered,
    client: Option<&Client>,
) -> Result<Prepared> {
    let started = Instant::now();
    progress.set_stage("reading reference data");
    let (reference, identity) = read_reference(req, client).await?;
    let settings = crate::fingerprint::of_settings(&reference);
    let reference_ms = started.elapsed().as_millis() as u64;
    let malformed = Arc::new(MalformedLabels::default());
    let ctx = summary::session(&req.profile, &reference, malformed.clone())?;
    let unparsable = found
        .files
        .register(&ctx, &req.input, req.profile.strings)
        .await?;
    let policy = req.config.input.bad_rows;
    let checked = crate::input::quality::check(&ctx, &found.files, &req.unit, policy, unparsable).await?;
    let days = replaced_days(req, &checked.problems)?;
    let inventory = inventory::read(&ctx, days, &checked.pod_groups, &checked.storage_groups).await?;
    debug!(
        nodes = inventory.nodes.len(),
        projects = inventory.projects.len(),
        pvcs = inventory.pvcs.len(),
        "read the cluster's inventory"
    );
    Ok(Prepared {
        found,
        ctx,
        identity,
        days,
        problems: checked.problems,
        malformed,
        inventory,
        roles: RolesAfterWrite::default(),
        settings,
        reference_ms,
    })
}

/// koku's reference tables where the schema has them, else the config's values; and the
/// cluster columns, from the flags, koku's report period row or the source.
async fn read_reference(req: &RunRequest, client: Option<&Client>) -> Result<(Reference, ClusterIdentity)> {
    let configured = req.config.reference.reference();
    let (reference, period) = match client {
        Some(c) => (
            sink::reference::read(c, &req.unit.schema).await?.or(configured),
            sink::reference::report_period(c, &req.unit).await?,
        ),
        None => (configured, None),
    };
    let identity = ClusterIdentity::resolve(&req.unit, period.as_ref());
    info!(
        cluster_id = %identity.cluster_id, cluster_alias = %identity.cluster_alias,
        report_period_id = ?identity.report_period_id, from_report_period = period.is_some(),
        node_roles = reference.node_roles.len(), from_database = client.is_some(),
        "reference data read"
    );
    Ok((reference, identity))
}

/// The days a run replaces: from the first day of the unit's range with pod usage rows, as
/// koku does, so a partial upload never wipes the days before it.
fn replaced_days(req: &RunRequest, problems: &RowProblems) -> Result<DayRange> {
    let unit = &req.unit;
    let first_day = problems.first_day.ok_or_else(|| Error::NoRowsInRange {
        start: unit.days.first().to_string(),
        end: unit.days.last().to_string(),
        searched: req.input.display(&req.input.location("")),
    })?;
    if first_day > unit.days.first() {
        info!(first_day = %first_day, "input starts after the range start; earlier days are kept");
    }
    Ok(unit.days.starting(first_day))
}

/// The summary's rows as they stream (counted into the run's progress), their counts by
/// kind, and when the summary was started.
pub(super) struct Summarized<'a> {
    rows: BoxStream<'a, Result<RecordBatch>>,
    counts: Arc<RowCounts>,
    started: Instant,
}

/// Plans the daily summary of the prepared days, in passes as the profile sizes them.
pub(super) async fn summarize<'a>(
    req: &RunRequest,
    prepared: &Prepared,
    progress: &'a Progress,
) -> Result<Summarized<'a>> {
    let started = Instant::now();
    progress.set_stage(match req.mode {
        super::Mode::Write { .. } => "summarising and writing",
        _ => "summarising",
    });
    let days = prepared.days;
    let days_per_pass = req
        .profile
        .days_per_pass_for(prepared.found.files.pod_rows(), days.num_days());
    let gate = LabelGate {
        malformed: prepared.malformed.clone(),
        policy: req.config.input.bad_rows,
    };
    let roles = prepared.roles.clone();
    let DailySummary { rows, counts } = summary::daily_summary(
        &prepared.ctx,
        days,
        prepared.has_storage(),
        days_per_pass,
        gate,
        roles,
    )
    .await?;
    Ok(Summarized {
        rows: rows
            .inspect_ok(|b| progress.add_rows(b.num_rows() as u64))
            .boxed(),
        counts,
        started,
    })
}

/// What the summary's rows became: written (or, in a dry run, counted), and how long the
/// summary and its delivery took together.
pub(super) struct Delivered {
    outcome: WriteOutcome,
    counts: Arc<RowCounts>,
    summarize_write_ms: u64,
}

/// Replaces the unit's rows with the summary's in one transaction (`sink::replace_unit`).
pub(super) async fn write(
    req: &RunRequest,
    prepared: &Prepared,
    summarized: Summarized<'_>,
    client: &mut Client,
    url: &str,
) -> Result<Delivered> {
    let options = WriteOptions {
        url,
        copy_buffer_bytes: req.profile.copy_buffer_bytes,
        // A swap COPies and indexes on this many connections; PostgreSQL takes little from
        // more than a few.
        connections: req.profile.target_partitions.clamp(1, 4),
        input_rows: prepared.found.files.pod_rows(),
    };
    let write = info_span!("write", rows = Empty, deleted = Empty);
    let (db, unit, first_day) = (&req.config.database, &req.unit, prepared.days.first());
    let Summarized {
        rows,
        counts,
        started,
    } = summarized;
    let around = KokuTables {
        inventory: &prepared.inventory,
        roles: &prepared.roles,
    };
    let outcome = sink::replace_unit(
        client,
        db,
        unit,
        &prepared.identity,
        first_day,
        options,
        around,
        rows,
    )
    .instrument(write.clone())
    .await?;
    write.record("rows", outcome.rows_written);
    write.record("deleted", outcome.rows_deleted);
    Ok(Delivered {
        outcome,
        counts,
        summarize_write_ms: started.elapsed().as_millis() as u64,
    })
}

/// Consumes the summary's rows into a preview of per (day, namespace) totals.
pub(super) async fn preview(summarized: Summarized<'_>) -> Result<(Delivered, Preview)> {
    let Summarized {
        rows,
        counts,
        started,
    } = summarized;
    let mut preview = Preview::default();
    let span = info_span!("summarize", rows = Empty);
    let rows = gather(rows, &mut preview).instrument(span.clone()).await?;
    span.record("rows", rows);
    let delivered = Delivered {
        outcome: WriteOutcome {
            rows_written: rows,
            ..Default::default()
        },
        counts,
        summarize_write_ms: started.elapsed().as_millis() as u64,
    };
    Ok((delivered, preview))
}

/// Adds every batch of `rows` to `preview`; returns how many rows there were.
async fn gather(rows: impl Stream<Item = Result<RecordBatch>>, preview: &mut Preview) -> Result<u64> {
    futures::pin_mut!(rows);
    let mut count = 0;
    while let Some(batch) = rows.try_next().await? {
        preview.add(&batch)?;
        count += batch.num_rows() as u64;
    }
    Ok(count)
}

/// The run's report, from what each step returned; logs the anomalies it counts.
pub(super) fn report(
    req: &RunRequest,
    prepared: &Prepared,
    delivered: &Delivered,
    started: Instant,
) -> RunReport {
    warn_anomalies(prepared);
    let mut report = RunReport::start(
        &req.unit,
        &req.profile.name,
        matches!(req.mode, super::Mode::DryRun { .. }),
    );
    prepared.found.record(&mut report);
    prepared.record(&mut report);
    delivered.record(&mut report);
    report.total_ms = started.elapsed().as_millis() as u64;
    report.peak_rss_bytes = memory::peak_rss_bytes();
    report.memory_limit_bytes = memory::limit_bytes();
    report
}

fn warn_anomalies(prepared: &Prepared) {
    let malformed_labels = prepared.malformed.count();
    if malformed_labels > 0 {
        let examples = prepared.malformed.examples(3);
        warn!(
            values = malformed_labels,
            ?examples,
            "malformed label JSON was read as {{}}"
        );
    }
    let unparsable = prepared.problems.unparsable_timestamps;
    if unparsable > 0 {
        warn!(
            rows = unparsable,
            "rows with an unreadable interval_start were skipped"
        );
    }
}

impl Discovered {
    fn record(&self, report: &mut RunReport) {
        report.check_ms = self.check_ms;
        report.input_fingerprint = self.files.fingerprint();
        for r in &self.files.by_report {
            let count = InputCount {
                files: r.files.len(),
                rows: r.rows,
            };
            report.input.insert(r.report.folder().to_string(), count);
        }
    }
}

impl Prepared {
    fn record(&self, report: &mut RunReport) {
        report.first_day = self.days.first().to_string();
        report.days = self.days.num_days();
        report.cluster_id = self.identity.cluster_id.clone();
        report.malformed_labels = self.malformed.count();
        report.inventory = InventoryCount {
            nodes: self.inventory.nodes.len(),
            projects: self.inventory.projects.len(),
            pvcs: self.inventory.pvcs.len(),
        };
        report.unparsable_timestamps = self.problems.unparsable_timestamps;
        report.other_month_rows = self.problems.other_month;
        report.bad_quantity_rows = self.problems.bad_quantities;
        report.reference_ms = self.reference_ms;
        report.settings_fingerprint = self.settings.clone();
    }
}

impl Delivered {
    fn record(&self, report: &mut RunReport) {
        report.rows_deleted = self.outcome.rows_deleted;
        report.rows_written = self.outcome.rows_written;
        report.table_created = self.outcome.table_created;
        report.koku_tables = Some(self.outcome.koku_tables.clone()).filter(|_| !report.dry_run);
        report.pod_rows = RowCounts::get(&self.counts.pod);
        report.storage_rows = RowCounts::get(&self.counts.storage);
        report.unallocated_rows = RowCounts::get(&self.counts.unallocated);
        report.summarize_write_ms = self.summarize_write_ms;
        let pod_rows: u64 = report
            .input
            .get(ReportType::PodUsage.folder())
            .map_or(0, |c| c.rows);
        let seconds = self.summarize_write_ms.max(1) as f64 / 1000.0;
        report.pod_rows_per_second = (pod_rows as f64 / seconds) as u64;
    }
}
