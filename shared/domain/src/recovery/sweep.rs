//! The recovery sweep: every few minutes, the carts whose next check is due, each checked against the
//! event log as of now, then deferred, ended, or decided and sent.
//!
//! For each due item (the `recovery-due` index, the hours from `now − lookback` to `now`):
//! 1. Read the cart's session and the user's other sessions from the log, strongly consistent.
//! 2. [`super::assess`]: an order by the user since the cart began, an emptied cart or a finished
//!    sequence ends it (the item is removed); a later step or a shopper active again moves the item to
//!    that time.
//! 3. Consent ([`super::History::may_message`]): an opted-out shopper gets nothing (the item is
//!    removed; a later event of the session schedules it again, and it is checked again).
//! 4. Quiet hours in the shopper's zone defer to their end, **in both arms**, so that the holdout's and
//!    the treatment's decisions are made at the same moments and the comparison is fair.
//! 5. The arm: a member of the universal holdout ([`crate::experiment::holdout`]) first, then the
//!    recovery experiment's GrowthBook-compatible assignment of the pseudonymous user. Either holdout's
//!    decision is logged (action `none`, propensity 1) and its sequence ends: it never receives a message.
//! 6. Treatment: the channel caps may defer (never drop); then the decision engine at the `recovery`
//!    placement chooses `none`, `reminder` or an incentive, logged as a `decision_served` with its
//!    propensity and distribution (the learned policy, when one is loaded, runs in shadow).
//! 7. A message is handed to the outbound queue with its idempotency key, then
//!    `recovery_message_requested` is appended to the log (its event id is the message id), then the
//!    item moves to the next step.
//!
//! **Idempotency.** The decision id and the message id are hashes of (session, abandonment, step), and
//! the decision's random draws come from its id, so a retried sweep decides the same step the same way
//! and finds what it already logged. A crash between the outbound send and the log append resends the
//! message under the same key on the next run: the FIFO queue drops it within its 5-minute
//! de-duplication window, and the consumer contract is to drop a key it has seen after that.
//!
//! The sweep appends its events to the log directly (not through the stream), so the next check reads
//! them back at once; they are built by the same types, validated by [`Event::validate`], and carry the
//! user's pseudonym (never a raw id).

use super::{
    assess, cap, next_due_of, ordered, quiet_until, Assessment, CapVerdict, Cart, Due, DueItem,
    History, RecoverySettings, HOLDOUT,
};
use crate::decision::config::DecisionConfig;
use crate::decision::engine::{decide, Inputs};
use crate::decision::learned::PolicyArtifact;
use crate::decision::read::{read_features, PageCache};
use crate::decision::request::{CartLine, DecisionRequest, Placement};
use crate::delivery::{deliver, RetryPolicy};
use crate::event::{
    Channel, Event, EventBody, RecoveryMessageRequested, RecoveryStep, SCHEMA_VERSION,
};
use crate::features::{Doc, Key};
use crate::ingest::LogEntry;
use crate::model::scorer::Model;
use crate::ports::{
    BatchSink, CommitError, DueIndex, Expect, FeatureWriter, LogIndex, StoreError, Stored, Write,
};
use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the merchant's messaging service receives: no personal data, only the pseudonym and the
/// storefront's own session id, which the merchant resolves to the shopper and the cart's restore link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// Stable per (cart, abandonment, step): de-duplicate on it.
    pub idempotency_key: String,
    /// The pseudonymous user id.
    pub user: String,
    /// The storefront's session id of the cart: the token the merchant resolves.
    pub cart_token: String,
    pub channel: Channel,
    /// 0-based step of the sequence.
    pub step: u32,
    /// What to send: `reminder`, `free_shipping`, `percent_discount_10`, ….
    pub action: String,
    pub decision_id: String,
    pub cart: OutboundCart,
    pub abandoned_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
}

/// The cart as the message shows it: product ids and quantities, and the value it was decided on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundCart {
    pub currency: String,
    pub value_minor: i64,
    pub items: Vec<OutboundLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundLine {
    pub product_id: String,
    pub quantity: u32,
}

