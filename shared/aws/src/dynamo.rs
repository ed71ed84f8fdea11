//! The event log in DynamoDB.
//!
//! Item layout (table key: `session_id` HASH, `event_id` RANGE):
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `session_id` | S | partition key: a session's events live together, so a fold over a session is one query |
//! | `event_id` | S | sort key: the event's own identity, so a redelivery maps to the same item |
//! | `event_type` | S | v1 `event_type` |
//! | `occurred_at` | S | event time, RFC 3339 UTC with milliseconds (sorts as text) |
//! | `user_id` | S | pseudonymous user id, when the event has one |
//! | `expires_at` | N | TTL: event time plus retention, in epoch seconds |
//! | `body` | S | the whole pseudonymized event, canonical JSON (schema v1) |
//!
//! Every attribute is a pure function of the event, so putting an event again writes an identical item.

use crate::error::store_error;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use checkout_domain::ingest::LogEntry;
use checkout_domain::ports::{BatchSink, StoreError};
use std::collections::HashMap;

/// `BatchWriteItem` takes at most 25 items.
pub const BATCH_WRITE_MAX: usize = 25;

pub type Item = HashMap<String, AttributeValue>;

/// The item for one log entry.
pub fn to_item(e: &LogEntry) -> Item {
    let mut item = HashMap::with_capacity(7);
    item.insert("session_id".into(), AttributeValue::S(e.session_id.clone()));
    item.insert("event_id".into(), AttributeValue::S(e.event_id.clone()));
    item.insert("event_type".into(), AttributeValue::S(e.event_type.clone()));
    item.insert(
        "occurred_at".into(),
        AttributeValue::S(e.occurred_at.clone()),
    );
    if let Some(u) = &e.user_id {
        item.insert("user_id".into(), AttributeValue::S(u.clone()));
    }
    item.insert(
        "expires_at".into(),
        AttributeValue::N(e.expires_at.to_string()),
    );
    item.insert("body".into(), AttributeValue::S(e.body.clone()));
    // The sparse decision indexes (template: `decisions-by-id`, `decisions-by-hour`).
    if let Some(hour) = e.decision_hour() {
        item.insert("decision_id".into(), AttributeValue::S(e.event_id.clone()));
        item.insert("decision_hour".into(), AttributeValue::S(hour));
    }
    item
}

/// Why an item read back from the table is not a log entry.
#[derive(Debug, thiserror::Error)]
#[error("event log item is malformed: attribute `{0}` is missing or has the wrong type")]
pub struct MalformedItem(pub &'static str);

/// The log entry an item holds.
pub fn from_item(item: &Item) -> Result<LogEntry, MalformedItem> {
    let s = |name: &'static str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or(MalformedItem(name))
    };
    Ok(LogEntry {
        session_id: s("session_id")?,
        event_id: s("event_id")?,
        event_type: s("event_type")?,
        occurred_at: s("occurred_at")?,
        user_id: item.get("user_id").and_then(|v| v.as_s().ok()).cloned(),
        expires_at: item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or(MalformedItem("expires_at"))?,
        body: s("body")?,
    })
}

/// The event log table, written with `BatchWriteItem`.
#[derive(Debug, Clone)]
pub struct DynamoEventLog {
    pub client: Client,
    pub table: String,
}

impl BatchSink<LogEntry> for DynamoEventLog {
    fn max_batch(&self) -> usize {
        BATCH_WRITE_MAX
    }

    async fn put(&self, items: &[&LogEntry]) -> Result<Vec<usize>, StoreError> {
        let mut requests = Vec::with_capacity(items.len());
        for e in items {
            let put = PutRequest::builder()
                .set_item(Some(to_item(e)))
                .build()
                .map_err(|err| StoreError::permanent("BatchWriteItem", err))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let keys = items
            .iter()
            .map(|e| (e.session_id.as_str(), e.event_id.as_str()));
        batch_write(&self.client, &self.table, requests, keys).await
    }
}

impl checkout_domain::ports::AppendOnce for DynamoEventLog {
    /// `PutItem` with `attribute_not_exists`: a condition failure means the key was taken.
    async fn append_once(&self, entry: &LogEntry) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(entry)))
            .condition_expression("attribute_not_exists(event_id)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(store_error("PutItem", e)),
        }
    }
}

/// One `BatchWriteItem` of puts or deletes on the event log, and the positions (in `keys`' order) of
/// the requests DynamoDB left unprocessed, by their key.
async fn batch_write<'k>(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    keys: impl Iterator<Item = (&'k str, &'k str)>,
) -> Result<Vec<usize>, StoreError> {
    let out = client
        .batch_write_item()
        .request_items(table, requests)
        .send()
        .await
        .map_err(|e| store_error("BatchWriteItem", e))?;
    let Some(unprocessed) = out.unprocessed_items().and_then(|m| m.get(table)) else {
        return Ok(Vec::new());
    };
    let position: HashMap<(&str, &str), usize> = keys.enumerate().map(|(i, k)| (k, i)).collect();
    let key_of = |item: &Item, name| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    Ok(unprocessed
        .iter()
        .filter_map(|w| {
            let item = w
                .put_request()
                .map(PutRequest::item)
                .or_else(|| w.delete_request().map(DeleteRequest::key))?;
            let (s, e) = (key_of(item, "session_id")?, key_of(item, "event_id")?);
            position.get(&(s.as_str(), e.as_str())).copied()
        })
        .collect())
}

