//! Abandoned-cart recovery, the decisions at its core (issue 18, first part): when a cart counts as
//! abandoned, when each step of its sequence falls due, and the check before every send. Everything is a
//! pure function of the logged events (ordered by event time, duplicates by event id dropped), so the
//! order in which they arrived, and how often, changes nothing.
//!
//! - A session's **cart** is its lines after every add and remove; it **is abandoned** when it holds
//!   items, the session placed no order, and the session has been idle for `idle` (60 min by default)
//!   after its last event: `abandoned_at = last event + idle`.
//! - Step `i` of the sequence falls due `steps[i]` after the abandonment (1 h, 24 h, 72 h by default), at
//!   most `max_messages_per_cart` of them.
//! - **Before every send** the cart is recomputed from the events known now, and the send is refused if
//!   the user ordered (in any session) at or after the cart's first add, if the cart is empty, or if
//!   the session is active again. If the cart changed and is still abandoned, the sequence **restarts**
//!   from the new abandonment time (an emptied cart **cancels** it).
//!
//! - **Caps** ([`cap`]): per user and channel, one e-mail per 16 h and one SMS per 24 h by default, and at
//!   most 3 messages per cart; a message over a channel cap is deferred to when the cap allows it, never
//!   dropped silently.
//!
//! Not here yet: opt-out and consent, quiet hours in the user's time zone, the predictive choice,
//! delivery and the sweep (see the issue).

use crate::event::{Event, EventBody};
use crate::ingest::LogEntry;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
pub struct RecoverySettings {
    /// Inactivity after which a cart with items is abandoned.
    pub idle: Duration,
    /// When each step falls due, after the abandonment.
    pub steps: Vec<Duration>,
    pub max_messages_per_cart: usize,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(60),
            steps: vec![Duration::hours(1), Duration::hours(24), Duration::hours(72)],
            max_messages_per_cart: 3,
        }
    }
}

/// One session's cart, from its events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cart {
    pub session_id: String,
    /// The pseudonymous user, when any event of the session names one.
    pub user_id: Option<String>,
    /// The first add.
    pub started_at: DateTime<Utc>,
    /// The last add or remove.
    pub changed_at: DateTime<Utc>,
    /// The session's last event of any kind.
    pub last_activity_at: DateTime<Utc>,
    /// Quantity per product, positive only.
    pub lines: BTreeMap<String, u32>,
    /// Whether the session placed an order.
    pub ordered: bool,
}

impl Cart {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// When the cart counts as abandoned (`None`: empty, or ordered).
    pub fn abandoned_at(&self, settings: &RecoverySettings) -> Option<DateTime<Utc>> {
        (!self.is_empty() && !self.ordered).then(|| self.last_activity_at + settings.idle)
    }

