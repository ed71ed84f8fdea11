//! Point-in-time training data from the event log alone: one row per decision, with the context as it
//! was at the decision instant, what the policy logged, and the outcome within a horizon.
//!
//! **Context.** The session is folded from its events strictly before the decision (the decision itself
//! and anything at or after its instant are left out); each page's site-wide rates are folded from every
//! session's events before that instant; a session with no earlier events is new or returning by whether
//! the user had an earlier session. The model vector and the policy context are then computed with the
//! serving code ([`crate::decision::engine::uci_at`], [`crate::decision::engine::policy_context`]) and
//! hashed as the scorer hashed them: the share of rows whose hash matches the logged one says how
//! faithfully the log reproduces what the scorer saw (a projection that lagged, or one that already held
//! later events, both show up as mismatches).
//!
//! **Reward.** The session's first `order_placed` after the decision and within the horizon (default 24 h):
//! its revenue, and its margin net of the served action's cost: `revenue × cart margin ratio − cost`, with
//! the ratio from the decision's cart (`margin / value`), else `assumed_margin_ratio`.
//!
//! Degraded decisions (no context was read) are counted and left out, and so are recovery decisions
//! (their outcome is an order in another session days later: a different label, which the logged
//! events support but this in-session export does not compute).

use crate::decision::engine::{feature_hash, policy_context, uci_at};
use crate::decision::learned::PolicyContext;
use crate::decision::policy::Economics;
use crate::event::{ActionProbability, DecisionServed, Event, EventBody, PolicyRef, ShadowChoice};
use crate::features::aggregate::Contribution;
use crate::features::session::{fold, SessionFeatures};
use crate::features::PageFeatures;
use crate::ingest::LogEntry;
use crate::model::scorer::Model;
use crate::placement::Placement;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetSettings {
    pub horizon: Duration,
    /// The margin ratio when a decision logged no cart (v1 events).
    pub assumed_margin_ratio: f64,
}

impl Default for DatasetSettings {
    fn default() -> Self {
        Self {
            horizon: Duration::hours(24),
            assumed_margin_ratio: 0.3,
        }
    }
}

/// What happened after a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub ordered: bool,
    pub revenue_minor: i64,
    /// Margin net of the served action's cost (0 without an order).
    pub margin_minor: f64,
    pub order_at: Option<DateTime<Utc>>,
}

/// One decision, ready for learning and off-policy evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRow {
    pub decision_id: String,
    pub session_id: String,
    pub decided_at: DateTime<Utc>,
    pub placement: Placement,
    pub policy: PolicyRef,
    pub experiment: Option<(String, String)>,
    pub context: PolicyContext,
    /// The logged feature hash, and whether the rebuilt context hashes the same.
    pub feature_hash: String,
    pub hash_matches: bool,
    /// The serving policy's distribution over the eligible actions (empty: a v1 decision whose
    /// distribution was never logged).
    pub eligible: Vec<ActionProbability>,
    /// The served action's key and probability.
    pub action: String,
    pub propensity: f64,
    pub shadow: Option<ShadowChoice>,
    pub outcome: Outcome,
}

impl TrainingRow {
    /// The served action's cost, from the logged distribution (0 when unknown).
    pub fn cost_minor(&self) -> i64 {
        self.eligible
            .iter()
            .find(|a| a.action == self.action)
            .map_or(0, |a| a.cost_minor)
    }
}

/// Counts of what the export saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub decisions: usize,
    pub rows: usize,
    pub degraded_skipped: usize,
    /// Recovery decisions (placement `recovery`), left out: their outcome is a later order in another
    /// session within days, not this session's next order, so this reward would call every one a miss.
    #[serde(default)]
    pub recovery_skipped: usize,
    pub unreadable_events: usize,
    /// Rows whose decision was scored by another model version than the one given (their hashes cannot
    /// match).
    pub other_model_version: usize,
    pub hash_matches: usize,
    pub hash_match_rate: f64,
    pub orders_within_horizon: usize,
    pub by_policy: BTreeMap<String, usize>,
}

