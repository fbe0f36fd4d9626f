//! Plugins as the running host sees them: each configured plugin, the
//! version it runs, and swapping versions while events flow.
//!
//! - `registry`: [`PluginRegistry`], name -> current version, load time,
//!   history, counters, last reload error, and the reload procedure
//!   (compile and `init` off the hot path, one ready instance per pipeline
//!   stage, hand-over).
//! - `stage`: [`ReloadableTransform`], the [`Transform`](crate::engine::Transform)
//!   a pipeline runs, which takes a new version only at the start of a
//!   batch, so every batch runs wholly on one version; optional version
//!   header on outputs; rollback of a version that traps on everything.
//! - [`watch`]: reload on a change of the plugin file on disk.
//! - `file`: [`ReloadRules`], which files a reload through the admin API
//!   may read, and reading them with a size cap.
//! - `error`: [`ReloadError`].

mod error;
mod file;
mod registry;
mod stage;
pub mod watch;

pub use error::ReloadError;
pub use file::{DEFAULT_MAX_PLUGIN_BYTES, FileRefusal, ReloadRules};
pub use registry::{
    PluginCounters, PluginOptions, PluginRegistry, PluginSnapshot, ReloadFailure, ReloadOutcome,
    ReloadRecord, ReloadTrigger, StageSnapshot, VersionRecord,
};
pub use stage::{ReloadableTransform, SwapRecord};
pub use watch::WatchMode;
