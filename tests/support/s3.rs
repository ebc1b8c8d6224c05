//! moto's S3 server, one per test, for the S3 input tests.

use std::path::Path;

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
        use futures::StreamExt;
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
        let mut files = Vec::new();
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        // Sixteen at a time: a fleet's thousands of small files in seconds.
        let puts = files.into_iter().map(|path| {
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let location = object_store::path::Path::from(format!("{prefix}/{relative}"));
            let store = &store;
            async move {
                store
                    .put(&location, std::fs::read(&path).unwrap().into())
                    .await
                    .unwrap();
            }
        });
        futures::stream::iter(puts)
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
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
