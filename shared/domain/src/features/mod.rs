//! Online features: projections of the event log, kept in one features table.
//!
//! # The correctness mechanism: folds, and contributions that only replace older ones
//!
//! Every feature is a *fold*: a pure function of a set of events, never of the order or the number of
//! times they arrived.
//!
//! 1. **Session** features are a fold over the session's events, read back from the event log (one query
//!    of the session's partition) and sorted by event time, then event id. The event log is keyed by the
//!    event's own id, so a redelivered event is the same item and the set does not change.
//! 2. **Aggregates** (user, item, page) span sessions. Each session *contributes* to an aggregate a value
//!    that is itself a fold over that session's events ([`aggregate`]). An aggregate is the sum (and for a
//!    few fields the max, min or union) of its sessions' contributions. It is maintained incrementally:
//!    the contribution a session last applied is stored next to the aggregate (`<aggregate>` /
//!    `session#<id>`, for items and pages in one of the aggregate's write shards), and when the
//!    session's contribution changes from `old` to `new`, one atomic write replaces `old` by `new`
//!    *and* moves the aggregate by `new − old`, guarded by the versions both items were read at. A
//!    replayed batch recomputes the same `new`, finds it already stored, and writes nothing.
//! 3. **Watermarks** keep a slow or retried invocation from going backwards: every fold carries the
//!    number of session events it saw, the session's events only ever grow (the log is append-only and
//!    read with strong consistency), and a stored fold is replaced only by one that saw more events and
//!    contributes something else ([`aggregate::unchanged`]: most events leave a session's contributions
//!    to items, pages and its user as they were, and they are not rewritten).
//! 4. **Experiment units** are a function of the user aggregate (its exposures and its recent orders), so
//!    they are rewritten in the same atomic write as the user.
//!
//! Together these give the two guarantees the projections are tested for: the same stream batch
//! delivered twice changes nothing, and any permutation of the same events gives the same features.
//! `checkout-ai rebuild-features` recomputes everything from the log with a separate, non-incremental
//! path ([`rebuild`]) and diffs it against the live table.
//!
//! # Table layout
//!
//! One table, key `pk` (HASH) + `sk` (RANGE); see [`Key`]. Every item carries `entity`,
//! `feature_schema_version` and `expires_at` (the TTL, also enforced on read).

pub mod aggregate;
pub mod batch;
pub mod cost;
pub mod erase;
mod plan;
pub mod rebuild;
pub mod review;
pub mod risk;
pub mod session;
pub mod updater;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use aggregate::{
    ExperimentUnit, Exposure, ItemContribution, ItemFeatures, OrderRef, PageContribution,
    PageFeatures, PairCount, PairKind, UserContribution, UserFeatures,
};
pub use session::{SessionFeatures, SessionProjection, UciSession};

/// Bumped whenever a feature's definition changes. Items of another version are never mixed with this
/// one: the updater refuses them and the table must be rebuilt (`checkout-ai rebuild-features`).
pub const FEATURE_SCHEMA_VERSION: u32 = 1;

/// Experiment units are spread over this many partitions per experiment (`experiment#<id>#<shard>`),
/// by a hash of the user, so that no partition key takes more than 1/16 of an experiment's unit writes
/// (one partition key takes at most 1,000 write units a second). Changing it moves every unit's key:
/// rebuild the table (`checkout-ai rebuild-features`) after a change.
pub const UNIT_SHARDS: u32 = 16;

/// The unit shard of a user: [`shard_of`] the id among [`UNIT_SHARDS`].
pub fn unit_shard(user_id: &str) -> u32 {
    shard_of(user_id, UNIT_SHARDS)
}

/// The write shards of a hot aggregate: an item's or a page's session contributions are spread over this
/// many partitions by a hash of the session, and an item's co-occurrence counts over as many by a hash of
/// the other product, so that neither takes more than 1/16 of a popular product's writes on one partition
/// key (a partition key takes at most 1,000 write units a second). The aggregate item itself is written
/// once per commit of many sessions. Readers that need every contribution or pair walk the shards
/// ([`Key::partitions`]). Changing it moves those keys: rebuild the table after a change.
pub const AGGREGATE_SHARDS: u32 = 16;

