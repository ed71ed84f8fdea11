//! The ingest handler over in-memory stores, driven by the same `events/` fixtures as
//! `cargo lambda invoke --data-file` and `sam local invoke -e`.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use checkout_domain::delivery::RetryPolicy;
use checkout_domain::ingest::{Admission, Ingestor};
use checkout_domain::memory::{Faults, MemoryLog, MemoryObjectStore, MemoryQuarantine};
use checkout_domain::pseudonym::Pseudonymizer;
use chrono::{DateTime, Utc};
use ingest::Function;
use std::collections::BTreeSet;

const VALID: &str = include_str!("../../../events/kinesis-valid.json");
const POISON: &str = include_str!("../../../events/kinesis-poison.json");
const KEY: &[u8] = b"unit-test-pseudonymization-key-0123456789";

fn now() -> DateTime<Utc> {
    "2025-11-21T00:00:00Z".parse().expect("timestamp")
}

fn function(
    log_faults: Faults,
    quarantine_faults: Faults,
    log_batch: usize,
) -> Function<MemoryLog, MemoryQuarantine, MemoryObjectStore> {
    Function {
        ingestor: Ingestor {
            admission: Admission {
                max_record_bytes: 32 * 1024,
                retention: chrono::Duration::days(400),
                max_future_skew: chrono::Duration::minutes(15),
                pseudonymizer: Pseudonymizer::new(KEY).expect("key"),
            },
            log: MemoryLog::new(log_batch, log_faults),
            quarantine: MemoryQuarantine::new(10, quarantine_faults),
            retry: RetryPolicy {
                max_attempts: 4,
                ..RetryPolicy::default()
            },
            tombstones: Default::default(),
        },
        tombstones: Some(ingest::TombstoneSource {
            store: MemoryObjectStore::default(),
            refresh: std::time::Duration::ZERO,
            loaded_at: std::sync::Mutex::new(None),
        }),
    }
}

fn fixture(text: &str) -> KinesisEvent {
    serde_json::from_str(text).expect("fixture is a Kinesis event")
}

fn failures(r: &KinesisEventResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect()
}

fn seq(event: &KinesisEvent, i: usize) -> String {
    event.records[i].kinesis.sequence_number.clone()
}

