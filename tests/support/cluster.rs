//! A PostgreSQL cluster of one test's own, for the faults a shared server cannot stage: a
//! server stopped and started again, TLS required.

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
