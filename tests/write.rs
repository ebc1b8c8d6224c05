//! Integration tests against a real PostgreSQL: table creation, idempotent replacement,
//! untouched neighbours, an existing koku table, exact numbers.

use costagg::reference::CostCategoryPattern;

use crate::support::*;

#[tokio::test]
async fn the_table_is_created_with_kokus_types_and_a_month_partition() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 1);
    let report = run_october(dir.path(), &url, config_with_keys(&["app"]))
        .await
        .unwrap();
    assert!(report.table_created);
    assert!(report.rows_written > 0);

    let client = connect(&url).await;
    let types: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, CASE WHEN data_type = 'numeric' \
             THEN format('numeric(%s,%s)', numeric_precision, numeric_scale) ELSE data_type::text END \
             FROM information_schema.columns WHERE table_schema = $1 \
             AND table_name = 'reporting_ocpusagelineitem_daily_summary' ORDER BY ordinal_position",
            &[&ORG],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let type_of = |c: &str| {
        types
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, t)| t.as_str())
            .unwrap()
    };
    assert_eq!(type_of("uuid"), "uuid");
    assert_eq!(type_of("source_uuid"), "uuid");
    assert_eq!(type_of("usage_start"), "date");
    assert_eq!(type_of("pod_labels"), "jsonb");
    assert_eq!(type_of("all_labels"), "jsonb");
    assert_eq!(type_of("namespace"), "character varying");
    assert_eq!(type_of("pod_usage_cpu_core_hours"), "numeric(33,15)");
    assert_eq!(type_of("cost_category_id"), "integer");
    assert!(
        !types.iter().any(|(n, _)| n == "pod"),
        "koku's summary has no pod column"
    );

    let partitions: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass('org1234567.reporting_ocpusagelineitem_daily_summary')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(partitions, ["reporting_ocpusagelineitem_daily_summary_2025_10"]);
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT usage_start), min(cluster_id), min(cluster_alias), \
             min(report_period_id), bool_and(usage_end = usage_start), \
             count(*) FILTER (WHERE data_source = 'Storage'), \
             count(*) FILTER (WHERE data_source = 'Pod' AND pod_labels IS NULL) \
             FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0) as u64, report.rows_written);
    assert_eq!(row.get::<_, i64>(1), 31);
    assert_eq!(row.get::<_, String>(2), "cluster-1");
    assert_eq!(row.get::<_, String>(3), "Cluster One");
    assert_eq!(row.get::<_, i32>(4), 7);
    assert!(row.get::<_, bool>(5));
    // The generated month has storage: the report counts the Storage and unallocated rows
    // written.
    assert!(report.storage_rows > 0);
    assert_eq!(row.get::<_, i64>(6) as u64, report.storage_rows);
    assert_eq!(row.get::<_, i64>(7) as u64, report.unallocated_rows);
    assert_eq!(
        report.pod_rows + report.storage_rows + report.unallocated_rows,
        report.rows_written
    );
}

#[tokio::test]
async fn running_the_same_unit_twice_leaves_identical_contents() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 2);
    let req = request(
        unit(SOURCE_A, "2025-10"),
        dir.path(),
        &url,
        config_with_keys(&["app", "version"]),
    );
    let first = run_unit(&req).await.unwrap();
    let client = connect(&url).await;
    let before = dump(&client, SOURCE_A).await;
    let second = run_unit(&req).await.unwrap();
    let after = dump(&client, SOURCE_A).await;
    assert_eq!(first.rows_written, second.rows_written);
    assert_eq!(second.rows_deleted, first.rows_written);
    assert_same_rows(&before, &after);
}

