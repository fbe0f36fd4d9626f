//! Which files a reload may read, and reading them with a size cap.
//!
//! A reload through the admin API names a file; whoever can reach the API
//! must not be able to make the host read (and run) any file it can open.
//! [`ReloadRules`] say where such a file may be: the plugin's configured
//! file, the directory holding it, or an explicit allow-list
//! (`[host.admin] reload_dirs`). Paths are compared after resolving
//! symbolic links and `..`, so a link inside an allowed directory pointing
//! outside it is refused. Only regular files are read (a FIFO or a device
//! would block or never end), and at most `max_bytes` of them.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Default of `[host.admin] max_plugin_bytes`: the largest plugin file a
/// reload reads.
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 64 * 1024 * 1024;

/// Where a reload through the admin API may read a plugin file from, and
/// how much of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRules {
    /// Directories allowed besides the configured file's own; relative ones
    /// are resolved against the config file's directory.
    pub dirs: Vec<PathBuf>,
    /// Largest file read, in bytes.
    pub max_bytes: u64,
}

impl Default for ReloadRules {
    fn default() -> Self {
        ReloadRules {
            dirs: Vec::new(),
            max_bytes: DEFAULT_MAX_PLUGIN_BYTES,
        }
    }
}

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileRefusal {
    /// Outside every allowed place.
    #[error(
        "not inside the directory of the plugin's configured file or a `[host.admin] reload_dirs` directory"
    )]
    OutsideAllowed,
    /// A directory, FIFO, socket or device.
    #[error("not a regular file")]
    NotRegular,
    /// Larger than the cap.
    #[error("{size} bytes, more than `[host.admin] max_plugin_bytes` = {max}")]
    TooLarge {
        /// Size of the file (at least).
        size: u64,
        /// The cap.
        max: u64,
    },
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(String),
}

/// `path` with links and `..` resolved, if it exists.
fn canonical(path: &Path) -> Result<PathBuf, FileRefusal> {
    std::fs::canonicalize(path).map_err(|e| FileRefusal::Io(e.to_string()))
}

/// Check that `candidate` may be loaded for a plugin configured with file
/// `configured`, and return its canonical path (which is what should be
/// read, so a link swapped later does not move the load elsewhere).
pub fn allowed_path(
    candidate: &Path,
    configured: &Path,
    allowed_dirs: &[PathBuf],
) -> Result<PathBuf, FileRefusal> {
    let wanted = canonical(candidate)?;
    let configured_file = canonical(configured).ok();
    let configured_dir = configured.parent().and_then(|d| canonical(d).ok());
    let mut dirs: Vec<PathBuf> = configured_dir.into_iter().collect();
    dirs.extend(allowed_dirs.iter().filter_map(|d| canonical(d).ok()));
    let inside = configured_file.as_deref() == Some(wanted.as_path())
        || dirs.iter().any(|dir| wanted.starts_with(dir));
    if !inside {
        return Err(FileRefusal::OutsideAllowed);
    }
    let meta = std::fs::metadata(&wanted).map_err(|e| FileRefusal::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(FileRefusal::NotRegular);
    }
    Ok(wanted)
}

/// Read a regular file of at most `max_bytes`, once: open it (without
/// blocking, so a FIFO put in its place cannot hang the reload), check the
/// type and size on the opened handle, read at most one byte more than the
/// cap. No check is made by path, so nothing can be swapped between a check
/// and the read; the caller uses these bytes and never reads the file again.
pub fn read_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>, FileRefusal> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO for reading otherwise waits for a
        // writer. It changes nothing for a regular file.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| FileRefusal::Io(e.to_string()))?;
    let meta = file
        .metadata()
        .map_err(|e| FileRefusal::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(FileRefusal::NotRegular);
    }
    if meta.len() > max_bytes {
        return Err(FileRefusal::TooLarge {
            size: meta.len(),
            max: max_bytes,
        });
    }
    // The file may grow between the fstat and the read: read one byte more
    // than allowed to notice.
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FileRefusal::Io(e.to_string()))?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > max_bytes {
        return Err(FileRefusal::TooLarge {
            size: read,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_in_allowed_places_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        let extra = dir.path().join("extra");
        let elsewhere = dir.path().join("elsewhere");
        for d in [&plugins, &extra, &elsewhere] {
            std::fs::create_dir(d).unwrap();
        }
        let configured = plugins.join("a.wasm");
        std::fs::write(&configured, b"a").unwrap();
        std::fs::write(plugins.join("b.wasm"), b"b").unwrap();
        std::fs::write(extra.join("c.wasm"), b"c").unwrap();
        std::fs::write(elsewhere.join("d.wasm"), b"d").unwrap();
        let allow = [extra.clone()];

        assert!(allowed_path(&plugins.join("b.wasm"), &configured, &allow).is_ok());
        assert!(allowed_path(&extra.join("c.wasm"), &configured, &allow).is_ok());
        assert_eq!(
            allowed_path(&elsewhere.join("d.wasm"), &configured, &allow),
            Err(FileRefusal::OutsideAllowed)
        );
        assert_eq!(
            allowed_path(&plugins.join("../elsewhere/d.wasm"), &configured, &allow),
            Err(FileRefusal::OutsideAllowed),
            "`..` is resolved"
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(elsewhere.join("d.wasm"), plugins.join("link.wasm"))
                .unwrap();
            assert_eq!(
                allowed_path(&plugins.join("link.wasm"), &configured, &allow),
                Err(FileRefusal::OutsideAllowed),
                "a link out of the directory is followed and refused"
            );
        }
        std::fs::create_dir(plugins.join("sub.wasm")).unwrap();
        assert_eq!(
            allowed_path(&plugins.join("sub.wasm"), &configured, &allow),
            Err(FileRefusal::NotRegular)
        );
        assert!(matches!(
            allowed_path(&plugins.join("missing.wasm"), &configured, &allow),
            Err(FileRefusal::Io(_))
        ));
    }

    #[test]
    fn reads_are_capped_and_only_of_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, vec![7u8; 100]).unwrap();
        assert_eq!(read_capped(&file, 100).unwrap().len(), 100);
        assert_eq!(
            read_capped(&file, 99),
            Err(FileRefusal::TooLarge { size: 100, max: 99 })
        );
        assert_eq!(read_capped(dir.path(), 100), Err(FileRefusal::NotRegular));
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo");
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap();
            assert!(made.success());
            // Would block forever if it were opened without O_NONBLOCK.
            assert_eq!(read_capped(&fifo, 100), Err(FileRefusal::NotRegular));
            // A link to a FIFO is refused on the opened handle too.
            let link = dir.path().join("link.wasm");
            std::os::unix::fs::symlink(&fifo, &link).unwrap();
            assert_eq!(read_capped(&link, 100), Err(FileRefusal::NotRegular));
            // A character device that never ends is refused, not read.
            assert_eq!(
                read_capped(Path::new("/dev/zero"), 100),
                Err(FileRefusal::NotRegular)
            );
        }
    }

    #[test]
    fn a_file_replaced_after_the_read_does_not_change_what_was_read() {
        // The read is the only access: what a later writer puts in place
        // is not seen, and a replacement by a larger file is refused on the
        // handle, not by a check of the path made before.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"first").unwrap();
        let read = read_capped(&file, 10).unwrap();
        std::fs::write(&file, b"second, longer than the cap").unwrap();
        assert_eq!(read, b"first");
        assert_eq!(
            read_capped(&file, 10),
            Err(FileRefusal::TooLarge { size: 27, max: 10 })
        );
    }
}
