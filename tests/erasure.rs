//! Erasure on moto, with a canary user planted among REES46 shoppers: two sessions on products and
//! pages others visited too (so aggregates and co-occurrence counts are shared), an anonymous event
//! before login, an order, an experiment exposure, and two malformed records that carry the raw id (one
//! quarantined inline, one claim-checked to S3). After `checkout-ai erase` the canary's raw id and
//! pseudonym are found nowhere (event log, features, quarantine queue, any S3 object), a rebuild from
//! the log equals the live features table, and a replay of the same records brings nothing back.

use checkout_ai::census::scan_features;
use checkout_ai_integration_tests::{fresh_stack, log_items, queue_messages, rees46};
use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::engine::{decide, Features, Inputs};
use checkout_domain::decision::request::parse_request;
use checkout_domain::ingest::QuarantineRecord;
use checkout_domain::pseudonym::Pseudonymizer;
use serde_json::json;

const CANARY: &str = "canary-7c1e5a";
const ROWS: usize = 1_500;

fn event(
    id: &str,
    session: &str,
    user: Option<&str>,
    kind: &str,
    at: &str,
    data: serde_json::Value,
) -> Vec<u8> {
    let mut e = json!({"event_id": id, "event_type": kind, "schema_version": 3, "session_id": session,
                       "occurred_at": at, "context": {"device": {"type": "mobile"}}, "data": data});
    if let Some(u) = user {
        e["user_id"] = json!(u);
    }
    e.to_string().into_bytes()
}

fn eur(minor: i64) -> serde_json::Value {
    json!({"currency": "EUR", "amount_minor": minor})
}

