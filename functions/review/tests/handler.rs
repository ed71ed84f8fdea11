//! The review function over in-memory stores: only reviewers get in, every action is an event, a double
//! claim is a conflict, and the SLA schedule expires what is due.

use checkout_domain::event::{Event, EventBody, Friction, RiskServed};
use checkout_domain::features::review::{event_id, open, ReviewConfig};
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog, MemoryObjectStore};
use checkout_domain::ports::{AppendOnce, BatchSink, SessionLog, StoreError};
use std::sync::Arc;

/// The event log as both the function's reader and its appender (one table in AWS).
#[derive(Clone)]
struct Shared(Arc<MemoryLog>);

impl SessionLog for Shared {
    async fn session_events(&self, session_id: &str) -> Result<Vec<LogEntry>, StoreError> {
        self.0.session_events(session_id).await
    }
}

impl AppendOnce for Shared {
    async fn append_once(&self, entry: &LogEntry) -> Result<bool, StoreError> {
        self.0.append_once(entry).await
    }
}

type Review = Function<Shared, Shared, MemoryFeatureStore, MemoryObjectStore>;
use checkout_aws::emf::Metrics;
use chrono::{DateTime, Duration, TimeZone, Utc};
use review::{Config, Function, SERVICE};
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("time")
}

fn config() -> Config {
    Config {
        event_log_table: "log".into(),
        features_table: "features".into(),
        models_bucket: "models".into(),
        decision_config_key: "config/decisions.json".into(),
        retention_days: 400,
        reviewer_scope: "checkout-ai/review".into(),
        reviewer_principals: vec![
            "arn:aws:sts::123456789012:assumed-role/checkout-reviewer/".into()
        ],
    }
}

/// Two checkout sessions whose payments went to review.
async fn function() -> Review {
    let risk = RiskServed {
        score: Some(11.0),
        band: Some(2),
        band_from: Some(9.6),
        band_to: Some(85.0),
        friction: Friction::Review,
        reasons: vec!["amount_over_user_mean_order".into()],
        rule_ids: vec![],
        model_id: "fraud-risk".into(),
        model_version: "v1".into(),
        degraded: false,
    };
    let entries: Vec<LogEntry> = (0..2)
        .map(|n| {
            let case = format!("d-{n}");
            let opened = open(
                &case,
                &format!("ord-{n}"),
                &risk,
                &ReviewConfig::default(),
                t0(),
            );
            let e = Event {
                event_id: event_id(&case, 0),
                schema_version: 5,
                occurred_at: t0(),
                session_id: format!("s-{n}"),
                user_id: Some(format!("u_{n}")),
                context: Default::default(),
                body: EventBody::ReviewUpdated(Box::new(opened)),
            };
            LogEntry::of(&e, 4_000_000_000).expect("entry")
        })
        .collect();
    let updater = FeatureUpdater::new(
        MemoryLog::new(25, Faults::default()),
        MemoryFeatureStore::new(Faults::default()),
    );
    let refs: Vec<&LogEntry> = entries.iter().collect();
    assert!(updater.log.put(&refs).await.unwrap().is_empty());
    updater.update(&["s-0".into(), "s-1".into()]).await;
    let FeatureUpdater { log, store, .. } = updater;
    let log = Shared(Arc::new(log));
    Function {
        config: config(),
        sink: log.clone(),
        log,
        store,
        decision_config: checkout_domain::decision::config::ConfigCache::new(
            MemoryObjectStore::default(),
            "config/decisions.json",
            review::CONFIG_TTL,
            review::CONFIG_FETCH_BUDGET,
        ),
    }
}

fn request(method: &str, path: &str, auth: Value, body: Option<Value>) -> Value {
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "requestContext": {"http": {"method": method}, "authorizer": auth},
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false,
    })
}

fn jwt(sub: &str, scopes: &[&str]) -> Value {
    json!({"jwt": {"claims": {"sub": sub, "scope": scopes.join(" ")}, "scopes": scopes}})
}

async fn call(f: &Review, r: Value) -> (u16, Value) {
    let mut m = Metrics::new(SERVICE);
    let out = f.http(&r, t0() + Duration::hours(1), &mut m).await;
    let status = out["statusCode"].as_u64().expect("status") as u16;
    let body: Value = serde_json::from_str(out["body"].as_str().expect("body")).expect("json body");
    (status, body)
}

