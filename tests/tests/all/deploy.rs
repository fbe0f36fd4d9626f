//! What a platform team deploys: the builtin plugins (`builtin:filter`,
//! `builtin:transform`, `builtin:router`) run by the real `weir` binary,
//! the Kubernetes manifests under `deploy/kubernetes/` (strict schema
//! validation offline, `weir validate` on the config they embed, the
//! values that must agree between the files), and the Dockerfile (its
//! build command is the Makefile's, its entrypoint the binary's, its
//! runtime stage provides every library the binary links).
//!
//! The manifest checks need the Python validators that `scripts/setup`
//! installs into the project's virtualenv (`.services/venv`); without them
//! the tests fail and say so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use serde_json::Value;
use weir::engine::{Engine, EngineOptions, PluginSpec};
use weir::plugin::{PluginOptions, PluginRegistry, ReloadOutcome, ReloadTrigger, WatchMode};
use weir_tests::{plugins, weir_bin};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

fn k8s_dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

/// The project's virtualenv, as scripts/setup and scripts/services find it.
fn venv_python() -> PathBuf {
    let services = std::env::var_os("WEIR_SERVICES_DIR")
        .map_or_else(|| root().join(".services"), PathBuf::from);
    let python = services.join("venv/bin/python");
    let probe = Command::new(&python)
        .args([
            "-c",
            "import kubernetes_validate, cloudcoil.models.prometheus_operator, yaml",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => python,
        _ => panic!(
            "the manifest validators are not installed in {}: run scripts/setup",
            python.display()
        ),
    }
}

/// Every YAML document of `file`, as JSON (PyYAML from the virtualenv: one
/// YAML parser for the validator and for these checks).
fn yaml_documents(file: &Path) -> Vec<Value> {
    let out = Command::new(venv_python())
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
             json.dump(docs, sys.stdout)",
        ])
        .arg(file)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{} is not YAML: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).expect("JSON from python") {
        Value::Array(docs) => docs,
        other => panic!("expected a list of documents, got {other}"),
    }
}

fn one_document(file: &str) -> Value {
    let mut docs = yaml_documents(&k8s_dir().join(file));
    assert_eq!(docs.len(), 1, "{file} holds one resource");
    docs.remove(0)
}

fn validate_manifests(files: &[PathBuf]) -> Output {
    Command::new(venv_python())
        .arg(root().join("tests/tools/validate_manifests.py"))
        .args(files)
        .output()
        .expect("run the manifest validator")
}

/// The resources `kustomization.yaml` lists.
fn kustomize_resources() -> Vec<String> {
    let kustomization = one_document("kustomization.yaml");
    kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name").to_owned())
        .collect()
}

#[test]
fn manifests_pass_the_kubernetes_schemas_strictly() {
    let resources = kustomize_resources();
    let mut on_disk: Vec<String> = std::fs::read_dir(k8s_dir())
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut listed = resources.clone();
    listed.sort();
    assert_eq!(listed, on_disk, "kustomization.yaml lists every manifest");

    let files: Vec<PathBuf> = resources.iter().map(|r| k8s_dir().join(r)).collect();
    let out = validate_manifests(&files);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut kinds: Vec<&str> = report
        .lines()
        .map(|l| {
            assert!(l.starts_with("ok "), "{l}");
            l.rsplit(' ').next().expect("KIND/NAME")
        })
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ConfigMap/weir-config",
            "Deployment/weir",
            "PodDisruptionBudget/weir",
            "Secret/weir-credentials",
            "Service/weir",
            "ServiceMonitor/weir",
        ]
    );
}

#[test]
fn the_validator_rejects_misspelled_fields() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |file: &str, from: &str, to: &str| {
        let text = std::fs::read_to_string(k8s_dir().join(file)).unwrap();
        assert!(text.contains(from), "{file} has {from}");
        let path = dir.path().join(file);
        std::fs::write(&path, text.replace(from, to)).unwrap();
        path
    };
    let files = [
        bad(
            "deployment.yaml",
            "readOnlyRootFilesystem",
            "readOnlyRootFileSystem",
        ),
        bad("servicemonitor.yaml", "scrapeTimeout", "scrapeTimout"),
        bad(
            "poddisruptionbudget.yaml",
            "maxUnavailable: 1",
            "maxUnavailable: [1]",
        ),
    ];
    let out = validate_manifests(&files);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(
        lines[0].starts_with("error ")
            && lines[0].contains("'readOnlyRootFileSystem' was unexpected"),
        "{report}"
    );
    assert!(
        lines[1].contains("unknown field(s): spec.endpoints[0].scrapeTimout"),
        "{report}"
    );
    assert!(
        lines[2].starts_with("error ") && lines[2].contains("PodDisruptionBudget/weir"),
        "{report}"
    );
}

