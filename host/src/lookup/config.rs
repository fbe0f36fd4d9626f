//! `[lookups.NAME]`: one reference store a plugin may read through the
//! `lookup` interface, once granted (`[plugins.X] lookups = ["NAME"]`).
//!
//! One flat table for every store type, so `deny_unknown_fields` still
//! catches a misspelt key; [`LookupConfig::problems`] says which settings
//! the chosen `type` needs, at the key, before anything connects.

use std::path::PathBuf;

use serde::Deserialize;

/// The store types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreType {
    /// A JSON-lines or CSV reference table, loaded at start.
    File,
    /// A Redis server: `GET` (the string's bytes) or `HGETALL` (the hash
    /// as a JSON object of strings).
    Redis,
    /// A MongoDB collection: the document whose `key_field` equals the key,
    /// as relaxed Extended JSON.
    Mongodb,
    /// A DynamoDB table: the item whose partition key is the key, as JSON
    /// with the DynamoDB Streams source's mapping.
    Dynamodb,
}

/// `format`: of a `file` store's table, or of a `dynamodb` store's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `file`: one JSON object a line.
    Jsonl,
    /// `file`: a header line, then one row a line; values are strings.
    Csv,
    /// `dynamodb`: plain JSON (`{"n": 1}`), as the source's default.
    Natural,
    /// `dynamodb`: DynamoDB JSON (`{"n": {"N": "1"}}`), lossless.
    Typed,
}

/// `dynamodb`, natural format: numbers that are not exact as JSON numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InexactNumbers {
    /// A JSON string holding the exact decimal.
    #[default]
    String,
    /// The nearest double.
    Float,
}

/// How a `mongodb` or `dynamodb` store turns a lookup key into the value
/// it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// The key's UTF-8 text as a string.
    #[default]
    String,
    /// The key's text as a number (MongoDB: an integer, or a double when
    /// it has a fraction; DynamoDB: an `N`).
    Number,
    /// The key's bytes (MongoDB: binary subtype 0; DynamoDB: a `B`).
    Binary,
    /// `mongodb`: 24 hex digits as an ObjectId.
    Objectid,
}

/// How a `redis` store reads a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisRead {
    /// `GET`: the string's bytes.
    #[default]
    Get,
    /// `HGETALL`: the hash as a JSON object of strings (an empty hash is
    /// absent, as Redis does not keep empty hashes).
    Hgetall,
}

/// What a lookup answers when the store is down or too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Abort the plugin call; the batch is retried with backoff.
    #[default]
    Retry,
    /// Answer none (the event is processed as if the key were absent).
    Miss,
}

/// `[lookups.NAME.cache]`: the in-host cache of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most keys held; 0 turns the cache off.
    pub max_entries: u64,
    /// Most bytes of keys and values held (each entry counts 64 bytes
    /// more for its bookkeeping); 0 turns the cache off.
    pub max_bytes: u64,
    /// How long an answer is kept, in milliseconds.
    pub ttl_ms: u64,
    /// Whether "absent" answers are cached too.
    pub negative: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
            ttl_ms: 60_000,
            negative: true,
        }
    }
}

