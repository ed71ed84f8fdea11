//! The experiment evaluator with the real AWS clients against moto: it pages through the experiment-unit
//! projection in DynamoDB (small pages), writes the window's HTML and JSON reports and `latest.json` to
//! the reports bucket, makes the same report as the in-memory path, and a re-run of the window changes
//! nothing.

use checkout_ai_integration_tests::fresh_stack;
use checkout_aws::features::to_item;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_domain::decision::config::{DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::experiment::evaluation::{evaluate_experiment, latest_key, report_keys};
use checkout_domain::features::aggregate::Money;
use checkout_domain::features::{Doc, ExperimentUnit};
use checkout_domain::memory::{MemoryFeatureStore, MemoryObjectStore};
use checkout_domain::ports::{BatchSink, Condition, ObjectStore};
use chrono::{TimeZone, Utc};
use experiment_evaluator::{Function, Invocation};
use serde_json::{json, Value};

/// A decision of the compiled-in model at `at`, as the log holds it.
fn logged_decision(id: &str, at: chrono::DateTime<Utc>) -> checkout_domain::ingest::LogEntry {
    use checkout_domain::decision::engine::{decide, Features, Inputs};
    let model = checkout_domain::model::registry::fallback_model().unwrap();
    let request = checkout_domain::decision::request::parse_request(
        format!(r#"{{"session_id": "s-{id}", "placement": "cart"}}"#).as_bytes(),
    )
    .unwrap();
    let d = decide(
        &request,
        Ok(&Features::default()),
        Inputs {
            decision_id: id,
            now: at,
            unit: None,
            model: &model,
            config: &DecisionConfig::default(),
            policy: None,
            shadow: None,
            risk_model: None,
        },
    );
    checkout_domain::ingest::LogEntry::of(&d.event, i64::MAX).unwrap()
}

fn units() -> Vec<ExperimentUnit> {
    let exposed = Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
    (0..730)
        .map(|i: u32| {
            let variant = if i.is_multiple_of(2) {
                "control"
            } else {
                "treatment"
            };
            let orders =
                u32::from(i.is_multiple_of(7)) + u32::from(i.is_multiple_of(23) && i % 2 == 1);
            ExperimentUnit {
                experiment_id: "checkout-offers".into(),
                user_id: format!("pseudonym-{i:04}"),
                variant: variant.into(),
                first_exposure_at: exposed + chrono::Duration::minutes(i64::from(i % 300)),
                decision_id: format!("decision-{i}"),
                variants_seen: if i == 11 { 2 } else { 1 },
                orders_after: orders,
                revenue_after: Money::from([(
                    "USD".into(),
                    i64::from(orders) * (4_000 + i64::from(i % 13) * 250),
                )]),
                orders_before: u32::from(i.is_multiple_of(5)),
                revenue_before: Money::from([(
                    "USD".into(),
                    if i.is_multiple_of(5) { 3_100 } else { 0 },
                )]),
                orders_in_window: 0,
                revenue_in_window: Money::new(),
                unsubscribed_after: false,
                complete: true,
                expires_at: 4_000_000_000,
                cohort: checkout_domain::features::aggregate::Cohort {
                    device: ["desktop", "mobile"][(i % 2) as usize].into(),
                    ..Default::default()
                },
                orders: Vec::new(),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evaluator_pages_the_units_writes_the_window_once_and_matches_the_memory_path() {
    let stack = fresh_stack("evaluations");
    let sdk = stack.sdk_config().await;
    let env = stack
        .env("ExperimentEvaluatorFunction")
        .expect("evaluator env")
        .with("QUERY_PAGE_SIZE", "50");
    let table = stack.resource("FeaturesTable").expect("table").name.clone();
    let models = stack.resource("ModelsBucket").expect("bucket").name.clone();
    let reports_bucket = stack
        .resource("ReportsBucket")
        .expect("bucket")
        .name
        .clone();
    let experiments = vec![
        serde_json::from_value(
            json!({"id": "checkout-offers", "variations": ["control", "treatment"],
            "placement": "cart", "status": "running"}),
        )
        .unwrap(),
        serde_json::from_value(
            json!({"id": "old-test", "variations": ["control", "treatment"],
            "placement": "cart", "status": "stopped"}),
        )
        .unwrap(),
    ];
    let config = DecisionConfig {
        experiments,
        // Only the experiments above: the recovery holdout's has its own tests.
        recovery: checkout_domain::recovery::RecoveryConfig {
            enabled: false,
            ..Default::default()
        },
        ..DecisionConfig::default()
    };
    let s3 = s3_client(&sdk);
    S3ObjectStore {
        client: s3.clone(),
        bucket: models,
    }
    .put(DEFAULT_CONFIG_KEY, config.encode(), Condition::Absent)
    .await
    .expect("config put");
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let memory = MemoryFeatureStore::default();
    for u in units() {
        let doc = Doc::ExperimentUnit(u);
        dynamo
            .put_item()
            .table_name(&table)
            .set_item(Some(to_item(&doc, 1).expect("item")))
            .send()
            .await
            .expect("put unit");
        memory.insert(doc);
    }

    // 520 decisions in the hour before the window's end (and 5 the hour before), written by the event
    // log's own adapter, which sets the decisions-by-hour index key the drift monitor queries.
    let log = checkout_aws::dynamo::DynamoEventLog {
        client: dynamo.clone(),
        table: stack.resource("EventLogTable").expect("log").name.clone(),
    };
    let hour = Utc.with_ymd_and_hms(2026, 11, 24, 11, 0, 0).unwrap();
    let entries: Vec<_> =
        (0..520)
            .map(|i| logged_decision(&format!("d-{i}"), hour + chrono::Duration::seconds(i * 6)))
            .chain((0..5).map(|i| {
                logged_decision(&format!("early-{i}"), hour - chrono::Duration::minutes(5))
            }))
            .collect();
    for chunk in entries.chunks(25) {
        let refs: Vec<_> = chunk.iter().collect();
        assert!(log.put(&refs).await.expect("logged").is_empty());
    }

    let function = Function::new(&env, &sdk).expect("cold start");
    let window_end = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    let now = window_end + chrono::Duration::minutes(2);
    let invocation = Invocation {
        window_end: Some(window_end),
        experiment_id: None,
        drift_window_hours: None,
    };
    let summary = function.run(&invocation, now).await.expect("run");
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    // The running experiment, then the system impact report (the default holdout: no units here).
    assert_eq!(
        summary.reports.len(),
        2,
        "only the running experiment and the impact report"
    );
    assert_eq!(summary.reports[1].experiment_id, "universal-holdout");
    let outcome = &summary.reports[0];
    assert_eq!(outcome.outcome, "written");
    assert!(outcome.latest_updated);
    let drift = summary.drift.as_ref().expect("the drift monitor ran");
    assert_eq!(
        drift.decisions_read, 520,
        "every shard of the hour, nothing of the hour before"
    );
    assert_eq!(drift.reports.len(), 1);
    assert_eq!(drift.reports[0].decisions, 520);
    assert_eq!(drift.reports[0].status, "alarm");

    let reports = S3ObjectStore {
        client: s3.clone(),
        bucket: reports_bucket.clone(),
    };
    let (json_key, html_key) = report_keys("checkout-offers", window_end);
    let stored = reports.get(&json_key).await.unwrap().expect("json report");
    let report: Value = serde_json::from_slice(&stored.bytes).unwrap();
    assert_eq!(report["format"], "checkout-ai.experiment-report");
    assert_eq!(report["version"], 1);
    assert_eq!(report["window"]["end"], "2026-11-24T12:00:00Z");
    // Exposures from 09:00 over 300 minutes: those at or after 12:00 belong to later windows.
    let after_window = units()
        .iter()
        .filter(|u| u.first_exposure_at >= window_end)
        .count() as u64;
    assert_eq!(report["data"]["units"], 730);
    assert_eq!(
        report["data"]["excluded_units"]["exposed_after_window"],
        after_window
    );
    assert_eq!(report["data"]["excluded_units"]["multi_variant"], 1);
    let counted: u64 = report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["units"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 730 - after_window - 1);
    let names: Vec<&str> = report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["conversion", "revenue_per_user", "average_order_value"]
    );

    // The same report as the in-memory path over the same units (DynamoDB paging loses nothing).
    let memory_reports = MemoryObjectStore::default();
    evaluate_experiment(
        &memory,
        &memory_reports,
        &config.experiments[0],
        &function.config.settings,
        "USD",
        &format!("dynamodb:{table}"),
        window_end,
        now,
    )
    .await
    .expect("memory path");
    let from_memory: Value =
        serde_json::from_slice(&memory_reports.object(&json_key).unwrap()).unwrap();
    assert_eq!(report, from_memory);

    let html = s3
        .get_object()
        .bucket(&reports_bucket)
        .key(&html_key)
        .send()
        .await
        .expect("html report");
    assert_eq!(html.content_type(), Some("text/html; charset=utf-8"));
    let page = html.body.collect().await.unwrap().into_bytes();
    assert!(String::from_utf8_lossy(&page).contains("<svg"));
    let latest = reports
        .get(&latest_key("checkout-offers"))
        .await
        .unwrap()
        .expect("latest");
    assert_eq!(latest.bytes, stored.bytes);

    // The scheduler retries: the window is not rewritten.
    let again = function
        .run(&invocation, now + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(again.reports[0].outcome, "exists");
    let after = reports.get(&json_key).await.unwrap().unwrap();
    assert_eq!(after.etag, stored.etag);

    // A window in the future and an unknown experiment id are refused, and not retried.
    let future = Invocation {
        window_end: Some(now + chrono::Duration::hours(1)),
        experiment_id: None,
        drift_window_hours: None,
    };
    let e = function.run(&future, now).await.unwrap_err();
    assert_eq!((e.reason_code(), e.retryable()), ("future_window", false));
    let unknown = Invocation {
        window_end: Some(window_end),
        experiment_id: Some("nope".into()),
        drift_window_hours: None,
    };
    let e = function.run(&unknown, now).await.unwrap_err();
    assert_eq!((e.reason_code(), e.retryable()), ("not_running", false));
    assert!(e.to_string().contains("not running"), "{e}");
}
