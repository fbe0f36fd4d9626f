//! The `mongodb` store: the document whose `key_field` equals the key,
//! as relaxed Extended JSON — many keys as one `find` with `$in` and a
//! batch size as large as the key count, so a batch's lookups cost one
//! round trip.
//!
//! When several documents match a key (a `key_field` that is not unique),
//! one of them answers; a document whose `key_field` is an array answers
//! for each of its elements, as MongoDB's own equality does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, oid::ObjectId, spec::BinarySubtype};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};

use super::config::KeyType;
use super::io::StoreIo;
use super::store::{Store, StoreError};

/// Longest the connection string's own resolution (an SRV record's DNS
/// lookup) may take at start.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a `mongodb` store is asked to read.
#[derive(Debug, Clone)]
pub struct MongoLookup {
    /// The connection string.
    pub url: String,
    /// The database.
    pub database: String,
    /// The collection.
    pub collection: String,
    /// The dotted field a key must equal.
    pub key_field: String,
    /// What a key is matched as.
    pub key_type: KeyType,
    /// Only these top-level fields of a document; all when `None`.
    pub projection: Option<Vec<String>>,
}

/// A MongoDB collection as a lookup store.
pub struct MongoStore {
    io: StoreIo,
    collection: Collection<Document>,
    key_path: Arc<[String]>,
    key_type: KeyType,
    projection: Option<Document>,
    /// The key field is fetched to match documents to keys; it is taken
    /// out again when the projection did not ask for it.
    strip_key: Option<String>,
}

impl MongoStore {
    /// A store on `lookup.url`; the client connects on the first lookup.
    pub fn new(store: &str, lookup: &MongoLookup) -> Result<MongoStore, String> {
        let io = StoreIo::new(store)?;
        let url = lookup.url.clone();
        let options = io
            .run(
                RESOLVE_TIMEOUT,
                async move { ClientOptions::parse(url).await },
            )
            .ok_or("resolving the connection string timed out")?
            .map_err(|e| format!("bad url: {e}"))?;
        let client = {
            // The client's monitors run on the store's own thread.
            let _in_io = io.handle().map(tokio::runtime::Handle::enter);
            let mut options = options;
            if options.app_name.is_none() {
                options.app_name = Some(format!("weir/lookup/{store}"));
            }
            Client::with_options(options).map_err(|e| format!("bad url: {e}"))?
        };
        let collection = client
            .database(&lookup.database)
            .collection::<Document>(&lookup.collection);
        let (projection, strip_key) = match &lookup.projection {
            None => (None, None),
            Some(fields) => {
                let mut projection = Document::new();
                for field in fields {
                    projection.insert(field.clone(), 1);
                }
                let top = lookup.key_field.split('.').next().unwrap_or_default();
                let strip = !fields.iter().any(|f| f == top);
                if strip {
                    projection.insert(lookup.key_field.clone(), 1);
                }
                // `_id` comes unless refused.
                if !fields.iter().any(|f| f == "_id") && top != "_id" {
                    projection.insert("_id", 0);
                }
                (Some(projection), strip.then(|| top.to_owned()))
            }
        };
        Ok(MongoStore {
            io,
            collection,
            key_path: lookup.key_field.split('.').map(str::to_owned).collect(),
            key_type: lookup.key_type,
            projection,
            strip_key,
        })
    }
}

/// A key as the value a document's field must hold, comparable both ways.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Match {
    Text(String),
    Int(i64),
    /// A double's bits (integral doubles are `Int`).
    Float(u64),
    Bytes(Vec<u8>),
    Oid([u8; 12]),
}

