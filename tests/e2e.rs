//! End to end: the built binary, as a user runs it.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The built binary (see `support::costagg`), logging as text.
fn costagg_text() -> Command {
    let mut c = costagg();
    c.env("COSTAGG_LOG_FORMAT", "text");
    c
}

/// `costagg run` of `SOURCE_A`'s October 2025 from `input`, logging as text.
fn run_from(input: &Path) -> Command {
    let mut c = costagg_run_october(SOURCE_A, input);
    c.env("COSTAGG_LOG_FORMAT", "text");
    c
}

#[tokio::test]
async fn generate_then_run_writes_the_month_into_postgresql() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let out = costagg_text()
        .args([
            "generate", "--rows", "5000", "--month", "2025-10", "--org", ORG, "--source", SOURCE_A, "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report_path = dir.path().join("report.json");
    let out = run_from(dir.path())
        .args(["--cluster-id", "c1"])
        .arg("--report")
        .arg(&report_path)
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("run report"), "{stderr}");
    assert!(stderr.contains("pod_usage: 5000 rows in 62 files"), "{stderr}");

    // The report's numbers are the rows in PostgreSQL, counted there.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let client = connect(&url).await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT usage_start), min(cluster_id), \
             count(*) FILTER (WHERE data_source = 'Pod' AND pod_labels IS NOT NULL), \
             count(*) FILTER (WHERE data_source = 'Storage'), \
             count(*) FILTER (WHERE data_source = 'Pod' AND pod_labels IS NULL) \
             FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap();
    let number = |key: &str| report[key].as_i64().unwrap();
    assert_eq!(row.get::<_, i64>(0), number("rows_written"));
    assert!(row.get::<_, i64>(0) > 31);
    assert_eq!(row.get::<_, i64>(1), 31);
    assert_eq!(number("days"), 31);
    assert_eq!(row.get::<_, String>(2), "c1");
    assert_eq!(row.get::<_, i64>(3), number("pod_rows"));
    assert_eq!(row.get::<_, i64>(4), number("storage_rows"));
    assert_eq!(row.get::<_, i64>(5), number("unallocated_rows"));
    assert_eq!(report["input"]["pod_usage"]["rows"].as_i64(), Some(5000));
    assert!(number("peak_rss_bytes") > 0);
}

