//! Replacing a month by building its partition aside and swapping it in.
//!
//! Row by row, PostgreSQL maintains koku's six indexes for every row COPY inserts, which costs
//! three times the COPY itself (see benches/README.md). When the summary table is costagg's own
//! (it carries [`ddl::TABLE_COMMENT`]) and the month's partition holds nothing but the rows this
//! run replaces, the month is instead:
//!
//! 1. COPied into a plain stage table with no index, over several connections at once, while
//!    the unit's transaction keeps autovacuum off the old partition and counts the rows replaced
//!    (autovacuum is kept off the stage too: [`ddl::create_stage`]);
//! 2. indexed in bulk, the indexes spread over those connections;
//! 3. swapped in by the unit's transaction, which has held the unit's lock from the start: lock
//!    the table against writers, carry over any row another run wrote to the month meanwhile,
//!    drop the old partition, attach the stage in its place under the old names; then
//!    `replace_unit` commits.
//!
//! Readers see the old month until that commit and the new one after it, as with row-by-row
//! writing. A run that fails or is killed before the commit leaves the old partition untouched
//! and at most a stage table (`costagg_stage_<key>`), which the next run of the unit drops.
//! koku's own tables (no comment) are never swapped: costagg does not alter them.

use futures::{Stream, future::try_join_all};
use tokio_postgres::{Client, Transaction};
use tracing::{debug, info};

use super::copy::OutputColumn;
use super::ddl::{self, SUMMARY_TABLE};
use super::{REPLACED, WriteOutcome, column_names, copy_batches, lock_key, qualified, quote_ident};
use crate::error::{Error, Result};
use crate::unit::UnitOfWork;
use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;

/// A month that can be swapped: its partition's name, bare and qualified.
pub(super) struct SwapPlan {
    partition: String,
    /// `partition` qualified by the unit's schema, as SQL.
    partition_q: String,
}

/// The stage table of a unit: one name per unit, so a leftover is found and dropped by the
/// next run of the same unit (which holds the unit's lock).
fn stage_name(unit: &UnitOfWork) -> String {
    format!("costagg_stage_{:016x}", lock_key(unit) as u64)
}

/// Drops the stage table a killed run of the unit left, in the unit's transaction, when the run
/// writes row by row (a swap drops it on its own connection before building).
pub(super) async fn drop_leftover_stage(tx: &Transaction<'_>, unit: &UnitOfWork) -> Result<()> {
    let stage = stage_name(unit);
    if super::table_exists(tx, &unit.schema, &stage).await? {
        let sql = format!("DROP TABLE {}", qualified(&quote_ident(&unit.schema), &stage));
        tx.batch_execute(&sql)
            .await
            .map_err(Error::database("drop a stage table left behind"))?;
        info!(
            table = stage,
            "dropped the stage table an earlier run of the unit left"
        );
    }
    Ok(())
}

/// The rows of a month's partition that a run replacing `[first_day, end_date]` of `source`
/// keeps, as disjoint conditions, each a range of the `(source_uuid, usage_start)` index.
const KEPT: [&str; 5] = [
    "source_uuid IS NULL",
    "source_uuid < $1",
    "source_uuid > $1",
    "source_uuid = $1 AND usage_start < $2",
    "source_uuid = $1 AND usage_start > $3",
];

/// Whether a partition holds a row of [`KEPT`], with `$1` the source and `$2`, `$3` the first
/// and last day: the row with the greatest source (nulls first), the row with the least, and
/// the source's first and last day, each read from one end of the `(source_uuid, usage_start)`
/// index. (`EXISTS` for each condition of [`KEPT`] is the same test, but a partition swapped in
/// has no statistics until autovacuum analyses it, and PostgreSQL then scanned the whole heap
/// for `source_uuid < $1` and `> $1`: 0.41 s at 515K rows, against 0.2 ms.)
fn any_kept(partition_q: &str) -> String {
    format!(
        "SELECT coalesce((SELECT source_uuid IS DISTINCT FROM $1 FROM {partition_q} \
                          ORDER BY source_uuid DESC NULLS FIRST LIMIT 1), false) \
             OR coalesce((SELECT source_uuid <> $1 FROM {partition_q} \
                          ORDER BY source_uuid LIMIT 1), false) \
             OR coalesce((SELECT usage_start < $2 FROM {partition_q} WHERE source_uuid = $1 \
                          ORDER BY usage_start LIMIT 1), false) \
             OR coalesce((SELECT usage_start > $3 FROM {partition_q} WHERE source_uuid = $1 \
                          ORDER BY usage_start DESC LIMIT 1), false)"
    )
}

