//! The error taxonomy: one enum, grouped by stage, each with its exit code; and the exit-code
//! table that `--help`, the README and the CronJob's `podFailurePolicy` follow.

use std::path::PathBuf;

/// Everything that can stop a run. `Display` names the object and, when known, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, environment variable or config key (`key` names it) holds a value costagg
    /// cannot use.
    #[error("config: `{key}` {problem}")]
    Config { key: String, problem: String },

    /// Several config problems, collected so the operator sees all of them at once.
    #[error("{} config problems:\n  {}", .0.len(), join_lines(.0))]
    ConfigProblems(Vec<Error>),

    /// An input file that cannot be listed or opened as Parquet.
    #[error("cannot read {file}: {problem}")]
    InputUnreadable { file: String, problem: String },

    /// An input file that lacks a column, or holds it in a type costagg cannot read.
    #[error("{file}: column `{column}` {problem} (expected {expected})")]
    InputSchema {
        file: String,
        column: String,
        expected: String,
        problem: String,
    },

    /// Several input problems, collected so the operator sees all of them at once.
    #[error("{} input problem(s), nothing was written:\n  {}", .0.len(), join_lines(.0))]
    InputProblems(Vec<Error>),

    /// No files of a required report type where the unit's are looked for.
    #[error(
        "no {report} files for this unit under {searched}; nothing was written \
         (check --input, --org, --source and --month)"
    )]
    NoInput { report: String, searched: String },

    /// Pod usage files, but no usable row in the unit's day range.
    #[error(
        "no pod usage rows between {start} and {end} in {searched}; nothing was written \
         (the files hold other days, or the day range is wrong)"
    )]
    NoRowsInRange {
        start: String,
        end: String,
        searched: String,
    },

    /// Malformed rows under `input.bad_rows: fail`.
    #[error(
        "{problems}; nothing was written (input.bad_rows is `fail`; `skip` summarises without \
         these rows)"
    )]
    BadRows { problems: String },

    /// Two files whose hours overlap report the same rows: an upload sent twice.
    #[error(
        "{report}: {keys} ({key}) keys are reported more than once, by files whose hours overlap \
         ({files}); summed, they would count twice; nothing was written (remove the copy)"
    )]
    ReportedTwice {
        report: String,
        key: String,
        keys: u64,
        files: String,
    },

    /// The input store (a folder, S3) could not be reached or listed.
    #[error("input store: {location}: {problem}")]
    Store { location: String, problem: String },

    /// A PostgreSQL error at `stage`: connecting, a statement, the COPY, the commit.
    #[error("database ({stage}): {}", describe_database(.source))]
    Database {
        stage: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The existing summary table lacks koku's layout; costagg never alters a table, so only
    /// a migration helps.
    #[error("database: {0}")]
    DatabaseSchema(String),

    /// Another run held the unit's lock past `database.lock_timeout_seconds`.
    #[error(
        "another run holds the lock of unit {unit}; it was not changed \
         (wait for the other run, or raise database.lock_timeout_seconds)"
    )]
    UnitLocked { unit: String },

    /// SIGTERM or SIGINT arrived before the commit.
    #[error(
        "stopped by {signal}; the open transaction was rolled back and the unit's previous rows \
         are unchanged"
    )]
    Interrupted { signal: &'static str },

    /// An error of the query engine; `describe_engine` adds the fix where one is known.
    #[error("query engine: {}", describe_engine(.0))]
    Engine(#[from] datafusion::error::DataFusionError),

    /// An Arrow error outside the engine (building or encoding a batch): a bug.
    #[error("record batch: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    /// A local file or folder costagg writes or reads (`--report`, `generate`'s output, the
    /// spill folder, a local input folder) could not be used. Not the store or the database:
    /// running the unit again would not help.
    #[error("{what} {path}: {source}")]
    LocalIo {
        /// What failed on which file, and what that means for the run ("cannot write the run
        /// report (the run itself succeeded)").
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `costagg verify` found day totals of the input and the table further apart than the
    /// tolerance, or present on one side only; `drifted` names the first of them.
    #[error(
        "verify: {count} of {compared} day totals of unit {unit} differ between the input and the \
         table by more than {tolerance} or are missing on one side ({drifted}); run the unit \
         again (`costagg run`) to replace its rows"
    )]
    Drift {
        unit: String,
        count: usize,
        compared: usize,
        tolerance: f64,
        drifted: String,
    },

    /// `costagg sweep` ran every due unit, and some failed; each unit's own error (and code)
    /// is in the fleet report.
    #[error(
        "sweep: {failed} of {of} due units failed (the first: {first}); the others were \
         written; the next sweep tries the failed ones again"
    )]
    UnitsFailed { failed: usize, of: usize, first: String },

    /// A broken invariant: a bug in costagg.
    #[error("internal error (a bug in costagg, please report it): {0}")]
    Internal(String),
}

