//! Abandoned-cart recovery: when a cart counts as abandoned, when each message of its sequence falls
//! due, and everything checked before a message goes out. Every function here is a pure function of
//! the logged events (ordered by event time, duplicates by event id dropped), so the order in which
//! they arrived, and how often, changes nothing. [`sweep`] runs it over its ports; [`config`] is its
//! part of the decision config.
//!
//! - A session's **cart** is its lines after every add and remove. It **is abandoned** when it holds
//!   items, the session placed no order, and the shopper has been idle for `idle` (60 min by default)
//!   after their last storefront event: `abandoned_at = last shopper event + idle`. Events the system
//!   writes into the session (decisions, recovery messages and their outcomes, consent changes) are not
//!   shopper activity.
//! - Step `k` of the sequence falls due `steps[k]` after the abandonment (1 h, 24 h, 72 h by default).
//!   A step is **done** once its recovery decision is logged and either chose to send nothing or its
//!   message was requested; the sequence ends after a holdout decision (the holdout never receives a
//!   message) and after `max_messages_per_cart` messages about the cart, whatever their basis.
//! - **A cart that changes restarts its sequence**: a new add or remove (or any shopper activity in
//!   the session) moves `abandoned_at`, and the steps are counted again from the first for the new
//!   basis, within the same per-cart cap. **An emptied cart, or an order, cancels it.**
//! - **Before every send** ([`assess`]) the cart is recomputed from the events known now, and nothing
//!   is sent if the same pseudonymous user ordered, in any session, at or after the cart's first add,
//!   if the cart is empty, or if the shopper is active again (the step then waits for the new
//!   abandonment).
//! - **Consent** ([`History`]): the latest `consent_changed` for the channel (or for every channel)
//!   decides, and an `unsubscribed` outcome is an opt-out of its channel. Without any consent event the
//!   shopper may be messaged unless the config requires consent.
//! - **Caps** ([`cap`]): per user and channel, one e-mail per 16 h and one SMS per 24 h by default; a
//!   message over a channel cap is deferred to when the cap allows it, never dropped silently.
//! - **Quiet hours** ([`quiet_until`]): 21:00 to 08:00 in the shopper's time zone by default (the last
//!   `context.time_zone` they sent, else the configured one) defer a message to their end.

pub mod config;
pub mod sweep;

use crate::event::{Channel, ConsentChanged, Event, EventBody, MessageOutcome, RecoveryStep};
use crate::ingest::LogEntry;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

pub use config::RecoveryConfig;

/// The recovery experiment's holdout variant: never receives a recovery message.
pub const HOLDOUT: &str = "holdout";
/// Everyone else in the recovery experiment.
pub const TREATMENT: &str = "treatment";
/// Due items are spread over this many index partitions per hour.
pub const DUE_SHARDS: u32 = 4;
/// A due item outlives its due time by this long at most (a TTL backstop: the sweep removes it).
pub const DUE_RETENTION_DAYS: i64 = 30;

/// When carts are abandoned and their steps fall due. Both the feature updater (which schedules the
/// sweep) and the sweep read it, from the same template parameters.
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

impl RecoverySettings {
    /// From the functions' environment: `RECOVERY_IDLE_MINUTES` (60), `RECOVERY_STEP_HOURS` (`1,24,72`,
    /// strictly increasing) and `RECOVERY_MAX_MESSAGES_PER_CART` (3).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut s = Self::default();
        if let Some(v) = get("RECOVERY_IDLE_MINUTES") {
            let m: i64 = v
                .trim()
                .parse()
                .map_err(|_| format!("RECOVERY_IDLE_MINUTES={v:?} is not a whole number"))?;
            if !(1..=24 * 60).contains(&m) {
                return Err(format!("RECOVERY_IDLE_MINUTES={m} must be 1..=1440"));
            }
            s.idle = Duration::minutes(m);
        }
        if let Some(v) = get("RECOVERY_STEP_HOURS") {
            let hours: Result<Vec<i64>, _> = v.split(',').map(|h| h.trim().parse()).collect();
            let hours = hours.map_err(|_| format!("RECOVERY_STEP_HOURS={v:?} is not a list"))?;
            if hours.is_empty()
                || hours.len() > 10
                || hours[0] < 1
                || hours.windows(2).any(|w| w[1] <= w[0])
                || hours.iter().any(|h| *h > 24 * 30)
            {
                return Err(format!(
                    "RECOVERY_STEP_HOURS={v:?} must be 1 to 10 strictly increasing hours in 1..=720"
                ));
            }
            s.steps = hours.into_iter().map(Duration::hours).collect();
        }
        if let Some(v) = get("RECOVERY_MAX_MESSAGES_PER_CART") {
            s.max_messages_per_cart = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=10).contains(n))
                .ok_or_else(|| format!("RECOVERY_MAX_MESSAGES_PER_CART={v:?} must be 1..=10"))?;
        }
        Ok(s)
    }
}

