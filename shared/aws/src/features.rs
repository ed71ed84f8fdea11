//! The features table and the event log's session reads, in DynamoDB.
//!
//! Item layout (table key: `pk` HASH, `sk` RANGE; see [`checkout_domain::features::Key`]): the feature document's
//! fields as top-level attributes (mapped with `serde_dynamo`), plus
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk`, `sk` | S | the key |
//! | `entity` | S | `session`, `user`, `item`, `page`, `experiment_unit`, or a `*_contribution` / `item_pair` |
//! | `feature_schema_version` | N | [`FEATURE_SCHEMA_VERSION`] when written; other versions are refused on read |
//! | `version` | N | optimistic-concurrency counter that conditional writes check |
//! | `expires_at` | N | TTL (epoch seconds), also checked on read |

use crate::dynamo::{collect, query_all, Item};
use crate::error::store_error;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use checkout_domain::delivery::RetryPolicy;
use checkout_domain::features::{Doc, Key, UnitCursor, FEATURE_SCHEMA_VERSION, UNIT_SHARDS};
use checkout_domain::ports::StoreError;
use checkout_domain::ports::{CommitError, Expect, FeatureReader, FeatureWriter, Stored, Write};
use checkout_domain::ports::{DueIndex, UnitPage, UnitSource};
use std::collections::HashMap;

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

/// The item a put writes: the document at the version after the one it expects.
fn versioned_item(w: &Write, doc: &Doc) -> Result<Item, StoreError> {
    let version = match w.expect {
        Expect::Version(v) => v + 1,
        Expect::Absent | Expect::Any => 1,
    };
    to_item(doc, version).map_err(|e| StoreError::permanent("encode", e))
}

/// A failed conditional write: a conflict when a condition failed (or a concurrent transaction held one
/// of the items), otherwise a store error classified as usual.
fn conditional_error<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> CommitError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if matches!(
        e.code(),
        Some("ConditionalCheckFailedException" | "TransactionConflictException")
    ) {
        return CommitError::Conflict;
    }
    store_error(operation, e).into()
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

impl FeatureReader for DynamoFeatureStore {
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
            // UnprocessedKeys come back under throttling: retry them with the usual backoff.
            let retry = RetryPolicy::default();
            for attempt in 1u32.. {
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
                        if attempt >= retry.max_attempts {
                            return Err(StoreError {
                                operation: "BatchGetItem",
                                retryable: true,
                                source: format!("keys still unprocessed after {attempt} calls")
                                    .into(),
                            });
                        }
                        request = rest.clone();
                        retry.pause(attempt).await;
                    }
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

/// The features table's sparse index of recovery due items (`due_bucket` HASH, `due_key` RANGE,
/// projection ALL): only `recovery_due` items carry its keys.
pub const RECOVERY_DUE_INDEX: &str = "recovery-due";

impl DueIndex for DynamoFeatureStore {
    async fn due(
        &self,
        bucket: &str,
        until: &str,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(RECOVERY_DUE_INDEX)
            .key_condition_expression("due_bucket = :b AND due_key <= :u")
            .expression_attribute_values(":b", AttributeValue::S(bucket.into()))
            .expression_attribute_values(":u", AttributeValue::S(until.into()));
        collect(query, limit, |item| from_feature_item(item).map(|(_, s)| s)).await
    }
}

impl FeatureWriter for DynamoFeatureStore {
    async fn query(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Stored>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", AttributeValue::S(pk.into()));
        // An empty prefix is the whole partition (DynamoDB refuses an empty key value).
        let query = if sk_prefix.is_empty() {
            query.key_condition_expression("pk = :pk")
        } else {
            query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.into()))
        };
        query_all(query, |item| from_feature_item(item).map(|(_, s)| s)).await
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), CommitError> {
        if let [w] = writes.as_slice() {
            return self.commit_one(w).await;
        }
        let mut items = Vec::with_capacity(writes.len());
        for w in &writes {
            let (cond, values) = condition(w.expect);
            let item = match &w.doc {
                Some(doc) => {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(versioned_item(w, doc)?))
                        .set_condition_expression(cond)
                        .set_expression_attribute_values(values)
                        .build()
                        .map_err(|e| StoreError::permanent("TransactWriteItems", e))?;
                    TransactWriteItem::builder().put(put).build()
                }
                None => {
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
                Err(conditional_error("TransactWriteItems", e))
            }
        }
    }
}

impl DynamoFeatureStore {
    /// One write needs no transaction: a conditional `PutItem` or `DeleteItem` costs half as much.
    async fn commit_one(&self, w: &Write) -> Result<(), CommitError> {
        let (cond, values) = condition(w.expect);
        match &w.doc {
            Some(doc) => self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(versioned_item(w, doc)?))
                .set_condition_expression(cond)
                .set_expression_attribute_values(values)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| conditional_error("PutItem", e)),
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
                .map_err(|e| conditional_error("DeleteItem", e)),
        }
    }
}

/// The event log, read one session at a time (the feature updater's `SessionLog`; the same adapter
/// also answers the log's index lookups).
pub use crate::dynamo::DynamoLogIndex as DynamoSessionLog;

/// The experiment-unit projection: one `Query` page of the `experiment#<id>` partition at a time
/// (eventually consistent; an hourly report does not need the last second).
#[derive(Debug, Clone)]
pub struct DynamoUnitSource {
    pub client: Client,
    pub table: String,
    /// Items per page (`Limit`); `None` leaves it to DynamoDB's 1 MB pages.
    pub page_size: Option<i32>,
}

impl UnitSource for DynamoUnitSource {
    /// One Query page of one shard; the cursor walks the shards in order.
    async fn page(&self, experiment_id: &str, after: Option<&str>) -> Result<UnitPage, StoreError> {
        let cursor = UnitCursor::parse(after);
        if cursor.shard >= UNIT_SHARDS {
            return Ok(UnitPage::default());
        }
        let pk = Key::experiment_shard(experiment_id, cursor.shard);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :unit)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .expression_attribute_values(":unit", AttributeValue::S("unit#".into()))
            .set_limit(self.page_size);
        if let Some(sk) = &cursor.after {
            query = query.set_exclusive_start_key(Some(key_attrs(&Key::new(pk, sk))));
        }
        let output = query
            .send()
            .await
            .map_err(|e| store_error("DynamoDB Query", e))?;
        let next = cursor.next(
            output
                .last_evaluated_key()
                .and_then(|k| k.get("sk"))
                .and_then(|v| v.as_s().ok())
                .cloned(),
        );
        let units = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| match from_feature_item(item) {
                Ok((
                    _,
                    Stored {
                        doc: Doc::ExperimentUnit(u),
                        ..
                    },
                )) => Ok(u),
                Ok((key, _)) => {
                    tracing::warn!(%key, "not an experiment unit in an experiment partition");
                    Err("not_an_experiment_unit".to_string())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable experiment-unit item");
                    Err("unreadable_item".to_string())
                }
            })
            .collect();
        Ok(UnitPage { units, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkout_domain::features::aggregate::Partner;
    use checkout_domain::features::ItemFeatures;
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
