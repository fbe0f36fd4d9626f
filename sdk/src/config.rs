//! The plugin's configuration: the `key = "value"` strings of its entry in
//! the host's config (or `--config key=value` of `weir plugin test`), with
//! typed getters whose errors name the key and what was wrong.

use std::fmt;
use std::str::FromStr;

/// A configuration value that could not be used.
///
/// Converts into `String`, so `?` works inside [`crate::Transform::init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key concerned.
    pub key: String,
    /// What was wrong with it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config `{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A type a config value can be parsed into.
///
/// Implemented for `String`, `bool` (`true/false/yes/no/on/off/1/0`), the
/// integer and float types, and `Vec<T>` (a comma-separated list; blanks
/// around items are trimmed and empty items skipped).
pub trait ConfigValue: Sized {
    /// Parse `text`; the error says what was expected.
    fn parse_config(text: &str) -> Result<Self, String>;
}

impl ConfigValue for String {
    fn parse_config(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl ConfigValue for bool {
    fn parse_config(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(format!("expected true or false, got {text:?}")),
        }
    }
}

macro_rules! number_config_value {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            fn parse_config(text: &str) -> Result<Self, String> {
                <$t as FromStr>::from_str(text.trim()).map_err(|e| {
                    format!("expected a number ({}), got {text:?}: {e}", stringify!($t))
                })
            }
        }
    )*};
}
number_config_value!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

impl<T: ConfigValue> ConfigValue for Vec<T> {
    fn parse_config(text: &str) -> Result<Self, String> {
        split_list(text)
            .enumerate()
            .map(|(i, item)| T::parse_config(item).map_err(|e| format!("item {}: {e}", i + 1)))
            .collect()
    }
}

