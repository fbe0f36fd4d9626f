//! Problems found in a config file and where they are: [`Diagnostic`]
//! (one problem, printed gcc-style `file:line:col: key.path: message` so
//! editors jump to it), [`ConfigErrors`] (all of them), [`Location`] and
//! [`Locations`] (dotted key path -> line:col, kept for runtime messages).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// A 1-based line and column (in characters) in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Line, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Turns byte offsets of one text into [`Location`]s.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of every line.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// The location of byte `offset` (clamped to the text).
    pub(crate) fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Location {
            line: line + 1,
            column: column + 1,
        }
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The config cannot be run.
    Error,
    /// The config runs, but probably not as meant (an unused sink, ...).
    Warning,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The config file, as it was named to [`crate::config::Config::load`].
    pub file: PathBuf,
    /// Where in the file; `None` when the file itself could not be read.
    pub location: Option<Location>,
    /// Dotted key path of what the message is about (`sinks.out`,
    /// `pipelines.main.batch.max_events`); empty for the file as a whole.
    /// For an unknown key it is the table holding it (the message names
    /// the key) and the location is the key itself.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `file:line:col: [warning: ]key.path: message`.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if let Some(loc) = self.location {
            write!(f, "{loc}:")?;
        }
        if self.severity == Severity::Warning {
            f.write_str(" warning:")?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

/// Why a config file could not be loaded: every error found, one per line,
/// and the warnings found along the way.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.errors, .warnings))]
pub struct ConfigErrors {
    /// The errors, in file order.
    pub errors: Vec<Diagnostic>,
    /// The warnings, in file order.
    pub warnings: Vec<Diagnostic>,
}

impl ConfigErrors {
    /// Errors and warnings together, in file order (what `weir validate`
    /// prints).
    pub fn all(&self) -> Vec<&Diagnostic> {
        let mut all: Vec<&Diagnostic> = self.errors.iter().chain(&self.warnings).collect();
        all.sort_by_key(|d| (d.location, d.severity));
        all
    }
}

fn render(errors: &[Diagnostic], warnings: &[Diagnostic]) -> String {
    let mut all: Vec<&Diagnostic> = errors.iter().chain(warnings).collect();
    all.sort_by_key(|d| (d.location, d.severity));
    all.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where every key of a config file is: dotted key path -> location of the
/// key (for array elements, `path[i]` -> location of the element). Lets
/// later runtime errors cite the line of the setting they are about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations {
    map: BTreeMap<String, Location>,
}

impl Locations {
    /// The location of `key` (`sinks.out.topic`), if the file has it.
    pub fn get(&self, key: &str) -> Option<Location> {
        self.map.get(key).copied()
    }

    /// The location of `key`, or of its nearest parent the file has (a
    /// defaulted setting is cited at its table).
    pub fn nearest(&self, key: &str) -> Option<Location> {
        let mut key = key;
        loop {
            if let Some(loc) = self.get(key) {
                return Some(loc);
            }
            key = &key[..key.rfind(['.', '['])?];
        }
    }

    /// Every key path and its location, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Location)> {
        self.map.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub(crate) fn insert(&mut self, key: String, location: Location) {
        self.map.entry(key).or_insert(location);
    }
}

/// A byte range of the config text.
pub(crate) type Span = Range<usize>;

/// Append `key` to a dotted path, quoting it when it is not a bare key.
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_char_columns() {
        let idx = LineIndex::new("a = 1\nbé = \"x\"\n");
        assert_eq!(idx.location(0), Location { line: 1, column: 1 });
        assert_eq!(idx.location(6), Location { line: 2, column: 1 });
        // "é" is two bytes but one column.
        assert_eq!(idx.location(11), Location { line: 2, column: 5 });
        assert_eq!(idx.location(1000), Location { line: 3, column: 1 });
    }

    #[test]
    fn keys_are_quoted_when_not_bare() {
        assert_eq!(join_key("", "sinks"), "sinks");
        assert_eq!(join_key("sinks", "out-1"), "sinks.out-1");
        assert_eq!(join_key("sinks", "a.b"), "sinks.\"a.b\"");
    }

    #[test]
    fn nearest_falls_back_to_the_parent_table() {
        let mut l = Locations::default();
        l.insert("pipelines.p".into(), Location { line: 3, column: 1 });
        assert_eq!(
            l.nearest("pipelines.p.batch.max_events").map(|l| l.line),
            Some(3)
        );
        assert_eq!(l.nearest("sinks.x"), None);
    }
}
