//! Unallocated capacity: per node and day, the node's capacity minus what its pods used,
//! named by the node's role.

use super::*;

/// One hour on `node` (a 4-core, 8 GiB node) of a pod using 1 core and 1 GiB and requesting
/// 2 cores and 3 GiB.
fn busy(hour: i64, namespace: &'static str, node: &'static str, resource_id: &'static str) -> Line {
    Line {
        resource_id: Some(resource_id),
        usage_cpu: 3600.0,
        request_cpu: 7200.0,
        limit_cpu: 14400.0,
        usage_mem: GIB * 3600.0,
        request_mem: 3.0 * GIB * 3600.0,
        cap_cores: 4.0,
        cap_cpu_seconds: 4.0 * 3600.0,
        cap_mem_bytes: 8.0 * GIB,
        cap_mem_byte_seconds: 8.0 * GIB * 3600.0,
        ..line(hour, namespace, node, "{}")
    }
}

#[tokio::test]
async fn each_node_gets_its_capacity_minus_its_pods_named_by_its_role() {
    let mut f = fixture(vec![
        busy(0, "ns", "m1", "i-m"),
        busy(0, "ns", "inf1", "i-i"),
        busy(0, "ns", "w1", "i-w"),
        busy(0, "ns", "u1", "i-u"),
        busy(0, "ns", "o1", "i-o"),
    ]);
    f.node_roles = vec![
        ("m1", "i-m", "master"),
        ("inf1", "i-i", "infra"),
        ("w1", "i-w", "worker"),
        ("o1", "i-o", "storage"),
    ];
    let rows = summarise_unallocated(f).await;
    assert_eq!(rows.len(), 5);
    // Sorted by namespace, nulls first: the unknown role (u1) and a role koku does not name (o1).
    let named: Vec<_> = (0..5)
        .map(|r| (rows.text("namespace", r), rows.text("node", r)))
        .collect();
    let expect = |ns: Option<&str>, node: &str| (ns.map(String::from), Some(node.to_string()));
    assert_eq!(
        named,
        [
            expect(None, "o1"),
            expect(None, "u1"),
            expect(Some("Platform unallocated"), "inf1"),
            expect(Some("Platform unallocated"), "m1"),
            expect(Some("Worker unallocated"), "w1"),
        ]
    );
    for r in 0..5 {
        // 4 core-hours of capacity: 4 - 1 used = 3, 4 - 2 requested = 2, effective max(1, 2) → 2.
        assert_close(rows.f64("pod_usage_cpu_core_hours", r), 3.0);
        assert_close(rows.f64("pod_request_cpu_core_hours", r), 2.0);
        assert_close(rows.f64("pod_effective_usage_cpu_core_hours", r), 2.0);
        // 8 GiB-hours: 8 - 1 = 7, 8 - 3 = 5, effective max(1, 3) → 5.
        assert_close(rows.f64("pod_usage_memory_gigabyte_hours", r), 7.0);
        assert_close(rows.f64("pod_request_memory_gigabyte_hours", r), 5.0);
        assert_close(rows.f64("pod_effective_usage_memory_gigabyte_hours", r), 5.0);
        // Capacities are the pod rows' maxima; the cluster is five 4-core nodes for an hour.
        assert_close(rows.f64("node_capacity_cpu_cores", r), 4.0);
        assert_close(rows.f64("node_capacity_cpu_core_hours", r), 4.0);
        assert_close(rows.f64("node_capacity_memory_gigabytes", r), 8.0);
        assert_close(rows.f64("node_capacity_memory_gigabyte_hours", r), 8.0);
        assert_close(rows.f64("cluster_capacity_cpu_core_hours", r), 20.0);
        assert_close(rows.f64("cluster_capacity_memory_gigabyte_hours", r), 40.0);
        // Limits, labels and the infrastructure cost are not koku's to fill here.
        assert!(rows.is_null("pod_limit_cpu_core_hours", r));
        assert!(rows.is_null("pod_limit_memory_gigabyte_hours", r));
        assert!(rows.is_null("pod_labels", r));
        assert!(rows.is_null("volume_labels", r));
        assert!(rows.is_null("infrastructure_usage_cost", r));
        assert_eq!(rows.text("all_labels", r).as_deref(), Some("{}"));
        assert_eq!(rows.text("data_source", r).as_deref(), Some("Pod"));
    }
}