/// The sweep's reads and writes, counted for its cost per cart.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepCost {
    pub index_queries: u64,
    /// `Query` of a session's partition, and of the `by-user` index.
    pub log_queries: u64,
    pub log_entries_read: u64,
    /// The bodies' bytes read and written (for the capacity units they cost).
    pub log_bytes_read: u64,
    pub feature_batch_reads: u64,
    pub log_entries_written: u64,
    pub log_bytes_written: u64,
    /// Of those, the decisions (the rest are `recovery_message_requested`).
    pub decisions_written: u64,
    pub decision_bytes_written: u64,
    /// Due items moved or removed.
    pub due_writes: u64,
    pub outbound_messages: u64,
}

impl std::ops::AddAssign<&SweepCost> for SweepCost {
    fn add_assign(&mut self, o: &SweepCost) {
        self.index_queries += o.index_queries;
        self.log_queries += o.log_queries;
        self.log_entries_read += o.log_entries_read;
        self.log_bytes_read += o.log_bytes_read;
        self.log_bytes_written += o.log_bytes_written;
        self.decisions_written += o.decisions_written;
        self.decision_bytes_written += o.decision_bytes_written;
        self.feature_batch_reads += o.feature_batch_reads;
        self.log_entries_written += o.log_entries_written;
        self.due_writes += o.due_writes;
        self.outbound_messages += o.outbound_messages;
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    pub now: Option<DateTime<Utc>>,
    pub due_items: u64,
    /// Messages requested, per step.
    pub sent_by_step: BTreeMap<u32, u64>,
    /// Holdout decisions logged (one per cart: their sequence ends).
    pub holdout: u64,
    /// Treatment decisions that chose to send nothing.
    pub skipped: u64,
    pub deferred_quiet_hours: u64,
    pub deferred_cap: u64,
    /// Items moved to a later step or a later abandonment.
    pub waiting: u64,
    /// Sequences ended, by reason: `ordered_since`, `emptied`, `sequence_over`, `cart_cap`,
    /// `opted_out`, `no_user`.
    pub ended: BTreeMap<String, u64>,
    /// Due items another writer moved while the sweep worked on them (left to that writer).
    pub conflicts: u64,
    /// Items left for the next run after a store fault.
    pub failed: u64,
    pub first_failure: Option<String>,
    /// Shoppers whose time zone was unknown (the configured one was used).
    pub zone_fallbacks: u64,
    pub cost: SweepCost,
    /// The times the sweep moved due items to (when they are next checked).
    #[serde(skip)]
    pub moved_to: std::collections::BTreeSet<DateTime<Utc>>,
}

/// Sweeps added up (a day of them, say); `now` and `moved_to` stay the first's.
impl std::ops::AddAssign<&SweepReport> for SweepReport {
    fn add_assign(&mut self, r: &SweepReport) {
        self.due_items += r.due_items;
        for (k, v) in &r.sent_by_step {
            *self.sent_by_step.entry(*k).or_default() += v;
        }
        self.holdout += r.holdout;
        self.skipped += r.skipped;
        self.deferred_quiet_hours += r.deferred_quiet_hours;
        self.deferred_cap += r.deferred_cap;
        self.waiting += r.waiting;
        for (k, v) in &r.ended {
            *self.ended.entry(k.clone()).or_default() += v;
        }
        self.conflicts += r.conflicts;
        self.failed += r.failed;
        self.zone_fallbacks += r.zone_fallbacks;
        self.cost += &r.cost;
    }
}

impl SweepReport {
    pub fn sent(&self) -> u64 {
        self.sent_by_step.values().sum()
    }

    fn end(&mut self, reason: &str) {
        *self.ended.entry(reason.to_string()).or_default() += 1;
    }
}

/// What one due item came to.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Sent(u32),
    Holdout,
    Skipped,
    DeferredQuiet,
    DeferredCap,
    Waiting,
    Ended(&'static str),
    Conflict,
}

/// What working on one due item read, wrote and found, besides its outcome.
#[derive(Debug)]
struct ItemLog {
    cost: SweepCost,
    zone_fallback: bool,
    /// Where the item was moved to, if it was.
    moved_to: Option<DateTime<Utc>>,
    /// The sweep's time: an item is never moved before it (an overdue next step is due now, and
    /// stays in the index partitions the next run reads).
    now: DateTime<Utc>,
}

impl ItemLog {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            cost: SweepCost::default(),
            zone_fallback: false,
            moved_to: None,
            now,
        }
    }
}