/// The canary's records: two sessions sharing REES46's first products, and two malformed records.
fn planted() -> Vec<Vec<u8>> {
    let u = Some(CANARY);
    let mut records = vec![
        event(
            "cn-1",
            "canary-s1",
            None,
            "session_started",
            "2019-10-01T00:00:05Z",
            json!({"visitor_type": "new", "landing_page": "/"}),
        ),
        event(
            "cn-2",
            "canary-s1",
            u,
            "page_viewed",
            "2019-10-01T00:00:10Z",
            json!({"page_type": "product_related", "path": "/p/44600062", "time_on_page_ms": 9000}),
        ),
        event(
            "cn-3",
            "canary-s1",
            u,
            "product_viewed",
            "2019-10-01T00:00:12Z",
            json!({"product_id": "44600062", "price": eur(3579)}),
        ),
        event(
            "cn-4",
            "canary-s1",
            u,
            "product_viewed",
            "2019-10-01T00:00:20Z",
            json!({"product_id": "3900821", "price": eur(3320)}),
        ),
        event(
            "cn-5",
            "canary-s1",
            u,
            "cart_item_added",
            "2019-10-01T00:00:30Z",
            json!({"product_id": "3900821", "quantity": 1, "unit_price": eur(3320)}),
        ),
        event(
            "cn-6",
            "canary-s1",
            u,
            "order_placed",
            "2019-10-01T00:01:00Z",
            json!({"order_id": "canary-o1", "total": eur(3320),
                     "lines": [{"product_id": "3900821", "quantity": 1, "unit_price_minor": 3320}]}),
        ),
        event(
            "cn-7",
            "canary-s2",
            u,
            "product_viewed",
            "2019-10-01T03:00:00Z",
            json!({"product_id": "44600062", "price": eur(3579)}),
        ),
    ];
    // An exposure: a decision the engine made for the canary in an experiment.
    let config = DecisionConfig {
        experiments: vec![serde_json::from_value(json!({"id": "erasure-exp",
            "variations": ["control", "treatment"], "placement": "cart", "status": "running"}))
        .unwrap()],
        ..DecisionConfig::default()
    };
    let model = checkout_domain::model::registry::fallback_model().unwrap();
    let request = parse_request(
        format!(r#"{{"session_id": "canary-s2", "user_id": "{CANARY}", "placement": "cart"}}"#)
            .as_bytes(),
    )
    .unwrap();
    let d = decide(
        &request,
        Ok(&Features::default()),
        Inputs {
            decision_id: "cn-decision",
            now: "2019-10-01T03:00:30Z".parse().unwrap(),
            unit: Some("unit-of-the-canary"),
            model: &model,
            config: &config,
            policy: None,
            shadow: None,
            risk_model: None,
        },
    );
    assert!(d.response.experiment.is_some(), "exposed");
    records.push(serde_json::to_vec(&d.event).unwrap());
    // Malformed: a missing field (quarantined inline), and an unknown one padded past the inline limit
    // (claim-checked to S3).
    records.push(
        json!({"event_id": "cn-bad-1", "event_type": "cart_item_added", "schema_version": 3,
               "session_id": "canary-s1", "user_id": CANARY, "occurred_at": "2019-10-01T00:00:40Z",
               "data": {"product_id": "3900821"}})
        .to_string()
        .into_bytes(),
    );
    records.push(
        json!({"event_id": "cn-bad-2", "event_type": "product_viewed", "schema_version": 3,
               "session_id": "canary-s1", "user_id": CANARY, "occurred_at": "2019-10-01T00:00:41Z",
               "padding": "x".repeat(20_000), "data": {"product_id": "3900821", "price": eur(3320)}})
        .to_string()
        .into_bytes(),
    );
    records
}

async fn put_records(stack: &checkout_ai::local::stack::LocalStack, records: &[Vec<u8>]) {
    let kinesis = aws_sdk_kinesis::Client::new(&stack.sdk_config().await);
    let stream = stack.resource("EventStream").expect("stream").name.clone();
    let entries: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .data(aws_smithy_types::Blob::new(r.clone()))
                .partition_key(format!("canary-{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let out = kinesis
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .expect("put");
    assert_eq!(out.failed_record_count(), Some(0));
}

/// Every place the canary could be, as text.
async fn everything(stack: &checkout_ai::local::stack::LocalStack) -> Vec<String> {
    let sdk = stack.sdk_config().await;
    let mut texts: Vec<String> = log_items(stack)
        .await
        .into_iter()
        .map(|e| format!("{} {:?} {}", e.session_id, e.user_id, e.body))
        .collect();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = stack.resource("FeaturesTable").unwrap().name.clone();
    for (key, doc) in scan_features(&ddb, &table).await.unwrap() {
        texts.push(format!("{key} {}", serde_json::to_string(&doc).unwrap()));
    }
    for m in queue_messages(stack, "QuarantineQueue").await {
        let record: QuarantineRecord = serde_json::from_value(m.clone()).unwrap();
        texts.push(m.to_string());
        if let Some(p) = record.payload() {
            texts.push(String::from_utf8_lossy(&p).into_owned());
        }
    }
    let s3 = aws_sdk_s3::Client::new(&sdk);
    for bucket in [
        "QuarantineBucket",
        "ModelsBucket",
        "ReportsBucket",
        "AccessLogsBucket",
        "ArchiveBucket",
    ] {
        let name = stack.resource(bucket).unwrap().name.clone();
        let listed = s3.list_objects_v2().bucket(&name).send().await.unwrap();
        for o in listed.contents() {
            let key = o.key().unwrap();
            let body = s3.get_object().bucket(&name).key(key).send().await.unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            texts.push(format!(
                "s3://{name}/{key} {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
    }
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_is_found_nowhere_the_rebuild_matches_and_a_replay_brings_nothing_back() {
    let Some(file) = rees46() else { return };
    let stack = fresh_stack("erasure");
    checkout_ai::replay(&stack, &file, None, Some(ROWS))
        .await
        .expect("replay");
    put_records(&stack, &planted()).await;
    let first = checkout_ai::drive_ingest(&stack).await.expect("ingest");
    assert_eq!(first.counts.quarantined, 2, "{:?}", first.counts);
    let features = checkout_ai::drive_features(&stack).await.expect("features");
    let key = stack
        .env("IngestFunction")
        .unwrap()
        .optional("PSEUDONYM_KEY")
        .expect("local key")
        .to_string();
    let pseudonym = Pseudonymizer::new(key.as_bytes()).unwrap().user_id(CANARY);
    let found = |texts: &[String]| {
        texts
            .iter()
            .filter(|t| t.contains(CANARY) || t.contains(&pseudonym) || t.contains("canary-s"))
            .cloned()
            .collect::<Vec<_>>()
    };
    // Planted where expected: the log, the user and unit items, the shared aggregates' contributions.
    let before = log_items(&stack).await;
    let canary_entries = before
        .iter()
        .filter(|e| e.session_id.starts_with("canary-s"))
        .count();
    assert_eq!(canary_entries, 8, "7 events and the decision");
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk_config().await);
    let table = stack.resource("FeaturesTable").unwrap().name.clone();
    let live = scan_features(&ddb, &table).await.unwrap();
    assert!(live.keys().any(|k| k.pk == format!("user#{pseudonym}")));
    assert!(live
        .keys()
        .any(|k| *k == checkout_domain::features::Key::experiment_unit("erasure-exp", &pseudonym)));

    let receipt = checkout_ai::erase::run(&stack, CANARY)
        .await
        .expect("erased");
    eprintln!(
        "erasure receipt: {}",
        serde_json::to_string_pretty(&receipt).unwrap()
    );
    let c = &receipt.counts;
    assert_eq!((c.sessions, c.shared_sessions), (2, 0));
    assert_eq!(c.log_items_deleted, canary_entries);
    // The experiment's unit and the universal holdout's.
    assert_eq!(c.experiment_units_deleted, 2);
    assert!(
        c.aggregates_recomputed >= 5,
        "user, two items, pages: {c:?}"
    );
    assert_eq!(receipt.quarantine.messages_deleted, 1, "the inline one");
    assert_eq!(
        receipt.quarantine.objects_deleted, 1,
        "the claim-checked payload"
    );

    // The rebuild from the log equals the live table (before anything reads the queues).
    let live = scan_features(&ddb, &table).await.unwrap();
    let report = checkout_ai::compare(log_items(&stack).await, &live, Default::default());
    assert_eq!(report.differences, 0, "{:#?}", report.sample);
    // Found nowhere but in the archive's erasure list, which names the erased sessions (not the user) so
    // that the archive's queries leave them out (docs/archive.md).
    let outside_the_list = |all: Vec<String>| {
        let (list, rest): (Vec<String>, Vec<String>) =
            all.into_iter().partition(|t| t.contains("/erasures/"));
        assert_eq!(list.len(), 1, "{list:#?}");
        assert!(
            list[0].contains("canary-s1") && list[0].contains("canary-s2"),
            "{list:?}"
        );
        assert!(!list[0].contains(CANARY) && !list[0].contains(&pseudonym));
        rest
    };
    let leftovers = found(&outside_the_list(everything(&stack).await));
    assert!(leftovers.is_empty(), "{leftovers:#?}");

    // A replay of the same records: every canary record is dropped, none quarantined or logged.
    put_records(&stack, &planted()).await;
    let again = checkout_ai::drive_ingest_after(&stack, &first.stream.positions)
        .await
        .expect("ingest again");
    assert_eq!(again.counts.erased, planted().len(), "{:?}", again.counts);
    assert_eq!((again.counts.appended, again.counts.quarantined), (0, 0));
    checkout_ai::drive_features_after(&stack, &features.stream.positions)
        .await
        .expect("features");
    let leftovers = found(&outside_the_list(everything(&stack).await));
    assert!(leftovers.is_empty(), "{leftovers:#?}");
    let live = scan_features(&ddb, &table).await.unwrap();
    let report = checkout_ai::compare(log_items(&stack).await, &live, Default::default());
    assert_eq!(report.differences, 0, "{:#?}", report.sample);
}
