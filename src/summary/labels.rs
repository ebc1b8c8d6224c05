//! Label objects: filter to the enabled keys and merge with precedence, once per distinct string.
//!
//! koku parses each label JSON into `map(varchar, varchar)`, keeps the enabled keys with
//! `map_filter`, and merges maps with `map_concat` (later maps win). We keep the same rules on
//! canonical JSON text (keys sorted, compact), so equal maps are equal strings and can be grouped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::Mutex;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// koku adds this key to the enabled ones so that VM labels always survive.
pub const KUBEVIRT_KEY: &str = "vm_kubevirt_io_name";

/// A label object: key → value (`None` for a JSON null value).
pub type Labels = BTreeMap<String, Option<String>>;

/// The enabled keys; `None` reproduces koku's quirk when no OCP key is enabled: the Trino
/// `array_agg` over no rows is null, `contains(null, k)` is null, and every label is dropped,
/// `vm_kubevirt_io_name` included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EnabledKeys(Option<BTreeSet<String>>);

impl EnabledKeys {
    /// From koku's enabled OCP keys (or the config's): empty means "none enabled" (the quirk).
    pub fn from_enabled(keys: impl IntoIterator<Item = String>) -> Self {
        let mut set: BTreeSet<String> = keys.into_iter().collect();
        if set.is_empty() {
            return EnabledKeys(None);
        }
        set.insert(KUBEVIRT_KEY.to_string());
        EnabledKeys(Some(set))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(key))
    }
}

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

/// `koku_filter_labels(text) -> text`: the enabled keys of a label object, as canonical JSON.
///
/// Work is done once per distinct string of each batch. A malformed object yields `{}` and is
/// remembered in `malformed`.
#[derive(Debug)]
pub struct FilterLabels {
    keys: EnabledKeys,
    signature: Signature,
    malformed: Arc<MalformedLabels>,
}

impl FilterLabels {
    pub fn udf(keys: EnabledKeys, malformed: Arc<MalformedLabels>) -> ScalarUDF {
        ScalarUDF::new_from_impl(FilterLabels {
            keys,
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
            malformed,
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
        let input = utf8_column(&args.args[0], args.number_rows)?;
        let input = as_string_array(&input)?;
        let mut cache: HashMap<&str, String> = HashMap::new();
        let mut out = StringBuilder::with_capacity(input.len(), input.len() * 16);
        for i in 0..input.len() {
            let text = if input.is_null(i) { "" } else { input.value(i) };
            let filtered = cache
                .entry(text)
                .or_insert_with(|| match filter_text(text, &self.keys) {
                    Ok(filtered) => filtered,
                    Err(_) => {
                        self.malformed.insert(text);
                        "{}".to_string()
                    }
                });
            out.append_value(filtered.as_str());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `koku_merge_labels(a, b, ...) -> text`: canonical label objects merged, later keys winning;
/// a null argument counts as `{}` (koku's `coalesce(..., '{}')`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MergeLabels {
    signature: Signature,
}

impl MergeLabels {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(MergeLabels {
            signature: Signature::variadic_any(Volatility::Immutable),
        })
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
            .map(|a| utf8_column(a, n))
            .collect::<DfResult<Vec<_>>>()?;
        let columns = columns
            .iter()
            .map(|c| as_string_array(c))
            .collect::<DfResult<Vec<&StringArray>>>()?;
        let mut cache: HashMap<Vec<&str>, String> = HashMap::new();
        let mut out = StringBuilder::with_capacity(n, n * 16);
        for i in 0..n {
            let texts: Vec<&str> = columns
                .iter()
                .map(|c| if c.is_null(i) { "" } else { c.value(i) })
                .collect();
            let merged = cache.entry(texts).or_insert_with_key(|texts| {
                // The inputs come from koku_filter_labels, so they parse; be lenient anyway.
                let parts: Vec<Labels> = texts.iter().map(|t| parse(t).unwrap_or_default()).collect();
                to_json(&merge(&parts))
            });
            out.append_value(merged.as_str());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// A UDF argument as a Utf8 array of `rows` rows, whatever string type or scalar it came as.
pub(crate) fn utf8_column(value: &ColumnarValue, rows: usize) -> DfResult<ArrayRef> {
    let array = value.to_array(rows)?;
    Ok(match array.data_type() {
        DataType::Utf8 => array,
        _ => cast(&array, &DataType::Utf8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
