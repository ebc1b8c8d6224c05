//! The unit of work — one cluster (source) and one month, optionally a day range inside it —
//! and the value types it is made of: `Month`, `DayRange`, `SchemaName`.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::reference::ReportPeriod;

/// A calendar month (UTC): the unit's month, its partition and its folder in koku's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// The month of a year, `None` unless 1 ≤ `month` ≤ 12 and the year is a calendar one.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        NaiveDate::from_ymd_opt(year, month, 1).map(|_| Month { year, month })
    }

    /// The month `day` lies in.
    pub fn of(day: NaiveDate) -> Month {
        Month {
            year: day.year(),
            month: day.month(),
        }
    }

    /// Parses `YYYY-MM`; `current` and `previous` are the UTC month now and the one before (a
    /// CronJob cannot compute a date without a shell). `flag` names the flag at fault.
    pub fn parse(text: &str, flag: &str) -> Result<Month> {
        Self::parse_at(text, flag, chrono::Utc::now().date_naive())
    }

    fn parse_at(text: &str, flag: &str, today: NaiveDate) -> Result<Month> {
        match text {
            "current" => return Ok(Month::of(today)),
            "previous" => return Ok(Month::of(today).previous()),
            _ => {}
        }
        let bad = || {
            Error::config(
                flag,
                format!("`{text}` is not a month like 2025-10 (or current, previous)"),
            )
        };
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        Month::new(year, month).ok_or_else(bad)
    }

    pub fn year(self) -> i32 {
        self.year
    }

    /// 1 to 12.
    pub fn number(self) -> u32 {
        self.month
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a month is valid by construction")
    }

    pub fn last_day(self) -> NaiveDate {
        self.next()
            .first_day()
            .pred_opt()
            .expect("a month has a last day")
    }

    pub fn next(self) -> Month {
        match self.month {
            12 => Month {
                year: self.year + 1,
                month: 1,
            },
            m => Month {
                year: self.year,
                month: m + 1,
            },
        }
    }

    pub fn previous(self) -> Month {
        Month::of(self.first_day().pred_opt().expect("a day before the first"))
    }

    pub fn days(self) -> u32 {
        (self.next().first_day() - self.first_day()).num_days() as u32
    }

    /// Every day of the month.
    pub fn all_days(self) -> DayRange {
        DayRange {
            first: self.first_day(),
            last: self.last_day(),
        }
    }
}

/// `YYYY-MM`.
impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Days from `first` to `last`, both included; never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    first: NaiveDate,
    last: NaiveDate,
}

impl DayRange {
    /// `None` when `last` comes before `first`.
    pub fn new(first: NaiveDate, last: NaiveDate) -> Option<DayRange> {
        (first <= last).then_some(DayRange { first, last })
    }

    pub fn first(self) -> NaiveDate {
        self.first
    }

    pub fn last(self) -> NaiveDate {
        self.last
    }

    /// The day after the last: the range is `[first, end_exclusive)` in timestamps.
    pub fn end_exclusive(self) -> NaiveDate {
        self.last.succ_opt().unwrap_or(self.last)
    }

    pub fn num_days(self) -> u32 {
        (self.last - self.first).num_days() as u32 + 1
    }

    /// The same range starting at `first` (which must not lie after the last day).
    pub fn starting(self, first: NaiveDate) -> DayRange {
        DayRange {
            first: first.min(self.last),
            last: self.last,
        }
    }

    /// `TIMESTAMP 'first 00:00:00'`: the range's start as a SQL literal.
    pub fn start_literal(self) -> String {
        day_start_literal(self.first)
    }

    /// `TIMESTAMP 'last + 1 00:00:00'`: the range's exclusive end as a SQL literal.
    pub fn end_literal(self) -> String {
        day_start_literal(self.end_exclusive())
    }

