//! koku's path layout: where one report type's files for one unit live, and listing them.

use std::collections::BTreeMap;

use object_store::ObjectMeta;

use crate::config::InputConfig;
use crate::error::Result;
use crate::input::ReportType;
use crate::input::store::InputStore;
use crate::unit::{Month, UnitOfWork};
use uuid::Uuid;

/// What names a unit's folders in koku's layout.
#[derive(Debug, Clone, Copy)]
pub struct UnitKey<'a> {
    pub org: &'a str,
    pub source: Uuid,
    pub month: Month,
}

impl<'a> UnitKey<'a> {
    pub fn of(unit: &'a UnitOfWork) -> Self {
        UnitKey {
            org: &unit.org,
            source: unit.source,
            month: unit.month,
        }
    }
}

/// The month folder of one report type for a unit, from a template such as
/// `data/parquet/{org}/OCP/{folder}/source={source}/year={year}/month={month}`.
pub fn render(template: &str, unit: UnitKey<'_>, report: ReportType) -> String {
    template
        .replace("{org}", unit.org)
        .replace("{folder}", report.folder())
        .replace("{source}", &unit.source.to_string())
        .replace("{year}", &format!("{:04}", unit.month.year()))
        .replace("{month}", &format!("{:02}", unit.month.number()))
}

/// The files of one report type for a unit: the hourly folder, else the daily roll-up folder.
/// Returns the folder searched (the hourly one when both are empty) and the files, sorted.
pub async fn list_files(
    store: &InputStore,
    input: &InputConfig,
    unit: &UnitOfWork,
    report: ReportType,
) -> Result<(String, Vec<ObjectMeta>)> {
    let hourly = store.location(&render(&input.hourly_template, UnitKey::of(unit), report));
    let files = store.list(&hourly).await?;
    if !files.is_empty() || report == ReportType::PodUsage {
        return Ok((store.display(&hourly), files));
    }
    let daily = store.location(&render(&input.daily_template, UnitKey::of(unit), report));
    let files = store.list(&daily).await?;
    let searched = if files.is_empty() { &hourly } else { &daily };
    Ok((store.display(searched), files))
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

/// The units whose pod usage folders hold files under the root: every object below the
/// template's leading literal folders, matched against the template level by level.
pub async fn list_units(store: &InputStore, template: &str) -> Result<Vec<FoundUnit>> {
    let template = template.replace("{folder}", ReportType::PodUsage.folder());
    let template = Template::parse(&template);
    let start = store.location(&template.start());
    let skip = start.parts().count();
    let mut units: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for meta in store.list(&start).await? {
        if let Some(values) = template.capture(&levels_below(&meta, skip)) {
            let key = (
                values.get("org"),
                values.get("source"),
                format!("{}-{}", values.get("year"), values.get("month")),
            );
            *units.entry(key).or_default() += 1;
        }
    }
    Ok(units
        .into_iter()
        .map(|((org, source, month), files)| FoundUnit {
            org,
            source,
            month,
            files,
        })
        .collect())
}

/// The levels of an object's path after its first `skip` ones.
pub fn levels_below(meta: &ObjectMeta, skip: usize) -> Vec<String> {
    meta.location
        .parts()
        .skip(skip)
        .map(|p| p.as_ref().to_string())
        .collect()
}

/// A folder template split into `/` levels: the leading literal ones, where a listing starts,
/// and the rest, each a literal or text around one `{placeholder}`.
#[derive(Debug, Clone)]
pub struct Template<'a> {
    levels: Vec<&'a str>,
    literal: usize,
}

/// What a path gave a template's placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured(BTreeMap<String, String>);

impl Captured {
    /// The placeholder's value, empty when the template has no such placeholder.
    pub fn get(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }
}

