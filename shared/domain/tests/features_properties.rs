//! Properties of the feature projections, for random event sequences delivered in random order, in
//! random batches, with random duplicates:
//! - the features table equals a from-scratch rebuild of the log (so any two deliveries agree);
//! - delivering the last batch again writes nothing;
//! - two updaters racing over the same batches still end at the rebuild;
//! - erasing a user leaves exactly the rebuild of what remains in the log, and nothing of the user;
//! - in batch mode ([`ItemPageMode::Batch`]) the same hold once a batch run has written the items and
//!   pages, a second run writes nothing, and the stream path writes no item, page or contribution to
//!   them.

use checkout_domain::event::*;
use checkout_domain::features::rebuild::{diff, rebuild};
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::features::{batch, Doc, ItemPageMode, Key};
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog};
use checkout_domain::ports::BatchSink;
use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// (session, user, minute, kind, a, b): a small vocabulary so that sessions, users and products collide.
type Spec = (u8, Option<u8>, u16, u8, u8, u8);

fn event(i: usize, (session, user, minute, kind, a, b): Spec) -> Event {
    let usd = |minor: i64| Money {
        amount_minor: minor,
        currency: "USD".into(),
    };
    let product = format!("p{}", a % 6);
    let body = match kind % 13 {
        0 => EventBody::PageViewed(PageViewed {
            page_type: [
                PageType::Administrative,
                PageType::Informational,
                PageType::Cart,
            ][usize::from(b % 3)],
            path: Some(format!("/page/{}", a % 3)),
            time_on_page_ms: (b % 2 == 0).then_some(u64::from(a) * 1000),
        }),
        1 | 2 => EventBody::ProductViewed(ProductViewed {
            product_id: product,
            category_id: None,
            category_code: None,
            brand: None,
            price: None,
        }),
        3 => EventBody::CartItemAdded(CartItemAdded {
            unit_cost_minor: None,
            product_id: product,
            quantity: u32::from(b % 3) + 1,
            unit_price: usd(i64::from(a) * 100 + 1),
            category_id: None,
            category_code: None,
            brand: None,
        }),
        4 => EventBody::CartItemRemoved(CartItemRemoved {
            product_id: product,
            quantity: 1,
        }),
        5 => EventBody::CheckoutStepCompleted(CheckoutStepCompleted {
            step: CheckoutStep::Payment,
            step_index: b % 5 + 1,
        }),
        6 => EventBody::PaymentDeclined(PaymentDeclined {
            payment_attempt_id: format!("pa{i}"),
            decline_code: "do_not_honor".into(),
            amount: usd(100),
        }),
        7 => EventBody::OrderPlaced(OrderPlaced {
            order_id: format!("o{i}"),
            total: usd(i64::from(b) * 50 + 1),
            lines: vec![OrderLine {
                product_id: product,
                quantity: 1,
                unit_price_minor: i64::from(b) * 50 + 1,
            }],
            email: None,
        }),
        9 => EventBody::PaymentAttempted(PaymentAttempted {
            payment_attempt_id: format!("pa{}", i.saturating_sub(usize::from(b % 2))),
            method: PaymentMethod::Card,
            amount: usd(i64::from(a) * 100 + 1),
            card_fingerprint: Some(format!("c{}", a % 3)),
            billing_country: Some("DE".into()),
            shipping_country: None,
        }),
        10 => EventBody::FraudConfirmed(FraudConfirmed {
            order_id: format!("o{i}"),
            source: FraudSource::Issuer,
        }),
        12 => EventBody::ReviewUpdated(Box::new(ReviewUpdated {
            // A case lives in one session (its id is the decision id).
            case_id: format!("k{}-{}", session % 5, a % 2),
            transition: [
                ReviewTransition::Opened,
                ReviewTransition::Assigned,
                ReviewTransition::Rejected,
            ][usize::from(b % 3)],
            actor: ReviewActor {
                kind: if b % 3 == 0 {
                    ActorKind::System
                } else {
                    ActorKind::Reviewer
                },
                id: "r".into(),
            },
            decision_id: "d".into(),
            order_ref: format!("o{}", a % 4),
            score: 10.0,
            band: 2,
            rule_ids: vec![],
            reasons: vec![],
            reason: None,
            deadline_at: Utc
                .with_ymd_and_hms(2019, 11, 1, 0, 0, 0)
                .single()
                .expect("time"),
            default_decision: ReviewTransition::Approved,
        })),
        11 => EventBody::CouponApplied(CouponApplied {
            code: "X".into(),
            outcome: CouponOutcome::Rejected,
            discount: None,
        }),
        // Schema v6: the holdout's arm, the visitor type, and (a third of the time) an incentive whose
        // cost an order later in the session carries; a quarter are recovery messages, whose incentive
        // an order of the user in a later session can redeem.
        _ => EventBody::DecisionServed(Box::new(DecisionServed {
            decision_id: format!("d{i}"),
            placement: if a % 4 == 1 { "recovery" } else { "cart" }.into(),
            recovery: (a % 4 == 1).then(|| RecoveryStep {
                abandoned_at: Utc.with_ymd_and_hms(2019, 10, 1, 0, 0, 0).unwrap(),
                step: 0,
            }),
            action: if b % 3 == 0 {
                "percent_discount"
            } else {
                "none"
            }
            .into(),
            action_key: Some(
                if b % 3 == 0 {
                    "percent_discount_10"
                } else {
                    "none"
                }
                .into(),
            ),
            eligible: vec![ActionProbability {
                action: if b % 3 == 0 {
                    "percent_discount_10"
                } else {
                    "none"
                }
                .into(),
                probability: 1.0,
                cost_minor: if b % 3 == 0 { 500 } else { 0 },
            }],
            cart: Some(DecisionCart {
                currency: "USD".into(),
                value_minor: 5_000,
                margin_minor: 1_000 + i64::from(a) * 10,
                margin_known: a % 2 == 0,
            }),
            holdout: Some(HoldoutServed {
                id: "universal-holdout".into(),
                variant: [HOLDOUT_VARIANT, SERVED_VARIANT][usize::from(a % 5 == 0)].into(),
            }),
            visitor_type: Some([VisitorType::New, VisitorType::Returning][usize::from(b % 2)]),
            experiment_id: Some(format!("exp{}", a % 2)),
            variant: Some(["control", "treatment"][usize::from(b % 2)].into()),
            propensity: 1.0,
            model_id: "m".into(),
            model_version: "1".into(),
            feature_schema_version: 1,
            rules_version: "r".into(),
            feature_hash: "h".into(),
            // Degraded: a v3+ decision that read features must log what it read, which this test
            // has no use for.
            degraded: true,
            policy: Some(PolicyRef {
                id: "control".into(),
                version: "r".into(),
            }),
            ..DecisionServed::default()
        })),
    };
    let start = Utc
        .with_ymd_and_hms(2019, 10, 1, 0, 0, 0)
        .single()
        .expect("time");
    // Schema v5's events carry a device id; risk signals are kept per user, card, IP and device.
    let v5 = matches!(kind % 13, 9..=12);
    Event {
        event_id: format!("e{i}"),
        schema_version: if matches!(body, EventBody::DecisionServed(_)) {
            6
        } else if v5 {
            5
        } else {
            1
        },
        // Minutes span ~45 days, so the 30-day window drops days.
        occurred_at: start + Duration::minutes(i64::from(minute) * 10),
        session_id: format!("s{}", session % 5),
        user_id: user.map(|u| format!("u{}", u % 3)),
        context: Context {
            ip: Some(format!("ip{}", b % 2)),
            device: v5.then(|| Device {
                kind: DeviceType::Desktop,
                os: None,
                browser: None,
                id: Some(format!("d{}", a % 2)),
            }),
            ..Context::default()
        },
        body,
    }
}

