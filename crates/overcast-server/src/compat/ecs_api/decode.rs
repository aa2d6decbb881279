//! Request bodies as ecs-api's Go decoder read them into the AWS SDK's input structs: the
//! first JSON value only (trailing commas tolerated, CONTRACTS.md §6.1), struct keys in any
//! case with the exact spelling preferred, map keys kept as sent, unknown keys
//! ignored, and types strict, with Go's own wording when they are not what a field takes.
//! A field the SDK has but overcast does not carry is refused by name rather than dropped.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::EcsError;
use crate::compat::lenient;

/// The body's first JSON value, as `json.NewDecoder(r).Decode` read it: what follows it
/// is not read.
pub fn body(bytes: &[u8]) -> Result<Value, EcsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(EcsError::bad_request("EOF"));
    }
    let cleaned = lenient::without_trailing_commas(bytes);
    match serde_json::Deserializer::from_slice(&cleaned)
        .into_iter::<Value>()
        .next()
    {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(EcsError::bad_request(e.to_string())),
        None => Err(EcsError::bad_request("EOF")),
    }
}

/// How Go names a JSON value's type in its decoding errors.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An object decoded into the Go struct `name` (e.g. `ecs.CreateClusterInput`).
#[derive(Clone, Copy)]
pub struct GoStruct<'a> {
    name: &'a str,
    members: &'a Map<String, Value>,
}

