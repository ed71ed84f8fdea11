//! The recovery sweep end to end over the in-memory adapters: the feature updater schedules, the sweep
//! checks, decides, sends and logs. The adversarial replay delivers carts and orders late, out of
//! order and twice, runs every sweep twice, and lets orders land in the log while a sweep works.

use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::read::PageCache;
use checkout_domain::delivery::RetryPolicy;
use checkout_domain::event::*;
use checkout_domain::features::updater::FeatureUpdater;
use checkout_domain::features::Doc;
use checkout_domain::ingest::LogEntry;
use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog, MemoryOutbox};
use checkout_domain::model::registry::fallback_model;
use checkout_domain::model::scorer::Model;
use checkout_domain::ports::{LogIndex, SessionLog, StoreError};
use checkout_domain::recovery::sweep::{OutboundMessage, Sweep, SweepInputs, SweepReport};
use checkout_domain::recovery::{RecoverySettings, HOLDOUT, TREATMENT};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A Monday, 10:00 UTC.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap()
}

fn usd(minor: i64) -> Money {
    Money {
        amount_minor: minor,
        currency: "USD".into(),
    }
}

fn event(id: &str, session: &str, user: &str, at: DateTime<Utc>, body: EventBody) -> Event {
    Event {
        event_id: id.into(),
        schema_version: SCHEMA_VERSION,
        occurred_at: at,
        session_id: session.into(),
        user_id: Some(user.into()),
        context: Context::default(),
        body,
    }
}

fn add(product: &str, price: i64) -> EventBody {
    EventBody::CartItemAdded(CartItemAdded {
        product_id: product.into(),
        quantity: 1,
        unit_price: usd(price),
        unit_cost_minor: None,
        category_id: None,
        category_code: None,
        brand: None,
    })
}

fn order(id: &str) -> EventBody {
    EventBody::OrderPlaced(OrderPlaced {
        order_id: id.into(),
        total: usd(5_000),
        lines: vec![OrderLine {
            product_id: "p1".into(),
            quantity: 1,
            unit_price_minor: 5_000,
        }],
        email: None,
    })
}

/// The first pseudonymous user ids that the default config puts in `variant`.
fn users(variant: &str, n: usize) -> Vec<String> {
    let e = DecisionConfig::default().recovery.experiment();
    (0..)
        .map(|i| format!("user-{i:04}"))
        .filter(|u| e.assign(u).is_some_and(|a| a.variant == variant))
        .take(n)
        .collect()
}

/// The pipeline: the log, the features table, the outbound queue; the updater projects what is
/// delivered, the sweep runs over all of it.
struct World {
    up: FeatureUpdater<MemoryLog, MemoryFeatureStore>,
    outbox: MemoryOutbox,
    pages: PageCache,
    settings: RecoverySettings,
    config: DecisionConfig,
    model: Model,
}

impl World {
    fn new() -> Self {
        Self {
            up: FeatureUpdater::new(
                MemoryLog::new(25, Faults::default()),
                MemoryFeatureStore::default(),
            ),
            outbox: MemoryOutbox::default(),
            pages: PageCache::new(std::time::Duration::from_secs(60), 1_000),
            settings: RecoverySettings::default(),
            config: DecisionConfig::default(),
            model: fallback_model().expect("the compiled-in model loads"),
        }
    }

    /// Appends events to the log (as ingest would) and projects their sessions (as the stream would).
    async fn deliver(&self, events: &[Event]) {
        use checkout_domain::ports::BatchSink;
        let entries: Vec<LogEntry> = events
            .iter()
            .map(|e| LogEntry::of(e, i64::MAX).unwrap())
            .collect();
        for chunk in entries.chunks(25) {
            let refs: Vec<&LogEntry> = chunk.iter().collect();
            self.up.log.put(&refs).await.unwrap();
        }
        self.project(events.iter().map(|e| e.session_id.clone()).collect())
            .await;
    }

