//! The features table and the event log's session reads, in DynamoDB.
//!
//! Item layout (table key: `pk` HASH, `sk` RANGE; see [`crate::features::Key`]): the feature document's
//! fields as top-level attributes (mapped with `serde_dynamo`), plus
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk`, `sk` | S | the key |
//! | `entity` | S | `session`, `user`, `item`, `page`, `experiment_unit`, or a `*_contribution` / `item_pair` |
//! | `feature_schema_version` | N | [`FEATURE_SCHEMA_VERSION`] when written; other versions are refused on read |
//! | `version` | N | optimistic-concurrency counter that conditional writes check |
//! | `expires_at` | N | TTL (epoch seconds), also checked on read |

use crate::aws::dynamo::{from_item, Item};
use crate::aws::error::store_error;
use crate::delivery::StoreError;
use crate::features::updater::{CommitError, Expect, FeatureStore, SessionLog, Stored, Write};
use crate::features::{Doc, Key, FEATURE_SCHEMA_VERSION};
use crate::ingest::LogEntry;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `BatchGetItem` reads at most 100 keys.
pub const BATCH_GET_MAX: usize = 100;

/// Why an item of the features table cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FeatureItemError {
    #[error("features item is missing `{0}` or it has the wrong type")]
    Missing(&'static str),
    #[error("features item {key} has feature schema version {found}; this build reads {FEATURE_SCHEMA_VERSION} (rebuild the table)")]
    SchemaVersion { key: String, found: String },
    #[error("features item {key} does not decode: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_dynamo::Error,
    },
}

fn key_attrs(key: &Key) -> Item {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(key.pk.clone())),
        ("sk".to_string(), AttributeValue::S(key.sk.clone())),
    ])
}

/// The item for a document at a version.
pub fn to_item(doc: &Doc, version: u64) -> Result<Item, serde_dynamo::Error> {
    let mut item: Item = serde_dynamo::to_item(doc)?;
    item.extend(key_attrs(&doc.key()));
    item.insert("version".into(), AttributeValue::N(version.to_string()));
    item.insert(
        "feature_schema_version".into(),
        AttributeValue::N(FEATURE_SCHEMA_VERSION.to_string()),
    );
    Ok(item)
}

/// The key, version and document an item holds.
pub fn from_feature_item(item: Item) -> Result<(Key, Stored), FeatureItemError> {
    let s = |name: &'static str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or(FeatureItemError::Missing(name))
    };
    let key = Key::new(s("pk")?, s("sk")?);
    let n = |name: &'static str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .ok_or(FeatureItemError::Missing(name))
    };
    let schema = n("feature_schema_version")?;
    if *schema != FEATURE_SCHEMA_VERSION.to_string() {
        return Err(FeatureItemError::SchemaVersion {
            key: key.to_string(),
            found: schema.clone(),
        });
    }
    let version = n("version")?
        .parse()
        .map_err(|_| FeatureItemError::Missing("version"))?;
    let doc: Doc = serde_dynamo::from_item(item).map_err(|source| FeatureItemError::Decode {
        key: key.to_string(),
        source,
    })?;
    Ok((key, Stored { version, doc }))
}

/// The features table.
#[derive(Debug, Clone)]
pub struct DynamoFeatureStore {
    pub client: Client,
    pub table: String,
}

impl DynamoFeatureStore {
    fn put(&self, w: &Write, doc: &Doc) -> Result<Put, StoreError> {
        let version = match w.expect {
            Expect::Version(v) => v + 1,
            Expect::Absent | Expect::Any => 1,
        };
        let item = to_item(doc, version).map_err(|e| StoreError::permanent("encode", e))?;
        let (cond, values) = condition(w.expect);
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(cond)
            .set_expression_attribute_values(values)
            .build()
            .map_err(|e| StoreError::permanent("TransactWriteItems", e))
    }
}

/// The condition a write's expectation becomes.
fn condition(expect: Expect) -> (Option<String>, Option<HashMap<String, AttributeValue>>) {
    match expect {
        Expect::Any => (None, None),
        Expect::Absent => (Some("attribute_not_exists(pk)".into()), None),
        Expect::Version(v) => (
            Some("version = :v".into()),
            Some(HashMap::from([(
                ":v".to_string(),
                AttributeValue::N(v.to_string()),
            )])),
        ),
    }
}

impl FeatureStore for DynamoFeatureStore {
    async fn get_many(&self, keys: &[Key]) -> Result<HashMap<Key, Stored>, StoreError> {
        let mut out = HashMap::with_capacity(keys.len());
        let mut unique: Vec<&Key> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.iter().map(|k| key_attrs(k)).collect()))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::permanent("BatchGetItem", e))?;
            // UnprocessedKeys come back under throttling: retry them with a short, growing pause.
            for attempt in 0u32.. {
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| store_error("BatchGetItem", e))?;
                for item in resp
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let (k, stored) = from_feature_item(item.clone())
                        .map_err(|e| StoreError::permanent("BatchGetItem", e))?;
                    out.insert(k, stored);
                }
                match resp.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt >= 8 {
                            return Err(StoreError {
                                operation: "BatchGetItem",
                                retryable: true,
                                source: "keys still unprocessed after 8 retries".into(),
                            });
                        }
                        request = rest.clone();
                        tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    async fn query(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Stored>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
            .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.into()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| store_error("Query", e))?;
            let (_, stored) =
                from_feature_item(item).map_err(|e| StoreError::permanent("Query", e))?;
            out.push(stored);
        }
        Ok(out)
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), CommitError> {
        if let [w] = writes.as_slice() {
            return self.commit_one(w).await;
        }
        let mut items = Vec::with_capacity(writes.len());
        for w in &writes {
            let item = match &w.doc {
                Some(doc) => TransactWriteItem::builder().put(self.put(w, doc)?).build(),
                None => {
                    let (cond, values) = condition(w.expect);
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attrs(&w.key)))
                        .set_condition_expression(cond)
                        .set_expression_attribute_values(values)
                        .build()
                        .map_err(|e| StoreError::permanent("TransactWriteItems", e))?;
                    TransactWriteItem::builder().delete(delete).build()
                }
            };
            items.push(item);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    // A failed condition or a concurrent transaction on one of the items: re-read and
                    // recompute.
                    let conflict = c.cancellation_reasons().iter().any(|r| {
                        matches!(
                            r.code(),
                            Some("ConditionalCheckFailed" | "TransactionConflict")
                        )
                    });
                    if conflict {
                        return Err(CommitError::Conflict);
                    }
                }
                if e.code() == Some("TransactionConflictException") {
                    return Err(CommitError::Conflict);
                }
                Err(store_error("TransactWriteItems", e).into())
            }
        }
    }
}

impl DynamoFeatureStore {
    /// One write needs no transaction: a conditional `PutItem` or `DeleteItem` costs half as much.
    async fn commit_one(&self, w: &Write) -> Result<(), CommitError> {
        let (cond, values) = condition(w.expect);
        let result = match &w.doc {
            Some(doc) => {
                let put = self.put(w, doc)?;
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(put.item().clone()))
                    .set_condition_expression(cond)
                    .set_expression_attribute_values(values)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            e.code() == Some("ConditionalCheckFailedException"),
                            store_error("PutItem", e),
                        )
                    })
            }
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key_attrs(&w.key)))
                .set_condition_expression(cond)
                .set_expression_attribute_values(values)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    (
                        e.code() == Some("ConditionalCheckFailedException"),
                        store_error("DeleteItem", e),
                    )
                }),
        };
        match result {
            Ok(()) => Ok(()),
            Err((true, _)) => Err(CommitError::Conflict),
            Err((false, e)) => Err(e.into()),
        }
    }
}

/// Reads every item of the features table (for `rebuild-features`, tests and the demo).
pub async fn scan_features(
    client: &Client,
    table: &str,
) -> Result<BTreeMap<Key, Doc>, Box<dyn std::error::Error + Send + Sync>> {
    let mut pages = client
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send();
    let mut out = BTreeMap::new();
    while let Some(item) = pages.next().await {
        let (key, stored) = from_feature_item(item?)?;
        out.insert(key, stored.doc);
    }
    Ok(out)
}

/// The event log, read one session at a time.
#[derive(Debug, Clone)]
pub struct DynamoSessionLog {
    pub client: Client,
    pub table: String,
}

impl SessionLog for DynamoSessionLog {
    async fn session_events(&self, session_id: &str) -> Result<Vec<LogEntry>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("session_id = :s")
            .expression_attribute_values(":s", AttributeValue::S(session_id.into()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| store_error("Query", e))?;
            out.push(from_item(&item).map_err(|e| StoreError::permanent("Query", e))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::aggregate::Partner;
    use crate::features::ItemFeatures;
    use chrono::TimeZone;

    #[test]
    fn items_round_trip_and_other_schema_versions_are_refused() {
        let doc = Doc::Item(ItemFeatures {
            product_id: "p1".into(),
            views: 3,
            cart_adds: 1,
            purchases: 0,
            units: 0,
            sessions: 2,
            last_event_at: chrono::Utc
                .with_ymd_and_hms(2019, 10, 1, 0, 0, 0)
                .single()
                .expect("time"),
            co_viewed: vec![Partner {
                product_id: "p2".into(),
                sessions: 2,
            }],
            co_purchased: vec![],
            expires_at: 1_900_000_000,
        });
        let item = to_item(&doc, 7).expect("encode");
        assert_eq!(
            item.get("entity")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
            Some("item")
        );
        let (key, stored) = from_feature_item(item.clone()).expect("decode");
        assert_eq!(key, Key::item("p1"));
        assert_eq!(stored, Stored { version: 7, doc });

        let mut old = item;
        old.insert(
            "feature_schema_version".into(),
            AttributeValue::N("0".into()),
        );
        assert!(matches!(
            from_feature_item(old),
            Err(FeatureItemError::SchemaVersion { .. })
        ));
    }
}
