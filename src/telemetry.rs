//! Logging and progress: human-readable text and a progress spinner on a terminal, one JSON
//! object per line otherwise.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// The default filter: costagg's own INFO lines, only warnings from libraries.
pub const DEFAULT_FILTER: &str = "warn,costagg=info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (not on a terminal, or `COSTAGG_LOG_FORMAT=json`).
    Json,
    /// Readable lines; `terminal` when stderr is one (progress and colours then).
    Text { terminal: bool },
}

/// The spinner, when one is shown; log lines suspend it while they print.
static SPINNER: OnceLock<ProgressBar> = OnceLock::new();

/// Installs the global subscriber. `level` (from `--log-level`) wins over `RUST_LOG`.
/// `COSTAGG_LOG_FORMAT=json|text` overrides the terminal check.
pub fn init(level: Option<&str>) -> Format {
    let filter = match level {
        Some(l) if !l.contains('=') && !l.contains(',') => EnvFilter::new(format!("warn,costagg={l}")),
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
    };
    let terminal = std::io::stderr().is_terminal();
    let format = match std::env::var("COSTAGG_LOG_FORMAT").as_deref() {
        Ok("json") => Format::Json,
        Ok("text") => Format::Text { terminal },
        _ if terminal => Format::Text { terminal },
        _ => Format::Json,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr);
    match format {
        // A stage's span closes with the fields recorded when it ended (rows, files, bytes)
        // and its time; in text mode the run report says the same more readably.
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_events(FmtSpan::CLOSE)
            .init(),
        Format::Text { terminal } => builder.with_target(false).with_ansi(terminal).init(),
    }
    format
}

/// Shows a spinner with the run's stage and rows on a terminal in text mode, until the
/// returned guard is dropped. Silent otherwise.
pub fn show_progress(format: Format, progress: Arc<Progress>) -> Option<SpinnerGuard> {
    if format != (Format::Text { terminal: true }) {
        return None;
    }
    let bar = SPINNER.get_or_init(ProgressBar::new_spinner).clone();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.reset();
    let ticker = bar.clone();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let thread = std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (rows, files) = (progress.rows(), progress.files());
            let message = match (files, rows) {
                (0, _) => progress.stage().to_string(),
                (_, 0) => format!("{} ({files} files)", progress.stage()),
                _ => format!("{} ({files} files): {rows} summary rows", progress.stage()),
            };
            ticker.set_message(message);
            ticker.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    Some(SpinnerGuard {
        bar,
        done,
        thread: Some(thread),
    })
}

/// Stops and clears the spinner when dropped.
pub struct SpinnerGuard {
    bar: ProgressBar,
    done: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SpinnerGuard {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

/// stderr, with the spinner (if any) lifted while a log line prints.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match SPINNER.get() {
            Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stderr().write(buf)),
            _ => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;
    fn make_writer(&'a self) -> Self::Writer {
        Stderr
    }
}

/// What a run is doing, for a progress display: its stage and the summary rows so far.
#[derive(Debug)]
pub struct Progress {
    rows: std::sync::atomic::AtomicU64,
    files: std::sync::atomic::AtomicUsize,
    stage: std::sync::Mutex<&'static str>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            rows: Default::default(),
            files: Default::default(),
            stage: std::sync::Mutex::new("starting"),
        }
    }
}

impl Progress {
    pub fn set_stage(&self, stage: &'static str) {
        if let Ok(mut s) = self.stage.lock() {
            *s = stage;
        }
    }
    pub fn stage(&self) -> &'static str {
        self.stage.lock().map_or("", |s| *s)
    }
    pub fn add_rows(&self, rows: u64) {
        self.rows.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
    }
    pub fn set_files(&self, files: usize) {
        self.files.store(files, std::sync::atomic::Ordering::Relaxed);
    }
    /// Input files being read.
    pub fn files(&self) -> usize {
        self.files.load(std::sync::atomic::Ordering::Relaxed)
    }
    pub fn rows(&self) -> u64 {
        self.rows.load(std::sync::atomic::Ordering::Relaxed)
    }
}
