//! `costagg sweep`: every unit under the input root whose files or settings changed since its
//! last write, summarised and written as `costagg run` writes one, by as many processes and
//! pods as the deployment starts, each unit by exactly one of them at a time.
//!
//! The steps: list the root (`discover`), read each schema's settings, record the listing in
//! the claim table and learn which units are due (`claims`), then run the due ones, `workers`
//! at a time, each under a lease this process renews; units another worker holds are waited
//! for until it finishes them or its lease runs out. The outcome is a [`FleetReport`], and
//! metrics for a Pushgateway (`metrics`).

pub mod claims;
pub mod discover;
pub mod metrics;
pub mod report;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, LocalBoxFuture, Shared};
use futures::stream::{FuturesUnordered, StreamExt};
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::config::{Config, Profile};
use crate::error::{Error, Result};
use crate::input::store::InputStore;
use crate::run::{Mode, RunOutput, RunRequest};
use crate::telemetry::Progress;
use crate::unit::{Month, SchemaName, UnitOfWork};
use claims::{Claim, Claims, Wanted};
pub use report::{FleetReport, Outcome, UnitOutcome};

/// Resolves to the signal's name on SIGTERM or SIGINT; every unit in flight gets a clone.
pub type Shutdown = Shared<BoxFuture<'static, &'static str>>;

/// Everything a sweep needs, resolved before it starts.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    pub input: InputStore,
    pub config: Config,
    /// The process's profile; each of `workers` units gets its share (`Profile::share`).
    pub profile: Profile,
    pub database_url: String,
    /// Orgs to sweep; all under the root when empty.
    pub orgs: Vec<String>,
    /// The first and last month to sweep.
    pub months: (Month, Month),
    pub force: bool,
    pub workers: usize,
    pub lease: Duration,
    /// Names this process in the claim table and groups its metrics.
    pub worker_id: String,
    /// A Pushgateway to push the metrics to.
    pub metrics_push: Option<String>,
}

/// Sweeps the root: see the module's description; pushes the report's metrics when a
/// Pushgateway is configured. Errors only when the sweep cannot start (the database, the
/// listing); a unit's failure is in the report.
pub async fn sweep(req: &SweepRequest, shutdown: Shutdown) -> Result<FleetReport> {
    let started = Instant::now();
    let months = format!("{}..{}", req.months.0, req.months.1);
    let span = info_span!("sweep", worker = %req.worker_id, months = %months);
    async move {
        let client = crate::sink::connect(&req.database_url, &req.config.database).await?;
        let schema = &req.config.sweep.state_schema;
        let claims = Claims::open(client, schema, &req.worker_id, req.lease, req.force).await?;
        let found = discover::discover(&req.input, &req.config.input, &req.orgs, req.months).await?;
        for why in &found.ignored {
            warn!(folder = %why, "not a unit; ignored");
        }
        let mut report = FleetReport {
            worker: req.worker_id.clone(),
            months,
            force: req.force,
            ignored: found.ignored.clone(),
            objects_listed: found.objects,
            listing_ms: found.ms,
            ..Default::default()
        };
        let (wanted, mut outcomes) = wanted(req, claims.client(), found.units).await;
        let due_flags = claims.listed(&wanted).await?;
        let mut due = VecDeque::new();
        for (unit, is_due) in wanted.into_iter().zip(due_flags) {
            if is_due {
                due.push_back(unit);
            } else {
                outcomes.push(outcome(&unit, Outcome::UpToDate));
            }
        }
        report.due = due.len() + outcomes.iter().filter(|o| o.outcome == Outcome::Failed).count();
        info!(
            units = due.len() + outcomes.len(),
            due = report.due,
            workers = req.workers,
            listing_ms = report.listing_ms,
            "sweep started"
        );
        let claims = Arc::new(claims);
        outcomes.extend(work(req, claims.clone(), due, shutdown).await);
        outcomes.sort_by(|a, b| (&a.org, &a.source, &a.month).cmp(&(&b.org, &b.source, &b.month)));
        report.units = outcomes;
        report.tally();
        report.total_ms = started.elapsed().as_millis() as u64;
        report.peak_rss_bytes = crate::memory::peak_rss_bytes();
        info!(
            written = report.written,
            up_to_date = report.up_to_date,
            failed = report.failed,
            done_elsewhere = report.done_elsewhere,
            rows_written = report.rows_written,
            total_ms = report.total_ms,
            "sweep finished"
        );
        push_metrics(req, &claims, &report).await;
        Ok(report)
    }
    .instrument(span)
    .await
}