/// Who keeps the item and page features (popular products' statistics, co-occurrence, page values).
///
/// - [`ItemPageMode::Stream`]: the feature updater, per event, exactly, through per-session contribution
///   items and pair counts (module docs). Fresh within seconds; about three quarters of the write units.
/// - [`ItemPageMode::Batch`]: a scheduled run computes them from the event archive with
///   `sql/item_features.sql` and `sql/page_features.sql` and writes each item or page that changed once
///   per run ([`batch::run`]); the updater then keeps sessions, users, risk profiles and the
///   recovery schedule only, and no contribution or pair count of an item or a page exists. Fresh within
///   the run interval; a product takes one write per run whatever its share of views.
///
/// The two keep the same item and page documents (the SQL equals the folds), so switching is a rebuild:
/// `checkout-ai rebuild-features` with the mode lists the items the other mode left behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemPageMode {
    #[default]
    Stream,
    Batch,
}

impl ItemPageMode {
    /// Whether the mode's table holds `doc`: in batch mode, no item or page contribution and no pair count.
    pub fn keeps(self, doc: &Doc) -> bool {
        self == ItemPageMode::Stream
            || !matches!(
                doc,
                Doc::ItemContribution(_) | Doc::PageContribution(_) | Doc::ItemPair(_)
            )
    }

    /// Whether the feature updater keeps `doc`'s entity in this mode (the batch run keeps the rest).
    pub fn streamed(self, doc: &Doc) -> bool {
        self == ItemPageMode::Stream
            || (!matches!(doc, Doc::Item(_) | Doc::Page(_)) && self.keeps(doc))
    }
}

impl std::str::FromStr for ItemPageMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stream" => Ok(ItemPageMode::Stream),
            "batch" => Ok(ItemPageMode::Batch),
            other => Err(format!(
                "item and page mode {other:?}: expected stream or batch"
            )),
        }
    }
}

impl fmt::Display for ItemPageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemPageMode::Stream => "stream",
            ItemPageMode::Batch => "batch",
        })
    }
}

/// A stable shard of `id` among `shards`: the first four bytes of SHA-256 of the id, modulo `shards`.
pub fn shard_of(id: &str, shards: u32) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(id.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % shards
}

/// The partition key of one write shard of an aggregate's `kind` of items (`item-contribution`,
/// `page-contribution`, `item-pairs`). The shard comes before the id, so no product id or page path can
/// make one entity's key look like another's.
fn shard_pk(kind: &str, shard: u32, id: &str) -> String {
    format!("{kind}#{shard:02}#{id}")
}

/// The partition key of one write shard of an item's or a page's contributions.
fn contribution_pk(entity: &str, shard: u32, id: &str) -> String {
    shard_pk(&format!("{entity}-contribution"), shard, id)
}

/// Where a reader of an experiment's units is: the shard, and the last sort key read in it. Pages of
/// [`crate::ports::UnitSource`] carry it as an opaque string, `<shard>|<sort key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitCursor {
    pub shard: u32,
    pub after: Option<String>,
}

impl UnitCursor {
    pub fn parse(token: Option<&str>) -> Self {
        let Some(t) = token else {
            return Self {
                shard: 0,
                after: None,
            };
        };
        match t.split_once('|') {
            Some((shard, sk)) => Self {
                shard: shard.parse().unwrap_or(UNIT_SHARDS),
                after: (!sk.is_empty()).then(|| sk.to_string()),
            },
            None => Self {
                shard: UNIT_SHARDS,
                after: None,
            },
        }
    }

    pub fn token(&self) -> String {
        format!("{}|{}", self.shard, self.after.as_deref().unwrap_or(""))
    }

    /// The next page's token: more of this shard after `last`, or the next shard, or none.
    pub fn next(&self, last_in_shard: Option<String>) -> Option<String> {
        match last_in_shard {
            Some(sk) => Some(
                Self {
                    shard: self.shard,
                    after: Some(sk),
                }
                .token(),
            ),
            None if self.shard + 1 < UNIT_SHARDS => Some(
                Self {
                    shard: self.shard + 1,
                    after: None,
                }
                .token(),
            ),
            None => None,
        }
    }
}

/// The partition of the review queue (one: review volume is far below a partition's write limit).
pub const REVIEW_QUEUE_PK: &str = "review#queue";

/// The sort key of an entity's own features item.
pub const FEATURES_SK: &str = "features";