#[tokio::test(start_paused = true)]
async fn given_a_valid_batch_then_every_event_lands_once_and_pseudonymized() {
    let f = function(Faults::default(), Faults::default(), 25);
    let event = fixture(VALID);
    let response = f.handle_at(event.clone(), now()).await.expect("handled");
    assert!(failures(&response).is_empty());
    let items = f.ingestor.log.items();
    assert_eq!(items.len(), event.records.len());
    assert!(f.ingestor.quarantine.items().is_empty());
    for entry in items.values() {
        for raw in [
            "shopper-1001",
            "203.0.113.7",
            "Shopper@Example.com",
            "shopper@example.com",
        ] {
            assert!(
                !entry.body.contains(raw),
                "raw identifier {raw} in {}",
                entry.body
            );
        }
        assert!(entry
            .user_id
            .as_deref()
            .is_some_and(|u| u.starts_with("u_")));
        let e = entry.event().expect("stored body decodes");
        assert!(e
            .context
            .ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("ip_")));
        assert_eq!(
            entry.expires_at,
            (e.occurred_at + chrono::Duration::days(400)).timestamp()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn given_poison_and_duplicates_then_poison_is_quarantined_with_reasons_and_the_rest_lands() {
    let f = function(Faults::default(), Faults::default(), 25);
    let event = fixture(POISON);
    let response = f.handle_at(event.clone(), now()).await.expect("handled");
    assert!(
        failures(&response).is_empty(),
        "poison is never a batch failure"
    );

    let logged: BTreeSet<String> = f
        .ingestor
        .log
        .items()
        .keys()
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(
        logged,
        BTreeSet::from(["evt-0100".to_string(), "evt-0107".to_string()])
    );

    let quarantined = f.ingestor.quarantine.items();
    let reasons: Vec<(usize, String)> = (0..event.records.len())
        .filter_map(|i| {
            quarantined
                .get(&seq(&event, i))
                .map(|q| (i, q.reason.clone()))
        })
        .collect();
    let expected = [
        (1, "invalid_json"),
        (2, "not_utf8"),
        (4, "unknown_event_type"),
        (5, "unsupported_schema_version"),
        (6, "missing_required_field"),
        (7, "payload_too_large"),
    ];
    assert_eq!(reasons, expected.map(|(i, r)| (i, r.to_string())).to_vec());
    for (i, _) in expected {
        let q = &quarantined[&seq(&event, i)];
        assert_eq!(
            q.payload().expect("inline payload"),
            event.records[i].kinesis.data.0,
            "original bytes kept"
        );
        assert_eq!(q.payload_bytes, event.records[i].kinesis.data.0.len());
        assert!(!q.detail.is_empty());
        assert!(q.source.as_deref().is_some_and(|s| s.contains(":stream/")));
    }
}

#[tokio::test(start_paused = true)]
async fn given_transient_faults_and_partial_batches_then_nothing_is_lost_or_duplicated() {
    let faults = Faults {
        transient_calls: vec![1, 3],
        accept_at_most: Some(4),
        ..Faults::default()
    };
    let f = function(
        faults,
        Faults {
            transient_calls: vec![1],
            ..Faults::default()
        },
        5,
    );
    let event = fixture(VALID);
    let response = f.handle_at(event.clone(), now()).await.expect("handled");
    assert!(failures(&response).is_empty());
    assert_eq!(f.ingestor.log.items().len(), event.records.len());
}

#[tokio::test(start_paused = true)]
async fn given_a_store_that_stays_down_then_the_failure_is_the_first_unwritten_record() {
    // Chunks of 5: records 0..5 land on call 1, every later call is throttled.
    let f = function(
        Faults {
            down_from_call: Some(2),
            ..Faults::default()
        },
        Faults::default(),
        5,
    );
    let event = fixture(VALID);
    let response = f.handle_at(event.clone(), now()).await.expect("handled");
    assert_eq!(failures(&response), vec![seq(&event, 5)]);
    assert_eq!(f.ingestor.log.items().len(), 5);
    // Lambda retries from the checkpoint once the store recovers: the log ends complete, no duplicates.
    let healthy = function(Faults::default(), Faults::default(), 5);
    let mut rest = event.clone();
    rest.records.drain(..5);
    for batch in [event.clone(), rest] {
        assert!(failures(&healthy.handle_at(batch, now()).await.expect("handled")).is_empty());
    }
    assert_eq!(healthy.ingestor.log.items().len(), event.records.len());
}

#[tokio::test(start_paused = true)]
async fn given_quarantine_down_then_the_failure_is_the_first_poison_record() {
    let f = function(
        Faults::default(),
        Faults {
            down_from_call: Some(1),
            ..Faults::default()
        },
        25,
    );
    let event = fixture(POISON);
    let response = f.handle_at(event.clone(), now()).await.expect("handled");
    assert_eq!(failures(&response), vec![seq(&event, 1)]);
    assert_eq!(f.ingestor.log.items().len(), 2, "valid records still land");
}

#[tokio::test(start_paused = true)]
async fn replaying_a_batch_changes_nothing() {
    let f = function(Faults::default(), Faults::default(), 25);
    let event = fixture(VALID);
    f.handle_at(event.clone(), now()).await.expect("handled");
    let first = f.ingestor.log.items();
    f.handle_at(event, now()).await.expect("handled");
    assert_eq!(f.ingestor.log.items(), first);
}

#[tokio::test(start_paused = true)]
async fn events_outside_retention_or_from_the_future_are_quarantined() {
    let f = function(Faults::default(), Faults::default(), 25);
    let event = fixture(VALID);
    let late: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().expect("timestamp");
    f.handle_at(event.clone(), late).await.expect("handled");
    let early: DateTime<Utc> = "2025-11-20T09:00:00Z".parse().expect("timestamp");
    let f2 = function(Faults::default(), Faults::default(), 25);
    f2.handle_at(event, early).await.expect("handled");
    assert!(f.ingestor.log.items().is_empty() && f2.ingestor.log.items().is_empty());
    assert!(f
        .ingestor
        .quarantine
        .items()
        .values()
        .all(|q| q.reason == "outside_retention"));
    assert!(f2
        .ingestor
        .quarantine
        .items()
        .values()
        .all(|q| q.reason == "occurred_in_future"));
}

#[tokio::test(start_paused = true)]
async fn a_batch_reports_its_metrics_in_emf_with_quarantines_by_reason() {
    let f = function(Faults::default(), Faults::default(), 25);
    let event = fixture(POISON);
    let (_, counts) = f.process(event.clone(), now()).await;
    let docs = ingest::metrics(&counts).documents(now());
    let names = checkout_aws::emf::check_documents(&docs, ingest::SERVICE, ingest::METRICS)
        .expect("valid EMF documents of the function's own metrics");
    for name in [
        "Records",
        "Appended",
        "Duplicates",
        "Quarantined",
        "WriteRetries",
    ] {
        assert_eq!(names[name], ["service"], "{name}");
    }
    assert_eq!(names["QuarantinedByReason"], ["service", "reason"]);
    let sum = |name: &str| -> f64 { checkout_aws::emf::values(&docs, name).iter().sum() };
    assert_eq!(sum("Records"), event.records.len() as f64);
    assert_eq!(sum("Quarantined"), counts.quarantined as f64);
    assert!(counts.quarantined > 0);
    assert_eq!(sum("QuarantinedByReason"), counts.quarantined as f64);
    let reasons: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d.get("QuarantinedByReason").is_some())
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        counts
            .quarantined_by_reason
            .keys()
            .map(String::as_str)
            .collect()
    );
}

