//! The one integration-test binary: a real PostgreSQL, real Parquet files, the built binary.

mod e2e;
mod harness;
mod input;
mod layout;
mod parity;
mod reliability;
mod s3;
mod write;