impl<'a> Template<'a> {
    pub fn parse(template: &'a str) -> Template<'a> {
        let levels: Vec<&str> = template.split('/').filter(|l| !l.is_empty()).collect();
        let literal = levels.iter().take_while(|l| placeholder(l).is_none()).count();
        Template { levels, literal }
    }

    /// The leading literal levels: the folder below which every match lies.
    pub fn start(&self) -> String {
        self.levels[..self.literal].join("/")
    }

    /// The placeholders' values when `parts` (the levels of an object's path below the input
    /// root) begin with every level of the template, literal ones included, and go deeper.
    pub fn capture_from_root(&self, parts: &[String]) -> Option<Captured> {
        let literal = &self.levels[..self.literal];
        if parts.len() < literal.len() || parts.iter().zip(literal).any(|(p, l)| p != l) {
            return None;
        }
        self.capture(&parts[literal.len()..])
    }

    /// The placeholders' values when `parts` (the levels of an object's path below
    /// [`Template::start`]) begin with the template's remaining levels and go deeper (the
    /// object lies in the folder, at any depth); `None` otherwise.
    pub fn capture(&self, parts: &[String]) -> Option<Captured> {
        let rest = &self.levels[self.literal..];
        if parts.len() <= rest.len() {
            return None;
        }
        let mut values = BTreeMap::new();
        for (level, part) in rest.iter().zip(parts) {
            match placeholder(level) {
                None if level == part => {}
                None => return None,
                Some((prefix, name, suffix)) => {
                    let value = part.strip_prefix(prefix)?.strip_suffix(suffix)?;
                    if value.is_empty() {
                        return None;
                    }
                    values.insert(name.to_string(), value.to_string());
                }
            }
        }
        Some(Captured(values))
    }
}

/// `source={source}` → (`source=`, `source`, ``); `None` for a literal level.
fn placeholder(level: &str) -> Option<(&str, &str, &str)> {
    let open = level.find('{')?;
    let close = open + level[open..].find('}')?;
    Some((&level[..open], &level[open + 1..close], &level[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> UnitOfWork {
        UnitOfWork::whole_month(
            "org1",
            "6f5f1c0e-0000-4000-8000-000000000001".parse().unwrap(),
            crate::unit::Month::new(2025, 3).unwrap(),
            crate::unit::SchemaName::parse("org1").unwrap(),
        )
    }

    #[test]
    fn the_default_template_gives_kokus_folder_with_a_zero_padded_month() {
        let path = render(
            crate::config::DEFAULT_HOURLY_TEMPLATE,
            UnitKey::of(&unit()),
            ReportType::PodUsage,
        );
        assert_eq!(
            path,
            "data/parquet/org1/OCP/pod_usage/source=6f5f1c0e-0000-4000-8000-000000000001/year=2025/month=03"
        );
    }

    fn local(dir: &std::path::Path) -> InputStore {
        InputStore::open(dir.to_str().unwrap(), &Default::default()).unwrap()
    }

    #[tokio::test]
    async fn units_are_found_by_matching_the_template_level_by_level() {
        let dir = tempfile::tempdir().unwrap();
        let template = crate::config::DEFAULT_HOURLY_TEMPLATE;
        let mut other = unit();
        other.month = crate::unit::Month::new(2025, 4).unwrap();
        for (u, report) in [(unit(), ReportType::PodUsage), (other, ReportType::NodeLabels)] {
            let month = dir.path().join(render(template, UnitKey::of(&u), report));
            std::fs::create_dir_all(&month).unwrap();
            std::fs::write(month.join("a.parquet"), b"").unwrap();
        }
        // A pod usage folder that is not a source= level is not a unit.
        std::fs::create_dir_all(dir.path().join("data/parquet/org1/OCP/pod_usage/tmp")).unwrap();
        let units = list_units(&local(dir.path()), template).await.unwrap();
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

    #[tokio::test]
    async fn listing_descends_into_day_folders_and_skips_markers() {
        let dir = tempfile::tempdir().unwrap();
        let month = dir.path().join(render(
            crate::config::DEFAULT_HOURLY_TEMPLATE,
            UnitKey::of(&unit()),
            ReportType::PodUsage,
        ));
        std::fs::create_dir_all(month.join("day=01")).unwrap();
        std::fs::write(month.join("a.parquet"), b"").unwrap();
        std::fs::write(month.join("day=01/b.parquet"), b"").unwrap();
        std::fs::write(month.join("_SUCCESS"), b"").unwrap();
        std::fs::write(month.join(".a.parquet.crc"), b"").unwrap();
        let store = local(dir.path());
        let (_, files) = list_files(&store, &Default::default(), &unit(), ReportType::PodUsage)
            .await
            .unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.location.filename().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.parquet", "b.parquet"]);
    }
}
