//! What the unit's line items say about its cluster — nodes and their roles, namespaces, volume
//! claims — as koku's `populate_openshift_cluster_information_tables` reads them before its
//! summary (koku@768be82535f8e75523d966b4797e954ad054b52f, `koku/reportdb_accessor_trino.py`
//! `get_nodes_query_sql`, `get_pvcs_query_sql`, `get_projects_query_sql`).
//!
//! costagg: koku runs three more queries over the line items. Here the pod and storage facts
//! come out of the input check's scan, which reads every row anyway: `quality::count` groups
//! by [`Facts::keys`] and adds [`Facts::aggregates`], and [`Inventory`] is folded from its
//! groups. Only the node labels, a small table, are read once more.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;

use super::ReportType;
use crate::error::{Error, Result};
use crate::reference::{Inventory, NodeRow, PvcRow};
use crate::summary::column_as;
use crate::unit::DayRange;

/// The namespace whose pods make a node a `master` in koku's rule.
pub const API_SERVER_NAMESPACE: &str = "openshift-kube-apiserver";

/// The text koku looks for in a node's label strings to call it `infra` (a `LIKE` on the raw
/// JSON text, so the spacing of koku's own JSON is part of the rule).
const INFRA_LABEL: &str = r#""node_role_kubernetes_io": "infra""#;

/// What the check's scan of a report table adds for the inventory: group keys, and aggregates
/// over the rows it keeps (in the unit's days, no bad quantity: `kept`), named as the columns
/// [`from_groups`] reads.
pub struct Facts {
    pub keys: &'static [&'static str],
    /// Other columns the aggregates read.
    pub columns: &'static [&'static str],
    pub aggregates: &'static str,
}

impl Facts {
    pub fn of(report: ReportType) -> Option<Facts> {
        match report {
            ReportType::PodUsage => Some(Facts {
                keys: &["node", "resource_id", "namespace"],
                columns: &["node_capacity_cpu_cores", "node_role"],
                aggregates: "max(node_capacity_cpu_cores) FILTER (WHERE kept) AS node_capacity_cpu_cores, \
                             max(node_role) FILTER (WHERE kept) AS node_role",
            }),
            ReportType::StorageUsage => Some(Facts {
                keys: &["persistentvolume", "persistentvolumeclaim"],
                columns: &["csi_volume_handle"],
                aggregates: "max(csi_volume_handle) FILTER (WHERE kept) AS csi_volume_handle",
            }),
            _ => None,
        }
    }
}

/// A node's facts from the node-label rows of the replaced days.
#[derive(Debug, Default, Clone, PartialEq)]
struct NodeLabels {
    infra: bool,
    /// The greatest label string (koku: `max(node_labels)`).
    greatest: Option<String>,
}

/// The inventory from the check's groups of the pod and storage tables (`kept_rows` counts
/// each group's kept rows; a group with none says nothing) and the node-label rows of `days`.
pub async fn read(
    ctx: &SessionContext,
    days: DayRange,
    pod_groups: &[RecordBatch],
    storage_groups: &[RecordBatch],
) -> Result<Inventory> {
    let labels = node_labels(ctx, days).await?;
    let (nodes, projects) = nodes_and_projects(pod_groups, &labels)?;
    Ok(Inventory {
        nodes,
        projects,
        pvcs: pvcs(storage_groups)?,
    })
}

