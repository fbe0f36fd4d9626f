//! Shared helpers of the Weir integration tests (the one test binary in
//! `tests/all/`) and benchmarks: one module per service or concern, so a
//! test module imports what it uses (`use weir_tests::kafka;`).

pub mod cql_responder;
pub mod dynamodb_support;
pub mod js;
pub mod kafka;
pub mod kafka_wire;
pub mod private_server;
pub mod prometheus;
pub mod reload;
pub mod sasl;
pub mod sql_servers;
pub mod stores;
pub mod tcp_proxy;
pub mod tls;
pub mod weir_run;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Build the `weir` binary (`--release` when `release`) and return its
/// path, as cargo reports it. Tests that drive `weir run` or
/// `weir plugin test` as a subprocess use this, since `CARGO_BIN_EXE_weir`
/// exists only inside the `weir` package.
pub fn build_weir(release: bool) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "weir",
        "--bin",
        "weir",
        "--message-format=json-render-diagnostics",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .expect("cannot run cargo to build the weir binary");
    assert!(
        out.status.success(),
        "`cargo build -p weir --bin weir` failed (see its output above)"
    );
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "weir")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no executable for the weir binary");
    hashed_twin(&exe).unwrap_or(exe)
}

/// The file in `deps/` that `exe` (cargo's uplifted `target/<profile>/weir`)
/// is a hard link of. Its name carries the build's hash, so two checkouts
/// sharing one `CARGO_TARGET_DIR` do not run each other's binary when one
/// rebuilds and replaces the uplifted link.
fn hashed_twin(exe: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(exe).ok()?;
    let deps = exe.parent()?.join("deps");
    let prefix = format!("{}-", exe.file_name()?.to_str()?);
    std::fs::read_dir(deps)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev())
        })
}

/// The `weir` executable in the profile of the running test (release when
/// the test itself was built with `--release`), built once per test binary.
/// `WEIR_BIN=/path/to/weir` uses that executable instead (for a target
/// directory shared by several checkouts, where another checkout's build
/// can replace `target/debug/weir` between the build and the test).
pub fn weir_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("WEIR_BIN") {
            return PathBuf::from(bin);
        }
        let release = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent()?.parent()?.file_name().map(|n| n == "release"))
            .unwrap_or(false);
        build_weir(release)
    })
}

/// Absolute paths of the plugins and fixtures built for wasm32-wasip2 by `build.rs`.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_plugin_was_built_as_a_component_file() {
        for (name, path) in super::plugins::ALL {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name} at {path}: {e}"));
            // A component's preamble: magic, then version 0x0d with layer 1.
            assert_eq!(
                &bytes[..8],
                b"\0asm\x0d\0\x01\0",
                "{name} at {path} is not a component"
            );
        }
        assert_ne!(
            std::fs::read(super::plugins::STAMP_A).unwrap(),
            std::fs::read(super::plugins::STAMP_B).unwrap(),
            "the two hot-reload versions must differ"
        );
    }
}
