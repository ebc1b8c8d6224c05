//! Broken files, made by mutating real ones: whatever is done to a file — cut short, bytes
//! flipped, its footer length rewritten, a run of its pages scrambled — a run ends with a
//! summary (exit 0) or names the file (exit 3), never a panic or an internal error. Without
//! page checksums (koku's writers do not write them) a mutation can also change a value
//! undetectably; exit 0 there is the best any reader can do.
//!
//! The fixed cases are the regression corpus: each once failed without naming its file, or
//! panicked. The seeded ones explore a bounded number of mutations per kind.

use std::path::{Path, PathBuf};

use costagg::input::ReportType;

use crate::support::*;

/// A small deterministic generator (xorshift64*), so a failing case can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    /// Keep the first `n` bytes.
    Truncate(usize),
    /// Flip the byte at each offset.
    Flip(usize, usize, usize),
    /// Write this value over the footer-length field.
    FooterLength(u32),
    /// Overwrite 32 bytes from this offset of the data region with pseudo-random ones.
    Scramble(usize, u64),
}

fn apply(original: &[u8], m: Mutation) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let n = bytes.len();
    match m {
        Mutation::Truncate(keep) => bytes.truncate(keep.min(n)),
        Mutation::Flip(a, b, c) => {
            for at in [a, b, c] {
                bytes[at % n] ^= 0xff;
            }
        }
        Mutation::FooterLength(len) => bytes[n - 8..n - 4].copy_from_slice(&len.to_le_bytes()),
        Mutation::Scramble(at, seed) => {
            let mut rng = Rng(seed | 1);
            for b in bytes.iter_mut().skip(at).take(32) {
                *b = rng.next() as u8;
            }
        }
    }
    bytes
}

/// Where the data pages end: the footer and its length and magic follow.
fn data_end(bytes: &[u8]) -> usize {
    let n = bytes.len();
    let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    n - 8 - footer
}

/// The first file of each report type in the generated month.
fn targets(root: &Path) -> Vec<PathBuf> {
    let u = unit(SOURCE_A, "2025-10");
    ReportType::ALL
        .iter()
        .map(|&report| {
            let dir = match report {
                ReportType::StorageUsage => root.join(costagg::input::layout::render(
                    costagg::config::DEFAULT_DAILY_TEMPLATE,
                    costagg::input::layout::UnitKey::of(&u),
                    report,
                )),
                _ => folder(root, &u, report),
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files.remove(0)
        })
        .collect()
}

/// Runs the dry run with `file` holding `bytes`; returns the problem, if any, as
/// (mutation, what happened).
fn check(root: &Path, file: &Path, original: &[u8], m: Mutation) -> Option<String> {
    std::fs::write(file, apply(original, m)).unwrap();
    let out = costagg_run_october(SOURCE_A, root)
        .arg("--dry-run")
        .env("COSTAGG_LOG_FORMAT", "text")
        .output()
        .unwrap();
    std::fs::write(file, original).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = file.file_name().unwrap().to_string_lossy();
    let last = stderr.lines().rfind(|l| l.starts_with("costagg:")).unwrap_or("");
    match out.status.code() {
        Some(0) => None,
        Some(3) if stderr.contains(name.as_ref()) => None,
        code => Some(format!("{name} {m:?}: exit {code:?}: {last}")),
    }
}

#[test]
fn mutated_files_give_a_summary_or_an_error_naming_the_file_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), SOURCE_A, "2025-10", 1500, 5);
    let mut failures = Vec::new();
    let mut tried = 0;
    for file in targets(dir.path()) {
        let original = std::fs::read(&file).unwrap();
        let n = original.len();
        let end = data_end(&original);
        // The corpus: cases that once crashed or named no file.
        let mut cases = vec![
            Mutation::Truncate(8),
            Mutation::Truncate(n / 2),
            Mutation::Truncate(n - 1),
            Mutation::FooterLength(1 << 31),
            Mutation::FooterLength(0),
            Mutation::Scramble(end / 4, 3),
            Mutation::Scramble(end.saturating_sub(600), 5),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        for _ in 0..4 {
            cases.push(Mutation::Truncate(rng.below(n)));
            cases.push(Mutation::Flip(rng.below(n), rng.below(n), rng.below(n)));
            cases.push(Mutation::FooterLength(rng.next() as u32 % (2 * n as u32)));
            cases.push(Mutation::Scramble(
                4 + rng.below(end.saturating_sub(36)),
                rng.next(),
            ));
        }
        for m in cases {
            tried += 1;
            failures.extend(check(dir.path(), &file, &original, m));
        }
    }
    assert!(tried >= 80, "{tried} mutations tried");
    assert!(
        failures.is_empty(),
        "{} of {tried} mutations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