/// koku's node-label side of `get_nodes_query_sql`, per node: whether a label string names the
/// node `infra`, and the greatest string.
async fn node_labels(ctx: &SessionContext, days: DayRange) -> Result<HashMap<String, NodeLabels>> {
    let sql = format!(
        "SELECT node, bool_or(node_labels LIKE '%{INFRA_LABEL}%') AS infra, max(node_labels) AS greatest \
         FROM {} WHERE interval_start >= {} AND interval_start < {} AND node IS NOT NULL GROUP BY node",
        ReportType::NodeLabels.table_name(),
        days.start_literal(),
        days.end_literal(),
    );
    let mut found = HashMap::new();
    for batch in ctx.sql(&sql).await?.collect().await? {
        let node = column_as(&batch, "node", &DataType::Utf8)?;
        let greatest = column_as(&batch, "greatest", &DataType::Utf8)?;
        let infra = column_as(&batch, "infra", &DataType::Boolean)?;
        let (node, greatest, infra) = (
            node.as_string::<i32>(),
            greatest.as_string::<i32>(),
            infra.as_boolean(),
        );
        for row in 0..batch.num_rows() {
            let labels = NodeLabels {
                infra: infra.is_valid(row) && infra.value(row),
                greatest: greatest.is_valid(row).then(|| greatest.value(row).to_string()),
            };
            found.insert(node.value(row).to_string(), labels);
        }
    }
    Ok(found)
}

/// One (node, resource id)'s pod facts over its namespaces.
#[derive(Debug, Default)]
struct PodFacts {
    capacity_cores: Option<f64>,
    node_role: Option<String>,
    api_server: bool,
}

/// koku's nodes (pod rows joined to node-label rows on node: a node without node-label rows
/// gets none) and projects (every namespace with a kept pod row).
fn nodes_and_projects(
    groups: &[RecordBatch],
    labels: &HashMap<String, NodeLabels>,
) -> Result<(Vec<NodeRow>, Vec<String>)> {
    let mut nodes: BTreeMap<(String, Option<String>), PodFacts> = BTreeMap::new();
    let mut projects = BTreeSet::new();
    for batch in groups {
        let text = |name| column_as(batch, name, &DataType::Utf8);
        let (node, resource_id, namespace, role) = (
            text("node")?,
            text("resource_id")?,
            text("namespace")?,
            text("node_role")?,
        );
        let (node, resource_id) = (node.as_string::<i32>(), resource_id.as_string::<i32>());
        let (namespace, role) = (namespace.as_string::<i32>(), role.as_string::<i32>());
        let cores = column_as(batch, "node_capacity_cpu_cores", &DataType::Float64)?;
        let cores = cores.as_primitive::<Float64Type>();
        let kept = kept_rows(batch)?;
        for row in (0..batch.num_rows()).filter(|&r| kept.value(r) > 0) {
            let namespace = namespace.is_valid(row).then(|| namespace.value(row));
            if let Some(ns) = namespace {
                projects.insert(ns.to_string());
            }
            if node.is_null(row) || !labels.contains_key(node.value(row)) {
                continue;
            }
            let id = resource_id
                .is_valid(row)
                .then(|| resource_id.value(row).to_string());
            let facts = nodes.entry((node.value(row).to_string(), id)).or_default();
            if cores.is_valid(row) {
                let v = cores.value(row);
                facts.capacity_cores = Some(facts.capacity_cores.map_or(v, |m| m.max(v)));
            }
            if role.is_valid(row) && facts.node_role.as_deref().is_none_or(|m| role.value(row) > m) {
                facts.node_role = Some(role.value(row).to_string());
            }
            facts.api_server |= namespace == Some(API_SERVER_NAMESPACE);
        }
    }
    let nodes = nodes
        .into_iter()
        .map(|((node, resource_id), facts)| node_row(node, resource_id, facts, labels))
        .collect();
    Ok((nodes, projects.into_iter().collect()))
}

/// koku's role rule: the pod rows' `node_role` when any has one, else `master` for a node that
/// ran a pod of the API server, else `infra` for one labelled so, else `worker`.
fn node_row(
    node: String,
    resource_id: Option<String>,
    facts: PodFacts,
    labels: &HashMap<String, NodeLabels>,
) -> NodeRow {
    let labels = labels.get(&node).cloned().unwrap_or_default();
    let node_role = facts.node_role.unwrap_or_else(|| {
        match (facts.api_server, labels.infra) {
            (true, _) => "master",
            (false, true) => "infra",
            (false, false) => "worker",
        }
        .to_string()
    });
    NodeRow {
        node,
        resource_id,
        node_capacity_cpu_cores: facts.capacity_cores,
        node_role,
        architecture: labels.greatest.as_deref().and_then(architecture),
    }
}