/// A cart line's price as the last add gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinePrice {
    pub unit_price_minor: i64,
    pub currency: String,
    pub unit_cost_minor: Option<i64>,
}

/// One session's cart, from its events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cart {
    pub session_id: String,
    /// The pseudonymous user, when any event of the session names one.
    pub user_id: Option<String>,
    /// The first add.
    pub started_at: DateTime<Utc>,
    /// The shopper's last storefront event in the session.
    pub last_activity_at: DateTime<Utc>,
    /// Quantity per product, positive only.
    pub lines: BTreeMap<String, u32>,
    /// Price per product, from its latest add.
    pub prices: BTreeMap<String, LinePrice>,
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
}

/// Whether an event is the shopper's own storefront activity (what the idle time counts from).
pub fn is_shopper_activity(body: &EventBody) -> bool {
    !matches!(
        body,
        EventBody::DecisionServed(_)
            | EventBody::ConsentChanged(_)
            | EventBody::RecoveryMessageRequested(_)
            | EventBody::RecoveryMessageOutcome(_)
            | EventBody::ChargebackReceived(_)
            | EventBody::FraudConfirmed(_)
            | EventBody::ReviewUpdated(_)
    )
}

/// The events of `entries`, readable, each once, in event-time order.
pub(crate) fn ordered(entries: &[LogEntry]) -> Vec<Event> {
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

pub(crate) fn cart_of(session_id: String, events: &[Event]) -> Option<Cart> {
    let mut cart: Option<Cart> = None;
    let mut last_activity = None;
    let mut ordered = false;
    let mut user_id = None;
    for e in events {
        if user_id.is_none() {
            user_id.clone_from(&e.user_id);
        }
        if !is_shopper_activity(&e.body) {
            continue;
        }
        last_activity = Some(e.occurred_at);
        match &e.body {
            EventBody::CartItemAdded(a) => {
                let c = cart.get_or_insert_with(|| Cart {
                    session_id: session_id.clone(),
                    user_id: None,
                    started_at: e.occurred_at,
                    last_activity_at: e.occurred_at,
                    lines: BTreeMap::new(),
                    prices: BTreeMap::new(),
                    ordered: false,
                });
                *c.lines.entry(a.product_id.clone()).or_default() += a.quantity;
                c.prices.insert(
                    a.product_id.clone(),
                    LinePrice {
                        unit_price_minor: a.unit_price.amount_minor,
                        currency: a.unit_price.currency.clone(),
                        unit_cost_minor: a.unit_cost_minor,
                    },
                );
            }
            EventBody::CartItemRemoved(r) => {
                if let Some(c) = cart.as_mut() {
                    if let Some(q) = c.lines.get_mut(&r.product_id) {
                        *q = q.saturating_sub(r.quantity);
                        if *q == 0 {
                            c.lines.remove(&r.product_id);
                        }
                    }
                }
            }
            EventBody::OrderPlaced(_) => ordered = true,
            _ => {}
        }
    }
    let mut c = cart?;
    c.last_activity_at = last_activity.unwrap_or(c.started_at);
    c.ordered = ordered;
    c.user_id = user_id;
    Some(c)
}

/// The next step of a cart's sequence and when it falls due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Due {
    pub session_id: String,
    pub user_id: Option<String>,
    pub abandoned_at: DateTime<Utc>,
    pub step: u32,
    pub due_at: DateTime<Utc>,
}

impl Due {
    pub fn recovery_step(&self) -> RecoveryStep {
        RecoveryStep {
            abandoned_at: self.abandoned_at,
            step: self.step,
        }
    }