/// Pushes the report's metrics when a Pushgateway is configured; a failed push is logged, not
/// fatal: the units are written, and the alert on a stale success notices a push that never
/// arrives.
async fn push_metrics(req: &SweepRequest, claims: &Claims, report: &FleetReport) {
    let Some(url) = &req.metrics_push else { return };
    let last = match last_successes(claims, report).await {
        Ok(last) => last,
        Err(e) => {
            warn!(error = %e, "cannot read the sources' last writes; metrics not pushed");
            return;
        }
    };
    let text = metrics::encode(report, &last, chrono::Utc::now());
    match metrics::push(url, &req.worker_id, text).await {
        Ok(()) => info!(url = %crate::config::redact_url(url), "metrics pushed"),
        Err(e) => warn!(error = %e, "metrics not pushed"),
    }
}

/// The newest successful write of every source with a unit that failed in the report.
async fn last_successes(
    claims: &Claims,
    report: &FleetReport,
) -> Result<BTreeMap<(String, Uuid), chrono::DateTime<chrono::Utc>>> {
    let mut failing: Vec<(String, Uuid)> = report
        .units
        .iter()
        .filter(|u| u.outcome != Outcome::Written && u.outcome != Outcome::UpToDate)
        .filter_map(|u| Some((u.org.clone(), u.source.parse().ok()?)))
        .collect();
    failing.dedup();
    if failing.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows = claims.last_successes(&failing).await?;
    Ok(rows
        .into_iter()
        .map(|(org, source, at)| ((org, source), at))
        .collect())
}

/// The listed units with their schemas and the schemas' settings digests; a unit whose
/// schema cannot be named or read fails here, without a run.
async fn wanted(
    req: &SweepRequest,
    client: &tokio_postgres::Client,
    units: Vec<discover::Listed>,
) -> (Vec<Wanted>, Vec<UnitOutcome>) {
    let configured = req.config.reference.reference();
    // Per schema: the digest, or the failure's exit code and message.
    let mut settings: BTreeMap<String, std::result::Result<String, (i32, String)>> = BTreeMap::new();
    let (mut wanted, mut failed) = (Vec::new(), Vec::new());
    for u in units {
        let schema = match schema_of(&req.config, &u.org) {
            Ok(schema) => schema,
            Err(e) => {
                failed.push(failed_outcome(&u.org, u.source, u.month, &e));
                continue;
            }
        };
        if !settings.contains_key(schema.as_str()) {
            let read = crate::sink::reference::read(client, &schema)
                .await
                .map(|koku| crate::fingerprint::of_settings(&koku.or(configured.clone())))
                .map_err(|e| {
                    (
                        e.exit_code(),
                        format!("cannot read schema {schema}'s settings: {e}"),
                    )
                });
            settings.insert(schema.to_string(), read);
        }
        match &settings[schema.as_str()] {
            Ok(digest) => wanted.push(Wanted {
                org: u.org,
                source: u.source,
                month: u.month,
                schema: schema.to_string(),
                fingerprint: u.fingerprint,
                settings: digest.clone(),
            }),
            Err((code, why)) => {
                let mut o = failed_outcome(&u.org, u.source, u.month, &Error::Internal(String::new()));
                (o.exit_code, o.error) = (Some(*code), Some(why.clone()));
                failed.push(o);
            }
        }
    }
    (wanted, failed)
}

