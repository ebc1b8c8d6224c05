-- Ported from koku@768be82535f8e75523d966b4797e954ad054b52f (2026-08-19),
-- koku/masu/database/trino_sql/openshift/reporting_ocpusagelineitem_daily_summary.sql.
-- koku's two label CTEs of `trino_sql/openshift/reporting_ocpusagelineitem_daily_summary.sql`,
-- as views that the Pod and Storage sections both join (koku's SQL shares them between its
-- Pod and Storage SELECTs the same way). `{{start}}`/`{{end}}` and `koku_date` as in the Pod section.

-- koku: GROUP BY date(interval_start), node, filtered node_labels. costagg first takes the
-- distinct raw strings so the filter runs once per distinct (day, node, labels).
CREATE OR REPLACE VIEW cte_ocp_node_label_line_item_daily AS
SELECT DISTINCT d.usage_start,
    d.node,
    koku_filter_labels(d.node_labels) AS node_labels
FROM (
    SELECT DISTINCT koku_date(nli.interval_start) AS usage_start, nli.node, nli.node_labels
    FROM openshift_node_labels_line_items AS nli
    WHERE nli.interval_start >= {{start}}
        AND nli.interval_start < {{end}}
) AS d;

CREATE OR REPLACE VIEW cte_ocp_namespace_label_line_item_daily AS
SELECT DISTINCT d.usage_start,
    d.namespace,
    koku_filter_labels(d.namespace_labels) AS namespace_labels
FROM (
    SELECT DISTINCT koku_date(nsli.interval_start) AS usage_start, nsli.namespace, nsli.namespace_labels
    FROM openshift_namespace_labels_line_items AS nsli
    WHERE nsli.interval_start >= {{start}}
        AND nsli.interval_start < {{end}}
) AS d;
