//! `weir validate`: broken configs, each with the exact problem reported
//! and where (line:column and key path), several problems reported at
//! once, and the summary of a valid config. The binary itself is driven in
//! `host/tests/validate_cli.rs` (where cargo hands tests its path).

use std::path::{Path, PathBuf};

use weir::config::{Config, ConfigErrors, LoadedConfig};

/// A config file in its own directory, with a (fake) plugin file at
/// `plugins/filter.wasm` beside it.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn fixture(toml: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("plugins")).expect("plugins dir");
    // A component header is enough: validation only checks that the file
    // can be read; compiling it is the engine's job at `weir run`.
    std::fs::write(
        dir.path().join("plugins/filter.wasm"),
        b"\0asm\x0d\x00\x01\x00",
    )
    .expect("plugin file");
    let path = dir.path().join("weir.toml");
    std::fs::write(&path, toml).expect("config file");
    Fixture { _dir: dir, path }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(f: &Fixture) -> Result<LoadedConfig, ConfigErrors> {
    Config::load_with_env(&f.path, &no_env)
}

/// Every reported line without the `<file>:` prefix, as `weir validate`
/// prints them (errors and warnings in file order).
fn problems(path: &Path, errors: &ConfigErrors) -> Vec<String> {
    let prefix = format!("{}:", path.display());
    errors
        .all()
        .iter()
        .map(|d| {
            let line = d.to_string();
            line.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"))
                .to_owned()
        })
        .collect()
}

fn errors_of(f: &Fixture) -> Vec<String> {
    match load(f) {
        Ok(_) => panic!(
            "config was accepted:\n{}",
            std::fs::read_to_string(&f.path).unwrap()
        ),
        Err(e) => problems(&f.path, &e),
    }
}

const VALID: &str = r#"[sources.clicks]
type = "kafka"
brokers = "127.0.0.1:19092"
topics = ["clicks"]

[plugins.only_purchases]
path = "plugins/filter.wasm"
config = { field = "event_type", min = 3, ratio = 0.5, strict = true }

[sinks.archive]
type = "file"
path = "out/archive.jsonl"

[sinks.dlq]
type = "file"
path = "out/dlq.jsonl"

[pipelines.purchases]
source = "clicks"
plugins = ["only_purchases"]
default_route = "archive"
dead_letter = "dlq"
batch = { max_events = 500, max_wait_ms = 50 }
"#;

#[test]
fn valid_config_loads_with_its_summary() {
    let f = fixture(VALID);
    let loaded = load(&f).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.summary(),
        format!(
            "{}: ok — 1 source, 1 plugin, 2 sinks, 1 pipeline",
            f.path.display()
        )
    );
    let p = &loaded.config.pipelines["purchases"];
    assert_eq!(p.batch.max_events, 500);
    assert_eq!(p.dead_letter.as_deref(), Some("dlq"));
    assert_eq!(loaded.dir, f.path.parent().unwrap());
    // Plugin config values reach `init` as strings, non-strings in TOML form.
    assert_eq!(
        loaded.config.plugins["only_purchases"].init_pairs(),
        vec![
            ("field".to_owned(), "event_type".to_owned()),
            ("min".to_owned(), "3".to_owned()),
            ("ratio".to_owned(), "0.5".to_owned()),
            ("strict".to_owned(), "true".to_owned()),
        ]
    );
    // Every key's position is kept for later messages.
    let loc = loaded
        .locations
        .get("pipelines.purchases.dead_letter")
        .unwrap();
    assert_eq!((loc.line, loc.column), (22, 1));
    let loc = loaded
        .locations
        .get("pipelines.purchases.batch.max_events")
        .unwrap();
    assert_eq!((loc.line, loc.column), (23, 11));
}

#[test]
fn validate_report_of_a_valid_config_is_its_summary_line() {
    // `weir validate` runs the plugin's `init`: the real filter, with a
    // config it takes.
    let f = fixture(&VALID.replace(
        "config = { field = \"event_type\", min = 3, ratio = 0.5, strict = true }",
        "config = { field = \"event_type\", equals = \"purchase\" }",
    ));
    std::fs::copy(
        weir_tests::plugins::FILTER,
        f.path.parent().unwrap().join("plugins/filter.wasm"),
    )
    .expect("copy the filter plugin");
    let (report, ok) = weir::cli::validate::report(&f.path);
    assert!(ok, "{report}");
    assert_eq!(
        report,
        format!(
            "{}: ok — 1 source, 1 plugin, 2 sinks, 1 pipeline\n",
            f.path.display()
        )
    );
}