/// The schema a unit of `org` is written to: `database.schema`, else the org, as for `run`.
fn schema_of(config: &Config, org: &str) -> Result<SchemaName> {
    let name = config.database.schema.as_deref().unwrap_or(org);
    SchemaName::parse(name).map_err(|e| Error::config("--org", format!("org `{org}`: {e}")))
}

/// Runs the due units, `req.workers` at a time (`start_unit`); units another worker holds
/// wait until it is done with them or its lease has run out. They are looked at again as soon
/// as one of this process's units ends (the others' may have ended too), else every poll: a
/// quarter of the lease, at most a second — one small query per waiting unit, and at most a second idle
/// at the end of a sweep shared with others.
async fn work(
    req: &SweepRequest,
    claims: Arc<Claims>,
    mut pending: VecDeque<Wanted>,
    shutdown: Shutdown,
) -> Vec<UnitOutcome> {
    let poll = (req.lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let profile = req.profile.share(req.workers);
    let shared = Arc::new(req.clone());
    let mut outcomes = Vec::new();
    let mut waiting: Vec<Wanted> = Vec::new();
    let mut running = FuturesUnordered::new();
    let stopping = shutdown.clone();
    futures::pin_mut!(stopping);
    let mut stopped = false;
    let mut look_now = false;
    loop {
        while !stopped && running.len() < req.workers.max(1) {
            let Some(unit) = pending.pop_front() else { break };
            match claims.claim(&unit).await {
                Ok(Claim::Taken) => {
                    let job = start_unit(
                        shared.clone(),
                        profile.clone(),
                        claims.clone(),
                        unit.clone(),
                        shutdown.clone(),
                    );
                    running.push(job);
                }
                Ok(Claim::Held { by }) => {
                    tracing::debug!(unit = %key(&unit), by = ?by, "held by another worker; waiting");
                    waiting.push(unit);
                }
                Ok(Claim::Done) => outcomes.push(outcome(&unit, Outcome::DoneElsewhere)),
                Ok(Claim::FailedElsewhere { exit_code, error }) => {
                    let mut o = outcome(&unit, Outcome::FailedElsewhere);
                    (o.exit_code, o.error) = (Some(exit_code), Some(error));
                    outcomes.push(o);
                }
                Err(e) => outcomes.push(failed_outcome(&unit.org, unit.source, unit.month, &e)),
            }
        }
        if running.is_empty() && (stopped || (pending.is_empty() && waiting.is_empty())) {
            break;
        }
        let may_retry = !stopped && !waiting.is_empty() && running.len() < req.workers.max(1);
        let wait = if look_now { Duration::ZERO } else { poll };
        tokio::select! {
            Some(done) = running.next(), if !running.is_empty() => {
                outcomes.push(done);
                look_now = true;
            }
            _ = tokio::time::sleep(wait), if may_retry && pending.is_empty() => {
                pending.extend(waiting.drain(..));
                look_now = false;
            }
            _ = &mut stopping, if !stopped => stopped = true,
        }
    }
    if stopped {
        // Units never started: left for the next sweep, reported as not done.
        for unit in pending.into_iter().chain(waiting) {
            outcomes.push(outcome(&unit, Outcome::Interrupted));
        }
    }
    outcomes
}

/// A claimed unit's run, as a future that `work` polls. With several workers each unit is
/// driven by a thread of its own (its engine's tasks still run on the runtime): polled inside
/// `work`'s one task, the units' own work — checking footers, encoding the COPY — shared one
/// thread, and two workers ran no faster than one (1 org of the fleet benchmark, 50 units:
/// 14.9–16.7 s with two workers, 13.8–15.4 s with one; 13.9–14.1 s with two on threads of their
/// own). One worker is polled inline: on a thread of its own it took 16.0–16.8 s. (`tokio::spawn`
/// cannot take the unit: `run`'s future cannot be proven `Send`.)
fn start_unit(
    req: Arc<SweepRequest>,
    profile: Profile,
    claims: Arc<Claims>,
    unit: Wanted,
    shutdown: Shutdown,
) -> LocalBoxFuture<'static, UnitOutcome> {
    if req.workers <= 1 {
        return run_unit(req, profile, claims, unit, shutdown).boxed_local();
    }
    let (org, source, month) = (unit.org.clone(), unit.source, unit.month);
    let runtime = tokio::runtime::Handle::current();
    let task =
        tokio::task::spawn_blocking(move || runtime.block_on(run_unit(req, profile, claims, unit, shutdown)));
    task.map(move |joined| {
        joined.unwrap_or_else(|e| {
            let why = Error::Internal(format!("the unit's task ended: {e}"));
            failed_outcome(&org, source, month, &why)
        })
    })
    .boxed_local()
}