/// Generated sample data for `SOURCE_A`, October 2025, in a new folder.
fn sample(rows: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = costagg_text()
        .args([
            "generate", "--rows", rows, "--month", "2025-10", "--org", ORG, "--source", SOURCE_A, "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

#[tokio::test]
async fn a_dry_run_prints_a_preview_and_leaves_the_database_untouched() {
    let url = fresh_database().await;
    let dir = sample("3000");
    let out = run_from(dir.path()).env("DATABASE_URL", &url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client = connect(&url).await;
    let before = dump(&client, SOURCE_A).await;

    // With more keys enabled, a write would change every labelled row.
    let out = run_from(dir.path())
        .args(["--dry-run", "--preview-rows", "5"])
        .env("DATABASE_URL", &url)
        .env("COSTAGG_REFERENCE__ENABLED_TAG_KEYS", "[app, version, tier]")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(dump(&client, SOURCE_A).await, before, "a dry run writes nothing");
    assert!(stdout.starts_with("day "), "{stdout}");
    assert!(stdout.contains("more (day, namespace) rows"), "{stdout}");
    assert!(stdout.lines().last().unwrap().starts_with("total"), "{stdout}");
    assert!(stderr.contains("summarised (dry run)"), "{stderr}");
    // The preview's total row count is what a write would have written.
    let total: u64 = stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total as usize, before.len());
}

#[test]
fn json_log_lines_parse_as_json_and_the_last_one_is_the_report() {
    let dir = sample("2000");
    // A dry run without a database: reference data from the config.
    let out = run_from(dir.path())
        .arg("--dry-run")
        .env("COSTAGG_LOG_FORMAT", "json")
        // Any resident memory passes a millionth of the limit: the watch must warn.
        .env("COSTAGG_MONITOR__MEMORY_WARN_SHARE", "0.000001")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["message"], "run report");
    assert_eq!(last["dry_run"], true);
    let report: serde_json::Value = serde_json::from_str(last["report"].as_str().unwrap()).unwrap();
    assert_eq!(report["rows_written"], last["rows_written"]);
    assert!(events.iter().any(|e| e["message"] == "run started"));
    // The scan stage closes with what it read: 62 + 31 + 31 + 31 files.
    let scan = events
        .iter()
        .find(|e| e["message"] == "close" && e["span"]["name"] == "scan")
        .expect("the scan span closes");
    assert_eq!(scan["span"]["files"], 155);
    assert!(scan["span"]["rows"].as_u64().unwrap() > 2000);
    let memory = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("resident memory passed")
        })
        .expect("the memory watch warns");
    assert_eq!(memory["level"], "WARN");
    assert!(memory["rss_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn check_passes_on_a_good_setup_and_lists_the_units_with_the_password_masked() {
    let url = fresh_database().await;
    let dir = sample("1000");
    let mut with_password = url::Url::parse(&url).unwrap();
    with_password.set_password(Some("hunter2-secret")).unwrap();
    let out = costagg_text()
        .args(["check", "--schema", ORG, "--input"])
        .arg(dir.path())
        .env("DATABASE_URL", with_password.as_str())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "config    ok",
        "profile   ok",
        "database  ok",
        "input     ok",
        "1 units",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert!(
        stdout.contains(&format!("{ORG}  {SOURCE_A}  2025-10  62")),
        "{stdout}"
    );
    assert!(
        stdout.contains("****") && !stdout.contains("hunter2-secret"),
        "{stdout}"
    );
}

#[test]
fn check_fails_with_the_code_and_reason_of_what_is_wrong() {
    let dir = sample("1000");
    let bad_config = dir.path().join("bad.yaml");
    std::fs::write(&bad_config, "database:\n  lock_timeout: 5\n").unwrap();
    let check = |extra: &[&str], url: &str| {
        let out = costagg_text()
            .arg("check")
            .args(extra)
            .arg("--input")
            .arg(dir.path())
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    // An unknown key: config error, named.
    let (code, stdout) = check(
        &["--config", bad_config.to_str().unwrap()],
        "postgres://x@127.0.0.1:1/x",
    );
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stdout.contains("config    FAIL") && stdout.contains("lock_timeout"),
        "{stdout}"
    );
    // Nothing listens on port 1: the database is unavailable.
    let (code, stdout) = check(&[], "postgres://x:pw-secret@127.0.0.1:1/x");
    assert_eq!(code, Some(4), "{stdout}");
    assert!(
        stdout.contains("database  FAIL") && !stdout.contains("pw-secret"),
        "{stdout}"
    );
    // A missing input folder.
    let out = costagg_text()
        .args(["check", "--input", "/nonexistent/costagg"])
        .env("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("input     FAIL") && stdout.contains("/nonexistent/costagg"),
        "{stdout}"
    );
}

#[test]
fn explain_prints_the_plans_without_running() {
    let dir = sample("1000");
    let out = run_from(dir.path()).arg("--explain").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("-- Pod section") && stdout.contains("-- Storage section"),
        "{stdout}"
    );
    assert!(stdout.contains("physical_plan"), "{stdout}");

    // --explain=analyze runs the sections and shows each operator's metrics: the pod usage scan
    // reads all 1000 rows (DataFusion prints them as `1.00 K`).
    let out = run_from(dir.path()).arg("--explain=analyze").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Plan with Metrics"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("pod_usage") && l.contains("output_rows=1.00 K,")),
        "{stdout}"
    );
}

#[test]
fn a_missing_input_folder_exits_3_and_names_the_path_searched() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_from(dir.path())
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
    let out = costagg_text()
        .args([
            "run", "--org", ORG, "--source", SOURCE_A, "--month", "2025-13", "--input", "/tmp",
        ])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`2025-13` is not a month"));
}

/// The unit is committed before the report is written; a report that cannot be written must
/// not make the CronJob redo the unit, so its code (6) is one `podFailurePolicy` stops on.
#[tokio::test]
async fn a_report_that_cannot_be_written_after_the_commit_exits_6_and_keeps_the_rows() {
    let url = fresh_database().await;
    let dir = sample("2000");
    let out = run_from(dir.path())
        .args(["--report", "/nonexistent-costagg-folder/report.json"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(
            "cannot write the run report (the run itself succeeded) /nonexistent-costagg-folder/report.json"
        ),
        "{stderr}"
    );
    assert!(summary_rows(&url).await > 0);
    let help = costagg_text().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("6  local resource: a local file, the engine's memory"),
        "{help}"
    );
}

#[test]
fn a_config_file_with_several_problems_lists_each_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("costagg.yaml");
    std::fs::write(&config, "profile: huge\ndatabase:\n  connect_attempts: 0\n").unwrap();
    let out = run_from(Path::new("/tmp"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("2 config problems:"), "{stderr}");
    assert!(stderr.contains("config: `profile` names `huge`"), "{stderr}");
    assert!(
        stderr.contains("config: `database.connect_attempts` must be at least 1"),
        "{stderr}"
    );
}

/// Local resources that a retry cannot fix — a spill folder that does not exist, an input
/// folder that cannot be read (here a symlink loop) — are exit 6, naming the path and, for the
/// spill folder, the setting.
#[test]
fn a_missing_spill_folder_and_an_unreadable_input_folder_exit_6_naming_the_path() {
    let dir = sample("500");
    let config = dir.path().join("costagg.yaml");
    std::fs::write(
        &config,
        "profiles:\n  small:\n    spill_dir: /nonexistent-costagg-spill\n",
    )
    .unwrap();
    let out = run_from(dir.path())
        .args(["--dry-run", "--profile", "small", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(
            "the engine cannot spill to the folder profiles.small.spill_dir names /nonexistent-costagg-spill"
        ),
        "{stderr}"
    );

    let month = folder(
        dir.path(),
        &unit(SOURCE_A, "2025-10"),
        costagg::input::ReportType::PodUsage,
    );
    std::fs::create_dir(month.join("sub")).unwrap();
    std::os::unix::fs::symlink("..", month.join("sub/up")).unwrap();
    let out = run_from(dir.path()).arg("--dry-run").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("cannot read the input folder /"), "{stderr}");
    assert!(stderr.contains("File system loop found"), "{stderr}");
}