    async fn project(&self, sessions: BTreeSet<String>) {
        let sessions: Vec<String> = sessions.into_iter().collect();
        let out = self.up.update(&sessions).await;
        assert!(out.failed.is_empty(), "{:?}", out.failed);
    }

    async fn sweep_with<L: LogIndex>(&self, log: &L, now: DateTime<Utc>) -> SweepReport {
        let sweep = Sweep {
            log,
            log_sink: &self.up.log,
            store: &self.up.store,
            outbound: &self.outbox,
            pages: &self.pages,
            settings: &self.settings,
            retention: Duration::days(400),
            lookback: Duration::hours(6),
            max_per_bucket: 1_000,
            concurrency: 4,
            retry: RetryPolicy::default(),
        };
        let report = sweep
            .run(SweepInputs {
                now,
                config: &self.config,
                model: &self.model,
                shadow: None,
            })
            .await;
        assert_eq!(report.failed, 0, "{:?}", report.first_failure);
        // The sweep's own events, projected as the stream would.
        let touched: BTreeSet<String> = self
            .up
            .log
            .items()
            .values()
            .filter(|e| {
                e.event_type == "decision_served" || e.event_type == "recovery_message_requested"
            })
            .map(|e| e.session_id.clone())
            .collect();
        self.project(touched).await;
        report
    }

    async fn sweep(&self, now: DateTime<Utc>) -> SweepReport {
        self.sweep_with(&self.up.log, now).await
    }

    fn events(&self) -> Vec<Event> {
        self.up
            .log
            .items()
            .values()
            .map(|e| e.event().expect("every logged event decodes"))
            .collect()
    }

    fn decisions(&self) -> Vec<DecisionServed> {
        self.events()
            .into_iter()
            .filter_map(|e| match e.body {
                EventBody::DecisionServed(d) => Some(*d),
                _ => None,
            })
            .collect()
    }

    fn requested(&self) -> Vec<(Event, RecoveryMessageRequested)> {
        self.events()
            .into_iter()
            .filter_map(|e| match &e.body {
                EventBody::RecoveryMessageRequested(m) => Some((e.clone(), m.clone())),
                _ => None,
            })
            .collect()
    }

