//! Reliability, the failures the README's "Failure modes" lists: bad input, database faults,
//! concurrent runs and signals, each provoked for real; after each, the unit's previous rows
//! are byte-for-byte what they were.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use costagg::config::BadRows;
use costagg::error::Error;

use crate::support::*;

/// A day of one pod on node n1: 1 core-hour per hour.
fn day_one() -> Vec<PodRow> {
    (0..24)
        .map(|h| PodRow::new(h, "ns", "n1", r#"{"app":"web"}"#).cpu_core_seconds(3600.0))
        .collect()
}

fn fail_on_bad_rows() -> costagg::config::Config {
    let mut config = config_with_keys(&["app"]);
    config.input.bad_rows = BadRows::Fail;
    config
}

/// A database holding the unit's rows from a good first run, and their dump.
async fn with_previous_rows(root: &std::path::Path) -> (TestDb, Vec<String>) {
    let url = fresh_database().await;
    write_pod_file(root, SOURCE_A, &day_one());
    run_october(root, &url, config_with_keys(&["app"])).await.unwrap();
    let before = dump(&connect(&url).await, SOURCE_A).await;
    assert!(!before.is_empty());
    (url, before)
}

fn pod_folder(root: &std::path::Path) -> std::path::PathBuf {
    folder(
        root,
        &unit(SOURCE_A, "2025-10"),
        costagg::input::ReportType::PodUsage,
    )
}

#[tokio::test]
async fn bad_files_fail_the_unit_naming_file_and_column_and_leave_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (url, before) = with_previous_rows(dir.path()).await;
    let folder = pod_folder(dir.path());
    let good = std::fs::read(folder.join("hand.parquet")).unwrap();

    // A truncated file (the upload was cut off): half of a good one.
    std::fs::write(folder.join("cut.parquet"), &good[..good.len() / 2]).unwrap();
    let e = run_october(dir.path(), &url, config_with_keys(&["app"]))
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let text = e.to_string();
    // The file's frame is checked before the Parquet reader sees it: half a file lacks the
    // trailing magic bytes.
    assert!(
        text.contains("cut.parquet: not a Parquet file: it does not end with Parquet's magic bytes PAR1"),
        "{text}"
    );
    assert_eq!(dump(&connect(&url).await, SOURCE_A).await, before);
    std::fs::remove_file(folder.join("cut.parquet")).unwrap();

    // A required column missing, and one of an unusable type, in two files: both named.
    let write = |name: &str, batch: datafusion::arrow::array::RecordBatch| {
        let file = std::fs::File::create(folder.join(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    };
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(good))
            .unwrap()
            .build()
            .unwrap();
    let batch = reader.map(Result::unwrap).next().unwrap();
    let without_node = batch
        .project(
            &(0..batch.num_columns())
                .filter(|&i| batch.schema().field(i).name() != "node")
                .collect::<Vec<_>>(),
        )
        .unwrap();
    write("no_node.parquet", without_node);
    let mut columns = batch.columns().to_vec();
    let cpu = batch.schema().index_of("pod_usage_cpu_core_seconds").unwrap();
    columns[cpu] = std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec![
        "1";
        batch.num_rows()
    ]));
    let mut fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[cpu] = datafusion::arrow::datatypes::Field::new(
        "pod_usage_cpu_core_seconds",
        datafusion::arrow::datatypes::DataType::Utf8,
        true,
    );
    let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    write(
        "text_cpu.parquet",
        datafusion::arrow::array::RecordBatch::try_new(schema, columns).unwrap(),
    );
    let e = run_october(dir.path(), &url, config_with_keys(&["app"]))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(e.exit_code(), 3);
    assert!(
        text.contains("no_node.parquet: column `node` is missing (expected a string (UTF8))"),
        "{text}"
    );
    assert!(
        text.contains(
            "text_cpu.parquet: column `pod_usage_cpu_core_seconds` has type Utf8 (expected a number"
        ),
        "{text}"
    );
    assert_eq!(dump(&connect(&url).await, SOURCE_A).await, before);
}

