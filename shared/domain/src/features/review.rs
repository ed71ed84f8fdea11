//! The manual-review queue: a case is a fold of its `review_updated` events, and every command a reviewer
//! or the SLA sweep gives becomes the next event, or a refusal.
//!
//! ```text
//! opened ──claim──▶ assigned ──approve / reject──▶ approved | rejected
//!   │  ▲               │
//!   │  └───release─────┘   (the assignee lets go; or the claim lapses after `claim_minutes`)
//!   ├──escalated (the deadline is `escalate_before_hours` away and nobody decided)
//!   └──expired   (the deadline passed: the default decision applies; counted)
//! ```
//!
//! Each event carries the assessment the case was opened on (score, band, rule ids, reasons), who acted
//! and why. Events are numbered per case (`<case_id>#<n>`) and appended only if that number is free, so
//! two reviewers claiming at once cannot both win: the second gets a conflict. An `approved` or `rejected`
//! event is also a label for the risk model (a rejection is a fraud label; see
//! [`crate::features::risk`]).

use crate::event::{ActorKind, ReviewActor, ReviewTransition, ReviewUpdated, RiskServed};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The `review` section of the decision config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// How long a case may wait: the authorisation's validity (7 days for card-not-present by default).
    #[serde(default = "seven")]
    pub deadline_hours: i64,
    /// Escalate this long before the deadline.
    #[serde(default = "twenty_four")]
    pub escalate_before_hours: i64,
    /// What applies at the deadline: `approved` (capture, the default) or `rejected` (void).
    #[serde(default = "approved")]
    pub default_decision: ReviewTransition,
    /// A claim lapses after this long without a decision (the case goes back to the queue).
    #[serde(default = "sixty")]
    pub claim_minutes: i64,
}

fn seven() -> i64 {
    7 * 24
}
fn twenty_four() -> i64 {
    24
}
fn approved() -> ReviewTransition {
    ReviewTransition::Approved
}
fn sixty() -> i64 {
    60
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            deadline_hours: seven(),
            escalate_before_hours: twenty_four(),
            default_decision: approved(),
            claim_minutes: sixty(),
        }
    }
}

impl ReviewConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.deadline_hours < 1
            || !(0..self.deadline_hours).contains(&self.escalate_before_hours)
        {
            return Err(
                "review.deadline_hours must be at least 1 and escalate_before_hours below it"
                    .into(),
            );
        }
        if !matches!(
            self.default_decision,
            ReviewTransition::Approved | ReviewTransition::Rejected
        ) {
            return Err("review.default_decision must be approved or rejected".into());
        }
        if self.claim_minutes < 1 {
            return Err("review.claim_minutes must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Assigned,
    Approved,
    Rejected,
    Expired,
}

impl Status {
    pub fn closed(self) -> bool {
        matches!(self, Status::Approved | Status::Rejected | Status::Expired)
    }
}

/// A case as its events make it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    pub case_id: String,
    pub status: Status,
    /// The reviewer holding it while `Assigned`, and since when.
    pub assignee: Option<String>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub escalated: bool,
    /// What applied when it closed: for an expired case, the default decision.
    pub outcome: Option<ReviewTransition>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The opening event: the assessment, the decision and order it is about.
    pub opened: ReviewUpdated,
    /// How many events the case has (the next one is numbered this).
    pub events: u32,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("case {0} does not exist")]
    NotFound(String),
    #[error("case {case_id} is {status:?}: {message}")]
    Conflict {
        case_id: String,
        status: Status,
        message: String,
    },
    #[error("case events are inconsistent: {0}")]
    Corrupt(String),
}

/// The event id of a case's `n`th event (0-based): appending it only if absent serialises the commands.
pub fn event_id(case_id: &str, n: u32) -> String {
    format!("{case_id}#{n}")
}

/// One event of a case: its event id, its time and its payload.
pub type CaseEvent = (String, DateTime<Utc>, ReviewUpdated);

