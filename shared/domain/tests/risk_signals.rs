//! Risk signals: a profile is the same whatever order its signals arrive in and however often, and an
//! input read at a time never counts a label that arrived later.

use checkout_domain::risk::signals::{RiskProfile, Signal, SignalKind, HISTORY_DAYS, MAX_SIGNALS};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time")
}

fn signal(i: usize, (minute, kind, card, label): (u32, u8, u8, Option<u16>)) -> Signal {
    let at = start() + Duration::minutes(i64::from(minute));
    Signal {
        at,
        event_id: format!("e{i}"),
        kind: [
            SignalKind::Attempt,
            SignalKind::Decline,
            SignalKind::CouponRejected,
        ][usize::from(kind % 3)],
        card: (card % 4 != 0).then(|| format!("c{}", card % 4)),
        fraud_label_at: label.map(|m| at + Duration::minutes(i64::from(m) * 60)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Minutes span ~70 days, so the 30-day history trims; 400 signals exceed the cap.
    #[test]
    fn any_order_and_any_repetition_give_the_same_profile(
        specs in prop::collection::vec((0u32..100_000, any::<u8>(), any::<u8>(), prop::option::of(0u16..2000)), 1..400),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        cuts in prop::collection::vec(1usize..50, 1..20),
    ) {
        let signals: Vec<Signal> = specs.iter().enumerate().map(|(i, s)| signal(i, *s)).collect();
        let mut once = RiskProfile::default();
        once.add(&signals);

        // Shuffled (seeded by the case), with every fifth signal twice, added in batches.
        let mut shuffled: Vec<Signal> = signals.clone();
        shuffled.extend(signals.iter().step_by(5).cloned());
        let mut state = order;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let mut batched = RiskProfile::default();
        let mut rest = &shuffled[..];
        let mut k = 0;
        while !rest.is_empty() {
            let take = cuts[k % cuts.len()].min(rest.len());
            batched.add(&rest[..take]);
            rest = &rest[take..];
            k += 1;
        }
        prop_assert_eq!(&batched, &once);
        let again = { let mut p = once.clone(); p.add(&signals); p };
        prop_assert_eq!(&again, &once);
        prop_assert!(once.signals.len() <= MAX_SIGNALS);
        if let Some(latest) = once.latest_at() {
            prop_assert!(once.signals.iter().all(|s| s.at > latest - Duration::days(HISTORY_DAYS)));
        }
    }
}

#[test]
fn windows_count_by_event_time_and_labels_only_once_arrived() {
    let at = |m: i64| start() + Duration::minutes(m);
    let s = |i: usize, m: i64, kind, card: Option<&str>, label: Option<i64>| Signal {
        at: at(m),
        event_id: format!("e{i}"),
        kind,
        card: card.map(str::to_string),
        fraud_label_at: label.map(at),
    };
    let mut p = RiskProfile::default();
    p.add(&[
        s(0, 0, SignalKind::Attempt, Some("c1"), Some(60 * 24 * 10)),
        s(1, 50, SignalKind::Attempt, Some("c2"), None),
        s(2, 55, SignalKind::Decline, Some("c2"), None),
        s(3, 59, SignalKind::Attempt, Some("c3"), Some(60)),
    ]);
    let now = at(60);
    assert_eq!(
        p.count(SignalKind::Attempt, now, Duration::minutes(10)),
        1,
        "(50, 60]"
    );
    assert_eq!(
        p.count(SignalKind::Attempt, now, Duration::hours(1)),
        2,
        "(now − 1h, now]"
    );
    assert_eq!(p.count(SignalKind::Attempt, now, Duration::hours(2)), 3);
    assert_eq!(p.count(SignalKind::Decline, now, Duration::hours(1)), 1);
    assert_eq!(p.distinct_cards(now, Duration::hours(2)), 3);
    // At minute 60, only the label that arrived at minute 60 is known; the one of day 10 is not yet.
    assert_eq!(p.known_frauds(now, Duration::days(30)), (3, 1));
    assert_eq!(p.known_frauds(at(60 * 24 * 10), Duration::days(30)), (3, 2));
    // A later fold of the same event replaces it: here, its label arrived.
    let mut relabelled = p.clone();
    relabelled.add(&[s(1, 50, SignalKind::Attempt, Some("c2"), Some(120))]);
    assert_eq!(relabelled.known_frauds(at(120), Duration::days(30)), (3, 2));
    assert_eq!(relabelled.signals.len(), 4);
}

/// The stored profile's one-walk summary against the questions asked one by one (the trait's default).
#[test]
fn the_one_walk_summary_equals_the_questions_one_by_one() {
    use checkout_domain::risk::inputs::Windows;
    struct OneByOne<'a>(&'a RiskProfile);
    impl Windows for OneByOne<'_> {
        fn count(&self, kind: SignalKind, now: DateTime<Utc>, window: Duration) -> u32 {
            self.0.count(kind, now, window)
        }
        fn distinct_cards(&self, now: DateTime<Utc>, window: Duration) -> u32 {
            self.0.distinct_cards(now, window)
        }
        fn known_frauds(&self, now: DateTime<Utc>, window: Duration) -> (u32, u32) {
            self.0.known_frauds(now, window)
        }
    }
    let mut rng = checkout_domain::ope::SplitMix64(11);
    for case in 0..300 {
        let n = (rng.uniform() * 300.0) as usize;
        let signals: Vec<Signal> = (0..n)
            .map(|i| {
                let minute = (rng.uniform() * 60.0 * 24.0 * 40.0) as u32;
                let spec = (
                    minute,
                    (rng.uniform() * 3.0) as u8,
                    (rng.uniform() * 8.0) as u8,
                    (rng.uniform() < 0.3).then(|| (rng.uniform() * 400.0) as u16),
                );
                signal(i, spec)
            })
            .collect();
        let mut p = RiskProfile::default();
        p.add(&signals);
        let now = start() + Duration::minutes((rng.uniform() * 60.0 * 24.0 * 45.0) as i64);
        assert_eq!(
            Windows::summary(&p, now),
            OneByOne(&p).summary(now),
            "case {case}"
        );
    }
}
