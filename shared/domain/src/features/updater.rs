//! The feature updater: from "these sessions have new events" to an up-to-date features table.
//!
//! For a batch of session ids (taken from the event log's stream):
//! 1. Read the stored session items, *then* each session's events from the log. Reading the item first
//!    means the log read sees at least the events the stored fold saw.
//! 2. Fold each session ([`super::session::fold`]). A session whose stored fold saw as many events is
//!    already done: this is what makes a redelivered batch cost reads only.
//! 3. Group the sessions' contributions by aggregate, read each aggregate with the contributions stored
//!    for these sessions, and commit `new − old` with the new contributions in one conditional write per
//!    aggregate (see [`super`] for why this is exact). In [`ItemPageMode::Batch`] items and pages are
//!    left to the scheduled batch run.
//! 4. Write the session items last, so a session item that is up to date proves its contributions landed.
//!
//! A conflict (another invocation moved an item since it was read) re-reads and recomputes; only
//! sessions whose every write landed are reported done.

pub use super::plan::MAX_WRITES_PER_COMMIT;
use super::plan::{plan, Change, Job, PlanError};
use super::session::{fold, SessionProjection};
use super::{Doc, ItemPageMode, Key};
use crate::ingest::LogEntry;
use crate::ports::{CommitError, Expect, FeatureWriter, SessionLog, StoreError, Stored, Write};
use crate::recovery::{schedule, RecoverySettings, Schedule};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What an update did, for the per-batch log line and the cost report.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateCounts {
    pub sessions: usize,
    /// Sessions whose stored fold was already current (a redelivery).
    pub sessions_current: usize,
    pub log_entries_read: usize,
    /// Log entries that could not be decoded (left out of the fold and logged).
    pub unreadable_events: usize,
    pub feature_items_read: usize,
    pub feature_items_written: usize,
    /// Of those, items written inside multi-item transactions (DynamoDB bills these twice).
    pub transactional_items_written: usize,
    /// DynamoDB write units the writes cost, by item size ([`super::cost`]).
    pub write_units: u64,
    pub commits: usize,
    pub conflicts: usize,
    /// Of the items written, recovery due items put or removed (the carts' schedule).
    pub due_items_written: usize,
}

impl std::ops::AddAssign<&UpdateCounts> for UpdateCounts {
    fn add_assign(&mut self, o: &UpdateCounts) {
        self.sessions += o.sessions;
        self.sessions_current += o.sessions_current;
        self.log_entries_read += o.log_entries_read;
        self.unreadable_events += o.unreadable_events;
        self.feature_items_read += o.feature_items_read;
        self.feature_items_written += o.feature_items_written;
        self.transactional_items_written += o.transactional_items_written;
        self.write_units += o.write_units;
        self.commits += o.commits;
        self.conflicts += o.conflicts;
        self.due_items_written += o.due_items_written;
    }
}

/// Why a session is not done.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} kept conflicting after {1} attempts")]
    Contended(Key, u32),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl UpdateError {
    /// A copy for every session the error affects (the source is kept as text).
    fn clone_shallow(&self) -> Self {
        match self {
            UpdateError::Store(e) => UpdateError::Store(e.clone_shallow()),
            UpdateError::Contended(k, n) => UpdateError::Contended(k.clone(), *n),
            UpdateError::Plan(e) => UpdateError::Plan(e.clone()),
        }
    }

    /// A stable, machine-readable reason code.
    pub fn reason_code(&self) -> &'static str {
        match self {
            UpdateError::Store(e) if e.retryable => "store_transient",
            UpdateError::Store(_) => "store_permanent",
            UpdateError::Contended(..) => "contended",
            UpdateError::Plan(PlanError::WrongEntity(..)) => "wrong_entity",
        }
    }

    /// Whether a later retry may succeed: a transient store fault or contention. A retryable failure is
    /// handed back to Lambda (a batch item failure); any other goes to the on-failure destination as an
    /// [`UpdateFailure`] and the batch proceeds.
    pub fn retryable(&self) -> bool {
        match self {
            UpdateError::Store(e) => e.retryable,
            UpdateError::Contended(..) => true,
            UpdateError::Plan(_) => false,
        }
    }
}

