//! Erasure of one pseudonymous user (GDPR Art. 17): their sessions leave the event log and every
//! projection, and the aggregates they contributed to are recomputed from what remains, so that a
//! rebuild from the log afterwards equals the live table.
//!
//! **What is erased.** Every session in which any event carries the pseudonym, found through the log's
//! `by-user` index (and the user's own contribution items, in case the index lags). The whole session
//! goes: its anonymous events are the same visit (before the shopper logged in). A session that also
//! carries another pseudonym (two accounts on one device in one visit) is erased whole as well, and
//! counted as `shared_sessions` in the receipt.
//!
//! **Projections.** The sessions' items are deleted. Each aggregate they contributed to (their users,
//! items, pages) is read whole (a `Query` of each partition holding its items, [`Key::partitions`]),
//! and recomputed from its remaining contribution items with the rebuild's own aggregation
//! ([`super::rebuild::aggregate`]): the aggregate, its co-occurrence counts, the users' experiment
//! units. Items that should no longer exist are deleted; the erased user's aggregate, contributions and
//! experiment units all go. Writes are conditional on the versions read, so a concurrent projection
//! makes the erasure fail (and it is re-run), never lose an update. Then the log entries go. Everything
//! is idempotent: a re-run after a failure finishes the job.

use super::aggregate::Contribution;
use super::rebuild::{aggregate, same, Contributions};
use super::session::fold;
use super::{Doc, ItemPageMode, Key};
use crate::delivery::{deliver, RetryPolicy};
use crate::ports::{
    BatchSink, CommitError, Expect, FeatureWriter, LogEraser, LogIndex, StoreError, Write,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A conditional write carries at most this many items.
const MAX_WRITES: usize = 100;

/// What an erasure found and did (PII-free: counts and nothing else).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErasureCounts {
    pub sessions: usize,
    /// Sessions that also carried another pseudonym (erased whole; see the module docs).
    pub shared_sessions: usize,
    pub log_items_deleted: usize,
    pub feature_items_deleted: usize,
    /// Aggregates and counts rewritten with the user's contributions taken out.
    pub feature_items_rewritten: usize,
    pub aggregates_recomputed: usize,
    pub experiment_units_deleted: usize,
    /// Calls to the stores (index and session queries, partition reads, commits, log deletes).
    pub requests: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an aggregate changed while it was being recomputed; re-run the erasure")]
    Conflict,
}

impl From<CommitError> for ErasureError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Conflict => ErasureError::Conflict,
            CommitError::Store(e) => ErasureError::Store(e),
        }
    }
}

/// The sessions an erasure of `user` covers (the tombstone names them too).
pub async fn sessions_of<L: LogIndex, S: FeatureWriter>(
    log: &L,
    store: &S,
    user: &str,
    counts: &mut ErasureCounts,
) -> Result<BTreeSet<String>, StoreError> {
    let mut sessions = log.user_sessions(user).await?;
    counts.requests += 1;
    for s in store.query(&Key::user(user).pk, "session#").await? {
        if let Doc::UserContribution(c) = s.doc {
            sessions.insert(c.session_id);
        }
    }
    counts.requests += 1;
    Ok(sessions)
}

