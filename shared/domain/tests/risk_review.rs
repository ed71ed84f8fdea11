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
