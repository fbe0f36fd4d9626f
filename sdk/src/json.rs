//! JSON helpers: read, write and remove fields by dotted path
//! (`"user.address.city"`; a numeric segment indexes an array when reading
//! or removing: `"items.0.sku"`).
//!
//! ```
//! use weir_sdk::json;
//! use weir_sdk::serde_json::json;
//!
//! let mut v = json!({"user": {"email": "a@example.com"}});
//! assert_eq!(json::get(&v, "user.email"), Some(&json!("a@example.com")));
//! json::set(&mut v, "meta.source", json!("web")).unwrap();
//! assert_eq!(json::remove(&mut v, "user.email"), Some(json!("a@example.com")));
//! assert_eq!(v, json!({"user": {}, "meta": {"source": "web"}}));
//! ```

use std::borrow::Cow;
use std::fmt;

pub use serde_json::{Map, Value};

/// A path could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// The full path.
    pub path: String,
    /// The part of the path that is not an object.
    pub at: String,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "cannot set `{}`: the value is not an object", self.path)
        } else {
            write!(
                f,
                "cannot set `{}`: `{}` is not an object",
                self.path, self.at
            )
        }
    }
}

impl std::error::Error for PathError {}

impl From<PathError> for String {
    fn from(e: PathError) -> String {
        e.to_string()
    }
}

fn step<'v>(v: &'v Value, segment: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m.get(segment),
        Value::Array(a) => segment.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    }
}

fn step_mut<'v>(v: &'v mut Value, segment: &str) -> Option<&'v mut Value> {
    match v {
        Value::Object(m) => m.get_mut(segment),
        Value::Array(a) => segment.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    }
}

/// The value at `path`, if every step exists.
pub fn get<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, step)
}

/// The value at `path`, mutably.
pub fn get_mut<'v>(v: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    path.split('.').try_fold(v, step_mut)
}

/// The string at `path`, if there is one and it is a string.
pub fn get_str<'v>(v: &'v Value, path: &str) -> Option<&'v str> {
    get(v, path).and_then(Value::as_str)
}

/// Set `path` to `new`, creating missing intermediate objects. Fails if
/// a step on the way exists and is not an object.
pub fn set(v: &mut Value, path: &str, new: Value) -> Result<(), PathError> {
    let err = |at: &str| PathError {
        path: path.to_owned(),
        at: at.to_owned(),
    };
    let (parents, last) = match path.rsplit_once('.') {
        Some((parents, last)) => (Some(parents), last),
        None => (None, path),
    };
    let mut cur = v;
    let mut walked = 0;
    if let Some(parents) = parents {
        for segment in parents.split('.') {
            let Value::Object(map) = cur else {
                return Err(err(&path[..walked.max(1) - 1]));
            };
            cur = map
                .entry(segment)
                .or_insert_with(|| Value::Object(Map::new()));
            walked += segment.len() + 1;
        }
    }
    match cur {
        Value::Object(map) => {
            map.insert(last.to_owned(), new);
            Ok(())
        }
        _ => Err(err(&path[..walked.max(1) - 1])),
    }
}

/// Remove the field at `path` and return it.
pub fn remove(v: &mut Value, path: &str) -> Option<Value> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parents, last)) => (get_mut(v, parents)?, last),
        None => (v, path),
    };
    match parent {
        Value::Object(m) => m.remove(last),
        Value::Array(a) => {
            let i = last.parse::<usize>().ok().filter(|i| *i < a.len())?;
            Some(a.remove(i))
        }
        _ => None,
    }
}

/// Move the field at `from` to `to` (creating objects on the way).
/// Returns whether there was a field to move.
pub fn rename(v: &mut Value, from: &str, to: &str) -> Result<bool, PathError> {
    match remove(v, from) {
        Some(moved) => set(v, to, moved).map(|()| true),
        None => Ok(false),
    }
}

/// A value as text for comparisons with config strings: a string is its
/// content, anything else its JSON text (`42`, `true`, `null`, `{"a":1}`).
pub fn to_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_walks_objects_and_arrays() {
        let v = json!({"a": {"b": [1, {"c": true}]}});
        assert_eq!(get(&v, "a.b.1.c"), Some(&json!(true)));
        assert_eq!(get(&v, "a.b.7"), None);
        assert_eq!(get(&v, "a.x"), None);
        assert_eq!(get_str(&json!({"s": "t"}), "s"), Some("t"));
    }

    #[test]
    fn set_creates_objects_and_refuses_scalars() {
        let mut v = json!({"a": 1});
        set(&mut v, "x.y.z", json!(2)).unwrap();
        assert_eq!(v, json!({"a": 1, "x": {"y": {"z": 2}}}));
        assert_eq!(
            set(&mut v, "a.b", json!(3)).unwrap_err().to_string(),
            "cannot set `a.b`: `a` is not an object"
        );
        assert_eq!(
            set(&mut v, "x.y.z.w", json!(3)).unwrap_err().to_string(),
            "cannot set `x.y.z.w`: `x.y.z` is not an object"
        );
        assert_eq!(
            set(&mut json!(5), "a", json!(3)).unwrap_err().to_string(),
            "cannot set `a`: the value is not an object"
        );
    }

    #[test]
    fn remove_and_rename() {
        let mut v = json!({"a": {"b": 1, "c": [1, 2]}});
        assert_eq!(remove(&mut v, "a.c.0"), Some(json!(1)));
        assert_eq!(remove(&mut v, "a.zz"), None);
        assert!(rename(&mut v, "a.b", "top").unwrap());
        assert!(!rename(&mut v, "nothing", "x").unwrap());
        assert_eq!(v, json!({"a": {"c": [2]}, "top": 1}));
    }

    #[test]
    fn text_form() {
        assert_eq!(to_text(&json!("x")), "x");
        assert_eq!(to_text(&json!(4.5)), "4.5");
        assert_eq!(to_text(&json!(null)), "null");
    }
}