#[tokio::test(start_paused = true)]
async fn a_replay_of_an_erased_users_records_is_dropped_and_nothing_of_it_kept() {
    let f = function(Faults::default(), Faults::default(), 25);
    let event = fixture(VALID);
    f.handle_at(event.clone(), now()).await.expect("handled");
    let items = f.ingestor.log.items();
    assert_eq!(items.len(), event.records.len());
    let user = items
        .values()
        .find_map(|e| e.user_id.clone())
        .expect("a pseudonymous user");
    let session = items.values().next().unwrap().session_id.clone();
    // Erasure: the entries go, the tombstones are written.
    let mut t = checkout_domain::ingest::Tombstones::default();
    t.add(&user, [&session], now().timestamp() + 86_400);
    let store = &f.tombstones.as_ref().unwrap().store;
    store.insert(
        checkout_domain::ingest::TOMBSTONES_KEY,
        serde_json::to_vec(&t).unwrap(),
    );
    let keys: Vec<&(String, String)> = items.keys().collect();
    checkout_domain::ports::LogEraser::delete(&f.ingestor.log, &keys)
        .await
        .unwrap();
    // The same records again: every one is dropped (the anonymous ones by their session), none is
    // quarantined (that would keep the raw payload), and the batch succeeds.
    let (response, counts) = {
        f.refresh_tombstones().await.expect("tombstones read");
        f.process(event.clone(), now()).await
    };
    assert!(failures(&response).is_empty());
    assert_eq!(counts.erased, event.records.len());
    assert_eq!(counts.appended, 0);
    assert!(f.ingestor.log.items().is_empty());
    assert!(f.ingestor.quarantine.items().is_empty());
    let docs = ingest::metrics(&counts).documents(now());
    let erased = docs.iter().find_map(|d| d.get("Erased")).unwrap();
    assert_eq!(erased.as_f64(), Some(event.records.len() as f64));
}

