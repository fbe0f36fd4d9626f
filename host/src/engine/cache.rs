//! The on-disk cache of compiled plugins.
//!
//! A compiled component is stored as `<sha256 of the wasm>-<engine key>.cwasm`
//! where the engine key hashes wasmtime's precompile compatibility hash (its
//! version and every setting that affects generated code). A restart, or a
//! second host on the same machine, loads the artifact in well under a
//! millisecond instead of compiling for tens of milliseconds. Files are
//! written to a temporary name and renamed, so a reader never sees half a
//! file; an unreadable or stale file is recompiled and replaced.
//!
//! A compiled artifact is machine code the host runs as it is, so the cache
//! must not be a way in. Every artifact starts with an HMAC-SHA256 of the
//! engine key, the wasm hash and the artifact bytes, under a per-host key
//! kept beside the artifacts in `cache.key` (32 random bytes, created with
//! mode 0600). A file is loaded only if it is a regular file (not a
//! symlink) whose MAC verifies; anything else (planted, corrupted,
//! truncated, copied from another host) is ignored and recompiled. The key
//! itself is used only if it is a regular file owned by this user that no
//! one else can read or write; otherwise the cache is not used at all.

use std::fs::OpenOptions;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use wasmtime::component::Component;

type HmacSha256 = hmac::Hmac<Sha256>;

/// File of the per-host key, in the cache directory.
const KEY_FILE: &str = "cache.key";
/// Bytes of the key.
const KEY_LEN: usize = 32;
/// Bytes of the MAC in front of each artifact.
const MAC_LEN: usize = 32;
/// Largest artifact read; a bigger file is not ours.
const MAX_ARTIFACT_BYTES: u64 = 512 << 20;

/// Why the cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    /// The directory or key file could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The key file is not one this user alone controls.
    #[error("{path}: {problem}; refusing to trust artifacts signed with it")]
    UntrustedKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// Where compiled artifacts live, the key of the engine that made them,
/// and the key that authenticates them.
#[derive(Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    /// HMAC-SHA256 keyed with the per-host key, before any input.
    mac: HmacSha256,
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .field("engine_key", &self.engine_key)
            .finish_non_exhaustive()
    }
}

/// The effective user id of this process.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no
    // memory of ours.
    unsafe { libc::geteuid() }
}

