//! What the user typed, resolved into the library's requests: flags over environment over
//! config file over defaults, the profile turned into numbers, the unit checked. Runs before
//! the async runtime starts, so a usage error never starts one.

use costagg::config::{self, Config};
use costagg::error::{Error, Result};
use costagg::generate::GenerateRequest;
use costagg::input::store::InputStore;
use costagg::unit::{ClusterOverrides, Month, SchemaName, UnitOfWork};
use costagg::verify::VerifyRequest;
use costagg::{ExplainKind, Mode, RunRequest};

use crate::cli::{self, CheckArgs, GenerateArgs, RunArgs, UnitArgs, VerifyArgs};

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
    let flags = flags(
        &args.config,
        &args.profile,
        &args.schema,
        &args.input,
        &args.database_url,
    );
    let (config, _) = Config::resolve(&flags)?;
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

/// What `generate` writes.
pub fn generate(args: &GenerateArgs) -> Result<GenerateRequest> {
    if args.rows == 0 {
        return Err(Error::config("--rows", "must be at least 1"));
    }
    Ok(GenerateRequest {
        rows: args.rows,
        org: args.org.clone(),
        source: args.source,
        month: Month::parse(&args.month, "--month")?,
        out: args.out.clone(),
        seed: args.seed,
    })
}
