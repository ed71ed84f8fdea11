//! Promoting a learned policy: only when its doubly robust lower bound beats the champion's estimate on
//! the same held-out rows, or by a recorded override; versions are immutable and every attempt is
//! recorded.

use checkout_domain::decision::learned::{
    Exploration, OutcomeModel, PolicyArtifact, PolicyContext, PolicyTraining, CONTEXT_FEATURES,
};
use checkout_domain::decision::policy::PolicyConfig;
use checkout_domain::event::{ActionProbability, PolicyRef};
use checkout_domain::learning::dataset::{Outcome, TrainingRow};
use checkout_domain::learning::promotion::promote;
use checkout_domain::memory::MemoryObjectStore;
use checkout_domain::model::registry::{champion_pointer, publish, RegistryError};
use checkout_domain::ope::Settings;
use checkout_domain::placement::Placement;
use chrono::{TimeZone, Utc};
use std::collections::BTreeMap;

const NAME: &str = "next-best-action";

/// Logged 50/50 between `none` (orders 10% of the time, margin 200) and a 10% discount (orders 90% of
/// the time, margin 200 − 100): the discount is worth 90 a decision, `none` 20. The configured policy
/// (its guessed uplift for a 10% discount is 0.1) thinks the discount loses money, so it never gives it.
fn rows() -> Vec<TrainingRow> {
    (0..2_000)
        .map(|i| {
            let discount = i % 2 == 0;
            let ordered = if discount { i % 20 != 0 } else { i % 20 == 1 };
            let cost = if discount { 100 } else { 0 };
            TrainingRow {
                decision_id: format!("d{i}"),
                session_id: format!("s{i}"),
                decided_at: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
                placement: Placement::Cart,
                policy: PolicyRef {
                    id: "configured-uplift".into(),
                    version: "rules-1".into(),
                },
                experiment: None,
                context: PolicyContext {
                    placement: Placement::Cart,
                    propensity: 0.5,
                    cart_value_minor: 1000.0,
                    margin_minor: 200.0,
                    device: None,
                    returning: false,
                    form_errors: 0,
                },
                feature_hash: String::new(),
                hash_matches: true,
                eligible: vec![
                    ActionProbability {
                        action: "none".into(),
                        probability: 0.5,
                        cost_minor: 0,
                    },
                    ActionProbability {
                        action: "percent_discount_10".into(),
                        probability: 0.5,
                        cost_minor: 100,
                    },
                ],
                action: if discount {
                    "percent_discount_10"
                } else {
                    "none"
                }
                .into(),
                propensity: 0.5,
                shadow: None,
                outcome: Outcome {
                    ordered,
                    revenue_minor: if ordered { 1000 } else { 0 },
                    margin_minor: if ordered { (200 - cost) as f64 } else { 0.0 },
                    order_at: None,
                },
            }
        })
        .collect()
}

/// A policy whose models say `favourite` converts 90% and the rest 10%.
fn policy(version: &str, favourite: &str) -> PolicyArtifact {
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let outcome_models: BTreeMap<String, OutcomeModel> = ["none", "percent_discount_10"]
        .iter()
        .map(|k| {
            let mut weights = vec![0.0; CONTEXT_FEATURES.len()];
            weights[0] = logit(if *k == favourite { 0.9 } else { 0.1 });
            (
                k.to_string(),
                OutcomeModel {
                    weights,
                    rows: 1000,
                    orders: 500,
                },
            )
        })
        .collect();
    PolicyArtifact {
        name: NAME.into(),
        version: version.into(),
        created_at: Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap(),
        features: CONTEXT_FEATURES.iter().map(|f| f.to_string()).collect(),
        outcome_models,
        exploration: Exploration::default(),
        training: PolicyTraining {
            data_sha256: "0".repeat(64),
            rows: 2000,
            horizon_hours: 24,
            library: "test".into(),
            alpha: 1.0,
        },
        evaluation: serde_json::Value::Null,
    }
}

#[tokio::test]
async fn a_policy_is_promoted_only_on_an_offline_win_or_a_recorded_override() {
    let store = MemoryObjectStore::default();
    let held = rows();
    let configured = PolicyConfig::default();
    let settings = Settings {
        resamples: 500,
        ..Settings::default()
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    publish(&store, &policy("good", "percent_discount_10"))
        .await
        .unwrap();
    publish(&store, &policy("bad", "none")).await.unwrap();

    // Against the configured policy (no learned champion yet): the discount policy wins clearly.
    let r = promote(
        &store,
        NAME,
        "good",
        &held,
        &configured,
        None,
        settings,
        now,
    )
    .await
    .unwrap();
    assert!(r.pointer_moved && !r.decision.overridden, "{r:?}");
    assert!(r.challenger.dr_lower > r.champion.dr, "{r:?}");
    assert!(
        (r.champion.dr - 20.0).abs() < 10.0,
        "the configured policy serves none: {r:?}"
    );
    let (pointer, _) = champion_pointer(&store, NAME).await.unwrap().unwrap();
    assert_eq!(pointer.version, "good");
    assert!(
        store.object(&r.record_key).is_some(),
        "the record is written"
    );

    // A worse challenger is refused, and the refusal is recorded too.
    let later = now + chrono::Duration::minutes(1);
    let r = promote(
        &store,
        NAME,
        "bad",
        &held,
        &configured,
        None,
        settings,
        later,
    )
    .await
    .unwrap();
    assert!(!r.pointer_moved && !r.decision.promote, "{r:?}");
    assert!(store.object(&r.record_key).is_some());
    assert_eq!(
        champion_pointer(&store, NAME)
            .await
            .unwrap()
            .unwrap()
            .0
            .version,
        "good"
    );

    // An override moves it anyway, and says so.
    let r = promote(
        &store,
        NAME,
        "bad",
        &held,
        &configured,
        Some("rollback drill"),
        settings,
        later + chrono::Duration::minutes(1),
    )
    .await
    .unwrap();
    assert!(r.pointer_moved && r.decision.overridden, "{r:?}");
    assert!(r.decision.reason.contains("rollback drill"));

    // Versions are immutable.
    let err = publish(&store, &policy("good", "none")).await.unwrap_err();
    assert!(matches!(err, RegistryError::VersionExists { .. }), "{err}");
}
