-- The peer of the scale benchmark: koku's daily summary (Pod, Storage and unallocated rows, the
-- three sections of koku's Trino SQL, as ported in src/summary/) written for DuckDB, over the same Parquet files costagg reads.
-- `benches/scale.py` fills in the names in braces and materialises the result as a table, so
-- DuckDB does all the work costagg does before its write. Labels follow koku: parse to a map,
-- keep the enabled keys, map_concat with later maps winning; entries are sorted so equal maps
-- group together (Trino compares maps regardless of order).

CREATE MACRO koku_filter(j) AS
    map_from_entries(list_sort(list_filter(
        map_entries(CAST(CAST(coalesce(nullif(j, ''), '{{}}') AS JSON) AS MAP(VARCHAR, VARCHAR))),
        lambda e: list_contains({enabled_keys}, e.key))));

CREATE MACRO koku_merge(a, b, c, d) AS
    map_from_entries(list_sort(map_entries(map_concat(
        coalesce(a, MAP {{}}), coalesce(b, MAP {{}}), coalesce(c, MAP {{}}), coalesce(d, MAP {{}})))));

CREATE TABLE cost_category AS
    SELECT * FROM (VALUES {cost_categories}) AS t(namespace, cost_category_id);

CREATE TABLE reporting_ocp_nodes AS SELECT * FROM read_csv('{node_roles}', header = true);

