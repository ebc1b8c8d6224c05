-- Ported from koku@768be82535f8e75523d966b4797e954ad054b52f (2026-08-19),
-- koku/masu/database/trino_sql/openshift/reporting_ocpusagelineitem_daily_summary.sql.
-- costagg's port of the Pod section of koku's Trino SQL
-- `trino_sql/openshift/reporting_ocpusagelineitem_daily_summary.sql`.
-- CTE names and column names are koku's so the two can be read side by side.
-- `{{start}}` and `{{end}}` are the unit's day range as timestamps, end exclusive
-- (koku: `interval_start >= {{start_date}} AND interval_start < date_add('day', 1, {{end_date}})`).
-- koku's `source`/`year`/`month` predicates are the folder costagg reads, so they are absent here.
-- `koku_date(t)` is koku's `date(t)` (SQL's `CAST(t AS DATE)`), the UTC day, computed as whole days
-- since the epoch: arrow's cast goes through a calendar date per line item.
-- Enabled keys: koku's `cte_pg_enabled_keys` + `map_filter(..., contains(pek.keys, k))` is
-- `koku_filter_labels`, which holds the enabled keys itself.
-- koku's label CTEs (`cte_ocp_node_label_line_item_daily`, `cte_ocp_namespace_label_line_item_daily`)
-- are views shared with the Storage section: `cte_ocp_label_line_items_daily.sql`.

-- costagg: DataFusion plans a CTE anew at every reference, so the node capacities, which the
-- cluster capacities and the final join both read, are computed once into a table (a few rows
-- per node and day) before the main query; koku's CTE is otherwise unchanged. `OR REPLACE`:
-- a large month is summarised in passes of a few days, each with its own tables.
CREATE OR REPLACE TABLE cte_ocp_node_capacity AS
    -- Max per (hour, node), then summed per (day, node). koku keeps rows with an empty node here.
    SELECT koku_date(nc.interval_start) AS usage_start,
        nc.node,
        sum(nc.node_capacity_cpu_core_seconds) AS node_capacity_cpu_core_seconds,
        sum(nc.node_capacity_memory_byte_seconds) AS node_capacity_memory_byte_seconds
    FROM (
        SELECT li.interval_start,
            li.node,
            max(li.node_capacity_cpu_core_seconds) AS node_capacity_cpu_core_seconds,
            max(li.node_capacity_memory_byte_seconds) AS node_capacity_memory_byte_seconds
        FROM openshift_pod_usage_line_items AS li
        WHERE li.interval_start >= {{start}}
            AND li.interval_start < {{end}}
        GROUP BY li.interval_start, li.node
    ) AS nc
    GROUP BY koku_date(nc.interval_start), nc.node;

-- costagg: a table too, so that the planner, which knows its size, hashes it (one row per day)
-- and streams the Pod rows past it. As a CTE its size was unknown and the join held every Pod
-- row in memory instead (110 MB at 10M rows, the failure of 100M-row runs).
CREATE OR REPLACE TABLE cte_ocp_cluster_capacity AS
    SELECT nc.usage_start,
        sum(nc.node_capacity_cpu_core_seconds) AS cluster_capacity_cpu_core_seconds,
        sum(nc.node_capacity_memory_byte_seconds) AS cluster_capacity_memory_byte_seconds
    FROM cte_ocp_node_capacity AS nc
    GROUP BY nc.usage_start;

