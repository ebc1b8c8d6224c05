//! PostgreSQL binary COPY encoding of summary batches: row layout and each column's wire format.

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use uuid::Builder;

use crate::error::{Error, Result};

/// The 19-byte signature, flags and extension length that open a binary COPY stream.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count -1 that ends a binary COPY stream.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Days from 1970-01-01 (Arrow) to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_OFFSET_DAYS: i32 = 10_957;
/// koku's quantities are `numeric(33,15)`: values are rounded to 15 decimals before sending.
pub const NUMERIC_SCALE: usize = 15;
/// The most integer digits a finite f64 has (f64::MAX is about 1.8 × 10³⁰⁸).
const MAX_INT_DIGITS: usize = 309;

/// The wire format of one output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Uuid,
    Int4,
    Text,
    Date,
    Jsonb,
    /// `json` (not `jsonb`) in an existing table: the same text without a version byte.
    Json,
    Numeric,
}

/// Where an output column's values come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A new random UUID per row (koku's `uuid()`).
    NewUuid,
    /// The same value on every row (unit metadata); `None` is null.
    Constant(Option<Vec<u8>>),
    /// A column of the summary batch, by name; absent from the batch means null.
    Batch(String),
}

/// One output column: its name in PostgreSQL, wire format and source.
#[derive(Debug, Clone)]
pub struct OutputColumn {
    pub name: &'static str,
    pub wire: Wire,
    pub source: Source,
}

/// A batch column cast to the array type its wire format encodes from.
enum Prepared {
    NewUuid,
    Constant(Option<Vec<u8>>),
    Text(StringArray, Wire),
    Date(Date32Array),
    Int4(Int32Array),
    Numeric(Float64Array),
    Null,
}

fn prepare(column: &OutputColumn, batch: &RecordBatch) -> Result<Prepared> {
    let name = match &column.source {
        Source::NewUuid => return Ok(Prepared::NewUuid),
        Source::Constant(v) => return Ok(Prepared::Constant(v.clone())),
        Source::Batch(name) => name,
    };
    let Some(array) = batch.column_by_name(name) else {
        return Ok(Prepared::Null);
    };
    if array.data_type() == &DataType::Null {
        return Ok(Prepared::Null);
    }
    let to = |t: &DataType| -> Result<ArrayRef> {
        cast(array, t).map_err(|e| Error::Internal(format!("summary column {name} cannot be encoded: {e}")))
    };
    Ok(match column.wire {
        Wire::Text | Wire::Jsonb | Wire::Json => Prepared::Text(downcast(to(&DataType::Utf8)?)?, column.wire),
        Wire::Date => Prepared::Date(downcast(to(&DataType::Date32)?)?),
        Wire::Int4 => Prepared::Int4(downcast(to(&DataType::Int32)?)?),
        Wire::Numeric => Prepared::Numeric(downcast(to(&DataType::Float64)?)?),
        Wire::Uuid => return Err(Error::Internal(format!("uuid column {name} from a batch"))),
    })
}

fn downcast<T: Clone + 'static>(array: ArrayRef) -> Result<T> {
    array
        .as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| Error::Internal("cast gave an unexpected array type".into()))
}

