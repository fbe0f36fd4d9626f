//! Builds every example plugin and test fixture as a wasm32-wasip2
//! component, builds the Python plugins with componentize-py (see
//! `build_python_plugins`), assembles the hand-written components of
//! `fixtures/*.wat`, and writes `plugins.rs` into OUT_DIR: one
//! `pub const NAME: &str = "/abs/path.wasm";` per plugin, plus `ALL`.
//!
//! The nested cargo uses its own target directory (`wasm-plugins` beside
//! the outer build's profile directories) so it never waits on the lock the
//! outer build holds, and runs with the outer build's flags cleared so the
//! plugins are built exactly as `cargo build --profile plugin --target
//! wasm32-wasip2` builds them.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

/// (constant name, package) of every plugin the tests use.
const PLUGINS: &[(&str, &str)] = &[
    ("FILTER", "weir-plugin-filter"),
    ("TRANSFORM", "weir-plugin-transform"),
    ("ROUTER", "weir-plugin-router"),
    ("IOT_TELEMETRY", "weir-plugin-iot-telemetry"),
    ("ENRICH_PLUGIN", "weir-plugin-enrich"),
    ("CDC_CACHE", "weir-plugin-cdc-cache"),
    ("INFINITE_LOOP", "weir-fixture-infinite-loop"),
    ("MEMORY_BOMB", "weir-fixture-memory-bomb"),
    ("TRAP_ON_EVENT", "weir-fixture-trap-on-event"),
    ("AMPLIFY", "weir-fixture-amplify"),
    ("DEEP_RECURSION", "weir-fixture-deep-recursion"),
    ("REFUSE_INIT", "weir-fixture-refuse-init"),
    ("OTHER_CONTRACT", "weir-fixture-other-contract"),
    ("REFERENCE", "weir-fixture-reference"),
    ("REFERENCE_V1", "weir-fixture-reference-v1"),
    ("REFERENCE_TYPED", "weir-fixture-reference-typed"),
    ("TYPED_HOSTILE", "weir-fixture-typed-hostile"),
    ("STAMP_A", "weir-fixture-stamp-a"),
    ("STAMP_B", "weir-fixture-stamp-b"),
    ("HOSTILE", "weir-fixture-hostile"),
    ("ENRICH", "weir-fixture-enrich"),
];

/// (constant name, directory) of every Python plugin the tests use, each a
/// `plugin.py` built against the world of weir:transform@0.2.0 the SDK's
/// build picks (`typed`, or `typed-lookup` for a plugin that looks things
/// up).
const PYTHON_PLUGINS: &[(&str, &str)] = &[
    ("FILTER_PY", "plugins/filter-py"),
    ("HOSTILE_PY", "plugins/fixtures-py/hostile"),
    ("REFERENCE_PY", "plugins/fixtures-py/reference"),
    ("ENRICH_PY", "plugins/fixtures-py/enrich"),
];

/// (constant name, file under `fixtures/`) of every hand-written component.
const WAT_FIXTURES: &[(&str, &str)] = &[
    ("TWO_MEMORIES", "two-memories.wat"),
    ("BIG_TABLES", "big-tables.wat"),
    ("MANY_INSTANCES", "many-instances.wat"),
    ("GUEST_HANDLES", "guest-handles.wat"),
    ("STATE_IMPORT", "state-import.wat"),
    ("LOOKUP_IMPORT", "lookup-import.wat"),
    ("SEVERAL_WORLDS", "several-worlds.wat"),
    ("MIXED_VERSIONS", "mixed-versions.wat"),
    ("UNKNOWN_IMPORT", "unknown-import.wat"),
];