fn entries(specs: &[Spec]) -> Vec<LogEntry> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let e = event(i, *s);
            LogEntry::of(&e, (e.occurred_at + Duration::days(400)).timestamp()).expect("encodes")
        })
        .collect()
}

/// Picks deliveries: an order over the events, with duplicates, cut into batches.
fn plan(n: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (
        Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        prop::collection::vec(0..n, 0..n / 2 + 1),
        prop::collection::vec(1usize..8, 1..40),
    )
        .prop_map(|(order, dups, cuts)| {
            let mut seq = order;
            for (k, d) in dups.into_iter().enumerate() {
                let at = (k * 7) % (seq.len() + 1);
                seq.insert(at, d);
            }
            (seq, cuts)
        })
}

fn batches(seq: &[usize], cuts: &[usize]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut rest = seq;
    let mut k = 0;
    while !rest.is_empty() {
        let take = cuts[k % cuts.len()].min(rest.len());
        out.push(rest[..take].to_vec());
        rest = &rest[take..];
        k += 1;
    }
    out
}

fn updater() -> FeatureUpdater<MemoryLog, MemoryFeatureStore> {
    let mut u = FeatureUpdater::new(
        MemoryLog::new(25, Faults::default()),
        MemoryFeatureStore::default(),
    );
    u.max_attempts = 20;
    u
}

/// The rebuild of `entries` as a table in `mode` holds it.
fn rebuilt(entries: &[LogEntry], mode: ItemPageMode) -> BTreeMap<Key, Doc> {
    let (docs, _) = rebuild(entries.to_vec());
    docs.into_iter().filter(|(_, d)| mode.keeps(d)).collect()
}

