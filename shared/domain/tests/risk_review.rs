//! The manual-review queue: every transition, a double claim, a lapsed claim, escalation and expiry,
//! each event valid against the schema, and a case the same whatever order its events are read in.

use checkout_domain::event::{
    ActorKind, Event, EventBody, Friction, ReviewTransition, ReviewUpdated, RiskServed,
};
use checkout_domain::risk::review::{
    command, event_id, fold, open, sweep, Case, Command, ReviewConfig, ReviewError, Status,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("time")
}

fn risk() -> RiskServed {
    RiskServed {
        score: Some(12.5),
        band: Some(2),
        band_from: Some(9.6),
        band_to: Some(85.1),
        friction: Friction::Review,
        reasons: vec!["log_device_known_frauds_14d".into()],
        rule_ids: vec![],
        model_id: "fraud-risk".into(),
        model_version: "v1".into(),
        degraded: false,
    }
}

/// A case's log: its events with their ids and times.
struct Log(Vec<(String, DateTime<Utc>, ReviewUpdated)>);

impl Log {
    fn new(config: &ReviewConfig) -> Self {
        let opened = open("d-1", "pa-1", &risk(), config, t0());
        Self(vec![(event_id("d-1", 0), t0(), opened)])
    }

    fn case(&self) -> Case {
        fold(&self.0).expect("consistent").expect("opened")
    }

    /// Applies an event as the next, checking that it is a valid v5 event.
    fn push(&mut self, e: ReviewUpdated, at: DateTime<Utc>) {
        let n = self.case().events;
        let event = Event {
            event_id: event_id(&e.case_id, n),
            schema_version: 5,
            occurred_at: at,
            session_id: "s-1".into(),
            user_id: Some("u_1".into()),
            context: Default::default(),
            body: EventBody::ReviewUpdated(Box::new(e.clone())),
        };
        Event::decode(&serde_json::to_vec(&event).expect("json"), 32 * 1024)
            .expect("every transition is a valid event");
        self.0.push((event.event_id, at, e));
    }

    fn run(&mut self, who: &str, c: Command, at: DateTime<Utc>) -> Result<(), ReviewError> {
        let config = ReviewConfig::default();
        if let Some(e) = command(&self.case(), who, c, &config, at)? {
            self.push(e, at);
        }
        Ok(())
    }
}

#[test]
fn a_case_goes_opened_claimed_decided_and_the_decision_is_final() {
    let config = ReviewConfig::default();
    let mut log = Log::new(&config);
    let case = log.case();
    assert_eq!((case.status, case.events), (Status::Open, 1));
    assert_eq!(case.deadline_at, t0() + Duration::days(7));
    assert_eq!(case.opened.reasons, risk().reasons);

    let m = |n| t0() + Duration::minutes(n);
    log.run("ann", Command::Claim, m(1)).unwrap();
    assert_eq!(log.case().assignee.as_deref(), Some("ann"));
    // Claiming again is a no-op; another reviewer is refused (the double claim).
    log.run("ann", Command::Claim, m(2)).unwrap();
    assert_eq!(log.case().events, 2);
    assert!(matches!(
        log.run("bob", Command::Claim, m(3)),
        Err(ReviewError::Conflict { .. })
    ));
    // Only the assignee decides, with a reason code.
    let reject = |reason: &str| Command::Decide {
        approve: false,
        reason: reason.into(),
    };
    assert!(log.run("bob", reject("stolen_card"), m(4)).is_err());
    assert!(log.run("ann", reject("Stolen card!"), m(4)).is_err());
    log.run("ann", reject("stolen_card"), m(5)).unwrap();
    let case = log.case();
    assert_eq!(case.status, Status::Rejected);
    assert_eq!(case.outcome, Some(ReviewTransition::Rejected));
    let last = &log.0.last().unwrap().2;
    assert_eq!(last.actor.id, "ann");
    assert_eq!(last.reason.as_deref(), Some("stolen_card"));
    assert_eq!(last.score, 12.5, "each transition carries the assessment");
    // Closed: nothing more, by anyone, and the SLA leaves it alone.
    assert!(log.run("ann", Command::Claim, m(6)).is_err());
    assert!(sweep(&case, &config, t0() + Duration::days(8)).is_none());
}

