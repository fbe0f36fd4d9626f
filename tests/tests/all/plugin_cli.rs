//! `weir plugin test` and `weir plugin inspect` end to end: the real `weir`
//! binary as a subprocess, on real plugin files built for wasm32-wasip2.
//!
//! The binary belongs to package `weir`, so Cargo does not build it for this
//! package's tests; the first test that needs it runs `cargo build -p weir
//! --bin weir` (same profile, same target directory) and uses the
//! executable Cargo reports.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use weir_tests::plugins;
use weir_tests::weir_bin;

/// A fresh directory for input files and the compiled-plugin cache.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

/// Run `weir` with `args`, optional standard input, and a private cache.
fn weir(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(weir_bin())
        .args(args)
        .env("WEIR_CACHE_DIR", dir.join("cache"))
        .env("WEIR_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start weir");
    let mut input = child.stdin.take().expect("stdin is piped");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("cannot write to weir's stdin");
    drop(input);
    child.wait_with_output().expect("weir did not finish")
}

fn stdout_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const FILTER_EVENTS: &str = r#"{"event_type":"view","user":"ann"}
{"event_type":"heartbeat"}

{"key":"order-7","value":{"event_type":"purchase","amount":12.5},"headers":{"trace":"t-1"}}
{"key":"order-8","value":null}
"#;

#[test]
fn plugin_test_prints_one_outcome_per_event() {
    let dir = scratch();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, FILTER_EVENTS).unwrap();
    let out = weir(
        dir.path(),
        &[
            "plugin",
            "test",
            plugins::FILTER,
            "--config",
            "field=event_type",
            "--config",
            "equals=heartbeat",
            "--input",
            input.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");

    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[0]["outcome"], "emit");
    assert_eq!(
        lines[0]["outputs"][0]["value"],
        serde_json::json!({"event_type": "view", "user": "ann"})
    );

    assert_eq!(lines[1], serde_json::json!({"line": 2, "outcome": "drop"}));

    // Line 3 is blank; line 4 is an envelope: key and headers go through.
    assert_eq!(lines[2]["line"], 4);
    assert_eq!(lines[2]["outcome"], "emit");
    let output = &lines[2]["outputs"][0];
    assert_eq!(output["key"], "order-7");
    assert_eq!(
        output["value"],
        serde_json::json!({"amount": 12.5, "event_type": "purchase"})
    );
    assert_eq!(output["headers"], serde_json::json!({"trace": "t-1"}));

    // A tombstone cannot be tested: the filter fails it (its default), and
    // a fail outcome still counts as processed.
    assert_eq!(lines[3]["line"], 5);
    assert_eq!(lines[3]["outcome"], "fail");
    assert!(
        lines[3]["reason"].as_str().unwrap().starts_with("filter: "),
        "{}",
        lines[3]
    );

    let err = stderr(&out);
    assert!(
        err.contains("4 events: 2 outputs emitted, 1 dropped, 1 failed"),
        "summary missing from stderr: {err}"
    );
}

