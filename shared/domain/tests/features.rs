//! Feature projections, given / when / then: given these events, delivered in these batches (in any
//! order, with duplicates), the features are exactly these.

use checkout_domain::event::*;
use checkout_domain::features::rebuild::{diff, rebuild};
use checkout_domain::features::session::{CO_VIEW_WINDOW, MAX_COOCCURRENCE_ITEMS};
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::features::{Doc, Key};
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeMap;

const RETENTION_DAYS: i64 = 400;

fn at(day: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2019, 10, day, h, m, s)
        .single()
        .expect("valid time")
}

fn usd(minor: i64) -> Money {
    Money {
        amount_minor: minor,
        currency: "USD".into(),
    }
}

/// A compact way to write events.
struct E {
    id: &'static str,
    session: &'static str,
    user: Option<&'static str>,
    at: DateTime<Utc>,
    body: EventBody,
}

fn ev(
    id: &'static str,
    session: &'static str,
    user: &'static str,
    at: DateTime<Utc>,
    body: EventBody,
) -> E {
    E {
        id,
        session,
        user: Some(user),
        at,
        body,
    }
}

fn entry(e: &E) -> LogEntry {
    let event = Event {
        event_id: e.id.into(),
        schema_version: 1,
        occurred_at: e.at,
        session_id: e.session.into(),
        user_id: e.user.map(str::to_string),
        context: Context {
            traffic_type: Some(3),
            region: Some("1".into()),
            device: Some(Device {
                kind: DeviceType::Mobile,
                os: Some("2".into()),
                browser: Some("2".into()),
                id: None,
            }),
            ..Context::default()
        },
        body: e.body.clone(),
    };
    LogEntry::of(&event, (e.at + Duration::days(RETENTION_DAYS)).timestamp()).expect("encodes")
}

fn page(t: PageType, path: &str, ms: Option<u64>) -> EventBody {
    EventBody::PageViewed(PageViewed {
        page_type: t,
        path: Some(path.into()),
        time_on_page_ms: ms,
    })
}

fn view(product: &str) -> EventBody {
    EventBody::ProductViewed(ProductViewed {
        product_id: product.into(),
        category_id: None,
        category_code: None,
        brand: None,
        price: Some(usd(1000)),
    })
}

fn add(product: &str, qty: u32, price: i64) -> EventBody {
    EventBody::CartItemAdded(CartItemAdded {
        unit_cost_minor: None,
        product_id: product.into(),
        quantity: qty,
        unit_price: usd(price),
        category_id: None,
        category_code: None,
        brand: None,
    })
}

fn order(id: &str, product: &str, total: i64) -> EventBody {
    EventBody::OrderPlaced(OrderPlaced {
        order_id: id.into(),
        total: usd(total),
        lines: vec![OrderLine {
            product_id: product.into(),
            quantity: 1,
            unit_price_minor: total,
        }],
        email: None,
    })
}

fn decision(id: &str, experiment: &str, variant: &str) -> EventBody {
    EventBody::DecisionServed(Box::new(DecisionServed {
        decision_id: id.into(),
        placement: "cart".into(),
        action: "none".into(),
        experiment_id: Some(experiment.into()),
        variant: Some(variant.into()),
        propensity: 1.0,
        model_id: "m".into(),
        model_version: "1".into(),
        feature_schema_version: 1,
        rules_version: "r1".into(),
        feature_hash: "h".into(),
        degraded: false,
        ..DecisionServed::default()
    }))
}

/// The system under test: an event log and a features table in memory, and the updater between them.
struct World {
    updater: FeatureUpdater<MemoryLog, MemoryFeatureStore>,
}

impl World {
    fn new() -> Self {
        Self::with_store(MemoryFeatureStore::default())
    }

    fn with_store(store: MemoryFeatureStore) -> Self {
        Self {
            updater: FeatureUpdater::new(MemoryLog::new(25, Faults::default()), store),
        }
    }

    /// Appends the events to the log and runs the updater over their sessions, as one stream batch.
    async fn deliver(&self, events: &[&E]) -> checkout_domain::features::updater::UpdateOutcome {
        let entries: Vec<LogEntry> = events.iter().map(|e| entry(e)).collect();
        let refs: Vec<&LogEntry> = entries.iter().collect();
        use checkout_domain::ports::BatchSink;
        let unaccepted = self.updater.log.put(&refs).await.expect("log put");
        assert!(unaccepted.is_empty());
        let sessions: Vec<String> = entries.iter().map(|e| e.session_id.clone()).collect();
        self.updater.update(&sessions).await
    }

