//! The command line: every flag defined once, documented here, with its environment twin. Part
//! of the binary: the library never sees these types (`request.rs` resolves them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "costagg",
    version,
    about = "Daily usage summary of OpenShift/Kubernetes pod usage, from koku's Parquet to PostgreSQL",
    long_about = long_about()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter, e.g. `info` or `costagg=debug` (RUST_LOG works too).
    #[arg(long, global = true, env = "COSTAGG_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// The description `--help` prints, with the exit-code table (`costagg::error::EXIT_CODES`).
fn long_about() -> String {
    let mut text = String::from(
        "costagg reads one cluster-month of koku's pod usage line items (Parquet), computes koku's \
         daily usage summary (reporting_ocpusagelineitem_daily_summary) and replaces that month's \
         rows in PostgreSQL in one transaction. A failed run leaves the previous rows in place.\n\n\
         Exit codes:",
    );
    for c in costagg::error::EXIT_CODES {
        let retry = if c.retry { " (retry)" } else { "" };
        text.push_str(&format!("\n  {:>3}  {}{retry}", c.code, c.meaning));
    }
    text
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise one unit (source, month) and replace its rows in PostgreSQL.
    #[command(after_help = "Examples:\n  \
costagg run --input ./sample --org org1234567 --source 6f5f1c0e-0000-4000-8000-000000000001 --month 2025-10\n  \
DATABASE_URL=postgres://costagg@localhost/koku costagg run --input /data --org org1 \\\n      \
--source $SOURCE --month 2025-10 --start-date 2025-10-10 --end-date 2025-10-12\n  \
costagg run --dry-run --input ./sample --org org1234567 --source $SOURCE --month 2025-10\n  \
costagg run --explain --input ./sample --org org1234567 --source $SOURCE --month 2025-10")]
    Run(RunArgs),
    /// Write deterministic sample data in koku's Parquet layout.
    #[command(after_help = "Examples:\n  \
costagg generate --rows 1000000 --month 2025-10 --org org1234567 \\\n      \
--source 6f5f1c0e-0000-4000-8000-000000000001 --out ./sample\n  \
costagg generate --rows 20000 --month 2025-09 --month 2025-10 --org org1234567 \\\n      \
--source 6f5f1c0e-0000-4000-8000-000000000001 --source 6f5f1c0e-0000-4000-8000-000000000002 --out ./fleet")]
    Generate(GenerateArgs),
    /// Compare the unit's per-day totals in its input with its rows in the summary table.
    #[command(
        long_about = "Compare the unit's per-day totals in its input with its rows in the summary table, as \
koku's Trino-vs-PostgreSQL validation does: per day of the month, pod CPU usage core-hours, pod \
effective CPU usage core-hours (koku's own check), pod memory usage GiB-hours and PVC capacity \
GiB-months. The input is read and checked as a run reads it, selecting the line items the \
summary selects; the table's Pod rows leave out the unallocated and unattributed namespaces. A \
day whose totals differ by more than the tolerance, or that one side lacks, is drift. Prints one \
line per (day, quantity) on stdout; writes nothing to the database.",
        after_help = "Examples:\n  \
DATABASE_URL=postgres://costagg@localhost/koku costagg verify --input ./sample --org org1234567 \\\n      \
--source 6f5f1c0e-0000-4000-8000-000000000001 --month 2025-10\n  \
costagg verify --input /data --org org1 --source $SOURCE --month previous --report verify.json\n\n\
Exit codes: 0 every day within the tolerance; 7 drift; otherwise the error's code as for run \
(2 config, 3 input, 4 database; `costagg --help` lists them all)."
    )]
    Verify(VerifyArgs),
    /// Check the config, the database connection and the input location; list the units.
    #[command(after_help = "Examples:\n  \
