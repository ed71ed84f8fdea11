//! The scorer with the real AWS clients against moto: decisions become `decision_served` events that
//! travel through Kinesis, ingest and the event log into the experiment-unit projection; and with the
//! stack stopped, the scorer still starts and answers, degraded.

use checkout_ai_integration_tests::{fresh_stack, generous_budgets};
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_aws::Env;
use checkout_domain::decision::config::{DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::features::Doc;
use checkout_domain::ports::{Condition, ObjectStore};
use checkout_domain::pseudonym::Pseudonymizer;
use lambda_http::http::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn body(i: usize) -> Vec<u8> {
    json!({"session_id": format!("sess-{i}"), "user_id": format!("shopper-{i}"), "placement": "cart",
           "context": {"device": "desktop", "country": "DE", "cart": {"currency": "EUR", "items": [
               {"product_id": "sku-1", "quantity": 1, "unit_price_minor": 7999, "unit_cost_minor": 4000}]}}})
    .to_string()
    .into_bytes()
}

async fn decide(s: &scorer::Scorer, i: usize) -> Value {
    let a = s
        .respond(
            &Method::POST,
            "/v1/decisions",
            Some("application/json"),
            &body(i),
            chrono::Utc::now(),
        )
        .await;
    assert_eq!(a.status.as_u16(), 200);
    serde_json::from_slice(&a.body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_events_travel_through_ingest_into_the_log_and_the_experiment_units() {
    let stack = fresh_stack("decisions");
    let sdk = stack.sdk_config().await;
    let env = generous_budgets(stack.env("ScorerFunction").expect("scorer env"));
    let bucket = stack.resource("ModelsBucket").expect("bucket").name.clone();
    let config = DecisionConfig {
        experiments: vec![serde_json::from_value(json!({
            "id": "checkout-offers", "variations": ["control", "treatment"], "placement": "cart",
            "status": "running"}))
        .expect("experiment")],
        ..DecisionConfig::default()
    };
    S3ObjectStore {
        client: s3_client(&sdk),
        bucket,
    }
    .put(DEFAULT_CONFIG_KEY, config.encode(), Condition::Absent)
    .await
    .expect("config put");

    let s = scorer::Scorer::new(&env, &sdk).await.expect("cold start");
    let mut served = BTreeMap::new();
    for i in 0..40 {
        let d = decide(&s, i).await;
        assert_eq!(d["degraded"], false, "{d}");
        // A member of the universal holdout (5% by default) is outside every experiment.
        if d["arm_reason"] == "holdout" {
            assert_eq!(d["experiment"], Value::Null, "{d}");
            assert_eq!(d["actions"][0]["action"]["type"], "none", "{d}");
        } else {
            assert_eq!(d["experiment"]["id"], "checkout-offers");
        }
        served.insert(format!("shopper-{i}"), d);
    }
    assert_eq!(
        s.counters
            .event_put_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    checkout_ai::drive_ingest(&stack).await.expect("ingest");
    let log = checkout_ai_integration_tests::log_items(&stack).await;
    let logged: Vec<_> = log
        .iter()
        .filter(|e| e.event_type == "decision_served")
        .collect();
    assert_eq!(logged.len(), 40, "every decision reached the log");

    // Any logged decision explains from the log and the registry alone, and the explanation matches
    // the decision's response (found through the decisions-by-id index).
    for d in served.values().take(8) {
        let id = d["decision_id"].as_str().unwrap();
        let x = checkout_ai::explain::run(&stack, id, None, 24)
            .await
            .expect("explained");
        assert_eq!(x.discrepancies, Vec::<String>::new(), "{id}");
        assert_eq!(x.decision_id, id);
        assert_eq!(
            x.served.action,
            d["actions"][0]["action"]["type"].as_str().unwrap()
        );
        assert_eq!(x.served.propensity, d["propensity"].as_f64().unwrap());
        assert_eq!(json!(x.served.policy), d["policy"]);
        assert_eq!(x.model.version, d["model"]["version"].as_str().unwrap());
        assert!(x.model.found);
        assert_eq!(x.inputs.hash_matches, Some(true));
        let score = d["score"]["purchase_probability"].as_f64().unwrap();
        assert_eq!(
            (x.score.logged, x.score.recomputed),
            (Some(score), Some(score))
        );
        let reasons: Vec<&str> = x.score.reasons.iter().map(|r| r.feature.as_str()).collect();
        let served_reasons: Vec<&str> = d["score"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["feature"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, served_reasons);
        let e = x.experiment.as_ref().expect("in the experiment");
        assert_eq!(e.variant, d["experiment"]["variant"].as_str().unwrap());
        assert_eq!(
            e.bucketing
                .as_ref()
                .and_then(|b| b.recomputed_variant.as_deref()),
            Some(e.variant.as_str())
        );
        let blocked: Vec<Value> = x
            .guardrails
            .blocked
            .iter()
            .map(|b| json!({"action": b.action, "guardrail": b.guardrail}))
            .collect();
        assert_eq!(json!(blocked), d["blocked"], "{id}");
        assert_eq!(x.guardrails.agrees_with_log, Some(true));
    }

    let run = checkout_ai::drive_features(&stack).await.expect("features");
    assert_eq!(run.failed_sessions, 0);
    let key = env.optional("PSEUDONYM_KEY").expect("local key");
    let p = Pseudonymizer::new(key.as_bytes()).expect("key");
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = stack.resource("FeaturesTable").expect("table").name.clone();
    let docs = checkout_ai::census::scan_features(&ddb, &table)
        .await
        .expect("scan");
    let units_of = |experiment: &str| -> BTreeMap<String, _> {
        docs.values()
            .filter_map(|d| match d {
                Doc::ExperimentUnit(u) if u.experiment_id == experiment => {
                    Some((u.user_id.clone(), u.clone()))
                }
                _ => None,
            })
            .collect()
    };
    // Every user is a unit of the universal holdout, in the arm their decisions said.
    let holdout = units_of("universal-holdout");
    assert_eq!(holdout.len(), 40, "every user's arm of the holdout");
    for (raw, d) in &served {
        let expected = if d["arm_reason"] == "holdout" {
            "holdout"
        } else {
            "served"
        };
        assert_eq!(holdout[&p.user_id(raw)].variant, expected);
    }
    let units = units_of("checkout-offers");
    let members = served
        .values()
        .filter(|d| d["arm_reason"] == "holdout")
        .count();
    assert_eq!(
        units.len(),
        40 - members,
        "one unit per user outside the holdout"
    );
    for (raw, d) in served.iter().filter(|(_, d)| d["arm_reason"] != "holdout") {
        let unit = &units[&p.user_id(raw)];
        assert_eq!(unit.experiment_id, "checkout-offers");
        assert_eq!(unit.variant, d["experiment"]["variant"].as_str().unwrap());
        assert_eq!(unit.decision_id, d["decision_id"].as_str().unwrap());
        assert_eq!(unit.variants_seen, 1);
    }
    let arms: BTreeMap<&str, usize> = units.values().fold(BTreeMap::new(), |mut m, u| {
        *m.entry(u.variant.as_str()).or_default() += 1;
        m
    });
    assert_eq!(arms.len(), 2, "both arms have units: {arms:?}");

    // The offers came back as session features: a treated session that was offered an incentive is not
    // offered another.
    let mut offered = 0;
    let incentive = |d: &Value| {
        matches!(
            d["actions"][0]["action"]["type"].as_str(),
            Some("free_shipping" | "percent_discount")
        )
    };
    for (raw, d) in &served {
        if !incentive(d) {
            continue;
        }
        offered += 1;
        let n: usize = raw.trim_start_matches("shopper-").parse().unwrap();
        let again = decide(&s, n).await;
        let blocked: Vec<&str> = again["blocked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["guardrail"].as_str().unwrap())
            .collect();
        assert!(blocked.contains(&"one_offer_per_session"), "{again}");
        assert!(!incentive(&again), "{again}");
    }
    assert!(offered > 0, "some treated carts were offered an incentive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_local_stack_stopped_the_scorer_starts_and_answers_degraded() {
    let stack = fresh_stack("stopped");
    // Generous budgets: with the stack stopped every call is refused at once, so the outcome does not
    // depend on them.
    let env: Env = generous_budgets(stack.env("ScorerFunction").expect("scorer env"));
    // The stack's endpoint after it stopped: a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let stopped =
        checkout_aws::config::local_sdk_config(&format!("http://127.0.0.1:{port}"), &stack.region)
            .await;
    let s = scorer::Scorer::new(&env, &stopped)
        .await
        .expect("cold start without the stack");
    assert!(
        matches!(
            s.model.origin,
            checkout_domain::model::registry::Origin::Fallback { .. }
        ),
        "the compiled-in model serves"
    );
    let d = decide(&s, 1).await;
    assert_eq!(d["degraded"], true, "{d}");
    assert_eq!(d["actions"][0]["action"]["type"], "none");
    assert_eq!(d["arm"], "control");
    let counters = &s.counters;
    assert_eq!(
        counters
            .event_put_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        counters
            .event_put_retries
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let health = s
        .respond(&Method::GET, "/v1/health", None, b"", chrono::Utc::now())
        .await;
    let health: Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(health["model"]["origin"]["origin"], "fallback");
    assert!(health["config"]["stale_because"].is_string(), "{health}");
}
