//! The sweep's Lambda entry point over in-memory ports, driven by the `events/` fixtures: the cart of
//! `kinesis-abandoned-cart.json`, logged and projected, is swept by `scheduler-recovery-sweep.json`.

use checkout_aws::Env;
use checkout_domain::decision::config::{DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::event::{Event, EventBody};
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{
    Faults, MemoryFeatureStore, MemoryLog, MemoryObjectStore, MemoryOutbox,
};
use checkout_domain::model::registry::fallback_model;
use checkout_domain::ports::BatchSink;
use checkout_domain::recovery::TREATMENT;
use lambda_runtime::{Context, LambdaEvent};
use recovery_sweep::{Config, Function};
use serde_json::Value;

const CART: &str = include_str!("../../../events/kinesis-abandoned-cart.json");
const SWEEP: &str = include_str!("../../../events/scheduler-recovery-sweep.json");

type Sweep = Function<MemoryLog, MemoryLog, MemoryFeatureStore, MemoryOutbox, MemoryObjectStore>;

/// A pseudonym the default config treats.
fn treated() -> String {
    let e = DecisionConfig::default().recovery.experiment();
    (0..)
        .map(|i| format!("u_{i:032x}"))
        .find(|u| e.assign(u).is_some_and(|a| a.variant == TREATMENT))
        .unwrap()
}

/// The fixture's events as ingest would log them (the user already a pseudonym).
fn cart_entries(user: &str) -> Vec<LogEntry> {
    use base64::Engine;
    let records: Value = serde_json::from_str(CART).unwrap();
    records["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(r["kinesis"]["data"].as_str().unwrap())
                .unwrap();
            let mut e = Event::decode(&data, 32 * 1024).expect("a valid v4 event");
            e.user_id = Some(user.to_string());
            e.context.ip = None;
            LogEntry::of(&e, i64::MAX).unwrap()
        })
        .collect()
}

async fn function(user: &str) -> Sweep {
    let log = MemoryLog::new(25, Faults::default());
    let entries = cart_entries(user);
    let refs: Vec<&LogEntry> = entries.iter().collect();
    log.put(&refs).await.unwrap();
    let updater = FeatureUpdater::new(log, MemoryFeatureStore::default());
    let out = updater.update(&["sess-9c21".to_string()]).await;
    assert!(out.failed.is_empty());
    let config = Config::from_env(&Env::from_pairs([
        ("EVENT_LOG_TABLE", "log"),
        ("FEATURES_TABLE", "features"),
        ("MODELS_BUCKET", "models"),
        ("OUTBOUND_QUEUE_URL", "https://sqs/outbound.fifo"),
    ]))
    .expect("config");
    let FeatureUpdater { log, store, .. } = updater;
    Function {
        log_sink: MemoryLog::new(25, Faults::default()),
        log,
        store,
        outbound: MemoryOutbox::default(),
        config_store: MemoryObjectStore::default(),
        model: fallback_model().unwrap(),
        shadow: None,
        pages: checkout_domain::decision::read::PageCache::new(
            std::time::Duration::from_secs(60),
            100,
        ),
        config,
    }
}

fn event(payload: &str) -> LambdaEvent<Value> {
    LambdaEvent::new(serde_json::from_str(payload).unwrap(), Context::default())
}

#[tokio::test]
async fn the_schedule_fixture_sends_the_due_cart_its_first_message_with_an_incentive() {
    let user = treated();
    let f = function(&user).await;
    let report = f.handle(event(SWEEP)).await.expect("run");
    assert_eq!(report.due_items, 1, "{report:?}");
    assert_eq!(report.sent_by_step.get(&0), Some(&1), "{report:?}");
    let messages = f.outbound.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        (m.user.as_str(), m.cart_token.as_str()),
        (user.as_str(), "sess-9c21")
    );
    assert_eq!(m.cart.value_minor, 2 * 4_999);
    // The merchant shared its costs, so incentives within the margin floor and the discount cap were
    // eligible, and for a shopper this unlikely to come back the configured policy chose one.
    assert!(
        m.action == "free_shipping" || m.action.starts_with("percent_discount_"),
        "{m:?}"
    );
    let logged: Vec<Event> = f
        .log_sink
        .items()
        .values()
        .map(|e| e.event().unwrap())
        .collect();
    let decision = logged
        .iter()
        .find_map(|e| match &e.body {
            EventBody::DecisionServed(d) => Some(d.clone()),
            _ => None,
        })
        .expect("the decision is logged");
    assert_eq!(decision.action_key.as_deref(), Some(m.action.as_str()));
    let keys: Vec<&str> = decision
        .eligible
        .iter()
        .map(|a| a.action.as_str())
        .collect();
    for k in [
        "none",
        "reminder",
        "free_shipping",
        "percent_discount_5",
        "percent_discount_10",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    assert!(
        !keys.contains(&"percent_discount_15"),
        "over the discount cap"
    );
    assert!(logged
        .iter()
        .any(|e| matches!(&e.body, EventBody::RecoveryMessageRequested(r) if r.message_id == m.idempotency_key)));
    let docs = recovery_sweep::metrics(&report, false).documents(chrono::Utc::now());
    let names =
        checkout_aws::emf::check_documents(&docs, recovery_sweep::SERVICE, recovery_sweep::METRICS)
            .expect("valid EMF documents of the function's own metrics");
    assert_eq!(names["MessagesRequestedByStep"], ["service", "step"]);
}

#[tokio::test]
async fn refusals_succeed_without_sending_and_store_faults_fail_for_a_retry() {
    let user = treated();
    let f = function(&user).await;
    for payload in [
        r#"{"now": "yesterday"}"#,
        r#"{"when": 1}"#,
        r#"{"now": "2999-01-01T00:00:00Z"}"#,
    ] {
        let r = f.handle(event(payload)).await.expect("refused, not failed");
        assert_eq!(r.due_items, 0, "{payload}");
    }
    // An invalid decision config sends nothing.
    f.config_store.insert(
        DEFAULT_CONFIG_KEY,
        br#"{"format": "checkout-ai.decision-config", "format_version": 1, "recovery": {"holdout": 0}}"#
            .to_vec(),
    );
    let r = f.handle(event(SWEEP)).await.expect("refused");
    assert_eq!(r.due_items, 0);
    assert!(f.outbound.messages().is_empty());
    // A config that turns recovery off sends nothing either.
    let off = DecisionConfig {
        recovery: checkout_domain::recovery::RecoveryConfig {
            enabled: false,
            ..Default::default()
        },
        ..DecisionConfig::default()
    };
    f.config_store.insert(DEFAULT_CONFIG_KEY, off.encode());
    assert_eq!(f.handle(event(SWEEP)).await.unwrap().due_items, 0);
    assert!(f.outbound.messages().is_empty());
    // The outbound queue down: the run fails (Lambda retries it), the cart stays due.
    let mut f = function(&user).await;
    f.outbound.faults.down_from_call = Some(1);
    let err = f
        .handle(event(SWEEP))
        .await
        .expect_err("a store fault fails the run");
    assert!(err.retryable() && err.reason_code() == "transient", "{err}");
    f.outbound.faults.down_from_call = None;
    let r = f.handle(event(SWEEP)).await.expect("the retry");
    assert_eq!(r.sent(), 1, "{r:?}");
}
