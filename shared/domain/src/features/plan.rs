//! Planning the feature updater's writes: which contributions an aggregate takes next, and the
//! conditional writes that apply them. Pure functions of what was read; the orchestration (reads, commits,
//! conflicts, retries) is in [`super::updater`].

use super::aggregate::{
    pair_deltas, supersedes, top_k, top_k_update, unchanged, Contribution, ItemContribution,
    ItemFeatures, PageContribution, PairCount, PairKind, Partner, UserContribution,
};
use super::risk::RiskContribution;
use super::{Doc, Key};
use crate::ports::{Expect, Stored, Write};
use std::collections::{BTreeMap, HashMap};

/// A conditional write carries at most this many items (DynamoDB `TransactWriteItems` allows 100).
pub const MAX_WRITES_PER_COMMIT: usize = 100;

/// A contribution waiting to be applied to one aggregate.
#[derive(Debug, Clone)]
pub(super) enum Change {
    User(UserContribution),
    Item(ItemContribution),
    Page(PageContribution),
    Risk(RiskContribution),
}

impl Change {
    pub(super) fn user(&self) -> Option<&UserContribution> {
        match self {
            Change::User(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn item(&self) -> Option<&ItemContribution> {
        match self {
            Change::Item(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn page(&self) -> Option<&PageContribution> {
        match self {
            Change::Page(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn risk(&self) -> Option<&RiskContribution> {
        match self {
            Change::Risk(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn session_id(&self) -> &str {
        match self {
            Change::User(c) => &c.session_id,
            Change::Item(c) => &c.session_id,
            Change::Page(c) => &c.session_id,
            Change::Risk(c) => &c.session_id,
        }
    }
}

/// One aggregate with the session contributions waiting for it, and what was read for them.
pub(super) struct Job {
    pub(super) agg: Key,
    pub(super) changes: Vec<Change>,
    pub(super) read: HashMap<Key, Stored>,
    /// Conflicts in a row.
    pub(super) attempts: u32,
}

impl Job {
    /// The aggregate and the contributions of the waiting sessions.
    pub(super) fn keys(&self) -> Vec<Key> {
        let mut keys = vec![self.agg.clone()];
        keys.extend(
            self.changes
                .iter()
                .map(|c| self.agg.contribution(c.session_id())),
        );
        keys
    }

    /// The pair counts the waiting item contributions would move.
    pub(super) fn pair_keys(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        for new in self.changes.iter().filter_map(Change::item) {
            let old =
                stored_contribution::<ItemContribution>(&self.agg, &new.session_id, &self.read)
                    .ok()
                    .flatten()
                    .map(|(_, c)| c);
            for kind in PairKind::ALL {
                for other in pair_deltas(old, new, kind).into_keys() {
                    keys.push(Key::pair(&new.product_id, kind, &other));
                }
            }
        }
        keys
    }
}

/// Why an aggregate cannot be planned: the table holds an item of another entity under its key, which no
/// retry will change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    #[error("item {0} holds a {1} item where a {2} item belongs")]
    WrongEntity(Key, &'static str, &'static str),
}

/// The next commit for one aggregate.
#[derive(Debug)]
pub(super) struct Plan {
    /// How many of the changes it covers.
    pub taken: usize,
    /// Its writes (empty when those changes are already applied), without the item aggregate itself
    /// while `item` is pending.
    pub writes: Vec<Write>,
    /// An item aggregate whose top-k lists still need the full pair counts of some kinds.
    pub item: Option<PendingItem>,
}

impl Plan {
    /// A plan with nothing pending.
    fn done(taken: usize, writes: Vec<Write>) -> Self {
        Self {
            taken,
            writes,
            item: None,
        }
    }
}

/// An item aggregate after its applied contributions, waiting for its top-k lists.
#[derive(Debug)]
pub(super) struct PendingItem {
    after: ItemFeatures,
    expect: Expect,
    /// Per pair kind, the partners whose count changed: (before, after).
    changed: BTreeMap<PairKind, BTreeMap<String, (u32, u32)>>,
    /// Kinds whose top-k cannot be updated from the changed counts alone (a listed pair went down).
    recompute: Vec<PairKind>,
}

impl PendingItem {
    /// The `(kind, pk, sort-key prefix)` of every pair count the planner needs read to finish: each
    /// write shard of the item's pairs, per kind to recompute.
    pub(super) fn queries(&self) -> Vec<(PairKind, String, String)> {
        self.recompute
            .iter()
            .flat_map(|k| {
                Key::pair_partitions(&self.after.product_id)
                    .map(move |pk| (*k, pk, format!("{}#", k.prefix())))
            })
            .collect()
    }

    /// The item aggregate's write, given every stored pair count of each kind in [`Self::queries`].
    pub(super) fn finish(mut self, all_pairs: BTreeMap<PairKind, Vec<Stored>>) -> Write {
        for (kind, changed) in &self.changed {
            let top = match top_k_update(self.after.top(*kind), changed) {
                Some(top) => top,
                None => {
                    let mut counts_now: BTreeMap<String, u32> = all_pairs
                        .get(kind)
                        .into_iter()
                        .flatten()
                        .filter_map(|s| match &s.doc {
                            Doc::ItemPair(p) => Some((p.other_id.clone(), p.sessions)),
                            _ => None,
                        })
                        .collect();
                    for (other, (_, n)) in changed {
                        counts_now.insert(other.clone(), *n);
                    }
                    top_k(
                        counts_now
                            .into_iter()
                            .map(|(product_id, sessions)| Partner {
                                product_id,
                                sessions,
                            }),
                    )
                }
            };
            *self.after.top_mut(*kind) = top;
        }
        Write::put(Doc::Item(self.after), self.expect)
    }
}

/// Plans the next commit for one aggregate from what was read: its stored item and contributions
/// (`read`) and the pair counts its item changes move (`pairs`). Pure: no I/O.
pub(super) fn plan(
    agg_key: &Key,
    changes: &[Change],
    read: &HashMap<Key, Stored>,
    pairs: &HashMap<Key, Stored>,
) -> Result<Plan, PlanError> {
    let agg_stored = read.get(agg_key);
    match changes.first() {
        Some(Change::User(_)) => {
            let f = fold_changes(agg_key, changes, read, Change::user, |_, _| 0)?;
            let mut writes = f.writes;
            if let Some(after) = f.after {
                // Experiment units follow the user: rewrite the ones that changed.
                let old_units = f.before.map(|b| b.experiment_units()).unwrap_or_default();
                for unit in after.experiment_units() {
                    if !old_units.contains(&unit) {
                        writes.push(Write::put(Doc::ExperimentUnit(unit), Expect::Any));
                    }
                }
                writes.push(Write::put(Doc::User(after), Expect::of(agg_stored)));
            }
            Ok(Plan::done(f.taken, writes))
        }
        Some(Change::Page(_)) => {
            let f = fold_changes(agg_key, changes, read, Change::page, |_, _| 0)?;
            let mut writes = f.writes;
            if let Some(after) = f.after {
                writes.push(Write::put(Doc::Page(after), Expect::of(agg_stored)));
            }
            Ok(Plan::done(f.taken, writes))
        }
        Some(Change::Risk(_)) => {
            let f = fold_changes(agg_key, changes, read, Change::risk, |_, _| 0)?;
            let mut writes = f.writes;
            if let Some(after) = f.after {
                writes.push(Write::put(Doc::Risk(after), Expect::of(agg_stored)));
            }
            Ok(Plan::done(f.taken, writes))
        }
        Some(Change::Item(_)) => plan_item(agg_key, changes, read, pairs),
        None => Ok(Plan::done(0, Vec::new())),
    }
}

fn plan_item(
    agg_key: &Key,
    changes: &[Change],
    read: &HashMap<Key, Stored>,
    pairs: &HashMap<Key, Stored>,
) -> Result<Plan, PlanError> {
    let agg_stored = read.get(agg_key);
    let pair_writes = |old: Option<&ItemContribution>, new: &ItemContribution| {
        PairKind::ALL
            .iter()
            .map(|k| pair_deltas(old, new, *k).len())
            .sum()
    };
    let f = fold_changes(agg_key, changes, read, Change::item, pair_writes)?;
    let (taken, mut writes) = (f.taken, f.writes);
    let Some(after) = f.after else {
        return Ok(Plan::done(taken, writes));
    };
    // Pair counts move with the applied contributions.
    // (kind, partner) → (count change, latest expiry of the sessions adding to it)
    let mut deltas: BTreeMap<(PairKind, String), (i64, i64)> = BTreeMap::new();
    for (old, new) in f.applied {
        for kind in PairKind::ALL {
            for (other, d) in pair_deltas(old, new, kind) {
                let slot = deltas.entry((kind, other)).or_insert((0, i64::MIN));
                slot.0 += d;
                if d > 0 {
                    slot.1 = slot.1.max(new.expires_at);
                }
            }
        }
    }
    deltas.retain(|_, (d, _)| *d != 0);
    let product = after.product_id.clone();
    let mut changed: BTreeMap<PairKind, BTreeMap<String, (u32, u32)>> = BTreeMap::new();
    for ((kind, other), (d, adds_expire_at)) in deltas {
        let key = Key::pair(&product, kind, &other);
        let before = match pairs.get(&key) {
            Some(Stored {
                doc: Doc::ItemPair(p),
                ..
            }) => Some(p),
            Some(s) => return Err(PlanError::WrongEntity(key, s.doc.entity(), "item_pair")),
            None => None,
        };
        let n_before = before.map_or(0, |p| p.sessions);
        let n_after = u32::try_from((i64::from(n_before) + d).max(0)).unwrap_or(u32::MAX);
        changed
            .entry(kind)
            .or_default()
            .insert(other.clone(), (n_before, n_after));
        if n_after == 0 {
            writes.push(Write {
                key,
                expect: Expect::Any,
                doc: None,
            });
        } else {
            let expires_at = before.map_or(adds_expire_at, |p| p.expires_at.max(adds_expire_at));
            let pair = PairCount {
                product_id: product.clone(),
                kind,
                other_id: other,
                sessions: n_after,
                expires_at,
            };
            writes.push(Write::put(Doc::ItemPair(pair), Expect::Any));
        }
    }
    let recompute = changed
        .iter()
        .filter(|(kind, c)| top_k_update(after.top(**kind), c).is_none())
        .map(|(kind, _)| *kind)
        .collect();
    Ok(Plan {
        taken,
        writes,
        item: Some(PendingItem {
            after,
            expect: Expect::of(agg_stored),
            changed,
            recompute,
        }),
    })
}

/// Typed access to the aggregate and contribution docs.
trait Typed: Contribution + Clone + PartialEq + Sized {
    const ENTITY: &'static str;
    fn contribution_doc(self) -> Doc;
    fn as_contribution(doc: &Doc) -> Option<&Self>;
    fn as_aggregate(doc: &Doc) -> Option<&Self::Aggregate>;
}

/// `Typed` for a contribution, from its `Doc` variant and its aggregate's.
macro_rules! typed {
    ($contribution:ident, $aggregate:ident, $entity:literal) => {
        impl Typed for $contribution {
            const ENTITY: &'static str = $entity;
            fn contribution_doc(self) -> Doc {
                Doc::$contribution(self)
            }
            fn as_contribution(doc: &Doc) -> Option<&Self> {
                match doc {
                    Doc::$contribution(c) => Some(c),
                    _ => None,
                }
            }
            fn as_aggregate(doc: &Doc) -> Option<&Self::Aggregate> {
                match doc {
                    Doc::$aggregate(a) => Some(a),
                    _ => None,
                }
            }
        }
    };
}

typed!(UserContribution, User, "user");
typed!(ItemContribution, Item, "item");
typed!(PageContribution, Page, "page");
typed!(RiskContribution, Risk, "risk");

/// The stored contribution of `session_id` to `agg`, typed.
fn stored_contribution<'a, C: Typed>(
    agg: &Key,
    session_id: &str,
    read: &'a HashMap<Key, Stored>,
) -> Result<Option<(&'a Stored, &'a C)>, PlanError> {
    let key = agg.contribution(session_id);
    match read.get(&key) {
        None => Ok(None),
        Some(s) => match C::as_contribution(&s.doc) {
            Some(c) => Ok(Some((s, c))),
            None => Err(PlanError::WrongEntity(key, s.doc.entity(), "contribution")),
        },
    }
}

/// Writes a commit keeps free for the aggregate itself and the experiment units riding with a user.
const RESERVED_WRITES: usize = 16;

/// What [`fold_changes`] made of the changes that fit in one commit.
struct Folded<'r, C: Contribution> {
    /// How many of the changes it covers (applied, or already superseded by what is stored).
    taken: usize,
    /// The new contributions, each guarded by the version of the one it replaces.
    writes: Vec<Write>,
    /// The stored aggregate.
    before: Option<&'r C::Aggregate>,
    /// The aggregate after the applied changes; `None` when nothing was applied.
    after: Option<C::Aggregate>,
    /// (stored, new) for each applied contribution.
    applied: Vec<(Option<&'r C>, &'r C)>,
}

/// Takes as many of `changes` as fit in one commit and applies those that supersede what is stored.
/// `extra` is how many more writes a change brings along (its pair counts).
fn fold_changes<'r, C: Typed>(
    agg_key: &Key,
    changes: &'r [Change],
    read: &'r HashMap<Key, Stored>,
    pick: fn(&Change) -> Option<&C>,
    extra: impl Fn(Option<&C>, &C) -> usize,
) -> Result<Folded<'r, C>, PlanError>
where
    C::Aggregate: Clone,
{
    let before =
        match read.get(agg_key) {
            None => None,
            Some(s) => Some(C::as_aggregate(&s.doc).ok_or_else(|| {
                PlanError::WrongEntity(agg_key.clone(), s.doc.entity(), C::ENTITY)
            })?),
        };
    let mut agg: Option<C::Aggregate> = before.cloned();
    let mut writes = Vec::new();
    let mut applied = Vec::new();
    let mut taken = 0;
    let mut used = 0;
    let budget = MAX_WRITES_PER_COMMIT - RESERVED_WRITES;
    for change in changes {
        let Some(new) = pick(change) else {
            taken += 1;
            continue;
        };
        let stored = stored_contribution::<C>(agg_key, new.session_id(), read)?;
        let old = stored.map(|(_, c)| c);
        if !supersedes(new, old) || old.is_some_and(|o| unchanged(new, o)) {
            taken += 1;
            continue;
        }
        let cost = 1 + extra(old, new);
        if used > 0 && used + cost > budget {
            break;
        }
        used += cost;
        taken += 1;
        new.apply(old, agg.get_or_insert_with(|| new.empty()));
        writes.push(Write::put(
            new.clone().contribution_doc(),
            Expect::of(stored.map(|(s, _)| s)),
        ));
        applied.push((old, new));
    }
    Ok(Folded {
        taken,
        writes,
        before,
        after: if applied.is_empty() { None } else { agg },
        applied,
    })
}
