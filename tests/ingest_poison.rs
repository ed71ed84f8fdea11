//! Poison records through the real stream, function and quarantine (SQS, with S3 for large payloads).

use aws_lambda_events::event::kinesis::KinesisEvent;
use checkout_ai_integration_tests::{fresh_stack, logged_ids, quarantine_messages};
use checkout_aws::kinesis::KinesisProducer;
use checkout_domain::delivery::{deliver, RetryPolicy};
use checkout_domain::ports::OutRecord;
use std::collections::{BTreeMap, BTreeSet};

const POISON: &str = include_str!("../events/kinesis-poison.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_poison_record_reaches_quarantine_with_its_reason_and_every_valid_record_lands() {
    let stack = fresh_stack("poison");
    let sdk = stack.sdk_config().await;
    let fixture: KinesisEvent = serde_json::from_str(POISON).expect("fixture");
    // One partition key, so the records stay in one shard and one batch, in fixture order.
    let records: Vec<OutRecord> = fixture
        .records
        .iter()
        .map(|r| OutRecord {
            partition_key: "poison".into(),
            data: r.kinesis.data.0.clone(),
        })
        .collect();
    let producer = KinesisProducer {
        client: aws_sdk_kinesis::Client::new(&sdk),
        stream: stack.resource("EventStream").expect("stream").name.clone(),
    };
    let put = deliver(&producer, &records, &RetryPolicy::default()).await;
    assert!(put.error.is_none() && put.accepted.iter().all(|a| *a));

    let run = checkout_ai::drive_ingest(&stack).await.expect("ingest");
    assert_eq!(run.stream.partial_failures, 0, "poison never fails a batch");
    assert_eq!(run.counts.records, records.len());

    let logged: BTreeSet<String> = logged_ids(&stack).await;
    assert_eq!(
        logged,
        BTreeSet::from(["evt-0100".to_string(), "evt-0107".to_string()])
    );

    let quarantined = quarantine_messages(&stack).await;
    let by_reason: BTreeMap<&str, usize> = quarantined.iter().fold(BTreeMap::new(), |mut m, q| {
        *m.entry(q.reason.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        by_reason,
        BTreeMap::from([
            ("invalid_json", 1),
            ("missing_required_field", 1),
            ("not_utf8", 1),
            ("payload_too_large", 1),
            ("unknown_event_type", 1),
            ("unsupported_schema_version", 1),
        ])
    );
    let s3 = aws_sdk_s3::Client::new(&sdk);
    let originals: BTreeSet<Vec<u8>> = records.iter().map(|r| r.data.clone()).collect();
    let mut sequence_numbers = BTreeSet::new();
    for q in &quarantined {
        assert!(!q.sequence_number.is_empty() && !q.detail.is_empty());
        sequence_numbers.insert(q.sequence_number.clone());
        let payload = match (&q.payload_base64, &q.payload_ref) {
            (Some(_), None) => q.payload().expect("base64"),
            (None, Some(uri)) => {
                // Too large for a message: claim-checked to the quarantine bucket.
                let (bucket, key) = uri
                    .trim_start_matches("s3://")
                    .split_once('/')
                    .expect("s3 uri");
                let object = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .expect("object");
                object
                    .body
                    .collect()
                    .await
                    .expect("bytes")
                    .into_bytes()
                    .to_vec()
            }
            other => panic!("payload must be inline or referenced, got {other:?}"),
        };
        assert_eq!(payload.len(), q.payload_bytes);
        assert!(
            originals.contains(&payload),
            "the original payload is kept byte for byte"
        );
    }
    assert_eq!(
        sequence_numbers.len(),
        6,
        "one message per poison record, each with its sequence number"
    );
    assert!(
        quarantined.iter().any(|q| q.payload_ref.is_some()),
        "the oversize record used the claim check"
    );
}
