//! The Storage section: the node a claim's pod ran on, shared volumes, gigabyte-months,
//! volume labels and cost categories.

use super::*;

/// A pod running on `node` (resource `i-<node>`) at `hour`.
fn running(hour: i64, namespace: &'static str, pod: &'static str, node: &'static str) -> Line {
    let resource_id = match node {
        "n1" => "i-n1",
        "n2" => "i-n2",
        _ => "i-other",
    };
    Line {
        pod,
        resource_id: Some(resource_id),
        ..line(hour, namespace, node, "{}")
    }
}

#[tokio::test]
async fn a_claim_takes_the_node_and_resource_of_the_pod_that_mounted_it() {
    let hourly = |hour| StorageLine {
        capacity_bytes: 10.0 * GIB,
        capacity_byte_seconds: 10.0 * GIB * 3600.0,
        request_byte_seconds: 10.0 * GIB * 3600.0,
        usage_byte_seconds: 4.0 * GIB * 3600.0,
        ..storage_line(hour, "data", "db-0", "pvc-a")
    };
    let mut f = fixture(vec![
        running(0, "data", "db-0", "n1"),
        running(1, "data", "db-0", "n1"),
    ]);
    f.storage = vec![hourly(0), hourly(1)];
    let rows = summarise_storage(f).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows.text("node", 0).as_deref(), Some("n1"));
    assert_eq!(rows.text("resource_id", 0).as_deref(), Some("i-n1"));
    assert_eq!(rows.text("persistentvolumeclaim", 0).as_deref(), Some("pvc-a"));
    assert_eq!(rows.text("persistentvolume", 0).as_deref(), Some("pv-1"));
    assert_eq!(rows.text("storageclass", 0).as_deref(), Some("gp3"));
    // Capacity is the max of the bytes: 10 GiB.
    assert_close(rows.f64("persistentvolumeclaim_capacity_gigabyte", 0), 10.0);
    // October has 31 days: 2 h × 10 GiB = 72000 GiB-seconds / (86400 × 31) = 0.0268817…
    let month_seconds = 86400.0 * 31.0;
    assert_close(
        rows.f64("persistentvolumeclaim_capacity_gigabyte_months", 0),
        72000.0 / month_seconds,
    );
    assert_close(
        rows.f64("volume_request_storage_gigabyte_months", 0),
        72000.0 / month_seconds,
    );
    // Usage 2 h × 4 GiB = 28800 GiB-seconds.
    assert_close(
        rows.f64("persistentvolumeclaim_usage_gigabyte_months", 0),
        28800.0 / month_seconds,
    );
    // Pod columns are null; infrastructure_usage_cost is koku's zero object.
    assert!(rows.is_null("pod_labels", 0));
    assert!(rows.is_null("pod_usage_cpu_core_hours", 0));
    assert!(rows.is_null("node_capacity_cpu_core_hours", 0));
    assert!(rows.is_null("cluster_capacity_cpu_core_hours", 0));
    assert_eq!(
        rows.text("infrastructure_usage_cost", 0).as_deref(),
        Some(r#"{"cpu": 0, "memory": 0, "storage": 0}"#)
    );
}

