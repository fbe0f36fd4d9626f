//! The `dynamodb` store: the item whose partition key is the key, as JSON
//! with the DynamoDB Streams source's mapping (`format`,
//! `inexact_numbers`).
//!
//! Many keys are one `BatchGetItem` per 100 distinct keys (the API's
//! limit), sent at once, so a batch's lookups cost one round trip of
//! latency; keys the service leaves unprocessed (throttling) are asked
//! again, with a short backoff, until the call's timeout. The table's key
//! must be the partition key alone: a table with a sort key has no single
//! item per lookup key.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::config::KeyType;
use super::io::StoreIo;
use super::store::{Store, StoreError};
use crate::dynamodb::attr::{JsonMapping, canonical_number};
use crate::dynamodb::client::{AwsConnection, error_text};
use crate::dynamodb::json::is_json_number;

/// Most keys one `BatchGetItem` takes.
const BATCH_KEYS: usize = 100;
/// Longest loading the AWS configuration may take at start.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// What a `dynamodb` store is asked to read.
#[derive(Debug, Clone)]
pub struct DynamoLookup {
    /// Where and as whom.
    pub connection: AwsConnection,
    /// The table.
    pub table: String,
    /// The partition key attribute.
    pub key_field: String,
    /// `string` (`S`), `number` (`N`) or `binary` (`B`).
    pub key_type: KeyType,
    /// Only these top-level attributes; all when `None`.
    pub projection: Option<Vec<String>>,
    /// Item -> JSON.
    pub mapping: JsonMapping,
}

/// A DynamoDB table as a lookup store.
pub struct DynamoStore {
    io: StoreIo,
    client: Client,
    table: String,
    key_field: String,
    key_type: KeyType,
    /// `ProjectionExpression` and its attribute names (every name through
    /// a placeholder, so reserved words need no care).
    projection: Option<(String, HashMap<String, String>)>,
    /// Whether the key attribute is fetched only to match items to keys.
    strip_key: bool,
    mapping: JsonMapping,
}

impl DynamoStore {
    /// A store on `lookup.table`; nothing is asked of AWS until the first
    /// lookup.
    pub fn new(store: &str, lookup: &DynamoLookup) -> Result<DynamoStore, String> {
        let io = StoreIo::new(store)?;
        let connection = lookup.connection.clone();
        let sdk = io
            .run(LOAD_TIMEOUT, async move { connection.load().await })
            .ok_or("loading the AWS configuration timed out")?;
        let client = Client::new(&sdk);
        let (projection, strip_key) = match &lookup.projection {
            None => (None, false),
            Some(fields) => {
                let strip = !fields.contains(&lookup.key_field);
                let mut names = HashMap::new();
                let mut placeholders = Vec::new();
                for (i, field) in fields
                    .iter()
                    .chain(strip.then_some(&lookup.key_field))
                    .enumerate()
                {
                    let placeholder = format!("#p{i}");
                    names.insert(placeholder.clone(), field.clone());
                    placeholders.push(placeholder);
                }
                (Some((placeholders.join(", "), names)), strip)
            }
        };
        Ok(DynamoStore {
            io,
            client,
            table: lookup.table.clone(),
            key_field: lookup.key_field.clone(),
            key_type: lookup.key_type,
            projection,
            strip_key,
            mapping: lookup.mapping,
        })
    }

    /// The key as the partition key's attribute value, and what an item's
    /// key attribute is compared with.
    fn attr(&self, key: &[u8]) -> Result<(AttributeValue, Vec<u8>), StoreError> {
        let text = || {
            std::str::from_utf8(key).map_err(|_| {
                StoreError::InvalidKey(
                    "not UTF-8, and the store's key_type needs text (use `binary`)".to_owned(),
                )
            })
        };
        Ok(match self.key_type {
            KeyType::Number => {
                let n = text()?.trim();
                if !is_json_number(n) {
                    return Err(StoreError::InvalidKey(format!(
                        "`{n}` is not a number (the store's key_type is `number`)"
                    )));
                }
                (
                    AttributeValue::N(n.to_owned()),
                    canonical_number(n).into_bytes(),
                )
            }
            KeyType::Binary => (AttributeValue::B(Blob::new(key.to_vec())), key.to_vec()),
            // `objectid` is refused by the config check.
            KeyType::String | KeyType::Objectid => {
                (AttributeValue::S(text()?.to_owned()), key.to_vec())
            }
        })
    }
}

