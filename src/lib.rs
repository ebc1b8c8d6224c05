//! costagg: koku's OpenShift daily usage summary, from Parquet to PostgreSQL.
//!
//! The pipeline for one unit of work (`run`): input (list and check files) → summary
//! (DataFusion SQL mirroring koku's) → sink (one PostgreSQL transaction). `verify` compares a
//! unit's input with what the table holds for it, day by day. The command line
//! lives in the binary (`main.rs`, `cli.rs`, `request.rs`), which resolves what the user typed
//! into the requests this library takes.

pub mod check;
pub mod config;
pub mod error;
pub mod failpoints;
pub mod fingerprint;
pub mod generate;
pub mod input;
pub mod memory;
pub mod reference;
pub mod report;
pub mod run;
pub mod sink;
pub mod summary;
pub mod sweep;
pub mod telemetry;
pub mod unit;
pub mod verify;

pub use run::{ExplainKind, Mode, RunOutput, RunRequest, run};
