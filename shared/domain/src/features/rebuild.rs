//! Recomputing every projection from the event log in one pass, and comparing it with a live table.
//!
//! This path shares the folds with the updater but none of its incremental machinery: no stored
//! contributions, no differences, no watermarks, and the co-occurrence top-K lists are ranked from every
//! pair count at once. A live table that matches it was maintained correctly.

use super::aggregate::{
    top_k, unchanged, Contribution, ItemContribution, PageContribution, PairCount, PairKind,
    Partner, UserContribution,
};
use super::risk::RiskContribution;
use super::session::{fold, Unreadable};
use super::{Doc, Key};
use crate::ingest::LogEntry;
use serde::Serialize;
use std::collections::BTreeMap;

/// Every item the features table should hold for the given log.
pub fn rebuild(entries: Vec<LogEntry>) -> (BTreeMap<Key, Doc>, Vec<Unreadable>) {
    let mut by_session: BTreeMap<String, Vec<LogEntry>> = BTreeMap::new();
    for e in entries {
        by_session.entry(e.session_id.clone()).or_default().push(e);
    }
    let mut docs: BTreeMap<Key, Doc> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut contributions = Contributions::default();
    for entries in by_session.values() {
        let (projection, bad) = fold(entries);
        unreadable.extend(bad);
        let Some(p) = projection else { continue };
        contributions.users.extend(p.users);
        contributions.items.extend(p.items);
        contributions.pages.extend(p.pages);
        contributions.risk.extend(p.risk);
        for case in p.reviews.into_iter().filter_map(|(_, item)| item) {
            put(&mut docs, Doc::ReviewCase(case));
        }
        put(&mut docs, Doc::Session(p.session));
    }
    docs.extend(aggregate(contributions));
    (docs, unreadable)
}

/// Sessions' contributions to the aggregates.
#[derive(Debug, Clone, Default)]
pub struct Contributions {
    pub users: Vec<UserContribution>,
    pub items: Vec<ItemContribution>,
    pub pages: Vec<PageContribution>,
    pub risk: Vec<RiskContribution>,
}

/// The aggregates (users and their experiment units, items and their co-occurrence counts, pages) that
/// the given contributions make, and the contribution items themselves. An aggregate depends only on
/// its own contributions, so this also recomputes a few aggregates from theirs (erasure does).
pub fn aggregate(c: Contributions) -> BTreeMap<Key, Doc> {
    let mut docs: BTreeMap<Key, Doc> = BTreeMap::new();
    let mut users = BTreeMap::new();
    let mut items = BTreeMap::new();
    let mut pages = BTreeMap::new();
    let mut pairs: BTreeMap<(String, PairKind, String), (u32, i64)> = BTreeMap::new();
    for c in c.users {
        let agg = users.entry(c.user_id.clone()).or_insert_with(|| c.empty());
        c.apply(None, agg);
        put(&mut docs, Doc::UserContribution(c));
    }
    for c in c.items {
        for kind in PairKind::ALL {
            for other in c.partners(kind) {
                let slot = pairs
                    .entry((c.product_id.clone(), kind, other.clone()))
                    .or_insert((0, c.expires_at));
                slot.0 += 1;
                slot.1 = slot.1.max(c.expires_at);
            }
        }
        let agg = items
            .entry(c.product_id.clone())
            .or_insert_with(|| c.empty());
        c.apply(None, agg);
        put(&mut docs, Doc::ItemContribution(c));
    }
    for c in c.pages {
        let agg = pages.entry(c.path.clone()).or_insert_with(|| c.empty());
        c.apply(None, agg);
        put(&mut docs, Doc::PageContribution(c));
    }
    let mut risk = BTreeMap::new();
    for c in c.risk {
        let agg = risk
            .entry((c.key, c.id.clone()))
            .or_insert_with(|| c.empty());
        c.apply(None, agg);
        put(&mut docs, Doc::RiskContribution(c));
    }
    for (_, profile) in risk {
        put(&mut docs, Doc::Risk(profile));
    }
    let mut partners: BTreeMap<(String, PairKind), Vec<Partner>> = BTreeMap::new();
    for ((product_id, kind, other_id), (sessions, expires_at)) in pairs {
        partners
            .entry((product_id.clone(), kind))
            .or_default()
            .push(Partner {
                product_id: other_id.clone(),
                sessions,
            });
        put(
            &mut docs,
            Doc::ItemPair(PairCount {
                product_id,
                kind,
                other_id,
                sessions,
                expires_at,
            }),
        );
    }
    for (product_id, mut item) in items {
        for kind in PairKind::ALL {
            let all = partners
                .remove(&(product_id.clone(), kind))
                .unwrap_or_default();
            *item.top_mut(kind) = top_k(all);
        }
        put(&mut docs, Doc::Item(item));
    }
    for (_, user) in users {
        for unit in user.experiment_units() {
            put(&mut docs, Doc::ExperimentUnit(unit));
        }
        put(&mut docs, Doc::User(user));
    }
    for (_, page) in pages {
        put(&mut docs, Doc::Page(page));
    }
    docs
}

