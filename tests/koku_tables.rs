//! koku's tables around the summary, on a koku-shaped schema (`tests/fixtures/koku_schema.sql`):
//! the report period, clusters, nodes with their roles, claims and projects that one run
//! creates from a small fixture (worked out by hand below), what a rerun and a later upload
//! change, that a failed write, a killed run or a stopped server changes none of them, and the
//! signal of a replaced unit.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{Field, Schema};
use futures::StreamExt;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use costagg::input::ReportType;

use crate::support::*;

const OCT_1_MS: i64 = 1_759_276_800_000;

/// Writes `columns` (all of one length) as `name` in `report`'s October folder of source A.
fn write_file(root: &Path, report: ReportType, name: &str, columns: Vec<(&str, ArrayRef)>) {
    let dir = folder(root, &unit(SOURCE_A, "2025-10"), report);
    std::fs::create_dir_all(&dir).unwrap();
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let file = std::fs::File::create(dir.join(name)).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn hours(hours: &[i64]) -> ArrayRef {
    let ms = hours.iter().map(|h| OCT_1_MS + h * 3_600_000);
    Arc::new(TimestampMillisecondArray::from_iter_values(ms))
}

fn texts(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn numbers(n: usize, value: f64) -> ArrayRef {
    Arc::new(Float64Array::from(vec![value; n]))
}

/// A pod usage row: (hour, namespace, node, resource id, node capacity in cores, node_role).
type Pod = (
    i64,
    &'static str,
    &'static str,
    &'static str,
    f64,
    Option<&'static str>,
);

fn write_pods(root: &Path, name: &str, pods: &[Pod]) {
    let n = pods.len();
    let text = |f: fn(&Pod) -> Option<&'static str>| texts(&pods.iter().map(f).collect::<Vec<_>>());
    let mut columns = vec![
        (
            "interval_start",
            hours(&pods.iter().map(|p| p.0).collect::<Vec<_>>()),
        ),
        ("namespace", text(|p| Some(p.1))),
        ("pod", texts(&vec![Some("pod-1"); n])),
        ("node", text(|p| Some(p.2))),
        ("resource_id", text(|p| Some(p.3))),
        ("pod_labels", texts(&vec![Some("{}"); n])),
        ("node_role", text(|p| p.5)),
    ];
    for q in ReportType::PodUsage.required_quantities() {
        let values: Vec<f64> = pods
            .iter()
            .map(|p| match q {
                "node_capacity_cpu_cores" => p.4,
                "node_capacity_cpu_core_seconds" => p.4 * 3600.0,
                "pod_usage_cpu_core_seconds" => 1800.0,
                _ => 0.0,
            })
            .collect();
        columns.push((q, Arc::new(Float64Array::from(values))));
    }
    write_file(root, ReportType::PodUsage, name, columns);
}

/// Node-label rows at hour 0: (node, labels).
fn write_node_labels(root: &Path, rows: &[(&'static str, &'static str)]) {
    write_file(
        root,
        ReportType::NodeLabels,
        "labels.parquet",
        vec![
            ("interval_start", hours(&vec![0; rows.len()])),
            ("node", texts(&rows.iter().map(|r| Some(r.0)).collect::<Vec<_>>())),
            (
                "node_labels",
                texts(&rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>()),
            ),
        ],
    );
}

/// Storage rows of namespace `app`: (hour, claim, volume, CSI handle).
fn write_claims(root: &Path, name: &str, rows: &[(i64, &'static str, &'static str, Option<&'static str>)]) {
    let n = rows.len();
    let mut columns = vec![
        (
            "interval_start",
            hours(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        ),
        ("namespace", texts(&vec![Some("app"); n])),
        ("pod", texts(&vec![Some("pod-1"); n])),
        (
            "persistentvolumeclaim",
            texts(&rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>()),
        ),
        (
            "persistentvolume",
            texts(&rows.iter().map(|r| Some(r.2)).collect::<Vec<_>>()),
        ),
        ("storageclass", texts(&vec![Some("gp3"); n])),
        (
            "csi_volume_handle",
            texts(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        ),
        ("persistentvolume_labels", texts(&vec![Some("{}"); n])),
        ("persistentvolumeclaim_labels", texts(&vec![Some("{}"); n])),
    ];
    for q in ReportType::StorageUsage.required_quantities() {
        columns.push((q, numbers(n, 1e9)));
    }
    write_file(root, ReportType::StorageUsage, name, columns);
}

/// The fixture, days 1 and 2 of October (hours 0 and 24):
///
/// - `n-role` has a `node_role` column value (`infra`) and nothing else that names a role;
/// - `n-api` runs a pod of `openshift-kube-apiserver` → `master`; its arch label is `ARM64`;
/// - `n-infra` carries `"node_role_kubernetes_io": "infra"` → `infra`;
/// - `n-worker` and `n-grow` have neither → `worker`;
/// - `n-bare` has no node-label rows → no nodes row (koku's join), and a null unallocated
///   namespace;
/// - every node reports 4 cores; claims `pvc-a` (no CSI handle yet) and `pvc-b` (`h-b`).
fn write_month(root: &Path) {
    let mut pods: Vec<Pod> = Vec::new();
    for hour in [0, 24] {
        pods.extend([
            (hour, "app", "n-role", "i-role", 4.0, Some("infra")),
            (hour, "openshift-kube-apiserver", "n-api", "i-api", 4.0, None),
            (hour, "app", "n-api", "i-api", 4.0, None),
            (hour, "app", "n-infra", "i-infra", 4.0, None),
            (hour, "app", "n-worker", "i-worker", 4.0, None),
            (hour, "monitoring", "n-grow", "i-grow", 4.0, None),
            (hour, "app", "n-bare", "i-bare", 4.0, None),
        ]);
    }
    write_pods(root, "days-1-2.parquet", &pods);
    write_node_labels(
        root,
        &[
            ("n-role", r#"{"kubernetes_io_arch": "amd64"}"#),
            ("n-api", r#"{"kubernetes_io_arch": "ARM64"}"#),
            (
                "n-infra",
                r#"{"kubernetes_io_arch": "amd64", "node_role_kubernetes_io": "infra"}"#,
            ),
            ("n-worker", r#"{"kubernetes_io_arch": "amd64"}"#),
            ("n-grow", r#"{"kubernetes_io_arch": "amd64"}"#),
        ],
    );
    write_claims(
        root,
        "claims.parquet",
        &[(0, "pvc-a", "pv-a", None), (0, "pvc-b", "pv-b", Some("h-b"))],
    );
}

/// A koku-shaped schema with the source registered as koku's provider.
async fn koku_database() -> (TestDb, Client) {
    let url = fresh_database().await;
    let client = koku_schema_in(&url).await;
    (url, client)
}

/// koku's schema for the org in the database at `url`, with source A registered as koku's
/// provider.
async fn koku_schema_in(url: &str) -> Client {
    let client = connect(url).await;
    create_koku_schema(&client, ORG).await;
    insert_tenant_provider(&client, ORG, SOURCE_A).await;
    client
}

/// A later upload of source A's October: a pod on a new node `n-new` in a new namespace
/// `new-ns` on day 3.
fn write_late_upload(root: &Path) {
    write_pods(
        root,
        "late.parquet",
        &[(48, "new-ns", "n-new", "i-new", 2.0, None)],
    );
    write_node_labels(root, &[("n-new", r#"{"kubernetes_io_arch": "amd64"}"#)]);
}

/// A run of source A's October into `url` with the cluster's id and alias given, but no report
/// period id: the run finds or creates the period.
fn costagg_run(root: &Path, url: &str) -> Command {
    let mut c = costagg_run_october(SOURCE_A, root);
    c.args(["--cluster-id", "cluster-1", "--cluster-alias", "Cluster One"])
        .env("DATABASE_URL", url)
        .env("COSTAGG_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn succeeds(c: &mut Command) {
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every row of the four tables and the report periods, as text, sorted.
async fn koku_rows(client: &Client) -> Vec<String> {
    let sql = "SELECT 'period ' || cluster_id || ' ' || coalesce(cluster_alias, '-') || ' ' || \
                      (report_period_start AT TIME ZONE 'UTC')::text || ' ' || \
                      (report_period_end AT TIME ZONE 'UTC')::text || ' ' || provider_id \
               FROM org1234567.reporting_ocpusagereportperiod \
               UNION ALL SELECT 'cluster ' || cluster_id || ' ' || coalesce(cluster_alias, '-') || ' ' || provider_id \
               FROM org1234567.reporting_ocp_clusters \
               UNION ALL SELECT 'node ' || node || ' ' || coalesce(resource_id, '-') || ' ' || \
                      coalesce(node_capacity_cpu_cores::text, '-') || ' ' || coalesce(node_role, '-') || ' ' || \
                      coalesce(architecture, '-') FROM org1234567.reporting_ocp_nodes \
               UNION ALL SELECT 'pvc ' || persistent_volume || ' ' || persistent_volume_claim || ' ' || \
                      coalesce(csi_volume_handle, '-') FROM org1234567.reporting_ocp_pvcs \
               UNION ALL SELECT 'project ' || project FROM org1234567.reporting_ocp_projects";
    let mut rows: Vec<String> = client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    rows.sort();
    rows
}

/// What the fixture gives, worked out by hand from `write_month`'s comment.
fn expected_after_first_run() -> Vec<String> {
    let mut rows: Vec<String> = [
        "period cluster-1 Cluster One 2025-10-01 00:00:00 2025-11-01 00:00:00 6f5f1c0e-0000-4000-8000-00000000000a",
        "cluster cluster-1 Cluster One 6f5f1c0e-0000-4000-8000-00000000000a",
        "node n-api i-api 4.00 master arm64",
        "node n-grow i-grow 4.00 worker amd64",
        "node n-infra i-infra 4.00 infra amd64",
        "node n-role i-role 4.00 infra amd64",
        "node n-worker i-worker 4.00 worker amd64",
        "pvc pv-a pvc-a -",
        "pvc pv-b pvc-b h-b",
        "project app",
        "project monitoring",
        "project openshift-kube-apiserver",
    ]
    .map(String::from)
    .to_vec();
    rows.sort();
    rows
}

#[tokio::test]
async fn one_run_fills_kokus_tables_and_names_first_seen_nodes_by_their_role() {
    let dir = tempfile::tempdir().unwrap();
    write_month(dir.path());
    let (url, client) = koku_database().await;
    succeeds(&mut costagg_run(dir.path(), &url));
    assert_eq!(koku_rows(&client).await, expected_after_first_run());

    // The summary rows reference the period the run created.
    let refs: Vec<(i64, bool)> = client
        .query(
            "SELECT count(*), s.report_period_id = p.id FROM org1234567.reporting_ocpusagelineitem_daily_summary s \
             CROSS JOIN org1234567.reporting_ocpusagereportperiod p GROUP BY 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(refs.len(), 1, "every row references the period: {refs:?}");
    assert!(refs[0].1);

    // Unallocated rows of the same run use the roles just written; n-bare has none: null.
    let unallocated: Vec<(String, Option<String>)> = client
        .query(
            "SELECT node, namespace FROM org1234567.reporting_ocpusagelineitem_daily_summary \
             WHERE usage_start = '2025-10-01' AND (namespace LIKE '% unallocated' OR namespace IS NULL) \
             ORDER BY node",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let platform = Some("Platform unallocated".to_string());
    let worker = Some("Worker unallocated".to_string());
    assert_eq!(
        unallocated,
        vec![
            ("n-api".into(), platform.clone()),
            ("n-bare".into(), None),
            ("n-grow".into(), worker.clone()),
            ("n-infra".into(), platform.clone()),
            ("n-role".into(), platform),
            ("n-worker".into(), worker),
        ]
    );
}

#[tokio::test]
async fn a_rerun_adds_nothing_and_a_later_upload_adds_a_capacity_and_fills_a_handle() {
    let dir = tempfile::tempdir().unwrap();
    write_month(dir.path());
    let (url, client) = koku_database().await;
    succeeds(&mut costagg_run(dir.path(), &url));
    succeeds(&mut costagg_run(dir.path(), &url));
    assert_eq!(koku_rows(&client).await, expected_after_first_run());

    // Day 20: n-grow now reports 8 cores, and pvc-a has its handle.
    write_pods(
        dir.path(),
        "day-20.parquet",
        &[(19 * 24, "monitoring", "n-grow", "i-grow", 8.0, None)],
    );
    write_claims(
        dir.path(),
        "claims-20.parquet",
        &[(19 * 24, "pvc-a", "pv-a", Some("h-a"))],
    );
    succeeds(&mut costagg_run(dir.path(), &url));
    let mut expected = expected_after_first_run();
    expected.retain(|r| r != "pvc pv-a pvc-a -");
    expected.extend([
        "node n-grow i-grow 8.00 worker amd64".to_string(),
        "pvc pv-a pvc-a h-a".to_string(),
    ]);
    expected.sort();
    assert_eq!(koku_rows(&client).await, expected);
}

#[tokio::test]
async fn a_failed_write_changes_none_of_kokus_tables() {
    let dir = tempfile::tempdir().unwrap();
    write_month(dir.path());
    let (url, client) = koku_database().await;
    succeeds(&mut costagg_run(dir.path(), &url));
    let before = koku_rows(&client).await;

    // A new node and namespace, and label JSON that `bad_rows: fail` refuses once every label
    // has been read: after koku's tables were written in the unit's transaction.
    write_pods(
        dir.path(),
        "late.parquet",
        &[(48, "new-ns", "n-new", "i-new", 2.0, None)],
    );
    write_file(
        dir.path(),
        ReportType::PodUsage,
        "bad-labels.parquet",
        pod_columns_with_labels(48, "{not json"),
    );
    let out = costagg_run(dir.path(), &url)
        .env("COSTAGG_INPUT__BAD_ROWS", "fail")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(koku_rows(&client).await, before);
}

/// One pod row of `n-new` at `hour` with `labels` as its pod labels.
fn pod_columns_with_labels(hour: i64, labels: &'static str) -> Vec<(&'static str, ArrayRef)> {
    let mut columns = vec![
        ("interval_start", hours(&[hour])),
        ("namespace", texts(&[Some("new-ns")])),
        ("pod", texts(&[Some("pod-2")])),
        ("node", texts(&[Some("n-new")])),
        ("resource_id", texts(&[Some("i-new")])),
        ("pod_labels", texts(&[Some(labels)])),
    ];
    for q in ReportType::PodUsage.required_quantities() {
        columns.push((q, numbers(1, 1.0)));
    }
    columns
}

#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn a_run_killed_mid_copy_leaves_kokus_tables_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    write_month(dir.path());
    let (url, client) = koku_database().await;
    succeeds(&mut costagg_run(dir.path(), &url));
    let before = koku_rows(&client).await;
    write_late_upload(dir.path());
    let mut child = costagg_run(dir.path(), &url)
        .env("COSTAGG_FAILPOINT_COPY_PAUSE_MS", "60000")
        .spawn()
        .unwrap();
    wait_for_copy(&url).await;
    // Written in the unit's open transaction, so not visible...
    assert_eq!(koku_rows(&client).await, before);
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), None, "killed by a signal");
    // ...and gone with it.
    assert_eq!(koku_rows(&client).await, before);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn a_server_stopped_mid_copy_leaves_kokus_tables_as_they_were_and_the_next_run_succeeds() {
    let cluster = PrivateCluster::start();
    let dir = tempfile::tempdir().unwrap();
    write_month(dir.path());
    let client = koku_schema_in(&cluster.url).await;
    succeeds(&mut costagg_run(dir.path(), &cluster.url));
    let before = (koku_rows(&client).await, dump(&client, SOURCE_A).await);
    drop(client);
    write_late_upload(dir.path());
    let child = costagg_run(dir.path(), &cluster.url)
        .env("COSTAGG_FAILPOINT_COPY_PAUSE_MS", "3000")
        .spawn()
        .unwrap();
    wait_for_copy(&cluster.url).await;
    cluster.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "a retryable database error: {stderr}");

    cluster.restart();
    let client = connect(&cluster.url).await;
    assert_eq!(
        (koku_rows(&client).await, dump(&client, SOURCE_A).await),
        before,
        "the cut COPY changed neither the summary nor the tables around it"
    );
    succeeds(&mut costagg_run(dir.path(), &cluster.url));
    assert!(
        koku_rows(&client).await.contains(&"project new-ns".to_string()),
        "the rerun wrote the late upload's namespace"
    );
}

#[tokio::test]
async fn a_listener_hears_of_a_replaced_unit_and_of_nothing_when_a_write_fails() {
    let dir = tempfile::tempdir().unwrap();
    write_month(dir.path());
    let (url, client) = koku_database().await;
    let mut heard = listen(&url).await;
    succeeds(&mut costagg_run(dir.path(), &url));
    let payload = tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("a notification within 10 s")
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    let period: i32 = client
        .query_one("SELECT id FROM org1234567.reporting_ocpusagereportperiod", &[])
        .await
        .unwrap()
        .get(0);
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(payload["schema"], ORG);
    assert_eq!(payload["source"], SOURCE_A);
    assert_eq!(payload["month"], "2025-10");
    assert_eq!(payload["first_day"], "2025-10-01");
    assert_eq!(payload["last_day"], "2025-10-31");
    assert_eq!(payload["rows"], rows);
    assert_eq!(payload["report_period_id"], period);
    // The outbox holds the same payload.
    let outbox: serde_json::Value = serde_json::from_str(
        &client
            .query_one("SELECT payload::text FROM org1234567.costagg_unit_replaced", &[])
            .await
            .unwrap()
            .get::<_, String>(0),
    )
    .unwrap();
    assert_eq!(outbox, payload);

    // A failing write: no notification, no outbox row.
    write_file(
        dir.path(),
        ReportType::PodUsage,
        "bad-labels.parquet",
        pod_columns_with_labels(48, "{not json"),
    );
    let out = costagg_run(dir.path(), &url)
        .env("COSTAGG_INPUT__BAD_ROWS", "fail")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        tokio::time::timeout(Duration::from_secs(2), heard.recv())
            .await
            .is_err(),
        "nothing is announced for a failed write"
    );
    let outbox_rows: i64 = client
        .query_one("SELECT count(*) FROM org1234567.costagg_unit_replaced", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbox_rows, 1);
}

/// A connection of its own listening on costagg's channel (`LISTEN` issued before this
/// returns), and the payloads of the notifications it receives.
async fn listen(url: &str) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = Arc::new(client);
    let held = client.clone();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_string());
            }
        }
        drop(held);
    });
    client
        .batch_execute("LISTEN costagg_unit_replaced")
        .await
        .unwrap();
    rx
}

#[tokio::test]
async fn an_existing_report_period_is_used_and_none_is_added() {
    let dir = tempfile::tempdir().unwrap();
    write_month(dir.path());
    let (url, client) = koku_database().await;
    let id = insert_report_period(&client, ORG, SOURCE_A, "cluster-1", "Cluster One", "2025-10").await;
    succeeds(&mut costagg_run(dir.path(), &url));
    let periods: Vec<i32> = client
        .query("SELECT id FROM org1234567.reporting_ocpusagereportperiod", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(periods, vec![id]);
    let other: i64 = client
        .query_one(
            "SELECT count(*) FROM org1234567.reporting_ocpusagelineitem_daily_summary \
             WHERE report_period_id IS DISTINCT FROM $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(other, 0, "every row references the existing period");
}
