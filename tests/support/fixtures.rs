//! The units the tests run and the input they read: the org and sources, units of work and
//! requests, generated months, and hand-made pod usage files.

use std::path::Path;
use std::sync::Arc;

use costagg::RunRequest;
use costagg::config::{Config, ProfileSpec};
use costagg::generate::GenerateSummary;
use costagg::unit::{ClusterOverrides, Month, SchemaName, UnitOfWork};
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

pub const ORG: &str = "org1234567";
pub const SOURCE_A: &str = "6f5f1c0e-0000-4000-8000-00000000000a";
pub const SOURCE_B: &str = "6f5f1c0e-0000-4000-8000-00000000000b";

/// A unit of the whole month for `source` and `month` (YYYY-MM).
pub fn unit(source: &str, month: &str) -> UnitOfWork {
    let month = Month::parse(month, "month").unwrap();
    let schema = SchemaName::parse(ORG).unwrap();
    UnitOfWork::whole_month(ORG, source.parse().unwrap(), month, schema).with_overrides(ClusterOverrides {
        cluster_id: Some("cluster-1".into()),
        cluster_alias: Some("Cluster One".into()),
        report_period_id: Some(7),
    })
}

/// The folder of `report`'s files for `unit` in koku's default layout under `root`.
pub fn folder(root: &Path, unit: &UnitOfWork, report: costagg::input::ReportType) -> std::path::PathBuf {
    root.join(costagg::input::layout::render(
        costagg::config::DEFAULT_HOURLY_TEMPLATE,
        costagg::input::layout::UnitKey::of(unit),
        report,
    ))
}

pub fn request(unit: UnitOfWork, root: &Path, url: &str, config: Config) -> RunRequest {
    RunRequest {
        unit,
        input: costagg::input::store::InputStore::open(root.to_str().unwrap(), &Default::default()).unwrap(),
        profile: ProfileSpec::builtin()["small"].resolve("small", &std::env::temp_dir()),
        config,
        mode: costagg::Mode::Write {
            database_url: url.to_string(),
        },
    }
}

/// Runs the whole of October 2025 for `SOURCE_A`, the unit most tests use.
pub async fn run_october(
    root: &Path,
    url: &str,
    config: Config,
) -> costagg::error::Result<costagg::report::RunReport> {
    run_unit(&request(unit(SOURCE_A, "2025-10"), root, url, config)).await
}

/// Runs a request to the end and returns its report.
pub async fn run_unit(req: &RunRequest) -> costagg::error::Result<costagg::report::RunReport> {
    match costagg::run(req, &Default::default(), std::future::pending()).await? {
        costagg::RunOutput::Written(report) | costagg::RunOutput::Previewed(report, _) => Ok(report),
        costagg::RunOutput::Explained(_) => panic!("a run that writes returns its report"),
    }
}

/// A config enabling the generator's label keys.
pub fn config_with_keys(keys: &[&str]) -> Config {
    let mut c = Config {
        profile: "small".into(),
        ..Default::default()
    };
    c.reference.enabled_tag_keys = keys.iter().map(|k| k.to_string()).collect();
    c
}

/// Writes `rows` generated rows for a unit under `root`.
pub fn generate(root: &Path, source: &str, month: &str, rows: u64, seed: u64) -> GenerateSummary {
    let request = costagg::generate::GenerateRequest {
        rows,
        org: ORG.into(),
        source: source.parse().unwrap(),
        month: Month::parse(month, "month").unwrap(),
        out: root.to_path_buf(),
        seed,
    };
    costagg::generate::generate(&request).unwrap()
}

/// One row of a hand-made pod usage file: a pod of `namespace` on `node` in one hour of
/// October 2025. The node reports 4 cores; every other quantity is 0.
#[derive(Clone, Copy, Debug)]
pub struct PodRow {
    /// Hours since 2025-10-01 00:00 UTC (negative: September).
    pub hour: i64,
    pub namespace: &'static str,
    pub node: &'static str,
    /// The pod's labels as koku's JSON text (not checked: a test may give malformed JSON).
    pub labels: &'static str,
    pub cpu_core_seconds: f64,
    pub memory_byte_seconds: f64,
}

impl PodRow {
    /// A row of no usage; add it with [`PodRow::cpu_core_seconds`] and
    /// [`PodRow::memory_byte_seconds`].
    pub fn new(hour: i64, namespace: &'static str, node: &'static str, labels: &'static str) -> PodRow {
        PodRow {
            hour,
            namespace,
            node,
            labels,
            cpu_core_seconds: 0.0,
            memory_byte_seconds: 0.0,
        }
    }

    pub fn cpu_core_seconds(self, cpu_core_seconds: f64) -> PodRow {
        PodRow {
            cpu_core_seconds,
            ..self
        }
    }

    pub fn memory_byte_seconds(self, memory_byte_seconds: f64) -> PodRow {
        PodRow {
            memory_byte_seconds,
            ..self
        }
    }
}

/// Writes a hand-made pod usage file (`hand.parquet`) for `source`'s October 2025 under `root`.
pub fn write_pod_file(root: &Path, source: &str, rows: &[PodRow]) {
    write_pod_file_as(root, source, "hand.parquet", rows);
}

/// [`write_pod_file`] under another file name, to put several files in the month's folder.
pub fn write_pod_file_as(root: &Path, source: &str, name: &str, rows: &[PodRow]) {
    let dir = folder(
        root,
        &unit(source, "2025-10"),
        costagg::input::ReportType::PodUsage,
    );
    std::fs::create_dir_all(&dir).unwrap();
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let num = |name: &str| Field::new(name, DataType::Float64, true);
    let mut fields = vec![
        Field::new(
            "interval_start",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        text("namespace"),
        text("pod"),
        text("node"),
        text("resource_id"),
        text("pod_labels"),
    ];
    fields.extend(
        costagg::input::ReportType::PodUsage
            .required_quantities()
            .map(num),
    );
    let schema = Arc::new(Schema::new(fields));
    const OCT_1_MS: i64 = 1_759_276_800_000;
    let s = |f: fn(&PodRow) -> &'static str| {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| OCT_1_MS + r.hour * 3_600_000),
        )),
        s(|r| r.namespace),
        s(|_| "pod-1"),
        s(|r| r.node),
        s(|_| "i-1"),
        s(|r| r.labels),
    ];
    for q in costagg::input::ReportType::PodUsage.required_quantities() {
        let values = rows.iter().map(|r| match q {
            "pod_usage_cpu_core_seconds" => r.cpu_core_seconds,
            "pod_usage_memory_byte_seconds" => r.memory_byte_seconds,
            "node_capacity_cpu_cores" => 4.0,
            "node_capacity_cpu_core_seconds" => 4.0 * 3600.0,
            _ => 0.0,
        });
        columns.push(Arc::new(Float64Array::from_iter_values(values)));
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let file = std::fs::File::create(dir.join(name)).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}
