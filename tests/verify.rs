//! `costagg verify`: the built binary comparing a unit's input with the table, day by day.

use std::path::Path;
use std::process::Output;

use crate::support::*;

/// 1 GiB, in bytes.
const GIB: f64 = 1_073_741_824.0;

/// Two days of October for one node `n1` (the fixture's nodes report 4 cores and no request, so
/// effective CPU = usage), and a row on no node, which the summary's Pod section leaves out.
fn two_days() -> Vec<PodRow> {
    vec![
        // Oct 1: 1 + 2 core-hours, 1 GiB-hour.
        PodRow::new(0, "web", "n1", "{}")
            .cpu_core_seconds(3600.0)
            .memory_byte_seconds(GIB * 3600.0),
        PodRow::new(1, "web", "n1", "{}").cpu_core_seconds(7200.0),
        // Oct 3: 2 core-hours, 2 GiB-hours.
        PodRow::new(48, "db", "n1", "{}")
            .cpu_core_seconds(7200.0)
            .memory_byte_seconds(2.0 * GIB * 3600.0),
        // Oct 3, node '': 10 core-hours in no Pod row, so in no total.
        PodRow::new(49, "db", "", "{}").cpu_core_seconds(36_000.0),
    ]
}

/// The stdout line of `day` and `quantity`, split into its words: day, quantity, input, table,
/// difference, status.
fn line<'a>(stdout: &'a str, day: &str, quantity: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.starts_with(day) && l.split_whitespace().nth(1) == Some(quantity))
        .unwrap_or_else(|| panic!("no line for {day} {quantity} in:\n{stdout}"))
        .split_whitespace()
        .collect()
}

fn verify(source: &str, root: &Path, url: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = costagg_verify_october(source, root, url)
        .args(extra)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    );
    (status.code(), stdout, stderr)
}

