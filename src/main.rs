//! The `costagg` binary: parse the command line, set up logging and the runtime, hand over.

use std::process::ExitCode;

use clap::Parser;
use costagg::cli::{Cli, Command};
use costagg::error::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    costagg::telemetry::init(cli.log_level.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("costagg: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("costagg: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn dispatch(command: Command) -> Result<(), Error> {
    match command {
        Command::Run(args) => {
            let request = costagg::RunRequest::from_args(&args)?;
            let report = costagg::run(&request).await?;
            if let Some(path) = &args.report {
                let json = serde_json::to_string_pretty(&report)
                    .map_err(|e| Error::Internal(format!("report is not serialisable: {e}")))?;
                std::fs::write(path, json).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(())
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
    }
}
