//! Abandoned-cart recovery's core decisions: when a cart is abandoned, when its steps fall due, and the
//! check before each send, never after an order; the same whatever the events' arrival order and
//! duplicates.

use checkout_domain::event::*;
use checkout_domain::ingest::LogEntry;
use checkout_domain::recovery::{
    cap, carts, check, CancelReason, CapVerdict, Caps, Channel, RecoverySettings, Sent, Verdict,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 28, 20, 0, 0).unwrap()
}

fn usd(minor: i64) -> Money {
    Money {
        amount_minor: minor,
        currency: "USD".into(),
    }
}

fn entry(id: &str, session: &str, user: Option<&str>, minutes: i64, body: EventBody) -> LogEntry {
    let e = Event {
        event_id: id.into(),
        schema_version: 3,
        occurred_at: t0() + Duration::minutes(minutes),
        session_id: session.into(),
        user_id: user.map(str::to_string),
        context: Context::default(),
        body,
    };
    LogEntry::of(&e, i64::MAX).unwrap()
}

fn add(product: &str, quantity: u32) -> EventBody {
    EventBody::CartItemAdded(CartItemAdded {
        product_id: product.into(),
        quantity,
        unit_price: usd(1000),
        category_id: None,
        category_code: None,
        brand: None,
    })
}

fn remove(product: &str, quantity: u32) -> EventBody {
    EventBody::CartItemRemoved(CartItemRemoved {
        product_id: product.into(),
        quantity,
    })
}

fn view(product: &str) -> EventBody {
    EventBody::ProductViewed(ProductViewed {
        product_id: product.into(),
        category_id: None,
        category_code: None,
        brand: None,
        price: None,
    })
}

fn order(id: &str) -> EventBody {
    EventBody::OrderPlaced(OrderPlaced {
        order_id: id.into(),
        total: usd(1000),
        lines: vec![OrderLine {
            product_id: "p1".into(),
            quantity: 1,
            unit_price_minor: 1000,
        }],
        email: None,
    })
}

const U: Option<&str> = Some("u_1");

#[test]
fn a_cart_left_idle_is_abandoned_and_its_steps_fall_due_after_it() {
    let s = RecoverySettings::default();
    let log = vec![
        entry("e1", "s1", U, 0, view("p1")),
        entry("e2", "s1", U, 2, add("p1", 1)),
        entry("e3", "s1", U, 5, view("p2")),
    ];
    let cart = &carts(&log)[0];
    let abandoned = t0() + Duration::minutes(5 + 60);
    assert_eq!(cart.abandoned_at(&s), Some(abandoned));
    let steps = cart.steps(&s);
    assert_eq!(
        steps,
        vec![
            abandoned + Duration::hours(1),
            abandoned + Duration::hours(24),
            abandoned + Duration::hours(72)
        ]
    );
    // Not due a minute before; due at the step; a fourth step does not exist.
    let before = steps[0] - Duration::minutes(1);
    assert_eq!(
        check(&log, "s1", abandoned, 0, before, &s),
        Verdict::NotYet { due_at: steps[0] }
    );
    assert_eq!(check(&log, "s1", abandoned, 0, steps[0], &s), Verdict::Send);
    assert_eq!(check(&log, "s1", abandoned, 2, steps[2], &s), Verdict::Send);
    assert_eq!(
        check(&log, "s1", abandoned, 3, steps[2], &s),
        Verdict::Cancelled {
            reason: CancelReason::NoSuchStep
        }
    );
}

#[test]
fn an_order_since_the_cart_in_any_session_cancels_and_an_earlier_one_does_not() {
    let s = RecoverySettings::default();
    let base = vec![
        entry("e1", "s1", U, 0, add("p1", 1)),
        entry("old", "s0", U, -600, order("o0")),
    ];
    let abandoned = t0() + Duration::minutes(60);
    let due = abandoned + Duration::hours(24);
    assert_eq!(
        check(&base, "s1", abandoned, 1, due, &s),
        Verdict::Send,
        "an order before the cart does not count"
    );
    for (session, minutes) in [("s1", 30), ("s2", 90), ("s2", 0)] {
        let mut log = base.clone();
        log.push(entry("o", session, U, minutes, order("o1")));
        let v = check(&log, "s1", abandoned, 1, due, &s);
        assert_eq!(
            v,
            Verdict::Cancelled {
                reason: CancelReason::OrderedSince
            },
            "order in {session} at +{minutes} min"
        );
    }
    // Another user's order in another session does not cancel this one's.
    let mut log = base.clone();
    log.push(entry("o", "s9", Some("u_2"), 90, order("o1")));
    assert_eq!(check(&log, "s1", abandoned, 1, due, &s), Verdict::Send);
}