    fn due_items(&self) -> usize {
        self.up
            .store
            .docs()
            .values()
            .filter(|d| matches!(d, Doc::RecoveryDue(_)))
            .count()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Every hour from `from` for `hours` hours.
fn hourly(from: DateTime<Utc>, hours: i64) -> impl Iterator<Item = DateTime<Utc>> {
    (0..=hours).map(move |h| from + Duration::hours(h))
}

#[test]
fn a_treated_cart_gets_one_message_per_step_and_the_holdout_nothing() {
    rt().block_on(async {
        let w = World::new();
        let treated = &users(TREATMENT, 1)[0];
        let held = &users(HOLDOUT, 1)[0];
        w.deliver(&[
            event("a1", "s-t", treated, t0(), add("p1", 5_000)),
            event("a2", "s-h", held, t0(), add("p1", 5_000)),
        ])
        .await;
        assert_eq!(w.due_items(), 2, "the updater scheduled both carts");
        let mut reports = Vec::new();
        for now in hourly(t0(), 24 * 5) {
            reports.push(w.sweep(now).await);
        }
        let messages = w.outbox.messages();
        let steps: Vec<u32> = messages.iter().map(|m| m.step).collect();
        assert_eq!(steps, vec![0, 1, 2], "{messages:#?}");
        assert!(messages.iter().all(|m| &m.user == treated));
        let keys: BTreeSet<&str> = messages
            .iter()
            .map(|m| m.idempotency_key.as_str())
            .collect();
        assert_eq!(keys.len(), 3);
        // Abandoned at 11:00: due 12:00, then +24 h and +72 h (all outside 21:00–08:00 UTC).
        let abandoned = t0() + Duration::hours(1);
        for (m, h) in messages.iter().zip([1, 24, 72]) {
            assert_eq!(m.abandoned_at, abandoned);
            assert_eq!(m.due_at, abandoned + Duration::hours(h));
            assert_eq!(m.requested_at, m.due_at, "swept on the hour it fell due");
            assert_eq!(m.cart_token, "s-t");
            assert_eq!(
                m.action, "reminder",
                "margin unknown: no incentive, a plain reminder"
            );
            assert_eq!(m.cart.value_minor, 5_000);
        }
        // Each message is logged, and so is each decision, with its propensity and the arm.
        assert_eq!(w.requested().len(), 3);
        let decisions = w.decisions();
        let (holdout, treatment): (Vec<_>, Vec<_>) = decisions
            .iter()
            .partition(|d| d.variant.as_deref() == Some(HOLDOUT));
        assert_eq!(treatment.len(), 3);
        assert_eq!(
            holdout.len(),
            1,
            "the holdout's one decision ends its sequence"
        );
        let h = &holdout[0];
        assert_eq!((h.action.as_str(), h.propensity), ("none", 1.0));
        assert_eq!(h.experiment_id.as_deref(), Some("cart-recovery"));
        assert_eq!(h.placement, "recovery");
        for d in &treatment {
            assert!(d.propensity > 0.0 && d.eligible.iter().any(|e| e.action == "reminder"));
            assert!(d.eligible.iter().any(|e| e.action == "none"));
            assert!(d.score.is_some(), "the propensity model scored the session");
        }
        assert_eq!(w.due_items(), 0, "both sequences are over");
        // The learning loop's in-session export leaves recovery decisions out (their outcome is a
        // later order elsewhere), and says how many.
        let dataset = checkout_domain::learning::dataset::build(
            w.up.log.items().into_values().collect(),
            &w.model,
            Default::default(),
        );
        assert_eq!(dataset.summary.decisions, 4);
        assert_eq!(dataset.summary.recovery_skipped, 4);
        assert!(dataset.rows.is_empty());
        let total: u64 = reports.iter().map(SweepReport::sent).sum();
        assert_eq!(total, 3);
        assert_eq!(reports.iter().map(|r| r.holdout).sum::<u64>(), 1);
    });
}

/// A member of the universal holdout whom the recovery experiment would treat gets no message: one
/// decision, `none`, tagged `holdout`, outside the recovery experiment, and the sequence ends.
#[test]
fn a_universal_holdout_member_gets_no_recovery_message() {
    rt().block_on(async {
        let w = World::new();
        let universal = &w.config.holdout;
        let member = users(TREATMENT, 400)
            .into_iter()
            .find(|u| universal.is_member(u))
            .expect("a treated user who is held out");
        w.deliver(&[event("a1", "s-u", &member, t0(), add("p1", 5_000))])
            .await;
        assert_eq!(w.due_items(), 1);
        let mut held = 0;
        for now in hourly(t0(), 24 * 5) {
            held += w.sweep(now).await.holdout;
        }
        assert!(w.outbox.messages().is_empty(), "no message");
        assert!(w.requested().is_empty());
        let decisions = w.decisions();
        assert_eq!(decisions.len(), 1, "one decision ends the sequence");
        let d = &decisions[0];
        assert_eq!(
            (d.action.as_str(), d.experiment_id.as_deref()),
            ("none", None)
        );
        assert_eq!(
            d.holdout.as_ref().map(|h| h.variant.as_str()),
            Some(HOLDOUT_VARIANT)
        );
        assert_eq!(held, 1);
        assert_eq!(w.due_items(), 0);
    });
}

#[test]
fn quiet_hours_defer_both_arms_to_the_local_morning() {
    rt().block_on(async {
        let mut w = World::new();
        w.config.recovery.default_time_zone = "Europe/Berlin".into();
        let treated = &users(TREATMENT, 2);
        let held = &users(HOLDOUT, 1)[0];
        // Abandoned 19:00 UTC (21:00 CEST): step 0 due at 20:00 UTC, 22:00 in Berlin.
        let at = t0() + Duration::hours(8);
        let mut tokyo = event("a3", "s-tokyo", &treated[1], at, add("p1", 5_000));
        tokyo.context.time_zone = Some("Asia/Tokyo".into());
        w.deliver(&[
            event("a1", "s-t", &treated[0], at, add("p1", 5_000)),
            event("a2", "s-h", held, at, add("p1", 5_000)),
            tokyo,
        ])
        .await;
        let mut deferred = 0;
        for now in hourly(at, 20) {
            deferred += w.sweep(now).await.deferred_quiet_hours;
        }
        assert!(deferred >= 2);
        let sent: BTreeMap<String, DateTime<Utc>> = w
            .outbox
            .messages()
            .into_iter()
            .map(|m| (m.cart_token, m.requested_at))
            .collect();
        // Berlin: 22:00 CEST, quiet until 08:00 CEST, 06:00 UTC. Tokyo: 05:00 JST the next day, quiet
        // until 08:00 JST, 23:00 UTC the same day.
        let morning = Utc.with_ymd_and_hms(2026, 6, 2, 6, 0, 0).unwrap();
        assert_eq!(sent.get("s-t"), Some(&morning));
        assert_eq!(
            sent.get("s-tokyo"),
            Some(&Utc.with_ymd_and_hms(2026, 6, 1, 23, 0, 0).unwrap())
        );
        let holdout = w
            .events()
            .into_iter()
            .find(|e| matches!(&e.body, EventBody::DecisionServed(d) if d.variant.as_deref() == Some(HOLDOUT)))
            .expect("the holdout's decision");
        assert_eq!(holdout.occurred_at, morning, "the holdout waits like the treatment");
    });
}

#[test]
fn an_opt_out_an_order_and_the_channel_cap_stop_or_defer_messages() {
    rt().block_on(async {
        let w = World::new();
        let u = users(TREATMENT, 3);
        w.deliver(&[
            event("a1", "s-out", &u[0], t0(), add("p1", 5_000)),
            event(
                "c1",
                "s-pref",
                &u[0],
                t0() - Duration::days(1),
                EventBody::ConsentChanged(ConsentChanged {
                    channel: None,
                    granted: false,
                    source: Some("preference_center".into()),
                }),
            ),
            event("a2", "s-buy", &u[1], t0(), add("p1", 5_000)),
            // Two carts of one user: the second's first message waits for the e-mail cap.
            event("a3", "s-one", &u[2], t0(), add("p1", 5_000)),
            event(
                "a4",
                "s-two",
                &u[2],
                t0() + Duration::hours(2),
                add("p2", 5_000),
            ),
        ])
        .await;
        let mut ended = BTreeMap::new();
        let mut deferred_cap = 0;
        for now in hourly(t0(), 40) {
            if now == t0() + Duration::hours(5) {
                // u[1] orders in another session after the first message.
                w.deliver(&[event("o1", "s-new", &u[1], now, order("o-1"))])
                    .await;
            }
            let r = w.sweep(now).await;
            deferred_cap += r.deferred_cap;
            for (k, v) in r.ended {
                *ended.entry(k).or_insert(0) += v;
            }
        }
        let messages = w.outbox.messages();
        let by_cart = |token: &str| messages.iter().filter(|m| m.cart_token == token).count();
        assert_eq!(by_cart("s-out"), 0, "opted out");
        assert_eq!(
            by_cart("s-buy"),
            1,
            "step 0 only: the order ends the sequence"
        );
        assert_eq!(ended.get("opted_out"), Some(&1));
        assert_eq!(ended.get("ordered_since"), Some(&1));
        // u[2]: cart one at 12:00; cart two due 14:00, deferred to 04:00 (16 h), then quiet hours to 08:00.
        let two: Vec<&OutboundMessage> = messages
            .iter()
            .filter(|m| m.cart_token == "s-two")
            .collect();
        assert_eq!(two.len(), 1);
        assert_eq!(two[0].requested_at, t0() + Duration::hours(22));
        assert!(deferred_cap >= 1);
        let one_first = messages.iter().find(|m| m.cart_token == "s-one").unwrap();
        assert_eq!(one_first.requested_at, t0() + Duration::hours(2));
    });
}

/// Two carts of one user due in the same run: the caps hold within the run (one e-mail now, the other
/// deferred 16 h), and an item whose next step is already overdue is moved to now, not into the past.
#[test]
fn one_users_carts_due_together_are_capped_within_the_run() {
    rt().block_on(async {
        let w = World::new();
        let u = &users(TREATMENT, 1)[0];
        w.deliver(&[
            event("a1", "s-a", u, t0(), add("p1", 5_000)),
            event("a2", "s-b", u, t0(), add("p2", 5_000)),
        ])
        .await;
        let due = t0() + Duration::hours(2);
        let r = w.sweep(due).await;
        assert_eq!((r.sent(), r.deferred_cap), (1, 1), "{r:?}");
        let later = due + Duration::hours(16);
        assert!(r.moved_to.contains(&later), "{:?}", r.moved_to);
        assert!(r.moved_to.iter().all(|t| *t >= due));
        // 16 h later is 04:00 UTC: quiet hours then hold it to 08:00.
        let r = w.sweep(later).await;
        assert_eq!(r.deferred_quiet_hours, 1, "{r:?}");
        let morning = Utc.with_ymd_and_hms(2026, 6, 2, 8, 0, 0).unwrap();
        let r = w.sweep(morning).await;
        assert_eq!(r.sent(), 1, "the deferred cart's first message: {r:?}");
        let times: Vec<DateTime<Utc>> =
            w.outbox.messages().iter().map(|m| m.requested_at).collect();
        assert_eq!(times, vec![due, morning]);
    });
}

/// A log that lets an order land in it at the `at_call`-th read the sweep makes.
struct RacingLog<'a> {
    inner: &'a MemoryLog,
    reads: AtomicU64,
    at_call: u64,
    order: Mutex<Option<LogEntry>>,
}

impl RacingLog<'_> {
    async fn maybe_land(&self) {
        use checkout_domain::ports::BatchSink;
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.at_call {
            let order = self.order.lock().unwrap().take();
            if let Some(o) = order {
                self.inner.put(&[&o]).await.unwrap();
            }
        }
    }
}

