//! A strict parser of the Prometheus text exposition format (0.0.4), for
//! tests that read `/metrics`: every line must be a `# HELP`, a `# TYPE` or
//! a sample, and every metric family must have both comments.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A whole exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name -> `counter`, `gauge`, `histogram`, ...
    pub types: BTreeMap<String, String>,
    /// Family name -> help text.
    pub help: BTreeMap<String, String>,
}

fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other
            .parse()
            .unwrap_or_else(|e| panic!("bad sample value {other:?}: {e}")),
    }
}

/// Parse `text`, panicking at the first line that is not valid.
pub fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let (kind, rest) = comment.split_once(' ').unwrap_or((comment, ""));
            let (name, body) = rest.split_once(' ').unwrap_or((rest, ""));
            match kind {
                "HELP" => {
                    out.help.insert(name.to_owned(), body.to_owned());
                }
                "TYPE" => {
                    out.types.insert(name.to_owned(), body.to_owned());
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or_else(|| panic!("sample without value: {line}"));
        let name = line[..name_end].to_owned();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let end;
            loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                match c {
                    '}' => {
                        end = i;
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            let (_, c) = chars.next().unwrap_or_else(|| panic!("{line}"));
                            match c {
                                '"' => break,
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c) => value.push(c),
                                    None => panic!("{line}"),
                                },
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end + 1..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("sample without value: {line}"));
        out.samples.push(Sample {
            name,
            labels,
            value: parse_value(value),
        });
    }
    out
}

impl Exposition {
    /// The family a sample name belongs to (`x_bucket` -> `x` for a
    /// histogram `x`).
    pub fn family<'a>(&self, sample: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && self
                    .types
                    .get(base)
                    .is_some_and(|t| t == "histogram" || t == "summary")
            {
                return base;
            }
        }
        sample
    }

    /// Family names that have samples.
    pub fn families(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .map(|s| self.family(&s.name).to_owned())
            .collect()
    }

    /// Samples of `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with exactly these labels
    /// (other labels may be present only if `labels` pins a unique sample).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(
            found.len(),
            1,
            "expected one sample {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }
}