    fn doc(&self, key: &Key) -> Option<Doc> {
        self.updater.store.docs().get(key).cloned()
    }

    fn session(&self, id: &str) -> checkout_domain::features::SessionFeatures {
        match self.doc(&Key::session(id)) {
            Some(Doc::Session(s)) => s,
            other => panic!("no session {id}: {other:?}"),
        }
    }

    fn user(&self, id: &str) -> checkout_domain::features::UserFeatures {
        match self.doc(&Key::user(id)) {
            Some(Doc::User(u)) => u,
            other => panic!("no user {id}: {other:?}"),
        }
    }

    fn item(&self, id: &str) -> checkout_domain::features::ItemFeatures {
        match self.doc(&Key::item(id)) {
            Some(Doc::Item(i)) => i,
            other => panic!("no item {id}: {other:?}"),
        }
    }

    fn unit(&self, experiment: &str, user: &str) -> checkout_domain::features::ExperimentUnit {
        match self.doc(&Key::experiment_unit(experiment, user)) {
            Some(Doc::ExperimentUnit(u)) => u,
            other => panic!("no unit {experiment}/{user}: {other:?}"),
        }
    }

    /// The live table must equal a from-scratch rebuild of the log.
    fn assert_matches_rebuild(&self) {
        let (expected, unreadable) = rebuild(self.updater.log.items().into_values().collect());
        assert!(unreadable.is_empty());
        let d = diff(&expected, &self.updater.store.docs());
        assert!(d.is_empty(), "live table differs from rebuild: {d:#?}");
    }
}

