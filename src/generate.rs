//! Deterministic sample data in koku's Parquet layout: hourly pod usage with node and
//! namespace label files and daily storage roll-ups, shaped like a real cluster and written a
//! half-day at a time.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDateTime;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::config::{DEFAULT_DAILY_TEMPLATE, DEFAULT_HOURLY_TEMPLATE};
use crate::error::{Error, Result};
use crate::input::ReportType;
use crate::input::layout::{UnitKey, render};
use crate::reference::NodeRole;
use crate::unit::Month;
use uuid::Uuid;

/// What to generate: `rows` hourly pod usage rows for one source's month, under `out`.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub rows: u64,
    pub org: String,
    pub source: Uuid,
    pub month: Month,
    pub out: PathBuf,
    pub seed: u64,
}

impl GenerateRequest {
    fn key(&self) -> UnitKey<'_> {
        UnitKey {
            org: &self.org,
            source: self.source,
            month: self.month,
        }
    }
}

#[derive(Debug, Default)]
pub struct GenerateSummary {
    pub pod_rows: u64,
    pub storage_rows: u64,
    pub files: usize,
    /// The nodes' roles, as rows of koku's `reporting_ocp_nodes`.
    pub node_roles: Vec<NodeRole>,
}

/// splitmix64's output function: a well-mixed hash of one number.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64: small, fast and deterministic for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

struct Node {
    name: String,
    role: &'static str,
    resource_id: String,
    cpu_cores: f64,
    memory_bytes: f64,
    labels: String,
}

struct Pod {
    name: String,
    namespace: usize,
    /// `None` for a pod that was never scheduled (koku's empty node).
    node: Option<usize>,
    labels: String,
    /// The labels after a mid-life change (a new `version`), and the hour it happens.
    changed_labels: Option<(u64, String)>,
    end_hour: u64,
    cpu_request: f64,
    memory_request: f64,
    usage_factor: f64,
    /// The persistent volume claim the pod mounts, if any.
    claim: Option<String>,
}

const APPS: &[&str] = &["web", "api", "worker", "db", "cache", "queue", "auth", "search"];
const TEAMS: &[&str] = &["payments", "platform", "data", "mobile", "identity"];
const ENVIRONMENTS: &[&str] = &["prod", "stage", "dev"];
const CPU_REQUESTS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0];
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn pod_usage_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    let mut fields = vec![
        Field::new("report_period_start", ts(), true),
        Field::new("interval_start", ts(), true),
        Field::new("interval_end", ts(), true),
    ];
    // node_role: as newer operators write it (koku's `CPU_MEM_USAGE_NEWV_COLUMNS_AND_TYPES`).
    for name in [
        "namespace",
        "pod",
        "node",
        "resource_id",
        "pod_labels",
        "node_role",
    ] {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    for name in ReportType::PodUsage.required_quantities() {
        fields.push(Field::new(name, DataType::Float64, true));
    }
    Arc::new(Schema::new(fields))
}

fn labels_schema(key: &str) -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(Schema::new(vec![
        Field::new("interval_start", ts, true),
        Field::new(key, DataType::Utf8, true),
        Field::new(format!("{key}_labels"), DataType::Utf8, true),
    ]))
}

