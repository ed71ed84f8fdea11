//! Whole-table reads of the local stack: scans and censuses for `rebuild-features`, the demo's
//! read-back and the integration tests. Never used by a Lambda (a scan is not a production read path).

use aws_sdk_dynamodb::Client;
use checkout_aws::dynamo::{from_item, Item};
use checkout_aws::features::from_feature_item;
use checkout_domain::features::rebuild::count_entities;
use checkout_domain::features::{Doc, Key};
use checkout_domain::ingest::LogEntry;
use std::collections::BTreeMap;

/// Every item a scan returns, across pages (for tests, rebuilds and the demo), each decoded by `decode`.
pub async fn scan_all<T, E>(
    scan: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
    decode: impl Fn(Item) -> Result<T, E>,
) -> Result<Vec<T>, Box<dyn std::error::Error + Send + Sync>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut pages = scan.into_paginator().items().send();
    let mut out = Vec::new();
    while let Some(item) = pages.next().await {
        out.push(decode(item?)?);
    }
    Ok(out)
}

/// Reads every entry of the log.
pub async fn scan_log(
    client: &Client,
    table: &str,
) -> Result<Vec<LogEntry>, Box<dyn std::error::Error + Send + Sync>> {
    scan_all(client.scan().table_name(table), |item| from_item(&item)).await
}

/// Counts the items of a table (a paginated `Select=COUNT` scan, which transfers no item data).
pub async fn count_items(
    client: &Client,
    table: &str,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let mut total = 0usize;
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        total += usize::try_from(out.count()).unwrap_or(0);
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(total);
        }
    }
}

/// Reads every item of the features table (for `rebuild-features`, tests and the demo).
pub async fn scan_features(
    client: &Client,
    table: &str,
) -> Result<BTreeMap<Key, Doc>, Box<dyn std::error::Error + Send + Sync>> {
    let items = scan_all(client.scan().table_name(table), |item| {
        from_feature_item(item).map(|(key, stored)| (key, stored.doc))
    })
    .await?;
    Ok(items.into_iter().collect())
}

/// Reads the items of the features table of the given entity types (the `entity` attribute).
pub async fn scan_entities(
    client: &Client,
    table: &str,
    entities: &[&str],
) -> Result<BTreeMap<Key, Doc>, Box<dyn std::error::Error + Send + Sync>> {
    let mut scan = client
        .scan()
        .table_name(table)
        .expression_attribute_names("#entity", "entity");
    let mut names = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        let name = format!(":e{i}");
        scan = scan.expression_attribute_values(
            &name,
            aws_sdk_dynamodb::types::AttributeValue::S(e.to_string()),
        );
        names.push(name);
    }
    let scan = scan.filter_expression(format!("#entity IN ({})", names.join(", ")));
    let items = scan_all(scan, |item| {
        from_feature_item(item).map(|(key, stored)| (key, stored.doc))
    })
    .await?;
    Ok(items.into_iter().collect())
}

/// Items per entity type, and the session with the most events (then the most orders), from a scan
/// that reads only those attributes.
pub async fn entity_census(
    client: &Client,
    table: &str,
) -> Result<(BTreeMap<String, usize>, Option<String>), Box<dyn std::error::Error + Send + Sync>> {
    let scan = client
        .scan()
        .table_name(table)
        .projection_expression("pk, #entity, #events, #orders")
        .expression_attribute_names("#entity", "entity")
        .expression_attribute_names("#events", "event_count")
        .expression_attribute_names("#orders", "orders");
    let rows = scan_all(scan, |item| {
        let s = |name| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let n = |name| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
        };
        Ok::<_, std::convert::Infallible>((s("entity"), s("pk"), n("event_count"), n("orders")))
    })
    .await?;
    let counts = count_entities(rows.iter().filter_map(|(e, ..)| e.as_deref()));
    let busiest = rows
        .iter()
        .filter(|(e, ..)| e.as_deref() == Some("session"))
        .filter_map(|(_, pk, events, orders)| {
            Some((events.unwrap_or(0), orders.unwrap_or(0), pk.as_ref()?))
        })
        .max_by(|a, b| (a.0, a.1, b.2).cmp(&(b.0, b.1, a.2)))
        .and_then(|(_, _, pk)| pk.strip_prefix("session#").map(str::to_string));
    Ok((counts, busiest))
}
