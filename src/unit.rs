//! The unit of work: one cluster (source) and one month, optionally a day range inside it.

use std::fmt;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::error::{Error, Result};

/// The key of locks, deletes and reports: one source, one month, a day range in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOfWork {
    pub org: String,
    pub source: Uuid,
    pub year: i32,
    pub month: u32,
    /// First day summarised (inclusive).
    pub start_date: NaiveDate,
    /// Last day summarised (inclusive).
    pub end_date: NaiveDate,
    /// Given on the command line; else koku's report period row, else the source (see
    /// `ClusterIdentity::resolve`). Likewise the alias and the report period id.
    pub cluster_id: Option<String>,
    pub cluster_alias: Option<String>,
    pub report_period_id: Option<i32>,
    /// PostgreSQL schema written into.
    pub schema: String,
}

/// koku's report period row for a source and month (`reporting_ocpusagereportperiod`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPeriod {
    pub id: i32,
    pub cluster_id: String,
    pub cluster_alias: Option<String>,
}

/// The cluster columns every row of a unit carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    pub cluster_id: String,
    pub cluster_alias: String,
    pub report_period_id: Option<i32>,
}

impl ClusterIdentity {
    /// Each value from the command line when given, else from koku's report period row when
    /// there is one; else the cluster id is the source, the alias the cluster id, and the
    /// report period null.
    pub fn resolve(unit: &UnitOfWork, period: Option<&ReportPeriod>) -> Self {
        let cluster_id = unit
            .cluster_id
            .clone()
            .or_else(|| period.map(|p| p.cluster_id.clone()))
            .unwrap_or_else(|| unit.source.to_string());
        let cluster_alias = unit
            .cluster_alias
            .clone()
            .or_else(|| period.and_then(|p| p.cluster_alias.clone()))
            .unwrap_or_else(|| cluster_id.clone());
        ClusterIdentity {
            report_period_id: unit.report_period_id.or(period.map(|p| p.id)),
            cluster_id,
            cluster_alias,
        }
    }
}

impl UnitOfWork {
    /// Parses `YYYY-MM` into (year, month); `current` and `previous` are the UTC month now and
    /// the one before (a CronJob cannot compute a date without a shell).
    pub fn parse_month(text: &str) -> Result<(i32, u32)> {
        Self::parse_month_at(text, chrono::Utc::now().date_naive())
    }

    fn parse_month_at(text: &str, today: NaiveDate) -> Result<(i32, u32)> {
        use chrono::Datelike;
        match text {
            "current" => return Ok((today.year(), today.month())),
            "previous" => {
                let last = Self::first_day(today.year(), today.month())
                    .pred_opt()
                    .expect("a day before the first");
                return Ok((last.year(), last.month()));
            }
            _ => {}
        }
        let bad = || {
            Error::config(
                "--month",
                format!("`{text}` is not a month like 2025-10 (or current, previous)"),
            )
        };
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if y.len() != 4 || m.len() != 2 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok((year, month))
    }

    pub fn first_day(year: i32, month: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, 1).expect("month validated by parse_month")
    }

    /// The first day of the month after.
    pub fn next_month_start(year: i32, month: u32) -> NaiveDate {
        if month == 12 {
            Self::first_day(year + 1, 1)
        } else {
            Self::first_day(year, month + 1)
        }
    }

    pub fn days_in_month(year: i32, month: u32) -> u32 {
        (Self::next_month_start(year, month) - Self::first_day(year, month)).num_days() as u32
    }

    /// Checks that the day range lies in the month and is ordered.
    pub fn check_days(&self) -> Result<()> {
        let first = Self::first_day(self.year, self.month);
        let last = Self::next_month_start(self.year, self.month)
            .pred_opt()
            .expect("valid date");
        for (key, d) in [("--start-date", self.start_date), ("--end-date", self.end_date)] {
            if d < first || d > last {
                return Err(Error::config(
                    key,
                    format!("{d} is outside the month {}-{:02}", self.year, self.month),
                ));
            }
        }
        if self.start_date > self.end_date {
            return Err(Error::config(
                "--start-date",
                format!("{} is after --end-date {}", self.start_date, self.end_date),
            ));
        }
        Ok(())
    }

    /// `YYYY-MM`.
    pub fn month_label(&self) -> String {
        format!("{}-{:02}", self.year, self.month)
    }
}

impl fmt::Display for UnitOfWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source {} month {}", self.source, self.month_label())?;
        let whole = self.start_date == Self::first_day(self.year, self.month)
            && self.end_date
                == Self::next_month_start(self.year, self.month)
                    .pred_opt()
                    .unwrap_or(self.end_date);
        if !whole {
            write!(f, " days {}..{}", self.start_date, self.end_date)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_report_period_row_which_wins_over_the_source() {
        let mut unit = UnitOfWork {
            org: "org1".into(),
            source: "6f5f1c0e-0000-4000-8000-000000000001".parse().unwrap(),
            year: 2025,
            month: 10,
            start_date: UnitOfWork::first_day(2025, 10),
            end_date: UnitOfWork::first_day(2025, 10),
            cluster_id: None,
            cluster_alias: None,
            report_period_id: None,
            schema: "org1".into(),
        };
        let period = ReportPeriod {
            id: 42,
            cluster_id: "ocp-prod".into(),
            cluster_alias: Some("Production".into()),
        };
        let none = ClusterIdentity::resolve(&unit, None);
        assert_eq!(none.cluster_id, "6f5f1c0e-0000-4000-8000-000000000001");
        assert_eq!(none.cluster_alias, none.cluster_id);
        assert_eq!(none.report_period_id, None);
        let from_table = ClusterIdentity::resolve(&unit, Some(&period));
        assert_eq!(
            (
                from_table.cluster_id.as_str(),
                from_table.cluster_alias.as_str(),
                from_table.report_period_id
            ),
            ("ocp-prod", "Production", Some(42))
        );
        unit.cluster_alias = Some("Mine".into());
        unit.report_period_id = Some(7);
        let mixed = ClusterIdentity::resolve(&unit, Some(&period));
        assert_eq!(
            (
                mixed.cluster_id.as_str(),
                mixed.cluster_alias.as_str(),
                mixed.report_period_id
            ),
            ("ocp-prod", "Mine", Some(7))
        );
    }

    #[test]
    fn months_parse_and_know_their_length() {
        assert_eq!(UnitOfWork::parse_month("2025-02").unwrap(), (2025, 2));
        let jan = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
        assert_eq!(UnitOfWork::parse_month_at("current", jan).unwrap(), (2026, 1));
        assert_eq!(UnitOfWork::parse_month_at("previous", jan).unwrap(), (2025, 12));
        assert!(UnitOfWork::parse_month("2025-13").is_err());
        assert!(UnitOfWork::parse_month("2025-1").is_err());
        assert_eq!(UnitOfWork::days_in_month(2024, 2), 29);
        assert_eq!(UnitOfWork::days_in_month(2025, 2), 28);
        assert_eq!(UnitOfWork::days_in_month(2025, 12), 31);
        assert_eq!(UnitOfWork::days_in_month(2025, 11), 30);
    }
}
