//! Templates that build Redis keys, members and values from an output.
//!
//! A template is literal text with placeholders in braces:
//! - `{key}`: the output's key bytes, as they are;
//! - `{value}`: the whole value (the JSON text as the plugin emitted it);
//! - `{value.a.b}`: a field of the JSON value (a numeric segment indexes an
//!   array); strings are written without quotes (unescaped), numbers,
//!   booleans, objects and arrays as their JSON text, as written;
//! - `{value.a.b|date}`: the UTC date (`YYYY-MM-DD`) of a timestamp field
//!   (epoch milliseconds, or RFC 3339 text), for daily keys;
//! - `{header.NAME}`: the value of the output header `NAME`;
//! - `{route}`: the output's route.
//!
//! `{{` and `}}` stand for literal braces. A placeholder whose data is
//! missing (no key, no value, no such field, a `null`, no such header) is an
//! error naming the template and the placeholder; the sink rejects that one
//! output with it.

use std::fmt;

use std::borrow::Cow;
use std::cell::OnceCell;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::Output;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Literal bytes.
    Text(String),
    /// The output key.
    Key,
    /// The whole value.
    Value,
    /// A path into the JSON value, and whether `|date` formats it.
    Field(Vec<String>, bool),
    /// An output header.
    Header(String),
    /// The output route.
    Route,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Why a template text is not a valid template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateSyntaxError {
    /// A `{` without its `}`.
    #[error("template `{template}`: unclosed `{{` at byte {at}")]
    Unclosed {
        /// The template text.
        template: String,
        /// Byte offset of the `{`.
        at: usize,
    },
    /// A `}` that closes nothing.
    #[error(
        "template `{template}`: unmatched `}}` at byte {at} (write `}}}}` for a literal brace)"
    )]
    Unmatched {
        /// The template text.
        template: String,
        /// Byte offset of the `}`.
        at: usize,
    },
    /// A placeholder that names nothing we know.
    #[error(
        "template `{template}`: unknown placeholder `{{{name}}}` (expected key, value, value.FIELD, value.FIELD|date, header.NAME or route)"
    )]
    Unknown {
        /// The template text.
        template: String,
        /// The placeholder text.
        name: String,
    },
}

/// A placeholder the output has no data for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    /// The template text.
    pub template: String,
    /// The placeholder, as written (`value.session_id`).
    pub field: String,
    /// What is wrong (`missing`, `null`, `value is not JSON: ...`).
    pub why: String,
}

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "template `{}`: field `{}` is {}",
            self.template, self.field, self.why
        )
    }
}

/// A template in the config is parsed as it is read, so a syntax error is
/// reported at the string that holds it (by `weir validate` too).
impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Template::parse(&text).map_err(de::Error::custom)
    }
}

impl Template {
    /// Parse a template text.
    pub fn parse(source: &str) -> Result<Template, TemplateSyntaxError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let bytes = source.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    text.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    text.push('}');
                    i += 2;
                }
                b'}' => {
                    return Err(TemplateSyntaxError::Unmatched {
                        template: source.to_owned(),
                        at: i,
                    });
                }
                b'{' => {
                    let rest = &source[i + 1..];
                    let Some(end) = rest
                        .find(['}', '{'])
                        .filter(|&e| rest.as_bytes()[e] == b'}')
                    else {
                        return Err(TemplateSyntaxError::Unclosed {
                            template: source.to_owned(),
                            at: i,
                        });
                    };
                    let name = rest[..end].trim();
                    let part =
                        parse_placeholder(name).ok_or_else(|| TemplateSyntaxError::Unknown {
                            template: source.to_owned(),
                            name: name.to_owned(),
                        })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                    i += 1 + end + 1;
                }
                _ => {
                    // Copy the whole UTF-8 character starting here.
                    let ch_len = source[i..].chars().next().map_or(1, char::len_utf8);
                    text.push_str(&source[i..i + ch_len]);
                    i += ch_len;
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The template text as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether rendering needs the parsed JSON value.
    pub fn needs_json(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(..)))
    }

    /// Append the rendered template to `out`.
    pub fn render_into(
        &self,
        view: &OutputView<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), MissingField> {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Key => match &view.output.key {
                    Some(k) => out.extend_from_slice(k),
                    None => return Err(self.missing("key", "missing (the output has no key)")),
                },
                Part::Value => match &view.output.value {
                    Some(v) => out.extend_from_slice(v),
                    None => return Err(self.missing("value", "missing (the output has no value)")),
                },
                Part::Route => match &view.output.route {
                    Some(r) => out.extend_from_slice(r.as_bytes()),
                    None => return Err(self.missing("route", "missing (the output has no route)")),
                },
                Part::Header(name) => match view.output.headers.iter().find(|h| &h.key == name) {
                    Some(h) => out.extend_from_slice(&h.value),
                    None => {
                        return Err(self.missing(&format!("header.{name}"), "missing"));
                    }
                },
                Part::Field(path, as_date) => {
                    let found = view
                        .lookup(path)
                        .map_err(|why| self.missing_path(path, why))?;
                    match found {
                        None => return Err(self.missing_path(path, "missing".to_owned())),
                        Some(raw) if is_null(raw) => {
                            return Err(self.missing_path(path, "null".to_owned()));
                        }
                        Some(raw) if *as_date => {
                            let date = serde_json::from_str::<Value>(raw.get())
                                .ok()
                                .as_ref()
                                .and_then(utc_date);
                            match date {
                                Some(date) => out.extend_from_slice(date.as_bytes()),
                                None => {
                                    return Err(self.missing_path(
                                        path,
                                        format!(
                                            "not a timestamp for |date (epoch milliseconds or RFC 3339 text): {}",
                                            raw.get()
                                        ),
                                    ));
                                }
                            }
                        }
                        Some(raw) => write_raw(raw, out),
                    }
                }
            }
        }
        Ok(())
    }

    /// The rendered template as a new buffer.
    pub fn render(&self, view: &OutputView<'_>) -> Result<Vec<u8>, MissingField> {
        let mut out = Vec::with_capacity(self.source.len() + 16);
        self.render_into(view, &mut out)?;
        Ok(out)
    }

    fn missing(&self, field: &str, why: &str) -> MissingField {
        MissingField {
            template: self.source.clone(),
            field: field.to_owned(),
            why: why.to_owned(),
        }
    }

    fn missing_path(&self, path: &[String], why: String) -> MissingField {
        MissingField {
            template: self.source.clone(),
            field: format!("value.{}", path.join(".")),
            why,
        }
    }
}

