//! The pure decision engine: a decision replays exactly from its id, and with ε-exploration the recorded
//! propensity of each served action is the frequency with which the policy serves it (what off-policy
//! evaluation relies on).

use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::engine::{decide, Features, Inputs};
use checkout_domain::decision::learned::{
    Exploration, OutcomeModel, PolicyArtifact, PolicyTraining, CONTEXT_FEATURES,
};
use checkout_domain::decision::policy::Arm;
use checkout_domain::decision::request::parse_request;
use checkout_domain::event::{
    is_incentive_kind, ActionProbability, DecisionServed, Event, EventBody, SCHEMA_VERSION,
};
use checkout_domain::features::session::fold;
use checkout_domain::features::SessionFeatures;
use checkout_domain::ingest::LogEntry;
use checkout_domain::model::registry::fallback_model;
use checkout_domain::model::scorer::Model;
use chrono::TimeZone;
use std::collections::BTreeMap;

fn request() -> checkout_domain::decision::request::DecisionRequest {
    parse_request(
        br#"{"session_id": "s", "user_id": "u", "placement": "cart", "context": {"cart": {"currency": "EUR",
            "items": [{"product_id": "p", "quantity": 1, "unit_price_minor": 7999, "unit_cost_minor": 4000}]}}}"#,
    )
    .expect("valid")
}

/// Every unit treated, exploring with probability `epsilon`.
fn treating(epsilon: f64) -> DecisionConfig {
    DecisionConfig {
        default_arm: Arm::Treatment,
        policy: checkout_domain::decision::policy::PolicyConfig {
            epsilon,
            ..Default::default()
        },
        ..DecisionConfig::default()
    }
}

fn inputs<'a>(id: &'a str, model: &'a Model, config: &'a DecisionConfig) -> Inputs<'a> {
    Inputs {
        decision_id: id,
        now: chrono::Utc
            .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
            .unwrap(),
        unit: Some("u_1"),
        model,
        config,
        policy: None,
        shadow: None,
        risk_model: None,
    }
}

#[test]
fn a_decision_replays_exactly_from_its_id() {
    let model = fallback_model().expect("model");
    let config = treating(0.5);
    let features = Features::default();
    for i in 0..200 {
        let id = format!("decision-{i}");
        assert_eq!(
            decide(&request(), Ok(&features), inputs(&id, &model, &config)),
            decide(&request(), Ok(&features), inputs(&id, &model, &config))
        );
    }
}

#[test]
fn with_exploration_the_recorded_propensity_is_the_serving_frequency() {
    let model = fallback_model().expect("model");
    let epsilon = 0.3;
    let config = treating(epsilon);
    let features = Features::default();
    let n = 20_000;
    let mut served: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let mut explored = 0;
    for i in 0..n {
        let id = format!("{i:08x}-decision");
        let d = decide(&request(), Ok(&features), inputs(&id, &model, &config));
        let key = serde_json::to_string(&d.response.actions[0].action).unwrap();
        let e = served.entry(key).or_insert((0, d.response.propensity));
        assert_eq!(e.1, d.response.propensity, "one propensity per action");
        e.0 += 1;
        explored += usize::from(d.response.explored);
    }
    assert!(
        served.len() > 2,
        "exploration reaches every eligible action: {served:?}"
    );
    let total: f64 = served.values().map(|(_, p)| p).sum();
    assert!(
        (total - 1.0).abs() < 1e-12,
        "propensities sum to 1: {total}"
    );
    for (action, (count, p)) in &served {
        let freq = *count as f64 / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (freq - p).abs() < 5.0 * se + 1e-9,
            "{action}: served {freq:.4}, recorded {p:.4}"
        );
    }
    let explored = explored as f64 / n as f64;
    assert!((explored - epsilon).abs() < 0.02, "explored {explored}");
}

