//! Memory facts: the limit this process lives under (cgroup first, host fallback) and peak RSS.

use sysinfo::System;

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
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
