//! Performance profiles: named presets, and `auto`, turned into numbers for this machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A profile as written in YAML; zero or absent means "derive it".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileSpec {
    /// Parallel readers and aggregation partitions (0 = the CPUs available).
    pub target_partitions: usize,
    /// Rows per record batch (0 = 8192, DataFusion's default).
    pub batch_size: usize,
    /// Memory the engine may use before it spills (0 = half the memory limit).
    pub memory_limit_bytes: u64,
    /// Where the engine spills (default: the system temp dir).
    pub spill_dir: Option<PathBuf>,
    /// Bytes buffered before a COPY chunk is sent to PostgreSQL (0 = 1 MiB).
    pub copy_buffer_bytes: usize,
    /// How string columns are held while summarised (absent = `view`).
    pub strings: Option<Strings>,
    /// Days summarised per pass, each pass's rows written while the next is summarised
    /// (0 = derived from the input's size at run time).
    pub days_per_pass: u32,
    /// Units a sweep process summarises at once, sharing the memory budget and partitions
    /// (0 = the CPUs, at most [`MAX_DERIVED_WORKERS`]).
    pub workers: usize,
}

/// How the string columns of the line items (namespace, node, pod, labels, ...) are held in
/// memory. Measured at 10M rows: `view` takes the summary from ~6.5 s to ~4.8 s
/// (benches/README.md).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Strings {
    /// Arrow string views: a 16-byte view per value, short values inline and long ones
    /// pointing into the decoded Parquet page, so a dictionary-encoded column's values are not
    /// copied per row, and hashing and comparing start from the inline prefix.
    #[default]
    View,
    /// Plain Arrow strings: every value copied into one contiguous buffer.
    Plain,
}

/// The numbers a run uses.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Profile {
    pub name: String,
    pub target_partitions: usize,
    pub batch_size: usize,
    pub memory_limit_bytes: u64,
    pub spill_dir: PathBuf,
    pub copy_buffer_bytes: usize,
    pub strings: Strings,
    /// 0: derived from the input's size at run time ([`Profile::days_per_pass_for`]).
    pub days_per_pass: u32,
    /// Units a sweep summarises at once.
    pub workers: usize,
}

/// DataFusion's own default batch size; larger batches helped little in measurements.
pub const DEFAULT_BATCH_SIZE: usize = 8192;
/// One MiB per COPY chunk keeps the socket busy without holding much memory.
pub const DEFAULT_COPY_BUFFER_BYTES: usize = 1 << 20;

/// Pod usage rows `days_per_pass: 0` aims a pass at: the engine's memory follows a pass's
/// groups, so passes of about this size keep a 100M-row month to the memory of a 10M-row one.
/// A pass also costs ~0.1 s of its own (planning, its small tables, its files' footers), so a
/// month of fewer rows is one pass: at 1M rows, 4-day passes took the summary from 0.9 to 1.8 s.
pub const PASS_TARGET_ROWS: u64 = 2_500_000;

/// `workers: 0` takes the CPUs, up to this: a unit's COPY and commit leave its CPU idle part of
/// the time, which a second unit fills, but past a few units at once PostgreSQL's side, not
/// ours, is what they wait for.
pub const MAX_DERIVED_WORKERS: usize = 4;

impl Profile {
    /// The spill folder must exist on this machine: the engine fails without it, and only
    /// when it first spills, with an I/O error that names no path.
    pub fn check_spill_dir(&self) -> crate::error::Result<()> {
        if self.spill_dir.is_dir() {
            return Ok(());
        }
        Err(crate::error::Error::LocalIo {
            what: format!(
                "the engine cannot spill to the folder profiles.{}.spill_dir names",
                self.name
            ),
            path: self.spill_dir.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
        })
    }

    /// The days per pass for `pod_rows` pod usage rows over `days` days: as configured, or, when
    /// 0, as few passes as keep each to about [`PASS_TARGET_ROWS`] rows (0 in the result: one
    /// pass). 10M rows over 31 days: 4 passes of 8 days; 100M rows: 1-day passes.
    pub fn days_per_pass_for(&self, pod_rows: u64, days: u32) -> u32 {
        if self.days_per_pass > 0 || pod_rows <= PASS_TARGET_ROWS {
            return self.days_per_pass;
        }
        let passes = pod_rows.div_ceil(PASS_TARGET_ROWS);
        u64::from(days.max(1)).div_ceil(passes) as u32
    }