/// A tokio-postgres error with what lies under it: the server's message (and detail, hint,
/// and for a COPY the row and column) for a server error, else the chain of causes ("error connecting to server: Connection
/// refused"). Its own `Display` is only "db error" for the former.
fn describe_database(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        // Where in a COPY: the summary row and the column a value did not fit.
        if let Some(at) = db.where_().filter(|w| w.starts_with("COPY ")) {
            text.push_str(&format!("; at {}", at.lines().next().unwrap_or(at)));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(&format!(": {next}"));
        }
        source = s.source();
    }
    text
}

/// A database error's exit code: 4 (retry) unless only a change can make it succeed.
/// - 2: the server refused the login (SQLSTATE class 28: password, `pg_hba.conf`), the
///   database does not exist (3D000), a constraint of koku's refuses the rows (class 23:
///   a foreign key such as `report_period_id`, not null, unique, check), the schema does not
///   match (class 42: a missing table or column, a permission the role lacks), the server
///   cannot do what was asked (class 0A), or the TLS handshake failed (`sslmode` or
///   `sslrootcert` and the server disagree);
/// - 3: a value the input carries does not fit its column (class 22: too long, out of
///   range, a NUL byte).
fn database_exit_code(e: &tokio_postgres::Error) -> i32 {
    if let Some(state) = e.code() {
        let code = state.code();
        return match &code[..2] {
            "28" | "23" | "42" | "0A" => 2,
            "22" => 3,
            _ if code == "3D000" => 2,
            _ => 4,
        };
    }
    if is_tls_handshake(e) { 2 } else { 4 }
}

/// tokio-postgres reports every TLS failure (no TLS offered, a certificate that does not
/// verify) as a handshake error; its kind is not public, its message is.
pub fn is_tls_handshake(e: &tokio_postgres::Error) -> bool {
    e.to_string().starts_with("error performing TLS handshake")
}

/// Whether the engine's error is its own file I/O: its spill files.
fn is_spill_io(root: &datafusion::error::DataFusionError) -> bool {
    use datafusion::error::DataFusionError;
    match root {
        DataFusionError::IoError(_) => true,
        DataFusionError::ArrowError(a, _) => matches!(**a, datafusion::arrow::error::ArrowError::IoError(..)),
        _ => false,
    }
}

/// The engine's message; when it ran out of its memory budget, also what to change.
fn describe_engine(e: &datafusion::error::DataFusionError) -> String {
    match e.find_root() {
        datafusion::error::DataFusionError::ResourcesExhausted(_) => format!(
            "{e}; the summary needs more memory than the profile gives the engine: use a \
             profile with a larger memory_limit_bytes (`--profile large`, or \
             profiles.<name>.memory_limit_bytes), or fewer days per pass \
             (profiles.<name>.days_per_pass)"
        ),
        root if is_spill_io(root) => format!(
            "{e}; the engine's own files are its spill files: the spill folder \
             (profiles.<name>.spill_dir, `costagg check` shows it) may be full or gone"
        ),
        _ => e.to_string(),
    }
}

fn join_lines(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// One exit code: what it means, and whether running the unit again later may succeed
/// without anyone fixing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub meaning: &'static str,
    pub retry: bool,
}

