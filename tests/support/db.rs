//! The test server: a database of its own per test, dropped when the test is done, and what
//! the tests read back from it.

use std::ffi::OsStr;
use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use super::fixtures::ORG;

/// The server's admin URL: `COSTAGG_TEST_DATABASE_URL`, else `DATABASE_URL`.
/// `scripts/test` starts a throwaway cluster and sets it.
pub fn admin_url() -> String {
    std::env::var("COSTAGG_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| {
            panic!(
                "these tests need a PostgreSQL server: run them with `scripts/test` (which starts a \
                 throwaway cluster), or set COSTAGG_TEST_DATABASE_URL=postgres://user@host:port/db \
                 to a server where the user may create databases"
            )
        })
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server at {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// One test's own database on the test server (`t_<uuid>`), used as its URL: it derefs to
/// `&str` and passes as an environment value or a format argument.
///
/// Dropped (`DROP DATABASE … WITH (FORCE)`, cutting any connection left open) when the guard
/// is, whether the test passed or failed. Set `COSTAGG_TEST_KEEP_DATABASES=1` to keep every
/// test database for a look afterwards; they are then left on the server until dropped by hand.
pub struct TestDb {
    admin: String,
    name: String,
    url: String,
}

/// A fresh database for one test; see [`TestDb`].
pub async fn fresh_database() -> TestDb {
    let admin = admin_url();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    connect(&admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let mut url = url::Url::parse(&admin).expect("admin URL parses");
    url.set_path(&format!("/{name}"));
    TestDb {
        admin,
        name,
        url: url.to_string(),
    }
}

impl Drop for TestDb {
    /// Drop runs inside the test's tokio runtime, where blocking on another future is not
    /// allowed: the database is dropped from a thread with a runtime of its own, joined here.
    /// Errors are ignored (a test must not fail, or panic twice, over its clean-up).
    fn drop(&mut self) {
        if std::env::var("COSTAGG_TEST_KEEP_DATABASES").is_ok_and(|v| v == "1") {
            return;
        }
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                let Ok((client, connection)) = tokio_postgres::connect(&admin, NoTls).await else {
                    return;
                };
                let connection = tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                drop(client);
                let _ = connection.await;
            });
        });
        let _ = dropper.join();
    }
}

impl Deref for TestDb {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl AsRef<str> for TestDb {
    fn as_ref(&self) -> &str {
        &self.url
    }
}

impl AsRef<OsStr> for TestDb {
    fn as_ref(&self) -> &OsStr {
        self.url.as_ref()
    }
}

impl fmt::Display for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// The summary table's rows for a source as text, uuid left out, in a stable order.
pub async fn dump(client: &Client, source: &str) -> Vec<String> {
    let sql = format!(
        "SELECT (to_jsonb(s) - 'uuid')::text FROM {ORG}.reporting_ocpusagelineitem_daily_summary s \
         WHERE source_uuid = '{source}' ORDER BY 1"
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Rows in the summary table of the database at `url`, every source.
pub async fn summary_rows(url: &str) -> i64 {
    connect(url)
        .await
        .query_one(
            "SELECT count(*) FROM org1234567.reporting_ocpusagelineitem_daily_summary",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Stage tables (`costagg_stage_…`) in the database: a month being built, or left by a killed run.
pub async fn stage_tables(client: &Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'costagg\\_stage\\_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Asserts that two dumps hold the same rows, quantities equal to 12 significant digits.
/// Two successful runs of one unit agree to the last digit but for float sums, whose
/// order in the engine's parallel aggregation (as in Trino's) can move the 15th decimal.
pub fn assert_same_rows(a: &[String], b: &[String]) {
    fn same(x: &serde_json::Value, y: &serde_json::Value) -> bool {
        use serde_json::Value::*;
        match (x, y) {
            (Number(p), Number(q)) => {
                let (p, q) = (p.as_f64().unwrap(), q.as_f64().unwrap());
                (p - q).abs() <= 1e-12 * p.abs().max(q.abs()).max(1.0)
            }
            (Object(p), Object(q)) => {
                p.len() == q.len() && p.iter().all(|(k, v)| q.get(k).is_some_and(|w| same(v, w)))
            }
            _ => x == y,
        }
    }
    assert_eq!(a.len(), b.len(), "row counts differ");
    for (x, y) in a.iter().zip(b) {
        let (p, q): (serde_json::Value, serde_json::Value) =
            (serde_json::from_str(x).unwrap(), serde_json::from_str(y).unwrap());
        assert!(same(&p, &q), "rows differ:\n{x}\n{y}");
    }
}

/// Waits until a costagg COPY is running in this test's database (other tests share the server).
pub async fn wait_for_copy(url: &str) {
    let client = connect(url).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'costagg' AND query LIKE 'COPY%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no COPY started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