/// The weir container of the Deployment.
fn weir_container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    containers
        .iter()
        .find(|c| c["name"] == "weir")
        .expect("a container named weir")
}

fn mount_path<'a>(container: &'a Value, volume: &str) -> &'a str {
    container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == volume)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("volume {volume} is mounted"))
}

#[test]
fn the_embedded_config_validates_with_the_secret_and_the_deployment() {
    let config_map = one_document("configmap.yaml");
    let secret = one_document("secret.yaml");
    let deployment = one_document("deployment.yaml");
    let container = weir_container(&deployment);
    let pod = &deployment["spec"]["template"]["spec"];

    // The Deployment mounts the ConfigMap where its args read the config.
    let config_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == config_map["metadata"]["name"])
        .expect("a volume of the weir-config ConfigMap");
    let config_dir = mount_path(container, config_volume["name"].as_str().unwrap());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["run", &format!("{config_dir}/weir.toml")]);
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"], secret["metadata"]["name"],
        "the credentials reach the container as environment variables"
    );

    // The environment the pod gets: the Secret's keys and the env list.
    let mut env: BTreeMap<String, String> = secret["stringData"]
        .as_object()
        .expect("stringData")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    for var in container["env"].as_array().unwrap() {
        env.insert(
            var["name"].as_str().unwrap().to_owned(),
            var["value"].as_str().unwrap().to_owned(),
        );
    }
    let plugins_dir = mount_path(container, "plugins");
    assert_eq!(env["WEIR_PLUGIN_DIR"], plugins_dir);

    let toml_text = config_map["data"]["weir.toml"]
        .as_str()
        .expect("data.weir.toml");
    let config: toml::Table = toml_text.parse().expect("weir.toml is TOML");
    let host = &config["host"];
    let admin_port: u16 = host["admin"]["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let container_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("an admin port")["containerPort"]
        .as_u64()
        .unwrap();
    assert_eq!(u64::from(admin_port), container_port);
    let cache_dir = host["cache_dir"].as_str().unwrap();
    assert!(
        cache_dir.starts_with(mount_path(container, "cache")),
        "the compile cache ({cache_dir}) is on the writable volume"
    );
    let drain_ms = host["shutdown_timeout_ms"].as_integer().unwrap();
    let grace_s = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    assert!(
        drain_ms < grace_s * 1000,
        "the drain ({drain_ms} ms) ends before the kubelet's SIGKILL ({grace_s} s)"
    );

    // `weir validate` on the embedded config, with exactly that
    // environment (nothing else leaks in) and a real plugin file in the
    // place of the plugins volume.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(&file, toml_text).unwrap();
    let mounted = dir.path().join("plugins");
    std::fs::create_dir(&mounted).unwrap();
    std::fs::copy(plugins::TRANSFORM, mounted.join("mask_pii.wasm")).unwrap();
    env.insert("WEIR_PLUGIN_DIR".into(), mounted.display().to_string());
    let out = Command::new(weir_bin())
        .arg("validate")
        .arg(&file)
        .env_clear()
        .envs(&env)
        .output()
        .expect("weir validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok — 1 source, 3 plugins, 4 sinks, 1 pipeline"),
        "{stdout}{stderr}"
    );
    assert!(
        !stdout.contains("warning") && !stderr.contains("warning"),
        "{stdout}{stderr}"
    );

    // Without the Secret, the unset ${VAR}s are what `weir validate` reports.
    let out = Command::new(weir_bin())
        .arg("validate")
        .arg(&file)
        .env_clear()
        .env("WEIR_PLUGIN_DIR", &mounted)
        .output()
        .expect("weir validate");
    assert!(!out.status.success());
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for key in secret["stringData"].as_object().unwrap().keys() {
        assert!(report.contains(key.as_str()), "{key} missing in: {report}");
    }
}