    /// The ranges of at most `days` days each that cover this one, in order (0: one range).
    pub fn chunks(self, days: u32) -> Vec<DayRange> {
        let total = i64::from(self.num_days());
        let step = match days {
            0 => total,
            n => i64::from(n).min(total),
        };
        (0..total)
            .step_by(step as usize)
            .map(|offset| {
                let first = self.first + chrono::Duration::days(offset);
                DayRange {
                    first,
                    last: self.last.min(first + chrono::Duration::days(step - 1)),
                }
            })
            .collect()
    }
}

/// `first..last`.
impl fmt::Display for DayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.first, self.last)
    }
}

/// `TIMESTAMP 'YYYY-MM-DD 00:00:00'`: a day's start as a SQL literal.
pub fn day_start_literal(day: NaiveDate) -> String {
    format!("TIMESTAMP '{} 00:00:00'", day.format("%Y-%m-%d"))
}

/// A PostgreSQL schema name costagg accepts: letters, digits and `_`, not starting with a
/// digit, at most 63 bytes. It is quoted in SQL as well; this keeps it readable in logs and
/// koku-compatible (koku's schemas are `org1234567` / `acct10001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    /// The name, or why it is not one (a phrase to follow the flag or key that gave it).
    pub fn parse(name: &str) -> std::result::Result<SchemaName, String> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if ok {
            Ok(SchemaName(name.to_string()))
        } else {
            Err(format!(
                "`{name}` is not a valid schema name (letters, digits and _, not starting with a digit, at most 63)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SchemaName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cluster columns of a unit's rows as given on the command line; what is not given comes
/// from koku's report period row, else from the source (see [`ClusterIdentity::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterOverrides {
    pub cluster_id: Option<String>,
    pub cluster_alias: Option<String>,
    pub report_period_id: Option<i32>,
}

/// The key of locks, deletes and reports: one source, one month, a day range in it; and where
/// and how its rows are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOfWork {
    pub org: String,
    pub source: Uuid,
    pub month: Month,
    /// The days summarised, inside `month`.
    pub days: DayRange,
    /// PostgreSQL schema written into.
    pub schema: SchemaName,
    pub overrides: ClusterOverrides,
}

impl UnitOfWork {
    /// The whole of `month` for `source`, written into `schema`, with no overrides.
    pub fn whole_month(org: &str, source: Uuid, month: Month, schema: SchemaName) -> UnitOfWork {
        UnitOfWork {
            org: org.to_string(),
            source,
            month,
            days: month.all_days(),
            schema,
            overrides: ClusterOverrides::default(),
        }
    }

    /// The unit narrowed to `first..=last` (each defaulting to the month's end), which must lie
    /// in the month and be ordered; the errors name `--start-date` / `--end-date`.
    pub fn with_days(mut self, first: Option<NaiveDate>, last: Option<NaiveDate>) -> Result<UnitOfWork> {
        let whole = self.month.all_days();
        let (first, last) = (first.unwrap_or(whole.first), last.unwrap_or(whole.last));
        for (key, d) in [("--start-date", first), ("--end-date", last)] {
            if d < whole.first || d > whole.last {
                return Err(Error::config(
                    key,
                    format!("{d} is outside the month {}", self.month),
                ));
            }
        }
        self.days = DayRange::new(first, last)
            .ok_or_else(|| Error::config("--start-date", format!("{first} is after --end-date {last}")))?;
        Ok(self)
    }

    pub fn with_overrides(mut self, overrides: ClusterOverrides) -> UnitOfWork {
        self.overrides = overrides;
        self
    }

    /// `YYYY-MM`.
    pub fn month_label(&self) -> String {
        self.month.to_string()
    }
}

impl fmt::Display for UnitOfWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source {} month {}", self.source, self.month)?;
        if self.days != self.month.all_days() {
            write!(f, " days {}", self.days)?;
        }
        Ok(())
    }
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
        let given = &unit.overrides;
        let cluster_id = given
            .cluster_id
            .clone()
            .or_else(|| period.map(|p| p.cluster_id.clone()))
            .unwrap_or_else(|| unit.source.to_string());
        let cluster_alias = given
            .cluster_alias
            .clone()
            .or_else(|| period.and_then(|p| p.cluster_alias.clone()))
            .unwrap_or_else(|| cluster_id.clone());
        ClusterIdentity {
            report_period_id: given.report_period_id.or(period.map(|p| p.id)),
            cluster_id,
            cluster_alias,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn october() -> UnitOfWork {
        UnitOfWork::whole_month(
            "org1",
            "6f5f1c0e-0000-4000-8000-000000000001".parse().unwrap(),
            Month::new(2025, 10).unwrap(),
            SchemaName::parse("org1").unwrap(),
        )
    }

    #[test]
    fn flags_win_over_the_report_period_row_which_wins_over_the_source() {
        let mut unit = october();
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
        unit.overrides.cluster_alias = Some("Mine".into());
        unit.overrides.report_period_id = Some(7);
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
        let parse = |t| Month::parse(t, "--month");
        assert_eq!(parse("2025-02").unwrap(), Month::new(2025, 2).unwrap());
        let jan = day(2026, 1, 15);
        assert_eq!(
            Month::parse_at("current", "--month", jan).unwrap().to_string(),
            "2026-01"
        );
        assert_eq!(
            Month::parse_at("previous", "--month", jan).unwrap().to_string(),
            "2025-12"
        );
        assert!(parse("2025-13").is_err());
        assert!(parse("2025-1").is_err());
        assert!(parse("2025-00").is_err());
        let err = parse("10/2025").unwrap_err().to_string();
        assert!(err.contains("`--month`"), "{err}");
        let days = |y, m| Month::new(y, m).unwrap().days();
        assert_eq!(days(2024, 2), 29);
        assert_eq!(days(2025, 2), 28);
        assert_eq!(days(2025, 12), 31);
        assert_eq!(days(2025, 11), 30);
        assert_eq!(Month::new(2025, 12).unwrap().next().to_string(), "2026-01");
        assert_eq!(Month::new(2025, 12).unwrap().last_day(), day(2025, 12, 31));
    }

    #[test]
    fn a_day_range_must_lie_in_the_month_and_be_ordered() {
        let unit = october().with_days(Some(day(2025, 10, 10)), None).unwrap();
        assert_eq!(unit.days.to_string(), "2025-10-10..2025-10-31");
        assert_eq!(
            unit.to_string(),
            "source 6f5f1c0e-0000-4000-8000-000000000001 month 2025-10 days 2025-10-10..2025-10-31"
        );
        let outside = october().with_days(None, Some(day(2025, 11, 1))).unwrap_err();
        assert!(
            outside
                .to_string()
                .contains("`--end-date` 2025-11-01 is outside the month 2025-10")
        );
        let reversed = october()
            .with_days(Some(day(2025, 10, 5)), Some(day(2025, 10, 4)))
            .unwrap_err();
        assert!(
            reversed
                .to_string()
                .contains("`--start-date` 2025-10-05 is after --end-date 2025-10-04")
        );
    }

    #[test]
    fn a_range_is_cut_into_passes_of_whole_days() {
        let range = DayRange::new(day(2025, 10, 1), day(2025, 10, 7)).unwrap();
        let cut: Vec<String> = range.chunks(3).iter().map(ToString::to_string).collect();
        assert_eq!(
            cut,
            [
                "2025-10-01..2025-10-03",
                "2025-10-04..2025-10-06",
                "2025-10-07..2025-10-07"
            ]
        );
        assert_eq!(range.chunks(0), vec![range]);
        assert_eq!(range.chunks(10), vec![range]);
        assert_eq!(range.end_literal(), "TIMESTAMP '2025-10-08 00:00:00'");
    }

    #[test]
    fn schema_names_refuse_anything_that_could_escape_a_quote() {
        assert!(SchemaName::parse("org1234567").is_ok());
        assert!(SchemaName::parse("acct_10001").is_ok());
        assert!(SchemaName::parse("org\"; DROP TABLE x; --").is_err());
        assert!(SchemaName::parse("1org").is_err());
        assert!(SchemaName::parse("").is_err());
        assert!(SchemaName::parse(&"a".repeat(64)).is_err());
    }
}