#[tokio::test]
async fn a_volume_shared_by_pods_on_two_nodes_splits_request_and_usage_but_not_capacity() {
    // One day's roll-up row per (claim, pod): pod a on n1, pod b on n2, both mounting pv-shared.
    let daily = |pod| StorageLine {
        pv: "pv-shared",
        capacity_bytes: 20.0 * GIB,
        capacity_byte_seconds: 20.0 * GIB * 86400.0,
        request_byte_seconds: 20.0 * GIB * 86400.0,
        usage_byte_seconds: 6.0 * GIB * 86400.0,
        ..storage_line(0, "web", pod, "shared")
    };
    let mut f = fixture(vec![running(0, "web", "a", "n1"), running(5, "web", "b", "n2")]);
    f.storage = vec![daily("a"), daily("b")];
    let rows = summarise_storage(f).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.text("node", 0).as_deref(), Some("n1"));
    assert_eq!(rows.text("node", 1).as_deref(), Some("n2"));
    for r in 0..2 {
        // Capacity: 20 GiB for the whole day of a 31-day month = 20/31, on each node.
        assert_close(
            rows.f64("persistentvolumeclaim_capacity_gigabyte_months", r),
            20.0 / 31.0,
        );
        // Request and usage are divided by the 2 nodes: 10/31 and 3/31.
        assert_close(rows.f64("volume_request_storage_gigabyte_months", r), 10.0 / 31.0);
        assert_close(
            rows.f64("persistentvolumeclaim_usage_gigabyte_months", r),
            3.0 / 31.0,
        );
    }
}