#[test]
fn an_emptied_cart_cancels_a_changed_one_restarts_and_activity_postpones() {
    let s = RecoverySettings::default();
    let log = vec![
        entry("e1", "s1", U, 0, add("p1", 2)),
        entry("e2", "s1", U, 1, add("p2", 1)),
    ];
    let abandoned = t0() + Duration::minutes(61);
    let due = abandoned + Duration::hours(1);
    assert_eq!(check(&log, "s1", abandoned, 0, due, &s), Verdict::Send);
    // Emptied (in any order of removals): cancelled.
    let mut emptied = log.clone();
    emptied.push(entry("r1", "s1", U, 100, remove("p2", 1)));
    emptied.push(entry("r2", "s1", U, 101, remove("p1", 5)));
    assert_eq!(
        check(&emptied, "s1", abandoned, 0, due + Duration::hours(5), &s),
        Verdict::Cancelled {
            reason: CancelReason::Emptied
        }
    );
    // Changed and left again: the sequence restarts from the new abandonment.
    let mut changed = log.clone();
    changed.push(entry("a3", "s1", U, 100, add("p3", 1)));
    let later = t0() + Duration::minutes(100 + 60);
    assert_eq!(
        check(&changed, "s1", abandoned, 0, later + Duration::hours(1), &s),
        Verdict::Restart {
            abandoned_at: later
        }
    );
    // Active again and not yet idle: not yet.
    let mut active = log.clone();
    active.push(entry("v", "s1", U, 110, view("p9")));
    let now = t0() + Duration::minutes(130);
    assert_eq!(
        check(&active, "s1", abandoned, 0, now, &s),
        Verdict::NotYet {
            due_at: t0() + Duration::minutes(110 + 60) + Duration::hours(1)
        }
    );
}

#[test]
fn channel_caps_defer_and_the_cart_cap_stops() {
    let caps = Caps::default();
    let sent = |channel, hours: i64, cart: &str| Sent {
        channel,
        at: t0() + Duration::hours(hours),
        cart_session: cart.into(),
    };
    let now = t0() + Duration::hours(20);
    // One e-mail 10 h ago (another cart): the next e-mail waits until 16 h after it; an SMS may go.
    let log = vec![sent(Channel::Email, 10, "s0")];
    assert_eq!(
        cap(&log, Channel::Email, "s1", now, &caps),
        CapVerdict::DeferUntil {
            at: t0() + Duration::hours(26)
        }
    );
    assert_eq!(
        cap(&log, Channel::Sms, "s1", now, &caps),
        CapVerdict::Allowed
    );
    assert_eq!(
        cap(
            &log,
            Channel::Email,
            "s1",
            t0() + Duration::hours(26),
            &caps
        ),
        CapVerdict::Allowed,
        "exactly at the cap's end"
    );
    // The latest message decides, whatever the order they are listed in.
    let log = vec![sent(Channel::Sms, 15, "s0"), sent(Channel::Sms, 1, "s0")];
    assert_eq!(
        cap(&log, Channel::Sms, "s1", now, &caps),
        CapVerdict::DeferUntil {
            at: t0() + Duration::hours(39)
        }
    );
    // Three messages about this cart: no fourth, on any channel.
    let log = vec![
        sent(Channel::Email, -100, "s1"),
        sent(Channel::Sms, -60, "s1"),
        sent(Channel::Email, -30, "s1"),
    ];
    for channel in [Channel::Email, Channel::Sms] {
        assert_eq!(
            cap(&log, channel, "s1", now, &caps),
            CapVerdict::CartCapReached
        );
    }
    assert_eq!(
        cap(&log, Channel::Email, "s2", now, &caps),
        CapVerdict::Allowed
    );
}

/// (session 0..2, minute, kind, product)
type Spec = (u8, u16, u8, u8);

fn events(specs: &[Spec]) -> Vec<LogEntry> {
    specs
        .iter()
        .enumerate()
        .map(|(i, (session, minute, kind, product))| {
            let p = format!("p{}", product % 3);
            let body = match kind % 6 {
                0 | 1 => add(&p, u32::from(product % 2) + 1),
                2 => remove(&p, 1),
                3 => view(&p),
                4 => order(&format!("o{i}")),
                _ => view("p9"),
            };
            entry(
                &format!("e{i}"),
                &format!("s{}", session % 2),
                U,
                i64::from(*minute),
                body,
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any arrival order, with duplicates, gives the same carts and the same verdicts; and no step of any
    /// cart is ever sent when the user ordered at or after the cart's first add.
    #[test]
    fn order_and_duplicates_change_nothing_and_nothing_is_sent_after_an_order(
        specs in prop::collection::vec((0u8..2, 0u16..3000, any::<u8>(), any::<u8>()), 1..30),
        shuffle in any::<u64>(),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        probes in prop::collection::vec((0u16..9000, 0usize..3), 1..12),
    ) {
        let s = RecoverySettings::default();
        let log = events(&specs);
        // Another arrival: shuffled (a fixed permutation from the seed) with duplicates.
        let mut other = log.clone();
        let n = other.len();
        let mut state = shuffle | 1;
        for i in (1..n).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            other.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for d in &dups {
            other.push(log[d.index(n)].clone());
        }
        prop_assert_eq!(carts(&log), carts(&other));
        for cart in carts(&log) {
            let Some(basis) = cart.abandoned_at(&s) else { continue };
            let ordered_after_start = log.iter().filter_map(|e| e.event().ok()).any(|e| {
                matches!(e.body, EventBody::OrderPlaced(_)) && e.occurred_at >= cart.started_at
            });
            for (minute, step) in &probes {
                let now = t0() + Duration::minutes(i64::from(*minute));
                let v = check(&log, &cart.session_id, basis, *step, now, &s);
                prop_assert_eq!(&v, &check(&other, &cart.session_id, basis, *step, now, &s));
                if ordered_after_start {
                    prop_assert!(v != Verdict::Send, "sent after an order: {:?}", cart);
                }
            }
        }
    }
}
