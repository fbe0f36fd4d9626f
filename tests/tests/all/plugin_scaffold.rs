//! `weir plugin new` → `weir plugin build` → `weir plugin test`, as a
//! plugin author outside this repository runs them: each project is
//! generated in a temporary directory outside the clone, built with its
//! language's toolchain, and run by the real `weir` binary on the sample
//! events it was generated with, against the expected outcomes it was
//! generated with.
//!
//! A generated Rust project builds into a target directory shared by every
//! run (`<this build's target dir>/plugin-projects`), so its dependencies
//! compile once, not once per test run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use weir_tests::weir_bin;

/// The target directory of this test build (`<target>/debug/deps/all-*`).
fn shared_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary sits in <target>/<profile>/deps");
    target.join("plugin-projects")
}

/// A temporary directory that is not inside this repository, so nothing
/// the project does can find the clone by walking up.
fn outside_the_clone() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("weir-plugin-project-")
        .tempdir_in(std::env::temp_dir())
        .expect("cannot create a temporary directory");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .canonicalize()
        .unwrap();
    assert!(
        !dir.path().canonicalize().unwrap().starts_with(&repo),
        "{} is inside the clone {}",
        dir.path().display(),
        repo.display()
    );
    dir
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn weir(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(weir_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("WEIR_CACHE_DIR", cwd.join(".weir-cache"))
        .env("WEIR_LOG", "warn")
        .env("CARGO_TARGET_DIR", shared_target_dir());
    cmd
}

/// `weir plugin build` in `project`: the one stdout line, an existing
/// component file.
fn build(project: &Path) -> PathBuf {
    build_with(project, &[])
}

fn build_with(project: &Path, env: &[(&str, &std::ffi::OsStr)]) -> PathBuf {
    let mut cmd = weir(project, &["plugin", "build"]);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "weir plugin build failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the .wasm path alone: {stdout}");
    let wasm = PathBuf::from(lines[0]);
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    // A component's preamble: magic, then version 0x0d with layer 1.
    assert_eq!(
        &bytes[..8],
        b"\0asm\x0d\0\x01\0",
        "{} is not a component",
        wasm.display()
    );
    wasm
}

/// `weir plugin test WASM --input events.jsonl --expect expected.jsonl`.
fn test_against_golden(project: &Path, wasm: &Path) -> Output {
    run(&mut weir(
        project,
        &[
            "plugin",
            "test",
            wasm.to_str().unwrap(),
            "--input",
            "events.jsonl",
            "--expect",
            "expected.jsonl",
        ],
    ))
}

