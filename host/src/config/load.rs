//! Reading a config file into a [`Config`] while collecting every problem
//! at once, each at its line and column.
//!
//! The file is parsed into a spanned TOML tree, `${VAR}`s are substituted in
//! its strings, then it is deserialized piece by piece: the document as a
//! whole (host, plugins, pipelines, unknown top-level keys) and each source
//! and sink on its own (their `type` picks the settings struct). serde stops
//! at the first error of a value, so after each error the key at fault is
//! taken out and the value deserialized again, until it succeeds: one run
//! reports every unknown key, wrong type and missing field. Cross-reference
//! and sanity checks ([`super::check`]) run on what deserialized.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::Config;
use super::check;
use super::diagnostic::{ConfigErrors, Diagnostic, LineIndex, Locations, Severity, Span, join_key};
use super::interpolate::interpolate_value;
use crate::registry::Registry;
use crate::sink::SinkConfig;
use crate::source::SourceConfig;

/// A config that loaded without errors.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The typed config.
    pub config: Config,
    /// The file it came from, as it was named.
    pub path: PathBuf,
    /// The directory relative paths in the config are resolved against
    /// (the file's directory).
    pub dir: PathBuf,
    /// Where each key is in the file.
    pub locations: Locations,
    /// Things that are allowed but probably not meant (an unused sink).
    pub warnings: Vec<Diagnostic>,
}