#[test]
fn unknown_key_in_a_sink_is_reported_at_the_key() {
    let f = fixture(&VALID.replace(
        "path = \"out/archive.jsonl\"\n",
        "path = \"out/archive.jsonl\"\nfsnyc = false\n",
    ));
    assert_eq!(
        errors_of(&f),
        ["13:1: sinks.archive: unknown field `fsnyc`, expected one of `path`, `format`, `fsync`"]
    );
}

#[test]
fn wrong_type_is_reported_at_the_value() {
    let f = fixture(&VALID.replace("max_events = 500", "max_events = \"500\""));
    assert_eq!(
        errors_of(&f),
        [
            "23:24: pipelines.purchases.batch.max_events: invalid type: string \"500\", expected usize"
        ]
    );
}

#[test]
fn wrong_type_inside_a_source_is_reported_at_the_value() {
    let f = fixture(&VALID.replace("topics = [\"clicks\"]", "topics = \"clicks\""));
    assert_eq!(
        errors_of(&f),
        ["4:10: sources.clicks.topics: invalid type: string \"clicks\", expected a sequence"]
    );
}

#[test]
fn missing_required_field_is_reported_at_its_table() {
    let f = fixture(&VALID.replace("default_route = \"archive\"\n", ""));
    assert_eq!(
        errors_of(&f),
        [
            "10:1: warning: sinks.archive: sink `archive` is not used by any pipeline (no default_route, routes target or dead_letter names it)",
            "18:1: pipelines.purchases: missing field `default_route`",
        ]
    );
    let f = fixture(&VALID.replace("path = \"out/dlq.jsonl\"\n", ""));
    assert_eq!(errors_of(&f), ["14:1: sinks.dlq: missing field `path`"]);
}

#[test]
fn unknown_sink_type_lists_the_types_this_build_supports() {
    let f = fixture(&VALID.replace(
        "type = \"file\"\npath = \"out/dlq.jsonl\"",
        "type = \"mongo\"",
    ));
    let supported = weir::sink::SinkConfig::REGISTRY
        .types()
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(supported.contains("`file`") && supported.contains("`mongodb`"));
    assert_eq!(
        errors_of(&f),
        [format!(
            "15:8: sinks.dlq.type: unknown sink type `mongo` (this build supports: {supported})"
        )]
    );
}

#[test]
fn missing_sink_type_is_reported_at_its_table() {
    let f = fixture(&VALID.replace("type = \"file\"\npath = \"out/dlq.jsonl\"", "path = \"x\""));
    let errors = errors_of(&f);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("14:1: sinks.dlq: missing field `type` (this build supports: "),
        "{errors:?}"
    );
}

#[test]
fn pipeline_naming_a_missing_source_plugin_or_sink_is_reported_at_the_name() {
    let f = fixture(
        &VALID
            .replace("source = \"clicks\"", "source = \"clics\"")
            .replace(
                "plugins = [\"only_purchases\"]",
                "plugins = [\"only_purchases\", \"enrich\"]",
            )
            .replace("default_route = \"archive\"", "default_route = \"archiv\"")
            .replace(
                "dead_letter = \"dlq\"",
                "dead_letter = \"dlq\"\nroutes = { big = \"mongo\" }",
            ),
    );
    assert_eq!(
        errors_of(&f),
        [
            // What the typos left unused is reported too, as warnings.
            "1:1: warning: sources.clicks: source `clicks` is not used by any pipeline",
            "10:1: warning: sinks.archive: sink `archive` is not used by any pipeline (no default_route, routes target or dead_letter names it)",
            "19:10: pipelines.purchases.source: no source named `clics` (defined sources: `clicks`)",
            "20:30: pipelines.purchases.plugins[1]: no plugin named `enrich` (defined plugins: `only_purchases`)",
            "21:17: pipelines.purchases.default_route: no sink named `archiv` (defined sinks: `archive`, `dlq`)",
            "23:18: pipelines.purchases.routes.big: no sink named `mongo` (defined sinks: `archive`, `dlq`)",
        ]
    );
}