#[test]
fn a_new_rust_plugin_builds_and_passes_its_tests_outside_the_clone() {
    let dir = outside_the_clone();
    let out = run(&mut weir(
        dir.path(),
        &[
            "plugin", "new", "tagger", "--lang", "rust", "--dir", "tagger",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let project = dir.path().join("tagger");
    assert_eq!(
        text(&out.stdout).lines().next(),
        Some(
            format!(
                "created the rust plugin `tagger` in tagger ({} files); its README.md says how to \
                 build and test it",
                count_files(&project)
            )
            .as_str()
        )
    );
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    for command in ["cargo test", "weir plugin build", "--expect expected.jsonl"] {
        assert!(readme.contains(command), "the README lacks `{command}`");
    }

    // Its own unit tests pass as generated.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tests = run(Command::new(&cargo)
        .arg("test")
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", shared_target_dir()));
    assert!(
        tests.status.success(),
        "cargo test failed:\n{}",
        text(&tests.stderr)
    );
    assert!(
        text(&tests.stdout).contains("test result: ok. 3 passed"),
        "{}",
        text(&tests.stdout)
    );

    let wasm = build(&project);
    assert_eq!(wasm.file_name().unwrap(), "tagger.wasm");
    let checked = test_against_golden(&project, &wasm);
    assert!(
        checked.status.success(),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    assert_eq!(
        text(&checked.stdout),
        "all 5 outcomes match expected.jsonl\n"
    );

    // Edit → build → test: the golden file catches the change.
    let lib = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("\"meta.plugin\"", "\"meta.by\"")).unwrap();
    let wasm = build(&project);
    let checked = test_against_golden(&project, &wasm);
    assert_eq!(checked.status.code(), Some(1), "{}", text(&checked.stderr));
    let report = text(&checked.stdout);
    assert!(
        report.contains(
            "input line 1 (expected at expected.jsonl line 1):\n  \
             outputs[0].value.meta.plugin: expected \"tagger\", missing\n  \
             outputs[0].value.meta.by: unexpected \"tagger\"\n"
        ),
        "{report}"
    );
    assert!(
        report.ends_with("3 of 5 outcomes differ from expected.jsonl\n"),
        "{report}"
    );
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn plugin_new_refuses_a_bad_name_and_a_used_directory() {
    let dir = outside_the_clone();
    let out = run(&mut weir(
        dir.path(),
        &["plugin", "new", "My Plugin", "--lang", "rust"],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("plugin name `My Plugin`: use lowercase letters"),
        "{}",
        text(&out.stderr)
    );
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/notes.txt"), "mine").unwrap();
    let out = run(&mut weir(
        dir.path(),
        &["plugin", "new", "taken", "--lang", "rust"],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("taken exists and is not empty"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("taken")).unwrap().count(),
        1
    );

    let out = run(&mut weir(dir.path(), &["plugin", "build", "."]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a plugin project"),
        "{}",
        text(&out.stderr)
    );
}

/// The Python that `scripts/setup` installs componentize-py and pytest into
/// (`.services/plugin-venv`), or `$WEIR_PYTHON`.
fn setup_python() -> PathBuf {
    if let Some(python) = std::env::var_os("WEIR_PYTHON") {
        return PathBuf::from(python);
    }
    let services = std::env::var_os("WEIR_SERVICES_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ sits in the repository")
                .join(".services")
        },
        PathBuf::from,
    );
    let python = services.join("plugin-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup (it installs componentize-py and pytest there)",
        python.display()
    );
    python
}

#[test]
fn a_new_python_plugin_builds_and_passes_its_tests_outside_the_clone() {
    let dir = outside_the_clone();
    let python = setup_python();
    let out = run(&mut weir(
        dir.path(),
        &[
            "plugin", "new", "tagger", "--lang", "python", "--dir", "tagger",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let project = dir.path().join("tagger");
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    for command in [
        "python3 -m venv .venv",
        "pip install componentize-py==",
        "-m pytest",
        "weir plugin build",
        "--expect expected.jsonl",
    ] {
        assert!(readme.contains(command), "the README lacks `{command}`");
    }

    // Its own tests pass as generated, with the vendored SDK.
    let tests = run(Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&project)
        .env_remove("PYTHONPATH"));
    assert!(
        tests.status.success(),
        "pytest failed:\n{}{}",
        text(&tests.stdout),
        text(&tests.stderr)
    );
    assert!(
        text(&tests.stdout).contains("3 passed"),
        "{}",
        text(&tests.stdout)
    );

    let wasm = build_with(&project, &[("WEIR_PYTHON", python.as_os_str())]);
    assert_eq!(wasm, project.join("build/tagger.wasm"));
    let checked = test_against_golden(&project, &wasm);
    assert!(
        checked.status.success(),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    assert_eq!(
        text(&checked.stdout),
        "all 5 outcomes match expected.jsonl\n"
    );

    // Without a toolchain, the build says how to get one.
    let out = run(weir(&project, &["plugin", "build"]).env_remove("WEIR_PYTHON"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("create the project's virtualenv (`python3 -m venv .venv"),
        "{}",
        text(&out.stderr)
    );
}

/// `weir plugin new` → `npm install` → `npm test` → `weir plugin build` →
/// `weir plugin test` for `--lang js` or `--lang ts`. `npm install` takes
/// the SDK's build tools from npm's cache where `scripts/setup`'s `npm ci`
/// left them (the registry otherwise).
fn js_project_loop(lang: &str, entry: &str) {
    let dir = outside_the_clone();
    let out = run(&mut weir(
        dir.path(),
        &["plugin", "new", "tagger", "--lang", lang, "--dir", "tagger"],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let project = dir.path().join("tagger");
    assert!(project.join(entry).is_file(), "{entry} missing");
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    for command in [
        "npm install",
        "npm test",
        "weir plugin build",
        "--expect expected.jsonl",
    ] {
        assert!(readme.contains(command), "the README lacks `{command}`");
    }

    // Before `npm install` the build says what to do.
    let out = run(&mut weir(&project, &["plugin", "build"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no node_modules/@weir/sdk: run `npm install` there first"),
        "{}",
        text(&out.stderr)
    );

    let npm = |args: &[&str]| {
        let out = run(Command::new("npm").args(args).current_dir(&project));
        assert!(
            out.status.success(),
            "npm {args:?} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    };
    npm(&["install", "--prefer-offline", "--no-audit", "--no-fund"]);
    let tests = npm(&["test"]);
    assert!(
        text(&tests.stdout).contains("# pass 3"),
        "{}",
        text(&tests.stdout)
    );
    assert!(
        text(&tests.stdout).contains("# fail 0"),
        "{}",
        text(&tests.stdout)
    );

    let wasm = build(&project);
    assert_eq!(wasm, project.join("dist/tagger.wasm"));
    let checked = test_against_golden(&project, &wasm);
    assert!(
        checked.status.success(),
        "{}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    assert_eq!(
        text(&checked.stdout),
        "all 5 outcomes match expected.jsonl\n"
    );
}

#[test]
fn a_new_javascript_plugin_builds_and_passes_its_tests_outside_the_clone() {
    js_project_loop("js", "src/plugin.js");
}

#[test]
fn a_new_typescript_plugin_builds_and_passes_its_tests_outside_the_clone() {
    js_project_loop("ts", "src/plugin.ts");
}