/// A session the updater gave up on for a reason no retry fixes, as sent to the on-failure destination
/// (the `FeatureUpdaterFailureQueue`, beside the records the event source mapping itself sends there
/// after its retries). An operator fixes the cause, then replays the session (`rebuild-features` shows
/// what differs).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct UpdateFailure {
    /// Always `feature-updater`: tells these messages from the mapping's own.
    pub source: String,
    pub session_id: String,
    /// The stream record that named the session, when known.
    pub sequence_number: Option<String>,
    /// [`UpdateError::reason_code`].
    pub reason: String,
    pub error: String,
    pub failed_at: DateTime<Utc>,
}

impl UpdateFailure {
    pub const SOURCE: &'static str = "feature-updater";

    pub fn new(
        session_id: &str,
        sequence_number: Option<String>,
        error: &UpdateError,
        failed_at: DateTime<Utc>,
    ) -> Self {
        Self {
            source: Self::SOURCE.to_string(),
            session_id: session_id.to_string(),
            sequence_number,
            reason: error.reason_code().to_string(),
            error: error.to_string(),
            failed_at,
        }
    }
}

/// The result of one update: which sessions are done, and why the others are not.
#[derive(Debug, Default)]
pub struct UpdateOutcome {
    pub counts: UpdateCounts,
    /// Sessions not brought up to date, with the first error each hit.
    pub failed: BTreeMap<String, UpdateError>,
    /// Event ids that could not be decoded, with the reason.
    pub unreadable: Vec<(String, String)>,
}

/// The updater, generic over its two ports.
#[derive(Debug, Clone)]
pub struct FeatureUpdater<L, S> {
    pub log: L,
    pub store: S,
    /// How many reads and commits are in flight at once.
    pub concurrency: usize,
    /// Conflicts tolerated per aggregate or session before giving up on it for this batch.
    pub max_attempts: u32,
    /// When abandoned carts are checked: the updater keeps each cart's recovery due item (`None`: it
    /// keeps none).
    pub recovery: Option<RecoverySettings>,
    /// Whether it keeps the item and page features too ([`ItemPageMode::Stream`]) or leaves them to the
    /// scheduled batch run.
    pub item_pages: ItemPageMode,
}

impl<L: SessionLog, S: FeatureWriter> FeatureUpdater<L, S> {
    pub fn new(log: L, store: S) -> Self {
        Self {
            log,
            store,
            concurrency: 16,
            max_attempts: 5,
            recovery: Some(RecoverySettings::default()),
            item_pages: ItemPageMode::Stream,
        }
    }

    /// Brings the given sessions' features, and the aggregates they contribute to, up to date.
    pub async fn update(&self, session_ids: &[String]) -> UpdateOutcome {
        let mut out = UpdateOutcome::default();
        let mut pending: Vec<String> = {
            let mut seen = HashSet::new();
            session_ids
                .iter()
                .filter(|s| seen.insert(s.as_str()))
                .cloned()
                .collect()
        };
        out.counts.sessions = pending.len();
        for attempt in 1..=self.max_attempts {
            if pending.is_empty() {
                break;
            }
            let conflicted = self.round(&pending, &mut out).await;
            if attempt == self.max_attempts {
                for s in conflicted {
                    let key = Key::session(&s);
                    out.failed
                        .insert(s, UpdateError::Contended(key, self.max_attempts));
                }
                break;
            }
            pending = conflicted;
        }
        out
    }

