//! The review function on moto with the real clients: a case opened in the log, projected into the queue
//! by the feature updater, worked through the reviewer API; two claims for the same event number, and
//! only one lands (the conditional `PutItem` of `AppendOnce`).

use checkout_ai_integration_tests::fresh_stack;
use checkout_aws::dynamo::{DynamoEventLog, DynamoLogIndex};
use checkout_aws::emf::Metrics;
use checkout_aws::features::{DynamoFeatureStore, DynamoSessionLog};
use checkout_domain::event::*;
use checkout_domain::features::review::{event_id, open, ReviewConfig};
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::ingest::LogEntry;
use checkout_domain::ports::{AppendOnce, BatchSink, SessionLog};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc::now() - Duration::hours(1)
}

fn opened(case: &str, session: &str) -> LogEntry {
    let risk = RiskServed {
        score: Some(12.0),
        band: Some(2),
        band_from: Some(9.0),
        band_to: Some(80.0),
        friction: Friction::Review,
        reasons: vec!["log_device_known_frauds_14d".into()],
        rule_ids: vec![],
        model_id: "fraud-risk".into(),
        model_version: "v1".into(),
        degraded: false,
    };
    let e = Event {
        event_id: event_id(case, 0),
        schema_version: SCHEMA_VERSION,
        occurred_at: t0(),
        session_id: session.into(),
        user_id: Some("u_7".into()),
        context: Context::default(),
        body: EventBody::ReviewUpdated(Box::new(open(
            case,
            "ord-1",
            &risk,
            &ReviewConfig::default(),
            t0(),
        ))),
    };
    LogEntry::of(&e, 4_000_000_000).unwrap()
}

fn request(method: &str, path: &str, sub: &str, body: Option<Value>) -> Value {
    json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path,
        "requestContext": {"http": {"method": method},
            "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": ["checkout-ai/review"]}}},
        "body": body.map(|b| b.to_string()), "isBase64Encoded": false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_worked_through_the_api_and_a_taken_event_number_is_refused() {
    let stack = fresh_stack("review");
    let sdk = stack.sdk_config().await;
    let env = stack.env("ReviewFunction").expect("review env");
    let f = review::Function::new(&env, &sdk).expect("cold start");
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let log_table = stack.resource("EventLogTable").unwrap().name.clone();
    let sink = DynamoEventLog {
        client: ddb.clone(),
        table: log_table.clone(),
    };

    // The conditional append: once, then refused, and the first stays.
    let first = opened("d-9", "s-9");
    assert!(sink.append_once(&first).await.unwrap());
    let mut other = first.clone();
    other.body = other.body.replace("ord-1", "ord-2");
    assert!(!sink.append_once(&other).await.unwrap());
    let log = DynamoLogIndex {
        client: ddb.clone(),
        table: log_table.clone(),
    };
    let kept = log.session_events("s-9").await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].body.contains("ord-1"));

    // A case opened by the decision API, projected into the queue by the updater.
    let entry = opened("d-1", "s-1");
    assert!(sink.put(&[&entry]).await.unwrap().is_empty());
    let updater = FeatureUpdater::new(
        DynamoSessionLog {
            client: ddb.clone(),
            table: log_table.clone(),
        },
        DynamoFeatureStore {
            client: ddb.clone(),
            table: stack.resource("FeaturesTable").unwrap().name.clone(),
        },
    );
    assert!(updater
        .update(&["s-1".into(), "s-9".into()])
        .await
        .failed
        .is_empty());

    let call = |r: Value| {
        let f = &f;
        async move {
            let mut m = Metrics::new(review::SERVICE);
            let out = f.http(&r, Utc::now(), &mut m).await;
            let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
            (out["statusCode"].as_u64().unwrap(), body)
        }
    };
    let (status, list) = call(request("GET", "/v1/reviews", "ann", None)).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["d-9", "d-1"],
        "soonest deadline first (d-9 was opened first)"
    );
    let (status, _) = call(request("POST", "/v1/reviews/d-1/claim", "ann", None)).await;
    assert_eq!(status, 200);
    let (status, conflict) = call(request("POST", "/v1/reviews/d-1/claim", "bob", None)).await;
    assert_eq!(status, 409, "{conflict}");
    let decision = json!({"decision": "approve", "reason": "verified_customer"});
    let (status, done) = call(request(
        "POST",
        "/v1/reviews/d-1/decision",
        "ann",
        Some(decision),
    ))
    .await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("approved")),
        "{done}"
    );
    let events = log.session_events("s-1").await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
        ["d-1#0", "d-1#1", "d-1#2"]
    );
}
