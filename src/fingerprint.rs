//! Digests that tell whether a unit's result could differ from its last write: its input as a
//! listing describes it (which files, how large, which version — no file is read), and the
//! settings of koku's that change the rows (enabled tag keys, cost categories). A sweep stores
//! both with each successful write and re-summarises a unit only when one of them changed.

use object_store::ObjectMeta;

use crate::reference::Reference;

/// SHA-256 of `text`, as 64 hex digits.
fn digest(text: &str) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The files' paths, sizes and versions (the ETag, else the last-modified time), sorted by
/// path, as one digest: the same for the same listing whatever order it came in.
pub fn of_files<'a>(files: impl IntoIterator<Item = &'a ObjectMeta>) -> String {
    let mut lines: Vec<String> = files
        .into_iter()
        .map(|meta| {
            let version = meta
                .e_tag
                .clone()
                .unwrap_or_else(|| meta.last_modified.to_rfc3339());
            format!("{}\t{}\t{version}\n", meta.location, meta.size)
        })
        .collect();
    lines.sort();
    digest(&lines.concat())
}

/// The reference data that changes a unit's rows besides its input, as one digest: the enabled
/// tag keys and the cost-category patterns. The node roles are left out: a unit's own write
/// adds nodes to koku's table, which must not make every other unit of the schema due.
pub fn of_settings(reference: &Reference) -> String {
    let mut categories: Vec<String> = reference
        .cost_categories
        .iter()
        .map(|c| format!("{}\t{}", c.namespace, c.cost_category_id))
        .collect();
    categories.sort();
    digest(&format!(
        "enabled keys: {:?}\ncost categories: {categories:?}\n",
        reference.enabled_keys
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{CostCategoryPattern, EnabledKeys};

    fn meta(path: &str, size: u64, e_tag: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            location: object_store::path::Path::from(path),
            last_modified: chrono::DateTime::from_timestamp(1_760_000_000, 0).unwrap(),
            size,
            e_tag: e_tag.map(String::from),
            version: None,
        }
    }

    #[test]
    fn a_listing_digest_ignores_order_and_sees_every_path_size_and_version() {
        let a = meta("p/a.parquet", 10, Some("e1"));
        let b = meta("p/b.parquet", 20, None);
        let same = of_files([&a, &b]);
        assert_eq!(same, of_files([&b, &a]));
        assert_eq!(same.len(), 64);
        assert_ne!(same, of_files([&a]), "a file removed");
        assert_ne!(
            same,
            of_files([&a, &b, &meta("p/c.parquet", 1, None)]),
            "a file added"
        );
        assert_ne!(
            same,
            of_files([&meta("p/a.parquet", 11, Some("e1")), &b]),
            "a size"
        );
        assert_ne!(
            same,
            of_files([&meta("p/a.parquet", 10, Some("e2")), &b]),
            "an ETag"
        );
        let mut later = b.clone();
        later.last_modified = chrono::DateTime::from_timestamp(1_760_000_001, 0).unwrap();
        assert_ne!(same, of_files([&a, &later]), "the time, without an ETag");
    }

    #[test]
    fn the_settings_digest_follows_keys_and_categories_not_node_roles() {
        let base = Reference {
            enabled_keys: EnabledKeys::from_enabled(["app".to_string()]),
            cost_categories: vec![
                CostCategoryPattern {
                    namespace: "kube-%".into(),
                    cost_category_id: 1,
                },
                CostCategoryPattern {
                    namespace: "openshift-%".into(),
                    cost_category_id: 1,
                },
            ],
            node_roles: vec![],
        };
        let digest = of_settings(&base);
        let mut reordered = base.clone();
        reordered.cost_categories.reverse();
        assert_eq!(digest, of_settings(&reordered));
        let mut roles = base.clone();
        roles.node_roles.push(crate::reference::NodeRole {
            node: "n".into(),
            resource_id: "i".into(),
            node_role: "worker".into(),
        });
        assert_eq!(digest, of_settings(&roles));
        let mut keys = base.clone();
        keys.enabled_keys = EnabledKeys::from_enabled(["app".to_string(), "team".to_string()]);
        assert_ne!(digest, of_settings(&keys));
        let mut none = base.clone();
        none.enabled_keys = EnabledKeys::from_enabled(Vec::<String>::new());
        assert_ne!(digest, of_settings(&none));
        let mut categories = base;
        categories.cost_categories[0].cost_category_id = 2;
        assert_ne!(digest, of_settings(&categories));
    }
}