/// Read the per-host key at `path`, creating it if missing.
fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN], CacheError> {
    let io = |source| CacheError::Io {
        path: path.to_owned(),
        source,
    };
    let untrusted = |problem: String| CacheError::UntrustedKey {
        path: path.to_owned(),
        problem,
    };
    let key: [u8; KEY_LEN] = rand::random();
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(&key).map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok(key);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    // An existing key: it must be a regular file of ours that nobody else
    // can read (to forge a MAC) or write (to swap in a key of theirs).
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                untrusted("is a symbolic link".to_owned())
            } else {
                io(e)
            }
        })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(untrusted("is not a regular file".to_owned()));
    }
    if meta.uid() != euid() {
        return Err(untrusted(format!(
            "is owned by uid {}, not by this process's uid {}",
            meta.uid(),
            euid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(untrusted(format!(
            "has mode {:o}; it must be readable and writable by its owner only (0600)",
            meta.mode() & 0o777
        )));
    }
    let mut key = [0u8; KEY_LEN];
    let mut read = Vec::with_capacity(KEY_LEN + 1);
    file.take(KEY_LEN as u64 + 1)
        .read_to_end(&mut read)
        .map_err(io)?;
    if read.len() != KEY_LEN {
        return Err(untrusted(format!(
            "holds {} bytes, not {KEY_LEN}",
            read.len()
        )));
    }
    key.copy_from_slice(&read);
    Ok(key)
}

impl CompileCache {
    /// A cache in `dir` (created if missing) for artifacts of `engine`.
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Result<Self, CacheError> {
        std::fs::create_dir_all(&dir).map_err(|source| CacheError::Io {
            path: dir.clone(),
            source,
        })?;
        let key_path = dir.join(KEY_FILE);
        let key = load_or_create_key(&key_path)?;
        let mac = HmacSha256::new_from_slice(&key).map_err(|_| CacheError::UntrustedKey {
            path: key_path,
            problem: "is not a usable HMAC key".to_owned(),
        })?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        "weir-engine-cache-v2".hash(&mut hasher);
        Ok(CompileCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
            mac,
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

    /// The MAC of `artifact`, compiled from the wasm whose sha256 is `hash`.
    fn mac(&self, hash: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(self.engine_key.as_bytes());
        mac.update(b"\0");
        mac.update(hash.as_bytes());
        mac.update(b"\0");
        mac
    }

    /// The bytes of the artifact file for `hash` if it is a regular file
    /// whose MAC verifies, without the MAC; `Err` says why not.
    fn read_verified(&self, path: &Path, hash: &str) -> Result<Option<Vec<u8>>, String> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err("is a symbolic link".to_owned());
            }
            Err(e) => return Err(e.to_string()),
        };
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("is not a regular file".to_owned());
        }
        if meta.len() > MAX_ARTIFACT_BYTES {
            return Err(format!("is larger than {MAX_ARTIFACT_BYTES} bytes"));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_ARTIFACT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() < MAC_LEN {
            return Err("is too short to hold a MAC".to_owned());
        }
        let artifact = bytes.split_off(MAC_LEN);
        let mut mac = self.mac(hash);
        mac.update(&artifact);
        mac.verify_slice(&bytes).map_err(|_| {
            "does not carry this host's MAC (planted, corrupted or from another host)".to_owned()
        })?;
        Ok(Some(artifact))
    }

    /// The compiled component for `hash`, if an artifact of ours exists.
    pub(crate) fn load(&self, engine: &wasmtime::Engine, hash: &str) -> Option<Component> {
        let path = self.artifact_path(hash);
        // Read into memory rather than `deserialize_file`'s mmap: a mapped
        // file that someone truncates or rewrites in place would crash the
        // host with SIGBUS; reading costs well under a millisecond.
        let bytes = match self.read_verified(&path, hash) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(problem) => {
                tracing::warn!(
                    path = %path.display(),
                    problem,
                    "ignoring a compiled-plugin cache file that is not provably ours; recompiling"
                );
                return None;
            }
        };
        // SAFETY: `deserialize` trusts the bytes to be an artifact that
        // wasmtime produced. These bytes carry a MAC under this host's
        // private key over exactly what this module wrote after compiling
        // the wasm of `hash` with this engine configuration (checked just
        // above), so they are such an artifact; wasmtime also checks its
        // own header and version before using them.
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
        let mut mac = self.mac(hash);
        mac.update(&bytes);
        let tag = mac.finalize().into_bytes();
        // A uniquely named 0600 file in the cache directory, renamed over
        // the artifact only once its bytes are on disk: a reader never sees
        // a half-written artifact, and a failed write leaves no stray file
        // (NamedTempFile removes itself when dropped).
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&tag)?;
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.artifact_path(hash))
            .map(drop)
            .map_err(|e| e.error)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: the binary header alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn stored_artifact_is_private_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let cache = CompileCache::new(dir.path().to_path_buf(), &engine).unwrap();
        let component = Component::from_binary(&engine, EMPTY_COMPONENT).unwrap();
        cache.try_store("abc", &component).unwrap();

        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let artifact = cache.artifact_path("abc");
        let artifact_name = artifact.file_name().unwrap().to_string_lossy().into_owned();
        let mut expected = vec![KEY_FILE.to_owned(), artifact_name];
        expected.sort();
        assert_eq!(names, expected);
        let mode = std::fs::metadata(&artifact).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(cache.load(&engine, "abc").is_some());
    }
}
