//! Memory facts: the limit this process lives under (cgroup first, host fallback), resident
//! and peak RSS, and a watch that warns when a run nears the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sysinfo::System;
use tracing::warn;

/// The memory this process may use: the cgroup limit when there is one, else the host's.
pub fn limit_bytes() -> u64 {
    let mut sys = System::new();
    sys.refresh_memory();
    match sys.cgroup_limits() {
        Some(limits) if limits.total_memory > 0 => limits.total_memory.min(sys.total_memory()),
        _ => sys.total_memory(),
    }
}

/// Peak resident set size of this process so far (Linux `VmHWM`), if the platform tells.
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// Resident set size of this process now (Linux `VmRSS`), if the platform tells.
pub fn rss_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// A `/proc/self/status` line in kB, as bytes.
fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples resident memory every `every` until dropped, and warns once when it passes
/// `share` of `limit_bytes`. A share of 0 (or an unknown RSS) watches nothing.
pub struct MemoryWatch {
    stop: Arc<AtomicBool>,
}

impl MemoryWatch {
    pub fn start(limit_bytes: u64, share: f64, every: Duration) -> MemoryWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let threshold = (limit_bytes as f64 * share) as u64;
        if share > 0.0 && rss_bytes().is_some() {
            tokio::spawn(async move {
                while !stopped.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_bytes().filter(|rss| *rss > threshold) {
                        warn!(
                            rss_bytes = rss,
                            limit_bytes,
                            share,
                            "resident memory passed the warning share of the memory limit; \
                             a smaller profile (or a larger limit) avoids being killed"
                        );
                        break;
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        MemoryWatch { stop }
    }
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
