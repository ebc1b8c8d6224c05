//! Label objects: filter to the enabled keys and merge with precedence, once per distinct string.
//!
//! koku parses each label JSON into `map(varchar, varchar)`, keeps the enabled keys with
//! `map_filter`, and merges maps with `map_concat` (later maps win). We keep the same rules on
//! canonical JSON text (keys sorted, compact), so equal maps are equal strings and can be grouped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::Mutex;

use datafusion::arrow::array::{
    Array, AsArray, LargeStringArray, StringArray, StringBuilder, StringViewArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::HashMap;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::reference::EnabledKeys;

/// A label object: key → value (`None` for a JSON null value).
pub type Labels = BTreeMap<String, Option<String>>;

/// Parses a label object; empty text or `null` is `{}`. `Err` for anything that is not an
/// object of scalars (koku's cast to `map(varchar, varchar)` would fail on it).
pub fn parse(text: &str) -> Result<Labels, String> {
    let text = text.trim();
    if text.is_empty() || text == "null" {
        return Ok(Labels::new());
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Bool(b) => Some(b.to_string()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                other => return Err(format!("value of `{k}` is not a scalar: {other}")),
            };
            Ok((k, v))
        })
        .collect()
}

/// `to_json(&filter(parse(text)?, keys))` without building the whole object: keys that are not
/// enabled are checked to hold a scalar and skipped, nothing of them is copied. This is the
/// per-distinct-string work of the Pod section, so it is worth the few lines.
pub fn filter_text(text: &str, keys: &EnabledKeys) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text == "null" {
        return Ok("{}".to_string());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let labels =
        serde::de::DeserializeSeed::deserialize(Enabled(keys), &mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(to_json(&labels))
}

/// Reads a label object keeping only the enabled keys (`filter_text`).
struct Enabled<'k>(&'k EnabledKeys);

impl<'de> serde::de::DeserializeSeed<'de> for Enabled<'_> {
    type Value = Labels;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Labels, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Enabled<'_> {
    type Value = Labels;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
        let mut out = Labels::new();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let value: Scalar<'de> = map.next_value()?;
            if self.0.contains(&key) {
                out.insert(key.into_owned(), value.into_label());
            }
        }
        Ok(out)
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Text<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A label value: koku casts to `map(varchar, varchar)`, so scalars become text and anything
/// else makes the object malformed.
enum Scalar<'a> {
    Null,
    Text(std::borrow::Cow<'a, str>),
    Other(String),
}

