//! koku's reference data besides the line items — enabled tag keys, cost-category patterns,
//! node roles, the report period — and the rule that picks it: koku's table when the schema
//! has it, else the config's value. Also the rows a run adds to koku's tables around the
//! summary (clusters, nodes, claims, projects: [`Inventory`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// koku's tables costagg reads when a schema has them (`costagg check` looks for each).
pub const KOKU_TABLES: [&str; 5] = [
    "reporting_ocpusagelineitem_daily_summary",
    "reporting_enabledtagkeys",
    "reporting_ocp_cost_category_namespace",
    "reporting_ocp_nodes",
    "reporting_ocpusagereportperiod",
];

/// koku adds this key to the enabled ones so that VM labels always survive.
pub const KUBEVIRT_KEY: &str = "vm_kubevirt_io_name";

/// The enabled keys; `None` reproduces koku's quirk when no OCP key is enabled: the Trino
/// `array_agg` over no rows is null, `contains(null, k)` is null, and every label is dropped,
/// `vm_kubevirt_io_name` included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EnabledKeys(Option<BTreeSet<String>>);

impl EnabledKeys {
    /// From koku's enabled OCP keys (or the config's): empty means "none enabled" (the quirk).
    pub fn from_enabled(keys: impl IntoIterator<Item = String>) -> Self {
        let mut set: BTreeSet<String> = keys.into_iter().collect();
        if set.is_empty() {
            return EnabledKeys(None);
        }
        set.insert(KUBEVIRT_KEY.to_string());
        EnabledKeys(Some(set))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(key))
    }
}

/// A namespace pattern of koku's `reporting_ocp_cost_category_namespace`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct CostCategoryPattern {
    /// A SQL LIKE pattern: `%` any run, `_` any one character.
    pub namespace: String,
    pub cost_category_id: i32,
}

/// A node's role, as a row of koku's `reporting_ocp_nodes`: looked up on node and resource id
/// together. `master` and `infra` give `Platform unallocated`, `worker` gives `Worker
/// unallocated`; any other role leaves the unallocated row's namespace null, as in koku.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeRole {
    pub node: String,
    pub resource_id: String,
    pub node_role: String,
}

/// koku's report period row for a source and month (`reporting_ocpusagereportperiod`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPeriod {
    pub id: i32,
    pub cluster_id: String,
    pub cluster_alias: Option<String>,
}

/// What a unit's line items say about its cluster, as rows for koku's tables around the
/// summary (`reporting_ocp_nodes`, `_pvcs`, `_projects`; the cluster row comes from the unit's
/// identity). Built by `input::inventory` from the input check's scan, written by
/// `sink::koku_tables` in the unit's transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub nodes: Vec<NodeRow>,
    /// The distinct namespaces of the pod rows.
    pub projects: Vec<String>,
    pub pvcs: Vec<PvcRow>,
}

/// A node as koku's `get_nodes_query_sql` returns it: one per (node, resource id).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub node: String,
    pub resource_id: Option<String>,
    /// The max of the pod rows' `node_capacity_cpu_cores`.
    pub node_capacity_cpu_cores: Option<f64>,
    pub node_role: String,
    /// Lower-cased `kubernetes_io_arch` of the node's greatest node-label string.
    pub architecture: Option<String>,
}

/// A persistent volume claim as koku's `get_pvcs_query_sql` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvcRow {
    pub persistent_volume: String,
    pub persistent_volume_claim: String,
    pub csi_volume_handle: Option<String>,
}

/// The node roles of `reporting_ocp_nodes` as the unit's own transaction sees them once it has
/// written its nodes, handed from the sink to the summary's unallocated section, which runs
/// after the sink has started (it reads the Pod rows' totals): a node seen for the first time
/// then gets its role on its first run. Empty until the sink fills it; the summary then keeps
/// the roles it was started with.
#[derive(Debug, Clone, Default)]
pub struct RolesAfterWrite(Arc<Mutex<Option<Vec<NodeRole>>>>);

impl RolesAfterWrite {
    pub fn set(&self, roles: Vec<NodeRole>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(roles);
        }
    }

    pub fn take(&self) -> Option<Vec<NodeRole>> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// The reference data the summary needs besides the line items.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    pub enabled_keys: EnabledKeys,
    pub cost_categories: Vec<CostCategoryPattern>,
    pub node_roles: Vec<NodeRole>,
}

/// What koku's tables in a schema hold; `None` for a table the schema lacks.
#[derive(Debug, Clone, Default)]
pub struct KokuReference {
    pub enabled_keys: Option<EnabledKeys>,
    pub cost_categories: Option<Vec<CostCategoryPattern>>,
    pub node_roles: Option<Vec<NodeRole>>,
}

impl KokuReference {
    /// Each of koku's tables wins where the schema has it; the configured value fills in for a
    /// table the schema lacks (an empty koku table wins too: it is koku's word).
    pub fn or(self, configured: Reference) -> Reference {
        Reference {
            enabled_keys: self.enabled_keys.unwrap_or(configured.enabled_keys),
            cost_categories: self.cost_categories.unwrap_or(configured.cost_categories),
            node_roles: self.node_roles.unwrap_or(configured.node_roles),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_the_schema_has_wins_even_when_empty_and_the_config_fills_the_others() {
        let configured = Reference {
            enabled_keys: EnabledKeys::from_enabled(["app".to_string()]),
            cost_categories: vec![CostCategoryPattern {
                namespace: "kube-%".into(),
                cost_category_id: 1,
            }],
            node_roles: vec![NodeRole {
                node: "n1".into(),
                resource_id: "i-1".into(),
                node_role: "worker".into(),
            }],
        };
        let koku = KokuReference {
            enabled_keys: Some(EnabledKeys::from_enabled(["team".to_string()])),
            cost_categories: Some(vec![]),
            node_roles: None,
        };
        let merged = koku.or(configured.clone());
        assert!(merged.enabled_keys.contains("team") && !merged.enabled_keys.contains("app"));
        assert!(merged.cost_categories.is_empty());
        assert_eq!(merged.node_roles, configured.node_roles);
    }
}
