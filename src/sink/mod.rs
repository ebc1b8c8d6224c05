//! PostgreSQL: reference tables in, and one unit replaced in one transaction (lock, delete,
//! binary COPY, commit).

pub mod announce;
pub mod copy;
pub mod ddl;
pub mod koku_tables;
pub mod reference;
pub mod runs;
mod swap;
pub mod tls;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use futures::{SinkExt, Stream, StreamExt};
use tokio_postgres::{Client, CopyInSink, GenericClient, Transaction};
use tracing::{debug, info, warn};

use crate::config::{DatabaseConfig, WriteMethod, redact_url};
use crate::error::{Error, Result};
use crate::unit::{ClusterIdentity, UnitOfWork};
use copy::{OutputColumn, Source, Wire};
use ddl::{COLUMNS, SUMMARY_TABLE};
pub use koku_tables::{KokuTables, KokuTablesOutcome};

/// A double-quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `<schema_q>.<name>`, the name quoted: a table's qualified name in a quoted schema.
pub(crate) fn qualified(schema_q: &str, name: &str) -> String {
    format!("{schema_q}.{}", quote_ident(name))
}

/// Opens a connection; the connection task runs on the runtime until the client is dropped.
/// A server that refuses, cannot be reached or whose host name does not resolve (yet) is
/// tried `db.connect_attempts` times, waiting 1, 2, 4 … s (at most
/// `db.connect_retry_max_seconds`) between; other errors (a wrong password, a missing
/// database) fail at once.
pub async fn connect(url: &str, db: &DatabaseConfig) -> Result<Client> {
    let tls = tls::settings(url)?;
    let mut config: tokio_postgres::Config = tls.url.parse().map_err(|e| {
        Error::config(
            "database.url",
            format!("{} is not a PostgreSQL URL: {e}", redact_url(url)),
        )
    })?;
    if db.connect_timeout_seconds > 0 {
        config.connect_timeout(Duration::from_secs(db.connect_timeout_seconds));
    }
    config.application_name("costagg");
    config.ssl_mode(match tls.mode {
        tls::SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        tls::SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let connector = tls::connector(&tls)?;
    let mut wait = Duration::from_secs(1);
    let mut attempt = 1;
    let (client, connection) = loop {
        // The names are looked up only after a failure the error itself does not explain, and
        // the last attempt's error is the driver's own.
        let error = match config.connect(connector.clone()).await {
            Ok(pair) => break pair,
            Err(e) if attempt >= db.connect_attempts => return Err(Error::database("connect")(e)),
            Err(e) if is_unreachable(&e) => e.to_string(),
            Err(e) => match unresolved_host(&config).await {
                Some(why) => why,
                None => return Err(Error::database("connect")(e)),
            },
        };
        warn!(
            attempt, of = db.connect_attempts, wait_seconds = wait.as_secs(), error = %error,
            "the database cannot be reached; trying again"
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(db.connect_retry_max_seconds.max(1)));
        attempt += 1;
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(error = %e, "database connection ended with an error");
        }
    });
    Ok(client)
}

/// Asks the server to cancel whatever `client` is running (a statement, a wait for a lock),
/// on a connection of its own, as `pg_cancel_backend` would: a stopped run's rollback and run
/// record then follow at once instead of after the wait. Best effort, at most two seconds.
pub async fn cancel_running(client: &Client, url: &str) {
    let token = client.cancel_token();
    let cancel = async {
        let connector = tls::connector(&tls::settings(url)?)?;
        token
            .cancel_query(connector)
            .await
            .map_err(Error::database("cancel the running statement"))
    };
    match tokio::time::timeout(Duration::from_secs(2), cancel).await {
        Ok(Ok(())) => debug!("cancelled the running statement"),
        Ok(Err(e)) => warn!(error = %e, "cannot cancel the running statement"),
        Err(_) => warn!("cancelling the running statement timed out"),
    }
}

