//! Abandoned-cart recovery on moto with the real clients: the due index (a GSI range query per hour and
//! shard), the FIFO outbound queue's de-duplication on the idempotency key, and a cart's three steps
//! through the feature updater and the sweep over the DynamoDB, SQS and S3 adapters, with an order in
//! another session ending a second cart's sequence.

use checkout_ai_integration_tests::{fresh_stack, queue_messages};
use checkout_aws::dynamo::{DynamoEventLog, DynamoLogIndex};
use checkout_aws::features::{DynamoFeatureStore, DynamoSessionLog};
use checkout_aws::sqs::SqsOutbound;
use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::read::PageCache;
use checkout_domain::delivery::RetryPolicy;
use checkout_domain::event::*;
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::features::Doc;
use checkout_domain::ingest::LogEntry;
use checkout_domain::model::registry::fallback_model;
use checkout_domain::ports::{BatchSink, DueIndex, Expect, FeatureWriter, Write};
use checkout_domain::recovery::sweep::{OutboundCart, OutboundMessage, Sweep, SweepInputs};
use checkout_domain::recovery::{due_bucket, due_key_until, Due, RecoverySettings, TREATMENT};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeSet;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap()
}

fn treated(n: usize) -> Vec<String> {
    let e = DecisionConfig::default().recovery.experiment();
    (0..)
        .map(|i| format!("u_{i:032x}"))
        .filter(|u| e.assign(u).is_some_and(|a| a.variant == TREATMENT))
        .take(n)
        .collect()
}

fn event(id: &str, session: &str, user: &str, at: DateTime<Utc>, body: EventBody) -> LogEntry {
    let e = Event {
        event_id: id.into(),
        schema_version: SCHEMA_VERSION,
        occurred_at: at,
        session_id: session.into(),
        user_id: Some(user.into()),
        context: Context::default(),
        body,
    };
    LogEntry::of(&e, 4_000_000_000).unwrap()
}

