//! The `costagg` binary: parse the command line and resolve it into a request (phase 1), then
//! start the runtime and hand over (phase 2), and present the result.

mod cli;
mod request;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use costagg::RunOutput;
use costagg::error::Error;
use costagg::telemetry::{self, Format, Progress};
use costagg::verify::Verification;

use cli::{Cli, Command, GenerateArgs, RunArgs, SweepArgs, VerifyArgs};
use costagg::sweep::FleetReport;
use futures::FutureExt;

fn main() -> ExitCode {
    costagg::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    let format = telemetry::init(cli.log_level.as_deref());
    match execute(cli.command, format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("costagg: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn execute(command: Command, format: Format) -> Result<(), Error> {
    match command {
        Command::Run(args) => {
            let request = request::run(&args)?;
            let progress = Arc::new(Progress::default());
            let output = runtime()?.block_on(async {
                let spinner = telemetry::show_progress(format, progress.clone());
                let output = costagg::run(&request, &progress, shutdown_signal()).await;
                drop(spinner);
                output
            })?;
            present(&args, format, output)
        }
        Command::Verify(args) => {
            let request = request::verify(&args)?;
            let verification = runtime()?.block_on(costagg::verify::verify(&request))?;
            present_verification(&args, &verification)
        }
        Command::Sweep(args) => {
            let request = request::sweep(&args)?;
            let shutdown = shutdown_signal().boxed().shared();
            let report = runtime()?.block_on(costagg::sweep::sweep(&request, shutdown))?;
            present_sweep(&args, format, &report)?;
            report.failure().map_or(Ok(()), Err)
        }
        Command::Generate(args) => generate(&args),
        Command::Check(args) => {
            let flags = request::check_flags(&args);
            let outcome = runtime()?.block_on(costagg::check::check(&flags));
            print!("{}", outcome.text);
            outcome.failure.map_or(Ok(()), Err)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

/// Writes the sample data, then `_SUCCESS` naming what was written (a marker, as koku's and
/// Spark's writers leave one; listings skip it). The same request into a folder that already
/// holds its `_SUCCESS` writes nothing: the files would be the same, and a container started
/// again (podman restarts a finished dependency) returns at once.
fn generate(args: &GenerateArgs) -> Result<(), Error> {
    let requests = request::generate(args)?;
    let marker = args.out.join("_SUCCESS");
    let done = format!(
        "costagg generate --rows {} --org {} --source {} --month {} --seed {}\n",
        args.rows,
        args.org,
        args.sources
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" --source "),
        args.months.join(" --month "),
        args.seed
    );
    if std::fs::read_to_string(&marker).is_ok_and(|text| text == done) {
        eprintln!(
            "costagg: {} already holds this sample data; nothing written",
            args.out.display()
        );
        return Ok(());
    }
    let (mut pod_rows, mut storage_rows, mut files) = (0, 0, 0);
    for request in &requests {
        let summary = costagg::generate::generate(request)?;
        (pod_rows, storage_rows, files) = (
            pod_rows + summary.pod_rows,
            storage_rows + summary.storage_rows,
            files + summary.files,
        );
    }
    std::fs::write(&marker, &done).map_err(|source| Error::LocalIo {
        what: "cannot write the sample data's marker".into(),
        path: marker.clone(),
        source,
    })?;
    let last = if requests.len() > 1 {
        " (of the last unit)"
    } else {
        ""
    };
    eprintln!(
        "costagg: wrote {pod_rows} pod usage and {storage_rows} storage usage rows ({} units) in \
         {files} files under {}, and the nodes' roles{last} to {}",
        requests.len(),
        args.out.display(),
        args.out.join(costagg::generate::NODE_ROLES_CSV).display()
    );
    Ok(())
}

/// Resolves to the signal's name on SIGTERM (Kubernetes eviction, `kubectl delete`) or SIGINT.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// The plan or the preview on stdout; the report as a table on stderr in text mode, as one
/// JSON log event otherwise, and as a file with `--report`.
fn present(args: &RunArgs, format: Format, output: RunOutput) -> Result<(), Error> {
    let report = match &output {
        RunOutput::Explained(plan) => {
            print!("{plan}");
            return Ok(());
        }
        RunOutput::Previewed(report, preview) => {
            print!("{}", preview.table(args.preview_rows));
            report
        }
        RunOutput::Written(report) => report,
    };
    let json = serde_json::to_string(report)
        .map_err(|e| Error::Internal(format!("report is not serialisable: {e}")))?;
    match format {
        Format::Text { .. } => eprint!("costagg: run report\n{}", report.table()),
        Format::Json => tracing::info!(
            rows_written = report.rows_written,
            pod_rows = report.pod_rows,
            storage_rows = report.storage_rows,
            unallocated_rows = report.unallocated_rows,
            rows_deleted = report.rows_deleted,
            total_ms = report.total_ms,
            peak_rss_bytes = report.peak_rss_bytes,
            dry_run = report.dry_run,
            report = %json,
            "run report"
        ),
    }
    write_report(
        &args.report,
        &json,
        "cannot write the run report (the run itself succeeded)",
    )
}

/// The fleet report as a table on stderr in text mode, as one JSON log event otherwise, and
/// as a file with `--report`.
fn present_sweep(args: &SweepArgs, format: Format, report: &FleetReport) -> Result<(), Error> {
    let json = serde_json::to_string(report)
        .map_err(|e| Error::Internal(format!("the fleet report is not serialisable: {e}")))?;
    match format {
        Format::Text { .. } => eprint!("costagg: sweep report\n{}", report.table()),
        Format::Json => tracing::info!(
            units_found = report.units_found,
            due = report.due,
            written = report.written,
            up_to_date = report.up_to_date,
            done_elsewhere = report.done_elsewhere,
            failed = report.failed,
            rows_written = report.rows_written,
            total_ms = report.total_ms,
            peak_rss_bytes = report.peak_rss_bytes,
            report = %json,
            "sweep report"
        ),
    }
    write_report(
        &args.report,
        &json,
        "cannot write the sweep report (the units themselves are recorded)",
    )
}

/// Writes `json` to the `--report` file when one is given; `what` says what failed and what
/// that means for the work done.
fn write_report(path: &Option<std::path::PathBuf>, json: &str, what: &str) -> Result<(), Error> {
    let Some(path) = path else { return Ok(()) };
    std::fs::write(path, json).map_err(|source| Error::LocalIo {
        what: what.into(),
        path: path.clone(),
        source,
    })
}

/// The comparison on stdout, and as JSON with `--report`; drift becomes the error (exit 7).
fn present_verification(args: &VerifyArgs, verification: &Verification) -> Result<(), Error> {
    print!("{}", verification.text());
    if args.report.is_some() {
        let json = serde_json::to_string_pretty(verification)
            .map_err(|e| Error::Internal(format!("the verification is not serialisable: {e}")))?;
        write_report(&args.report, &json, "cannot write the verify report")?;
    }
    verification.drift().map_or(Ok(()), Err)
}