#[tokio::test]
async fn another_source_and_another_month_are_untouched() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 2000, 3);
    generate(dir.path(), SOURCE_B, "2025-10", 2000, 4);
    generate(dir.path(), SOURCE_A, "2025-11", 2000, 5);
    let config = config_with_keys(&["app"]);
    for (source, month) in [
        (SOURCE_A, "2025-10"),
        (SOURCE_B, "2025-10"),
        (SOURCE_A, "2025-11"),
    ] {
        run_unit(&request(unit(source, month), dir.path(), &url, config.clone()))
            .await
            .unwrap();
    }
    let client = connect(&url).await;
    let b_before = dump(&client, SOURCE_B).await;
    let a_before = dump(&client, SOURCE_A).await;
    let a_nov: Vec<&String> = a_before.iter().filter(|r| r.contains("2025-11-")).collect();
    assert!(!a_nov.is_empty());

    // Re-run source A for October with other keys enabled: its October rows change...
    let partition = october_partition(&client).await;
    let mut swap = config_with_keys(&["app", "version"]);
    swap.database.write_method = costagg::config::WriteMethod::Swap;
    run_october(dir.path(), &url, swap).await.unwrap();
    // ...row by row even when a swap is asked for, since the month also holds source B's rows...
    assert_eq!(october_partition(&client).await, partition);
    let a_after = dump(&client, SOURCE_A).await;
    assert_ne!(a_before, a_after);
    // ...while source B and source A's November stay exactly as they were.
    assert_eq!(dump(&client, SOURCE_B).await, b_before);
    let a_nov_after: Vec<&String> = a_after.iter().filter(|r| r.contains("2025-11-")).collect();
    assert_eq!(a_nov, a_nov_after);
}

