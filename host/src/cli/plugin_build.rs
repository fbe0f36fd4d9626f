//! `weir plugin build [DIR]`: build a plugin project (as `weir plugin new`
//! writes them) into a component with its language's toolchain, and print
//! the `.wasm` path on stdout — the only thing printed there, so
//! `weir plugin test "$(weir plugin build)"` works. The toolchain's own
//! progress and errors go to stderr as it prints them.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

/// `weir plugin build`
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project directory (default: the current directory).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// The toolchain a project is built with, found from the files it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toolchain {
    /// `Cargo.toml`: cargo for wasm32-wasip2.
    Cargo,
    /// `pyproject.toml` and `plugin.py`: the Python SDK's build
    /// (componentize-py).
    ComponentizePy,
    /// `package.json`: the JavaScript SDK's `weir-js-build` (esbuild and
    /// componentize-js), for JavaScript and TypeScript alike.
    WeirJsBuild,
}

fn detect(dir: &Path) -> anyhow::Result<Toolchain> {
    if dir.join("Cargo.toml").is_file() {
        return Ok(Toolchain::Cargo);
    }
    if dir.join("pyproject.toml").is_file() && dir.join("plugin.py").is_file() {
        return Ok(Toolchain::ComponentizePy);
    }
    if dir.join("package.json").is_file() {
        return Ok(Toolchain::WeirJsBuild);
    }
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    bail!(
        "{} is not a plugin project: it has no Cargo.toml (Rust), pyproject.toml with plugin.py (Python) \
         or package.json (JavaScript, TypeScript); `weir plugin new` writes them",
        dir.display()
    )
}

/// `weir plugin build`.
pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    // Absolute, so the printed path works from any directory.
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let wasm = match detect(&dir)? {
        Toolchain::Cargo => build_rust(&dir)?,
        Toolchain::ComponentizePy => build_python(&dir)?,
        Toolchain::WeirJsBuild => build_js(&dir)?,
    };
    super::output::stdout(&format!("{}\n", wasm.display()))
        .context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

const RUST_TARGET: &str = "wasm32-wasip2";

/// `cargo build --target wasm32-wasip2 --release`; the component is the
/// `.wasm` file of the project's own `cdylib` target, as cargo reports it
/// (wherever `CARGO_TARGET_DIR` puts it).
fn build_rust(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir
        .join("Cargo.toml")
        .canonicalize()
        .with_context(|| format!("cannot read {}", dir.join("Cargo.toml").display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--release", "--target", RUST_TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}: is Rust installed?", cargo.to_string_lossy()))?;
    if !output.status.success() {
        bail!(
            "cargo build failed ({}); a missing `{RUST_TARGET}` target is added with \
             `rustup target add {RUST_TARGET}`",
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    rust_artifact(&stdout, &manifest).with_context(|| {
        format!(
            "cargo built {} but produced no .wasm: is its [lib] crate-type \"cdylib\"?",
            manifest.display()
        )
    })
}

/// The interpreter whose environment has componentize-py: `$WEIR_PYTHON`,
/// else the project's `.venv` (its README says how to make it).
fn python_interpreter(dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(python) = std::env::var_os("WEIR_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let venv = dir.join(".venv/bin/python");
    if venv.is_file() {
        return Ok(venv);
    }
    bail!(
        "no Python toolchain for {}: create the project's virtualenv (`python3 -m venv .venv && \
         .venv/bin/pip install componentize-py==0.25.1 pytest==8.4.2`) or set WEIR_PYTHON to an \
         interpreter that has componentize-py",
        dir.display()
    )
}

/// The `[project] name` of `pyproject.toml`, the component's file name.
fn python_project_name(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    manifest
        .get("project")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{} has no [project] name", path.display()))
}

/// `python -m weir_sdk.build DIR -o DIR/build/NAME.wasm`, with the
/// project's vendored SDK first on the Python path.
fn build_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let python = python_interpreter(dir)?;
    let name = python_project_name(dir)?;
    let wasm = dir.join("build").join(format!("{name}.wasm"));
    let mut path = vec![dir.join("vendor")];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        path.extend(std::env::split_paths(&existing));
    }
    let status = Command::new(&python)
        .args(["-m", "weir_sdk.build"])
        .arg(dir)
        .arg("-o")
        .arg(&wasm)
        .env(
            "PYTHONPATH",
            std::env::join_paths(path).context("the project path cannot be on PYTHONPATH")?,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !status.success() {
        bail!("the Python build failed ({status}); its error is above");
    }
    Ok(wasm)
}

/// `node node_modules/@weir/sdk/bin/weir-js-build.mjs DIR`: the build of
/// the SDK the project's `npm install` linked; it prints the `.wasm` path.
fn build_js(dir: &Path) -> anyhow::Result<PathBuf> {
    let script = dir.join("node_modules/@weir/sdk/bin/weir-js-build.mjs");
    if !script.is_file() {
        bail!(
            "{} has no node_modules/@weir/sdk: run `npm install` there first",
            dir.display()
        );
    }
    let node = std::env::var_os("WEIR_NODE").unwrap_or_else(|| "node".into());
    let output = Command::new(&node)
        .arg(&script)
        .arg(dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| {
            format!(
                "cannot run {}: is Node.js 20 or newer installed? ($WEIR_NODE names another)",
                node.to_string_lossy()
            )
        })?;
    if !output.status.success() {
        bail!(
            "the JavaScript build failed ({}); its error is above",
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let wasm = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| dir.join(l.trim()))
        .context("the JavaScript build printed no .wasm path")?;
    Ok(wasm)
}

/// The `.wasm` of the `cdylib` built for the package at `manifest`, from
/// cargo's JSON messages.
fn rust_artifact(messages: &str, manifest: &Path) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest))
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
        })
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_is_the_projects_own_cdylib() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","manifest_path":"/p/vendor/sdk/Cargo.toml","target":{"kind":["lib"]},"filenames":["/t/libweir_sdk.rlib"]}"#,
            "\n",
            "not json\n",
            r#"{"reason":"compiler-artifact","manifest_path":"/p/Cargo.toml","target":{"kind":["cdylib","rlib"]},"filenames":["/t/wasm32-wasip2/release/tag.wasm","/t/wasm32-wasip2/release/libtag.rlib"]}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            rust_artifact(messages, Path::new("/p/Cargo.toml")),
            Some(PathBuf::from("/t/wasm32-wasip2/release/tag.wasm"))
        );
        assert_eq!(rust_artifact(messages, Path::new("/q/Cargo.toml")), None);
    }

    #[test]
    fn a_directory_without_a_project_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = detect(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is not a plugin project"), "{err}");
    }
}