/// Why no host of `config` can be connected to, when none of its host names resolves: a
/// database container that is still being created has no name yet on its network (compose,
/// podman). The driver's own connect error for that carries no kind to tell it from other
/// failures, so after one the names are looked up here. None when a host resolves, is an
/// address, or is a socket folder.
async fn unresolved_host(config: &tokio_postgres::Config) -> Option<String> {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let mut failure = None;
    for (i, host) in config.get_hosts().iter().enumerate() {
        let Host::Tcp(name) = host else { return None };
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        match tokio::net::lookup_host((name.as_str(), port)).await {
            Ok(_) => return None,
            Err(e) => failure = Some(format!("the database host {name} does not resolve: {e}")),
        }
    }
    failure
}

/// Whether a connection error means the server is not there (yet): refused, reset, timed out,
/// unreachable, or starting up / shutting down. A TLS failure (a certificate that does not
/// verify) or an authentication error is not: retrying would not change it.
fn is_unreachable(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    use std::io::ErrorKind::*;
    use tokio_postgres::error::SqlState;
    if crate::error::is_tls_handshake(e) {
        // No TLS where sslmode requires it, or a certificate that does not verify: the same
        // on every attempt.
        return false;
    }
    if let Some(code) = e.code() {
        return [
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
        ]
        .contains(code);
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | TimedOut
                    | AddrNotAvailable
                    | HostUnreachable
                    | NetworkUnreachable
                    | UnexpectedEof
            );
        }
        source = s.source();
    }
    // No I/O error underneath: the connect timeout, or the server closing on us.
    true
}

/// The advisory-lock key of a unit: `costagg/<source>/<YYYY-MM>`.
pub fn lock_key(unit: &UnitOfWork) -> i64 {
    advisory_key(&format!("costagg/{}/{}", unit.source, unit.month_label()))
}

/// The advisory-lock key a swap holds on its month (`swap::plan`): one swap of a month at a
/// time; other units of the month write row by row meanwhile.
pub(crate) fn month_swap_key(unit: &UnitOfWork) -> i64 {
    advisory_key(&format!("costagg/swap/{}/{}", unit.schema, unit.month))
}

/// The advisory-lock key that serialises creating tables and partitions in a schema.
pub(crate) fn ddl_lock_key(schema: &str) -> i64 {
    advisory_key(&format!("costagg/ddl/{schema}"))
}

/// A stable 64-bit key for a text (FNV-1a), the same in every process and version.
fn advisory_key(text: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

/// What a replace did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WriteOutcome {
    pub rows_deleted: u64,
    pub rows_written: u64,
    pub table_created: bool,
    /// What was written to koku's tables around the summary.
    pub koku_tables: KokuTablesOutcome,
}

/// How a replace reaches PostgreSQL besides the unit's own connection.
#[derive(Debug, Clone)]
pub struct WriteOptions<'a> {
    /// The database URL, for the extra connections a swap builds the month on.
    pub url: &'a str,
    /// Bytes buffered before a COPY chunk is sent.
    pub copy_buffer_bytes: usize,
    /// Connections a swap COPies and indexes on at once (at least 1).
    pub connections: usize,
    /// Pod usage rows read: `write_method: auto` swaps only from [`SWAP_MIN_INPUT_ROWS`].
    pub input_rows: u64,
}

/// Below this many pod usage rows (about 25K summary rows), `write_method: auto` writes row by
/// row: the swap's extra connections and DDL cost ~0.1 s, more than the index work they save
/// (scale benchmark: 100K rows 0.57 s row by row, 0.67 s swapped; 1M rows 2.87 s, 1.88 s).
pub const SWAP_MIN_INPUT_ROWS: u64 = 500_000;

