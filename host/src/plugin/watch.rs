//! Watching plugin files: a change on disk reloads the plugin.
//!
//! Each directory holding a watched plugin file is watched (not the file:
//! deploy tools replace files by writing a temporary file and renaming it
//! over the old one, and Kubernetes swaps a symlinked directory). Events
//! are debounced (`notify-debouncer-full`), then every plugin in a touched
//! directory is checked; the registry reloads only a plugin whose content
//! hash changed, so the temporary file's own events, a `touch` or a second
//! event for the same rename cause no reload: one deploy, one reload.
//!
//! `watch = "auto"` uses the OS's file events (inotify, FSEvents, ...) and
//! falls back to polling where they cannot be had; `"poll"` always polls
//! (for volumes without events, like some container and network mounts),
//! comparing file contents every `host.plugin_poll_interval_ms`; `"off"`
//! leaves reloads to the admin API and SIGHUP.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_full::notify::{
    self, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode,
};
use notify_debouncer_full::{
    DebounceEventResult, Debouncer, NoCache, RecommendedCache, new_debouncer, new_debouncer_opt,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::registry::{PluginRegistry, ReloadOutcome, ReloadTrigger};

/// How long the file events of one change are gathered before acting.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// `[plugins.NAME] watch`: how the plugin's file is watched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchMode {
    /// The OS's file events, polling where they are not available.
    #[default]
    Auto,
    /// Poll the directory (for filesystems without events).
    Poll,
    /// Do not watch; reload through the admin API or SIGHUP.
    Off,
}

/// Settings of the watcher.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// How often polled directories are scanned.
    pub poll_interval: Duration,
    /// How long events are gathered before acting.
    pub debounce: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll_interval: Duration::from_secs(1),
            debounce: DEBOUNCE,
        }
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {} for plugin changes: {error}", dir.display())]
pub struct WatchError {
    /// The directory.
    pub dir: PathBuf,
    /// What notify said.
    pub error: notify::Error,
}

/// Touched paths, sent from the debouncer threads to the reload task.
type Touched = mpsc::UnboundedSender<Vec<PathBuf>>;

struct Watchers {
    options: WatchOptions,
    tx: Touched,
    native: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    poll: Option<Debouncer<PollWatcher, NoCache>>,
    /// Directories watched, and whether by polling.
    watched: BTreeSet<(PathBuf, bool)>,
}

fn handler(tx: Touched) -> impl FnMut(DebounceEventResult) + Send + 'static {
    move |result: DebounceEventResult| match result {
        Ok(events) => {
            let paths: Vec<PathBuf> = events
                .iter()
                .filter(|e| !matches!(e.kind, EventKind::Access(_)))
                .flat_map(|e| e.paths.iter().cloned())
                .collect();
            if !paths.is_empty() {
                let _ = tx.send(paths);
            }
        }
        Err(errors) => {
            for error in errors {
                tracing::warn!(%error, "plugin file watcher error");
            }
        }
    }
}

/// The file's absolute path (without resolving symlinks) and its directory.
fn locate(path: &Path) -> (PathBuf, PathBuf) {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    (abs, dir)
}

impl Watchers {
    fn watch_native(&mut self, dir: &Path) -> Result<(), notify::Error> {
        if self.native.is_none() {
            self.native = Some(new_debouncer(
                self.options.debounce,
                None,
                handler(self.tx.clone()),
            )?);
        }
        match &mut self.native {
            Some(d) => d.watch(dir, RecursiveMode::NonRecursive),
            None => Ok(()),
        }
    }

    fn watch_poll(&mut self, dir: &Path) -> Result<(), notify::Error> {
        if self.poll.is_none() {
            let config = notify::Config::default()
                .with_poll_interval(self.options.poll_interval)
                .with_compare_contents(true);
            self.poll = Some(new_debouncer_opt::<_, PollWatcher, NoCache>(
                self.options.debounce,
                None,
                handler(self.tx.clone()),
                NoCache,
                config,
            )?);
        }
        match &mut self.poll {
            Some(d) => d.watch(dir, RecursiveMode::NonRecursive),
            None => Ok(()),
        }
    }

