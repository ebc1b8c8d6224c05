//! The error taxonomy: one enum, grouped by stage, each with its exit code.

use std::path::PathBuf;

/// Everything that can stop a run. `Display` names the object and, when known, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: `{key}` {problem}")]
    Config { key: String, problem: String },

    #[error("cannot read {file}: {problem}")]
    InputUnreadable { file: String, problem: String },

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

    #[error(
        "no {report} files for this unit under {searched}; nothing was written \
         (check --input, --org, --source and --month)"
    )]
    NoInput { report: String, searched: String },

    #[error(
        "no pod usage rows between {start} and {end} in {searched}; nothing was written \
         (the files hold other days, or the day range is wrong)"
    )]
    NoRowsInRange {
        start: String,
        end: String,
        searched: String,
    },

    #[error(
        "{problems}; nothing was written (input.bad_rows is `fail`; `skip` summarises without \
         these rows)"
    )]
    BadRows { problems: String },

    #[error("input store: {location}: {problem}")]
    Store { location: String, problem: String },

    #[error("database ({stage}): {}", describe_database(.source))]
    Database {
        stage: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("database: {0}")]
    DatabaseSchema(String),

    #[error(
        "another run holds the lock of unit {unit}; it was not changed \
         (wait for the other run, or raise database.lock_timeout_seconds)"
    )]
    UnitLocked { unit: String },

    #[error(
        "stopped by {signal}; the open transaction was rolled back and the unit's previous rows \
         are unchanged"
    )]
    Interrupted { signal: &'static str },

    #[error("query engine: {0}")]
    Engine(#[from] datafusion::error::DataFusionError),

    #[error("record batch: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("internal error (a bug in costagg, please report it): {0}")]
    Internal(String),
}

/// A tokio-postgres error with what lies under it: the server's message (and detail, hint)
/// for a server error, else the chain of causes ("error connecting to server: Connection
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

fn join_lines(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

impl Error {
    /// The process exit code for this error; the CronJob's `podFailurePolicy` keys on it.
    ///
    /// | code | meaning |
    /// |---|---|
    /// | 1 | internal error (a bug) |
    /// | 2 | usage or config error |
    /// | 3 | invalid or missing input |
    /// | 4 | database or store unavailable (retryable) |
    /// | 5 | unit locked by another run (retryable) |
    /// | 130, 143 | stopped by SIGINT or SIGTERM (retryable) |
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } => 2,
            Error::InputUnreadable { .. }
            | Error::InputSchema { .. }
            | Error::InputProblems(_)
            | Error::NoInput { .. }
            | Error::NoRowsInRange { .. }
            | Error::BadRows { .. } => 3,
            Error::Database { .. } | Error::DatabaseSchema(_) | Error::Io { .. } | Error::Store { .. } => 4,
            Error::UnitLocked { .. } => 5,
            // 128 + the signal number, as a shell reports a process ended by it.
            Error::Interrupted { signal } => match *signal {
                "SIGINT" => 130,
                _ => 143,
            },
            Error::Engine(e) => match e.find_root() {
                datafusion::error::DataFusionError::ObjectStore(_)
                | datafusion::error::DataFusionError::IoError(_) => 4,
                datafusion::error::DataFusionError::ParquetError(_)
                | datafusion::error::DataFusionError::ArrowError(..) => 3,
                _ => 1,
            },
            Error::Arrow(_) | Error::Internal(_) => 1,
        }
    }

    /// Whether running the same unit again later may succeed without anyone fixing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self.exit_code(), 4 | 5 | 130 | 143)
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
}
