//! `costagg sweep` against a real PostgreSQL and the real S3 server: a fleet of 3 orgs × 4
//! sources × 2 months written exactly once by three sweeps started at once, with the rows a
//! single-unit `run` gives; a second sweep that skips everything; one changed unit redone
//! alone; a unit with a truncated file failing alone; a worker killed in a unit's COPY whose
//! unit another worker completes after the lease; metrics read back from a real Pushgateway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const ORGS: [&str; 3] = [ORG, "org2", "org3"];
const MONTHS: [&str; 2] = ["2025-09", "2025-10"];

/// The n-th source of an org's cluster fleet.
fn source(org: usize, n: usize) -> String {
    format!("6f5f1c0e-0000-4000-8{org:03}-{n:012}")
}

/// One unit of the fleet: (org, source, month).
type Key = (String, String, String);

/// Generates `orgs` × `sources` × both months, `rows` pod usage rows each, every unit its own
/// seed; returns the units.
fn fleet(root: &Path, orgs: usize, sources: usize, rows: u64) -> Vec<Key> {
    let mut units = Vec::new();
    for (o, org) in ORGS.iter().enumerate().take(orgs) {
        for s in 0..sources {
            for month in MONTHS {
                let request = costagg::generate::GenerateRequest {
                    rows,
                    org: org.to_string(),
                    source: source(o, s).parse().unwrap(),
                    month: costagg::unit::Month::parse(month, "month").unwrap(),
                    out: root.to_path_buf(),
                    seed: units.len() as u64 + 1,
                };
                costagg::generate::generate(&request).unwrap();
                units.push((org.to_string(), source(o, s), month.to_string()));
            }
        }
    }
    units
}

/// `costagg sweep` of both months of `input` into `url`, as worker `worker`, its report at
/// `report`, logging as text at WARN.
fn sweep(input: &str, url: &str, worker: &str, report: &Path) -> Command {
    let mut c = costagg();
    c.args([
        "sweep", "--input", input, "--since", MONTHS[0], "--until", MONTHS[1],
    ])
    .args(["--worker-id", worker, "--report"])
    .arg(report)
    .env("DATABASE_URL", url)
    .env("COSTAGG_LOG_FORMAT", "text")
    .env("COSTAGG_LOG_LEVEL", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

/// Waits for a sweep; its exit code, stderr and JSON report.
fn finish_sweep(child: Child, report: &Path) -> (Option<i32>, String, serde_json::Value) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = std::fs::read_to_string(report)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null);
    (out.status.code(), stderr, json)
}

/// The report's count under `key`.
fn count(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no `{key}` in the report: {report}"))
}

/// The unit's line of a report.
fn unit_line<'a>(report: &'a serde_json::Value, key: &Key) -> &'a serde_json::Value {
    report["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["org"] == key.0.as_str() && u["source"] == key.1.as_str() && u["month"] == key.2.as_str())
        .unwrap_or_else(|| panic!("{key:?} not in the report"))
}

