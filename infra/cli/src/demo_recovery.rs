//! The demo's recovery phase: the REES46 carts the feature updater scheduled, swept hour by hour on a
//! simulated clock from the first due time until every sequence is over (the replay's day, then the
//! 24 h and 72 h steps), with the real sweep function against the local stack; then the sweep's events
//! are projected and the recovery experiment is evaluated. Counts, and the cost per 1,000 carts from
//! what the sweep and the updater read and wrote.

use crate::local::esm::Positions;
use crate::local::stack::LocalStack;
use crate::BoxError;
use checkout_aws::features::DynamoFeatureStore;
use checkout_domain::features::Doc;
use checkout_domain::ingest::hour_of;
use checkout_domain::ports::DueIndex;
use checkout_domain::recovery::sweep::{SweepCost, SweepReport};
use checkout_domain::recovery::HOLDOUT;
use checkout_domain::recovery::{due_key_until, DUE_SHARDS};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize)]
pub struct RecoverySummary {
    /// Carts the feature updater scheduled: items in the cart, no order in the session, a user.
    pub abandoned_carts: usize,
    /// Their distinct users, and how many of them the recovery experiment holds out.
    pub users: usize,
    pub holdout_users: usize,
    pub sweeps: usize,
    /// Sweep times still pending when the simulation stopped (10 days after the last first step): 0
    /// means every sequence ran to its end.
    pub unfinished: usize,
    pub first_sweep: Option<DateTime<Utc>>,
    pub last_sweep: Option<DateTime<Utc>>,
    /// Messages requested per step (0 = the first, 1 h after the abandonment).
    pub messages_by_step: BTreeMap<u32, u64>,
    /// The messages' content: `reminder`, `free_shipping`, `percent_discount_10`, ….
    pub messages_by_action: BTreeMap<String, u64>,
    pub holdout_decisions: u64,
    /// Treatment decisions that chose to send nothing.
    pub skipped: u64,
    /// Sequences ended because the user ordered (in another session) since the cart began.
    pub suppressed_by_order: u64,
    pub ended: BTreeMap<String, u64>,
    pub deferred_quiet_hours: u64,
    pub deferred_cap: u64,
    pub outbound_messages: usize,
    /// What the sweeps read and wrote, in total.
    pub cost: SweepCost,
    /// Due-item puts and removals by the feature updater during the replay.
    pub updater_due_writes: usize,
    /// The cost per 1,000 abandoned carts (see docs/recovery.md for the unit rules).
    pub per_1000_carts: CostPer1000,
    /// The recovery experiment's report over the sweeps (units per arm, recovered-cart rate per arm).
    pub experiment_units: BTreeMap<String, u64>,
    pub recovered_cart_rate: BTreeMap<String, f64>,
    pub report_action: Option<String>,
    /// Seconds spent sweeping, projecting the sweep's events, and evaluating.
    pub seconds: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostPer1000 {
    /// Strongly consistent reads of the log (⌈bytes / 4 KB⌉ per query, at least one) and the index
    /// queries (eventually consistent, half a unit each at least).
    pub read_units: f64,
    /// Log appends (⌈bytes / 1 KB⌉ per item and per index it lands in), due-item writes (the item and
    /// its index entry) by the sweep and the updater.
    pub write_units: f64,
    pub outbound_messages: f64,
    pub feature_batch_reads: f64,
}

fn kib(bytes: f64, unit: f64) -> f64 {
    (bytes / unit).ceil().max(1.0)
}

/// Runs the phase after the rest of the demo: `positions` are where the feature updater's stream
/// drive stopped, `from` and `to` the replay's first and last event times.
pub async fn run(
    stack: &LocalStack,
    positions: &Positions,
    updater_due_writes: usize,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<RecoverySummary, BoxError> {
    let sdk = stack.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoFeatureStore {
        client: ddb,
        table: stack.resource("FeaturesTable")?.name.clone(),
    };
    // Every cart the updater scheduled, from the due index (no scan): their first steps fall due
    // between the replay's first event plus the idle time and its last plus the idle time and a step.
    let listing = std::time::Instant::now();
    let mut due: Vec<checkout_domain::recovery::DueItem> = Vec::new();
    let until = due_key_until(to + TimeDelta::days(30));
    let mut hour = from.duration_trunc(TimeDelta::hours(1))?;
    while hour <= to + TimeDelta::hours(4) {
        for shard in 0..DUE_SHARDS {
            let bucket = format!("{}#{shard}", hour_of(hour));
            for s in store.due(&bucket, &until, usize::MAX).await? {
                if let Doc::RecoveryDue(d) = s.doc {
                    due.push(d);
                }
            }
        }
        hour += TimeDelta::hours(1);
    }
    let config = checkout_domain::decision::config::DecisionConfig::default();
    let experiment = config.recovery.experiment();
    let users: BTreeSet<&str> = due.iter().filter_map(|d| d.user_id.as_deref()).collect();
    let holdout_users = users
        .iter()
        .filter(|u| experiment.assign(u).is_some_and(|a| a.variant == HOLDOUT))
        .count();
    let hour = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t);
    // The first full hour at or after `t`: a sweep then sees what fell due by `t`.
    let ceil = |t: DateTime<Utc>| {
        let h = hour(t);
        if h == t {
            h
        } else {
            h + TimeDelta::hours(1)
        }
    };
    let first = due.iter().map(|d| ceil(d.due_at)).min();
    let last_due = due.iter().map(|d| d.due_at).max();

    // The sweep function as deployed, with a one-hour look-back. The simulated clock jumps from one
    // hour with something due to the next (the sweep reports where it moved each item), rather than
    // ticking every five minutes: on moto an index query reads the whole table, and a tick with nothing
    // due would cost the same as one with work.
    let env = stack
        .env("RecoverySweepFunction")?
        .with("SWEEP_LOOKBACK_HOURS", "1");
    let sweep = recovery_sweep::Function::new(&env, &sdk)
        .await
        .map_err(|e| e.to_string())?;
    let mut seconds = BTreeMap::new();
    let clock = std::time::Instant::now();
    let mut total = SweepReport::default();
    let mut sweeps = 0;
    let mut pending: BTreeSet<DateTime<Utc>> = due.iter().map(|d| ceil(d.due_at)).collect();
    let horizon = last_due.map(|t| t + TimeDelta::days(10));
    let mut now = None;
    println!(
        "  {} carts scheduled (the due index over the replay's hours, {:.1} s)",
        due.len(),
        listing.elapsed().as_secs_f64()
    );
    while let Some(t) = pending.pop_first() {
        if horizon.is_some_and(|end| t > end) {
            break;
        }
        let started = std::time::Instant::now();
        let r = sweep
            .run(&recovery_sweep::Invocation { now: Some(t) }, Utc::now())
            .await?;
        if r.failed > 0 {
            return Err(format!(
                "the recovery sweep at {t} left {} items: {:?}",
                r.failed, r.first_failure
            )
            .into());
        }
        println!(
            "  sweep at {t}: {} due, {} sent, {} held out, {} deferred, {} ended ({:.1} s)",
            r.due_items,
            r.sent(),
            r.holdout,
            r.deferred_quiet_hours + r.deferred_cap + r.waiting,
            r.ended.values().sum::<u64>(),
            started.elapsed().as_secs_f64()
        );
        // An item moved to a time already past (a next step that fell due while its predecessor waited
        // on a cap) is for the next run: the clock never goes back.
        let next = t + TimeDelta::hours(1);
        pending.extend(r.moved_to.iter().map(|m| ceil(*m).max(next)));
        total += &r;
        sweeps += 1;
        now = Some(t + TimeDelta::hours(1));
    }
    let last_sweep = now.map(|t| t - TimeDelta::hours(1));
    let unfinished = pending.len();
    seconds.insert("sweeps".to_string(), clock.elapsed().as_secs_f64());
    let outbound = crate::local::queue_messages(stack, "RecoveryOutboundQueue").await?;
    // What the demo checks: the holdout got nothing, no key went out twice, no cart got more than
    // its cap, and every message was logged.
    let mut keys = BTreeSet::new();
    let mut per_cart: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &outbound {
        let user = m["user"].as_str().unwrap_or_default();
        if experiment.assign(user).is_none_or(|a| a.variant == HOLDOUT) {
            return Err(format!("a held-out user got a recovery message: {m}").into());
        }
        if !keys.insert(
            m["idempotency_key"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ) {
            return Err(format!("an idempotency key went out twice: {m}").into());
        }
        *per_cart
            .entry(m["cart_token"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    if let Some((cart, n)) = per_cart.iter().find(|(_, n)| **n > 3) {
        return Err(format!("cart {cart} got {n} messages").into());
    }
    if outbound.len() as u64 != total.sent() {
        return Err(format!(
            "{} messages in the outbound queue, {} requested",
            outbound.len(),
            total.sent()
        )
        .into());
    }
    let mut messages_by_action = BTreeMap::new();
    for m in &outbound {
        if let Some(a) = m["action"].as_str() {
            *messages_by_action.entry(a.to_string()).or_insert(0) += 1;
        }
    }

    // The sweep's events through the feature updater (exposures → the recovery experiment's units),
    // then its report.
    let clock = std::time::Instant::now();
    crate::drivers::drive_features_after(stack, positions).await?;
    seconds.insert("projection".to_string(), clock.elapsed().as_secs_f64());
    let clock = std::time::Instant::now();
    let (experiment_units, recovered_cart_rate, report_action) = match last_sweep {
        Some(end) => evaluate(stack, &experiment.id, hour(end)).await?,
        None => Default::default(),
    };
    seconds.insert("evaluation".to_string(), clock.elapsed().as_secs_f64());

    let carts = due.len().max(1) as f64;
    let per = |x: f64| 1_000.0 * x / carts;
    let c = &total.cost;
    let avg_read = c.log_bytes_read as f64 / c.log_queries.max(1) as f64;
    let read_units = c.log_queries as f64 * kib(avg_read, 4096.0) + 0.5 * c.index_queries as f64;
    let requested = c.log_entries_written - c.decisions_written;
    let avg_decision = c.decision_bytes_written as f64 / c.decisions_written.max(1) as f64;
    let avg_requested =
        (c.log_bytes_written - c.decision_bytes_written) as f64 / requested.max(1) as f64;
    // A decision is written to the table, to decisions-by-hour (which projects its body) and, keys
    // only, to by-user and decisions-by-id; a requested event to the table and by-user. A due item
    // write is the item and its index entry.
    let write_units = c.decisions_written as f64 * (2.0 * kib(avg_decision, 1024.0) + 2.0)
        + requested as f64 * (kib(avg_requested, 1024.0) + 1.0)
        + 2.0 * (c.due_writes as f64 + updater_due_writes as f64);
    Ok(RecoverySummary {
        abandoned_carts: due.len(),
        users: users.len(),
        holdout_users,
        sweeps,
        unfinished,
        first_sweep: first,
        last_sweep,
        messages_by_step: total.sent_by_step.clone(),
        messages_by_action,
        holdout_decisions: total.holdout,
        skipped: total.skipped,
        suppressed_by_order: total.ended.get("ordered_since").copied().unwrap_or(0),
        ended: total.ended.clone(),
        deferred_quiet_hours: total.deferred_quiet_hours,
        deferred_cap: total.deferred_cap,
        outbound_messages: outbound.len(),
        per_1000_carts: CostPer1000 {
            read_units: per(read_units),
            write_units: per(write_units),
            outbound_messages: per(c.outbound_messages as f64),
            feature_batch_reads: per(c.feature_batch_reads as f64),
        },
        cost: total.cost,
        updater_due_writes,
        experiment_units,
        recovered_cart_rate,
        report_action,
        seconds,
    })
}

type Readout = (BTreeMap<String, u64>, BTreeMap<String, f64>, Option<String>);

/// The recovery experiment's report for the window ending at `end`.
async fn evaluate(stack: &LocalStack, id: &str, end: DateTime<Utc>) -> Result<Readout, BoxError> {
    let sdk = stack.sdk_config().await;
    let function =
        experiment_evaluator::Function::new(&stack.env("ExperimentEvaluatorFunction")?, &sdk)
            .map_err(|e| e.to_string())?;
    let invocation = experiment_evaluator::Invocation {
        window_end: Some(end),
        experiment_id: Some(id.to_string()),
        drift_window_hours: None,
    };
    let run = function.run(&invocation, Utc::now()).await?;
    let Some(outcome) = run.reports.first() else {
        return Err(format!("no recovery report: {:?}", run.refused).into());
    };
    let mut units = BTreeMap::new();
    let mut rate = BTreeMap::new();
    for r in &outcome.readout {
        if r.metric == "recovered_cart_rate" {
            units.insert(r.variant.clone(), r.n);
            rate.insert(r.variant.clone(), r.mean);
        }
    }
    Ok((units, rate, outcome.action.map(|a| format!("{a:?}"))))
}

/// The phase's lines in the demo's summary.
pub fn print(r: &RecoverySummary) {
    println!(
        "  recovery: {} abandoned carts of {} users ({} in the 10% holdout), swept {} times ({} to {}; {} sweeps left unrun)",
        r.abandoned_carts,
        r.users,
        r.holdout_users,
        r.sweeps,
        r.first_sweep.map(|t| t.to_rfc3339()).unwrap_or_default(),
        r.last_sweep.map(|t| t.to_rfc3339()).unwrap_or_default(),
        r.unfinished
    );
    println!(
        "    messages per step {:?} by content {:?}; holdout decisions {} (no message), decided not to send {}",
        r.messages_by_step, r.messages_by_action, r.holdout_decisions, r.skipped
    );
    println!(
        "    suppressed by an order {}; ended {:?}; deferred by quiet hours {}, by a channel cap {}",
        r.suppressed_by_order, r.ended, r.deferred_quiet_hours, r.deferred_cap
    );
    let c = &r.per_1000_carts;
    println!(
        "    cost per 1,000 carts: {:.0} read units, {:.0} write units, {:.0} feature batch reads, {:.0} outbound sends",
        c.read_units, c.write_units, c.feature_batch_reads, c.outbound_messages
    );
    println!(
        "    recovery experiment: units {:?}, recovered within 7 days {:?} ({}). The replay covers about 3 hours, so no shopper had 7 days to come back: read it as the pipeline working, not as a lift.",
        r.experiment_units,
        r.recovered_cart_rate,
        r.report_action.as_deref().unwrap_or("-")
    );
}
