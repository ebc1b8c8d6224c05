//! What the integration tests share: a database of its own per test on a real PostgreSQL
//! (dropped when the test is done), private clusters a test may stop, moto's S3 server, the one
//! command builder for the built binary, and the units and Parquet fixtures the tests run.
//!
//! Test modules take all of it with `use crate::support::*;`.

mod cli;
mod cluster;
mod db;
mod fixtures;
mod koku;
mod s3;

pub use cli::*;
pub use cluster::*;
pub use db::*;
pub use fixtures::*;
pub use koku::*;
pub use s3::*;
