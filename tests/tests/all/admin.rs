//! The admin API over HTTP: probes, Prometheus metrics (parsed here, and
//! compared with what the test sent through the real Kafka-compatible
//! broker, `scripts/services start kafka`), the plugins view, reloads and
//! their failures, and the bearer token off loopback.

use weir_tests::kafka;
use weir_tests::reload;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir::admin::{AdminConfig, AdminError, AdminServer, AdminState};
use weir::config::{Config, PluginGrants, PluginLimits};
use weir::engine::{Engine, EngineOptions, PluginSpec};
use weir::plugin::{PluginOptions, PluginRegistry, WatchMode};
use weir::runtime::Runtime;
use weir_tests::plugins::{REFUSE_INIT, STAMP_A, STAMP_B};

use kafka::{brokers, create_topic, group_options_toml, produce_values, unique};
use reload::{Answer, http};

// ---- a Prometheus text-format parser (exposition format 0.0.4) ----

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Samples and `# TYPE` declarations of an exposition.
#[derive(Debug, Default)]
struct Exposition {
    samples: Vec<Sample>,
    types: HashMap<String, String>,
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

/// Parse the text format: `# HELP`/`# TYPE` comments, and samples
/// `name{label="value",...} value [timestamp]` with `\\`, `\"` and `\n`
/// escapes in label values.
fn parse_exposition(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.split_whitespace();
            if parts.next() == Some("TYPE") {
                let name = parts.next().expect("TYPE name").to_owned();
                let kind = parts.next().expect("TYPE kind").to_owned();
                out.types.insert(name, kind);
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
            "bad metric name {name:?}"
        );
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let consumed;
            loop {
                while chars
                    .peek()
                    .is_some_and(|(_, c)| *c == ',' || c.is_whitespace())
                {
                    chars.next();
                }
                let Some(&(start, c)) = chars.peek() else {
                    panic!("unterminated labels: {line}");
                };
                if c == '}' {
                    consumed = start + 1;
                    break;
                }
                let mut key = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "label value quote: {line}"
                );
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(other) => value.push(other),
                            None => panic!("dangling escape: {line}"),
                        },
                        Some('"') => break,
                        Some(other) => value.push(other),
                        None => panic!("unterminated label value: {line}"),
                    }
                }
                labels.insert(key.trim().to_owned(), value);
            }
            rest = &after[consumed..];
        }
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().unwrap_or_else(|| panic!("no value: {line}")));
        out.samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

impl Exposition {
    /// The value of the sample `name` whose labels include `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(
            matching.len() <= 1,
            "{name}{labels:?} is ambiguous: {matching:?}"
        );
        matching.first().map(|s| s.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }
}

#[test]
fn the_parser_reads_the_text_format() {
    let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"uo\\\\te\\n\"} 3\n\
                b_bucket{le=\"+Inf\"} 7 1700000000000\nc 1.5e3\n";
    let e = parse_exposition(text);
    assert_eq!(e.types["a_total"], "counter");
    assert_eq!(e.samples[0].labels["y"], "q\"uo\\te\n");
    assert_eq!(e.value("a_total", &[("x", "1")]), 3.0);
    assert_eq!(e.value("b_bucket", &[("le", "+Inf")]), 7.0);
    assert_eq!(e.value("c", &[]), 1500.0);
}

// ---- helpers ----

fn plugin_spec(path: &str) -> PluginSpec {
    PluginSpec {
        name: "stamp".into(),
        path: Path::new(path).to_path_buf(),
        config: Vec::new(),
        limits: PluginLimits::default(),
        grants: PluginGrants::default(),
    }
}

/// A registry with `stamp` (stamp-a) and one stage of pipeline `api`.
fn registry(
    dir: &Path,
) -> (
    Arc<PluginRegistry>,
    String,
    weir::plugin::ReloadableTransform,
) {
    let engine = Arc::new(
        Engine::new(EngineOptions {
            cache_dir: Some(dir.join("cache")),
        })
        .expect("engine"),
    );
    let mut registry = PluginRegistry::new(engine, dir);
    let v = registry
        .register(
            plugin_spec(STAMP_A),
            PluginOptions {
                version_header: None,
                watch: WatchMode::Off,
            },
        )
        .expect("stamp-a");
    let stage = registry.transform("stamp", "api", 0).expect("stage");
    (Arc::new(registry), v.hash().to_owned(), stage)
}