costagg check --config config/costagg.yaml --input ./sample\n  \
DATABASE_URL=postgres://costagg@localhost/koku costagg check --input /data --schema org1234567\n\n\
Exit codes: 0 every check passed; otherwise the code of the first failure (2 config, \
3 input, 4 database; `costagg --help` lists them all).")]
    Check(CheckArgs),
    /// Summarise every unit under the input root whose files changed since its last write,
    /// sharing the units with any other sweep running against the same database.
    #[command(
        long_about = "Summarise every unit (org, source, month) under the input root whose files or settings \
changed since its last successful write, each replaced in one transaction as `costagg run` does. \
A unit is due when it was never written, when its files (paths, sizes, ETags from the listing; no \
file is read) differ from those its last write read, or when koku's enabled tag keys or cost \
categories of its schema changed; --force re-summarises every unit not written since this sweep \
started. Several sweeps may run at once, in processes or pods: each unit is claimed in \
<sweep.state_schema>.costagg_sweep_units under a lease its worker renews; a worker that dies loses \
its units when the lease runs out, and another sweep takes them over. One unit's failure never \
stops the others.",
        after_help = "Examples:\n  \
DATABASE_URL=postgres://costagg@localhost/koku costagg sweep --input ./sample\n  \
costagg sweep --input s3://cost-management/koku --org org1234567 --since 2025-01 --until 2025-06\n  \
costagg sweep --input /data --workers 2 --metrics-push http://pushgateway:9091 --report fleet.json\n\n\
Exit codes: 0 no unit failed (also: all up to date); 8 some units failed (each unit's code is in \
the report; the next sweep retries them); otherwise the sweep could not start (2 config, 4 \
database or store unavailable, 143/130 stopped; `costagg --help` lists them all)."
    )]
    Sweep(SweepArgs),
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Root of koku's tree (`<root>/data/parquet/<org>/OCP/...`): a folder or s3://bucket/prefix.
    #[arg(long, env = "COSTAGG_INPUT__ROOT")]
    pub input: Option<String>,
    /// Only this org (repeat for several; default: every org under the root).
    #[arg(long = "org", value_name = "ORG")]
    pub orgs: Vec<String>,
    /// First month: YYYY-MM, `current` or `previous` (UTC) [default: previous].
    #[arg(long, env = "COSTAGG_SWEEP_SINCE")]
    pub since: Option<String>,
    /// Last month: YYYY-MM, `current` or `previous` (UTC) [default: current].
    #[arg(long, env = "COSTAGG_SWEEP_UNTIL")]
    pub until: Option<String>,
    /// Re-summarise every unit not written since this sweep started, changed or not.
    #[arg(long)]
    pub force: bool,
    /// Units at once in this process, sharing the profile's memory and partitions [default:
    /// the profile's `workers`].
    #[arg(long, env = "COSTAGG_SWEEP_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds a claim holds unless renewed (default: sweep.lease_seconds, 60).
    #[arg(long, env = "COSTAGG_SWEEP__LEASE_SECONDS")]
    pub lease_seconds: Option<u64>,
    /// This worker's name in the claim table and its metrics group [default: the host name].
    #[arg(long, env = "COSTAGG_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Push the metrics to this Prometheus Pushgateway (default: metrics.push_url).
    #[arg(long, env = "COSTAGG_METRICS__PUSH_URL")]
    pub metrics_push: Option<String>,
    /// Also write the fleet report as JSON to this file.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// PostgreSQL URL (prefer the environment for passwords).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema to write every org's units into (default: database.schema, else each unit's org).
    #[arg(long, env = "COSTAGG_DATABASE__SCHEMA")]
    pub schema: Option<String>,
    /// Config file (default: config/costagg.yaml when it exists).
    #[arg(long, env = "COSTAGG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Performance profile: auto, small, medium, large, or one from the config file.
    #[arg(long, env = "COSTAGG_PROFILE")]
    pub profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file (default: config/costagg.yaml when it exists).
    #[arg(long, env = "COSTAGG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Root of koku's tree to look for units in (default: input.root).
    #[arg(long, env = "COSTAGG_INPUT__ROOT")]
    pub input: Option<String>,
    /// PostgreSQL URL to test (default: database.url).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema whose koku tables to look for (default: database.schema).
    #[arg(long, env = "COSTAGG_DATABASE__SCHEMA")]
    pub schema: Option<String>,
    /// Performance profile to resolve.
    #[arg(long, env = "COSTAGG_PROFILE")]
    pub profile: Option<String>,
}