    /// One pass over `sessions`. Returns the sessions whose own item conflicted (to be redone).
    async fn round(&self, sessions: &[String], out: &mut UpdateOutcome) -> Vec<String> {
        // 1. Stored session items, then the log.
        let keys: Vec<Key> = sessions.iter().map(|s| Key::session(s)).collect();
        let stored = match self.store.get_many(&keys).await {
            Ok(m) => m,
            Err(e) => {
                fail_all(out, sessions, &e);
                return Vec::new();
            }
        };
        out.counts.feature_items_read += stored.len();
        let folds: Vec<(String, Result<Vec<LogEntry>, StoreError>)> = stream::iter(sessions)
            .map(|s| async move { (s.clone(), self.log.session_events(s).await) })
            .buffered(self.concurrency.max(1))
            .collect()
            .await;

        // 2. Fold; skip what is current.
        let mut todo: Vec<(SessionProjection, Option<u64>, Schedule)> = Vec::new();
        for (session_id, entries) in folds {
            let entries = match entries {
                Ok(e) => e,
                Err(e) => {
                    out.failed.insert(session_id, e.into());
                    continue;
                }
            };
            out.counts.log_entries_read += entries.len();
            let (projection, unreadable) = fold(&entries);
            out.counts.unreadable_events += unreadable.len();
            out.unreadable
                .extend(unreadable.into_iter().map(|u| (u.event_id, u.detail)));
            let Some(projection) = projection else {
                continue;
            };
            let key = Key::session(&session_id);
            let current = match stored.get(&key) {
                None => None,
                Some(Stored {
                    version,
                    doc: Doc::Session(s),
                }) => Some((*version, s)),
                Some(other) => {
                    let e = PlanError::WrongEntity(key, other.doc.entity(), "session").into();
                    out.failed.insert(session_id, e);
                    continue;
                }
            };
            match current {
                Some((_, s)) if s.event_count >= projection.session.event_count => {
                    out.counts.sessions_current += 1;
                }
                _ => {
                    let due = self
                        .recovery
                        .as_ref()
                        .map_or(Schedule::NoCart, |r| schedule(&entries, r));
                    todo.push((projection, current.map(|(v, _)| v), due));
                }
            }
        }

        // 3. Aggregates: group the changes, read them, commit each aggregate.
        let mut groups: BTreeMap<Key, Vec<Change>> = BTreeMap::new();
        for (p, _, _) in &todo {
            for c in &p.users {
                groups
                    .entry(Key::user(&c.user_id))
                    .or_default()
                    .push(Change::User(c.clone()));
            }
            if self.item_pages == ItemPageMode::Stream {
                for c in &p.items {
                    groups
                        .entry(Key::item(&c.product_id))
                        .or_default()
                        .push(Change::Item(c.clone()));
                }
                for c in &p.pages {
                    groups
                        .entry(Key::page(&c.path))
                        .or_default()
                        .push(Change::Page(c.clone()));
                }
            }
            for c in &p.risk {
                groups
                    .entry(Key::risk(c.key, &c.id))
                    .or_default()
                    .push(Change::Risk(c.clone()));
            }
        }
        let mut jobs: Vec<Job> = groups
            .into_iter()
            .map(|(agg, changes)| Job {
                agg,
                changes,
                read: HashMap::new(),
                attempts: 0,
            })
            .collect();
        if let Err(e) = self.read_jobs(&mut jobs, &mut out.counts).await {
            let sessions: Vec<String> = todo
                .iter()
                .map(|(p, _, _)| p.session.session_id.clone())
                .collect();
            fail_all(out, &sessions, &e);
            return Vec::new();
        }
        let blocked = self.aggregates(jobs, &mut out.counts).await;

        // 4. Session items, last.
        let mut ids = Vec::new();
        let mut units = Vec::new();
        for (p, version, due) in todo {
            let id = p.session.session_id.clone();
            if let Some(e) = blocked.get(&id) {
                out.failed.insert(id, e.clone_shallow());
                continue;
            }
            let expect = version.map_or(Expect::Absent, Expect::Version);
            // The cart's recovery due item lands with the session item, so a current session item
            // proves its schedule landed too.
            let mut unit = vec![Write::put(Doc::Session(p.session), expect)];
            // The session's review cases, as the queue lists them.
            unit.extend(p.reviews.into_iter().map(|(id, item)| match item {
                Some(c) => Write::put(Doc::ReviewCase(c), Expect::Any),
                None => Write {
                    key: Key::review_case(&id),
                    expect: Expect::Any,
                    doc: None,
                },
            }));
            out.counts.due_items_written += usize::from(due != Schedule::NoCart);
            match due {
                Schedule::NoCart => {}
                Schedule::Due(d) => unit.push(Write::put(Doc::RecoveryDue(d.item()), Expect::Any)),
                Schedule::Over => unit.push(Write {
                    key: Key::recovery_due(&id),
                    expect: Expect::Any,
                    doc: None,
                }),
            }
            ids.push(id);
            units.push(unit);
        }
        let results = self.commit_units(units, &mut out.counts).await;
        let mut conflicted = Vec::new();
        for (id, r) in ids.into_iter().zip(results) {
            match r {
                Ok(()) => {}
                Err(CommitError::Conflict) => conflicted.push(id),
                Err(CommitError::Store(e)) => {
                    out.failed.insert(id, e.into());
                }
            }
        }
        // Keep the caller's order for the next round.
        let order: HashMap<&str, usize> = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        conflicted.sort_by_key(|s| order.get(s.as_str()).copied().unwrap_or(usize::MAX));
        conflicted
    }

