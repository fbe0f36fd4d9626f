//! The JavaScript/TypeScript plugins of the tests, built on first use with
//! the project's own build command (`sdk-js/bin/weir-js-build.mjs`, run by
//! `scripts/node`) from the npm tools `scripts/setup` installed.
//!
//! Built at test time, not by `build.rs`: componentize-js takes seconds
//! per component, so only the tests that use a JS plugin pay for it, and
//! its content-addressed cache (`~/.cache/weir/js`, outside the clone like
//! `CARGO_TARGET_DIR`) makes every later build of an unchanged plugin a
//! copy. A missing toolchain fails the test with the command to run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The TypeScript port of the `router` example (`plugins/router-ts`).
pub const ROUTER_TS: &str = "plugins/router-ts";
/// Throws a TypeError on events with `"poison": true` (`plugins/js-fixtures`).
pub const THROW_ON_EVENT: &str = "plugins/js-fixtures/throw-on-event.js";
/// Never returns on events with `"loop": true` (`plugins/js-fixtures`).
pub const ENDLESS_LOOP: &str = "plugins/js-fixtures/endless-loop.js";
/// The benchmark's reference transform in JavaScript (`plugins/js-fixtures`).
pub const REFERENCE_JS: &str = "plugins/js-fixtures/reference.js";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
}

/// The path of the component built from `source` (one of the constants
/// above, relative to the repository), building it once per process.
pub fn component(source: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(source) {
        return path.clone();
    }
    let path = build(source);
    built.insert(source.to_owned(), path.clone());
    path
}

fn build(source: &str) -> PathBuf {
    let root = repo_root();
    assert!(
        root.join("node_modules/@bytecodealliance/componentize-js")
            .is_dir(),
        "the npm tools are not installed in {}: run scripts/setup",
        root.join("node_modules").display()
    );
    let name = source
        .trim_end_matches(".js")
        .rsplit('/')
        .next()
        .unwrap_or(source);
    // The build script's output directory: inside the target directory, per build.
    let out = Path::new(env!("OUT_DIR"))
        .join("js-plugins")
        .join(format!("{name}.wasm"));
    let output = Command::new(root.join("scripts/node"))
        .current_dir(root)
        .arg("sdk-js/bin/weir-js-build.mjs")
        .arg(source)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/node to build {source}: {e}"));
    assert!(
        output.status.success(),
        "building {source} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(
        Path::new(&printed),
        out,
        "the build printed another path than the one asked for"
    );
    out
}
