//! A sweep's units: every (org, source, month) whose pod usage folder holds files under the
//! input root, found in one listing (per org with `--org`), each with the digest of the files
//! its run would read. No file is opened.

use std::collections::BTreeMap;
use std::time::Instant;

use object_store::ObjectMeta;
use uuid::Uuid;

use crate::config::InputConfig;
use crate::error::Result;
use crate::input::ReportType;
use crate::input::layout::{Template, levels_below};
use crate::input::store::InputStore;
use crate::unit::Month;

/// A unit found under the root, with the digest of its files as its run selects them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub org: String,
    pub source: Uuid,
    pub month: Month,
    /// `fingerprint::of_files` of the files a run of the unit reads.
    pub fingerprint: String,
    pub files: usize,
}

/// What the listing found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Sorted by org, source and month.
    pub units: Vec<Listed>,
    /// Folders that look like units but cannot be one, each with why (a source that is not a
    /// UUID, a month that is not one, report files without pod usage files).
    pub ignored: Vec<String>,
    /// Objects listed, matching or not.
    pub objects: usize,
    pub ms: u64,
}

/// Which of a unit's folders a file came from.
type Folders = BTreeMap<(ReportType, Granularity), Vec<ObjectMeta>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Granularity {
    Hourly,
    Daily,
}

/// Lists the root once per starting folder (the templates' literal levels, with the org filled
/// in for each of `orgs` when given) and groups what matches the hourly or the daily template
/// into units of `orgs` (all when empty) and of the months from `months.0` to `months.1`.
pub async fn discover(
    store: &InputStore,
    input: &InputConfig,
    orgs: &[String],
    months: (Month, Month),
) -> Result<Discovery> {
    let started = Instant::now();
    let mut discovery = Discovery::default();
    let templates = [
        (Granularity::Hourly, Template::parse(&input.hourly_template)),
        (Granularity::Daily, Template::parse(&input.daily_template)),
    ];
    let skip = store.location("").parts().count();
    let mut units: BTreeMap<(String, Uuid, Month), Folders> = BTreeMap::new();
    let mut ignored = std::collections::BTreeSet::new();
    for start in starts(input, orgs) {
        for meta in store.list(&store.location(&start)).await? {
            discovery.objects += 1;
            let parts = levels_below(&meta, skip);
            let Some((granularity, values)) = templates
                .iter()
                .find_map(|(g, t)| t.capture_from_root(&parts).map(|v| (*g, v)))
            else {
                continue;
            };
            let Some(report) = ReportType::ALL
                .into_iter()
                .find(|r| r.folder() == values.get("folder"))
            else {
                continue; // a folder of koku's that costagg does not read
            };
            let org = values.get("org");
            if !orgs.is_empty() && !orgs.contains(&org) {
                continue;
            }
            let month = match month_of(&values.get("year"), &values.get("month")) {
                Some(m) if m < months.0 || m > months.1 => continue,
                Some(m) => m,
                None => {
                    ignored.insert(format!("{}: not a month", where_(&values)));
                    continue;
                }
            };
            let Ok(source) = values.get("source").parse::<Uuid>() else {
                let why = format!("source `{}` is not a UUID", values.get("source"));
                ignored.insert(format!("{}: {why}", where_(&values)));
                continue;
            };
            units
                .entry((org, source, month))
                .or_default()
                .entry((report, granularity))
                .or_default()
                .push(meta);
        }
    }
    for ((org, source, month), folders) in units {
        let selected = select(&folders);
        if selected.iter().all(|(r, _)| *r != ReportType::PodUsage) {
            ignored.insert(format!(
                "org {org}, source {source}, month {month}: report files but no pod usage files; \
                 not a unit until they arrive"
            ));
            continue;
        }
        let files: Vec<&ObjectMeta> = selected.iter().flat_map(|(_, f)| f.iter()).collect();
        discovery.units.push(Listed {
            fingerprint: crate::fingerprint::of_files(files.iter().copied()),
            files: files.len(),
            org,
            source,
            month,
        });
    }
    discovery.ignored = ignored.into_iter().collect();
    discovery.ms = started.elapsed().as_millis() as u64;
    Ok(discovery)
}

/// The files a run reads, as `input::layout::list_files` picks them: for each report type the
/// hourly folder's, else the daily folder's; pod usage only from the hourly folder.
fn select(folders: &Folders) -> Vec<(ReportType, &Vec<ObjectMeta>)> {
    ReportType::ALL
        .into_iter()
        .filter_map(|report| {
            let hourly = folders.get(&(report, Granularity::Hourly));
            let daily = folders.get(&(report, Granularity::Daily));
            match (hourly, report) {
                (Some(files), _) => Some((report, files)),
                (None, ReportType::PodUsage) => None,
                (None, _) => daily.map(|files| (report, files)),
            }
        })
        .collect()
}

/// A matched folder as the user would find it: `org2/pod_usage/source=abc/year=2025/month=10`.
fn where_(values: &crate::input::layout::Captured) -> String {
    format!(
        "{}/{}/source={}/year={}/month={}",
        values.get("org"),
        values.get("folder"),
        values.get("source"),
        values.get("year"),
        values.get("month")
    )
}

/// `2025` and `09` as a month; `None` when they are not one.
fn month_of(year: &str, month: &str) -> Option<Month> {
    Month::new(year.parse().ok()?, month.parse().ok()?)
}

