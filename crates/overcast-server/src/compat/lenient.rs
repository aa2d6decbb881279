//! Request reading as lenient as the replaced tools were: trailing commas in JSON, keys in
//! any case and with `_` for `-`, values from the body or the query string, and unknown
//! keys ignored. The native `/v1` API stays strict; only the compatibility families read
//! requests this way (CONTRACTS.md §6.1).

use overcast_types::Error;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Parses JSON, first dropping commas that stand right before a closing `}` or `]`.
pub fn parse_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(&without_trailing_commas(bytes))
}

/// The bytes without the commas that stand right before a closing `}` or `]`.
pub fn without_trailing_commas(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b',' {
            let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
            if matches!(next, Some(b'}' | b']')) {
                continue;
            }
        }
        out.push(b);
    }
    out
}

/// A key as the families compare them: `Instance_ID`, `instance-id` and `instance_id` are
/// one key.
fn normalize(key: &str) -> String {
    key.to_ascii_lowercase().replace('_', "-")
}

/// A request's named values, from a JSON object and then the query string or a form; the
/// first source that gives a key wins.
#[derive(Debug, Default)]
pub struct Fields {
    values: BTreeMap<String, Value>,
}

impl Fields {
    /// The members of a JSON object; anything else gives no fields.
    pub fn from_json(value: Value) -> Fields {
        let mut fields = Fields::default();
        if let Value::Object(members) = value {
            fields.add_members(members);
        }
        fields
    }

    fn add_members(&mut self, members: Map<String, Value>) {
        for (key, value) in members {
            self.values.entry(normalize(&key)).or_insert(value);
        }
    }

    /// Adds `application/x-www-form-urlencoded` pairs (a query string or a form body) for
    /// keys not given yet.
    pub fn add_pairs(&mut self, encoded: &str) -> Result<(), Error> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(encoded)
            .map_err(|e| Error::invalid("query", format!("cannot read the query: {e}")))?;
        for (key, value) in pairs {
            self.values
                .entry(normalize(&key))
                .or_insert(Value::String(value));
        }
        Ok(())
    }

    /// A value, unless it is absent or `null`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(&normalize(key)).filter(|v| !v.is_null())
    }

    /// A value as text: a string as it is, a number or a boolean as written (the tools
    /// stringified them); an object or an array is not text.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// One string or an array of strings (Flint's `instance-id` is either).
    pub fn texts(&self, key: &str) -> Result<Option<Vec<String>>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Error::invalid(
                        key,
                        "must be a string or an array of strings",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Error::invalid(
                key,
                "must be a string or an array of strings",
            )),
        }
    }

    /// An object of scalars, its keys kept as sent (tag keys are case-sensitive).
    pub fn map(&self, key: &str) -> Option<BTreeMap<String, String>> {
        let Value::Object(members) = self.get(key)? else {
            return None;
        };
        members
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                Value::Number(n) => Some((k.clone(), n.to_string())),
                Value::Bool(b) => Some((k.clone(), b.to_string())),
                _ => None,
            })
            .collect()
    }

    /// A whole number, given as a number or as digits.
    pub fn number(&self, key: &str) -> Result<Option<i64>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Error::invalid(key, "must be a whole number")),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::invalid(key, format!("`{s}` is not a whole number"))),
            Some(_) => Err(Error::invalid(key, "must be a whole number")),
        }
    }

    /// A flag, given as a boolean or as `true`/`false`.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(Error::invalid(key, "must be true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trailing_commas_are_dropped_outside_strings() {
        let value = parse_json(br#"{"a": [1, 2, ], "b": {"c": "x,}", }, }"#).unwrap();
        assert_eq!(value, json!({"a": [1, 2], "b": {"c": "x,}"}}));
        let value = parse_json(br#"{"q": "say \"hi,\" ]", }"#).unwrap();
        assert_eq!(value, json!({"q": "say \"hi,\" ]"}));
        assert!(parse_json(b"{\"a\": 1,, }").is_err());
    }

    #[test]
    fn keys_match_in_any_case_and_spelling_and_the_body_wins() {
        let mut fields = Fields::from_json(json!({
            "Instance_ID": ["i-1", "i-2"], "config-type": "dev", "count": 3, "none": null,
            "tags": {"Config": "dev", "n": 1}
        }));
        fields
            .add_pairs("config-type=prod&region=eu-west-1")
            .unwrap();
        assert_eq!(
            fields.texts("instance-id").unwrap(),
            Some(vec!["i-1".to_string(), "i-2".to_string()])
        );
        assert_eq!(fields.text("config_type").as_deref(), Some("dev"));
        assert_eq!(fields.text("REGION").as_deref(), Some("eu-west-1"));
        assert_eq!(fields.text("count").as_deref(), Some("3"));
        assert_eq!(fields.number("count").unwrap(), Some(3));
        assert_eq!(fields.text("none"), None);
        assert_eq!(fields.text("tags"), None, "an object is not text");
        let tags = fields.map("tags").unwrap();
        assert_eq!(tags["Config"], "dev", "map keys keep their case");
        assert_eq!(tags["n"], "1");
        assert!(fields.texts("count").is_err());
        assert_eq!(fields.flag("absent").unwrap(), None);
    }
}