/// koku: `lower(json_extract_scalar(labels, '$.kubernetes_io_arch'))`: the value when it is a
/// scalar, null when it is absent, an object or an array, or the text is not JSON.
fn architecture(labels: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(labels).ok()?;
    match value.get("kubernetes_io_arch")? {
        serde_json::Value::String(s) => Some(s.to_lowercase()),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// koku's claims: per (volume, claim) with a kept storage row. koku lists the distinct (volume,
/// claim, handle) and the first of several handles wins in whatever order Trino returns them;
/// costagg takes the greatest handle, so reruns agree. A row without a volume or a claim, which
/// koku's insert refuses (both are NOT NULL), is left out.
fn pvcs(groups: &[RecordBatch]) -> Result<Vec<PvcRow>> {
    let mut pvcs = Vec::new();
    for batch in groups {
        let text = |name| column_as(batch, name, &DataType::Utf8);
        let (volume, claim, handle) = (
            text("persistentvolume")?,
            text("persistentvolumeclaim")?,
            text("csi_volume_handle")?,
        );
        let (volume, claim, handle) = (
            volume.as_string::<i32>(),
            claim.as_string::<i32>(),
            handle.as_string::<i32>(),
        );
        let kept = kept_rows(batch)?;
        for row in 0..batch.num_rows() {
            if kept.value(row) == 0 || volume.is_null(row) || claim.is_null(row) {
                continue;
            }
            pvcs.push(PvcRow {
                persistent_volume: volume.value(row).to_string(),
                persistent_volume_claim: claim.value(row).to_string(),
                csi_volume_handle: handle.is_valid(row).then(|| handle.value(row).to_string()),
            });
        }
    }
    pvcs.sort_by(|a, b| {
        (&a.persistent_volume, &a.persistent_volume_claim)
            .cmp(&(&b.persistent_volume, &b.persistent_volume_claim))
    });
    Ok(pvcs)
}

/// The `kept_rows` count of each group of the check's scan.
fn kept_rows(batch: &RecordBatch) -> Result<datafusion::arrow::array::Int64Array> {
    let kept = column_as(batch, "kept_rows", &DataType::Int64)?;
    kept.as_primitive_opt::<Int64Type>()
        .cloned()
        .ok_or_else(|| Error::Internal("kept_rows is not a count".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_is_the_lower_cased_scalar_or_nothing() {
        assert_eq!(
            architecture(r#"{"kubernetes_io_arch": "AMD64"}"#).as_deref(),
            Some("amd64")
        );
        assert_eq!(
            architecture(r#"{"kubernetes_io_arch": 64}"#).as_deref(),
            Some("64")
        );
        assert_eq!(architecture(r#"{"kubernetes_io_os": "linux"}"#), None);
        assert_eq!(architecture(r#"{"kubernetes_io_arch": {"a": 1}}"#), None);
        assert_eq!(architecture("{not json"), None);
    }

    #[test]
    fn the_role_column_wins_then_the_api_server_then_the_infra_label_then_worker() {
        let labels: HashMap<String, NodeLabels> = [(
            "n".to_string(),
            NodeLabels {
                infra: true,
                greatest: None,
            },
        )]
        .into();
        let role = |node_role: Option<&str>, api_server| {
            let facts = PodFacts {
                capacity_cores: Some(4.0),
                node_role: node_role.map(String::from),
                api_server,
            };
            node_row("n".into(), None, facts, &labels).node_role
        };
        assert_eq!(role(Some("worker"), true), "worker");
        assert_eq!(role(None, true), "master");
        assert_eq!(role(None, false), "infra");
        let facts = PodFacts::default();
        assert_eq!(node_row("other".into(), None, facts, &labels).node_role, "worker");
    }
}
