//! The engine's errors. Every plugin error names the plugin and its file,
//! so a message read in a log or a terminal says which plugin to fix.

use std::fmt;
use std::path::PathBuf;

use super::world::SUPPORTED;

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
    /// The component implements a version of the contract this host does
    /// not speak.
    #[error(
        "built against weir:transform@{found}, this host supports {}",
        SUPPORTED
    )]
    ContractVersion {
        /// The version the component was built against.
        found: String,
    },
    /// The component exports no plugin interface of any version.
    #[error(
        "exports no weir:transform plugin interface (is it a Weir plugin? build it with weir-sdk \
         or against wit/); this host supports {}",
        SUPPORTED
    )]
    NotAPlugin,
    /// The component exports more than one plugin interface, so which one
    /// to call is ambiguous.
    #[error("exports several plugin interfaces ({0}); a plugin implements exactly one world")]
    SeveralWorlds(String),
    /// The component imports an interface of another contract version
    /// than the one it exports.
    #[error("imports {import} but exports {export}; build it against one contract version")]
    MixedVersions {
        /// The offending import.
        import: String,
        /// The plugin interface it exports.
        export: String,
    },
    /// The component imports an interface of the contract this host does
    /// not know.
    #[error("imports {0}, which is no interface of the contract this host provides")]
    UnknownImport(String),
    /// The component imports a host interface its config does not grant.
    #[error(
        "imports {import}, but its config grants no {grant} (this version of weir cannot grant it yet)"
    )]
    NotGranted {
        /// The interface, e.g. `weir:transform/state@0.2.0`.
        import: String,
        /// The grant it needs, as the config names it.
        grant: &'static str,
    },
    /// The component imports `lookup` but no store is granted to it.
    #[error(
        "imports {0}, but its config grants no lookups (set `lookups = [\"STORE\"]` in its [plugins.NAME] table)"
    )]
    LookupsNotGranted(String),
    /// A lookup store granted to the plugin was down or too slow during a
    /// call: transient, the batch is retried as a whole.
    #[error("{0}")]
    LookupUnavailable(String),
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