/// The OID of October's partition: swapping a month in replaces its partition, writing row by
/// row keeps it.
async fn october_partition(client: &tokio_postgres::Client) -> u32 {
    client
        .query_one(
            "SELECT 'org1234567.reporting_ocpusagelineitem_daily_summary_2025_10'::regclass::oid",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// October partition's indexes: (the table's index it belongs to, its own name, definition
/// with the partition's name left out), sorted.
async fn october_indexes(client: &tokio_postgres::Client) -> Vec<(String, String, String)> {
    let mut indexes: Vec<(String, String, String)> = client
        .query(
            "SELECT parent.relname::text, child.relname::text,              regexp_replace(pg_get_indexdef(x.indexrelid), '^.* USING ', '')              FROM pg_index x JOIN pg_class child ON child.oid = x.indexrelid              JOIN pg_inherits h ON h.inhrelid = x.indexrelid              JOIN pg_class parent ON parent.oid = h.inhparent              WHERE x.indrelid = 'org1234567.reporting_ocpusagelineitem_daily_summary_2025_10'::regclass",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    indexes.sort();
    indexes
}

#[tokio::test]
async fn a_month_of_costaggs_own_table_is_built_aside_and_swapped_in_with_the_same_indexes() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 6);
    // A small month: `auto` would write it row by row; `swap` swaps whenever possible.
    let mut config = config_with_keys(&["app"]);
    config.database.write_method = costagg::config::WriteMethod::Swap;
    let first = run_october(dir.path(), &url, config.clone()).await.unwrap();
    let client = connect(&url).await;
    let rows = dump(&client, SOURCE_A).await;
    let (partition, indexes) = (october_partition(&client).await, october_indexes(&client).await);
    // The first run already swaps (it creates the month's partition, then replaces it): the
    // partition looks as PostgreSQL creates one, koku's primary key and five indexes, each
    // attached to the table's, under PostgreSQL's own names for them (63 bytes at most).
    let names: Vec<&str> = indexes.iter().map(|(_, name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "reporting_ocpusagelineitem_daily_summary_2025_10_pod_labels_idx",
            "reporting_ocpusagelineitem_daily_summary_2025_10_pkey",
            "reporting_ocpusagelineitem_daily_summary_2025_10_namespace_idx",
            "reporting_ocpusagelineitem_daily_summary_2025_10_node_idx",
            "reporting_ocpusagelineitem_daily_summary_2025_1_usage_start_idx",
            "reporting_ocpusagelineitem_daily_su_source_uuid_usage_start_idx",
        ],
        "{indexes:?}"
    );

    // Row by row when asked, and by default for a month this small (3,000 pod usage rows):
    // the partition stays, its rows are replaced.
    for method in [
        costagg::config::WriteMethod::Rows,
        costagg::config::WriteMethod::Auto,
    ] {
        let mut rows_config = config.clone();
        rows_config.database.write_method = method;
        let by_rows = run_october(dir.path(), &url, rows_config).await.unwrap();
        assert_eq!(october_partition(&client).await, partition, "{method:?}");
        assert_eq!(by_rows.rows_deleted, first.rows_written);
        assert_same_rows(&dump(&client, SOURCE_A).await, &rows);
    }

    // The month holds only this unit's rows, so `swap` swaps it in: a new partition with the
    // same rows, bounds, index names and definitions, and no stage table left.
    let swapped = run_october(dir.path(), &url, config).await.unwrap();
    assert_ne!(october_partition(&client).await, partition);
    assert_eq!(swapped.rows_deleted, first.rows_written);
    assert_eq!(swapped.rows_written, first.rows_written);
    assert_same_rows(&dump(&client, SOURCE_A).await, &rows);
    assert_eq!(october_indexes(&client).await, indexes);
    let bound: String = client
        .query_one(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class              WHERE oid = 'org1234567.reporting_ocpusagelineitem_daily_summary_2025_10'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bound, "FOR VALUES FROM ('2025-10-01') TO ('2025-11-01')");
    let primary_key: String = client
        .query_one(
            "SELECT conname::text FROM pg_constraint WHERE contype = 'p' \
             AND conrelid = 'org1234567.reporting_ocpusagelineitem_daily_summary_2025_10'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        primary_key,
        "reporting_ocpusagelineitem_daily_summary_2025_10_pkey"
    );
    // What the stage had while it was built is gone: its check of the month's bounds and its
    // autovacuum setting.
    let (constraints, options): (Vec<String>, Option<Vec<String>>) = {
        let row = client
            .query_one(
                "SELECT ARRAY(SELECT conname::text FROM pg_constraint WHERE conrelid = c.oid), \
                 c.reloptions::text[] FROM pg_class c \
                 WHERE c.oid = 'org1234567.reporting_ocpusagelineitem_daily_summary_2025_10'::regclass",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(constraints, [primary_key]);
    assert_eq!(options, None);
    assert_eq!(stage_tables(&client).await, 0);
}

#[tokio::test]
async fn a_month_holding_rows_the_run_keeps_is_written_row_by_row_even_under_swap() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 2000, 8);
    let mut config = config_with_keys(&["app"]);
    config.database.write_method = costagg::config::WriteMethod::Swap;
    run_october(dir.path(), &url, config.clone()).await.unwrap();
    let client = connect(&url).await;
    let table = format!("{ORG}.reporting_ocpusagelineitem_daily_summary");
    let kept = format!("SELECT count(*) FROM {table} WHERE namespace = 'kept'");

    // One row another run owns, in each place the swap's check looks: no source, a source
    // before the run's and one after it (SOURCE_A ends in ...0a).
    for source in [
        "NULL",
        "'00000000-0000-4000-8000-000000000000'",
        "'ffffffff-0000-4000-8000-000000000000'",
    ] {
        client
            .batch_execute(&format!(
                "INSERT INTO {table} (uuid, usage_start, usage_end, source_uuid, namespace) \
                 VALUES (gen_random_uuid(), '2025-10-15', '2025-10-15', {source}, 'kept')"
            ))
            .await
            .unwrap();
        let partition = october_partition(&client).await;
        run_october(dir.path(), &url, config.clone()).await.unwrap();
        assert_eq!(october_partition(&client).await, partition, "source {source}");
        let count: i64 = client.query_one(&kept, &[]).await.unwrap().get(0);
        assert_eq!(count, 1, "source {source}");
        client
            .batch_execute(&format!("DELETE FROM {table} WHERE namespace = 'kept'"))
            .await
            .unwrap();
        // Without it, the month is swapped in again.
        run_october(dir.path(), &url, config.clone()).await.unwrap();
        assert_ne!(october_partition(&client).await, partition, "source {source}");
    }

    // The run's own source on days before its input starts (day 3): kept, row by row.
    let partition = october_partition(&client).await;
    let partial = tempfile::tempdir().unwrap();
    write_pod_file(
        partial.path(),
        SOURCE_A,
        &[PodRow::new(48, "ns", "n1", "{}").cpu_core_seconds(3600.0)],
    );
    run_october(partial.path(), &url, config).await.unwrap();
    assert_eq!(october_partition(&client).await, partition);
    let before: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE usage_start < '2025-10-03'"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(before > 0);
}

/// koku's own table, as its migrations leave it: more columns than costagg writes, a default
/// partition, and reference tables beside it.
const KOKU_TABLES: &str = "
CREATE SCHEMA org1234567;
CREATE TABLE org1234567.reporting_ocpusagelineitem_daily_summary (
    uuid uuid NOT NULL, report_period_id integer, cluster_id varchar(50), cluster_alias varchar(256),
    data_source varchar(64), usage_start date NOT NULL, usage_end date NOT NULL,
    namespace varchar(253), node varchar(253), resource_id varchar(253), pod_labels jsonb,
    pod_usage_cpu_core_hours numeric(33,15), pod_request_cpu_core_hours numeric(33,15),
    pod_effective_usage_cpu_core_hours numeric(33,15), pod_limit_cpu_core_hours numeric(33,15),
    pod_usage_memory_gigabyte_hours numeric(33,15), pod_request_memory_gigabyte_hours numeric(33,15),
    pod_effective_usage_memory_gigabyte_hours numeric(33,15), pod_limit_memory_gigabyte_hours numeric(33,15),
    node_capacity_cpu_cores numeric(33,15), node_capacity_cpu_core_hours numeric(33,15),
    node_capacity_memory_gigabytes numeric(33,15), node_capacity_memory_gigabyte_hours numeric(33,15),
    cluster_capacity_cpu_core_hours numeric(33,15), cluster_capacity_memory_gigabyte_hours numeric(33,15),
    persistentvolumeclaim varchar(253), persistentvolume varchar(253), storageclass varchar(50),
    volume_labels jsonb, persistentvolumeclaim_capacity_gigabyte numeric(33,15),
    persistentvolumeclaim_capacity_gigabyte_months numeric(33,15),
    volume_request_storage_gigabyte_months numeric(33,15),
    persistentvolumeclaim_usage_gigabyte_months numeric(33,15),
    infrastructure_raw_cost numeric(33,15), infrastructure_project_raw_cost numeric(33,15),
    infrastructure_usage_cost jsonb, infrastructure_markup_cost numeric(33,15),
    supplementary_usage_cost jsonb, monthly_cost_type text, raw_currency text,
    all_labels jsonb, source_uuid uuid, cost_category_id integer,
    PRIMARY KEY (uuid, usage_start)
) PARTITION BY RANGE (usage_start);
CREATE TABLE org1234567.reporting_ocpusagelineitem_daily_summary_default
    PARTITION OF org1234567.reporting_ocpusagelineitem_daily_summary DEFAULT;
CREATE TABLE org1234567.reporting_enabledtagkeys (
    uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(), key text, enabled boolean, provider_type text);
INSERT INTO org1234567.reporting_enabledtagkeys (key, enabled, provider_type) VALUES
    ('app', true, 'OCP'), ('version', false, 'OCP'), ('environment', true, 'AWS');
CREATE TABLE org1234567.reporting_ocp_cost_category_namespace (
    id serial PRIMARY KEY, namespace text, cost_category_id integer);
INSERT INTO org1234567.reporting_ocp_cost_category_namespace (namespace, cost_category_id)
    VALUES ('openshift-%', 1), ('kube_system', 2);
";

async fn table_definition(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT format('%s %s %s', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull) \
             FROM pg_attribute a WHERE a.attrelid = 'org1234567.reporting_ocpusagelineitem_daily_summary'::regclass \
             AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn an_existing_koku_table_is_written_into_without_being_altered() {
    let url = fresh_database().await;
    let client = connect(&url).await;
    client.batch_execute(KOKU_TABLES).await.unwrap();
    // A row the OCP-on-cloud step owns (non-zero infrastructure_raw_cost) on a day costagg replaces.
    client
        .batch_execute(&format!(
            "INSERT INTO org1234567.reporting_ocpusagelineitem_daily_summary \
             (uuid, usage_start, usage_end, source_uuid, data_source, infrastructure_raw_cost) VALUES \
             (gen_random_uuid(), '2025-10-05', '2025-10-05', '{SOURCE_A}', 'Pod', 12.5), \
             (gen_random_uuid(), '2025-10-05', '2025-10-05', '{SOURCE_A}', 'Pod', NULL)"
        ))
        .await
        .unwrap();
    let before = table_definition(&client).await;

    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), SOURCE_A, "2025-10", 3000, 6);
    // koku's node table names every generated node's role, so no unallocated row lacks a namespace.
    client
        .batch_execute(
            "CREATE TABLE org1234567.reporting_ocp_nodes (id serial PRIMARY KEY, node text, \
             resource_id text, node_capacity_cpu_cores numeric, node_role text)",
        )
        .await
        .unwrap();
    for r in &generated.node_roles {
        client
            .execute(
                "INSERT INTO org1234567.reporting_ocp_nodes (node, resource_id, node_role) VALUES ($1, $2, $3)",
                &[&r.node, &r.resource_id, &r.node_role],
            )
            .await
            .unwrap();
    }
    // The config enables other keys: koku's table must win over it.
    let report = run_october(dir.path(), &url, config_with_keys(&["team"]))
        .await
        .unwrap();
    assert!(!report.table_created);
    assert_eq!(table_definition(&client).await, before);

    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE infrastructure_raw_cost = 12.5), \
             count(*) FILTER (WHERE data_source = 'Pod' AND namespace IS NULL), \
             count(*) FILTER (WHERE pod_labels ?| array['team','version','environment']), \
             count(*) FILTER (WHERE pod_labels ? 'app'), \
             count(*) FILTER (WHERE namespace = 'openshift-monitoring' AND cost_category_id IS DISTINCT FROM 1), \
             count(*) FILTER (WHERE namespace = 'kube-system' AND cost_category_id IS DISTINCT FROM 2) \
             FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "the cloud step's row stays");
    // The row without infrastructure cost was costagg's to replace; only the cloud row has no namespace.
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(row.get::<_, i64>(2), 0, "only koku's enabled OCP keys are kept");
    assert!(row.get::<_, i64>(3) > 0);
    assert_eq!(row.get::<_, i64>(4), 0);
    assert_eq!(row.get::<_, i64>(5), 0);
}