/// Everything a sweep needs besides its ports.
#[derive(Clone, Copy)]
pub struct SweepInputs<'a> {
    pub now: DateTime<Utc>,
    pub config: &'a DecisionConfig,
    pub model: &'a Model,
    /// A learned policy to run in shadow at the recovery placement (logged, never served).
    pub shadow: Option<&'a PolicyArtifact>,
}

/// The sweep over its ports: the log (read and append), the features table (due items and the
/// decision's features), and the outbound queue.
pub struct Sweep<'a, L, W, S, O> {
    pub log: &'a L,
    pub log_sink: &'a W,
    pub store: &'a S,
    pub outbound: &'a O,
    pub pages: &'a PageCache,
    pub settings: &'a RecoverySettings,
    /// Log retention: the TTL of the events the sweep appends.
    pub retention: Duration,
    /// How far back the due index is read (a due item written later than this after it fell due is
    /// not seen; the projection-lag alarm fires long before).
    pub lookback: Duration,
    /// Due items handled per index partition per run (the rest wait for the next run).
    pub max_per_bucket: usize,
    pub concurrency: usize,
    pub retry: RetryPolicy,
}

impl<L, W, S, O> Sweep<'_, L, W, S, O>
where
    L: LogIndex,
    W: BatchSink<LogEntry>,
    S: FeatureWriter + DueIndex,
    O: BatchSink<OutboundMessage>,
{
    /// One sweep at `inputs.now`.
    pub async fn run(&self, inputs: SweepInputs<'_>) -> SweepReport {
        let now = inputs.now;
        let mut report = SweepReport {
            now: Some(now),
            ..SweepReport::default()
        };
        if !inputs.config.recovery.enabled || inputs.config.kill_switch {
            return report;
        }
        let until = super::due_key_until(now);
        let hours = self.lookback.num_hours().max(0);
        let mut items: Vec<Stored> = Vec::new();
        for h in (0..=hours).rev() {
            let hour = crate::ingest::hour_of(now - Duration::hours(h));
            for shard in 0..super::DUE_SHARDS {
                let bucket = format!("{hour}#{shard}");
                report.cost.index_queries += 1;
                match self.store.due(&bucket, &until, self.max_per_bucket).await {
                    Ok(found) => items.extend(found),
                    Err(e) => fail(&mut report, &e),
                }
            }
        }
        report.due_items = items.len() as u64;
        // One user's carts one after another (each check reads what the previous one sent, so the
        // channel caps hold within a run); different users concurrently.
        let mut by_user: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for stored in items {
            let user = match &stored.doc {
                Doc::RecoveryDue(d) => d.user_id.clone().unwrap_or_else(|| d.session_id.clone()),
                _ => String::new(),
            };
            by_user.entry(user).or_default().push(stored);
        }
        let results: Vec<(Result<Outcome, StoreError>, ItemLog)> =
            stream::iter(by_user.into_values())
                .map(|carts| async move {
                    let mut done = Vec::with_capacity(carts.len());
                    for stored in carts {
                        let mut log = ItemLog::new(now);
                        let r = self.item(stored, inputs, &mut log).await;
                        done.push((r, log));
                    }
                    done
                })
                .buffer_unordered(self.concurrency.max(1))
                .flat_map(stream::iter)
                .collect()
                .await;
        for (result, log) in results {
            report.cost += &log.cost;
            report.zone_fallbacks += u64::from(log.zone_fallback);
            report.moved_to.extend(log.moved_to);
            match result {
                Ok(Outcome::Sent(step)) => *report.sent_by_step.entry(step).or_default() += 1,
                Ok(Outcome::Holdout) => report.holdout += 1,
                Ok(Outcome::Skipped) => report.skipped += 1,
                Ok(Outcome::DeferredQuiet) => report.deferred_quiet_hours += 1,
                Ok(Outcome::DeferredCap) => report.deferred_cap += 1,
                Ok(Outcome::Waiting) => report.waiting += 1,
                Ok(Outcome::Ended(reason)) => report.end(reason),
                Ok(Outcome::Conflict) => report.conflicts += 1,
                Err(e) => fail(&mut report, &e),
            }
        }
        report
    }

    /// Every event of the user as known now: the cart's session, then the user's other sessions.
    async fn user_entries(
        &self,
        item: &DueItem,
        cost: &mut SweepCost,
    ) -> Result<Vec<LogEntry>, StoreError> {
        cost.log_queries += 1;
        let mut entries = self.log.session_events(&item.session_id).await?;
        if let Some(user) = &item.user_id {
            cost.log_queries += 1;
            for session in self.log.user_sessions(user).await? {
                if session != item.session_id {
                    cost.log_queries += 1;
                    entries.extend(self.log.session_events(&session).await?);
                }
            }
        }
        cost.log_entries_read += entries.len() as u64;
        cost.log_bytes_read += entries.iter().map(|e| e.body.len() as u64).sum::<u64>();
        Ok(entries)
    }

    async fn item(
        &self,
        stored: Stored,
        inputs: SweepInputs<'_>,
        log: &mut ItemLog,
    ) -> Result<Outcome, StoreError> {
        let Doc::RecoveryDue(item) = &stored.doc else {
            return Ok(Outcome::Ended("not_a_due_item"));
        };
        let now = inputs.now;
        let cfg = &inputs.config.recovery;
        let mut entries = self.user_entries(item, &mut log.cost).await?;
        let due = match assess(&entries, &item.session_id, now, self.settings) {
            Assessment::Done { reason } => {
                return self
                    .remove(&stored, log, Outcome::Ended(reason.as_str()))
                    .await
            }
            Assessment::Wait(due) => {
                return self
                    .reschedule(&stored, &due, due.due_at, log, Outcome::Waiting)
                    .await
            }
            Assessment::Send(due) => due,
        };
        let Some(user) = due.user_id.clone() else {
            // Nobody to message: an anonymous cart.
            return self.remove(&stored, log, Outcome::Ended("no_user")).await;
        };
        let history = History::of(&entries);
        let channel = cfg.channel(due.step);
        if !history.may_message(channel, cfg.require_consent) {
            return self.remove(&stored, log, Outcome::Ended("opted_out")).await;
        }
        let (zone, known) = cfg.zone(history.time_zone());
        log.zone_fallback = !known;
        if let Some(end) = quiet_until(now, &zone, &cfg.quiet_hours()) {
            return self
                .reschedule(&stored, &due, end, log, Outcome::DeferredQuiet)
                .await;
        }
        let experiment = cfg.experiment();
        // The universal holdout comes first: its members get no message, whatever the recovery
        // experiment would have made of them.
        let holdout = inputs.config.holdout.holds_out(&user, now)
            || experiment
                .assign(&user)
                .is_none_or(|a| a.variant == HOLDOUT);
        let decision_id = super::decision_id(&due.session_id, due.abandoned_at, due.step);
        let session: Vec<Event> = ordered(&entries)
            .into_iter()
            .filter(|e| e.session_id == due.session_id)
            .collect();
        let logged = session.iter().find_map(|e| match &e.body {
            EventBody::DecisionServed(d) if d.decision_id == decision_id => Some((**d).clone()),
            _ => None,
        });
        let (decision, fresh) = match logged {
            Some(d) => (d, None),
            None => {
                if !holdout {
                    let caps = cfg.caps(self.settings);
                    match cap(&history.sent, channel, &due.session_id, now, &caps) {
                        CapVerdict::Allowed => {}
                        CapVerdict::DeferUntil { at } => {
                            return self
                                .reschedule(&stored, &due, at, log, Outcome::DeferredCap)
                                .await
                        }
                        CapVerdict::CartCapReached => {
                            return self.remove(&stored, log, Outcome::Ended("cart_cap")).await
                        }
                    }
                }
                let Some(cart) = super::cart_of(due.session_id.clone(), &session) else {
                    return self.remove(&stored, log, Outcome::Ended("emptied")).await;
                };
                let (event, d) = self
                    .decide(
                        &due,
                        &cart,
                        &session,
                        &user,
                        &decision_id,
                        inputs,
                        &mut log.cost,
                    )
                    .await?;
                (d, Some(event))
            }
        };
        // The last check, as late as it can be: an order (or an emptied cart, or renewed activity)
        // that reached the log while this item was being worked on stops it here.
        let latest = self.user_entries(item, &mut log.cost).await?;
        if let Some(ended) = match assess(&latest, &item.session_id, now, self.settings) {
            Assessment::Send(again) if again == due => None,
            Assessment::Done { reason } => Some(Outcome::Ended(reason.as_str())),
            _ => Some(Outcome::Waiting),
        } {
            // The item stays; the updater moves or removes it when it projects what arrived.
            return Ok(ended);
        }
        entries = latest;
        if let Some(event) = fresh {
            self.append(std::slice::from_ref(&event), &mut log.cost)
                .await?;
            entries.push(self.entry(&event)?);
        }
        let outcome = if super::held_out(&decision) {
            Outcome::Holdout
        } else if decision.action == "none" {
            Outcome::Skipped
        } else {
            let message_id = super::message_id(&due.session_id, due.abandoned_at, due.step);
            let cart = decision.cart.clone();
            let lines = super::cart_of(due.session_id.clone(), &session)
                .map(|c| {
                    c.lines
                        .into_iter()
                        .map(|(product_id, quantity)| OutboundLine {
                            product_id,
                            quantity,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let message = OutboundMessage {
                idempotency_key: message_id.clone(),
                user: user.clone(),
                cart_token: due.session_id.clone(),
                channel,
                step: due.step,
                action: decision
                    .action_key
                    .clone()
                    .unwrap_or_else(|| decision.action.clone()),
                decision_id: decision.decision_id.clone(),
                cart: OutboundCart {
                    currency: cart
                        .as_ref()
                        .map(|c| c.currency.clone())
                        .unwrap_or_default(),
                    value_minor: cart.as_ref().map_or(0, |c| c.value_minor),
                    items: lines,
                },
                abandoned_at: due.abandoned_at,
                due_at: due.due_at,
                requested_at: now,
            };
            let sent = deliver(self.outbound, std::slice::from_ref(&message), &self.retry).await;
            log.cost.outbound_messages += sent.stats.requests;
            if let Some(e) = sent.error {
                return Err(e);
            }
            let requested = Event {
                event_id: message_id.clone(),
                schema_version: SCHEMA_VERSION,
                occurred_at: now,
                session_id: due.session_id.clone(),
                user_id: Some(user.clone()),
                context: Default::default(),
                body: EventBody::RecoveryMessageRequested(RecoveryMessageRequested {
                    message_id,
                    decision_id: decision.decision_id.clone(),
                    action_key: message.action.clone(),
                    channel,
                    recovery: due.recovery_step(),
                    due_at: due.due_at,
                }),
            };
            self.append(std::slice::from_ref(&requested), &mut log.cost)
                .await?;
            entries.push(self.entry(&requested)?);
            Outcome::Sent(due.step)
        };
        // The next step, from everything now logged.
        let session: Vec<Event> = ordered(&entries)
            .into_iter()
            .filter(|e| e.session_id == due.session_id)
            .collect();
        // What was done stands even if the updater moved the item meanwhile.
        match next_due_of(due.session_id.clone(), &session, self.settings) {
            Some(next) => {
                self.reschedule(&stored, &next, next.due_at, log, outcome.clone())
                    .await?
            }
            None => self.remove(&stored, log, outcome.clone()).await?,
        };
        Ok(outcome)
    }

    /// Decides the step: the engine at the recovery placement, for the user's pseudonym.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        due: &Due,
        cart: &Cart,
        session: &[Event],
        user: &str,
        decision_id: &str,
        inputs: SweepInputs<'_>,
        cost: &mut SweepCost,
    ) -> Result<(Event, crate::event::DecisionServed), StoreError> {
        let last = |f: fn(&Event) -> Option<String>| session.iter().rev().find_map(f);
        let request = DecisionRequest {
            session_id: due.session_id.clone(),
            user_id: Some(user.to_string()),
            placement: Placement::Recovery,
            device: last(|e| {
                e.context
                    .device
                    .as_ref()
                    .map(|d| d.kind.as_str().to_string())
            }),
            country: last(|e| e.context.country.clone()),
            cart: request_cart(cart),
            payment: None,
        };
        let (features, read) = read_features(
            self.store,
            self.pages,
            &request,
            Some(user),
            inputs.now,
            std::time::Duration::from_secs(5),
        )
        .await
        .map_err(|u| StoreError {
            operation: "recovery feature read",
            retryable: true,
            source: u.message.into(),
        })?;
        cost.feature_batch_reads += u64::from(read.batch_reads);
        let decision = decide(
            &request,
            Ok(&features),
            Inputs {
                decision_id,
                now: inputs.now,
                unit: Some(user),
                model: inputs.model,
                config: inputs.config,
                policy: None,
                shadow: inputs.shadow,
                risk_model: None,
            },
        );
        let mut event = decision.event;
        let EventBody::DecisionServed(d) = &mut event.body else {
            return Err(StoreError::permanent(
                "recovery decision",
                "the engine's event is not a decision",
            ));
        };
        d.recovery = Some(RecoveryStep {
            abandoned_at: due.abandoned_at,
            step: due.step,
        });
        let d = (**d).clone();
        event
            .validate()
            .map_err(|e| StoreError::permanent("recovery decision", e.to_string()))?;
        Ok((event, d))
    }

    fn entry(&self, event: &Event) -> Result<LogEntry, StoreError> {
        LogEntry::of(event, (event.occurred_at + self.retention).timestamp())
            .map_err(|e| StoreError::permanent("recovery event encode", e.to_string()))
    }

    async fn append(&self, events: &[Event], cost: &mut SweepCost) -> Result<(), StoreError> {
        let entries: Vec<LogEntry> = events
            .iter()
            .map(|e| self.entry(e))
            .collect::<Result<_, _>>()?;
        let d = deliver(self.log_sink, &entries, &self.retry).await;
        for e in &entries {
            cost.log_entries_written += 1;
            cost.log_bytes_written += e.body.len() as u64;
            if e.is_decision() {
                cost.decisions_written += 1;
                cost.decision_bytes_written += e.body.len() as u64;
            }
        }
        match d.error {
            Some(e) => Err(e),
            None if d.accepted.iter().all(|a| *a) => Ok(()),
            None => Err(StoreError {
                operation: "recovery log append",
                retryable: true,
                source: "the log did not accept every entry".into(),
            }),
        }
    }

    /// Moves the due item to `at` for `due` (unless another writer moved it since it was read).
    async fn reschedule(
        &self,
        stored: &Stored,
        due: &Due,
        at: DateTime<Utc>,
        log: &mut ItemLog,
        outcome: Outcome,
    ) -> Result<Outcome, StoreError> {
        let at = at.max(log.now);
        let item = DueItem::new(due, at);
        if Doc::RecoveryDue(item.clone()) == stored.doc {
            return Ok(outcome);
        }
        let write = Write::put(Doc::RecoveryDue(item), Expect::Version(stored.version));
        let done = self.write(write, &mut log.cost, outcome).await?;
        if done != Outcome::Conflict {
            log.moved_to = Some(at);
        }
        Ok(done)
    }

    async fn remove(
        &self,
        stored: &Stored,
        log: &mut ItemLog,
        outcome: Outcome,
    ) -> Result<Outcome, StoreError> {
        let key: Key = stored.doc.key();
        let write = Write {
            key,
            expect: Expect::Version(stored.version),
            doc: None,
        };
        self.write(write, &mut log.cost, outcome).await
    }

    async fn write(
        &self,
        write: Write,
        cost: &mut SweepCost,
        outcome: Outcome,
    ) -> Result<Outcome, StoreError> {
        cost.due_writes += 1;
        match self.store.commit(vec![write]).await {
            Ok(()) => Ok(outcome),
            Err(CommitError::Conflict) => Ok(Outcome::Conflict),
            Err(CommitError::Store(e)) => Err(e),
        }
    }
}

fn fail(report: &mut SweepReport, e: &StoreError) {
    report.failed += 1;
    if report.first_failure.is_none() {
        report.first_failure = Some(format!("{e}: {}", e.source));
    }
}

/// The cart as a decision request's cart: lines priced in the first line's currency (lines in another
/// currency are left out).
pub fn request_cart(cart: &Cart) -> Option<crate::decision::request::Cart> {
    let currency = cart.prices.values().next()?.currency.clone();
    let items = cart
        .lines
        .iter()
        .filter_map(|(product, quantity)| {
            let p = cart.prices.get(product)?;
            (p.currency == currency).then(|| CartLine {
                product_id: product.clone(),
                quantity: *quantity,
                unit_price_minor: p.unit_price_minor,
                unit_cost_minor: p.unit_cost_minor,
            })
        })
        .collect();
    Some(crate::decision::request::Cart { currency, items })
}