fn parse_placeholder(name: &str) -> Option<Part> {
    match name {
        "key" => Some(Part::Key),
        "value" => Some(Part::Value),
        "route" => Some(Part::Route),
        _ => {
            if let Some(path) = name.strip_prefix("value.") {
                let (path, as_date) = match path.split_once('|') {
                    None => (path, false),
                    Some((p, "date")) => (p.trim_end(), true),
                    Some(_) => return None,
                };
                let segs: Vec<String> = path.split('.').map(str::to_owned).collect();
                if segs.iter().any(String::is_empty) {
                    return None;
                }
                Some(Part::Field(segs, as_date))
            } else if let Some(h) = name.strip_prefix("header.") {
                (!h.is_empty()).then(|| Part::Header(h.to_owned()))
            } else {
                None
            }
        }
    }
}

/// The UTC calendar date (`YYYY-MM-DD`) of a timestamp: a number of
/// milliseconds since the Unix epoch, or text starting with an RFC 3339
/// date (`2026-11-21T10:00:00Z`).
pub fn utc_date(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => {
            let ms = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?;
            crate::calendar::utc_date_of_ms(ms)
        }
        Value::String(s) => {
            let date = s.get(..10)?;
            let b = date.as_bytes();
            let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
            (digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
                .then(|| date.to_owned())
        }
        _ => None,
    }
}