fn learned(name: &str, favourite: &str) -> PolicyArtifact {
    let model = |intercept: f64| OutcomeModel {
        weights: vec![intercept, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        rows: 100,
        orders: 10,
    };
    let mut outcome_models = BTreeMap::new();
    for key in [
        "none",
        "free_shipping",
        "percent_discount_5",
        "percent_discount_10",
        "percent_discount_15",
        "reminder",
        "express_checkout",
        "step_up_verification",
        "simplified_form",
        "guest_checkout_first",
    ] {
        let intercept = if key == favourite { 2.0 } else { -2.0 };
        outcome_models.insert(key.to_string(), model(intercept));
    }
    PolicyArtifact {
        name: name.into(),
        version: "v1".into(),
        created_at: chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        features: CONTEXT_FEATURES.iter().map(|s| s.to_string()).collect(),
        outcome_models,
        exploration: Exploration::default(),
        training: PolicyTraining {
            data_sha256: "0".repeat(64),
            rows: 1000,
            horizon_hours: 24,
            library: "test".into(),
            alpha: 1.0,
        },
        evaluation: serde_json::Value::Null,
    }
}

fn served(d: &checkout_domain::decision::engine::Decision) -> DecisionServed {
    match &d.event.body {
        EventBody::DecisionServed(s) => (**s).clone(),
        other => panic!("not a decision: {other:?}"),
    }
}

#[test]
fn a_learned_policy_logs_its_whole_distribution_and_serves_at_those_frequencies() {
    let model = fallback_model().expect("model");
    let config = treating(0.0);
    let features = Features::default();
    let champion = learned("next-best-action", "reminder");
    let challenger = learned("challenger", "free_shipping");
    let n = 20_000;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut logged: Option<Vec<ActionProbability>> = None;
    for i in 0..n {
        let id = format!("{i:08x}-learned");
        let d = decide(
            &request(),
            Ok(&features),
            Inputs {
                policy: Some(&champion),
                shadow: Some(&challenger),
                ..inputs(&id, &model, &config)
            },
        );
        assert_eq!(d.response.policy.id, "next-best-action");
        // The event is a valid v4 event: it survives the decoder, distribution checks included.
        let bytes = serde_json::to_vec(&d.event).unwrap();
        let again = Event::decode(&bytes, 32 * 1024).expect("a valid v4 event");
        assert_eq!(again.schema_version, SCHEMA_VERSION);
        let s = served(&d);
        // What the scorer saw is logged, and it is what the feature hash covers.
        assert_eq!(
            s.score,
            d.response.score.as_ref().map(|x| x.purchase_probability)
        );
        let row = checkout_domain::decision::engine::logged_model_input(&s.model_input)
            .expect("the logged input reads back");
        let policy_features: Vec<f64> = checkout_domain::decision::learned::CONTEXT_FEATURES
            .iter()
            .map(|n| s.policy_features[*n])
            .collect();
        assert_eq!(
            checkout_domain::decision::engine::hash_vectors(
                &model.vectorize(&row),
                &policy_features
            ),
            s.feature_hash
        );
        assert_eq!(model.probability(&model.vectorize(&row)), s.score.unwrap());
        let eligible = s.eligible.clone();
        let shadow = s.shadow.clone().expect("shadow logged");
        assert_eq!(shadow.policy.id, "challenger");
        let best_shadow = shadow
            .eligible
            .iter()
            .max_by(|a, b| a.probability.total_cmp(&b.probability))
            .unwrap();
        assert_eq!(
            best_shadow.action, "free_shipping",
            "the challenger's own ranking"
        );
        if let Some(first) = &logged {
            assert_eq!(first, &eligible, "same context, same distribution");
        }
        let floor = Exploration::default().floor;
        assert!(eligible.iter().all(|a| a.probability >= floor - 1e-12));
        *counts.entry(s.action_key.clone().unwrap()).or_default() += 1;
        logged = Some(eligible);
    }
    let eligible = logged.unwrap();
    let top = eligible
        .iter()
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .unwrap();
    assert_eq!(
        top.action, "reminder",
        "the champion serves its favourite most"
    );
    for a in &eligible {
        let freq = *counts.get(&a.action).unwrap_or(&0) as f64 / n as f64;
        let se = (a.probability * (1.0 - a.probability) / n as f64).sqrt();
        assert!(
            (freq - a.probability).abs() < 5.0 * se + 1e-9,
            "{}: served {freq:.4}, logged {:.4}",
            a.action,
            a.probability
        );
    }
}

#[test]
fn a_learned_policy_cannot_override_the_guardrails() {
    let model = fallback_model().expect("model");
    let config = treating(0.0);
    let features = Features::default();
    // It would love a 15% discount, which the 10% cap forbids.
    let greedy = learned("greedy", "percent_discount_15");
    for i in 0..2_000 {
        let id = format!("{i:08x}-capped");
        let d = decide(
            &request(),
            Ok(&features),
            Inputs {
                policy: Some(&greedy),
                ..inputs(&id, &model, &config)
            },
        );
        let s = served(&d);
        assert!(s.eligible.iter().all(|a| a.action != "percent_discount_15"));
        assert_ne!(s.action_key.as_deref(), Some("percent_discount_15"));
    }
    // High risk at checkout: step-up, whatever the policy prefers.
    let risky = Features {
        session: Some(session_with_declines(2)),
        ..Features::default()
    };
    let checkout = parse_request(
        br#"{"session_id": "s", "user_id": "u", "placement": "checkout", "context": {"cart": {"currency": "EUR",
            "items": [{"product_id": "p", "quantity": 1, "unit_price_minor": 7999, "unit_cost_minor": 4000}]}}}"#,
    )
    .expect("valid");
    let generous = learned("generous", "free_shipping");
    for i in 0..500 {
        let id = format!("{i:08x}-risky");
        let d = decide(
            &checkout,
            Ok(&risky),
            Inputs {
                policy: Some(&generous),
                ..inputs(&id, &model, &config)
            },
        );
        let s = served(&d);
        assert_eq!(s.action, "step_up_verification");
        assert_eq!(s.propensity, 1.0);
        assert!(s.eligible.iter().all(|a| !is_incentive_kind(&a.action)));
    }
}

