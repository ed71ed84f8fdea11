//! The risk model the scorer serves, trained on the simulator's transactions mapped to checkout-ai's
//! payments: a customer is a pseudonymous user paying with one card (a compromised card keeps its
//! fingerprint), a terminal is a device (a compromised terminal is a device in a fraud ring's hands), and
//! every fraud is labelled `label_delay` days after it happened (a `fraud_confirmed` event). The inputs
//! are computed by the scorer's own function ([`checkout_domain::risk::inputs::compute`]) over an index
//! that answers the same window questions as the stored risk profiles, just before each payment (the
//! decision comes before the attempt is logged).

use super::sim::{Simulation, DAY};
use checkout_domain::risk::inputs::{compute, History, Payment, Windows, WIDTH};
use checkout_domain::risk::signals::{RiskKey, SignalKind};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::HashMap;

/// One key's payments in time order: (time, fraud label time).
#[derive(Debug, Default, Clone)]
pub struct Index {
    at: Vec<DateTime<Utc>>,
    label_at: Vec<Option<DateTime<Utc>>>,
    card: Vec<u32>,
}

impl Index {
    fn window(&self, now: DateTime<Utc>, window: Duration) -> std::ops::Range<usize> {
        let lo = self.at.partition_point(|t| *t <= now - window);
        let hi = self.at.partition_point(|t| *t <= now);
        lo..hi
    }
}

impl Windows for Index {
    fn count(&self, kind: SignalKind, now: DateTime<Utc>, window: Duration) -> u32 {
        match kind {
            SignalKind::Attempt => self.window(now, window).len() as u32,
            // The simulator has no declines and no coupons.
            SignalKind::Decline | SignalKind::CouponRejected => 0,
        }
    }

    fn distinct_cards(&self, now: DateTime<Utc>, window: Duration) -> u32 {
        let mut cards: Vec<u32> = self.card[self.window(now, window)].to_vec();
        cards.sort_unstable();
        cards.dedup();
        cards.len() as u32
    }

    fn known_frauds(&self, now: DateTime<Utc>, window: Duration) -> (u32, u32) {
        let r = self.window(now, window);
        let known = self.label_at[r.clone()]
            .iter()
            .filter(|l| l.is_some_and(|l| l <= now))
            .count();
        (r.len() as u32, known as u32)
    }
}

/// The simulation's start, 2018-04-01T00:00:00Z.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2018, 4, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The serving inputs of the transactions at `wanted` (indices, any order), with labels arriving
/// `label_delay_days` after each fraud. Rows of the other transactions are left at zero (only their
/// histories are needed).
pub fn inputs(sim: &Simulation, label_delay_days: i64, wanted: &[usize]) -> Vec<[f64; WIDTH]> {
    let wanted: std::collections::HashSet<usize> = wanted.iter().copied().collect();
    let txs = &sim.transactions;
    let at = |s: i64| epoch() + Duration::seconds(s);
    let mut users: HashMap<u32, Index> = HashMap::new();
    let mut devices: HashMap<u32, Index> = HashMap::new();
    for t in txs {
        let label = t.fraud().then(|| at(t.seconds + label_delay_days * DAY));
        for (map, key) in [(&mut users, t.customer), (&mut devices, t.terminal)] {
            let idx = map.entry(key).or_default();
            idx.at.push(at(t.seconds));
            idx.label_at.push(label);
            idx.card.push(t.customer);
        }
    }
    // Each customer's order history before each of its transactions.
    let mut history: HashMap<u32, History> = HashMap::new();
    let empty = Index::default();
    txs.iter()
        .enumerate()
        .map(|(i, t)| {
            let value_minor = (t.amount * 100.0).round() as i64;
            if !wanted.contains(&i) {
                let h = history.entry(t.customer).or_default();
                h.orders += 1;
                h.revenue_minor += value_minor;
                return [0.0; WIDTH];
            }
            let now = at(t.seconds) - Duration::seconds(1);
            let user = users.get(&t.customer).unwrap_or(&empty);
            let device = devices.get(&t.terminal).unwrap_or(&empty);
            let profiles = |key: RiskKey| -> Option<&dyn Windows> {
                match key {
                    // One card per customer: the card's history is the user's.
                    RiskKey::User | RiskKey::Card => Some(user),
                    RiskKey::Device => Some(device),
                    RiskKey::Ip => None,
                }
            };
            let h = history.entry(t.customer).or_default();
            let row = compute(
                &profiles,
                *h,
                &Payment {
                    value_minor,
                    billing_country: None,
                    shipping_country: None,
                    ip_country: None,
                },
                now,
            );
            h.orders += 1;
            h.revenue_minor += value_minor;
            row
        })
        .collect()
}
