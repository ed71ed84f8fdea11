//! Abandoned-cart recovery's core decisions: when a cart is abandoned, when its steps fall due, and the
//! check before each send, never after an order; the same whatever the events' arrival order and
//! duplicates.

use checkout_domain::event::*;
use checkout_domain::ingest::LogEntry;
use checkout_domain::recovery::{
    assess, cap, carts, next_due, quiet_until, schedule, Assessment, CapVerdict, Caps, DoneReason,
    Due, History, QuietHours, RecoverySettings, Schedule, Sent,
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
        schema_version: 4,
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
        unit_cost_minor: None,
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

fn due(log: &[LogEntry]) -> Option<Due> {
    next_due(log, &RecoverySettings::default())
}

fn decision(
    session: &str,
    minutes: i64,
    basis: DateTime<Utc>,
    step: u32,
    action: &str,
    variant: &str,
) -> LogEntry {
    let d = DecisionServed {
        decision_id: format!("d-{session}-{step}-{minutes}"),
        placement: "recovery".into(),
        action: action.into(),
        experiment_id: Some("cart-recovery".into()),
        variant: Some(variant.into()),
        propensity: 1.0,
        action_key: Some(action.into()),
        policy: Some(PolicyRef {
            id: "configured-uplift".into(),
            version: "rules-1".into(),
        }),
        eligible: vec![ActionProbability {
            action: action.into(),
            probability: 1.0,
            cost_minor: 0,
        }],
        // Degraded, so that the test need not invent the model's inputs.
        degraded: true,
        recovery: Some(RecoveryStep {
            abandoned_at: basis,
            step,
        }),
        ..DecisionServed::default()
    };
    entry(
        &format!("d-{session}-{step}-{minutes}"),
        session,
        U,
        minutes,
        EventBody::DecisionServed(Box::new(d)),
    )
}

fn requested(session: &str, minutes: i64, basis: DateTime<Utc>, step: u32) -> LogEntry {
    entry(
        &format!("m-{session}-{step}-{minutes}"),
        session,
        U,
        minutes,
        EventBody::RecoveryMessageRequested(RecoveryMessageRequested {
            message_id: format!("m-{session}-{step}-{minutes}"),
            decision_id: "d".into(),
            action_key: "reminder".into(),
            channel: Channel::Email,
            recovery: RecoveryStep {
                abandoned_at: basis,
                step,
            },
            due_at: basis,
        }),
    )
}

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
    let first = due(&log).unwrap();
    assert_eq!((first.abandoned_at, first.step), (abandoned, 0));
    assert_eq!(first.due_at, abandoned + Duration::hours(1));
    // Not due a minute before; due at the step.
    let before = first.due_at - Duration::minutes(1);
    assert_eq!(
        assess(&log, "s1", before, &s),
        Assessment::Wait(first.clone())
    );
    assert_eq!(
        assess(&log, "s1", first.due_at, &s),
        Assessment::Send(first.clone())
    );
    // Step 0 decided and its message requested: step 1 at +24 h; then step 2 at +72 h; then over.
    let mut log = log;
    log.push(decision("s1", 130, abandoned, 0, "reminder", "treatment"));
    log.push(requested("s1", 130, abandoned, 0));
    let second = due(&log).unwrap();
    assert_eq!(
        (second.step, second.due_at),
        (1, abandoned + Duration::hours(24))
    );
    log.push(decision("s1", 1500, abandoned, 1, "none", "treatment"));
    let third = due(&log).unwrap();
    assert_eq!(
        (third.step, third.due_at),
        (2, abandoned + Duration::hours(72)),
        "a step that chose nothing is done"
    );
    log.push(decision("s1", 4400, abandoned, 2, "reminder", "treatment"));
    assert_eq!(
        due(&log),
        Some(third.clone()),
        "decided to send but not yet requested: still due"
    );
    log.push(requested("s1", 4400, abandoned, 2));
    assert_eq!(due(&log), None);
    assert_eq!(schedule(&log, &s), Schedule::Over);
    assert_eq!(
        assess(&log, "s1", t0() + Duration::days(9), &s),
        Assessment::Done {
            reason: DoneReason::SequenceOver
        }
    );
    // The system's own events are not shopper activity: the abandonment did not move.
    assert_eq!(carts(&log)[0].abandoned_at(&s), Some(abandoned));
    assert_eq!(
        schedule(&[entry("v", "s9", U, 0, view("p1"))], &s),
        Schedule::NoCart
    );
}