CREATE TABLE summary AS
WITH pod AS (
    SELECT * FROM read_parquet('{pod_usage}')
    WHERE interval_start >= TIMESTAMP '{start}' AND interval_start < TIMESTAMP '{end}'
),
storage AS (
    SELECT * FROM read_parquet('{storage_usage}')
    WHERE interval_start >= TIMESTAMP '{start}' AND interval_start < TIMESTAMP '{end}'
),
cte_ocp_node_label_line_item_daily AS (
    SELECT DISTINCT CAST(interval_start AS DATE) AS usage_start, node,
        koku_filter(node_labels) AS node_labels
    FROM read_parquet('{node_labels}')
    WHERE interval_start >= TIMESTAMP '{start}' AND interval_start < TIMESTAMP '{end}'
),
cte_ocp_namespace_label_line_item_daily AS (
    SELECT DISTINCT CAST(interval_start AS DATE) AS usage_start, namespace,
        koku_filter(namespace_labels) AS namespace_labels
    FROM read_parquet('{namespace_labels}')
    WHERE interval_start >= TIMESTAMP '{start}' AND interval_start < TIMESTAMP '{end}'
),
cte_ocp_node_capacity AS (
    SELECT CAST(interval_start AS DATE) AS usage_start, node,
        sum(cpu) AS node_capacity_cpu_core_seconds, sum(mem) AS node_capacity_memory_byte_seconds
    FROM (
        SELECT interval_start, node, max(node_capacity_cpu_core_seconds) AS cpu,
            max(node_capacity_memory_byte_seconds) AS mem
        FROM pod GROUP BY interval_start, node
    ) GROUP BY 1, 2
),
cte_ocp_cluster_capacity AS (
    SELECT usage_start, sum(node_capacity_cpu_core_seconds) AS cpu,
        sum(node_capacity_memory_byte_seconds) AS mem
    FROM cte_ocp_node_capacity GROUP BY usage_start
),
-- As in costagg (and its comments in reporting_ocpusagelineitem_daily_summary_pod.sql): group by
-- the raw label string first, then filter and merge once per group and group again, so DuckDB
-- gets the same head start as costagg and does not parse JSON once per line item.
cte_pod_usage_by_raw_labels AS (
    SELECT CAST(interval_start AS DATE) AS usage_start, namespace, node, pod_labels,
        max(resource_id) AS resource_id,
        sum(pod_usage_cpu_core_seconds) AS u_cpu,
        sum(pod_request_cpu_core_seconds) AS r_cpu,
        sum(greatest(pod_usage_cpu_core_seconds, pod_request_cpu_core_seconds)) AS e_cpu,
        sum(pod_limit_cpu_core_seconds) AS l_cpu,
        sum(pod_usage_memory_byte_seconds) AS u_mem,
        sum(pod_request_memory_byte_seconds) AS r_mem,
        sum(greatest(pod_usage_memory_byte_seconds, pod_request_memory_byte_seconds)) AS e_mem,
        sum(pod_limit_memory_byte_seconds) AS l_mem,
        max(node_capacity_cpu_cores) AS node_capacity_cpu_cores,
        max(node_capacity_memory_bytes) AS node_capacity_memory_bytes
    FROM pod
    WHERE node != ''
    GROUP BY 1, 2, 3, 4
),
cte_pod_usage AS (
    SELECT r.usage_start, r.namespace, r.node,
        koku_merge(nli.node_labels, nsli.namespace_labels, koku_filter(r.pod_labels), NULL) AS pod_labels,
        max(r.resource_id) AS resource_id,
        sum(u_cpu) AS u_cpu, sum(r_cpu) AS r_cpu, sum(e_cpu) AS e_cpu, sum(l_cpu) AS l_cpu,
        sum(u_mem) AS u_mem, sum(r_mem) AS r_mem, sum(e_mem) AS e_mem, sum(l_mem) AS l_mem,
        max(r.node_capacity_cpu_cores) AS node_capacity_cpu_cores,
        max(r.node_capacity_memory_bytes) AS node_capacity_memory_bytes
    FROM cte_pod_usage_by_raw_labels AS r
    LEFT JOIN cte_ocp_node_label_line_item_daily AS nli
        ON nli.node = r.node AND nli.usage_start = r.usage_start
    LEFT JOIN cte_ocp_namespace_label_line_item_daily AS nsli
        ON nsli.namespace = r.namespace AND nsli.usage_start = r.usage_start
    GROUP BY 1, 2, 3, 4
),
pod_rows AS (
    SELECT 'Pod' AS data_source, p.usage_start, p.namespace, p.node, p.resource_id,
        to_json(p.pod_labels)::VARCHAR AS pod_labels,
        p.u_cpu / 3600.0 AS pod_usage_cpu_core_hours,
        p.r_cpu / 3600.0 AS pod_request_cpu_core_hours,
        p.e_cpu / 3600.0 AS pod_effective_usage_cpu_core_hours,
        p.l_cpu / 3600.0 AS pod_limit_cpu_core_hours,
        p.u_mem / 3600.0 * 2 ^ -30 AS pod_usage_memory_gigabyte_hours,
        p.r_mem / 3600.0 * 2 ^ -30 AS pod_request_memory_gigabyte_hours,
        p.e_mem / 3600.0 * 2 ^ -30 AS pod_effective_usage_memory_gigabyte_hours,
        p.l_mem / 3600.0 * 2 ^ -30 AS pod_limit_memory_gigabyte_hours,
        p.node_capacity_cpu_cores,
        nc.node_capacity_cpu_core_seconds / 3600.0 AS node_capacity_cpu_core_hours,
        p.node_capacity_memory_bytes * 2 ^ -30 AS node_capacity_memory_gigabytes,
        nc.node_capacity_memory_byte_seconds / 3600.0 * 2 ^ -30 AS node_capacity_memory_gigabyte_hours,
        cc.cpu / 3600.0 AS cluster_capacity_cpu_core_hours,
        cc.mem / 3600.0 * 2 ^ -30 AS cluster_capacity_memory_gigabyte_hours
    FROM cte_pod_usage AS p
    JOIN cte_ocp_node_capacity AS nc ON nc.usage_start = p.usage_start AND nc.node = p.node
    JOIN cte_ocp_cluster_capacity AS cc ON cc.usage_start = p.usage_start
),
cte_volume_nodes AS (
    SELECT DISTINCT s.usage_start, s.persistentvolumeclaim, s.persistentvolume, s.pod, s.namespace,
        u.node, u.resource_id
    FROM (SELECT DISTINCT CAST(interval_start AS DATE) AS usage_start, persistentvolumeclaim,
            persistentvolume, pod, namespace FROM storage) AS s
    JOIN (SELECT DISTINCT CAST(interval_start AS DATE) AS usage_start, namespace, pod, node,
            resource_id FROM pod) AS u
        ON u.namespace = s.namespace AND u.pod = s.pod AND u.usage_start = s.usage_start
),
cte_shared_volume_node_count AS (
    SELECT usage_start, persistentvolume, count(DISTINCT node) AS node_count
    FROM cte_volume_nodes GROUP BY 1, 2
),
cte_storage_usage AS (
    SELECT CAST(s.interval_start AS DATE) AS usage_start, s.namespace, vn.node, vn.resource_id,
        s.persistentvolumeclaim, s.persistentvolume, s.storageclass, s.csi_volume_handle,
        koku_merge(nli.node_labels, nsli.namespace_labels, koku_filter(s.persistentvolume_labels),
            koku_filter(s.persistentvolumeclaim_labels)) AS volume_labels,
        max(s.persistentvolumeclaim_capacity_bytes) AS cap,
        sum(s.persistentvolumeclaim_capacity_byte_seconds) AS cap_s,
        sum(s.volume_request_storage_byte_seconds) / max(nc.node_count) AS req_s,
        sum(s.persistentvolumeclaim_usage_byte_seconds) / max(nc.node_count) AS use_s
    FROM storage AS s
    LEFT JOIN cte_volume_nodes AS vn
        ON vn.usage_start = CAST(s.interval_start AS DATE) AND vn.persistentvolumeclaim = s.persistentvolumeclaim
        AND vn.pod = s.pod AND vn.namespace = s.namespace
    LEFT JOIN cte_shared_volume_node_count AS nc
        ON nc.usage_start = CAST(s.interval_start AS DATE) AND nc.persistentvolume = s.persistentvolume
    LEFT JOIN cte_ocp_node_label_line_item_daily AS nli
        ON nli.node = vn.node AND nli.usage_start = vn.usage_start
    LEFT JOIN cte_ocp_namespace_label_line_item_daily AS nsli
        ON nsli.namespace = s.namespace AND nsli.usage_start = CAST(s.interval_start AS DATE)
    GROUP BY ALL
),
cte_node_role AS (
    SELECT max(node_role) AS node_role, node, resource_id FROM reporting_ocp_nodes GROUP BY 2, 3
),
unallocated AS (
    SELECT p.usage_start,
        CASE max(r.node_role) WHEN 'master' THEN 'Platform unallocated'
            WHEN 'infra' THEN 'Platform unallocated' WHEN 'worker' THEN 'Worker unallocated' END AS namespace,
        p.node, max(p.resource_id) AS resource_id,
        max(node_capacity_cpu_core_hours) - sum(pod_usage_cpu_core_hours) AS pod_usage_cpu_core_hours,
        max(node_capacity_cpu_core_hours) - sum(pod_request_cpu_core_hours) AS pod_request_cpu_core_hours,
        max(node_capacity_cpu_core_hours) - sum(pod_effective_usage_cpu_core_hours) AS pod_effective_usage_cpu_core_hours,
        max(node_capacity_memory_gigabyte_hours) - sum(pod_usage_memory_gigabyte_hours) AS pod_usage_memory_gigabyte_hours,
        max(node_capacity_memory_gigabyte_hours) - sum(pod_request_memory_gigabyte_hours) AS pod_request_memory_gigabyte_hours,
        max(node_capacity_memory_gigabyte_hours) - sum(pod_effective_usage_memory_gigabyte_hours)
            AS pod_effective_usage_memory_gigabyte_hours,
        max(node_capacity_cpu_cores) AS node_capacity_cpu_cores,
        max(node_capacity_cpu_core_hours) AS node_capacity_cpu_core_hours,
        max(node_capacity_memory_gigabytes) AS node_capacity_memory_gigabytes,
        max(node_capacity_memory_gigabyte_hours) AS node_capacity_memory_gigabyte_hours,
        max(cluster_capacity_cpu_core_hours) AS cluster_capacity_cpu_core_hours,
        max(cluster_capacity_memory_gigabyte_hours) AS cluster_capacity_memory_gigabyte_hours
    FROM pod_rows AS p
    LEFT JOIN cte_node_role AS r ON r.node = p.node AND r.resource_id = p.resource_id
    WHERE p.namespace NOT IN ('Platform unallocated', 'Worker unallocated',
        'Network unattributed', 'Storage unattributed')
    GROUP BY p.node, p.usage_start
)
SELECT p.*, NULL::VARCHAR AS persistentvolumeclaim, NULL::VARCHAR AS persistentvolume,
    NULL::VARCHAR AS storageclass, NULL::VARCHAR AS volume_labels,
    NULL::DOUBLE AS persistentvolumeclaim_capacity_gigabyte,
    NULL::DOUBLE AS persistentvolumeclaim_capacity_gigabyte_months,
    NULL::DOUBLE AS volume_request_storage_gigabyte_months,
    NULL::DOUBLE AS persistentvolumeclaim_usage_gigabyte_months,
    p.pod_labels AS all_labels,
    (SELECT max(cost_category_id) FROM cost_category AS c WHERE p.namespace LIKE c.namespace) AS cost_category_id
