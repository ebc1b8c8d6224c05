//! `koku_date(timestamp) -> date`: koku's `date(interval_start)`, the UTC day of a timestamp.
//!
//! Every section groups its line items by day. Arrow's cast from timestamp to date goes
//! through a calendar date per value (chrono), which cost ~9% of a dry run's instructions;
//! a day is whole days since the epoch, one division per value.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Date32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KokuDate {
    signature: Signature,
}

impl KokuDate {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(KokuDate {
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
        })
    }
}

/// The day of `ticks` counted in units of `per_day` per day; an error past Date32's range.
fn day(ticks: i64, per_day: i64) -> DfResult<i32> {
    i32::try_from(ticks.div_euclid(per_day))
        .map_err(|_| DataFusionError::Execution(format!("timestamp {ticks} is out of a date's range")))
}

impl ScalarUDFImpl for KokuDate {
    fn name(&self) -> &str {
        "koku_date"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        const DAY: i64 = 86_400;
        let days: Date32Array = match array.data_type() {
            // Zone-less timestamps are UTC wall clock (the table's type); a UTC zone is the same.
            DataType::Timestamp(unit, zone)
                if zone.as_deref().is_none_or(|z| z == "UTC" || z == "+00:00") =>
            {
                let per_day = DAY
                    * match unit {
                        TimeUnit::Second => 1,
                        TimeUnit::Millisecond => 1_000,
                        TimeUnit::Microsecond => 1_000_000,
                        TimeUnit::Nanosecond => 1_000_000_000,
                    };
                // The same buffer read as the integer ticks it holds (arrow reinterprets it).
                let ticks = cast(&array, &DataType::Int64)?;
                ticks.as_primitive::<Int64Type>().try_unary(|t| day(t, per_day))?
            }
            // Anything else (a date, another zone) as SQL's CAST would take it.
            _ => cast(&array, &DataType::Date32)?.as_primitive().clone(),
        };
        Ok(ColumnarValue::Array(Arc::new(days)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, TimestampMillisecondArray, TimestampNanosecondArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    fn koku_date(array: Arc<dyn Array>) -> Date32Array {
        let rows = array.len();
        let args = ScalarFunctionArgs {
            arg_fields: vec![Arc::new(Field::new("t", array.data_type().clone(), true))],
            args: vec![ColumnarValue::Array(array)],
            number_rows: rows,
            return_field: Arc::new(Field::new("d", DataType::Date32, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(out) = KokuDate::udf().invoke_with_args(args).unwrap() else {
            panic!("an array in, an array out");
        };
        out.as_primitive().clone()
    }

    #[test]
    fn days_are_utc_days_since_the_epoch_and_nulls_stay_null() {
        const MS_PER_DAY: i64 = 86_400_000;
        // 2025-10-01 is day 20,362 (55 years and 14 leap days after 1970-01-01, plus 273).
        let oct_1 = 20_362 * MS_PER_DAY;
        let ms = TimestampMillisecondArray::from(vec![
            Some(oct_1),
            Some(oct_1 + MS_PER_DAY - 1),
            Some(oct_1 + MS_PER_DAY),
            None,
            Some(-1),
            Some(0),
        ]);
        let expected = Date32Array::from(vec![
            Some(20_362),
            Some(20_362),
            Some(20_363),
            None,
            Some(-1),
            Some(0),
        ]);
        assert_eq!(koku_date(Arc::new(ms)), expected);
        assert_eq!(
            chrono::NaiveDate::from_ymd_opt(2025, 10, 1)
                .unwrap()
                .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                .num_days(),
            20_362
        );
    }

    #[test]
    fn a_utc_zone_and_other_units_give_the_same_days_as_a_cast() {
        let ns: Vec<i64> = vec![0, 1_759_276_800_000_000_000, 1_759_363_199_999_999_999, -1];
        let utc = TimestampNanosecondArray::from(ns.clone()).with_timezone("UTC");
        let cast_days = cast(&utc, &DataType::Date32).unwrap();
        assert_eq!(
            &koku_date(Arc::new(utc)),
            cast_days.as_primitive::<datafusion::arrow::datatypes::Date32Type>()
        );
        // Another zone is left to the cast, which takes the local day.
        let tokyo = TimestampNanosecondArray::from(ns).with_timezone("+09:00");
        let cast_days = cast(&tokyo, &DataType::Date32).unwrap();
        assert_eq!(
            &koku_date(Arc::new(tokyo)),
            cast_days.as_primitive::<datafusion::arrow::datatypes::Date32Type>()
        );
    }
}
