-- Ported from koku@768be82535f8e75523d966b4797e954ad054b52f (2026-08-19),
-- koku/masu/database/trino_sql/openshift/reporting_ocpusagelineitem_daily_summary.sql.
-- costagg's port of the Storage section of koku's Trino SQL
-- `trino_sql/openshift/reporting_ocpusagelineitem_daily_summary.sql` (the part under
-- `{% if storage_exists %}`: costagg runs it only when the unit has storage files).
-- CTE and column names are koku's. `{{start}}`/`{{end}}` and `koku_date` as in the Pod section;
-- `{{days_in_month}}` is koku's `extract(day from last_day_of_month(date(usage_start)))`, one
-- number since a unit is one month. The label CTEs are the views of
-- `cte_ocp_label_line_items_daily.sql`.
-- koku reads the daily roll-up (`openshift_storage_usage_line_items_daily`,
-- `openshift_pod_usage_line_items_daily`); costagg reads the hourly files when present, else the
-- daily ones. Every figure below is a max or a sum per day, so both give koku's rows.

-- koku: determine which node a PVC is running on. costagg takes the distinct keys of each side
-- before joining (koku joins the line items and then groups), so hourly rows never multiply.
-- costagg: computed once into a table (one row per claim, pod and day), because DataFusion plans
-- a CTE anew at every reference and both the node count and the labelled rows read it (anew
-- for each pass of a few days, hence `OR REPLACE`).
CREATE OR REPLACE TABLE cte_volume_nodes AS
    SELECT DISTINCT sli.usage_start,
        sli.persistentvolumeclaim,
        sli.persistentvolume,
        sli.pod,
        sli.namespace,
        uli.node,
        uli.resource_id
    FROM (
        SELECT DISTINCT koku_date(s.interval_start) AS usage_start,
            s.persistentvolumeclaim, s.persistentvolume, s.pod, s.namespace
        FROM openshift_storage_usage_line_items AS s
        WHERE s.interval_start >= {{start}}
            AND s.interval_start < {{end}}
    ) AS sli
    JOIN (
        SELECT DISTINCT koku_date(p.interval_start) AS usage_start,
            p.namespace, p.pod, p.node, p.resource_id
        FROM openshift_pod_usage_line_items AS p
        WHERE p.interval_start >= {{start}}
            AND p.interval_start < {{end}}
    ) AS uli
        ON uli.namespace = sli.namespace
        AND uli.pod = sli.pod
        AND uli.usage_start = sli.usage_start;

