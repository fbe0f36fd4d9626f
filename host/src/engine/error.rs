//! The engine's errors. Every plugin error names the plugin and its file,
//! so a message read in a log or a terminal says which plugin to fix.

use std::fmt;
use std::path::PathBuf;

use weir_contract::CONTRACT_VERSION;

/// The engine itself could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the engine configuration.
    #[error("cannot create the Wasm engine: {0}")]
    Config(String),
    /// The epoch ticker thread could not be started.
    #[error("cannot start the Wasm deadline ticker thread: {0}")]
    Ticker(#[source] std::io::Error),
}

/// A plugin could not be loaded, instantiated or initialised.
///
/// Displays as ``plugin `NAME` (PATH): REASON``.
#[derive(Debug, thiserror::Error)]
pub struct PluginError {
    /// The plugin's name (its config key, or the file stem for `weir plugin`).
    pub plugin: String,
    /// The `.wasm` file.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: PluginErrorKind,
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin `{}` ({}): {}",
            self.plugin,
            self.path.display(),
            self.kind
        )
    }
}

/// Why a plugin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(String),
    /// The file does not start with the WebAssembly magic bytes.
    #[error("not a WebAssembly file")]
    NotWasm,
    /// A core module, as built for `wasm32-unknown-unknown` or `wasm32-wasip1`.
    #[error("is a core module, not a component (build with --target wasm32-wasip2)")]
    CoreModule,
    /// wasmtime could not compile or validate the component.
    #[error("not a valid component: {0}")]
    Invalid(String),
    /// The component implements another version of the contract.
    #[error(
        "built against weir:transform@{found}, this host supports weir:transform@{}",
        CONTRACT_VERSION
    )]
    ContractVersion {
        /// The version the component was built against.
        found: String,
    },
    /// The component does not export the plugin interface at all.
    #[error(
        "does not export weir:transform/plugin@{} (is it a Weir plugin? build it with weir-sdk)",
        CONTRACT_VERSION
    )]
    NotAPlugin,
    /// The component imports something the host does not provide.
    #[error("cannot be linked: {0}")]
    Link(String),
    /// Creating an instance failed.
    #[error("cannot be instantiated: {0}")]
    Instantiate(String),
    /// `init` returned `err(message)`.
    #[error("init refused its config: {0}")]
    InitRefused(String),
    /// `init` trapped, ran out of time or memory.
    #[error("init failed: {0}")]
    InitFailed(String),
    /// The host began shutting down while poison events of a batch were
    /// being isolated; the batch was left unfinished (and uncommitted).
    #[error("poison-event isolation interrupted by shutdown; the batch is not committed")]
    Interrupted,
}