fn session_with_declines(declines: u32) -> SessionFeatures {
    let mut events = Vec::new();
    for i in 0..declines {
        let json = serde_json::json!({
            "event_id": format!("decl-{i}"), "event_type": "payment_declined", "schema_version": 2,
            "occurred_at": "2026-11-24T11:00:00Z", "session_id": "s",
            "data": {"payment_attempt_id": format!("pa-{i}"), "decline_code": "do_not_honor",
                     "amount": {"amount_minor": 7999, "currency": "EUR"}}
        });
        let event = Event::decode(json.to_string().as_bytes(), 32 * 1024).expect("valid");
        events.push(LogEntry::of(&event, 0).expect("entry"));
    }
    fold(&events).0.expect("folds").session
}

/// A profile with `frauds` attempts in the last week, all labelled fraud an hour before now.
fn profile_with_frauds(frauds: u32) -> checkout_domain::risk::signals::RiskProfile {
    use checkout_domain::risk::signals::{RiskProfile, Signal, SignalKind};
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .unwrap();
    let signals: Vec<Signal> = (0..frauds)
        .map(|i| Signal {
            at: now - chrono::Duration::hours(24 * 8 + i64::from(i)),
            event_id: format!("pa-{i}"),
            kind: SignalKind::Attempt,
            card: Some(format!("c_{i}")),
            fraud_label_at: Some(now - chrono::Duration::hours(1)),
        })
        .collect();
    let mut p = RiskProfile::default();
    p.add(&signals);
    p
}

#[test]
fn at_checkout_the_decision_recommends_a_friction_from_the_risk_model_and_logs_it() {
    use checkout_domain::event::Friction;
    use checkout_domain::risk::model::fallback;
    use checkout_domain::risk::signals::RiskKey;
    let model = fallback_model().expect("model");
    let risk_model = fallback().expect("risk model");
    let config = DecisionConfig::default();
    let checkout = |payment: &str| {
        parse_request(
            format!(
                r#"{{"session_id": "s", "user_id": "u", "placement": "checkout", "context": {{
                "country": "DE", "device_id": "dev-1", {payment}
                "cart": {{"currency": "EUR", "items": [{{"product_id": "p", "quantity": 1, "unit_price_minor": 7999}}]}}}}}}"#
            )
            .as_bytes(),
        )
        .expect("valid")
    };
    let with = |id: &str, request, features: Result<&Features, &str>, risk| {
        decide(
            request,
            features,
            Inputs {
                risk_model: risk,
                ..inputs(id, &model, &config)
            },
        )
    };
    let calm = Features::default();
    let request = checkout(
        r#""payment": {"card_fingerprint": "fp1", "billing_country": "DE", "shipping_country": "DE"},"#,
    );
    let d = with("d-calm", &request, Ok(&calm), Some(&risk_model));
    let risk = d.response.risk.as_ref().expect("assessed at checkout");
    assert_eq!(risk.friction, Friction::Allow, "{risk:?}");
    assert!(!risk.degraded && risk.score.is_some_and(|s| s < 5.0));
    assert_eq!(risk.model_version, risk_model.version);

    // The same payment from a device with many recently confirmed frauds.
    let mut hot = Features::default();
    hot.risk.insert(RiskKey::Device, profile_with_frauds(40));
    let d = with("d-hot", &request, Ok(&hot), Some(&risk_model));
    let risk = d.response.risk.clone().expect("assessed");
    assert_ne!(risk.friction, Friction::Allow, "{risk:?}");
    assert!(
        risk.reasons.iter().any(|r| r.contains("device")),
        "{risk:?}"
    );
    let (from, to) = (risk.band_from.unwrap(), risk.band_to.unwrap());
    assert!(from <= risk.score.unwrap() && risk.score.unwrap() <= to);
    // Logged as it was answered, and the logged event passes the schema's checks.
    let EventBody::DecisionServed(served) = &d.event.body else {
        panic!("a decision event")
    };
    assert_eq!(served.risk.as_ref(), Some(&risk));
    let bytes = serde_json::to_vec(&d.event).expect("encodes");
    Event::decode(&bytes, 32 * 1024).expect("a valid v5 event");

    // Degraded: the configured safe friction, no score.
    let d = with("d-degraded", &request, Err("timeout"), Some(&risk_model));
    let risk = d.response.risk.expect("still answered");
    assert!(risk.degraded && risk.score.is_none());
    assert_eq!(risk.friction, config.risk.safe_friction);

    // The declines rule only makes it stricter.
    let declined = Features {
        session: Some(session_with_declines(2)),
        ..Features::default()
    };
    let d = with("d-declines", &request, Ok(&declined), Some(&risk_model));
    let risk = d.response.risk.expect("assessed");
    assert!(risk.friction >= Friction::StepUp);
    assert_eq!(risk.rule_ids, vec!["session_declines".to_string()]);

    // Not at the cart, and not without a model.
    let cart = request_at_cart();
    assert!(with("d-cart", &cart, Ok(&calm), Some(&risk_model))
        .response
        .risk
        .is_none());
    assert!(with("d-none", &request, Ok(&calm), None)
        .response
        .risk
        .is_none());
}

