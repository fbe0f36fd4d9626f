//! `weir validate <config>`: load a config file and print every problem at
//! once, one per line, gcc-style (`weir.toml:12:5: sinks.out: unknown field
//! ...`, warnings as `weir.toml:3:1: warning: ...`) so editors can jump to
//! them. Exit status 1 if there is any error; otherwise a one-line summary
//! and status 0. Also the loader `weir run` uses.
//!
//! Once the file itself is free of errors, every plugin a pipeline uses is
//! loaded the way `weir run` loads it: compiled, checked against the
//! contract and instantiated in its sandbox with its limits and grants,
//! and its `init` run with its config (no source, no sink). A refusal is
//! reported at the plugin's `config`, any other failure at its `path`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Config, ConfigErrors, Diagnostic, LoadedConfig, Severity};
use crate::engine::PluginErrorKind;

/// Arguments of `weir validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The config file (TOML).
    pub config: PathBuf,
}

/// Check `args.config`, print what is wrong with it (stdout), and say so
/// in the exit status.
pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let (report, ok) = report(&args.config);
    super::output::stdout(&crate::secrets::redact(&report))?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `weir validate` prints for `path` (every line ends in a newline),
/// and whether the config is free of errors.
pub fn report(path: &Path) -> (String, bool) {
    let loaded = Config::load(path).and_then(|loaded| {
        let errors = plugin_problems(&loaded);
        if errors.is_empty() {
            Ok(loaded)
        } else {
            Err(ConfigErrors {
                errors,
                warnings: loaded.warnings,
            })
        }
    });
    match loaded {
        Ok(loaded) => {
            let mut out = String::new();
            for w in &loaded.warnings {
                out.push_str(&format!("{w}\n"));
            }
            out.push_str(&loaded.summary());
            out.push('\n');
            (out, true)
        }
        Err(errors) => {
            let mut out = String::new();
            for d in errors.all() {
                out.push_str(&format!("{d}\n"));
            }
            out.push_str(&failure_summary(path, &errors));
            out.push('\n');
            (out, false)
        }
    }
}

/// Load every plugin a pipeline of `loaded` uses as `weir run` would
/// (compile, link, instantiate, `init` with its config), and say why each
/// one that fails does: an `init` refusal at the plugin's `config` (its
/// table when it has none), anything else at its `path`.
pub fn plugin_problems(loaded: &LoadedConfig) -> Vec<Diagnostic> {
    let config = &loaded.config;
    let used: std::collections::BTreeSet<&String> =
        config.pipelines.values().flat_map(|p| &p.plugins).collect();
    if used.is_empty() {
        return Vec::new();
    }
    let diagnostic = |key: String, message: String| Diagnostic {
        severity: Severity::Error,
        file: loaded.path.clone(),
        location: loaded.locations.nearest(&key),
        key,
        message,
    };
    let engine = match crate::runtime::engine(config, &loaded.dir) {
        Ok(engine) => engine,
        Err(e) => return vec![diagnostic("host".to_owned(), e.to_string())],
    };
    // Stores open without connecting (a file store reads its file), so a
    // plugin importing `lookup` is checked with the stores its config
    // grants, as `weir run` loads it.
    let lookups = match crate::lookup::Lookups::open(&config.lookups, &loaded.dir) {
        Ok(lookups) => lookups,
        Err(e) => {
            return vec![diagnostic(
                crate::config::join_key("lookups", &e.store),
                e.to_string(),
            )];
        }
    };
    let mut problems = Vec::new();
    for name in used {
        let Some(plugin) = config.plugins.get(name) else {
            continue;
        };
        let mut spec = crate::runtime::plugin_spec(name, plugin, &loaded.dir);
        spec.grants.lookups = lookups.grant(&plugin.lookups);
        if let Err(e) = engine.load(&spec) {
            let base = crate::config::join_key("plugins", name);
            let at = match e.kind {
                PluginErrorKind::InitRefused(_) => "config",
                _ => "path",
            };
            problems.push(diagnostic(
                crate::config::join_key(&base, at),
                format!("plugin `{name}`: {}", e.kind),
            ));
        }
    }
    problems
}

/// `weir.toml: 3 errors, 1 warning`.
fn failure_summary(path: &Path, errors: &ConfigErrors) -> String {
    format!("{}: {}", path.display(), counts(errors))
}

/// `3 errors, 1 warning`.
fn counts(errors: &ConfigErrors) -> String {
    let plural = |n: usize, noun: &str| {
        if n == 1 {
            format!("1 {noun}")
        } else {
            format!("{n} {noun}s")
        }
    };
    let mut line = plural(errors.errors.len(), "error");
    if !errors.warnings.is_empty() {
        line.push_str(&format!(", {}", plural(errors.warnings.len(), "warning")));
    }
    line
}

/// Load and validate a config for `weir run`: the typed config and the
/// directory relative paths in it are resolved against. Warnings go to
/// stderr; errors come back as one error listing all of them, one per
/// line.
pub fn load_for_run(path: &Path) -> anyhow::Result<(Config, PathBuf)> {
    let loaded = load_checked(path)?;
    for w in &loaded.warnings {
        super::output::stderr_line(&crate::secrets::redact(&w.to_string()));
    }
    Ok((loaded.config, loaded.dir))
}

/// [`Config::load`], with the errors turned into one `anyhow` error whose
/// message is the gcc-style list.
pub fn load_checked(path: &Path) -> anyhow::Result<LoadedConfig> {
    Config::load(path).map_err(|errors| {
        anyhow::anyhow!(
            "invalid config {} ({}):\n{errors}",
            path.display(),
            counts(&errors)
        )
    })
}