    /// When each step of its sequence falls due.
    pub fn steps(&self, settings: &RecoverySettings) -> Vec<DateTime<Utc>> {
        self.abandoned_at(settings)
            .map(|at| {
                settings
                    .steps
                    .iter()
                    .take(settings.max_messages_per_cart)
                    .map(|d| at + *d)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The events of `entries`, readable, each once, in event-time order.
fn ordered(entries: &[LogEntry]) -> Vec<Event> {
    let mut seen = BTreeSet::new();
    let mut events: Vec<Event> = entries
        .iter()
        .filter(|e| seen.insert(e.event_id.clone()))
        .filter_map(|e| e.event().ok())
        .collect();
    events.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    events
}

/// The cart of every session in `entries` that added something.
pub fn carts(entries: &[LogEntry]) -> Vec<Cart> {
    let mut by_session: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for e in ordered(entries) {
        by_session.entry(e.session_id.clone()).or_default().push(e);
    }
    by_session
        .into_iter()
        .filter_map(|(session_id, events)| cart_of(session_id, &events))
        .collect()
}

fn cart_of(session_id: String, events: &[Event]) -> Option<Cart> {
    let mut cart: Option<Cart> = None;
    let mut last_activity = None;
    let mut ordered = false;
    let mut user_id = None;
    for e in events {
        last_activity = Some(e.occurred_at);
        if user_id.is_none() {
            user_id.clone_from(&e.user_id);
        }
        match &e.body {
            EventBody::CartItemAdded(a) => {
                let c = cart.get_or_insert_with(|| Cart {
                    session_id: session_id.clone(),
                    user_id: None,
                    started_at: e.occurred_at,
                    changed_at: e.occurred_at,
                    last_activity_at: e.occurred_at,
                    lines: BTreeMap::new(),
                    ordered: false,
                });
                *c.lines.entry(a.product_id.clone()).or_default() += a.quantity;
                c.changed_at = e.occurred_at;
            }
            EventBody::CartItemRemoved(r) => {
                if let Some(c) = cart.as_mut() {
                    if let Some(q) = c.lines.get_mut(&r.product_id) {
                        *q = q.saturating_sub(r.quantity);
                        if *q == 0 {
                            c.lines.remove(&r.product_id);
                        }
                    }
                    c.changed_at = e.occurred_at;
                }
            }
            EventBody::OrderPlaced(_) => ordered = true,
            _ => {}
        }
    }
    let mut c = cart?;
    c.last_activity_at = last_activity.unwrap_or(c.changed_at);
    c.ordered = ordered;
    c.user_id = user_id;
    Some(c)
}

/// What the check before a send decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Send,
    /// Not due yet (or the session is active again and not yet idle).
    NotYet {
        due_at: DateTime<Utc>,
    },
    /// The cart changed and is still abandoned: its sequence restarts from the new abandonment time.
    Restart {
        abandoned_at: DateTime<Utc>,
    },
    Cancelled {
        reason: CancelReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The user ordered, in any session, at or after the cart's first add.
    OrderedSince,
    /// The cart is empty (or there is none).
    Emptied,
    /// The sequence has no such step.
    NoSuchStep,
}

/// The check before sending step `step` of the cart of `session_id`, scheduled from the abandonment
/// time `basis`, at `now`: `user_events` are every logged event of the cart's session and of the same
/// pseudonymous user's other sessions, as known now.
pub fn check(
    user_events: &[LogEntry],
    session_id: &str,
    basis: DateTime<Utc>,
    step: usize,
    now: DateTime<Utc>,
    settings: &RecoverySettings,
) -> Verdict {
    let cancelled = |reason| Verdict::Cancelled { reason };
    if step >= settings.steps.len().min(settings.max_messages_per_cart) {
        return cancelled(CancelReason::NoSuchStep);
    }
    let events = ordered(user_events);
    let session: Vec<Event> = events
        .iter()
        .filter(|e| e.session_id == session_id)
        .cloned()
        .collect();
    let Some(cart) = cart_of(session_id.to_string(), &session) else {
        return cancelled(CancelReason::Emptied);
    };
    let user = cart.user_id.as_deref();
    let ordered_since = events.iter().any(|e| {
        matches!(e.body, EventBody::OrderPlaced(_))
            && e.occurred_at >= cart.started_at
            && (e.session_id == session_id || (user.is_some() && e.user_id.as_deref() == user))
    });
    if ordered_since {
        return cancelled(CancelReason::OrderedSince);
    }
    if cart.is_empty() {
        return cancelled(CancelReason::Emptied);
    }
    let Some(abandoned_at) = cart.abandoned_at(settings) else {
        return cancelled(CancelReason::Emptied);
    };
    if abandoned_at > now {
        return Verdict::NotYet {
            due_at: abandoned_at + settings.steps[step],
        };
    }
    if abandoned_at != basis {
        return Verdict::Restart { abandoned_at };
    }
    let due_at = basis + settings.steps[step];
    if now < due_at {
        return Verdict::NotYet { due_at };
    }
    Verdict::Send
}

/// A channel a recovery message goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

/// Per-user and per-cart message caps.
#[derive(Debug, Clone, PartialEq)]
pub struct Caps {
    /// At most one e-mail to a user per this long.
    pub email_every: Duration,
    /// At most one SMS to a user per this long.
    pub sms_every: Duration,
    /// At most this many messages about one cart, whatever the channel.
    pub per_cart: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            email_every: Duration::hours(16),
            sms_every: Duration::hours(24),
            per_cart: 3,
        }
    }
}

impl Caps {
    fn every(&self, channel: Channel) -> Duration {
        match channel {
            Channel::Email => self.email_every,
            Channel::Sms => self.sms_every,
        }
    }
}

/// A message already requested for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub channel: Channel,
    pub at: DateTime<Utc>,
    /// The session of the cart it was about.
    pub cart_session: String,
}

/// What the caps allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum CapVerdict {
    Allowed,
    /// The channel's cap allows the next message at this time: defer, do not drop.
    DeferUntil {
        at: DateTime<Utc>,
    },
    /// The cart has had its messages.
    CartCapReached,
}

/// Whether a message about the cart of `cart_session` may go out on `channel` at `now`, given every
/// message already requested for the same user (`sent`, any order).
pub fn cap(
    sent: &[Sent],
    channel: Channel,
    cart_session: &str,
    now: DateTime<Utc>,
    caps: &Caps,
) -> CapVerdict {
    if sent
        .iter()
        .filter(|m| m.cart_session == cart_session)
        .count()
        >= caps.per_cart
    {
        return CapVerdict::CartCapReached;
    }
    let next = sent
        .iter()
        .filter(|m| m.channel == channel)
        .map(|m| m.at + caps.every(channel))
        .max();
    match next {
        Some(at) if now < at => CapVerdict::DeferUntil { at },
        _ => CapVerdict::Allowed,
    }
}
