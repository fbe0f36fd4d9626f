//! Keeps the top-level modules of the library layered: the graph of
//! `crate::MODULE` references among them has no cycle, so every module can
//! be read (and tested) knowing only the ones below it. `config` sits near
//! the top and converts into the option types `engine` and `pipeline` own;
//! nothing it aggregates may reach back up into it.
//!
//! The check reads the source files themselves (every `crate::` path, in
//! `use` trees and inline), so it needs no tool beyond the test runner and
//! fails on the commit that adds a back edge, naming the cycle and the
//! files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules it names -> files naming them.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `source` without `//` comments (doc links name modules without using
/// them) and without the contents of string literals.
fn code_only(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        let mut in_string = false;
        let mut prev = '\0';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_string {
                if c == '"' && prev != '\\' {
                    in_string = false;
                }
                prev = if prev == '\\' && c == '\\' { '\0' } else { c };
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' {
                in_string = true;
                prev = '\0';
            }
            out.push(c);
        }
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment of each item of a `use` tree group that starts
/// right after its `{` (`{a::b, c, d::{e}}` -> a, c, d).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth > 1 {
                    at_item_start = false;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                if !current.is_empty() {
                    heads.push(std::mem::take(&mut current));
                }
                at_item_start = true;
            }
            _ if depth == 1 && at_item_start => {
                if is_ident(c) {
                    current.push(c);
                } else if !current.is_empty() {
                    heads.push(std::mem::take(&mut current));
                    at_item_start = false;
                }
            }
            _ => {}
        }
    }
    if !current.is_empty() {
        heads.push(current);
    }
    heads
}

/// The top-level modules a file's code names through `crate::`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + "crate::".len()..];
        rest = after;
        // `$crate::` paths are expanded where the macro is used, and
        // `pub(crate)` is no path.
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        if after.starts_with('{') {
            names.extend(group_heads(after));
        } else {
            let head: String = after.chars().take_while(|&c| is_ident(c)).collect();
            if !head.is_empty() {
                names.insert(head);
            }
        }
    }
    names
}

fn module_graph() -> (Graph, BTreeSet<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&src).ok()?;
            let first = rel.components().next()?.as_os_str().to_str()?;
            let name = first.strip_suffix(".rs").unwrap_or(first);
            (name != "lib" && name != "main").then(|| name.to_owned())
        })
        .collect();
    let mut graph = Graph::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let first = first.to_str().unwrap();
        let from = first.strip_suffix(".rs").unwrap_or(first).to_owned();
        if !modules.contains(&from) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for to in named_modules(&code) {
            if to != from && modules.contains(&to) {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    (graph, modules)
}

/// One cycle of `graph`, as the modules along it (first = last), if any.
fn find_cycle(graph: &Graph, modules: &BTreeSet<String>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    modules
        .iter()
        .find_map(|m| visit(m, graph, &mut done, &mut Vec::new()))
}

#[test]
fn top_level_modules_form_no_cycle() {
    let (graph, modules) = module_graph();
    assert!(graph.len() > 3, "the module graph was not read: {graph:?}");
    if let Some(cycle) = find_cycle(&graph, &modules) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let files: Vec<&str> = graph[&w[0]][&w[1]].iter().map(String::as_str).collect();
                format!("  {} -> {} (in {})", w[0], w[1], files.join(", "))
            })
            .collect();
        panic!(
            "the top-level modules form a cycle {}:\n{}",
            cycle.join(" -> "),
            steps.join("\n")
        );
    }
}

#[test]
fn use_trees_and_inline_paths_are_read() {
    let code = code_only(
        "use crate::{a::X, b, c::{d, e}};\n\
         let x = crate::f::g(); // crate::comment\n\
         pub(crate) fn h() {}\n\
         let s = \"crate::string\";\n\
         $crate::macro_path::x;\n",
    );
    assert_eq!(
        named_modules(&code).into_iter().collect::<Vec<_>>(),
        ["a", "b", "c", "f"]
    );
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("a", "d")] {
        graph
            .entry(from.into())
            .or_default()
            .entry(to.into())
            .or_default()
            .insert(format!("{from}.rs"));
    }
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
    assert_eq!(find_cycle(&graph, &modules).unwrap(), ["a", "b", "c", "a"]);
    graph.get_mut("c").unwrap().remove("a");
    assert_eq!(find_cycle(&graph, &modules), None);
}