/// Whether the unit's month can be swapped in: no other unit's swap holds the month, the table
/// is costagg's, has a partition for exactly this month, and that partition holds no row the
/// run keeps (another source's, or days outside the run's range). Otherwise the month is
/// written row by row.
///
/// One swap of a month at a time: two swaps of one month deadlocked (each waits to drop the
/// partition the other still reads, seen with eight units starting at once on an empty month).
/// The first takes the month's advisory lock, without waiting, before it touches the partition;
/// the others, which must not read the partition either, write row by row, and the swap carries
/// their rows over when it swaps the month in.
pub(super) async fn plan(
    tx: &Transaction<'_>,
    unit: &UnitOfWork,
    first_day: NaiveDate,
) -> Result<Option<SwapPlan>> {
    let month_free: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&super::month_swap_key(unit)],
        )
        .await
        .map_err(Error::database("lock the month for a swap"))?
        .get(0);
    if !month_free {
        debug!("another run is swapping the month in; writing row by row");
        return Ok(None);
    }
    let row = tx
        .query_opt(
            "SELECT obj_description(c.oid, 'pg_class') = $3, p.relname::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_inherits i ON i.inhparent = c.oid JOIN pg_class p ON p.oid = i.inhrelid \
             WHERE n.nspname = $1 AND c.relname = $2 AND pg_get_expr(p.relpartbound, p.oid) = $4",
            &[
                &unit.schema.as_str(),
                &SUMMARY_TABLE,
                &ddl::TABLE_COMMENT,
                &super::partition_bound(unit),
            ],
        )
        .await
        .map_err(Error::database("read the month's partition"))?;
    let Some((true, partition)) =
        row.map(|r| (r.get::<_, Option<bool>>(0) == Some(true), r.get::<_, String>(1)))
    else {
        return Ok(None);
    };
    let partition_q = qualified(&quote_ident(&unit.schema), &partition);
    let kept: bool = tx
        .query_one(
            &any_kept(&partition_q),
            &[&unit.source, &first_day, &unit.days.last()],
        )
        .await
        .map_err(Error::database("look for rows to keep"))?
        .get(0);
    if kept {
        debug!(partition, "the month holds rows to keep; writing row by row");
        return Ok(None);
    }
    Ok(Some(SwapPlan {
        partition,
        partition_q,
    }))
}

/// What [`replace`] needs besides the plan and the rows.
pub(super) struct SwapWrite<'a> {
    pub unit: &'a UnitOfWork,
    pub first_day: NaiveDate,
    /// The unit's last day.
    pub last_day: NaiveDate,
    pub columns: &'a [OutputColumn],
    pub copy_buffer_bytes: usize,
}

impl SwapWrite<'_> {
    /// The parameters of [`REPLACED`] and [`KEPT`]: the source, then the first and last day.
    fn range(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 3] {
        [&self.unit.source, &self.first_day, &self.last_day]
    }
}