    /// One of `workers` units' share of this profile: the memory budget and the partitions
    /// divided between them (at least one partition each), so that the units together stay
    /// within what the profile allows one process.
    pub fn share(&self, workers: usize) -> Profile {
        let workers = workers.max(1);
        Profile {
            target_partitions: (self.target_partitions / workers).max(1),
            memory_limit_bytes: self.memory_limit_bytes / workers as u64,
            ..self.clone()
        }
    }
}

impl ProfileSpec {
    /// The built-in presets; a config file may override any of them by name.
    pub fn builtin() -> BTreeMap<&'static str, ProfileSpec> {
        let mib = 1u64 << 20;
        BTreeMap::from([
            ("auto", ProfileSpec::default()),
            (
                "small",
                ProfileSpec {
                    target_partitions: 1,
                    batch_size: 4096,
                    memory_limit_bytes: 256 * mib,
                    copy_buffer_bytes: 256 << 10,
                    workers: 1,
                    ..Default::default()
                },
            ),
            (
                "medium",
                ProfileSpec {
                    target_partitions: 2,
                    batch_size: 8192,
                    memory_limit_bytes: 1024 * mib,
                    workers: 2,
                    ..Default::default()
                },
            ),
            (
                "large",
                ProfileSpec {
                    target_partitions: 0,
                    batch_size: 16384,
                    memory_limit_bytes: 4096 * mib,
                    copy_buffer_bytes: 4 << 20,
                    workers: 4,
                    ..Default::default()
                },
            ),
        ])
    }

    pub fn resolve(&self, name: &str, spill_default: &Path) -> Profile {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory_limit_bytes = if self.memory_limit_bytes > 0 {
            self.memory_limit_bytes
        } else {
            crate::memory::limit_bytes() / 2
        };
        Profile {
            name: name.to_string(),
            target_partitions: if self.target_partitions > 0 {
                self.target_partitions
            } else {
                cpus
            },
            batch_size: if self.batch_size > 0 {
                self.batch_size
            } else {
                DEFAULT_BATCH_SIZE
            },
            memory_limit_bytes,
            spill_dir: self
                .spill_dir
                .clone()
                .unwrap_or_else(|| spill_default.to_path_buf()),
            copy_buffer_bytes: if self.copy_buffer_bytes > 0 {
                self.copy_buffer_bytes
            } else {
                DEFAULT_COPY_BUFFER_BYTES
            },
            strings: self.strings.unwrap_or_default(),
            days_per_pass: self.days_per_pass,
            workers: if self.workers > 0 {
                self.workers
            } else {
                cpus.min(MAX_DERIVED_WORKERS)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_derived_from_the_rows_per_day_unless_configured() {
        let auto = ProfileSpec::default().resolve("auto", Path::new("/tmp"));
        // Up to 2.5M rows: one pass.
        assert_eq!(auto.days_per_pass_for(1_000_000, 31), 0);
        assert_eq!(auto.days_per_pass_for(2_500_000, 31), 0);
        // 10M rows over 31 days: 4 passes, of 8 days (the last 7).
        assert_eq!(auto.days_per_pass_for(10_000_000, 31), 8);
        // 20M rows: 8 passes of 4 days.
        assert_eq!(auto.days_per_pass_for(20_000_000, 31), 4);
        // 100M rows: 40 passes of 2.5M would be under a day each; 1 day.
        assert_eq!(auto.days_per_pass_for(100_000_000, 31), 1);
        // A 5-day range of 10M rows: 4 passes wanted, so 2-day passes (2, 2 and 1 days).
        assert_eq!(auto.days_per_pass_for(10_000_000, 5), 2);
        let two = ProfileSpec {
            days_per_pass: 2,
            ..Default::default()
        };
        let two = two.resolve("two", Path::new("/tmp"));
        assert_eq!(two.days_per_pass_for(1_000, 31), 2);
        assert_eq!(two.days_per_pass_for(100_000_000, 31), 2);
    }

    #[test]
    fn a_workers_share_divides_the_budget_and_partitions_and_keeps_one_partition() {
        let spec = ProfileSpec {
            target_partitions: 4,
            memory_limit_bytes: 1 << 30,
            workers: 2,
            ..Default::default()
        };
        let profile = spec.resolve("p", Path::new("/tmp"));
        assert_eq!(profile.workers, 2);
        let half = profile.share(2);
        assert_eq!((half.target_partitions, half.memory_limit_bytes), (2, 1 << 29));
        let eighth = profile.share(8);
        assert_eq!(
            (eighth.target_partitions, eighth.memory_limit_bytes),
            (1, 1 << 27)
        );
        assert_eq!(profile.share(0), profile, "no workers is one");
    }
}