#[test]
fn unreadable_plugin_file_names_the_path_and_the_io_error() {
    let f = fixture(&VALID.replace("plugins/filter.wasm", "plugins/missing.wasm"));
    let resolved = f.path.parent().unwrap().join("plugins/missing.wasm");
    assert_eq!(
        errors_of(&f),
        [format!(
            "7:8: plugins.only_purchases.path: cannot read plugin file {}: No such file or directory (os error 2)",
            resolved.display()
        )]
    );
    let f = fixture(&VALID.replace("plugins/filter.wasm", "plugins"));
    let resolved = f.path.parent().unwrap().join("plugins");
    assert_eq!(
        errors_of(&f),
        [format!(
            "7:8: plugins.only_purchases.path: cannot read plugin file {}: is a directory",
            resolved.display()
        )]
    );
}

#[test]
fn unset_env_var_is_reported_at_the_variable() {
    let f = fixture(&VALID.replace("127.0.0.1:19092", "${KAFKA_HOST}:${KAFKA_PORT}"));
    let errors = match Config::load_with_env(&f.path, &|name| {
        (name == "KAFKA_HOST").then(|| "10.0.0.7".to_owned())
    }) {
        Ok(_) => panic!("accepted with KAFKA_PORT unset"),
        Err(e) => problems(&f.path, &e),
    };
    assert_eq!(
        errors,
        ["3:26: sources.clicks.brokers: environment variable `KAFKA_PORT` is not set"]
    );
}