/// The instructions of the Dockerfile's stages, continuation lines joined.
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let mut joined = String::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && joined.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            continue;
        }
        joined.push_str(line);
        lines.push(std::mem::take(&mut joined));
    }
    let mut stages: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in lines {
        let (instruction, rest) = line.split_once(' ').expect("INSTRUCTION args");
        let instruction = instruction.to_ascii_uppercase();
        if instruction == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .unwrap()
            .push((instruction, rest.trim().to_owned()));
    }
    stages
}

fn instruction<'a>(stage: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(i, _)| i == name)
        .map(|(_, a)| a.as_str())
        .collect()
}

fn json_words(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not an exec-form array: {args}: {e}"))
}

#[test]
fn the_dockerfile_builds_like_the_makefile_and_runs_the_binary() {
    let stages = dockerfile_stages();
    let (args, build, runtime) = match stages.as_slice() {
        [args, build, runtime] => (args, build, runtime),
        _ => panic!("expected global ARGs, a build stage and a runtime stage"),
    };
    // The Rust image is the workspace's minimum Rust version.
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let rust_version = manifest["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    assert!(
        instruction(args, "ARG").contains(&format!("RUST_VERSION={rust_version}").as_str()),
        "{args:?}"
    );
    assert!(instruction(build, "FROM")[0].ends_with(" AS build"));

    // Its cargo command is the Makefile's `release` recipe.
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let recipe = makefile
        .split("\nrelease:")
        .nth(1)
        .and_then(|r| r.lines().nth(1))
        .expect("a `release` target with a recipe")
        .trim()
        .replace("$(CARGO)", "cargo");
    let runs = instruction(build, "RUN");
    assert_eq!(runs, ["scripts/setup --build-only", recipe.as_str()]);
    let target_dir = instruction(build, "ENV")
        .iter()
        .find_map(|e| e.strip_prefix("CARGO_TARGET_DIR="))
        .expect("the build stage sets CARGO_TARGET_DIR")
        .to_owned();

    // Everything the build stage copies exists here.
    for copy in instruction(build, "COPY") {
        let words: Vec<&str> = copy.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            assert!(root().join(source).exists(), "COPY {source}");
        }
    }

    // The runtime stage: the binary the build produced, run as non-root,
    // the same user the Deployment runs as.
    let copies = instruction(runtime, "COPY");
    assert_eq!(copies.len(), 1, "only the binary is copied: {copies:?}");
    let words: Vec<&str> = copies[0].split_whitespace().collect();
    assert_eq!(
        words,
        [
            "--from=build",
            &format!("{target_dir}/release/weir"),
            "/usr/local/bin/weir"
        ]
    );
    let user = instruction(runtime, "USER");
    let uid: u32 = user[0]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric user");
    assert_ne!(uid, 0);
    let deployment = one_document("deployment.yaml");
    let pod_security = &deployment["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(pod_security["runAsUser"].as_u64(), Some(u64::from(uid)));
    assert_eq!(pod_security["runAsNonRoot"], true);

    let entrypoint = json_words(instruction(runtime, "ENTRYPOINT")[0]);
    assert_eq!(entrypoint, ["/usr/local/bin/weir"]);
    let cmd = json_words(instruction(runtime, "CMD")[0]);
    let container_args: Vec<String> = weir_container(&deployment)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        cmd, container_args,
        "docker run and the Deployment run the same"
    );

    // The binary accepts those arguments: it gets as far as reading the
    // config file (absent here), not a usage error.
    let out = Command::new(weir_bin())
        .args(&cmd)
        .stdin(Stdio::null())
        .output()
        .expect("weir");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&cmd[1]), "{stderr}");
    assert!(!stderr.contains("Usage:"), "{stderr}");

    // Every shared library the binary links comes from a package the
    // runtime stage installs (or the slim base's libc and libgcc).
    let installed = instruction(runtime, "RUN").join(" ");
    let ldd = Command::new("ldd").arg(weir_bin()).output().expect("ldd");
    assert!(ldd.status.success());
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some((_, path)) = line.split_once("=> ") else {
            continue;
        };
        let path = path.split_whitespace().next().unwrap();
        let package = owning_package(Path::new(path));
        let in_base = ["libc6", "libgcc-s1"].contains(&package.as_str());
        assert!(
            in_base || installed.split_whitespace().any(|w| w == package),
            "{path} comes from {package}, which the runtime stage does not install"
        );
    }
}

