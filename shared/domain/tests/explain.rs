//! `explain` of a decision made by the real engine (a learned policy in an experiment's treatment arm, a
//! payment decline in the session, an order afterwards) agrees with the decision's response on every
//! part it recomputes; a tampered log entry is caught.

use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::engine::{decide, Decision, Features, Inputs};
use checkout_domain::decision::learned::{
    Exploration, OutcomeModel, PolicyArtifact, PolicyTraining, CONTEXT_FEATURES,
};
use checkout_domain::decision::policy::{Arm, PolicyConfig};
use checkout_domain::decision::request::parse_request;
use checkout_domain::event::Event;
use checkout_domain::features::session::fold;
use checkout_domain::ingest::LogEntry;
use checkout_domain::learning::explain::{explain, Sources};
use checkout_domain::model::registry::fallback_model;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use std::collections::BTreeMap;

const SESSION: &str = "s-explain";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

fn entry(id: &str, unit: &str, kind: &str, data: serde_json::Value, secs: i64) -> LogEntry {
    let e = Event::decode(
        json!({"event_id": id, "event_type": kind, "schema_version": 3, "session_id": SESSION,
               "user_id": unit, "occurred_at": (t0() + Duration::seconds(secs)).to_rfc3339(),
               "context": {"device": {"type": "mobile"}}, "data": data})
        .to_string()
        .as_bytes(),
        usize::MAX,
    )
    .expect("a valid event");
    LogEntry::of(&e, i64::MAX).unwrap()
}

fn eur(minor: i64) -> serde_json::Value {
    json!({"currency": "EUR", "amount_minor": minor})
}

fn history(unit: &str) -> Vec<LogEntry> {
    vec![
        entry(
            "e1",
            unit,
            "session_started",
            json!({"visitor_type": "returning", "landing_page": "/"}),
            0,
        ),
        entry(
            "e2",
            unit,
            "page_viewed",
            json!({"page_type": "product_related", "path": "/p/1", "time_on_page_ms": 41000}),
            5,
        ),
        entry(
            "e3",
            unit,
            "cart_item_added",
            json!({"product_id": "p", "quantity": 1, "unit_price": eur(7999)}),
            50,
        ),
        entry(
            "e4",
            unit,
            "form_error",
            json!({"step": "shipping", "field": "postal_code", "error_code": "invalid"}),
            60,
        ),
        entry(
            "e5",
            unit,
            "payment_attempted",
            json!({"payment_attempt_id": "pa-1", "method": "card", "amount": eur(7999)}),
            70,
        ),
        entry(
            "e6",
            unit,
            "payment_declined",
            json!({"payment_attempt_id": "pa-1", "decline_code": "insufficient_funds", "amount": eur(7999)}),
            72,
        ),
    ]
}

fn policy() -> PolicyArtifact {
    let mut outcome_models = BTreeMap::new();
    for (key, intercept) in [
        ("none", -1.0),
        ("free_shipping", 0.5),
        ("express_checkout", -0.5),
        ("simplified_form", 0.2),
        ("guest_checkout_first", -0.2),
        ("wallet_first", 0.1),
        ("reminder", -1.5),
    ] {
        outcome_models.insert(
            key.to_string(),
            OutcomeModel {
                weights: vec![intercept, 0.3, 0.1, 0.2, 0.0, -0.1, -0.2, 0.05],
                rows: 100,
                orders: 10,
            },
        );
    }
    PolicyArtifact {
        name: "next-best-action".into(),
        version: "v7".into(),
        created_at: t0(),
        features: CONTEXT_FEATURES.iter().map(|s| s.to_string()).collect(),
        outcome_models,
        exploration: Exploration::default(),
        training: PolicyTraining {
            data_sha256: "ab".repeat(32),
            rows: 1000,
            horizon_hours: 24,
            library: "test".into(),
            alpha: 1.0,
        },
        evaluation: serde_json::Value::Null,
    }
}

fn config() -> DecisionConfig {
    DecisionConfig {
        experiments: vec![serde_json::from_value(
            json!({"id": "checkout-layout", "variations": ["control", "treatment"],
                   "placement": "checkout", "status": "running"}),
        )
        .expect("an experiment")],
        policy: PolicyConfig::default(),
        ..DecisionConfig::default()
    }
}

/// A decision at checkout, 80 s into the session, for the first unit the experiment treats.
fn decision(
    model: &checkout_domain::model::scorer::Model,
    config: &DecisionConfig,
    policy: &PolicyArtifact,
) -> (String, Decision, Vec<LogEntry>) {
    let request = parse_request(
        br#"{"session_id": "s-explain", "user_id": "raw", "placement": "checkout", "device": "mobile",
            "context": {"cart": {"currency": "EUR",
            "items": [{"product_id": "p", "quantity": 1, "unit_price_minor": 7999, "unit_cost_minor": 4000}]}}}"#,
    )
    .expect("valid");
    let unit = (0..100)
        .map(|i| format!("u_{i}"))
        .find(|u| {
            config.experiments[0]
                .assign(u)
                .is_some_and(|a| a.variant == "treatment")
        })
        .expect("some unit is treated");
    let mut log = history(&unit);
    let features = Features {
        session: fold(&log).0.map(|p| p.session),
        ..Features::default()
    };
    let d = decide(
        &request,
        Ok(&features),
        Inputs {
            decision_id: "d-explain",
            now: t0() + Duration::seconds(80),
            unit: Some(&unit),
            model,
            config,
            policy: Some(policy),
            shadow: None,
            risk_model: None,
        },
    );
    assert_eq!(d.response.arm, Arm::Treatment);
    // As ingest logs it: the user pseudonymized to the unit.
    let mut event = d.event.clone();
    event.user_id = Some(unit.clone());
    log.push(LogEntry::of(&event, i64::MAX).unwrap());
    log.push(entry(
        "e9",
        &unit,
        "order_placed",
        json!({"order_id": "o-1", "total": eur(7999),
               "lines": [{"product_id": "p", "quantity": 1, "unit_price_minor": 7999}]}),
        200,
    ));
    (unit, d, log)
}