#[tokio::test]
async fn quantities_arrive_in_postgresql_as_exact_decimals() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    write_pod_file(
        dir.path(),
        SOURCE_A,
        &[
            // Day 3, hours 48 and 49: 1 + 0.5 core-hours; 1.5 GiB-hours of memory.
            PodRow::new(48, "openshift-monitoring", "n1", r#"{"app":"web","tier":"x"}"#)
                .cpu_core_seconds(3600.0)
                .memory_byte_seconds(1_073_741_824.0 * 3600.0),
            PodRow::new(49, "openshift-monitoring", "n1", r#"{"app": "web"}"#)
                .cpu_core_seconds(1800.0)
                .memory_byte_seconds(536_870_912.0 * 3600.0),
            // 0.1 core-hours: the decimal 0.1, not 0.1000000000000000055511151231257827.
            PodRow::new(50, "payments", "n1", "").cpu_core_seconds(360.0),
        ],
    );
    let mut config = config_with_keys(&["app"]);
    config.reference.cost_categories = vec![CostCategoryPattern {
        namespace: "openshift-%".into(),
        cost_category_id: 9,
    }];
    let report = run_october(dir.path(), &url, config).await.unwrap();
    // Two Pod rows, and node n1's unallocated capacity for Oct 3.
    assert_eq!(report.rows_written, 3);
    assert_eq!((report.pod_rows, report.unallocated_rows), (2, 1));
    assert_eq!(report.first_day, "2025-10-03");
    let client = connect(&url).await;
    let rows = client
        .query(
            "SELECT namespace::text, pod_labels::text, pod_usage_cpu_core_hours::text, \
             pod_usage_memory_gigabyte_hours::text, node_capacity_cpu_core_hours::text, \
             cluster_capacity_cpu_core_hours::text, cost_category_id, infrastructure_usage_cost::text, \
             volume_labels IS NULL \
             FROM org1234567.reporting_ocpusagelineitem_daily_summary ORDER BY namespace",
            &[],
        )
        .await
        .unwrap();
    let r = &rows[0];
    assert_eq!(r.get::<_, String>(0), "openshift-monitoring");
    assert_eq!(r.get::<_, String>(1), r#"{"app": "web"}"#);
    assert_eq!(r.get::<_, String>(2), "1.500000000000000");
    assert_eq!(r.get::<_, String>(3), "1.500000000000000");
    // Node n1 reports 4 cores in each of hours 48, 49, 50: 12 core-hours on Oct 3.
    assert_eq!(r.get::<_, String>(4), "12.000000000000000");
    assert_eq!(r.get::<_, String>(5), "12.000000000000000");
    assert_eq!(r.get::<_, Option<i32>>(6), Some(9));
    assert_eq!(r.get::<_, String>(7), r#"{"cpu": 0, "memory": 0, "storage": 0}"#);
    assert!(r.get::<_, bool>(8));
    let r = &rows[1];
    assert_eq!(r.get::<_, String>(1), "{}");
    assert_eq!(r.get::<_, String>(2), "0.100000000000000");
    assert_eq!(r.get::<_, Option<i32>>(6), None);
}

#[tokio::test]
async fn a_partial_upload_never_wipes_the_days_before_it() {
    let url = fresh_database().await;
    let full = tempfile::tempdir().unwrap();
    generate(full.path(), SOURCE_A, "2025-10", 2000, 7);
    let config = config_with_keys(&["app"]);
    run_october(full.path(), &url, config.clone()).await.unwrap();
    // A later upload holds only day 3 onwards of one hand-made file.
    let partial = tempfile::tempdir().unwrap();
    write_pod_file(
        partial.path(),
        SOURCE_A,
        &[PodRow::new(48, "ns", "n1", "{}").cpu_core_seconds(3600.0)],
    );
    run_october(partial.path(), &url, config).await.unwrap();
    let client = connect(&url).await;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE usage_start < '2025-10-03'), \
             count(*) FILTER (WHERE usage_start >= '2025-10-03') \
             FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) > 0, "days 1 and 2 are kept");
    assert_eq!(
        row.get::<_, i64>(1),
        2,
        "days 3 onwards are the partial upload's: one Pod row and its node's unallocated row"
    );
}