-- costagg: koku groups the line items by (day, namespace, node, source, merged label map) in
-- one step. We first group by the raw pod_labels string, then filter and merge labels per
-- group and group again by the merged labels. Sums and maxima are associative, so the rows
-- are koku's; label work runs per group instead of per line item. koku_max_text is koku's
-- max(li.resource_id), computed on a number per distinct string (summary/max_text.rs).
WITH cte_pod_usage_by_raw_labels AS (
    SELECT koku_date(li.interval_start) AS usage_start,
        li.namespace,
        li.node,
        li.pod_labels,
        koku_max_text(li.resource_id) AS resource_id,
        sum(li.pod_usage_cpu_core_seconds) AS pod_usage_cpu_core_seconds,
        sum(li.pod_request_cpu_core_seconds) AS pod_request_cpu_core_seconds,
        sum(coalesce(li.pod_effective_usage_cpu_core_seconds,
            greatest(li.pod_usage_cpu_core_seconds, li.pod_request_cpu_core_seconds))) AS pod_effective_usage_cpu_core_seconds,
        sum(li.pod_limit_cpu_core_seconds) AS pod_limit_cpu_core_seconds,
        sum(li.pod_usage_memory_byte_seconds) AS pod_usage_memory_byte_seconds,
        sum(li.pod_request_memory_byte_seconds) AS pod_request_memory_byte_seconds,
        sum(coalesce(li.pod_effective_usage_memory_byte_seconds,
            greatest(li.pod_usage_memory_byte_seconds, li.pod_request_memory_byte_seconds))) AS pod_effective_usage_memory_byte_seconds,
        sum(li.pod_limit_memory_byte_seconds) AS pod_limit_memory_byte_seconds,
        max(li.node_capacity_cpu_cores) AS node_capacity_cpu_cores,
        max(li.node_capacity_memory_bytes) AS node_capacity_memory_bytes
    FROM openshift_pod_usage_line_items AS li
    WHERE li.interval_start >= {{start}}
        AND li.interval_start < {{end}}
        AND li.node != ''
    GROUP BY koku_date(li.interval_start), li.namespace, li.node, li.pod_labels
),
cte_pod_usage_labelled AS (
    -- koku: map_concat(node labels, namespace labels, filtered pod labels), later keys winning,
    -- a missing node or namespace label row counting as '{}'. Like koku's LEFT JOINs, a node
    -- whose enabled labels change within a day yields one row per label set.
    SELECT r.*,
        koku_merge_labels(nli.node_labels, nsli.namespace_labels, koku_filter_labels(r.pod_labels)) AS merged_labels
    FROM cte_pod_usage_by_raw_labels AS r
    LEFT JOIN cte_ocp_node_label_line_item_daily AS nli
        ON nli.node = r.node
        AND nli.usage_start = r.usage_start
    LEFT JOIN cte_ocp_namespace_label_line_item_daily AS nsli
        ON nsli.namespace = r.namespace
        AND nsli.usage_start = r.usage_start
),
cte_pod_usage AS (
    SELECT l.usage_start,
        l.namespace,
        l.node,
        l.merged_labels AS pod_labels,
        max(l.resource_id) AS resource_id,
        sum(l.pod_usage_cpu_core_seconds) AS pod_usage_cpu_core_seconds,
        sum(l.pod_request_cpu_core_seconds) AS pod_request_cpu_core_seconds,
        sum(l.pod_effective_usage_cpu_core_seconds) AS pod_effective_usage_cpu_core_seconds,
        sum(l.pod_limit_cpu_core_seconds) AS pod_limit_cpu_core_seconds,
        sum(l.pod_usage_memory_byte_seconds) AS pod_usage_memory_byte_seconds,
        sum(l.pod_request_memory_byte_seconds) AS pod_request_memory_byte_seconds,
        sum(l.pod_effective_usage_memory_byte_seconds) AS pod_effective_usage_memory_byte_seconds,
        sum(l.pod_limit_memory_byte_seconds) AS pod_limit_memory_byte_seconds,
        max(l.node_capacity_cpu_cores) AS node_capacity_cpu_cores,
        max(l.node_capacity_memory_bytes) AS node_capacity_memory_bytes
    FROM cte_pod_usage_labelled AS l
    GROUP BY l.usage_start, l.namespace, l.node, l.merged_labels
)
SELECT 'Pod' AS data_source,
    pua.usage_start,
    pua.usage_start AS usage_end,
    pua.namespace,
    pua.node,
    pua.resource_id,
    pua.pod_labels,
    pua.pod_usage_cpu_core_seconds / 3600.0 AS pod_usage_cpu_core_hours,
    pua.pod_request_cpu_core_seconds / 3600.0 AS pod_request_cpu_core_hours,
    pua.pod_effective_usage_cpu_core_seconds / 3600.0 AS pod_effective_usage_cpu_core_hours,
    pua.pod_limit_cpu_core_seconds / 3600.0 AS pod_limit_cpu_core_hours,
    pua.pod_usage_memory_byte_seconds / 3600.0 * power(2.0, -30) AS pod_usage_memory_gigabyte_hours,
    pua.pod_request_memory_byte_seconds / 3600.0 * power(2.0, -30) AS pod_request_memory_gigabyte_hours,
    pua.pod_effective_usage_memory_byte_seconds / 3600.0 * power(2.0, -30) AS pod_effective_usage_memory_gigabyte_hours,
    pua.pod_limit_memory_byte_seconds / 3600.0 * power(2.0, -30) AS pod_limit_memory_gigabyte_hours,
    pua.node_capacity_cpu_cores,
    nc.node_capacity_cpu_core_seconds / 3600.0 AS node_capacity_cpu_core_hours,
    pua.node_capacity_memory_bytes * power(2.0, -30) AS node_capacity_memory_gigabytes,
    nc.node_capacity_memory_byte_seconds / 3600.0 * power(2.0, -30) AS node_capacity_memory_gigabyte_hours,
    cc.cluster_capacity_cpu_core_seconds / 3600.0 AS cluster_capacity_cpu_core_hours,
    cc.cluster_capacity_memory_byte_seconds / 3600.0 * power(2.0, -30) AS cluster_capacity_memory_gigabyte_hours,
    CAST(NULL AS VARCHAR) AS persistentvolumeclaim,
    CAST(NULL AS VARCHAR) AS persistentvolume,
    CAST(NULL AS VARCHAR) AS storageclass,
    CAST(NULL AS VARCHAR) AS volume_labels,
    CAST(NULL AS DOUBLE) AS persistentvolumeclaim_capacity_gigabyte,
    CAST(NULL AS DOUBLE) AS persistentvolumeclaim_capacity_gigabyte_months,
    CAST(NULL AS DOUBLE) AS volume_request_storage_gigabyte_months,
    CAST(NULL AS DOUBLE) AS persistentvolumeclaim_usage_gigabyte_months,
    -- koku: all_labels = map_concat(pod_labels, volume_labels); Pod rows have no volume labels.
    pua.pod_labels AS all_labels,
    '{"cpu": 0, "memory": 0, "storage": 0}' AS infrastructure_usage_cost,
    -- koku: LEFT JOIN reporting_ocp_cost_category_namespace ON namespace LIKE pattern, then
    -- max(cost_category_id) in the grouping. costagg matches each distinct namespace once and
    -- takes the max (`summary/cost_category.rs`), so overlapping patterns (which koku's API
    -- forbids) never multiply sums.
    koku_cost_category(pua.namespace) AS cost_category_id
FROM cte_pod_usage AS pua
JOIN cte_ocp_node_capacity AS nc
    ON nc.usage_start = pua.usage_start
    AND nc.node = pua.node
JOIN cte_ocp_cluster_capacity AS cc
    ON cc.usage_start = pua.usage_start