/// Runs one claimed unit as `costagg run` would, renewing its lease meanwhile, and records
/// the outcome in the claim table.
async fn run_unit(
    req: Arc<SweepRequest>,
    profile: Profile,
    claims: Arc<Claims>,
    unit: Wanted,
    shutdown: Shutdown,
) -> UnitOutcome {
    let started = Instant::now();
    let renewal = tokio::spawn(renew(claims.clone(), unit.clone(), req.lease));
    let request = RunRequest {
        unit: UnitOfWork::whole_month(
            &unit.org,
            unit.source,
            unit.month,
            SchemaName::parse(&unit.schema).expect("checked when the unit was listed"),
        ),
        input: req.input.clone(),
        config: req.config.clone(),
        profile,
        mode: Mode::Write {
            database_url: req.database_url.clone(),
        },
    };
    let result = crate::run::run(&request, &Progress::default(), shutdown).await;
    renewal.abort();
    let recorded = match &result {
        Ok(RunOutput::Written(r)) => {
            claims
                .succeeded(
                    &unit,
                    &r.input_fingerprint,
                    &r.settings_fingerprint,
                    r.rows_written,
                )
                .await
        }
        Ok(_) => Ok(()),
        Err(e) => claims.ended(&unit, e).await,
    };
    if let Err(e) = recorded {
        warn!(unit = %key(&unit), error = %e, "cannot record the unit's outcome in the claim table");
    }
    let mut done = match result {
        Ok(output) => {
            let mut o = outcome(&unit, Outcome::Written);
            o.rows_written = output.report().map_or(0, |r| r.rows_written);
            o
        }
        Err(e) => {
            let mut o = failed_outcome(&unit.org, unit.source, unit.month, &e);
            if let Error::Interrupted { .. } = e {
                o.outcome = Outcome::Interrupted;
            }
            o
        }
    };
    done.ms = started.elapsed().as_millis() as u64;
    done
}

/// Renews the lease every third of it until aborted; a lease lost to another worker is
/// logged (that worker waits for this one's unit lock, then writes the unit again).
async fn renew(claims: Arc<Claims>, unit: Wanted, lease: Duration) {
    let every = (lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        match claims.renew(&unit).await {
            Ok(true) => {}
            Ok(false) => warn!(unit = %key(&unit), "lost the unit's lease to another worker"),
            Err(e) => warn!(unit = %key(&unit), error = %e, "cannot renew the unit's lease"),
        }
    }
}

fn key(unit: &Wanted) -> String {
    format!("{} {} {}", unit.org, unit.source, unit.month)
}

fn outcome(unit: &Wanted, outcome: Outcome) -> UnitOutcome {
    UnitOutcome {
        org: unit.org.clone(),
        source: unit.source.to_string(),
        month: unit.month.to_string(),
        outcome,
        rows_written: 0,
        ms: 0,
        exit_code: None,
        error: None,
    }
}

fn failed_outcome(org: &str, source: Uuid, month: Month, e: &Error) -> UnitOutcome {
    UnitOutcome {
        org: org.to_string(),
        source: source.to_string(),
        month: month.to_string(),
        outcome: Outcome::Failed,
        rows_written: 0,
        ms: 0,
        exit_code: Some(e.exit_code()),
        error: Some(e.to_string()),
    }
}