/// The event log's secondary indexes (eventually consistent) and its sessions (strongly consistent):
/// `explain`, the drift monitor and erasure.
#[derive(Debug, Clone)]
pub struct DynamoLogIndex {
    pub client: Client,
    pub table: String,
}

/// The index names in the template.
pub const BY_USER_INDEX: &str = "by-user";
pub const DECISIONS_BY_ID_INDEX: &str = "decisions-by-id";
pub const DECISIONS_BY_HOUR_INDEX: &str = "decisions-by-hour";

impl checkout_domain::ports::SessionLog for DynamoLogIndex {
    async fn session_events(&self, session_id: &str) -> Result<Vec<LogEntry>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("session_id = :s")
            .expression_attribute_values(":s", AttributeValue::S(session_id.into()));
        query_all(query, |item| from_item(&item)).await
    }
}

impl DynamoLogIndex {
    /// The distinct sessions of the items of `index` whose `attribute` is `value`.
    async fn sessions_in(
        &self,
        index: &str,
        attribute: &str,
        value: &str,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(format!("{attribute} = :v"))
            .expression_attribute_values(":v", AttributeValue::S(value.into()));
        let sessions = collect(query, usize::MAX, |item| {
            item.get("session_id")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .ok_or(MalformedItem("session_id"))
        })
        .await?;
        Ok(sessions.into_iter().collect())
    }
}

impl checkout_domain::ports::LogIndex for DynamoLogIndex {
    async fn decision_session(&self, decision_id: &str) -> Result<Option<String>, StoreError> {
        let sessions = self
            .sessions_in(DECISIONS_BY_ID_INDEX, "decision_id", decision_id)
            .await?;
        Ok(sessions.into_iter().next())
    }

    async fn decisions_in_hour(
        &self,
        hour: &str,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..checkout_domain::ingest::DECISION_HOUR_SHARDS {
            if out.len() >= limit {
                break;
            }
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DECISIONS_BY_HOUR_INDEX)
                .key_condition_expression("decision_hour = :h")
                .expression_attribute_values(
                    ":h",
                    AttributeValue::S(checkout_domain::ingest::decision_hour_key(hour, shard)),
                );
            out.extend(collect(query, limit - out.len(), |item| from_item(&item)).await?);
        }
        Ok(out)
    }

    async fn user_sessions(
        &self,
        user_id: &str,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.sessions_in(BY_USER_INDEX, "user_id", user_id).await
    }
}

impl checkout_domain::ports::LogEraser for DynamoLogIndex {
    fn max_batch(&self) -> usize {
        BATCH_WRITE_MAX
    }

    async fn delete(&self, keys: &[&(String, String)]) -> Result<Vec<usize>, StoreError> {
        let mut requests = Vec::with_capacity(keys.len());
        for (session, event) in keys {
            let delete = DeleteRequest::builder()
                .key("session_id", AttributeValue::S(session.clone()))
                .key("event_id", AttributeValue::S(event.clone()))
                .build()
                .map_err(|e| StoreError::permanent("BatchWriteItem", e))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        let positions = keys.iter().map(|(s, e)| (s.as_str(), e.as_str()));
        batch_write(&self.client, &self.table, requests, positions).await
    }
}

/// At most `limit` items a query matches, across pages, each decoded by `decode`, with the query's own
/// consistency.
pub async fn collect<T, E>(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    limit: usize,
    decode: impl Fn(Item) -> Result<T, E>,
) -> Result<Vec<T>, StoreError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut pages = query.into_paginator().items().send();
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(item) = pages.next().await else {
            break;
        };
        let item = item.map_err(|e| store_error("Query", e))?;
        out.push(decode(item).map_err(|e| StoreError::permanent("Query", e))?);
    }
    Ok(out)
}

/// Every item a query matches, strongly consistent, across pages, each decoded by `decode`.
pub async fn query_all<T, E>(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    decode: impl Fn(Item) -> Result<T, E>,
) -> Result<Vec<T>, StoreError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    collect(query.consistent_read(true), usize::MAX, decode).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let e = LogEntry {
            session_id: "s".into(),
            event_id: "e".into(),
            event_type: "product_viewed".into(),
            occurred_at: "2019-10-01T00:00:00.000Z".into(),
            user_id: Some("u_00".into()),
            expires_at: 1_900_000_000,
            body: "{}".into(),
        };
        assert_eq!(from_item(&to_item(&e)).expect("round trip"), e);
        let mut item = to_item(&e);
        item.remove("body");
        assert!(from_item(&item).is_err());
    }
}
