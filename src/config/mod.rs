//! The configuration tree: defaults < YAML file < `COSTAGG_SECTION__KEY` env < flags.

mod profile;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::reference::{CostCategoryPattern, EnabledKeys, NodeRole, Reference};
use crate::unit::SchemaName;
pub use profile::{Profile, ProfileSpec, Strings};

/// Prefix of environment overrides: `COSTAGG_DATABASE__SCHEMA=org1` sets `database.schema`.
pub const ENV_PREFIX: &str = "COSTAGG_";

/// The whole configuration as read from YAML; `resolve` turns the profile into numbers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Name of the performance profile to use (`auto` unless set).
    pub profile: String,
    /// Named performance profiles; built-in ones may be overridden here.
    pub profiles: BTreeMap<String, ProfileSpec>,
    pub input: InputConfig,
    pub database: DatabaseConfig,
    pub reference: ReferenceConfig,
    pub monitor: MonitorConfig,
    pub sweep: SweepConfig,
    pub metrics: MetricsConfig,
}

/// How `costagg sweep` processes share the fleet's units (`sweep::claims`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    /// Schema of the unit claim table, `costagg_sweep_units`, which every sweep process of a
    /// deployment shares (one per database, whatever the orgs' schemas).
    pub state_schema: String,
    /// How long a claim holds without being renewed; a live worker renews it every third of
    /// this. A worker that dies loses its units this long after its last renewal.
    pub lease_seconds: u64,
}

/// `public`: every PostgreSQL database has it, and koku keeps its shared tables there.
pub const DEFAULT_STATE_SCHEMA: &str = "public";
/// A minute: a dead worker's units wait at most this long for another, and renewing every 20 s
/// costs nothing.
pub const DEFAULT_LEASE_SECONDS: u64 = 60;

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            state_schema: DEFAULT_STATE_SCHEMA.into(),
            lease_seconds: DEFAULT_LEASE_SECONDS,
        }
    }
}

/// Where a sweep's metrics go.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A Prometheus Pushgateway, e.g. `http://pushgateway:9091`; none: no push.
    pub push_url: Option<String>,
}

/// Watching the run's memory while it works.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Warn (once) when resident memory passes this share of the memory limit (cgroup, else
    /// host); 0 turns the warning off.
    pub memory_warn_share: f64,
    /// How often resident memory is sampled.
    pub memory_sample_ms: u64,
}

/// Four fifths: early enough to act on before the cgroup's OOM killer does.
pub const DEFAULT_MEMORY_WARN_SHARE: f64 = 0.8;
/// Four samples a second: cheap (one small /proc read) and fine enough for runs of seconds.
pub const DEFAULT_MEMORY_SAMPLE_MS: u64 = 250;

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            memory_warn_share: DEFAULT_MEMORY_WARN_SHARE,
            memory_sample_ms: DEFAULT_MEMORY_SAMPLE_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// Folder or `s3://bucket/prefix` holding koku's `data/parquet/...` tree.
    pub root: Option<String>,
    /// Folder of one report type's hourly files for one unit, relative to `root`.
    pub hourly_template: String,
    /// Folder of one report type's daily roll-up files for one unit, relative to `root`.
    pub daily_template: String,
    /// What to do with malformed rows (label JSON that is not an object, negative or
    /// non-finite or over-1e18 quantities, rows of another month): `skip` them and report the counts, or
    /// `fail` the unit. Unreadable files and schema errors always fail.
    pub bad_rows: BadRows,
    /// S3 settings for an `s3://` root; credentials come from the environment (`AWS_*`).
    pub s3: S3Config,
}

/// S3, MinIO or Ceph/ODF: what the environment's `AWS_*` variables do not already say.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint for MinIO/Ceph, e.g. `https://minio.example:9000` (default: AWS, or
    /// `AWS_ENDPOINT_URL`). An `http://` endpoint allows plain HTTP.
    pub endpoint: Option<String>,
    /// Region (default: `AWS_REGION`, else us-east-1).
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which MinIO and Ceph usually need.
    pub path_style: bool,
    /// A PEM file of CA certificates to trust besides the system's (TLS is always verified).
    pub ca_file: Option<PathBuf>,
}