/// Split a comma-separated list, trimming items and skipping empty ones.
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// The configuration handed to [`crate::Transform::init`].
///
/// ```
/// use weir_sdk::Config;
/// let config = Config::from_pairs([("field", "user.email"), ("limit", "10"), ("tags", "a, b,c")]);
/// assert_eq!(config.required("field").unwrap(), "user.email");
/// assert_eq!(config.get_or("limit", 5u32).unwrap(), 10);
/// assert_eq!(config.get_or("missing", 5u32).unwrap(), 5);
/// assert_eq!(config.list("tags").unwrap(), ["a", "b", "c"]);
/// assert_eq!(
///     config.required("nope").unwrap_err().to_string(),
///     "config `nope`: required but not set"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    /// A config from key/value pairs; a later duplicate key wins.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut config = Config { pairs: Vec::new() };
        for (k, v) in pairs {
            let (k, v) = (k.into(), v.into());
            match config.pairs.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => config.pairs.push((k, v)),
            }
        }
        config
    }

    /// The raw value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The raw value of `key`, or an error saying it is required.
    pub fn required(&self, key: &str) -> Result<&str, ConfigError> {
        self.get(key)
            .ok_or_else(|| ConfigError::new(key, "required but not set"))
    }

    /// The value of `key` parsed as `T`, or an error if it is missing or
    /// does not parse.
    pub fn required_as<T: ConfigValue>(&self, key: &str) -> Result<T, ConfigError> {
        T::parse_config(self.required(key)?).map_err(|p| ConfigError::new(key, p))
    }

    /// The value of `key` parsed as `T`, `None` if not set, or an error if
    /// it does not parse.
    pub fn get_as<T: ConfigValue>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        self.get(key)
            .map(|v| T::parse_config(v).map_err(|p| ConfigError::new(key, p)))
            .transpose()
    }

    /// The value of `key` parsed as `T`, `default` if not set, or an error
    /// if it does not parse.
    pub fn get_or<T: ConfigValue>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        Ok(self.get_as(key)?.unwrap_or(default))
    }

    /// `key` as a boolean, `default` if not set.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        self.get_or(key, default)
    }

    /// `key` as a comma-separated list of strings; empty if not set.
    pub fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        self.get_or(key, Vec::new())
    }

    /// `key` parsed as one of `choices`, `default` if not set.
    ///
    /// ```
    /// # use weir_sdk::Config;
    /// let config = Config::from_pairs([("mode", "keep")]);
    /// assert_eq!(config.choice("mode", &["drop", "keep"], "drop").unwrap(), "keep");
    /// let bad = Config::from_pairs([("mode", "maybe")]);
    /// assert_eq!(
    ///     bad.choice("mode", &["drop", "keep"], "drop").unwrap_err().to_string(),
    ///     "config `mode`: expected one of drop, keep, got \"maybe\""
    /// );
    /// ```
    pub fn choice<'c>(
        &self,
        key: &str,
        choices: &[&'c str],
        default: &'c str,
    ) -> Result<&'c str, ConfigError> {
        let Some(value) = self.get(key) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|c| **c == value)
            .copied()
            .ok_or_else(|| {
                ConfigError::new(
                    key,
                    format!("expected one of {}, got {value:?}", choices.join(", ")),
                )
            })
    }

    /// The entries whose key starts with `prefix`, with the prefix removed,
    /// in the order they were given: `add.processed_at = ...` under `add.`.
    pub fn with_prefix<'c>(&'c self, prefix: &'c str) -> impl Iterator<Item = (&'c str, &'c str)> {
        self.pairs
            .iter()
            .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, v.as_str())))
    }

    /// All entries, in the order they were given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Refuse keys that are neither in `known` nor start with one of
    /// `prefixes`, so a typo is reported instead of silently ignored.
    ///
    /// ```
    /// # use weir_sdk::Config;
    /// let config = Config::from_pairs([("feild", "x"), ("add.a", "1")]);
    /// assert_eq!(
    ///     config.deny_unknown(&["field"], &["add."]).unwrap_err().to_string(),
    ///     "config `feild`: unknown key (known: field, add.*)"
    /// );
    /// ```
    pub fn deny_unknown(&self, known: &[&str], prefixes: &[&str]) -> Result<(), ConfigError> {
        for (key, _) in &self.pairs {
            let ok = known.contains(&key.as_str())
                || prefixes
                    .iter()
                    .any(|p| key.starts_with(p) && key.len() > p.len());
            if !ok {
                let mut all: Vec<String> = known.iter().map(|k| (*k).to_owned()).collect();
                all.extend(prefixes.iter().map(|p| format!("{p}*")));
                return Err(ConfigError::new(
                    key.as_str(),
                    format!("unknown key (known: {})", all.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Config::from_pairs(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_getters_name_the_key() {
        let c = Config::from_pairs([("n", "x1"), ("b", "maybe"), ("l", "1, 2,,3")]);
        assert_eq!(
            c.required_as::<u32>("n").unwrap_err().to_string(),
            "config `n`: expected a number (u32), got \"x1\": invalid digit found in string"
        );
        assert_eq!(
            c.bool("b", false).unwrap_err().to_string(),
            "config `b`: expected true or false, got \"maybe\""
        );
        assert_eq!(c.get_or::<Vec<u8>>("l", vec![]).unwrap(), [1, 2, 3]);
        assert!(c.bool("absent", true).unwrap());
        assert_eq!(c.get_as::<u8>("absent").unwrap(), None);
    }

    #[test]
    fn later_duplicates_win_and_prefixes_strip() {
        let c = Config::from_pairs([("a", "1"), ("add.x", "2"), ("a", "3"), ("add.y.z", "4")]);
        assert_eq!(c.get("a"), Some("3"));
        let adds: Vec<_> = c.with_prefix("add.").collect();
        assert_eq!(adds, [("x", "2"), ("y.z", "4")]);
        assert!(c.deny_unknown(&["a"], &["add."]).is_ok());
        assert!(
            Config::from_pairs([("add.", "1")])
                .deny_unknown(&[], &["add."])
                .is_err()
        );
    }

    #[test]
    fn question_mark_converts_to_string() {
        fn init(c: &Config) -> Result<u32, String> {
            Ok(c.required_as("n")?)
        }
        assert_eq!(
            init(&Config::default()).unwrap_err(),
            "config `n`: required but not set"
        );
    }
}
