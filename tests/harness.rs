//! Test harness: a database of its own per test on a real PostgreSQL, and units over
//! generated or hand-made Parquet.

use std::path::Path;

use costagg::RunRequest;
use costagg::config::{Config, ProfileSpec};
use costagg::generate::GenerateSummary;
use costagg::unit::{ClusterOverrides, Month, SchemaName, UnitOfWork};
use tokio_postgres::{Client, NoTls};

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

/// A fresh database for one test; returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    connect(&admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let mut url = url::Url::parse(&admin).expect("admin URL parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

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

/// Stage tables (`costagg_stage_…`) in the database: a month being built, or left by a killed run.
pub async fn stage_tables(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'costagg\\_stage\\_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Runs `script` with bash in the project's folder; its trimmed stdout, or a panic naming `what`.
fn bash(script: &str, what: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether the tests run as root (then PostgreSQL's tools run as `postgres`).
fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n"
}

/// A PostgreSQL cluster of one test's own, which the test may stop and start again
/// (`scripts/pg-throwaway.sh` underneath). Removed when dropped.
pub struct PrivateCluster {
    dir: String,
    bin: String,
    port: u16,
    pub url: String,
}

impl PrivateCluster {
    pub fn start() -> PrivateCluster {
        let text = bash(
            ". scripts/pg-throwaway.sh && pg_throwaway_start && echo \"$PG_THROWAWAY_DIR|$PG_THROWAWAY_URL|$PG_THROWAWAY_BIN\"",
            "cannot start a private cluster",
        );
        let parts: Vec<&str> = text.split('|').collect();
        let url = parts[1].to_string();
        let port = url::Url::parse(&url).unwrap().port().unwrap();
        PrivateCluster {
            dir: parts[0].into(),
            bin: parts[2].into(),
            port,
            url,
        }
    }

    /// `pg_ctl` as the cluster's owner (`postgres` when the tests run as root).
    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = format!("{}/pg_ctl", self.bin);
        let mut command = if running_as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &pg_ctl]);
            c
        } else {
            std::process::Command::new(&pg_ctl)
        };
        let out = command
            .args(["-D", &format!("{}/data", self.dir)])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Turns TLS on with a certificate for `localhost` only, signed by a new CA, and refuses
    /// connections without TLS; returns the CA certificate's path.
    pub fn require_tls(&self) -> std::path::PathBuf {
        let data = std::path::Path::new(&self.dir).join("data");
        let (cert, key) = (data.join("server.crt"), data.join("server.key"));
        // A CA of the test's own, and a server certificate it signs for `localhost`.
        let script = format!(
            "set -e; cd {dir}; ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; \
             openssl req -x509 $ec -days 2 -subj /CN=costagg-test-ca -keyout ca.key -out ca.pem; \
             openssl req $ec -subj /CN=localhost -keyout {key} -out server.csr; \
             printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > server.ext; \
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                 -extfile server.ext -out {cert}",
            dir = self.dir,
            key = key.display(),
            cert = cert.display()
        );
        bash(&script, "openssl");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        if running_as_root() {
            let chown = std::process::Command::new("chown")
                .arg("postgres:")
                .args([
                    &cert,
                    &key,
                    &data.join("pg_hba.conf"),
                    &data.join("postgresql.conf"),
                ])
                .status()
                .unwrap();
            assert!(chown.success());
        }
        self.stop();
        self.restart();
        std::path::Path::new(&self.dir).join("ca.pem")
    }

    /// Stops the server at once, cutting every connection (a crash, as far as clients know).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }

    /// Starts the server again on the same port.
    pub fn restart(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port, self.dir
        );
        let log = format!("{}/server.log", self.dir);
        self.pg_ctl(&["-l", &log, "-w", "-o", &options, "start"]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". scripts/pg-throwaway.sh; PG_THROWAWAY_DIR={}; PG_THROWAWAY_BIN={}; \
                 if [ \"$(id -u)\" = 0 ]; then PG_THROWAWAY_AS=(runuser -u postgres --); \
                 else PG_THROWAWAY_AS=(); fi; pg_throwaway_stop",
                self.dir, self.bin
            ))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output();
    }
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

/// moto's S3 server, started for one test with credential checks on: a bucket and a key
/// that may read it (`scripts/s3-test-setup.py`). Stopped when dropped.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

impl S3Server {
    pub fn start() -> S3Server {
        let moto = std::env::var("COSTAGG_TEST_MOTO").unwrap_or_else(|_| {
            panic!(
                "the S3 tests need moto's server: run them with `scripts/test` (scripts/ensure-deps \
                 installs it), or set COSTAGG_TEST_MOTO=/path/to/moto_server"
            )
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {moto}: {e}"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = "costagg-test".to_string();
        let python = std::path::Path::new(&moto).with_file_name("python");
        let out = std::process::Command::new(python)
            .arg("scripts/s3-test-setup.py")
            .args([&endpoint, &bucket])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "s3 setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys = String::from_utf8_lossy(&out.stdout).to_string();
        let mut keys = keys.split_whitespace();
        let (key_id, secret) = (keys.next().unwrap().to_string(), keys.next().unwrap().to_string());
        S3Server {
            child,
            endpoint,
            bucket,
            key_id,
            secret,
        }
    }

    /// Copies every file under `root` to `prefix/` in the bucket.
    pub async fn upload(&self, root: &Path, prefix: &str) {
        use object_store::ObjectStoreExt;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .build()
            .unwrap();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().to_string();
                let location = object_store::path::Path::from(format!("{prefix}/{relative}"));
                store
                    .put(&location, std::fs::read(&path).unwrap().into())
                    .await
                    .unwrap();
            }
        }
    }

    /// The environment a costagg process needs to read the bucket with `key_id`/`secret`.
    pub fn env(&self, command: &mut std::process::Command, key_id: &str, secret: &str) {
        command
            .env("AWS_ACCESS_KEY_ID", key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
            .env("COSTAGG_INPUT__S3__ENDPOINT", &self.endpoint)
            .env("COSTAGG_INPUT__S3__PATH_STYLE", "true");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