/// Replaces the unit's rows from `first_day` to the unit's end date with `batches`, in one
/// transaction. On any error the transaction is rolled back and the previous rows stay.
///
/// The contract with the stream: `batches` is drained to its end before the commit, so an
/// `Err` item anywhere in it — a failing pass, or the summary's malformed-label gate, which
/// comes last — aborts the unit with nothing committed. (Both paths below enforce it: the
/// COPY loop of `copy_batches` returns on the first `Err`, and `swap::replace` commits only
/// after it.) A sink that committed per pass would break `input.bad_rows: fail`.
///
/// Before the rows, koku's tables around the summary are filled in the same transaction
/// (`koku_tables`), and the node roles handed to the summary's unallocated section; before the
/// commit, the replaced unit is announced (`announce`).
///
/// Row by row: delete the unit's rows, COPY the new ones into the table. When the table is
/// costagg's own and the month's partition holds only rows this run replaces, the month is
/// built aside and swapped in instead (`swap`), which spares PostgreSQL the per-row index work.
#[allow(clippy::too_many_arguments)]
pub async fn replace_unit<S>(
    client: &mut Client,
    db: &DatabaseConfig,
    unit: &UnitOfWork,
    identity: &ClusterIdentity,
    first_day: NaiveDate,
    options: WriteOptions<'_>,
    tables: KokuTables<'_>,
    batches: S,
) -> Result<WriteOutcome>
where
    S: Stream<Item = Result<RecordBatch>> + Unpin,
{
    let schema_q = quote_ident(&unit.schema);
    let table_q = qualified(&schema_q, SUMMARY_TABLE);
    let tx = client.transaction().await.map_err(Error::database("begin"))?;

    lock_unit(&tx, db, unit).await?;
    if let Some(setting) = statement_timeout(db) {
        tx.batch_execute(&format!("SET LOCAL {setting}"))
            .await
            .map_err(Error::database("set statement timeout"))?;
    }

    let table_created = ensure_table(&tx, &schema_q, &table_q, unit).await?;
    let layout = existing_columns(&tx, &unit.schema, &table_q).await?;
    let koku_tables = koku_tables::fill(&tx, unit, identity, tables).await?;
    let identity = ClusterIdentity {
        report_period_id: identity.report_period_id.or(koku_tables.report_period_id),
        ..identity.clone()
    };
    let columns = output_columns(unit, &identity, &layout.wires);

    let swap_wanted = match db.write_method {
        WriteMethod::Auto => options.input_rows >= SWAP_MIN_INPUT_ROWS,
        WriteMethod::Swap => true,
        WriteMethod::Rows => false,
    };
    let plan = if swap_wanted && !layout.has_infrastructure_raw_cost {
        swap::plan(&tx, unit, first_day).await?
    } else {
        None
    };
    let mut outcome = match plan {
        Some(plan) => {
            let helpers = helper_connections(db, &options).await?;
            let write = swap::SwapWrite {
                unit,
                first_day,
                last_day: unit.days.last(),
                columns: &columns,
                copy_buffer_bytes: options.copy_buffer_bytes,
            };
            swap::replace(&tx, &helpers, plan, write, batches).await?
        }
        None => {
            swap::drop_leftover_stage(&tx, unit).await?;
            write_rows(
                &tx,
                &table_q,
                unit,
                first_day,
                &layout,
                (&columns, options.copy_buffer_bytes),
                batches,
            )
            .await?
        }
    };
    let days = (first_day, unit.days.last());
    let replaced = announce::replaced(&tx, unit, days, outcome.rows_written, &identity).await?;
    tx.commit().await.map_err(Error::database("commit"))?;
    info!(
        outbox_id = replaced.id,
        channel = announce::CHANNEL,
        "announced the replaced unit"
    );
    outcome.table_created = table_created;
    outcome.koku_tables = koku_tables;
    Ok(outcome)
}