/// A known password, given in the URL's user info or as a `password=` query parameter, never
/// shows: not in any log line, error, `check` output, preview, run report file, nor in the
/// run record table, of succeeding and failing runs alike, in text and JSON logs.
#[tokio::test]
async fn a_password_never_appears_in_any_output_of_succeeding_or_failing_runs() {
    const SECRET: &str = "pw-9f3Kq-never-shown";
    let url = fresh_database().await;
    let dir = sample("1000");
    let mut in_userinfo = url::Url::parse(&url).unwrap();
    in_userinfo.set_password(Some(SECRET)).unwrap();
    let mut in_query = url::Url::parse(&url).unwrap();
    in_query.set_query(Some(&format!("password={SECRET}")));
    let mut bad_mode = in_query.clone();
    bad_mode.set_query(Some(&format!("password={SECRET}&sslmode=bogus")));
    let mut refused = in_userinfo.clone();
    refused.set_port(Some(1)).unwrap();
    let report = dir.path().join("report.json");
    let mut outputs = Vec::new();
    for (database_url, format) in [
        (in_userinfo.as_str(), "text"),
        (in_query.as_str(), "json"),
        (bad_mode.as_str(), "text"),
        (refused.as_str(), "json"),
    ] {
        let runs: [Vec<&str>; 3] = [
            vec!["--report", report.to_str().unwrap()],
            vec!["--dry-run"],
            vec!["--explain"],
        ];
        for extra in runs {
            let out = run_from(dir.path())
                .args(&extra)
                .env("DATABASE_URL", database_url)
                .env("COSTAGG_LOG_FORMAT", format)
                .env("COSTAGG_DATABASE__CONNECT_ATTEMPTS", "1")
                .output()
                .unwrap();
            outputs.push(String::from_utf8_lossy(&out.stdout).to_string());
            outputs.push(String::from_utf8_lossy(&out.stderr).to_string());
        }
        let out = costagg_text()
            .args(["check", "--schema", ORG, "--input"])
            .arg(dir.path())
            .env("DATABASE_URL", database_url)
            .output()
            .unwrap();
        outputs.push(String::from_utf8_lossy(&out.stdout).to_string());
        outputs.push(String::from_utf8_lossy(&out.stderr).to_string());
    }
    outputs.push(std::fs::read_to_string(&report).unwrap());
    let records: Vec<String> = connect(&url)
        .await
        .query("SELECT to_jsonb(r)::text FROM org1234567.costagg_runs r", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(records.len() >= 2, "{records:?}");
    outputs.extend(records);
    let all = outputs.join("\n");
    assert!(all.contains("****"), "the password is shown masked somewhere");
    assert!(
        all.contains("sslmode `bogus`") && all.contains("Connection refused"),
        "{all}"
    );
    assert!(!all.contains(SECRET), "the password appears:\n{all}");
}

/// The schema is the org unless given: an org that cannot be a schema name is named as the
/// value at fault, with the way around it.
#[test]
fn an_org_that_cannot_name_the_schema_is_named_as_the_value_at_fault() {
    let out = costagg_text()
        .args([
            "run", "--org", "org-1", "--source", SOURCE_A, "--month", "2025-10", "--input", "/tmp",
        ])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config: `--org` `org-1` is not a valid schema name"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unless --schema (database.schema) does"),
        "{stderr}"
    );
}

/// The same upload sent twice — a file and its copy, whose hours overlap — would double the
/// day's usage: the unit fails naming both, before anything is summarised.
#[test]
fn a_pod_usage_file_sent_twice_fails_the_unit_naming_both_files() {
    let dir = sample("1000");
    let month = folder(
        dir.path(),
        &unit(SOURCE_A, "2025-10"),
        costagg::input::ReportType::PodUsage,
    );
    let first = month.join(format!("{SOURCE_A}_pod_usage_03_1.parquet"));
    std::fs::copy(&first, month.join("resent_pod_usage_03_1.parquet")).unwrap();
    let out = run_from(dir.path()).arg("--dry-run").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("(interval_start, namespace, pod, node) keys are reported more than once"),
        "{stderr}"
    );
    assert!(
        stderr.contains("resent_pod_usage_03_1.parquet") && stderr.contains("_pod_usage_03_1.parquet, "),
        "{stderr}"
    );
    std::fs::remove_file(month.join("resent_pod_usage_03_1.parquet")).unwrap();
    let out = run_from(dir.path()).arg("--dry-run").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
