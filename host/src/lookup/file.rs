//! The `file` store: a JSON-lines or CSV reference table read once at
//! start into memory, each row (as a JSON object) under its key field.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::store::{Store, StoreError};

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object a line.
    Jsonl,
    /// A header line, then one row a line; values are strings.
    Csv,
}

/// A reference table in memory.
#[derive(Debug)]
pub struct FileStore {
    rows: HashMap<Vec<u8>, Vec<u8>>,
}

impl FileStore {
    /// Read `path`; every row must have `key_field`. Errors say the line.
    pub fn load(path: &Path, format: FileFormat, key_field: &str) -> Result<FileStore, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let at = |line: usize, what: String| format!("{}:{line}: {what}", path.display());
        let mut rows = HashMap::new();
        let mut insert = |line: usize, row: Map<String, Value>| -> Result<(), String> {
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
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let row: Map<String, Value> = serde_json::from_str(line)
                        .map_err(|e| at(i + 1, format!("not a JSON object: {e}")))?;
                    insert(i + 1, row)?;
                }
            }
            FileFormat::Csv => {
                let mut lines = text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty());
                let Some((_, header)) = lines.next() else {
                    return Ok(FileStore { rows });
                };
                let header = csv_fields(header).map_err(|e| at(1, e))?;
                for (i, line) in lines {
                    let fields = csv_fields(line).map_err(|e| at(i + 1, e))?;
                    if fields.len() != header.len() {
                        return Err(at(
                            i + 1,
                            format!("{} fields, the header has {}", fields.len(), header.len()),
                        ));
                    }
                    let row = header
                        .iter()
                        .cloned()
                        .zip(fields.into_iter().map(Value::String))
                        .collect();
                    insert(i + 1, row)?;
                }
            }
        }
        Ok(FileStore { rows })
    }
}

/// The fields of one CSV line (RFC 4180 quoting; no newlines in fields).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

impl Store for FileStore {
    fn get_many(
        &self,
        keys: &[&[u8]],
        _timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        Ok(keys.iter().map(|k| self.rows.get(*k).cloned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-lookup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn csv_rows_are_json_objects_under_their_key() {
        let path = table("p.csv", "id,name\n1,\"Ada, L\"\n2,Bob\n");
        let store = FileStore::load(&path, FileFormat::Csv, "id").unwrap();
        let got = store
            .get_many(&[b"1", b"3"], Duration::from_millis(1))
            .unwrap();
        assert_eq!(
            got[0].as_deref(),
            Some(&br#"{"id":"1","name":"Ada, L"}"#[..])
        );
        assert_eq!(got[1], None);
    }

    #[test]
    fn a_jsonl_row_without_its_key_names_the_line() {
        let path = table("p.jsonl", "{\"id\":1}\n{\"name\":\"x\"}\n");
        let err = FileStore::load(&path, FileFormat::Jsonl, "id").unwrap_err();
        assert!(err.ends_with("p.jsonl:2: no key field `id`"), "{err}");
    }
}
