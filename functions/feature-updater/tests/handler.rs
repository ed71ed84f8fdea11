//! The feature-updater handler over in-memory stores, driven by the same `events/` fixture as
//! `cargo lambda invoke --data-file` and `sam local invoke -e`.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use checkout_aws::dynamo::from_item;
use checkout_domain::delivery::RetryPolicy;
use checkout_domain::features::aggregate::{PairCount, PairKind};
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::features::{Doc, Key};
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{Faults, MemoryFailures, MemoryFeatureStore, MemoryLog};
use checkout_domain::ports::{BatchSink, Expect, FeatureWriter, Write};
use feature_updater::Function;
use lambda_runtime::{Context, LambdaEvent};
use std::collections::HashMap;

const INSERTS: &str = include_str!("../../../events/dynamodb-event-log-inserts.json");

fn fixture() -> StreamEvent {
    serde_json::from_str(INSERTS).expect("fixture is a DynamoDB stream event")
}

/// The log entries the fixture's INSERT images hold, as ingest wrote them.
fn logged(event: &StreamEvent) -> Vec<LogEntry> {
    event
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .map(|r| {
            let item: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
                r.change.new_image.clone().into();
            from_item(&item).expect("image is a log entry")
        })
        .collect()
}

/// A function whose event log already holds the fixture's entries.
async fn function(event: &StreamEvent) -> Function<MemoryLog, MemoryFeatureStore, MemoryFailures> {
    let log = MemoryLog::new(25, Faults::default());
    let entries = logged(event);
    let refs: Vec<&LogEntry> = entries.iter().collect();
    log.put(&refs).await.expect("log");
    Function {
        updater: FeatureUpdater::new(log, MemoryFeatureStore::default()),
        failures: MemoryFailures::new(10, Faults::default()),
        retry: RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        },
    }
}

/// Puts a pair-count item where the fixture's session item belongs: a fault no retry fixes.
async fn corrupt_session_item(f: &Function<MemoryLog, MemoryFeatureStore, MemoryFailures>) {
    let pair = PairCount {
        product_id: "sku-1".into(),
        kind: PairKind::CoViewed,
        other_id: "sku-2".into(),
        sessions: 1,
        expires_at: i64::MAX,
    };
    f.updater
        .store
        .commit(vec![Write {
            key: Key::session("sess-7f3a"),
            expect: Expect::Any,
            doc: Some(Doc::ItemPair(pair)),
        }])
        .await
        .expect("seeded");
}