/// The policy for malformed rows: skip and report them (the default, as koku drops such rows
/// at ingest), or fail the unit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BadRows {
    #[default]
    Skip,
    Fail,
}

/// koku's warehouse layout, from its `get_path_prefix` (not the one in its architecture docs).
pub const DEFAULT_HOURLY_TEMPLATE: &str =
    "data/parquet/{org}/OCP/{folder}/source={source}/year={year}/month={month}";
/// koku's daily roll-up layout: the same with `daily/` after `parquet/`.
pub const DEFAULT_DAILY_TEMPLATE: &str =
    "data/parquet/daily/{org}/OCP/{folder}/source={source}/year={year}/month={month}";

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            root: None,
            hourly_template: DEFAULT_HOURLY_TEMPLATE.into(),
            daily_template: DEFAULT_DAILY_TEMPLATE.into(),
            bad_rows: BadRows::Skip,
            s3: S3Config::default(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/db`; best given as `DATABASE_URL` from a Secret.
    pub url: Option<String>,
    /// Schema to write into; defaults to the org (koku keeps one schema per org).
    pub schema: Option<String>,
    /// How long a run waits for another run of the same unit before giving up.
    pub lock_timeout_seconds: u64,
    /// Upper bound for any one statement (0 = none).
    pub statement_timeout_seconds: u64,
    /// How long to wait for the server to accept a connection.
    pub connect_timeout_seconds: u64,
    /// Connection attempts at start-up before giving up (1 = no retry); waits double from one
    /// second between attempts, at most `connect_retry_max_seconds`.
    pub connect_attempts: u32,
    pub connect_retry_max_seconds: u64,
    /// How a month is replaced (see [`WriteMethod`]).
    pub write_method: WriteMethod,
}

/// How a month's rows are replaced (`database.write_method`). A swap builds the month aside
/// and swaps it in; it is possible only when the summary table is costagg's own and the
/// month's partition holds nothing but the rows being replaced; otherwise rows are deleted and
/// COPied row by row.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WriteMethod {
    /// Swap when possible and the month is large enough to gain from it
    /// (`sink::SWAP_MIN_INPUT_ROWS` pod usage rows), else row by row.
    #[default]
    Auto,
    /// Swap whenever possible, whatever the size.
    Swap,
    /// Always delete and COPY row by row.
    Rows,
}

/// A run that waits longer than this for another run of the same unit has likely hit a stuck
/// job; the CronJob will try again at its next schedule.
pub const DEFAULT_LOCK_TIMEOUT_SECONDS: u64 = 300;
/// Ten seconds covers a cold server start in a pod; longer hides a wrong host.
pub const DEFAULT_CONNECT_TIMEOUT_SECONDS: u64 = 10;
/// Five attempts (waits of 1, 2, 4 and 8 s) ride out a server restart or failover, and give up
/// within half a minute when the database is really gone.
pub const DEFAULT_CONNECT_ATTEMPTS: u32 = 5;
pub const DEFAULT_CONNECT_RETRY_MAX_SECONDS: u64 = 8;

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            schema: None,
            lock_timeout_seconds: DEFAULT_LOCK_TIMEOUT_SECONDS,
            statement_timeout_seconds: 0,
            connect_timeout_seconds: DEFAULT_CONNECT_TIMEOUT_SECONDS,
            connect_attempts: DEFAULT_CONNECT_ATTEMPTS,
            connect_retry_max_seconds: DEFAULT_CONNECT_RETRY_MAX_SECONDS,
            write_method: WriteMethod::Auto,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("schema", &self.schema)
            .field("lock_timeout_seconds", &self.lock_timeout_seconds)
            .field("statement_timeout_seconds", &self.statement_timeout_seconds)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .field("connect_attempts", &self.connect_attempts)
            .field("connect_retry_max_seconds", &self.connect_retry_max_seconds)
            .field("write_method", &self.write_method)
            .finish()
    }
}

/// Reference data used when koku's tables are absent from the schema.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReferenceConfig {
    /// Enabled OCP tag keys, used when `reporting_enabledtagkeys` does not exist.
    pub enabled_tag_keys: Vec<String>,
    /// Cost categories, used when `reporting_ocp_cost_category_namespace` does not exist.
    pub cost_categories: Vec<CostCategoryPattern>,
    /// Node roles, used when `reporting_ocp_nodes` does not exist.
    pub node_roles: Vec<NodeRole>,
}

impl ReferenceConfig {
    /// The configured reference data, used where the schema lacks koku's table.
    pub fn reference(&self) -> Reference {
        Reference {
            enabled_keys: EnabledKeys::from_enabled(self.enabled_tag_keys.iter().cloned()),
            cost_categories: self.cost_categories.clone(),
            node_roles: self.node_roles.clone(),
        }
    }
}

/// A connection URL with its password replaced, for logs, errors and `Debug`: the password of
/// the user info, and a `password=` query parameter (libpq takes either).
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "<unparsable url>".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("****"));
    }
    if u.query_pairs().any(|(key, _)| key == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(key, value)| {
                let value = if key == "password" {
                    "****".into()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(&pairs);
    }
    u.to_string()
}

/// The flags that override config keys (`run` and `check` share them).
#[derive(Debug, Clone, Default)]
pub struct Flags<'a> {
    pub config: Option<&'a Path>,
    pub profile: Option<&'a str>,
    pub schema: Option<&'a str>,
    pub input: Option<&'a str>,
    pub database_url: Option<&'a str>,
}

impl Config {
    /// The config a command runs with: defaults < file (`--config`, else the shipped default
    /// when present) < `COSTAGG_*` environment < flags, validated. Also returns the file read.
    pub fn resolve(flags: &Flags) -> Result<(Config, Option<PathBuf>)> {
        let path = flags.config.map(Path::to_path_buf).or_else(default_path);
        let mut config = Config::load(path.as_deref(), std::env::vars())?;
        let set = |flag: Option<&str>, key: &mut Option<String>| {
            if let Some(v) = flag {
                *key = Some(v.to_string());
            }
        };
        if let Some(p) = flags.profile {
            config.profile = p.to_string();
        }
        set(flags.schema, &mut config.database.schema);
        set(flags.input, &mut config.input.root);
        set(flags.database_url, &mut config.database.url);
        config.validate()?;
        Ok((config, path))
    }

    /// Reads `path` (or only defaults when `None`), then applies `COSTAGG_*` overrides from `env`.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut tree = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::config("--config", format!("cannot read {}: {e}", p.display())))?;
                serde_yaml::from_str::<serde_yaml::Value>(&text).map_err(|e| {
                    Error::config("--config", format!("{} is not valid YAML: {e}", p.display()))
                })?
            }
            None => serde_yaml::Value::Mapping(Default::default()),
        };
        if tree.is_null() {
            tree = serde_yaml::Value::Mapping(Default::default());
        }
        for (name, value) in env {
            if let Some(dotted) = env_key(&name) {
                set_dotted(&mut tree, &dotted, &value)?;
            }
        }
        let source = path.map_or("defaults".to_string(), |p| p.display().to_string());
        let mut config: Config = serde_yaml::from_value(tree)
            .map_err(|e| Error::config(source, format!("does not match the config format: {e}")))?;
        if config.profile.is_empty() {
            config.profile = "auto".into();
        }
        Ok(config)
    }

    /// Every problem at once, each naming its key (`Error::ConfigProblems` when several).
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.profile != "auto" && self.profile_spec(&self.profile).is_none() {
            problems.push(Error::config(
                "profile",
                format!(
                    "names `{}`, which is not a profile (have: auto, {})",
                    self.profile,
                    self.profile_names().join(", ")
                ),
            ));
        }
        for (key, template) in [
            ("input.hourly_template", &self.input.hourly_template),
            ("input.daily_template", &self.input.daily_template),
        ] {
            for needed in ["{folder}", "{source}"] {
                if !template.contains(needed) {
                    problems.push(Error::config(key, format!("must contain {needed}")));
                }
            }
        }
        if let Some(Err(e)) = self.database.schema.as_deref().map(SchemaName::parse) {
            problems.push(Error::config("database.schema", e));
        }
        for (i, c) in self.reference.cost_categories.iter().enumerate() {
            if c.namespace.is_empty() {
                problems.push(Error::config(
                    format!("reference.cost_categories[{i}].namespace"),
                    "is empty",
                ));
            }
        }
        if self.database.connect_attempts == 0 {
            problems.push(Error::config("database.connect_attempts", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.monitor.memory_warn_share) {
            problems.push(Error::config(
                "monitor.memory_warn_share",
                "must be between 0 and 1",
            ));
        }
        if self.monitor.memory_sample_ms == 0 {
            problems.push(Error::config("monitor.memory_sample_ms", "must be at least 1"));
        }
        for (i, r) in self.reference.node_roles.iter().enumerate() {
            if r.node.is_empty() {
                problems.push(Error::config(
                    format!("reference.node_roles[{i}].node"),
                    "is empty",
                ));
            }
        }
        Error::config_problems(problems).map_or(Ok(()), Err)
    }

    pub fn profile_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ProfileSpec::builtin().into_keys().map(String::from).collect();
        names.extend(self.profiles.keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    /// A named profile: the config file's own, else a built-in one.
    pub fn profile_spec(&self, name: &str) -> Option<ProfileSpec> {
        self.profiles
            .get(name)
            .cloned()
            .or_else(|| ProfileSpec::builtin().remove(name))
    }

    /// The chosen profile turned into numbers for this machine.
    pub fn resolve_profile(&self, spill_default: &Path) -> Result<Profile> {
        let spec = if self.profile == "auto" {
            self.profile_spec("auto").unwrap_or_default()
        } else {
            self.profile_spec(&self.profile)
                .ok_or_else(|| Error::config("profile", format!("`{}` is not a profile", self.profile)))?
        };
        Ok(spec.resolve(&self.profile, spill_default))
    }
}

/// `COSTAGG_DATABASE__LOCK_TIMEOUT_SECONDS` → `database.lock_timeout_seconds`. Only names with
/// a `__` section separator are config keys; others (`COSTAGG_ORG`, `COSTAGG_LOG_FORMAT`) are
/// the environment twins of flags.
fn env_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    if !rest.contains("__") {
        return None;
    }
    Some(rest.to_ascii_lowercase().replace("__", "."))
}

fn set_dotted(tree: &mut serde_yaml::Value, dotted: &str, raw: &str) -> Result<()> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(raw).unwrap_or_else(|_| serde_yaml::Value::String(raw.into()));
    let mut node = tree;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = node.as_mapping_mut().ok_or_else(|| {
            Error::config(
                dotted,
                "is set from the environment but its parent is not a section",
            )
        })?;
        let key = serde_yaml::Value::String((*part).into());
        if i + 1 == parts.len() {
            map.insert(key, value);
            return Ok(());
        }
        node = map
            .entry(key)
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    }
    Ok(())
}

/// The default config file shipped with costagg, found next to the working directory.
pub fn default_path() -> Option<PathBuf> {
    let p = PathBuf::from("config/costagg.yaml");
    p.exists().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of the config structs, dotted (`profiles.<name>.batch_size`); lists and
    /// scalars are leaves.
    fn keys(prefix: &str, value: &serde_yaml::Value, out: &mut std::collections::BTreeSet<String>) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                for (k, v) in map {
                    let k = k.as_str().expect("string keys");
                    let dotted = if prefix.is_empty() {
                        k.to_string()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    keys(&dotted, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }

    #[test]
    fn the_shipped_config_lists_the_builtin_profiles_as_the_program_knows_them() {
        let config: Config = serde_yaml::from_str(include_str!("../../config/costagg.yaml")).unwrap();
        for (name, spec) in ProfileSpec::builtin() {
            assert_eq!(config.profiles.get(name), Some(&spec), "profile `{name}`");
        }
    }

    #[test]
    fn the_readme_config_table_lists_every_key_and_nothing_else() {
        let mut config = Config::default();
        config.profiles.insert("<name>".into(), ProfileSpec::default());
        let mut in_structs = std::collections::BTreeSet::new();
        keys("", &serde_yaml::to_value(&config).unwrap(), &mut in_structs);

        let readme = include_str!("../../README.md");
        let section = readme
            .split("## Configuration")
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        let mut in_readme = std::collections::BTreeSet::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let first_cell = line.split('|').nth(1).unwrap();
            in_readme.extend(first_cell.split('`').skip(1).step_by(2).map(String::from));
        }
        assert_eq!(
            in_structs, in_readme,
            "README's config table and the config structs differ"
        );
    }

    #[test]
    fn env_overrides_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "database:\n  schema: from_file\n  lock_timeout_seconds: 7\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            [
                ("COSTAGG_DATABASE__SCHEMA".to_string(), "from_env".to_string()),
                ("COSTAGG_LOG_FORMAT".to_string(), "json".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(c.database.schema.as_deref(), Some("from_env"));
        assert_eq!(c.database.lock_timeout_seconds, 7);
        assert_eq!(c.profile, "auto");
    }

    #[test]
    fn every_config_problem_is_listed_with_its_key() {
        let mut c = Config {
            profile: "huge".into(),
            ..Default::default()
        };
        c.database.connect_attempts = 0;
        c.database.schema = Some("1org".into());
        let e = c.validate().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.starts_with("3 config problems:"), "{text}");
        for line in [
            "\n  config: `profile` names `huge`, which is not a profile",
            "\n  config: `database.schema` `1org` is not a valid schema name",
            "\n  config: `database.connect_attempts` must be at least 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "databse:\n  schema: x\n").unwrap();
        let e = Config::load(Some(&path), []).unwrap_err().to_string();
        assert!(e.contains("databse"), "{e}");
    }

    #[test]
    fn passwords_are_redacted_in_debug_output() {
        let mut c = Config::default();
        c.database.url = Some("postgres://u:s3cret@h:5432/db".into());
        let text = format!("{c:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("****"));
        let in_query = redact_url("postgres://h/db?user=u&password=s3cret&sslmode=require");
        assert_eq!(in_query, "postgres://h/db?user=u&password=****&sslmode=require");
        let bad_mode = crate::sink::tls::settings("postgres://h/db?password=s3cret&sslmode=bogus");
        let text = bad_mode.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("sslmode `bogus`") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[test]
    fn every_shipped_config_file_parses_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let c = Config::load(Some(&path), []).unwrap();
                c.validate().unwrap();
                for name in c.profile_names() {
                    c.profile_spec(&name).unwrap();
                }
                seen += 1;
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn the_kubernetes_configmaps_config_parses_validates_and_resolves() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/configmap.yaml");
        let map: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        let text = map["data"]["costagg.yaml"].as_str().expect("data.costagg.yaml");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let c = Config::load(Some(file.path()), []).unwrap();
        c.validate().unwrap();
        let profile = c.resolve_profile(Path::new("/tmp")).unwrap();
        assert_eq!(
            profile.spill_dir,
            Path::new("/spill"),
            "spills into the CronJob's emptyDir"
        );
        assert!(c.input.root.as_deref().unwrap().starts_with("s3://"));
    }
}
