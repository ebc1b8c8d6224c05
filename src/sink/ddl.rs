//! koku's summary table: its columns and types, creating it and its month partitions.

use crate::sink::copy::Wire;

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

/// `CREATE TABLE` for the partitioned summary table, koku's columns and indexes.
pub fn create_table(schema_q: &str) -> Vec<String> {
    let columns: Vec<String> = COLUMNS.iter().map(|(n, t, _)| format!("    {n} {t}")).collect();
    let table = format!("{schema_q}.{SUMMARY_TABLE}");
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS {schema_q}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n{},\n    PRIMARY KEY (uuid, usage_start)\n) PARTITION BY RANGE (usage_start)",
            columns.join(",\n")
        ),
        format!("CREATE INDEX IF NOT EXISTS summary_ocp_usage_idx ON {table} (usage_start)"),
        format!("CREATE INDEX IF NOT EXISTS summary_namespace_idx ON {table} (namespace)"),
        format!("CREATE INDEX IF NOT EXISTS summary_node_idx ON {table} (node)"),
        format!("CREATE INDEX IF NOT EXISTS summary_source_uuid_idx ON {table} (source_uuid, usage_start)"),
        format!("CREATE INDEX IF NOT EXISTS pod_labels_idx ON {table} USING gin (pod_labels)"),
    ]
}

/// koku's partition name for a month: `<table>_YYYY_MM`.
pub fn partition_name(year: i32, month: u32) -> String {
    format!("{SUMMARY_TABLE}_{year:04}_{month:02}")
}