/// The flags that name a unit and where its input, config and summary table are: `run` and
/// `verify` take the same ones.
#[derive(Debug, Args)]
pub struct UnitArgs {
    /// Root of koku's tree (`<root>/data/parquet/<org>/OCP/...`): a folder or s3://bucket/prefix.
    #[arg(long, env = "COSTAGG_INPUT__ROOT")]
    pub input: Option<String>,
    /// Organisation (koku's org id, e.g. org1234567); a path level and the default schema.
    #[arg(long, env = "COSTAGG_ORG")]
    pub org: String,
    /// The cluster's source UUID.
    #[arg(long, env = "COSTAGG_SOURCE")]
    pub source: uuid::Uuid,
    /// The month: YYYY-MM, or `current` / `previous` (UTC), as a CronJob would pass.
    #[arg(long, env = "COSTAGG_MONTH")]
    pub month: String,
    /// PostgreSQL schema of the summary table (default: database.schema, else the org).
    #[arg(long, env = "COSTAGG_DATABASE__SCHEMA")]
    pub schema: Option<String>,
    /// PostgreSQL URL, e.g. postgres://user@host:5432/db (prefer the environment for passwords).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Config file (default: config/costagg.yaml when it exists).
    #[arg(long, env = "COSTAGG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Performance profile: auto, small, medium, large, or one from the config file.
    #[arg(long, env = "COSTAGG_PROFILE")]
    pub profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub unit: UnitArgs,
    /// First day to summarise, YYYY-MM-DD (default: the month's first day).
    #[arg(long)]
    pub start_date: Option<chrono::NaiveDate>,
    /// Last day to summarise, inclusive, YYYY-MM-DD (default: the month's last day).
    #[arg(long)]
    pub end_date: Option<chrono::NaiveDate>,
    /// Cluster id written to each row (default: from koku's reporting_ocpusagereportperiod row
    /// for the source and month when the schema has one, else the source UUID).
    #[arg(long, env = "COSTAGG_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Cluster alias written to each row (default: from koku's report period row, else the
    /// cluster id).
    #[arg(long, env = "COSTAGG_CLUSTER_ALIAS")]
    pub cluster_alias: Option<String>,
    /// koku's report period id written to each row (default: from koku's report period row,
    /// else null).
    #[arg(long, env = "COSTAGG_REPORT_PERIOD_ID")]
    pub report_period_id: Option<i32>,
    /// Also write the run report as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Summarise without writing: print per-day, per-namespace totals instead. Reads koku's
    /// reference tables when a database URL is given, else the config's.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: (day, namespace) rows of the preview to print; 0 prints all.
    #[arg(long, default_value_t = 40)]
    pub preview_rows: usize,
    /// Print the query plans of the summary and exit without writing. `--explain` (or
    /// `--explain=plan`) runs only the small steps computed into tables first (node capacities,
    /// the claims' nodes); `--explain=analyze` also runs the Pod and Storage sections and prints
    /// each operator's rows, time and memory (DataFusion's EXPLAIN ANALYZE).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "plan")]
    pub explain: Option<Explain>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub unit: UnitArgs,
    /// Largest difference between a day's two totals of a quantity that still agrees (koku's: 1,
    /// in the quantity's unit).
    #[arg(long, default_value_t = costagg::verify::KOKU_TOLERANCE)]
    pub tolerance: f64,
    /// Also write the comparison as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// What `--explain` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Explain {
    /// The physical plans; only the steps computed into tables first run.
    Plan,
    /// The plans after running them, with per-operator metrics.
    Analyze,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Hourly pod usage rows to write in total.
    #[arg(long)]
    pub rows: u64,
    /// The month, YYYY-MM; repeat for several (every source gets every month).
    #[arg(long = "month", value_name = "MONTH", required = true)]
    pub months: Vec<String>,
    /// Organisation (a path level).
    #[arg(long)]
    pub org: String,
    /// The cluster's source UUID; repeat for several clusters.
    #[arg(long = "source", value_name = "SOURCE", required = true)]
    pub sources: Vec<uuid::Uuid>,
    /// Root folder to write `data/parquet/...` under.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed: the same seed and arguments give the same files (the n-th (source, month) takes
    /// seed + n, so the clusters differ).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}