fn request_at_cart() -> checkout_domain::decision::request::DecisionRequest {
    request()
}

#[test]
fn a_card_number_in_a_decision_request_is_refused() {
    let err = parse_request(
        br#"{"session_id": "s", "placement": "checkout", "context": {"payment": {"card_fingerprint": "4111111111111111"}}}"#,
    )
    .expect_err("a PAN");
    assert_eq!((err.status, err.code), (400, "card_number_detected"));
    let err = parse_request(
        br#"{"session_id": "s", "placement": "checkout", "context": {"payment": {"billing_country": "Germany"}}}"#,
    )
    .expect_err("alpha-2");
    assert_eq!(
        err.field.as_deref(),
        Some("context.payment.billing_country")
    );
}

#[test]
fn a_review_friction_opens_a_case_in_the_same_session() {
    use checkout_domain::event::{Friction, ReviewTransition};
    use checkout_domain::risk::friction::{Band, Bands};
    use checkout_domain::risk::model::fallback;
    let model = fallback_model().expect("model");
    let mut risk_model = fallback().expect("risk model");
    risk_model.bands = Bands::try_from(vec![
        Band {
            from: 0.0,
            friction: Friction::Allow,
        },
        Band {
            from: 0.001,
            friction: Friction::Review,
        },
    ])
    .unwrap();
    let config = DecisionConfig::default();
    let request = parse_request(
        br#"{"session_id": "s", "user_id": "u", "placement": "checkout", "context": {
            "payment": {"card_fingerprint": "fp", "order_ref": "ord-77"},
            "cart": {"currency": "EUR", "items": [{"product_id": "p", "quantity": 1, "unit_price_minor": 7999}]}}}"#,
    )
    .expect("valid");
    let d = decide(
        &request,
        Ok(&Features::default()),
        Inputs {
            risk_model: Some(&risk_model),
            ..inputs("d-review", &model, &config)
        },
    );
    assert_eq!(
        d.response.risk.as_ref().map(|r| r.friction),
        Some(Friction::Review)
    );
    let opened = d.review.expect("a case is opened");
    assert_eq!(opened.session_id, "s");
    assert_eq!(opened.event_id, "d-review#0");
    let EventBody::ReviewUpdated(r) = &opened.body else {
        panic!("a review event")
    };
    assert_eq!(
        (r.case_id.as_str(), r.order_ref.as_str()),
        ("d-review", "ord-77")
    );
    assert_eq!(r.transition, ReviewTransition::Opened);
    assert_eq!(
        r.deadline_at,
        opened.occurred_at + chrono::Duration::days(7)
    );
    Event::decode(&serde_json::to_vec(&opened).unwrap(), 32 * 1024).expect("valid v5 event");
    // Allowed payments open nothing.
    let d = decide(
        &request,
        Ok(&Features::default()),
        Inputs {
            risk_model: Some(&fallback().unwrap()),
            ..inputs("d-allow", &model, &config)
        },
    );
    assert!(d.review.is_none());
}
