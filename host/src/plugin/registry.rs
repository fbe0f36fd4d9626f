//! The plugin registry: every configured plugin, the version it runs, its
//! reload history and counters, and the reload procedure.
//!
//! A reload runs on the caller's thread (a blocking task, never a
//! processor thread): read and hash the file (an unchanged file with
//! unchanged settings is not reloaded), compile and `init` the new version
//! ([`Engine::load`]), make one ready instance per pipeline stage that uses
//! the plugin, and only then hand each stage its instance (see
//! [`super::stage`]). Any failure before the hand-over leaves every stage on
//! the running version and is recorded (log, metric, admin API).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::ReloadError;
use super::file::{self, FileRefusal, ReloadRules};
use super::stage::{Reaper, ReloadableTransform, Stage, SwapRecord};
use super::watch::WatchMode;
use crate::engine::{Engine, PluginError, PluginSpec, PluginVersion};
use crate::metrics::plugin::PluginMetrics;

/// Versions remembered per plugin.
const HISTORY: usize = 20;

/// Lock a mutex whose data stays consistent even if a holder panicked
/// (every critical section here is a few field updates).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a plugin is served, besides what the engine needs to load it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginOptions {
    /// Header added to every output of the plugin, carrying the hash of
    /// the version that produced it. `None`: no header.
    pub version_header: Option<String>,
    /// How the plugin's file is watched for changes.
    pub watch: WatchMode,
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadTrigger {
    /// The first load at start-up.
    Startup,
    /// The plugin's file changed on disk.
    Watch,
    /// `POST /plugins/{name}/reload`.
    Api,
    /// SIGHUP: the config file was read again.
    Signal,
    /// A direct call (tests, embedding programs).
    Manual,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// A new version was loaded and handed to every stage; each takes it at
    /// its next batch boundary.
    Reloaded {
        /// The new version's hash.
        hash: String,
        /// The version it replaces.
        previous: String,
    },
    /// Same content and settings as the running version: nothing done.
    Unchanged {
        /// The running version's hash.
        hash: String,
    },
}

/// A version a plugin ran.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    /// Hex sha256 of the file.
    pub hash: String,
    /// The file.
    pub path: PathBuf,
    /// When it was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// What loaded it.
    pub trigger: ReloadTrigger,
}

/// The last reload attempt.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadRecord {
    /// When it finished (RFC 3339, UTC).
    pub at: String,
    /// What asked for it.
    pub trigger: ReloadTrigger,
    /// `reloaded`, `unchanged`, `failed` or `rolled_back`.
    pub result: &'static str,
    /// The version concerned (loaded, unchanged or rolled back).
    pub hash: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A failure of a reload (refused or rolled back).
#[derive(Debug, Clone, Serialize)]
pub struct ReloadFailure {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// What asked for the reload.
    pub trigger: ReloadTrigger,
    /// The message, naming the plugin and file.
    pub message: String,
}

/// Counters of a plugin over all the stages that run it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PluginCounters {
    /// Batches processed.
    pub batches: u64,
    /// Events given to the plugin.
    pub events: u64,
    /// Outputs it emitted.
    pub outputs: u64,
    /// Events it dropped.
    pub dropped: u64,
    /// Events it failed (or that trapped).
    pub failed: u64,
    /// Reloads that loaded a new version.
    pub reloads_succeeded: u64,
    /// Reloads refused (compile, link, init) or rolled back.
    pub reloads_failed: u64,
    /// Reload requests for unchanged content and settings.
    pub reloads_unchanged: u64,
    /// New versions rolled back after trapping on their first batch.
    pub rollbacks: u64,
}

/// One pipeline stage running the plugin.
#[derive(Debug, Clone, Serialize)]
pub struct StageSnapshot {
    /// The pipeline.
    pub pipeline: String,
    /// Position in the pipeline's chain (0-based).
    pub stage: usize,
    /// The pipeline's worker that runs this stage (0-based).
    pub worker: usize,
    /// The version its batches run on.
    pub hash: String,
    /// Since when (RFC 3339, UTC).
    pub since: String,
    /// A newer version is ready and is taken at the next batch.
    pub pending: bool,
}

