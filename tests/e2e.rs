//! End to end: the built binary, as a user runs it.

use std::process::Command;

use crate::harness::*;

fn costagg() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_costagg"));
    c.env_remove("DATABASE_URL")
        .env("COSTAGG_LOG_FORMAT", "text")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[tokio::test]
async fn generate_then_run_writes_the_month_into_postgresql() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let out = costagg()
        .args([
            "generate", "--rows", "5000", "--month", "2025-10", "--org", ORG, "--source", SOURCE_A, "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report_path = dir.path().join("report.json");
    let out = costagg()
        .args([
            "run",
            "--org",
            ORG,
            "--source",
            SOURCE_A,
            "--month",
            "2025-10",
            "--cluster-id",
            "c1",
            "--input",
        ])
        .arg(dir.path())
        .arg("--report")
        .arg(&report_path)
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("run finished"), "{stderr}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let client = connect(&url).await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT usage_start), min(cluster_id) \
             FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), report["rows_written"].as_i64().unwrap());
    assert!(row.get::<_, i64>(0) > 31);
    assert_eq!(row.get::<_, i64>(1), 31);
    assert_eq!(row.get::<_, String>(2), "c1");
}

#[test]
fn a_missing_input_folder_exits_3_and_names_the_path_searched() {
    let dir = tempfile::tempdir().unwrap();
    let out = costagg()
        .args([
            "run", "--org", ORG, "--source", SOURCE_A, "--month", "2025-10", "--input",
        ])
        .arg(dir.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no pod_usage files") && stderr.contains("OCP/pod_usage/source=6f5f1c0e"),
        "{stderr}"
    );
}

#[test]
fn a_bad_month_is_a_usage_error() {
    let out = costagg()
        .args([
            "run", "--org", ORG, "--source", SOURCE_A, "--month", "2025-13", "--input", "/tmp",
        ])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`2025-13` is not a month"));
}
