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
}

/// The format of a `file` store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON object a line.
    Jsonl,
    /// A header line, then one row a line; values are strings.
    Csv,
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
    /// How long an answer is kept, in milliseconds.
    pub ttl_ms: u64,
    /// Whether "absent" answers are cached too.
    pub negative: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 10_000,
            ttl_ms: 60_000,
            negative: true,
        }
    }
}

/// `[lookups.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// `file` or `redis`.
    #[serde(rename = "type")]
    pub kind: StoreType,
    /// `file`: the table, relative to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `file`: `jsonl` or `csv`; default from the extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// `file`: the field (column) holding each row's key.
    #[serde(default)]
    pub key_field: Option<String>,
    /// `redis`: the server, `redis://host:port/db`.
    #[serde(default)]
    pub url: Option<String>,
    /// `redis`: `get` (default) or `hgetall`.
    #[serde(default)]
    pub read: RedisRead,
    /// `redis`: the Redis key of a lookup key, `{key}` standing for it;
    /// default `{key}`.
    #[serde(default)]
    pub key_template: Option<String>,
    /// Longest one call to the store may take, in milliseconds (less if
    /// the plugin's deadline is nearer).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
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

/// The placeholder of a key template.
pub const KEY_PLACEHOLDER: &str = "{key}";

impl LookupConfig {
    /// Settings missing or wrong for the store's type, as `(key, message)`
    /// with keys relative to `[lookups.NAME]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut need = |set: bool, key: &str, what: &str| {
            if !set {
                out.push((
                    key.to_owned(),
                    format!("a `{what}` lookup store needs `{key}`"),
                ));
            }
        };
        match self.kind {
            StoreType::File => {
                need(self.path.is_some(), "path", "file");
                need(self.key_field.is_some(), "key_field", "file");
                if self.format.is_none()
                    && let Some(path) = &self.path
                    && FileFormat::of_path(path).is_none()
                {
                    out.push((
                        "format".to_owned(),
                        format!(
                            "cannot tell the format of `{}` from its extension: set `format = \"jsonl\"` or `\"csv\"`",
                            path.display()
                        ),
                    ));
                }
            }
            StoreType::Redis => {
                need(self.url.is_some(), "url", "redis");
                if let Some(t) = &self.key_template
                    && !t.contains(KEY_PLACEHOLDER)
                {
                    out.push((
                        "key_template".to_owned(),
                        format!("`{t}` does not contain `{KEY_PLACEHOLDER}`"),
                    ));
                }
            }
        }
        let misplaced: &[(&str, bool)] = match self.kind {
            StoreType::File => &[
                ("url", self.url.is_some()),
                ("key_template", self.key_template.is_some()),
            ],
            StoreType::Redis => &[
                ("path", self.path.is_some()),
                ("key_field", self.key_field.is_some()),
                ("format", self.format.is_some()),
            ],
        };
        for (key, set) in misplaced {
            if *set {
                out.push((
                    (*key).to_owned(),
                    format!(
                        "`{key}` is not a setting of a `{:?}` lookup store",
                        self.kind
                    )
                    .to_lowercase(),
                ));
            }
        }
        if self.timeout_ms == 0 {
            out.push(("timeout_ms".to_owned(), "must be at least 1".to_owned()));
        }
        out
    }
}

impl FileFormat {
    /// The format a file's extension implies.
    pub fn of_path(path: &std::path::Path) -> Option<FileFormat> {
        match path.extension()?.to_str()? {
            "jsonl" | "ndjson" => Some(FileFormat::Jsonl),
            "csv" => Some(FileFormat::Csv),
            _ => None,
        }
    }
}
