//! What the user typed, resolved into the library's requests: flags over environment over
//! config file over defaults, the profile turned into numbers, the unit checked. Runs before
//! the async runtime starts, so a usage error never starts one.

use costagg::config::{self, Config};
use costagg::error::{Error, Result};
use costagg::generate::GenerateRequest;
use costagg::input::store::InputStore;
use costagg::sweep::SweepRequest;
use costagg::unit::{ClusterOverrides, Month, SchemaName, UnitOfWork};
use costagg::verify::VerifyRequest;
use costagg::{ExplainKind, Mode, RunRequest};

use crate::cli::{self, CheckArgs, GenerateArgs, RunArgs, SweepArgs, UnitArgs, VerifyArgs};

/// The config flags `run` and `check` share.
pub fn flags<'a>(
    config: &'a Option<std::path::PathBuf>,
    profile: &'a Option<String>,
    schema: &'a Option<String>,
    input: &'a Option<String>,
    database_url: &'a Option<String>,
) -> config::Flags<'a> {
    config::Flags {
        config: config.as_deref(),
        profile: profile.as_deref(),
        schema: schema.as_deref(),
        input: input.as_deref(),
        database_url: database_url.as_deref(),
    }
}

pub fn check_flags(args: &CheckArgs) -> config::Flags<'_> {
    flags(
        &args.config,
        &args.profile,
        &args.schema,
        &args.input,
        &args.database_url,
    )
}

/// A run's request: the config resolved, the input opened, the unit and the mode checked.
pub fn run(args: &RunArgs) -> Result<RunRequest> {
    let (config, input) = resolve(&args.unit)?;
    let mode = mode(args, config.database.url.clone())?;
    let unit = unit(args, &config)?;
    let profile = config.resolve_profile(&std::env::temp_dir())?;
    profile.check_spill_dir()?;
    Ok(RunRequest {
        unit,
        input,
        config,
        profile,
        mode,
    })
}

/// A verification's request: the config resolved, the input opened, the database and the
/// tolerance checked.
pub fn verify(args: &VerifyArgs) -> Result<VerifyRequest> {
    let (config, input) = resolve(&args.unit)?;
    let database_url = config.database.url.clone().ok_or_else(|| {
        Error::config(
            "--database-url",
            "is required to verify (or set DATABASE_URL): verify reads the summary table",
        )
    })?;
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        let why = format!(
            "`{}` is not a difference: give a number of 0 or more",
            args.tolerance
        );
        return Err(Error::config("--tolerance", why));
    }
    let unit = whole_month(&args.unit, &config)?;
    let profile = config.resolve_profile(&std::env::temp_dir())?;
    profile.check_spill_dir()?;
    Ok(VerifyRequest {
        unit,
        input,
        config,
        profile,
        database_url,
        tolerance: args.tolerance,
    })
}

/// The config from the unit's flags, environment and file, and the input root opened.
fn resolve(args: &UnitArgs) -> Result<(Config, InputStore)> {
    resolve_flags(&flags(
        &args.config,
        &args.profile,
        &args.schema,
        &args.input,
        &args.database_url,
    ))
}

/// The config from `flags`, environment and file, and the input root it names opened.
fn resolve_flags(flags: &config::Flags) -> Result<(Config, InputStore)> {
    let (config, _) = Config::resolve(flags)?;
    let root = config.input.root.clone().ok_or_else(|| {
        Error::config(
            "--input",
            "is required: the folder or s3://bucket/prefix holding koku's data/parquet tree",
        )
    })?;
    let input = InputStore::open(&root, &config.input.s3)?;
    Ok((config, input))
}

/// `--explain`, `--dry-run` or a write, which needs a database.
fn mode(args: &RunArgs, database_url: Option<String>) -> Result<Mode> {
    Ok(match (args.dry_run, args.explain) {
        (_, Some(explain)) => Mode::Explain {
            kind: match explain {
                cli::Explain::Plan => ExplainKind::Plan,
                cli::Explain::Analyze => ExplainKind::Analyze,
            },
            database_url,
        },
        (true, None) => Mode::DryRun { database_url },
        (false, None) => Mode::Write {
            database_url: database_url.ok_or_else(|| {
                Error::config(
                    "--database-url",
                    "is required to write (or set DATABASE_URL); --dry-run summarises without a database",
                )
            })?,
        },
    })
}

