//! Memory facts: the limit this process lives under (cgroup first, host fallback), resident
//! and peak RSS, and a watch that warns when a run nears the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sysinfo::System;
use tracing::warn;

/// Caps glibc's malloc arenas at one per CPU (at least 2) unless `MALLOC_ARENA_MAX` is set.
/// glibc's default, eight arenas per CPU, lets each engine thread keep freed memory in an
/// arena of its own: at 10M rows peak RSS was 664–689 MiB with it and 547–566 MiB with two
/// arenas, at the same speed (`small` profile: 407 → 308 MiB). Call before any thread starts.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        let arenas = libc::c_int::try_from(cpus).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; called at start-up, before any
        // other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

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
