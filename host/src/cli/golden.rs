//! Golden files for `weir plugin test`: `--record FILE` writes the outcome
//! lines, `--expect FILE` compares a run with them and reports every
//! difference by input line and JSON path.
//!
//! Outcomes are compared as JSON values, not as text, so a golden file
//! edited by hand (spacing, member order) still matches; they are paired by
//! position, which is what `--record` wrote.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// Values longer than this are shortened in a report.
const SHOWN_CHARS: usize = 160;

/// The outcomes a run is expected to produce.
#[derive(Debug)]
pub struct Golden {
    /// The file's name, as reports name it.
    name: String,
    /// (line in the golden file, outcome) of every non-blank line.
    outcomes: Vec<(usize, Value)>,
}

impl Golden {
    /// Read a JSON-lines golden file; a line that is not JSON is an error
    /// naming the file, the line and the column.
    pub fn read(path: &Path) -> anyhow::Result<Golden> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the expected outcomes {}", path.display()))?;
        Golden::parse(&path.display().to_string(), &text)
    }

    fn parse(name: &str, text: &str) -> anyhow::Result<Golden> {
        let mut outcomes = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(v) => outcomes.push((i + 1, v)),
                Err(e) => bail!(
                    "{name} line {}, column {}: not valid JSON (an expected outcome per line, \
                     as --record writes them)",
                    i + 1,
                    e.column()
                ),
            }
        }
        Ok(Golden {
            name: name.to_owned(),
            outcomes,
        })
    }

    /// Compare the outcome lines of a run (as `weir plugin test` prints
    /// them) with the expected ones.
    pub fn compare(&self, actual: &[String]) -> Report {
        let mut differing = Vec::new();
        for (i, line) in actual.iter().enumerate() {
            // The lines are rendered by this program: always JSON.
            let got: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            let Some((golden_line, expected)) = self.outcomes.get(i) else {
                continue;
            };
            let mut diffs = Vec::new();
            diff_values("", expected, &got, &mut diffs);
            if !diffs.is_empty() {
                differing.push(Difference {
                    input_line: got.get("line").and_then(Value::as_u64),
                    golden_line: *golden_line,
                    diffs,
                });
            }
        }
        Report {
            name: self.name.clone(),
            compared: actual.len().min(self.outcomes.len()),
            differing,
            extra: actual.iter().skip(self.outcomes.len()).cloned().collect(),
            missing: self
                .outcomes
                .iter()
                .skip(actual.len())
                .map(|(_, v)| v.to_string())
                .collect(),
        }
    }
}

/// One outcome that differs from its golden line.
#[derive(Debug)]
struct Difference {
    /// The `line` of the outcome produced (the input line of its event).
    input_line: Option<u64>,
    /// Its line in the golden file.
    golden_line: usize,
    /// `path: expected X, got Y` lines.
    diffs: Vec<String>,
}

/// What `--expect` found.
#[derive(Debug)]
pub struct Report {
    /// The golden file's name.
    name: String,
    /// Outcomes compared (present on both sides).
    compared: usize,
    /// Those that differ.
    differing: Vec<Difference>,
    /// Outcome lines of the run beyond the end of the golden file.
    extra: Vec<String>,
    /// Golden lines beyond the end of the run's outcomes.
    missing: Vec<String>,
}

