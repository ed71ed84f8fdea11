//! The review queue over the simulated test week: every payment the fitted bands send to review opens a
//! case, reviewers with a daily capacity work the oldest deadlines first (catching frauds and wrongly
//! rejecting genuine orders at the costs' rates), and the SLA escalates and expires what they do not
//! reach. Every step goes through the queue's own state machine (`checkout_domain::features::review`).

use checkout_domain::event::{Friction, ReviewTransition, RiskServed};
use checkout_domain::features::review::{
    command, event_id, fold, open, sweep, CaseEvent, Command, ReviewConfig,
};
use checkout_domain::ope::SplitMix64;
use checkout_domain::risk::friction::{Bands, FrictionCosts, Labelled};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReviewWeek {
    pub capacity_per_day: u32,
    pub opened: u64,
    pub claimed: u64,
    pub approved: u64,
    pub rejected: u64,
    pub escalated: u64,
    pub expired: u64,
    /// Of the cases, how many were frauds, and how many of those a reviewer rejected.
    pub frauds: u64,
    pub frauds_rejected: u64,
    /// Genuine orders a reviewer rejected.
    pub genuine_rejected: u64,
    /// Still open at the end of the simulation (none when it runs past every deadline).
    pub open_at_end: u64,
}

/// Runs the queue over `rows` (with their times), `capacity` decisions per day, until every deadline
/// has passed.
pub fn simulate(
    rows: &[(DateTime<Utc>, Labelled)],
    bands: &Bands,
    costs: &FrictionCosts,
    config: &ReviewConfig,
    capacity: u32,
    seed: u64,
) -> ReviewWeek {
    let mut rng = SplitMix64(seed ^ 0x005E_ED0F_5E1F);
    let mut out = ReviewWeek {
        capacity_per_day: capacity,
        ..ReviewWeek::default()
    };
    // (case events, fraud)
    let mut cases: Vec<(Vec<CaseEvent>, bool)> = Vec::new();
    for (i, (at, row)) in rows.iter().enumerate() {
        let (band, friction) = bands.classify(row.score);
        if friction != Friction::Review {
            continue;
        }
        let (from, to) = bands.range(band);
        let risk = RiskServed {
            score: Some(row.score),
            band: Some(band as u32),
            band_from: Some(from),
            band_to: Some(to),
            friction,
            reasons: Vec::new(),
            rule_ids: Vec::new(),
            model_id: "fraud-risk".into(),
            model_version: "sim".into(),
            degraded: false,
        };
        let id = format!("case-{i}");
        let opened = open(&id, &id, &risk, config, *at);
        cases.push((vec![(event_id(&id, 0), *at, opened)], row.fraud));
        out.opened += 1;
        out.frauds += u64::from(row.fraud);
    }
    let Some(first) = rows.iter().map(|r| r.0).min() else {
        return out;
    };
    let last =
        rows.iter().map(|r| r.0).max().unwrap_or(first) + Duration::hours(config.deadline_hours);
    let mut day = first
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .unwrap_or_default()
        .and_utc();
    while day <= last + Duration::days(1) {
        // The reviewers' day: the open cases opened by now, soonest deadline first.
        let mut todo: Vec<usize> = (0..cases.len())
            .filter(|&k| {
                fold(&cases[k].0)
                    .ok()
                    .flatten()
                    .is_some_and(|c| !c.status.closed() && c.opened_at <= day)
            })
            .collect();
        todo.sort_by_key(|&k| cases[k].0[0].2.deadline_at);
        for (slot, &k) in todo.iter().take(capacity as usize).enumerate() {
            let now = day + Duration::minutes(slot as i64 * 5);
            let (events, fraud) = &mut cases[k];
            let step = |cmd: Command, events: &mut Vec<CaseEvent>| -> bool {
                let Some(case) = fold(events).ok().flatten() else {
                    return false;
                };
                match command(&case, "reviewer", cmd, config, now) {
                    Ok(Some(e)) => {
                        events.push((event_id(&case.case_id, case.events), now, e));
                        true
                    }
                    _ => false,
                }
            };
            if !step(Command::Claim, events) {
                continue;
            }
            out.claimed += 1;
            let reject = if *fraud {
                rng.uniform() < costs.review_catch_rate
            } else {
                rng.uniform() < costs.review_false_reject_rate
            };
            let reason = if reject {
                "suspected_fraud"
            } else {
                "verified_customer"
            };
            step(
                Command::Decide {
                    approve: !reject,
                    reason: reason.into(),
                },
                events,
            );
        }
        // The SLA, hourly through the day.
        for h in 0..24 {
            let now = day + Duration::hours(h);
            for (events, _) in cases.iter_mut() {
                if let Some(case) = fold(events).ok().flatten() {
                    if let Some(e) = sweep(&case, config, now) {
                        events.push((event_id(&case.case_id, case.events), now, e));
                    }
                }
            }
        }
        day += Duration::days(1);
    }
    for (events, fraud) in &cases {
        let Some(case) = fold(events).ok().flatten() else {
            continue;
        };
        out.escalated += u64::from(case.escalated);
        match case.status {
            checkout_domain::features::review::Status::Approved => out.approved += 1,
            checkout_domain::features::review::Status::Rejected => {
                out.rejected += 1;
                out.frauds_rejected += u64::from(*fraud);
                out.genuine_rejected += u64::from(!*fraud);
            }
            checkout_domain::features::review::Status::Expired => {
                out.expired += 1;
                if case.outcome == Some(ReviewTransition::Rejected) {
                    out.frauds_rejected += u64::from(*fraud);
                }
            }
            _ => out.open_at_end += 1,
        }
    }
    out
}