/// The folders to list: each template's literal leading levels, with `{org}` filled in per org
/// when `orgs` are given; a folder inside another one listed is left out.
fn starts(input: &InputConfig, orgs: &[String]) -> Vec<String> {
    let templates = [&input.hourly_template, &input.daily_template];
    let mut starts: Vec<String> = if orgs.is_empty() {
        templates.iter().map(|t| Template::parse(t).start()).collect()
    } else {
        templates
            .iter()
            .flat_map(|t| orgs.iter().map(|org| t.replace("{org}", org)))
            .map(|t| Template::parse(&t).start())
            .collect()
    };
    starts.sort();
    starts.dedup();
    let within = |inner: &String, outer: &String| {
        inner != outer && (outer.is_empty() || inner.starts_with(&format!("{outer}/")))
    };
    let all = starts.clone();
    starts.retain(|s| !all.iter().any(|outer| within(s, outer)));
    starts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::layout::{UnitKey, render};

    const SOURCE: &str = "6f5f1c0e-0000-4000-8000-000000000001";

    fn write(root: &std::path::Path, folder: &str, name: &str) {
        let file = root.join(folder).join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, b"x").unwrap();
    }

    fn folder(template: &str, org: &str, month: Month, report: ReportType) -> String {
        let unit = UnitKey {
            org,
            source: SOURCE.parse().unwrap(),
            month,
        };
        render(template, unit, report)
    }

    #[test]
    fn the_daily_folders_are_listed_with_the_hourly_ones_unless_an_org_narrows_both() {
        let input = InputConfig::default();
        assert_eq!(starts(&input, &[]), ["data/parquet"]);
        assert_eq!(
            starts(&input, &["org1".into()]),
            ["data/parquet/daily/org1/OCP", "data/parquet/org1/OCP"]
        );
    }

    #[tokio::test]
    async fn units_are_grouped_filtered_and_fingerprinted_as_their_runs_select_files() {
        let dir = tempfile::tempdir().unwrap();
        let input = InputConfig::default();
        let (hourly, daily) = (&input.hourly_template, &input.daily_template);
        let (sep, oct, nov) = (
            Month::new(2025, 9).unwrap(),
            Month::new(2025, 10).unwrap(),
            Month::new(2025, 11).unwrap(),
        );
        // org1 October: hourly pod files, daily node labels, hourly and daily storage (hourly
        // wins, as in a run).
        write(
            dir.path(),
            &folder(hourly, "org1", oct, ReportType::PodUsage),
            "a.parquet",
        );
        write(
            dir.path(),
            &folder(hourly, "org1", oct, ReportType::PodUsage),
            "day=02/b.parquet",
        );
        write(
            dir.path(),
            &folder(daily, "org1", oct, ReportType::NodeLabels),
            "n.parquet",
        );
        write(
            dir.path(),
            &folder(hourly, "org1", oct, ReportType::StorageUsage),
            "s.parquet",
        );
        write(
            dir.path(),
            &folder(daily, "org1", oct, ReportType::StorageUsage),
            "s-daily.parquet",
        );
        // org1 November: out of the months asked for. org2 September: in.
        write(
            dir.path(),
            &folder(hourly, "org1", nov, ReportType::PodUsage),
            "a.parquet",
        );
        write(
            dir.path(),
            &folder(hourly, "org2", sep, ReportType::PodUsage),
            "a.parquet",
        );
        // Not units: storage without pod files, a source that is not a UUID, and a marker.
        write(
            dir.path(),
            &folder(hourly, "org3", oct, ReportType::StorageUsage),
            "s.parquet",
        );
        write(
            dir.path(),
            "data/parquet/org2/OCP/pod_usage/source=abc/year=2025/month=10",
            "a.parquet",
        );
        write(
            dir.path(),
            &folder(hourly, "org2", sep, ReportType::PodUsage),
            "_SUCCESS",
        );
        let store = InputStore::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let found = discover(&store, &input, &[], (sep, oct)).await.unwrap();
        let keys: Vec<_> = found
            .units
            .iter()
            .map(|u| (u.org.as_str(), u.month, u.files))
            .collect();
        assert_eq!(keys, [("org1", oct, 4), ("org2", sep, 1)]);
        assert_eq!(found.ignored.len(), 2, "{:?}", found.ignored);
        assert!(found.ignored[0].contains("org3") && found.ignored[0].contains("no pod usage"));
        assert_eq!(
            found.ignored[1],
            "org2/pod_usage/source=abc/year=2025/month=10: source `abc` is not a UUID"
        );

        // The digest is the one a run of the unit computes from its own listing.
        let unit = crate::unit::UnitOfWork::whole_month(
            "org1",
            SOURCE.parse().unwrap(),
            oct,
            crate::unit::SchemaName::parse("org1").unwrap(),
        );
        let mut files = Vec::new();
        for report in ReportType::ALL {
            files.extend(
                crate::input::layout::list_files(&store, &input, &unit, report)
                    .await
                    .unwrap()
                    .1,
            );
        }
        assert_eq!(found.units[0].fingerprint, crate::fingerprint::of_files(&files));

        let only = discover(&store, &input, &["org2".into()], (sep, oct))
            .await
            .unwrap();
        assert_eq!(only.units.len(), 1);
        assert_eq!(only.units[0].org, "org2");
    }
}