/// `[lookups.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// `file`, `redis`, `mongodb` or `dynamodb`.
    #[serde(rename = "type")]
    pub kind: StoreType,
    /// `file`: the table, relative to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `file`: `jsonl` or `csv` (default from the extension); `dynamodb`:
    /// `natural` (default) or `typed`.
    #[serde(default)]
    pub format: Option<Format>,
    /// `file`: the field (column) holding each row's key; `mongodb`: the
    /// (dotted) field the key must equal, default `_id`; `dynamodb`: the
    /// table's partition key attribute.
    #[serde(default)]
    pub key_field: Option<String>,
    /// `mongodb`, `dynamodb`: what the key is matched as; default `string`.
    #[serde(default)]
    pub key_type: Option<KeyType>,
    /// `mongodb`, `dynamodb`: only these top-level fields (attributes) of
    /// the found document (item); default all.
    #[serde(default)]
    pub projection: Option<Vec<String>>,
    /// `redis`: `redis://host:port/db`; `mongodb`: the connection string
    /// (`uri` is accepted too, as the MongoDB sink spells it).
    #[serde(default, alias = "uri")]
    pub url: Option<String>,
    /// `redis`: `get` (default) or `hgetall`.
    #[serde(default)]
    pub read: Option<RedisRead>,
    /// `redis`: the Redis key of a lookup key, `{key}` standing for it;
    /// default `{key}`.
    #[serde(default)]
    pub key_template: Option<String>,
    /// `mongodb`: the database.
    #[serde(default)]
    pub database: Option<String>,
    /// `mongodb`: the collection.
    #[serde(default)]
    pub collection: Option<String>,
    /// `dynamodb`: the table.
    #[serde(default)]
    pub table: Option<String>,
    /// `dynamodb`, natural format: `string` (default) or `float`.
    #[serde(default)]
    pub inexact_numbers: Option<InexactNumbers>,
    /// `dynamodb`: endpoint URL override (a local emulator, a VPC
    /// endpoint); default the standard AWS configuration.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `dynamodb`: region override.
    #[serde(default)]
    pub region: Option<String>,
    /// `dynamodb`: static access key id (with `secret_access_key`);
    /// default the standard AWS credential chain.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// `dynamodb`: static secret access key.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Longest one call to the store may take, in milliseconds (less if
    /// the plugin's deadline is nearer).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most round trips to the store at once, from every plugin worker
    /// of every pipeline reading it; a call waits for a slot within its
    /// timeout.
    #[serde(default = "default_max_concurrent_calls")]
    pub max_concurrent_calls: u64,
    /// `retry` (default) or `miss`.
    #[serde(default)]
    pub on_error: OnError,
    /// The in-host cache.
    #[serde(default)]
    pub cache: CacheConfig,
}

fn default_timeout_ms() -> u64 {
    200
}

fn default_max_concurrent_calls() -> u64 {
    16
}

/// The placeholder of a key template.
pub const KEY_PLACEHOLDER: &str = "{key}";

impl StoreType {
    /// The settings a store of this type needs, and those it also takes
    /// (beyond `type`, `timeout_ms`, `on_error` and `cache`).
    fn settings(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            StoreType::File => (&["path", "key_field"], &["format"]),
            StoreType::Redis => (&["url"], &["read", "key_template"]),
            StoreType::Mongodb => (
                &["url", "database", "collection"],
                &["key_field", "key_type", "projection"],
            ),
            StoreType::Dynamodb => (
                &["table", "key_field"],
                &[
                    "key_type",
                    "projection",
                    "format",
                    "inexact_numbers",
                    "endpoint",
                    "region",
                    "access_key_id",
                    "secret_access_key",
                ],
            ),
        }
    }

    /// The name as a config spells it.
    pub fn name(self) -> &'static str {
        match self {
            StoreType::File => "file",
            StoreType::Redis => "redis",
            StoreType::Mongodb => "mongodb",
            StoreType::Dynamodb => "dynamodb",
        }
    }
}