#[tokio::test]
async fn malformed_rows_fail_the_unit_when_asked_and_leave_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (url, before) = with_previous_rows(dir.path()).await;

    // Rows of September in October's folder; a negative and a NaN quantity (in a namespace of
    // their own: the same pod, node and hour as a row of hand.parquet would be a doubled row).
    write_pod_file_as(
        dir.path(),
        SOURCE_A,
        "september.parquet",
        &[PodRow::new(-24, "ns", "n1", "{}").cpu_core_seconds(3600.0)],
    );
    write_pod_file_as(
        dir.path(),
        SOURCE_A,
        "bad.parquet",
        &[
            PodRow::new(5, "ns-bad", "n1", "{}").cpu_core_seconds(-3600.0),
            PodRow::new(6, "ns-bad", "n1", "{}").cpu_core_seconds(f64::NAN),
        ],
    );
    let e = run_october(dir.path(), &url, fail_on_bad_rows())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadRows { .. }));
    assert_eq!(e.exit_code(), 3);
    let text = e.to_string();
    assert!(text.contains("pod_usage: 1 rows outside 2025-10"), "{text}");
    assert!(
        text.contains(
            "pod_usage: 2 rows with a negative, non-finite or implausibly large (over 1e18) quantity"
        ),
        "{text}"
    );
    assert_eq!(dump(&connect(&url).await, SOURCE_A).await, before);

    // Skipped by default: the run succeeds, counts them, and sums only the good rows.
    let report = run_october(dir.path(), &url, config_with_keys(&["app"]))
        .await
        .unwrap();
    assert_eq!((report.other_month_rows, report.bad_quantity_rows), (1, 2));
    let client = connect(&url).await;
    let cpu: f64 = client
        .query_one(
            "SELECT sum(pod_usage_cpu_core_hours)::float8 FROM org1234567.reporting_ocpusagelineitem_daily_summary \
             WHERE pod_labels IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // 24 good hours of 1 core-hour each; September's row and the bad ones are left out.
    assert_eq!(cpu, 24.0);
    std::fs::remove_file(pod_folder(dir.path()).join("september.parquet")).unwrap();
    std::fs::remove_file(pod_folder(dir.path()).join("bad.parquet")).unwrap();

    // Malformed label JSON, found while summarising: the COPY is abandoned and rolled back.
    let before = dump(&client, SOURCE_A).await;
    write_pod_file_as(
        dir.path(),
        SOURCE_A,
        "labels.parquet",
        &[PodRow::new(7, "ns-labels", "n1", "{app: web").cpu_core_seconds(60.0)],
    );
    let e = run_october(dir.path(), &url, fail_on_bad_rows())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("1 distinct label strings are not a JSON object"),
        "{e}"
    );
    assert_eq!(dump(&client, SOURCE_A).await, before);

    // Both outcomes are in the run record.
    let runs: Vec<(String, Option<i32>)> = client
        .query(
            "SELECT status, exit_code FROM org1234567.costagg_runs ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = [("succeeded", 0), ("failed", 3), ("succeeded", 0), ("failed", 3)];
    assert_eq!(runs, expected.map(|(s, c)| (s.to_string(), Some(c))));
}

/// The built binary running source A's October, logging as JSON, with DATABASE_URL set.
fn costagg_run(root: &std::path::Path, url: &str) -> Command {
    costagg_run_source(root, url, SOURCE_A)
}