fn add(product: &str) -> EventBody {
    EventBody::CartItemAdded(CartItemAdded {
        product_id: product.into(),
        quantity: 1,
        unit_price: Money {
            amount_minor: 3_000,
            currency: "USD".into(),
        },
        unit_cost_minor: None,
        category_id: None,
        category_code: None,
        brand: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_due_index_the_fifo_queue_and_a_carts_three_steps_on_moto() {
    let stack = fresh_stack("recovery");
    let sdk = stack.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let log_table = stack.resource("EventLogTable").unwrap().name.clone();
    let features = DynamoFeatureStore {
        client: ddb.clone(),
        table: stack.resource("FeaturesTable").unwrap().name.clone(),
    };

    // 1. The index: due items in one bucket at three times; a range query up to a time returns exactly
    //    those due by then, in due order, and the limit holds.
    let due = |session: &str, minutes: i64| Due {
        session_id: session.into(),
        user_id: Some("u".into()),
        abandoned_at: t0(),
        step: 0,
        due_at: t0() + Duration::minutes(minutes),
    };
    // Sessions whose shard is 0, so that they share the hour's partition.
    let sessions: Vec<String> = (0..)
        .map(|i| format!("idx-{i}"))
        .filter(|s| due_bucket(t0(), s).ends_with("#0"))
        .take(3)
        .collect();
    for (s, m) in sessions.iter().zip([30, 10, 50]) {
        features
            .commit(vec![Write::put(
                Doc::RecoveryDue(due(s, m).item()),
                Expect::Any,
            )])
            .await
            .unwrap();
    }
    let bucket = due_bucket(t0(), &sessions[0]);
    let found = |items: Vec<checkout_domain::ports::Stored>| -> Vec<String> {
        items
            .into_iter()
            .filter_map(|s| match s.doc {
                Doc::RecoveryDue(d) => Some(d.session_id),
                _ => None,
            })
            .collect()
    };
    let until = due_key_until(t0() + Duration::minutes(30));
    assert_eq!(
        found(features.due(&bucket, &until, 100).await.unwrap()),
        vec![sessions[1].clone(), sessions[0].clone()]
    );
    assert_eq!(
        found(
            features
                .due(&bucket, &due_key_until(t0() + Duration::hours(1)), 2)
                .await
                .unwrap()
        )
        .len(),
        2
    );
    for s in &sessions {
        features
            .commit(vec![Write {
                key: checkout_domain::features::Key::recovery_due(s),
                expect: Expect::Any,
                doc: None,
            }])
            .await
            .unwrap();
    }
    assert!(features.due(&bucket, &until, 100).await.unwrap().is_empty());

    // 2. The FIFO queue drops a resend of the same idempotency key.
    let outbound = SqsOutbound {
        client: aws_sdk_sqs::Client::new(&sdk),
        queue_url: stack
            .resource("RecoveryOutboundQueue")
            .unwrap()
            .url
            .clone()
            .unwrap(),
    };
    let message = OutboundMessage {
        idempotency_key: "msg-dedup-1".into(),
        user: "u_1".into(),
        cart_token: "s-1".into(),
        channel: Channel::Email,
        step: 0,
        action: "reminder".into(),
        decision_id: "rcv-1".into(),
        cart: OutboundCart {
            currency: "USD".into(),
            value_minor: 3_000,
            items: Vec::new(),
        },
        abandoned_at: t0(),
        due_at: t0(),
        requested_at: t0(),
    };
    assert!(outbound.put(&[&message]).await.unwrap().is_empty());
    assert!(outbound.put(&[&message]).await.unwrap().is_empty());
    let got = queue_messages(&stack, "RecoveryOutboundQueue").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["idempotency_key"], "msg-dedup-1");

    // 3. Two treated users' carts through the updater and the sweep: one never orders, the other orders
    //    in another session a few hours after its first message.
    let users = treated(2);
    let log_sink = DynamoEventLog {
        client: ddb.clone(),
        table: log_table.clone(),
    };
    let entries = [
        event("a1", "cart-1", &users[0], t0(), add("p1")),
        event("a2", "cart-2", &users[1], t0(), add("p2")),
    ];
    let refs: Vec<&LogEntry> = entries.iter().collect();
    assert!(log_sink.put(&refs).await.unwrap().is_empty());
    let updater = FeatureUpdater::new(
        DynamoSessionLog {
            client: ddb.clone(),
            table: log_table.clone(),
        },
        features.clone(),
    );
    let out = updater
        .update(&["cart-1".to_string(), "cart-2".to_string()])
        .await;
    assert!(out.failed.is_empty());
    assert_eq!(out.counts.due_items_written, 2);

    let log = DynamoLogIndex {
        client: ddb.clone(),
        table: log_table.clone(),
    };
    let config = DecisionConfig::default();
    let model = fallback_model().unwrap();
    let pages = PageCache::new(std::time::Duration::from_secs(60), 100);
    let settings = RecoverySettings::default();
    let sweep = Sweep {
        log: &log,
        log_sink: &log_sink,
        store: &features,
        outbound: &outbound,
        pages: &pages,
        settings: &settings,
        retention: Duration::days(400),
        lookback: Duration::hours(3),
        max_per_bucket: 100,
        concurrency: 2,
        retry: RetryPolicy::default(),
    };
    let mut sent = 0;
    for h in 0..=100 {
        let now = t0() + Duration::hours(h);
        if h == 5 {
            let order = event(
                "o2",
                "order-2",
                &users[1],
                now - Duration::minutes(30),
                EventBody::OrderPlaced(OrderPlaced {
                    order_id: "o-2".into(),
                    total: Money {
                        amount_minor: 3_000,
                        currency: "USD".into(),
                    },
                    lines: Vec::new(),
                    email: None,
                }),
            );
            assert!(log_sink.put(&[&order]).await.unwrap().is_empty());
        }
        let r = sweep
            .run(SweepInputs {
                now,
                config: &config,
                model: &model,
                shadow: None,
            })
            .await;
        assert_eq!(r.failed, 0, "{:?}", r.first_failure);
        sent += r.sent();
    }
    let messages = queue_messages(&stack, "RecoveryOutboundQueue").await;
    assert_eq!(messages.len() as u64, sent);
    let per = |cart: &str| -> Vec<u64> {
        messages
            .iter()
            .filter(|m| m["cart_token"] == cart)
            .map(|m| m["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(per("cart-1"), vec![0, 1, 2]);
    assert_eq!(
        per("cart-2"),
        vec![0],
        "the order ended the second cart's sequence"
    );
    let keys: BTreeSet<&str> = messages
        .iter()
        .map(|m| m["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), messages.len());
    // Every due item is gone: both sequences are over.
    let left = checkout_ai::census::scan_features(&ddb, &features.table)
        .await
        .unwrap()
        .into_values()
        .filter(|d| matches!(d, Doc::RecoveryDue(_)))
        .count();
    assert_eq!(left, 0);
}