#[test]
fn explain_agrees_with_the_response_on_everything_it_recomputes() {
    let model = fallback_model().unwrap();
    let config = config();
    let policy = policy();
    let (unit, d, log) = decision(&model, &config, &policy);
    let sources = Sources {
        model: Some(&model),
        policy: Some(&policy),
        config: Some(&config),
        horizon: Duration::hours(24),
    };
    let x = explain("d-explain", &log, &sources).expect("explained");
    let r = &d.response;
    assert_eq!(x.discrepancies, Vec::<String>::new());
    assert_eq!(x.session_id, SESSION);
    assert_eq!(x.schema_version, checkout_domain::event::SCHEMA_VERSION);
    // What was served, by which policy.
    assert_eq!(x.served.action_key, r.actions[0].action.key());
    assert_eq!(x.served.propensity, r.propensity);
    assert_eq!(x.served.policy, r.policy);
    assert_ne!(x.served.draw_reproduces_choice, Some(false));
    let recomputed = x
        .policy
        .recomputed
        .as_ref()
        .expect("the learned policy was found");
    assert_eq!(recomputed.len(), x.served.eligible.len());
    assert_eq!(
        x.policy.training_data_sha256.as_deref(),
        Some(&*"ab".repeat(32))
    );
    // Inputs: logged, and they hash to the logged hash; the score and its reasons recompute.
    assert!(x.inputs.logged);
    assert_eq!(x.inputs.hash_matches, Some(true));
    let score = r.score.as_ref().unwrap();
    assert_eq!(x.score.logged, Some(score.purchase_probability));
    assert_eq!(x.score.recomputed, Some(score.purchase_probability));
    let reasons: Vec<&str> = x.score.reasons.iter().map(|r| r.feature.as_str()).collect();
    let served_reasons: Vec<&str> = score.reasons.iter().map(|r| r.feature).collect();
    assert_eq!(reasons, served_reasons);
    // The session columns folded from the log equal what the scorer read (it read a current projection).
    for c in &x.inputs.columns {
        if let Some(pit) = &c.point_in_time {
            assert_eq!(Some(pit), c.served.as_ref(), "column {}", c.name);
        }
    }
    // Guardrails: the decline made the session risky, and the replay blocks what the response blocked.
    assert!(x.guardrails.replayed);
    assert_eq!(x.guardrails.agrees_with_log, Some(true));
    let blocked: Vec<(String, String)> = x
        .guardrails
        .blocked
        .iter()
        .map(|b| (b.action.clone(), b.guardrail.clone()))
        .collect();
    let served_blocked: Vec<(String, String)> = r
        .blocked
        .iter()
        .map(|b| (b.action.to_string(), b.guardrail.to_string()))
        .collect();
    assert_eq!(blocked, served_blocked);
    assert!(!blocked.is_empty(), "a declined payment blocks incentives");
    // The experiment, with its bucketing inputs.
    let e = x.experiment.as_ref().expect("in an experiment");
    assert_eq!(e.variant, r.experiment.as_ref().unwrap().variant);
    let b = e.bucketing.as_ref().unwrap();
    assert_eq!(b.unit, unit);
    assert_eq!(b.seed, "checkout-layout");
    assert_eq!(b.recomputed_variant.as_deref(), Some("treatment"));
    assert_eq!(
        x.rules.current_version,
        Some(x.rules.logged_version.clone())
    );
    // The outcome.
    assert!(x.outcome.ordered);
    assert_eq!(x.outcome.revenue_minor, Some(7999));
    assert_eq!(x.model.version, model.version());
    assert!(x.model.found);
}

#[test]
fn a_tampered_or_unknown_decision_is_reported_not_explained_away() {
    let model = fallback_model().unwrap();
    let config = config();
    let policy = policy();
    let (_, _, mut log) = decision(&model, &config, &policy);
    let sources = Sources {
        model: Some(&model),
        policy: Some(&policy),
        config: Some(&config),
        horizon: Duration::hours(24),
    };
    let at = log.iter().position(|e| e.event_id == "d-explain").unwrap();
    let mut body: serde_json::Value = serde_json::from_str(&log[at].body).unwrap();
    body["data"]["model_input"]["product_related"] = json!(99.0);
    log[at].body = body.to_string();
    let x = explain("d-explain", &log, &sources).expect("explained");
    assert_eq!(x.inputs.hash_matches, Some(false));
    assert!(
        x.discrepancies.iter().any(|d| d.contains("feature_hash")),
        "{:?}",
        x.discrepancies
    );
    assert!(
        x.discrepancies.iter().any(|d| d.starts_with("score")),
        "{:?}",
        x.discrepancies
    );

    // Another rules version: no replay of the guardrails, and it says so.
    let mut newer = config.clone();
    newer.policy.rules_version = "rules-next".into();
    let x = explain(
        "d-explain",
        &log,
        &Sources {
            config: Some(&newer),
            ..sources
        },
    )
    .unwrap();
    assert!(!x.guardrails.replayed);
    assert_eq!(x.rules.current_version.as_deref(), Some("rules-next"));

    assert!(explain("no-such-decision", &log, &sources).is_err());
}