/// The extra connections a swap COPies and indexes on, with the unit's statement timeout.
async fn helper_connections(db: &DatabaseConfig, options: &WriteOptions<'_>) -> Result<Vec<Client>> {
    let mut helpers = Vec::new();
    for _ in 0..options.connections.max(1) {
        let helper = connect(options.url, db).await?;
        if let Some(setting) = statement_timeout(db) {
            helper
                .batch_execute(&format!("SET {setting}"))
                .await
                .map_err(Error::database("set statement timeout"))?;
        }
        helpers.push(helper);
    }
    Ok(helpers)
}

/// Row by row, in the unit's transaction: deletes the unit's rows of `first_day` to its last
/// day, then COPies `batches` into the table.
async fn write_rows<S>(
    tx: &Transaction<'_>,
    table_q: &str,
    unit: &UnitOfWork,
    first_day: NaiveDate,
    layout: &TableLayout,
    (columns, copy_buffer_bytes): (&[OutputColumn], usize),
    batches: S,
) -> Result<WriteOutcome>
where
    S: Stream<Item = Result<RecordBatch>> + Unpin,
{
    // koku leaves the rows the OCP-on-cloud step owns: a non-zero infrastructure_raw_cost.
    let keep_cloud_rows = if layout.has_infrastructure_raw_cost {
        " AND coalesce(infrastructure_raw_cost, 0) = 0"
    } else {
        ""
    };
    let delete = format!("DELETE FROM {table_q} WHERE {REPLACED}{keep_cloud_rows}");
    let last_day = unit.days.last();
    let rows_deleted = tx
        .execute(&delete, &[&unit.source, &first_day, &last_day])
        .await
        .map_err(Error::database("delete previous rows"))?;
    debug!(rows = rows_deleted, from = %first_day, to = %last_day, "deleted previous rows");

    let sink = tx
        .copy_in(&copy_statement(table_q, columns))
        .await
        .map_err(Error::database("start COPY"))?;
    let rows_written = copy_batches(vec![sink], columns, copy_buffer_bytes, batches).await?;
    Ok(WriteOutcome {
        rows_deleted,
        rows_written,
        ..Default::default()
    })
}

/// The rows of the summary table a unit replaces, with `$1` the source and `$2`, `$3` the first
/// and last day.
const REPLACED: &str = "source_uuid = $1 AND usage_start >= $2 AND usage_start <= $3";

/// `statement_timeout = '<n>s'` when `database.statement_timeout_seconds` sets one.
fn statement_timeout(db: &DatabaseConfig) -> Option<String> {
    (db.statement_timeout_seconds > 0)
        .then(|| format!("statement_timeout = '{}s'", db.statement_timeout_seconds))
}

/// The written columns' quoted names, comma-separated.
fn column_names(columns: &[OutputColumn]) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(c.name)).collect();
    names.join(", ")
}

/// `COPY <table> (<columns>) FROM STDIN (FORMAT binary)`.
fn copy_statement(table_q: &str, columns: &[OutputColumn]) -> String {
    format!(
        "COPY {table_q} ({}) FROM STDIN (FORMAT binary)",
        column_names(columns)
    )
}