/// One batch run over the log as it is, as the archive's SQL computes it (the rebuild's items and pages:
/// `infra/cli/tests/batch_features.rs` holds the SQL equal to them). Returns what it did.
async fn batch_run(u: &FeatureUpdater<MemoryLog, MemoryFeatureStore>) -> batch::RunCounts {
    let computed: BTreeMap<Key, Doc> = rebuilt(
        &u.log.items().into_values().collect::<Vec<_>>(),
        ItemPageMode::Batch,
    )
    .into_iter()
    .filter(|(_, d)| matches!(d, Doc::Item(_) | Doc::Page(_)))
    .collect();
    // Run at the time of the events, within their retention (the SQL leaves out what is past it).
    let now = Utc.with_ymd_and_hms(2019, 10, 1, 0, 0, 0).unwrap();
    batch::run_docs(&u.store, &computed, now, 4)
        .await
        .expect("batch run")
}

/// Delivers one batch as the stream would: the events land in the log, then the updater sees their
/// sessions.
async fn deliver(
    u: &FeatureUpdater<MemoryLog, MemoryFeatureStore>,
    all: &[LogEntry],
    batch: &[usize],
) -> checkout_domain::features::updater::UpdateOutcome {
    let refs: Vec<&LogEntry> = batch.iter().map(|i| &all[*i]).collect();
    let left = u.log.put(&refs).await.expect("log put");
    assert!(left.is_empty());
    let sessions: Vec<String> = refs.iter().map(|e| e.session_id.clone()).collect();
    u.update(&sessions).await
}