/// Erases `sessions` (see [`sessions_of`]) of the pseudonymous `user`. In [`ItemPageMode::Batch`] the
/// table holds no item or page contributions: the items and pages are left to the next batch run, which
/// computes them from the archive without the erased sessions.
pub async fn erase<L: LogIndex + LogEraser, S: FeatureWriter>(
    log: &L,
    store: &S,
    user: &str,
    sessions: &BTreeSet<String>,
    mode: ItemPageMode,
    counts: &mut ErasureCounts,
) -> Result<(), ErasureError> {
    counts.sessions = sessions.len();
    let mut log_keys: Vec<(String, String)> = Vec::new();
    // The aggregates the sessions contributed to, each with every partition holding its items.
    let mut aggregates: BTreeSet<Key> = BTreeSet::from([Key::user(user)]);
    let mut review_cases: Vec<Key> = Vec::new();
    // Batch mode: the items and pages the sessions touched, with how many of the sessions touched each.
    let mut batch_touched: BTreeMap<Key, u32> = BTreeMap::new();
    for s in sessions {
        let entries = log.session_events(s).await?;
        counts.requests += 1;
        if entries
            .iter()
            .any(|e| e.user_id.as_deref().is_some_and(|u| u != user))
        {
            counts.shared_sessions += 1;
        }
        if let Some(p) = fold(&entries).0 {
            aggregates.extend(p.users.iter().map(|c| Key::user(&c.user_id)));
            if mode == ItemPageMode::Stream {
                aggregates.extend(p.items.iter().map(|c| Key::item(&c.product_id)));
                aggregates.extend(p.pages.iter().map(|c| Key::page(&c.path)));
            } else {
                for key in p.items.iter().map(|c| Key::item(&c.product_id)) {
                    *batch_touched.entry(key).or_default() += 1;
                }
                for key in p.pages.iter().map(|c| Key::page(&c.path)) {
                    *batch_touched.entry(key).or_default() += 1;
                }
            }
            aggregates.extend(p.risk.iter().map(|c| Key::risk(c.key, &c.id)));
            review_cases.extend(p.reviews.iter().map(|(id, _)| Key::review_case(id)));
        }
        log_keys.extend(entries.into_iter().map(|e| (e.session_id, e.event_id)));
    }

    // The session items, and the sessions' recovery due items (which name the user).
    let mut writes: Vec<Write> = sessions
        .iter()
        .flat_map(|s| [Key::session(s), Key::recovery_due(s)])
        .map(|key| Write {
            key,
            expect: Expect::Any,
            doc: None,
        })
        .collect();
    counts.feature_items_deleted += sessions.len();
    // The sessions' review cases (they name the user).
    counts.feature_items_deleted += review_cases.len();
    writes.extend(review_cases.into_iter().map(|key| Write {
        key,
        expect: Expect::Any,
        doc: None,
    }));
    for agg in &aggregates {
        let pks = agg.partitions();
        let mut live = Vec::new();
        for pk in &pks {
            live.extend(store.query(pk, "").await?);
            counts.requests += 1;
        }
        let erased = |session: &str| sessions.contains(session);
        let mut remaining = Contributions::default();
        let mut units_before: BTreeSet<Key> = BTreeSet::new();
        for s in &live {
            match &s.doc {
                Doc::UserContribution(c) if !erased(c.session_id()) => {
                    remaining.users.push(c.clone())
                }
                Doc::ItemContribution(c) if !erased(c.session_id()) => {
                    remaining.items.push(c.clone())
                }
                Doc::PageContribution(c) if !erased(c.session_id()) => {
                    remaining.pages.push(c.clone())
                }
                Doc::RiskContribution(c) if !erased(c.session_id()) => {
                    remaining.risk.push(c.clone())
                }
                Doc::User(u) => units_before.extend(
                    u.experiment_units()
                        .iter()
                        .map(|unit| Doc::ExperimentUnit(unit.clone()).key()),
                ),
                _ => {}
            }
        }
        let target = aggregate(remaining);
        // This partition's items: rewrite what changed, delete what should not exist.
        let live_by_key: BTreeMap<Key, _> = live.into_iter().map(|s| (s.doc.key(), s)).collect();
        for (key, stored) in &live_by_key {
            if !target.contains_key(key) {
                writes.push(Write {
                    key: key.clone(),
                    expect: Expect::Version(stored.version),
                    doc: None,
                });
                counts.feature_items_deleted += 1;
            }
        }
        for (key, doc) in target.iter().filter(|(k, _)| pks.contains(&k.pk)) {
            match live_by_key.get(key) {
                Some(stored) if same(&stored.doc, doc) => {}
                other => {
                    writes.push(Write {
                        key: key.clone(),
                        expect: other.map_or(Expect::Absent, |s| Expect::Version(s.version)),
                        doc: Some(doc.clone()),
                    });
                    counts.feature_items_rewritten += 1;
                }
            }
        }
        // A user's experiment units live in the experiments' partitions.
        let units_after: BTreeMap<&Key, &Doc> = target
            .iter()
            .filter(|(_, d)| matches!(d, Doc::ExperimentUnit(_)))
            .collect();
        for key in units_before.iter().filter(|k| !units_after.contains_key(k)) {
            writes.push(Write {
                key: key.clone(),
                expect: Expect::Any,
                doc: None,
            });
            counts.experiment_units_deleted += 1;
        }
        for doc in units_after.values() {
            writes.push(Write::put((*doc).clone(), Expect::Any));
        }
        counts.aggregates_recomputed += 1;
    }
    // Batch mode: the next run recomputes the items and pages without the erased sessions, but cannot
    // see one that no other session touched (it computes nothing for it). One whose stored session count
    // is no more than the erased sessions that touched it goes now; if it had another session after all
    // (one the stored item did not count yet), the next run writes it back.
    let keys: Vec<Key> = batch_touched.keys().cloned().collect();
    // BatchGetItem reads up to 100 keys a call.
    counts.requests += keys.len().div_ceil(100);
    for (key, s) in store.get_many(&keys).await? {
        let sessions = match &s.doc {
            Doc::Item(i) => i.sessions,
            Doc::Page(p) => p.unique_views,
            _ => continue,
        };
        if sessions <= batch_touched[&key] {
            writes.push(Write {
                key,
                expect: Expect::Version(s.version),
                doc: None,
            });
            counts.feature_items_deleted += 1;
        }
    }
    for chunk in writes.chunks(MAX_WRITES) {
        store.commit(chunk.to_vec()).await?;
        counts.requests += 1;
    }
    let deleted = deliver(&Deletes(log), &log_keys, &RetryPolicy::default()).await;
    counts.requests += deleted.stats.requests as usize;
    if let Some(e) = deleted.error {
        return Err(e.into());
    }
    counts.log_items_deleted = log_keys.len();
    Ok(())
}

/// The log's deletes as a batch sink, so that [`deliver`] retries what the store leaves unprocessed.
struct Deletes<'a, L>(&'a L);

impl<L: LogEraser> BatchSink<(String, String)> for Deletes<'_, L> {
    fn max_batch(&self) -> usize {
        self.0.max_batch()
    }

    async fn put(&self, keys: &[&(String, String)]) -> Result<Vec<usize>, StoreError> {
        self.0.delete(keys).await
    }
}
