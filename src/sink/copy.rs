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
    /// A column of the summary batch, by name; a batch without it is a bug (an error, never
    /// a column of nulls).
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
        return Err(Error::Internal(format!(
            "the summary rows lack the column {name} (a section's SELECT misnames it); nothing was written"
        )));
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
                    let written = put_numeric(buf, a.value(row));
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
pub fn put_numeric(buf: &mut BytesMut, value: f64) -> usize {
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
    // quantity of every row written. In u64 fixed point when the integer part fits, else digit
    // by digit (a digit at a time cost ~650 instructions per value).
    //
    // The shortest round-trip digits, as `123.456`, `0.001` or `1.5e-7`, from zmij (Schubfach):
    // `format!("{}")` (no exponent) cost 13% of a 1M-row run's instructions. The two give
    // the same digits except when two shortest decimals are equally near the f64 (zmij takes
    // the even one, `format!` the upper one), and only `format!`'s are what costagg has always
    // written; such f64s are rare and found by `may_tie`.
    let mut zmij = zmij::Buffer::new();
    let display;
    let text = if may_tie(value) {
        display = format!("{}", value.abs());
        display.as_bytes()
    } else {
        zmij.format_finite(value.abs()).as_bytes()
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(e) => {
            // zmij's exponents: `-07`, `+16`; std's integer parsing takes either sign.
            let exponent = std::str::from_utf8(&text[e + 1..])
                .ok()
                .and_then(|t| t.parse().ok());
            (&text[..e], exponent.expect("zmij writes an integer exponent"))
        }
        None => (text, 0),
    };
    let mut groups = [0i16; GROUPS];
    let (n_groups, int_groups) = match fixed_point(mantissa, exponent) {
        Some((int, fraction)) => fixed_point_groups(int, fraction, &mut groups),
        None => digit_groups(mantissa, exponent, &mut groups),
    };
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
    // The header and the digits in one slice: one capacity check instead of one a field.
    let mut out = [0u8; 8 + 2 * GROUPS];
    let len = 8 + 2 * body.len();
    out[0..2].copy_from_slice(&(body.len() as i16).to_be_bytes());
    out[2..4].copy_from_slice(&weight.to_be_bytes());
    out[4..6].copy_from_slice(&sign.to_be_bytes());
    out[6..8].copy_from_slice(&(NUMERIC_SCALE as u16).to_be_bytes());
    for (to, g) in out[8..len].chunks_exact_mut(2).zip(body) {
        to.copy_from_slice(&g.to_be_bytes());
    }
    buf.put_slice(&out[..len]);
    len
}

/// Base-10000 digits of the largest numeric written: the integer digits of f64::MAX, one
/// more for a carry, and the decimals.
const GROUPS: usize = (MAX_INT_DIGITS + 1).div_ceil(4) + NUMERIC_SCALE.div_ceil(4);

/// |value| in fixed point from its shortest digits (`mantissa`, maybe with a dot, times
/// 10^`exponent`): the integer part, and the decimals rounded to [`NUMERIC_SCALE`] places
/// (half away from zero, on the first dropped digit) and scaled to 16 places, four
/// base-10000 digits. `None` when the digits or the integer part do not fit a u64 (≥ 1.8·10¹⁹).
fn fixed_point(mantissa: &[u8], exponent: i32) -> Option<(u64, u64)> {
    // value = m · 10^e
    let (mut m, mut e) = (0u64, exponent);
    let mut after_dot = false;
    for &b in mantissa {
        if b == b'.' {
            after_dot = true;
            continue;
        }
        m = m.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        e -= i32::from(after_dot);
    }
    if e >= 0 {
        return Some((m.checked_mul(*POW10.get(e as usize)?)?, 0));
    }
    let places = e.unsigned_abs() as usize;
    let (int, decimals) = match POW10.get(places) {
        Some(p) => (m / p, m % p),
        None => (0, m),
    };
    if places <= NUMERIC_SCALE {
        return Some((int, decimals * POW10[16 - places]));
    }
    // More places than the scale: keep NUMERIC_SCALE of them and round on the next one.
    let dropped = places - NUMERIC_SCALE;
    let kept = POW10.get(dropped).map_or(0, |p| decimals / p);
    let next = POW10.get(dropped - 1).map_or(0, |p| decimals / p % 10);
    let kept = kept + u64::from(next >= 5);
    if kept == POW10[NUMERIC_SCALE] {
        return Some((int.checked_add(1)?, 0));
    }
    Some((int, kept * 10))
}