    /// Applies every job's changes, packing multi-item commits of many aggregates into few transactions, in as
    /// many passes as the write limit needs, re-reading and recomputing what conflicted. Returns, per
    /// session, the error that kept one of its aggregates from landing.
    async fn aggregates(
        &self,
        mut jobs: Vec<Job>,
        counts: &mut UpdateCounts,
    ) -> HashMap<String, UpdateError> {
        let mut failed: HashMap<String, UpdateError> = HashMap::new();
        let mut fail = |job: &Job, e: UpdateError| {
            for c in &job.changes {
                failed
                    .entry(c.session_id().to_string())
                    .or_insert_with(|| e.clone_shallow());
            }
        };
        while !jobs.is_empty() {
            // The pair counts the item jobs may move, read in one go.
            let pair_keys: Vec<Key> = jobs.iter().flat_map(Job::pair_keys).collect();
            let pairs = match self.store.get_many(&pair_keys).await {
                Ok(p) => p,
                Err(e) => {
                    let e = UpdateError::from(e);
                    jobs.iter().for_each(|j| fail(j, e.clone_shallow()));
                    break;
                }
            };
            counts.feature_items_read += pairs.len();

            let mut next = Vec::new();
            let mut planned: Vec<(Job, usize)> = Vec::new();
            let mut units = Vec::new();
            for mut job in jobs {
                match self.plan(&job, &pairs, counts).await {
                    Err(e) => fail(&job, e),
                    Ok((taken, writes)) if writes.is_empty() => {
                        job.changes.drain(..taken);
                        if !job.changes.is_empty() {
                            next.push(job);
                        }
                    }
                    Ok((taken, writes)) => {
                        planned.push((job, taken));
                        units.push(writes);
                    }
                }
            }
            let results = self.commit_units(units, counts).await;
            for ((mut job, taken), r) in planned.into_iter().zip(results) {
                match r {
                    Ok(()) => {
                        job.changes.drain(..taken);
                        job.attempts = 0;
                        if !job.changes.is_empty() {
                            next.push(job);
                        }
                    }
                    Err(CommitError::Conflict) => {
                        job.attempts += 1;
                        if job.attempts >= self.max_attempts {
                            let e = UpdateError::Contended(job.agg.clone(), self.max_attempts);
                            fail(&job, e);
                        } else {
                            next.push(job);
                        }
                    }
                    Err(CommitError::Store(e)) => fail(&job, e.into()),
                }
            }
            if next.is_empty() {
                break;
            }
            // Re-read what the remaining changes need.
            if let Err(e) = self.read_jobs(&mut next, counts).await {
                let e = UpdateError::from(e);
                next.iter().for_each(|j| fail(j, e.clone_shallow()));
                break;
            }
            jobs = next;
        }
        failed
    }

    /// Reads, in one go, each job's aggregate and the contributions stored for its waiting sessions.
    async fn read_jobs(
        &self,
        jobs: &mut [Job],
        counts: &mut UpdateCounts,
    ) -> Result<(), StoreError> {
        let keys: Vec<Key> = jobs.iter().flat_map(Job::keys).collect();
        let mut read = self.store.get_many(&keys).await?;
        counts.feature_items_read += read.len();
        for job in jobs {
            job.read = job
                .keys()
                .into_iter()
                .filter_map(|k| read.remove_entry(&k))
                .collect();
        }
        Ok(())
    }

