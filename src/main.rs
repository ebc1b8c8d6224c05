//! The `costagg` binary: parse the command line, set up logging and the runtime, hand over,
//! and present the result.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use costagg::cli::{Cli, Command, RunArgs};
use costagg::error::Error;
use costagg::report::Progress;
use costagg::telemetry::{self, Format};
use costagg::{RunOutput, RunRequest};

fn main() -> ExitCode {
    costagg::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    let format = telemetry::init(cli.log_level.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("costagg: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command, format)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("costagg: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn dispatch(command: Command, format: Format) -> Result<(), Error> {
    match command {
        Command::Run(args) => {
            let request = RunRequest::from_args(&args)?;
            let progress = Arc::new(Progress::default());
            let spinner = telemetry::show_progress(format, progress.clone());
            let output = costagg::run(&request, &progress, shutdown_signal()).await;
            drop(spinner);
            present(&args, format, output?)
        }
        Command::Generate(args) => {
            let summary =
                costagg::generate::generate(&costagg::generate::GenerateRequest::from_args(&args)?)?;
            eprintln!(
                "costagg: wrote {} pod usage and {} storage usage rows in {} files under {}, and the \
                 nodes' roles to {}",
                summary.pod_rows,
                summary.storage_rows,
                summary.files,
                args.out.display(),
                args.out.join(costagg::generate::NODE_ROLES_CSV).display()
            );
            Ok(())
        }
        Command::Check(args) => {
            let outcome = costagg::check::check(&args).await;
            print!("{}", outcome.text);
            outcome.failure.map_or(Ok(()), Err)
        }
    }
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
    if let Some(plan) = &output.plan {
        print!("{plan}");
        return Ok(());
    }
    if let Some(preview) = &output.preview {
        print!("{}", preview.table(args.preview_rows));
    }
    let report = &output.report;
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
    if let Some(path) = &args.report {
        std::fs::write(path, &json).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}
