//! The scorer's handler over in-memory ports: every answer validated against `openapi.yaml`, 10k hostile
//! bodies, the degraded paths, the kill switch, deterministic assignment, the guardrails seen through the
//! API, and the decision event's retry.

use checkout_domain::decision::config::{DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::decision::policy::Arm;
use checkout_domain::event::Event;
use checkout_domain::experiment::config::Experiment;
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::features::Key;
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{
    Faults, MemoryFeatureStore, MemoryLog, MemoryObjectStore, MemoryStream,
};
use checkout_domain::ports::StoreError;
use checkout_domain::ports::{FeatureReader, Stored};
use checkout_domain::pseudonym::Pseudonymizer;
use chrono::{DateTime, TimeZone, Utc};
use lambda_http::http::Method;
use proptest::prelude::*;
use scorer::{Answer, Config, Scorer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

const KEY: &str = "unit-test-pseudonymization-key-32-bytes!";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

fn settings() -> Config {
    let env = checkout_aws::Env::from_pairs([
        ("FEATURES_TABLE", "features"),
        ("EVENT_STREAM", "events"),
        ("MODELS_BUCKET", "models"),
    ]);
    Config::from_env(&env).expect("config")
}

fn pseudonym(raw: &str) -> String {
    Pseudonymizer::new(KEY.as_bytes()).unwrap().user_id(raw)
}

// ------------------------------------------------------------------------------------------ the contract

/// The OpenAPI document, and a validator for one of its schemas.
fn validator(schema: &str) -> &'static jsonschema::Validator {
    static DOC: OnceLock<Value> = OnceLock::new();
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, &'static jsonschema::Validator>>> =
        OnceLock::new();
    let doc = DOC.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
            .expect("openapi.yaml");
        serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
    });
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache.entry(schema.to_string()).or_insert_with(|| {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{schema}"),
            "components": doc["components"],
        });
        Box::leak(Box::new(
            jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .expect("the schema compiles"),
        ))
    })
}

/// Checks an answer against the contract: its status is documented, and its body matches the schema.
fn conforms(a: &Answer) -> Value {
    let body: Value = serde_json::from_slice(&a.body).expect("every answer is JSON");
    let schema = match a.status.as_u16() {
        200 if body.get("decision_id").is_some() => "DecisionResponse",
        200 => "Health",
        400 | 404 | 405 | 413 | 415 => "Error",
        other => panic!("undocumented status {other}: {body}"),
    };
    let errors: Vec<String> = validator(schema)
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{schema} violated: {errors:#?}\n{body:#}"
    );
    body
}

// ------------------------------------------------------------------------------------------- fixtures

fn entry(id: &str, session: &str, user: &str, minute: u32, kind: &str, data: Value) -> LogEntry {
    let json = json!({
        "event_id": id, "event_type": kind, "schema_version": 1,
        "occurred_at": format!("2026-11-24T11:{minute:02}:00Z"),
        "session_id": session, "user_id": pseudonym(user), "data": data,
    });
    let event = Event::decode(json.to_string().as_bytes(), usize::MAX).expect("valid event");
    LogEntry::of(&event, 4_000_000_000).expect("entry")
}

fn gbp(minor: i64) -> Value {
    json!({"amount_minor": minor, "currency": "GBP"})
}

