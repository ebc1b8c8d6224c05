//! The run report: what a run read and wrote, how long each stage took, and peak memory.

use serde::Serialize;

/// The same fields are logged at the end of a run and written as JSON with `--report`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub source: String,
    pub month: String,
    pub start_date: String,
    pub end_date: String,
    /// First day with pod usage rows: the replaced range starts here.
    pub first_day: String,
    pub schema: String,
    pub profile: String,
    pub pod_usage_files: usize,
    pub storage_usage_files: usize,
    pub node_label_files: usize,
    pub namespace_label_files: usize,
    pub rows_deleted: u64,
    pub rows_written: u64,
    /// Rows written by kind: koku's Pod section, Storage section and unallocated capacity
    /// (`data_source` 'Pod' too).
    pub pod_rows: u64,
    pub storage_rows: u64,
    pub unallocated_rows: u64,
    /// Distinct label strings that were not a JSON object of scalars (read as `{}`).
    pub malformed_labels: u64,
    /// Rows whose text `interval_start` could not be read (skipped).
    pub unparsable_timestamps: u64,
    pub table_created: bool,
    /// Listing the files and checking their schemas.
    pub check_ms: u64,
    /// Reading the reference tables.
    pub reference_ms: u64,
    /// Scan, summary and COPY, streamed together, to commit.
    pub summarize_write_ms: u64,
    pub total_ms: u64,
    pub peak_rss_bytes: Option<u64>,
}