/// Where an item lives in the features table.
///
/// | entity | `pk` | `sk` |
/// |---|---|---|
/// | session | `session#<session_id>` | `features` |
/// | user | `user#<user_id>` | `features` |
/// | item (product) | `item#<product_id>` | `features` |
/// | page | `page#<path>` | `features` |
/// | a session's contribution to a user or a risk profile | the aggregate's `pk` | `session#<session_id>` |
/// | a session's contribution to an item or a page ([`AGGREGATE_SHARDS`] by session) | `item-contribution#<shard>#<product_id>`, `page-contribution#<shard>#<path>` | `session#<session_id>` |
/// | co-occurrence count ([`AGGREGATE_SHARDS`] by the other product) | `item-pairs#<shard>#<product_id>` | `co_viewed#<other>` / `co_purchased#<other>` |
/// | experiment unit | `experiment#<experiment_id>#<shard>` ([`unit_shard`]) | `unit#<user_id>` |
/// | a key's risk signals (`<key>`: `user`, `card`, `ip`, `device`) | `risk#<key>#<id>` | `features` |
/// | a manual-review case ([`review::QueueItem`]) | `review#queue` | `case#<case_id>` |
/// | a cart's next recovery check ([`crate::recovery::DueItem`]; index `recovery-due`) | `recovery#<session_id>` | `due` |
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    pub fn session(session_id: &str) -> Self {
        Self::new(format!("session#{session_id}"), FEATURES_SK)
    }

    pub fn user(user_id: &str) -> Self {
        Self::new(format!("user#{user_id}"), FEATURES_SK)
    }

    pub fn item(product_id: &str) -> Self {
        Self::new(format!("item#{product_id}"), FEATURES_SK)
    }

    pub fn page(path: &str) -> Self {
        Self::new(format!("page#{path}"), FEATURES_SK)
    }

    pub fn experiment_unit(experiment_id: &str, user_id: &str) -> Self {
        Self::new(
            Self::experiment_shard(experiment_id, unit_shard(user_id)),
            format!("unit#{user_id}"),
        )
    }

    /// The partition key of one shard of an experiment's units.
    pub fn experiment_shard(experiment_id: &str, shard: u32) -> String {
        format!("experiment#{experiment_id}#{shard:02}")
    }

    pub fn risk(key: risk::signals::RiskKey, id: &str) -> Self {
        Self::new(format!("risk#{}#{id}", key.as_str()), FEATURES_SK)
    }

    pub fn review_case(case_id: &str) -> Self {
        Self::new(REVIEW_QUEUE_PK, format!("case#{case_id}"))
    }

    pub fn recovery_due(session_id: &str) -> Self {
        Self::new(format!("recovery#{session_id}"), "due")
    }

    /// The item holding what `session_id` last contributed to the aggregate at `self`: beside a user or
    /// a risk profile, in one of the write shards of an item or a page.
    pub fn contribution(&self, session_id: &str) -> Self {
        let sk = format!("session#{session_id}");
        match self.hot_aggregate() {
            Some((entity, id)) => Self::new(
                contribution_pk(entity, shard_of(session_id, AGGREGATE_SHARDS), id),
                sk,
            ),
            None => Self::new(self.pk.clone(), sk),
        }
    }

    pub fn pair(product_id: &str, kind: PairKind, other: &str) -> Self {
        Self::new(
            shard_pk("item-pairs", shard_of(other, AGGREGATE_SHARDS), product_id),
            format!("{}#{other}", kind.prefix()),
        )
    }

    /// Every partition key holding items of the aggregate at `self`: its own, and for an item or a page
    /// each write shard of its contributions (and an item's pair counts).
    pub fn partitions(&self) -> Vec<String> {
        let mut pks = vec![self.pk.clone()];
        if let Some((entity, id)) = self.hot_aggregate() {
            pks.extend((0..AGGREGATE_SHARDS).map(|s| contribution_pk(entity, s, id)));
            if entity == "item" {
                pks.extend(Self::pair_partitions(id));
            }
        }
        pks
    }

    /// The partition keys of an item's pair counts, one per write shard.
    pub fn pair_partitions(product_id: &str) -> impl Iterator<Item = String> + '_ {
        (0..AGGREGATE_SHARDS).map(move |s| shard_pk("item-pairs", s, product_id))
    }

    /// `(entity, id)` when `self` is an item's or a page's own features item.
    fn hot_aggregate(&self) -> Option<(&'static str, &str)> {
        if self.sk != FEATURES_SK {
            return None;
        }
        ["item", "page"].into_iter().find_map(|entity| {
            self.pk
                .strip_prefix(entity)
                .and_then(|rest| rest.strip_prefix('#'))
                .map(|id| (entity, id))
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.pk, self.sk)
    }
}

/// One item of the features table. The tag is the item's `entity` attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entity", rename_all = "snake_case")]
pub enum Doc {
    Session(SessionFeatures),
    User(UserFeatures),
    UserContribution(UserContribution),
    Item(ItemFeatures),
    ItemContribution(ItemContribution),
    ItemPair(PairCount),
    Page(PageFeatures),
    PageContribution(PageContribution),
    ExperimentUnit(ExperimentUnit),
    RecoveryDue(crate::recovery::DueItem),
    Risk(risk::RiskFeatures),
    RiskContribution(risk::RiskContribution),
    ReviewCase(review::QueueItem),
}