const fn exit(code: i32, meaning: &'static str, retry: bool) -> Exit {
    Exit { code, meaning, retry }
}

/// The exit code of `costagg verify` when it finds drift. Only `verify` exits with it: `run`,
/// which the CronJob runs, never does.
pub const EXIT_DRIFT: i32 = 7;

/// The exit code of `costagg sweep` when units failed: the sweep went on with the others, and
/// the next one retries them, so the Job itself is not retried.
pub const EXIT_UNITS_FAILED: i32 = 8;

/// Every exit code of `costagg`. `--help` prints this table; the README's and the CronJob's
/// `podFailurePolicy` (which stops retrying the codes of `run` that cannot succeed) are checked
/// against it by tests.
pub const EXIT_CODES: [Exit; 11] = [
    exit(0, "ok (also: nothing to do)", false),
    exit(1, "internal error (a bug in costagg)", false),
    exit(
        2,
        "usage, config, table layout, database setup or a constraint of koku's schema",
        false,
    ),
    exit(3, "invalid or missing input", false),
    exit(4, "database or input store unavailable", true),
    exit(5, "unit locked by another run", true),
    exit(6, "local resource: a local file, the engine's memory", false),
    exit(7, "verify found drift between the input and the table", false),
    exit(
        8,
        "sweep: some units failed (each one's code is in the report); the next sweep retries them",
        false,
    ),
    exit(130, "stopped by SIGINT", true),
    exit(143, "stopped by SIGTERM", true),
];