/// Folds a case's events (any order; by their number in the event id). `None` without an `opened` one.
pub fn fold(events: &[CaseEvent]) -> Result<Option<Case>, ReviewError> {
    let mut sorted: Vec<&CaseEvent> = events.iter().collect();
    let number = |id: &str| {
        id.rsplit_once('#')
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    sorted.sort_by_key(|(id, at, _)| (number(id), *at));
    let Some((_, at, first)) = sorted.first() else {
        return Ok(None);
    };
    if first.transition != ReviewTransition::Opened {
        return Err(ReviewError::Corrupt(format!(
            "case {} starts with {:?}",
            first.case_id, first.transition
        )));
    }
    let mut case = Case {
        case_id: first.case_id.clone(),
        status: Status::Open,
        assignee: None,
        claimed_at: None,
        opened_at: *at,
        deadline_at: first.deadline_at,
        escalated: false,
        outcome: None,
        closed_at: None,
        opened: first.clone(),
        events: 0,
    };
    for (_, at, e) in &sorted {
        case.events += 1;
        match e.transition {
            ReviewTransition::Opened => {}
            ReviewTransition::Assigned => {
                case.status = Status::Assigned;
                case.assignee = Some(e.actor.id.clone());
                case.claimed_at = Some(*at);
            }
            ReviewTransition::Released => {
                case.status = Status::Open;
                case.assignee = None;
                case.claimed_at = None;
            }
            ReviewTransition::Escalated => case.escalated = true,
            ReviewTransition::Approved | ReviewTransition::Rejected => {
                case.status = if e.transition == ReviewTransition::Approved {
                    Status::Approved
                } else {
                    Status::Rejected
                };
                case.outcome = Some(e.transition);
                case.closed_at = Some(*at);
            }
            ReviewTransition::Expired => {
                case.status = Status::Expired;
                case.outcome = Some(e.default_decision);
                case.closed_at = Some(*at);
            }
        }
    }
    Ok(Some(case))
}

/// The `opened` event of a case for a `review` recommendation.
pub fn open(
    decision_id: &str,
    order_ref: &str,
    risk: &RiskServed,
    config: &ReviewConfig,
    now: DateTime<Utc>,
) -> ReviewUpdated {
    ReviewUpdated {
        case_id: decision_id.to_string(),
        transition: ReviewTransition::Opened,
        actor: ReviewActor {
            kind: ActorKind::System,
            id: "decision-api".into(),
        },
        decision_id: decision_id.to_string(),
        order_ref: order_ref.to_string(),
        score: risk.score.unwrap_or(0.0),
        band: risk.band.unwrap_or(0),
        rule_ids: risk.rule_ids.clone(),
        reasons: risk.reasons.clone(),
        reason: None,
        deadline_at: now + Duration::hours(config.deadline_hours),
        default_decision: config.default_decision,
    }
}

/// What a reviewer can ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Claim,
    Release,
    Decide {
        approve: bool,
        /// A reason code (`stolen_card`, `verified_customer`, …).
        reason: String,
    },
}

fn next(
    case: &Case,
    transition: ReviewTransition,
    actor: ReviewActor,
    reason: Option<String>,
) -> ReviewUpdated {
    ReviewUpdated {
        transition,
        actor,
        reason,
        ..case.opened.clone()
    }
}

fn conflict(case: &Case, message: impl Into<String>) -> ReviewError {
    ReviewError::Conflict {
        case_id: case.case_id.clone(),
        status: case.status,
        message: message.into(),
    }
}

/// The event a reviewer's command makes, or why not. `Ok(None)`: already so (a repeated claim by the
/// assignee), nothing to append.
pub fn command(
    case: &Case,
    reviewer: &str,
    command: Command,
    config: &ReviewConfig,
    now: DateTime<Utc>,
) -> Result<Option<ReviewUpdated>, ReviewError> {
    let actor = ReviewActor {
        kind: ActorKind::Reviewer,
        id: reviewer.to_string(),
    };
    if case.status.closed() {
        return Err(conflict(case, "the case is closed"));
    }
    if now >= case.deadline_at {
        return Err(conflict(
            case,
            "the deadline has passed; the default decision applies",
        ));
    }
    let held_by_other = case.status == Status::Assigned
        && case.assignee.as_deref() != Some(reviewer)
        && !claim_lapsed(case, config, now);
    match command {
        Command::Claim
            if case.status == Status::Assigned && case.assignee.as_deref() == Some(reviewer) =>
        {
            Ok(None)
        }
        Command::Claim if held_by_other => Err(conflict(case, "another reviewer holds it")),
        Command::Claim => Ok(Some(next(case, ReviewTransition::Assigned, actor, None))),
        Command::Release | Command::Decide { .. }
            if case.status != Status::Assigned || case.assignee.as_deref() != Some(reviewer) =>
        {
            Err(conflict(case, "claim the case first"))
        }
        Command::Release => Ok(Some(next(case, ReviewTransition::Released, actor, None))),
        Command::Decide { approve, reason } => {
            if reason.is_empty()
                || reason.len() > 64
                || !reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                return Err(conflict(
                    case,
                    "the reason must be a code of 1–64 of [a-z_]",
                ));
            }
            let t = if approve {
                ReviewTransition::Approved
            } else {
                ReviewTransition::Rejected
            };
            Ok(Some(next(case, t, actor, Some(reason))))
        }
    }
}