WITH cte_shared_volume_node_count AS (
    SELECT usage_start,
        persistentvolume,
        count(DISTINCT node) AS node_count
    FROM cte_volume_nodes
    GROUP BY usage_start, persistentvolume
),
-- costagg: as in the Pod section, the line items are first grouped by their raw label strings
-- (and the pod, which decides the node), so label filtering and merging run once per group.
-- Every join key below is part of this grouping, so the joined rows are koku's.
cte_storage_by_raw_labels AS (
    SELECT koku_date(sli.interval_start) AS usage_start,
        sli.namespace,
        sli.pod,
        sli.persistentvolumeclaim,
        sli.persistentvolume,
        sli.storageclass,
        sli.csi_volume_handle,
        sli.persistentvolume_labels,
        sli.persistentvolumeclaim_labels,
        max(sli.persistentvolumeclaim_capacity_bytes) AS persistentvolumeclaim_capacity_bytes,
        sum(sli.persistentvolumeclaim_capacity_byte_seconds) AS persistentvolumeclaim_capacity_byte_seconds,
        sum(sli.volume_request_storage_byte_seconds) AS volume_request_storage_byte_seconds,
        sum(sli.persistentvolumeclaim_usage_byte_seconds) AS persistentvolumeclaim_usage_byte_seconds
    FROM openshift_storage_usage_line_items AS sli
    WHERE sli.interval_start >= {{start}}
        AND sli.interval_start < {{end}}
    GROUP BY koku_date(sli.interval_start), sli.namespace, sli.pod, sli.persistentvolumeclaim,
        sli.persistentvolume, sli.storageclass, sli.csi_volume_handle,
        sli.persistentvolume_labels, sli.persistentvolumeclaim_labels
),
cte_storage_labelled AS (
    -- koku: map_concat(node labels, namespace labels, filtered PV labels, filtered PVC labels),
    -- later keys winning. The node is the one the pod ran on that day: a PVC whose pod ran on
    -- no node that day has a null node, no node labels and (below) a null node count.
    -- Like koku, the join to cte_volume_nodes omits the PV: a claim seen with two volumes in a
    -- day joins the node rows of both.
    SELECT s.*,
        vn.node,
        vn.resource_id,
        nc.node_count,
        koku_merge_labels(nli.node_labels, nsli.namespace_labels,
            koku_filter_labels(s.persistentvolume_labels),
            koku_filter_labels(s.persistentvolumeclaim_labels)) AS volume_labels
    FROM cte_storage_by_raw_labels AS s
    LEFT JOIN cte_volume_nodes AS vn
        ON vn.usage_start = s.usage_start
        AND vn.persistentvolumeclaim = s.persistentvolumeclaim
        AND vn.pod = s.pod
        AND vn.namespace = s.namespace
    LEFT JOIN cte_shared_volume_node_count AS nc
        ON nc.usage_start = s.usage_start
        AND nc.persistentvolume = s.persistentvolume
    LEFT JOIN cte_ocp_node_label_line_item_daily AS nli
        ON nli.node = vn.node
        AND nli.usage_start = vn.usage_start
    LEFT JOIN cte_ocp_namespace_label_line_item_daily AS nsli
        ON nsli.namespace = s.namespace
        AND nsli.usage_start = s.usage_start
),
cte_storage_usage AS (
    -- koku: divide volume usage and requests by the number of nodes that volume is mounted on.
    -- With no node count (no pod of the volume ran that day) koku's division gives null.
    SELECT l.usage_start,
        l.namespace,
        l.node,
        l.resource_id,
        l.persistentvolumeclaim,
        l.persistentvolume,
        l.storageclass,
        l.csi_volume_handle,
        l.volume_labels,
        max(l.persistentvolumeclaim_capacity_bytes) AS persistentvolumeclaim_capacity_bytes,
        sum(l.persistentvolumeclaim_capacity_byte_seconds) AS persistentvolumeclaim_capacity_byte_seconds,
        sum(l.volume_request_storage_byte_seconds) / max(l.node_count) AS volume_request_storage_byte_seconds,
        sum(l.persistentvolumeclaim_usage_byte_seconds) / max(l.node_count) AS persistentvolumeclaim_usage_byte_seconds
    FROM cte_storage_labelled AS l
    GROUP BY l.usage_start, l.namespace, l.node, l.resource_id, l.persistentvolumeclaim,
        l.persistentvolume, l.storageclass, l.csi_volume_handle, l.volume_labels
)
SELECT 'Storage' AS data_source,
    sua.usage_start,
    sua.usage_start AS usage_end,
    sua.namespace,
    sua.node,
    sua.resource_id,
    CAST(NULL AS VARCHAR) AS pod_labels,
    CAST(NULL AS DOUBLE) AS pod_usage_cpu_core_hours,
    CAST(NULL AS DOUBLE) AS pod_request_cpu_core_hours,
    CAST(NULL AS DOUBLE) AS pod_effective_usage_cpu_core_hours,
    CAST(NULL AS DOUBLE) AS pod_limit_cpu_core_hours,
    CAST(NULL AS DOUBLE) AS pod_usage_memory_gigabyte_hours,
    CAST(NULL AS DOUBLE) AS pod_request_memory_gigabyte_hours,
    CAST(NULL AS DOUBLE) AS pod_effective_usage_memory_gigabyte_hours,
    CAST(NULL AS DOUBLE) AS pod_limit_memory_gigabyte_hours,
    CAST(NULL AS DOUBLE) AS node_capacity_cpu_cores,
    CAST(NULL AS DOUBLE) AS node_capacity_cpu_core_hours,
    CAST(NULL AS DOUBLE) AS node_capacity_memory_gigabytes,
    CAST(NULL AS DOUBLE) AS node_capacity_memory_gigabyte_hours,
    CAST(NULL AS DOUBLE) AS cluster_capacity_cpu_core_hours,
    CAST(NULL AS DOUBLE) AS cluster_capacity_memory_gigabyte_hours,
    sua.persistentvolumeclaim,
    sua.persistentvolume,
    sua.storageclass,
    sua.volume_labels,
    sua.persistentvolumeclaim_capacity_bytes * power(2.0, -30) AS persistentvolumeclaim_capacity_gigabyte,
    sua.persistentvolumeclaim_capacity_byte_seconds / (86400 * {{days_in_month}}) * power(2.0, -30)
        AS persistentvolumeclaim_capacity_gigabyte_months,
    sua.volume_request_storage_byte_seconds / (86400 * {{days_in_month}}) * power(2.0, -30)
        AS volume_request_storage_gigabyte_months,
    sua.persistentvolumeclaim_usage_byte_seconds / (86400 * {{days_in_month}}) * power(2.0, -30)
        AS persistentvolumeclaim_usage_gigabyte_months,
    -- koku: all_labels = map_concat(pod_labels, volume_labels); Storage rows have no pod labels.
    sua.volume_labels AS all_labels,
    '{"cpu": 0, "memory": 0, "storage": 0}' AS infrastructure_usage_cost,
    -- As in the Pod section: the max over the patterns the namespace matches, never multiplying.
    koku_cost_category(sua.namespace) AS cost_category_id
FROM cte_storage_usage AS sua