impl Error {
    /// The process exit code for this error: one of [`EXIT_CODES`].
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } | Error::ConfigProblems(_) | Error::DatabaseSchema(_) => 2,
            Error::InputUnreadable { .. }
            | Error::InputSchema { .. }
            | Error::InputProblems(_)
            | Error::NoInput { .. }
            | Error::NoRowsInRange { .. }
            | Error::ReportedTwice { .. }
            | Error::BadRows { .. } => 3,
            Error::Database { source, .. } => database_exit_code(source),
            Error::Store { .. } => 4,
            Error::UnitLocked { .. } => 5,
            Error::LocalIo { .. } => 6,
            Error::Drift { .. } => EXIT_DRIFT,
            Error::UnitsFailed { .. } => EXIT_UNITS_FAILED,
            // 128 + the signal number, as a shell reports a process ended by it.
            Error::Interrupted { signal } => match *signal {
                "SIGINT" => 130,
                _ => 143,
            },
            Error::Engine(e) => match e.find_root() {
                datafusion::error::DataFusionError::ObjectStore(_) => 4,
                // The engine's own file I/O is local: its spill files (written through Arrow's
                // IPC writer, hence an Arrow I/O error too).
                root if is_spill_io(root) => 6,
                datafusion::error::DataFusionError::ParquetError(_)
                | datafusion::error::DataFusionError::ArrowError(..) => 3,
                datafusion::error::DataFusionError::ResourcesExhausted(_) => 6,
                _ => 1,
            },
            Error::Arrow(_) | Error::Internal(_) => 1,
        }
    }

    /// Whether running the same unit again later may succeed without anyone fixing anything.
    pub fn is_retryable(&self) -> bool {
        let code = self.exit_code();
        EXIT_CODES.iter().any(|c| c.code == code && c.retry)
    }

    /// One error for `problems`: the only one, or all of them together.
    pub fn config_problems(mut problems: Vec<Error>) -> Option<Error> {
        match problems.len() {
            0 => None,
            1 => problems.pop(),
            _ => Some(Error::ConfigProblems(problems)),
        }
    }

    pub fn config(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            problem: problem.into(),
        }
    }

    pub fn database(stage: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |source| Error::Database { stage, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_problems_list_every_file() {
        let e = Error::InputProblems(vec![
            Error::InputSchema {
                file: "a.parquet".into(),
                column: "pod".into(),
                expected: "a string".into(),
                problem: "is missing".into(),
            },
            Error::InputUnreadable {
                file: "b.parquet".into(),
                problem: "not a Parquet file".into(),
            },
        ]);
        let text = e.to_string();
        assert!(text.contains("a.parquet: column `pod` is missing (expected a string)"));
        assert!(text.contains("cannot read b.parquet: not a Parquet file"));
        assert_eq!(e.exit_code(), 3);
    }

    /// The table's rows as the README's "Exit codes" table writes them.
    fn readme_rows() -> Vec<String> {
        EXIT_CODES
            .iter()
            .map(|c| {
                let retry = if c.retry { "yes" } else { "no" };
                format!("| {} | {} | {retry} |", c.code, c.meaning)
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_every_exit_code_as_the_program_knows_them() {
        let readme = std::fs::read_to_string("README.md").unwrap();
        let start = readme
            .find("| code | meaning | retried |")
            .expect("README has the exit-code table");
        let table: Vec<&str> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(table, readme_rows());
    }

    #[test]
    fn the_cronjob_stops_retrying_exactly_the_codes_that_cannot_succeed() {
        let cronjob = std::fs::read_to_string("deploy/kubernetes/cronjob.yaml").unwrap();
        let line = cronjob
            .lines()
            .skip_while(|l| !l.contains("action: FailJob"))
            .find(|l| l.trim_start().starts_with("values:"))
            .expect("a FailJob rule with values");
        let listed = line.trim().trim_start_matches("values:").trim();
        // The CronJob runs `sweep`, which never exits with verify's drift code.
        let failing: Vec<String> = EXIT_CODES
            .iter()
            .filter(|c| !c.retry && c.code != 0 && c.code != EXIT_DRIFT)
            .map(|c| c.code.to_string())
            .collect();
        assert_eq!(listed, format!("[{}]", failing.join(", ")));
    }

    #[test]
    fn every_error_maps_to_a_code_of_the_table() {
        let io = || std::io::Error::other("disk full");
        let errors = [
            Error::config("--month", "bad"),
            Error::ConfigProblems(vec![]),
            Error::DatabaseSchema("x".into()),
            Error::LocalIo {
                what: "cannot write the run report".into(),
                path: "r.json".into(),
                source: io(),
            },
            Error::Engine(datafusion::error::DataFusionError::ResourcesExhausted(
                "pool".into(),
            )),
            Error::Interrupted { signal: "SIGTERM" },
            Error::Drift {
                unit: "6f5f1c0e-0000-4000-8000-000000000001/2025-10".into(),
                count: 1,
                compared: 4,
                tolerance: 1.0,
                drifted: "2025-10-03 pod_usage_cpu_core_hours".into(),
            },
            Error::UnitsFailed {
                failed: 1,
                of: 2,
                first: "org1 … 2025-10: exit 3: …".into(),
            },
        ];
        for e in &errors {
            assert!(EXIT_CODES.iter().any(|c| c.code == e.exit_code()), "{e}");
        }
        assert_eq!(Error::DatabaseSchema("x".into()).exit_code(), 2);
        assert_eq!(errors[6].exit_code(), 7);
        assert!(!errors[6].is_retryable());
        assert!(!errors[3].is_retryable());
        assert_eq!(errors[7].exit_code(), EXIT_UNITS_FAILED);
        assert!(!errors[7].is_retryable());
        let disk = Error::Engine(datafusion::error::DataFusionError::IoError(
            std::io::Error::other("No space left on device"),
        ));
        assert_eq!(disk.exit_code(), 6);
        assert!(disk.to_string().contains("spill folder"), "{disk}");
        let ipc = datafusion::arrow::error::ArrowError::IoError(
            "No space left on device".into(),
            std::io::Error::other("No space left on device"),
        );
        let ipc = Error::Engine(datafusion::error::DataFusionError::ArrowError(
            Box::new(ipc),
            None,
        ));
        assert_eq!(ipc.exit_code(), 6);
        let memory = errors[4].to_string();
        assert!(
            memory.contains("memory_limit_bytes") && memory.contains("days_per_pass"),
            "{memory}"
        );
        assert_eq!(errors[4].exit_code(), 6);
    }
}