#[tokio::test]
async fn a_day_range_replaces_exactly_those_days() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 8);
    run_october(dir.path(), &url, config_with_keys(&["app"]))
        .await
        .unwrap();
    let client = connect(&url).await;
    let before = dump(&client, SOURCE_A).await;

    // Days 10-12 again, with `version` enabled too, so those days' labels change.
    let days = unit(SOURCE_A, "2025-10")
        .with_days(
            chrono::NaiveDate::from_ymd_opt(2025, 10, 10),
            chrono::NaiveDate::from_ymd_opt(2025, 10, 12),
        )
        .unwrap();
    let report = run_unit(&request(
        days,
        dir.path(),
        &url,
        config_with_keys(&["app", "version"]),
    ))
    .await
    .unwrap();
    assert_eq!(report.first_day, "2025-10-10");
    // The replaced days carry every kind of row.
    assert!(report.pod_rows > 0 && report.storage_rows > 0 && report.unallocated_rows > 0);
    let after = dump(&client, SOURCE_A).await;

    let in_range = |r: &&String| {
        ["2025-10-10", "2025-10-11", "2025-10-12"]
            .iter()
            .any(|d| r.contains(d))
    };
    let outside = |rows: &[String]| rows.iter().filter(|r| !in_range(r)).cloned().collect::<Vec<_>>();
    assert_eq!(
        outside(&before),
        outside(&after),
        "days outside 10-12 are untouched"
    );
    let inside_after: Vec<&String> = after.iter().filter(in_range).collect();
    assert_eq!(inside_after.len() as u64, report.rows_written);
    assert_ne!(before.iter().filter(in_range).collect::<Vec<_>>(), inside_after);
}