/// 10⁰ … 10¹⁹, the powers of ten a u64 holds: a table, since `u64::pow` loops.
const POW10: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// The base-10000 digits of a [`fixed_point`] value into `groups`, most significant first:
/// returns how many there are and how many of them are the integer part's.
fn fixed_point_groups(int: u64, fraction: u64, groups: &mut [i16; GROUPS]) -> (usize, usize) {
    let mut int_groups = 0;
    let mut rest = int;
    while rest > 0 {
        int_groups += 1;
        rest /= 10_000;
    }
    let mut rest = int;
    for g in groups[..int_groups].iter_mut().rev() {
        *g = (rest % 10_000) as i16;
        rest /= 10_000;
    }
    let fraction_groups = [
        fraction / 1_000_000_000_000,
        fraction / 100_000_000 % 10_000,
        fraction / 10_000 % 10_000,
        fraction % 10_000,
    ];
    for (g, f) in groups[int_groups..int_groups + 4].iter_mut().zip(fraction_groups) {
        *g = f as i16;
    }
    (int_groups + 4, int_groups)
}

/// The same as [`fixed_point_groups`] from the digits one at a time, for any finite f64 (up to
/// the 309 integer digits of f64::MAX).
fn digit_groups(mantissa: &[u8], exponent: i32, groups: &mut [i16; GROUPS]) -> (usize, usize) {
    let dot = mantissa.iter().position(|&b| b == b'.').unwrap_or(mantissa.len());
    // The mantissa's digits (without the dot) stand for 0.d₀d₁… × 10^point.
    let point = dot as i32 + exponent;
    // digits[0] takes a carry out of the integer part; then the integer digits (at least one),
    // then exactly NUMERIC_SCALE decimals.
    let mut digits = [0u8; 1 + MAX_INT_DIGITS + NUMERIC_SCALE];
    let int_len = 1 + point.max(1) as usize;
    let len = int_len + NUMERIC_SCALE;
    // Where the mantissa's first digit lands in `digits`: never before index 1.
    let first = int_len as i32 - point;
    let mut round_up = false;
    for (k, &b) in mantissa.iter().filter(|&&b| b != b'.').enumerate() {
        let at = (first + k as i32) as usize;
        if at < len {
            digits[at] = b - b'0';
        } else {
            // The first digit past the last decimal decides the rounding.
            round_up = at == len && b >= b'5';
            break;
        }
    }
    if round_up {
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
    for (i, &d) in digits[..len].iter().enumerate() {
        let at = int_pad + i;
        groups[at / 4] += i16::from(d) * [1000, 100, 10, 1][at % 4];
    }
    (int_groups + NUMERIC_SCALE.div_ceil(4), int_groups)
}

/// Whether two shortest decimals of `v` can be equally near it. `v` is m·2ᵉ with m odd, so
/// its exact decimal has as many significant digits as m·5⁻ᵉ: at least 0.699·(−e) of them.
/// A tie needs the exact decimal one digit longer than the shortest, which never needs more
/// than 17: so at most 18 digits, and e > −26. Integers below 2⁵³ have one shortest decimal,
/// themselves. What is left (halves, quarters, …, 2⁻²⁵ multiples, and huge integers) is
/// rare in usage figures and is written the slower way.
fn may_tie(v: f64) -> bool {
    let bits = v.to_bits() & !(1 << 63);
    let biased = (bits >> 52) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let m = if biased == 0 {
        fraction
    } else {
        fraction | (1 << 52)
    };
    if m == 0 {
        return false;
    }
    let e = biased.max(1) - 1075 + m.trailing_zeros() as i32;
    e > -26 && !(e >= 0 && v.abs() < (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_the_batch_lacks_is_an_error_naming_it_not_a_column_of_nulls() {
        use datafusion::arrow::datatypes::{Field, Schema};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![Field::new("namespace", DataType::Utf8, true)]));
        let column: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
        let text = |name: &'static str| OutputColumn {
            name,
            wire: Wire::Text,
            source: Source::Batch(name.to_string()),
        };
        let mut buf = BytesMut::new();
        encode_batch(&[text("namespace")], &batch, &mut buf).unwrap();
        let e = encode_batch(&[text("namespace"), text("node")], &batch, &mut buf).unwrap_err();
        assert!(e.to_string().contains("lack the column node"), "{e}");
    }

    fn numeric(value: f64) -> (i16, i16, u16, u16, Vec<i16>) {
        let mut buf = BytesMut::new();
        let n = put_numeric(&mut buf, value);
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

    /// The digits as `format!("{}")` gives them (the shortest round-trip decimal, never with
    /// an exponent), rounded at the 16th decimal: what `put_numeric` must encode, by a
    /// different route. Returns (integer digits, exactly 15 decimals) without leading zeros.
    fn by_display(value: f64) -> String {
        let text = format!("{}", value.abs());
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let mut digits: Vec<u8> = int
            .bytes()
            .chain(frac.bytes().chain(std::iter::repeat(b'0')).take(15))
            .collect();
        if frac.as_bytes().get(15).is_some_and(|&d| d >= b'5') {
            let mut i = digits.len();
            loop {
                if i == 0 {
                    digits.insert(0, b'1');
                    break;
                }
                i -= 1;
                if digits[i] == b'9' {
                    digits[i] = b'0';
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
        let text = String::from_utf8(digits).unwrap();
        let (int, frac) = text.split_at(text.len() - 15);
        format!("{}.{frac}", int.trim_start_matches('0'))
    }

    /// The same form, read back from the encoded numeric.
    fn decoded(value: f64) -> String {
        let (_, weight, _, _, groups) = numeric(value);
        let mut int = String::new();
        let mut frac = String::new();
        for (i, g) in groups.iter().enumerate() {
            let place = i32::from(weight) - i as i32;
            if place >= 0 {
                int.push_str(&format!("{g:04}"));
            } else {
                while (frac.len() as i32) < 4 * (-place - 1) {
                    frac.push('0');
                }
                frac.push_str(&format!("{g:04}"));
            }
        }
        if !groups.is_empty() {
            // Groups after the last one up to the point are zeros.
            let last_place = i32::from(weight) - groups.len() as i32 + 1;
            for _ in 0..last_place.max(0) {
                int.push_str("0000");
            }
        }
        let frac: String = frac.chars().chain(std::iter::repeat('0')).take(15).collect();
        format!("{}.{frac}", int.trim_start_matches('0'))
    }

    #[test]
    fn numerics_have_the_digits_of_the_shortest_decimal_at_every_magnitude() {
        // Powers of ten and their neighbours around every place zmij switches notation, halves
        // at the 16th decimal, and a fixed pseudo-random spread of magnitudes and digits.
        let mut values = vec![0.0, 1.0, 0.5, 9.5e-16, 4.9e-16, 5e-16, 1e15, 1e16, 1e17, 123.456];
        // Ties: 1889498858277455.25 is as near to …455.2 as to …455.3, 212193901017841.625 to
        // …841.62 as to …841.63, and 8 + 2⁻¹⁶ = 8.0000152587890625 to …062 as to …063.
        values.extend([
            7_557_995_433_109_821.0 / 4.0,
            1_697_551_208_142_733.0 / 8.0,
            8.0 + 2f64.powi(-16),
        ]);
        // Carries from the 16th decimal into the integer part, and the edge of the u64
        // fixed point (≈1.8·10¹⁹).
        for k in [0.0, 7.0, 99.0, 9_999.0, 123_456_789.0] {
            values.push(k + 0.999_999_999_999_999_9);
            values.push(k + 0.000_000_000_000_000_5);
        }
        values.extend([u64::MAX as f64, 1e19, 1e19 - 2048.0, 2e19]);
        // Multiples of small powers of two, where ties live.
        for k in 0..30 {
            for m in [1.0, 3.0, 12_345.0, 987_654_321.0] {
                values.push(m * 2f64.powi(-k) + 8.0);
                values.push(m * 2f64.powi(-k));
            }
        }
        for e in -20..=40 {
            let p = 10f64.powi(e);
            values.extend([p, p * 0.999_999_999_999_999_9, p * 1.000_000_000_000_001, p * 1.5]);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mantissa = (x >> 11) as f64 / (1u64 << 53) as f64;
            let exponent = (x % 48) as i32 - 20;
            values.push(mantissa * 10f64.powi(exponent));
        }
        for v in values {
            for v in [v, -v] {
                assert_eq!(decoded(v), by_display(v), "{v:e}");
            }
        }
    }

    #[test]
    fn non_finite_values_become_numeric_nan() {
        assert_eq!(numeric(f64::NAN).2, 0xC000);
        assert_eq!(numeric(f64::INFINITY).2, 0xC000);
    }
}