fn failures(r: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn given_the_checkout_funnel_then_the_session_features_follow_it() {
    let event = fixture();
    let f = function(&event).await;
    let response = f
        .handle(LambdaEvent::new(event.clone(), Context::default()))
        .await
        .expect("handled");
    assert!(failures(&response).is_empty());

    let docs = f.updater.store.docs();
    let Some(Doc::Session(s)) = docs.get(&Key::session("sess-7f3a")) else {
        panic!("no session item: {:?}", docs.keys().collect::<Vec<_>>());
    };
    assert_eq!(s.event_count, 12);
    assert_eq!(
        s.product_related, 2,
        "one product page view and one product view"
    );
    // The page view reports its 41 s; the product view is the last page view, so it counts 0 s.
    assert_eq!(s.product_related_duration_ms, 41_000);
    assert_eq!(
        (s.checkout_step, s.coupon_attempts, s.form_errors),
        (1, 1, 1)
    );
    assert_eq!(
        (s.payment_attempts, s.payment_declines, s.orders),
        (2, 1, 1)
    );
    assert_eq!(s.revenue.get("EUR"), Some(&7199));
    assert_eq!(
        (s.cart_value_minor, s.cart_items),
        (0, 0),
        "the order emptied the cart"
    );
    assert_eq!(s.traffic_type, Some(2));
    assert_eq!(
        s.visitor_type,
        Some(checkout_domain::event::VisitorType::Returning)
    );
    let user = s.user_id.clone().expect("user");
    assert!(user.starts_with("u_"));
    let Some(Doc::User(u)) = docs.get(&Key::user(&user)) else {
        panic!("no user item");
    };
    assert_eq!((u.sessions, u.orders), (1, 1));
    let Some(Doc::Item(i)) = docs.get(&Key::item("sku-1")) else {
        panic!("no item");
    };
    assert_eq!((i.views, i.cart_adds, i.purchases), (1, 1, 1));
}

#[tokio::test]
async fn given_the_same_batch_again_then_nothing_is_written() {
    let event = fixture();
    let f = function(&event).await;
    let (_, first) = f.process(event.clone()).await;
    assert!(first.feature_items_written > 0);
    let (response, again) = f.process(event).await;
    assert!(failures(&response).is_empty());
    assert_eq!(again.feature_items_written, 0);
    assert_eq!(again.sessions_current, 1);
}

#[tokio::test]
async fn given_a_store_fault_then_the_batch_is_retried_from_the_first_unfinished_session() {
    let event = fixture();
    let f = function(&event).await;
    f.updater.store.fail_writes_to(Some("session#"));
    let (response, _) = f.process(event.clone()).await;
    let first_insert = event.records[0].change.sequence_number.clone();
    assert_eq!(
        failures(&response),
        vec![first_insert.expect("sequence number")]
    );
    assert!(
        f.failures.items().is_empty(),
        "a transient fault is retried, not sent to the failure destination"
    );
}

/// The fixture's batch followed by the same events of a second session, `sess-b`, with its own
/// sequence numbers.
fn two_sessions() -> StreamEvent {
    let mut event = fixture();
    let other: StreamEvent = serde_json::from_str(
        &INSERTS
            .replace("sess-7f3a", "sess-b")
            .replace("\"0000000000000010", "\"0000000000000020"),
    )
    .expect("fixture");
    event.records.extend(other.records);
    event
}

#[tokio::test]
async fn given_a_permanent_fault_then_the_session_goes_to_the_failure_destination_and_the_batch_proceeds(
) {
    let event = two_sessions();
    let f = function(&event).await;
    corrupt_session_item(&f).await;
    let (response, _) = f.process(event.clone()).await;
    assert!(
        failures(&response).is_empty(),
        "a permanent fault is not handed back to Lambda: {response:?}"
    );
    let sent: Vec<_> = f.failures.items().into_values().collect();
    assert_eq!(sent.len(), 1, "one message for the one session: {sent:?}");
    assert_eq!(sent[0].source, "feature-updater");
    assert_eq!(sent[0].session_id, "sess-7f3a");
    assert_eq!(sent[0].reason, "wrong_entity");
    assert!(sent[0].error.contains("session"), "{}", sent[0].error);
    assert_eq!(
        sent[0].sequence_number, event.records[0].change.sequence_number,
        "at the session's first record"
    );
    // The rest of the batch went on: the other session, and what it contributes to, were projected.
    let docs = f.updater.store.docs();
    let Some(Doc::Session(b)) = docs.get(&Key::session("sess-b")) else {
        panic!("sess-b was not projected");
    };
    assert_eq!(b.event_count, 12);
    assert!(matches!(docs.get(&Key::item("sku-1")), Some(Doc::Item(_))));
}

#[tokio::test]
async fn given_a_permanent_fault_and_an_unreachable_destination_then_the_record_is_retried() {
    let event = fixture();
    let mut f = function(&event).await;
    f.failures = MemoryFailures::new(
        10,
        Faults {
            down_from_call: Some(1),
            ..Faults::default()
        },
    );
    corrupt_session_item(&f).await;
    let (response, _) = f.process(event.clone()).await;
    assert_eq!(
        failures(&response),
        vec![event.records[0]
            .change
            .sequence_number
            .clone()
            .expect("sequence number")],
        "nothing is lost: the record goes back to Lambda"
    );
    assert!(f.failures.items().is_empty());
}

#[tokio::test]
async fn a_batch_reports_its_metrics_in_emf_with_the_lag_of_every_projected_record() {
    let event = fixture();
    let f = function(&event).await;
    let occurred = feature_updater::occurred_at(&event);
    let inserts = logged(&event);
    assert_eq!(occurred.len(), inserts.len());
    let (response, counts) = f.process(event).await;
    assert!(failures(&response).is_empty());
    let newest = occurred.iter().filter_map(|(_, at)| *at).max().unwrap();
    let now = newest + chrono::TimeDelta::seconds(2);
    let docs = feature_updater::metrics(&counts, &occurred, &response, now).documents(now);
    let names = checkout_aws::emf::check_documents(
        &docs,
        feature_updater::SERVICE,
        feature_updater::METRICS,
    )
    .expect("valid EMF documents of the function's own metrics");
    for name in [
        "Events",
        "Sessions",
        "ItemsWritten",
        "Conflicts",
        "ProjectionLag",
    ] {
        assert_eq!(names[name], ["service"], "{name}");
    }
    let lags = checkout_aws::emf::values(&docs, "ProjectionLag");
    assert_eq!(lags.len(), inserts.len(), "one lag per projected record");
    let expected: Vec<f64> = occurred
        .iter()
        .map(|(_, at)| (now - at.unwrap()).num_milliseconds() as f64)
        .collect();
    assert_eq!(lags, expected);
    assert_eq!(
        docs.iter()
            .find(|d| d.get("ItemsWritten").is_some())
            .unwrap()["ItemsWritten"],
        counts.feature_items_written as f64
    );

    // A batch item failure at the second record: only the first was projected.
    let mut failed = aws_lambda_events::event::streams::DynamoDbEventResponse::default();
    let mut failure = aws_lambda_events::event::streams::DynamoDbBatchItemFailure::default();
    failure.item_identifier = occurred[1].0.clone();
    failed.batch_item_failures.push(failure);
    let docs = feature_updater::metrics(&counts, &occurred, &failed, now).documents(now);
    assert_eq!(
        docs.iter()
            .find(|d| d.get("ProjectionLag").is_some())
            .unwrap()["ProjectionLag"],
        expected[0]
    );
    assert_eq!(
        docs.iter()
            .find(|d| d.get("RetriedRecords").is_some())
            .unwrap()["RetriedRecords"],
        (occurred.len() - 1) as f64
    );
}