#[test]
fn env_vars_are_substituted_in_strings_and_double_dollar_escapes() {
    let f = fixture(
        &VALID
            .replace("127.0.0.1:19092", "${KAFKA_HOST}:19092")
            .replace(
                "field = \"event_type\"",
                "field = \"$${not_a_var}\", who = \"${USER_NAME}\"",
            ),
    );
    let loaded = Config::load_with_env(&f.path, &|name| match name {
        "KAFKA_HOST" => Some("10.0.0.7".to_owned()),
        "USER_NAME" => Some("ops".to_owned()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let pairs = loaded.config.plugins["only_purchases"].init_pairs();
    assert!(
        pairs.contains(&("field".to_owned(), "${not_a_var}".to_owned())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("who".to_owned(), "ops".to_owned())),
        "{pairs:?}"
    );
    let weir::source::SourceConfig::Kafka(kafka) = &loaded.config.sources["clicks"] else {
        panic!("not a kafka source");
    };
    assert_eq!(kafka.brokers.as_deref(), Some("10.0.0.7:19092"));
}

#[test]
fn zero_sizes_deadlines_and_memory_caps_are_errors() {
    let f = fixture(
        &VALID.replace("max_events = 500", "max_events = 0").replace(
            "strict = true }",
            "strict = true }\nlimits = { memory_mib = 0, deadline_ms = 0 }",
        ),
    );
    assert_eq!(
        errors_of(&f),
        [
            "9:25: plugins.only_purchases.limits.memory_mib: must be at least 1",
            "9:42: plugins.only_purchases.limits.deadline_ms: must be at least 1",
            "24:24: pipelines.purchases.batch.max_events: must be at least 1",
        ]
    );
}

#[test]
fn non_scalar_plugin_config_values_are_errors() {
    let f = fixture(&VALID.replace("strict = true", "strict = true, fields = [{ a = 1 }]"));
    assert_eq!(
        errors_of(&f),
        [
            "8:80: plugins.only_purchases.config.fields: plugin config values must be strings, numbers, booleans, date-times, tables of them (dotted keys) or lists of them (they are passed to `init` as strings), found array of tables or arrays"
        ]
    );
}

#[test]
fn unused_entries_and_dead_letter_as_default_route_are_warnings() {
    // No pipeline runs a plugin, so no output can be routed to `dlq` by
    // name: it is unused, like the plugin.
    let f = fixture(
        &VALID
            .replace("plugins = [\"only_purchases\"]\n", "")
            .replace("dead_letter = \"dlq\"", "dead_letter = \"archive\""),
    );
    let loaded = load(&f).unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("{}:", f.path.display());
    let warnings: Vec<String> = loaded
        .warnings
        .iter()
        .map(|w| w.to_string().strip_prefix(&prefix).unwrap().to_owned())
        .collect();
    assert_eq!(
        warnings,
        [
            "6:1: warning: plugins.only_purchases: plugin `only_purchases` is not used by any pipeline",
            "14:1: warning: sinks.dlq: sink `dlq` is not used by any pipeline (no default_route, routes target or dead_letter names it)",
            "21:15: warning: pipelines.purchases.dead_letter: dead-letter sink `archive` is also the default route: dead letters and normal outputs will be mixed",
        ]
    );
    assert!(
        loaded.summary().ends_with("1 pipeline (3 warnings)"),
        "{}",
        loaded.summary()
    );
}

/// A plugin reaches only the sinks its pipeline names, so a sink no
/// pipeline names is unused even when pipelines run plugins.
#[test]
fn a_sink_no_pipeline_names_is_reported_unused_even_when_plugins_run() {
    let f = fixture(&VALID.replace("dead_letter = \"dlq\"\n", ""));
    let loaded = load(&f).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        warnings,
        [
            "sink `dlq` is not used by any pipeline (no default_route, routes target or dead_letter names it)"
        ]
    );
}

#[test]
fn a_config_without_pipelines_is_valid_with_a_warning() {
    let f = fixture("[host]\nshutdown_timeout_ms = 5000\n");
    let loaded = load(&f).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [format!(
            "{}:1:1: warning: no pipelines are defined: `weir run` has nothing to do",
            f.path.display()
        )]
    );
    assert_eq!(loaded.config.host.shutdown_timeout_ms, 5000);
}

#[test]
fn several_problems_in_one_file_are_all_reported_at_once() {
    let f = fixture(
        r#"[host]
shutdown_timeout_ms = "soon"
log_fromat = "json"

[sources.clicks]
type = "kafka"
brokers = "${BROKERS}"
topics = ["clicks"]
grup = "g"

[plugins.only_purchases]
path = "plugins/nope.wasm"
limits = { memory_mib = "64" }

[sinks.archive]
type = "file"
path = "out/archive.jsonl"
fsnyc = false

[sinks.mongo]
type = "mongo"

[pipelines.purchases]
source = "clicks"
plugins = ["only_purchases", "enrich"]
default_route = "archive"
dead_letter = "dlq"

[pipelines.other]
plugins = ["only_purchases"]
default_route = "archive"

[sink.typo]
path = "x"
"#,
    );
    let dir = f.path.parent().unwrap();
    let errors = errors_of(&f);
    let sink_types = weir::sink::SinkConfig::REGISTRY
        .types()
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let expected = [
        "2:23: host.shutdown_timeout_ms: invalid type: string \"soon\", expected u64".to_owned(),
        // The list of `[host]` keys grows; its start is enough here.
        "3:1: host: unknown field `log_fromat`, expected one of `cache_dir`, `shutdown_timeout_ms`, `stall_after_ms`, `log_format`, ...".to_owned(),
        "7:12: sources.clicks.brokers: environment variable `BROKERS` is not set".to_owned(),
        "9:1: sources.clicks: unknown field `grup`, expected one of `brokers`, `topics`, `group_id`, `start`, `options`, `embedded`, `stop_at_end`, `stuck_after_ms`".to_owned(),
        format!(
            "12:8: plugins.only_purchases.path: cannot read plugin file {}: No such file or directory (os error 2)",
            dir.join("plugins/nope.wasm").display()
        ),
        "13:25: plugins.only_purchases.limits.memory_mib: invalid type: string \"64\", expected u32".to_owned(),
        "18:1: sinks.archive: unknown field `fsnyc`, expected one of `path`, `format`, `fsync`".to_owned(),
        "20:1: warning: sinks.mongo: sink `mongo` is not used by any pipeline (no default_route, routes target or dead_letter names it)".to_owned(),
        format!("21:8: sinks.mongo.type: unknown sink type `mongo` (this build supports: {sink_types})"),
        "25:30: pipelines.purchases.plugins[1]: no plugin named `enrich` (defined plugins: `only_purchases`)".to_owned(),
        "27:15: pipelines.purchases.dead_letter: no sink named `dlq` (defined sinks: `archive`, `mongo`)".to_owned(),
        "29:1: pipelines.other: missing field `source`".to_owned(),
        "33:2: unknown field `sink`, expected one of `host`, `sources`, `plugins`, `sinks`, `pipelines`, `lookups`".to_owned(),
    ];
    assert_lines(&errors, &expected);
}

/// `actual == expected`, except that an expected line ending in `...`
/// only has to start with what comes before it.
fn assert_lines(actual: &[String], expected: &[String]) {
    let matches = actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(a, e)| match e.strip_suffix("...") {
                Some(prefix) => a.starts_with(prefix),
                None => a == e,
            });
    assert!(
        matches,
        "reported:\n{}\nexpected:\n{}",
        actual.join("\n"),
        expected.join("\n")
    );
}