#[tokio::test]
async fn roles_match_on_node_and_resource_id_together_and_the_max_role_wins() {
    let mut f = fixture(vec![busy(0, "ns", "n1", "i-1"), busy(0, "ns", "n2", "i-2")]);
    f.node_roles = vec![
        // n1 has two rows for its resource: max('infra', 'worker') = 'worker'.
        ("n1", "i-1", "infra"),
        ("n1", "i-1", "worker"),
        // n2's role row names another resource id: no match, a null namespace.
        ("n2", "i-old", "master"),
    ];
    let rows = summarise_unallocated(f).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.text("node", 0).as_deref(), Some("n2"));
    assert_eq!(rows.text("namespace", 0), None);
    assert_eq!(rows.text("node", 1).as_deref(), Some("n1"));
    assert_eq!(rows.text("namespace", 1).as_deref(), Some("Worker unallocated"));
}

#[tokio::test]
async fn all_pod_rows_of_the_node_and_day_are_subtracted_except_unattributed_ones() {
    let mut f = fixture(vec![
        // Day 1 on w1: two namespaces and two label sets (three Pod rows), and a row in a
        // namespace another koku step owns, which is left out.
        busy(0, "a", "w1", "i-w"),
        Line {
            labels: r#"{"app":"x"}"#,
            ..busy(0, "a", "w1", "i-w")
        },
        busy(0, "b", "w1", "i-w"),
        busy(0, "Network unattributed", "w1", "i-w"),
        // Day 2 on w1: one pod.
        busy(24, "a", "w1", "i-w"),
    ]);
    f.node_roles = vec![("w1", "i-w", "worker")];
    let rows = summarise_unallocated(f).await;
    assert_eq!(rows.len(), 2);
    // Day 1: capacity 4 core-hours (max per hour, one hour), three pods each using 1 → 1 left;
    // each requesting 2 → 4 - 6 = -2 (koku does not clamp).
    assert_eq!(rows.text("usage_start", 0).as_deref(), Some("2025-10-01"));
    assert_close(rows.f64("pod_usage_cpu_core_hours", 0), 1.0);
    assert_close(rows.f64("pod_request_cpu_core_hours", 0), -2.0);
    // Memory: 8 - 3 × 1 = 5 GiB-hours.
    assert_close(rows.f64("pod_usage_memory_gigabyte_hours", 0), 5.0);
    // Day 2: one pod, 4 - 1 = 3.
    assert_eq!(rows.text("usage_start", 1).as_deref(), Some("2025-10-02"));
    assert_close(rows.f64("pod_usage_cpu_core_hours", 1), 3.0);
}

#[tokio::test]
async fn unallocated_namespaces_take_the_cost_category_their_name_matches() {
    let mut f = fixture(vec![
        busy(0, "ns", "m1", "i-m"),
        busy(0, "ns", "w1", "i-w"),
        busy(0, "ns", "u1", "i-u"),
    ]);
    f.node_roles = vec![("m1", "i-m", "master"), ("w1", "i-w", "worker")];
    // Platform unallocated matches both patterns: the max, 4. Worker unallocated matches the
    // first only. The null namespace matches nothing.
    f.cost_categories = vec![("% unallocated", 3), ("Platform%", 4)];
    let rows = summarise_unallocated(f).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.int("cost_category_id", 0), None);
    assert_eq!(rows.text("namespace", 1).as_deref(), Some("Platform unallocated"));
    assert_eq!(rows.int("cost_category_id", 1), Some(4));
    assert_eq!(rows.int("cost_category_id", 2), Some(3));
}