impl Doc {
    pub fn key(&self) -> Key {
        match self {
            Doc::Session(s) => Key::session(&s.session_id),
            Doc::User(u) => Key::user(&u.user_id),
            Doc::UserContribution(c) => Key::user(&c.user_id).contribution(&c.session_id),
            Doc::Item(i) => Key::item(&i.product_id),
            Doc::ItemContribution(c) => Key::item(&c.product_id).contribution(&c.session_id),
            Doc::ItemPair(p) => Key::pair(&p.product_id, p.kind, &p.other_id),
            Doc::Page(p) => Key::page(&p.path),
            Doc::PageContribution(c) => Key::page(&c.path).contribution(&c.session_id),
            Doc::ExperimentUnit(u) => Key::experiment_unit(&u.experiment_id, &u.user_id),
            Doc::RecoveryDue(d) => Key::recovery_due(&d.session_id),
            Doc::Risk(r) => Key::risk(r.key, &r.id),
            Doc::RiskContribution(c) => Key::risk(c.key, &c.id).contribution(&c.session_id),
            Doc::ReviewCase(c) => Key::review_case(&c.case_id),
        }
    }

    /// The entity type, as the `entity` attribute spells it.
    pub fn entity(&self) -> &'static str {
        match self {
            Doc::Session(_) => "session",
            Doc::User(_) => "user",
            Doc::UserContribution(_) => "user_contribution",
            Doc::Item(_) => "item",
            Doc::ItemContribution(_) => "item_contribution",
            Doc::ItemPair(_) => "item_pair",
            Doc::Page(_) => "page",
            Doc::PageContribution(_) => "page_contribution",
            Doc::ExperimentUnit(_) => "experiment_unit",
            Doc::RecoveryDue(_) => "recovery_due",
            Doc::Risk(_) => "risk",
            Doc::RiskContribution(_) => "risk_contribution",
            Doc::ReviewCase(_) => "review_case",
        }
    }

    /// Whether the item is past retention at `now`. DynamoDB deletes expired items only eventually
    /// (typically within 48 hours), so readers check this and treat an expired item as absent.
    pub fn expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.expires_at() <= now.timestamp()
    }

    /// Epoch seconds after which the item is past retention (the TTL attribute).
    pub fn expires_at(&self) -> i64 {
        match self {
            Doc::Session(d) => d.expires_at,
            Doc::User(d) => d.expires_at,
            Doc::UserContribution(d) => d.expires_at,
            Doc::Item(d) => d.expires_at,
            Doc::ItemContribution(d) => d.expires_at,
            Doc::ItemPair(d) => d.expires_at,
            Doc::Page(d) => d.expires_at,
            Doc::PageContribution(d) => d.expires_at,
            Doc::ExperimentUnit(d) => d.expires_at,
            Doc::RecoveryDue(d) => d.expires_at,
            Doc::Risk(d) => d.expires_at,
            Doc::RiskContribution(d) => d.expires_at,
            Doc::ReviewCase(d) => d.expires_at,
        }
    }
}

/// The entity types, for counting items per type.
pub const ENTITIES: [&str; 13] = [
    "session",
    "user",
    "user_contribution",
    "item",
    "item_contribution",
    "item_pair",
    "page",
    "page_contribution",
    "experiment_unit",
    "recovery_due",
    "risk",
    "risk_contribution",
    "review_case",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_spread_over_every_shard_and_the_cursor_walks_them_in_order() {
        let mut per_shard = vec![0u32; UNIT_SHARDS as usize];
        for u in 0..16_000 {
            per_shard[unit_shard(&format!("u_{u:032x}")) as usize] += 1;
        }
        // 1,000 expected per shard; a binomial's 6 standard deviations is about 190.
        assert!(
            per_shard.iter().all(|n| (800..1200).contains(n)),
            "{per_shard:?}"
        );
        let start = UnitCursor::parse(None);
        assert_eq!((start.shard, start.after.as_deref()), (0, None));
        let more = start.next(Some("unit#a".into())).expect("more in shard 0");
        assert_eq!(
            UnitCursor::parse(Some(&more)).after.as_deref(),
            Some("unit#a")
        );
        let next = UnitCursor::parse(Some(&more)).next(None).expect("shard 1");
        assert_eq!(UnitCursor::parse(Some(&next)).shard, 1);
        let last = UnitCursor {
            shard: UNIT_SHARDS - 1,
            after: None,
        };
        assert_eq!(last.next(None), None);
        assert!(Key::experiment_unit("e", "u_1")
            .pk
            .starts_with("experiment#e#"));
    }
}