/// What an item's key attribute is compared with (see [`DynamoStore::attr`]).
fn matched(value: &AttributeValue) -> Option<Vec<u8>> {
    match value {
        AttributeValue::S(s) => Some(s.clone().into_bytes()),
        AttributeValue::N(n) => Some(canonical_number(n).into_bytes()),
        AttributeValue::B(b) => Some(b.as_ref().to_vec()),
        _ => None,
    }
}

type Item = HashMap<String, AttributeValue>;

/// One `BatchGetItem` of at most [`BATCH_KEYS`] keys, asking again for
/// what the service leaves unprocessed until it is all answered (the
/// caller's timeout bounds the loop).
async fn batch_get(
    client: Client,
    table: String,
    mut keys: Vec<Item>,
    projection: Option<(String, HashMap<String, String>)>,
) -> Result<Vec<Item>, String> {
    let mut items = Vec::with_capacity(keys.len());
    let mut backoff = Duration::from_millis(10);
    while !keys.is_empty() {
        let mut request = KeysAndAttributes::builder().set_keys(Some(keys));
        if let Some((expression, names)) = &projection {
            request = request
                .projection_expression(expression)
                .set_expression_attribute_names(Some(names.clone()));
        }
        let request = request.build().map_err(|e| e.to_string())?;
        let answer = client
            .batch_get_item()
            .request_items(&table, request)
            .send()
            .await
            .map_err(|e| error_text(&e))?;
        if let Some(found) = answer.responses().and_then(|r| r.get(&table)) {
            items.extend(found.iter().cloned());
        }
        keys = answer
            .unprocessed_keys()
            .and_then(|u| u.get(&table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        if !keys.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }
    Ok(items)
}

impl Store for DynamoStore {
    fn get_many(
        &self,
        keys: &[&[u8]],
        timeout: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // BatchGetItem refuses a request naming one key twice.
        let mut wanted: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
        let mut distinct: HashMap<Vec<u8>, AttributeValue> = HashMap::new();
        for key in keys {
            let (attr, matched) = self.attr(key)?;
            distinct.entry(matched.clone()).or_insert(attr);
            wanted.push(matched);
        }
        let requests: Vec<Vec<Item>> = distinct
            .into_values()
            .map(|attr| HashMap::from([(self.key_field.clone(), attr)]))
            .collect::<Vec<_>>()
            .chunks(BATCH_KEYS)
            .map(<[Item]>::to_vec)
            .collect();
        let calls: Vec<_> = requests
            .into_iter()
            .map(|keys| {
                batch_get(
                    self.client.clone(),
                    self.table.clone(),
                    keys,
                    self.projection.clone(),
                )
            })
            .collect();
        let found = self
            .io
            .run(timeout, futures::future::try_join_all(calls))
            .ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "dynamodb: no answer within {} ms",
                    timeout.as_millis()
                ))
            })?
            .map_err(|e| StoreError::Unavailable(format!("dynamodb: {e}")))?;
        let mut by_key: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for mut item in found.into_iter().flatten() {
            let Some(key) = item.get(&self.key_field).and_then(matched) else {
                continue;
            };
            if self.strip_key {
                item.remove(&self.key_field);
            }
            by_key.insert(key, self.mapping.item_to_vec(&item));
        }
        Ok(wanted.iter().map(|k| by_key.get(k).cloned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_whatever_their_spelling() {
        assert_eq!(
            matched(&AttributeValue::N("1.50".into())),
            matched(&AttributeValue::N("15e-1".into()))
        );
        assert_eq!(matched(&AttributeValue::Bool(true)), None);
    }
}
