//! `weir plugin new NAME --lang LANG`: write a plugin project that builds
//! and passes its tests as generated, anywhere on disk.
//!
//! The project does not refer back to a clone of this repository: the SDK
//! sources and the WIT contract are embedded in the `weir` binary (see
//! `build.rs`, `sdk_sources.rs`) and vendored into the project's `vendor/`.
//! That was chosen over a git dependency (it needs a network the plugin
//! author may not have, and pins nothing to the host they run) and over
//! published packages (there are none yet): a vendored SDK is exactly the
//! one of the `weir` that will run the plugin, and the project builds with
//! the package registries alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

mod sources {
    include!(concat!(env!("OUT_DIR"), "/sdk_sources.rs"));
}
use sources::SDK_SOURCES;

/// `weir plugin new`
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits, `-` and `_`, starting
    /// with a letter (the crate, module or package name).
    pub name: String,
    /// The language of the plugin.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Directory to create (default: `./NAME`); it must not exist or be
    /// empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// A language `weir plugin new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust, with the `weir-sdk` crate (the packed world: the fast path).
    Rust,
    /// Python, with the `weir_sdk` package, built with componentize-py
    /// (the typed world).
    Python,
    /// JavaScript, with the `@weir/sdk` package, built with componentize-js
    /// (the typed world).
    Js,
    /// TypeScript, with the `@weir/sdk` package and its types.
    Ts,
}

impl Lang {
    fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::Ts => "ts",
        }
    }
}

/// A file of the project to write: path relative to its root, contents.
type File = (String, Vec<u8>);

/// `weir plugin new`.
pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let files = match args.lang {
        Lang::Rust => rust_project(&args.name)?,
        Lang::Python => python_project(&args.name)?,
        Lang::Js | Lang::Ts => js_project(&args.name, args.lang == Lang::Ts)?,
    };
    write_project(&dir, &files)?;
    super::output::stdout(&format!(
        "created the {} plugin `{}` in {} ({} files); its README.md says how to build and test it\n",
        args.lang.as_str(),
        args.name,
        dir.display(),
        files.len()
    ))
    .context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// A name that is a valid crate, Python module and npm package name alike.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !first_ok || !rest_ok || name.len() > 64 {
        bail!(
            "plugin name `{name}`: use lowercase letters, digits, `-` and `_`, starting with a \
             letter, at most 64 characters"
        );
    }
    Ok(())
}

/// Refuse a directory that holds anything, then write every file.
fn write_project(dir: &Path, files: &[File]) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        bail!(
            "{} exists and is not empty: choose another --dir",
            dir.display()
        );
    }
    for (rel, contents) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// An embedded file of the repository, by its path there.
fn embedded(path: &str) -> anyhow::Result<&'static [u8]> {
    SDK_SOURCES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, bytes)| *bytes)
        .with_context(|| format!("this weir binary was built without {path}"))
}

/// Every embedded file under `tree/`, vendored as `vendor/tree/...`.
fn vendor_tree(tree: &str, files: &mut Vec<File>) {
    let prefix = format!("{tree}/");
    for (path, bytes) in SDK_SOURCES {
        if path.starts_with(&prefix) {
            files.push((format!("vendor/{path}"), bytes.to_vec()));
        }
    }
}

fn fill(template: &str, name: &str) -> Vec<u8> {
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .into_bytes()
}

/// The crates vendored for a Rust plugin: (package name, directory).
const RUST_CRATES: &[(&str, &str)] = &[("weir-sdk", "sdk"), ("weir-contract", "contract")];

fn rust_project(name: &str) -> anyhow::Result<Vec<File>> {
    let mut files = Vec::new();
    for (_, dir) in RUST_CRATES {
        vendor_tree(dir, &mut files);
    }
    vendor_tree("wit", &mut files);
    files.push(("Cargo.toml".into(), rust_manifest(name)?.into_bytes()));
    // The versions the SDK was built and tested with; cargo drops the
    // entries this project does not use on its first build.
    files.push(("Cargo.lock".into(), embedded("Cargo.lock")?.to_vec()));
    for (rel, template) in [
        (
            "src/lib.rs",
            include_str!("../../templates/rust/src/lib.rs"),
        ),
        ("README.md", include_str!("../../templates/rust/README.md")),
        (
            "events.jsonl",
            include_str!("../../templates/rust/events.jsonl"),
        ),
        (
            "expected.jsonl",
            include_str!("../../templates/rust/expected.jsonl"),
        ),
        (".gitignore", include_str!("../../templates/rust/gitignore")),
    ] {
        files.push((rel.into(), fill(template, name)));
    }
    Ok(files)
}