impl Match {
    /// The key as the store's `key_type` reads it.
    fn of_key(key: &[u8], key_type: KeyType) -> Result<(Match, Bson), StoreError> {
        let text = || {
            std::str::from_utf8(key).map_err(|_| {
                StoreError::InvalidKey(format!(
                    "not UTF-8, and the store's key_type `{}` needs text",
                    key_type_name(key_type)
                ))
            })
        };
        Ok(match key_type {
            KeyType::String => {
                let s = text()?.to_owned();
                (Match::Text(s.clone()), Bson::String(s))
            }
            KeyType::Number => {
                let s = text()?.trim();
                if let Ok(n) = s.parse::<i64>() {
                    (Match::Int(n), Bson::Int64(n))
                } else {
                    match s.parse::<f64>() {
                        Ok(f) if f.is_finite() => (Match::of_float(f), Bson::Double(f)),
                        _ => {
                            return Err(StoreError::InvalidKey(format!(
                                "`{s}` is not a number (the store's key_type is `number`)"
                            )));
                        }
                    }
                }
            }
            KeyType::Binary => (
                Match::Bytes(key.to_vec()),
                Bson::Binary(mongodb::bson::Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: key.to_vec(),
                }),
            ),
            KeyType::Objectid => {
                let s = text()?;
                let oid = ObjectId::parse_str(s).map_err(|_| {
                    StoreError::InvalidKey(format!(
                        "`{s}` is not an ObjectId (24 hex digits; the store's key_type is `objectid`)"
                    ))
                })?;
                (Match::Oid(oid.bytes()), Bson::ObjectId(oid))
            }
        })
    }

    fn of_float(f: f64) -> Match {
        // Integral doubles in i64's range compare equal to integers, as in
        // MongoDB (`{n: 3}` matches `3.0`).
        if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
            Match::Int(f as i64)
        } else {
            Match::Float(f.to_bits())
        }
    }

    /// What a document's field value matches (several for an array).
    fn of_value(value: &Bson, out: &mut Vec<Match>) {
        match value {
            Bson::String(s) => out.push(Match::Text(s.clone())),
            Bson::Int32(n) => out.push(Match::Int(i64::from(*n))),
            Bson::Int64(n) => out.push(Match::Int(*n)),
            Bson::Double(f) => out.push(Match::of_float(*f)),
            Bson::Binary(b) => out.push(Match::Bytes(b.bytes.clone())),
            Bson::ObjectId(oid) => out.push(Match::Oid(oid.bytes())),
            Bson::Array(items) => {
                for item in items {
                    if !matches!(item, Bson::Array(_)) {
                        Match::of_value(item, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn key_type_name(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::String => "string",
        KeyType::Number => "number",
        KeyType::Binary => "binary",
        KeyType::Objectid => "objectid",
    }
}

/// The value at a dotted path of a document.
fn at_path<'d>(doc: &'d Document, path: &[String]) -> Option<&'d Bson> {
    let (first, rest) = path.split_first()?;
    let mut value = doc.get(first)?;
    for part in rest {
        value = value.as_document()?.get(part)?;
    }
    Some(value)
}

impl Store for MongoStore {
    fn get_many(
        &self,
        keys: &[&[u8]],
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut wanted: Vec<Match> = Vec::with_capacity(keys.len());
        let mut values: Vec<Bson> = Vec::with_capacity(keys.len());
        for key in keys {
            let (m, v) = Match::of_key(key, self.key_type)?;
            wanted.push(m);
            values.push(v);
        }
        let mut filter = Document::new();
        filter.insert(
            self.key_path.join("."),
            mongodb::bson::doc! { "$in": values },
        );
        let collection = self.collection.clone();
        let projection = self.projection.clone();
        // One batch for every answer: a cursor's first batch is 101
        // documents otherwise, and a batch exactly as large as the answer
        // leaves the cursor open for a `getMore` that finds nothing. One
        // more than the keys ends it (unless a non-unique key field
        // matches more documents than keys).
        let batch = u32::try_from(keys.len() + 1).unwrap_or(u32::MAX);
        let max_time = timeout;
        let found = self
            .io
            .run(timeout, async move {
                let mut find = collection.find(filter).batch_size(batch).max_time(max_time);
                if let Some(p) = projection {
                    find = find.projection(p);
                }
                find.await?.try_collect::<Vec<Document>>().await
            })
            .ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "mongodb: no answer within {} ms",
                    timeout.as_millis()
                ))
            })?
            .map_err(|e| StoreError::Unavailable(format!("mongodb: {e}")))?;

        let mut by_key: HashMap<Match, Vec<u8>> = HashMap::with_capacity(found.len());
        let mut matches = Vec::new();
        for mut doc in found {
            matches.clear();
            if let Some(value) = at_path(&doc, &self.key_path) {
                Match::of_value(value, &mut matches);
            }
            if let Some(top) = &self.strip_key {
                doc.remove(top);
            }
            let json = Bson::Document(doc).into_relaxed_extjson().to_string();
            for m in matches.drain(..) {
                by_key.entry(m).or_insert_with(|| json.clone().into_bytes());
            }
        }
        Ok(wanted.iter().map(|m| by_key.get(m).cloned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn keys_are_read_as_their_key_type_and_bad_ones_are_refused_by_name() {
        let m = |k: &[u8], t| Match::of_key(k, t).map(|(m, _)| m);
        assert_eq!(m(b"u1", KeyType::String), Ok(Match::Text("u1".into())));
        assert_eq!(m(b"42", KeyType::Number), Ok(Match::Int(42)));
        assert_eq!(m(b"42.0", KeyType::Number), Ok(Match::Int(42)));
        assert_eq!(
            m(b"1.5", KeyType::Number),
            Ok(Match::Float(1.5f64.to_bits()))
        );
        let Err(StoreError::InvalidKey(why)) = m(b"x1", KeyType::Number) else {
            panic!("a word is no number")
        };
        assert!(why.contains("`x1` is not a number"), "{why}");
        let Err(StoreError::InvalidKey(why)) = m(b"123", KeyType::Objectid) else {
            panic!("three digits are no ObjectId")
        };
        assert!(why.contains("ObjectId"), "{why}");
        assert!(m(&[0xff], KeyType::String).is_err());
        assert_eq!(m(&[0xff], KeyType::Binary), Ok(Match::Bytes(vec![0xff])));
    }

    #[test]
    fn a_document_matches_through_numbers_of_any_width_and_array_elements() {
        let mut out = Vec::new();
        Match::of_value(&Bson::Int32(7), &mut out);
        Match::of_value(&Bson::Double(7.0), &mut out);
        Match::of_value(
            &Bson::Array(vec![Bson::String("a".into()), Bson::Int64(8)]),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                Match::Int(7),
                Match::Int(7),
                Match::Text("a".into()),
                Match::Int(8)
            ]
        );
        let d = doc! {"user": {"email": "a@b"}};
        assert_eq!(
            at_path(&d, &["user".into(), "email".into()]),
            Some(&Bson::String("a@b".into()))
        );
        assert_eq!(at_path(&d, &["user".into(), "x".into()]), None);
    }
}