impl SessionLog for RacingLog<'_> {
    async fn session_events(&self, session_id: &str) -> Result<Vec<LogEntry>, StoreError> {
        self.maybe_land().await;
        self.inner.session_events(session_id).await
    }
}

impl LogIndex for RacingLog<'_> {
    async fn decision_session(&self, decision_id: &str) -> Result<Option<String>, StoreError> {
        self.inner.decision_session(decision_id).await
    }
    async fn decisions_in_hour(
        &self,
        hour: &str,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.inner.decisions_in_hour(hour, limit).await
    }
    async fn user_sessions(&self, user_id: &str) -> Result<BTreeSet<String>, StoreError> {
        self.maybe_land().await;
        self.inner.user_sessions(user_id).await
    }
}

/// An order that reaches the log at any of the sweep's reads up to the last check's read of the user's
/// sessions stops the message, even one that landed after the first check. The one window left is
/// between that index read and the send (a new session's order landing in it is not seen): here, the
/// sixth read.
#[test]
fn an_order_landing_while_the_sweep_works_stops_the_message() {
    rt().block_on(async {
        let u = &users(TREATMENT, 1)[0];
        // Per check: the cart's session, the user's sessions (the index), the other session s0.
        let last_index_read = 5;
        for at_call in 1..=8 {
            let w = World::new();
            w.deliver(&[
                event("a1", "s1", u, t0(), add("p1", 5_000)),
                event("v0", "s0", u, t0() - Duration::days(2), add("p9", 100)),
                event("o0", "s0", u, t0() - Duration::days(2), order("o-0")),
            ])
            .await;
            let due = t0() + Duration::hours(2);
            let order = event("o1", "s2", u, due - Duration::minutes(1), order("o-1"));
            let log = RacingLog {
                inner: &w.up.log,
                reads: AtomicU64::new(0),
                at_call,
                order: Mutex::new(Some(LogEntry::of(&order, i64::MAX).unwrap())),
            };
            let r = w.sweep_with(&log, due).await;
            let landed = log.order.lock().unwrap().is_none();
            assert_eq!(landed, at_call <= 6, "the sweep reads six times: {at_call}");
            if at_call <= last_index_read {
                assert_eq!(r.sent(), 0, "the order landed at read {at_call}: {r:?}");
                assert!(w.outbox.messages().is_empty());
                assert_eq!(r.ended.get("ordered_since"), Some(&1), "{r:?}");
            } else {
                assert_eq!(r.sent(), 1, "read {at_call}: after the last index read");
            }
        }
    });
}

