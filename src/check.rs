//! `costagg check`: the config, the database and the input location, each tested and reported
//! on one line, then the units the input holds and the effective settings (secrets masked).

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{self, Config, redact_url};
use crate::error::{Error, Result};
use crate::input::layout::list_units;
use crate::input::store::InputStore;
use crate::reference::KOKU_TABLES;
use crate::sink;

/// What `check` found: the text to print, and the first failure (its exit code is the
/// command's).
pub struct CheckOutcome {
    pub text: String,
    pub failure: Option<Error>,
}

/// Runs every check it can with the config `flags` resolve to; a failed config stops the
/// others, which depend on it.
pub async fn check(flags: &config::Flags<'_>) -> CheckOutcome {
    let mut out = String::new();
    let mut failure = None;
    let mut line = |out: &mut String, what: &str, result: std::result::Result<String, Error>| {
        let (status, text) = match result {
            Ok(text) => ("ok", text),
            Err(e) => {
                let text = e.to_string();
                failure.get_or_insert(e);
                ("FAIL", text)
            }
        };
        let _ = writeln!(out, "{what:<9} {status:<4}  {text}");
    };

    let config = load(flags);
    let config = match config {
        Ok((config, source)) => {
            line(&mut out, "config", Ok(source));
            config
        }
        Err(e) => {
            line(&mut out, "config", Err(e));
            return CheckOutcome { text: out, failure };
        }
    };
    let profile = config.resolve_profile(&std::env::temp_dir());
    let profile = profile.and_then(|p| p.check_spill_dir().map(|()| p)).map(|p| {
        format!(
            "{}: {} partitions, {}-row batches, memory limit {} MiB, spill to {}, {} KiB COPY chunks, {} strings, days per pass {}",
            p.name,
            p.target_partitions,
            p.batch_size,
            p.memory_limit_bytes >> 20,
            p.spill_dir.display(),
            p.copy_buffer_bytes >> 10,
            format!("{:?}", p.strings).to_lowercase(),
            match p.days_per_pass {
                0 => "from the input's size".to_string(),
                n => n.to_string(),
            }
        )
    });
    line(&mut out, "profile", profile);
    let database = match &config.database.url {
        Some(url) => check_database(url, &config, flags.schema).await,
        None => Err(Error::config(
            "--database-url",
            "is not set (give it, or DATABASE_URL); `run --dry-run` works without one",
        )),
    };
    line(&mut out, "database", database);
    let units = match &config.input.root {
        Some(root) => check_input(root, &config).await,
        None => Err(Error::config(
            "--input",
            "is not set (or input.root in the config)",
        )),
    };
    let units = match units {
        Ok((summary, listing)) => {
            line(&mut out, "input", Ok(summary));
            listing
        }
        Err(e) => {
            line(&mut out, "input", Err(e));
            String::new()
        }
    };
    out.push_str(&units);
    out.push_str("\neffective settings (secrets masked):\n");
    out.push_str(&effective_settings(&config));
    CheckOutcome { text: out, failure }
}

/// The config as `run` would see it: file, environment, then these flags.
fn load(flags: &config::Flags<'_>) -> Result<(Config, String)> {
    let (config, path) = Config::resolve(flags)?;
    let source = match path {
        Some(p) => format!("{} (with COSTAGG_* environment overrides)", p.display()),
        None => "built-in defaults (no config file; with COSTAGG_* environment overrides)".into(),
    };
    Ok((config, source))
}

async fn check_database(url: &str, config: &Config, schema: Option<&str>) -> Result<String> {
    // One attempt: check reports what is, it does not wait for the server to come up.
    let mut once = config.database.clone();
    once.connect_attempts = 1;
    let client = sink::connect(url, &once).await?;
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(Error::database("read the server version"))?
        .get(0);
    let mut text = format!("{} (PostgreSQL {version})", redact_url(url));
    if let Some(schema) = schema.or(config.database.schema.as_deref()) {
        let mut present = Vec::new();
        for table in KOKU_TABLES {
            if sink::table_exists(&client, schema, table).await? {
                present.push(table);
            }
        }
        let _ = write!(
            text,
            "; schema {schema} has {}",
            if present.is_empty() {
                "none of koku's tables".into()
            } else {
                present.join(", ")
            }
        );
    }
    Ok(text)
}

/// The input root's units, as a summary line and a listing.
async fn check_input(root: &str, config: &Config) -> Result<(String, String)> {
    let store = InputStore::open(root, &config.input.s3)?;
    let top = store.location("");
    if !root.starts_with("s3://") && !Path::new(root).is_dir() {
        return Err(Error::NoInput {
            report: "any".into(),
            searched: store.display(&top),
        });
    }
    let units = list_units(&store, &config.input.hourly_template).await?;
    let summary = format!(
        "{}: {} units with pod usage files",
        store.display(&top),
        units.len()
    );
    let mut listing = String::new();
    if !units.is_empty() {
        listing.push_str("\nunits (org, source, month, pod usage files):\n");
    }
    for u in &units {
        let _ = writeln!(listing, "  {}  {}  {}  {}", u.org, u.source, u.month, u.files);
    }
    Ok((summary, listing))
}

/// The config as YAML with the database password masked.
fn effective_settings(config: &Config) -> String {
    let mut shown = config.clone();
    shown.database.url = shown.database.url.as_deref().map(redact_url);
    serde_yaml::to_string(&shown).unwrap_or_else(|e| format!("(cannot print the settings: {e})\n"))
}