/// The contract version the typed-world SDKs (Python, JavaScript) build
/// against: its WIT is vendored beside them.
const TYPED_WIT: &str = "wit/0.2.0";

/// Every embedded file under `from/`, vendored as `to/...`.
fn vendor_as(from: &str, to: &str, files: &mut Vec<File>) -> anyhow::Result<()> {
    let prefix = format!("{from}/");
    let before = files.len();
    for (path, bytes) in SDK_SOURCES {
        if let Some(rest) = path.strip_prefix(&prefix) {
            files.push((format!("{to}/{rest}"), bytes.to_vec()));
        }
    }
    if files.len() == before {
        bail!("this weir binary was built without {from}/");
    }
    Ok(())
}

fn python_project(name: &str) -> anyhow::Result<Vec<File>> {
    let mut files = Vec::new();
    vendor_as("sdk-python/weir_sdk", "vendor/weir_sdk", &mut files)?;
    // Where the SDK's build looks for the WIT when it is vendored.
    vendor_as(TYPED_WIT, "vendor/weir_sdk/wit", &mut files)?;
    for (rel, template) in [
        (
            "plugin.py",
            include_str!("../../templates/python/plugin.py"),
        ),
        (
            "tests/test_plugin.py",
            include_str!("../../templates/python/tests/test_plugin.py"),
        ),
        (
            "pyproject.toml",
            include_str!("../../templates/python/pyproject.toml"),
        ),
        (
            "README.md",
            include_str!("../../templates/python/README.md"),
        ),
        (
            "events.jsonl",
            include_str!("../../templates/python/events.jsonl"),
        ),
        (
            "expected.jsonl",
            include_str!("../../templates/python/expected.jsonl"),
        ),
        (
            ".gitignore",
            include_str!("../../templates/python/gitignore"),
        ),
    ] {
        files.push((rel.into(), fill(template, name)));
    }
    Ok(files)
}

/// The exact versions of a dependency the JavaScript SDK pins, so a
/// project resolves the tools the SDK was tested with.
fn js_sdk_pin(manifest: &serde_json::Value, name: &str) -> anyhow::Result<String> {
    ["dependencies", "devDependencies"]
        .iter()
        .find_map(|table| manifest[table][name].as_str())
        .map(str::to_owned)
        .with_context(|| format!("sdk-js/package.json does not pin {name}"))
}

fn js_project(name: &str, typescript: bool) -> anyhow::Result<Vec<File>> {
    let mut files = Vec::new();
    vendor_as("sdk-js", "vendor/weir-sdk", &mut files)?;
    // Where the SDK's build looks for the WIT when it is vendored.
    vendor_as(TYPED_WIT, "vendor/weir-sdk/wit", &mut files)?;
    let sdk: serde_json::Value = serde_json::from_slice(embedded("sdk-js/package.json")?)
        .context("the embedded sdk-js/package.json is not JSON")?;
    let (entry, test) = if typescript {
        ("src/plugin.ts", "tsc -p . && node --test build/test/")
    } else {
        ("src/plugin.js", "node --test test/")
    };
    let mut manifest = serde_json::json!({
        "name": name,
        "version": "0.1.0",
        "private": true,
        "description": "A Weir stream-transform plugin",
        "type": "module",
        "weir": { "entry": entry },
        "scripts": { "build": "weir-js-build .", "test": test },
        // The vendored SDK; `npm install` links it and installs its build
        // tools (componentize-js, esbuild) at the versions it pins.
        "dependencies": { "@weir/sdk": "file:vendor/weir-sdk" },
    });
    if typescript {
        manifest["devDependencies"] = serde_json::json!({
            "@types/node": js_sdk_pin(&sdk, "@types/node")?,
            "typescript": js_sdk_pin(&sdk, "typescript")?,
        });
    }
    let mut text = serde_json::to_string_pretty(&manifest)?;
    text.push('\n');
    files.push(("package.json".into(), text.into_bytes()));
    let readme = include_str!("../../templates/js/README.md")
        .replace(
            "{{lang}}",
            if typescript {
                "TypeScript"
            } else {
                "JavaScript"
            },
        )
        .replace("{{entry}}", entry);
    files.push(("README.md".into(), fill(&readme, name)));
    let templates: &[(&str, &str)] = if typescript {
        &[
            (
                "src/plugin.ts",
                include_str!("../../templates/ts/src/plugin.ts"),
            ),
            (
                "test/plugin.test.ts",
                include_str!("../../templates/ts/test/plugin.test.ts"),
            ),
            (
                "tsconfig.json",
                include_str!("../../templates/ts/tsconfig.json"),
            ),
        ]
    } else {
        &[
            (
                "src/plugin.js",
                include_str!("../../templates/js/src/plugin.js"),
            ),
            (
                "test/plugin.test.js",
                include_str!("../../templates/js/test/plugin.test.js"),
            ),
        ]
    };
    for (rel, template) in templates.iter().chain(&[
        (
            "events.jsonl",
            include_str!("../../templates/js/events.jsonl"),
        ),
        (
            "expected.jsonl",
            include_str!("../../templates/js/expected.jsonl"),
        ),
        (".gitignore", include_str!("../../templates/js/gitignore")),
    ]) {
        files.push(((*rel).into(), fill(template, name)));
    }
    Ok(files)
}

