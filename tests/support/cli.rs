//! The one command builder for the built binary.

use std::ffi::OsStr;
use std::process::Command;

use super::fixtures::ORG;

/// The built binary, run from the project's folder, with nothing of the caller's environment
/// that would change what it does: no `DATABASE_URL` (a test sets its own), no COPY pause
/// (`COSTAGG_FAILPOINT_COPY_PAUSE_MS`), no `AWS_ENDPOINT_URL`. Callers add arguments, the
/// log format they read and the stdio they need.
pub fn costagg() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_costagg"));
    c.env_remove("DATABASE_URL")
        .env_remove("COSTAGG_FAILPOINT_COPY_PAUSE_MS")
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// [`costagg`] with `run --org ORG --source <source> --month 2025-10 --input <input>`: the
/// October unit most tests run.
pub fn costagg_run_october(source: &str, input: impl AsRef<OsStr>) -> Command {
    let mut c = costagg();
    c.args([
        "run", "--org", ORG, "--source", source, "--month", "2025-10", "--input",
    ])
    .arg(input);
    c
}

/// [`costagg`] with `verify --org ORG --source <source> --month 2025-10 --input <input>` against
/// the database at `url`, logging as text.
pub fn costagg_verify_october(source: &str, input: impl AsRef<OsStr>, url: &str) -> Command {
    let mut c = costagg();
    c.args([
        "verify", "--org", ORG, "--source", source, "--month", "2025-10", "--input",
    ])
    .arg(input)
    .env("DATABASE_URL", url)
    .env("COSTAGG_LOG_FORMAT", "text");
    c
}