/// Encodes `batches` into binary COPY and sends them to `sinks`, one batch to each in turn,
/// in chunks of about `copy_buffer_bytes`; finishes every COPY and returns the rows written.
async fn copy_batches<S>(
    sinks: Vec<CopyInSink<Bytes>>,
    columns: &[OutputColumn],
    copy_buffer_bytes: usize,
    mut batches: S,
) -> Result<u64>
where
    S: Stream<Item = Result<RecordBatch>> + Unpin,
{
    let mut outs: Vec<(std::pin::Pin<Box<CopyInSink<Bytes>>>, BytesMut)> = sinks
        .into_iter()
        .map(|sink| {
            let mut buf = BytesMut::with_capacity(copy_buffer_bytes + (64 << 10));
            buf.extend_from_slice(copy::HEADER);
            (Box::pin(sink), buf)
        })
        .collect();
    // Fault tests only: hold the open COPY for a while after its first chunk, so a test can
    // kill the process or stop the server mid-COPY.
    let mut pause = crate::failpoints::copy_pause();
    let (mut turn, n) = (0, outs.len());
    while let Some(batch) = batches.next().await {
        let (sink, buf) = &mut outs[turn % n];
        turn += 1;
        copy::encode_batch(columns, &batch?, buf)?;
        if let Some(pause) = pause.take() {
            sink.send(buf.split().freeze())
                .await
                .map_err(Error::database("COPY"))?;
            warn!(
                pause_ms = pause.as_millis() as u64,
                "failpoint: pausing inside COPY"
            );
            tokio::time::sleep(pause).await;
        }
        if buf.len() >= copy_buffer_bytes {
            sink.send(buf.split().freeze())
                .await
                .map_err(Error::database("COPY"))?;
        }
    }
    let mut rows = 0;
    for (mut sink, mut buf) in outs {
        buf.extend_from_slice(copy::TRAILER);
        sink.send(buf.split().freeze())
            .await
            .map_err(Error::database("COPY"))?;
        rows += sink
            .as_mut()
            .finish()
            .await
            .map_err(Error::database("finish COPY"))?;
    }
    Ok(rows)
}

async fn lock_unit(tx: &Transaction<'_>, db: &DatabaseConfig, unit: &UnitOfWork) -> Result<()> {
    let sql = format!("SET LOCAL lock_timeout = '{}s'", db.lock_timeout_seconds);
    tx.batch_execute(&sql)
        .await
        .map_err(Error::database("set lock timeout"))?;
    match tx
        .execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(unit)])
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            return Err(Error::UnitLocked {
                unit: unit.to_string(),
            });
        }
        Err(e) => return Err(Error::database("lock unit")(e)),
    }
    tx.batch_execute("SET LOCAL lock_timeout TO DEFAULT")
        .await
        .map_err(Error::database("reset lock timeout"))?;
    Ok(())
}

/// Whether `schema.table` exists, read from `pg_class` with the statement's own snapshot.
/// (`to_regclass` resolves through the catalog cache, which inside a transaction may not yet
/// show a table another run has just committed.)
pub async fn table_exists(client: &impl GenericClient, schema: &str, table: &str) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2)",
            &[&schema, &table],
        )
        .await
        .map_err(Error::database("look up tables"))?;
    Ok(row.get(0))
}

/// What an existing table offers: the wire format of each column costagg writes.
struct TableLayout {
    wires: Vec<Wire>,
    has_infrastructure_raw_cost: bool,
}

/// Reads the table's columns and checks that each column costagg writes exists with a type it
/// can encode; the table is never altered.
async fn existing_columns(tx: &Transaction<'_>, schema: &str, table_q: &str) -> Result<TableLayout> {
    let rows = tx
        .query(
            "SELECT a.attname::text, t.typname::text FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&schema, &SUMMARY_TABLE],
        )
        .await
        .map_err(Error::database("read table columns"))?;
    let found: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut problems = Vec::new();
    let mut wires = Vec::new();
    for (name, _, wire) in COLUMNS {
        match found.get(*name) {
            None => problems.push(format!("column {name} is missing")),
            Some(t) => match ddl::accepts(*wire, t) {
                Some(w) => wires.push(w),
                None => problems.push(format!("column {name} has type {t}, costagg writes {wire:?}")),
            },
        }
    }
    if !problems.is_empty() {
        return Err(Error::DatabaseSchema(format!(
            "{table_q} does not have koku's layout ({}); costagg never alters an existing table",
            problems.join("; ")
        )));
    }
    Ok(TableLayout {
        wires,
        has_infrastructure_raw_cost: found.contains_key("infrastructure_raw_cost"),
    })
}