#[tokio::test]
async fn different_units_can_create_the_table_and_partitions_at_the_same_time() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let sources = [SOURCE_A, SOURCE_B, "6f5f1c0e-0000-4000-8000-00000000000c"];
    let units = [
        (sources[0], "2025-10"),
        (sources[1], "2025-10"),
        (sources[2], "2025-10"),
        (sources[0], "2025-11"),
    ];
    for (i, (source, month)) in units.iter().enumerate() {
        generate(dir.path(), source, month, 1000, 20 + i as u64);
    }
    let config = config_with_keys(&["app"]);
    let requests: Vec<_> = units
        .iter()
        .map(|(source, month)| request(unit(source, month), dir.path(), &url, config.clone()))
        .collect();
    let reports = futures::future::join_all(requests.iter().map(run_unit)).await;
    let mut created = 0;
    for report in reports {
        let report = report.expect("every unit succeeds");
        assert!(report.rows_written > 0);
        created += usize::from(report.table_created);
    }
    assert_eq!(created, 1, "exactly one run created the table");
    let client = connect(&url).await;
    let row = client
        .query_one(
            "SELECT count(DISTINCT source_uuid), count(DISTINCT date_trunc('month', usage_start)) \
             FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (3, 2));
}

/// A table that lacks a column costagg writes needs a migration, not a retry: exit 2, named
/// column, nothing altered.
#[tokio::test]
async fn an_existing_table_without_kokus_layout_is_a_non_retryable_error_naming_the_column() {
    let url = fresh_database().await;
    let client = connect(&url).await;
    client.batch_execute(KOKU_TABLES).await.unwrap();
    client
        .batch_execute(
            "ALTER TABLE org1234567.reporting_ocpusagelineitem_daily_summary DROP COLUMN all_labels",
        )
        .await
        .unwrap();
    let before = table_definition(&client).await;
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 1000, 6);
    let e = run_october(dir.path(), &url, config_with_keys(&["app"]))
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("column all_labels is missing"), "{e}");
    assert_eq!(table_definition(&client).await, before);
}