#[test]
fn the_holdout_ends_the_sequence_and_the_cart_cap_counts_across_restarts() {
    let log = vec![entry("e1", "s1", U, 0, add("p1", 1))];
    let basis = t0() + Duration::minutes(60);
    let mut held = log.clone();
    held.push(decision("s1", 120, basis, 0, "none", "holdout"));
    assert_eq!(due(&held), None, "the holdout never gets a step");
    // Three messages, then the cart changes: the restart finds the cart's cap reached.
    let mut capped = log.clone();
    for step in 0..3 {
        capped.push(decision(
            "s1",
            120 + i64::from(step),
            basis,
            step,
            "reminder",
            "treatment",
        ));
        capped.push(requested("s1", 120 + i64::from(step), basis, step));
    }
    capped.push(entry("a2", "s1", U, 5000, add("p2", 1)));
    assert_eq!(due(&capped), None);
    // One message, then a change: the sequence restarts at step 0 from the new abandonment.
    let mut restarted = log.clone();
    restarted.push(decision("s1", 120, basis, 0, "reminder", "treatment"));
    restarted.push(requested("s1", 120, basis, 0));
    restarted.push(entry("a2", "s1", U, 500, add("p2", 1)));
    let d = due(&restarted).unwrap();
    assert_eq!((d.abandoned_at, d.step), (t0() + Duration::minutes(560), 0));
}

#[test]
fn an_order_since_the_cart_in_any_session_cancels_and_an_earlier_one_does_not() {
    let s = RecoverySettings::default();
    let base = vec![
        entry("e1", "s1", U, 0, add("p1", 1)),
        entry("old", "s0", U, -600, order("o0")),
    ];
    let at = t0() + Duration::hours(3);
    assert!(
        matches!(assess(&base, "s1", at, &s), Assessment::Send(_)),
        "an order before the cart does not count"
    );
    for (session, minutes) in [("s1", 30), ("s2", 90), ("s2", 0)] {
        let mut log = base.clone();
        log.push(entry("o", session, U, minutes, order("o1")));
        assert_eq!(
            assess(&log, "s1", at, &s),
            Assessment::Done {
                reason: DoneReason::OrderedSince
            },
            "order in {session} at +{minutes} min"
        );
    }
    // Another user's order in another session does not cancel this one's.
    let mut log = base.clone();
    log.push(entry("o", "s9", Some("u_2"), 90, order("o1")));
    assert!(matches!(assess(&log, "s1", at, &s), Assessment::Send(_)));
}