/// A features table made by the real updater: a past session that bought `a` and `b` together, the
/// session under test (two pages, `a` in the cart), and a risky one with two declines and an offer.
async fn features() -> MemoryFeatureStore {
    let view = |p: &str| json!({"page_type": "product_related", "path": format!("/p/{p}"), "time_on_page_ms": 30000});
    let product = |p: &str| json!({"product_id": p, "price": gbp(2000)});
    let order = json!({"order_id": "o1", "total": gbp(4000), "lines": [
        {"product_id": "a", "quantity": 1, "unit_price_minor": 2000},
        {"product_id": "b", "quantity": 1, "unit_price_minor": 2000}]});
    let declined = |n: &str| json!({"payment_attempt_id": n, "decline_code": "do_not_honor", "amount": gbp(4000)});
    let entries = vec![
        entry("p1", "past", "bob", 1, "page_viewed", view("a")),
        entry("p2", "past", "bob", 2, "product_viewed", product("a")),
        entry("p3", "past", "bob", 3, "product_viewed", product("b")),
        entry("p4", "past", "bob", 4, "order_placed", order),
        entry("s1", "s-cart", "alice", 10, "page_viewed", view("a")),
        entry("s2", "s-cart", "alice", 11, "page_viewed", view("c")),
        entry("s3", "s-cart", "alice", 12, "product_viewed", product("a")),
        entry(
            "s4",
            "s-cart",
            "alice",
            13,
            "cart_item_added",
            json!({"product_id": "a", "quantity": 1, "unit_price": gbp(2000)}),
        ),
        entry(
            "r1",
            "s-risky",
            "carol",
            20,
            "payment_declined",
            declined("x1"),
        ),
        entry(
            "r2",
            "s-risky",
            "carol",
            21,
            "payment_declined",
            declined("x2"),
        ),
        entry(
            "o1",
            "s-offered",
            "dave",
            22,
            "decision_served",
            json!({
            "decision_id": "d-old", "placement": "cart", "action": "free_shipping", "propensity": 1.0,
            "model_id": "m", "model_version": "1", "feature_schema_version": 1, "rules_version": "r",
            "feature_hash": "", "degraded": false}),
        ),
    ];
    projected(&entries).await
}

/// The features table the real updater makes of `entries`.
async fn projected(entries: &[LogEntry]) -> MemoryFeatureStore {
    let updater = FeatureUpdater::new(
        MemoryLog::new(100, Faults::default()),
        MemoryFeatureStore::new(Faults::default()),
    );
    use checkout_domain::ports::BatchSink;
    let refs: Vec<&LogEntry> = entries.iter().collect();
    assert!(updater.log.put(&refs).await.unwrap().is_empty());
    let sessions: Vec<String> = entries.iter().map(|e| e.session_id.clone()).collect();
    updater.update(&sessions).await;
    updater.store
}

fn experiment(id: &str) -> Experiment {
    serde_json::from_value(json!({
        "id": id, "variations": ["control", "treatment"], "placement": "cart", "status": "running"
    }))
    .unwrap()
}

fn config_with(experiments: Vec<Experiment>, kill_switch: bool) -> Vec<u8> {
    DecisionConfig {
        kill_switch,
        experiments,
        ..DecisionConfig::default()
    }
    .encode()
}

/// A treatment-by-default config (every unit outside an experiment gets the policy).
fn treat_all() -> Vec<u8> {
    DecisionConfig {
        default_arm: Arm::Treatment,
        ..DecisionConfig::default()
    }
    .encode()
}

async fn scorer_over<F: FeatureReader>(
    features: F,
    config: Vec<u8>,
    stream: Faults,
) -> Scorer<F, MemoryObjectStore, MemoryStream> {
    let store = MemoryObjectStore::default();
    store.insert(DEFAULT_CONFIG_KEY, config);
    Scorer::assemble(
        settings(),
        features,
        store,
        MemoryStream::new(500, stream),
        async { Ok(KEY.to_string()) },
    )
    .await
    .expect("scorer")
}

async fn scorer(config: Vec<u8>) -> Scorer<MemoryFeatureStore, MemoryObjectStore, MemoryStream> {
    scorer_over(features().await, config, Faults::default()).await
}

fn cart_body(session: &str, user: Option<&str>, placement: &str, with_costs: bool) -> Vec<u8> {
    let mut line = json!({"product_id": "a", "quantity": 2, "unit_price_minor": 6000});
    if with_costs {
        line["unit_cost_minor"] = json!(2500);
    }
    json!({"session_id": session, "user_id": user, "placement": placement,
           "context": {"device": "mobile", "country": "GB", "future_field": [1, 2],
                       "cart": {"currency": "GBP", "items": [line]}}})
    .to_string()
    .into_bytes()
}

async fn post<F: FeatureReader>(
    s: &Scorer<F, MemoryObjectStore, MemoryStream>,
    body: &[u8],
) -> (u16, Value) {
    let a = s
        .respond(
            &Method::POST,
            "/v1/decisions",
            Some("application/json"),
            body,
            now(),
        )
        .await;
    (a.status.as_u16(), conforms(&a))
}