/// A fleet starting on a month: eight units of eight sources at once into an existing, empty
/// month of costagg's table, each allowed to swap. One swaps the month in; the others write
/// row by row meanwhile and the swap carries their rows over. Two swaps of one month used to
/// deadlock (seven of the eight failed with `deadlock detected`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_units_starting_at_once_on_an_empty_month_all_succeed() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let sources: Vec<String> = (1..=8)
        .map(|i| format!("6f5f1c0e-0000-4000-8000-0000000001{i:02}"))
        .collect();
    for (i, source) in sources.iter().enumerate() {
        generate(dir.path(), source, "2025-10", 1500, 40 + i as u64);
    }
    // The table and the month's partition exist, and the month is empty.
    let mut config = config_with_keys(&["app"]);
    run_unit(&request(
        unit(&sources[0], "2025-10"),
        dir.path(),
        &url,
        config.clone(),
    ))
    .await
    .unwrap();
    let client = connect(&url).await;
    client
        .batch_execute("DELETE FROM org1234567.reporting_ocpusagelineitem_daily_summary")
        .await
        .unwrap();
    config.database.write_method = costagg::config::WriteMethod::Swap;
    let requests: Vec<_> = sources
        .iter()
        .map(|source| request(unit(source, "2025-10"), dir.path(), &url, config.clone()))
        .collect();
    let reports = futures::future::join_all(requests.iter().map(run_unit)).await;
    let mut written = std::collections::BTreeMap::new();
    for (source, report) in sources.iter().zip(reports) {
        let report = report.unwrap_or_else(|e| panic!("{source}: {e}"));
        written.insert(source.clone(), report.rows_written as i64);
    }
    let rows = client
        .query(
            "SELECT source_uuid::text, count(*) FROM org1234567.reporting_ocpusagelineitem_daily_summary \
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let found: std::collections::BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(found, written, "every unit's rows, each once");
}
