//! The `[sinks.NAME]` settings of a MongoDB sink and their validation.
//!
//! ```toml
//! [sinks.purchases]
//! type = "mongodb"
//! uri = "mongodb://127.0.0.1:17017/?serverSelectionTimeoutMS=5000"
//! database = "analytics"
//! collection = "user_events"
//! write_model = "replace"
//! id = "fields"
//! id_fields = ["event_id"]
//!
//! [sinks.totals]
//! type = "mongodb"
//! uri = "mongodb://127.0.0.1:17017/"
//! database = "analytics"
//! collection = "user_totals"
//! write_model = "update"
//! id_fields = ["user_id"]
//! set_fields = ["user_id"]
//! inc = { total_amount = "amount", purchases = 1 }
//! dedup_field = "event_id"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// A MongoDB sink: every output becomes one write in an unordered bulk
/// write per batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSinkConfig {
    /// Connection string. TLS, authentication, timeouts
    /// (`serverSelectionTimeoutMS`, `connectTimeoutMS`) and pool options go
    /// here, as the driver reads them.
    pub uri: String,
    /// Database written to.
    pub database: String,
    /// Collection written to; with `collection_from`, the fallback when the
    /// output does not name one.
    pub collection: Option<String>,
    /// Take the collection from each output: `"route"` (the output's route)
    /// or `{ header = "NAME" }` (the value of that output header).
    pub collection_from: Option<CollectionFrom>,
    /// How an output is written: `insert`, `replace` (the default) or
    /// `update`. Outputs whose op is `delete` are always deleted by id.
    #[serde(default)]
    pub write_model: WriteModelKind,
    /// Where the document `_id` comes from: `key` (the output key), `fields`
    /// (value fields named in `id_fields`: a business key) or `generated`
    /// (a new ObjectId; `insert` only, and a replay then writes copies).
    /// Default: `fields` when `id_fields` is set, otherwise `key`.
    pub id: Option<IdSource>,
    /// Paths of value fields (`event_id`, `order.id`) making up the id.
    #[serde(default)]
    pub id_fields: Vec<String>,
    /// With several `id_fields`: `document` (default: `_id` is a
    /// sub-document `{field: value, ...}`) or `joined` (a string of the
    /// values joined with `id_separator`).
    #[serde(default)]
    pub id_compound: IdCompound,
    /// Separator of a `joined` compound id.
    #[serde(default = "default_separator")]
    pub id_separator: String,
    /// `update`: the top-level value fields written with `$set`. Default:
    /// all of them; `[]` sets none (only `$inc`).
    pub set_fields: Option<Vec<String>>,
    /// `update`: running totals, `$inc`-ed per output. Each entry is a
    /// target field and either a value field path (`amount`) whose number is
    /// added, or a constant number (`1`, to count).
    #[serde(default)]
    pub inc: BTreeMap<String, IncSource>,
    /// `update` with `inc`: the value field that identifies the event
    /// (`event_id`). Each document remembers the last `dedup_window` event
    /// ids it counted, and an event already counted is skipped, so a replay
    /// does not count twice. Without it, `$inc` counts every replay again.
    pub dedup_field: Option<String>,
    /// How many event ids each document remembers for `dedup_field`.
    #[serde(default = "default_dedup_window")]
    pub dedup_window: u32,
    /// The array field holding those event ids.
    #[serde(default = "default_dedup_array")]
    pub dedup_array: String,
    /// Write concern of every write.
    #[serde(default)]
    pub write_concern: WriteConcernConfig,
    /// Send each batch as an ordered bulk write (stops at the first
    /// error, which the pipeline then retries or dead-letters). Default
    /// false: unordered, the server goes on past a rejected document.
    #[serde(default)]
    pub ordered: bool,
}

fn default_separator() -> String {
    ":".to_owned()
}

fn default_dedup_window() -> u32 {
    1000
}

fn default_dedup_array() -> String {
    "_applied".to_owned()
}

/// Where an output's collection comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CollectionFrom {
    /// The output's route.
    Route,
    /// The value of this output header.
    Header(String),
}

/// How an output becomes a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteModelKind {
    /// `insertOne`; a duplicate `_id` (the event was written before)
    /// counts as success.
    Insert,
    /// `replaceOne({_id}, document, upsert)`.
    #[default]
    Replace,
    /// `updateOne({_id}, {$set, $inc}, upsert)`.
    Update,
}

