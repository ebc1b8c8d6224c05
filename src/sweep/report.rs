//! What a sweep did: per unit, and in total; printed as a table on a terminal, logged as one
//! JSON event otherwise, written with `--report`, and turned into metrics (`metrics.rs`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::error::Error;

/// What became of one unit in this sweep process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// This process replaced its rows.
    Written,
    /// Its files and settings are those its last write read: skipped.
    UpToDate,
    /// Another worker wrote it while this sweep ran.
    DoneElsewhere,
    /// This process's run of it failed; `exit_code` says why.
    Failed,
    /// Another worker's run of it failed in this sweep; that worker reports it.
    FailedElsewhere,
    /// Stopped by SIGTERM or SIGINT; rolled back and released for any worker.
    Interrupted,
}

/// One unit's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct UnitOutcome {
    pub org: String,
    pub source: String,
    /// `YYYY-MM`.
    pub month: String,
    pub outcome: Outcome,
    pub rows_written: u64,
    /// The run's time, when this process ran it.
    pub ms: u64,
    /// The failure's exit code (as `costagg run` would exit) and message.
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

/// The whole sweep, as one process saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetReport {
    pub worker: String,
    /// The months swept, `YYYY-MM..YYYY-MM`.
    pub months: String,
    pub force: bool,
    /// Units found under the root (in the months and orgs asked for).
    pub units_found: usize,
    /// Units whose files or settings changed since their last write, or never written.
    pub due: usize,
    pub written: usize,
    pub up_to_date: usize,
    pub done_elsewhere: usize,
    pub failed: usize,
    pub failed_elsewhere: usize,
    pub interrupted: usize,
    pub rows_written: u64,
    /// Folders that look like units but cannot be one, with why.
    pub ignored: Vec<String>,
    /// Objects listed under the root.
    pub objects_listed: usize,
    pub listing_ms: u64,
    pub total_ms: u64,
    pub peak_rss_bytes: Option<u64>,
    /// Every unit found, sorted by org, source and month.
    pub units: Vec<UnitOutcome>,
}

impl FleetReport {
    /// Counts the units' outcomes into the totals.
    pub fn tally(&mut self) {
        let count = |o: Outcome| self.units.iter().filter(|u| u.outcome == o).count();
        self.written = count(Outcome::Written);
        self.up_to_date = count(Outcome::UpToDate);
        self.done_elsewhere = count(Outcome::DoneElsewhere);
        self.failed = count(Outcome::Failed);
        self.failed_elsewhere = count(Outcome::FailedElsewhere);
        self.interrupted = count(Outcome::Interrupted);
        self.units_found = self.units.len();
        self.rows_written = self.units.iter().map(|u| u.rows_written).sum();
    }

    /// The error the process ends with: none when no unit failed here; else exit 8 naming the
    /// failed units (or the signal's code when it was stopped). Needs the totals of `tally`.
    pub fn failure(&self) -> Option<Error> {
        if let Some(signal) = self.interrupted_by() {
            return Some(Error::Interrupted { signal });
        }
        let first = self.units.iter().find(|u| u.outcome == Outcome::Failed)?;
        Some(Error::UnitsFailed {
            failed: self.failed,
            of: self.due,
            first: format!(
                "{} {} {}: exit {}: {}",
                first.org,
                first.source,
                first.month,
                first.exit_code.unwrap_or(1),
                first.error.as_deref().unwrap_or("")
            ),
        })
    }

    fn interrupted_by(&self) -> Option<&'static str> {
        self.units
            .iter()
            .find(|u| u.outcome == Outcome::Interrupted)
            .map(|u| match u.exit_code {
                Some(130) => "SIGINT",
                _ => "SIGTERM",
            })
    }

    /// A short table for a terminal, and every unit that failed.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  units      {} found in {} (worker {}{}): {} due, {} written, {} up to date, {} written by another worker",
            self.units_found,
            self.months,
            self.worker,
            if self.force { ", --force" } else { "" },
            self.due,
            self.written,
            self.up_to_date,
            self.done_elsewhere,
        );
        let _ = writeln!(
            out,
            "  failed     {} here, {} by another worker{}",
            self.failed,
            self.failed_elsewhere,
            if self.interrupted > 0 {
                format!("; {} stopped by a signal and released", self.interrupted)
            } else {
                String::new()
            }
        );
        let _ = writeln!(out, "  rows       {} written", self.rows_written);
        let _ = writeln!(
            out,
            "  time       {:.2} s total, listing {} objects {} ms; peak RSS {}",
            self.total_ms as f64 / 1000.0,
            self.objects_listed,
            self.listing_ms,
            self.peak_rss_bytes
                .map_or("unknown".into(), |b| format!("{:.0} MiB", b as f64 / 1_048_576.0))
        );
        for u in self.units.iter().filter(|u| u.outcome == Outcome::Failed) {
            let _ = writeln!(
                out,
                "  FAILED     {} {} {} (exit {}): {}",
                u.org,
                u.source,
                u.month,
                u.exit_code.unwrap_or(1),
                u.error.as_deref().unwrap_or("")
            );
        }
        for why in &self.ignored {
            let _ = writeln!(out, "  ignored    {why}");
        }
        out
    }
}
