//! Field paths of the column-mapping sinks (`column = "value.a.b"`): where
//! a column's value is read from in an output, and the output's key, value
//! and headers parsed once as JSON to read them.

use serde_json::Value;

use crate::event::Output;

/// Where a mapped value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The output's key (JSON if it parses as JSON, else a string).
    Key,
    /// The output's value (JSON).
    Value,
    /// A header (JSON if it parses as JSON, else a string).
    Header(String),
}

/// `value.a.b`, `key`, `header.trace.id`: a root and a path inside it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct FieldPath {
    /// Where to start.
    pub root: Root,
    /// Object keys or array indexes below the root.
    pub path: Vec<String>,
    /// The path as written in the config, for messages.
    pub text: String,
}

impl TryFrom<String> for FieldPath {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        FieldPath::parse(&text)
    }
}

impl FieldPath {
    /// Parse `value`, `value.a.b`, `key`, `key.a`, `header.NAME[.a]`.
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let mut parts = text.split('.');
        let root = match parts.next() {
            Some("value") => Root::Value,
            Some("key") => Root::Key,
            Some("header") => match parts.next() {
                Some(name) if !name.is_empty() => Root::Header(name.to_string()),
                _ => return Err(format!("`{text}`: `header.` needs a header name")),
            },
            _ => {
                return Err(format!(
                    "`{text}`: a field path starts with `value`, `key` or `header.NAME`"
                ));
            }
        };
        let path: Vec<String> = parts.map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!("`{text}`: empty path segment"));
        }
        Ok(FieldPath {
            root,
            path,
            text: text.to_string(),
        })
    }

    /// Whether the path reads a header.
    pub fn reads_header(&self) -> bool {
        matches!(self.root, Root::Header(_))
    }
}

/// An output's key, value and headers as JSON, parsed once.
#[derive(Debug)]
pub struct Doc<'a> {
    value: Option<Value>,
    key: Option<Value>,
    headers: Vec<(&'a str, Value)>,
}

fn lenient_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

impl<'a> Doc<'a> {
    /// Parse the output: its value must be JSON (if it has one); its key
    /// and (with `with_headers`) headers are JSON when they parse as JSON,
    /// else strings.
    pub fn new(out: &'a Output, with_headers: bool) -> Result<Doc<'a>, String> {
        let value = match &out.value {
            Some(bytes) => Some(
                serde_json::from_slice(bytes)
                    .map_err(|e| format!("output value is not JSON: {e}"))?,
            ),
            None => None,
        };
        let key = out.key.as_deref().map(lenient_json);
        let headers = if with_headers {
            out.headers
                .iter()
                .map(|h| (h.key.as_str(), lenient_json(&h.value)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Doc {
            value,
            key,
            headers,
        })
    }

    /// The value at `path`, if the output has it.
    pub fn get(&self, path: &FieldPath) -> Option<&Value> {
        let root: Option<&Value> = match &path.root {
            Root::Value => self.value.as_ref(),
            Root::Key => self.key.as_ref(),
            Root::Header(name) => self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        };
        root.and_then(|v| walk(v, &path.path))
    }
}

fn step<'v>(v: &'v Value, seg: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    }
}

fn walk<'v>(mut v: &'v Value, path: &[String]) -> Option<&'v Value> {
    for seg in path {
        v = step(v, seg)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_read_key_value_and_headers() {
        let out = Output {
            key: Some("k-1".to_owned().into()),
            value: Some(r#"{"a":{"b":[10,20]}}"#.to_owned().into()),
            headers: vec![crate::event::Header::new("trace", "{\"id\":7}".to_owned())],
            ..Output::default()
        };
        let doc = Doc::new(&out, true).unwrap();
        let get = |p: &str| doc.get(&FieldPath::parse(p).unwrap()).cloned();
        assert_eq!(get("value.a.b.1"), Some(Value::from(20)));
        assert_eq!(get("key"), Some(Value::from("k-1")));
        assert_eq!(get("header.trace.id"), Some(Value::from(7)));
        assert_eq!(get("value.nope"), None);
        assert_eq!(
            FieldPath::parse("body.x").unwrap_err(),
            "`body.x`: a field path starts with `value`, `key` or `header.NAME`"
        );
        assert!(FieldPath::parse("value..x").is_err());
    }
}