impl LoadedConfig {
    /// Resolve a path from the config against the config's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        crate::paths::resolve(&self.dir, path)
    }

    /// `weir.toml: ok — 2 sources, 3 plugins, 4 sinks, 2 pipelines`.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let mut line = format!(
            "{}: ok — {}, {}, {}, {}",
            self.path.display(),
            count(c.sources.len(), "source"),
            count(c.plugins.len(), "plugin"),
            count(c.sinks.len(), "sink"),
            count(c.pipelines.len(), "pipeline"),
        );
        if !self.warnings.is_empty() {
            line.push_str(&format!(" ({})", count(self.warnings.len(), "warning")));
        }
        line
    }
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The directory of a config file (`.` for a bare file name).
pub fn config_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl Config {
    /// Read, interpolate (`${VAR}` from the process environment), parse and
    /// validate the config file at `path`. Every problem is reported at
    /// once, each with its line, column and key path.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with variables looked up by `env` instead of the
    /// process environment.
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, ConfigErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::load_str(&text, path, env),
            Err(e) => Err(ConfigErrors {
                errors: vec![Diagnostic {
                    severity: Severity::Error,
                    file: path.to_path_buf(),
                    location: None,
                    key: String::new(),
                    message: format!("cannot read config file: {e}"),
                }],
                warnings: Vec::new(),
            }),
        }
    }

    /// Validate config `text` as if read from `path` (which names it in
    /// messages and whose directory relative paths are resolved against).
    pub fn load_str(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, ConfigErrors> {
        let mut loader = Loader {
            file: path.to_path_buf(),
            lines: LineIndex::new(text),
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let dir = config_dir(path);
        let (root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            loader.syntax_errors(syntax);
            return Err(loader.finish_err());
        }
        let mut root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
        let mut nodes = Nodes::default();
        nodes.collect(&root, "", None);

        let mut interpolation = Vec::new();
        interpolate_value(&mut root, "", text, env, &mut interpolation);
        for e in interpolation {
            loader.error(e.span, e.key, e.message);
        }

        // Sources and sinks are checked entry by entry (their `type`
        // decides their settings); the rest of the document in one piece.
        let (sources_raw, sinks_raw) = match root.get_mut() {
            DeValue::Table(t) => (t.remove("sources"), t.remove("sinks")),
            _ => (None, None),
        };
        let sources = loader.connectors(
            sources_raw.as_ref(),
            "sources",
            &SourceConfig::REGISTRY,
            SourceConfig::from_settings,
        );
        let sinks = loader.connectors(
            sinks_raw.as_ref(),
            "sinks",
            &SinkConfig::REGISTRY,
            SinkConfig::from_settings,
        );
        let config = loader.deserialize_reporting(&root, "", Config::deserialize);

        let defined = Defined {
            sources: table_keys(sources_raw.as_ref()),
            sinks: table_keys(sinks_raw.as_ref()),
            plugins: table_keys(section(&root, "plugins")),
            pipelines: table_keys(section(&root, "pipelines")),
        };
        let referenced = referenced_names(section(&root, "pipelines"));

        let Some(mut config) = config else {
            return Err(loader.finish_err());
        };
        config.sources = sources;
        config.sinks = sinks;
        {
            let mut ctx = check::Ctx {
                loader: &mut loader,
                nodes: &nodes,
                dir: &dir,
                defined: &defined,
                referenced: &referenced,
            };
            check::check(&config, &mut ctx);
        }
        if !loader.errors.is_empty() {
            return Err(loader.finish_err());
        }
        let mut warnings = loader.warnings;
        warnings.sort_by_key(|d| d.location);
        Ok(LoadedConfig {
            config,
            path: path.to_path_buf(),
            dir,
            locations: nodes.locations(&loader.lines),
            warnings,
        })
    }
}

/// Names present in the file, whether or not their entry is valid (so a
/// broken sink is not also reported as missing where it is used).
#[derive(Debug, Default)]
pub(crate) struct Defined {
    pub sources: BTreeSet<String>,
    pub sinks: BTreeSet<String>,
    pub plugins: BTreeSet<String>,
    pub pipelines: BTreeSet<String>,
}

/// Names the pipelines of the file use, whatever else is wrong with them.
#[derive(Debug, Default)]
pub(crate) struct Referenced {
    pub sources: BTreeSet<String>,
    pub sinks: BTreeSet<String>,
    pub plugins: BTreeSet<String>,
}

fn section<'a, 'i>(root: &'a Spanned<DeValue<'i>>, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    root.get_ref().as_table()?.get(name)
}

fn table_keys(value: Option<&Spanned<DeValue<'_>>>) -> BTreeSet<String> {
    value
        .and_then(|v| v.get_ref().as_table())
        .map(|t| t.keys().map(|k| k.get_ref().to_string()).collect())
        .unwrap_or_default()
}

fn referenced_names(pipelines: Option<&Spanned<DeValue<'_>>>) -> Referenced {
    let mut r = Referenced::default();
    let Some(pipelines) = pipelines.and_then(|v| v.get_ref().as_table()) else {
        return r;
    };
    let strings = |v: Option<&Spanned<DeValue<'_>>>| -> Vec<String> {
        match v.map(|v| v.get_ref()) {
            Some(DeValue::String(s)) => vec![s.to_string()],
            Some(DeValue::Array(a)) => a
                .iter()
                .filter_map(|v| v.get_ref().as_str().map(str::to_owned))
                .collect(),
            Some(DeValue::Table(t)) => t
                .values()
                .filter_map(|v| v.get_ref().as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    for p in pipelines.values() {
        let Some(p) = p.get_ref().as_table() else {
            continue;
        };
        r.sources.extend(strings(p.get("source")));
        r.plugins.extend(strings(p.get("plugins")));
        r.sinks.extend(strings(p.get("default_route")));
        r.sinks.extend(strings(p.get("dead_letter")));
        r.sinks.extend(strings(p.get("routes")));
    }
    r
}

/// The spans of every key and value of the file, by dotted key path.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    map: BTreeMap<String, NodeSpans>,
}

/// Where one key and its value are.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpans {
    /// The key (none for array elements).
    pub key: Option<Span>,
    /// The value (for a `[header]` table, the header).
    pub value: Span,
}

impl Nodes {
    fn collect(&mut self, value: &Spanned<DeValue<'_>>, path: &str, key: Option<Span>) {
        if !path.is_empty() {
            self.map.insert(
                path.to_owned(),
                NodeSpans {
                    key,
                    value: value.span(),
                },
            );
        }
        match value.get_ref() {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    self.collect(v, &join_key(path, k.get_ref()), Some(k.span()));
                }
            }
            DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.collect(v, &format!("{path}[{i}]"), None);
                }
            }
            _ => {}
        }
    }

    /// The spans of `path`, if the file has it.
    pub(crate) fn get(&self, path: &str) -> Option<&NodeSpans> {
        self.map.get(path)
    }

    /// The value span of `path` or of its nearest parent in the file.
    pub(crate) fn nearest_value(&self, path: &str) -> Option<Span> {
        let mut path = path;
        loop {
            if let Some(n) = self.get(path) {
                return Some(n.value.clone());
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }

    fn locations(&self, lines: &LineIndex<'_>) -> Locations {
        let mut locations = Locations::default();
        for (path, n) in &self.map {
            let at = n.key.as_ref().unwrap_or(&n.value).start;
            locations.insert(path.clone(), lines.location(at));
        }
        locations
    }
}

/// Collects the problems of one file.
#[derive(Debug)]
pub(crate) struct Loader<'t> {
    file: PathBuf,
    lines: LineIndex<'t>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// One step of a path inside a TOML value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Where a deserialization error points.
#[derive(Debug)]
struct Hit {
    /// Path from the value being deserialized.
    segs: Vec<Seg>,
    /// The error is about the key itself (an unknown key), not its value.
    on_key: bool,
}

impl Loader<'_> {
    pub(crate) fn error(&mut self, span: Span, key: String, message: String) {
        self.push(Severity::Error, span, key, message);
    }

    /// Whether an error was reported for `key` already.
    pub(crate) fn has_error_at(&self, key: &str) -> bool {
        self.errors.iter().any(|d| d.key == key)
    }

    /// Whether `key` or anything under it (`key.x`, `key[0]`) has an error.
    pub(crate) fn has_error_under(&self, key: &str) -> bool {
        self.errors.iter().any(|d| {
            d.key
                .strip_prefix(key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    pub(crate) fn warning(&mut self, span: Span, key: String, message: String) {
        self.push(Severity::Warning, span, key, message);
    }

    fn push(&mut self, severity: Severity, span: Span, key: String, message: String) {
        let d = Diagnostic {
            severity,
            file: self.file.clone(),
            location: Some(self.lines.location(span.start)),
            key,
            message,
        };
        let list = match severity {
            Severity::Error => &mut self.errors,
            Severity::Warning => &mut self.warnings,
        };
        if !list.contains(&d) {
            list.push(d);
        }
    }

    fn finish_err(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|d| d.location);
        self.warnings.sort_by_key(|d| d.location);
        ConfigErrors {
            errors: self.errors,
            warnings: self.warnings,
        }
    }

    /// Syntax errors: the parser recovers and reports follow-on errors, so
    /// keep the first per line.
    fn syntax_errors(&mut self, mut errors: Vec<toml::de::Error>) {
        errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
        let mut lines = BTreeSet::new();
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            if lines.insert(self.lines.location(span.start).line) {
                self.error(
                    span,
                    String::new(),
                    format!("invalid TOML: {}", e.message()),
                );
            }
        }
    }

    /// Deserialize `value` (found at `base`) with `de`, reporting every
    /// error: after each one, the key at fault is removed and `de` runs
    /// again. `None` if the value as a whole could not be deserialized.
    fn deserialize_reporting<'i, T>(
        &mut self,
        value: &Spanned<DeValue<'i>>,
        base: &str,
        de: impl Fn(ValueDeserializer<'i>) -> Result<T, toml::de::Error>,
    ) -> Option<T> {
        let mut work = value.clone();
        let mut removed: BTreeSet<String> = BTreeSet::new();
        let mut seen: BTreeSet<(usize, String)> = BTreeSet::new();
        // Each round removes one key, so this bounds rounds by the keys.
        for _ in 0..=value_size(value) {
            let err = match de(ValueDeserializer::from(work.clone())) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let span = err.span().unwrap_or_else(|| work.span());
            // An implicit table (`[a.b]` makes `a`) has one span for its
            // key and value; an unknown-key error is about the key.
            let hit = locate(&work, &span, err.message().starts_with("unknown field"));
            let node_path = path_string(base, &hit.segs);
            let message = err.message().to_owned();
            let suppressed = missing_field(&message)
                .is_some_and(|field| removed.contains(&join_key(&node_path, field)));
            if !seen.insert((span.start, message.clone())) {
                return None;
            }
            if !suppressed {
                let shown = if hit.on_key {
                    path_string(base, &hit.segs[..hit.segs.len().saturating_sub(1)])
                } else {
                    node_path.clone()
                };
                self.error(span, shown, message);
            }
            // Take out the innermost key holding the problem and retry.
            let last_key = hit.segs.iter().rposition(|s| matches!(s, Seg::Key(_)))?;
            let cut = &hit.segs[..=last_key];
            removed.insert(path_string(base, cut));
            remove(&mut work, cut);
        }
        None
    }

    /// Check and deserialize the entries of `[sources]` or `[sinks]`.
    fn connectors<'i, T>(
        &mut self,
        section: Option<&Spanned<DeValue<'i>>>,
        name: &str,
        registry: &Registry,
        from_settings: impl Fn(&str, ValueDeserializer<'i>) -> Option<Result<T, toml::de::Error>>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some(section) = section else {
            return out;
        };
        let Some(table) = section.get_ref().as_table() else {
            self.error(
                section.span(),
                name.to_owned(),
                format!(
                    "invalid type: {}, expected a table of named {}s",
                    section.get_ref().type_str(),
                    registry.kind
                ),
            );
            return out;
        };
        for (key, entry) in table.iter() {
            let path = join_key(name, key.get_ref());
            let Some(settings) = entry.get_ref().as_table() else {
                self.error(
                    entry.span(),
                    path,
                    format!(
                        "invalid type: {}, expected a table (`[{name}.{}]` with a `type`)",
                        entry.get_ref().type_str(),
                        key.get_ref()
                    ),
                );
                continue;
            };
            let type_name = match settings.get("type") {
                None => {
                    self.error(
                        entry.span(),
                        path,
                        format!(
                            "missing field `type` (this build supports: {})",
                            registry
                                .types()
                                .iter()
                                .map(|t| format!("`{t}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    continue;
                }
                Some(t) => match t.get_ref().as_str() {
                    Some(s) => s.to_owned(),
                    None => {
                        self.error(
                            t.span(),
                            join_key(&path, "type"),
                            format!(
                                "invalid type: {}, expected a string",
                                t.get_ref().type_str()
                            ),
                        );
                        continue;
                    }
                },
            };
            if !registry.supports(&type_name) {
                let span = settings.get("type").map_or(entry.span(), |t| t.span());
                self.error(
                    span,
                    join_key(&path, "type"),
                    registry.unsupported_message(&type_name),
                );
                continue;
            }
            let mut rest = settings.clone();
            rest.remove("type");
            let rest = Spanned::new(entry.span(), DeValue::Table(rest));
            let parsed = self.deserialize_reporting(&rest, &path, |d| {
                from_settings(&type_name, d).unwrap_or_else(|| {
                    Err(<toml::de::Error as serde::de::Error>::custom(format!(
                        "unknown {} type `{type_name}`",
                        registry.kind
                    )))
                })
            });
            if let Some(parsed) = parsed {
                out.insert(key.get_ref().to_string(), parsed);
            }
        }
        out
    }
}

/// serde's "missing field `x`": the `x`.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// How many keys and elements `value` holds, at every depth.
fn value_size(value: &Spanned<DeValue<'_>>) -> usize {
    match value.get_ref() {
        DeValue::Table(t) => t.values().map(|v| 1 + value_size(v)).sum(),
        DeValue::Array(a) => a.iter().map(|v| 1 + value_size(v)).sum(),
        _ => 0,
    }
}

fn path_string(base: &str, segs: &[Seg]) -> String {
    let mut path = base.to_owned();
    for s in segs {
        match s {
            Seg::Key(k) => path = join_key(&path, k),
            Seg::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// The node of `root` an error at `span` is about: the deepest value whose
/// span is exactly `span`, else a key whose span is exactly `span` (serde
/// reports an unknown key at the key), else the smallest value containing
/// it, else `root` itself. With `prefer_key`, an exact key beats an exact
/// value. (A `[header]` table's span is its header only, so containment
/// alone cannot find nested keys.)
fn locate(root: &Spanned<DeValue<'_>>, span: &Span, prefer_key: bool) -> Hit {
    let mut finder = Finder {
        span: span.clone(),
        ranks: if prefer_key { (1, 0) } else { (0, 1) },
        best: None,
    };
    finder.walk(root, &mut Vec::new());
    finder.best.map_or(
        Hit {
            segs: Vec::new(),
            on_key: false,
        },
        |c| c.hit,
    )
}

/// The search of [`locate`].
struct Finder {
    span: Span,
    /// Ranks of an exact value match and of an exact key match.
    ranks: (u8, u8),
    best: Option<Candidate>,
}

/// A node an error may be about; lower `(rank, tie)` is better.
struct Candidate {
    rank: u8,
    tie: usize,
    hit: Hit,
}

impl Finder {
    fn consider(&mut self, rank: u8, tie: usize, segs: &[Seg], on_key: bool) {
        if self
            .best
            .as_ref()
            .is_none_or(|b| (rank, tie) < (b.rank, b.tie))
        {
            self.best = Some(Candidate {
                rank,
                tie,
                hit: Hit {
                    segs: segs.to_vec(),
                    on_key,
                },
            });
        }
    }

    fn walk(&mut self, v: &Spanned<DeValue<'_>>, segs: &mut Vec<Seg>) {
        let vs = v.span();
        // Deeper exact matches win; among containing values, the smallest.
        if vs == self.span {
            self.consider(self.ranks.0, usize::MAX - segs.len(), segs, false);
        } else if vs.start <= self.span.start && self.span.end <= vs.end {
            self.consider(2, vs.len(), segs, false);
        }
        match v.get_ref() {
            DeValue::Table(t) => {
                for (k, child) in t.iter() {
                    segs.push(Seg::Key(k.get_ref().to_string()));
                    if k.span() == self.span {
                        self.consider(self.ranks.1, usize::MAX - segs.len(), segs, true);
                    }
                    self.walk(child, segs);
                    segs.pop();
                }
            }
            DeValue::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    segs.push(Seg::Index(i));
                    self.walk(child, segs);
                    segs.pop();
                }
            }
            _ => {}
        }
    }
}

/// Remove the key at the end of `segs` (which must end with a key).
fn remove(root: &mut Spanned<DeValue<'_>>, segs: &[Seg]) {
    let Some((Seg::Key(last), parents)) = segs.split_last() else {
        return;
    };
    let mut node = root;
    for s in parents {
        let next = match (node.get_mut(), s) {
            (DeValue::Table(t), Seg::Key(k)) => t.get_mut(k.as_str()),
            (DeValue::Array(a), Seg::Index(i)) => {
                let items: &mut [Spanned<DeValue<'_>>] = std::borrow::BorrowMut::borrow_mut(a);
                items.get_mut(*i)
            }
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    if let DeValue::Table(t) = node.get_mut() {
        t.remove(last.as_str());
    }
}
