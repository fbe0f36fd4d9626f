//! The `weir` command line: argument parsing and dispatch. Each subcommand
//! lives in its own module; this is the only place that uses `anyhow`-style
//! reporting and process exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod golden;
pub mod output;
pub mod plugin;
pub mod plugin_build;
pub mod run;
pub mod scaffold;
pub mod validate;

/// Weir: a WebAssembly plugin host for stream transforms.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: boxing the `plugin test` arguments would buy
// nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run every pipeline of a config file until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// Check a config file and report every problem at once.
    Validate(validate::ValidateArgs),
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Parse the arguments, run the command, and turn its result into an exit
/// code with the error chain printed on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::tls::install_crypto_provider();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::validate(args),
        Command::Plugin(cmd) => plugin::plugin(cmd),
    };
    match result {
        Ok(code) => code,
        // The reader of our stdout went away (`| head`): it has what it
        // wanted.
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let message = format!("error: {err:#}");
            output::stderr_line(&crate::secrets::redact(&message));
            ExitCode::FAILURE
        }
    }
}
