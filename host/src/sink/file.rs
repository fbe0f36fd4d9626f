//! The file sink (`type = "file"`): outputs as JSON lines, appended to a
//! file or written to stdout, for development, the quickstart and dead
//! letters.
//!
//! ```toml
//! [sinks.purchases]
//! type = "file"
//! path = "out/purchases.jsonl"   # relative to the config file; "-" = stdout
//! format = "envelope"            # or "value"
//! fsync = true
//! ```
//!
//! In the `envelope` format each output becomes one object:
//! `{"route":..,"key":..,"value":..,"op":..,"headers":{..},"ttl_seconds":..}`.
//! `key` and `value` are embedded as JSON where they parse as JSON and as
//! strings (UTF-8, lossy) otherwise; header values are strings. In the
//! `value` format each output is its value bytes and a newline; outputs
//! without a value (deletes) write nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::Mutex;

use super::{BuildSink, Rejection, Sink, SinkContext, SinkError};
use crate::connector_error::ConnectorError;
use crate::event::Output;

/// Size of the in-process write buffer.
const BUFFER_BYTES: usize = 256 * 1024;

/// `[sinks.NAME]` with `type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// File to append to, relative to the config file's directory; its
    /// parent directories are created. `-` writes to stdout.
    pub path: PathBuf,
    /// Line format: `envelope` (default, the whole output as a JSON object)
    /// or `value` (the value bytes only).
    #[serde(default)]
    pub format: FileFormat,
    /// Whether `flush` (before every checkpoint and at shutdown) also asks
    /// the OS to put the data on disk (`fsync`). Default `true`.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
}

fn default_fsync() -> bool {
    true
}

/// How an output is written as a line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// A JSON object with route, key, value, op, headers and ttl_seconds.
    #[default]
    Envelope,
    /// The value bytes followed by a newline.
    Value,
}

impl FileSinkConfig {
    /// The offline check of `path`, which creates nothing: an existing
    /// path must not be a directory and must be writable; otherwise the
    /// nearest existing ancestor (the sink creates the missing ones) must
    /// be a directory the process may create entries in.
    pub fn offline_problems(&self, ctx: &SinkContext) -> Vec<(Vec<String>, String)> {
        if self.path.as_os_str() == "-" {
            return Vec::new();
        }
        path_problem(&ctx.resolve(&self.path))
            .map(|message| (vec!["path".to_owned()], message))
            .into_iter()
            .collect()
    }
}

/// Why `path` cannot be opened for appending, found without opening it.
fn path_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Some(format!("{} is a directory", path.display())),
        Ok(_) => {
            return (!may_write(path)).then(|| format!("{} is not writable", path.display()));
        }
        Err(e) if missing(&e) => {}
        Err(e) => return Some(format!("cannot read {}: {e}", path.display())),
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => {
                return (!may_write(d)).then(|| {
                    format!(
                        "cannot create {}: {} is not writable",
                        path.display(),
                        d.display()
                    )
                });
            }
            Ok(_) => {
                return Some(format!(
                    "cannot create {}: {} is not a directory",
                    path.display(),
                    d.display()
                ));
            }
            Err(e) if missing(&e) => dir = d.parent(),
            Err(e) => return Some(format!("cannot read {}: {e}", d.display())),
        }
    }
    None
}

