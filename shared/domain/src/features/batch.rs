//! Item and page features computed in one pass over the event archive with SQL
//! (`sql/item_features.sql`, `sql/page_features.sql`), the step towards computing them in micro-batches
//! instead of per event (docs/features.md). This module turns the queries' rows into the same
//! [`ItemFeatures`] and [`PageFeatures`] the feature updater keeps; a differential test holds them equal
//! to the rebuild's ([`super::rebuild`]) on the same events.

use super::aggregate::{ItemFeatures, Money, PageFeatures, Partner};
use super::{Doc, Key};
use crate::ports::{Expect, Stored, Write};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One row of `sql/item_features.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ItemRow {
    /// `item`, `co_viewed` or `co_purchased`.
    pub row_kind: String,
    pub product_id: String,
    pub other_id: Option<String>,
    pub views: u32,
    pub cart_adds: u32,
    pub purchases: u32,
    pub units: u32,
    pub sessions: u32,
    pub last_event_at: Option<String>,
    pub expires_at: Option<i64>,
    pub place: Option<u32>,
}

impl ItemRow {
    /// The query's columns, in its order.
    pub const COLUMNS: [&'static str; 11] = [
        "row_kind",
        "product_id",
        "other_id",
        "views",
        "cart_adds",
        "purchases",
        "units",
        "sessions",
        "last_event_at",
        "expires_at",
        "place",
    ];

    /// The integer columns (the rest are text), for engines that return every cell as text.
    pub const INTEGER_COLUMNS: [&'static str; 7] = [
        "views",
        "cart_adds",
        "purchases",
        "units",
        "sessions",
        "expires_at",
        "place",
    ];
}

/// One row of `sql/page_features.sql`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct PageRow {
    /// `page` or `value`.
    pub row_kind: String,
    pub page_path: String,
    pub currency: Option<String>,
    pub amount: Option<i64>,
    pub views: u32,
    pub unique_views: u32,
    pub entrances: u32,
    pub bounces: u32,
    pub exits: u32,
    pub last_event_at: Option<String>,
    pub expires_at: Option<i64>,
}

impl PageRow {
    /// The query's columns, in its order.
    pub const COLUMNS: [&'static str; 11] = [
        "row_kind",
        "page_path",
        "currency",
        "amount",
        "views",
        "unique_views",
        "entrances",
        "bounces",
        "exits",
        "last_event_at",
        "expires_at",
    ];

    /// The integer columns (the rest are text), for engines that return every cell as text.
    pub const INTEGER_COLUMNS: [&'static str; 7] = [
        "amount",
        "views",
        "unique_views",
        "entrances",
        "bounces",
        "exits",
        "expires_at",
    ];
}

/// A row the fold cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{query} row for {id}: {detail}")]
pub struct BatchError {
    pub query: &'static str,
    pub id: String,
    pub detail: String,
}

impl BatchError {
    /// The error maker for one query's rows.
    fn of(query: &'static str) -> impl Fn(&str, String) -> Self {
        move |id, detail| Self {
            query,
            id: id.to_string(),
            detail,
        }
    }
}

/// A timestamp as the engines print one (`YYYY-MM-DD HH:MM:SS`, with a fraction when it has one), UTC.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// The time and expiry of a counters row, which it must have.
fn times(at: Option<&str>, expires_at: Option<i64>) -> Result<(DateTime<Utc>, i64), String> {
    let at = at.unwrap_or_default();
    let last = parse_timestamp(at).ok_or_else(|| format!("bad last_event_at {at:?}"))?;
    Ok((last, expires_at.ok_or("no expires_at")?))
}

/// The item features the rows of `sql/item_features.sql` describe, by product id.
pub fn items(rows: &[ItemRow]) -> Result<BTreeMap<String, ItemFeatures>, BatchError> {
    let err = BatchError::of("item_features");
    let mut out: BTreeMap<String, ItemFeatures> = BTreeMap::new();
    let mut partners: Vec<&ItemRow> = Vec::new();
    for row in rows {
        match row.row_kind.as_str() {
            "item" => {
                let (last_event_at, expires_at) =
                    times(row.last_event_at.as_deref(), row.expires_at)
                        .map_err(|e| err(&row.product_id, e))?;
                out.insert(
                    row.product_id.clone(),
                    ItemFeatures {
                        product_id: row.product_id.clone(),
                        views: row.views,
                        cart_adds: row.cart_adds,
                        purchases: row.purchases,
                        units: row.units,
                        sessions: row.sessions,
                        last_event_at,
                        co_viewed: Vec::new(),
                        co_purchased: Vec::new(),
                        expires_at,
                    },
                );
            }
            "co_viewed" | "co_purchased" => partners.push(row),
            other => return Err(err(&row.product_id, format!("unknown row kind {other:?}"))),
        }
    }
    // The query orders partners by place; sort anyway, so that the fold does not depend on it.
    partners.sort_by_key(|r| (r.place, r.other_id.clone()));
    for row in partners {
        let item = out.get_mut(&row.product_id).ok_or_else(|| {
            err(
                &row.product_id,
                "a partner of an item with no counters".into(),
            )
        })?;
        let other = row
            .other_id
            .clone()
            .ok_or_else(|| err(&row.product_id, "a partner row without other_id".into()))?;
        let list = if row.row_kind == "co_viewed" {
            &mut item.co_viewed
        } else {
            &mut item.co_purchased
        };
        list.push(Partner {
            product_id: other,
            sessions: row.sessions,
        });
    }
    Ok(out)
}

/// The page features the rows of `sql/page_features.sql` describe, by path.
pub fn pages(rows: &[PageRow]) -> Result<BTreeMap<String, PageFeatures>, BatchError> {
    let err = BatchError::of("page_features");
    let mut out: BTreeMap<String, PageFeatures> = BTreeMap::new();
    let mut values: Vec<&PageRow> = Vec::new();
    for row in rows {
        match row.row_kind.as_str() {
            "page" => {
                let (last_event_at, expires_at) =
                    times(row.last_event_at.as_deref(), row.expires_at)
                        .map_err(|e| err(&row.page_path, e))?;
                out.insert(
                    row.page_path.clone(),
                    PageFeatures {
                        path: row.page_path.clone(),
                        views: row.views,
                        unique_views: row.unique_views,
                        entrances: row.entrances,
                        bounces: row.bounces,
                        exits: row.exits,
                        value: Money::new(),
                        last_event_at,
                        expires_at,
                    },
                );
            }
            "value" => values.push(row),
            other => return Err(err(&row.page_path, format!("unknown row kind {other:?}"))),
        }
    }
    for row in values {
        let page = out
            .get_mut(&row.page_path)
            .ok_or_else(|| err(&row.page_path, "a value of a page with no counters".into()))?;
        let (Some(currency), Some(amount)) = (&row.currency, row.amount) else {
            return Err(err(
                &row.page_path,
                "a value row without currency or amount".into(),
            ));
        };
        page.value.insert(currency.clone(), amount);
    }
    Ok(out)
}

/// Item and page features as the features table's items, by key: what [`super::rebuild::diff`]
/// compares with a rebuild or a live table.
pub fn docs(
    items: BTreeMap<String, ItemFeatures>,
    pages: BTreeMap<String, PageFeatures>,
) -> BTreeMap<Key, Doc> {
    items
        .into_values()
        .map(Doc::Item)
        .chain(pages.into_values().map(Doc::Page))
        .map(|d| (d.key(), d))
        .collect()
}

/// What one batch run does to the features table ([`run_writes`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPlan {
    /// Puts of the items and pages whose features changed, each guarded by the version read (a
    /// concurrent writer makes the commit conflict; the run is re-run).
    pub writes: Vec<Write>,
    /// Items and pages computed the same as stored: not written.
    pub unchanged: usize,
}

/// The writes of one batch run: `computed` is every item and page the run's SQL makes ([`docs`]),
/// `stored` what the table holds under those keys. A computed item is written only if it differs from
/// the stored one ([`super::rebuild::same`]; a stored item past retention counts as absent), so a run
/// costs one write per item or page that changed since the last run, however many events moved it. A
/// run writes nothing else: an item it no longer computes is past retention (the TTL's) or lost every
/// session that touched it to an erasure (which deletes it, [`super::erase`]).
pub fn run_writes(computed: &BTreeMap<Key, Doc>, stored: &[Stored], now: DateTime<Utc>) -> RunPlan {
    let stored: BTreeMap<Key, &Stored> = stored.iter().map(|s| (s.doc.key(), s)).collect();
    let mut plan = RunPlan::default();
    for (key, doc) in computed {
        match stored.get(key) {
            Some(s) if !s.doc.expired(now) && super::rebuild::same(&s.doc, doc) => {
                plan.unchanged += 1
            }
            s => plan
                .writes
                .push(Write::put(doc.clone(), Expect::of(s.copied()))),
        }
    }
    plan
}

/// What a batch run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    /// Items and pages the run's SQL computed.
    pub computed: usize,
    pub written: usize,
    pub unchanged: usize,
    /// DynamoDB write units of the puts ([`super::cost`]).
    pub write_units: u64,
}

/// Commits a run's writes, each on its own (a conditional put: no item needs another's atomicity, so
/// none pays for a transaction), `concurrency` in flight. Every write is tried; the first
/// error is returned after them. A conflict means another writer moved an item since it was read: the
/// run is re-run, and writes only what still differs.
pub async fn apply<S: crate::ports::FeatureWriter>(
    store: &S,
    computed: usize,
    plan: RunPlan,
    concurrency: usize,
) -> Result<RunCounts, crate::ports::CommitError> {
    use futures::stream::{self, StreamExt};
    let counts = RunCounts {
        computed,
        written: plan.writes.len(),
        unchanged: plan.unchanged,
        write_units: plan
            .writes
            .iter()
            .map(|w| super::cost::write_units(w, false))
            .sum(),
    };
    let results: Vec<_> = stream::iter(plan.writes)
        .map(|w| store.commit(vec![w]))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    match results.into_iter().find_map(Result::err) {
        Some(e) => Err(e),
        None => Ok(counts),
    }
}

/// Why a batch run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A row of the SQL's result that the fold cannot use (a broken query: permanent).
    #[error(transparent)]
    Rows(#[from] BatchError),
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    #[error(transparent)]
    Commit(#[from] crate::ports::CommitError),
}

impl RunError {
    /// Whether running again may succeed: a transient store fault, or a conflict with another writer.
    pub fn retryable(&self) -> bool {
        match self {
            RunError::Rows(_) => false,
            RunError::Store(e) => e.retryable,
            RunError::Commit(crate::ports::CommitError::Conflict) => true,
            RunError::Commit(crate::ports::CommitError::Store(e)) => e.retryable,
        }
    }
}

/// One batch run from the SQL's rows: fold them into items and pages ([`docs`]), read what the table
/// holds under those keys, and write what changed ([`run_writes`], [`apply`]). Reads one item per
/// computed item or page.
pub async fn run<S: crate::ports::FeatureWriter>(
    store: &S,
    items: &[ItemRow],
    pages: &[PageRow],
    now: DateTime<Utc>,
    concurrency: usize,
) -> Result<RunCounts, RunError> {
    let computed = docs(self::items(items)?, self::pages(pages)?);
    run_docs(store, &computed, now, concurrency).await
}

/// [`run`] from the items and pages already folded.
pub async fn run_docs<S: crate::ports::FeatureWriter>(
    store: &S,
    computed: &BTreeMap<Key, Doc>,
    now: DateTime<Utc>,
    concurrency: usize,
) -> Result<RunCounts, RunError> {
    let keys: Vec<Key> = computed.keys().cloned().collect();
    let stored: Vec<Stored> = store.get_many(&keys).await?.into_values().collect();
    let plan = run_writes(computed, &stored, now);
    Ok(apply(store, computed.len(), plan, concurrency).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_run_writes_what_changed_and_nothing_it_did_not_compute() {
        let page = |path: &str, views: u32, expires_at: i64| {
            Doc::Page(PageFeatures {
                path: path.into(),
                views,
                unique_views: 1,
                entrances: 1,
                bounces: 0,
                exits: 1,
                value: Money::new(),
                last_event_at: Utc.timestamp_opt(500, 0).unwrap(),
                expires_at,
            })
        };
        let at = |doc: Doc, version: u64| Stored { version, doc };
        let now = Utc.timestamp_opt(1_000, 0).unwrap();
        let computed: BTreeMap<Key, Doc> = [
            page("/same", 2, 5_000),
            page("/moved", 3, 5_000),
            page("/new", 1, 5_000),
            page("/revived", 1, 5_000),
        ]
        .into_iter()
        .map(|d| (d.key(), d))
        .collect();
        let stored = vec![
            at(page("/same", 2, 5_000), 3),
            at(page("/moved", 2, 5_000), 4),
            at(page("/revived", 1, 900), 5),
            at(page("/erased", 7, 5_000), 6),
            at(page("/expired", 7, 900), 7),
        ];
        let plan = run_writes(&computed, &stored, now);
        assert_eq!(plan.unchanged, 1);
        let got: Vec<(String, Expect, bool)> = plan
            .writes
            .iter()
            .map(|w| (w.key.pk.clone(), w.expect, w.doc.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("page#/moved".into(), Expect::Version(4), true),
                ("page#/new".into(), Expect::Absent, true),
                ("page#/revived".into(), Expect::Version(5), true),
            ]
        );
    }

    #[test]
    fn the_column_lists_name_every_field_of_the_rows() {
        let names = |v: serde_json::Value| -> std::collections::BTreeSet<String> {
            v.as_object().expect("an object").keys().cloned().collect()
        };
        let item: ItemRow = serde_json::from_value(serde_json::json!({"row_kind": "item",
            "product_id": "p", "views": 1, "cart_adds": 0, "purchases": 0, "units": 0, "sessions": 1}))
        .expect("row");
        let page: PageRow = serde_json::from_value(serde_json::json!({"row_kind": "page",
            "page_path": "/", "views": 1, "unique_views": 1, "entrances": 1, "bounces": 0, "exits": 0}))
        .expect("row");
        let set = |c: &[&str]| c.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names(serde_json::to_value(item).unwrap()),
            set(&ItemRow::COLUMNS)
        );
        assert_eq!(
            names(serde_json::to_value(page).unwrap()),
            set(&PageRow::COLUMNS)
        );
        for c in ItemRow::INTEGER_COLUMNS {
            assert!(ItemRow::COLUMNS.contains(&c));
        }
        for c in PageRow::INTEGER_COLUMNS {
            assert!(PageRow::COLUMNS.contains(&c));
        }
    }

    #[test]
    fn timestamps_parse_with_and_without_a_fraction() {
        let t = Utc.with_ymd_and_hms(2019, 10, 1, 2, 3, 4).unwrap();
        assert_eq!(parse_timestamp("2019-10-01 02:03:04"), Some(t));
        assert_eq!(
            parse_timestamp("2019-10-01 02:03:04.250"),
            Some(t + chrono::Duration::milliseconds(250))
        );
        assert_eq!(parse_timestamp("2019-10-01T02:03:04Z"), None);
    }

    #[test]
    fn partner_rows_fill_the_top_lists_in_place_order_and_bad_rows_are_named() {
        let item = |kind: &str, other: Option<&str>, sessions: u32, place: Option<u32>| ItemRow {
            row_kind: kind.into(),
            product_id: "p".into(),
            other_id: other.map(str::to_string),
            views: 3,
            cart_adds: 1,
            purchases: 0,
            units: 0,
            sessions,
            last_event_at: Some("2019-10-01 00:00:00".into()),
            expires_at: Some(10),
            place,
        };
        let rows = vec![
            item("co_viewed", Some("b"), 1, Some(2)),
            item("item", None, 2, None),
            item("co_viewed", Some("a"), 2, Some(1)),
        ];
        let got = items(&rows).expect("items");
        let p = &got["p"];
        assert_eq!((p.views, p.sessions), (3, 2));
        let listed: Vec<(&str, u32)> = p
            .co_viewed
            .iter()
            .map(|x| (x.product_id.as_str(), x.sessions))
            .collect();
        assert_eq!(listed, vec![("a", 2), ("b", 1)]);
        let orphan = vec![item("co_purchased", Some("a"), 1, Some(1))];
        assert!(items(&orphan).is_err());
        let unknown = vec![item("pairs", None, 1, None)];
        assert!(items(&unknown)
            .unwrap_err()
            .to_string()
            .contains("unknown row kind"));
    }
}