/// A failed append after the send leaves the step to the next run, which resends under the same key.
#[test]
fn a_send_retried_after_a_fault_keeps_its_idempotency_key() {
    rt().block_on(async {
        let mut w = World::new();
        let u = &users(TREATMENT, 1)[0];
        w.deliver(&[event("a1", "s1", u, t0(), add("p1", 5_000))])
            .await;
        // The sweep's first append (the decision) lands; its second (the requested event) fails, and
        // so does its one retry.
        let c = w.up.log.calls();
        w.up.log.faults.transient_calls = vec![c + 2, c + 3];
        let due = t0() + Duration::hours(2);
        let sweep = Sweep {
            log: &w.up.log,
            log_sink: &w.up.log,
            store: &w.up.store,
            outbound: &w.outbox,
            pages: &w.pages,
            settings: &w.settings,
            retention: Duration::days(400),
            lookback: Duration::hours(6),
            max_per_bucket: 1_000,
            concurrency: 1,
            retry: RetryPolicy {
                max_attempts: 2,
                ..RetryPolicy::default()
            },
        };
        let inputs = SweepInputs {
            now: due,
            config: &w.config,
            model: &w.model,
            shadow: None,
        };
        let first = sweep.run(inputs).await;
        assert_eq!(first.failed, 1, "{first:?}");
        let second = sweep.run(inputs).await;
        assert_eq!(second.failed, 0, "{second:?}");
        let keys: Vec<String> = w
            .outbox
            .messages()
            .into_iter()
            .map(|m| m.idempotency_key)
            .collect();
        assert_eq!(keys.len(), 2, "sent, the log append failed, sent again");
        assert_eq!(
            keys[0], keys[1],
            "under the same key: the queue drops the second"
        );
        assert_eq!(w.requested().len(), 1);
    });
}

