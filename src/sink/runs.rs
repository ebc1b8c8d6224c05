//! The run record: one row per run in `<schema>.costagg_runs`, written in transactions of its
//! own (before the unit's and after it), so a failed or interrupted run is recorded too.

use tokio_postgres::Client;
use tracing::warn;

use crate::error::{Error, Result};
use crate::sink::{ddl_lock_key, quote_ident, table_exists};
use crate::unit::UnitOfWork;

pub const RUNS_TABLE: &str = "costagg_runs";

/// A row of `costagg_runs` this run started.
#[derive(Debug, Clone, Copy)]
pub struct RunRecord(i64);

fn create_table(schema_q: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {schema_q}; \
         CREATE TABLE IF NOT EXISTS {schema_q}.{RUNS_TABLE} (
            id bigserial PRIMARY KEY,
            source_uuid uuid NOT NULL,
            month text NOT NULL,
            start_date date NOT NULL,
            end_date date NOT NULL,
            started timestamptz NOT NULL DEFAULT now(),
            finished timestamptz,
            -- running (also: killed before it could say otherwise), succeeded, failed
            status text NOT NULL,
            rows_read bigint,
            rows_written bigint,
            rows_deleted bigint,
            exit_code integer,
            error text,
            host text
         )"
    )
}

/// Inserts the run's row (status `running`), creating the table when missing. A failure here
/// is logged, not fatal: the record is bookkeeping, the unit is the work.
pub async fn start(client: &mut Client, unit: &UnitOfWork) -> Option<RunRecord> {
    match try_start(client, unit).await {
        Ok(record) => Some(record),
        Err(e) => {
            warn!(error = %e, "cannot write the run record; the run goes on without one");
            None
        }
    }
}

async fn try_start(client: &mut Client, unit: &UnitOfWork) -> Result<RunRecord> {
    let schema_q = quote_ident(&unit.schema);
    if !table_exists(client, &unit.schema, RUNS_TABLE).await? {
        // Serialised with the summary table's DDL: concurrent CREATEs can fail on the catalog.
        let tx = client.transaction().await.map_err(Error::database("begin"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ddl_lock_key(&unit.schema)])
            .await
            .map_err(Error::database("lock schema for DDL"))?;
        tx.batch_execute(&create_table(&schema_q))
            .await
            .map_err(Error::database("create the run record table"))?;
        tx.commit().await.map_err(Error::database("commit"))?;
    }
    let host = std::env::var("HOSTNAME").ok();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO {schema_q}.{RUNS_TABLE} (source_uuid, month, start_date, end_date, status, host) \
                 VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id"
            ),
            &[
                &unit.source,
                &unit.month_label(),
                &unit.days.first(),
                &unit.days.last(),
                &host,
            ],
        )
        .await
        .map_err(Error::database("write the run record"))?;
    Ok(RunRecord(row.get(0)))
}

/// What a successful run's row records.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunCounts {
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_deleted: u64,
}

/// Marks the run's row succeeded or failed. Logged, not fatal, when it cannot be written.
pub async fn finish(
    client: &Client,
    schema: &str,
    record: RunRecord,
    outcome: std::result::Result<RunCounts, &Error>,
) {
    let sql = format!(
        "UPDATE {}.{RUNS_TABLE} SET finished = now(), status = $2, rows_read = $3, rows_written = $4, \
         rows_deleted = $5, exit_code = $6, error = $7 WHERE id = $1",
        quote_ident(schema)
    );
    let (status, read, written, deleted, code, error) = match outcome {
        Ok(r) => (
            "succeeded",
            Some(r.rows_read as i64),
            Some(r.rows_written as i64),
            Some(r.rows_deleted as i64),
            0,
            None,
        ),
        Err(e) => ("failed", None, None, None, e.exit_code(), Some(e.to_string())),
    };
    let result = client
        .execute(
            &sql,
            &[&record.0, &status, &read, &written, &deleted, &code, &error],
        )
        .await;
    if let Err(e) = result {
        warn!(error = %e, "cannot finish the run record");
    }
}
