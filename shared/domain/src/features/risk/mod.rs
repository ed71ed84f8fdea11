//! The risk projections: each session's payment signals per user, card, IP and device
//! ([`RiskContribution`]), folded into one [`RiskFeatures`] per key like the other aggregates. The signal
//! types and the windows read from them are in [`signals`].

pub mod signals;

use super::aggregate::Contribution;
use crate::event::{CouponOutcome, Event, EventBody, ReviewTransition};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use signals::{RiskKey, RiskProfile, Signal, SignalKind};
use std::collections::BTreeMap;

/// What one session contributes to one key's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskContribution {
    pub key: RiskKey,
    pub id: String,
    pub session_id: String,
    pub event_count: u32,
    pub signals: Vec<Signal>,
    pub expires_at: i64,
}

/// One key's profile (`risk#<key>#<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskFeatures {
    pub key: RiskKey,
    pub id: String,
    pub sessions: u32,
    pub profile: RiskProfile,
    pub expires_at: i64,
}

impl Contribution for RiskContribution {
    type Aggregate = RiskFeatures;

    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn event_count(&self) -> u32 {
        self.event_count
    }

    fn event_count_mut(&mut self) -> &mut u32 {
        &mut self.event_count
    }

    fn empty(&self) -> RiskFeatures {
        RiskFeatures {
            key: self.key,
            id: self.id.clone(),
            sessions: 0,
            profile: RiskProfile::default(),
            expires_at: self.expires_at,
        }
    }

    /// The session's earlier signals out, its current ones in (a later fold can know more of the same
    /// event: a declined attempt's card, a label).
    fn apply(&self, old: Option<&Self>, agg: &mut RiskFeatures) {
        match old {
            None => agg.sessions += 1,
            Some(old) => agg
                .profile
                .remove(&old.signals.iter().map(|s| s.event_id.as_str()).collect()),
        }
        agg.profile.add(&self.signals);
        agg.expires_at = agg.expires_at.max(self.expires_at);
    }
}

/// Whether a session event labels the session's paid attempts as fraud.
fn fraud_label(body: &EventBody) -> bool {
    match body {
        EventBody::ChargebackReceived(c) => c.fraud,
        EventBody::FraudConfirmed(_) => true,
        EventBody::ReviewUpdated(r) => r.transition == ReviewTransition::Rejected,
        _ => false,
    }
}

/// The risk contributions of one session's events (sorted by time), one per key it touched.
pub fn contributions(
    events: &[&(Event, i64)],
    session_id: &str,
    event_count: u32,
    expires_at: i64,
) -> Vec<RiskContribution> {
    let label_at: Option<DateTime<Utc>> = events
        .iter()
        .filter(|(e, _)| fraud_label(&e.body))
        .map(|(e, _)| e.occurred_at)
        .min();
    // Attempt id → card, for declines (which name the attempt, not the card).
    let cards: BTreeMap<&str, &str> = events
        .iter()
        .filter_map(|(e, _)| match &e.body {
            EventBody::PaymentAttempted(p) => p
                .card_fingerprint
                .as_deref()
                .map(|c| (p.payment_attempt_id.as_str(), c)),
            _ => None,
        })
        .collect();
    let declined: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|(e, _)| match &e.body {
            EventBody::PaymentDeclined(d) => Some(d.payment_attempt_id.as_str()),
            _ => None,
        })
        .collect();
    let mut out: BTreeMap<(RiskKey, String), Vec<Signal>> = BTreeMap::new();
    for (event, _) in events {
        let (kind, card, paid) = match &event.body {
            EventBody::PaymentAttempted(p) => (
                SignalKind::Attempt,
                p.card_fingerprint.as_deref(),
                !declined.contains(p.payment_attempt_id.as_str()),
            ),
            EventBody::PaymentDeclined(d) => (
                SignalKind::Decline,
                cards.get(d.payment_attempt_id.as_str()).copied(),
                false,
            ),
            EventBody::CouponApplied(c) if c.outcome == CouponOutcome::Rejected => {
                (SignalKind::CouponRejected, None, false)
            }
            _ => continue,
        };
        let signal = Signal {
            at: event.occurred_at,
            event_id: event.event_id.clone(),
            kind,
            card: card.map(str::to_string),
            fraud_label_at: if paid { label_at } else { None },
        };
        let keys = [
            (RiskKey::User, event.user_id.as_deref()),
            (RiskKey::Card, card),
            (RiskKey::Ip, event.context.ip.as_deref()),
            (
                RiskKey::Device,
                event.context.device.as_ref().and_then(|d| d.id.as_deref()),
            ),
        ];
        for (key, id) in keys {
            if let Some(id) = id {
                out.entry((key, id.to_string()))
                    .or_default()
                    .push(signal.clone());
            }
        }
    }
    out.into_iter()
        .map(|((key, id), signals)| RiskContribution {
            key,
            id,
            session_id: session_id.to_string(),
            event_count,
            signals,
            expires_at,
        })
        .collect()
}