impl LookupConfig {
    /// Which of the type-specific settings are set.
    fn set(&self) -> [(&'static str, bool); 16] {
        [
            ("path", self.path.is_some()),
            ("format", self.format.is_some()),
            ("key_field", self.key_field.is_some()),
            ("key_type", self.key_type.is_some()),
            ("projection", self.projection.is_some()),
            ("url", self.url.is_some()),
            ("read", self.read.is_some()),
            ("key_template", self.key_template.is_some()),
            ("database", self.database.is_some()),
            ("collection", self.collection.is_some()),
            ("table", self.table.is_some()),
            ("inexact_numbers", self.inexact_numbers.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("secret_access_key", self.secret_access_key.is_some()),
        ]
    }

    /// Settings missing or wrong for the store's type, as `(key, message)`
    /// with keys relative to `[lookups.NAME]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let kind = self.kind.name();
        let (needed, optional) = self.kind.settings();
        let mut out = Vec::new();
        for (key, set) in self.set() {
            if needed.contains(&key) && !set {
                out.push((
                    key.to_owned(),
                    format!("a `{kind}` lookup store needs `{key}`"),
                ));
            } else if set && !needed.contains(&key) && !optional.contains(&key) {
                out.push((
                    key.to_owned(),
                    format!("`{key}` is not a setting of a `{kind}` lookup store"),
                ));
            }
        }
        let mut wrong = |key: &str, message: String| out.push((key.to_owned(), message));
        match (self.kind, self.format) {
            (StoreType::File, Some(Format::Natural | Format::Typed)) => {
                wrong("format", "a `file` table is `jsonl` or `csv`".to_owned())
            }
            (StoreType::Dynamodb, Some(Format::Jsonl | Format::Csv)) => wrong(
                "format",
                "a `dynamodb` store's items are `natural` or `typed` JSON".to_owned(),
            ),
            (StoreType::File, None) => {
                if let Some(path) = &self.path
                    && Format::of_path(path).is_none()
                {
                    wrong(
                        "format",
                        format!(
                            "cannot tell the format of `{}` from its extension: set `format = \"jsonl\"` or `\"csv\"`",
                            path.display()
                        ),
                    );
                }
            }
            _ => {}
        }
        if self.kind == StoreType::Dynamodb && self.key_type == Some(KeyType::Objectid) {
            wrong(
                "key_type",
                "a DynamoDB key is `string`, `number` or `binary`".to_owned(),
            );
        }
        if let Some(t) = &self.key_template
            && !t.contains(KEY_PLACEHOLDER)
        {
            wrong(
                "key_template",
                format!("`{t}` does not contain `{KEY_PLACEHOLDER}`"),
            );
        }
        for (key, value) in [
            ("key_field", &self.key_field),
            ("database", &self.database),
            ("collection", &self.collection),
            ("table", &self.table),
        ] {
            if value.as_deref() == Some("") {
                wrong(key, "must not be empty".to_owned());
            }
        }
        if let Some(fields) = &self.projection {
            if fields.is_empty() {
                wrong(
                    "projection",
                    "must name at least one field (leave it out for all)".to_owned(),
                );
            }
            if let Some(i) = fields.iter().position(|f| f.is_empty()) {
                wrong(&format!("projection[{i}]"), "must not be empty".to_owned());
            }
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => wrong(
                "secret_access_key",
                "access_key_id is set but secret_access_key is not".to_owned(),
            ),
            (None, Some(_)) => wrong(
                "access_key_id",
                "secret_access_key is set but access_key_id is not".to_owned(),
            ),
            _ => {}
        }
        if self.timeout_ms == 0 {
            wrong("timeout_ms", "must be at least 1".to_owned());
        }
        if self.max_concurrent_calls == 0 {
            wrong("max_concurrent_calls", "must be at least 1".to_owned());
        }
        out
    }
}

impl Format {
    /// The format a file's extension implies.
    pub fn of_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(String, String)> {
        toml::from_str::<LookupConfig>(text)
            .expect("parses")
            .problems()
    }

    #[test]
    fn each_store_type_names_what_it_misses_and_what_is_not_its_setting() {
        assert!(
            problems(
                "type = \"mongodb\"\nuri = \"mongodb://h/\"\ndatabase = \"d\"\ncollection = \"c\""
            )
            .is_empty()
        );
        assert!(problems("type = \"dynamodb\"\ntable = \"t\"\nkey_field = \"id\"").is_empty());
        let keys =
            |text: &str| -> Vec<String> { problems(text).into_iter().map(|(k, _)| k).collect() };
        assert_eq!(
            keys("type = \"mongodb\"\nurl = \"mongodb://h/\"\ntable = \"t\""),
            ["database", "collection", "table"]
        );
        assert_eq!(
            keys(
                "type = \"dynamodb\"\nkey_field = \"id\"\nread = \"get\"\nkey_type = \"objectid\""
            ),
            ["read", "table", "key_type"]
        );
        assert_eq!(
            keys("type = \"redis\"\nurl = \"redis://h/\"\nprojection = [\"a\"]"),
            ["projection"]
        );
    }

    #[test]
    fn formats_projections_and_credentials_are_checked_for_the_type() {
        let one = |text: &str| problems(text).into_iter().next().expect("a problem");
        assert_eq!(
            one("type = \"file\"\npath = \"t.csv\"\nkey_field = \"k\"\nformat = \"typed\"").0,
            "format"
        );
        assert_eq!(
            one("type = \"dynamodb\"\ntable = \"t\"\nkey_field = \"k\"\nformat = \"csv\"").0,
            "format"
        );
        assert_eq!(
            one("type = \"dynamodb\"\ntable = \"t\"\nkey_field = \"k\"\nprojection = []").0,
            "projection"
        );
        assert_eq!(
            one(
                "type = \"dynamodb\"\ntable = \"t\"\nkey_field = \"k\"\nprojection = [\"a\", \"\"]"
            )
            .0,
            "projection[1]"
        );
        let (key, message) =
            one("type = \"dynamodb\"\ntable = \"t\"\nkey_field = \"k\"\naccess_key_id = \"a\"");
        assert_eq!(key, "secret_access_key");
        assert!(message.contains("access_key_id is set"), "{message}");
    }
}
