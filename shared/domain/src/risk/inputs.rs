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

    /// Everything [`compute`] reads of one key, as of `now`. The default asks the questions one by one;
    /// a stored profile answers them in one walk.
    fn summary(&self, now: DateTime<Utc>) -> Summary {
        let (minutes, hours, days) = (Duration::minutes, Duration::hours, Duration::days);
        Summary {
            attempts_10m: self.count(SignalKind::Attempt, now, minutes(10)),
            attempts_1h: self.count(SignalKind::Attempt, now, hours(1)),
            attempts_24h: self.count(SignalKind::Attempt, now, hours(24)),
            declines_1h: self.count(SignalKind::Decline, now, hours(1)),
            declines_24h: self.count(SignalKind::Decline, now, hours(24)),
            rejected_coupons_24h: self.count(SignalKind::CouponRejected, now, hours(24)),
            distinct_cards_24h: self.distinct_cards(now, hours(24)),
            frauds_14d: self.known_frauds(now, days(14)),
            frauds_30d: self.known_frauds(now, days(30)),
        }
    }
}

/// One key's window counts as of a decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub attempts_10m: u32,
    pub attempts_1h: u32,
    pub attempts_24h: u32,
    pub declines_1h: u32,
    pub declines_24h: u32,
    pub rejected_coupons_24h: u32,
    pub distinct_cards_24h: u32,
    /// (attempts, known frauds) over 14 and 30 days.
    pub frauds_14d: (u32, u32),
    pub frauds_30d: (u32, u32),
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

    /// One walk, newest first, stopping at 30 days.
    fn summary(&self, now: DateTime<Utc>) -> Summary {
        let since = |d: Duration| now - d;
        let (m10, h1, h24, d14, d30) = (
            since(Duration::minutes(10)),
            since(Duration::hours(1)),
            since(Duration::hours(24)),
            since(Duration::days(14)),
            since(Duration::days(30)),
        );
        let mut out = Summary::default();
        let mut cards: Vec<&str> = Vec::new();
        let first = self.signals.partition_point(|s| s.at > now);
        for s in self.signals[first..].iter().take_while(|s| s.at > d30) {
            let attempt = s.kind == SignalKind::Attempt;
            if attempt {
                let known = u32::from(s.fraud_label_at.is_some_and(|l| l <= now));
                out.frauds_30d.0 += 1;
                out.frauds_30d.1 += known;
                if s.at > d14 {
                    out.frauds_14d.0 += 1;
                    out.frauds_14d.1 += known;
                }
            }
            if s.at <= h24 {
                continue;
            }
            match s.kind {
                SignalKind::Attempt => {
                    out.attempts_24h += 1;
                    out.attempts_1h += u32::from(s.at > h1);
                    out.attempts_10m += u32::from(s.at > m10);
                }
                SignalKind::Decline => {
                    out.declines_24h += 1;
                    out.declines_1h += u32::from(s.at > h1);
                }
                SignalKind::CouponRejected => out.rejected_coupons_24h += 1,
            }
            if let Some(card) = s.card.as_deref() {
                if !cards.contains(&card) {
                    cards.push(card);
                }
            }
        }
        out.distinct_cards_24h = cards.len() as u32;
        out
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
    let of = |key| profiles(key).map(|p| p.summary(now)).unwrap_or_default();
    let (user, card, ip, device) = (
        of(RiskKey::User),
        of(RiskKey::Card),
        of(RiskKey::Ip),
        of(RiskKey::Device),
    );
    let share = |(n, f): (u32, u32)| {
        if n == 0 {
            0.0
        } else {
            f64::from(f) / f64::from(n)
        }
    };
    let log_count = |(_, f): (u32, u32)| f64::from(f).ln_1p();
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
        f64::from(user.attempts_10m),
        f64::from(user.declines_1h),
        f64::from(user.distinct_cards_24h),
        f64::from(user.rejected_coupons_24h),
        f64::from(card.attempts_1h),
        f64::from(card.declines_24h),
        share(card.frauds_30d),
        log_count(card.frauds_30d),
        f64::from(ip.attempts_1h),
        f64::from(ip.distinct_cards_24h),
        f64::from(device.attempts_24h),
        share(device.frauds_30d),
        log_count(device.frauds_30d),
        log_count(device.frauds_14d),
        share(device.frauds_14d),
        f64::from(device.frauds_30d.0),
        differ(&payment.billing_country, &payment.shipping_country),
        differ(&payment.billing_country, &payment.ip_country),
        f64::from(u8::from(now.hour() <= 6)),
    ]
}