fn events(s: &Scorer<impl FeatureReader, MemoryObjectStore, MemoryStream>) -> Vec<Event> {
    s.events
        .items()
        .into_values()
        .map(|r| Event::decode(&r.data, usize::MAX).expect("a valid event"))
        .collect()
}

// ---------------------------------------------------------------------------------------------- tests

#[tokio::test]
async fn a_treated_cart_gets_ranked_actions_reasons_and_an_event() {
    let s = scorer(treat_all()).await;
    let (status, body) = post(&s, &cart_body("s-cart", Some("alice"), "cart", true)).await;
    assert_eq!(status, 200);
    assert_eq!(body["degraded"], false);
    assert_eq!(body["arm"], "treatment");
    assert_eq!(body["arm_reason"], "default");
    let actions = body["actions"].as_array().unwrap();
    assert!(actions.len() > 2, "{actions:#?}");
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| a["action"]["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"free_shipping") && kinds.contains(&"cross_sell"),
        "{kinds:?}"
    );
    let cross = actions
        .iter()
        .find(|a| a["action"]["type"] == "cross_sell")
        .unwrap();
    assert_eq!(
        cross["action"]["product_ids"],
        json!(["b"]),
        "bought with `a`, not in the cart"
    );
    assert_eq!(
        body["blocked"],
        json!([{"action": "percent_discount", "guardrail": "discount_cap"}])
    );
    let reasons = body["score"]["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 3);
    let p = body["score"]["purchase_probability"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1.0);
    assert_eq!(body["propensity"], 1.0);
    assert_eq!(body["ttl_seconds"], 300);

    let logged = events(&s);
    assert_eq!(logged.len(), 1);
    let e = &logged[0];
    assert_eq!(e.event_id, body["decision_id"].as_str().unwrap());
    assert_eq!(
        e.user_id.as_deref(),
        Some("alice"),
        "raw on the stream; ingest pseudonymizes"
    );
    let checkout_domain::event::EventBody::DecisionServed(d) = &e.body else {
        panic!("{e:?}")
    };
    assert_eq!(d.action, actions[0]["action"]["type"].as_str().unwrap());
    assert_eq!(d.feature_hash.len(), 32);
    assert_eq!(d.model_version, body["model"]["version"].as_str().unwrap());
    assert_eq!(
        s.counters.feature_batch_reads.load(Ordering::Relaxed),
        2,
        "session, then pages"
    );

    // The pages are cached now: the next decision reads once.
    post(&s, &cart_body("s-cart", Some("alice"), "cart", true)).await;
    assert_eq!(s.counters.feature_batch_reads.load(Ordering::Relaxed), 3);
    // The same features give the same vector.
    let again = events(&s);
    let hashes: Vec<_> = again
        .iter()
        .map(|e| match &e.body {
            checkout_domain::event::EventBody::DecisionServed(d) => d.feature_hash.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(hashes[0], hashes[1]);
}

#[tokio::test]
async fn guardrails_hold_through_the_api() {
    let s = scorer(treat_all()).await;
    let blocked = |body: &Value| -> Vec<String> {
        body["blocked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                format!(
                    "{}:{}",
                    b["action"].as_str().unwrap(),
                    b["guardrail"].as_str().unwrap()
                )
            })
            .collect()
    };
    // No costs: the margin floor cannot be checked, so no incentive.
    let (_, body) = post(&s, &cart_body("s-cart", Some("alice"), "cart", false)).await;
    assert!(blocked(&body).contains(&"free_shipping:margin_unknown".to_string()));
    // Two declines: no incentive, and the checkout steps up verification.
    let (_, body) = post(&s, &cart_body("s-risky", Some("carol"), "checkout", true)).await;
    assert!(
        blocked(&body).contains(&"free_shipping:risk_high".to_string()),
        "{body:#}"
    );
    assert_eq!(body["actions"][0]["action"]["type"], "step_up_verification");
    assert_eq!(body["actions"][0]["expected_value_minor"], Value::Null);
    // An offer already served in the session.
    let (_, body) = post(&s, &cart_body("s-offered", Some("dave"), "cart", true)).await;
    assert!(blocked(&body).contains(&"free_shipping:one_offer_per_session".to_string()));
    // Nothing in the cart.
    let empty = json!({"session_id": "s-new", "placement": "cart", "context": {"cart": {"currency": "GBP", "items": []}}});
    let (_, body) = post(&s, empty.to_string().as_bytes()).await;
    assert!(blocked(&body).contains(&"free_shipping:empty_cart".to_string()));
    assert_eq!(body["arm_reason"], "no_user");
}

#[tokio::test]
async fn assignment_is_deterministic_on_the_pseudonymized_user() {
    let e = experiment("checkout-offers");
    let config = config_with(vec![e.clone()], false);
    let a = scorer(config.clone()).await;
    let b = scorer(config).await;
    let mut treated = 0;
    for i in 0..400 {
        let user = format!("user-{i}");
        let body = cart_body(&format!("session-{i}"), Some(&user), "cart", true);
        let (_, x) = post(&a, &body).await;
        let (_, y) = post(&b, &body).await;
        assert_eq!(x["experiment"], y["experiment"], "two containers agree");
        let (_, z) = post(&a, &body).await;
        assert_eq!(x["experiment"], z["experiment"], "a repeat agrees");
        // The universal holdout (5% by default) comes first, also by the pseudonym: its members are
        // outside every experiment, in control.
        if DecisionConfig::default()
            .holdout
            .is_member(&pseudonym(&user))
        {
            assert_eq!(x["arm_reason"], "holdout", "{x}");
            assert_eq!(x["experiment"], Value::Null);
            assert_eq!(
                x["actions"],
                json!([{"rank": 1, "action": {"type": "none"}, "expected_value_minor": 0.0}])
            );
            continue;
        }
        let expected = e.assign(&pseudonym(&user)).unwrap();
        assert_eq!(
            x["experiment"]["variant"], expected.variant,
            "the unit is the pseudonym"
        );
        assert_eq!(
            x["arm"],
            if expected.variation == 0 {
                "control"
            } else {
                "treatment"
            }
        );
        if x["arm"] == "control" {
            assert_eq!(
                x["actions"],
                json!([{"rank": 1, "action": {"type": "none"}, "expected_value_minor": 0.0}])
            );
        }
        treated += expected.variation;
    }
    assert!((160..=240).contains(&treated), "{treated} of 400 treated");
}

#[tokio::test(start_paused = true)]
async fn the_kill_switch_forces_control_within_one_ttl() {
    let s = scorer(config_with(vec![experiment("checkout-offers")], false)).await;
    let users: Vec<String> = (0..50).map(|i| format!("k-{i}")).collect();
    let mut arms = Vec::new();
    for u in &users {
        let (_, body) = post(&s, &cart_body("s-cart", Some(u), "cart", true)).await;
        arms.push(body["arm"].clone());
    }
    assert!(arms.contains(&json!("treatment")));

    s.decision_config.store().insert(
        DEFAULT_CONFIG_KEY,
        config_with(vec![experiment("checkout-offers")], true),
    );
    tokio::time::advance(s.settings.config_ttl).await;
    for u in &users {
        let (_, body) = post(&s, &cart_body("s-cart", Some(u), "cart", true)).await;
        assert_eq!(body["arm"], "control");
        assert_eq!(body["arm_reason"], "kill_switch");
        assert_eq!(
            body["experiment"],
            Value::Null,
            "killed decisions are no exposures"
        );
        assert_eq!(body["actions"][0]["action"]["type"], "none");
    }
    let a = s
        .respond(&Method::GET, "/v1/health", None, b"", now())
        .await;
    assert_eq!(conforms(&a)["config"]["kill_switch"], true);
}

/// A features table that never answers.
struct Hanging;

impl FeatureReader for Hanging {
    async fn get_many(&self, _: &[Key]) -> Result<HashMap<Key, Stored>, StoreError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_or_failing_feature_read_degrades_to_control_never_a_5xx() {
    let config = config_with(vec![experiment("checkout-offers")], false);
    let slow = scorer_over(Hanging, config.clone(), Faults::default()).await;
    let started = tokio::time::Instant::now();
    let (status, body) = post(&slow, &cart_body("s-cart", Some("alice"), "cart", true)).await;
    assert_eq!(status, 200);
    assert_eq!(body["degraded"], true);
    assert!(
        body["degraded_reason"].as_str().unwrap().contains("budget"),
        "{body}"
    );
    assert_eq!(body["actions"][0]["action"]["type"], "none");
    assert_eq!(body["score"], Value::Null);
    let took = started.elapsed();
    assert!(
        took <= slow.settings.feature_budget + slow.settings.config_fetch_budget,
        "{took:?}"
    );
    assert_eq!(
        body["experiment"]["id"], "checkout-offers",
        "assignment kept (intention to treat)"
    );
    assert_eq!(events(&slow).len(), 1, "degraded decisions are logged too");

    let down = MemoryFeatureStore::new(Faults {
        down_from_call: Some(1),
        ..Faults::default()
    });
    let failing = scorer_over(down, config, Faults::default()).await;
    let (status, body) = post(
        &failing,
        &cart_body("s-cart", Some("alice"), "checkout", true),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["degraded"], true);
    assert!(
        body["degraded_reason"]
            .as_str()
            .unwrap()
            .contains("injected"),
        "{body}"
    );
    assert_eq!(failing.counters.degraded.load(Ordering::Relaxed), 1);
    for (s, reason) in [
        (slow.take_metrics(), "feature_read_timeout"),
        (failing.take_metrics(), "feature_read_failed"),
    ] {
        let mut s = s;
        let docs = s.documents(now());
        let by_reason: Vec<&Value> = docs
            .iter()
            .filter(|d| d.get("DegradedByReason").is_some())
            .collect();
        assert_eq!(by_reason.len(), 1, "{docs:?}");
        assert_eq!(by_reason[0]["reason"], reason);
        let degraded = docs.iter().find(|d| d.get("Degraded").is_some()).unwrap();
        assert_eq!(degraded["Degraded"], 1.0);
    }
}

#[tokio::test]
async fn every_decision_and_refusal_is_a_metric_in_emf() {
    let s = scorer(treat_all()).await;
    let (_, first) = post(&s, &cart_body("s-cart", Some("alice"), "cart", true)).await;
    post(&s, &cart_body("s-2", Some("bob"), "checkout", true)).await;
    let (status, _) = post(&s, b"{not json").await;
    assert_eq!(status, 400);
    let docs = s.take_metrics().documents(now());
    let names = checkout_aws::emf::check_documents(&docs, scorer::SERVICE, scorer::METRICS)
        .expect("valid EMF documents of the function's own metrics");
    assert_eq!(
        names["Decisions"],
        ["service", "placement", "action", "variant"]
    );
    assert_eq!(names["DecisionsByAction"], ["service", "action"]);
    assert_eq!(names["Rejected"], ["service", "status"]);
    for name in [
        "DecisionCount",
        "Degraded",
        "FeatureReadLatency",
        "DecisionLatency",
        "EventPutRetries",
        "EventPutFailures",
    ] {
        assert_eq!(names[name], ["service"], "{name}");
    }
    let plain = docs
        .iter()
        .find(|d| d.get("DecisionCount").is_some())
        .unwrap();
    assert_eq!(plain["DecisionCount"], json!([1.0, 1.0]));
    assert_eq!(plain["Degraded"], json!([0.0, 0.0]));
    assert_eq!(plain["DecisionLatency"].as_array().unwrap().len(), 2);
    let cart = docs
        .iter()
        .find(|d| d.get("Decisions").is_some() && d["placement"] == "cart")
        .unwrap();
    assert_eq!(cart["action"], first["actions"][0]["action"]["type"]);
    assert_eq!(cart["variant"], "none", "no experiment");
    assert_eq!(first["experiment"], Value::Null);
    assert!(s.take_metrics().documents(now()).is_empty(), "taken once");
}

#[tokio::test]
async fn a_failed_event_put_is_retried_once_then_counted_and_never_fails_the_answer() {
    let once = scorer_over(
        features().await,
        treat_all(),
        Faults {
            transient_calls: vec![1],
            ..Faults::default()
        },
    )
    .await;
    let (status, _) = post(&once, &cart_body("s-cart", Some("alice"), "cart", true)).await;
    assert_eq!(status, 200);
    assert_eq!(events(&once).len(), 1, "the retry delivered it");
    assert_eq!(once.counters.event_put_retries.load(Ordering::Relaxed), 1);
    assert_eq!(once.counters.event_put_failures.load(Ordering::Relaxed), 0);

    let down = scorer_over(
        features().await,
        treat_all(),
        Faults {
            down_from_call: Some(1),
            ..Faults::default()
        },
    )
    .await;
    let (status, _) = post(&down, &cart_body("s-cart", Some("alice"), "cart", true)).await;
    assert_eq!(status, 200);
    assert_eq!(down.events.calls(), 2, "one attempt and one retry");
    assert_eq!(down.counters.event_put_failures.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn refusals_carry_a_stable_code_and_the_field() {
    let s = scorer(treat_all()).await;
    // (body, content type, status, code, field)
    type Case = (
        Vec<u8>,
        Option<&'static str>,
        u16,
        &'static str,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (b"{".to_vec(), None, 400, "malformed_json", None),
        (br#"{"placement": "cart"}"#.to_vec(), None, 400, "missing_field", Some("session_id")),
        (br#"{"session_id": "s", "placement": "basket"}"#.to_vec(), None, 400, "invalid_field", Some("placement")),
        (
            br#"{"session_id": "s", "placement": "cart", "context": {"cart": {"currency": "GBP", "items": [{"product_id": "a", "quantity": 0, "unit_price_minor": 1}]}}}"#.to_vec(),
            None, 400, "invalid_field", Some("context.cart.items[0].quantity"),
        ),
        (vec![b' '; 17 * 1024], None, 413, "body_too_large", None),
        (cart_body("s", None, "cart", true), Some("text/plain"), 415, "unsupported_media_type", None),
        (
            br#"{"session_id": "s", "placement": "checkout", "context": {"payment": {"card_fingerprint": "5555 5555 5555 4444"}}}"#.to_vec(),
            None, 400, "card_number_detected", None,
        ),
    ];
    for (body, ct, status, code, field) in cases {
        let a = s
            .respond(
                &Method::POST,
                "/v1/decisions",
                ct.or(Some("application/json")),
                &body,
                now(),
            )
            .await;
        let json = conforms(&a);
        assert_eq!(a.status.as_u16(), status, "{json}");
        assert_eq!(json["error"]["code"], code);
        assert_eq!(json["error"]["field"].as_str(), field);
    }
    let a = s
        .respond(&Method::GET, "/v1/decisions", None, b"", now())
        .await;
    assert_eq!((a.status.as_u16(), a.allow), (405, Some("POST")));
    conforms(&a);
    let a = s.respond(&Method::GET, "/v2/x", None, b"", now()).await;
    assert_eq!(conforms(&a)["error"]["code"], "not_found");
    assert!(
        events(&s).is_empty(),
        "refused requests decide and log nothing"
    );
    assert_eq!(s.counters.rejected.load(Ordering::Relaxed), 9);
}

// --------------------------------------------------------------------------------- hostile input

#[path = "../../../shared/domain/tests/support/hostile.rs"]
mod hostile;

fn valid_request() -> Value {
    serde_json::from_slice(&cart_body("s-cart", Some("alice"), "cart", true)).expect("valid")
}

#[test]
fn ten_thousand_hostile_bodies_get_a_documented_answer_and_never_a_5xx() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let s = rt.block_on(scorer(treat_all()));
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&hostile::hostile_body(valid_request()), |body| {
            let a = rt.block_on(s.respond(
                &Method::POST,
                "/v1/decisions",
                Some("application/json"),
                &body,
                now(),
            ));
            prop_assert!(a.status.as_u16() < 500);
            conforms(&a);
            *statuses
                .borrow_mut()
                .entry(a.status.as_u16())
                .or_insert(0u32) += 1;
            Ok(())
        })
        .expect("no hostile body breaks the contract");
    let statuses = statuses.into_inner();
    let total: u32 = statuses.values().sum();
    assert_eq!(total, 10_000);
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 5_000,
        "{statuses:?}"
    );
    assert!(
        statuses.contains_key(&200),
        "some mutations stay valid: {statuses:?}"
    );
    eprintln!("hostile bodies by status: {statuses:?}");
}

#[tokio::test]
async fn the_events_fixtures_go_through_the_lambda_entry_point() {
    let s = scorer(treat_all()).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/");
    for (file, status) in [
        ("apigw-decision.json", 200),
        ("apigw-decision-invalid.json", 400),
        ("apigw-health.json", 200),
    ] {
        let text = std::fs::read_to_string(format!("{dir}{file}")).expect("fixture");
        let request = lambda_http::request::from_str(&text).expect("an HTTP API v2 event");
        let response = s.handle(request).await.expect("the handler never errs");
        assert_eq!(response.status().as_u16(), status, "{file}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let answer = Answer {
            status: response.status(),
            body: response.body().to_vec(),
            allow: None,
        };
        conforms(&answer);
    }
    assert_eq!(events(&s).len(), 1, "one decision, one event");
}

fn learned_policy(
    version: &str,
    favourite: &str,
) -> checkout_domain::decision::learned::PolicyArtifact {
    use checkout_domain::decision::learned::*;
    let outcome_models = [
        "none",
        "free_shipping",
        "percent_discount_5",
        "percent_discount_10",
        "reminder",
        "cross_sell",
    ]
    .into_iter()
    .map(|k| {
        let intercept = if k == favourite { 1.0 } else { -2.0 };
        let mut weights = vec![0.0; CONTEXT_FEATURES.len()];
        weights[0] = intercept;
        (
            k.to_string(),
            OutcomeModel {
                weights,
                rows: 100,
                orders: 10,
            },
        )
    })
    .collect();
    PolicyArtifact {
        name: DEFAULT_POLICY_NAME.into(),
        version: version.into(),
        created_at: now(),
        features: CONTEXT_FEATURES.iter().map(|f| f.to_string()).collect(),
        outcome_models,
        exploration: Exploration::default(),
        training: PolicyTraining {
            data_sha256: "0".repeat(64),
            rows: 600,
            horizon_hours: 24,
            library: "test".into(),
            alpha: 1.0,
        },
        evaluation: Value::Null,
    }
}

#[tokio::test]
async fn a_promoted_policy_serves_the_treatment_arm_and_a_shadow_is_logged_beside_it() {
    use checkout_domain::decision::learned::DEFAULT_POLICY_NAME;
    use checkout_domain::model::registry::{move_champion, publish};
    use checkout_domain::model::ModelArtifact;
    let store = MemoryObjectStore::default();
    store.insert(DEFAULT_CONFIG_KEY, treat_all());
    let champion = learned_policy("v1", "reminder");
    let key = publish(&store, &champion).await.expect("published");
    let sha = ModelArtifact::digest(&store.object(&key).expect("stored"));
    assert!(move_champion(
        &store,
        DEFAULT_POLICY_NAME,
        "v1",
        sha,
        None,
        "record",
        now()
    )
    .await
    .expect("moved"));
    publish(&store, &learned_policy("v2", "free_shipping"))
        .await
        .expect("published");
    let mut config = settings();
    config.shadow_policy_version = Some("v2".into());
    let s = Scorer::assemble(
        config,
        features().await,
        store,
        MemoryStream::new(500, Faults::default()),
        async { Ok(KEY.to_string()) },
    )
    .await
    .expect("scorer");
    let (status, body) = post(&s, &cart_body("s-1", Some("u-1"), "cart", true)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["policy"],
        json!({"id": "next-best-action", "version": "v1"})
    );
    let e = events(&s);
    let checkout_domain::event::EventBody::DecisionServed(d) = &e[0].body else {
        panic!("not a decision");
    };
    assert_eq!(e[0].schema_version, checkout_domain::event::SCHEMA_VERSION);
    assert_eq!(d.score, body["score"]["purchase_probability"].as_f64());
    assert_eq!(d.model_input.len(), 17, "every UCI column");
    assert_eq!(d.policy_features.len(), 8);
    let shadow = d.shadow.as_ref().expect("the shadow's choice is logged");
    assert_eq!(shadow.policy.version, "v2");
    let sum: f64 = shadow.eligible.iter().map(|a| a.probability).sum();
    assert!((sum - 1.0).abs() < 1e-9);
    let health = s
        .respond(&Method::GET, "/v1/health", None, b"", now())
        .await;
    let h = conforms(&health);
    assert_eq!(
        h["policy"]["serving"],
        json!({"origin": "champion", "version": "v1"})
    );
    assert_eq!(h["policy"]["shadow"], json!("v2"));
}

#[tokio::test]
async fn without_a_learned_policy_the_configured_one_serves_and_says_so() {
    let s = scorer(treat_all()).await;
    let (status, body) = post(&s, &cart_body("s-1", Some("u-1"), "cart", true)).await;
    assert_eq!(status, 200);
    assert_eq!(body["policy"]["id"], json!("configured-uplift"));
    let h = conforms(
        &s.respond(&Method::GET, "/v1/health", None, b"", now())
            .await,
    );
    assert_eq!(h["policy"]["serving"]["origin"], json!("configured"));
    assert!(h["policy"]["serving"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("no champion")));
}

/// Payments on one device, each confirmed as fraud a few days later: what a fraud ring's device looks
/// like in the log (schema v5, through the real updater).
async fn ring_features() -> MemoryFeatureStore {
    let p = Pseudonymizer::new(KEY.as_bytes()).unwrap();
    let mut entries = Vec::new();
    for i in 0..12 {
        let session = format!("ring-{i}");
        let day = 12 + i % 3;
        let v5 = |id: String, kind: &str, day: u32, data: Value| {
            let json = json!({
                "event_id": id, "event_type": kind, "schema_version": 5,
                "occurred_at": format!("2026-11-{day:02}T10:{i:02}:00Z"),
                "session_id": session, "user_id": pseudonym(&format!("mule-{i}")),
                "context": {"device": {"type": "mobile",
                    "id": p.pseudonymize(checkout_domain::pseudonym::IdKind::Device, "ring-device")}},
                "data": data,
            });
            let event =
                Event::decode(json.to_string().as_bytes(), usize::MAX).expect("valid event");
            LogEntry::of(&event, 4_000_000_000).expect("entry")
        };
        entries.push(v5(format!("a{i}"), "payment_attempted", day, json!({
            "payment_attempt_id": format!("pa-{i}"), "method": "card", "amount": gbp(9000),
            "card_fingerprint": p.pseudonymize(checkout_domain::pseudonym::IdKind::Card, &format!("card-{i}"))})));
        entries.push(v5(
            format!("o{i}"),
            "order_placed",
            day,
            json!({
            "order_id": format!("ord-{i}"), "total": gbp(9000), "lines": []}),
        ));
        entries.push(v5(
            format!("f{i}"),
            "fraud_confirmed",
            day + 6,
            json!({
            "order_id": format!("ord-{i}"), "source": "issuer"}),
        ));
    }
    projected(&entries).await
}

#[tokio::test]
async fn at_checkout_the_answer_carries_the_friction_score_band_and_reasons() {
    let s = scorer_over(ring_features().await, treat_all(), Faults::default()).await;
    let body = |device: &str| {
        json!({"session_id": "s-pay", "user_id": "erin", "placement": "checkout",
               "context": {"country": "GB", "device_id": device, "ip": "198.51.100.7",
                           "payment": {"card_fingerprint": "card-new", "billing_country": "GB",
                                       "shipping_country": "GB"},
                           "cart": {"currency": "GBP", "items": [{"product_id": "a", "quantity": 1,
                                    "unit_price_minor": 9000}]}}})
        .to_string()
        .into_bytes()
    };
    let (status, clean) = post(&s, &body("fresh-device")).await;
    assert_eq!(status, 200);
    assert_eq!(clean["risk"]["friction"], "allow", "{clean:#}");
    let (status, ring) = post(&s, &body("ring-device")).await;
    assert_eq!(status, 200);
    let risk = &ring["risk"];
    assert_ne!(risk["friction"], "allow", "{ring:#}");
    assert!(risk["score"].as_f64() > clean["risk"]["score"].as_f64());
    assert!(risk["reasons"].to_string().contains("device"), "{risk}");
    // Logged with the decision, with the device pseudonymized: the raw id is nowhere in the event.
    let logged = events(&s);
    let served: Vec<_> = logged
        .iter()
        .filter_map(|e| match &e.body {
            checkout_domain::event::EventBody::DecisionServed(d) => d.risk.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(served.len(), 2);
    assert!(served
        .iter()
        .any(|r| serde_json::to_value(r).unwrap() == *risk));
    let text = format!("{logged:?}");
    assert!(!text.contains("ring-device") && !text.contains("card-new"));
    // Not assessed elsewhere.
    let (_, cart) = post(&s, &cart_body("s-cart", Some("alice"), "cart", true)).await;
    assert!(cart.get("risk").is_none());
}