/// Builds the month in a stage table on `helpers` (one COPY and a share of the indexes each),
/// then swaps it in with `tx` — only once `batches` has ended without an `Err`
/// (`replace_unit`'s contract), which then commits `tx`. On error the stage is dropped when a
/// helper can still reach the server, and `tx` rolls back when the caller drops it.
pub(super) async fn replace<S>(
    tx: &Transaction<'_>,
    helpers: &[Client],
    plan: SwapPlan,
    write: SwapWrite<'_>,
    batches: S,
) -> Result<WriteOutcome>
where
    S: Stream<Item = Result<RecordBatch>> + Unpin,
{
    let schema_q = quote_ident(&write.unit.schema);
    let stage = stage_name(write.unit);
    let stage_q = qualified(&schema_q, &stage);
    let (built, replaced) = futures::join!(
        build_stage(helpers, &stage, &stage_q, &write, batches),
        claim_old_partition(tx, &plan.partition_q, &write),
    );
    let outcome = match (built, replaced) {
        (Ok(rows_written), Ok(rows_deleted)) => {
            let counts = WriteOutcome {
                rows_deleted,
                rows_written,
                ..Default::default()
            };
            swap_in(tx, &plan, &schema_q, (&stage, &stage_q), &write, counts).await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if outcome.is_err() {
        // Best effort: the next run of the unit drops a stage left behind anyway.
        let _ = helpers[0]
            .batch_execute(&format!("DROP TABLE IF EXISTS {stage_q}"))
            .await;
    }
    outcome
}

/// Creates the stage (dropping one a killed run left), COPies the rows into it round robin over
/// the helpers, and builds its primary key and indexes spread over them. Returns the rows
/// copied.
async fn build_stage<S>(
    helpers: &[Client],
    stage: &str,
    stage_q: &str,
    write: &SwapWrite<'_>,
    batches: S,
) -> Result<u64>
where
    S: Stream<Item = Result<RecordBatch>> + Unpin,
{
    let create = format!(
        "DROP TABLE IF EXISTS {stage_q}; {}",
        ddl::create_stage(stage_q, stage, super::month_bounds(write.unit))
    );
    helpers[0]
        .batch_execute(&create)
        .await
        .map_err(Error::database("create the stage table"))?;
    let copy_sql = super::copy_statement(stage_q, write.columns);
    let mut sinks = Vec::with_capacity(helpers.len());
    for helper in helpers {
        sinks.push(
            helper
                .copy_in(&copy_sql)
                .await
                .map_err(Error::database("start COPY"))?,
        );
    }
    let rows = copy_batches(sinks, write.columns, write.copy_buffer_bytes, batches).await?;
    debug!(rows, stage, "stage filled; building its indexes");

    // Longest build first, each to the connection with the least work so far.
    let mut statements = ddl::stage_indexes(stage_q, stage);
    statements.sort_by_key(|(_, cost)| std::cmp::Reverse(*cost));
    let mut shares: Vec<(u32, Vec<String>)> = vec![(0, Vec::new()); helpers.len()];
    for (sql, cost) in statements {
        let least = shares
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one connection");
        least.0 += cost;
        least.1.push(sql);
    }
    try_join_all(
        helpers
            .iter()
            .zip(&shares)
            .map(|(helper, (_, share))| async move {
                for sql in share {
                    helper
                        .batch_execute(sql)
                        .await
                        .map_err(Error::database("index the stage table"))?;
                }
                Ok::<_, Error>(())
            }),
    )
    .await?;
    Ok(rows)
}

/// In the unit's transaction: keeps writers out, carries over rows written to the month since
/// the plan, and replaces the old partition by the stage (its name, and qualified) under the
/// old names; the caller commits.
async fn swap_in(
    tx: &Transaction<'_>,
    plan: &SwapPlan,
    schema_q: &str,
    (stage, stage_q): (&str, &str),
    write: &SwapWrite<'_>,
    counts: WriteOutcome,
) -> Result<WriteOutcome> {
    let table_q = qualified(schema_q, SUMMARY_TABLE);
    let partition_q = &plan.partition_q;
    let unit = write.unit;
    // Writers take the table's lock before a partition's, so taking the table's first cannot
    // deadlock with them; readers go on until the drop below.
    tx.batch_execute(&format!("LOCK TABLE {table_q} IN EXCLUSIVE MODE"))
        .await
        .map_err(Error::database("lock the summary table"))?;
    let names = column_names(write.columns);
    let carry = KEPT
        .iter()
        .map(|c| format!("SELECT {names} FROM {partition_q} WHERE {c}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let carried = tx
        .execute(
            &format!("INSERT INTO {stage_q} ({names}) {carry}"),
            &write.range(),
        )
        .await
        .map_err(Error::database("carry over rows to keep"))?;
    if carried > 0 {
        info!(
            rows = carried,
            "rows written to the month by another run were carried over"
        );
    }
    let index_names = "SELECT parent.relname::text, child.relname::text FROM pg_index x \
                       JOIN pg_class child ON child.oid = x.indexrelid \
                       JOIN pg_inherits h ON h.inhrelid = x.indexrelid \
                       JOIN pg_class parent ON parent.oid = h.inhparent \
                       WHERE x.indrelid = $1::text::regclass";
    let old_names = tx
        .query(index_names, &[&partition_q])
        .await
        .map_err(Error::database("read the partition's index names"))?;
    let partition = quote_ident(&plan.partition);
    tx.batch_execute(&format!(
        "{}; DROP TABLE {partition_q}; \
         ALTER TABLE {stage_q} RENAME TO {partition}; \
         ALTER TABLE {table_q} ATTACH PARTITION {partition_q} {}; {}",
        ddl::stage_primary_key(stage_q, stage),
        super::partition_bound(unit),
        ddl::stage_attached(partition_q, stage),
    ))
    .await
    .map_err(Error::database("swap in the new partition"))?;
    let new_names = tx
        .query(index_names, &[&partition_q])
        .await
        .map_err(Error::database("read the new partition's index names"))?;
    let mut renames = String::new();
    for new in &new_names {
        let (parent, name): (String, String) = (new.get(0), new.get(1));
        if let Some(old) = old_names.iter().find(|o| o.get::<_, String>(0) == parent) {
            renames.push_str(&format!(
                "ALTER INDEX {} RENAME TO {};",
                qualified(schema_q, &name),
                quote_ident(&old.get::<_, String>(1))
            ));
        }
    }
    tx.batch_execute(&renames)
        .await
        .map_err(Error::database("name the new partition's indexes"))?;
    info!(partition = %plan.partition, rows = counts.rows_written + carried, "the month's new partition is in place");
    Ok(counts)
}

/// While the stage is built, in the unit's transaction: keeps autovacuum off the old partition
/// and counts the rows of it that the unit's rows replace.
///
/// - The lock (`SHARE UPDATE EXCLUSIVE`, which readers and writers do not notice) makes
///   autovacuum pass the partition by, so the swap does not wait a `deadlock_timeout` (1 s)
///   for a vacuum of rows about to be dropped; one already running is cancelled here, after
///   that wait, while the stage is built.
/// - The count reads the old partition's heap (~0.4 s at 515K rows). Only runs of this unit
///   write the rows counted, and this one holds the unit's lock.
async fn claim_old_partition(tx: &Transaction<'_>, partition_q: &str, write: &SwapWrite<'_>) -> Result<u64> {
    tx.batch_execute(&format!(
        "LOCK TABLE {partition_q} IN SHARE UPDATE EXCLUSIVE MODE"
    ))
    .await
    .map_err(Error::database("lock the month's partition"))?;
    let count: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM {partition_q} WHERE {REPLACED}"),
            &write.range(),
        )
        .await
        .map_err(Error::database("count the rows replaced"))?
        .get(0);
    Ok(count as u64)
}
