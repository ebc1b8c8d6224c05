//! Running one unit: check its files, summarise them, and write the rows (or preview them, or
//! explain the plans). `run` dispatches by mode to a short function per mode, each composed of
//! the steps in `steps.rs`.

mod steps;

use std::time::Instant;

use tracing::{Instrument, info, info_span, warn};

use crate::config::{Config, Profile, redact_url};
use crate::error::{Error, Result};
use crate::input::discover::UnitFiles;
use crate::input::store::InputStore;
use crate::memory;
use crate::report::{Preview, RunReport};
use crate::sink;
use crate::sink::runs::RunCounts;
use crate::telemetry::Progress;
use crate::unit::UnitOfWork;
use steps::Discovered;

/// Everything a run needs, resolved from flags, environment and config before it starts.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub unit: UnitOfWork,
    /// The input root: a folder or `s3://bucket/prefix`.
    pub input: InputStore,
    pub config: Config,
    pub profile: Profile,
    pub mode: Mode,
}

/// What `run` does with the summary, with what that needs. (`Debug` masks the URLs'
/// passwords.)
#[derive(Clone, PartialEq, Eq)]
pub enum Mode {
    /// Replace the unit's rows in the PostgreSQL database at `database_url`.
    Write { database_url: String },
    /// Summarise and gather a preview; write nothing. Reference data comes from koku's tables
    /// at `database_url` when given, else from the config.
    DryRun { database_url: Option<String> },
    /// Plan the summary and return the plans; write nothing. Reference data as for a dry run.
    Explain {
        kind: ExplainKind,
        database_url: Option<String>,
    },
}

impl Mode {
    /// `write`, `dry run` or `explain`, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Write { .. } => "write",
            Mode::DryRun { .. } => "dry run",
            Mode::Explain { .. } => "explain",
        }
    }

    fn database_url(&self) -> Option<&str> {
        match self {
            Mode::Write { database_url } => Some(database_url),
            Mode::DryRun { database_url } | Mode::Explain { database_url, .. } => database_url.as_deref(),
        }
    }
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.database_url().map(redact_url);
        match self {
            Mode::Explain { kind, .. } => write!(f, "Explain {{ kind: {kind:?}, database_url: {url:?} }}"),
            _ => write!(f, "{} {{ database_url: {url:?} }}", self.name()),
        }
    }
}

/// What an explaining run prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainKind {
    /// The physical plans; only the steps computed into tables first (node capacities, the
    /// claims' nodes) run.
    Plan,
    /// The plans after running the Pod and Storage sections, with per-operator metrics
    /// (DataFusion's `EXPLAIN ANALYZE`).
    Analyze,
}

/// What a run gives back, by mode.
#[derive(Debug)]
pub enum RunOutput {
    /// `Mode::Write`: the unit was replaced.
    Written(RunReport),
    /// `Mode::DryRun`: the report and per (day, namespace) totals.
    Previewed(RunReport, Preview),
    /// `Mode::Explain`: the query plans.
    Explained(String),
}

impl RunOutput {
    pub fn report(&self) -> Option<&RunReport> {
        match self {
            RunOutput::Written(report) | RunOutput::Previewed(report, _) => Some(report),
            RunOutput::Explained(_) => None,
        }
    }
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
    shutdown: impl Future<Output = &'static str>,
) -> Result<RunOutput> {
    let unit = &req.unit;
    let span = info_span!("unit", source = %unit.source, month = %unit.month);
    async move {
        let started = Instant::now();
        log_start(req);
        let _watch = memory::MemoryWatch::start(
            memory::limit_bytes(),
            req.config.monitor.memory_warn_share,
            std::time::Duration::from_millis(req.config.monitor.memory_sample_ms),
        );
        let found = steps::discover(req, progress).await?;
        let files = found.files().clone();
        match &req.mode {
            Mode::Write { database_url } => {
                write_unit(req, progress, found, &files, database_url, started, shutdown).await
            }
            Mode::DryRun { database_url } => {
                let work = dry_run(req, progress, found, database_url.as_deref(), started);
                interruptible(steps::located(req, &files, work), shutdown).await
            }
            Mode::Explain { kind, database_url } => {
                let work = explain(req, progress, found, database_url.as_deref(), *kind);
                interruptible(steps::located(req, &files, work), shutdown).await
            }
        }
    }
    .instrument(span)
    .await
}

