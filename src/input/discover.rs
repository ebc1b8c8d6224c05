//! A unit's files: listed for each report type and checked, every problem reported together
//! before anything is read or written.

use object_store::ObjectMeta;

use crate::config::InputConfig;
use crate::error::{Error, Result};
use crate::input::ReportType;
use crate::input::store::InputStore;
use crate::unit::UnitOfWork;

/// The checked files of one report type for the unit.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub report: ReportType,
    pub files: Vec<ObjectMeta>,
    /// Some file holds `interval_start` as text.
    pub text_timestamps: bool,
    /// Rows in the files (all days), from their footers.
    pub rows: u64,
    pub bytes: u64,
    /// Each file's first and last hour, where its footer tells them.
    pub spans: Vec<super::schema::FileSpan>,
}

/// Files of each report type for the unit, all checked.
#[derive(Debug, Clone)]
pub struct UnitFiles {
    pub by_report: Vec<ReportFiles>,
}

impl UnitFiles {
    /// Registers each report type's files as the table the SQL reads
    /// (`input::schema::register`); returns the rows whose text `interval_start` cannot be read.
    pub async fn register(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        store: &InputStore,
        strings: crate::config::Strings,
    ) -> Result<u64> {
        let mut unparsable_timestamps = 0;
        for r in &self.by_report {
            super::schema::register(ctx, store, r.report, &r.files, r.text_timestamps, strings)?;
            if r.text_timestamps {
                unparsable_timestamps += super::schema::count_unparsable_timestamps(ctx, r.report).await?;
            }
        }
        Ok(unparsable_timestamps)
    }

    pub fn get(&self, report: ReportType) -> Option<&ReportFiles> {
        self.by_report.iter().find(|r| r.report == report)
    }

    pub fn count(&self, report: ReportType) -> usize {
        self.get(report).map_or(0, |r| r.files.len())
    }

    pub fn total_files(&self) -> usize {
        self.by_report.iter().map(|r| r.files.len()).sum()
    }

    pub fn total_rows(&self) -> u64 {
        self.by_report.iter().map(|r| r.rows).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.by_report.iter().map(|r| r.bytes).sum()
    }

    /// The digest of every file's path, size and version (`fingerprint::of_files`).
    pub fn fingerprint(&self) -> String {
        crate::fingerprint::of_files(self.by_report.iter().flat_map(|r| &r.files))
    }

    /// Rows in the pod usage files, from their footers.
    pub fn pod_rows(&self) -> u64 {
        self.get(ReportType::PodUsage).map_or(0, |r| r.rows)
    }
}

/// Lists and checks every file of the unit; all problems are reported together, before
/// anything is written. No pod usage files is an error naming the folder searched.
pub async fn discover(store: &InputStore, input: &InputConfig, unit: &UnitOfWork) -> Result<UnitFiles> {
    let mut by_report = Vec::new();
    let mut problems = Vec::new();
    for report in ReportType::ALL {
        let (searched, files) = super::layout::list_files(store, input, unit, report).await?;
        if files.is_empty() && report.required() {
            return Err(Error::NoInput {
                report: report.folder().into(),
                searched,
            });
        }
        let found = super::schema::check_files(store, report, &files).await;
        problems.extend(found.problems);
        tracing::debug!(report = report.folder(), files = files.len(), folder = %searched, "listed files");
        by_report.push(ReportFiles {
            report,
            files,
            text_timestamps: found.text_timestamps,
            rows: found.rows,
            bytes: found.bytes,
            spans: found.spans,
        });
    }
    match problems.len() {
        0 => Ok(UnitFiles { by_report }),
        1 => Err(problems.remove(0)),
        _ => Err(Error::InputProblems(problems)),
    }
}
