//! Point-in-time training rows: the context rebuilt from the log reproduces the scorer's feature hash when
//! the scorer read a projection of exactly the events before the decision; nothing after the decision
//! leaks into the context, whatever it is; the reward is the first order within the horizon, net of the
//! served action's cost.

use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::engine::{decide, Features, Inputs};
use checkout_domain::decision::policy::Arm;
use checkout_domain::decision::request::parse_request;
use checkout_domain::event::Event;
use checkout_domain::features::rebuild::rebuild;
use checkout_domain::features::Doc;
use checkout_domain::ingest::LogEntry;
use checkout_domain::learning::dataset::{build, DatasetSettings};
use checkout_domain::model::registry::fallback_model;
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2019, 10, 1, 10, 0, 0).unwrap()
}

fn entry(
    id: &str,
    session: &str,
    at: DateTime<Utc>,
    event_type: &str,
    data: serde_json::Value,
) -> LogEntry {
    let e = json!({"event_id": id, "event_type": event_type, "schema_version": 2,
        "occurred_at": at.to_rfc3339(), "session_id": session, "user_id": "u1",
        "context": {"device": {"type": "mobile"}}, "data": data});
    let event = Event::decode(e.to_string().as_bytes(), 64 * 1024).expect("valid event");
    LogEntry::of(&event, i64::MAX / 2).expect("entry")
}

/// A session's history before the decision, and another session that shares a page.
fn history() -> Vec<LogEntry> {
    let mut v = vec![
        entry(
            "a1",
            "s1",
            t0(),
            "session_started",
            json!({"visitor_type": "returning"}),
        ),
        entry(
            "a2",
            "s1",
            t0() + Duration::seconds(10),
            "page_viewed",
            json!({"page_type": "administrative", "path": "/account"}),
        ),
        entry(
            "a3",
            "s1",
            t0() + Duration::seconds(40),
            "product_viewed",
            json!({"product_id": "p1"}),
        ),
        entry(
            "a4",
            "s1",
            t0() + Duration::seconds(70),
            "cart_item_added",
            json!({"product_id": "p1", "quantity": 1, "unit_price": {"amount_minor": 7999, "currency": "EUR"}}),
        ),
        entry(
            "a5",
            "s1",
            t0() + Duration::seconds(80),
            "form_error",
            json!({"step": "shipping", "field": "postal_code", "error_code": "invalid"}),
        ),
        entry(
            "b1",
            "s0",
            t0() - Duration::hours(2),
            "product_viewed",
            json!({"product_id": "p1"}),
        ),
        entry(
            "b2",
            "s0",
            t0() - Duration::hours(2) + Duration::seconds(30),
            "order_placed",
            json!({"order_id": "o0", "total": {"amount_minor": 5000, "currency": "EUR"}, "lines": []}),
        ),
    ];
    v.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at));
    v
}

/// What the scorer read: a projection of exactly `log`.
fn features(log: &[LogEntry]) -> Features {
    let (docs, _) = rebuild(log.to_vec());
    let mut f = Features::default();
    for doc in docs.into_values() {
        match doc {
            Doc::Session(s) if s.session_id == "s1" => f.session = Some(s),
            Doc::User(u) => f.user = Some(u),
            Doc::Page(p) => {
                f.pages.insert(p.path.clone(), p);
            }
            _ => {}
        }
    }
    f
}

/// The decision the scorer would log at `at` after reading `log`.
fn decision(log: &[LogEntry], at: DateTime<Utc>) -> LogEntry {
    let request = parse_request(
        br#"{"session_id": "s1", "user_id": "u1", "placement": "checkout", "context": {"device": "mobile",
            "cart": {"currency": "EUR", "items": [{"product_id": "p1", "quantity": 1, "unit_price_minor": 7999,
            "unit_cost_minor": 4000}]}}}"#,
    )
    .unwrap();
    let model = fallback_model().unwrap();
    let config = DecisionConfig {
        default_arm: Arm::Treatment,
        ..DecisionConfig::default()
    };
    let f = features(log);
    let d = decide(
        &request,
        Ok(&f),
        Inputs {
            decision_id: "d1",
            now: at,
            // The unit would be the pseudonym; the log already holds pseudonymized ids.
            unit: Some("u1"),
            model: &model,
            config: &config,
            policy: None,
            shadow: None,
            risk_model: None,
        },
    );
    LogEntry::of(&d.event, i64::MAX / 2).unwrap()
}

