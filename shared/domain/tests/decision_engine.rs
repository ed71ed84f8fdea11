//! The pure decision engine: a decision replays exactly from its id, and with ε-exploration the recorded
//! propensity of each served action is the frequency with which the policy serves it (what off-policy
//! evaluation relies on).

use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::engine::{decide, Features, Inputs};
use checkout_domain::decision::policy::Arm;
use checkout_domain::decision::request::parse_request;
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
