//! The Pod section: capacity, labels, grouping, conversions, cost categories.

use std::sync::Arc;

use super::*;

#[tokio::test]
async fn node_capacity_is_the_max_per_hour_and_node_summed_over_the_day() {
    let cap = |hour, pod, cpu_s, mem_bs| Line {
        pod,
        cap_cores: 4.0,
        cap_cpu_seconds: cpu_s,
        cap_mem_bytes: 8.0 * GIB,
        cap_mem_byte_seconds: mem_bs,
        ..line(hour, "ns", "n1", "{}")
    };
    let rows = summarise(fixture(vec![
        // Hour 0: two pods report 14400 and 7200 core-seconds; the max is 14400.
        cap(0, "a", 14400.0, 8.0 * GIB * 3600.0),
        cap(0, "b", 7200.0, 4.0 * GIB * 3600.0),
        // Hour 1: one pod, 14400.
        cap(1, "a", 14400.0, 8.0 * GIB * 3600.0),
    ]))
    .await;
    assert_eq!(rows.len(), 1);
    // (14400 + 14400) / 3600 = 8 core-hours; not (14400 + 7200 + 14400) / 3600 = 10.
    assert_close(rows.f64("node_capacity_cpu_core_hours", 0), 8.0);
    // 2 hours × 8 GiB = 16 GiB-hours.
    assert_close(rows.f64("node_capacity_memory_gigabyte_hours", 0), 16.0);
    assert_close(rows.f64("node_capacity_cpu_cores", 0), 4.0);
    assert_close(rows.f64("node_capacity_memory_gigabytes", 0), 8.0);
}

#[tokio::test]
async fn cluster_capacity_sums_every_node_including_the_empty_one() {
    let cap = |node, cpu_s| Line {
        cap_cpu_seconds: cpu_s,
        cap_mem_byte_seconds: GIB * 3600.0,
        ..line(0, "ns", node, "{}")
    };
    let rows = summarise(fixture(vec![
        cap("n1", 4.0 * 3600.0),
        cap("n2", 2.0 * 3600.0),
        cap("", 3600.0),
    ]))
    .await;
    // The empty-node row gives no Pod row, but counts in the cluster: 4 + 2 + 1 = 7 core-hours.
    assert_eq!(rows.len(), 2);
    for r in 0..2 {
        assert_close(rows.f64("cluster_capacity_cpu_core_hours", r), 7.0);
        // Three nodes at 1 GiB each for an hour.
        assert_close(rows.f64("cluster_capacity_memory_gigabyte_hours", r), 3.0);
    }
    assert_eq!(rows.text("node", 0).as_deref(), Some("n1"));
    assert_close(rows.f64("node_capacity_cpu_core_hours", 0), 4.0);
    assert_close(rows.f64("node_capacity_cpu_core_hours", 1), 2.0);
}

#[tokio::test]
async fn rows_with_an_empty_node_give_no_pod_row() {
    let rows = summarise(fixture(vec![
        Line {
            usage_cpu: 3600.0,
            ..line(0, "ns", "", "{}")
        },
        Line {
            usage_cpu: 7200.0,
            ..line(0, "ns", "n1", "{}")
        },
    ]))
    .await;
    assert_eq!(rows.len(), 1);
    // Only n1's 7200 core-seconds: 2 core-hours.
    assert_close(rows.f64("pod_usage_cpu_core_hours", 0), 2.0);
}

