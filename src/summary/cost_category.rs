//! Cost categories: koku's `LEFT JOIN reporting_ocp_cost_category_namespace AS cat_ns ON
//! namespace LIKE cat_ns.namespace` with `max(cat_ns.cost_category_id)`, as a function of the
//! namespace.
//!
//! As a join it needed the distinct namespaces of each section's rows, and DataFusion inlines a
//! CTE at every reference, so the join planned each section (both scans of the pod usage files
//! included) a second time. As a function it runs once per distinct namespace of a batch.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::Int32Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::reference::CostCategoryPattern;
use crate::summary::labels::Texts;

/// Trino's `LIKE` without an escape character: `%` matches any run of characters, `_` one
/// character, anything else itself (case-sensitive).
pub fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // Greedy match with backtracking to the last `%` (linear in practice for these patterns).
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('%') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '_' || c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}

/// The max category id of the patterns `namespace` matches, `None` when it matches none.
pub fn category(namespace: &str, patterns: &[CostCategoryPattern]) -> Option<i32> {
    patterns
        .iter()
        .filter(|p| like(namespace, &p.namespace))
        .map(|p| p.cost_category_id)
        .max()
}

/// `koku_cost_category(namespace) -> int`: see the module comment. A null namespace has none.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CostCategory {
    patterns: Vec<CostCategoryPattern>,
    signature: Signature,
}

impl CostCategory {
    pub fn udf(patterns: &[CostCategoryPattern]) -> ScalarUDF {
        ScalarUDF::new_from_impl(CostCategory {
            patterns: patterns.to_vec(),
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for CostCategory {
    fn name(&self) -> &str {
        "koku_cost_category"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let input = Texts::new(&args.args[0], args.number_rows)?;
        let mut cache: HashMap<&str, Option<i32>> = HashMap::new();
        let mut out = Int32Builder::with_capacity(input.len());
        for i in 0..input.len() {
            if input.is_null(i) {
                out.append_null();
                continue;
            }
            let namespace = input.get(i);
            let id = *cache
                .entry(namespace)
                .or_insert_with(|| category(namespace, &self.patterns));
            out.append_option(id);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_follows_trino() {
        assert!(like("openshift-monitoring", "openshift-%"));
        assert!(like("openshift-", "openshift-%"));
        assert!(!like("openshift", "openshift-%"));
        assert!(like("kube_system", "kube_system"));
        assert!(like("kubeXsystem", "kube_system"), "`_` is any one character");
        assert!(!like("kube-system-x", "kube_system"));
        assert!(like("a-monitoring", "%-monitoring"));
        assert!(like("x-mon-y-monitoring", "%-mon%-monitoring"));
        assert!(!like("Openshift-x", "openshift-%"), "case-sensitive");
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("Platform unallocated", "% unallocated"));
        assert!(like("a\\b", "a\\b"), "no escape character");
    }

    #[test]
    fn overlapping_patterns_take_the_max() {
        let patterns =
            [("openshift-%", 1), ("%-monitoring", 5), ("kube-%", 2)].map(|(n, id)| CostCategoryPattern {
                namespace: n.into(),
                cost_category_id: id,
            });
        assert_eq!(category("openshift-monitoring", &patterns), Some(5));
        assert_eq!(category("openshift-etcd", &patterns), Some(1));
        assert_eq!(category("payments", &patterns), None);
    }
}