#[test]
fn an_emptied_cart_cancels_a_changed_one_restarts_and_activity_postpones() {
    let s = RecoverySettings::default();
    let log = vec![
        entry("e1", "s1", U, 0, add("p1", 2)),
        entry("e2", "s1", U, 1, add("p2", 1)),
    ];
    let abandoned = t0() + Duration::minutes(61);
    let at = abandoned + Duration::hours(1);
    assert!(matches!(assess(&log, "s1", at, &s), Assessment::Send(_)));
    // Emptied (in any order of removals): cancelled.
    let mut emptied = log.clone();
    emptied.push(entry("r1", "s1", U, 100, remove("p2", 1)));
    emptied.push(entry("r2", "s1", U, 101, remove("p1", 5)));
    assert_eq!(
        assess(&emptied, "s1", at + Duration::hours(5), &s),
        Assessment::Done {
            reason: DoneReason::Emptied
        }
    );
    assert_eq!(schedule(&emptied, &s), Schedule::Over);
    // Changed and left again: the sequence restarts from the new abandonment.
    let mut changed = log.clone();
    changed.push(entry("a3", "s1", U, 100, add("p3", 1)));
    let later = t0() + Duration::minutes(100 + 60);
    match assess(&changed, "s1", at, &s) {
        Assessment::Wait(d) => assert_eq!((d.abandoned_at, d.step), (later, 0)),
        other => panic!("{other:?}"),
    }
    // Active again and not yet idle: wait for the new abandonment.
    let mut active = log.clone();
    active.push(entry("v", "s1", U, 110, view("p9")));
    let now = t0() + Duration::minutes(130);
    match assess(&active, "s1", now, &s) {
        Assessment::Wait(d) => {
            assert_eq!(
                d.due_at,
                t0() + Duration::minutes(110 + 60) + Duration::hours(1)
            )
        }
        other => panic!("{other:?}"),
    }
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
                5 if product % 4 == 0 => EventBody::ConsentChanged(ConsentChanged {
                    channel: (product % 8 == 0).then_some(Channel::Email),
                    granted: product % 3 == 0,
                    source: None,
                }),
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
        prop_assert_eq!(History::of(&log), History::of(&other));
        for cart in carts(&log) {
            let session: Vec<LogEntry> =
                log.iter().filter(|e| e.session_id == cart.session_id).cloned().collect();
            let shuffled: Vec<LogEntry> =
                other.iter().filter(|e| e.session_id == cart.session_id).cloned().collect();
            prop_assert_eq!(schedule(&session, &s), schedule(&shuffled, &s));
            let ordered_after_start = log.iter().filter_map(|e| e.event().ok()).any(|e| {
                matches!(e.body, EventBody::OrderPlaced(_)) && e.occurred_at >= cart.started_at
            });
            for (minute, _) in &probes {
                let now = t0() + Duration::minutes(i64::from(*minute));
                let v = assess(&log, &cart.session_id, now, &s);
                prop_assert_eq!(&v, &assess(&other, &cart.session_id, now, &s));
                if ordered_after_start {
                    prop_assert!(!matches!(v, Assessment::Send(_)), "sent after an order: {:?}", cart);
                }
            }
        }
    }
}

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

fn quiet(start: (u32, u32), end: (u32, u32)) -> QuietHours {
    QuietHours {
        start: chrono::NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
        end: chrono::NaiveTime::from_hms_opt(end.0, end.1, 0).unwrap(),
    }
}

/// Quiet hours are kept in the shopper's zone, through daylight-saving changes, and end at the first
/// local `end` after the message fell due.
#[test]
fn quiet_hours_defer_to_their_local_end_across_zones_and_daylight_saving() {
    let night = quiet((21, 0), (8, 0));
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let new_york: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let kolkata: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
    let cases = [
        // (zone, due, end of quiet hours or None)
        (
            berlin,
            utc(2026, 1, 10, 20, 30),
            Some(utc(2026, 1, 11, 7, 0)),
        ), // 21:30 CET
        (berlin, utc(2026, 7, 10, 5, 0), Some(utc(2026, 7, 10, 6, 0))), // 07:00 CEST, same morning
        (berlin, utc(2026, 7, 10, 6, 0), None),                         // 08:00 CEST: over
        (berlin, utc(2026, 1, 10, 12, 0), None),
        // The night the clocks go forward (2026-03-08, 02:00 EST → 03:00 EDT): 22:00 EST ends at 08:00
        // EDT, 12:00 UTC, not the 13:00 a fixed offset would give.
        (
            new_york,
            utc(2026, 3, 8, 3, 0),
            Some(utc(2026, 3, 8, 12, 0)),
        ),
        // The night they go back (2026-11-01, 02:00 EDT → 01:00 EST): 00:30 EDT ends at 08:00 EST.
        (
            new_york,
            utc(2026, 11, 1, 4, 30),
            Some(utc(2026, 11, 1, 13, 0)),
        ),
        (
            new_york,
            utc(2026, 11, 1, 12, 59),
            Some(utc(2026, 11, 1, 13, 0)),
        ),
        // A half-hour offset: 21:00 IST is 15:30 UTC.
        (
            kolkata,
            utc(2026, 5, 1, 15, 30),
            Some(utc(2026, 5, 2, 2, 30)),
        ),
        (kolkata, utc(2026, 5, 1, 15, 29), None),
    ];
    for (zone, due, end) in cases {
        assert_eq!(quiet_until(due, &zone, &night), end, "{zone} at {due}");
    }
    // UTC, and a window that does not wrap midnight.
    let lunch = quiet((12, 0), (13, 0));
    assert_eq!(
        quiet_until(utc(2026, 5, 1, 12, 10), &Utc, &lunch),
        Some(utc(2026, 5, 1, 13, 0))
    );
    assert_eq!(quiet_until(utc(2026, 5, 1, 13, 0), &Utc, &lunch), None);
    // An end time that does not exist that day (02:30 on the spring-forward night) is the first
    // instant after the gap: 03:00 EDT.
    let early = quiet((1, 0), (2, 30));
    assert_eq!(
        quiet_until(utc(2026, 3, 8, 6, 30), &new_york, &early),
        Some(utc(2026, 3, 8, 7, 0))
    );
}