#[tokio::test]
async fn node_then_namespace_then_pod_labels_win_on_key_collisions() {
    let mut f = fixture(vec![line(0, "ns", "n1", r#"{"app": "pod"}"#)]);
    f.node_labels = vec![(0, "n1", r#"{"app":"node","zone":"a"}"#)];
    f.namespace_labels = vec![(0, "ns", r#"{"app":"ns","team":"t1","zone":"b"}"#)];
    let rows = summarise(f).await;
    // app: pod beats ns beats node; zone: ns beats node; team from ns.
    let expected = r#"{"app":"pod","team":"t1","zone":"b"}"#;
    assert_eq!(rows.text("pod_labels", 0).as_deref(), Some(expected));
    assert_eq!(rows.text("all_labels", 0).as_deref(), Some(expected));
}

#[tokio::test]
async fn only_enabled_keys_and_the_kubevirt_name_are_kept() {
    let mut f = fixture(vec![line(
        0,
        "ns",
        "n1",
        r#"{"app":"web","tier":"db","vm_kubevirt_io_name":"vm1"}"#,
    )]);
    f.enabled = vec!["app"];
    f.node_labels = vec![(0, "n1", r#"{"rack":"r1"}"#)];
    let rows = summarise(f).await;
    assert_eq!(
        rows.text("pod_labels", 0).as_deref(),
        Some(r#"{"app":"web","vm_kubevirt_io_name":"vm1"}"#)
    );
}

#[tokio::test]
async fn with_no_enabled_key_every_label_is_dropped() {
    let mut f = fixture(vec![line(
        0,
        "ns",
        "n1",
        r#"{"app":"web","vm_kubevirt_io_name":"vm1"}"#,
    )]);
    f.enabled = vec![];
    f.namespace_labels = vec![(0, "ns", r#"{"team":"t1"}"#)];
    let rows = summarise(f).await;
    assert_eq!(rows.text("pod_labels", 0).as_deref(), Some("{}"));
}

#[tokio::test]
async fn a_label_change_within_a_day_gives_two_rows() {
    let cpu = |hour, labels| Line {
        usage_cpu: 3600.0,
        ..line(hour, "ns", "n1", labels)
    };
    let rows = summarise(fixture(vec![
        cpu(0, r#"{"app":"web","version":"v1"}"#),
        cpu(1, r#"{"app":"web","version":"v1"}"#),
        cpu(2, r#"{"app":"web","version":"v2"}"#),
    ]))
    .await;
    assert_eq!(rows.len(), 2);
    // v1: hours 0 and 1 → 2 core-hours; v2: hour 2 → 1 core-hour.
    assert_eq!(
        rows.text("pod_labels", 0).as_deref(),
        Some(r#"{"app":"web","version":"v1"}"#)
    );
    assert_close(rows.f64("pod_usage_cpu_core_hours", 0), 2.0);
    assert_close(rows.f64("pod_usage_cpu_core_hours", 1), 1.0);
}

#[tokio::test]
async fn pods_with_the_same_labels_fold_into_one_row_and_unused_keys_do_not_split_it() {
    let rows = summarise(fixture(vec![
        Line {
            pod: "a",
            usage_cpu: 3600.0,
            ..line(0, "ns", "n1", r#"{"app":"web","pod_template_hash":"1"}"#)
        },
        Line {
            pod: "b",
            usage_cpu: 1800.0,
            ..line(0, "ns", "n1", r#"{"app":"web","pod_template_hash":"2"}"#)
        },
    ]))
    .await;
    // pod_template_hash is not enabled, so both pods are {"app":"web"}: (3600 + 1800) / 3600.
    assert_eq!(rows.len(), 1);
    assert_close(rows.f64("pod_usage_cpu_core_hours", 0), 1.5);
}

#[tokio::test]
async fn effective_usage_falls_back_to_the_greater_of_usage_and_request() {
    let rows = summarise(fixture(vec![
        // No effective value: max(7200, 3600) = 7200 core-seconds; memory max(1 GiB, 2 GiB)·h.
        Line {
            usage_cpu: 7200.0,
            request_cpu: 3600.0,
            usage_mem: GIB * 3600.0,
            request_mem: 2.0 * GIB * 3600.0,
            ..line(0, "ns", "n1", "{}")
        },
        // Effective given: 1800 core-seconds and 0.5 GiB-hours, even though usage is larger.
        Line {
            usage_cpu: 9000.0,
            effective_cpu: Some(1800.0),
            usage_mem: 4.0 * GIB * 3600.0,
            effective_mem: Some(0.5 * GIB * 3600.0),
            ..line(1, "ns", "n1", "{}")
        },
    ]))
    .await;
    // CPU: (7200 + 1800) / 3600 = 2.5; memory: 2 + 0.5 = 2.5 GiB-hours.
    assert_close(rows.f64("pod_effective_usage_cpu_core_hours", 0), 2.5);
    assert_close(rows.f64("pod_effective_usage_memory_gigabyte_hours", 0), 2.5);
    // Plain usage is still the sum: (7200 + 9000) / 3600 = 4.5.
    assert_close(rows.f64("pod_usage_cpu_core_hours", 0), 4.5);
}

#[tokio::test]
async fn memory_is_converted_to_binary_gigabytes() {
    let rows = summarise(fixture(vec![Line {
        // 3 GiB for one hour, request 1.5 GiB, limit 6 GiB, on a 64 GiB node.
        usage_mem: 3.0 * GIB * 3600.0,
        request_mem: 1.5 * GIB * 3600.0,
        limit_mem: 6.0 * GIB * 3600.0,
        cap_mem_bytes: 64.0 * GIB,
        cap_mem_byte_seconds: 64.0 * GIB * 3600.0,
        ..line(0, "ns", "n1", "{}")
    }]))
    .await;
    assert_close(rows.f64("pod_usage_memory_gigabyte_hours", 0), 3.0);
    assert_close(rows.f64("pod_request_memory_gigabyte_hours", 0), 1.5);
    assert_close(rows.f64("pod_limit_memory_gigabyte_hours", 0), 6.0);
    assert_close(rows.f64("node_capacity_memory_gigabytes", 0), 64.0);
    assert_close(rows.f64("node_capacity_memory_gigabyte_hours", 0), 64.0);
    // 1e9 bytes is not a gigabyte here: koku uses 2^-30.
    let rows = summarise(fixture(vec![Line {
        usage_mem: 1e9 * 3600.0,
        ..line(0, "ns", "n1", "{}")
    }]))
    .await;
    assert_close(rows.f64("pod_usage_memory_gigabyte_hours", 0), 1e9 / GIB);
}

#[tokio::test]
async fn only_days_in_the_range_count_for_usage_and_capacity() {
    let l = |hour| Line {
        usage_cpu: 3600.0,
        cap_cpu_seconds: 7200.0,
        ..line(hour, "ns", "n1", "{}")
    };
    let mut f = fixture(vec![l(0), l(24), l(25), l(48)]);
    f.start = day(2);
    f.end = day(2);
    let rows = summarise(f).await;
    // Only Oct 2 (hours 24 and 25): 2 core-hours used, capacity 2 × 7200 / 3600 = 4.
    assert_eq!(rows.len(), 1);
    assert_eq!(rows.text("usage_start", 0).as_deref(), Some("2025-10-02"));
    assert_eq!(rows.text("usage_end", 0).as_deref(), Some("2025-10-02"));
    assert_close(rows.f64("pod_usage_cpu_core_hours", 0), 2.0);
    assert_close(rows.f64("node_capacity_cpu_core_hours", 0), 4.0);
    assert_close(rows.f64("cluster_capacity_cpu_core_hours", 0), 4.0);
}

#[tokio::test]
async fn cost_categories_match_like_patterns_and_overlaps_take_the_max_without_multiplying() {
    let l = |ns| Line {
        usage_cpu: 3600.0,
        ..line(0, ns, "n1", "{}")
    };
    let mut f = fixture(vec![l("openshift-monitoring"), l("kube-system"), l("payments")]);
    // `_` matches any one character, so kube_system matches kube-system.
    f.cost_categories = vec![("openshift-%", 1), ("kube_system", 2), ("%-monitoring", 5)];
    let rows = summarise(f).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.text("namespace", 0).as_deref(), Some("kube-system"));
    assert_eq!(rows.int("cost_category_id", 0), Some(2));
    // openshift-monitoring matches both 1 and 5: max is 5, usage counted once (1 core-hour).
    assert_eq!(rows.int("cost_category_id", 1), Some(5));
    assert_close(rows.f64("pod_usage_cpu_core_hours", 1), 1.0);
    assert_eq!(rows.int("cost_category_id", 2), None);
}

#[tokio::test]
async fn resource_id_request_and_limit_are_carried() {
    let rows = summarise(fixture(vec![Line {
        request_cpu: 1800.0,
        limit_cpu: 7200.0,
        ..line(0, "ns", "n1", "{}")
    }]))
    .await;
    assert_eq!(rows.text("resource_id", 0).as_deref(), Some("i-1"));
    assert_eq!(rows.text("data_source", 0).as_deref(), Some("Pod"));
    assert_close(rows.f64("pod_request_cpu_core_hours", 0), 0.5);
    assert_close(rows.f64("pod_limit_cpu_core_hours", 0), 2.0);
}

#[tokio::test]
async fn resource_id_is_the_groups_greatest_in_text_order() {
    // koku's max(resource_id), over the line items of one day, namespace and node whose raw
    // labels differ only in a key that is not enabled: one row. As text, "i-9" > "i-10" > "i-1".
    let l = |hour, labels, id| Line {
        resource_id: Some(id),
        ..line(hour, "ns", "n1", labels)
    };
    let rows = summarise(fixture(vec![
        l(0, r#"{"app":"web","tmp":"1"}"#, "i-10"),
        l(1, r#"{"app":"web","tmp":"2"}"#, "i-9"),
        l(2, r#"{"app":"web","tmp":"1"}"#, "i-1"),
    ]))
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows.text("pod_labels", 0).as_deref(), Some(r#"{"app":"web"}"#));
    assert_eq!(rows.text("resource_id", 0).as_deref(), Some("i-9"));
}

#[tokio::test]
async fn malformed_label_json_is_read_as_no_labels_and_remembered_once() {
    let malformed = Arc::new(crate::summary::labels::MalformedLabels::default());
    let mut f = fixture(vec![
        Line {
            usage_cpu: 3600.0,
            ..line(0, "ns", "n1", "{app: web")
        },
        Line {
            usage_cpu: 3600.0,
            ..line(1, "ns", "n1", "{app: web")
        },
        Line {
            usage_cpu: 3600.0,
            ..line(2, "ns", "n1", r#"{"app":"web"}"#)
        },
    ]);
    f.enabled = vec!["app"];
    let rows = summarise_noting(f, malformed.clone()).await;
    // Hours 0 and 1 carry the same malformed string: {} with 2 core-hours; hour 2 its own row.
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.text("pod_labels", 0).as_deref(), Some(r#"{"app":"web"}"#));
    assert_eq!(rows.text("pod_labels", 1).as_deref(), Some("{}"));
    assert_close(rows.f64("pod_usage_cpu_core_hours", 1), 2.0);
    assert_eq!(malformed.count(), 1);
    assert_eq!(malformed.examples(3), ["{app: web"]);
}