#[test]
fn toml_syntax_errors_are_reported_at_their_position() {
    let f = fixture(&VALID.replace("default_route = \"archive\"", "default_route = archive"));
    let errors = errors_of(&f);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("21:17: invalid TOML: "), "{errors:?}");
}

#[test]
fn an_unreadable_config_file_is_one_error_without_a_position() {
    let path = Path::new("/nonexistent/weir.toml");
    let e = Config::load(path).expect_err("missing file accepted");
    assert_eq!(
        e.to_string(),
        "/nonexistent/weir.toml: cannot read config file: No such file or directory (os error 2)"
    );
}

#[test]
fn every_example_config_is_valid() {
    // The examples name their plugins under `${WEIR_PLUGIN_DIR}`: the
    // directory the test build put them in. Other variables (service
    // addresses, secrets) get a stand-in value.
    let plugin_dir = Path::new(weir_tests::plugins::FILTER)
        .parent()
        .expect("plugin dir")
        .to_string_lossy()
        .into_owned();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for example in std::fs::read_dir(&examples).expect("examples/") {
        let example = example.expect("examples/ entry").path();
        let Ok(files) = std::fs::read_dir(&example) else {
            continue;
        };
        for file in files {
            let path = file.expect("example file").path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let env = |name: &str| {
                Some(if name == "WEIR_PLUGIN_DIR" {
                    plugin_dir.clone()
                } else {
                    format!("{name}-stand-in")
                })
            };
            if let Err(e) = Config::load_with_env(&path, &env) {
                panic!("{}:\n{e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 1,
        "no example config found under {}",
        examples.display()
    );
}

#[test]
fn kafka_options_are_checked_offline_the_way_librdkafka_takes_them() {
    let f = fixture(
        r#"[sources.clicks]
type = "kafka"
brokers = "127.0.0.1:19092"
topics = ["clicks"]
options = { "security.protocol" = "SASL_SSL", "sasl.mechanism" = "SCRAM-SHA-512",
            "sasl.username" = "weir", "sasl.password" = "secret",
            "ssl.ca.location" = "certs/missing-ca.pem" }

[sinks.archive]
type = "kafka"
brokers = "127.0.0.1:19092"
topic = "archive"
options = { "compression.type" = "brotli" }

[sinks.dlq]
type = "kafka"
brokers = "127.0.0.1:19092"
topic = "dlq"
acks = "2"

[sinks.kerberos]
type = "kafka"
brokers = "127.0.0.1:19092"
topic = "k"
options = { "security.protocol" = "SASL_PLAINTEXT", "sasl.mechanism" = "GSSAPI" }

[sinks.fine]
type = "kafka"
brokers = "127.0.0.1:19092"
topic = "fine"
options = { "security.protocol" = "SASL_SSL", "sasl.mechanism" = "PLAIN", "compression.type" = "zstd",
            "sasl.username" = "weir", "sasl.password" = "secret" }

[pipelines.p]
source = "clicks"
default_route = "archive"
routes = { k = "kerberos", f = "fine" }
dead_letter = "dlq"
"#,
    );
    let dir = f.path.parent().unwrap().display().to_string();
    let errors = errors_of(&f);
    assert_eq!(
        errors,
        vec![
            format!(
                "7:33: sources.clicks.options.\"ssl.ca.location\": cannot read {dir}/certs/missing-ca.pem: No such file or directory (os error 2)"
            ),
            "13:34: sinks.archive.options.\"compression.type\": Invalid value \"brotli\" for configuration property \"compression.codec\"".to_owned(),
            "19:8: sinks.dlq.acks: acks must be \"all\", \"1\" or \"0\", not \"2\"".to_owned(),
            "25:72: sinks.kerberos.options.\"sasl.mechanism\": No provider for SASL mechanism GSSAPI: recompile librdkafka with libsasl2 or openssl support. Current build options: PLAIN SASL_SCRAM OAUTHBEARER (this weir supports SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; GSSAPI/Kerberos is not built in)".to_owned(),
        ],
        "{errors:#?}"
    );
}

/// `VALID` with one more sink (the archive's route stays the default).
fn with_sink(table: &str) -> String {
    VALID.replace("[sinks.dlq]", &format!("{table}\n[sinks.dlq]"))
}

#[test]
fn postgres_and_clickhouse_sink_mistakes_are_reported_offline_where_they_are() {
    // Only the errors: the extra sink is also reported as unused (a warning).
    let errors_of = |f: &Fixture| -> Vec<String> {
        errors_of(f)
            .into_iter()
            .filter(|l| !l.contains(": warning: "))
            .collect()
    };
    let f = fixture(&with_sink(
        "[sinks.pg]\ntype = \"postgres\"\nurl = \"postgresql://127.0.0.1/db\"\ntable = \"t\"\nkey = [\"id\"]\nbatch = 5\n[sinks.pg.mapping]\nid = \"body.id\"\n",
    ));
    // Each key at fault is reported where it is; checking the rest without
    // them (as the loader does) then finds the mapping empty.
    assert_eq!(
        errors_of(&f),
        [
            "14:1: sinks.pg: `mapping` names no column",
            "19:1: sinks.pg: unknown field `batch`, expected one of `url`, `user`, `password`, `schema`, `table`, `key`, `mapping`, `null_values`, `max_rows`, `connect_timeout_ms`, `tls`",
            "21:6: sinks.pg.mapping.id: `body.id`: a field path starts with `value`, `key` or `header.NAME`",
        ]
    );

    let f = fixture(&with_sink(
        "[sinks.pg]\ntype = \"postgres\"\nurl = \"postgresql://127.0.0.1/db\"\ntable = \"t\"\nkey = [\"id\"]\n[sinks.pg.mapping]\nname = \"value.name\"\n",
    ));
    let errors = errors_of(&f);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with("sinks.pg: key column `id` is not in `mapping`"),
        "{errors:?}"
    );

    let f = fixture(&with_sink(
        "[sinks.ch]\ntype = \"clickhouse\"\nurl = \"127.0.0.1:8123\"\ntable = \"t\"\n[sinks.ch.mapping]\nid = \"value.id\"\n",
    ));
    let errors = errors_of(&f);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with(
            "sinks.ch: `url` = `127.0.0.1:8123`: expected `http://host:port/` or `https://host:port/`"
        ),
        "{errors:?}"
    );
}

#[test]
fn dead_letter_sinks_are_checked_as_weir_run_uses_them() {
    let kafka_without_topic = VALID.replace(
        "[sinks.dlq]\ntype = \"file\"\npath = \"out/dlq.jsonl\"",
        "[sinks.dlq]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:19092\"",
    );
    assert_eq!(
        errors_of(&fixture(&kafka_without_topic)),
        [
            "22:15: pipelines.purchases.dead_letter: sink `dlq` cannot be a dead-letter sink: \
          a `kafka` sink without `topic` writes each output to the topic named by its route, \
          and dead letters have no route; set `topic`"
        ]
    );
    let with_topic = kafka_without_topic.replace(
        "brokers = \"127.0.0.1:19092\"\n\n[pipelines",
        "brokers = \"127.0.0.1:19092\"\ntopic = \"dlq\"\n\n[pipelines",
    );
    load(&fixture(&with_topic)).unwrap_or_else(|e| panic!("{e}"));

    let mongo = VALID.replace(
        "[sinks.dlq]\ntype = \"file\"\npath = \"out/dlq.jsonl\"",
        "[sinks.dlq]\ntype = \"mongodb\"\nuri = \"mongodb://127.0.0.1:17017/\"\ndatabase = \"d\"\ncollection = \"dead\"",
    );
    let errors = errors_of(&fixture(&mongo));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("sink `dlq` cannot be a dead-letter sink: (`mongodb`)")
            && errors[0].contains("need not be JSON"),
        "{errors:?}"
    );
}

