//! The `file` store: a JSON-lines or CSV reference table held in memory,
//! each row (as a JSON object) under its key field, read at start and read
//! again when the file changes.
//!
//! A thread of the store's own polls the file's identity (size, modified
//! time, inode) every second, as a deploy replaces a file by renaming a new
//! one over it; a changed file is parsed whole and swapped in at once, so a
//! lookup sees the old table or the new one, never a mix. A file that no
//! longer parses (a half-written copy, a mistake) leaves the old table
//! serving, with a warning naming the line, until the next change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::store::{Store, StoreError};

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object a line.
    Jsonl,
    /// A header line, then one row a line (RFC 4180); values are strings.
    Csv,
}

/// How often a watched table's file is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Rows by key, as JSON.
type Table = HashMap<Vec<u8>, Vec<u8>>;

/// A reference table in memory.
#[derive(Debug)]
pub struct FileStore {
    table: Arc<RwLock<Arc<Table>>>,
    /// Tells the watching thread to end.
    stop: Arc<AtomicBool>,
}

impl FileStore {
    /// Read `path` once; every row must have `key_field`. Errors say the
    /// line.
    pub fn load(path: &Path, format: FileFormat, key_field: &str) -> Result<FileStore, String> {
        Ok(FileStore {
            table: Arc::new(RwLock::new(Arc::new(read_table(path, format, key_field)?))),
            stop: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Read `path` and read it again whenever it changes, looking every
    /// `poll` on a thread named after `store`.
    pub fn watch(
        store: &str,
        path: &Path,
        format: FileFormat,
        key_field: &str,
        poll: Duration,
    ) -> Result<FileStore, String> {
        let seen = fingerprint(path);
        let table = Arc::new(RwLock::new(Arc::new(read_table(path, format, key_field)?)));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = Watcher {
            store: store.to_owned(),
            path: path.to_owned(),
            format,
            key_field: key_field.to_owned(),
            table: Arc::clone(&table),
            stop: Arc::clone(&stop),
            seen,
        };
        std::thread::Builder::new()
            .name(format!("weir-lookup-{store}"))
            .spawn(move || watcher.run(poll))
            .map_err(|e| format!("cannot start the thread watching `{}`: {e}", path.display()))?;
        Ok(FileStore { table, stop })
    }

    fn current(&self) -> Arc<Table> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What tells a file's versions apart without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}

/// The thread that reads a table again when its file changes.
struct Watcher {
    store: String,
    path: PathBuf,
    format: FileFormat,
    key_field: String,
    table: Arc<RwLock<Arc<Table>>>,
    stop: Arc<AtomicBool>,
    seen: Option<Fingerprint>,
}

impl Watcher {
    fn run(mut self, poll: Duration) {
        let step = poll.min(Duration::from_millis(100));
        let mut waited = Duration::ZERO;
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(step);
            waited += step;
            if waited < poll {
                continue;
            }
            waited = Duration::ZERO;
            self.check();
        }
    }

    fn check(&mut self) {
        let now = fingerprint(&self.path);
        if now == self.seen {
            return;
        }
        self.seen = now.clone();
        let result = crate::metrics::label::RESULT;
        let reloads = |outcome: &'static str| {
            metrics::counter!(
                crate::metrics::LOOKUP_FILE_RELOADS.name,
                crate::metrics::label::STORE => self.store.clone(),
                result => outcome
            )
            .increment(1);
        };
        if now.is_none() {
            tracing::warn!(store = %self.store, path = %self.path.display(),
                "lookup table is gone; the last one read keeps answering");
            reloads("failed");
            return;
        }
        match read_table(&self.path, self.format, &self.key_field) {
            Ok(table) => {
                let rows = table.len();
                *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
                tracing::info!(store = %self.store, path = %self.path.display(), rows,
                    "lookup table read again");
                reloads("ok");
            }
            Err(error) => {
                tracing::warn!(store = %self.store, %error,
                    "lookup table changed but cannot be read; the last one read keeps answering");
                reloads("failed");
            }
        }
    }
}

/// Read a whole table; the first bad row is an error naming its line.
fn read_table(path: &Path, format: FileFormat, key_field: &str) -> Result<Table, String> {
    let at = |line: u64, what: String| format!("{}:{line}: {what}", path.display());
    let mut rows = HashMap::new();
    let mut insert = |line: u64, row: Map<String, Value>| -> Result<(), String> {
        let key = match row.get(key_field) {
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(Value::Number(n)) => n.to_string().into_bytes(),
            Some(other) => {
                return Err(at(
                    line,
                    format!("key field `{key_field}` is {other}, not a string or number"),
                ));
            }
            None => return Err(at(line, format!("no key field `{key_field}`"))),
        };
        let value = serde_json::to_vec(&row).map_err(|e| at(line, e.to_string()))?;
        rows.insert(key, value);
        Ok(())
    };
    match format {
        FileFormat::Jsonl => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let line_no = i as u64 + 1;
                let row: Map<String, Value> = serde_json::from_str(line)
                    .map_err(|e| at(line_no, format!("not a JSON object: {e}")))?;
                insert(line_no, row)?;
            }
        }
        FileFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_path(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            let header: Vec<String> = reader
                .headers()
                .map_err(|e| at(1, e.to_string()))?
                .iter()
                .map(str::to_owned)
                .collect();
            for record in reader.records() {
                // The csv crate counts lines itself (quoted fields may span
                // several) and says which one a bad record starts on.
                let record = record.map_err(|e| match e.position() {
                    Some(p) => at(p.line(), csv_reason(&e)),
                    None => format!("{}: {e}", path.display()),
                })?;
                let line = record.position().map_or(0, csv::Position::line);
                let row = header
                    .iter()
                    .cloned()
                    .zip(record.iter().map(|f| Value::String(f.to_owned())))
                    .collect();
                insert(line, row)?;
            }
        }
    }
    Ok(rows)
}