/// Consent: the latest change decides, per channel or for all; an unsubscribe is an opt-out of its
/// channel; without any, only a config that requires consent says no.
#[test]
fn opt_outs_consent_and_unsubscribes_decide_whom_to_message() {
    let consent = |id: &str, minutes: i64, channel: Option<Channel>, granted: bool| {
        entry(
            id,
            "s5",
            U,
            minutes,
            EventBody::ConsentChanged(ConsentChanged {
                channel,
                granted,
                source: Some("preference_center".into()),
            }),
        )
    };
    let none = History::of(&[]);
    assert!(none.may_message(Channel::Email, false));
    assert!(!none.may_message(Channel::Email, true));
    let opted_out = History::of(&[consent("c1", 10, None, false)]);
    assert!(!opted_out.may_message(Channel::Email, false));
    assert!(!opted_out.may_message(Channel::Sms, false));
    // Granted again for e-mail later: e-mail yes, SMS still no; and any listing order agrees.
    let mut log = vec![
        consent("c2", 20, Some(Channel::Email), true),
        consent("c1", 10, None, false),
    ];
    for _ in 0..2 {
        let h = History::of(&log);
        assert!(h.may_message(Channel::Email, true));
        assert!(!h.may_message(Channel::Sms, false));
        log.reverse();
    }
    // An unsubscribe from the e-mails, after the grant.
    log.push(entry(
        "out",
        "s5",
        U,
        30,
        EventBody::RecoveryMessageOutcome(RecoveryMessageOutcome {
            message_id: "m1".into(),
            channel: Channel::Email,
            outcome: MessageOutcome::Unsubscribed,
        }),
    ));
    let h = History::of(&log);
    assert!(!h.may_message(Channel::Email, false));
    assert!(h.unsubscribed());
}

#[test]
fn settings_come_from_the_environment_and_refuse_nonsense() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(
        RecoverySettings::from_env(env(&[])),
        Ok(RecoverySettings::default())
    );
    let s = RecoverySettings::from_env(env(&[
        ("RECOVERY_IDLE_MINUTES", "30"),
        ("RECOVERY_STEP_HOURS", "4, 48"),
        ("RECOVERY_MAX_MESSAGES_PER_CART", "2"),
    ]))
    .unwrap();
    assert_eq!(s.idle, Duration::minutes(30));
    assert_eq!(s.steps, vec![Duration::hours(4), Duration::hours(48)]);
    assert_eq!(s.max_messages_per_cart, 2);
    for bad in [
        &[("RECOVERY_IDLE_MINUTES", "0")][..],
        &[("RECOVERY_STEP_HOURS", "24,1")],
        &[("RECOVERY_STEP_HOURS", "")],
        &[("RECOVERY_MAX_MESSAGES_PER_CART", "x")],
    ] {
        assert!(RecoverySettings::from_env(env(bad)).is_err(), "{bad:?}");
    }
}