// Settings `weir run` used to refuse only when it connected (or when its
// admin server started) are refused by `weir validate` first, where they
// are. `weir_run_refuses_what_validate_refuses` runs the same configs.

/// The errors of `toml` (the warnings about the extra sinks left out).
fn only_errors(f: &Fixture) -> Vec<String> {
    errors_of(f)
        .into_iter()
        .filter(|l| !l.contains(": warning: "))
        .collect()
}

const REDIS_MISTAKES: &str = r#"[sinks.cache]
type = "redis"
url = "redis://127.0.0.1:16379/"
[[sinks.cache.commands]]
cmd = "SET"
key = "session:{value.session_id"

[sinks.sets]
type = "redis"
url = "redis://127.0.0.1:16379/"
[[sinks.sets.commands]]
cmd = "SET"
key = "k"
[[sinks.sets.commands]]
cmd = "SADD"
key = "user:{value.user_id}"
ttl_seconds = 5

[sinks.secure]
type = "redis"
url = "redis://127.0.0.1:16379/"
tls = { ca_file = "certs/ca.pem" }
[[sinks.secure.commands]]
cmd = "SET"
key = "k"
"#;

#[test]
fn redis_templates_command_rules_and_tls_are_checked_offline() {
    let f = fixture(&with_sink(REDIS_MISTAKES));
    assert_eq!(
        only_errors(&f),
        [
            "19:7: sinks.cache.commands[0].key: template `session:{value.session_id`: unclosed `{` at byte 8",
            "27:1: sinks.sets.commands[1]: SADD: `ttl_seconds` does not apply to SADD (it takes: members)",
            "35:7: sinks.secure.tls: `tls` is set, so `url` must start with rediss://",
        ]
    );
}