pub struct Dataset {
    pub rows: Vec<TrainingRow>,
    pub summary: DatasetSummary,
}

/// A session's events, sorted by (event time, event id).
struct Session {
    events: Vec<(Event, LogEntry)>,
}

impl Session {
    fn before(&self, t: DateTime<Utc>) -> Vec<LogEntry> {
        self.events
            .iter()
            .take_while(|(e, _)| e.occurred_at < t)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

/// Builds the rows from every entry of the log. `model` is the propensity model the scorer served (rows
/// scored by another version are counted in [`DatasetSummary::other_model_version`]).
pub fn build(entries: Vec<LogEntry>, model: &Model, settings: DatasetSettings) -> Dataset {
    let mut summary = DatasetSummary::default();
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    for entry in entries {
        match entry.event() {
            Ok(event) => sessions
                .entry(entry.session_id.clone())
                .or_insert_with(|| Session { events: Vec::new() })
                .events
                .push((event, entry)),
            Err(_) => summary.unreadable_events += 1,
        }
    }
    let mut seen = BTreeSet::new();
    for s in sessions.values_mut() {
        s.events.sort_by(|a, b| {
            (a.0.occurred_at, &a.0.event_id).cmp(&(b.0.occurred_at, &b.0.event_id))
        });
        // Redeliveries carry the same id: keep one.
        s.events.retain(|(e, _)| seen.insert(e.event_id.clone()));
    }
    // Who visited which page, and when each user's sessions began.
    let mut page_sessions: HashMap<String, Vec<&str>> = HashMap::new();
    let mut user_sessions: HashMap<&str, Vec<(DateTime<Utc>, &str)>> = HashMap::new();
    for (id, s) in &sessions {
        let entries: Vec<LogEntry> = s.events.iter().map(|(_, l)| l.clone()).collect();
        if let Some(p) = fold(&entries).0 {
            for page in &p.pages {
                page_sessions.entry(page.path.clone()).or_default().push(id);
            }
        }
        if let Some((first, _)) = s.events.first() {
            if let Some(u) = s.events.iter().find_map(|(e, _)| e.user_id.as_deref()) {
                user_sessions
                    .entry(u)
                    .or_default()
                    .push((first.occurred_at, id));
            }
        }
    }

    let mut rows = Vec::new();
    for (id, s) in &sessions {
        for (event, _) in &s.events {
            let EventBody::DecisionServed(d) = &event.body else {
                continue;
            };
            summary.decisions += 1;
            if d.degraded {
                summary.degraded_skipped += 1;
                continue;
            }
            if d.placement == Placement::Recovery.as_str() {
                summary.recovery_skipped += 1;
                continue;
            }
            let t = event.occurred_at;
            let session = fold(&s.before(t)).0.map(|p| p.session);
            let pages = pages_at(session.as_ref(), &page_sessions, &sessions, t);
            let returning_user = event.user_id.as_deref().is_some_and(|u| {
                user_sessions
                    .get(u)
                    .is_some_and(|v| v.iter().any(|(at, other)| *at < t && *other != id))
            });
            let row = uci_at(session.as_ref(), |p| pages.get(p), returning_user, t);
            let x = model.vectorize(&row);
            let d = d.upcast();
            let economics = economics(&d);
            let Some(placement) = Placement::parse(&d.placement) else {
                continue;
            };
            let context = policy_context(
                placement,
                model.probability(&x),
                &economics,
                event.context.device.as_ref().map(|dev| dev.kind),
                session.as_ref(),
                &row,
            );
            if d.model_version != model.version() {
                summary.other_model_version += 1;
            }
            let hash_matches = feature_hash(&x, &context) == d.feature_hash;
            let action = d.served_key().to_string();
            let cost = d.served_cost_minor();
            let ratio = if economics.value_minor > 0.0 {
                economics.margin_minor / economics.value_minor
            } else {
                settings.assumed_margin_ratio
            };
            let outcome = outcome(s, t, settings.horizon, ratio, cost);
            rows.push(TrainingRow {
                decision_id: d.decision_id.clone(),
                session_id: id.clone(),
                decided_at: t,
                placement,
                policy: d.policy.clone().unwrap_or_default(),
                experiment: d.experiment_id.clone().zip(d.variant.clone()),
                context,
                feature_hash: d.feature_hash.clone(),
                hash_matches,
                eligible: d.eligible.clone(),
                action,
                propensity: d.propensity,
                shadow: d.shadow.clone(),
                outcome,
            });
        }
    }
    rows.sort_by(|a, b| (a.decided_at, &a.decision_id).cmp(&(b.decided_at, &b.decision_id)));
    summary.rows = rows.len();
    summary.hash_matches = rows.iter().filter(|r| r.hash_matches).count();
    summary.hash_match_rate = if rows.is_empty() {
        0.0
    } else {
        summary.hash_matches as f64 / rows.len() as f64
    };
    summary.orders_within_horizon = rows.iter().filter(|r| r.outcome.ordered).count();
    for r in &rows {
        *summary.by_policy.entry(r.policy.id.clone()).or_default() += 1;
    }
    Dataset { rows, summary }
}

/// The site-wide rates of the session's pages, from every session's events before `t`.
fn pages_at(
    session: Option<&SessionFeatures>,
    page_sessions: &HashMap<String, Vec<&str>>,
    sessions: &BTreeMap<String, Session>,
    t: DateTime<Utc>,
) -> HashMap<String, PageFeatures> {
    let mut out = HashMap::new();
    let Some(session) = session else {
        return out;
    };
    let wanted: BTreeSet<&str> = session.pages.iter().map(|p| p.path.as_str()).collect();
    let visitors: BTreeSet<&str> = wanted
        .iter()
        .flat_map(|p| page_sessions.get(*p).into_iter().flatten().copied())
        .collect();
    for other in visitors {
        let Some(projection) = fold(&sessions[other].before(t)).0 else {
            continue;
        };
        for c in projection.pages {
            if wanted.contains(c.path.as_str()) {
                let agg = out.entry(c.path.clone()).or_insert_with(|| c.empty());
                c.apply(None, agg);
            }
        }
    }
    out
}

/// The cart economics the decision logged (v1 logged none: no cart value, no margin).
pub fn economics(d: &DecisionServed) -> Economics {
    match &d.cart {
        Some(c) => Economics {
            value_minor: c.value_minor as f64,
            margin_minor: c.margin_minor as f64,
            margin_known: c.margin_known,
        },
        None => Economics {
            value_minor: 0.0,
            margin_minor: 0.0,
            margin_known: false,
        },
    }
}

/// The session's first order in `(t, t + horizon]`.
fn outcome(
    s: &Session,
    t: DateTime<Utc>,
    horizon: Duration,
    margin_ratio: f64,
    cost_minor: i64,
) -> Outcome {
    let order = s.events.iter().find_map(|(e, _)| match &e.body {
        EventBody::OrderPlaced(o) if e.occurred_at > t && e.occurred_at <= t + horizon => {
            Some((e.occurred_at, o.total.amount_minor))
        }
        _ => None,
    });
    match order {
        None => Outcome::default(),
        Some((at, revenue)) => Outcome {
            ordered: true,
            revenue_minor: revenue,
            margin_minor: revenue as f64 * margin_ratio - cost_minor as f64,
            order_at: Some(at),
        },
    }
}

/// SHA-256 over the rows' JSON lines: the identity of a training or held-out set.
pub fn rows_sha256(rows: &[TrainingRow]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in rows {
        h.update(serde_json::to_vec(r).unwrap_or_default());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}
