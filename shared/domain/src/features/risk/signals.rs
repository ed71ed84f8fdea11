//! Risk signals: what payment activity each pseudonymous user, card, IP and device has shown, as a
//! projection of the event log, and the velocity and label-based inputs read from it at decision time.
//!
//! A [`RiskProfile`] is the set of [`Signal`]s of one key (each a payment attempt, decline or rejected
//! coupon, identified by its event id), kept for [`HISTORY_DAYS`] before the profile's latest signal and
//! at most [`MAX_SIGNALS`] of them, newest first. A set trimmed by a rule of the set's own maximum is the
//! same whatever order its signals arrived in, and adding a signal twice changes nothing: the projection
//! is any-order and idempotent like the other aggregates. A signal carries the time of the first fraud
//! label of its order (`fraud_label_at`, from `chargeback_received {fraud: true}`, `fraud_confirmed` or a
//! rejected review): an input that counts known frauds reads only labels that had arrived by the decision
//! time, so a label from the future never reaches a decision or a training row.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How far back a profile keeps signals.
pub const HISTORY_DAYS: i64 = 30;
/// At most this many signals per profile (a shared IP can see thousands a day; the newest are kept).
pub const MAX_SIGNALS: usize = 256;

/// What a profile is keyed by.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RiskKey {
    User,
    Card,
    Ip,
    Device,
}

impl RiskKey {
    pub const ALL: [RiskKey; 4] = [RiskKey::User, RiskKey::Card, RiskKey::Ip, RiskKey::Device];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskKey::User => "user",
            RiskKey::Card => "card",
            RiskKey::Ip => "ip",
            RiskKey::Device => "device",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Attempt,
    Decline,
    CouponRejected,
}

/// One payment-related event of a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Signal {
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub kind: SignalKind,
    /// The card's pseudonymous fingerprint, on attempts that named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// When the attempt's order was first labelled fraud, if it has been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraud_label_at: Option<DateTime<Utc>>,
}

/// The signals of one key, newest first, within the history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskProfile {
    pub signals: Vec<Signal>,
}

impl RiskProfile {
    /// Adds `signals`, replacing a signal held under the same event id (a later fold of its session knows
    /// more: the card of a declined attempt, a label, a decline that unmakes a payment), then trims to the
    /// history and the cap. An event's time never changes, so the trim only ever moves forward.
    pub fn add<'a>(&mut self, signals: impl IntoIterator<Item = &'a Signal>) {
        let mut by_id: std::collections::BTreeMap<String, Signal> = self
            .signals
            .drain(..)
            .map(|s| (s.event_id.clone(), s))
            .collect();
        for s in signals {
            by_id.insert(s.event_id.clone(), s.clone());
        }
        let mut all: Vec<Signal> = by_id.into_values().collect();
        all.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.event_id.cmp(&b.event_id)));
        if let Some(latest) = all.first().map(|s| s.at) {
            let floor = latest - Duration::days(HISTORY_DAYS);
            all.retain(|s| s.at > floor);
        }
        all.truncate(MAX_SIGNALS);
        self.signals = all;
    }

    /// Removes the signals with these event ids (erasure).
    pub fn remove(&mut self, event_ids: &BTreeSet<&str>) {
        self.signals
            .retain(|s| !event_ids.contains(s.event_id.as_str()));
    }

    pub fn latest_at(&self) -> Option<DateTime<Utc>> {
        self.signals.first().map(|s| s.at)
    }

    /// Signals of `kind` in `(now − window, now]`.
    pub fn count(&self, kind: SignalKind, now: DateTime<Utc>, window: Duration) -> u32 {
        self.in_window(now, window)
            .filter(|s| s.kind == kind)
            .count() as u32
    }

    /// Distinct cards attempted in `(now − window, now]`.
    pub fn distinct_cards(&self, now: DateTime<Utc>, window: Duration) -> u32 {
        let mut seen: Vec<&str> = Vec::new();
        for card in self
            .in_window(now, window)
            .filter_map(|s| s.card.as_deref())
        {
            if !seen.contains(&card) {
                seen.push(card);
            }
        }
        seen.len() as u32
    }

    /// Attempts in `(now − window, now]` and how many of them were known to be fraud at `now`.
    pub fn known_frauds(&self, now: DateTime<Utc>, window: Duration) -> (u32, u32) {
        let (mut attempts, mut frauds) = (0, 0);
        for s in self
            .in_window(now, window)
            .filter(|s| s.kind == SignalKind::Attempt)
        {
            attempts += 1;
            frauds += u32::from(s.fraud_label_at.is_some_and(|l| l <= now));
        }
        (attempts, frauds)
    }

    /// The signals in `(now − window, now]`: newest first, so the walk stops at the window's start.
    fn in_window(&self, now: DateTime<Utc>, window: Duration) -> impl Iterator<Item = &Signal> {
        let from = now - window;
        let first = self.signals.partition_point(|s| s.at > now);
        self.signals[first..]
            .iter()
            .take_while(move |s| s.at > from)
    }
}