/// Appends the rows of `batch` to `buf` in binary COPY row format.
pub fn encode_batch(columns: &[OutputColumn], batch: &RecordBatch, buf: &mut BytesMut) -> Result<()> {
    let prepared = columns
        .iter()
        .map(|c| prepare(c, batch))
        .collect::<Result<Vec<_>>>()?;
    let mut digits = String::new();
    // Random bytes for the batch's new UUIDs in one call, not a system call per row.
    let mut random = Vec::new();
    if prepared.iter().any(|p| matches!(p, Prepared::NewUuid)) {
        random.resize(16 * batch.num_rows(), 0);
        getrandom::fill(&mut random)
            .map_err(|e| Error::Internal(format!("no random bytes for new row UUIDs: {e}")))?;
    }
    for row in 0..batch.num_rows() {
        buf.put_i16(columns.len() as i16);
        for p in &prepared {
            match p {
                Prepared::NewUuid => {
                    let bytes: [u8; 16] = random[16 * row..16 * (row + 1)]
                        .try_into()
                        .expect("16 random bytes per row");
                    put_field(buf, Builder::from_random_bytes(bytes).into_uuid().as_bytes());
                }
                Prepared::Constant(Some(v)) => put_field(buf, v),
                Prepared::Constant(None) | Prepared::Null => buf.put_i32(-1),
                _ if is_null(p, row) => buf.put_i32(-1),
                Prepared::Text(a, wire) => {
                    let text = a.value(row).as_bytes();
                    if *wire == Wire::Jsonb {
                        buf.put_i32(text.len() as i32 + 1);
                        buf.put_u8(1);
                        buf.put_slice(text);
                    } else {
                        put_field(buf, text);
                    }
                }
                Prepared::Date(a) => {
                    buf.put_i32(4);
                    buf.put_i32(a.value(row) - PG_EPOCH_OFFSET_DAYS);
                }
                Prepared::Int4(a) => {
                    buf.put_i32(4);
                    buf.put_i32(a.value(row));
                }
                Prepared::Numeric(a) => {
                    let at = buf.len();
                    buf.put_i32(0);
                    let written = put_numeric(buf, a.value(row), &mut digits);
                    buf[at..at + 4].copy_from_slice(&(written as i32).to_be_bytes());
                }
            }
        }
    }
    Ok(())
}

fn is_null(p: &Prepared, row: usize) -> bool {
    match p {
        Prepared::Text(a, _) => a.is_null(row),
        Prepared::Date(a) => a.is_null(row),
        Prepared::Int4(a) => a.is_null(row),
        Prepared::Numeric(a) => a.is_null(row),
        _ => false,
    }
}

fn put_field(buf: &mut BytesMut, value: &[u8]) {
    buf.put_i32(value.len() as i32);
    buf.put_slice(value);
}