#[tokio::test]
async fn uci_page_features_count_pages_by_family_and_time_them_to_the_next_page_view() {
    let w = World::new();
    let s = "s1";
    let given = [
        ev(
            "e1",
            s,
            "u1",
            at(1, 10, 0, 0),
            page(PageType::Administrative, "/account", None),
        ),
        ev(
            "e2",
            s,
            "u1",
            at(1, 10, 0, 30),
            page(PageType::Informational, "/faq", Some(12_000)),
        ),
        ev("e3", s, "u1", at(1, 10, 1, 0), view("p1")),
        ev("e4", s, "u1", at(1, 10, 3, 0), view("p2")),
        ev(
            "e5",
            s,
            "u1",
            at(1, 10, 4, 0),
            page(PageType::Administrative, "/account", None),
        ),
    ];
    // Delivered backwards: event time, not arrival, orders the pages.
    let outcome = w.deliver(&given.iter().rev().collect::<Vec<_>>()).await;
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);

    let f = w.session(s);
    assert_eq!(
        (f.administrative, f.informational, f.product_related),
        (2, 1, 2)
    );
    // /account: 30 s until the next page, then 0 s as the exit page. /faq: the producer's 12 s.
    assert_eq!(f.administrative_duration_ms, 30_000);
    assert_eq!(f.informational_duration_ms, 12_000);
    // p1 → p2 is 120 s, p2 → /account 60 s.
    assert_eq!(f.product_related_duration_ms, 180_000);
    assert_eq!(f.page_views, 5);
    assert_eq!(f.pages.len(), 4);
    assert_eq!(f.month, 10);
    assert!(!f.weekend, "2019-10-01 was a Tuesday");
    assert_eq!(f.special_day, 0.0);
    assert_eq!(f.traffic_type, Some(3));
    assert_eq!(f.event_count, 5);
    assert_eq!(f.first_event_at, at(1, 10, 0, 0));
    assert_eq!(f.last_event_at, at(1, 10, 4, 0));

    // Page-level rates, joined on read: the session entered and exited on /account.
    let docs = w.updater.store.docs();
    let page_of = |path: &str| match docs.get(&Key::page(path)) {
        Some(Doc::Page(p)) => Some(p),
        _ => None,
    };
    let account = page_of("/account").expect("page item");
    assert_eq!((account.views, account.unique_views), (2, 1));
    assert_eq!(
        (account.entrances, account.exits, account.bounces),
        (1, 1, 0)
    );
    let uci = f.uci(page_of);
    // Exit rate of /account is 1/2 over its 2 views, 0 elsewhere: mean over 5 views = 1/5.
    assert!((uci.exit_rates - 0.2).abs() < 1e-12, "{}", uci.exit_rates);
    assert_eq!(uci.bounce_rates, 0.0);
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn a_single_page_session_bounces_and_page_value_follows_later_orders() {
    let w = World::new();
    let given = [
        ev("a1", "s1", "u1", at(1, 9, 0, 0), view("p1")),
        ev("b1", "s2", "u2", at(1, 9, 0, 0), view("p1")),
        ev("b2", "s2", "u2", at(1, 9, 5, 0), order("o1", "p1", 5000)),
    ];
    w.deliver(&given.iter().collect::<Vec<_>>()).await;
    let p = match w.doc(&Key::page("/product/p1")) {
        Some(Doc::Page(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!((p.entrances, p.bounces), (2, 2));
    assert_eq!(p.bounce_rate(), 1.0);
    // One of the two sessions that viewed it bought for $50 after viewing it.
    assert_eq!(p.page_value_minor(Some("USD")), 2500.0);
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn funnel_tracks_cart_value_steps_declines_and_coupons() {
    let w = World::new();
    let s = "s1";
    let given = [
        ev("f1", s, "u1", at(1, 10, 0, 0), add("p1", 2, 1500)),
        ev("f2", s, "u1", at(1, 10, 1, 0), add("p2", 1, 999)),
        ev(
            "f3",
            s,
            "u1",
            at(1, 10, 2, 0),
            EventBody::CartItemRemoved(CartItemRemoved {
                product_id: "p1".into(),
                quantity: 1,
            }),
        ),
        ev(
            "f4",
            s,
            "u1",
            at(1, 10, 3, 0),
            EventBody::CheckoutStepCompleted(CheckoutStepCompleted {
                step: CheckoutStep::Shipping,
                step_index: 2,
            }),
        ),
        ev(
            "f5",
            s,
            "u1",
            at(1, 10, 4, 0),
            EventBody::CouponApplied(CouponApplied {
                code: "X".into(),
                outcome: CouponOutcome::Rejected,
                discount: None,
            }),
        ),
        ev(
            "f6",
            s,
            "u1",
            at(1, 10, 5, 0),
            EventBody::PaymentDeclined(PaymentDeclined {
                payment_attempt_id: "pa1".into(),
                decline_code: "insufficient_funds".into(),
                amount: usd(2499),
            }),
        ),
    ];
    w.deliver(&given.iter().collect::<Vec<_>>()).await;
    let f = w.session(s);
    assert_eq!((f.cart_value_minor, f.cart_items), (1500 + 999, 2));
    assert_eq!(f.cart_currency.as_deref(), Some("USD"));
    assert!(f.checkout_started);
    assert_eq!(f.checkout_step, 2);
    assert_eq!((f.coupon_attempts, f.payment_declines), (1, 1));
    assert_eq!(f.orders, 0);
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn users_count_sessions_orders_and_revenue_with_windows_cut_at_read_time() {
    let w = World::new();
    let given = [
        ev("u1", "s1", "alice", at(1, 9, 0, 0), view("p1")),
        ev("u2", "s1", "alice", at(1, 9, 1, 0), order("o1", "p1", 2000)),
        ev("u3", "s2", "alice", at(20, 9, 0, 0), view("p2")),
        ev(
            "u4",
            "s2",
            "alice",
            at(20, 9, 2, 0),
            order("o2", "p2", 3000),
        ),
    ];
    // The later session first, then the earlier one.
    w.deliver(&[&given[2], &given[3]]).await;
    w.deliver(&[&given[0], &given[1]]).await;
    let u = w.user("alice");
    assert_eq!((u.sessions, u.orders), (2, 2));
    assert_eq!(u.revenue, BTreeMap::from([("USD".to_string(), 5000)]));
    assert_eq!(u.last_order_at, Some(at(20, 9, 2, 0)));
    assert_eq!(u.first_seen_at, at(1, 9, 0, 0));

    let on_21st = u.windows(at(21, 12, 0, 0));
    assert_eq!((on_21st.sessions_7d, on_21st.orders_7d), (1, 1));
    assert_eq!((on_21st.sessions_30d, on_21st.orders_30d), (2, 2));
    // A month later nothing is inside either window, although no item was rewritten.
    let later = u.windows(at(20, 12, 0, 0) + Duration::days(40));
    assert_eq!((later.sessions_30d, later.orders_30d), (0, 0));
    // The user keeps the day of the latest event, and is kept to the end of the day its retention ends
    // (a day late at most, never early); past that it reads as absent.
    assert_eq!(u.last_event_at, at(20, 0, 0, 0));
    let doc = Doc::User(u.clone());
    assert!(!doc.expired(at(21, 0, 0, 0)));
    let retention_ends = at(20, 9, 3, 0) + Duration::days(RETENTION_DAYS);
    assert!(!doc.expired(retention_ends));
    assert!(!doc.expired(at(20, 23, 59, 59) + Duration::days(RETENTION_DAYS)));
    assert!(doc.expired(at(21, 0, 0, 0) + Duration::days(RETENTION_DAYS)));
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn items_count_views_adds_purchases_and_rank_co_viewed_products() {
    let w = World::new();
    let given = [
        ev("i1", "s1", "u1", at(1, 9, 0, 0), view("p1")),
        ev("i2", "s1", "u1", at(1, 9, 1, 0), view("p2")),
        ev("i3", "s1", "u1", at(1, 9, 2, 0), view("p3")),
        ev("i4", "s2", "u2", at(1, 9, 0, 0), view("p1")),
        ev("i5", "s2", "u2", at(1, 9, 1, 0), view("p3")),
        ev("i6", "s2", "u2", at(1, 9, 2, 0), add("p1", 1, 1000)),
        ev("i7", "s2", "u2", at(1, 9, 3, 0), order("o1", "p1", 1000)),
    ];
    w.deliver(&given.iter().collect::<Vec<_>>()).await;
    let p1 = w.item("p1");
    assert_eq!(
        (p1.views, p1.cart_adds, p1.purchases, p1.sessions),
        (2, 1, 1, 2)
    );
    let top: Vec<(&str, u32)> = p1
        .co_viewed
        .iter()
        .map(|p| (p.product_id.as_str(), p.sessions))
        .collect();
    assert_eq!(top, [("p3", 2), ("p2", 1)]);
    assert!(p1.co_purchased.is_empty());
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn co_views_pair_products_within_the_window_and_a_late_view_moves_it() {
    let w = World::new();
    let view_at = |id: &'static str, minute: u32, p: &'static str| {
        ev(id, "s1", "u1", at(1, 9, minute, 0), view(p))
    };
    let given = [
        view_at("w1", 1, "p1"),
        view_at("w2", 2, "p2"),
        view_at("w3", 3, "p3"),
        view_at("w4", 4, "p4"),
        view_at("w5", 5, "p5"),
    ];
    w.deliver(&given.iter().collect::<Vec<_>>()).await;
    let partners = |w: &World, p: &str| -> Vec<String> {
        let mut v: Vec<String> = w
            .item(p)
            .co_viewed
            .iter()
            .map(|x| x.product_id.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(CO_VIEW_WINDOW, Some(2));
    assert_eq!(partners(&w, "p1"), ["p2", "p3"]);
    assert_eq!(partners(&w, "p3"), ["p1", "p2", "p4", "p5"]);
    // A view that arrives late but happened between p2 and p3 moves the later places by one: p1 loses
    // p3 (its count goes down), px pairs with its neighbours.
    let late = ev("wx", "s1", "u1", at(1, 9, 2, 30), view("px"));
    w.deliver(&[&late]).await;
    assert_eq!(partners(&w, "p1"), ["p2", "px"]);
    assert_eq!(partners(&w, "px"), ["p1", "p2", "p3", "p4"]);
    assert_eq!(partners(&w, "p5"), ["p3", "p4"]);
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn a_session_past_the_co_occurrence_cap_withdraws_its_pairs() {
    let w = World::new();
    let mut events = Vec::new();
    let ids: Vec<&'static str> = (0..=MAX_COOCCURRENCE_ITEMS)
        .map(|i| &*Box::leak(format!("c{i}").into_boxed_str()))
        .collect();
    let products: Vec<&'static str> = (0..=MAX_COOCCURRENCE_ITEMS)
        .map(|i| &*Box::leak(format!("p{i:02}").into_boxed_str()))
        .collect();
    for (i, (id, p)) in ids.iter().zip(&products).enumerate() {
        events.push(ev(id, "crawler", "bot", at(1, 9, 0, i as u32), view(p)));
    }
    // Up to the cap, products pair with those viewed within the window of them.
    let (head, last) = events.split_at(MAX_COOCCURRENCE_ITEMS);
    w.deliver(&head.iter().collect::<Vec<_>>()).await;
    let window = CO_VIEW_WINDOW.expect("a window");
    assert_eq!(w.item("p00").co_viewed.len(), window);
    assert_eq!(w.item("p10").co_viewed.len(), 2 * window);
    // One more product and the session no longer counts as a shopper's co-views.
    w.deliver(&last.iter().collect::<Vec<_>>()).await;
    let p0 = w.item("p00");
    assert!(p0.co_viewed.is_empty(), "{:?}", p0.co_viewed);
    assert_eq!(p0.views, 1);
    let pairs = w
        .updater
        .store
        .docs()
        .into_values()
        .filter(|d| matches!(d, Doc::ItemPair(_)))
        .count();
    assert_eq!(pairs, 0);
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn experiment_units_split_orders_at_the_first_exposure_across_sessions() {
    let w = World::new();
    let given = [
        // Pre-exposure order, 5 days before.
        ev("x1", "s1", "bob", at(5, 9, 0, 0), order("o1", "p1", 1000)),
        // Exposure in s2 (treatment) and an order after it in s3.
        ev(
            "x2",
            "s2",
            "bob",
            at(10, 9, 0, 0),
            decision("d1", "exp1", "treatment"),
        ),
        ev("x3", "s3", "bob", at(11, 9, 0, 0), order("o2", "p2", 4000)),
        // An earlier exposure in s4 (control) arrives last: it becomes the first exposure.
        ev(
            "x4",
            "s4",
            "bob",
            at(8, 9, 0, 0),
            decision("d0", "exp1", "control"),
        ),
    ];
    w.deliver(&[&given[0], &given[1], &given[2]]).await;
    let u = w.unit("exp1", "bob");
    assert_eq!(u.variant, "treatment");
    assert_eq!((u.orders_before, u.orders_after), (1, 1));
    assert_eq!(u.revenue_after, BTreeMap::from([("USD".to_string(), 4000)]));

    w.deliver(&[&given[3]]).await;
    let u = w.unit("exp1", "bob");
    assert_eq!(u.variant, "control");
    assert_eq!(u.first_exposure_at, at(8, 9, 0, 0));
    assert_eq!(u.variants_seen, 2, "bob saw both arms");
    assert_eq!((u.orders_before, u.orders_after), (1, 1));
    assert_eq!(
        u.revenue_before,
        BTreeMap::from([("USD".to_string(), 1000)])
    );
    assert!(u.complete);
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn a_redelivered_batch_writes_nothing() {
    let w = World::new();
    let given = [
        ev("r1", "s1", "u1", at(1, 9, 0, 0), view("p1")),
        ev("r2", "s1", "u1", at(1, 9, 1, 0), view("p2")),
        ev("r3", "s2", "u2", at(1, 9, 0, 0), order("o1", "p1", 100)),
    ];
    let batch: Vec<&E> = given.iter().collect();
    let first = w.deliver(&batch).await;
    assert!(first.counts.feature_items_written > 0);
    let before = w.updater.store.docs();
    let writes = w.updater.store.writes();

    let again = w.deliver(&batch).await;
    assert!(again.failed.is_empty());
    assert_eq!(again.counts.sessions_current, 2);
    assert_eq!(again.counts.feature_items_written, 0);
    assert_eq!(w.updater.store.writes(), writes);
    assert_eq!(w.updater.store.docs(), before);
}

#[tokio::test]
async fn a_transient_store_fault_leaves_the_session_undone_and_a_retry_completes_it() {
    // Call 1 reads the session items, call 2 the aggregates: fail that one.
    let store = MemoryFeatureStore::new(Faults {
        transient_calls: vec![2],
        ..Faults::default()
    });
    let w = World::with_store(store);
    let given = [ev("t1", "s1", "u1", at(1, 9, 0, 0), view("p1"))];
    let outcome = w.deliver(&[&given[0]]).await;
    let err = outcome.failed.get("s1").expect("s1 failed");
    assert!(err.retryable());
    assert!(
        w.doc(&Key::session("s1")).is_none(),
        "no session item before its aggregates"
    );

    // Lambda retries the batch.
    let retry = w.deliver(&[&given[0]]).await;
    assert!(retry.failed.is_empty(), "{:?}", retry.failed);
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn a_fault_after_the_aggregates_landed_is_recovered_without_counting_twice() {
    let w = World::new();
    let given = [
        ev("v1", "s1", "u1", at(1, 9, 0, 0), view("p1")),
        ev("v2", "s1", "u1", at(1, 9, 1, 0), order("o1", "p1", 700)),
    ];
    // The aggregates commit, then the session item's write fails (the invocation "crashes" there).
    w.updater.store.fail_writes_to(Some("session#"));
    let outcome = w.deliver(&[&given[0], &given[1]]).await;
    assert!(outcome.failed.contains_key("s1"));
    assert!(
        outcome.counts.feature_items_written > 0,
        "aggregates landed"
    );
    assert!(w.doc(&Key::session("s1")).is_none());

    // The retry finds every contribution already stored and writes only the session item.
    w.updater.store.fail_writes_to(None);
    let retry = w.deliver(&[&given[0], &given[1]]).await;
    assert!(retry.failed.is_empty(), "{:?}", retry.failed);
    assert_eq!(retry.counts.feature_items_written, 1);
    let u = w.user("u1");
    assert_eq!((u.sessions, u.orders), (1, 1));
    assert_eq!(w.item("p1").views, 1);
    w.assert_matches_rebuild();
}

#[tokio::test]
async fn concurrent_updaters_on_the_same_sessions_converge() {
    let w = World::new();
    let given: Vec<E> = (0..30u32)
        .map(|i| {
            let session = ["s1", "s2", "s3"][(i % 3) as usize];
            let product = ["p1", "p2", "p3", "p4"][(i % 4) as usize];
            let id: &'static str = Box::leak(format!("k{i}").into_boxed_str());
            ev(id, session, "same-user", at(1, 9, 0, i), view(product))
        })
        .collect();
    let entries: Vec<LogEntry> = given.iter().map(entry).collect();
    {
        use checkout_domain::ports::BatchSink;
        let refs: Vec<&LogEntry> = entries.iter().collect();
        w.updater.log.put(&refs).await.expect("log");
    }
    let sessions: Vec<String> = ["s1", "s2", "s3"].map(String::from).to_vec();
    // Two invocations over the same sessions, interleaved at every store call.
    let (a, b) = tokio::join!(w.updater.update(&sessions), w.updater.update(&sessions));
    assert!(
        a.failed.is_empty() && b.failed.is_empty(),
        "{:?} {:?}",
        a.failed,
        b.failed
    );
    w.assert_matches_rebuild();
    assert_eq!(w.user("same-user").sessions, 3);
    assert_eq!(w.item("p1").views, 8);
    assert!(
        a.counts.conflicts + b.counts.conflicts > 0,
        "the two invocations never raced: {:?} {:?}",
        a.counts,
        b.counts
    );
}

#[tokio::test]
async fn events_that_leave_a_sessions_contributions_as_they_were_rewrite_only_the_session() {
    let w = World::new();
    let first = [
        ev("e1", "s1", "u1", at(1, 10, 0, 0), view("p1")),
        ev("e2", "s1", "u1", at(1, 10, 1, 0), view("p2")),
    ];
    w.deliver(&[&first[0], &first[1]]).await;
    let before = w.updater.store.write_units_by_pk();
    // A form error the same day moves the session's features and nothing it contributes to its user, its
    // products or its pages.
    let error = ev(
        "e3",
        "s1",
        "u1",
        at(1, 10, 2, 0),
        EventBody::FormError(FormError {
            step: CheckoutStep::Shipping,
            field: "postal_code".into(),
            error_code: "invalid_format".into(),
        }),
    );
    let out = w.deliver(&[&error]).await;
    assert!(out.failed.is_empty());
    let after = w.updater.store.write_units_by_pk();
    let moved: Vec<&String> = after
        .iter()
        .filter(|(pk, units)| before.get(*pk) != Some(*units))
        .map(|(pk, _)| pk)
        .collect();
    assert_eq!(moved, vec!["session#s1"], "{after:?}");
    assert_eq!(w.session("s1").form_errors, 1);
    // The contributions keep their older watermark; the table still equals a rebuild.
    w.assert_matches_rebuild();

    // An event on the next day moves the user (its day), though not the products or pages.
    let next_day = ev("e4", "s1", "u1", at(2, 0, 5, 0), view("p2"));
    w.deliver(&[&next_day]).await;
    assert_eq!(w.user("u1").last_event_at, at(2, 0, 0, 0));
    assert_eq!(w.item("p2").views, 2);
    w.assert_matches_rebuild();
}
