//! Timestamps stored as text (`2025-10-01 00:00:00 +0000 UTC`, ISO 8601 with or without a
//! zone) read as UTC wall clock, for files whose `interval_start` is a string.

use std::sync::Arc;

use chrono::{NaiveDateTime, TimeDelta};
use datafusion::arrow::array::{Array, TimestampMillisecondBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::cast::as_string_array;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// Parses one text timestamp to UTC; `None` when it is not one of the accepted forms:
/// `YYYY-MM-DD HH:MM:SS[.fff]` or with `T`, then optionally `Z`, `±HH:MM`, `±HHMM`, and a
/// trailing zone name (Go's `2006-01-02 15:04:05 -0700 MST`, which koku's CSVs carry).
pub fn parse_utc(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    // By byte: a multi-byte character across byte 19 is simply not a timestamp.
    let (head, rest) = (text.get(..19)?, text.get(19..)?);
    let wall = NaiveDateTime::parse_from_str(&head.replacen('T', " ", 1), "%Y-%m-%d %H:%M:%S").ok()?;
    let mut rest = rest;
    let mut fraction = TimeDelta::zero();
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest = &r[digits.len()..];
        let nanos: i64 = format!("{digits:0<9}").get(..9)?.parse().ok()?;
        fraction = TimeDelta::nanoseconds(nanos);
    }
    let mut words = rest.split_whitespace();
    let offset_minutes = match words.next() {
        None => 0,
        Some("Z" | "UTC" | "GMT") => 0,
        Some(offset) => parse_offset(offset)?,
    };
    // A trailing zone name (`UTC`, `MST`) after a numeric offset adds nothing.
    if words.nth(1).is_some() {
        return None;
    }
    Some(wall + fraction - TimeDelta::minutes(offset_minutes))
}

/// `+0000`, `-07:00`, `Z`-less numeric offsets, in minutes east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits = digits.replace(':', "");
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some(sign * (hours * 60 + minutes))
}

/// `koku_timestamp(text) -> timestamp(ms)`; unparsable text is null (and those rows fall out
/// of every day range).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextTimestamp {
    signature: Signature,
}

impl TextTimestamp {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(TextTimestamp {
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for TextTimestamp {
    fn name(&self) -> &str {
        "koku_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let array = cast(&array, &DataType::Utf8)?;
        let text = as_string_array(&array)?;
        let mut out = TimestampMillisecondBuilder::with_capacity(text.len());
        for i in 0..text.len() {
            let parsed = (!text.is_null(i)).then(|| parse_utc(text.value(i))).flatten();
            out.append_option(parsed.map(|t| t.and_utc().timestamp_millis()));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> String {
        parse_utc(text)
            .map(|t| t.to_string())
            .unwrap_or_else(|| "none".into())
    }

    #[test]
    fn kokus_go_style_text_and_iso_forms_read_as_utc() {
        assert_eq!(utc("2025-10-01 00:00:00 +0000 UTC"), "2025-10-01 00:00:00");
        assert_eq!(utc("2025-10-01T05:30:00Z"), "2025-10-01 05:30:00");
        assert_eq!(utc("2025-10-01 05:30:00"), "2025-10-01 05:30:00");
        assert_eq!(utc("2025-10-01T05:30:00.250+00:00"), "2025-10-01 05:30:00.250");
        // 02:00 at +02:00 is midnight UTC, and falls on the day before at -01:00.
        assert_eq!(utc("2025-10-01 02:00:00 +0200 CEST"), "2025-10-01 00:00:00");
        assert_eq!(utc("2025-10-01 00:30:00-01:00"), "2025-10-01 01:30:00");
        assert_eq!(utc("2025-09-30 23:00:00 -0100"), "2025-10-01 00:00:00");
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "yesterday",
            "2025-10-01",
            "2025-13-01 00:00:00",
            "2025-10-01 00:00:00 +0000 UTC x",
            // Multi-byte characters where the wall clock ends, or in the offset.
            "2025-10-01 00:00:0é",
            "2025-10-01 00:00:00é",
            "€€€€€€€€€€",
            "2025-10-01 00:00:00 +0€:00",
        ] {
            assert_eq!(utc(bad), "none", "{bad}");
        }
    }
}