fn admin_config(listen: &str, token: Option<&str>) -> AdminConfig {
    AdminConfig {
        enabled: true,
        listen: listen.parse().expect("address"),
        token: token.map(str::to_owned),
        ..AdminConfig::default()
    }
}

/// The token the reload tests configure.
const TOKEN: &str = "s3cret-token";

/// Bind and serve; returns the bound address.
async fn serve(config: &AdminConfig, state: AdminState, stop: &CancellationToken) -> SocketAddr {
    let server = AdminServer::bind(config, state).await.expect("bind");
    let addr = server.local_addr();
    tokio::spawn(server.serve(stop.clone()));
    addr
}

/// 127.0.0.1 with the port of `addr` (which may be bound to 0.0.0.0).
fn via_loopback(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

async fn post_reload(addr: SocketAddr, name: &str, body: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    http(
        addr,
        "POST",
        &format!("/plugins/{name}/reload"),
        &headers,
        body,
    )
    .await
}

fn runtime_config(dir: &Path, topic: &str, pipeline: &str, stop_at_end: bool) -> Config {
    let text = format!(
        r#"
[host]
cache_dir = {cache:?}

[host.admin]
listen = "127.0.0.1:0"

[sources.in]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
stop_at_end = {stop_at_end}
options = {options}

[plugins.stamp]
path = {plugin:?}
version_header = "weir-plugin-version"
watch = "off"

[sinks.out]
type = "file"
path = "out.jsonl"
fsync = false

[pipelines.{pipeline}]
source = "in"
plugins = ["stamp"]
default_route = "out"
batch = {{ max_events = 64, max_wait_ms = 50 }}
"#,
        cache = dir.join("cache").display().to_string(),
        brokers = brokers(),
        group = unique("g-admin"),
        options = group_options_toml(),
        plugin = STAMP_A,
    );
    toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

// ---- tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counters_match_what_was_sent() {
    let _ = weir::metrics::prometheus();
    let brokers = brokers();
    let topic = unique("admin-metrics");
    create_topic(&brokers, &topic, 3).await;
    const SENT: usize = 500;
    let values: Vec<String> = (0..SENT).map(|i| format!("{{\"id\":{i}}}")).collect();
    produce_values(&brokers, &topic, 3, &values).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = unique("metrics").replace('-', "_");
    let config = runtime_config(dir.path(), &topic, &pipeline, true);
    let runtime = Runtime::build(&config, dir.path()).await.expect("runtime");
    let stop = CancellationToken::new();
    let addr = serve(&config.host.admin, runtime.admin_state(), &stop).await;
    runtime
        .run(CancellationToken::new())
        .await
        .expect("run to the end of the topic");

    let answer = http(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let m = parse_exposition(&answer.body);
    let sent = SENT as f64;
    let p = [("pipeline", pipeline.as_str())];
    let pp = [("pipeline", pipeline.as_str()), ("plugin", "stamp")];
    assert_eq!(m.types["weir_pipeline_events_in_total"], "counter");
    assert_eq!(m.value("weir_pipeline_events_in_total", &p), sent);
    assert_eq!(
        m.value(
            "weir_sink_outputs_total",
            &[("pipeline", pipeline.as_str()), ("sink", "out")]
        ),
        sent
    );
    // Present at zero from start-up, so `value` (not `get`).
    assert_eq!(m.value("weir_pipeline_events_dropped_total", &p), 0.0);
    for reason in ["plugin_failed", "unreadable", "unroutable", "sink_rejected"] {
        assert_eq!(
            m.value(
                "weir_pipeline_dead_letters_total",
                &[("pipeline", pipeline.as_str()), ("reason", reason)]
            ),
            0.0
        );
    }
    assert_eq!(m.value("weir_plugin_events_in_total", &pp), sent);
    assert_eq!(m.value("weir_plugin_outputs_total", &pp), sent);
    assert_eq!(m.value("weir_plugin_events_failed_total", &pp), 0.0);
    // Batch sizes: the sizes add up to what was sent; one plugin call per batch.
    assert_eq!(m.types["weir_pipeline_batch_events"], "histogram");
    assert_eq!(m.value("weir_pipeline_batch_events_sum", &p), sent);
    let batches = m.value("weir_pipeline_batch_events_count", &p);
    assert!(
        batches >= (SENT / 64) as f64,
        "{batches} batches of at most 64"
    );
    assert_eq!(m.types["weir_plugin_call_duration_seconds"], "histogram");
    let calls = m.value("weir_plugin_call_duration_seconds_count", &pp);
    // A read batch is split by partition, one call per partition it holds
    // (3 here); the last batch read at the end of the topic may be empty.
    assert!(
        calls >= (SENT / 64) as f64 && calls <= batches * 3.0,
        "{calls} calls for {batches} batches"
    );
    let mut inf = pp.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        m.value("weir_plugin_call_duration_seconds_bucket", &inf),
        calls
    );
    assert!(
        m.value(
            "weir_sink_write_duration_seconds_count",
            &[("pipeline", pipeline.as_str()), ("sink", "out")]
        ) >= 1.0
    );
    assert_eq!(m.types["weir_sink_write_duration_seconds"], "histogram");

    // The same counters in the plugins view.
    let plugins = http(addr, "GET", "/plugins", &[], "").await.json();
    let stamp = &plugins["plugins"][0];
    assert_eq!(stamp["name"], "stamp");
    assert_eq!(stamp["counters"]["events"], SENT);
    assert_eq!(stamp["counters"]["outputs"], SENT);
    assert_eq!(stamp["pipelines"][0]["pipeline"], pipeline.as_str());
    assert_eq!(stamp["version_header"], "weir-plugin-version");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_follow_the_pipelines() {
    let brokers = brokers();
    let topic = unique("admin-ready");
    create_topic(&brokers, &topic, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = runtime_config(dir.path(), &topic, "ready", false);
    let runtime = Runtime::build(&config, dir.path()).await.expect("runtime");
    let stop = CancellationToken::new();
    let addr = serve(&config.host.admin, runtime.admin_state(), &stop).await;

    let live = http(addr, "GET", "/health/live", &[], "").await;
    assert_eq!(live.status, 200);
    let before = http(addr, "GET", "/health/ready", &[], "").await;
    assert_eq!(
        before.status, 503,
        "not ready before the pipelines run: {}",
        before.body
    );
    assert_eq!(before.json()["pipelines"][0]["state"], "built");

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runtime.run(shutdown.clone()));
    let mut ready = before;
    for _ in 0..300 {
        ready = http(addr, "GET", "/health/ready", &[], "").await;
        if ready.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.status, 200, "{}", ready.body);
    let body = ready.json();
    assert_eq!(body["ready"], true);
    assert_eq!(body["pipelines"][0]["name"], "ready");
    assert_eq!(body["pipelines"][0]["state"], "running");
    assert_eq!(body["pipelines"][0]["source"]["name"], "in");
    assert_eq!(body["pipelines"][0]["source"]["ok"], true);
    assert_eq!(body["pipelines"][0]["sinks"][0]["name"], "out");
    assert_eq!(body["pipelines"][0]["sinks"][0]["ok"], true);

    shutdown.cancel();
    running.await.expect("task").expect("runtime");
    let after = http(addr, "GET", "/health/ready", &[], "").await;
    assert_eq!(after.status, 503, "{}", after.body);
    assert_eq!(after.json()["pipelines"][0]["state"], "stopped");
    assert_eq!(http(addr, "GET", "/health/live", &[], "").await.status, 200);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_endpoint_switches_files_and_shows_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, hash_a, _stage) = registry(dir.path());
    let stop = CancellationToken::new();
    let state = AdminState {
        registry: Arc::clone(&registry),
        pipelines: Vec::new(),
    };
    let addr = serve(&admin_config("127.0.0.1:0", Some(TOKEN)), state, &stop).await;

    let view = http(addr, "GET", "/plugins/stamp", &[], "").await.json();
    assert_eq!(view["hash"], hash_a.as_str());
    assert_eq!(view["pipelines"][0]["pipeline"], "api");
    assert!(view["loaded_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Same file, same settings: nothing to do.
    let same = post_reload(addr, "stamp", "", Some(TOKEN)).await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(same.json()["status"], "unchanged");

    // Switch to another file.
    let body = serde_json::json!({ "path": STAMP_B }).to_string();
    let switched = post_reload(addr, "stamp", &body, Some(TOKEN)).await;
    assert_eq!(switched.status, 200, "{}", switched.body);
    let switched = switched.json();
    assert_eq!(switched["status"], "reloaded");
    assert_eq!(switched["previous"], hash_a.as_str());
    let hash_b = switched["hash"].as_str().expect("hash").to_owned();
    assert_ne!(hash_b, hash_a);
    let view = http(addr, "GET", "/plugins/stamp", &[], "").await.json();
    assert_eq!(view["hash"], hash_b.as_str());
    assert_eq!(view["path"], STAMP_B);
    // The stage has not run a batch since: the new version waits for it.
    assert_eq!(view["pipelines"][0]["hash"], hash_a.as_str());
    assert_eq!(view["pipelines"][0]["pending"], true);

    // A version whose init refuses its config: refused, visible, old one kept.
    let body = serde_json::json!({ "path": REFUSE_INIT }).to_string();
    let refused = post_reload(addr, "stamp", &body, Some(TOKEN)).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let refused = refused.json();
    assert_eq!(refused["status"], "failed");
    let error = refused["error"].as_str().expect("error");
    assert!(
        error.contains("plugin `stamp`") && error.contains("refusing config: (empty)"),
        "{error}"
    );
    let all = http(addr, "GET", "/plugins", &[], "").await.json();
    let stamp = &all["plugins"][0];
    assert_eq!(stamp["hash"], hash_b.as_str(), "the running version stays");
    assert_eq!(stamp["counters"]["reloads_succeeded"], 1);
    assert_eq!(stamp["counters"]["reloads_failed"], 1);
    assert_eq!(stamp["counters"]["reloads_unchanged"], 1);
    assert_eq!(stamp["last_reload"]["result"], "failed");
    assert_eq!(stamp["last_reload"]["trigger"], "api");
    assert!(
        stamp["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("init refused its config: refusing config")),
        "{stamp:#}"
    );
    assert_eq!(stamp["history"].as_array().map(Vec::len), Some(2));

    // Wrong requests.
    assert_eq!(post_reload(addr, "nope", "", Some(TOKEN)).await.status, 404);
    assert_eq!(
        post_reload(addr, "stamp", "{not json", Some(TOKEN))
            .await
            .status,
        400
    );
    assert_eq!(
        post_reload(
            addr,
            "stamp",
            r#"{"path": "x.wasm", "force": true}"#,
            Some(TOKEN)
        )
        .await
        .status,
        400
    );
    assert_eq!(
        http(addr, "GET", "/plugins/nope", &[], "").await.status,
        404
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_mutations_need_the_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, _, _stage) = registry(dir.path());
    let state = AdminState {
        registry: Arc::clone(&registry),
        pipelines: Vec::new(),
    };

    // No token, not loopback: refused at start.
    match AdminServer::bind(&admin_config("0.0.0.0:0", None), state.clone()).await {
        Err(AdminError::TokenRequired { .. }) => {}
        other => panic!("expected TokenRequired, got {other:?}"),
    }
    match AdminServer::bind(&admin_config("0.0.0.0:0", Some("")), state.clone()).await {
        Err(AdminError::TokenRequired { .. }) => {}
        other => panic!("an empty token is no token, got {other:?}"),
    }

    // Bound to every address; connected through loopback, but the bound
    // address decides.
    let stop = CancellationToken::new();
    let bound = serve(
        &admin_config("0.0.0.0:0", Some("s3cret-token")),
        state.clone(),
        &stop,
    )
    .await;
    let addr = via_loopback(bound);
    let denied = post_reload(addr, "stamp", "", None).await;
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        post_reload(addr, "stamp", "", Some("wrong")).await.status,
        401
    );
    let allowed = post_reload(addr, "stamp", "", Some("s3cret-token")).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.json()["status"], "unchanged");
    // Reading needs no token.
    assert_eq!(http(addr, "GET", "/plugins", &[], "").await.status, 200);
    assert_eq!(http(addr, "GET", "/health/live", &[], "").await.status, 200);

    // Loopback without a token: mutations are closed, unless opened
    // explicitly.
    let local = serve(&admin_config("127.0.0.1:0", None), state.clone(), &stop).await;
    let closed = post_reload(local, "stamp", "", None).await;
    assert_eq!(closed.status, 403, "{}", closed.body);
    assert!(
        closed.body.contains("allow_unauthenticated_loopback"),
        "{}",
        closed.body
    );
    let open = AdminConfig {
        allow_unauthenticated_loopback: true,
        ..admin_config("127.0.0.1:0", None)
    };
    let local = serve(&open, state.clone(), &stop).await;
    assert_eq!(post_reload(local, "stamp", "", None).await.status, 200);
    // A configured token is required on loopback too, the flag
    // notwithstanding.
    let both = AdminConfig {
        allow_unauthenticated_loopback: true,
        ..admin_config("127.0.0.1:0", Some(TOKEN))
    };
    let local = serve(&both, state.clone(), &stop).await;
    assert_eq!(post_reload(local, "stamp", "", None).await.status, 401);
    // The flag never opens a non-loopback address.
    let wide = AdminConfig {
        allow_unauthenticated_loopback: true,
        ..admin_config("0.0.0.0:0", Some(TOKEN))
    };
    let bound = serve(&wide, state, &stop).await;
    assert_eq!(
        post_reload(via_loopback(bound), "stamp", "", None)
            .await
            .status,
        401
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_style_requests_cannot_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, _, _stage) = registry(dir.path());
    let state = AdminState {
        registry: Arc::clone(&registry),
        pipelines: Vec::new(),
    };
    let stop = CancellationToken::new();
    let open = AdminConfig {
        allow_unauthenticated_loopback: true,
        ..admin_config("127.0.0.1:0", None)
    };
    let addr = serve(&open, state, &stop).await;
    // What a page's `<form method=post>` or a "simple" fetch sends.
    for kind in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
    ] {
        let answer = http(
            addr,
            "POST",
            "/plugins/stamp/reload",
            &[("Content-Type", kind)],
            "",
        )
        .await;
        assert_eq!(answer.status, 415, "{kind}: {}", answer.body);
    }
    let answer = http(
        addr,
        "POST",
        "/plugins/stamp/reload",
        &[("Origin", "http://evil.example")],
        "",
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let history = http(addr, "GET", "/plugins/stamp", &[], "").await.json();
    assert!(history["last_reload"].is_null(), "nothing ran: {history:#}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_paths_are_confined_and_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, hash_a, _stage) = registry(dir.path());
    let state = AdminState {
        registry: Arc::clone(&registry),
        pipelines: Vec::new(),
    };
    let stop = CancellationToken::new();
    let allowed = dir.path().join("allowed");
    std::fs::create_dir(&allowed).expect("mkdir");
    std::fs::copy(STAMP_B, allowed.join("b.wasm")).expect("copy");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    std::fs::copy(STAMP_B, elsewhere.join("b.wasm")).expect("copy");
    std::fs::create_dir(allowed.join("dir.wasm")).expect("mkdir");
    std::os::unix::fs::symlink(elsewhere.join("b.wasm"), allowed.join("link.wasm"))
        .expect("symlink");
    let config = AdminConfig {
        reload_dirs: vec!["allowed".into()],
        max_plugin_bytes: std::fs::metadata(STAMP_B).expect("stat").len(),
        ..admin_config("127.0.0.1:0", Some(TOKEN))
    };
    let addr = serve(&config, state, &stop).await;
    let post = |path: std::path::PathBuf| {
        let body = serde_json::json!({ "path": path }).to_string();
        async move { post_reload(addr, "stamp", &body, Some(TOKEN)).await }
    };

    for (path, why) in [
        (elsewhere.join("b.wasm"), "not inside the directory"),
        (allowed.join("link.wasm"), "not inside the directory"),
        (
            allowed.join("../elsewhere/b.wasm"),
            "not inside the directory",
        ),
        ("/etc/passwd".into(), "not inside the directory"),
        ("/dev/zero".into(), "not inside the directory"),
        (allowed.join("dir.wasm"), "not a regular file"),
    ] {
        let refused = post(path.clone()).await;
        assert_eq!(refused.status, 403, "{}: {}", path.display(), refused.body);
        let error = refused.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(why), "{}: {error}", path.display());
    }
    let view = http(addr, "GET", "/plugins/stamp", &[], "").await.json();
    assert_eq!(view["hash"], hash_a.as_str(), "nothing was loaded");
    assert_eq!(view["counters"]["reloads_failed"], 6);

    // From the allow-list, relative to the config's directory.
    let switched = post("allowed/b.wasm".into()).await;
    assert_eq!(switched.status, 200, "{}", switched.body);
    assert_eq!(switched.json()["status"], "reloaded");

    // Bigger than `max_plugin_bytes`.
    let mut big = std::fs::read(STAMP_A).expect("read");
    big.resize(usize::try_from(config.max_plugin_bytes).unwrap() + 1, 0);
    std::fs::write(allowed.join("big.wasm"), big).expect("write");
    let refused = post(allowed.join("big.wasm")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("max_plugin_bytes"),
        "{}",
        refused.body
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_chosen_through_the_api_survives_a_config_reread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (registry, _, _stage) = registry(dir.path());
    let state = AdminState {
        registry: Arc::clone(&registry),
        pipelines: Vec::new(),
    };
    let stop = CancellationToken::new();
    let addr = serve(&admin_config("127.0.0.1:0", Some(TOKEN)), state, &stop).await;
    let body = serde_json::json!({ "path": STAMP_B }).to_string();
    let switched = post_reload(addr, "stamp", &body, Some(TOKEN)).await;
    assert_eq!(switched.status, 200, "{}", switched.body);
    let hash_b = switched.json()["hash"].as_str().expect("hash").to_owned();

    // SIGHUP with a config that still names stamp-a: the API's choice stays.
    let reg = Arc::clone(&registry);
    let outcome = tokio::task::spawn_blocking(move || {
        reg.reload_spec(plugin_spec(STAMP_A), weir::plugin::ReloadTrigger::Signal)
    })
    .await
    .expect("task")
    .expect("reload");
    assert_eq!(
        outcome,
        weir::plugin::ReloadOutcome::Unchanged {
            hash: hash_b.clone()
        }
    );
    let view = http(addr, "GET", "/plugins/stamp", &[], "").await.json();
    assert_eq!(view["path"], STAMP_B, "{view:#}");
    assert_eq!(view["hash"], hash_b.as_str());

    // The config names another file: it takes over.
    let moved = dir.path().join("stamp-a-moved.wasm");
    std::fs::copy(STAMP_A, &moved).expect("copy");
    let reg = Arc::clone(&registry);
    let spec = plugin_spec(moved.to_str().expect("utf-8 path"));
    let outcome = tokio::task::spawn_blocking(move || {
        reg.reload_spec(spec, weir::plugin::ReloadTrigger::Signal)
    })
    .await
    .expect("task")
    .expect("reload");
    assert!(
        matches!(outcome, weir::plugin::ReloadOutcome::Reloaded { .. }),
        "{outcome:?}"
    );
    let view = http(addr, "GET", "/plugins/stamp", &[], "").await.json();
    assert_eq!(view["path"], moved.to_str().expect("utf-8 path"));
    stop.cancel();
}