const MONGODB_MISTAKES: &str = r#"[sinks.counts]
type = "mongodb"
uri = "mongodb://127.0.0.1:17017/"
database = "d"
collection = "c"
write_model = "replace"
inc = { n = 1 }

[sinks.nowhere]
type = "mongodb"
uri = "mongodb//127.0.0.1:17017/"
database = "d"
collection = "c"
"#;

#[test]
fn mongodb_write_model_rules_and_uri_are_checked_offline() {
    let f = fixture(&with_sink(MONGODB_MISTAKES));
    assert_eq!(
        only_errors(&f),
        [
            "20:7: sinks.counts.inc: `inc` only applies to `write_model = \"update\"`",
            "24:7: sinks.nowhere.uri: invalid uri: An invalid argument was provided: connection string contains no scheme",
        ]
    );
}

/// `VALID` with its plugin replaced by the `refuse-init` fixture.
fn refusing_plugin() -> Fixture {
    let f = fixture(VALID);
    let dir = f.path.parent().expect("config dir");
    std::fs::copy(
        weir_tests::plugins::REFUSE_INIT,
        dir.join("plugins/filter.wasm"),
    )
    .expect("copy the refuse-init fixture");
    f
}

#[test]
fn validate_runs_each_plugins_init_and_reports_a_refusal_at_its_config() {
    let f = refusing_plugin();
    let (report, ok) = weir::cli::validate::report(&f.path);
    assert!(!ok, "{report}");
    let p = f.path.display();
    assert_eq!(
        report,
        format!(
            "{p}:8:1: plugins.only_purchases.config: plugin `only_purchases`: init refused its config: refusing config: field, min, ratio, strict\n\
             {p}: 1 error\n"
        )
    );
}

#[test]
fn validate_reports_a_plugin_file_that_is_not_a_component_at_its_path() {
    // The fixture's plugin is a bare component header: readable, but no
    // component.
    let f = fixture(VALID);
    let (report, ok) = weir::cli::validate::report(&f.path);
    assert!(!ok, "{report}");
    let p = f.path.display();
    assert_eq!(
        report,
        format!(
            "{p}:7:1: plugins.only_purchases.path: plugin `only_purchases`: exports no weir:transform plugin interface (is it a Weir plugin? build it with weir-sdk or against wit/); this host supports weir:transform@0.1.0 (world `transform`) and weir:transform@0.2.0 (worlds `transform` and `typed`)\n\
             {p}: 1 error\n"
        )
    );
}

const SCYLLA_TLS: &str = r#"[sinks.readings]
type = "scylla"
contact_points = ["127.0.0.1:9042"]
keyspace = "k"
table = "t"
tls = { ca_file = "certs/missing-ca.pem" }
[sinks.readings.mapping]
id = "value.id"
"#;

