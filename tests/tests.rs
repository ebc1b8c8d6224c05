//! The one integration-test binary: a real PostgreSQL, real Parquet files, the built binary.
//! What the test modules share is in `support/`.

mod e2e;
mod input;
mod koku_tables;
mod layout;
mod mutations;
mod parity;
mod reliability;
mod s3;
mod support;
mod sweep;
mod verify;
mod write;
