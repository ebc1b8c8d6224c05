//! koku's path layout: where one report type's files for one unit live, and listing them.

use std::path::{Path, PathBuf};

use crate::config::InputConfig;
use crate::error::{Error, Result};
use crate::input::ReportType;
use crate::unit::UnitOfWork;

/// The month folder of one report type for a unit, from a template such as
/// `data/parquet/{org}/OCP/{folder}/source={source}/year={year}/month={month}`.
pub fn render(template: &str, unit: &UnitOfWork, report: ReportType) -> String {
    template
        .replace("{org}", &unit.org)
        .replace("{folder}", report.folder())
        .replace("{source}", &unit.source.to_string())
        .replace("{year}", &format!("{:04}", unit.year))
        .replace("{month}", &format!("{:02}", unit.month))
}

/// The files of one report type for a unit: the hourly folder, else the daily roll-up folder.
/// Returns the folder searched (the hourly one when both are empty) and the files, sorted.
pub fn list_files(
    root: &Path,
    input: &InputConfig,
    unit: &UnitOfWork,
    report: ReportType,
) -> Result<(PathBuf, Vec<PathBuf>)> {
    let hourly = root.join(render(&input.hourly_template, unit, report));
    let files = list_dir(&hourly)?;
    if !files.is_empty() || report == ReportType::PodUsage {
        return Ok((hourly, files));
    }
    let daily = root.join(render(&input.daily_template, unit, report));
    let files = list_dir(&daily)?;
    Ok((if files.is_empty() { hourly } else { daily }, files))
}

/// A unit's pod usage month folder found under a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundUnit {
    pub org: String,
    pub source: String,
    /// `YYYY-MM`.
    pub month: String,
    pub files: usize,
}

/// The units whose pod usage folders hold files under `root`, found by matching `template`'s
/// folders level by level (a level is a literal, or text around one `{placeholder}`).
pub fn list_units(root: &Path, template: &str) -> Result<Vec<FoundUnit>> {
    let template = template.replace("{folder}", ReportType::PodUsage.folder());
    let levels: Vec<&str> = template.split('/').filter(|l| !l.is_empty()).collect();
    let mut found = Vec::new();
    walk(root, &levels, &mut Vec::new(), &mut found)?;
    found.sort_by(|a, b| (&a.org, &a.source, &a.month).cmp(&(&b.org, &b.source, &b.month)));
    Ok(found)
}

fn walk(
    dir: &Path,
    levels: &[&str],
    values: &mut Vec<(String, String)>,
    found: &mut Vec<FoundUnit>,
) -> Result<()> {
    let Some((level, rest)) = levels.split_first() else {
        let files = list_dir(dir)?.len();
        let value = |name: &str| {
            values
                .iter()
                .find(|(n, _)| n == name)
                .map_or(String::new(), |(_, v)| v.clone())
        };
        if files > 0 {
            found.push(FoundUnit {
                org: value("org"),
                source: value("source"),
                month: format!("{}-{}", value("year"), value("month")),
                files,
            });
        }
        return Ok(());
    };
    let Some((prefix, name, suffix)) = placeholder(level) else {
        let next = dir.join(level);
        return if next.is_dir() {
            walk(&next, rest, values, found)
        } else {
            Ok(())
        };
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let folder = entry.file_name().to_string_lossy().to_string();
        let value = folder.strip_prefix(prefix).and_then(|v| v.strip_suffix(suffix));
        if let Some(value) = value.filter(|v| !v.is_empty() && entry.path().is_dir()) {
            values.push((name.to_string(), value.to_string()));
            walk(&entry.path(), rest, values, found)?;
            values.pop();
        }
    }
    Ok(())
}

/// `source={source}` → (`source=`, `source`, ``); `None` for a literal level.
fn placeholder(level: &str) -> Option<(&str, &str, &str)> {
    let open = level.find('{')?;
    let close = open + level[open..].find('}')?;
    Some((&level[..open], &level[open + 1..close], &level[close + 1..]))
}

/// Every data file under `dir`, any depth (tolerates `day=DD/` levels), skipping hidden and
/// marker files (`.crc`, `_SUCCESS`). A missing folder has no files.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::InputUnreadable {
                    file: d.display().to_string(),
                    problem: e.to_string(),
                });
            }
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::InputUnreadable {
                file: d.display().to_string(),
                problem: e.to_string(),
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> UnitOfWork {
        UnitOfWork {
            org: "org1".into(),
            source: "6f5f1c0e-0000-4000-8000-000000000001".parse().unwrap(),
            year: 2025,
            month: 3,
            start_date: UnitOfWork::first_day(2025, 3),
            end_date: UnitOfWork::first_day(2025, 3),
            cluster_id: None,
            cluster_alias: None,
            report_period_id: None,
            schema: "org1".into(),
        }
    }

    #[test]
    fn the_default_template_gives_kokus_folder_with_a_zero_padded_month() {
        let path = render(
            crate::config::DEFAULT_HOURLY_TEMPLATE,
            &unit(),
            ReportType::PodUsage,
        );
        assert_eq!(
            path,
            "data/parquet/org1/OCP/pod_usage/source=6f5f1c0e-0000-4000-8000-000000000001/year=2025/month=03"
        );
    }

    #[test]
    fn units_are_found_by_matching_the_template_level_by_level() {
        let dir = tempfile::tempdir().unwrap();
        let template = crate::config::DEFAULT_HOURLY_TEMPLATE;
        let mut other = unit();
        other.month = 4;
        for (u, report) in [(unit(), ReportType::PodUsage), (other, ReportType::NodeLabels)] {
            let month = dir.path().join(render(template, &u, report));
            std::fs::create_dir_all(&month).unwrap();
            std::fs::write(month.join("a.parquet"), b"").unwrap();
        }
        // A pod usage folder that is not a source= level is not a unit.
        std::fs::create_dir_all(dir.path().join("data/parquet/org1/OCP/pod_usage/tmp")).unwrap();
        let units = list_units(dir.path(), template).unwrap();
        assert_eq!(
            units,
            [FoundUnit {
                org: "org1".into(),
                source: "6f5f1c0e-0000-4000-8000-000000000001".into(),
                month: "2025-03".into(),
                files: 1,
            }]
        );
    }

    #[test]
    fn listing_descends_into_day_folders_and_skips_markers() {
        let dir = tempfile::tempdir().unwrap();
        let month = dir.path().join(render(
            crate::config::DEFAULT_HOURLY_TEMPLATE,
            &unit(),
            ReportType::PodUsage,
        ));
        std::fs::create_dir_all(month.join("day=01")).unwrap();
        std::fs::write(month.join("a.parquet"), b"").unwrap();
        std::fs::write(month.join("day=01/b.parquet"), b"").unwrap();
        std::fs::write(month.join("_SUCCESS"), b"").unwrap();
        std::fs::write(month.join(".a.parquet.crc"), b"").unwrap();
        let (_, files) = list_files(dir.path(), &Default::default(), &unit(), ReportType::PodUsage).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["a.parquet", "b.parquet"]);
    }
}