fn log_start(req: &RunRequest) {
    let (unit, profile) = (&req.unit, &req.profile);
    info!(
        days = %unit.days, schema = %unit.schema, mode = req.mode.name(), profile = %profile.name,
        partitions = profile.target_partitions, batch_rows = profile.batch_size,
        memory_limit_bytes = profile.memory_limit_bytes, strings = ?profile.strings, "run started"
    );
}

/// Replaces the unit's rows, with a run record around the work.
async fn write_unit(
    req: &RunRequest,
    progress: &Progress,
    found: Discovered,
    files: &UnitFiles,
    url: &str,
    started: Instant,
    shutdown: impl Future<Output = &'static str>,
) -> Result<RunOutput> {
    progress.set_stage("connecting to the database");
    let mut client = sink::connect(url, &req.config.database).await?;
    let record = sink::runs::start(&mut client, &req.unit).await;
    let work = async {
        let prepared = steps::prepare(req, progress, found, Some(&client)).await?;
        let summary = steps::summarize(req, &prepared, progress).await?;
        let delivered = steps::write(req, &prepared, summary, &mut client, url).await?;
        Ok(steps::report(req, &prepared, &delivered, started))
    };
    let result = interruptible(steps::located(req, files, work), shutdown).await;
    if let Err(Error::Interrupted { .. }) = result {
        // The dropped work may have left a statement running (a wait for the unit's lock);
        // cancel it so the rollback and the run record follow at once.
        sink::cancel_running(&client, url).await;
    }
    if let Some(record) = record {
        let counts = result.as_ref().map(run_counts);
        sink::runs::finish(&client, &req.unit.schema, record, counts).await;
    }
    result.map(RunOutput::Written)
}

/// What the run record keeps of a report.
fn run_counts(report: &RunReport) -> RunCounts {
    RunCounts {
        rows_read: report.input.values().map(|c| c.rows).sum(),
        rows_written: report.rows_written,
        rows_deleted: report.rows_deleted,
    }
}

/// Summarises into a preview; writes nothing.
async fn dry_run(
    req: &RunRequest,
    progress: &Progress,
    found: Discovered,
    url: Option<&str>,
    started: Instant,
) -> Result<RunOutput> {
    let client = connect_for_reference(req, progress, url).await?;
    let prepared = steps::prepare(req, progress, found, client.as_ref()).await?;
    let summary = steps::summarize(req, &prepared, progress).await?;
    let (delivered, preview) = steps::preview(summary).await?;
    let report = steps::report(req, &prepared, &delivered, started);
    Ok(RunOutput::Previewed(report, preview))
}

/// The summary's plans; runs only what `kind` needs and writes nothing.
async fn explain(
    req: &RunRequest,
    progress: &Progress,
    found: Discovered,
    url: Option<&str>,
    kind: ExplainKind,
) -> Result<RunOutput> {
    let client = connect_for_reference(req, progress, url).await?;
    let prepared = steps::prepare(req, progress, found, client.as_ref()).await?;
    let (days, storage) = (prepared.days, prepared.has_storage());
    let analyze = kind == ExplainKind::Analyze;
    let plan = crate::summary::explain(&prepared.ctx, days, storage, analyze).await?;
    Ok(RunOutput::Explained(plan))
}

/// A connection to read koku's reference tables from, when a URL is given.
async fn connect_for_reference(
    req: &RunRequest,
    progress: &Progress,
    url: Option<&str>,
) -> Result<Option<tokio_postgres::Client>> {
    let Some(url) = url else { return Ok(None) };
    progress.set_stage("connecting to the database");
    Ok(Some(sink::connect(url, &req.config.database).await?))
}

/// `work`, unless `shutdown` resolves first: then the work is dropped (an open transaction
/// rolls back as its connection or client goes) and the run ends with `Error::Interrupted`.
async fn interruptible<T>(
    work: impl Future<Output = Result<T>>,
    shutdown: impl Future<Output = &'static str>,
) -> Result<T> {
    tokio::select! {
        result = work => result,
        signal = shutdown => {
            warn!(signal, "stopping: the open transaction is rolled back");
            Err(Error::Interrupted { signal })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_never_shows_the_password_of_its_url() {
        let url = "postgres://costagg:s3cret-pw@db:5432/koku".to_string();
        let modes = [
            Mode::Write {
                database_url: url.clone(),
            },
            Mode::DryRun {
                database_url: Some(url.clone()),
            },
            Mode::Explain {
                kind: ExplainKind::Analyze,
                database_url: Some(url),
            },
        ];
        for mode in modes {
            let shown = format!("{mode:?}");
            assert!(
                !shown.contains("s3cret-pw") && shown.contains("db:5432"),
                "{shown}"
            );
        }
    }
}