#[tokio::test]
async fn a_written_unit_verifies_clean_until_a_row_is_changed_by_hand() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    write_pod_file(dir.path(), SOURCE_A, &two_days());
    run_october(dir.path(), &url, config_with_keys(&[]))
        .await
        .unwrap();

    let report = dir.path().join("verify.json");
    let (code, stdout, stderr) = verify(
        SOURCE_A,
        dir.path(),
        &url,
        &["--report", report.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Oct 1: (3600 + 7200) / 3600 = 3 core-hours, effective the same; 1 GiB-hour.
    assert_eq!(
        line(&stdout, "2025-10-01", "pod_usage_cpu_core_hours"),
        [
            "2025-10-01",
            "pod_usage_cpu_core_hours",
            "3.000",
            "3.000",
            "0.000",
            "ok"
        ]
    );
    assert_eq!(
        line(&stdout, "2025-10-01", "pod_effective_usage_cpu_core_hours")[2..],
        ["3.000", "3.000", "0.000", "ok"]
    );
    assert_eq!(
        line(&stdout, "2025-10-01", "pod_usage_memory_gigabyte_hours")[2..],
        ["1.000", "1.000", "0.000", "ok"]
    );
    // Oct 3: 7200 / 3600 = 2 core-hours (the 10 on node '' counted on neither side); 2 GiB-hours.
    assert_eq!(
        line(&stdout, "2025-10-03", "pod_usage_cpu_core_hours")[2..],
        ["2.000", "2.000", "0.000", "ok"]
    );
    assert_eq!(
        line(&stdout, "2025-10-03", "pod_usage_memory_gigabyte_hours")[2..],
        ["2.000", "2.000", "0.000", "ok"]
    );
    // 2 days × 3 Pod quantities; no storage files, so no Storage rows on either side.
    assert!(
        stdout.ends_with("6 day totals compared: all 6 within 1\n"),
        "{stdout}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        (json["compared"].as_u64(), json["drifted"].as_u64()),
        (Some(6), Some(0))
    );
    assert_eq!(json["days"][0]["quantity"], "pod_usage_cpu_core_hours");

    // One Pod row of Oct 3 (namespace db's; node n1's unallocated row has no namespace) gets 5
    // core-hours more.
    let changed = connect(&url)
        .await
        .execute(
            "UPDATE org1234567.reporting_ocpusagelineitem_daily_summary \
             SET pod_usage_cpu_core_hours = pod_usage_cpu_core_hours + 5 \
             WHERE usage_start = '2025-10-03' AND data_source = 'Pod' AND namespace = 'db'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let (code, stdout, stderr) = verify(SOURCE_A, dir.path(), &url, &[]);
    assert_eq!(code, Some(7), "{stdout}{stderr}");
    // 2 in the input, 2 + 5 = 7 in the table.
    assert_eq!(
        line(&stdout, "2025-10-03", "pod_usage_cpu_core_hours")[2..],
        ["2.000", "7.000", "+5.000", "DRIFT"]
    );
    assert_eq!(
        line(&stdout, "2025-10-03", "pod_effective_usage_cpu_core_hours")[5],
        "ok"
    );
    assert!(stdout.ends_with("6 day totals compared: 5 ok, 1 DRIFT (1 over the tolerance): 2025-10-03 pod_usage_cpu_core_hours +5.000\n"), "{stdout}");
    assert!(
        stderr.contains("1 of 6 day totals") && stderr.contains("2025-10-03 pod_usage_cpu_core_hours +5.000"),
        "{stderr}"
    );

    // A tolerance of 6 takes the 5 in.
    let (code, stdout, _) = verify(SOURCE_A, dir.path(), &url, &["--tolerance", "6"]);
    assert_eq!(code, Some(0), "{stdout}");
}

#[tokio::test]
async fn a_unit_never_written_drifts_on_every_day_with_input() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    write_pod_file(dir.path(), SOURCE_A, &two_days());
    write_pod_file(dir.path(), SOURCE_B, &two_days());

    // No summary table at all yet.
    let (code, stdout, stderr) = verify(SOURCE_B, dir.path(), &url, &[]);
    assert_eq!(code, Some(7), "{stdout}{stderr}");
    assert!(
        stdout.contains("reporting_ocpusagelineitem_daily_summary (it does not exist)"),
        "{stdout}"
    );

    // The table, with SOURCE_A's rows only: every (day, quantity) of B's input, 2 days × 3,
    // drifts, with the table's side empty.
    run_october(dir.path(), &url, config_with_keys(&[]))
        .await
        .unwrap();
    let (code, stdout, stderr) = verify(SOURCE_B, dir.path(), &url, &[]);
    assert_eq!(code, Some(7), "{stdout}{stderr}");
    assert_eq!(
        line(&stdout, "2025-10-01", "pod_usage_cpu_core_hours")[2..],
        ["3.000", "-", "-", "DRIFT", "(not", "in", "the", "table)"]
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("DRIFT (not in the table)"))
            .count(),
        6,
        "{stdout}"
    );
    assert!(
        stdout.contains("6 day totals compared: 0 ok, 6 DRIFT (6 not in the table)"),
        "{stdout}"
    );
    assert!(stderr.contains("6 of 6 day totals"), "{stderr}");
}

#[tokio::test]
async fn a_generated_month_with_storage_and_unallocated_rows_verifies_clean() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), SOURCE_A, "2025-10", 5000, 3);
    // With the nodes' roles, the unallocated rows are Pod rows of `Worker unallocated` and
    // `Platform unallocated`, which have no line items and must be left out of the table's side.
    let mut config = config_with_keys(&["app"]);
    config.reference.node_roles = generated.node_roles.clone();
    run_october(dir.path(), &url, config).await.unwrap();
    let unallocated: i64 = connect(&url)
        .await
        .query_one(
            "SELECT count(*) FROM org1234567.reporting_ocpusagelineitem_daily_summary \
             WHERE namespace IN ('Worker unallocated', 'Platform unallocated')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(unallocated > 0);
    let (code, stdout, stderr) = verify(SOURCE_A, dir.path(), &url, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // 31 days × (3 Pod quantities + the claims' capacity).
    assert!(
        stdout.ends_with("124 day totals compared: all 124 within 1\n"),
        "{stdout}"
    );
}