    /// The features-table item that has the sweep look at the cart at `due_at`.
    pub fn item(&self) -> DueItem {
        DueItem::new(self, self.due_at)
    }
}

/// A cart's next recovery check, as the features table keeps it (`recovery#<session>` / `due`): written
/// by the feature updater whenever the session's events change it, moved later by the sweep when it
/// defers, removed when the sequence is over. Its index `recovery-due` (`due_bucket`, `due_key`) is how
/// the sweep finds the carts due, hour by hour, without scanning: `due_bucket` is the due time's hour
/// and one of [`DUE_SHARDS`] shards, `due_key` the due time then the session, so a range query up to
/// `now` returns exactly what is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DueItem {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub abandoned_at: DateTime<Utc>,
    pub step: u32,
    pub due_at: DateTime<Utc>,
    pub due_bucket: String,
    pub due_key: String,
    pub expires_at: i64,
}

impl DueItem {
    /// The item for `due`, checked at `at` (its due time, or later when deferred).
    pub fn new(due: &Due, at: DateTime<Utc>) -> Self {
        Self {
            session_id: due.session_id.clone(),
            user_id: due.user_id.clone(),
            abandoned_at: due.abandoned_at,
            step: due.step,
            due_at: at,
            due_bucket: due_bucket(at, &due.session_id),
            due_key: due_key(at, &due.session_id),
            expires_at: (at + Duration::days(DUE_RETENTION_DAYS)).timestamp(),
        }
    }
}

/// The index partition of a due time: `<YYYY-MM-DDTHH>#<shard>`.
pub fn due_bucket(at: DateTime<Utc>, session_id: &str) -> String {
    format!(
        "{}#{}",
        crate::ingest::hour_of(at),
        crate::ingest::shard_of(session_id) % DUE_SHARDS
    )
}

/// The index sort key: the due time (RFC 3339, milliseconds, so it sorts) and the session.
pub fn due_key(at: DateTime<Utc>, session_id: &str) -> String {
    format!("{}#{session_id}", rfc3339(at))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The upper bound of `due_key` for everything due at or before `now`.
pub fn due_key_until(now: DateTime<Utc>) -> String {
    format!("{}#\u{10FFFF}", rfc3339(now))
}

/// Whether a recovery decision was a holdout's: the recovery experiment's, or the universal holdout's.
/// Either ends the cart's sequence without a message.
pub fn held_out(d: &crate::event::DecisionServed) -> bool {
    d.variant.as_deref() == Some(HOLDOUT)
        || d.holdout
            .as_ref()
            .is_some_and(|h| h.variant == crate::event::HOLDOUT_VARIANT)
}

/// What a session's own events say about its sequence so far.
#[derive(Debug, Default)]
struct Progress {
    /// Recovery decisions by (basis, step): whether it sends a message.
    decided: BTreeMap<(DateTime<Utc>, u32), bool>,
    requested: BTreeSet<(DateTime<Utc>, u32)>,
    holdout: bool,
}

impl Progress {
    fn of(events: &[Event]) -> Self {
        let mut p = Progress::default();
        for e in events {
            match &e.body {
                EventBody::DecisionServed(d) => {
                    let Some(r) = &d.recovery else { continue };
                    if held_out(d) {
                        p.holdout = true;
                    }
                    p.decided
                        .insert((r.abandoned_at, r.step), d.action != "none");
                }
                EventBody::RecoveryMessageRequested(m) => {
                    p.requested
                        .insert((m.recovery.abandoned_at, m.recovery.step));
                }
                _ => {}
            }
        }
        p
    }

    fn done(&self, basis: DateTime<Utc>, step: u32) -> bool {
        match self.decided.get(&(basis, step)) {
            None => false,
            Some(sends) => !sends || self.requested.contains(&(basis, step)),
        }
    }
}

/// The next step due for the cart of the session whose events are `session_entries` (`None`: no cart,
/// an empty or ordered one, or a sequence that is over). The feature updater keeps the sweep's due
/// item at this; the sweep checks it again, with the user's other sessions, before it sends.
pub fn next_due(session_entries: &[LogEntry], settings: &RecoverySettings) -> Option<Due> {
    let events = ordered(session_entries);
    let session_id = events.first()?.session_id.clone();
    next_due_of(session_id, &events, settings)
}

pub(crate) fn next_due_of(
    session_id: String,
    events: &[Event],
    settings: &RecoverySettings,
) -> Option<Due> {
    let cart = cart_of(session_id, events)?;
    let basis = cart.abandoned_at(settings)?;
    let progress = Progress::of(events);
    if progress.holdout || progress.requested.len() >= settings.max_messages_per_cart {
        return None;
    }
    let step = (0..settings.steps.len()).find(|k| !progress.done(basis, *k as u32))?;
    Some(Due {
        session_id: cart.session_id,
        user_id: cart.user_id,
        abandoned_at: basis,
        step: step as u32,
        due_at: basis + settings.steps[step],
    })
}

/// What a session's events say its due item should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// The session never had a cart: no item.
    NoCart,
    /// Check the cart at this step's due time.
    Due(Due),
    /// The cart was ordered or emptied, or its sequence is over: no item (remove any).
    Over,
}