fn claim_lapsed(case: &Case, config: &ReviewConfig, now: DateTime<Utc>) -> bool {
    case.claimed_at
        .is_some_and(|at| now >= at + Duration::minutes(config.claim_minutes))
}

/// What the SLA sweep does to a case at `now`: expire it at the deadline (the default decision applies),
/// escalate it once when the deadline is near, or release a lapsed claim. `None`: nothing due.
pub fn sweep(case: &Case, config: &ReviewConfig, now: DateTime<Utc>) -> Option<ReviewUpdated> {
    if case.status.closed() {
        return None;
    }
    let system = |id: &str| ReviewActor {
        kind: ActorKind::System,
        id: id.into(),
    };
    if now >= case.deadline_at {
        return Some(next(
            case,
            ReviewTransition::Expired,
            system("review-sla"),
            Some("authorisation_expiry".into()),
        ));
    }
    if !case.escalated && now >= case.deadline_at - Duration::hours(config.escalate_before_hours) {
        return Some(next(
            case,
            ReviewTransition::Escalated,
            system("review-sla"),
            Some("sla_escalation".into()),
        ));
    }
    if case.status == Status::Assigned && claim_lapsed(case, config, now) {
        return Some(next(
            case,
            ReviewTransition::Released,
            system("review-sla"),
            Some("claim_lapsed".into()),
        ));
    }
    None
}

/// A case in the review queue (`review#queue` / `case#<case_id>`): what the reviewer API lists and
/// where a case's events are (its session). Written with the session item by the feature updater; a
/// closed case stays, marked closed, until its retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    pub case_id: String,
    pub session_id: String,
    /// Pseudonymous.
    pub user_id: Option<String>,
    pub status: Status,
    pub assignee: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub escalated: bool,
    pub outcome: Option<ReviewTransition>,
    pub score: f64,
    pub band: u32,
    pub reasons: Vec<String>,
    pub rule_ids: Vec<String>,
    pub decision_id: String,
    pub order_ref: String,
    pub events: u32,
    pub expires_at: i64,
}

/// The queue items of one session's events (each case once, from all its events in the session), by case
/// id; `None` for a case whose events do not (yet) fold into one (no `opened` event first): its queue
/// item, if any, must go.
pub fn queue_items(events: &[&(crate::event::Event, i64)]) -> Vec<(String, Option<QueueItem>)> {
    let mut cases: std::collections::BTreeMap<&str, Vec<CaseEvent>> = Default::default();
    let mut expires: std::collections::BTreeMap<&str, i64> = Default::default();
    for (e, x) in events {
        if let crate::event::EventBody::ReviewUpdated(r) = &e.body {
            cases.entry(r.case_id.as_str()).or_default().push((
                e.event_id.clone(),
                e.occurred_at,
                (**r).clone(),
            ));
            let slot = expires.entry(r.case_id.as_str()).or_insert(*x);
            *slot = (*slot).max(*x);
        }
    }
    let user = events.iter().find_map(|(e, _)| e.user_id.clone());
    let session = events
        .first()
        .map(|(e, _)| e.session_id.clone())
        .unwrap_or_default();
    cases
        .into_iter()
        .map(|(id, evs)| {
            let item = fold(&evs).ok().flatten().map(|case| QueueItem {
                case_id: case.case_id.clone(),
                session_id: session.clone(),
                user_id: user.clone(),
                status: case.status,
                assignee: case.assignee.clone(),
                opened_at: case.opened_at,
                deadline_at: case.deadline_at,
                escalated: case.escalated,
                outcome: case.outcome,
                score: case.opened.score,
                band: case.opened.band,
                reasons: case.opened.reasons.clone(),
                rule_ids: case.opened.rule_ids.clone(),
                decision_id: case.opened.decision_id.clone(),
                order_ref: case.opened.order_ref.clone(),
                events: case.events,
                expires_at: expires.get(id).copied().unwrap_or(0),
            });
            (id.to_string(), item)
        })
        .collect()
}
