//! Input: koku's report types, where their files live for a unit, and their schema checks.

pub mod discover;
pub mod inventory;
pub mod layout;
pub mod locate;
pub mod quality;
pub mod schema;
pub mod store;
pub mod timestamps;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::config::Strings;

/// One of koku's OCP report types, named by its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReportType {
    PodUsage,
    StorageUsage,
    NodeLabels,
    NamespaceLabels,
}

/// What a column holds, and so which Parquet types are usable for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A timestamp of any unit, with or without a zone; read as UTC wall clock.
    Timestamp,
    /// A string (UTF8, LARGE_UTF8, view or dictionary-encoded).
    Text,
    /// A quantity: a double, or any integer or decimal, cast to double.
    Quantity,
}

/// A column costagg reads, and whether a file may lack it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    /// A file whose every value of it is null is refused: the summary would make rows up
    /// from nothing (a day with no node, no namespace, no usage or no capacity) and replace
    /// the day's rows with them. Keys, usage and capacity; not requests and limits, which a
    /// cluster may leave unset.
    pub never_all_null: bool,
}

const fn req(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        required: true,
        never_all_null: false,
    }
}
const fn opt(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        required: false,
        never_all_null: false,
    }
}
/// A required column that must not be null in every row of a file.
const fn key(name: &'static str, kind: Kind) -> Column {
    Column {
        never_all_null: true,
        ..req(name, kind)
    }
}

const POD_USAGE_COLUMNS: &[Column] = &[
    key("interval_start", Kind::Timestamp),
    key("namespace", Kind::Text),
    req("pod", Kind::Text),
    key("node", Kind::Text),
    req("resource_id", Kind::Text),
    req("pod_labels", Kind::Text),
    key("pod_usage_cpu_core_seconds", Kind::Quantity),
    req("pod_request_cpu_core_seconds", Kind::Quantity),
    req("pod_limit_cpu_core_seconds", Kind::Quantity),
    key("pod_usage_memory_byte_seconds", Kind::Quantity),
    req("pod_request_memory_byte_seconds", Kind::Quantity),
    req("pod_limit_memory_byte_seconds", Kind::Quantity),
    key("node_capacity_cpu_cores", Kind::Quantity),
    key("node_capacity_cpu_core_seconds", Kind::Quantity),
    key("node_capacity_memory_bytes", Kind::Quantity),
    key("node_capacity_memory_byte_seconds", Kind::Quantity),
    opt("pod_effective_usage_cpu_core_seconds", Kind::Quantity),
    opt("pod_effective_usage_memory_byte_seconds", Kind::Quantity),
    // Written by newer operators (koku's `CPU_MEM_USAGE_NEWV_COLUMNS_AND_TYPES`); read only for
    // koku's nodes table (`input::inventory`).
    opt("node_role", Kind::Text),
];

/// `csi_volume_handle` is optional: operators before its introduction do not write it, and a
/// missing optional column counts as all-null, as koku's Trino schema gives it.
const STORAGE_USAGE_COLUMNS: &[Column] = &[
    key("interval_start", Kind::Timestamp),
    key("namespace", Kind::Text),
    req("pod", Kind::Text),
    key("persistentvolumeclaim", Kind::Text),
    req("persistentvolume", Kind::Text),
    req("storageclass", Kind::Text),
    opt("csi_volume_handle", Kind::Text),
    key("persistentvolumeclaim_capacity_bytes", Kind::Quantity),
    key("persistentvolumeclaim_capacity_byte_seconds", Kind::Quantity),
    req("volume_request_storage_byte_seconds", Kind::Quantity),
    req("persistentvolumeclaim_usage_byte_seconds", Kind::Quantity),
    req("persistentvolume_labels", Kind::Text),
    req("persistentvolumeclaim_labels", Kind::Text),
];

const NODE_LABEL_COLUMNS: &[Column] = &[
    key("interval_start", Kind::Timestamp),
    key("node", Kind::Text),
    req("node_labels", Kind::Text),
];

const NAMESPACE_LABEL_COLUMNS: &[Column] = &[
    key("interval_start", Kind::Timestamp),
    key("namespace", Kind::Text),
    req("namespace_labels", Kind::Text),
];

impl ReportType {
    pub const ALL: [ReportType; 4] = [
        ReportType::PodUsage,
        ReportType::StorageUsage,
        ReportType::NodeLabels,
        ReportType::NamespaceLabels,
    ];

    /// The folder name in koku's layout.
    pub fn folder(self) -> &'static str {
        match self {
            ReportType::PodUsage => "pod_usage",
            ReportType::StorageUsage => "storage_usage",
            ReportType::NodeLabels => "node_labels",
            ReportType::NamespaceLabels => "namespace_labels",
        }
    }

    /// The table name the summary SQL uses: koku's Trino table name.
    pub fn table_name(self) -> &'static str {
        match self {
            ReportType::PodUsage => "openshift_pod_usage_line_items",
            ReportType::StorageUsage => "openshift_storage_usage_line_items",
            ReportType::NodeLabels => "openshift_node_labels_line_items",
            ReportType::NamespaceLabels => "openshift_namespace_labels_line_items",
        }
    }

    /// Whether a unit without these files is an error.
    pub fn required(self) -> bool {
        matches!(self, ReportType::PodUsage)
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            ReportType::PodUsage => POD_USAGE_COLUMNS,
            ReportType::StorageUsage => STORAGE_USAGE_COLUMNS,
            ReportType::NodeLabels => NODE_LABEL_COLUMNS,
            ReportType::NamespaceLabels => NAMESPACE_LABEL_COLUMNS,
        }
    }

    /// The names of the required quantity columns, in file order.
    pub fn required_quantities(self) -> impl Iterator<Item = &'static str> {
        self.columns()
            .iter()
            .filter(|c| c.required && c.kind == Kind::Quantity)
            .map(|c| c.name)
    }

    /// The table schema every file is read as: only the columns used, in canonical types.
    pub fn table_schema(self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns()
            .iter()
            .map(|c| Field::new(c.name, c.kind.table_type(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The schema the summary reads the files as: the table schema with its strings held as
    /// `strings` says.
    pub fn read_schema(self, strings: Strings) -> SchemaRef {
        let table = self.table_schema();
        if strings == Strings::Plain {
            return table;
        }
        let fields: Vec<Field> = table
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
                _ => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

impl Kind {
    /// The type the column is read as, whatever the file holds.
    pub fn table_type(self) -> DataType {
        match self {
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            Kind::Text => DataType::Utf8,
            Kind::Quantity => DataType::Float64,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Kind::Timestamp => "a timestamp (INT64 TIMESTAMP millis, micros or nanos, or text)",
            Kind::Text => "a string (UTF8)",
            Kind::Quantity => "a number (DOUBLE, integer or decimal)",
        }
    }
}