fn put(docs: &mut BTreeMap<Key, Doc>, doc: Doc) {
    docs.insert(doc.key(), doc);
}

/// One way the live table differs from the rebuild.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// The rebuild has the item; the live table does not.
    Missing { key: String, expected: Box<Doc> },
    /// The live table has an item the rebuild does not.
    Unexpected { key: String, live: Box<Doc> },
    /// Both have it, with different contents.
    Changed {
        key: String,
        expected: Box<Doc>,
        live: Box<Doc>,
    },
}

/// Whether two items hold the same features. Two kinds of housekeeping are not compared:
/// - a pair count's `expires_at`, the latest expiry of the sessions that added to the count *as it was
///   when they did* (a session that grows later does not rewrite its pairs), so it can trail the
///   rebuild's value by up to a session's length;
/// - a contribution's watermark (`event_count`), which trails the session's when its later events left
///   the contribution as it was and it was not rewritten ([`unchanged`]).
pub fn same(a: &Doc, b: &Doc) -> bool {
    match (a, b) {
        (Doc::ItemPair(x), Doc::ItemPair(y)) => {
            PairCount {
                expires_at: y.expires_at,
                ..x.clone()
            } == *y
        }
        (Doc::UserContribution(x), Doc::UserContribution(y)) => unchanged(x, y),
        (Doc::ItemContribution(x), Doc::ItemContribution(y)) => unchanged(x, y),
        (Doc::PageContribution(x), Doc::PageContribution(y)) => unchanged(x, y),
        (Doc::RiskContribution(x), Doc::RiskContribution(y)) => unchanged(x, y),
        _ => a == b,
    }
}

/// Whether an item is schedule rather than a projection: a recovery due item, which the sweep moves
/// (deferrals) and the rebuild does not produce.
pub fn is_schedule(d: &Doc) -> bool {
    matches!(d, Doc::RecoveryDue(_))
}

/// The differences between the expected (rebuilt) and the live items, in key order. Schedule items
/// ([`is_schedule`]) are left out.
pub fn diff(expected: &BTreeMap<Key, Doc>, live: &BTreeMap<Key, Doc>) -> Vec<Difference> {
    let mut out = Vec::new();
    let schedule = is_schedule;
    for (key, e) in expected.iter().filter(|(_, d)| !schedule(d)) {
        match live.get(key) {
            None => out.push(Difference::Missing {
                key: key.to_string(),
                expected: Box::new(e.clone()),
            }),
            Some(l) if !same(l, e) => out.push(Difference::Changed {
                key: key.to_string(),
                expected: Box::new(e.clone()),
                live: Box::new(l.clone()),
            }),
            Some(_) => {}
        }
    }
    for (key, l) in live.iter().filter(|(_, d)| !schedule(d)) {
        if !expected.contains_key(key) {
            out.push(Difference::Unexpected {
                key: key.to_string(),
                live: Box::new(l.clone()),
            });
        }
    }
    out
}

/// Items per entity type.
pub fn count_by_entity<'a>(docs: impl IntoIterator<Item = &'a Doc>) -> BTreeMap<String, usize> {
    count_entities(docs.into_iter().map(Doc::entity))
}

/// Occurrences per entity type name, with every known type present (zero when absent).
pub fn count_entities<'a>(entities: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> =
        super::ENTITIES.iter().map(|e| (e.to_string(), 0)).collect();
    for e in entities {
        *counts.entry(e.to_string()).or_default() += 1;
    }
    counts
}
