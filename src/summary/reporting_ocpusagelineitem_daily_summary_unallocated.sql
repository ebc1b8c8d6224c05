-- Ported from koku@768be82535f8e75523d966b4797e954ad054b52f (2026-08-19),
-- koku/masu/database/trino_sql/openshift/reporting_ocpusagelineitem_daily_summary.sql.
-- costagg's port of the UNALLOCATED CAPACITY insert of koku's Trino SQL
-- `trino_sql/openshift/reporting_ocpusagelineitem_daily_summary.sql`.
-- koku reads back the Pod rows it has just written (`reporting_ocpusagelineitem_daily_summary AS
-- lids`, data_source 'Pod', node not null, the four unallocated/unattributed namespaces left
-- out). costagg adds those rows up as they stream to PostgreSQL (`unallocated::NodeTotals`):
-- `cte_pod_rows_by_node` holds, per (day, node, resource_id), the sums of the six quantities
-- and the maxima of the six capacities over those Pod rows. Sums of sums and maxima of maxima
-- are koku's sums and maxima, and the role join below is on (node, resource_id) as in koku.

WITH cte_node_role AS (
    SELECT max(node_role) AS node_role,
        node,
        resource_id
    FROM reporting_ocp_nodes
    GROUP BY node, resource_id
),
cte_unallocated_capacity AS (
    SELECT lids.usage_start,
        lids.usage_start AS usage_end,
        -- A node with no known role gets a null namespace, as in koku.
        CASE max(nodes.node_role)
            WHEN 'master' THEN 'Platform unallocated'
            WHEN 'infra' THEN 'Platform unallocated'
            WHEN 'worker' THEN 'Worker unallocated'
        END AS namespace,
        lids.node,
        max(lids.resource_id) AS resource_id,
        max(lids.node_capacity_cpu_core_hours) - sum(lids.pod_usage_cpu_core_hours) AS pod_usage_cpu_core_hours,
        max(lids.node_capacity_cpu_core_hours) - sum(lids.pod_request_cpu_core_hours) AS pod_request_cpu_core_hours,
        max(lids.node_capacity_cpu_core_hours) - sum(lids.pod_effective_usage_cpu_core_hours)
            AS pod_effective_usage_cpu_core_hours,
        max(lids.node_capacity_memory_gigabyte_hours) - sum(lids.pod_usage_memory_gigabyte_hours)
            AS pod_usage_memory_gigabyte_hours,
        max(lids.node_capacity_memory_gigabyte_hours) - sum(lids.pod_request_memory_gigabyte_hours)
            AS pod_request_memory_gigabyte_hours,
        max(lids.node_capacity_memory_gigabyte_hours) - sum(lids.pod_effective_usage_memory_gigabyte_hours)
            AS pod_effective_usage_memory_gigabyte_hours,
        max(lids.node_capacity_cpu_cores) AS node_capacity_cpu_cores,
        max(lids.node_capacity_cpu_core_hours) AS node_capacity_cpu_core_hours,
        max(lids.node_capacity_memory_gigabytes) AS node_capacity_memory_gigabytes,
        max(lids.node_capacity_memory_gigabyte_hours) AS node_capacity_memory_gigabyte_hours,
        max(lids.cluster_capacity_cpu_core_hours) AS cluster_capacity_cpu_core_hours,
        max(lids.cluster_capacity_memory_gigabyte_hours) AS cluster_capacity_memory_gigabyte_hours
    FROM cte_pod_rows_by_node AS lids
    LEFT JOIN cte_node_role AS nodes
        ON lids.node = nodes.node
        AND lids.resource_id = nodes.resource_id
    GROUP BY lids.node, lids.usage_start
)
SELECT 'Pod' AS data_source,
    uc.usage_start,
    uc.usage_end,
    uc.namespace,
    uc.node,
    uc.resource_id,
    CAST(NULL AS VARCHAR) AS pod_labels,
    uc.pod_usage_cpu_core_hours,
    uc.pod_request_cpu_core_hours,
    uc.pod_effective_usage_cpu_core_hours,
    CAST(NULL AS DOUBLE) AS pod_limit_cpu_core_hours,
    uc.pod_usage_memory_gigabyte_hours,
    uc.pod_request_memory_gigabyte_hours,
    uc.pod_effective_usage_memory_gigabyte_hours,
    CAST(NULL AS DOUBLE) AS pod_limit_memory_gigabyte_hours,
    uc.node_capacity_cpu_cores,
    uc.node_capacity_cpu_core_hours,
    uc.node_capacity_memory_gigabytes,
    uc.node_capacity_memory_gigabyte_hours,
    uc.cluster_capacity_cpu_core_hours,
    uc.cluster_capacity_memory_gigabyte_hours,
    CAST(NULL AS VARCHAR) AS persistentvolumeclaim,
    CAST(NULL AS VARCHAR) AS persistentvolume,
    CAST(NULL AS VARCHAR) AS storageclass,
    CAST(NULL AS VARCHAR) AS volume_labels,
    CAST(NULL AS DOUBLE) AS persistentvolumeclaim_capacity_gigabyte,
    CAST(NULL AS DOUBLE) AS persistentvolumeclaim_capacity_gigabyte_months,
    CAST(NULL AS DOUBLE) AS volume_request_storage_gigabyte_months,
    CAST(NULL AS DOUBLE) AS persistentvolumeclaim_usage_gigabyte_months,
    -- koku: map_concat(coalesce(pod_labels, '{}'), coalesce(volume_labels, '{}')), both null here.
    '{}' AS all_labels,
    CAST(NULL AS VARCHAR) AS infrastructure_usage_cost,
    -- koku: LEFT JOIN reporting_ocp_cost_category_namespace ON uc.namespace LIKE cat_ns.namespace
    -- (no aggregation, so overlapping patterns would repeat the row); costagg takes the max, as
    -- in the Pod and Storage sections.
    koku_cost_category(uc.namespace) AS cost_category_id
FROM cte_unallocated_capacity AS uc
