//! koku's reference data besides the line items — enabled tag keys, cost-category patterns,
//! node roles, the report period — and the rule that picks it: koku's table when the schema
//! has it, else the config's value.

use std::collections::BTreeSet;

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