async fn run(
    u: &FeatureUpdater<MemoryLog, MemoryFeatureStore>,
    all: &[LogEntry],
    batches: &[Vec<usize>],
) -> usize {
    let mut failed = 0;
    for b in batches {
        failed += deliver(u, all, b).await.failed.len();
    }
    failed
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<u8>(),
        prop::option::weighted(0.9, any::<u8>()),
        0u16..6500,
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn any_delivery_equals_the_rebuild_and_a_redelivery_writes_nothing(
        (specs, (seq, cuts)) in prop::collection::vec(spec(), 1..40)
            .prop_flat_map(|specs| { let n = specs.len(); (Just(specs), plan(n)) })
    ) {
        let all = entries(&specs);
        let u = updater();
        let rt = runtime();
        let batches = batches(&seq, &cuts);
        for b in &batches {
            let out = rt.block_on(deliver(&u, &all, b));
            prop_assert!(out.failed.is_empty(), "{:?}", out.failed);
        }
        let (expected, unreadable) = rebuild(all.clone());
        prop_assert!(unreadable.is_empty(), "{:?}", unreadable);
        let d = diff(&expected, &u.store.docs());
        prop_assert!(d.is_empty(), "differences: {:#?}", d);

        let writes = u.store.writes();
        let last = batches.last().expect("one batch at least");
        let again = rt.block_on(deliver(&u, &all, last));
        prop_assert_eq!(again.counts.feature_items_written, 0);
        prop_assert_eq!(u.store.writes(), writes);
    }

    #[test]
    fn racing_updaters_end_at_the_rebuild(
        (specs, (seq, cuts)) in prop::collection::vec(spec(), 1..30)
            .prop_flat_map(|specs| { let n = specs.len(); (Just(specs), plan(n)) })
    ) {
        let all = entries(&specs);
        let u = updater();
        let rt = runtime();
        let batches = batches(&seq, &cuts);
        // Two invocations take alternate batches and run at the same time, interleaving at every call.
        let (odd, even): (Vec<Vec<usize>>, Vec<Vec<usize>>) = {
            let (o, e): (Vec<_>, Vec<_>) = batches.into_iter().enumerate().partition(|(i, _)| i % 2 == 1);
            (o.into_iter().map(|(_, b)| b).collect(), e.into_iter().map(|(_, b)| b).collect())
        };
        let (fa, fb) = rt.block_on(async {
            tokio::join!(run(&u, &all, &odd), run(&u, &all, &even))
        });
        prop_assert_eq!(fa + fb, 0);
        let (expected, _) = rebuild(all.clone());
        let d = diff(&expected, &u.store.docs());
        prop_assert!(d.is_empty(), "differences: {:#?}", d);
    }

    #[test]
    fn erasing_a_user_leaves_the_rebuild_of_the_rest_and_nothing_of_them(
        (specs, (seq, cuts)) in prop::collection::vec(spec(), 1..40)
            .prop_flat_map(|specs| { let n = specs.len(); (Just(specs), plan(n)) }),
        who in 0u8..3,
    ) {
        use checkout_domain::features::erase::{erase, sessions_of, ErasureCounts};
        let all = entries(&specs);
        let u = updater();
        let rt = runtime();
        for b in &batches(&seq, &cuts) {
            let out = rt.block_on(deliver(&u, &all, b));
            prop_assert!(out.failed.is_empty(), "{:?}", out.failed);
        }
        let user = format!("u{who}");
        let mut counts = ErasureCounts::default();
        let sessions = rt.block_on(sessions_of(&u.log, &u.store, &user, &mut counts)).unwrap();
        let expected_sessions: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|e| e.user_id.as_deref() == Some(user.as_str()))
            .map(|e| e.session_id.clone())
            .collect();
        prop_assert_eq!(&sessions, &expected_sessions);
        rt.block_on(erase(&u.log, &u.store, &user, &sessions, ItemPageMode::Stream, &mut counts)).unwrap();
        let remaining: Vec<LogEntry> = u.log.items().into_values().collect();
        prop_assert!(remaining.iter().all(|e| !sessions.contains(&e.session_id)));
        prop_assert!(remaining.iter().all(|e| e.user_id.as_deref() != Some(user.as_str())));
        let (expected, _) = rebuild(remaining);
        let d = diff(&expected, &u.store.docs());
        prop_assert!(d.is_empty(), "differences after erasing {}: {:#?}", user, d);
        let text = serde_json::to_string(&u.store.docs().values().collect::<Vec<_>>()).unwrap();
        prop_assert!(!text.contains(&format!("\"{user}\"")), "{} remains", user);
        // Erasing again finds nothing and changes nothing.
        let writes = u.store.writes();
        let mut again = ErasureCounts::default();
        let none = rt.block_on(sessions_of(&u.log, &u.store, &user, &mut again)).unwrap();
        prop_assert!(none.is_empty());
        rt.block_on(erase(&u.log, &u.store, &user, &none, ItemPageMode::Stream, &mut again)).unwrap();
        prop_assert_eq!(again.log_items_deleted, 0);
        prop_assert_eq!(u.store.writes(), writes);
    }

    #[test]
    fn in_batch_mode_the_stream_and_a_batch_run_end_at_the_rebuild_and_so_does_an_erasure(
        (specs, (seq, cuts)) in prop::collection::vec(spec(), 1..40)
            .prop_flat_map(|specs| { let n = specs.len(); (Just(specs), plan(n)) }),
        who in 0u8..3,
    ) {
        use checkout_domain::features::erase::{erase, sessions_of, ErasureCounts};
        let all = entries(&specs);
        let mut u = updater();
        u.item_pages = ItemPageMode::Batch;
        let rt = runtime();
        for b in &batches(&seq, &cuts) {
            let out = rt.block_on(deliver(&u, &all, b));
            prop_assert!(out.failed.is_empty(), "{:?}", out.failed);
        }
        // The stream path kept everything but the items and pages, and wrote nothing for them.
        let streamed: BTreeMap<Key, Doc> = rebuilt(&all, ItemPageMode::Batch)
            .into_iter()
            .filter(|(_, d)| ItemPageMode::Batch.streamed(d))
            .collect();
        let d = diff(&streamed, &u.store.docs());
        prop_assert!(d.is_empty(), "stream path differences: {:#?}", d);

        let first = rt.block_on(batch_run(&u));
        prop_assert_eq!(first.written, first.computed);
        let d = diff(&rebuilt(&all, ItemPageMode::Batch), &u.store.docs());
        prop_assert!(d.is_empty(), "differences after a run: {:#?}", d);
        let writes = u.store.writes();
        let again = rt.block_on(batch_run(&u));
        prop_assert_eq!((again.written, again.unchanged), (0, first.computed));
        prop_assert_eq!(u.store.writes(), writes);

        let user = format!("u{who}");
        let mut counts = ErasureCounts::default();
        let sessions = rt.block_on(sessions_of(&u.log, &u.store, &user, &mut counts)).unwrap();
        rt.block_on(erase(&u.log, &u.store, &user, &sessions, ItemPageMode::Batch, &mut counts)).unwrap();
        rt.block_on(batch_run(&u));
        let remaining: Vec<LogEntry> = u.log.items().into_values().collect();
        let d = diff(&rebuilt(&remaining, ItemPageMode::Batch), &u.store.docs());
        prop_assert!(d.is_empty(), "differences after erasing {} and a run: {:#?}", user, d);
        let text = serde_json::to_string(&u.store.docs().values().collect::<Vec<_>>()).unwrap();
        prop_assert!(!text.contains(&format!("\"{user}\"")), "{} remains", user);
    }
}
