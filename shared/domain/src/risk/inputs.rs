//! The risk model's inputs, read at decision time from the risk profiles (velocity and known frauds per
//! user, card, IP and device), the user's history and the payment itself. One function computes them
//! for serving and for training, over anything that answers the window questions ([`Windows`]): the
//! stored [`RiskProfile`]s in the scorer, an index over simulated transactions in the benchmark.

use crate::features::risk::signals::{RiskKey, RiskProfile, SignalKind};
use chrono::{DateTime, Duration, Timelike, Utc};

/// What a key's history answers. Every window is `(now − window, now]`, by event time.
pub trait Windows {
    fn count(&self, kind: SignalKind, now: DateTime<Utc>, window: Duration) -> u32;
    fn distinct_cards(&self, now: DateTime<Utc>, window: Duration) -> u32;
    /// Attempts in the window, and how many of them were labelled fraud by `now`.
    fn known_frauds(&self, now: DateTime<Utc>, window: Duration) -> (u32, u32);
}

impl Windows for RiskProfile {
    fn count(&self, kind: SignalKind, now: DateTime<Utc>, window: Duration) -> u32 {
        RiskProfile::count(self, kind, now, window)
    }
    fn distinct_cards(&self, now: DateTime<Utc>, window: Duration) -> u32 {
        RiskProfile::distinct_cards(self, now, window)
    }
    fn known_frauds(&self, now: DateTime<Utc>, window: Duration) -> (u32, u32) {
        RiskProfile::known_frauds(self, now, window)
    }
}

/// The payment being assessed.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub value_minor: i64,
    pub billing_country: Option<String>,
    pub shipping_country: Option<String>,
    /// The country of the request's IP (the decision request's `country`).
    pub ip_country: Option<String>,
}

/// The user's order history, from the user aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct History {
    pub orders: u32,
    /// Revenue in the payment's currency, minor units.
    pub revenue_minor: i64,
}

/// The inputs by name, in the model's order. The account's age is projected (the user aggregate's
/// `first_seen_at`) but is not an input: the simulator the model is trained on has no new accounts, so a
/// weight for it would be learnt from nothing and extrapolated at serving.
pub const NAMES: [&str; 22] = [
    "amount",
    "log_amount",
    "amount_over_user_mean_order",
    "user_attempts_10m",
    "user_declines_1h",
    "user_distinct_cards_24h",
    "user_rejected_coupons_24h",
    "card_attempts_1h",
    "card_declines_24h",
    "card_known_fraud_share_30d",
    "log_card_known_frauds_30d",
    "ip_attempts_1h",
    "ip_distinct_cards_24h",
    "device_attempts_24h",
    "device_known_fraud_share_30d",
    "log_device_known_frauds_30d",
    "log_device_known_frauds_14d",
    "device_known_fraud_share_14d",
    "device_attempts_30d",
    "billing_shipping_mismatch",
    "billing_ip_mismatch",
    "night",
];

pub const WIDTH: usize = NAMES.len();

/// The inputs of `payment` at `now`. A key without a profile reads as no history (zero counts).
pub fn compute<'p>(
    profiles: &dyn Fn(RiskKey) -> Option<&'p dyn Windows>,
    history: History,
    payment: &Payment,
    now: DateTime<Utc>,
) -> [f64; WIDTH] {
    let minutes = Duration::minutes;
    let hours = Duration::hours;
    let days = Duration::days;
    let count =
        |key, kind, window| profiles(key).map_or(0.0, |p| f64::from(p.count(kind, now, window)));
    let cards =
        |key, window| profiles(key).map_or(0.0, |p| f64::from(p.distinct_cards(now, window)));
    // (share, log(1 + count)) of the attempts of the last `d` days known to be fraud.
    let frauds_in = |key, d| {
        profiles(key).map_or((0.0, 0.0), |p| {
            let (n, f) = p.known_frauds(now, days(d));
            let share = if n == 0 {
                0.0
            } else {
                f64::from(f) / f64::from(n)
            };
            (share, f64::from(f).ln_1p())
        })
    };
    let (card_share, card_frauds) = frauds_in(RiskKey::Card, 30);
    let (device_share, device_frauds) = frauds_in(RiskKey::Device, 30);
    let (device_recent_share, device_recent_frauds) = frauds_in(RiskKey::Device, 14);
    let value = payment.value_minor.max(0) as f64 / 100.0;
    let mean_order = (history.orders > 0)
        .then(|| history.revenue_minor as f64 / 100.0 / f64::from(history.orders))
        .filter(|m| *m > 0.0);
    let differ = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => f64::from(u8::from(a != b)),
        _ => 0.0,
    };
    [
        value,
        value.ln_1p(),
        mean_order.map_or(1.0, |m| value / m),
        count(RiskKey::User, SignalKind::Attempt, minutes(10)),
        count(RiskKey::User, SignalKind::Decline, hours(1)),
        cards(RiskKey::User, hours(24)),
        count(RiskKey::User, SignalKind::CouponRejected, hours(24)),
        count(RiskKey::Card, SignalKind::Attempt, hours(1)),
        count(RiskKey::Card, SignalKind::Decline, hours(24)),
        card_share,
        card_frauds,
        count(RiskKey::Ip, SignalKind::Attempt, hours(1)),
        cards(RiskKey::Ip, hours(24)),
        count(RiskKey::Device, SignalKind::Attempt, hours(24)),
        device_share,
        device_frauds,
        device_recent_frauds,
        device_recent_share,
        count(RiskKey::Device, SignalKind::Attempt, days(30)),
        differ(&payment.billing_country, &payment.shipping_country),
        differ(&payment.billing_country, &payment.ip_country),
        f64::from(u8::from(now.hour() <= 6)),
    ]
}
