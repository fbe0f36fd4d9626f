//! Errors of plugin reloads. Each names the plugin, so a log line or an
//! admin API answer says which plugin to look at.

use std::path::PathBuf;

use super::file::FileRefusal;
use crate::engine::PluginError;

/// Why a reload was refused. The running version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// No plugin of that name is configured.
    #[error("no plugin named `{0}`")]
    UnknownPlugin(String),
    /// The new file could not be read.
    #[error("plugin `{plugin}` ({}): cannot read the new file: {message}", path.display())]
    Read {
        /// Plugin name.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        message: String,
    },
    /// The file asked for may not be loaded (place, type or size).
    #[error("plugin `{plugin}` ({}): refusing to load the file: {reason}", path.display())]
    Refused {
        /// Plugin name.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: FileRefusal,
    },
    /// The new version failed to compile, link, instantiate or initialise.
    #[error(transparent)]
    Load(#[from] PluginError),
}

impl ReloadError {
    /// Whether the caller asked for something that does not exist (as
    /// opposed to a version that was refused).
    pub fn is_unknown_plugin(&self) -> bool {
        matches!(self, ReloadError::UnknownPlugin(_))
    }

    /// Whether the file asked for was refused before anything was loaded.
    pub fn is_refused_file(&self) -> bool {
        matches!(self, ReloadError::Refused { .. })
    }
}
