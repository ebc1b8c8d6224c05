//! S3 input against a real S3-compatible server (moto, credentials checked): a unit read from
//! a bucket gives the rows the same files give from a folder; a wrong key, a missing bucket
//! and an empty prefix each fail with a clear error.

use std::process::Command;

use crate::support::*;

/// `costagg run` of `SOURCE_A`'s October 2025 from `input` (a folder or an `s3://` URL) into
/// `url`, logging as text.
fn run_from(input: &str, url: &str) -> Command {
    let mut c = costagg_run_october(SOURCE_A, input);
    c.env("DATABASE_URL", url).env("COSTAGG_LOG_FORMAT", "text");
    c
}

fn outcome(mut c: Command) -> (Option<i32>, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn a_unit_read_from_s3_gives_the_rows_the_same_files_give_from_a_folder() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 3000, 31);
    s3.upload(dir.path(), "cost-management").await;
    let input = format!("s3://{}/cost-management", s3.bucket);

    let from_s3 = fresh_database().await;
    let mut c = run_from(&input, &from_s3);
    s3.env(&mut c, &s3.key_id, &s3.secret);
    let (code, _, stderr) = outcome(c);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("pod_usage: 3000 rows in 62 files"), "{stderr}");

    let from_folder = fresh_database().await;
    let (code, _, stderr) = outcome(run_from(dir.path().to_str().unwrap(), &from_folder));
    assert_eq!(code, Some(0), "{stderr}");
    let (a, b) = (
        dump(&connect(&from_s3).await, SOURCE_A).await,
        dump(&connect(&from_folder).await, SOURCE_A).await,
    );
    assert!(a.len() > 31);
    assert_same_rows(&a, &b);

    // check sees the unit in the bucket.
    let mut c = costagg();
    c.args(["check", "--input", &input]).env("DATABASE_URL", &from_s3);
    s3.env(&mut c, &s3.key_id, &s3.secret);
    let (code, stdout, _) = outcome(c);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("{ORG}  {SOURCE_A}  2025-10  62")),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_wrong_key_a_missing_bucket_and_an_empty_prefix_each_fail_clearly() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 1000, 32);
    s3.upload(dir.path(), "cost-management").await;
    let url = "postgres://nobody@127.0.0.1:1/none";

    // A key the server does not know: a config problem (2), naming the bucket and the fix.
    let mut c = run_from(&format!("s3://{}/cost-management", s3.bucket), url);
    s3.env(&mut c, "AKIAWRONGWRONGWRONG0", "not-the-secret");
    let (code, _, stderr) = outcome(c);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("refused them") && stderr.contains("AWS_ACCESS_KEY_ID"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-secret"), "{stderr}");

    // A bucket that does not exist: bad input (3), naming it.
    let mut c = run_from("s3://no-such-bucket/cost-management", url);
    s3.env(&mut c, &s3.key_id, &s3.secret);
    let (code, _, stderr) = outcome(c);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("s3://no-such-bucket/") && stderr.contains("bucket does not exist"),
        "{stderr}"
    );

    // A prefix with nothing under it: no input (3), naming the path searched.
    let mut c = run_from(&format!("s3://{}/elsewhere", s3.bucket), url);
    s3.env(&mut c, &s3.key_id, &s3.secret);
    let (code, _, stderr) = outcome(c);
    assert_eq!(code, Some(3), "{stderr}");
    let searched = format!(
        "s3://{}/elsewhere/data/parquet/{ORG}/OCP/pod_usage/source={SOURCE_A}",
        s3.bucket
    );
    assert!(
        stderr.contains("no pod_usage files") && stderr.contains(&searched),
        "{stderr}"
    );
}