fn parse_toml(path: &str) -> anyhow::Result<toml::Table> {
    let text =
        std::str::from_utf8(embedded(path)?).with_context(|| format!("{path} is not UTF-8"))?;
    toml::from_str(text).with_context(|| format!("embedded {path} is not valid TOML"))
}

/// Names of the dependencies a vendored crate inherits from the workspace
/// (`name = { workspace = true }`), in every dependency table.
fn inherited_deps(manifest: &toml::Table, names: &mut BTreeSet<String>) {
    for (key, value) in manifest {
        let Some(table) = value.as_table() else {
            continue;
        };
        if matches!(
            key.as_str(),
            "dependencies" | "dev-dependencies" | "build-dependencies"
        ) {
            for (dep, spec) in table {
                if spec.get("workspace").and_then(toml::Value::as_bool) == Some(true) {
                    names.insert(dep.clone());
                }
            }
        } else if key == "target" {
            for platform in table.values().filter_map(toml::Value::as_table) {
                inherited_deps(platform, names);
            }
        }
    }
}

/// The project's `Cargo.toml`: the plugin crate, and a workspace holding
/// the vendored SDK crates, whose manifests (inheriting versions, lints and
/// dependencies from the workspace, as they do in this repository) are
/// copied unchanged.
fn rust_manifest(name: &str) -> anyhow::Result<String> {
    let root = parse_toml("Cargo.toml")?;
    let workspace = root
        .get("workspace")
        .and_then(toml::Value::as_table)
        .context("the embedded Cargo.toml has no [workspace]")?;
    let empty = toml::Table::new();
    let ws_deps = workspace
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .unwrap_or(&empty);

    let mut needed = BTreeSet::new();
    for (_, dir) in RUST_CRATES {
        inherited_deps(&parse_toml(&format!("{dir}/Cargo.toml"))?, &mut needed);
    }
    needed.insert("weir-sdk".to_owned());

    let mut out = format!(
        "[package]\n\
         name = \"{name}\"\n\
         version = \"0.1.0\"\n\
         edition = \"2024\"\n\
         publish = false\n\
         \n\
         [lib]\n\
         # cdylib: the Wasm component; rlib: so `cargo test` links the code natively.\n\
         crate-type = [\"cdylib\", \"rlib\"]\n\
         \n\
         [dependencies]\n\
         weir-sdk = {{ workspace = true }}\n\
         \n\
         # Small and fast plugins; a panic becomes a trap the host contains.\n\
         [profile.release]\n\
         opt-level = 3\n\
         lto = true\n\
         codegen-units = 1\n\
         panic = \"abort\"\n\
         strip = true\n\
         \n\
         # The Weir SDK is vendored in vendor/ by `weir plugin new`: the SDK of\n\
         # the weir binary that made this project, so it builds with crates.io\n\
         # alone. The workspace gives the vendored crates their versions,\n\
         # dependencies and lints.\n\
         [workspace]\n\
         members = [\".\"{}]\n\
         resolver = \"3\"\n\
         \n\
         [workspace.package]\n",
        RUST_CRATES
            .iter()
            .map(|(_, dir)| format!(", \"vendor/{dir}\""))
            .collect::<String>()
    );
    if let Some(package) = workspace.get("package").and_then(toml::Value::as_table) {
        for (key, value) in package {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    out.push_str("\n[workspace.dependencies]\n");
    for dep in &needed {
        if let Some((_, dir)) = RUST_CRATES.iter().find(|(crate_name, _)| crate_name == dep) {
            out.push_str(&format!("{dep} = {{ path = \"vendor/{dir}\" }}\n"));
            continue;
        }
        let spec = ws_deps.get(dep).with_context(|| {
            format!("the SDK inherits `{dep}`, absent from [workspace.dependencies]")
        })?;
        if spec.get("path").is_some() {
            bail!("the SDK depends on the workspace crate `{dep}`, which is not vendored");
        }
        out.push_str(&format!("{dep} = {spec}\n"));
    }
    if let Some(lints) = workspace.get("lints").and_then(toml::Value::as_table) {
        for (tool, table) in lints {
            out.push_str(&format!("\n[workspace.lints.{tool}]\n"));
            for (key, value) in table.as_table().into_iter().flatten() {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_every_language() {
        for good in ["tag", "drop-test-users", "a1_b"] {
            check_name(good).unwrap();
        }
        for bad in ["", "Tag", "1x", "a b", "a/b", "-x", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rust_manifest_declares_every_dependency_the_sdk_inherits() {
        let text = rust_manifest("my-plugin").unwrap();
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        let deps = manifest["workspace"]["dependencies"].as_table().unwrap();
        assert_eq!(deps["weir-sdk"]["path"].as_str(), Some("vendor/sdk"));
        assert_eq!(
            deps["weir-contract"]["path"].as_str(),
            Some("vendor/contract")
        );
        let mut needed = BTreeSet::new();
        inherited_deps(&parse_toml("sdk/Cargo.toml").unwrap(), &mut needed);
        inherited_deps(&parse_toml("contract/Cargo.toml").unwrap(), &mut needed);
        for dep in needed {
            assert!(deps.contains_key(&dep), "{dep} missing from\n{text}");
        }
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-plugin"));
        assert!(manifest["workspace"]["package"].get("edition").is_some());
    }

    #[test]
    fn a_rust_project_vendors_the_sdk_and_the_wit() {
        let files = rust_project("tagger").unwrap();
        let has = |p: &str| files.iter().any(|(f, _)| f == p);
        for p in [
            "vendor/sdk/Cargo.toml",
            "vendor/sdk/src/lib.rs",
            "vendor/contract/src/lib.rs",
            "vendor/wit/0.2.0/worlds.wit",
            "Cargo.lock",
            "src/lib.rs",
            "events.jsonl",
            "expected.jsonl",
            "README.md",
        ] {
            assert!(has(p), "{p} missing");
        }
        let lib = &files.iter().find(|(f, _)| f == "src/lib.rs").unwrap().1;
        let lib = String::from_utf8_lossy(lib);
        assert!(
            lib.contains("\"tagger\".into()") && !lib.contains("{{"),
            "{lib}"
        );
    }

    #[test]
    fn a_python_project_vendors_the_sdk_with_its_wit() {
        let files = python_project("tagger").unwrap();
        let has = |p: &str| files.iter().any(|(f, _)| f == p);
        for p in [
            "vendor/weir_sdk/__init__.py",
            "vendor/weir_sdk/build.py",
            "vendor/weir_sdk/wit/worlds.wit",
            "plugin.py",
            "tests/test_plugin.py",
            "pyproject.toml",
        ] {
            assert!(has(p), "{p} missing");
        }
        assert!(!files.iter().any(|(f, _)| f.contains("__pycache__")));
    }

    #[test]
    fn a_typescript_project_links_the_vendored_sdk_and_pins_its_tools() {
        let files = js_project("tagger", true).unwrap();
        let file = |p: &str| {
            files
                .iter()
                .find(|(f, _)| f == p)
                .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_else(|| panic!("{p} missing"))
        };
        let manifest: serde_json::Value = serde_json::from_str(&file("package.json")).unwrap();
        assert_eq!(manifest["name"], "tagger");
        assert_eq!(manifest["weir"]["entry"], "src/plugin.ts");
        assert_eq!(
            manifest["dependencies"]["@weir/sdk"],
            "file:vendor/weir-sdk"
        );
        let sdk: serde_json::Value =
            serde_json::from_slice(embedded("sdk-js/package.json").unwrap()).unwrap();
        assert_eq!(
            manifest["devDependencies"]["typescript"],
            sdk["devDependencies"]["typescript"]
        );
        for p in [
            "vendor/weir-sdk/package.json",
            "vendor/weir-sdk/bin/weir-js-build.mjs",
            "vendor/weir-sdk/wit/worlds.wit",
            "test/plugin.test.ts",
            "tsconfig.json",
        ] {
            file(p);
        }
        assert!(file("README.md").contains("in TypeScript"));
        assert!(!files.iter().any(|(f, _)| f.contains("node_modules")));
        let js = js_project("tagger", false).unwrap();
        assert!(js.iter().any(|(f, _)| f == "src/plugin.js"));
        assert!(!js.iter().any(|(f, _)| f == "tsconfig.json"));
    }

    #[test]
    fn a_non_empty_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep"), "x").unwrap();
        let err = write_project(dir.path(), &[("a".into(), b"b".to_vec())]).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("exists and is not empty: choose another --dir")
        );
        assert!(!dir.path().join("a").exists());
    }
}