impl<'a> GoStruct<'a> {
    /// A whole body as the struct `name`.
    pub fn of(value: &'a Value, name: &'a str) -> Result<Self, EcsError> {
        match value {
            Value::Object(members) => Ok(GoStruct { name, members }),
            other => Err(EcsError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type {name}",
                json_type(other)
            ))),
        }
    }

    /// A field's value by its Go name, as Go's decoder documents it: the exact spelling
    /// first, else any other case; `null` is no value.
    fn raw(&self, field: &str) -> Option<&'a Value> {
        self.members
            .get(field)
            .or_else(|| {
                self.members
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(field))
                    .map(|(_, value)| value)
            })
            .filter(|value| !value.is_null())
    }

    fn mismatch(&self, field: &str, value: &Value, go_type: &str) -> EcsError {
        let short = self.name.rsplit('.').next().unwrap_or(self.name);
        EcsError::bad_request(format!(
            "json: cannot unmarshal {} into Go struct field {short}.{field} of type {go_type}",
            json_type(value)
        ))
    }

    pub fn has(&self, field: &str) -> bool {
        self.raw(field).is_some()
    }

    pub fn string(&self, field: &str) -> Result<Option<String>, EcsError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.mismatch(field, other, "string")),
        }
    }

    pub fn int(&self, field: &str) -> Result<Option<i64>, EcsError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.mismatch(field, &Value::Number(n.clone()), "int64")),
            Some(other) => Err(self.mismatch(field, other, "int64")),
        }
    }

    pub fn bool(&self, field: &str) -> Result<Option<bool>, EcsError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.mismatch(field, other, "bool")),
        }
    }

    /// A `[]*string`; absent is empty.
    pub fn strings(&self, field: &str) -> Result<Vec<String>, EcsError> {
        match self.raw(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|item| !item.is_null())
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.mismatch(field, other, "string")),
                })
                .collect(),
            Some(other) => Err(self.mismatch(field, other, "[]*string")),
        }
    }

    /// A nested struct pointer.
    pub fn object(&self, field: &str, name: &'a str) -> Result<Option<GoStruct<'a>>, EcsError> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::Object(members)) => Ok(Some(GoStruct { name, members })),
            Some(other) => Err(self.mismatch(field, other, name)),
        }
    }

    /// A slice of struct pointers; absent is empty.
    pub fn objects(&self, field: &str, name: &'a str) -> Result<Vec<GoStruct<'a>>, EcsError> {
        match self.raw(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|item| !item.is_null())
                .map(|item| match item {
                    Value::Object(members) => Ok(GoStruct { name, members }),
                    other => Err(self.mismatch(field, other, name)),
                })
                .collect(),
            Some(other) => Err(self.mismatch(field, other, name)),
        }
    }

    /// A `map[string]*T` of objects, its keys kept exactly as sent.
    pub fn object_map(
        &self,
        field: &str,
        name: &'a str,
    ) -> Result<BTreeMap<String, GoStruct<'a>>, EcsError> {
        match self.raw(field) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(entries)) => entries
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(key, value)| match value {
                    Value::Object(members) => Ok((key.clone(), GoStruct { name, members })),
                    other => Err(self.mismatch(field, other, name)),
                })
                .collect(),
            Some(other) => Err(self.mismatch(field, other, "map")),
        }
    }

    /// A `map[string]*string`, its keys kept exactly as sent.
    pub fn string_map(&self, field: &str) -> Result<BTreeMap<String, String>, EcsError> {
        match self.raw(field) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(entries)) => entries
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(key, value)| match value {
                    Value::String(s) => Ok((key.clone(), s.clone())),
                    other => Err(self.mismatch(field, other, "string")),
                })
                .collect(),
            Some(other) => Err(self.mismatch(field, other, "map[string]*string")),
        }
    }

    /// `[{"Key": ..., "Value": ...}]` (AWS tags) as a map; tag keys keep their case.
    pub fn tags(&self, field: &str) -> Result<BTreeMap<String, String>, EcsError> {
        self.pairs(field, "Tag", "Key")
    }

    /// `[{"Name": ..., "Value": ...}]` (ECS's key-value pairs) as a map.
    pub fn name_values(&self, field: &str) -> Result<BTreeMap<String, String>, EcsError> {
        self.pairs(field, "KeyValuePair", "Name")
    }

    fn pairs(
        &self,
        field: &str,
        name: &'a str,
        key: &str,
    ) -> Result<BTreeMap<String, String>, EcsError> {
        let mut pairs = BTreeMap::new();
        for pair in self.objects(field, name)? {
            let k = pair.string(key)?.unwrap_or_default();
            pairs.insert(k, pair.string("Value")?.unwrap_or_default());
        }
        Ok(pairs)
    }

    /// Refuses the SDK fields overcast does not carry when a request sets them, naming the
    /// first, rather than dropping what the caller asked for. A field left at its zero value
    /// (`null`, `false`, `0`, `""`, `[]`, `{}`) asks for nothing and passes.
    pub fn refuse(&self, unsupported: &[&str]) -> Result<(), EcsError> {
        let short = self.name.rsplit('.').next().unwrap_or(self.name);
        for field in unsupported {
            let set = match self.raw(field) {
                None | Some(Value::Bool(false)) => false,
                Some(Value::Number(n)) => n.as_f64() != Some(0.0),
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Object(o)) => !o.is_empty(),
                Some(_) => true,
            };
            if set {
                return Err(EcsError::bad_request(format!(
                    "{short}.{field} is not supported by overcast; leave it out"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    #[test]
    fn bodies_are_read_as_go_read_them() {
        assert_eq!(body(b"  ").unwrap_err().text, "EOF");
        assert_eq!(
            body(b"{\"a\": [1, ], } trailing").unwrap(),
            json!({"a": [1]}),
            "trailing commas are dropped and only the first value is read"
        );
        assert_eq!(body(br#"{"a": 1} {"b": 2}"#).unwrap(), json!({"a": 1}));
        assert_eq!(
            body(b"{\"a\": ").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn struct_keys_match_in_any_case_and_map_keys_keep_theirs() {
        let value = json!({
            "clustername": "a", "ClusterName": "b", "desiredcount": 2,
            "tags": [{"key": "Team", "value": "web"}],
            "options": {"awslogs-Group": "g"}, "ports": [80]
        });
        let input = GoStruct::of(&value, "ecs.CreateClusterInput").unwrap();
        assert_eq!(input.string("ClusterName").unwrap().as_deref(), Some("b"));
        assert_eq!(input.string("CLUSTERNAME").unwrap().as_deref(), Some("b"));
        assert_eq!(input.int("DesiredCount").unwrap(), Some(2));
        assert_eq!(input.tags("Tags").unwrap()["Team"], "web");
        assert_eq!(input.string_map("Options").unwrap()["awslogs-Group"], "g");
        let wrong = input.string("DesiredCount").unwrap_err();
        assert_eq!(
            wrong.text,
            "json: cannot unmarshal number into Go struct field CreateClusterInput.DesiredCount of type string"
        );
        assert!(input.refuse(&["Settings"]).is_ok(), "absent passes");
        let unsupported = json!({"volumes": [{"name": "v"}], "privileged": false});
        let refused = GoStruct::of(&unsupported, "ecs.X").unwrap();
        assert!(
            refused.refuse(&["Privileged"]).is_ok(),
            "a zero value passes"
        );
        assert_eq!(
            refused.refuse(&["Volumes"]).unwrap_err().text,
            "X.Volumes is not supported by overcast; leave it out"
        );
    }
}