#[test]
fn connector_tls_is_checked_offline_as_this_build_supports_it() {
    let f = fixture(&with_sink(SCYLLA_TLS));
    let dir = f.path.parent().unwrap().display().to_string();
    assert_eq!(
        only_errors(&f),
        [format!(
            "19:7: sinks.readings.tls: tls.ca_file {dir}/certs/missing-ca.pem: I/O error: No such file or directory (os error 2)"
        )]
    );
}

const ADMIN_OFF_LOOPBACK: &str = "[host.admin]\nlisten = \"0.0.0.0:9464\"\ntoken = \"\"\n\n";

#[test]
fn admin_api_off_loopback_without_a_token_is_refused() {
    let f = fixture(&format!("{ADMIN_OFF_LOOPBACK}{VALID}"));
    assert_eq!(
        errors_of(&f),
        [
            "2:10: host.admin.listen: admin API: refusing to listen on 0.0.0.0:9464 (not a loopback address) without a token; \
             set [host.admin] token (e.g. \"${WEIR_ADMIN_TOKEN}\") or listen on 127.0.0.1"
        ]
    );
    let with_token =
        format!("{ADMIN_OFF_LOOPBACK}{VALID}").replace("token = \"\"", "token = \"s3cret\"");
    load(&fixture(&with_token)).unwrap_or_else(|e| panic!("{e}"));
}

/// `VALID` with a second pipeline reading its source, and `group_id` set.
fn shared_group() -> String {
    format!(
        "{}\n[pipelines.audit]\nsource = \"clicks\"\ndefault_route = \"archive\"\n",
        VALID.replace(
            "topics = [\"clicks\"]\n",
            "topics = [\"clicks\"]\ngroup_id = \"clicks-readers\"\n"
        )
    )
}

#[test]
fn pipelines_sharing_a_source_with_an_explicit_group_are_refused() {
    let f = fixture(&shared_group());
    assert_eq!(
        errors_of(&f),
        [
            "5:12: sources.clicks.group_id: pipelines `audit`, `purchases` all read source `clicks` with group_id `clicks-readers`: \
             they would share one group and each see only part of the partitions; \
             remove `group_id` (each pipeline then gets its own group) or give each pipeline its own source"
        ]
    );
    // Without `group_id` each pipeline has a group of its own.
    let own_groups = shared_group().replace("group_id = \"clicks-readers\"\n", "");
    load(&fixture(&own_groups)).unwrap_or_else(|e| panic!("{e}"));
}

/// `weir run` refuses each of the configs above, saying the same thing, and
/// exits before it connects to anything.
#[test]
fn weir_run_refuses_what_validate_refuses() {
    let plugin = refusing_plugin();
    let cases: Vec<(Fixture, &str)> = vec![
        (
            fixture(&with_sink(REDIS_MISTAKES)),
            "sinks.cache.commands[0].key: template `session:{value.session_id`: unclosed `{` at byte 8",
        ),
        (
            fixture(&with_sink(MONGODB_MISTAKES)),
            "sinks.counts.inc: `inc` only applies to `write_model = \"update\"`",
        ),
        (
            fixture(&with_sink(SCYLLA_TLS)),
            "sinks.readings.tls: tls.ca_file ",
        ),
        (
            fixture(&format!("{ADMIN_OFF_LOOPBACK}{VALID}")),
            "host.admin.listen: admin API: refusing to listen on 0.0.0.0:9464",
        ),
        (
            fixture(&shared_group()),
            "sources.clicks.group_id: pipelines `audit`, `purchases` all read source `clicks`",
        ),
        (plugin, "plugin `only_purchases` ("),
    ];
    for (f, expected) in &cases {
        let out = std::process::Command::new(weir_tests::weir_bin())
            .arg("run")
            .arg(&f.path)
            .output()
            .expect("run weir");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", f.path.display());
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
    }
    // The plugin's refusal itself, as `weir run` words it.
    let stderr = String::from_utf8_lossy(
        &std::process::Command::new(weir_tests::weir_bin())
            .arg("run")
            .arg(&cases[5].0.path)
            .output()
            .expect("run weir")
            .stderr,
    )
    .into_owned();
    assert!(
        stderr.contains("init refused its config: refusing config: field, min, ratio, strict"),
        "{stderr}"
    );
}