/// What the admin API shows for a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSnapshot {
    /// The plugin's name.
    pub name: String,
    /// Hash of the current version (hex sha256 of the file).
    pub hash: String,
    /// File of the current version (`builtin:NAME` for a plugin embedded in
    /// the binary).
    pub path: PathBuf,
    /// When the current version was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub loaded_at_unix_ms: u64,
    /// Output header carrying the version hash, if configured.
    pub version_header: Option<String>,
    /// How the file is watched (`off` for a builtin plugin: it has no file).
    pub watch: WatchMode,
    /// The stages that run it.
    pub pipelines: Vec<StageSnapshot>,
    /// Counters.
    pub counters: PluginCounters,
    /// The last reload attempt.
    pub last_reload: Option<ReloadRecord>,
    /// The last failed reload, kept until a later one succeeds.
    pub last_error: Option<ReloadFailure>,
    /// Versions loaded, newest last.
    pub history: Vec<VersionRecord>,
}

struct PluginState {
    spec: PluginSpec,
    /// The file the config names. `spec.path` differs from it after a
    /// reload through the API switched files; a re-read config that still
    /// names this file keeps the API's choice.
    configured_path: PathBuf,
    current: Arc<PluginVersion>,
    loaded_at: SystemTime,
    history: VecDeque<VersionRecord>,
    last_reload: Option<ReloadRecord>,
    last_error: Option<ReloadFailure>,
}

/// One configured plugin.
pub(crate) struct Plugin {
    pub(crate) name: String,
    options: PluginOptions,
    /// Serialises reloads (and stage registration) of this plugin.
    reload_lock: Mutex<()>,
    state: Mutex<PluginState>,
    stages: Mutex<Vec<Arc<Stage>>>,
    /// Reload counts and load time (`weir_plugin_reloads_total`, ...).
    metrics: PluginMetrics,
    reaper: Reaper,
}

impl Plugin {
    pub(crate) fn version_header(&self) -> Option<&str> {
        self.options.version_header.as_deref()
    }

    fn current(&self) -> Arc<PluginVersion> {
        Arc::clone(&lock(&self.state).current)
    }

    fn record_failure(
        &self,
        trigger: ReloadTrigger,
        message: String,
        hash: Option<String>,
        result: &'static str,
    ) {
        // An `init` may echo its config, `${VAR}` values included.
        let message = crate::secrets::redact(&message).into_owned();
        let now = SystemTime::now();
        let at = rfc3339(now);
        tracing::error!(plugin = %self.name, ?trigger, error = %message, "plugin reload failed; the running version keeps serving");
        match result {
            "rolled_back" => self.metrics.reloads_rolled_back.add(1),
            _ => self.metrics.reloads_failed.add(1),
        }
        let mut state = lock(&self.state);
        state.last_reload = Some(ReloadRecord {
            at: at.clone(),
            trigger,
            result,
            hash,
            error: Some(message.clone()),
        });
        state.last_error = Some(ReloadFailure {
            at,
            at_unix_ms: unix_ms(now),
            trigger,
            message,
        });
    }

    /// Called by a stage whose new version trapped on its whole first
    /// batch and which went back to `restored`.
    pub(crate) fn rolled_back(
        &self,
        stage: &Stage,
        broken: &Arc<PluginVersion>,
        restored: &Arc<PluginVersion>,
        events: usize,
        cause: &str,
    ) {
        let message = format!(
            "plugin `{}` ({}): version {} trapped on every event of its first batch ({events} events) \
             in pipeline `{}`: {cause}; rolled back to version {}",
            self.name,
            broken.spec().path.display(),
            broken.hash(),
            stage.pipeline,
            restored.hash()
        );
        let trigger = {
            let mut state = lock(&self.state);
            let trigger = state
                .history
                .back()
                .map_or(ReloadTrigger::Manual, |v| v.trigger);
            if state.current.hash() == broken.hash() {
                state.current = Arc::clone(restored);
                state.spec = restored.spec().clone();
                state.loaded_at = SystemTime::now();
            }
            trigger
        };
        // Stages that have not taken the broken version yet never will.
        for other in lock(&self.stages).iter() {
            if let Some(instance) = other.withdraw(broken.hash()) {
                self.reaper.dispose(instance);
            }
        }
        self.record_failure(
            trigger,
            message,
            Some(broken.hash().to_owned()),
            "rolled_back",
        );
    }