#[test]
fn release_lapsed_claims_escalation_and_expiry() {
    let config = ReviewConfig::default();
    let mut log = Log::new(&config);
    let h = |n| t0() + Duration::hours(n);
    log.run("ann", Command::Claim, h(1)).unwrap();
    log.run("ann", Command::Release, h(1)).unwrap();
    assert_eq!(log.case().status, Status::Open);
    assert!(log.run("ann", Command::Release, h(1)).is_err(), "not held");

    // A claim left alone lapses: the sweep releases it, and another reviewer may take it meanwhile.
    log.run("bob", Command::Claim, h(2)).unwrap();
    assert!(log.run("cid", Command::Claim, h(2)).is_err());
    let lapsed = sweep(&log.case(), &config, h(4)).expect("released");
    assert_eq!(lapsed.transition, ReviewTransition::Released);
    assert_eq!(lapsed.actor.kind, ActorKind::System);
    log.run("cid", Command::Claim, h(4)).unwrap();
    assert_eq!(log.case().assignee.as_deref(), Some("cid"));
    log.run("cid", Command::Release, h(4)).unwrap();

    // Nothing due until a day before the deadline; then one escalation.
    assert!(sweep(&log.case(), &config, h(24 * 6 - 1)).is_none());
    let escalated = sweep(&log.case(), &config, h(24 * 6)).expect("escalation");
    assert_eq!(escalated.reason.as_deref(), Some("sla_escalation"));
    log.push(escalated, h(24 * 6));
    assert!(log.case().escalated);
    assert!(sweep(&log.case(), &config, h(24 * 6 + 1)).is_none(), "once");

    // At the deadline the default decision applies, and reviewers are refused.
    assert!(log.run("ann", Command::Claim, h(24 * 7)).is_err());
    let expired = sweep(&log.case(), &config, h(24 * 7)).expect("expiry");
    assert_eq!(expired.transition, ReviewTransition::Expired);
    log.push(expired, h(24 * 7));
    let case = log.case();
    assert_eq!(case.status, Status::Expired);
    assert_eq!(
        case.outcome,
        Some(ReviewTransition::Approved),
        "the configured default"
    );

    // Read back in any order, the case is the same.
    let mut shuffled = log.0.clone();
    shuffled.reverse();
    shuffled.swap(1, 3);
    assert_eq!(fold(&shuffled).unwrap(), Some(case));
}

#[test]
fn the_default_decision_and_deadline_are_configured_and_validated() {
    let void = ReviewConfig {
        default_decision: ReviewTransition::Rejected,
        deadline_hours: 48,
        ..ReviewConfig::default()
    };
    assert!(void.validate().is_ok());
    let mut log = Log::new(&void);
    let e = sweep(&log.case(), &void, t0() + Duration::hours(48)).expect("expiry");
    log.push(e, t0() + Duration::hours(48));
    assert_eq!(log.case().outcome, Some(ReviewTransition::Rejected));
    for bad in [
        ReviewConfig {
            default_decision: ReviewTransition::Escalated,
            ..ReviewConfig::default()
        },
        ReviewConfig {
            escalate_before_hours: 200,
            ..ReviewConfig::default()
        },
    ] {
        assert!(bad.validate().is_err());
    }
    assert!(fold(&[]).unwrap().is_none());
}

// ------------------------------------------------------------------ the queue over in-memory stores

mod queue {
    use super::*;
    use checkout_domain::features::updater::FeatureUpdater;
    use checkout_domain::ingest::LogEntry;
    use checkout_domain::memory::{Faults, MemoryFeatureStore, MemoryLog};
    use checkout_domain::ports::{BatchSink, FeatureReader};
    use checkout_domain::risk::queue::{Queue, QueueError};
    use checkout_domain::risk::signals::RiskKey;

    fn entry(e: &Event) -> LogEntry {
        LogEntry::of(e, (e.occurred_at + Duration::days(400)).timestamp()).expect("entry")
    }

    /// A checkout session on device `d_ring` whose payment went to review (the decision API's case).
    fn session(n: u32) -> Vec<Event> {
        let session = format!("s-{n}");
        let case = format!("d-{n}");
        let at = t0() + Duration::minutes(i64::from(n));
        let base = |id: String, body: EventBody| Event {
            event_id: id,
            schema_version: 5,
            occurred_at: at,
            session_id: session.clone(),
            user_id: Some(format!("u_{n}")),
            context: checkout_domain::event::Context {
                device: Some(checkout_domain::event::Device {
                    kind: checkout_domain::event::DeviceType::Mobile,
                    os: None,
                    browser: None,
                    id: Some("d_ring".into()),
                }),
                ..Default::default()
            },
            body,
        };
        let payment = checkout_domain::event::PaymentAttempted {
            payment_attempt_id: format!("pa-{n}"),
            method: checkout_domain::event::PaymentMethod::Card,
            amount: checkout_domain::event::Money {
                amount_minor: 9000,
                currency: "EUR".into(),
            },
            card_fingerprint: Some(format!("c_{n}")),
            billing_country: None,
            shipping_country: None,
        };
        let opened = open(
            &case,
            &format!("pa-{n}"),
            &risk(),
            &ReviewConfig::default(),
            at,
        );
        vec![
            base(format!("pay-{n}"), EventBody::PaymentAttempted(payment)),
            base(
                event_id(&case, 0),
                EventBody::ReviewUpdated(Box::new(opened)),
            ),
        ]
    }

