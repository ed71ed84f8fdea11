//! `rebuild-features`: every projection recomputed from the event log in memory and diffed against the
//! live features table (the event-sourcing invariant, checked on the local stack).

use crate::census::scan_features;
use crate::local::stack::LocalStack;
use crate::BoxError;
use checkout_domain::features::rebuild::{count_by_entity, diff, is_schedule, rebuild, Difference};
use checkout_domain::features::{Doc, ItemPageMode, Key};
use serde::Serialize;

/// How the live features table compares with a rebuild from the event log.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub log_entries: usize,
    pub unreadable_events: usize,
    pub expected_items: usize,
    /// Live projection items (recovery due items, which are schedule, are counted only by entity).
    pub live_items: usize,
    pub expected_by_entity: std::collections::BTreeMap<String, usize>,
    pub live_by_entity: std::collections::BTreeMap<String, usize>,
    pub differences: usize,
    /// The first few differences, in key order.
    pub sample: Vec<Difference>,
}

/// Recomputes every projection from the event log in memory and diffs it against the live table.
pub async fn rebuild_features(stack: &LocalStack) -> Result<RebuildReport, BoxError> {
    let (ddb, env) = feature_tables(stack).await?;
    let log = crate::census::scan_log(&ddb, env.required("EVENT_LOG_TABLE")?).await?;
    let live = scan_features(&ddb, env.required("FEATURES_TABLE")?).await?;
    Ok(compare(log, &live, stack.item_page_mode()?))
}

/// A DynamoDB client for the local stack and the feature updater's environment (which names the event
/// log and the features table).
pub async fn feature_tables(
    stack: &LocalStack,
) -> Result<(aws_sdk_dynamodb::Client, checkout_aws::Env), BoxError> {
    let sdk = stack.sdk_config().await;
    Ok((
        aws_sdk_dynamodb::Client::new(&sdk),
        stack.env("FeatureUpdaterFunction")?,
    ))
}

/// The rebuild of `log` compared with `live`, a table kept in `mode` (in batch mode it holds no item or
/// page contributions or pair counts, and its items and pages are as current as the last batch run).
pub fn compare(
    log: Vec<checkout_domain::ingest::LogEntry>,
    live: &std::collections::BTreeMap<Key, Doc>,
    mode: ItemPageMode,
) -> RebuildReport {
    let log_entries = log.len();
    let (mut expected, unreadable) = rebuild(log);
    expected.retain(|_, d| mode.keeps(d));
    let differences = diff(&expected, live);
    RebuildReport {
        log_entries,
        unreadable_events: unreadable.len(),
        expected_items: expected.len(),
        live_items: live.values().filter(|d| !is_schedule(d)).count(),
        expected_by_entity: count_by_entity(expected.values()),
        live_by_entity: count_by_entity(live.values()),
        differences: differences.len(),
        sample: differences.into_iter().take(5).collect(),
    }
}
