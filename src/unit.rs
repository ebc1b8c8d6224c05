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
    pub cluster_id: String,
    pub cluster_alias: String,
    pub report_period_id: Option<i32>,
    /// PostgreSQL schema written into.
    pub schema: String,
}

impl UnitOfWork {
    /// Parses `YYYY-MM` into (year, month).
    pub fn parse_month(text: &str) -> Result<(i32, u32)> {
        let bad = || Error::config("--month", format!("`{text}` is not a month like 2025-10"));
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
    fn months_parse_and_know_their_length() {
        assert_eq!(UnitOfWork::parse_month("2025-02").unwrap(), (2025, 2));
        assert!(UnitOfWork::parse_month("2025-13").is_err());
        assert!(UnitOfWork::parse_month("2025-1").is_err());
        assert_eq!(UnitOfWork::days_in_month(2024, 2), 29);
        assert_eq!(UnitOfWork::days_in_month(2025, 2), 28);
        assert_eq!(UnitOfWork::days_in_month(2025, 12), 31);
        assert_eq!(UnitOfWork::days_in_month(2025, 11), 30);
    }
}