#[tokio::test]
async fn a_claim_whose_pod_ran_on_no_node_that_day_has_no_node_and_null_request_and_usage() {
    let daily = |pod, pvc| StorageLine {
        capacity_bytes: 5.0 * GIB,
        capacity_byte_seconds: 5.0 * GIB * 86400.0,
        request_byte_seconds: 5.0 * GIB * 86400.0,
        usage_byte_seconds: GIB * 86400.0,
        pv_labels: r#"{"app":"pv"}"#,
        pv: pvc,
        ..storage_line(0, "data", pod, pvc)
    };
    // "gone" ran on day 2 only; "" is a claim mounted by no pod at all.
    let mut f = fixture(vec![running(24, "data", "gone", "n1")]);
    f.storage = vec![daily("gone", "pvc-gone"), daily("", "pvc-unmounted")];
    f.node_labels = vec![(0, "n1", r#"{"zone":"a"}"#)];
    f.namespace_labels = vec![(0, "data", r#"{"team":"t1"}"#)];
    let rows = summarise_storage(f).await;
    assert_eq!(rows.len(), 2);
    for r in 0..2 {
        assert!(rows.is_null("node", r));
        assert!(rows.is_null("resource_id", r));
        // Capacity still counts: 5 GiB for a day of 31 = 5/31.
        assert_close(rows.f64("persistentvolumeclaim_capacity_gigabyte", r), 5.0);
        assert_close(
            rows.f64("persistentvolumeclaim_capacity_gigabyte_months", r),
            5.0 / 31.0,
        );
        // koku divides by a node count that does not exist: null.
        assert!(rows.is_null("volume_request_storage_gigabyte_months", r));
        assert!(rows.is_null("persistentvolumeclaim_usage_gigabyte_months", r));
        // No node, so no node labels; the namespace's and the volume's still apply.
        assert_eq!(
            rows.text("volume_labels", r).as_deref(),
            Some(r#"{"app":"pv","team":"t1"}"#)
        );
    }
}

#[tokio::test]
async fn gigabyte_months_divide_by_the_days_of_the_month() {
    for (first, days) in [
        (NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(), 28.0),
        (NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(), 29.0),
        (NaiveDate::from_ymd_opt(2025, 11, 1).unwrap(), 30.0),
        (day(1), 31.0),
    ] {
        let hour = hour_of(first);
        let mut f = fixture(vec![running(hour, "data", "db-0", "n1")]);
        // 1 GiB for a whole day.
        f.storage = vec![StorageLine {
            capacity_byte_seconds: GIB * 86400.0,
            request_byte_seconds: GIB * 86400.0,
            usage_byte_seconds: GIB * 86400.0,
            ..storage_line(hour, "data", "db-0", "pvc-a")
        }];
        f.start = first;
        f.end = first;
        let rows = summarise_storage(f).await;
        assert_eq!(rows.len(), 1, "{first}");
        for column in [
            "persistentvolumeclaim_capacity_gigabyte_months",
            "volume_request_storage_gigabyte_months",
            "persistentvolumeclaim_usage_gigabyte_months",
        ] {
            // One GiB-day is 1/days of a GiB-month.
            assert_close(rows.f64(column, 0), 1.0 / days);
        }
    }
}

#[tokio::test]
async fn volume_labels_merge_node_then_namespace_then_pv_then_pvc() {
    let mut f = fixture(vec![running(0, "data", "db-0", "n1")]);
    f.storage = vec![StorageLine {
        pv_labels: r#"{"app":"pv","version":"pv","unrelated":"x"}"#,
        pvc_labels: r#"{"app":"pvc"}"#,
        ..storage_line(0, "data", "db-0", "pvc-a")
    }];
    f.node_labels = vec![(0, "n1", r#"{"app":"node","team":"node","zone":"a"}"#)];
    f.namespace_labels = vec![(0, "data", r#"{"app":"ns","team":"ns"}"#)];
    let rows = summarise_storage(f).await;
    // app: pvc beats pv beats ns beats node; team: ns beats node; version from pv; zone from
    // node; "unrelated" is not an enabled key.
    let expected = r#"{"app":"pvc","team":"ns","version":"pv","zone":"a"}"#;
    assert_eq!(rows.text("volume_labels", 0).as_deref(), Some(expected));
    assert_eq!(rows.text("all_labels", 0).as_deref(), Some(expected));
}

#[tokio::test]
async fn storage_rows_group_by_volume_and_day_and_carry_cost_categories() {
    let hourly = |hour, pvc, csi| StorageLine {
        csi_volume_handle: csi,
        capacity_byte_seconds: GIB * 3600.0,
        ..storage_line(hour, "openshift-storage", "db-0", pvc)
    };
    let mut f = fixture(vec![
        running(0, "openshift-storage", "db-0", "n1"),
        running(24, "openshift-storage", "db-0", "n1"),
    ]);
    // Day 1: pvc-a hours 0 and 1 fold into one row; pvc-b is a row of its own.
    // Day 2: pvc-a again, a new row.
    f.storage = vec![
        hourly(0, "pvc-a", Some("vol-a")),
        hourly(1, "pvc-a", Some("vol-a")),
        hourly(0, "pvc-b", None),
        hourly(24, "pvc-a", Some("vol-a")),
    ];
    f.cost_categories = vec![("openshift-%", 1)];
    let rows = summarise_storage(f).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.text("persistentvolumeclaim", 0).as_deref(), Some("pvc-a"));
    // 2 GiB-hours of 31 days × 24 hours.
    assert_close(
        rows.f64("persistentvolumeclaim_capacity_gigabyte_months", 0),
        2.0 / (31.0 * 24.0),
    );
    assert_eq!(rows.text("persistentvolumeclaim", 1).as_deref(), Some("pvc-b"));
    assert_eq!(rows.text("usage_start", 2).as_deref(), Some("2025-10-02"));
    for r in 0..3 {
        assert_eq!(rows.int("cost_category_id", r), Some(1));
        assert_eq!(rows.text("data_source", r).as_deref(), Some("Storage"));
    }
}

#[tokio::test]
async fn a_claim_of_a_pod_never_scheduled_takes_kokus_empty_node() {
    // The pod's line items carry node '' (never scheduled); koku's volume-node join keeps them.
    let mut f = fixture(vec![Line {
        pod: "pending",
        ..line(0, "data", "", "{}")
    }]);
    f.storage = vec![StorageLine {
        request_byte_seconds: GIB * 86400.0,
        ..storage_line(0, "data", "pending", "pvc-a")
    }];
    let rows = summarise_storage(f).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows.text("node", 0).as_deref(), Some(""));
    assert_eq!(rows.text("resource_id", 0).as_deref(), Some(""));
    // One (empty) node: the request is not divided. 1 GiB for a day of 31 = 1/31.
    assert_close(rows.f64("volume_request_storage_gigabyte_months", 0), 1.0 / 31.0);
}