#[tokio::test(start_paused = true)]
async fn tombstones_never_read_stop_the_batch_rather_than_risk_a_resurrection() {
    let mut f = function(Faults::default(), Faults::default(), 25);
    f.tombstones = Some(ingest::TombstoneSource {
        store: {
            let s = MemoryObjectStore::default();
            s.unreachable
                .store(true, std::sync::atomic::Ordering::Relaxed);
            s
        },
        refresh: std::time::Duration::ZERO,
        loaded_at: std::sync::Mutex::new(None),
    });
    assert!(f.refresh_tombstones().await.is_err());
    // The Lambda entry point fails the batch (Lambda retries it) and writes nothing.
    assert!(f.handle_at(fixture(VALID), now()).await.is_err());
    assert!(f.ingestor.log.items().is_empty());
    assert!(f.ingestor.quarantine.items().is_empty());
}

/// A Kinesis event of `payloads`, in the shape of the valid fixture's first record.
fn records(payloads: &[serde_json::Value]) -> KinesisEvent {
    let mut event = fixture(VALID);
    let template = event.records[0].clone();
    event.records = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut r = template.clone();
            *r.kinesis.data = p.to_string().into_bytes();
            r.kinesis.sequence_number = format!("4959{i:020}");
            r.event_id = Some(format!("shardId-000000000000:4959{i:020}"));
            r
        })
        .collect();
    event
}

fn payment(event_id: &str, card: &str) -> serde_json::Value {
    serde_json::json!({
        "event_id": event_id, "event_type": "payment_attempted", "schema_version": 5,
        "occurred_at": "2025-11-20T10:00:00Z", "session_id": "s-risk", "user_id": "shopper-7",
        "context": { "device": { "type": "mobile", "id": "device-abc-123" }, "country": "DE", "ip": "203.0.113.9" },
        "data": { "payment_attempt_id": "pa-1", "method": "card",
                  "amount": { "amount_minor": 12999, "currency": "EUR" },
                  "card_fingerprint": card, "billing_country": "DE", "shipping_country": "FR" }
    })
}

#[tokio::test(start_paused = true)]
async fn a_card_number_is_quarantined_masked_and_a_fingerprint_lands_pseudonymized() {
    let f = function(Faults::default(), Faults::default(), 25);
    let event = records(&[
        payment("e-fingerprint", "fp_Qx7LmN2pR4"),
        payment("e-pan", "4111 1111 1111 1111"),
    ]);
    f.handle_at(event.clone(), now()).await.expect("handled");

    let logged = f.ingestor.log.items();
    assert_eq!(logged.len(), 1, "{logged:?}");
    let text = format!("{logged:?}");
    assert!(!text.contains("fp_Qx7LmN2pR4") && !text.contains("device-abc-123"));
    let entry = logged.values().next().expect("one entry");
    let body = entry.event().expect("readable");
    let checkout_domain::event::EventBody::PaymentAttempted(p) = &body.body else {
        panic!("a payment");
    };
    assert!(p
        .card_fingerprint
        .as_deref()
        .is_some_and(|c| c.starts_with("c_")));
    let device = body.context.device.as_ref().and_then(|d| d.id.as_deref());
    assert!(device.is_some_and(|d| d.starts_with("d_")), "{device:?}");
    assert_eq!(p.shipping_country.as_deref(), Some("FR"));

    let quarantined = f.ingestor.quarantine.items();
    let q = &quarantined[&seq(&event, 1)];
    assert_eq!(q.reason, "card_number_detected");
    let kept = String::from_utf8(q.payload().expect("inline")).expect("utf-8");
    assert!(kept.contains("XXXX XXXX XXXX 1111"), "{kept}");
    assert!(!kept.contains("4111"), "{kept}");
}