#[test]
fn plugin_test_reads_stdin() {
    let dir = scratch();
    let out = weir(
        dir.path(),
        &[
            "plugin",
            "test",
            plugins::FILTER,
            "--config",
            "field=n",
            "--config",
            "in=1,3",
            "--batch-size",
            "2",
        ],
        Some("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let outcomes: Vec<_> = stdout_lines(&out)
        .iter()
        .map(|l| l["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["drop", "emit", "drop"]);
}

#[test]
fn plugin_test_rejects_a_malformed_line_with_its_number() {
    let dir = scratch();
    let input = dir.path().join("events.jsonl");
    std::fs::write(
        &input,
        "{\"event_type\":\"view\"}\n{\"event_type\":\"view\"}\n  {\"event_type\": \n{\"event_type\":\"view\"}\n",
    )
    .unwrap();
    let out = weir(
        dir.path(),
        &[
            "plugin",
            "test",
            plugins::FILTER,
            "--config",
            "field=event_type",
            "--config",
            "equals=heartbeat",
            "--input",
            input.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    // serde_json counts each line as line 1: the message says which line
    // of the file and which column (leading blanks counted), not "at line
    // 1 column 17".
    assert!(
        err.contains("events.jsonl line 3, column 17: not valid JSON: EOF while parsing a value ("),
        "message does not name the line and column: {err}"
    );
    assert!(!err.contains("at line 1"), "{err}");
    // Every line is checked before the plugin runs: nothing half-printed.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn plugin_test_rejects_a_bad_envelope_field() {
    let dir = scratch();
    let out = weir(
        dir.path(),
        &[
            "plugin",
            "test",
            plugins::FILTER,
            "--config",
            "field=a",
            "--config",
            "exists=true",
        ],
        Some("{\"a\":1}\n{\"value\":{\"a\":1},\"op\":\"merge\"}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stdin line 2: op must be insert, upsert or delete, not `merge`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plugin_test_refuses_a_file_that_is_not_wasm() {
    let dir = scratch();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, "#!/bin/sh\necho not wasm\n").unwrap();
    let out = weir(
        dir.path(),
        &["plugin", "test", bogus.to_str().unwrap()],
        Some("{}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "plugin `bogus` ({}): not a WebAssembly file",
            bogus.display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn plugin_test_reports_a_refused_config() {
    let dir = scratch();
    let out = weir(
        dir.path(),
        &["plugin", "test", plugins::FILTER, "--config", "feild=x"],
        Some("{}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("init refused its config: "), "{err}");
    assert!(err.contains("feild"), "{err}");
}

#[test]
fn plugin_inspect_prints_contract_and_exports() {
    let dir = scratch();
    let out = weir(dir.path(), &["plugin", "inspect", plugins::FILTER], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("contract: weir:transform@0.2.0\n"), "{text}");
    assert!(
        text.contains("world:    transform (packed: one byte buffer each way)\n"),
        "{text}"
    );
    assert!(
        text.contains("weir:     state: no, lookup: no, timers: no\n"),
        "{text}"
    );
    assert!(
        text.contains("weir:transform/plugin@0.2.0 (instance: init, process)"),
        "{text}"
    );
    assert!(text.contains("\n  wasi:cli/environment@0.2"), "{text}");

    let out = weir(
        dir.path(),
        &["plugin", "inspect", "--json", plugins::OTHER_CONTRACT],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["contract_version"], "0.9.0");
    assert_eq!(info["compatible"], false);
    assert_eq!(info["world"], serde_json::Value::Null);
    assert_eq!(
        info["problem"],
        "built against weir:transform@0.9.0, this host supports weir:transform@0.1.0 \
         (world `transform`) and weir:transform@0.2.0 (worlds `transform` and `typed`)"
    );
}

#[test]
fn plugin_inspect_names_the_typed_world_and_its_timers() {
    let dir = scratch();
    let out = weir(
        dir.path(),
        &["plugin", "inspect", plugins::TYPED_HOSTILE],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("contract: weir:transform@0.2.0\n"), "{text}");
    assert!(
        text.contains("world:    typed (typed: list<event> in, list<outcome> out)\n"),
        "{text}"
    );
    assert!(
        text.contains("weir:     state: no, lookup: no, timers: yes\n"),
        "{text}"
    );

    let out = weir(
        dir.path(),
        &["plugin", "inspect", "--json", plugins::STATE_IMPORT],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["world"], "transform-state");
    assert_eq!(info["kind"], "packed");
    assert_eq!(info["state"], true);
    assert_eq!(info["compatible"], false);
    assert_eq!(
        info["problem"],
        "imports weir:transform/state@0.2.0, but its config grants no state \
         (this version of weir cannot grant it yet)"
    );
}

#[test]
fn plugin_test_runs_a_typed_plugin() {
    let dir = scratch();
    let out = weir(
        dir.path(),
        &["plugin", "test", plugins::TYPED_HOSTILE],
        Some("{\"a\":1}\n{\"poison\":true}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "emit", "{lines:?}");
    assert_eq!(lines[1]["outcome"], "fail", "{lines:?}");
}

/// Run `weir args` with stdout a pipe whose reading end is already closed
/// (what `weir ... | head` becomes once `head` has had enough).
fn weir_into_closed_pipe(dir: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(weir_bin())
        .args(args)
        .current_dir(dir)
        .env("WEIR_CACHE_DIR", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(writer)
        .output()
        .expect("run weir")
}

#[test]
fn no_command_panics_when_its_stdout_is_closed() {
    let dir = scratch();
    std::fs::write(
        dir.path().join("weir.toml"),
        "[sources.s]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ntopics = [\"t\"]\n\n\
         [sinks.out]\ntype = \"file\"\npath = \"out.jsonl\"\n\n\
         [pipelines.p]\nsource = \"s\"\ndefault_route = \"out\"\n",
    )
    .expect("config");
    std::fs::write(dir.path().join("events.jsonl"), "{\"id\":1}\n").expect("events");
    for args in [
        vec!["plugin", "inspect", plugins::FILTER],
        vec!["plugin", "inspect", "--json", plugins::FILTER],
        vec!["validate", "weir.toml"],
        vec![
            "plugin",
            "test",
            plugins::STAMP_A,
            "--input",
            "events.jsonl",
        ],
    ] {
        let out = weir_into_closed_pipe(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.code().is_some(), "{args:?}: killed: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?}: {stderr}", out.status);
    }
}

fn filter_args<'a>(input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "plugin",
        "test",
        plugins::FILTER,
        "--config",
        "field=event_type",
        "--config",
        "equals=heartbeat",
        "--input",
        input,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn plugin_test_records_a_golden_file_and_checks_runs_against_it() {
    let dir = scratch();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, FILTER_EVENTS).unwrap();
    let golden = dir.path().join("expected.jsonl");
    let (input, golden_s) = (input.to_str().unwrap(), golden.to_str().unwrap());

    let recorded = weir(
        dir.path(),
        &filter_args(input, &["--record", golden_s]),
        None,
    );
    assert!(recorded.status.success(), "{}", stderr(&recorded));
    // The golden file holds exactly what was printed.
    assert_eq!(std::fs::read(&golden).unwrap(), recorded.stdout);
    assert_eq!(stdout_lines(&recorded).len(), 4);

    let same = weir(
        dir.path(),
        &filter_args(input, &["--expect", golden_s]),
        None,
    );
    assert!(same.status.success(), "{}", stderr(&same));
    assert_eq!(
        String::from_utf8_lossy(&same.stdout),
        format!("all 4 outcomes match {golden_s}\n")
    );

    // Another config drops other events: every difference is named by
    // input line and JSON path, and the exit status is 1.
    let mut args = filter_args(input, &["--expect", golden_s]);
    args[6] = "equals=view";
    let differs = weir(dir.path(), &args, None);
    assert_eq!(differs.status.code(), Some(1), "{}", stderr(&differs));
    let report = String::from_utf8_lossy(&differs.stdout);
    assert!(
        report.starts_with(&format!(
            "input line 1 (expected at {golden_s} line 1):\n  outcome: expected \"emit\", got \"drop\"\n"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "input line 2 (expected at {golden_s} line 2):\n  outcome: expected \"drop\", got \"emit\"\n"
        )),
        "{report}"
    );
    assert!(
        report.ends_with(&format!("2 of 4 outcomes differ from {golden_s}\n")),
        "{report}"
    );
}

#[test]
fn plugin_test_expect_names_a_changed_field() {
    let dir = scratch();
    let golden = dir.path().join("want.jsonl");
    std::fs::write(
        &golden,
        r#"{"line":1,"outcome":"emit","outputs":[{"route":null,"key":null,"value":{"event_type":"view","user":"bob"},"op":"upsert","headers":{},"ttl_seconds":null}]}
"#,
    )
    .unwrap();
    let out = weir(
        dir.path(),
        &[
            "plugin",
            "test",
            plugins::FILTER,
            "--config",
            "field=event_type",
            "--config",
            "equals=heartbeat",
            "--expect",
            golden.to_str().unwrap(),
        ],
        Some("{\"event_type\":\"view\",\"user\":\"ann\"}\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("  outputs[0].value.user: expected \"bob\", got \"ann\"\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn plugin_test_takes_the_plugin_from_a_pipeline_config() {
    let dir = scratch();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        r#"[sources.clicks]
type = "kafka"
brokers = "127.0.0.1:19092"
topics = ["clicks"]
group_id = "g"

[plugins.no_heartbeats]
path = "builtin:filter"
config = { field = "event_type", equals = "heartbeat" }

[sinks.archive]
type = "file"
path = "out/archive.jsonl"

[pipelines.main]
source = "clicks"
plugins = ["no_heartbeats"]
default_route = "archive"
"#,
    )
    .unwrap();
    let config_s = config.to_str().unwrap();
    let events = "{\"event_type\":\"heartbeat\"}\n{\"event_type\":\"view\"}\n";
    let out = weir(
        dir.path(),
        &[
            "plugin",
            "test",
            "--from",
            config_s,
            "--plugin",
            "no_heartbeats",
        ],
        Some(events),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines[0]["outcome"], "drop");
    assert_eq!(lines[1]["outcome"], "emit");

    // --config replaces a key of the config's plugin config.
    let out = weir(
        dir.path(),
        &[
            "plugin",
            "test",
            "--from",
            config_s,
            "--plugin",
            "no_heartbeats",
            "--config",
            "equals=view",
        ],
        Some(events),
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines[0]["outcome"], "emit");
    assert_eq!(lines[1]["outcome"], "drop");

    let out = weir(
        dir.path(),
        &["plugin", "test", "--from", config_s, "--plugin", "nope"],
        Some(events),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "{config_s} has no [plugins.nope] (plugins: no_heartbeats)"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plugin_test_feeds_lines_and_bytes_that_are_not_json() {
    let dir = scratch();
    let lines_in = dir.path().join("lines.txt");
    std::fs::write(
        &lines_in,
        b"not json at all\r\n\n{\"event_type\":\"view\"}\n\xff\xfe\n",
    )
    .unwrap();
    let out = weir(
        dir.path(),
        &filter_args(lines_in.to_str().unwrap(), &["--input-format", "lines"]),
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    // Each line reached the plugin as its bytes: the plugin says why it
    // cannot read the first and the last, and passes the JSON one.
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[0]["outcome"], "fail");
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("JSON"),
        "{lines:?}"
    );
    assert_eq!(lines[1]["line"], 3);
    assert_eq!(
        lines[1]["outputs"][0]["value"],
        serde_json::json!({"event_type": "view"})
    );
    assert_eq!(lines[2]["line"], 4);
    assert_eq!(lines[2]["outcome"], "fail");

    // The whole file as one event: JSON spread over lines is one value.
    let bytes_in = dir.path().join("one.json");
    std::fs::write(&bytes_in, "{\n  \"event_type\": \"view\",\n  \"n\": 1\n}\n").unwrap();
    let out = weir(
        dir.path(),
        &filter_args(bytes_in.to_str().unwrap(), &["--input-format", "bytes"]),
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0]["outputs"][0]["value"],
        serde_json::json!({"event_type": "view", "n": 1})
    );

    // Without --input-format, input that is not UTF-8 says what to use.
    let out = weir(
        dir.path(),
        &filter_args(lines_in.to_str().unwrap(), &[]),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("lines.txt is not UTF-8 text"),
        "{}",
        stderr(&out)
    );
}