    /// Watch the directory of every watched plugin not watched yet.
    fn ensure(&mut self, registry: &PluginRegistry) -> Result<(), WatchError> {
        for (name, path, mode) in registry.files() {
            let (_, dir) = locate(&path);
            match mode {
                WatchMode::Off => {}
                WatchMode::Auto => {
                    if self.watched.contains(&(dir.clone(), false))
                        || self.watched.contains(&(dir.clone(), true))
                    {
                        continue;
                    }
                    match self.watch_native(&dir) {
                        Ok(()) => {
                            tracing::info!(plugin = %name, dir = %dir.display(), "watching for plugin changes");
                            self.watched.insert((dir, false));
                        }
                        Err(error) => {
                            tracing::warn!(plugin = %name, dir = %dir.display(), %error, "file events unavailable; polling instead");
                            self.watch_poll(&dir).map_err(|error| WatchError {
                                dir: dir.clone(),
                                error,
                            })?;
                            self.watched.insert((dir, true));
                        }
                    }
                }
                WatchMode::Poll => {
                    if self.watched.contains(&(dir.clone(), true)) {
                        continue;
                    }
                    self.watch_poll(&dir).map_err(|error| WatchError {
                        dir: dir.clone(),
                        error,
                    })?;
                    tracing::info!(plugin = %name, dir = %dir.display(), interval = ?self.options.poll_interval, "polling for plugin changes");
                    self.watched.insert((dir, true));
                }
            }
        }
        Ok(())
    }
}

/// The watched plugins with a file in a directory that `touched` reaches.
fn plugins_touched(registry: &PluginRegistry, touched: &[PathBuf]) -> Vec<String> {
    let dirs: HashSet<&Path> = touched.iter().filter_map(|p| p.parent()).collect();
    registry
        .files()
        .into_iter()
        .filter(|(_, _, mode)| *mode != WatchMode::Off)
        .filter(|(_, path, _)| {
            let (abs, dir) = locate(path);
            touched.contains(&abs) || dirs.contains(dir.as_path())
        })
        .map(|(name, _, _)| name)
        .collect()
}

/// Start watching the files of every plugin whose `watch` is not `off`;
/// runs until `shutdown`. `Ok(None)` when no plugin is watched.
pub fn spawn(
    registry: Arc<PluginRegistry>,
    options: WatchOptions,
    shutdown: CancellationToken,
) -> Result<Option<JoinHandle<()>>, WatchError> {
    if registry
        .files()
        .iter()
        .all(|(_, _, mode)| *mode == WatchMode::Off)
    {
        return Ok(None);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watchers = Watchers {
        options,
        tx,
        native: None,
        poll: None,
        watched: BTreeSet::new(),
    };
    watchers.ensure(&registry)?;
    let mut paths = registry.subscribe_paths();
    Ok(Some(tokio::spawn(async move {
        loop {
            let touched = tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = paths.changed() => {
                    if changed.is_ok()
                        && let Err(err) = watchers.ensure(&registry)
                    {
                        tracing::warn!(error = %err, "cannot follow a plugin's new path");
                    }
                    continue;
                }
                touched = rx.recv() => match touched {
                    Some(t) => t,
                    None => break,
                },
            };
            let mut touched = touched;
            while let Ok(more) = rx.try_recv() {
                touched.extend(more);
            }
            for name in plugins_touched(&registry, &touched) {
                let reg = Arc::clone(&registry);
                let plugin = name.clone();
                let done = tokio::task::spawn_blocking(move || {
                    reg.reload(&plugin, None, ReloadTrigger::Watch)
                })
                .await;
                match done {
                    Ok(Ok(ReloadOutcome::Reloaded { hash, .. })) => {
                        tracing::info!(plugin = %name, %hash, "plugin file changed; new version loaded");
                    }
                    Ok(Ok(ReloadOutcome::Unchanged { .. })) => {}
                    // Already logged and recorded by the registry.
                    Ok(Err(_)) => {}
                    Err(err) => {
                        tracing::error!(plugin = %name, error = %err, "plugin reload task failed")
                    }
                }
            }
        }
        drop(watchers);
    })))
}