/// The fields of a JSON object, borrowed from the text they were read from.
type Fields<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object read one level deep: keys and the raw text of each value.
struct Object<'a>(Fields<'a>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    fields.push((k.0, v));
                }
                Ok(Object(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// Whether a raw JSON text is an object (its first non-blank byte is `{`).
fn is_object(raw: &str) -> bool {
    raw.trim_start().starts_with('{')
}

/// An output plus its value read as JSON on first use. Only the top level
/// is split into fields (borrowing the output's bytes); deeper levels are
/// read when a path goes there.
pub struct OutputView<'o> {
    /// The output.
    pub output: &'o Output,
    top: OnceCell<Result<Fields<'o>, String>>,
}

impl<'o> OutputView<'o> {
    /// A view of one output; nothing is parsed yet.
    pub fn new(output: &'o Output) -> Self {
        OutputView {
            output,
            top: OnceCell::new(),
        }
    }

    /// The top-level fields of the value (none when it is JSON but not an
    /// object), or why the value cannot be read.
    pub fn fields(&self) -> Result<&Fields<'o>, String> {
        self.top
            .get_or_init(|| {
                let bytes = self
                    .output
                    .value
                    .as_deref()
                    .ok_or_else(|| "missing (the output has no value)".to_owned())?;
                let text = std::str::from_utf8(bytes)
                    .map_err(|e| format!("unreadable (the value is not JSON: {e})"))?;
                if is_object(text) {
                    serde_json::from_str::<Object<'o>>(text)
                        .map(|o| o.0)
                        .map_err(|e| format!("unreadable (the value is not JSON: {e})"))
                } else {
                    serde_json::from_str::<de::IgnoredAny>(text)
                        .map(|_| Vec::new())
                        .map_err(|e| format!("unreadable (the value is not JSON: {e})"))
                }
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether the value is a JSON object.
    pub fn is_object(&self) -> bool {
        self.output
            .value
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .is_some_and(is_object)
    }

    /// The raw JSON at `path` (`None` when absent).
    pub fn lookup(&self, path: &[String]) -> Result<Option<&'o RawValue>, String> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(None);
        };
        let fields = self.fields()?;
        // The last of duplicate keys wins, as in a parsed JSON object.
        let Some(mut cur) = fields
            .iter()
            .rev()
            .find(|(k, _)| k == first)
            .map(|(_, v)| *v)
        else {
            return Ok(None);
        };
        for seg in rest {
            let text = cur.get().trim_start();
            let next = if text.starts_with('{') {
                let obj: Object<'o> = serde_json::from_str(cur.get()).map_err(|e| e.to_string())?;
                obj.0
                    .into_iter()
                    .rev()
                    .find(|(k, _)| k == seg)
                    .map(|(_, v)| v)
            } else if text.starts_with('[') {
                let items: Vec<&'o RawValue> =
                    serde_json::from_str(cur.get()).map_err(|e| e.to_string())?;
                seg.parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i).copied())
            } else {
                None
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }
}

/// Whether a raw JSON value is `null`.
pub fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

/// Write a raw JSON value as a Redis argument: strings without quotes (and
/// unescaped), anything else as its JSON text.
pub fn write_raw(raw: &RawValue, out: &mut Vec<u8>) {
    let text = raw.get().trim();
    if text.starts_with('"') {
        match serde_json::from_str::<&str>(text) {
            Ok(s) => out.extend_from_slice(s.as_bytes()),
            // Escapes: unescape into a new string.
            Err(_) => match serde_json::from_str::<String>(text) {
                Ok(s) => out.extend_from_slice(s.as_bytes()),
                Err(_) => out.extend_from_slice(text.as_bytes()),
            },
        }
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Header;

    fn out(value: &str) -> Output {
        Output {
            key: Some("k1".into()),
            value: Some(value.to_owned().into()),
            route: Some("r".into()),
            headers: vec![Header::new("tenant", "acme")],
            ..Output::default()
        }
    }

    fn render(t: &str, o: &Output) -> Result<String, String> {
        let t = Template::parse(t).map_err(|e| e.to_string())?;
        t.render(&OutputView::new(o))
            .map(|b| String::from_utf8(b).unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn renders_every_placeholder_kind() {
        let o = out(r#"{"s":"abc","n":42,"f":1.5,"b":true,"o":{"x":[1,{"y":"z"}]}}"#);
        assert_eq!(render("session:{value.s}", &o).unwrap(), "session:abc");
        assert_eq!(
            render("{value.n}/{value.f}/{value.b}", &o).unwrap(),
            "42/1.5/true"
        );
        assert_eq!(render("{value.o.x.1.y}", &o).unwrap(), "z");
        assert_eq!(render("{value.o}", &o).unwrap(), r#"{"x":[1,{"y":"z"}]}"#);
        assert_eq!(
            render("{key}|{route}|{header.tenant}", &o).unwrap(),
            "k1|r|acme"
        );
        assert_eq!(render("{{literal}}", &o).unwrap(), "{literal}");
        assert_eq!(
            render("{value}", &o).unwrap(),
            o.value
                .as_ref()
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
                .unwrap()
        );
    }

    #[test]
    fn date_filter_gives_the_utc_day_of_a_timestamp() {
        let o = out(r#"{"ms":1763719200000,"iso":"2024-02-29T23:59:59Z","neg":-1,"bad":"soon"}"#);
        assert_eq!(render("uv:{value.ms|date}", &o).unwrap(), "uv:2025-11-21");
        assert_eq!(render("{value.iso|date}", &o).unwrap(), "2024-02-29");
        assert_eq!(render("{value.neg|date}", &o).unwrap(), "1969-12-31");
        assert!(
            render("{value.bad|date}", &o)
                .unwrap_err()
                .contains("not a timestamp")
        );
        assert!(Template::parse("{value.ms|upper}").is_err());
    }

    #[test]
    fn missing_data_names_template_and_field() {
        let o = out(r#"{"s":null}"#);
        assert_eq!(
            render("user:{value.user_id}", &o).unwrap_err(),
            "template `user:{value.user_id}`: field `value.user_id` is missing"
        );
        assert_eq!(
            render("{value.s}", &o).unwrap_err(),
            "template `{value.s}`: field `value.s` is null"
        );
        assert_eq!(
            render("{header.nope}", &o).unwrap_err(),
            "template `{header.nope}`: field `header.nope` is missing"
        );
        let not_json = Output {
            value: Some("nope".into()),
            ..Output::default()
        };
        assert!(
            render("{value.a}", &not_json)
                .unwrap_err()
                .contains("not JSON")
        );
    }

    #[test]
    fn syntax_errors_are_caught_at_parse() {
        assert_eq!(
            Template::parse("a:{value.x").unwrap_err().to_string(),
            "template `a:{value.x`: unclosed `{` at byte 2"
        );
        assert!(matches!(
            Template::parse("a}b"),
            Err(TemplateSyntaxError::Unmatched { at: 1, .. })
        ));
        assert!(matches!(
            Template::parse("{a{b}"),
            Err(TemplateSyntaxError::Unclosed { at: 0, .. })
        ));
        assert!(matches!(
            Template::parse("{nope}"),
            Err(TemplateSyntaxError::Unknown { .. })
        ));
        assert!(matches!(
            Template::parse("{value.}"),
            Err(TemplateSyntaxError::Unknown { .. })
        ));
    }
}