/// One user's story in the adversarial replay.
#[derive(Debug, Clone)]
struct Story {
    /// Minutes into the day of the cart's adds (1 to 3).
    adds: Vec<u16>,
    /// Minutes after the cart's first add when the user orders in another session, if they do.
    order_after: Option<u16>,
    /// Minutes each event is late (indexed by event), and whether it is delivered twice.
    delays: Vec<(u16, bool)>,
}

fn story() -> impl Strategy<Value = Story> {
    (
        prop::collection::vec(0u16..600, 1..4),
        prop::option::weighted(0.6, 0u16..(60 * 24 * 5)),
        prop::collection::vec((0u16..180, any::<bool>()), 5),
    )
        .prop_map(|(adds, order_after, delays)| Story {
            adds,
            order_after,
            delays,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Carts and orders arrive late, out of order and twice; every sweep runs twice. No message goes
    /// out for a cart once an order of its user since the cart began is in the log; no key goes out
    /// twice; the holdout gets nothing; and a treated cart without an order gets exactly one message
    /// per step its decision chose to send, for every step.
    #[test]
    fn adversarial_replay_sends_nothing_after_an_order_and_nothing_twice(
        stories in prop::collection::vec(story(), 1..6),
    ) {
        rt().block_on(async {
            let w = World::new();
            let treated = users(TREATMENT, 6);
            let held = users(HOLDOUT, 6);
            // (arrival, event), and per user: the cart's first add and the order's event time.
            let mut arrivals: Vec<(DateTime<Utc>, Event)> = Vec::new();
            // Per cart session: its user, and when the user ordered, if they did.
            let mut carts: BTreeMap<String, (String, Option<DateTime<Utc>>)> = BTreeMap::new();
            for (i, s) in stories.iter().enumerate() {
                for (user, tag) in [(&treated[i], "t"), (&held[i], "h")] {
                    let session = format!("cart-{tag}{i}");
                    let mut events = Vec::new();
                    let start = t0() + Duration::minutes(i64::from(*s.adds.iter().min().unwrap()));
                    for (k, m) in s.adds.iter().enumerate() {
                        let at = t0() + Duration::minutes(i64::from(*m));
                        events.push(event(&format!("{session}-a{k}"), &session, user, at, add(&format!("p{k}"), 2_000)));
                    }
                    let ordered = s.order_after.map(|m| start + Duration::minutes(i64::from(m)));
                    if let Some(at) = ordered {
                        events.push(event(&format!("{session}-o"), &format!("order-{tag}{i}"), user, at, order(&format!("o{tag}{i}"))));
                    }
                    for (k, e) in events.into_iter().enumerate() {
                        let (delay, twice) = s.delays[k % s.delays.len()];
                        let arrival = e.occurred_at + Duration::minutes(i64::from(delay));
                        if twice {
                            arrivals.push((arrival + Duration::minutes(97), e.clone()));
                        }
                        arrivals.push((arrival, e));
                    }
                    carts.insert(session, (user.clone(), ordered));
                }
            }
            arrivals.sort_by_key(|(at, e)| (*at, std::cmp::Reverse(e.event_id.clone())));
            let mut arrived_at: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
            let mut next = 0;
            for now in hourly(t0(), 24 * 6) {
                let mut batch = Vec::new();
                while next < arrivals.len() && arrivals[next].0 <= now {
                    arrived_at.entry(arrivals[next].1.event_id.clone()).or_insert(arrivals[next].0);
                    batch.push(arrivals[next].1.clone());
                    next += 1;
                }
                // Within the hour, in reverse: out of order.
                batch.reverse();
                if !batch.is_empty() {
                    w.deliver(&batch).await;
                }
                w.sweep(now).await;
                w.sweep(now).await; // a retried run
            }
            let messages = w.outbox.messages();
            let keys: BTreeSet<&str> = messages.iter().map(|m| m.idempotency_key.as_str()).collect();
            prop_assert_eq!(keys.len(), messages.len(), "a key went out twice");
            for m in &messages {
                let (user, ordered) = &carts[&m.cart_token];
                prop_assert_eq!(&m.user, user);
                prop_assert!(!held.contains(&m.user), "the holdout got a message");
                if let Some(at) = ordered {
                    let arrived = arrived_at[&format!("{}-o", m.cart_token)];
                    prop_assert!(
                        arrived > m.requested_at,
                        "sent at {} after the order (at {at}) reached the log at {arrived}",
                        m.requested_at
                    );
                }
            }
            // Treated carts never ordered: the cart's three messages, one per (abandonment, step) (a late add
            // restarts the sequence, within the same cap of three).
            for (cart, (user, ordered)) in &carts {
                if ordered.is_some() || held.contains(user) {
                    continue;
                }
                let mine: Vec<&OutboundMessage> =
                    messages.iter().filter(|m| &m.cart_token == cart).collect();
                let steps: BTreeSet<(DateTime<Utc>, u32)> =
                    mine.iter().map(|m| (m.abandoned_at, m.step)).collect();
                prop_assert_eq!(steps.len(), mine.len());
                prop_assert_eq!(mine.len(), 3, "cart {} got {:?}", cart, steps);
            }
            Ok(())
        })?;
    }
}
