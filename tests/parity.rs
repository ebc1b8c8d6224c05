//! koku parity on a generated month with all four report types: totals that the test works out
//! from the Parquet files itself, in plain loops following koku's summary rules (Pod usage,
//! unallocated node capacity, Storage split across the nodes a claim's pod ran on; the README's
//! "How the summary follows koku"), against what costagg wrote to PostgreSQL; and koku's
//! reference tables (report period, node roles) read from the schema.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use costagg::config::DEFAULT_DAILY_TEMPLATE;
use costagg::config::DEFAULT_HOURLY_TEMPLATE;
use costagg::input::ReportType;
use costagg::input::layout::{UnitKey, render};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, TimestampMillisecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::*;

const DAY_MS: i64 = 86_400_000;
const GIB: f64 = 1_073_741_824.0;

/// Every row of every Parquet file under `dir`.
fn read_all(dir: &Path) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

/// Row `i` of a batch: text, number and millisecond-timestamp columns by name.
struct Row<'a>(&'a RecordBatch, usize);

impl Row<'_> {
    fn text(&self, name: &str) -> String {
        self.0
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(self.1)
            .to_string()
    }
    fn number(&self, name: &str) -> f64 {
        self.0
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(self.1)
    }
    fn day(&self) -> i64 {
        let ms = self.0.column_by_name("interval_start").unwrap();
        ms.as_primitive::<TimestampMillisecondType>()
            .value(self.1)
            .div_euclid(DAY_MS)
    }
    fn hour_ms(&self) -> i64 {
        let ms = self.0.column_by_name("interval_start").unwrap();
        ms.as_primitive::<TimestampMillisecondType>().value(self.1)
    }
}

fn rows(batches: &[RecordBatch]) -> impl Iterator<Item = Row<'_>> {
    batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |i| Row(b, i)))
}

/// Relative closeness for sums of many floating-point terms added in another order.
fn assert_near(found: f64, expected: f64, what: &str) {
    let tolerance = 1e-9 * expected.abs().max(1.0);
    assert!(
        (found - expected).abs() <= tolerance,
        "{what}: PostgreSQL has {found}, the files give {expected}"
    );
}

#[tokio::test]
async fn a_generated_month_with_all_four_report_types_matches_totals_worked_out_from_the_files() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), SOURCE_A, "2025-10", 6000, 11);
    let unit = unit(SOURCE_A, "2025-10");
    let mut config = config_with_keys(&["app", "team"]);
    config.reference.node_roles = generated.node_roles.clone();
    let mut req = request(unit.clone(), dir.path(), &url, config);
    // Summarised in passes of 3 days (31 days: 10 passes and a last one of 1 day), as large
    // months are, with each pass written while the next runs.
    req.profile.days_per_pass = 3;
    let report = run_unit(&req).await.unwrap();
    let folder = |template, report| dir.path().join(render(template, UnitKey::of(&unit), report));
    let pods = read_all(&folder(DEFAULT_HOURLY_TEMPLATE, ReportType::PodUsage));
    let storage = read_all(&folder(DEFAULT_DAILY_TEMPLATE, ReportType::StorageUsage));
    assert!(!storage.is_empty());

    // Pod rows: every core-second on a node, in hours.
    let pod_cpu_hours: f64 = rows(&pods)
        .filter(|r| !r.text("node").is_empty())
        .map(|r| r.number("pod_usage_cpu_core_seconds") / 3600.0)
        .sum();

    // Unallocated: per (day, node) with pods, the node's capacity (max per hour, summed over
    // the day) minus the pods' usage.
    let mut capacity_per_hour: BTreeMap<(i64, String), f64> = BTreeMap::new();
    let mut used_per_day: BTreeMap<(i64, String), f64> = BTreeMap::new();
    for r in rows(&pods) {
        let cap = capacity_per_hour
            .entry((r.hour_ms(), r.text("node")))
            .or_insert(0.0);
        *cap = cap.max(r.number("node_capacity_cpu_core_seconds"));
        if !r.text("node").is_empty() {
            *used_per_day.entry((r.day(), r.text("node"))).or_default() +=
                r.number("pod_usage_cpu_core_seconds");
        }
    }
    let mut capacity_per_day: BTreeMap<(i64, String), f64> = BTreeMap::new();
    for ((hour_ms, node), cap) in &capacity_per_hour {
        *capacity_per_day
            .entry((hour_ms.div_euclid(DAY_MS), node.clone()))
            .or_default() += cap;
    }
    let unallocated_cpu_hours: f64 = used_per_day
        .iter()
        .map(|(key, used)| (capacity_per_day[key] - used) / 3600.0)
        .sum();
    let role = |node: &str| {
        generated
            .node_roles
            .iter()
            .find(|r| r.node == node)
            .unwrap()
            .node_role
            .clone()
    };
    let platform_node_days = used_per_day
        .keys()
        .filter(|(_, node)| matches!(role(node).as_str(), "master" | "infra"))
        .count();

    // Storage: the nodes each pod ran on per day; a volume's node count per day; capacity
    // counted once per node row, request divided by the volume's node count, and null (left
    // out of the sum) for a claim whose pod ran on no node that day.
    let mut pod_nodes: BTreeMap<(i64, String, String), BTreeSet<String>> = BTreeMap::new();
    for r in rows(&pods) {
        pod_nodes
            .entry((r.day(), r.text("namespace"), r.text("pod")))
            .or_default()
            .insert(r.text("node"));
    }
    let nodes_of = |r: &Row| pod_nodes.get(&(r.day(), r.text("namespace"), r.text("pod")));
    let mut volume_nodes: BTreeMap<(i64, String), BTreeSet<String>> = BTreeMap::new();
    for r in rows(&storage) {
        if let Some(nodes) = nodes_of(&r) {
            volume_nodes
                .entry((r.day(), r.text("persistentvolume")))
                .or_default()
                .extend(nodes.iter().cloned());
        }
    }
    let month_gib_seconds = 86400.0 * 31.0 * GIB;
    let (mut capacity_months, mut request_months, mut claims_on_no_node) = (0.0, 0.0, 0);
    for r in rows(&storage) {
        let node_rows = nodes_of(&r).map_or(1, BTreeSet::len) as f64;
        capacity_months +=
            r.number("persistentvolumeclaim_capacity_byte_seconds") * node_rows / month_gib_seconds;
        match nodes_of(&r) {
            Some(nodes) => {
                let count = volume_nodes[&(r.day(), r.text("persistentvolume"))].len() as f64;
                request_months += r.number("volume_request_storage_byte_seconds") * nodes.len() as f64
                    / count
                    / month_gib_seconds;
            }
            None => claims_on_no_node += 1,
        }
    }
    assert!(claims_on_no_node > 0, "the month has unmounted claims");

    let client = connect(&url).await;
    let t = client
        .query_one(
            "SELECT \
             sum(pod_usage_cpu_core_hours) FILTER (WHERE data_source = 'Pod' AND pod_labels IS NOT NULL)::float8, \
             sum(pod_usage_cpu_core_hours) FILTER (WHERE data_source = 'Pod' AND pod_labels IS NULL)::float8, \
             count(*) FILTER (WHERE data_source = 'Pod' AND pod_labels IS NULL), \
             count(*) FILTER (WHERE namespace = 'Platform unallocated'), \
             count(*) FILTER (WHERE data_source = 'Pod' AND pod_labels IS NULL AND namespace IS NULL), \
             sum(persistentvolumeclaim_capacity_gigabyte_months)::float8, \
             sum(volume_request_storage_gigabyte_months)::float8, \
             count(*) FILTER (WHERE data_source = 'Storage' AND node IS NULL), \
             bool_and(volume_labels ? 'app' AND volume_labels ? 'team' AND NOT volume_labels ? 'storage_tier') \
                 FILTER (WHERE data_source = 'Storage') \
             FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap();
    assert_near(t.get(0), pod_cpu_hours, "Pod core-hours");
    assert_near(t.get(1), unallocated_cpu_hours, "unallocated core-hours");
    assert_eq!(
        t.get::<_, i64>(2) as usize,
        used_per_day.len(),
        "one unallocated row per node-day"
    );
    assert_eq!(
        t.get::<_, i64>(3) as usize,
        platform_node_days,
        "master and infra node-days"
    );
    assert_eq!(t.get::<_, i64>(4), 0, "every generated node has a role");
    assert_near(t.get(5), capacity_months, "Storage capacity gigabyte-months");
    assert_near(t.get(6), request_months, "Storage request gigabyte-months");
    assert_eq!(
        t.get::<_, i64>(7),
        claims_on_no_node,
        "claims mounted by no running pod"
    );
    assert!(t.get::<_, bool>(8), "volume labels keep the enabled keys only");
    assert_eq!(t.get::<_, i64>(2) as u64, report.unallocated_rows);
}