/// Variables of the outer build that would change how the plugins are built.
const LEAKING_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_PROFILE",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CARGO_LLVM_COV",
    "LLVM_PROFILE_FILE",
    "CARGO_INCREMENTAL",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("tests/ sits in the workspace");
    for dir in ["sdk", "sdk-python/weir_sdk", "contract", "wit", "plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("fixtures").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    // The plugins' compiler flags (inlining threshold) live there.
    println!(
        "cargo:rerun-if-changed={}",
        root.join(".cargo").join("config.toml").display()
    );

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = plugin_target_dir(&out_dir);
    check_target_installed();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--profile", PROFILE, "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package) in PLUGINS {
        cmd.args(["-p", package]);
    }
    for var in LEAKING_ENV {
        cmd.env_remove(var);
    }
    // Profile overrides of the outer build (CARGO_PROFILE_*) must not leak either.
    for (var, _) in env::vars_os() {
        if var.to_string_lossy().starts_with("CARGO_PROFILE_") {
            cmd.env_remove(var);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the Wasm plugins: {e}"));
    if !status.success() {
        panic!(
            "building the Wasm plugins failed ({status}); rerun by hand to see why:\n  \
             cargo build --profile {PROFILE} --target {TARGET} --target-dir {} {}",
            target_dir.display(),
            PLUGINS
                .iter()
                .map(|(_, p)| format!("-p {p}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }

    let wasm_dir = target_dir.join(TARGET).join(PROFILE);
    let mut src =
        String::from("// Generated by tests/build.rs: the Wasm components under test.\n\n");
    for (name, package) in PLUGINS {
        let path = wasm_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            path.is_file(),
            "cargo built {package} but {} is missing",
            path.display()
        );
        writeln!(src, "/// `{package}` built for {TARGET}.").unwrap();
        writeln!(
            src,
            "pub const {name}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    for (name, dir, path) in build_python_plugins(root, &target_dir) {
        writeln!(src, "/// `{dir}` built with componentize-py.").unwrap();
        writeln!(
            src,
            "pub const {name}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    for (name, file) in WAT_FIXTURES {
        let source = manifest_dir.join("fixtures").join(file);
        let bytes = wat::parse_file(&source)
            .unwrap_or_else(|e| panic!("cannot assemble {}: {e}", source.display()));
        let path = out_dir.join(file.replace(".wat", ".wasm"));
        std::fs::write(&path, bytes).expect("write an assembled fixture");
        writeln!(src, "/// `fixtures/{file}`, assembled.").unwrap();
        writeln!(
            src,
            "pub const {name}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    src.push_str("\n/// Every plugin above, as (constant name, path).\npub const ALL: &[(&str, &str)] = &[\n");
    for (name, _) in PLUGINS.iter().chain(PYTHON_PLUGINS).chain(WAT_FIXTURES) {
        writeln!(src, "    ({name:?}, {name}),").unwrap();
    }
    src.push_str("];\n");
    std::fs::write(out_dir.join("plugins.rs"), src).expect("write plugins.rs");
}

/// Build the Python plugins with the toolchain `scripts/setup` installs
/// (componentize-py in `.services/plugin-venv`, or the interpreter named by
/// `WEIR_PLUGIN_PYTHON`), all at once, and return (constant, directory,
/// component path) for each.
///
/// A component takes componentize-py some seconds and holds the whole
/// CPython runtime (~18 MB), so the builds go to a content-addressed cache
/// beside the Rust plugins' target directory (`<target>/python-plugins`,
/// outside the clone like CARGO_TARGET_DIR): `weir_sdk.build --cache`
/// rebuilds a plugin only when its sources, the SDK, the WIT or the
/// componentize-py version change.
fn build_python_plugins(
    root: &Path,
    wasm_target_dir: &Path,
) -> Vec<(&'static str, &'static str, PathBuf)> {
    println!("cargo:rerun-if-env-changed=WEIR_PLUGIN_PYTHON");
    println!("cargo:rerun-if-env-changed=WEIR_SERVICES_DIR");
    let python = match env::var_os("WEIR_PLUGIN_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => env::var_os("WEIR_SERVICES_DIR")
            .map_or_else(|| root.join(".services"), PathBuf::from)
            .join("plugin-venv/bin/python"),
    };
    if !python.is_file() {
        panic!(
            "the Python plugin toolchain is missing ({} does not exist), so the Python test \
             plugins cannot be built: run `scripts/setup` (it installs componentize-py into \
             .services/plugin-venv) or set WEIR_PLUGIN_PYTHON",
            python.display()
        );
    }
    let cache = wasm_target_dir.with_file_name("python-plugins");
    let children: Vec<_> = PYTHON_PLUGINS
        .iter()
        .map(|(name, dir)| {
            let child = Command::new(&python)
                .current_dir(root)
                .env("PYTHONPATH", root.join("sdk-python"))
                .args(["-m", "weir_sdk.build", dir, "--cache"])
                .arg(&cache)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
            (*name, *dir, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(name, dir, child)| {
            let out = child
                .wait_with_output()
                .unwrap_or_else(|e| panic!("building {dir}: {e}"));
            if !out.status.success() {
                panic!(
                    "building the Python plugin {dir} failed ({}):\n{}\nrerun by hand to see why:\n  \
                     PYTHONPATH=sdk-python {} -m weir_sdk.build {dir}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr),
                    python.display()
                );
            }
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            assert!(path.is_file(), "{dir} was built but {} is missing", path.display());
            (name, dir, path)
        })
        .collect()
}

/// `<outer target dir>/wasm-plugins`, found from OUT_DIR
/// (`<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`).
fn plugin_target_dir(out_dir: &Path) -> PathBuf {
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is <target>/<profile>/build/<pkg>/out");
    let mut base = profile_dir.parent().expect("profile dir has a parent");
    // With an explicit --target the profile dir sits under <target>/<triple>.
    if let Ok(triple) = env::var("TARGET")
        && base.file_name().is_some_and(|n| n == triple.as_str())
        && let Some(parent) = base.parent()
    {
        base = parent;
    }
    base.join("wasm-plugins")
}

/// Fail early, with the fix, if the wasm32-wasip2 standard library is absent.
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed =
        sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).join("lib").is_dir());
    if !installed {
        panic!(
            "the {TARGET} target is not installed, so the Wasm test plugins cannot be built: \
             run `rustup target add {TARGET}` or `make setup`"
        );
    }
}
