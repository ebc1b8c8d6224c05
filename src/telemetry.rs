//! Logging: human-readable text on a terminal, one JSON object per line otherwise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The default filter: costagg's own INFO lines, only warnings from libraries.
pub const DEFAULT_FILTER: &str = "warn,costagg=info";

/// Installs the global subscriber. `level` (from `--log-level`) wins over `RUST_LOG`.
/// `COSTAGG_LOG_FORMAT=json|text` overrides the terminal check.
pub fn init(level: Option<&str>) {
    let filter = match level {
        Some(l) if !l.contains('=') && !l.contains(',') => EnvFilter::new(format!("warn,costagg={l}")),
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
    };
    let json = match std::env::var("COSTAGG_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).with_current_span(true).init();
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
}