fn json_object(pairs: &[(&str, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Writes the sample files for `req`; the same request always gives the same rows.
pub fn generate(req: &GenerateRequest) -> Result<GenerateSummary> {
    let unit = req.key();
    let mut rng = Rng(req.seed ^ 0x05ee_dc05_7a66_u64);
    let days = u64::from(req.month.days());
    let hours = days * 24;
    let per_hour = req.rows / hours;
    let extra_hours = req.rows % hours;
    let peak = per_hour + u64::from(extra_hours > 0);

    let node_count = (peak / 25).clamp(3, 500);
    // Three control-plane nodes and two infra nodes once the cluster is big enough for them;
    // small clusters are one master and workers, so every role shows up in sample data.
    let (masters, infras) = match node_count {
        0..6 => (1, 0),
        6..10 => (3, 0),
        _ => (3, 2),
    };
    let nodes: Vec<Node> = (0..node_count)
        .map(|i| {
            let role = if i < masters {
                "master"
            } else if i < masters + infras {
                "infra"
            } else {
                "worker"
            };
            let cpu_cores = *rng.pick(&[16.0, 32.0, 64.0]);
            Node {
                name: format!("{role}-{i:03}"),
                role,
                resource_id: format!("i-{:016x}", rng.next()),
                cpu_cores,
                memory_bytes: cpu_cores * 4.0 * GIB,
                labels: json_object(&[
                    ("node_role_kubernetes_io", role.to_string()),
                    ("kubernetes_io_arch", "amd64".to_string()),
                    ("topology_kubernetes_io_zone", format!("zone-{}", i % 3)),
                    ("instance_type", format!("m5.{}xlarge", cpu_cores as u64 / 4)),
                ]),
            }
        })
        .collect();
    let namespaces: Vec<(String, String)> = (0..(peak / 10).clamp(3, 300))
        .map(|i| {
            let team = TEAMS[i as usize % TEAMS.len()];
            let name = match i {
                0 => "openshift-monitoring".to_string(),
                1 => "kube-system".to_string(),
                _ => format!("{team}-{}-{i}", ENVIRONMENTS[i as usize % ENVIRONMENTS.len()]),
            };
            let labels = json_object(&[
                ("team", team.to_string()),
                ("cost_center", format!("cc-{}", i % 7)),
            ]);
            (name, labels)
        })
        .collect();

    let mut summary = GenerateSummary {
        node_roles: nodes
            .iter()
            .map(|n| NodeRole {
                node: n.name.clone(),
                resource_id: n.resource_id.clone(),
                node_role: n.role.to_string(),
            })
            .collect(),
        ..Default::default()
    };
    write_node_roles(&req.out, &summary.node_roles)?;
    let mut claims = ClaimHours::default();
    let mut pods: Vec<Pod> = Vec::new();
    let mut next_pod = 0u64;
    let month_start = req.month.first_day().and_hms_opt(0, 0, 0).expect("valid time");
    let root = &req.out;
    let mut label_rows = LabelRows::default();

    for half_day in 0..days * 2 {
        let mut rows = PodRows::default();
        for hour in half_day * 12..half_day * 12 + 12 {
            let target = per_hour + u64::from(hour < extra_hours);
            pods.retain(|p| p.end_hour > hour);
            while pods.len() as u64 > target {
                pods.pop();
            }
            while (pods.len() as u64) < target {
                pods.push(new_pod(
                    &mut rng,
                    &mut next_pod,
                    hour,
                    hours,
                    &nodes,
                    namespaces.len(),
                ));
            }
            let start = month_start + chrono::Duration::hours(hour as i64);
            for pod in &pods {
                rows.push(&mut rng, start, pod, hour, &nodes, &namespaces);
                if let Some(claim) = &pod.claim {
                    *claims
                        .0
                        .entry((pod.namespace, pod.name.clone(), claim.clone()))
                        .or_default() += 1;
                }
            }
            for node in &nodes {
                label_rows.push(start, &node.name, &node.labels);
            }
            for (name, labels) in &namespaces {
                label_rows.push_namespace(start, name, labels);
            }
        }
        let day = half_day / 2 + 1;
        let part = half_day % 2;
        summary.pod_rows += rows.len() as u64;
        let name = format!("{}_pod_usage_{day:02}_{part}.parquet", unit.source);
        write(
            root,
            unit,
            DEFAULT_HOURLY_TEMPLATE,
            ReportType::PodUsage,
            &name,
            rows.into_batch(pod_usage_schema())?,
        )?;
        summary.files += 1;
        if part == 1 {
            let (node_batch, ns_batch) = std::mem::take(&mut label_rows).into_batches()?;
            write(
                root,
                unit,
                DEFAULT_HOURLY_TEMPLATE,
                ReportType::NodeLabels,
                &format!("{}_node_labels_{day:02}.parquet", unit.source),
                node_batch,
            )?;
            write(
                root,
                unit,
                DEFAULT_HOURLY_TEMPLATE,
                ReportType::NamespaceLabels,
                &format!("{}_namespace_labels_{day:02}.parquet", unit.source),
                ns_batch,
            )?;
            summary.files += 2;
            let day_start = month_start + chrono::Duration::days(day as i64 - 1);
            let storage = std::mem::take(&mut claims).into_batch(day_start, &namespaces)?;
            summary.storage_rows += storage.num_rows() as u64;
            write(
                root,
                unit,
                DEFAULT_DAILY_TEMPLATE,
                ReportType::StorageUsage,
                &format!("{}_storage_usage_{day:02}.parquet", unit.source),
                storage,
            )?;
            summary.files += 1;
        }
    }
    Ok(summary)
}

fn new_pod(
    rng: &mut Rng,
    next_pod: &mut u64,
    hour: u64,
    hours: u64,
    nodes: &[Node],
    namespaces: usize,
) -> Pod {
    *next_pod += 1;
    let app = *rng.pick(APPS);
    let namespace = rng.below(namespaces as u64) as usize;
    // A few pods are never scheduled: koku's line items carry them with an empty node.
    let node = (rng.below(100) != 0).then(|| rng.below(nodes.len() as u64) as usize);
    // Two in five pods live the whole month; the others live from an hour to a few days.
    let end_hour = if rng.below(5) < 2 {
        hours
    } else {
        (hour + 1 + rng.below(96)).min(hours)
    };
    let version = format!("v{}", 1 + rng.below(4));
    let mut pairs = vec![
        ("app", app.to_string()),
        ("pod_template_hash", format!("{:08x}", rng.next() as u32)),
        (
            "environment",
            ENVIRONMENTS[namespace % ENVIRONMENTS.len()].to_string(),
        ),
    ];
    let optional = [
        ("version", version.clone()),
        ("tier", "backend".to_string()),
        ("release", format!("r{}", rng.below(9))),
        ("owner", (*rng.pick(TEAMS)).to_string()),
        ("component", format!("{app}-core")),
    ];
    let extra = rng.below(6) as usize;
    pairs.extend(optional.iter().take(extra).cloned());
    if rng.below(50) == 0 {
        pairs.push(("vm_kubevirt_io_name", format!("vm-{}", *next_pod)));
    }
    let labels = json_object(&pairs);
    // One pod in seven is relabelled mid-life (a rollout changing `version`).
    let changed_labels = (rng.below(7) == 0 && end_hour > hour + 1).then(|| {
        let at = hour + 1 + rng.below(end_hour - hour - 1);
        let mut changed = pairs.clone();
        changed.retain(|(k, _)| *k != "version");
        changed.push(("version", format!("v{}", 5 + rng.below(4))));
        (at, json_object(&changed))
    });
    // One pod in ten mounts a claim of its own, one in twenty-five the namespace's shared
    // (ReadWriteMany) claim; drawn from a hash of the pod's number so the other draws stay put.
    let claim = match mix(*next_pod ^ 0xc1a1_u64) % 100 {
        0..10 => Some(format!("data-{app}-{:x}", *next_pod)),
        10..14 => Some(format!("shared-{namespace}")),
        _ => None,
    };
    Pod {
        claim,
        name: format!("{app}-{:x}-{}", *next_pod, rng.below(100_000)),
        namespace,
        node,
        labels,
        changed_labels,
        end_hour,
        cpu_request: *rng.pick(CPU_REQUESTS),
        memory_request: (1 + rng.below(16)) as f64 * 256.0 * 1024.0 * 1024.0,
        usage_factor: 0.05 + rng.unit() * 1.2,
    }
}

#[derive(Default)]
struct PodRows {
    interval_start: Vec<i64>,
    namespace: Vec<String>,
    pod: Vec<String>,
    node: Vec<String>,
    resource_id: Vec<String>,
    pod_labels: Vec<String>,
    node_role: Vec<Option<&'static str>>,
    quantities: Vec<Vec<f64>>,
}

impl PodRows {
    fn len(&self) -> usize {
        self.interval_start.len()
    }

    fn push(
        &mut self,
        rng: &mut Rng,
        start: NaiveDateTime,
        pod: &Pod,
        hour: u64,
        nodes: &[Node],
        namespaces: &[(String, String)],
    ) {
        if self.quantities.is_empty() {
            self.quantities = vec![Vec::new(); ReportType::PodUsage.required_quantities().count()];
        }
        self.interval_start.push(start.and_utc().timestamp_millis());
        self.namespace.push(namespaces[pod.namespace].0.clone());
        self.pod.push(pod.name.clone());
        let labels = match &pod.changed_labels {
            Some((at, changed)) if hour >= *at => changed,
            _ => &pod.labels,
        };
        self.pod_labels.push(labels.clone());
        let jitter = 0.7 + 0.6 * rng.unit();
        let cpu_usage = pod.cpu_request * pod.usage_factor * jitter;
        let memory_usage = pod.memory_request * (0.3 + 0.8 * pod.usage_factor * jitter).min(1.5);
        let (node_name, resource_id, cores, memory) = match pod.node {
            Some(n) => {
                let node = &nodes[n];
                (
                    node.name.as_str(),
                    node.resource_id.as_str(),
                    node.cpu_cores,
                    node.memory_bytes,
                )
            }
            None => ("", "", 0.0, 0.0),
        };
        self.node.push(node_name.to_string());
        self.resource_id.push(resource_id.to_string());
        self.node_role.push(pod.node.map(|n| nodes[n].role));
        let limit_cpu = if pod.cpu_request >= 1.0 {
            pod.cpu_request * 2.0
        } else {
            0.0
        };
        // In the order of ReportType::PodUsage.required_quantities().
        let values = [
            cpu_usage * 3600.0,
            pod.cpu_request * 3600.0,
            limit_cpu * 3600.0,
            memory_usage * 3600.0,
            pod.memory_request * 3600.0,
            pod.memory_request * 2.0 * 3600.0,
            cores,
            cores * 3600.0,
            memory,
            memory * 3600.0,
        ];
        for (column, v) in self.quantities.iter_mut().zip(values) {
            column.push(v);
        }
    }

    fn into_batch(self, schema: SchemaRef) -> Result<RecordBatch> {
        let ts = |v: Vec<i64>| Arc::new(TimestampMillisecondArray::from(v)) as ArrayRef;
        let period_start = vec![*self.interval_start.first().unwrap_or(&0); self.len()];
        let interval_end: Vec<i64> = self.interval_start.iter().map(|t| t + 3_599_000).collect();
        let mut columns = vec![ts(period_start), ts(self.interval_start), ts(interval_end)];
        for strings in [
            self.namespace,
            self.pod,
            self.node,
            self.resource_id,
            self.pod_labels,
        ] {
            columns.push(Arc::new(StringArray::from(strings)));
        }
        columns.push(Arc::new(StringArray::from(self.node_role)));
        // A half-day without rows (a month of fewer rows than hours) has no quantity columns
        // yet: empty ones.
        let mut quantities = self.quantities;
        quantities.resize(schema.fields().len() - columns.len(), Vec::new());
        for q in quantities {
            columns.push(Arc::new(Float64Array::from(q)));
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// Hours each (namespace, pod, claim) was mounted in one day.
#[derive(Default)]
struct ClaimHours(BTreeMap<(usize, String, String), u64>);

impl ClaimHours {
    /// One daily roll-up row per mounted (pod, claim), plus one claim per fifth namespace that
    /// no pod mounts (koku's empty pod), for the day starting at `day_start`.
    fn into_batch(self, day_start: NaiveDateTime, namespaces: &[(String, String)]) -> Result<RecordBatch> {
        let unmounted = namespaces
            .iter()
            .enumerate()
            .step_by(5)
            .map(|(i, _)| ((i, String::new(), format!("archive-{i}")), 24));
        let rows: Vec<_> = self.0.into_iter().chain(unmounted).collect();
        let start_ms = day_start.and_utc().timestamp_millis();
        let mut strings: [Vec<String>; 8] = Default::default();
        let mut quantities: [Vec<f64>; 4] = Default::default();
        for ((ns, pod, claim), hours) in &rows {
            let h = mix(claim
                .bytes()
                .fold(*ns as u64, |a, b| a.wrapping_mul(31) ^ u64::from(b)));
            let shared = claim.starts_with("shared-");
            let capacity_bytes = (1 + h % 50) as f64 * GIB;
            let seconds = *hours as f64 * 3600.0;
            let used = 0.1 + (h >> 8) as f64 % 80.0 / 100.0;
            let namespace = &namespaces[*ns].0;
            let team = TEAMS[*ns % TEAMS.len()];
            let app = match claim.strip_prefix("data-") {
                Some(rest) => rest.split('-').next(),
                None => claim.split('-').next(),
            }
            .unwrap_or_default();
            for (column, value) in strings.iter_mut().zip([
                namespace.clone(),
                pod.clone(),
                claim.clone(),
                format!("pvc-{h:016x}"),
                if shared {
                    "ocs-storagecluster-cephfs"
                } else {
                    "gp3-csi"
                }
                .to_string(),
                format!("vol-{:012x}", h >> 16),
                json_object(&[("storage_tier", if shared { "shared" } else { "block" }.into())]),
                json_object(&[("app", app.to_string()), ("team", team.to_string())]),
            ]) {
                column.push(value);
            }
            for (column, value) in quantities.iter_mut().zip([
                capacity_bytes,
                capacity_bytes * seconds,
                capacity_bytes * seconds,
                capacity_bytes * used * seconds,
            ]) {
                column.push(value);
            }
        }
        let [namespace, pod, pvc, pv, storageclass, csi, pv_labels, pvc_labels] = strings;
        let text = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from(vec![start_ms; rows.len()])),
            text(namespace),
            text(pod),
            text(pvc),
            text(pv),
            text(storageclass),
            text(csi),
        ];
        columns.extend(
            quantities
                .into_iter()
                .map(|q| Arc::new(Float64Array::from(q)) as ArrayRef),
        );
        columns.extend([text(pv_labels), text(pvc_labels)]);
        Ok(RecordBatch::try_new(
            ReportType::StorageUsage.table_schema(),
            columns,
        )?)
    }
}

#[derive(Default)]
struct LabelRows {
    node: (Vec<i64>, Vec<String>, Vec<String>),
    namespace: (Vec<i64>, Vec<String>, Vec<String>),
}

impl LabelRows {
    fn push(&mut self, start: NaiveDateTime, node: &str, labels: &str) {
        self.node.0.push(start.and_utc().timestamp_millis());
        self.node.1.push(node.to_string());
        self.node.2.push(labels.to_string());
    }
    fn push_namespace(&mut self, start: NaiveDateTime, namespace: &str, labels: &str) {
        self.namespace.0.push(start.and_utc().timestamp_millis());
        self.namespace.1.push(namespace.to_string());
        self.namespace.2.push(labels.to_string());
    }
    fn into_batches(self) -> Result<(RecordBatch, RecordBatch)> {
        let batch = |key: &str, (t, k, l): (Vec<i64>, Vec<String>, Vec<String>)| -> Result<RecordBatch> {
            Ok(RecordBatch::try_new(
                labels_schema(key),
                vec![
                    Arc::new(TimestampMillisecondArray::from(t)),
                    Arc::new(StringArray::from(k)),
                    Arc::new(StringArray::from(l)),
                ],
            )?)
        };
        Ok((batch("node", self.node)?, batch("namespace", self.namespace)?))
    }
}

/// Where `generate` leaves the nodes' roles: koku's `reporting_ocp_nodes` as CSV, to load into
/// the schema (`scripts/demo` does) or copy into `reference.node_roles`.
pub const NODE_ROLES_CSV: &str = "reference/reporting_ocp_nodes.csv";

fn write_node_roles(root: &Path, roles: &[NodeRole]) -> Result<()> {
    let path = root.join(NODE_ROLES_CSV);
    let io = |source| Error::LocalIo {
        what: "cannot write sample data".into(),
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path.parent().expect("a file in a folder")).map_err(io)?;
    let mut csv = String::from("node,resource_id,node_role\n");
    for r in roles {
        csv.push_str(&format!("{},{},{}\n", r.node, r.resource_id, r.node_role));
    }
    std::fs::write(&path, csv).map_err(io)
}

fn write(
    root: &Path,
    unit: UnitKey<'_>,
    template: &str,
    report: ReportType,
    name: &str,
    batch: RecordBatch,
) -> Result<()> {
    let dir = root.join(render(template, unit, report));
    std::fs::create_dir_all(&dir).map_err(|source| Error::LocalIo {
        what: "cannot write sample data".into(),
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(name);
    let file = File::create(&path).map_err(|source| Error::LocalIo {
        what: "cannot write sample data".into(),
        path: path.clone(),
        source,
    })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let failed = |e: parquet::errors::ParquetError| Error::LocalIo {
        what: "cannot write sample data".into(),
        path: path.clone(),
        source: std::io::Error::other(e),
    };
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(failed)?;
    writer.write(&batch).map_err(failed)?;
    writer.close().map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fewer rows than the month has hours leave some half-days without pod rows; their files
    /// are written empty, not refused.
    #[test]
    fn a_month_of_fewer_rows_than_hours_is_generated() {
        let out = tempfile::tempdir().unwrap();
        let request = GenerateRequest {
            rows: 500,
            org: "org1".into(),
            source: "6f5f1c0e-0000-4000-8000-000000000001".parse().unwrap(),
            month: Month::new(2025, 10).unwrap(),
            out: out.path().to_path_buf(),
            seed: 1,
        };
        let summary = generate(&request).unwrap();
        assert_eq!(summary.pod_rows, 500);
        assert_eq!(summary.files, 31 * 5);
    }
}