FROM pod_rows AS p
UNION ALL
SELECT 'Storage', s.usage_start, s.namespace, s.node, s.resource_id, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    s.persistentvolumeclaim, s.persistentvolume, s.storageclass, to_json(s.volume_labels)::VARCHAR,
    s.cap * 2 ^ -30,
    s.cap_s / (86400 * {days_in_month}) * 2 ^ -30,
    s.req_s / (86400 * {days_in_month}) * 2 ^ -30,
    s.use_s / (86400 * {days_in_month}) * 2 ^ -30,
    to_json(s.volume_labels)::VARCHAR,
    (SELECT max(cost_category_id) FROM cost_category AS c WHERE s.namespace LIKE c.namespace)
FROM cte_storage_usage AS s
UNION ALL
SELECT 'Pod', u.usage_start, u.namespace, u.node, u.resource_id, NULL,
    u.pod_usage_cpu_core_hours, u.pod_request_cpu_core_hours, u.pod_effective_usage_cpu_core_hours, NULL,
    u.pod_usage_memory_gigabyte_hours, u.pod_request_memory_gigabyte_hours,
    u.pod_effective_usage_memory_gigabyte_hours, NULL,
    u.node_capacity_cpu_cores, u.node_capacity_cpu_core_hours, u.node_capacity_memory_gigabytes,
    u.node_capacity_memory_gigabyte_hours, u.cluster_capacity_cpu_core_hours,
    u.cluster_capacity_memory_gigabyte_hours,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}',
    (SELECT max(cost_category_id) FROM cost_category AS c WHERE u.namespace LIKE c.namespace)
FROM unallocated AS u;