/// Where the document `_id` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdSource {
    /// The output key: parsed as JSON when it is JSON (an object becomes a
    /// sub-document, a number a number, `"a"` the string a), otherwise the
    /// key's UTF-8 text (or binary when it is not UTF-8).
    Key,
    /// The value fields in `id_fields`.
    Fields,
    /// A new ObjectId per output.
    Generated,
}

/// The shape of an id made of several fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdCompound {
    /// `{_id: {a: .., b: ..}}`.
    #[default]
    Document,
    /// `{_id: "a:b"}`.
    Joined,
}

/// What an `inc` entry adds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum IncSource {
    /// A constant integer.
    Int(i64),
    /// A constant number.
    Float(f64),
    /// A path of a numeric value field.
    Field(String),
}

/// The write concern of the sink's writes (defaults: the server's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteConcernConfig {
    /// `w`: a number of nodes or `"majority"`.
    pub w: Option<WriteConcernW>,
    /// `j`: wait for the journal.
    pub journal: Option<bool>,
    /// `wtimeout` in milliseconds; a timeout is a transient error.
    pub wtimeout_ms: Option<u64>,
}

/// The `w` of a write concern.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WriteConcernW {
    /// This many nodes.
    Nodes(u32),
    /// A tag set name or `majority`.
    Tag(String),
}

/// A config mistake. The message leaves out the sink's name: whoever reports
/// it (`weir run`'s "sink `NAME`:", `weir validate`'s key path) adds it once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MongoConfigError {
    /// The sink's name.
    pub sink: String,
    /// The key at fault, as segments under the sink's table.
    pub key: Vec<String>,
    /// What is wrong.
    pub message: String,
}

/// The settings after validation, as the sink uses them.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The id strategy (the default applied).
    pub id: IdSource,
    /// `id_fields` split into path segments.
    pub id_paths: Vec<Vec<String>>,
}

fn split_path(p: &str) -> Option<Vec<String>> {
    let segs: Vec<String> = p.split('.').map(str::to_owned).collect();
    (!segs.iter().any(String::is_empty)).then_some(segs)
}

impl MongoSinkConfig {
    /// What `weir validate` (and `weir run` before it connects) finds wrong
    /// without the network: the combination of options ([`Self::validate`],
    /// reported at the sink's table) and the syntax of `uri` (parsed without
    /// the DNS lookup a `mongodb+srv://` URI makes when connecting).
    pub fn offline_problems(&self, sink: &str) -> Vec<(Vec<String>, String)> {
        let mut problems = Vec::new();
        if let Err(e) = mongodb::options::ConnectionString::parse(&self.uri) {
            problems.push((vec!["uri".to_owned()], format!("invalid uri: {}", e.kind)));
        }
        if let Err(e) = self.validate(sink) {
            problems.push((e.key, e.message));
        }
        problems
    }

