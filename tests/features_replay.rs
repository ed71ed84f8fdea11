//! REES46 → Kinesis → ingest → event log → its DynamoDB stream → feature updater, on moto. The live
//! features table must equal a rebuild from the log, and delivering the stream again must change nothing.
//! A batch that keeps failing goes to the on-failure queue after the mapping's retries; a session that
//! cannot be projected for a permanent reason goes there at once, through the real SQS adapter.

use checkout_ai::census::scan_features;
use checkout_ai_integration_tests::{fresh_stack, log_items, rees46};
use checkout_domain::features::Doc;
use std::collections::{BTreeMap, BTreeSet};

/// Enough of the clickstream for sessions that span several stream batches, small enough for CI; the
/// demo projects the whole file.
const ROWS: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projected_features_equal_a_rebuild_and_a_redelivered_stream_changes_nothing() {
    let Some(file) = rees46() else { return };
    let stack = fresh_stack("features");
    let replay = checkout_ai::replay(&stack, &file, None, Some(ROWS))
        .await
        .expect("replay");
    checkout_ai::drive_ingest(&stack).await.expect("ingest");
    let log = log_items(&stack).await;
    assert_eq!(log.len(), replay.distinct_event_ids);

    let run = checkout_ai::drive_features(&stack).await.expect("features");
    assert_eq!(run.failed_sessions, 0, "{run:?}");
    assert_eq!(
        run.stream.records_delivered,
        log.len(),
        "one INSERT per log entry reaches the function"
    );
    assert!(
        run.stream.invocations > 1,
        "several batches: {:?}",
        run.stream
    );

    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    let table = stack.resource("FeaturesTable").expect("table").name.clone();
    let live = scan_features(&ddb, &table).await.expect("scan");
    let report = checkout_ai::compare(log.clone(), &live, Default::default());
    assert_eq!(report.unreadable_events, 0);
    assert_eq!(report.differences, 0, "{:#?}", report.sample);
    assert_eq!(report.expected_items, report.live_items);
    // A scan filtered to item and page items (the demo's archive phase reads them so) returns exactly
    // those.
    let filtered = checkout_ai::census::scan_entities(&ddb, &table, &["item", "page"])
        .await
        .expect("filtered scan");
    let expected: BTreeMap<_, _> = live
        .iter()
        .filter(|(_, d)| matches!(d, Doc::Item(_) | Doc::Page(_)))
        .map(|(k, d)| (k.clone(), d.clone()))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(filtered, expected);

    // Every session in the log has its item, and REES46's views, carts and purchases add up per item.
    let sessions: BTreeSet<&str> = log.iter().map(|e| e.session_id.as_str()).collect();
    assert_eq!(report.live_by_entity["session"], sessions.len());
    let views: u32 = live
        .values()
        .filter_map(|d| match d {
            Doc::Item(i) => Some(i.views),
            _ => None,
        })
        .sum();
    let logged_views = log
        .iter()
        .filter(|e| e.event_type == "product_viewed")
        .count();
    assert_eq!(views as usize, logged_views);

    // Ingest the same rows again: identical re-puts (moto emits MODIFY records for them, which the
    // mapping's INSERT filter drops), then the whole stream again from the start, as after a lost
    // checkpoint. Nothing may change.
    checkout_ai::replay(&stack, &file, None, Some(ROWS))
        .await
        .expect("replay 2");
    checkout_ai::drive_ingest(&stack).await.expect("ingest 2");
    let again = checkout_ai::drive_features(&stack)
        .await
        .expect("features 2");
    assert_eq!(again.stream.records_delivered, log.len(), "only INSERTs");
    assert_eq!(again.failed_sessions, 0);
    assert_eq!(again.counts.feature_items_written, 0, "{:?}", again.counts);
    assert_eq!(again.counts.sessions_current, again.counts.sessions);
    let after = scan_features(&ddb, &table).await.expect("scan 2");
    assert_eq!(after, live);
    assert_eq!(
        checkout_ai::rebuild_features(&stack)
            .await
            .expect("rebuild")
            .differences,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_keeps_failing_is_given_up_to_the_on_failure_queue_and_skipped() {
    use checkout_domain::delivery::RetryPolicy;
    use checkout_domain::features::updater::FeatureUpdater;
    use checkout_domain::memory::{Faults, MemoryFailures, MemoryFeatureStore, MemoryLog};

    let Some(file) = rees46() else { return };
    let stack = fresh_stack("features-abandon");
    let replay = checkout_ai::replay(&stack, &file, None, Some(50))
        .await
        .expect("replay");
    checkout_ai::drive_ingest(&stack).await.expect("ingest");

    // A features store that is down for good: every batch fails at its first record.
    let down = feature_updater::Function {
        updater: FeatureUpdater::new(
            MemoryLog::new(25, Faults::default()),
            MemoryFeatureStore::new(Faults {
                down_from_call: Some(1),
                ..Faults::default()
            }),
        ),
        failures: MemoryFailures::new(10, Faults::default()),
        retry: RetryPolicy::default(),
    };
    let sdk = stack.sdk_config().await;
    let run = checkout_ai::drive_features_with(&stack, &sdk, &down, &Default::default())
        .await
        .expect("drain");
    let retries = stack
        .event_source("FeatureUpdaterFunction", "DynamoDB")
        .expect("source")
        .maximum_retry_attempts
        .expect("the template bounds retries");
    assert_eq!(run.stream.batches_abandoned, 1, "{run:?}");
    assert_eq!(run.stream.invocations, retries as usize + 1);

    let messages =
        checkout_ai_integration_tests::queue_messages(&stack, "FeatureUpdaterFailureQueue").await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let info = &messages[0]["DDBStreamBatchInfo"];
    assert_eq!(
        info["batchSize"],
        serde_json::json!(replay.distinct_event_ids)
    );
    assert_eq!(
        messages[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_cannot_be_projected_goes_to_the_failure_queue_and_the_rest_lands() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use checkout_aws::features::to_item;
    use checkout_domain::features::aggregate::{PairCount, PairKind};
    use checkout_domain::features::Key;

    let Some(file) = rees46() else { return };
    let stack = fresh_stack("features-permanent");
    checkout_ai::replay(&stack, &file, None, Some(200))
        .await
        .expect("replay");
    checkout_ai::drive_ingest(&stack).await.expect("ingest");
    let log = log_items(&stack).await;
    let sessions: BTreeSet<&str> = log.iter().map(|e| e.session_id.as_str()).collect();
    let broken = *sessions.iter().next().expect("a session");

    // An item of the wrong entity where the session's item belongs: no retry can fix it.
    let sdk = stack.sdk_config().await;
    let table = stack.resource("FeaturesTable").expect("table").name.clone();
    // (The adapter keys an item by its document, so this takes a raw PutItem: a bad migration or a
    // hand edit.)
    let pair = PairCount {
        product_id: "p".into(),
        kind: PairKind::CoViewed,
        other_id: "q".into(),
        sessions: 1,
        expires_at: i64::MAX,
    };
    let mut item = to_item(&Doc::ItemPair(pair), 1).expect("item");
    let key = Key::session(broken);
    item.insert("pk".into(), AttributeValue::S(key.pk.clone()));
    item.insert("sk".into(), AttributeValue::S(key.sk.clone()));
    aws_sdk_dynamodb::Client::new(&sdk)
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .expect("seed");

    // The real function, with its real SQS client.
    let run = checkout_ai::drive_features(&stack).await.expect("features");
    assert_eq!(run.failed_sessions, 0, "nothing handed back: {run:?}");
    assert_eq!(run.stream.batches_abandoned, 0, "{run:?}");
    let messages =
        checkout_ai_integration_tests::queue_messages(&stack, "FeatureUpdaterFailureQueue").await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["source"], "feature-updater");
    assert_eq!(messages[0]["session_id"], broken);
    assert_eq!(messages[0]["reason"], "wrong_entity");
    assert!(messages[0]["sequence_number"].is_string(), "{messages:?}");

    // Every other session was projected.
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let live = scan_features(&ddb, &table).await.expect("scan");
    for s in sessions.iter().filter(|s| **s != broken) {
        assert!(
            matches!(live.get(&Key::session(s)), Some(Doc::Session(_))),
            "{s} was not projected"
        );
    }
}