/// Whether `e` says the path is not there (or an ancestor is a file, which
/// the walk up finds and names).
fn missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Whether this process may write `path` (for a directory: create entries
/// in it), as the OS answers `access(2)`: permissions, ACLs, a read-only
/// mount.
fn may_write(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mode = if path.is_dir() {
        libc::W_OK | libc::X_OK
    } else {
        libc::W_OK
    };
    // SAFETY: `c` is a NUL-terminated string that outlives the call, and
    // access(2) only reads it.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// Why the file sink failed.
#[derive(Debug, thiserror::Error)]
pub enum FileSinkError {
    /// The file's parent directories cannot be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file cannot be opened for appending.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Writing, flushing or syncing the open file failed (a full disk may
    /// clear up, so it is retried).
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// `cannot write`, `cannot flush` or `cannot fsync`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

impl ConnectorError for FileSinkError {
    fn is_transient(&self) -> bool {
        matches!(self, FileSinkError::Io { .. })
    }
}

/// Where the lines go.
enum Target {
    File {
        writer: BufWriter<tokio::fs::File>,
        /// Only regular files are fsynced (`/dev/null` and pipes are not).
        regular: bool,
    },
    /// Standard output, written with blocking calls: it is a development
    /// aid, and a terminal or pipe takes a batch's lines at once.
    Stdout(std::io::Stdout),
}

/// A running file sink.
pub struct FileSink {
    name: String,
    path: PathBuf,
    format: FileFormat,
    fsync: bool,
    target: Mutex<Target>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl BuildSink for FileSinkConfig {
    async fn build(&self, ctx: &SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(FileSink::open(self, ctx).await?))
    }
}

impl FileSink {
    /// Open (create, append) the file of `config`.
    pub async fn open(config: &FileSinkConfig, ctx: &SinkContext) -> Result<FileSink, SinkError> {
        let name = ctx.name.clone();
        if config.path.as_os_str() == "-" {
            return Ok(FileSink {
                name,
                path: config.path.clone(),
                format: config.format,
                fsync: config.fsync,
                target: Mutex::new(Target::Stdout(std::io::stdout())),
            });
        }
        let path = ctx.resolve(&config.path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| FileSinkError::CreateDir {
                    path: parent.to_owned(),
                    source,
                })?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|source| FileSinkError::Open {
                path: path.clone(),
                source,
            })?;
        let regular = file
            .metadata()
            .await
            .map(|m| m.file_type().is_file())
            .unwrap_or(false);
        Ok(FileSink {
            name,
            path,
            format: config.format,
            fsync: config.fsync,
            target: Mutex::new(Target::File {
                writer: BufWriter::with_capacity(BUFFER_BYTES, file),
                regular,
            }),
        })
    }

    fn io_error(&self, what: &'static str, source: std::io::Error) -> SinkError {
        FileSinkError::Io {
            what,
            path: self.path.clone(),
            source,
        }
        .into()
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&self, outputs: &[Output]) -> Result<Vec<Rejection>, SinkError> {
        let mut buf = Vec::with_capacity(outputs.len() * 256);
        for output in outputs {
            match self.format {
                FileFormat::Envelope => write_envelope(&mut buf, output),
                FileFormat::Value => {
                    if let Some(value) = &output.value {
                        buf.extend_from_slice(value);
                        buf.push(b'\n');
                    }
                }
            }
        }
        let mut target = self.target.lock().await;
        match &mut *target {
            Target::File { writer, .. } => writer.write_all(&buf).await,
            Target::Stdout(stdout) => stdout.lock().write_all(&buf),
        }
        .map_err(|e| self.io_error("cannot write", e))?;
        Ok(Vec::new())
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let mut target = self.target.lock().await;
        match &mut *target {
            Target::File { writer, regular } => {
                writer
                    .flush()
                    .await
                    .map_err(|e| self.io_error("cannot flush", e))?;
                if self.fsync && *regular {
                    writer
                        .get_mut()
                        .sync_data()
                        .await
                        .map_err(|e| self.io_error("cannot fsync", e))?;
                }
            }
            Target::Stdout(stdout) => stdout
                .lock()
                .flush()
                .map_err(|e| self.io_error("cannot flush", e))?,
        }
        Ok(())
    }
}

/// Append one output as a JSON envelope line to `buf`.
fn write_envelope(buf: &mut Vec<u8>, output: &Output) {
    buf.extend_from_slice(b"{\"route\":");
    match &output.route {
        Some(route) => write_json_string(buf, route),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"key\":");
    write_json_or_string(buf, output.key.as_deref());
    buf.extend_from_slice(b",\"value\":");
    write_json_or_string(buf, output.value.as_deref());
    buf.extend_from_slice(b",\"op\":\"");
    buf.extend_from_slice(output.op.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"headers\":{");
    for (i, header) in output.headers.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_json_string(buf, &header.key);
        buf.push(b':');
        write_json_string(buf, &String::from_utf8_lossy(&header.value));
    }
    buf.extend_from_slice(b"},\"ttl_seconds\":");
    match output.ttl_seconds {
        Some(ttl) => {
            let _ = write!(buf, "{ttl}");
        }
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b"}\n");
}

/// `bytes` as embedded JSON when they are one JSON value on one line, as a
/// re-serialized compact value when they are JSON over several lines, and as
/// a JSON string otherwise.
fn write_json_or_string(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    let Some(bytes) = bytes else {
        buf.extend_from_slice(b"null");
        return;
    };
    let trimmed = bytes.trim_ascii();
    if !trimmed.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_ok() {
        if !trimmed.contains(&b'\n') && !trimmed.contains(&b'\r') {
            buf.extend_from_slice(trimmed);
            return;
        }
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(trimmed)
            && serde_json::to_writer(&mut *buf, &value).is_ok()
        {
            return;
        }
    }
    write_json_string(buf, &String::from_utf8_lossy(bytes));
}

fn write_json_string(buf: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::event::{Header, Op};

    fn ctx(dir: &std::path::Path) -> SinkContext {
        SinkContext {
            name: "out".into(),
            config_dir: dir.to_path_buf(),
        }
    }

    fn problems(dir: &std::path::Path, path: &str) -> Vec<(Vec<String>, String)> {
        let config: FileSinkConfig = toml::from_str(&format!("path = {path:?}")).unwrap();
        config.offline_problems(&ctx(dir))
    }

    #[test]
    fn the_path_is_checked_offline_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain"), b"").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        // Fine: a new file in a new directory (created at start), an
        // existing file, stdout.
        assert!(problems(dir.path(), "new/deeper/out.jsonl").is_empty());
        assert!(problems(dir.path(), "plain").is_empty());
        assert!(problems(dir.path(), "-").is_empty());
        assert!(
            !dir.path().join("new").exists(),
            "the check created the directory"
        );
        let shown = |p: &str| dir.path().join(p).display().to_string();
        assert_eq!(
            problems(dir.path(), "sub"),
            vec![(
                vec!["path".to_owned()],
                format!("{} is a directory", shown("sub"))
            )]
        );
        assert_eq!(
            problems(dir.path(), "plain/out.jsonl"),
            vec![(
                vec!["path".to_owned()],
                format!(
                    "cannot create {}: {} is not a directory",
                    shown("plain/out.jsonl"),
                    shown("plain")
                )
            )]
        );
    }

    fn config(path: &str, format: FileFormat) -> FileSinkConfig {
        FileSinkConfig {
            path: path.into(),
            format,
            fsync: true,
        }
    }

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn envelope_embeds_json_and_strings() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::open(
            &config("a/b/out.jsonl", FileFormat::Envelope),
            &ctx(dir.path()),
        )
        .await
        .unwrap();
        let outputs = vec![
            Output {
                route: Some("purchases".into()),
                key: Some(Bytes::from_static(b"user-1")),
                value: Some(Bytes::from_static(b"{\"b\":1,\"a\":[true]}")),
                op: Op::Insert,
                headers: vec![Header::new("weir.reason", "bad \"json\"")],
                ttl_seconds: Some(60),
            },
            Output {
                route: None,
                key: Some(Bytes::from_static(b"42")),
                value: Some(Bytes::from_static(b"{\n  \"x\": 1\n}")),
                op: Op::Upsert,
                headers: vec![],
                ttl_seconds: None,
            },
            Output {
                route: None,
                key: None,
                value: None,
                op: Op::Delete,
                headers: vec![],
                ttl_seconds: None,
            },
            Output {
                value: Some(Bytes::from_static(b"not json\n")),
                ..Output::default()
            },
        ];
        assert!(sink.write(&outputs).await.unwrap().is_empty());
        sink.flush().await.unwrap();
        let path = dir.path().join("a/b/out.jsonl");
        let got = lines(&path);
        assert_eq!(
            got,
            vec![
                json!({"route": "purchases", "key": "user-1", "value": {"b": 1, "a": [true]},
                       "op": "insert", "headers": {"weir.reason": "bad \"json\""}, "ttl_seconds": 60}),
                json!({"route": null, "key": 42, "value": {"x": 1}, "op": "upsert",
                       "headers": {}, "ttl_seconds": null}),
                json!({"route": null, "key": null, "value": null, "op": "delete",
                       "headers": {}, "ttl_seconds": null}),
                json!({"route": null, "key": null, "value": "not json\n", "op": "upsert",
                       "headers": {}, "ttl_seconds": null}),
            ]
        );
        // The value's own key order is kept byte for byte.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(
            "{\"route\":\"purchases\",\"key\":\"user-1\",\"value\":{\"b\":1,\"a\":[true]},"
        ));
    }

    #[tokio::test]
    async fn value_format_appends_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config("values.jsonl", FileFormat::Value);
        for round in 0..2 {
            let sink = FileSink::open(&cfg, &ctx(dir.path())).await.unwrap();
            let outputs = vec![
                Output {
                    value: Some(Bytes::from(format!("{{\"round\":{round}}}"))),
                    ..Output::default()
                },
                Output {
                    op: Op::Delete,
                    ..Output::default()
                },
            ];
            sink.write(&outputs).await.unwrap();
            sink.flush().await.unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("values.jsonl")).unwrap();
        assert_eq!(text, "{\"round\":0}\n{\"round\":1}\n");
    }

    #[tokio::test]
    async fn concurrent_writes_keep_lines_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(
            FileSink::open(&config("c.jsonl", FileFormat::Envelope), &ctx(dir.path()))
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for t in 0..8 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                let outputs: Vec<Output> = (0..500)
                    .map(|i| Output {
                        value: Some(Bytes::from(format!("{{\"t\":{t},\"i\":{i}}}"))),
                        ..Output::default()
                    })
                    .collect();
                sink.write(&outputs).await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        sink.flush().await.unwrap();
        assert_eq!(lines(&dir.path().join("c.jsonl")).len(), 8 * 500);
    }

    #[tokio::test]
    async fn unwritable_path_names_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let err = FileSink::open(
            &config("file/x.jsonl", FileFormat::Envelope),
            &ctx(dir.path()),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cannot create directory"), "{text}");
    }

    #[test]
    fn config_rejects_unknown_keys_and_formats() {
        let err = toml::from_str::<FileSinkConfig>("path = \"x\"\nformt = \"value\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `formt`"), "{err}");
        let err = toml::from_str::<FileSinkConfig>("path = \"x\"\nformat = \"csv\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant `csv`"), "{err}");
        let ok: FileSinkConfig = toml::from_str("path = \"-\"").unwrap();
        assert_eq!(ok.format, FileFormat::Envelope);
        assert!(ok.fsync);
    }
}