#[tokio::test]
async fn cluster_and_report_period_come_from_kokus_report_period_row_unless_given() {
    let url = fresh_database().await;
    let client = connect(&url).await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA org1234567; \
             CREATE TABLE org1234567.reporting_ocpusagereportperiod (id serial PRIMARY KEY, \
                 cluster_id varchar(50) NOT NULL, cluster_alias varchar(256), \
                 report_period_start timestamptz NOT NULL, report_period_end timestamptz NOT NULL, \
                 provider_id uuid NOT NULL); \
             INSERT INTO org1234567.reporting_ocpusagereportperiod \
                 (id, cluster_id, cluster_alias, report_period_start, report_period_end, provider_id) VALUES \
                 (40, 'ocp-sep', 'September', '2025-09-01 00:00+00', '2025-10-01 00:00+00', '{SOURCE_A}'), \
                 (41, 'ocp-prod', 'Production', '2025-10-01 00:00+00', '2025-11-01 00:00+00', '{SOURCE_A}'), \
                 (42, 'ocp-other', 'Other', '2025-10-01 00:00+00', '2025-11-01 00:00+00', '{SOURCE_B}');"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 1000, 12);
    let identity = |sql: &'static str| {
        let client = &client;
        async move {
            let r = client.query_one(sql, &[]).await.unwrap();
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, Option<i32>>(2),
                r.get::<_, i64>(3),
            )
        }
    };
    let sql = "SELECT min(cluster_id), min(cluster_alias), min(report_period_id), \
               count(DISTINCT (cluster_id, cluster_alias, report_period_id)) \
               FROM org1234567.reporting_ocpusagelineitem_daily_summary";

    // Nothing given: all three from the source's October row.
    let mut bare = unit(SOURCE_A, "2025-10");
    bare.overrides = Default::default();
    run_unit(&request(
        bare.clone(),
        dir.path(),
        &url,
        config_with_keys(&["app"]),
    ))
    .await
    .unwrap();
    assert_eq!(
        identity(sql).await,
        ("ocp-prod".into(), "Production".into(), Some(41), 1)
    );

    // A flag wins over the row for its own column only.
    bare.overrides.cluster_alias = Some("Prod (renamed)".into());
    run_unit(&request(bare, dir.path(), &url, config_with_keys(&["app"])))
        .await
        .unwrap();
    assert_eq!(
        identity(sql).await,
        ("ocp-prod".into(), "Prod (renamed)".into(), Some(41), 1)
    );
}