    /// Commits each unit atomically. A unit of one write goes alone, as a plain conditional put (half
    /// the price of a transaction). Units of several writes are transactions anyway (every item in one
    /// is billed twice), so they are packed into as few transactions as the write limit allows: packing
    /// costs no write units and saves round trips. When a packed transaction conflicts, its units are
    /// retried one by one, so that one contended item does not hold back the others. One result per
    /// unit.
    async fn commit_units(
        &self,
        units: Vec<Vec<Write>>,
        counts: &mut UpdateCounts,
    ) -> Vec<Result<(), CommitError>> {
        let mut packs: Vec<Vec<usize>> = Vec::new();
        let mut size = 0;
        for (i, u) in units.iter().enumerate() {
            if u.len() == 1 {
                packs.push(vec![i]);
                continue;
            }
            match packs.last_mut() {
                Some(p) if size + u.len() <= MAX_WRITES_PER_COMMIT && units[p[0]].len() > 1 => {
                    p.push(i);
                    size += u.len();
                }
                _ => {
                    packs.push(vec![i]);
                    size = u.len();
                }
            }
        }
        let units = &units;
        type PackOutcome = (Vec<usize>, Vec<Result<(), CommitError>>, UpdateCounts);
        let outcomes: Vec<PackOutcome> = stream::iter(packs)
            .map(|pack| async move {
                let mut c = UpdateCounts::default();
                let writes: Vec<Write> = pack
                    .iter()
                    .flat_map(|i| units[*i].iter().cloned())
                    .collect();
                let first = self.commit_counted(writes, &mut c).await;
                let results = match first {
                    Err(CommitError::Conflict) if pack.len() > 1 => {
                        let mut one_by_one = Vec::with_capacity(pack.len());
                        for i in &pack {
                            one_by_one.push(self.commit_counted(units[*i].clone(), &mut c).await);
                        }
                        one_by_one
                    }
                    Err(CommitError::Store(e)) => pack
                        .iter()
                        .map(|_| Err(CommitError::Store(e.clone_shallow())))
                        .collect(),
                    Err(CommitError::Conflict) => vec![Err(CommitError::Conflict)],
                    Ok(()) => pack.iter().map(|_| Ok(())).collect(),
                };
                (pack, results, c)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut results: Vec<Option<Result<(), CommitError>>> =
            units.iter().map(|_| None).collect();
        for (pack, rs, c) in outcomes {
            *counts += &c;
            for (i, r) in pack.into_iter().zip(rs) {
                results[i] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(CommitError::Conflict)))
            .collect()
    }

    async fn commit_counted(
        &self,
        writes: Vec<Write>,
        c: &mut UpdateCounts,
    ) -> Result<(), CommitError> {
        let n = writes.len();
        let units: u64 = writes
            .iter()
            .map(|w| super::cost::write_units(w, n > 1))
            .sum();
        c.commits += 1;
        let r = self.store.commit(writes).await;
        match &r {
            Ok(()) => {
                c.feature_items_written += n;
                c.write_units += units;
                if n > 1 {
                    c.transactional_items_written += n;
                }
            }
            Err(CommitError::Conflict) => c.conflicts += 1,
            Err(CommitError::Store(_)) => {}
        }
        r
    }

    /// The next commit for one job: the pure plan, plus the pair counts it asks for to finish an item's
    /// top-k lists.
    async fn plan(
        &self,
        job: &Job,
        pairs: &HashMap<Key, Stored>,
        counts: &mut UpdateCounts,
    ) -> Result<(usize, Vec<Write>), UpdateError> {
        let mut plan = plan(&job.agg, &job.changes, &job.read, pairs)?;
        if let Some(item) = plan.item.take() {
            let mut all_pairs: BTreeMap<_, Vec<Stored>> = BTreeMap::new();
            for (kind, pk, prefix) in item.queries() {
                let stored = self.store.query(&pk, &prefix).await?;
                counts.feature_items_read += stored.len();
                all_pairs.entry(kind).or_default().extend(stored);
            }
            plan.writes.push(item.finish(all_pairs));
        }
        Ok((plan.taken, plan.writes))
    }
}

fn fail_all(out: &mut UpdateOutcome, sessions: &[String], e: &StoreError) {
    for s in sessions {
        out.failed
            .insert(s.clone(), UpdateError::Store(e.clone_shallow()));
    }
}
