//! Unallocated capacity: the Pod rows added up per (day, node, resource id) as they stream to
//! PostgreSQL, then koku's unallocated SQL over those totals. Memory grows with nodes × days,
//! never with rows.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};

use crate::error::Result;
use crate::summary::column_as;

/// koku's unallocated insert, over `cte_pod_rows_by_node`.
const UNALLOCATED_SQL: &str = include_str!("reporting_ocpusagelineitem_daily_summary_unallocated.sql");

/// Namespaces koku leaves out when it reads the Pod rows back: its own unallocated rows and
/// those other steps write.
pub const EXCLUDED_NAMESPACES: [&str; 4] = [
    "Platform unallocated",
    "Worker unallocated",
    "Network unattributed",
    "Storage unattributed",
];

/// The Pod-row quantities koku subtracts from the node's capacity.
const SUMMED: [&str; 6] = [
    "pod_usage_cpu_core_hours",
    "pod_request_cpu_core_hours",
    "pod_effective_usage_cpu_core_hours",
    "pod_usage_memory_gigabyte_hours",
    "pod_request_memory_gigabyte_hours",
    "pod_effective_usage_memory_gigabyte_hours",
];

/// The Pod-row capacities koku takes the max of.
const MAXIMISED: [&str; 6] = [
    "node_capacity_cpu_cores",
    "node_capacity_cpu_core_hours",
    "node_capacity_memory_gigabytes",
    "node_capacity_memory_gigabyte_hours",
    "cluster_capacity_cpu_core_hours",
    "cluster_capacity_memory_gigabyte_hours",
];

/// SQL aggregates over one (day, node, resource id): `sum` and `max` ignore nulls and are null
/// when every value is.
#[derive(Debug, Default, Clone)]
struct Totals {
    sums: [Option<f64>; 6],
    maxima: [Option<f64>; 6],
}

/// Pod rows added up per (day, node, resource id).
#[derive(Debug, Default)]
pub struct NodeTotals(HashMap<(i32, String, Option<String>), Totals>);

impl NodeTotals {
    /// Adds a batch of summary rows (Pod section output).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let day = column_as(batch, "usage_start", &DataType::Date32)?;
        let day = day
            .as_any()
            .downcast_ref::<Date32Array>()
            .expect("cast to Date32");
        let text = |name| column_as(batch, name, &DataType::Utf8);
        let (namespace, node, resource_id) = (text("namespace")?, text("node")?, text("resource_id")?);
        let strings = |a: &ArrayRef| {
            a.as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8")
                .clone()
        };
        let (namespace, node, resource_id) = (strings(&namespace), strings(&node), strings(&resource_id));
        let numbers = |names: [&str; 6]| -> Result<Vec<Float64Array>> {
            names
                .iter()
                .map(|n| {
                    let a = column_as(batch, n, &DataType::Float64)?;
                    Ok(a.as_any()
                        .downcast_ref::<Float64Array>()
                        .expect("cast to Float64")
                        .clone())
                })
                .collect()
        };
        let (summed, maximised) = (numbers(SUMMED)?, numbers(MAXIMISED)?);
        for row in 0..batch.num_rows() {
            // koku: `lids.node IS NOT NULL` and the four namespaces left out.
            if node.is_null(row)
                || day.is_null(row)
                || (namespace.is_valid(row) && EXCLUDED_NAMESPACES.contains(&namespace.value(row)))
            {
                continue;
            }
            let key = (
                day.value(row),
                node.value(row).to_string(),
                resource_id
                    .is_valid(row)
                    .then(|| resource_id.value(row).to_string()),
            );
            let totals = self.0.entry(key).or_default();
            for (acc, a) in totals.sums.iter_mut().zip(&summed) {
                if a.is_valid(row) {
                    *acc = Some(acc.unwrap_or(0.0) + a.value(row));
                }
            }
            for (acc, a) in totals.maxima.iter_mut().zip(&maximised) {
                if a.is_valid(row) {
                    let v = a.value(row);
                    *acc = Some(acc.map_or(v, |m| m.max(v)));
                }
            }
        }
        Ok(())
    }

    /// The totals as the table `cte_pod_rows_by_node`.
    fn into_batch(self) -> Result<RecordBatch> {
        let mut fields = vec![
            Field::new("usage_start", DataType::Date32, false),
            Field::new("node", DataType::Utf8, false),
            Field::new("resource_id", DataType::Utf8, true),
        ];
        fields.extend(
            SUMMED
                .iter()
                .chain(&MAXIMISED)
                .map(|n| Field::new(*n, DataType::Float64, true)),
        );
        let mut days = Vec::with_capacity(self.0.len());
        let mut nodes = StringBuilder::new();
        let mut resource_ids = StringBuilder::new();
        let mut values: Vec<Vec<Option<f64>>> = (0..12).map(|_| Vec::with_capacity(self.0.len())).collect();
        for ((day, node, resource_id), totals) in self.0 {
            days.push(day);
            nodes.append_value(node);
            resource_ids.append_option(resource_id);
            for (column, v) in values.iter_mut().zip(totals.sums.iter().chain(&totals.maxima)) {
                column.push(*v);
            }
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(days)),
            Arc::new(nodes.finish()),
            Arc::new(resource_ids.finish()),
        ];
        columns.extend(
            values
                .into_iter()
                .map(|v| Arc::new(Float64Array::from(v)) as ArrayRef),
        );
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    }
}

/// koku's unallocated rows from the Pod rows' totals.
pub async fn rows(ctx: &SessionContext, totals: NodeTotals) -> Result<DataFrame> {
    let batch = totals.into_batch()?;
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    ctx.register_table("cte_pod_rows_by_node", Arc::new(table))?;
    Ok(ctx.sql(UNALLOCATED_SQL).await?)
}