/// The Debian package holding `lib` (`zlib1g` for libz.so.1).
fn owning_package(lib: &Path) -> String {
    let real = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.to_path_buf());
    let mut candidates = vec![lib.to_path_buf(), real.clone()];
    // Merged /usr: dpkg knows a library under the path its package ships.
    for p in [lib, real.as_path()] {
        if let Ok(rest) = p.strip_prefix("/usr") {
            candidates.push(Path::new("/").join(rest));
        } else {
            candidates.push(Path::new("/usr").join(p.strip_prefix("/").unwrap()));
        }
    }
    for candidate in candidates {
        let out = Command::new("dpkg")
            .arg("-S")
            .arg(&candidate)
            .output()
            .expect("dpkg");
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            let package = text.split(':').next().unwrap().trim();
            return package.to_owned();
        }
    }
    panic!("no Debian package owns {}", lib.display());
}

// ---- builtin plugins ----

const EVENTS: &str = r#"{"user_id":"u1","event_type":"view","email":"ann@example.com"}
{"user_id":"u2","event_type":"purchase","email":"bob@example.com","amount":12}
{"user_id":"u3","event_type":"click","email":"cy@example.com"}
{"user_id":"u4","event_type":"purchase","email":"dee@example.com","amount":7}
{"user_id":"u5","event_type":"view","email":"eve@example.com"}
{"user_id":"u6","event_type":"signup","email":"fay@example.com"}
"#;

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn a_config_only_pipeline_runs_on_builtin_plugins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), EVENTS).unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        r#"
[host.admin]
enabled = false

[sources.clicks]
type = "kafka"
topics = ["clicks"]
embedded = { partitions = 1, seed_file = "events.jsonl", key_field = "user_id" }
stop_at_end = true
options = { "session.timeout.ms" = 6000, "heartbeat.interval.ms" = 1000 }

[plugins.drop_views]
path = "builtin:filter"
config = { field = "event_type", equals = "view" }

[plugins.mask]
path = "builtin:transform"
config = { "mask.email" = "redact", "add.via" = "builtin" }

[plugins.by_type]
path = "builtin:router"
config = { field = "event_type", routes = "purchase:purchases" }

[sinks.purchases]
type = "file"
path = "out/purchases.jsonl"

[sinks.other]
type = "file"
path = "out/other.jsonl"

[sinks.dead_letters]
type = "file"
path = "out/dead-letters.jsonl"

[pipelines.clicks]
source = "clicks"
plugins = ["drop_views", "mask", "by_type"]
default_route = "other"
dead_letter = "dead_letters"
routes = { purchases = "purchases" }
"#,
    )
    .unwrap();
    let validate = Command::new(weir_bin())
        .arg("validate")
        .arg(&config)
        .output()
        .expect("weir validate");
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );

    let run = Command::new(weir_bin())
        .arg("run")
        .arg(&config)
        .args(["--progress", "0"])
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdin(Stdio::null())
        .output()
        .expect("weir run");
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "weir run failed: {log}");

    let values = |file: &str| -> Vec<Value> {
        json_lines(&dir.path().join("out").join(file))
            .into_iter()
            .map(|o| o["value"].clone())
            .collect()
    };
    let purchases = values("purchases.jsonl");
    let mut users: Vec<&str> = purchases
        .iter()
        .map(|v| v["user_id"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["u2", "u4"], "{purchases:#?}");
    let other = values("other.jsonl");
    let mut users: Vec<&str> = other
        .iter()
        .map(|v| v["user_id"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["u3", "u6"], "views dropped: {other:#?}");
    for v in purchases.iter().chain(&other) {
        assert_eq!(v["email"], "[redacted]", "{v}");
        assert_eq!(v["via"], "builtin", "{v}");
    }
    assert!(
        !dir.path().join("out/dead-letters.jsonl").exists()
            || values("dead-letters.jsonl").is_empty()
    );
    // The compiled builtins went to the cache like any plugin.
    let cached = std::fs::read_dir(dir.path().join("cache/weir/plugins"))
        .expect("the compile cache was used")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        })
        .count();
    assert_eq!(cached, 3, "one compiled artifact per builtin plugin");
}

fn weir_plugin(args: &[&str], stdin: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(weir_bin())
        .args(args)
        .env("WEIR_CACHE_DIR", dir.path().join("cache"))
        .env("WEIR_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weir");
    use std::io::Write as _;
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().expect("weir")
}