/// Writes `value` as a PostgreSQL binary `numeric` rounded to [`NUMERIC_SCALE`] decimals,
/// from the f64's shortest round-trip decimal (not through a 15-significant-digit float
/// cast). Returns the bytes written. NaN is written as numeric NaN; infinities as NaN too,
/// since `numeric(33,15)` cannot hold them.
pub fn put_numeric(buf: &mut BytesMut, value: f64, scratch: &mut String) -> usize {
    const NUMERIC_POS: u16 = 0x0000;
    const NUMERIC_NEG: u16 = 0x4000;
    const NUMERIC_NAN: u16 = 0xC000;
    if !value.is_finite() {
        buf.put_i16(0);
        buf.put_i16(0);
        buf.put_u16(NUMERIC_NAN);
        buf.put_u16(0);
        return 8;
    }
    // Decimal digits of |value| with exactly NUMERIC_SCALE decimals, rounded half away from
    // zero like PostgreSQL's numeric rounding. Fixed arrays, no allocation: this runs once per
    // quantity of every row written.
    scratch.clear();
    use std::fmt::Write;
    let _ = write!(scratch, "{}", value.abs());
    let (int_part, frac_part) = scratch.split_once('.').unwrap_or((scratch.as_str(), ""));
    let (int_part, frac_part) = (int_part.as_bytes(), frac_part.as_bytes());
    // digits[0] takes a carry out of the integer part; then the integer digits, then exactly
    // NUMERIC_SCALE decimals.
    let mut digits = [0u8; 1 + MAX_INT_DIGITS + NUMERIC_SCALE];
    let int_len = 1 + int_part.len();
    for (d, b) in digits[1..int_len].iter_mut().zip(int_part) {
        *d = b - b'0';
    }
    for (d, b) in digits[int_len..].iter_mut().zip(frac_part) {
        *d = b - b'0';
    }
    let len = int_len + NUMERIC_SCALE;
    if frac_part.get(NUMERIC_SCALE).is_some_and(|&d| d >= b'5') {
        for d in digits[..len].iter_mut().rev() {
            if *d == 9 {
                *d = 0;
            } else {
                *d += 1;
                break;
            }
        }
    }
    // Group into base-10000 digits aligned on the decimal point: the integer digits padded
    // on the left, the decimals on the right.
    let int_pad = (4 - int_len % 4) % 4;
    let int_groups = (int_pad + int_len) / 4;
    let mut groups = [0i16; (MAX_INT_DIGITS + 1).div_ceil(4) + NUMERIC_SCALE.div_ceil(4)];
    let n_groups = int_groups + NUMERIC_SCALE.div_ceil(4);
    for (i, &d) in digits[..len].iter().enumerate() {
        let at = int_pad + i;
        groups[at / 4] += i16::from(d) * [1000, 100, 10, 1][at % 4];
    }
    let groups = &groups[..n_groups];
    let (weight, body): (i16, &[i16]) = match groups.iter().position(|&g| g != 0) {
        None => (0, &[]),
        Some(first) => {
            let last = groups
                .iter()
                .rposition(|&g| g != 0)
                .expect("a non-zero group exists");
            (int_groups as i16 - 1 - first as i16, &groups[first..=last])
        }
    };
    let sign = if value < 0.0 && !body.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    buf.put_i16(body.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(sign);
    buf.put_u16(NUMERIC_SCALE as u16);
    for &g in body {
        buf.put_i16(g);
    }
    8 + 2 * body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(value: f64) -> (i16, i16, u16, u16, Vec<i16>) {
        let mut buf = BytesMut::new();
        let n = put_numeric(&mut buf, value, &mut String::new());
        assert_eq!(n, buf.len());
        let b = &buf[..];
        let word = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
        let ndigits = word(0);
        let digits = (0..ndigits as usize).map(|i| word(8 + 2 * i)).collect();
        (ndigits, word(2), word(4) as u16, word(6) as u16, digits)
    }

    #[test]
    fn numerics_are_base_ten_thousand_groups_around_the_point() {
        // 12345.678 = 1·10000 + 2345 + 6780/10000
        assert_eq!(numeric(12345.678), (3, 1, 0, 15, vec![1, 2345, 6780]));
        // 0.00001234 = 1234·10000⁻²
        assert_eq!(numeric(0.00001234), (1, -2, 0, 15, vec![1234]));
        assert_eq!(numeric(-2.5), (2, 0, 0x4000, 15, vec![2, 5000]));
        assert_eq!(numeric(0.0), (0, 0, 0, 15, vec![]));
    }

    #[test]
    fn numerics_keep_every_digit_of_the_shortest_decimal_up_to_fifteen_decimals() {
        // 0.1 + 0.2 = 0.30000000000000004: 17 decimals, rounded to 15 → 0.300000000000000.
        assert_eq!(numeric(0.1 + 0.2), (1, -1, 0, 15, vec![3000]));
        // 123456789.123456789 is stored by f64 as 123456789.12345679 (shortest form).
        assert_eq!(
            numeric(123456789.12345679),
            (5, 2, 0, 15, vec![1, 2345, 6789, 1234, 5679])
        );
        // A tiny value rounds to zero at 15 decimals; 5e-16 rounds half away from zero.
        assert_eq!(numeric(1e-20), (0, 0, 0, 15, vec![]));
        assert_eq!(numeric(5e-16), (1, -4, 0, 15, vec![10]));
        // Carry through all nines: 0.9999999999999999 (16 decimals) → 1.
        assert_eq!(numeric(0.999_999_999_999_999_9), (1, 0, 0, 15, vec![1]));
        // 1.0000000000000002 (the f64 after 1): its 16th decimal rounds away.
        assert_eq!(numeric(1.000_000_000_000_000_2), (1, 0, 0, 15, vec![1]));
        // 12345678.9: two integer groups, one decimal group.
        assert_eq!(numeric(12_345_678.9), (3, 1, 0, 15, vec![1234, 5678, 9000]));
    }

    #[test]
    fn the_largest_f64_encodes_all_309_integer_digits() {
        // 179769313486231570000…0 (309 digits): groups 1, 7976, 9313, 4862, 3157, then zeros.
        let (ndigits, weight, sign, _, digits) = numeric(f64::MAX);
        assert_eq!((ndigits, weight, sign), (5, 77, 0));
        assert_eq!(digits, vec![1, 7976, 9313, 4862, 3157]);
    }

    #[test]
    fn non_finite_values_become_numeric_nan() {
        assert_eq!(numeric(f64::NAN).2, 0xC000);
        assert_eq!(numeric(f64::INFINITY).2, 0xC000);
    }
}
