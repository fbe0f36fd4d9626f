//! The on-disk cache of compiled plugins.
//!
//! A compiled component is stored as `<sha256 of the wasm>-<engine key>.cwasm`
//! where the engine key hashes wasmtime's precompile compatibility hash (its
//! version and every setting that affects generated code). A restart, or a
//! second host on the same machine, loads the artifact in well under a
//! millisecond instead of compiling for tens of milliseconds. Files are
//! written to a temporary name and renamed, so a reader never sees half a
//! file; an unreadable or stale file is recompiled and replaced.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

/// Where compiled artifacts live, and the key of the engine that made them.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` (created if missing) for artifacts of `engine`.
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        "weir-engine-cache-v1".hash(&mut hasher);
        Ok(CompileCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    /// The directory holding the artifacts.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The artifact file of the wasm file whose sha256 is `hash`.
    pub(crate) fn artifact_path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `hash`, if a usable artifact exists.
    pub(crate) fn load(&self, engine: &wasmtime::Engine, hash: &str) -> Option<Component> {
        let path = self.artifact_path(hash);
        // Read into memory rather than `deserialize_file`'s mmap: a mapped
        // file that someone truncates or rewrites in place would crash the
        // host with SIGBUS; reading costs well under a millisecond.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: `deserialize` trusts the bytes to be an artifact that
        // wasmtime produced. Only this module writes into the cache
        // directory, always through a temporary file and a rename, and the
        // file name carries the engine's compatibility key; wasmtime also
        // checks its own header and version before using the bytes.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %err,
                    "ignoring an unusable compiled-plugin cache file; recompiling"
                );
                None
            }
        }
    }

    /// Store the compiled `component` for `hash`. Failures are logged and
    /// otherwise ignored: the cache only saves time.
    pub(crate) fn store(&self, hash: &str, component: &Component) {
        if let Err(err) = self.try_store(hash, component) {
            tracing::warn!(
                dir = %self.dir.display(),
                error = %err,
                "cannot write the compiled-plugin cache; the plugin will be recompiled next time"
            );
        }
    }

    fn try_store(&self, hash: &str, component: &Component) -> std::io::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut tmp = tempfile_in(&self.dir)?;
        tmp.1.write_all(&bytes)?;
        tmp.1.sync_all()?;
        drop(tmp.1);
        let target = self.artifact_path(hash);
        std::fs::rename(&tmp.0, &target).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp.0);
        })
    }
}

/// A new, uniquely named file in `dir`.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let name = format!(
            ".tmp-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The default cache directory: `$XDG_CACHE_HOME/weir/plugins` or
/// `~/.cache/weir/plugins`, `None` when neither variable is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("weir").join("plugins"))
}