/// [`next_due`], telling a session without a cart from one whose sequence is over.
pub fn schedule(session_entries: &[LogEntry], settings: &RecoverySettings) -> Schedule {
    let events = ordered(session_entries);
    let Some(first) = events.first() else {
        return Schedule::NoCart;
    };
    if !events
        .iter()
        .any(|e| matches!(e.body, EventBody::CartItemAdded(_)))
    {
        return Schedule::NoCart;
    }
    match next_due_of(first.session_id.clone(), &events, settings) {
        Some(due) => Schedule::Due(due),
        None => Schedule::Over,
    }
}

/// Why a cart's sequence has nothing more to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneReason {
    /// The user ordered, in any session, at or after the cart's first add.
    OrderedSince,
    /// The cart is empty, or there is none.
    Emptied,
    /// Every step is done, the cart had its messages, or it is in the holdout.
    SequenceOver,
}

impl DoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DoneReason::OrderedSince => "ordered_since",
            DoneReason::Emptied => "emptied",
            DoneReason::SequenceOver => "sequence_over",
        }
    }
}

/// The check before a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Assessment {
    /// This step is due now.
    Send(Due),
    /// The next step falls due later (the first step of a restarted sequence, or a shopper active
    /// again whose cart is not yet abandoned).
    Wait(Due),
    Done {
        reason: DoneReason,
    },
}

/// The check before sending anything about the cart of `session_id`, at `now`: `user_entries` are the
/// events of that session and of the same pseudonymous user's other sessions, as known now.
pub fn assess(
    user_entries: &[LogEntry],
    session_id: &str,
    now: DateTime<Utc>,
    settings: &RecoverySettings,
) -> Assessment {
    let done = |reason| Assessment::Done { reason };
    let events = ordered(user_entries);
    let session: Vec<Event> = events
        .iter()
        .filter(|e| e.session_id == session_id)
        .cloned()
        .collect();
    let Some(cart) = cart_of(session_id.to_string(), &session) else {
        return done(DoneReason::Emptied);
    };
    let user = cart.user_id.as_deref();
    let ordered_since = events.iter().any(|e| {
        matches!(e.body, EventBody::OrderPlaced(_))
            && e.occurred_at >= cart.started_at
            && (e.session_id == session_id || (user.is_some() && e.user_id.as_deref() == user))
    });
    if ordered_since {
        return done(DoneReason::OrderedSince);
    }
    if cart.is_empty() {
        return done(DoneReason::Emptied);
    }
    match next_due_of(session_id.to_string(), &session, settings) {
        None => done(DoneReason::SequenceOver),
        Some(due) if due.due_at > now => Assessment::Wait(due),
        Some(due) => Assessment::Send(due),
    }
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

/// A user's recovery history, folded from their events in any order: consent, the messages requested
/// and what became of them, and the time zone they last sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The latest consent state per channel (`None`: every channel), with its (time, event id).
    consent: BTreeMap<Option<Channel>, (Stamp, bool)>,
    pub sent: Vec<Sent>,
    /// Outcomes per message id.
    pub outcomes: BTreeMap<String, BTreeSet<MessageOutcome>>,
    time_zone: Option<(Stamp, String)>,
}

/// When an event happened, with its id to break ties: the order "latest" means.
type Stamp = (DateTime<Utc>, String);

