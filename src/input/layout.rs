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