/// [`costagg_run`] for another source; its output piped, for [`finish`] to collect.
fn costagg_run_source(root: &std::path::Path, url: &str, source: &str) -> Command {
    let mut c = costagg_run_october(source, root);
    c.env("DATABASE_URL", url)
        .env("COSTAGG_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A unit written once, and a second run (with other enabled keys, so its rows would differ)
/// held inside its COPY by the failpoint.
struct Paused {
    dir: tempfile::TempDir,
    url: TestDb,
    client: tokio_postgres::Client,
    before: Vec<String>,
    child: Child,
}

async fn paused_in_copy(seed: u64) -> Paused {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, seed);
    let url = fresh_database().await;
    let (code, stderr) = finish(costagg_run(dir.path(), &url).spawn().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
    let client = connect(&url).await;
    let before = dump(&client, SOURCE_A).await;
    // Swapped in (a small month, so `auto` would write row by row): the failures below hit a
    // month being built aside.
    let child = costagg_run(dir.path(), &url)
        .env("COSTAGG_DATABASE__WRITE_METHOD", "swap")
        .env("COSTAGG_FAILPOINT_COPY_PAUSE_MS", "60000")
        .env("COSTAGG_REFERENCE__ENABLED_TAG_KEYS", "[app, version]")
        .spawn()
        .unwrap();
    wait_for_copy(&url).await;
    Paused {
        dir,
        url,
        client,
        before,
        child,
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn a_worker_killed_mid_copy_leaves_the_previous_rows_and_a_rerun_succeeds() {
    let Paused {
        dir,
        url,
        client,
        before,
        child,
    } = paused_in_copy(21).await;
    let pid = child.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    let (code, _) = finish(child);
    assert_eq!(code, None, "killed by a signal");
    assert_eq!(
        dump(&client, SOURCE_A).await,
        before,
        "the killed run's rows are not visible"
    );
    // The month was being built aside (costagg's own table): its stage table is left...
    assert_eq!(stage_tables(&client).await, 1);

    let (code, stderr) = finish(costagg_run(dir.path(), &url).spawn().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
    assert_same_rows(&dump(&client, SOURCE_A).await, &before);
    // ...and the next run of the unit drops it.
    assert_eq!(stage_tables(&client).await, 0);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn rows_another_source_writes_while_a_month_is_built_aside_are_carried_into_it() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 25);
    generate(dir.path(), SOURCE_B, "2025-10", 2000, 26);
    let url = fresh_database().await;
    let (code, stderr) = finish(costagg_run(dir.path(), &url).spawn().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
    let client = connect(&url).await;
    let a_before = dump(&client, SOURCE_A).await;

    // A's month holds only A's rows: its second run (asked to swap) builds the month aside,
    // held in its COPY.
    let a = costagg_run(dir.path(), &url)
        .env("COSTAGG_DATABASE__WRITE_METHOD", "swap")
        .env("COSTAGG_FAILPOINT_COPY_PAUSE_MS", "3000")
        .spawn()
        .unwrap();
    wait_for_copy(&url).await;
    // Meanwhile source B writes its month row by row (the month holds A's rows) and commits.
    let (code, stderr) = finish(costagg_run_source(dir.path(), &url, SOURCE_B).spawn().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
    let b_rows = dump(&client, SOURCE_B).await;
    assert!(!b_rows.is_empty());

    let (code, stderr) = finish(a);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("carried over"), "{stderr}");
    assert_eq!(dump(&client, SOURCE_B).await, b_rows, "B's rows survive A's swap");
    assert_same_rows(&dump(&client, SOURCE_A).await, &a_before);
    assert_eq!(stage_tables(&client).await, 0);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn sigterm_mid_copy_rolls_back_and_exits_promptly() {
    let Paused {
        dir,
        url,
        client,
        before,
        child,
    } = paused_in_copy(22).await;
    let sent = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let (code, stderr) = finish(child);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "exited {:?} after SIGTERM",
        sent.elapsed()
    );
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert_eq!(dump(&client, SOURCE_A).await, before);
    let last: (String, Option<String>) = client
        .query_one(
            "SELECT status, error FROM org1234567.costagg_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(last.0, "failed");
    assert!(last.1.unwrap().contains("SIGTERM"));

    // Nothing is left locked: the next run goes through.
    let (code, stderr) = finish(costagg_run(dir.path(), &url).spawn().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
}

/// A run waiting for another run's lock of the unit stops at SIGTERM at once (its wait is
/// cancelled on the server), not when the wait ends, and records the stop.
#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn sigterm_while_waiting_for_the_units_lock_exits_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 24);
    let url = fresh_database().await;
    let mut first = costagg_run(dir.path(), &url)
        .env("COSTAGG_FAILPOINT_COPY_PAUSE_MS", "60000")
        .spawn()
        .unwrap();
    wait_for_copy(&url).await;
    let second = costagg_run(dir.path(), &url)
        .env("COSTAGG_DATABASE__LOCK_TIMEOUT_SECONDS", "30")
        .spawn()
        .unwrap();
    let client = connect(&url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = Instant::now();
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    let (code, stderr) = finish(second);
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "exited {:?} after SIGTERM",
        sent.elapsed()
    );
    assert_eq!(code, Some(143), "{stderr}");
    let last: String = client
        .query_one(
            "SELECT status FROM org1234567.costagg_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, "failed");
    first.kill().unwrap();
    let _ = first.wait();
}

#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn two_runs_of_one_unit_never_interleave_the_second_reports_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 23);
    let url = fresh_database().await;
    let first = costagg_run(dir.path(), &url)
        .env("COSTAGG_FAILPOINT_COPY_PAUSE_MS", "4000")
        .spawn()
        .unwrap();
    wait_for_copy(&url).await;
    let second = costagg_run(dir.path(), &url)
        .env("COSTAGG_DATABASE__LOCK_TIMEOUT_SECONDS", "1")
        .spawn()
        .unwrap();
    let (code, stderr) = finish(second);
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("another run holds the lock of unit source"),
        "{stderr}"
    );
    let (code, stderr) = finish(first);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(summary_rows(&url).await > 0);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature (scripts/test enables it)"
)]
async fn a_server_stopped_mid_run_fails_cleanly_and_the_next_run_succeeds() {
    let cluster = PrivateCluster::start();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 24);
    let (code, stderr) = finish(costagg_run(dir.path(), &cluster.url).spawn().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
    let before = dump(&connect(&cluster.url).await, SOURCE_A).await;

    let child = costagg_run(dir.path(), &cluster.url)
        .env("COSTAGG_FAILPOINT_COPY_PAUSE_MS", "3000")
        .env("COSTAGG_REFERENCE__ENABLED_TAG_KEYS", "[app, version]")
        .spawn()
        .unwrap();
    wait_for_copy(&cluster.url).await;
    cluster.stop();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("database"), "{stderr}");

    cluster.restart();
    assert_eq!(
        dump(&connect(&cluster.url).await, SOURCE_A).await,
        before,
        "the cut COPY left nothing"
    );
    let (code, stderr) = finish(costagg_run(dir.path(), &cluster.url).spawn().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_server_is_up_and_then_fails_clearly() {
    let cluster = PrivateCluster::start();
    let dir = tempfile::tempdir().unwrap();
    write_pod_file(dir.path(), SOURCE_A, &day_one());
    cluster.stop();

    // Down for good: two attempts, then exit 4 naming the stage; the password never shows.
    let mut secret = url::Url::parse(&cluster.url).unwrap();
    secret.set_password(Some("s3cret-pw")).unwrap();
    let started = Instant::now();
    let (code, stderr) = finish(
        costagg_run(dir.path(), secret.as_str())
            .env("COSTAGG_DATABASE__CONNECT_ATTEMPTS", "2")
            .spawn()
            .unwrap(),
    );
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("database (connect)"), "{stderr}");
    assert!(stderr.contains("trying again"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(1));

    // Back within the retries: the run waits for it and succeeds.
    let child = costagg_run(dir.path(), secret.as_str()).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.restart();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("trying again"), "{stderr}");
    assert!(
        !stderr.contains("s3cret-pw"),
        "the password never appears in logs"
    );
}

#[tokio::test]
async fn a_database_host_name_that_does_not_resolve_is_retried_then_fails_with_the_drivers_error() {
    // A database container still being created has no name on its network yet; `.invalid`
    // never resolves (RFC 6761), so both attempts fail: the first is retried, naming the host.
    let dir = tempfile::tempdir().unwrap();
    write_pod_file(dir.path(), SOURCE_A, &day_one());
    let started = Instant::now();
    let (code, stderr) = finish(
        costagg_run(dir.path(), "postgres://costagg@costagg-db.invalid:5432/koku")
            .env("COSTAGG_DATABASE__CONNECT_ATTEMPTS", "2")
            .spawn()
            .unwrap(),
    );
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("trying again"), "{stderr}");
    assert!(
        stderr.contains("the database host costagg-db.invalid does not resolve"),
        "{stderr}"
    );
    assert!(stderr.contains("database (connect)"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn tls_is_used_and_verified_as_sslmode_asks() {
    let cluster = PrivateCluster::start();
    let ca = cluster.require_tls();
    let dir = tempfile::tempdir().unwrap();
    write_pod_file(dir.path(), SOURCE_A, &day_one());
    // The cluster's URL with another host and TLS settings.
    let url = |host: &str, query: &str| {
        let mut u = url::Url::parse(&cluster.url).unwrap();
        u.set_host(Some(host)).unwrap();
        u.set_query(Some(query));
        u.to_string()
    };
    let run = |url: String| {
        finish(
            costagg_run(dir.path(), &url)
                .env("COSTAGG_DATABASE__CONNECT_ATTEMPTS", "1")
                .spawn()
                .unwrap(),
        )
    };
    let ca = ca.display();

    // The server refuses plain connections, so a success means TLS was used.
    // pg_hba.conf refuses it: a login refused is for someone to fix, not retried (exit 2).
    let (code, stderr) = run(url("127.0.0.1", "sslmode=disable"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no encryption"), "{stderr}");
    let (code, stderr) = run(url("127.0.0.1", "sslmode=require"));
    assert_eq!(code, Some(0), "{stderr}");

    // verify-full checks the chain and the name: the certificate names localhost only.
    let (code, stderr) = run(url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    let (code, stderr) = run(url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")));
    assert_eq!(code, Some(0), "{stderr}");

    // A CA that did not sign the server's certificate: refused, at once (no retries).
    let other = tempfile::tempdir().unwrap();
    let other_ca = other.path().join("other.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(other.path().join("other.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .unwrap();
    assert!(status.status.success());
    let started = Instant::now();
    let (code, stderr) = finish(
        costagg_run(
            dir.path(),
            &url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
            ),
        )
        .spawn()
        .unwrap(),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("certificate") && !stderr.contains("trying again"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `sslmode=require` against a server that offers no TLS can never succeed: exit 2 at once,
/// not the connection retries meant for a server that is still starting.
#[tokio::test]
async fn tls_required_but_not_offered_fails_at_once_and_is_not_retried() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    write_pod_file(dir.path(), SOURCE_A, &day_one());
    let mut require = url::Url::parse(&url).unwrap();
    require.set_query(Some("sslmode=require"));
    let started = Instant::now();
    let (code, stderr) = finish(costagg_run(dir.path(), require.as_str()).spawn().unwrap());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("server does not support TLS"), "{stderr}");
    assert!(!stderr.contains("trying again"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A value longer than its column is the input's (or the flags') fault: exit 3 with the
/// server's words, not "database unavailable".
#[tokio::test]
async fn a_value_too_long_for_its_column_is_an_input_error_not_a_retry() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    write_pod_file(dir.path(), SOURCE_A, &day_one());
    let (code, stderr) = finish(
        costagg_run(dir.path(), &url)
            .arg("--cluster-id")
            .arg("c".repeat(60))
            .spawn()
            .unwrap(),
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("value too long for type character varying(50)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(", column cluster_id"),
        "the column is named: {stderr}"
    );
}
