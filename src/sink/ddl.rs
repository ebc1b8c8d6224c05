//! koku's summary table: its columns and types, creating it and its month partitions.

use crate::sink::copy::Wire;
use chrono::NaiveDate;

use crate::unit::Month;

/// koku's summary table name.
pub const SUMMARY_TABLE: &str = "reporting_ocpusagelineitem_daily_summary";

/// The columns costagg writes, in order, with koku's column types.
pub const COLUMNS: &[(&str, &str, Wire)] = &[
    ("uuid", "uuid NOT NULL", Wire::Uuid),
    ("report_period_id", "integer", Wire::Int4),
    ("cluster_id", "varchar(50)", Wire::Text),
    ("cluster_alias", "varchar(256)", Wire::Text),
    ("data_source", "varchar(64)", Wire::Text),
    ("usage_start", "date NOT NULL", Wire::Date),
    ("usage_end", "date NOT NULL", Wire::Date),
    ("namespace", "varchar(253)", Wire::Text),
    ("node", "varchar(253)", Wire::Text),
    ("resource_id", "varchar(253)", Wire::Text),
    ("pod_labels", "jsonb", Wire::Jsonb),
    ("pod_usage_cpu_core_hours", "numeric(33,15)", Wire::Numeric),
    ("pod_request_cpu_core_hours", "numeric(33,15)", Wire::Numeric),
    (
        "pod_effective_usage_cpu_core_hours",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    ("pod_limit_cpu_core_hours", "numeric(33,15)", Wire::Numeric),
    ("pod_usage_memory_gigabyte_hours", "numeric(33,15)", Wire::Numeric),
    (
        "pod_request_memory_gigabyte_hours",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    (
        "pod_effective_usage_memory_gigabyte_hours",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    ("pod_limit_memory_gigabyte_hours", "numeric(33,15)", Wire::Numeric),
    ("node_capacity_cpu_cores", "numeric(33,15)", Wire::Numeric),
    ("node_capacity_cpu_core_hours", "numeric(33,15)", Wire::Numeric),
    ("node_capacity_memory_gigabytes", "numeric(33,15)", Wire::Numeric),
    (
        "node_capacity_memory_gigabyte_hours",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    ("cluster_capacity_cpu_core_hours", "numeric(33,15)", Wire::Numeric),
    (
        "cluster_capacity_memory_gigabyte_hours",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    ("persistentvolumeclaim", "varchar(253)", Wire::Text),
    ("persistentvolume", "varchar(253)", Wire::Text),
    ("storageclass", "varchar(50)", Wire::Text),
    ("volume_labels", "jsonb", Wire::Jsonb),
    (
        "persistentvolumeclaim_capacity_gigabyte",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    (
        "persistentvolumeclaim_capacity_gigabyte_months",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    (
        "volume_request_storage_gigabyte_months",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    (
        "persistentvolumeclaim_usage_gigabyte_months",
        "numeric(33,15)",
        Wire::Numeric,
    ),
    ("all_labels", "jsonb", Wire::Jsonb),
    ("source_uuid", "uuid", Wire::Uuid),
    ("infrastructure_usage_cost", "jsonb", Wire::Jsonb),
    ("cost_category_id", "integer", Wire::Int4),
];

/// The PostgreSQL type names (`pg_type.typname`) a column of each wire format may have.
pub fn accepts(wire: Wire, typname: &str) -> Option<Wire> {
    match (wire, typname) {
        (Wire::Uuid, "uuid") => Some(Wire::Uuid),
        (Wire::Int4, "int4") => Some(Wire::Int4),
        (Wire::Text, "text" | "varchar" | "bpchar") => Some(Wire::Text),
        (Wire::Date, "date") => Some(Wire::Date),
        (Wire::Jsonb | Wire::Json, "jsonb") => Some(Wire::Jsonb),
        (Wire::Jsonb | Wire::Json, "json") => Some(Wire::Json),
        (Wire::Numeric, "numeric") => Some(Wire::Numeric),
        _ => None,
    }
}

/// The comment costagg puts on a summary table it creates. A table with it is costagg's own,
/// and a month of it may be replaced by building the month's partition aside and swapping it in
/// (`sink::swap`); a table without it (koku's) is only ever written row by row.
pub const TABLE_COMMENT: &str = "costagg: the daily usage summary in the layout of koku, created by costagg; whole months may be swapped in";

/// koku's primary key of the summary table.
pub const PRIMARY_KEY: &str = "(uuid, usage_start)";

/// koku's indexes on the summary table: name, definition after `ON <table>`, and the relative
/// time PostgreSQL takes to build it over a month (measured at 515K rows: the GIN 2.4 s, the
/// text b-trees ~0.9 s, the others ~0.5 s), used to share builds between connections.
pub const INDEXES: &[(&str, &str, u32)] = &[
    ("summary_ocp_usage_idx", "(usage_start)", 1),
    ("summary_namespace_idx", "(namespace)", 2),
    ("summary_node_idx", "(node)", 2),
    ("summary_source_uuid_idx", "(source_uuid, usage_start)", 1),
    ("pod_labels_idx", "USING gin (pod_labels)", 5),
];
/// The relative build time of the primary key's index (see [`INDEXES`]).
const PRIMARY_KEY_COST: u32 = 2;

fn column_list() -> String {
    let columns: Vec<String> = COLUMNS.iter().map(|(n, t, _)| format!("    {n} {t}")).collect();
    columns.join(",\n")
}

/// `CREATE TABLE` for the partitioned summary table, koku's columns and indexes.
pub fn create_table(schema_q: &str) -> Vec<String> {
    let table = format!("{schema_q}.{SUMMARY_TABLE}");
    let mut sql = vec![
        format!("CREATE SCHEMA IF NOT EXISTS {schema_q}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n{},\n    PRIMARY KEY {PRIMARY_KEY}\n) PARTITION BY RANGE (usage_start)",
            column_list()
        ),
        format!("COMMENT ON TABLE {table} IS '{TABLE_COMMENT}'"),
    ];
    sql.extend(
        INDEXES
            .iter()
            .map(|(name, def, _)| format!("CREATE INDEX IF NOT EXISTS {name} ON {table} {def}")),
    );
    sql
}

/// A plain table with the summary's columns and no index: a month's partition being built,
/// named `stage`, for the month `[from, to)`.
///
/// - Autovacuum is kept off it while it is built: half a million rows COPied in make it due
///   for an analyse at once, and the index builds and the swap must then wait for autovacuum,
///   which PostgreSQL cancels only after `deadlock_timeout` (1 s by default; seen in
///   back-to-back 10M-row writes).
/// - A check of the month's bounds (`<stage>_month`) lets the swap's `ATTACH PARTITION` skip
///   its scan of the rows (0.17 s at 515K rows, alone at the end of a write); COPY checks each
///   row as it arrives instead.
///
/// [`stage_attached`] undoes both once the stage is a partition.
pub fn create_stage(stage_q: &str, stage: &str, (from, to): (NaiveDate, NaiveDate)) -> String {
    format!(
        "CREATE TABLE {stage_q} (\n{},\n    CONSTRAINT \"{stage}_month\" CHECK (usage_start >= '{from}' AND usage_start < '{to}')\n) \
         WITH (autovacuum_enabled = false)",
        column_list()
    )
}

/// Gives a stage swapped in as the partition `partition_q` the options and constraints of any
/// other partition (see [`create_stage`]).
pub fn stage_attached(partition_q: &str, stage: &str) -> String {
    format!("ALTER TABLE {partition_q} DROP CONSTRAINT \"{stage}_month\", RESET (autovacuum_enabled)")
}

/// The indexes of the stage table `stage_q` (named `stage`) with their relative build times,
/// each statement on its own so that they can be built on several connections at once: the
/// primary key's unique index (`<stage>_0`, made the primary key by [`stage_primary_key`] at
/// the swap), then koku's indexes (`<stage>_<n>`). All are `CREATE INDEX`, whose SHARE locks
/// let them run together (`ADD PRIMARY KEY` would lock the others out). The swap renames them.
pub fn stage_indexes(stage_q: &str, stage: &str) -> Vec<(String, u32)> {
    let mut sql = vec![(
        format!("CREATE UNIQUE INDEX \"{stage}_0\" ON {stage_q} {PRIMARY_KEY}"),
        PRIMARY_KEY_COST,
    )];
    sql.extend(INDEXES.iter().enumerate().map(|(i, (_, def, cost))| {
        (
            format!("CREATE INDEX \"{stage}_{}\" ON {stage_q} {def}", i + 1),
            *cost,
        )
    }));
    sql
}

/// Makes a stage's unique index `<stage>_0` its primary key (a catalog change, no scan).
pub fn stage_primary_key(stage_q: &str, stage: &str) -> String {
    format!("ALTER TABLE {stage_q} ADD CONSTRAINT \"{stage}_0\" PRIMARY KEY USING INDEX \"{stage}_0\"")
}

/// koku's partition name for a month: `<table>_YYYY_MM`.
pub fn partition_name(month: Month) -> String {
    format!("{SUMMARY_TABLE}_{:04}_{:02}", month.year(), month.number())
}
