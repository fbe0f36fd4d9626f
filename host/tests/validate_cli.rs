//! The real `weir validate` binary: what it prints for a broken and a valid
//! config, and its exit status. (The broken configs one by one are in
//! `tests/tests/all/validate.rs`.)

use std::path::Path;
use std::process::{Command, Output};

fn weir_validate(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("validate")
        .arg(config)
        .env_remove("WEIR_TEST_UNSET_PASSWORD")
        .output()
        .expect("run the weir binary")
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

#[test]
fn broken_config_prints_every_problem_gcc_style_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        dir.path(),
        "weir.toml",
        r#"[sources.clicks]
type = "kafka"
brokers = "127.0.0.1:19092"
topics = ["clicks"]

[plugins.only_purchases]
path = "plugins/missing.wasm"

[sinks.out]
type = "file"
path = "${WEIR_TEST_UNSET_PASSWORD}"
fsnyc = true

[pipelines.main]
source = "clicks"
plugins = ["only_purchases", "enrich"]
default_route = "out"
batch = { max_events = "many" }
"#,
    );
    let out = weir_validate(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let c = config.display();
    let plugin = dir.path().join("plugins/missing.wasm");
    let expected = format!(
        "{c}:7:8: plugins.only_purchases.path: cannot read plugin file {}: No such file or directory (os error 2)\n\
         {c}:11:9: sinks.out.path: environment variable `WEIR_TEST_UNSET_PASSWORD` is not set\n\
         {c}:12:1: sinks.out: unknown field `fsnyc`, expected one of `path`, `format`, `fsync`\n\
         {c}:16:30: pipelines.main.plugins[1]: no plugin named `enrich` (defined plugins: `only_purchases`)\n\
         {c}:18:24: pipelines.main.batch.max_events: invalid type: string \"many\", expected usize\n\
         {c}: 5 errors\n",
        plugin.display()
    );
    assert_eq!(
        stdout,
        expected,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn valid_config_prints_a_summary_and_exits_0() {
    // No plugin: `weir validate` runs each plugin's `init`, which needs a
    // real component (`tests/tests/validate.rs` has those).
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write(
        dir.path(),
        "weir.toml",
        r#"[sources.clicks]
type = "kafka"
brokers = "127.0.0.1:19092"
topics = ["clicks"]

[sinks.out]
type = "file"
path = "out.jsonl"

[sources.old_clicks]
type = "kafka"
brokers = "127.0.0.1:19092"
topics = ["old"]

[pipelines.main]
source = "clicks"
default_route = "out"
"#,
    );
    let out = weir_validate(&config);
    let c = config.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{c}:10:1: warning: sources.old_clicks: source `old_clicks` is not used by any pipeline\n\
             {c}: ok — 2 sources, 0 plugins, 1 sink, 1 pipeline (1 warning)\n"
        ),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn missing_config_file_is_reported_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("nope.toml");
    let out = weir_validate(&config);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{0}: cannot read config file: No such file or directory (os error 2)\n{0}: 1 error\n",
            config.display()
        )
    );
    assert_eq!(out.status.code(), Some(1));
}