/// The unit the flags name: source, month, days, schema and the cluster overrides.
fn unit(args: &RunArgs, config: &Config) -> Result<UnitOfWork> {
    let overrides = ClusterOverrides {
        cluster_id: args.cluster_id.clone(),
        cluster_alias: args.cluster_alias.clone(),
        report_period_id: args.report_period_id,
    };
    whole_month(&args.unit, config)?
        .with_overrides(overrides)
        .with_days(args.start_date, args.end_date)
}

/// The whole month of the unit the shared flags name, in the schema they (or the config) give.
fn whole_month(args: &UnitArgs, config: &Config) -> Result<UnitOfWork> {
    let month = Month::parse(&args.month, "--month")?;
    let schema = match &config.database.schema {
        Some(schema) => SchemaName::parse(schema).map_err(|e| Error::config("--schema", e))?,
        None => SchemaName::parse(&args.org).map_err(|e| {
            let why = format!("{e}; the org names the schema unless --schema (database.schema) does");
            Error::config("--org", why)
        })?,
    };
    Ok(UnitOfWork::whole_month(&args.org, args.source, month, schema))
}

/// A sweep's request: the config resolved, the input opened, the months, workers, lease,
/// worker id and metrics target checked.
pub fn sweep(args: &SweepArgs) -> Result<SweepRequest> {
    let (config, input) = resolve_flags(&flags(
        &args.config,
        &args.profile,
        &args.schema,
        &args.input,
        &args.database_url,
    ))?;
    let database_url = config.database.url.clone().ok_or_else(|| {
        Error::config(
            "--database-url",
            "is required to sweep (or set DATABASE_URL): the units are written there",
        )
    })?;
    let since = Month::parse(args.since.as_deref().unwrap_or("previous"), "--since")?;
    let until = Month::parse(args.until.as_deref().unwrap_or("current"), "--until")?;
    if since > until {
        return Err(Error::config(
            "--since",
            format!("{since} is after --until {until}: no month to sweep"),
        ));
    }
    for org in &args.orgs {
        SchemaName::parse(org).map_err(|e| Error::config("--org", format!("`{org}`: {e}")))?;
    }
    let profile = config.resolve_profile(&std::env::temp_dir())?;
    profile.check_spill_dir()?;
    let workers = args.workers.unwrap_or(profile.workers);
    if workers == 0 {
        return Err(Error::config("--workers", "must be at least 1"));
    }
    let lease_seconds = args.lease_seconds.unwrap_or(config.sweep.lease_seconds);
    if lease_seconds == 0 {
        return Err(Error::config("sweep.lease_seconds", "must be at least 1 second"));
    }
    let metrics_push = args
        .metrics_push
        .clone()
        .or_else(|| config.metrics.push_url.clone());
    if let Some(url) = &metrics_push
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        let why = format!("`{url}` is not an http:// or https:// URL of a Pushgateway");
        return Err(Error::config("--metrics-push", why));
    }
    Ok(SweepRequest {
        input,
        profile,
        database_url,
        orgs: args.orgs.clone(),
        months: (since, until),
        force: args.force,
        workers,
        lease: std::time::Duration::from_secs(lease_seconds),
        worker_id: worker_id(args.worker_id.as_deref())?,
        metrics_push,
        config,
    })
}

/// `--worker-id`, else the host name (a pod's name): letters, digits, `.`, `_` and `-` only,
/// as it becomes a path segment of the metrics push.
fn worker_id(given: Option<&str>) -> Result<String> {
    let id = match given {
        Some(id) => id.to_string(),
        None => std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(sysinfo::System::host_name)
            .unwrap_or_else(|| "costagg".into()),
    };
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || !id.chars().all(fine) {
        let why = format!("`{id}` may hold only letters, digits, `.`, `_` and `-`");
        return Err(Error::config("--worker-id", why));
    }
    Ok(id)
}

/// What `generate` writes: one request per (source, month), sources first.
pub fn generate(args: &GenerateArgs) -> Result<Vec<GenerateRequest>> {
    if args.rows == 0 {
        return Err(Error::config("--rows", "must be at least 1"));
    }
    let months = args
        .months
        .iter()
        .map(|m| Month::parse(m, "--month"))
        .collect::<Result<Vec<_>>>()?;
    let mut requests = Vec::new();
    for source in &args.sources {
        for month in &months {
            requests.push(GenerateRequest {
                rows: args.rows,
                org: args.org.clone(),
                source: *source,
                month: *month,
                out: args.out.clone(),
                seed: args.seed + requests.len() as u64,
            });
        }
    }
    Ok(requests)
}