impl Scalar<'_> {
    fn into_label(self) -> Option<String> {
        match self {
            Scalar::Null => None,
            Scalar::Text(t) => Some(t.into_owned()),
            Scalar::Other(s) => Some(s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(v.to_string()))
            }
            // Numbers print as serde_json prints them, as `parse` does.
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(serde_json::Number::from(v).to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other(serde_json::Number::from(v).to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                serde_json::Number::from_f64(v)
                    .map(|n| Scalar::Other(n.to_string()))
                    .ok_or_else(|| E::custom("not a finite number"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Canonical JSON text: keys sorted, no spaces.
pub fn to_json(labels: &Labels) -> String {
    serde_json::to_string(labels).expect("a map of strings always serialises")
}

/// Keeps the enabled keys of a label object.
pub fn filter(labels: Labels, keys: &EnabledKeys) -> Labels {
    labels.into_iter().filter(|(k, _)| keys.contains(k)).collect()
}

/// Merges label objects in order, later keys winning (Trino's `map_concat`).
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Labels>) -> Labels {
    let mut out = Labels::new();
    for part in parts {
        out.extend(part.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

/// The distinct label strings that were not a JSON object of scalars. They are rare, so a set
/// costs nothing on good data and gives an exact count however often the function runs.
#[derive(Debug, Default)]
pub struct MalformedLabels(Mutex<BTreeSet<String>>);

impl MalformedLabels {
    fn insert(&self, text: &str) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(text.to_string());
        }
    }

    /// How many distinct malformed strings were met.
    pub fn count(&self) -> u64 {
        self.0.lock().map_or(0, |s| s.len() as u64)
    }

    /// A few of them, for a log line an operator can search the files for.
    pub fn examples(&self, n: usize) -> Vec<String> {
        self.0
            .lock()
            .map_or(vec![], |s| s.iter().take(n).cloned().collect())
    }
}

/// A label function's results across batches and passes, keyed by its argument text. The same
/// label strings come back for every hour, day and node of a month, so after the first few
/// batches nearly every row finds its result here and parses nothing. When the cache holds more
/// than [`RESULT_CACHE_BYTES`] it starts over, which bounds its memory however many distinct
/// strings a month has.
#[derive(Debug, Default)]
struct ResultCache {
    map: HashMap<String, Box<str>>,
    bytes: usize,
}

/// What a [`ResultCache`] may hold before it starts over: small next to the engine's memory
/// budget (with both caches the 100M-row benchmark write peaked 79 MiB higher, 610 MiB).
const RESULT_CACHE_BYTES: usize = 32 << 20;

impl ResultCache {
    /// Starts over when over budget; called between batches, so results in use stay valid.
    fn trim(&mut self) {
        if self.bytes > RESULT_CACHE_BYTES {
            self.map.clear();
            self.bytes = 0;
        }
    }

    /// The result for `key`, computed by `make` the first time it is asked for.
    fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce(&str) -> String) -> &str {
        let bytes = &mut self.bytes;
        self.map.entry_ref(key).or_insert_with(|| {
            let value = make(key);
            // The two strings and a table slot.
            *bytes += key.len() + value.len() + 48;
            value.into_boxed_str()
        })
    }
}

/// `koku_filter_labels(text) -> text`: the enabled keys of a label object, as canonical JSON.
///
/// Work is done once per distinct string of the run (see [`ResultCache`]). A malformed object
/// yields `{}` and is remembered in `malformed`.
#[derive(Debug)]
pub struct FilterLabels {
    keys: EnabledKeys,
    signature: Signature,
    malformed: Arc<MalformedLabels>,
    results: Mutex<ResultCache>,
}

impl FilterLabels {
    pub fn udf(keys: EnabledKeys, malformed: Arc<MalformedLabels>) -> ScalarUDF {
        ScalarUDF::new_from_impl(FilterLabels {
            keys,
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
            malformed,
            results: Mutex::default(),
        })
    }
}

impl PartialEq for FilterLabels {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}
impl Eq for FilterLabels {}
impl Hash for FilterLabels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.keys.hash(state);
    }
}

impl ScalarUDFImpl for FilterLabels {
    fn name(&self) -> &str {
        "koku_filter_labels"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let input = Texts::new(&args.args[0], args.number_rows)?;
        let mut results = lock(&self.results);
        results.trim();
        let mut out = StringBuilder::with_capacity(input.len(), input.len() * 16);
        for i in 0..input.len() {
            let filtered = results.get_or_insert_with(input.get(i), |text| {
                filter_text(text, &self.keys).unwrap_or_else(|_| {
                    self.malformed.insert(text);
                    "{}".to_string()
                })
            });
            out.append_value(filtered);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `koku_merge_labels(a, b, ...) -> text`: canonical label objects merged, later keys winning;
/// a null argument counts as `{}` (koku's `coalesce(..., '{}')`). Once per distinct combination
/// of the run, like `koku_filter_labels`.
#[derive(Debug)]
pub struct MergeLabels {
    signature: Signature,
    results: Mutex<ResultCache>,
}

impl MergeLabels {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(MergeLabels {
            signature: Signature::variadic_any(Volatility::Immutable),
            results: Mutex::default(),
        })
    }
}

impl PartialEq for MergeLabels {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl Eq for MergeLabels {}
impl Hash for MergeLabels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl ScalarUDFImpl for MergeLabels {
    fn name(&self) -> &str {
        "koku_merge_labels"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let columns = args
            .args
            .iter()
            .map(|a| Texts::new(a, n))
            .collect::<DfResult<Vec<_>>>()?;
        let mut results = lock(&self.results);
        results.trim();
        let mut key = String::new();
        let mut out = StringBuilder::with_capacity(n, n * 16);
        for i in 0..n {
            // The arguments, each behind its length: no two lists of texts give the same key.
            key.clear();
            for column in &columns {
                let text = column.get(i);
                let _ = write!(key, "{}:", text.len());
                key.push_str(text);
            }
            let merged = results.get_or_insert_with(&key, |_| {
                // The inputs come from koku_filter_labels, so they parse; be lenient anyway.
                let parts: Vec<Labels> = columns
                    .iter()
                    .map(|c| parse(c.get(i)).unwrap_or_default())
                    .collect();
                to_json(&merge(&parts))
            });
            out.append_value(merged);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// A cache's lock; a panic in another batch leaves nothing half-updated that matters (at
/// worst a missing entry), so a poisoned lock is used as it is.
fn lock(results: &Mutex<ResultCache>) -> std::sync::MutexGuard<'_, ResultCache> {
    results.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A string argument of any of Arrow's string types, read in place: casting a string-view
/// column to `Utf8` would copy every value of every batch. A null reads as `""`.
pub(crate) enum Texts {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

impl Texts {
    pub(crate) fn new(value: &ColumnarValue, rows: usize) -> DfResult<Texts> {
        let array = value.to_array(rows)?;
        Ok(match array.data_type() {
            DataType::Utf8 => Texts::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Texts::Large(array.as_string::<i64>().clone()),
            DataType::Utf8View => Texts::View(array.as_string_view().clone()),
            _ => Texts::Utf8(cast(&array, &DataType::Utf8)?.as_string::<i32>().clone()),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.array().len()
    }

    pub(crate) fn is_null(&self, i: usize) -> bool {
        self.array().is_null(i)
    }

    pub(crate) fn get(&self, i: usize) -> &str {
        if self.is_null(i) {
            return "";
        }
        match self {
            Texts::Utf8(a) => a.value(i),
            Texts::Large(a) => a.value(i),
            Texts::View(a) => a.value(i),
        }
    }

    fn array(&self) -> &dyn Array {
        match self {
            Texts::Utf8(a) => a,
            Texts::Large(a) => a,
            Texts::View(a) => a,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::ArrayRef;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn filtering_keeps_enabled_keys_and_kubevirt_name() {
        let keys = EnabledKeys::from_enabled(["app".to_string()]);
        let parsed = parse(r#"{"app": "web",  "tier":"db", "vm_kubevirt_io_name": "vm1"}"#).unwrap();
        assert_eq!(
            to_json(&filter(parsed, &keys)),
            r#"{"app":"web","vm_kubevirt_io_name":"vm1"}"#
        );
    }

    #[test]
    fn filtering_text_gives_what_parse_filter_and_to_json_give() {
        let keys = EnabledKeys::from_enabled(["app", "n", "b", "esc", "dup", "nul"].map(String::from));
        let none = EnabledKeys::from_enabled(Vec::<String>::new());
        for text in [
            r#"{"app": "web",  "tier":"db", "vm_kubevirt_io_name": "vm1"}"#,
            r#"{"n": 3, "b": true, "f": 1.5e3, "neg": -2, "nul": null}"#,
            r#"{"esc": "a\"b\u00e9", "t\u0061": "x", "dup": "1", "dup": "2"}"#,
            r#" {} "#,
            "",
            "null",
            r#"{"app": {"nested": 1}}"#,
            r#"{"tier": [1]}"#,
            r#"{"app": "web"} trailing"#,
            "[1]",
            "\"text\"",
            "not json",
        ] {
            for k in [&keys, &none] {
                let slow = parse(text).map(|l| to_json(&filter(l, k)));
                assert_eq!(filter_text(text, k).is_ok(), slow.is_ok(), "{text}");
                if let Ok(slow) = slow {
                    assert_eq!(filter_text(text, k).unwrap(), slow, "{text}");
                }
            }
        }
    }

    /// `SELECT udf(c0, c1, ...) FROM t` through DataFusion, one batch per element of `batches`.
    async fn call(udf: ScalarUDF, batches: Vec<Vec<ArrayRef>>) -> Vec<String> {
        use datafusion::arrow::array::RecordBatch;
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::datasource::MemTable;
        use datafusion::prelude::SessionContext;

        let fields = batches[0]
            .iter()
            .enumerate()
            .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
            .collect::<Vec<_>>();
        let schema = Arc::new(Schema::new(fields));
        let batches = batches
            .into_iter()
            .map(|columns| RecordBatch::try_new(schema.clone(), columns).unwrap())
            .collect();
        let ctx = SessionContext::new();
        let name = udf.name().to_string();
        ctx.register_udf(udf);
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema.clone(), vec![batches]).unwrap()),
        )
        .unwrap();
        let args = (0..schema.fields().len())
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>();
        let out = ctx
            .sql(&format!("SELECT {name}({}) FROM t", args.join(", ")))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        out.iter()
            .flat_map(|b| {
                let column = b.column(0).as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| column.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn filtering_reads_every_string_type_and_remembers_results_across_batches() {
        let keys = EnabledKeys::from_enabled(["app".to_string()]);
        let texts = [
            Some(r#"{"app": "web", "tier": "db"}"#),
            None,
            Some("not json"),
            Some(r#"{"app": "web", "tier": "db"}"#),
            Some(r#"{"tier": "db"}"#),
        ];
        let expected = [r#"{"app":"web"}"#, "{}", "{}", r#"{"app":"web"}"#, "{}"];
        let arrays: [ArrayRef; 3] = [
            Arc::new(StringArray::from(texts.to_vec())),
            Arc::new(LargeStringArray::from(texts.to_vec())),
            Arc::new(StringViewArray::from(texts.to_vec())),
        ];
        for array in arrays {
            let malformed = Arc::new(MalformedLabels::default());
            // The second batch finds every string in the cache and must give the same text.
            let batches = vec![vec![array.clone()], vec![array]];
            let out = call(FilterLabels::udf(keys.clone(), malformed.clone()), batches).await;
            assert_eq!(out, [expected, expected].concat());
            assert_eq!(malformed.count(), 1);
        }
    }

    #[tokio::test]
    async fn merging_tells_apart_arguments_that_concatenate_alike() {
        // Joined without their lengths, both rows would read `{"a":"1"}{}`; the second row's
        // first argument is not an object, so it merges to `{}` (leniently, as no label).
        let first = StringArray::from(vec![r#"{"a":"1"}"#, r#"{"a":"1"}{}"#]);
        let second = StringArray::from(vec!["{}", ""]);
        let batch = vec![Arc::new(first) as ArrayRef, Arc::new(second) as ArrayRef];
        let out = call(MergeLabels::udf(), vec![batch.clone(), batch]).await;
        assert_eq!(out, [r#"{"a":"1"}"#, "{}", r#"{"a":"1"}"#, "{}"]);
    }

    #[test]
    fn a_result_cache_over_its_budget_starts_over() {
        let mut cache = ResultCache::default();
        assert_eq!(cache.get_or_insert_with("k", |k| format!("{k}!")), "k!");
        cache.trim();
        assert_eq!(cache.map.len(), 1, "within budget, results are kept");
        cache.bytes = RESULT_CACHE_BYTES + 1;
        cache.trim();
        assert!(cache.map.is_empty());
        assert_eq!(cache.bytes, 0);
        assert_eq!(cache.get_or_insert_with("k", |_| "again".into()), "again");
    }

    #[test]
    fn no_enabled_key_drops_every_label_including_kubevirt_name() {
        let keys = EnabledKeys::from_enabled(Vec::<String>::new());
        let parsed = parse(r#"{"app":"web","vm_kubevirt_io_name":"vm1"}"#).unwrap();
        assert_eq!(to_json(&filter(parsed, &keys)), "{}");
    }

    #[test]
    fn later_objects_win_on_key_collisions() {
        let node = labels(&[("app", "node"), ("zone", "a")]);
        let namespace = labels(&[("app", "ns"), ("team", "t1")]);
        let pod = labels(&[("app", "pod")]);
        assert_eq!(
            to_json(&merge([&node, &namespace, &pod])),
            r#"{"app":"pod","team":"t1","zone":"a"}"#
        );
    }

    #[test]
    fn empty_and_null_text_mean_no_labels_and_scalars_become_strings() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("null").unwrap().is_empty());
        assert_eq!(
            to_json(&parse(r#"{"n": 3, "b": true}"#).unwrap()),
            r#"{"b":"true","n":"3"}"#
        );
        assert!(parse(r#"{"a": {"b": 1}}"#).is_err());
        assert!(parse("not json").is_err());
        assert!(parse("[1]").is_err());
    }
}