    struct World {
        updater: FeatureUpdater<MemoryLog, MemoryFeatureStore>,
        config: ReviewConfig,
    }

    impl World {
        async fn new(sessions: u32) -> Self {
            let w = Self {
                updater: FeatureUpdater::new(
                    MemoryLog::new(100, Faults::default()),
                    MemoryFeatureStore::new(Faults::default()),
                ),
                config: ReviewConfig::default(),
            };
            let events: Vec<Event> = (0..sessions).flat_map(session).collect();
            let entries: Vec<LogEntry> = events.iter().map(entry).collect();
            let refs: Vec<&LogEntry> = entries.iter().collect();
            assert!(w.updater.log.put(&refs).await.unwrap().is_empty());
            w.project().await;
            w
        }

        /// What the stream would trigger: the updater over every session.
        async fn project(&self) {
            let ids: Vec<String> = (0..10).map(|n| format!("s-{n}")).collect();
            self.updater.update(&ids).await;
        }

        fn queue(&self) -> Queue<'_, MemoryFeatureStore, MemoryLog, MemoryLog> {
            Queue {
                store: &self.updater.store,
                log: &self.updater.log,
                sink: &self.updater.log,
                config: &self.config,
                retention: Duration::days(400),
            }
        }
    }

    #[tokio::test]
    async fn reviewers_work_the_queue_and_their_rejection_becomes_a_label() {
        let w = World::new(3).await;
        let q = w.queue();
        let listed = q.list().await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|c| c.case_id.as_str())
                .collect::<Vec<_>>(),
            ["d-0", "d-1", "d-2"],
            "soonest deadline first"
        );
        assert_eq!(listed[0].reasons, risk().reasons);

        let now = t0() + Duration::hours(1);
        // Two reviewers at once: one wins, the other gets a conflict.
        let (a, b) = tokio::join!(
            q.act("d-0", "ann", Command::Claim, now),
            q.act("d-0", "bob", Command::Claim, now)
        );
        assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
        let winner = if a.is_ok() { "ann" } else { "bob" };
        assert!(matches!(
            if a.is_ok() { b } else { a },
            Err(QueueError::Review(ReviewError::Conflict { .. }))
        ));
        let case = q
            .act(
                "d-0",
                winner,
                Command::Decide {
                    approve: false,
                    reason: "stolen_card".into(),
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(case.status, Status::Rejected);
        assert!(matches!(
            q.act("nope", "ann", Command::Claim, now).await,
            Err(QueueError::Review(ReviewError::NotFound(_)))
        ));

        // The projection follows the log: the case leaves the open list, and the rejection is a fraud
        // label on the device's signals.
        w.project().await;
        let open: Vec<String> = q
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.case_id)
            .collect();
        assert_eq!(open, ["d-1", "d-2"]);
        let key = checkout_domain::features::Key::risk(RiskKey::Device, "d_ring");
        let stored = w
            .updater
            .store
            .get_many(std::slice::from_ref(&key))
            .await
            .unwrap();
        let checkout_domain::features::Doc::Risk(profile) = &stored[&key].doc else {
            panic!("a risk profile")
        };
        let (attempts, frauds) = profile.profile.known_frauds(now, Duration::days(30));
        assert_eq!((attempts, frauds), (3, 1));
    }

    #[tokio::test]
    async fn the_sla_escalates_then_expires_and_counts() {
        let w = World::new(2).await;
        let q = w.queue();
        q.act("d-1", "ann", Command::Claim, t0() + Duration::hours(1))
            .await
            .unwrap();
        // The claim (at 1 h) lapses 60 minutes later.
        let quiet = q.sweep(t0() + Duration::minutes(121)).await.unwrap();
        assert_eq!(
            (quiet.open, quiet.escalated, quiet.expired, quiet.released),
            (2, 0, 0, 1)
        );
        let day6 = q
            .sweep(t0() + Duration::days(6) + Duration::hours(1))
            .await
            .unwrap();
        assert_eq!((day6.escalated, day6.overdue_for_escalation), (2, 2));
        let again = q
            .sweep(t0() + Duration::days(6) + Duration::hours(2))
            .await
            .unwrap();
        assert_eq!(again.escalated, 0, "once per case");
        let day7 = q
            .sweep(t0() + Duration::days(7) + Duration::hours(1))
            .await
            .unwrap();
        assert_eq!((day7.expired, day7.open), (2, 0));
        w.project().await;
        assert!(q.list().await.unwrap().is_empty());
        let shown = q
            .show("d-0")
            .await
            .unwrap()
            .expect("closed cases stay visible");
        assert_eq!(shown.case.status, Status::Expired);
        assert_eq!(shown.case.outcome, Some(ReviewTransition::Approved));
        assert_eq!(shown.user_id.as_deref(), Some("u_0"));
    }
}