/// Successful writes per unit, from the claim table.
async fn successes(url: &str) -> BTreeMap<Key, i32> {
    connect(url)
        .await
        .query(
            "SELECT org, source_uuid::text, month, successes FROM public.costagg_sweep_units",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
        .collect()
}

/// A unit's rows (the org's schema), without their random uuids, sorted.
async fn rows_of(client: &tokio_postgres::Client, key: &Key) -> Vec<String> {
    let sql = format!(
        "SELECT (to_jsonb(s) - 'uuid')::text FROM {}.reporting_ocpusagelineitem_daily_summary s \
         WHERE source_uuid = $1::text::uuid AND to_char(usage_start, 'YYYY-MM') = $2 ORDER BY 1",
        key.0
    );
    client
        .query(&sql, &[&key.1, &key.2])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `costagg run` of every unit from the folder `root` into `url`, six at a time.
fn run_each(root: &Path, url: &str, units: &[Key]) {
    for chunk in units.chunks(6) {
        let children: Vec<(Key, Child)> = chunk
            .iter()
            .map(|key| {
                let mut c = costagg();
                c.args(["run", "--input"])
                    .arg(root)
                    .args(["--org", &key.0, "--source", &key.1, "--month", &key.2])
                    .env("DATABASE_URL", url)
                    .env("COSTAGG_LOG_FORMAT", "text")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                (key.clone(), c.spawn().unwrap())
            })
            .collect();
        for (key, child) in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "run {key:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[tokio::test]
async fn three_sweeps_at_once_write_each_unit_once_and_a_rerun_redoes_only_what_changed() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let units = fleet(dir.path(), 3, 4, 400);
    assert_eq!(units.len(), 24);
    s3.upload(dir.path(), "koku").await;
    let input = format!("s3://{}/koku", s3.bucket);
    let reports = tempfile::tempdir().unwrap();
    let url = fresh_database().await;
    let start = |worker: &str| {
        let report = reports.path().join(format!("{worker}.json"));
        let mut c = sweep(&input, &url, worker, &report);
        s3.env(&mut c, &s3.key_id, &s3.secret);
        (c.spawn().unwrap(), report)
    };

    // Three sweeps at once: every unit written by exactly one of them.
    let started: Vec<(Child, PathBuf)> = ["w1", "w2", "w3"].into_iter().map(start).collect();
    let mut written = 0;
    for (child, report) in started {
        let (code, stderr, report) = finish_sweep(child, &report);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(count(&report, "units_found"), 24, "{report}");
        assert_eq!(count(&report, "failed"), 0, "{report}");
        written += count(&report, "written");
    }
    assert_eq!(
        written, 24,
        "the three reports' written units add up to the fleet"
    );
    let once: BTreeMap<Key, i32> = units.iter().map(|k| (k.clone(), 1)).collect();
    assert_eq!(successes(&url).await, once, "each unit written exactly once");

    // The rows are those single-unit runs write.
    let single = fresh_database().await;
    run_each(dir.path(), &single, &units);
    let (swept, ran) = (connect(&url).await, connect(&single).await);
    for key in &units {
        let rows = rows_of(&swept, key).await;
        assert!(rows.len() > 20, "{key:?}: {} rows", rows.len());
        assert_same_rows(&rows, &rows_of(&ran, key).await);
    }

    // A second sweep: everything up to date, nothing written.
    let (child, report) = start("w1");
    let (code, stderr, report) = finish_sweep(child, &report);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        (
            count(&report, "up_to_date"),
            count(&report, "written"),
            count(&report, "rows_written")
        ),
        (24, 0, 0),
        "{report}"
    );
    assert_eq!(successes(&url).await, once);

    // One file added to one unit: exactly that unit is summarised again, with the new row.
    let changed = (ORG.to_string(), source(0, 2), "2025-10".to_string());
    let extra = tempfile::tempdir().unwrap();
    let row = PodRow::new(5, "added-namespace", "added-node", "{}").cpu_core_seconds(7200.0);
    write_pod_file_as(extra.path(), &changed.1, "added.parquet", &[row]);
    s3.upload(extra.path(), "koku").await;
    let (child, report) = start("w2");
    let (code, stderr, report) = finish_sweep(child, &report);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        (count(&report, "written"), count(&report, "up_to_date")),
        (1, 23),
        "{report}"
    );
    assert_eq!(unit_line(&report, &changed)["outcome"], "written");
    let mut expected = once.clone();
    expected.insert(changed.clone(), 2);
    assert_eq!(successes(&url).await, expected);
    let added = swept
        .query_one(
            &format!(
                "SELECT sum(pod_usage_cpu_core_hours)::float8 FROM {ORG}.reporting_ocpusagelineitem_daily_summary \
                 WHERE namespace = 'added-namespace' AND source_uuid = $1::text::uuid"
            ),
            &[&changed.1],
        )
        .await
        .unwrap()
        .get::<_, Option<f64>>(0);
    assert_eq!(added, Some(2.0), "7200 core-seconds are 2 core-hours");
}

#[tokio::test]
async fn a_unit_with_a_truncated_file_fails_alone_and_the_sweep_exits_8() {
    let dir = tempfile::tempdir().unwrap();
    let units = fleet(dir.path(), 3, 4, 400);
    let broken = units[13].clone();
    let unit = costagg::unit::UnitOfWork::whole_month(
        &broken.0,
        broken.1.parse().unwrap(),
        costagg::unit::Month::parse(&broken.2, "month").unwrap(),
        costagg::unit::SchemaName::parse(&broken.0).unwrap(),
    );
    let pod_folder = folder(dir.path(), &unit, costagg::input::ReportType::PodUsage);
    let file = std::fs::read_dir(&pod_folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("a pod usage file");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();

    let url = fresh_database().await;
    let report_file = tempfile::NamedTempFile::new().unwrap();
    let child = sweep(dir.path().to_str().unwrap(), &url, "w1", report_file.path())
        .spawn()
        .unwrap();
    let (code, stderr, report) = finish_sweep(child, report_file.path());
    assert_eq!(code, Some(8), "{stderr}");
    assert_eq!(
        (count(&report, "written"), count(&report, "failed")),
        (23, 1),
        "{report}"
    );
    let line = unit_line(&report, &broken);
    assert_eq!(line["outcome"], "failed");
    assert_eq!(line["exit_code"], 3, "{line}");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(line["error"].as_str().unwrap().contains(&name), "{line}");
    assert!(
        stderr.contains("FAILED") && stderr.contains(&broken.1),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 24 due units failed"), "{stderr}");
    let done = successes(&url).await;
    assert_eq!(done.values().filter(|n| **n == 1).count(), 23);
    assert_eq!(done[&broken], 0);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn a_worker_killed_in_a_unit_loses_it_when_its_lease_runs_out_and_another_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 5);
    let key: Key = (ORG.into(), SOURCE_A.into(), "2025-10".into());
    let input = dir.path().to_str().unwrap().to_string();
    let url = fresh_database().await;
    let reports = tempfile::tempdir().unwrap();
    let worker = |name: &str| {
        let mut c = sweep(&input, &url, name, &reports.path().join(format!("{name}.json")));
        c.args(["--lease-seconds", "2"]);
        c
    };

    // Worker a holds the unit inside its COPY; it renews its lease while it lives.
    let mut a = worker("a")
        .env("COSTAGG_FAILPOINT_COPY_PAUSE_MS", "60000")
        .spawn()
        .unwrap();
    wait_for_copy(&url).await;
    let client = connect(&url).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let holder: String = client
        .query_one(
            "SELECT claimed_by FROM public.costagg_sweep_units WHERE lease_until > now()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        holder.starts_with("a#"),
        "a renewed its 2 s lease past 3 s: {holder}"
    );
    Command::new("kill")
        .args(["-KILL", &a.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(a.wait().unwrap().code(), None, "killed");

    // Worker b finds the unit held, waits for the lease to run out, and completes it.
    let started = Instant::now();
    let report = reports.path().join("b.json");
    let (code, stderr, report) = finish_sweep(worker("b").spawn().unwrap(), &report);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(count(&report, "written"), 1, "{report}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let row = client
        .query_one(
            "SELECT successes, claims, claimed_by FROM public.costagg_sweep_units",
            &[],
        )
        .await
        .unwrap();
    let (done, claims, holder): (i32, i32, Option<String>) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (done, claims, holder),
        (1, 2, None),
        "claimed twice, written once"
    );

    // Nothing lost or doubled: the rows are those of a run of the unit alone.
    let single = fresh_database().await;
    run_each(dir.path(), &single, std::slice::from_ref(&key));
    let rows = rows_of(&client, &key).await;
    assert!(rows.len() > 20);
    assert_same_rows(&rows, &rows_of(&connect(&single).await, &key).await);
}

/// Debian's `prometheus-pushgateway`, started for one test on a free local port, with no
/// persistence. Stopped when dropped.
struct Pushgateway {
    child: Child,
    url: String,
}

impl Pushgateway {
    fn start() -> Pushgateway {
        let binary =
            std::env::var("COSTAGG_TEST_PUSHGATEWAY").unwrap_or_else(|_| "prometheus-pushgateway".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} (scripts/ensure-deps installs prometheus-pushgateway): {e}")
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the Pushgateway did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pushgateway {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// What Prometheus would scrape from it.
    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the series `name` whose labels include every one of `labels`.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn a_sweep_pushes_its_counts_per_source_to_a_pushgateway_under_its_own_group() {
    let gateway = Pushgateway::start();
    let dir = tempfile::tempdir().unwrap();
    let units = fleet(dir.path(), 1, 2, 300);
    // Source 1's October: a truncated file.
    let unit = costagg::unit::UnitOfWork::whole_month(
        ORG,
        source(0, 1).parse().unwrap(),
        costagg::unit::Month::parse("2025-10", "month").unwrap(),
        costagg::unit::SchemaName::parse(ORG).unwrap(),
    );
    let pod_folder = folder(dir.path(), &unit, costagg::input::ReportType::PodUsage);
    let file = std::fs::read_dir(&pod_folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    std::fs::write(&file, b"PAR1 not really").unwrap();

    let url = fresh_database().await;
    let report = tempfile::NamedTempFile::new().unwrap();
    let input = dir.path().to_str().unwrap();
    let mut c = sweep(input, &url, "w1", report.path());
    c.args(["--metrics-push", &gateway.url]);
    let (code, stderr, _) = finish_sweep(c.spawn().unwrap(), report.path());
    assert_eq!(code, Some(8), "{stderr}");

    let text = gateway.metrics().await;
    let (good, bad) = (source(0, 0), source(0, 1));
    fn w1(source: &str) -> [(&str, &str); 4] {
        [
            ("instance", "w1"),
            ("job", "costagg_sweep"),
            ("org", ORG),
            ("source", source),
        ]
    }
    assert_eq!(
        series(&text, "costagg_sweep_units_written", &w1(&good)),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "costagg_sweep_units_written", &w1(&bad)),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "costagg_sweep_units_failed",
            &[("exit_code", "3"), ("source", &bad)]
        ),
        Some(1.0)
    );
    assert_eq!(
        series(&text, "costagg_sweep_units_failed", &[("source", &good)]),
        None
    );
    assert_eq!(series(&text, "costagg_sweep_units_due", &w1(&bad)), Some(2.0));
    assert!(series(&text, "costagg_sweep_rows_written", &w1(&good)).unwrap() > 40.0);
    let now = chrono::Utc::now().timestamp() as f64;
    let success = series(&text, "costagg_sweep_last_success_timestamp_seconds", &w1(&good)).unwrap();
    assert!((now - success).abs() < 120.0, "{success} vs {now}");
    let september: f64 = connect(&url)
        .await
        .query_one(
            "SELECT extract(epoch FROM max(done_at))::float8 FROM public.costagg_sweep_units \
             WHERE source_uuid = $1::text::uuid",
            &[&bad],
        )
        .await
        .unwrap()
        .get(0);
    let kept = series(&text, "costagg_sweep_last_success_timestamp_seconds", &w1(&bad)).unwrap();
    assert!(
        (kept - september).abs() < 0.01,
        "a failing source keeps the time of its last write: {kept} vs {september}"
    );

    // A second worker's push is a group of its own: w1's series stay.
    let mut c = sweep(input, &url, "w2", report.path());
    c.args(["--metrics-push", &gateway.url]);
    let (code, stderr, _) = finish_sweep(c.spawn().unwrap(), report.path());
    assert_eq!(code, Some(8), "the broken unit fails again: {stderr}");
    let text = gateway.metrics().await;
    let w2 = [("instance", "w2"), ("org", ORG), ("source", good.as_str())];
    assert_eq!(
        series(&text, "costagg_sweep_units_up_to_date", &w2),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "costagg_sweep_units_written", &w1(&good)),
        Some(2.0),
        "{text}"
    );
    assert_eq!(units.len(), 4);
}