#[tokio::test]
async fn a_storefront_caller_is_refused_on_every_reviewer_route() {
    let f = function().await;
    let storefront_jwt = jwt("storefront-eu", &["checkout-ai/decisions"]);
    let storefront_iam =
        json!({"iam": {"userArn": "arn:aws:sts::123456789012:assumed-role/storefront/i-1"}});
    for auth in [storefront_jwt, storefront_iam, json!({})] {
        for (method, path) in [
            ("GET", "/v1/reviews"),
            ("GET", "/v1/reviews/d-0"),
            ("POST", "/v1/reviews/d-0/claim"),
            ("POST", "/v1/reviews/d-0/decision"),
        ] {
            let (status, body) = call(&f, request(method, path, auth.clone(), None)).await;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (403, Some("forbidden")),
                "{method} {path} {auth}"
            );
        }
    }
}

#[tokio::test]
async fn reviewers_list_show_claim_and_decide_and_a_double_claim_is_a_conflict() {
    let f = function().await;
    let ann = jwt("ann", &["checkout-ai/review"]);
    let bob =
        json!({"iam": {"userArn": "arn:aws:sts::123456789012:assumed-role/checkout-reviewer/bob"}});

    let (status, list) = call(&f, request("GET", "/v1/reviews", ann.clone(), None)).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d-0", "d-1"]);

    let (status, shown) = call(&f, request("GET", "/v1/reviews/d-0", ann.clone(), None)).await;
    assert_eq!(status, 200);
    assert_eq!(
        shown["case"]["opened"]["reasons"],
        json!(["amount_over_user_mean_order"])
    );
    assert_eq!(shown["user_id"], "u_0", "pseudonymous, never a raw id");

    let (status, claimed) = call(
        &f,
        request("POST", "/v1/reviews/d-0/claim", ann.clone(), None),
    )
    .await;
    assert_eq!(
        (status, claimed["status"].as_str()),
        (200, Some("assigned"))
    );
    let (status, conflict) = call(
        &f,
        request("POST", "/v1/reviews/d-0/claim", bob.clone(), None),
    )
    .await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    let bad = json!({"decision": "maybe", "reason": "x"});
    let (status, _) = call(
        &f,
        request("POST", "/v1/reviews/d-0/decision", ann.clone(), Some(bad)),
    )
    .await;
    assert_eq!(status, 400);
    let reject = json!({"decision": "reject", "reason": "stolen_card"});
    let (status, _) = call(
        &f,
        request(
            "POST",
            "/v1/reviews/d-0/decision",
            bob.clone(),
            Some(reject.clone()),
        ),
    )
    .await;
    assert_eq!(status, 409, "only the assignee decides");
    let (status, decided) = call(
        &f,
        request(
            "POST",
            "/v1/reviews/d-0/decision",
            ann.clone(),
            Some(reject),
        ),
    )
    .await;
    assert_eq!(
        (status, decided["status"].as_str()),
        (200, Some("rejected"))
    );
    let (status, _) = call(&f, request("GET", "/v1/reviews/nope", ann.clone(), None)).await;
    assert_eq!(status, 404);

    // Every action is an audit event in the log, with who acted.
    let actors: Vec<String> = f
        .log
        .session_events("s-0")
        .await
        .unwrap()
        .into_iter()
        .map(|e| match e.event().expect("valid").body {
            EventBody::ReviewUpdated(r) => format!("{:?}:{}", r.transition, r.actor.id),
            _ => String::new(),
        })
        .collect();
    assert_eq!(actors.len(), 3, "{actors:?}");
    assert!(
        actors.contains(&"Assigned:ann".to_string())
            && actors.contains(&"Rejected:ann".to_string())
    );
}

#[tokio::test]
async fn the_schedule_expires_cases_at_their_deadline() {
    let f = function().await;
    let mut m = Metrics::new(SERVICE);
    let early = f
        .scheduled(
            json!({"now": t0() + Duration::days(1)}),
            t0() + Duration::days(1),
            &mut m,
        )
        .await
        .unwrap();
    assert_eq!((early.open, early.expired), (2, 0));
    let late = t0() + Duration::days(7);
    let r = f
        .scheduled(json!({"now": late}), late, &mut m)
        .await
        .unwrap();
    assert_eq!((r.expired, r.open), (2, 0));
    assert!(
        f.scheduled(json!({"when": 1}), late, &mut m).await.is_err(),
        "bad input is refused"
    );
}