#[test]
fn the_rebuilt_context_matches_the_scorers_hash_and_the_reward_is_the_order_in_the_horizon() {
    let at = t0() + Duration::seconds(90);
    let mut log = history();
    let served = decision(&log, at);
    log.push(served);
    log.push(entry(
        "c1",
        "s1",
        at + Duration::minutes(5),
        "order_placed",
        json!({"order_id": "o1", "total": {"amount_minor": 7999, "currency": "EUR"}, "lines": []}),
    ));
    log.push(entry("c2", "s1", at + Duration::hours(30), "order_placed",
        json!({"order_id": "o2", "total": {"amount_minor": 100000, "currency": "EUR"}, "lines": []})));
    let model = fallback_model().unwrap();
    let data = build(log, &model, DatasetSettings::default());
    assert_eq!(data.summary.rows, 1, "{:?}", data.summary);
    let row = &data.rows[0];
    assert!(row.hash_matches, "rebuilt context hashes as the scorer's");
    assert_eq!(data.summary.hash_match_rate, 1.0);
    assert!(row.context.returning && row.context.form_errors == 1);
    assert_eq!(row.policy.id, "configured-uplift");
    let sum: f64 = row.eligible.iter().map(|a| a.probability).sum();
    assert!((sum - 1.0).abs() < 1e-12);
    // The first order within 24 h, at the cart's margin ratio (3999 / 7999), less the action's cost.
    assert!(row.outcome.ordered);
    assert_eq!(row.outcome.revenue_minor, 7999);
    let expected = 7999.0 * (3999.0 / 7999.0) - row.cost_minor() as f64;
    assert!((row.outcome.margin_minor - expected).abs() < 1e-9);
}

fn later_event(i: usize, kind: u8, minutes: i64, at: DateTime<Utc>) -> LogEntry {
    let when = at + Duration::minutes(minutes);
    let id = format!("late-{i}");
    match kind % 5 {
        0 => entry(
            &id,
            "s1",
            when,
            "page_viewed",
            json!({"page_type": "informational", "path": "/faq"}),
        ),
        1 => entry(
            &id,
            "s1",
            when,
            "form_error",
            json!({"step": "payment", "field": "card", "error_code": "x"}),
        ),
        2 => entry(
            &id,
            "s1",
            when,
            "session_started",
            json!({"visitor_type": "new"}),
        ),
        3 => entry(
            &id,
            "s0",
            when,
            "product_viewed",
            json!({"product_id": "p1"}),
        ),
        _ => entry(
            &id,
            "s1",
            when,
            "cart_item_added",
            json!({"product_id": "p9", "quantity": 3, "unit_price": {"amount_minor": 50000, "currency": "EUR"}}),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The leakage guard: events at or after the decision instant, of any kind and in any session,
    /// change nothing in the row's context.
    #[test]
    fn nothing_after_the_decision_enters_its_context(
        later in prop::collection::vec((any::<u8>(), 0i64..600), 0..25)
    ) {
        let at = t0() + Duration::seconds(90);
        let mut log = history();
        let served = decision(&log, at);
        log.push(served);
        let model = fallback_model().unwrap();
        let before = build(log.clone(), &model, DatasetSettings::default()).rows;
        for (i, (kind, minutes)) in later.iter().enumerate() {
            log.push(later_event(i, *kind, *minutes, at));
        }
        let after = build(log, &model, DatasetSettings::default()).rows;
        prop_assert_eq!(before.len(), 1);
        prop_assert_eq!(&before[0].context, &after[0].context);
        prop_assert!(after[0].hash_matches);
    }
}