impl Report {
    /// Whether the run produced exactly the expected outcomes.
    pub fn matches(&self) -> bool {
        self.differing.is_empty() && self.extra.is_empty() && self.missing.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.matches() {
            return writeln!(
                f,
                "all {} outcomes match {}",
                self.compared + self.extra.len(),
                self.name
            );
        }
        for d in &self.differing {
            match d.input_line {
                Some(line) => writeln!(
                    f,
                    "input line {line} (expected at {} line {}):",
                    self.name, d.golden_line
                )?,
                None => writeln!(f, "{} line {}:", self.name, d.golden_line)?,
            }
            for diff in &d.diffs {
                writeln!(f, "  {diff}")?;
            }
        }
        if !self.extra.is_empty() {
            writeln!(
                f,
                "{} more outcome(s) than {} holds:",
                self.extra.len(),
                self.name
            )?;
            for line in &self.extra {
                writeln!(f, "  + {}", shorten(line))?;
            }
        }
        if !self.missing.is_empty() {
            writeln!(
                f,
                "{} expected outcome(s) missing from the run:",
                self.missing.len()
            )?;
            for line in &self.missing {
                writeln!(f, "  - {}", shorten(line))?;
            }
        }
        writeln!(
            f,
            "{} of {} outcomes differ from {}{}",
            self.differing.len(),
            self.compared,
            self.name,
            if self.extra.len() + self.missing.len() > 0 {
                ", and the counts differ"
            } else {
                ""
            }
        )
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn show(v: &Value) -> String {
    shorten(&v.to_string())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn label(path: &str) -> &str {
    if path.is_empty() { "outcome" } else { path }
}

/// Append a line per place where `got` differs from `expected`, named by
/// its path (`outputs[0].value.amount`).
fn diff_values(path: &str, expected: &Value, got: &Value, out: &mut Vec<String>) {
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (key, ev) in e {
                let at = join(path, key);
                match g.get(key) {
                    Some(gv) => diff_values(&at, ev, gv, out),
                    None => out.push(format!("{at}: expected {}, missing", show(ev))),
                }
            }
            for (key, gv) in g {
                if !e.contains_key(key) {
                    out.push(format!("{}: unexpected {}", join(path, key), show(gv)));
                }
            }
        }
        (Value::Array(e), Value::Array(g)) => {
            for (i, ev) in e.iter().enumerate() {
                let at = format!("{path}[{i}]");
                match g.get(i) {
                    Some(gv) => diff_values(&at, ev, gv, out),
                    None => out.push(format!("{at}: expected {}, missing", show(ev))),
                }
            }
            for (i, gv) in g.iter().enumerate().skip(e.len()) {
                out.push(format!("{path}[{i}]: unexpected {}", show(gv)));
            }
        }
        (e, g) if e != g => out.push(format!(
            "{}: expected {}, got {}",
            label(path),
            show(e),
            show(g)
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(text: &str) -> Golden {
        Golden::parse("want.jsonl", text).unwrap()
    }

    #[test]
    fn equal_json_matches_whatever_its_spacing_and_member_order() {
        let g =
            golden("{\"outcome\": \"drop\", \"line\": 1}\n\n{\"line\":2,\"outcome\":\"drop\"}\n");
        let report = g.compare(&[
            r#"{"line":1,"outcome":"drop"}"#.to_owned(),
            r#"{"line":2,"outcome":"drop"}"#.to_owned(),
        ]);
        assert!(report.matches(), "{report}");
        assert_eq!(report.to_string(), "all 2 outcomes match want.jsonl\n");
    }

    #[test]
    fn differences_are_listed_by_input_line_and_path() {
        let g = golden(concat!(
            r#"{"line":1,"outcome":"emit","outputs":[{"route":null,"value":{"amount":5,"tag":"a"}}]}"#,
            "\n",
            r#"{"line":3,"outcome":"drop"}"#,
            "\n",
            r#"{"line":4,"outcome":"drop"}"#,
            "\n",
        ));
        let report = g.compare(&[
            r#"{"line":1,"outcome":"emit","outputs":[{"route":"review","value":{"amount":6,"new":true}}]}"#.to_owned(),
            r#"{"line":3,"outcome":"fail","reason":"boom"}"#.to_owned(),
        ]);
        assert!(!report.matches());
        assert_eq!(
            report.to_string(),
            "input line 1 (expected at want.jsonl line 1):\n  \
             outputs[0].route: expected null, got \"review\"\n  \
             outputs[0].value.amount: expected 5, got 6\n  \
             outputs[0].value.tag: expected \"a\", missing\n  \
             outputs[0].value.new: unexpected true\n\
             input line 3 (expected at want.jsonl line 2):\n  \
             outcome: expected \"drop\", got \"fail\"\n  \
             reason: unexpected \"boom\"\n\
             1 expected outcome(s) missing from the run:\n  \
             - {\"line\":4,\"outcome\":\"drop\"}\n\
             2 of 2 outcomes differ from want.jsonl, and the counts differ\n"
        );
    }

    #[test]
    fn extra_outcomes_are_shown() {
        let report = golden("").compare(&[r#"{"line":1,"outcome":"drop"}"#.to_owned()]);
        assert!(!report.matches());
        assert!(
            report
                .to_string()
                .starts_with("1 more outcome(s) than want.jsonl holds:\n  + {\"line\":1"),
            "{report}"
        );
    }

    #[test]
    fn a_malformed_golden_line_names_line_and_column() {
        let err = Golden::parse("want.jsonl", "{}\n{\"line\": 2,, }\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("want.jsonl line 2, column 12: not valid JSON"),
            "{err}"
        );
    }
}
