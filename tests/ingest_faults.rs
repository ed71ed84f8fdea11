//! Injected DynamoDB throttling, 5xx and partial batches between the real SDK client and moto.

use checkout_ai::rees46::read_rows;
use checkout_ai_integration_tests::faults::{faulty_sdk_config, Fault, Plan};
use checkout_ai_integration_tests::{fresh_stack, kinesis_event, log_items, logged_ids, rees46};
use std::collections::BTreeSet;

fn payloads(file: &std::path::Path, n: usize) -> Vec<Vec<u8>> {
    read_rows(file).expect("rows")[..n]
        .iter()
        .enumerate()
        .map(|(i, r)| serde_json::to_vec(&r.to_event(i as u64 + 1).expect("maps")).expect("json"))
        .collect()
}

fn ids(payloads: &[Vec<u8>]) -> BTreeSet<String> {
    payloads
        .iter()
        .map(|p| {
            serde_json::from_slice::<serde_json::Value>(p).expect("json")["event_id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_throttling_5xx_and_partial_batches_nothing_is_lost_and_nothing_duplicated() {
    let Some(file) = rees46() else { return };
    let stack = fresh_stack("faults");
    checkout_ai::replay(&stack, &file, Some(7), Some(3000))
        .await
        .expect("replay");
    // Every call is faulty in some way except one in five.
    let plan = Plan::new(|call| match call % 5 {
        1 => Fault::Partial,
        2 => Fault::Throttle,
        3 => Fault::ServerErrorAfterWrite,
        4 => Fault::Partial,
        _ => Fault::Pass,
    });
    let sdk = faulty_sdk_config(&stack, plan.clone()).await;
    let env = stack
        .env("IngestFunction")
        .expect("env")
        .with("WRITE_BACKOFF_BASE_MS", "1")
        .with("WRITE_MAX_ATTEMPTS", "20");
    let function = ingest::Function::new(&env, &sdk).await.expect("function");
    let run = checkout_ai::drive_ingest_with(&stack, &sdk, &function, &Default::default())
        .await
        .expect("ingest");

    assert!(
        plan.injected.load(std::sync::atomic::Ordering::SeqCst) > 100,
        "{plan:?}"
    );
    assert!(run.counts.log_write_retries > 0);
    assert_eq!(run.stream.batches_abandoned, 0);
    let logged = log_items(&stack).await;
    let logged_ids: Vec<String> = logged.iter().map(|e| e.event_id.clone()).collect();
    let unique: BTreeSet<String> = logged_ids.iter().cloned().collect();
    assert_eq!(logged_ids.len(), unique.len(), "no duplicates");
    assert_eq!(unique, ids(&payloads(&file, 3000)), "nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_throttling_persists_the_failure_points_at_the_first_unwritten_record() {
    let Some(file) = rees46() else { return };
    let stack = fresh_stack("checkpoint");
    let stream_arn = stack.resource("EventStream").expect("stream").arn.clone();
    let batch = payloads(&file, 200);
    let event = kinesis_event(&batch, &stream_arn);

    // Two BatchWriteItem calls (50 items) get through, then the table throttles for good.
    let plan = Plan::new(|call| {
        if call <= 2 {
            Fault::Pass
        } else {
            Fault::Throttle
        }
    });
    let sdk = faulty_sdk_config(&stack, plan.clone()).await;
    let env = stack
        .env("IngestFunction")
        .expect("env")
        .with("WRITE_BACKOFF_BASE_MS", "1")
        .with("WRITE_MAX_ATTEMPTS", "3");
    let function = ingest::Function::new(&env, &sdk).await.expect("function");
    let response = function
        .handle_at(event.clone(), chrono::Utc::now())
        .await
        .expect("handled");

    let failures: Vec<String> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(
        failures,
        vec![event.records[50].kinesis.sequence_number.clone()]
    );
    let logged: BTreeSet<String> = logged_ids(&stack).await;
    assert_eq!(
        logged,
        ids(&batch[..50]),
        "everything before the checkpoint is durable, nothing after it"
    );

    // Lambda retries from the checkpoint once the table recovers; the log ends complete.
    let healthy = ingest::Function::new(&env, &stack.sdk_config().await)
        .await
        .expect("function");
    let mut rest = event.clone();
    rest.records.drain(..50);
    let response = healthy
        .handle_at(rest, chrono::Utc::now())
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(log_items(&stack).await.len(), 200);
}