    fn snapshot(&self) -> PluginSnapshot {
        let stages: Vec<Arc<Stage>> = lock(&self.stages).clone();
        let mut counters = PluginCounters {
            reloads_succeeded: self.metrics.reloads_succeeded.get(),
            // A rollback is a reload that failed after it was swapped in.
            reloads_failed: self.metrics.reloads_failed.get()
                + self.metrics.reloads_rolled_back.get(),
            reloads_unchanged: self.metrics.reloads_unchanged.get(),
            rollbacks: self.metrics.reloads_rolled_back.get(),
            ..PluginCounters::default()
        };
        let mut pipelines = Vec::with_capacity(stages.len());
        for stage in &stages {
            let c = &stage.metrics;
            counters.batches += c.batches.get();
            counters.events += c.events.get();
            counters.outputs += c.outputs.get();
            counters.dropped += c.dropped.get();
            counters.failed += c.failed.get();
            let active = stage.active();
            pipelines.push(StageSnapshot {
                pipeline: stage.pipeline.clone(),
                stage: stage.index,
                worker: stage.worker,
                hash: active.hash,
                since: rfc3339(active.since),
                pending: stage.is_pending(),
            });
        }
        let state = lock(&self.state);
        PluginSnapshot {
            name: self.name.clone(),
            hash: state.current.hash().to_owned(),
            path: state.spec.path.clone(),
            loaded_at: rfc3339(state.loaded_at),
            loaded_at_unix_ms: unix_ms(state.loaded_at),
            version_header: self.options.version_header.clone(),
            watch: if crate::builtin::is_builtin(&state.spec.path) {
                WatchMode::Off
            } else {
                self.options.watch
            },
            pipelines,
            counters,
            last_reload: state.last_reload.clone(),
            last_error: state.last_error.clone(),
            history: state.history.iter().cloned().collect(),
        }
    }
}