    /// Check the combination of options.
    pub fn validate(&self, sink: &str) -> Result<Resolved, MongoConfigError> {
        let err = |key: &[&str], message: String| MongoConfigError {
            sink: sink.to_owned(),
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            message,
        };
        if self.database.is_empty() {
            return Err(err(&["database"], "`database` is empty".to_owned()));
        }
        if self.collection.as_deref().is_none_or(str::is_empty) && self.collection_from.is_none() {
            return Err(err(
                &["collection"],
                "set `collection`, or `collection_from` (\"route\" or { header = \"NAME\" })"
                    .to_owned(),
            ));
        }
        let id = self.id.unwrap_or(if self.id_fields.is_empty() {
            IdSource::Key
        } else {
            IdSource::Fields
        });
        match id {
            IdSource::Fields if self.id_fields.is_empty() => {
                return Err(err(
                    &["id_fields"],
                    "`id = \"fields\"` needs `id_fields` (value field paths)".to_owned(),
                ));
            }
            IdSource::Key | IdSource::Generated if !self.id_fields.is_empty() => {
                return Err(err(
                    &["id_fields"],
                    format!(
                        "`id_fields` is set but `id` is `{}`; use `id = \"fields\"`",
                        if id == IdSource::Key {
                            "key"
                        } else {
                            "generated"
                        }
                    ),
                ));
            }
            IdSource::Generated if self.write_model != WriteModelKind::Insert => {
                return Err(err(&["id"], 
                    "`id = \"generated\"` only works with `write_model = \"insert\"` (replace and update need a stable id)".to_owned(),
                ));
            }
            _ => {}
        }
        let id_paths = self
            .id_fields
            .iter()
            .map(|p| {
                split_path(p).ok_or_else(|| {
                    err(
                        &["id_fields"],
                        format!("`id_fields`: `{p}` is not a field path"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.write_model != WriteModelKind::Update {
            for (set, name) in [
                (self.set_fields.is_some(), "set_fields"),
                (!self.inc.is_empty(), "inc"),
                (self.dedup_field.is_some(), "dedup_field"),
            ] {
                if set {
                    return Err(err(
                        &[name],
                        format!("`{name}` only applies to `write_model = \"update\"`"),
                    ));
                }
            }
        }
        for (target, source) in &self.inc {
            if target.is_empty() || target.starts_with('$') || target == "_id" {
                return Err(err(
                    &["inc", target.as_str()],
                    format!("`inc`: `{target}` cannot be a target field"),
                ));
            }
            if let IncSource::Field(path) = source
                && split_path(path).is_none()
            {
                return Err(err(
                    &["inc", target.as_str()],
                    format!("`inc.{target}`: `{path}` is not a field path"),
                ));
            }
        }
        if self.dedup_field.is_some() && self.inc.is_empty() {
            return Err(err(
                &["dedup_field"],
                "`dedup_field` only matters with `inc` (set and replace are idempotent already)"
                    .to_owned(),
            ));
        }
        if let Some(f) = &self.dedup_field
            && split_path(f).is_none()
        {
            return Err(err(
                &["dedup_field"],
                format!("`dedup_field`: `{f}` is not a field path"),
            ));
        }
        if self.dedup_window == 0 {
            return Err(err(
                &["dedup_window"],
                "`dedup_window` must be at least 1".to_owned(),
            ));
        }
        if self.dedup_array.is_empty()
            || self.dedup_array.starts_with('$')
            || self.dedup_array.contains('.')
        {
            return Err(err(
                &["dedup_array"],
                format!(
                    "`dedup_array`: `{}` is not a top-level field name",
                    self.dedup_array
                ),
            ));
        }
        if let CollectionFrom::Header(h) = self
            .collection_from
            .as_ref()
            .unwrap_or(&CollectionFrom::Route)
            && h.is_empty()
        {
            return Err(err(
                &["collection_from", "header"],
                "`collection_from.header` is empty".to_owned(),
            ));
        }
        Ok(Resolved { id, id_paths })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(toml_text: &str) -> Result<Resolved, String> {
        let cfg: MongoSinkConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        cfg.validate("m").map_err(|e| e.to_string())
    }

    const BASE: &str = "uri = \"mongodb://x/\"\ndatabase = \"d\"\ncollection = \"c\"\n";

    #[test]
    fn defaults_and_full_update_config() {
        assert_eq!(validate(BASE).unwrap().id, IdSource::Key);
        let r = validate(&format!(
            "{BASE}write_model = \"update\"\nid_fields = [\"user.id\"]\ninc = {{ total = \"amount\", n = 1 }}\ndedup_field = \"event_id\"\ncollection_from = {{ header = \"coll\" }}\nwrite_concern = {{ w = \"majority\", journal = true, wtimeout_ms = 100 }}\n"
        ))
        .unwrap();
        assert_eq!(r.id, IdSource::Fields);
        assert_eq!(r.id_paths, vec![vec!["user".to_owned(), "id".to_owned()]]);
        let cfg: MongoSinkConfig =
            toml::from_str(&format!("{BASE}collection_from = \"route\"\n")).unwrap();
        assert_eq!(cfg.collection_from, Some(CollectionFrom::Route));
    }

    #[test]
    fn wrong_combinations_are_named() {
        assert_eq!(
            validate(&format!("{BASE}id = \"generated\"\n")).unwrap_err(),
            "`id = \"generated\"` only works with `write_model = \"insert\"` (replace and update need a stable id)"
        );
        assert_eq!(
            validate(&format!("{BASE}inc = {{ n = 1 }}\n")).unwrap_err(),
            "`inc` only applies to `write_model = \"update\"`"
        );
        assert!(
            validate(&format!("{BASE}id = \"fields\"\n"))
                .unwrap_err()
                .contains("needs `id_fields`")
        );
        assert!(
            validate("uri = \"x\"\ndatabase = \"d\"\n")
                .unwrap_err()
                .contains("set `collection`")
        );
        assert!(
            validate(&format!("{BASE}colection = \"x\"\n"))
                .unwrap_err()
                .contains("unknown field `colection`")
        );
    }
}
