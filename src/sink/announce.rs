//! The signal that a unit was replaced, for koku's PostgreSQL-only steps after its summary (UI
//! summary tables, label summaries, cost model): a `NOTIFY costagg_unit_replaced` with a JSON
//! payload, and the same payload as a row of `<schema>.costagg_unit_replaced`, an outbox a
//! consumer can poll. Both are made in the unit's transaction, so they exist exactly when its
//! commit does: PostgreSQL delivers a transaction's notifications only on commit, and a rolled
//! back unit leaves neither.

use chrono::NaiveDate;
use serde::Serialize;
use tokio_postgres::Transaction;

use super::{ddl_lock_key, qualified, quote_ident, table_exists};
use crate::error::{Error, Result};
use crate::unit::{ClusterIdentity, UnitOfWork};

/// The channel of `NOTIFY` (and `LISTEN`).
pub const CHANNEL: &str = "costagg_unit_replaced";

/// The outbox table, in the unit's schema.
pub const OUTBOX_TABLE: &str = "costagg_unit_replaced";

/// What a consumer learns of a replaced unit: the NOTIFY payload and the outbox row's
/// `payload`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Replaced {
    /// The outbox row's id.
    pub id: i64,
    pub schema: String,
    pub source: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The days whose rows were replaced, `YYYY-MM-DD`.
    pub first_day: String,
    pub last_day: String,
    pub rows: u64,
    pub report_period_id: Option<i32>,
    pub cluster_id: String,
}

fn create_table(table_q: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table_q} (
            id bigserial PRIMARY KEY,
            replaced_at timestamptz NOT NULL DEFAULT now(),
            source_uuid uuid NOT NULL,
            month text NOT NULL,
            first_day date NOT NULL,
            last_day date NOT NULL,
            rows_written bigint NOT NULL,
            payload jsonb NOT NULL,
            -- Left to consumers: set when the replaced unit has been dealt with.
            processed_at timestamptz
         )"
    )
}

/// Adds the outbox row (creating the table when missing) and queues the notification, in the
/// unit's transaction `tx`, for the rows of `first_day..=last_day` just written.
pub(super) async fn replaced(
    tx: &Transaction<'_>,
    unit: &UnitOfWork,
    (first_day, last_day): (NaiveDate, NaiveDate),
    rows: u64,
    identity: &ClusterIdentity,
) -> Result<Replaced> {
    let table_q = qualified(&quote_ident(&unit.schema), OUTBOX_TABLE);
    if !table_exists(tx, &unit.schema, OUTBOX_TABLE).await? {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ddl_lock_key(&unit.schema)])
            .await
            .map_err(Error::database("lock schema for DDL"))?;
        tx.batch_execute(&create_table(&table_q))
            .await
            .map_err(Error::database("create the outbox table"))?;
    }
    let db = |e| Error::database("announce the replaced unit")(e);
    let sequence = "SELECT nextval(pg_get_serial_sequence($1, 'id'))";
    let id: i64 = tx.query_one(sequence, &[&table_q]).await.map_err(db)?.get(0);
    let replaced = Replaced {
        id,
        schema: unit.schema.to_string(),
        source: unit.source.to_string(),
        month: unit.month_label(),
        first_day: first_day.to_string(),
        last_day: last_day.to_string(),
        rows,
        report_period_id: identity.report_period_id,
        cluster_id: identity.cluster_id.clone(),
    };
    let payload =
        serde_json::to_string(&replaced).map_err(|e| Error::Internal(format!("encode the payload: {e}")))?;
    let sql = format!(
        "INSERT INTO {table_q} (id, source_uuid, month, first_day, last_day, rows_written, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb)"
    );
    let rows = rows as i64;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &id,
        &unit.source,
        &replaced.month,
        &first_day,
        &last_day,
        &rows,
        &payload,
    ];
    tx.execute(&sql, &params).await.map_err(db)?;
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await
        .map_err(db)?;
    Ok(replaced)
}