/// Whether the month needs a partition: the table is partitioned and no partition (nor a
/// default one) takes the month, as koku's partition manager would see it. Read from the
/// catalog tables by name, like `table_exists`.
async fn partition_needed(tx: &Transaction<'_>, unit: &UnitOfWork) -> Result<bool> {
    let row = tx
        .query_one(
            "SELECT c.relkind = 'p', \
             coalesce(bool_or(pg_get_expr(p.relpartbound, p.oid) IN ('DEFAULT', $3)), false) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_inherits i ON i.inhparent = c.oid \
             LEFT JOIN pg_class p ON p.oid = i.inhrelid \
             WHERE n.nspname = $1 AND c.relname = $2 GROUP BY c.relkind",
            &[&unit.schema.as_str(), &SUMMARY_TABLE, &partition_bound(unit)],
        )
        .await
        .map_err(Error::database("read partitions"))?;
    let (partitioned, covered): (bool, bool) = (row.get(0), row.get(1));
    Ok(partitioned && !covered)
}

pub(crate) fn partition_bound(unit: &UnitOfWork) -> String {
    let (from, to) = month_bounds(unit);
    format!("FOR VALUES FROM ('{from}') TO ('{to}')")
}

/// The first day of the unit's month and of the next: its partition's range `[from, to)`.
pub(crate) fn month_bounds(unit: &UnitOfWork) -> (NaiveDate, NaiveDate) {
    (unit.month.first_day(), unit.month.next().first_day())
}

/// Creates the table and the month's partition when missing. Runs of different units may do
/// this at once on a new schema or month, and concurrent `CREATE`s of one relation can fail on
/// the catalog, so creating is serialised by a per-schema advisory lock, taken only when
/// something is missing and checked again once held. Returns whether the table was created.
async fn ensure_table(
    tx: &Transaction<'_>,
    schema_q: &str,
    table_q: &str,
    unit: &UnitOfWork,
) -> Result<bool> {
    let ready = |tx| async move {
        Ok::<_, Error>(
            table_exists(tx, &unit.schema, SUMMARY_TABLE).await? && !partition_needed(tx, unit).await?,
        )
    };
    if ready(tx).await? {
        return Ok(false);
    }
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ddl_lock_key(&unit.schema)])
        .await
        .map_err(Error::database("lock schema for DDL"))?;
    let created = !table_exists(tx, &unit.schema, SUMMARY_TABLE).await?;
    if created {
        for sql in ddl::create_table(schema_q) {
            tx.batch_execute(&sql)
                .await
                .map_err(Error::database("create table"))?;
        }
        info!(table = %table_q, "created the summary table");
    }
    if partition_needed(tx, unit).await? {
        let name = ddl::partition_name(unit.month);
        let sql = format!(
            "CREATE TABLE {} PARTITION OF {table_q} {}",
            qualified(schema_q, &name),
            partition_bound(unit)
        );
        tx.batch_execute(&sql)
            .await
            .map_err(Error::database("create partition"))?;
        info!(partition = %name, "created the month's partition");
    }
    Ok(created)
}

/// The columns written, with unit metadata as constants.
fn output_columns(unit: &UnitOfWork, identity: &ClusterIdentity, wires: &[Wire]) -> Vec<OutputColumn> {
    COLUMNS
        .iter()
        .zip(wires)
        .map(|((name, _, _), wire)| {
            let source = match *name {
                "uuid" => Source::NewUuid,
                "report_period_id" => {
                    Source::Constant(identity.report_period_id.map(|id| id.to_be_bytes().to_vec()))
                }
                "cluster_id" => Source::Constant(Some(identity.cluster_id.as_bytes().to_vec())),
                "cluster_alias" => Source::Constant(Some(identity.cluster_alias.as_bytes().to_vec())),
                "source_uuid" => Source::Constant(Some(unit.source.as_bytes().to_vec())),
                other => Source::Batch(other.to_string()),
            };
            OutputColumn {
                name,
                wire: *wire,
                source,
            }
        })
        .collect()
}