/// A CSV error without the position (the caller puts the line first).
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
        _ => e.to_string(),
    }
}

impl Store for FileStore {
    fn get_many(
        &self,
        keys: &[&[u8]],
        _timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let table = self.current();
        Ok(keys.iter().map(|k| table.get(*k).cloned()).collect())
    }

    /// The table is in memory already: a cache would only hold answers
    /// past a reload of the file.
    fn cacheable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-lookup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn one(store: &FileStore, key: &[u8]) -> Option<Vec<u8>> {
        store
            .get_many(&[key], Duration::from_millis(1))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn csv_rows_are_json_objects_under_their_key() {
        let path = table(
            "p.csv",
            "id,name\r\n1,\"Ada, L\"\r\n2,\"Bob\nsecond line\"\r\n",
        );
        let store = FileStore::load(&path, FileFormat::Csv, "id").unwrap();
        assert_eq!(
            one(&store, b"1").as_deref(),
            Some(&br#"{"id":"1","name":"Ada, L"}"#[..])
        );
        assert_eq!(
            one(&store, b"2").as_deref(),
            Some(&br#"{"id":"2","name":"Bob\nsecond line"}"#[..]),
            "a quoted field may hold a line break"
        );
        assert_eq!(one(&store, b"3"), None);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let path = table("p.jsonl", "{\"id\":1}\n{\"name\":\"x\"}\n");
        let err = FileStore::load(&path, FileFormat::Jsonl, "id").unwrap_err();
        assert!(err.ends_with("p.jsonl:2: no key field `id`"), "{err}");
        let path = table("short.csv", "id,name\n1,a\n2\n");
        let err = FileStore::load(&path, FileFormat::Csv, "id").unwrap_err();
        assert!(
            err.ends_with("short.csv:3: 1 fields, the header has 2"),
            "{err}"
        );
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_leaves_the_last_table() {
        let path = table("watched.jsonl", "{\"id\":\"a\",\"v\":1}\n");
        let store = FileStore::watch(
            "t",
            &path,
            FileFormat::Jsonl,
            "id",
            Duration::from_millis(20),
        )
        .unwrap();
        let wait_for = |want: Option<&[u8]>| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while one(&store, b"a").as_deref() != want {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the store never answered {want:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        // A deploy: a new file renamed over the old one.
        let next = path.with_extension("tmp");
        std::fs::write(&next, "{\"id\":\"a\",\"v\":2}\n{\"id\":\"b\",\"v\":3}\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        wait_for(Some(br#"{"id":"a","v":2}"#));
        assert!(one(&store, b"b").is_some());

        std::fs::write(&path, "{\"id\":\"a\",\"v\":4}\nnot json\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            one(&store, b"a").as_deref(),
            Some(&br#"{"id":"a","v":2}"#[..]),
            "a broken file does not replace the table"
        );
        std::fs::write(&path, "{\"id\":\"a\",\"v\":5}\n").unwrap();
        wait_for(Some(br#"{"id":"a","v":5}"#));
        assert_eq!(one(&store, b"b"), None, "the new table is whole");
    }
}