/// Every configured plugin and its hot-swap machinery.
pub struct PluginRegistry {
    engine: Arc<Engine>,
    base_dir: PathBuf,
    plugins: BTreeMap<String, Arc<Plugin>>,
    reaper: Reaper,
    /// Bumped when a plugin's file path changes, so watchers follow.
    paths: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("plugins", &self.plugins.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PluginRegistry {
    /// An empty registry loading with `engine`; relative paths given to
    /// [`PluginRegistry::reload`] are resolved against `base_dir` (the
    /// config file's directory).
    pub fn new(engine: Arc<Engine>, base_dir: impl Into<PathBuf>) -> PluginRegistry {
        PluginRegistry {
            engine,
            base_dir: base_dir.into(),
            plugins: BTreeMap::new(),
            reaper: Reaper::start(),
            paths: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Load a plugin (compile, `init`) and add it under `spec.name`.
    pub fn register(
        &mut self,
        spec: PluginSpec,
        options: PluginOptions,
    ) -> Result<Arc<PluginVersion>, PluginError> {
        let version = self.engine.load(&spec)?;
        let now = SystemTime::now();
        let name = spec.name.clone();
        let mut history = VecDeque::new();
        history.push_back(VersionRecord {
            hash: version.hash().to_owned(),
            path: spec.path.clone(),
            loaded_at: rfc3339(now),
            trigger: ReloadTrigger::Startup,
        });
        let plugin_metrics = PluginMetrics::new(&name);
        plugin_metrics.loaded(now);
        let plugin = Plugin {
            name: name.clone(),
            options,
            reload_lock: Mutex::new(()),
            state: Mutex::new(PluginState {
                configured_path: spec.path.clone(),
                spec,
                current: Arc::clone(&version),
                loaded_at: now,
                history,
                last_reload: None,
                last_error: None,
            }),
            stages: Mutex::new(Vec::new()),
            metrics: plugin_metrics,
            reaper: self.reaper.clone(),
        };
        self.plugins.insert(name, Arc::new(plugin));
        Ok(version)
    }

    /// The engine plugins are loaded with.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Names of the registered plugins, sorted.
    pub fn names(&self) -> Vec<String> {
        self.plugins.keys().cloned().collect()
    }

    /// The current version of a plugin.
    pub fn current(&self, name: &str) -> Option<Arc<PluginVersion>> {
        self.plugins.get(name).map(|p| p.current())
    }

    /// What a plugin was loaded from (path, config, limits, grants).
    pub fn spec(&self, name: &str) -> Option<PluginSpec> {
        self.plugins.get(name).map(|p| lock(&p.state).spec.clone())
    }

    /// How a plugin is served.
    pub fn options(&self, name: &str) -> Option<PluginOptions> {
        self.plugins.get(name).map(|p| p.options.clone())
    }

    /// A transform running plugin `name` as stage `stage` of `pipeline`,
    /// on the current version; later reloads reach it.
    pub fn transform(
        &self,
        name: &str,
        pipeline: &str,
        stage: usize,
    ) -> Result<ReloadableTransform, ReloadError> {
        self.transform_on_worker(name, pipeline, stage, 0)
    }

    /// [`PluginRegistry::transform`] for worker `worker` of the pipeline:
    /// each worker runs instances of its own.
    pub fn transform_on_worker(
        &self,
        name: &str,
        pipeline: &str,
        stage: usize,
        worker: usize,
    ) -> Result<ReloadableTransform, ReloadError> {
        let plugin = self.plugin(name)?;
        let _reloading = lock(&plugin.reload_lock);
        let instance = plugin.current().instantiate()?;
        let slot = Arc::new(Stage::new(
            pipeline.to_owned(),
            &plugin.name,
            stage,
            worker,
            instance.version().hash().to_owned(),
        ));
        lock(&plugin.stages).push(Arc::clone(&slot));
        Ok(ReloadableTransform::new(
            Arc::clone(&plugin),
            slot,
            instance,
            self.reaper.clone(),
        ))
    }

    fn plugin(&self, name: &str) -> Result<Arc<Plugin>, ReloadError> {
        self.plugins
            .get(name)
            .cloned()
            .ok_or_else(|| ReloadError::UnknownPlugin(name.to_owned()))
    }

    /// Resolve a path against the config's directory (a `builtin:` path
    /// stays as it is).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        crate::builtin::resolve(&self.base_dir, path)
    }

    /// Reload plugin `name` from its file, or from `path` (which then
    /// becomes its file). Blocking: compiles and runs `init`; call it from
    /// a blocking task. Returns once every stage has a ready instance of
    /// the new version waiting; each takes it at its next batch.
    pub fn reload(
        &self,
        name: &str,
        path: Option<&Path>,
        trigger: ReloadTrigger,
    ) -> Result<ReloadOutcome, ReloadError> {
        let plugin = self.plugin(name)?;
        let mut spec = lock(&plugin.state).spec.clone();
        if let Some(path) = path {
            spec.path = self.resolve(path);
        }
        self.reload_with(&plugin, spec, trigger, u64::MAX)
    }

    /// [`PluginRegistry::reload`] as the admin API asks for it: a new
    /// `path` must be the plugin's configured file, inside the directory
    /// holding it or inside one of `rules.dirs`, and a regular file; the
    /// file read is at most `rules.max_bytes`. A refusal is recorded like
    /// any failed reload.
    pub fn reload_from_api(
        &self,
        name: &str,
        path: Option<&Path>,
        rules: &ReloadRules,
    ) -> Result<ReloadOutcome, ReloadError> {
        let plugin = self.plugin(name)?;
        let (mut spec, configured) = {
            let state = lock(&plugin.state);
            (state.spec.clone(), state.configured_path.clone())
        };
        if let Some(path) = path {
            let wanted = self.resolve(path);
            let dirs: Vec<PathBuf> = rules.dirs.iter().map(|d| self.resolve(d)).collect();
            spec.path = match file::allowed_path(&wanted, &configured, &dirs) {
                Ok(canonical) => canonical,
                Err(reason) => {
                    let error = ReloadError::Refused {
                        plugin: plugin.name.clone(),
                        path: wanted,
                        reason,
                    };
                    plugin.record_failure(ReloadTrigger::Api, error.to_string(), None, "failed");
                    return Err(error);
                }
            };
            // The same file under another spelling is the same file.
            if std::fs::canonicalize(&configured).ok().as_ref() == Some(&spec.path) {
                spec.path = configured;
            }
        }
        self.reload_with(&plugin, spec, ReloadTrigger::Api, rules.max_bytes)
    }

    /// Reload plugin `name` with new settings (path, config, limits,
    /// grants), as SIGHUP does. A file chosen through the admin API stays
    /// the plugin's file while the new settings name the same file as the
    /// config did before; a config naming another file takes over.
    pub fn reload_spec(
        &self,
        mut spec: PluginSpec,
        trigger: ReloadTrigger,
    ) -> Result<ReloadOutcome, ReloadError> {
        let plugin = self.plugin(&spec.name)?;
        let configured = spec.path.clone();
        {
            let mut state = lock(&plugin.state);
            if state.configured_path == configured {
                spec.path = state.spec.path.clone();
            } else {
                state.configured_path = configured;
            }
        }
        self.reload_with(&plugin, spec, trigger, u64::MAX)
    }

    fn reload_with(
        &self,
        plugin: &Plugin,
        spec: PluginSpec,
        trigger: ReloadTrigger,
        max_bytes: u64,
    ) -> Result<ReloadOutcome, ReloadError> {
        let _reloading = lock(&plugin.reload_lock);
        let current = plugin.current();

        // A builtin plugin's bytes are in the binary: nothing to read or cap.
        let read = match crate::builtin::lookup(&spec.path) {
            Some(Ok(builtin)) => Ok(Cow::Borrowed(builtin.bytes)),
            Some(Err(unknown)) => Err(FileRefusal::Io(unknown.to_string())),
            None => file::read_capped(&spec.path, max_bytes).map(Cow::Owned),
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(err) => {
                let error = match err {
                    FileRefusal::Io(message) => ReloadError::Read {
                        plugin: plugin.name.clone(),
                        path: spec.path.clone(),
                        message,
                    },
                    reason => ReloadError::Refused {
                        plugin: plugin.name.clone(),
                        path: spec.path.clone(),
                        reason,
                    },
                };
                plugin.record_failure(trigger, error.to_string(), None, "failed");
                return Err(error);
            }
        };
        let hash = hex::encode(Sha256::digest(&bytes));
        let old = current.spec();
        let same_settings = old.path == spec.path
            && old.config == spec.config
            && old.limits == spec.limits
            && old.grants == spec.grants;
        if hash == current.hash() && same_settings {
            // A file event that did not change the content (the temporary
            // file of a write-then-rename, a touch) is not a reload at all.
            if trigger != ReloadTrigger::Watch {
                plugin.metrics.reloads_unchanged.add(1);
                lock(&plugin.state).last_reload = Some(ReloadRecord {
                    at: rfc3339(SystemTime::now()),
                    trigger,
                    result: "unchanged",
                    hash: Some(hash.clone()),
                    error: None,
                });
            }
            return Ok(ReloadOutcome::Unchanged { hash });
        }

        // Compile (or load from the cache) and run `init`, off the hot path:
        // the bytes checked and hashed above, never a second read of a file
        // that may have been replaced since.
        let version = match self.engine.load_bytes(&spec, &bytes) {
            Ok(v) => v,
            Err(err) => {
                plugin.record_failure(trigger, err.to_string(), Some(hash), "failed");
                return Err(err.into());
            }
        };
        // One ready instance per stage before any stage is touched.
        let stages: Vec<Arc<Stage>> = lock(&plugin.stages).clone();
        let mut ready = Vec::with_capacity(stages.len());
        for _ in &stages {
            match version.instantiate() {
                Ok(instance) => ready.push(instance),
                Err(err) => {
                    plugin.record_failure(
                        trigger,
                        err.to_string(),
                        Some(version.hash().to_owned()),
                        "failed",
                    );
                    return Err(err.into());
                }
            }
        }
        for (stage, instance) in stages.iter().zip(ready) {
            if let Some(displaced) = stage.offer(instance) {
                self.reaper.dispose(displaced);
            }
        }

        let now = SystemTime::now();
        let path_changed = old.path != spec.path;
        let previous = current.hash().to_owned();
        {
            let mut state = lock(&plugin.state);
            state.spec = spec.clone();
            state.current = Arc::clone(&version);
            state.loaded_at = now;
            if state.history.len() == HISTORY {
                state.history.pop_front();
            }
            state.history.push_back(VersionRecord {
                hash: version.hash().to_owned(),
                path: spec.path.clone(),
                loaded_at: rfc3339(now),
                trigger,
            });
            state.last_reload = Some(ReloadRecord {
                at: rfc3339(now),
                trigger,
                result: "reloaded",
                hash: Some(version.hash().to_owned()),
                error: None,
            });
            state.last_error = None;
        }
        plugin.metrics.reloads_succeeded.add(1);
        plugin.metrics.loaded(now);
        if path_changed {
            self.paths.send_modify(|generation| *generation += 1);
        }
        tracing::info!(
            plugin = %plugin.name,
            ?trigger,
            from = %previous,
            to = %version.hash(),
            path = %spec.path.display(),
            stages = stages.len(),
            "plugin reloaded; each pipeline switches at its next batch"
        );
        Ok(ReloadOutcome::Reloaded {
            hash: version.hash().to_owned(),
            previous,
        })
    }

    /// Every plugin as the admin API shows it, sorted by name.
    pub fn snapshot(&self) -> Vec<PluginSnapshot> {
        self.plugins.values().map(|p| p.snapshot()).collect()
    }

    /// One plugin as the admin API shows it.
    pub fn plugin_snapshot(&self, name: &str) -> Option<PluginSnapshot> {
        self.plugins.get(name).map(|p| p.snapshot())
    }

    /// The version changes each stage of plugin `name` went through, oldest
    /// first per stage (the last 512 per stage).
    pub fn swaps(&self, name: &str) -> Vec<SwapRecord> {
        self.plugins
            .get(name)
            .map(|p| lock(&p.stages).iter().flat_map(|s| s.swaps()).collect())
            .unwrap_or_default()
    }

    /// `(name, file, watch mode)` of every plugin; a builtin plugin has no
    /// file to watch, so its mode is `off`.
    pub fn files(&self) -> Vec<(String, PathBuf, WatchMode)> {
        self.plugins
            .values()
            .map(|p| {
                let path = lock(&p.state).spec.path.clone();
                let watch = if crate::builtin::is_builtin(&path) {
                    WatchMode::Off
                } else {
                    p.options.watch
                };
                (p.name.clone(), path, watch)
            })
            .collect()
    }

    /// Changes whenever a plugin's file path changes.
    pub fn subscribe_paths(&self) -> tokio::sync::watch::Receiver<u64> {
        self.paths.subscribe()
    }
}

/// Milliseconds since the Unix epoch (0 before it).
fn unix_ms(t: SystemTime) -> u64 {
    crate::calendar::unix_ms(t).unsigned_abs()
}

/// `2026-11-21T06:38:16.123Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    crate::calendar::rfc3339_ms(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_070_296_123);
        assert_eq!(rfc3339(t), "2026-11-19T06:38:16.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