impl History {
    pub fn of(user_entries: &[LogEntry]) -> Self {
        let mut h = History::default();
        for e in ordered(user_entries) {
            let at = (e.occurred_at, e.event_id.clone());
            if let Some(tz) = &e.context.time_zone {
                if h.time_zone.as_ref().is_none_or(|(t, _)| *t < at) {
                    h.time_zone = Some((at.clone(), tz.clone()));
                }
            }
            match &e.body {
                EventBody::ConsentChanged(ConsentChanged {
                    channel, granted, ..
                }) => h.set_consent(*channel, at, *granted),
                EventBody::RecoveryMessageOutcome(o) => {
                    h.outcomes
                        .entry(o.message_id.clone())
                        .or_default()
                        .insert(o.outcome);
                    if o.outcome == MessageOutcome::Unsubscribed {
                        h.set_consent(Some(o.channel), at, false);
                    }
                }
                EventBody::RecoveryMessageRequested(m) => h.sent.push(Sent {
                    channel: m.channel,
                    at: e.occurred_at,
                    cart_session: e.session_id.clone(),
                }),
                _ => {}
            }
        }
        h
    }

    fn set_consent(&mut self, channel: Option<Channel>, at: Stamp, granted: bool) {
        let slot = self.consent.entry(channel).or_insert((at.clone(), granted));
        if slot.0 <= at {
            *slot = (at, granted);
        }
    }

    /// Whether the user may get a message on `channel`: the later of the channel's own and the
    /// every-channel consent state decides; with neither, only if consent is not required.
    pub fn may_message(&self, channel: Channel, require_consent: bool) -> bool {
        let own = self.consent.get(&Some(channel));
        let all = self.consent.get(&None);
        match (own, all) {
            (None, None) => !require_consent,
            (Some((_, g)), None) | (None, Some((_, g))) => *g,
            (Some((a, ga)), Some((b, gb))) => {
                if a >= b {
                    *ga
                } else {
                    *gb
                }
            }
        }
    }

    /// The time zone the user's events last named.
    pub fn time_zone(&self) -> Option<&str> {
        self.time_zone.as_ref().map(|(_, tz)| tz.as_str())
    }

    /// Whether any of the user's messages was answered by an unsubscribe.
    pub fn unsubscribed(&self) -> bool {
        self.outcomes
            .values()
            .any(|o| o.contains(&MessageOutcome::Unsubscribed))
    }
}

/// Local quiet hours: messages wait from `start` to `end` (wrapping midnight when `end` ≤ `start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    fn contains(&self, t: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// When quiet hours in `tz` end, if `at` falls in them (`None`: it may go now). The end is the next
/// local `end` time after `at`; on a day when that local time does not exist (a daylight-saving gap)
/// it is the first instant after the gap, and when it exists twice (the clocks go back) the earlier.
pub fn quiet_until<Tz: TimeZone>(
    at: DateTime<Utc>,
    tz: &Tz,
    quiet: &QuietHours,
) -> Option<DateTime<Utc>> {
    let local = at.with_timezone(tz).naive_local();
    if !quiet.contains(local.time()) {
        return None;
    }
    let mut date = local.date();
    if local.time() >= quiet.end {
        date = date.succ_opt()?;
    }
    let mut end = date.and_time(quiet.end);
    // A gap is at most a few hours: step forward until the local time exists.
    for _ in 0..=24 * 4 {
        if let Some(t) = tz.from_local_datetime(&end).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        end += Duration::minutes(15);
    }
    None
}

/// A stable id for the recovery decision of a step of a cart's sequence: a retried sweep decides the
/// same step under the same id (and so, with the same draws, the same way).
pub fn decision_id(session_id: &str, basis: DateTime<Utc>, step: u32) -> String {
    format!("rcv-{}", stable_hash("decision", session_id, basis, step))
}

/// The message id of a step: the outbound record's idempotency key and the requested event's id.
pub fn message_id(session_id: &str, basis: DateTime<Utc>, step: u32) -> String {
    format!("msg-{}", stable_hash("message", session_id, basis, step))
}

fn stable_hash(kind: &str, session_id: &str, basis: DateTime<Utc>, step: u32) -> String {
    let mut h = Sha256::new();
    for part in [
        kind,
        session_id,
        &basis.timestamp_millis().to_string(),
        &step.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}
