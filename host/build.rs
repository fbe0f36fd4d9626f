//! Builds the standard plugins (`plugins/filter`, `plugins/transform`,
//! `plugins/router`) as wasm32-wasip2 components and copies them into
//! OUT_DIR, where `src/plugin/builtin.rs` embeds them (`builtin:filter`,
//! ...), so a config can filter, mask and route without a `.wasm` file.
//!
//! The nested cargo uses a target directory of its own (`wasm-builtin`
//! beside the outer build's profile directories): the outer build holds
//! the lock of its own target directory for as long as this script runs,
//! so a nested build there would wait for itself. The outer build's flags
//! and wrappers are cleared so the components are built exactly as
//! `cargo build --profile plugin --target wasm32-wasip2` builds them.
//!
//! It also writes `sdk_sources.rs`, a table of the SDK sources and the WIT
//! (`sdk/`, `contract/`, `wit/`, and `sdk-python/`, `sdk-js/` where they
//! exist) that `weir plugin new` vendors into a new plugin project, so a
//! project made outside this repository builds with the SDK of the binary
//! that made it and nothing but the package registries.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

/// (name after `builtin:`, package) of every embedded plugin.
const BUILTINS: &[(&str, &str)] = &[
    ("filter", "weir-plugin-filter"),
    ("transform", "weir-plugin-transform"),
    ("router", "weir-plugin-router"),
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
    let root = manifest_dir.parent().expect("host/ sits in the workspace");
    for dir in [
        "sdk",
        "contract",
        "wit",
        "plugins/filter",
        "plugins/transform",
        "plugins/router",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    embed_sdk_sources(root, &out_dir);
    let target_dir = plugin_target_dir(&out_dir);
    check_target_installed();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--profile", PROFILE, "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package) in BUILTINS {
        cmd.args(["-p", package]);
    }
    for var in LEAKING_ENV {
        cmd.env_remove(var);
    }
    // Profile overrides of the outer build (`cargo build --release` sets
    // none, but CARGO_PROFILE_* from the environment would leak).
    for (var, _) in env::vars_os() {
        if var.to_string_lossy().starts_with("CARGO_PROFILE_") {
            cmd.env_remove(var);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the builtin plugins: {e}"));
    if !status.success() {
        panic!(
            "building the builtin plugins failed ({status}); rerun by hand to see why:\n  \
             cargo build --profile {PROFILE} --target {TARGET} --target-dir {} {}",
            target_dir.display(),
            BUILTINS
                .iter()
                .map(|(_, p)| format!("-p {p}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }

    // Copied, so a later nested build rewriting its output while the outer
    // build compiles `include_bytes!` cannot hand it a half-written file.
    let wasm_dir = target_dir.join(TARGET).join(PROFILE);
    for (name, package) in BUILTINS {
        let built = wasm_dir.join(format!("{}.wasm", package.replace('-', "_")));
        let embedded = out_dir.join(format!("{name}.wasm"));
        std::fs::copy(&built, &embedded).unwrap_or_else(|e| {
            panic!(
                "cargo built {package} but {} cannot be copied to {}: {e}",
                built.display(),
                embedded.display()
            )
        });
    }
}

/// Trees vendored by `weir plugin new` (those that exist), relative to the
/// repository root.
const SDK_TREES: &[&str] = &["sdk", "contract", "wit", "sdk-python", "sdk-js"];
/// Single files vendored too: the workspace manifest (versions of the SDK's
/// dependencies, lints) and the lock file (the versions it was tested with).
const SDK_FILES: &[&str] = &["Cargo.toml", "Cargo.lock"];
/// Directory names never vendored: build output and local toolchains.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    "dist",
    ".git",
];

/// Write `$OUT_DIR/sdk_sources.rs`: `SDK_SOURCES`, every vendored file as
/// (path relative to the repository root, `include_bytes!` of it).
fn embed_sdk_sources(root: &Path, out_dir: &Path) {
    let mut files = Vec::new();
    for tree in SDK_TREES {
        let dir = root.join(tree);
        if dir.is_dir() {
            println!("cargo:rerun-if-changed={}", dir.display());
            collect_files(&dir, &mut files);
        }
    }
    for file in SDK_FILES {
        files.push(root.join(file));
    }
    files.sort();
    let mut table = String::from(
        "/// Every file `weir plugin new` may vendor: (path relative to the \
         repository root, contents).\n\
         pub static SDK_SOURCES: &[(&str, &[u8])] = &[\n",
    );
    for file in &files {
        let rel = file
            .strip_prefix(root)
            .expect("collected under the root")
            .to_string_lossy()
            .replace('\\', "/");
        table.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    table.push_str("];\n");
    let path = out_dir.join("sdk_sources.rs");
    std::fs::write(&path, table).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                collect_files(&path, files);
            }
        } else if kind.is_file() && !name.ends_with(".wasm") && !name.ends_with(".pyc") {
            files.push(path);
        }
    }
}

/// `<outer target dir>/wasm-builtin`, found from OUT_DIR
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
    base.join("wasm-builtin")
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
            "the {TARGET} target is not installed, so the builtin plugins cannot be built: \
             run `rustup target add {TARGET}` or `scripts/setup`"
        );
    }
}
