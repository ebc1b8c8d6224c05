//! The sweep's metrics, in Prometheus' conventions for batch jobs: gauges of what the last
//! sweep did, per (org, source) and in total, with the time of the last success, pushed to a
//! Pushgateway under a group of this worker's own (`job="costagg_sweep"`,
//! `instance="<worker id>"`), so that no worker's push replaces another's, and a worker that
//! keeps its id replaces its own previous push.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use uuid::Uuid;

use super::report::{FleetReport, Outcome};
use crate::config::redact_url;
use crate::error::{Error, Result};

/// The Pushgateway's job label of every sweep's push.
pub const JOB: &str = "costagg_sweep";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    org: String,
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailedLabels {
    org: String,
    source: String,
    exit_code: String,
}

type Gauges<L> = Family<L, Gauge>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The report as Prometheus' text format. `last_success` holds each source's newest successful
/// write (from the claim table); a source none of whose units failed here gets the sweep's end
/// time: its units were all written or found up to date.
pub fn encode(
    report: &FleetReport,
    last_success: &BTreeMap<(String, Uuid), DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    let mut registry = Registry::default();
    let family = |registry: &mut Registry, name: &str, help: &str| {
        let gauges = Gauges::<SourceLabels>::default();
        registry.register(name, help, gauges.clone());
        gauges
    };
    let due = family(
        &mut registry,
        "costagg_sweep_units_due",
        "Units whose input or settings changed since their last write, in the last sweep",
    );
    let written = family(
        &mut registry,
        "costagg_sweep_units_written",
        "Units this worker wrote in the last sweep",
    );
    let up_to_date = family(
        &mut registry,
        "costagg_sweep_units_up_to_date",
        "Units skipped as up to date in the last sweep",
    );
    let rows = family(
        &mut registry,
        "costagg_sweep_rows_written",
        "Summary rows this worker wrote in the last sweep",
    );
    let failed = Gauges::<FailedLabels>::default();
    registry.register(
        "costagg_sweep_units_failed",
        "Units whose run failed in this worker's last sweep, by exit code (costagg --help lists them)",
        failed.clone(),
    );
    let success = Family::<SourceLabels, FloatGauge>::default();
    registry.register(
        "costagg_sweep_last_success_timestamp_seconds",
        "When all of the source's units were last written or found up to date (Unix time)",
        success.clone(),
    );

    let mut failing: BTreeMap<(String, String), bool> = BTreeMap::new();
    for u in &report.units {
        let labels = SourceLabels {
            org: u.org.clone(),
            source: u.source.clone(),
        };
        // Every source seen gets every series, at 0 when nothing happened to it.
        let due_now = !matches!(u.outcome, Outcome::UpToDate);
        due.get_or_create(&labels).inc_by(i64::from(due_now));
        written
            .get_or_create(&labels)
            .inc_by(i64::from(u.outcome == Outcome::Written));
        up_to_date
            .get_or_create(&labels)
            .inc_by(i64::from(u.outcome == Outcome::UpToDate));
        rows.get_or_create(&labels).inc_by(u.rows_written as i64);
        let fails = matches!(
            u.outcome,
            Outcome::Failed | Outcome::FailedElsewhere | Outcome::Interrupted
        );
        *failing.entry((u.org.clone(), u.source.clone())).or_default() |= fails;
        if u.outcome == Outcome::Failed {
            let labels = FailedLabels {
                org: u.org.clone(),
                source: u.source.clone(),
                exit_code: u.exit_code.unwrap_or(1).to_string(),
            };
            failed.get_or_create(&labels).inc();
        }
    }
    for ((org, source), fails) in failing {
        let at = if fails {
            let key = (org.clone(), source.parse().unwrap_or_default());
            match last_success.get(&key) {
                Some(at) => *at,
                None => continue, // never succeeded: no series, and the failure alert fires
            }
        } else {
            now
        };
        let labels = SourceLabels { org, source };
        success
            .get_or_create(&labels)
            .set(at.timestamp_millis() as f64 / 1000.0);
    }

    let total = |registry: &mut Registry, name: &str, help: &str, value: f64| {
        let gauge = FloatGauge::default();
        gauge.set(value);
        registry.register(name, help, gauge);
    };
    total(
        &mut registry,
        "costagg_sweep_duration_seconds",
        "How long the last sweep took",
        report.total_ms as f64 / 1000.0,
    );
    total(
        &mut registry,
        "costagg_sweep_peak_rss_bytes",
        "The last sweep's peak resident memory",
        report.peak_rss_bytes.unwrap_or(0) as f64,
    );
    total(
        &mut registry,
        "costagg_sweep_last_completion_timestamp_seconds",
        "When the last sweep ended, whatever its outcome (Unix time)",
        now.timestamp_millis() as f64 / 1000.0,
    );
    let mut text = String::new();
    // Prometheus' text format: OpenMetrics' without the closing `# EOF`, which a
    // Pushgateway does not expect.
    prometheus_client::encoding::text::encode_registry(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

/// Replaces this worker's group on the Pushgateway at `url` with `text` (an HTTP PUT to
/// `<url>/metrics/job/costagg_sweep/instance/<worker>`).
pub async fn push(url: &str, worker: &str, text: String) -> Result<()> {
    let target = format!(
        "{}/metrics/job/{JOB}/instance/{worker}",
        url.trim_end_matches('/')
    );
    let failed = |problem: String| Error::Store {
        location: redact_url(&target),
        problem: format!("cannot push the sweep's metrics: {problem}"),
    };
    let response = reqwest::Client::new()
        .put(&target)
        .header("Content-Type", "text/plain; version=0.0.4")
        .timeout(Duration::from_secs(10))
        .body(text)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(failed(format!("{status}: {}", body.trim())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::report::UnitOutcome;

    fn unit(
        org: &str,
        source: &str,
        month: &str,
        outcome: Outcome,
        rows: u64,
        code: Option<i32>,
    ) -> UnitOutcome {
        UnitOutcome {
            org: org.into(),
            source: source.into(),
            month: month.into(),
            outcome,
            rows_written: rows,
            ms: 0,
            exit_code: code,
            error: None,
        }
    }

    #[test]
    fn each_source_gets_its_counts_and_a_failing_one_keeps_its_last_success() {
        let (a, b) = (
            "6f5f1c0e-0000-4000-8000-00000000000a",
            "6f5f1c0e-0000-4000-8000-00000000000b",
        );
        let mut report = FleetReport {
            units: vec![
                unit("o1", a, "2025-09", Outcome::UpToDate, 0, None),
                unit("o1", a, "2025-10", Outcome::Written, 120, None),
                unit("o1", b, "2025-09", Outcome::Written, 30, None),
                unit("o1", b, "2025-10", Outcome::Failed, 0, Some(3)),
            ],
            total_ms: 2500,
            ..Default::default()
        };
        report.tally();
        let now = DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        let earlier = DateTime::from_timestamp(1_763_000_000, 0).unwrap();
        let last = BTreeMap::from([(("o1".to_string(), b.parse().unwrap()), earlier)]);
        let text = encode(&report, &last, now);
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        has(&format!("costagg_sweep_units_due{{org=\"o1\",source=\"{a}\"}} 1"));
        has(&format!(
            "costagg_sweep_units_up_to_date{{org=\"o1\",source=\"{a}\"}} 1"
        ));
        has(&format!(
            "costagg_sweep_units_written{{org=\"o1\",source=\"{a}\"}} 1"
        ));
        has(&format!(
            "costagg_sweep_rows_written{{org=\"o1\",source=\"{a}\"}} 120"
        ));
        has(&format!("costagg_sweep_units_due{{org=\"o1\",source=\"{b}\"}} 2"));
        has(&format!(
            "costagg_sweep_units_failed{{org=\"o1\",source=\"{b}\",exit_code=\"3\"}} 1"
        ));
        has(&format!(
            "costagg_sweep_last_success_timestamp_seconds{{org=\"o1\",source=\"{a}\"}} 1764000000.0"
        ));
        has(&format!(
            "costagg_sweep_last_success_timestamp_seconds{{org=\"o1\",source=\"{b}\"}} 1763000000.0"
        ));
        has("costagg_sweep_duration_seconds 2.5");
        assert!(!text.contains("# EOF"));
    }
}