#[test]
fn plugin_test_and_inspect_take_builtin_plugins() {
    let out = weir_plugin(
        &[
            "plugin",
            "test",
            "builtin:router",
            "--config",
            "field=event_type",
            "--config",
            "routes=purchase:orders+audit,view:clicks",
            "--config",
            "unmatched=drop",
        ],
        "{\"event_type\":\"purchase\"}\n{\"event_type\":\"view\"}\n{\"event_type\":\"ping\"}\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let routes = |i: usize| -> Vec<&str> {
        lines[i]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["route"].as_str().unwrap())
            .collect()
    };
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(routes(0), ["orders", "audit"]);
    assert_eq!(routes(1), ["clicks"]);
    assert_eq!(lines[2]["outcome"], "drop");

    // A config the builtin refuses is reported as for any plugin, by name.
    let out = weir_plugin(
        &["plugin", "test", "builtin:router", "--config", "colour=red"],
        "",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plugin `router` (builtin:router)") && stderr.contains("colour"),
        "{stderr}"
    );

    let out = weir_plugin(&["plugin", "inspect", "builtin:filter", "--json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    let embedded = weir::builtin::BUILTINS
        .iter()
        .find(|b| b.name == "filter")
        .expect("builtin filter");
    let embedded_hash = {
        use sha2::Digest as _;
        hex_of(&sha2::Sha256::digest(embedded.bytes))
    };
    assert_eq!(info["sha256"], embedded_hash, "{info:#}");
    assert_eq!(info["contract_version"], "0.2.0", "{info:#}");
    assert_eq!(info["compatible"], true, "{info:#}");

    let out = weir_plugin(&["plugin", "inspect", "builtin:sorter"], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "no builtin plugin `sorter` (there are: builtin:filter, builtin:transform, builtin:router)"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn validate_names_an_unknown_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        r#"
[sources.in]
type = "kafka"
brokers = "127.0.0.1:19092"
topics = ["t"]

[plugins.sort]
path = "builtin:sorter"

[sinks.out]
type = "file"
path = "out.jsonl"

[pipelines.p]
source = "in"
plugins = ["sort"]
default_route = "out"
"#,
    )
    .unwrap();
    let out = Command::new(weir_bin())
        .arg("validate")
        .arg(&config)
        .output()
        .expect("weir validate");
    assert!(!out.status.success());
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("plugins.sort.path: no builtin plugin `sorter` (there are: builtin:filter, builtin:transform, builtin:router)"),
        "{report}"
    );
}

#[test]
fn the_registry_reports_builtin_plugins_as_unwatched_and_unchanged_on_reload() {
    let cache = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Engine::new(EngineOptions {
            cache_dir: Some(cache.path().to_path_buf()),
        })
        .unwrap(),
    );
    let mut registry = PluginRegistry::new(engine, "/etc/weir");
    let spec = PluginSpec {
        name: "drop_views".into(),
        path: PathBuf::from("builtin:filter"),
        config: vec![
            ("field".into(), "event_type".into()),
            ("equals".into(), "view".into()),
        ],
        limits: Default::default(),
        grants: Default::default(),
    };
    registry
        .register(
            spec,
            PluginOptions {
                version_header: None,
                watch: WatchMode::Auto,
            },
        )
        .unwrap();
    let snapshot = registry.plugin_snapshot("drop_views").unwrap();
    assert_eq!(snapshot.path, PathBuf::from("builtin:filter"));
    assert_eq!(
        snapshot.watch,
        WatchMode::Off,
        "a builtin has no file to watch"
    );
    assert_eq!(
        registry.files(),
        [(
            "drop_views".to_owned(),
            PathBuf::from("builtin:filter"),
            WatchMode::Off
        )]
    );
    let outcome = registry
        .reload("drop_views", None, ReloadTrigger::Manual)
        .unwrap();
    assert_eq!(
        outcome,
        ReloadOutcome::Unchanged {
            hash: snapshot.hash.clone()
        }
    );
    // Switching a builtin plugin to a file of the same component is a
    // change of path, and the file then is what is watched.
    let outcome = registry
        .reload(
            "drop_views",
            Some(Path::new(plugins::FILTER)),
            ReloadTrigger::Manual,
        )
        .unwrap();
    assert!(
        matches!(outcome, ReloadOutcome::Reloaded { .. }),
        "{outcome:?}"
    );
    assert_eq!(registry.files()[0].2, WatchMode::Auto);
}
