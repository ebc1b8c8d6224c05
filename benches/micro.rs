//! Micro benchmarks of the hot pieces outside DataFusion: label filtering and merging (once per
//! distinct label string) and the binary COPY encoding of summary batches.
//! `cargo bench --bench micro`; figures and what they taught are in benches/README.md.

use std::sync::Arc;

use bytes::BytesMut;
use costagg::reference::EnabledKeys;
use costagg::sink::copy::{self, OutputColumn, Source, Wire};
use costagg::sink::ddl;
use costagg::summary::labels;
use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

fn main() {
    divan::main();
}

/// A pod's labels as the generator (and the operator) writes them: six keys, one pod-specific.
fn pod_labels(i: usize) -> String {
    format!(
        r#"{{"app":"web","environment":"stage","pod_template_hash":"{:08x}","release":"r5","tier":"backend","version":"v3"}}"#,
        i.wrapping_mul(2_654_435_761)
    )
}

fn enabled() -> EnabledKeys {
    EnabledKeys::from_enabled(["app", "environment", "version", "team", "cost_center"].map(String::from))
}

/// 1,024 distinct pod label strings and the enabled keys.
fn distinct_labels() -> (EnabledKeys, Vec<String>) {
    (enabled(), (0..1024).map(pod_labels).collect())
}

/// The Pod section's label work per distinct raw string: keep the enabled keys.
#[divan::bench]
fn filter_pod_labels(bencher: divan::Bencher) {
    let (keys, texts) = distinct_labels();
    bencher
        .counter(divan::counter::ItemsCount::new(texts.len()))
        .bench(|| {
            for t in &texts {
                divan::black_box(labels::filter_text(t, &keys).unwrap());
            }
        });
}

/// The same through a full parse into a map, as costagg did before `filter_text`.
#[divan::bench]
fn filter_pod_labels_via_full_parse(bencher: divan::Bencher) {
    let (keys, texts) = distinct_labels();
    bencher
        .counter(divan::counter::ItemsCount::new(texts.len()))
        .bench(|| {
            for t in &texts {
                let parsed = labels::parse(t).unwrap();
                divan::black_box(labels::to_json(&labels::filter(parsed, &keys)));
            }
        });
}

/// koku's map_concat of node, namespace and filtered pod labels, per distinct triple.
#[divan::bench]
fn merge_node_namespace_pod_labels(bencher: divan::Bencher) {
    let node =
        labels::parse(r#"{"instance_type":"m5.4xlarge","topology_kubernetes_io_zone":"zone-0"}"#).unwrap();
    let namespace = labels::parse(r#"{"cost_center":"cc-0","team":"payments"}"#).unwrap();
    let pod = labels::parse(r#"{"app":"web","environment":"stage","version":"v3"}"#).unwrap();
    bencher.bench(|| labels::to_json(&labels::merge([&node, &namespace, &pod])));
}

/// One 8192-row batch of Pod rows into binary COPY: the numeric columns, labels twice as
/// jsonb, text keys, a date and a new uuid per row.
#[divan::bench]
fn copy_encode_batch(bencher: divan::Bencher) {
    let rows = 8192;
    // The Pod rows' quantities: the table's numeric columns that are not the Storage ones.
    let numeric: Vec<&'static str> = ddl::COLUMNS
        .iter()
        .filter(|(name, _, wire)| *wire == Wire::Numeric && !name.contains("volume"))
        .map(|(name, _, _)| *name)
        .collect();
    let text = ["namespace", "node", "pod_labels", "all_labels"];
    let mut fields = vec![Field::new("usage_start", DataType::Date32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(vec![20_362; rows]))];
    for name in &numeric {
        fields.push(Field::new(*name, DataType::Float64, true));
        arrays.push(Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| i as f64 * 1.234_567_891_234 + 0.1),
        )));
    }
    for name in text {
        fields.push(Field::new(name, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from_iter_values((0..rows).map(|i| match name {
            "namespace" => format!("payments-stage-{}", i % 300),
            "node" => format!("worker-{:03}", i % 500),
            _ => r#"{"app":"web","cost_center":"cc-1","environment":"stage","team":"mobile","version":"v3"}"#.to_string(),
        }))));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
    let mut columns = vec![
        column("uuid", Wire::Uuid, Source::NewUuid),
        column("usage_start", Wire::Date, Source::Batch("usage_start".into())),
    ];
    columns.extend(text.iter().map(|n| {
        column(
            n,
            if n.ends_with("labels") {
                Wire::Jsonb
            } else {
                Wire::Text
            },
            Source::Batch(n.to_string()),
        )
    }));
    columns.extend(
        numeric
            .iter()
            .map(|n| column(n, Wire::Numeric, Source::Batch(n.to_string()))),
    );
    bencher.counter(divan::counter::ItemsCount::new(rows)).bench(|| {
        let mut buf = BytesMut::with_capacity(8 << 20);
        copy::encode_batch(&columns, &batch, &mut buf).unwrap();
        buf
    });
}

fn column(name: &'static str, wire: Wire, source: Source) -> OutputColumn {
    OutputColumn { name, wire, source }
}
