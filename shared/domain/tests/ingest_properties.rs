//! Properties of batch ingest over in-memory stores, for random batches and random store faults:
//! - everything before the reported checkpoint is durable, and the checkpoint record itself is not;
//! - resuming from the checkpoint on a healthy store ends with exactly the batch's distinct valid events
//!   and one quarantine entry per invalid record, whatever the order and the duplication.

use checkout_domain::delivery::RetryPolicy;
use checkout_domain::ingest::{Admission, Ingestor, SourceRecord};
use checkout_domain::memory::{Faults, MemoryLog, MemoryQuarantine};
use checkout_domain::pseudonym::Pseudonymizer;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn payload(id: u8) -> Vec<u8> {
    if id >= 200 {
        return format!("{{\"event_id\": \"bad-{id}\"").into_bytes(); // truncated JSON
    }
    serde_json::json!({
        "event_id": format!("e{id}"), "event_type": "product_viewed", "schema_version": 1,
        "occurred_at": format!("2025-11-20T10:{:02}:00Z", id % 60), "session_id": format!("s{}", id % 3),
        "user_id": "u", "data": {"product_id": format!("p{id}")}
    })
    .to_string()
    .into_bytes()
}

fn ingestor(faults: Faults, log_batch: usize) -> Ingestor<MemoryLog, MemoryQuarantine> {
    Ingestor {
        admission: Admission {
            max_record_bytes: 4096,
            retention: chrono::Duration::days(400),
            max_future_skew: chrono::Duration::minutes(15),
            pseudonymizer: Pseudonymizer::new(&[9u8; 32]).expect("key"),
        },
        log: MemoryLog::new(log_batch, faults),
        quarantine: MemoryQuarantine::new(3, Faults::default()),
        retry: RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        },
        tombstones: Default::default(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn checkpoint_is_exact_and_resuming_completes_the_batch(
        ids in prop::collection::vec(prop_oneof![4 => 0u8..30, 1 => 200u8..210], 1..80),
        down_from in prop::option::of(1u64..6),
        accept_at_most in prop::option::of(1usize..5),
        log_batch in 1usize..10,
    ) {
        let now = "2025-11-21T00:00:00Z".parse().expect("time");
        let payloads: Vec<Vec<u8>> = ids.iter().map(|&i| payload(i)).collect();
        let seqs: Vec<String> = (0..ids.len()).map(|i| format!("{i:08}")).collect();
        let records: Vec<SourceRecord<'_>> = payloads.iter().zip(&seqs).map(|(p, s)| SourceRecord {
            sequence_number: s, partition_key: "pk", data: p, arrived_at: None,
        }).collect();
        let faulty = ingestor(Faults { down_from_call: down_from, accept_at_most, ..Faults::default() }, log_batch);
        let rt = runtime();
        let outcome = rt.block_on(faulty.ingest(&records, None, now));

        let logged: BTreeSet<String> = faulty.log.items().keys().map(|(_, e)| e.clone()).collect();
        let quarantined: BTreeSet<String> = faulty.quarantine.items().keys().cloned().collect();
        let durable = |i: usize| if ids[i] >= 200 { quarantined.contains(&seqs[i]) } else { logged.contains(&format!("e{}", ids[i])) };
        let end = outcome.checkpoint.unwrap_or(ids.len());
        for i in 0..end {
            prop_assert!(durable(i), "record {i} before the checkpoint {end} is not durable");
        }
        if let Some(c) = outcome.checkpoint {
            prop_assert!(!durable(c), "the checkpoint record {c} is already durable");
        }

        // Lambda redelivers from the checkpoint onto the same (now healthy) stores.
        let healthy = ingestor(Faults::default(), log_batch);
        let rt2 = runtime();
        rt2.block_on(healthy.ingest(&records[..end], None, now));
        let resumed = rt2.block_on(healthy.ingest(&records[end..], None, now));
        prop_assert_eq!(resumed.checkpoint, None);
        let all: BTreeSet<String> = healthy.log.items().keys().map(|(_, e)| e.clone()).collect();
        let expected: BTreeSet<String> = ids.iter().filter(|&&i| i < 200).map(|i| format!("e{i}")).collect();
        prop_assert_eq!(all, expected);
        let poison = ids.iter().filter(|&&i| i >= 200).count();
        prop_assert_eq!(healthy.quarantine.items().len(), poison);
    }
}
