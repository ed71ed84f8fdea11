//! Aggregates across sessions, and what each session contributes to them.
//!
//! A contribution is a fold over one session's events, so it only grows as the session's events arrive.
//! The one exception is co-occurrence: a session that grows past
//! [`super::session::MAX_COOCCURRENCE_ITEMS`] products withdraws its pairs, and the pair counts go down.
//! [`Contribution::apply`] moves an aggregate from `old` to `new` for one session: sums move by the difference, and the
//! few order statistics (first and last times, first exposure) take the min or max, which is exact because
//! a session's contribution never moves them backwards.

use crate::event::{Event, OrderPlaced};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// Amounts by ISO 4217 currency, in minor units. Aggregates never mix currencies.
pub type Money = BTreeMap<String, i64>;

/// Windowed counts are kept per day for this many days back from the user's latest activity.
pub const WINDOW_DAYS: i64 = 30;
/// The user item keeps this many most recent orders (for the experiment units' pre/post split).
pub const RECENT_ORDERS: usize = 100;
/// Co-occurrence partners kept per item and kind.
pub const TOP_K: usize = 10;
/// How far back before the first exposure the pre-exposure covariate looks.
pub const PRE_EXPOSURE_DAYS: i64 = 30;
/// The attribution window of an experiment unit's windowed outcome (`orders_in_window`): an order within
/// this many days of the first exposure (the recovered-cart rate of the recovery experiment).
pub const ATTRIBUTION_DAYS: i64 = 7;

fn add_money(total: &mut Money, delta: &Money, sign: i64) {
    for (currency, amount) in delta {
        let v = total.entry(currency.clone()).or_default();
        *v = v.saturating_add(sign.saturating_mul(*amount));
        if *v == 0 {
            total.remove(currency);
        }
    }
}

fn move_count(total: &mut u32, old: u32, new: u32) {
    *total = total.saturating_sub(old).saturating_add(new);
}

/// How one aggregate is moved by one session's contribution.
pub trait Contribution {
    type Aggregate;
    fn session_id(&self) -> &str;
    /// The number of session events the contribution was folded from (its watermark).
    fn event_count(&self) -> u32;
    fn event_count_mut(&mut self) -> &mut u32;
    /// A fresh aggregate for the contribution's target.
    fn empty(&self) -> Self::Aggregate;
    /// Moves `agg` from `old` (what the session last contributed, if anything) to `self`.
    fn apply(&self, old: Option<&Self>, agg: &mut Self::Aggregate);
}

/// A session is counted once, when it first contributes.
fn session_shift<C>(total: &mut u32, old: Option<&C>) {
    if old.is_none() {
        *total += 1;
    }
}

/// Whether `new` should replace the stored `old`: only a fold over more of the session's events does.
pub fn supersedes<C: Contribution>(new: &C, old: Option<&C>) -> bool {
    old.is_none_or(|o| new.event_count() > o.event_count())
}

/// Whether two contributions of a session contribute the same: equal but for their watermarks. A newer
/// fold that contributes the same is not written (most of a session's events move none of its
/// contributions to items and pages), so a stored contribution's watermark can trail the session's.
/// That is safe because a contribution is monotone in the session's events: a fold over a set of events
/// between two folds that contribute the same contributes the same too, so no stale fold that the trailing
/// watermark lets through can change an aggregate.
pub fn unchanged<C: Contribution + Clone + PartialEq>(new: &C, old: &C) -> bool {
    let mut same = new.clone();
    *same.event_count_mut() = old.event_count();
    same == *old
}

// ---------------------------------------------------------------------------------------------- users

/// An order, as the user item remembers it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderRef {
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub order_id: String,
    pub total_minor: i64,
    pub currency: String,
    /// What the session's incentive gave away on this order: the cost the serving policy logged for the
    /// latest incentive decision of the session before the order, once per decision (0 without one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub incentive_minor: i64,
    /// The order's margin before the incentive, from the margin ratio of the session's latest decision
    /// cart before it (`None` without one: the reader assumes a ratio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_minor: Option<i64>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl OrderRef {
    pub fn new(event: &Event, order: &OrderPlaced) -> Self {
        Self {
            at: event.occurred_at,
            event_id: event.event_id.clone(),
            order_id: order.order_id.clone(),
            total_minor: order.total.amount_minor,
            currency: order.total.currency.clone(),
            incentive_minor: 0,
            margin_minor: None,
        }
    }
}

/// An incentive a recovery message offered and its session did not redeem: an order of the user in the
/// [`ATTRIBUTION_DAYS`] after it, in its currency, redeems it (see [`UserFeatures::unit_orders`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IncentiveRef {
    pub at: DateTime<Utc>,
    pub decision_id: String,
    /// The cost the serving policy logged for the incentive.
    pub cost_minor: i64,
    pub currency: String,
}

/// The user item keeps this many most recent unredeemed recovery incentives.
pub const RECENT_RECOVERY_INCENTIVES: usize = 20;

/// The dimensions of a unit's cohort, as its first exposure recorded them (they cannot change after
/// assignment). An empty value is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cohort {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub visitor: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub placement: String,
}

impl Cohort {
    /// The dimensions, by name, in the reports' order.
    pub const DIMENSIONS: [&'static str; 4] = ["device", "visitor", "country", "placement"];

    /// A decision's cohort: the request's device and country, the visitor type it saw, its placement.
    pub fn of(event: &Event, d: &crate::event::DecisionServed) -> Self {
        Self {
            device: event
                .context
                .device
                .as_ref()
                .map(|x| x.kind.as_str().to_string())
                .unwrap_or_default(),
            visitor: d
                .visitor_type
                .map(|v| {
                    match v {
                        crate::event::VisitorType::New => "new",
                        crate::event::VisitorType::Returning => "returning",
                        crate::event::VisitorType::Other => "other",
                    }
                    .to_string()
                })
                .unwrap_or_default(),
            country: event.context.country.clone().unwrap_or_default(),
            placement: d.placement.clone(),
        }
    }

    /// The value of a dimension (`unknown` when not recorded).
    pub fn value(&self, dimension: &str) -> &str {
        let v = match dimension {
            "device" => &self.device,
            "visitor" => &self.visitor,
            "country" => &self.country,
            "placement" => &self.placement,
            _ => "",
        };
        if v.is_empty() {
            "unknown"
        } else {
            v
        }
    }
}

/// A user's first exposure to an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    pub variant: String,
    pub first_at: DateTime<Utc>,
    pub decision_id: String,
    /// Every variant the user was ever served (more than one means the unit is contaminated).
    pub variants: BTreeSet<String>,
    /// The first exposure's cohort.
    #[serde(default)]
    pub cohort: Cohort,
}

impl Exposure {
    /// Folds one exposure in: the earliest (time, decision id) wins, variants accumulate.
    pub fn observe(
        slot: Entry<'_, String, Exposure>,
        variant: &str,
        at: DateTime<Utc>,
        decision_id: &str,
        cohort: &Cohort,
    ) {
        let other = Exposure {
            variant: variant.to_string(),
            first_at: at,
            decision_id: decision_id.to_string(),
            variants: BTreeSet::from([variant.to_string()]),
            cohort: cohort.clone(),
        };
        match slot {
            Entry::Vacant(v) => {
                v.insert(other);
            }
            Entry::Occupied(mut o) => o.get_mut().merge(&other),
        }
    }

    fn merge(&mut self, other: &Exposure) {
        if (other.first_at, &other.decision_id) < (self.first_at, &self.decision_id) {
            self.variant.clone_from(&other.variant);
            self.first_at = other.first_at;
            self.decision_id.clone_from(&other.decision_id);
            self.cohort.clone_from(&other.cohort);
        }
        self.variants.extend(other.variants.iter().cloned());
    }
}

/// What one session contributes to its user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserContribution {
    pub user_id: String,
    pub session_id: String,
    pub event_count: u32,
    /// The user's first event in the session.
    pub started_at: DateTime<Utc>,
    /// The start of the UTC day of the user's last event in the session (see [`Self::by_day`]).
    pub last_event_at: DateTime<Utc>,
    pub orders: Vec<OrderRef>,
    pub exposures: BTreeMap<String, Exposure>,
    /// The latest opt-out in the session: an `unsubscribed` message outcome or a withdrawn consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_unsubscribed_at: Option<DateTime<Utc>>,
    pub expires_at: i64,
    /// The session's recovery-message incentive when no order of the session redeemed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_incentives: Vec<IncentiveRef>,
}

impl UserContribution {
    pub fn start(user_id: &str, first: &Event, event_count: u32, expires_at: i64) -> Self {
        Self {
            user_id: user_id.to_string(),
            session_id: first.session_id.clone(),
            event_count,
            started_at: first.occurred_at,
            last_event_at: first.occurred_at,
            orders: Vec::new(),
            exposures: BTreeMap::new(),
            last_unsubscribed_at: None,
            expires_at,
            recovery_incentives: Vec::new(),
        }
    }

    /// The contribution at the resolution the user aggregate keeps: `last_event_at` to the start of its
    /// UTC day (the per-day windows need no more), and `expires_at` up to the end of its UTC day (the
    /// user item is kept at most a day past its retention, never less). Most of a session's events then
    /// leave its user contribution unchanged, and it is not rewritten ([`unchanged`]): the user is
    /// written when the session starts, orders, is exposed, opts out, or crosses midnight.
    pub fn by_day(mut self) -> Self {
        const DAY: i64 = 86_400;
        let day_start = self.last_event_at.timestamp().div_euclid(DAY) * DAY;
        self.last_event_at = DateTime::from_timestamp(day_start, 0).unwrap_or(self.last_event_at);
        self.expires_at = self
            .expires_at
            .div_euclid(DAY)
            .saturating_add(i64::from(self.expires_at.rem_euclid(DAY) != 0))
            .saturating_mul(DAY);
        self
    }

    fn revenue(&self) -> Money {
        let mut m = Money::new();
        for o in &self.orders {
            *m.entry(o.currency.clone()).or_default() += o.total_minor;
        }
        m
    }
}

/// Sessions and orders on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    pub sessions: u32,
    pub orders: u32,
}

/// The user entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserFeatures {
    pub user_id: String,
    pub sessions: u32,
    pub orders: u32,
    pub revenue: Money,
    pub first_seen_at: DateTime<Utc>,
    /// The start of the UTC day of the user's latest event.
    pub last_event_at: DateTime<Utc>,
    pub last_order_at: Option<DateTime<Utc>>,
    /// Per-day counts (`YYYY-MM-DD`, UTC) for the [`WINDOW_DAYS`] days up to `last_event_at`; the 7- and
    /// 30-day windows are cut from these at read time ([`UserFeatures::windows`]).
    pub days: BTreeMap<String, DayCounts>,
    /// The [`RECENT_ORDERS`] most recent orders, newest first.
    pub recent_orders: Vec<OrderRef>,
    /// First exposure per experiment.
    pub exposures: BTreeMap<String, Exposure>,
    /// The user's latest opt-out (an `unsubscribed` outcome or a withdrawn consent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_unsubscribed_at: Option<DateTime<Utc>>,
    pub expires_at: i64,
    /// The [`RECENT_RECOVERY_INCENTIVES`] most recent recovery-message incentives their sessions did not
    /// redeem, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_incentives: Vec<IncentiveRef>,
}

/// Event-time windows as of a read time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Windows {
    pub sessions_7d: u32,
    pub orders_7d: u32,
    pub sessions_30d: u32,
    pub orders_30d: u32,
}

fn day_key(t: DateTime<Utc>) -> String {
    t.date_naive().format("%Y-%m-%d").to_string()
}

impl UserFeatures {
    /// Counts over the 7 and 30 days up to and including `now`'s day. Days are cut on read, so a user
    /// who has been quiet for a month reads zero even though the stored days were never rewritten.
    pub fn windows(&self, now: DateTime<Utc>) -> Windows {
        let today = now.date_naive();
        let mut w = Windows::default();
        for (day, c) in &self.days {
            let Ok(d) = NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
                continue;
            };
            let age = (today - d).num_days();
            if (0..7).contains(&age) {
                w.sessions_7d += c.sessions;
                w.orders_7d += c.orders;
            }
            if (0..WINDOW_DAYS).contains(&age) {
                w.sessions_30d += c.sessions;
                w.orders_30d += c.orders;
            }
        }
        w
    }

    /// The recent orders, oldest first, each with the incentive it redeemed: its session's (see
    /// [`OrderRef::incentive_minor`]) or, for an order that redeemed none there, the latest recovery
    /// incentive offered in the [`ATTRIBUTION_DAYS`] before it, in its currency, and not yet redeemed by
    /// an earlier order. Each incentive is charged once.
    pub fn unit_orders(&self) -> Vec<OrderRef> {
        let mut orders: Vec<OrderRef> = self.recent_orders.iter().rev().cloned().collect();
        orders.sort();
        let mut open: Vec<&IncentiveRef> = self.recovery_incentives.iter().collect();
        open.sort();
        for o in orders.iter_mut().filter(|o| o.incentive_minor == 0) {
            let redeemed = open.iter().rposition(|i| {
                i.at <= o.at
                    && o.at < i.at + Duration::days(ATTRIBUTION_DAYS)
                    && i.currency == o.currency
            });
            if let Some(k) = redeemed {
                o.incentive_minor = open.remove(k).cost_minor;
            }
        }
        orders
    }

    /// The experiment units this user forms, one per experiment they were exposed to.
    pub fn experiment_units(&self) -> Vec<ExperimentUnit> {
        let orders = self.unit_orders();
        let complete_since = (self.recent_orders.len() < self.orders as usize)
            .then(|| self.recent_orders.last().map(|o| o.at))
            .flatten();
        self.exposures
            .iter()
            .map(|(experiment, x)| {
                let lookback = x.first_at - Duration::days(PRE_EXPOSURE_DAYS);
                let mut u = ExperimentUnit {
                    experiment_id: experiment.clone(),
                    user_id: self.user_id.clone(),
                    variant: x.variant.clone(),
                    first_exposure_at: x.first_at,
                    decision_id: x.decision_id.clone(),
                    variants_seen: u32::try_from(x.variants.len()).unwrap_or(u32::MAX),
                    orders_after: 0,
                    revenue_after: Money::new(),
                    orders_before: 0,
                    revenue_before: Money::new(),
                    orders_in_window: 0,
                    revenue_in_window: Money::new(),
                    unsubscribed_after: self.last_unsubscribed_at.is_some_and(|t| t >= x.first_at),
                    complete: complete_since.is_none_or(|oldest| oldest < lookback),
                    expires_at: self.expires_at,
                    cohort: x.cohort.clone(),
                    orders: Vec::new(),
                };
                let window_end = x.first_at + Duration::days(ATTRIBUTION_DAYS);
                for o in &orders {
                    if o.at >= x.first_at && o.at < window_end {
                        u.orders_in_window += 1;
                        add_money(
                            &mut u.revenue_in_window,
                            &Money::from([(o.currency.clone(), o.total_minor)]),
                            1,
                        );
                    }
                    if o.at >= x.first_at {
                        u.orders.push(UnitOrder {
                            at: o.at,
                            total_minor: o.total_minor,
                            currency: o.currency.clone(),
                            incentive_minor: o.incentive_minor,
                            margin_minor: o.margin_minor,
                        });
                    }
                    let (orders, revenue) = if o.at >= x.first_at {
                        (&mut u.orders_after, &mut u.revenue_after)
                    } else if o.at >= lookback {
                        (&mut u.orders_before, &mut u.revenue_before)
                    } else {
                        continue;
                    };
                    *orders += 1;
                    add_money(
                        revenue,
                        &Money::from([(o.currency.clone(), o.total_minor)]),
                        1,
                    );
                }
                u.orders.sort();
                u
            })
            .collect()
    }
}

impl Contribution for UserContribution {
    type Aggregate = UserFeatures;

    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn event_count(&self) -> u32 {
        self.event_count
    }

    fn event_count_mut(&mut self) -> &mut u32 {
        &mut self.event_count
    }

    fn empty(&self) -> UserFeatures {
        UserFeatures {
            user_id: self.user_id.clone(),
            sessions: 0,
            orders: 0,
            revenue: Money::new(),
            first_seen_at: self.started_at,
            last_event_at: self.last_event_at,
            last_order_at: None,
            days: BTreeMap::new(),
            recent_orders: Vec::new(),
            exposures: BTreeMap::new(),
            last_unsubscribed_at: None,
            expires_at: self.expires_at,
            recovery_incentives: Vec::new(),
        }
    }

    fn apply(&self, old: Option<&Self>, agg: &mut UserFeatures) {
        session_shift(&mut agg.sessions, old);
        let old_orders = old.map_or(0, |o| o.orders.len());
        move_count(
            &mut agg.orders,
            u32::try_from(old_orders).unwrap_or(u32::MAX),
            u32::try_from(self.orders.len()).unwrap_or(u32::MAX),
        );
        if let Some(o) = old {
            add_money(&mut agg.revenue, &o.revenue(), -1);
        }
        add_money(&mut agg.revenue, &self.revenue(), 1);
        agg.first_seen_at = agg.first_seen_at.min(self.started_at);
        agg.last_event_at = agg.last_event_at.max(self.last_event_at);
        agg.expires_at = agg.expires_at.max(self.expires_at);
        agg.last_unsubscribed_at = agg.last_unsubscribed_at.max(self.last_unsubscribed_at);
        if let Some(last) = self.orders.iter().map(|o| o.at).max() {
            agg.last_order_at = Some(agg.last_order_at.map_or(last, |t| t.max(last)));
        }

        // Per-day counts. A day older than the window (counted from the latest activity, which only moves
        // forward) is neither moved nor kept, so the days that remain are exact whatever the order.
        let floor = day_key(agg.last_event_at - Duration::days(WINDOW_DAYS));
        let mut bump = |c: &UserContribution, sign: i64| {
            let mut touch = |day: String, sessions: i64, orders: i64| {
                if day < floor {
                    return;
                }
                let d = agg.days.entry(day.clone()).or_default();
                let shift = |v: u32, by: i64| {
                    u32::try_from((i64::from(v) + sign * by).max(0)).unwrap_or(u32::MAX)
                };
                d.sessions = shift(d.sessions, sessions);
                d.orders = shift(d.orders, orders);
                if *d == DayCounts::default() {
                    agg.days.remove(&day);
                }
            };
            touch(day_key(c.started_at), 1, 0);
            for o in &c.orders {
                touch(day_key(o.at), 0, 1);
            }
        };
        if let Some(o) = old {
            bump(o, -1);
        }
        bump(self, 1);
        agg.days.retain(|day, _| *day >= floor);

        // Orders only accumulate; keep the most recent. An order's economics come from the session's
        // decisions before it, which can arrive after it: the newer fold's view of an order replaces
        // the older one's.
        let mut orders: BTreeSet<OrderRef> = agg
            .recent_orders
            .drain(..)
            .filter(|o| !self.orders.iter().any(|n| n.event_id == o.event_id))
            .collect();
        orders.extend(self.orders.iter().cloned());
        agg.recent_orders = orders.into_iter().rev().take(RECENT_ORDERS).collect();

        // A newer fold of the session can have redeemed its recovery incentive (an order later in the
        // session): the session's old incentives make way for its new ones.
        let mut incentives: BTreeSet<IncentiveRef> = agg
            .recovery_incentives
            .drain(..)
            .filter(|i| !old.is_some_and(|o| o.recovery_incentives.contains(i)))
            .collect();
        incentives.extend(self.recovery_incentives.iter().cloned());
        agg.recovery_incentives = incentives
            .into_iter()
            .rev()
            .take(RECENT_RECOVERY_INCENTIVES)
            .collect();

        for (experiment, x) in &self.exposures {
            match agg.exposures.entry(experiment.clone()) {
                Entry::Vacant(v) => {
                    v.insert(x.clone());
                }
                Entry::Occupied(mut o) => o.get_mut().merge(x),
            }
        }
    }
}

/// One user in one experiment: the unit of analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentUnit {
    pub experiment_id: String,
    pub user_id: String,
    /// The variant of the first exposure.
    pub variant: String,
    pub first_exposure_at: DateTime<Utc>,
    pub decision_id: String,
    /// Distinct variants served to the user; more than 1 means the unit is contaminated.
    pub variants_seen: u32,
    /// Orders at or after the first exposure.
    pub orders_after: u32,
    pub revenue_after: Money,
    /// Orders in the [`PRE_EXPOSURE_DAYS`] before the first exposure (the CUPED covariate).
    pub orders_before: u32,
    pub revenue_before: Money,
    /// Orders within [`ATTRIBUTION_DAYS`] of the first exposure, and their revenue.
    #[serde(default)]
    pub orders_in_window: u32,
    #[serde(default)]
    pub revenue_in_window: Money,
    /// Whether the user opted out (unsubscribed or withdrew consent) at or after the first exposure.
    #[serde(default)]
    pub unsubscribed_after: bool,
    /// False when the user has more orders than the user item keeps and some of the window may be
    /// missing (only for users with more than [`RECENT_ORDERS`] orders in it).
    pub complete: bool,
    pub expires_at: i64,
    /// The first exposure's cohort (for lift by cohort).
    #[serde(default)]
    pub cohort: Cohort,
    /// The orders at or after the first exposure, oldest first (at most [`RECENT_ORDERS`]): what the
    /// time-dependent readings (repeat purchase, the long-run tail) are cut from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<UnitOrder>,
}

/// An order of an experiment unit, at or after its first exposure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitOrder {
    pub at: DateTime<Utc>,
    pub total_minor: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub incentive_minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_minor: Option<i64>,
}

// ---------------------------------------------------------------------------------------------- items

/// Which co-occurrence a pair counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairKind {
    CoViewed,
    CoPurchased,
}

impl PairKind {
    pub fn prefix(self) -> &'static str {
        match self {
            PairKind::CoViewed => "co_viewed",
            PairKind::CoPurchased => "co_purchased",
        }
    }

    pub const ALL: [PairKind; 2] = [PairKind::CoViewed, PairKind::CoPurchased];
}

/// What one session contributes to one product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemContribution {
    pub product_id: String,
    pub session_id: String,
    pub event_count: u32,
    pub views: u32,
    pub cart_adds: u32,
    /// Orders in the session that contain the product.
    pub purchases: u32,
    pub units: u32,
    /// Other products viewed in the same session (when this one was viewed too).
    pub co_viewed: BTreeSet<String>,
    /// Other products bought in the same session (when this one was bought too).
    pub co_purchased: BTreeSet<String>,
    /// The session's last event touching the product, and the latest expiry of those events: later
    /// events of the session that leave the contribution as it was do not move them.
    pub last_event_at: DateTime<Utc>,
    pub expires_at: i64,
}

impl ItemContribution {
    pub fn partners(&self, kind: PairKind) -> &BTreeSet<String> {
        match kind {
            PairKind::CoViewed => &self.co_viewed,
            PairKind::CoPurchased => &self.co_purchased,
        }
    }
}

/// A co-occurring product and in how many sessions it co-occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub product_id: String,
    pub sessions: u32,
}

/// The item (product) entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemFeatures {
    pub product_id: String,
    pub views: u32,
    pub cart_adds: u32,
    pub purchases: u32,
    pub units: u32,
    /// Sessions that touched the product.
    pub sessions: u32,
    pub last_event_at: DateTime<Utc>,
    /// The [`TOP_K`] most co-viewed products, most sessions first (ties by product id).
    pub co_viewed: Vec<Partner>,
    pub co_purchased: Vec<Partner>,
    pub expires_at: i64,
}

impl ItemFeatures {
    pub fn top(&self, kind: PairKind) -> &Vec<Partner> {
        match kind {
            PairKind::CoViewed => &self.co_viewed,
            PairKind::CoPurchased => &self.co_purchased,
        }
    }

    pub fn top_mut(&mut self, kind: PairKind) -> &mut Vec<Partner> {
        match kind {
            PairKind::CoViewed => &mut self.co_viewed,
            PairKind::CoPurchased => &mut self.co_purchased,
        }
    }
}

/// The exact co-occurrence count of one ordered pair of products (the source of the top-K lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCount {
    pub product_id: String,
    pub kind: PairKind,
    pub other_id: String,
    pub sessions: u32,
    pub expires_at: i64,
}

impl Contribution for ItemContribution {
    type Aggregate = ItemFeatures;

    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn event_count(&self) -> u32 {
        self.event_count
    }

    fn event_count_mut(&mut self) -> &mut u32 {
        &mut self.event_count
    }

    fn empty(&self) -> ItemFeatures {
        ItemFeatures {
            product_id: self.product_id.clone(),
            views: 0,
            cart_adds: 0,
            purchases: 0,
            units: 0,
            sessions: 0,
            last_event_at: self.last_event_at,
            co_viewed: Vec::new(),
            co_purchased: Vec::new(),
            expires_at: self.expires_at,
        }
    }

    /// Moves the counters. The top-K lists are maintained by the caller from the pair counts
    /// ([`top_k_update`]), because they depend on other sessions' pairs too.
    fn apply(&self, old: Option<&Self>, agg: &mut ItemFeatures) {
        session_shift(&mut agg.sessions, old);
        let o = |f: fn(&Self) -> u32| old.map_or(0, f);
        move_count(&mut agg.views, o(|c| c.views), self.views);
        move_count(&mut agg.cart_adds, o(|c| c.cart_adds), self.cart_adds);
        move_count(&mut agg.purchases, o(|c| c.purchases), self.purchases);
        move_count(&mut agg.units, o(|c| c.units), self.units);
        agg.last_event_at = agg.last_event_at.max(self.last_event_at);
        agg.expires_at = agg.expires_at.max(self.expires_at);
    }
}

/// The pair-count changes that replacing `old` by `new` causes: partner → +1 / −1.
pub fn pair_deltas(
    old: Option<&ItemContribution>,
    new: &ItemContribution,
    kind: PairKind,
) -> BTreeMap<String, i64> {
    let empty = BTreeSet::new();
    let before = old.map_or(&empty, |o| o.partners(kind));
    let after = new.partners(kind);
    let mut d = BTreeMap::new();
    for p in after.difference(before) {
        d.insert(p.clone(), 1);
    }
    for p in before.difference(after) {
        d.insert(p.clone(), -1);
    }
    d
}

fn rank(a: &Partner, b: &Partner) -> std::cmp::Ordering {
    b.sessions
        .cmp(&a.sessions)
        .then_with(|| a.product_id.cmp(&b.product_id))
}

/// The exact top-K from every pair count (used on rebuild, and when a listed count went down).
pub fn top_k(all: impl IntoIterator<Item = Partner>) -> Vec<Partner> {
    let mut v: Vec<Partner> = all.into_iter().filter(|p| p.sessions > 0).collect();
    v.sort_by(rank);
    v.truncate(TOP_K);
    v
}

/// Updates a top-K list after some pair counts changed, when that can be done without seeing every pair.
///
/// Counts that only went up can be merged into the list: a pair outside it ranked below every listed pair
/// before, listed pairs only moved up, and every pair that moved is in `changed`. If a *listed* pair went
/// down, some unlisted pair may now belong in the list, and `None` tells the caller to recompute from all
/// pairs with [`top_k`].
pub fn top_k_update(
    current: &[Partner],
    changed: &BTreeMap<String, (u32, u32)>,
) -> Option<Vec<Partner>> {
    let listed_went_down = current.iter().any(|p| {
        changed
            .get(&p.product_id)
            .is_some_and(|(before, after)| after < before)
    });
    if listed_went_down {
        return None;
    }
    let mut merged: BTreeMap<String, u32> = current
        .iter()
        .map(|p| (p.product_id.clone(), p.sessions))
        .collect();
    for (p, (_, after)) in changed {
        merged.insert(p.clone(), *after);
    }
    Some(top_k(merged.into_iter().map(|(product_id, sessions)| {
        Partner {
            product_id,
            sessions,
        }
    })))
}

// ---------------------------------------------------------------------------------------------- pages

/// What one session contributes to one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageContribution {
    pub path: String,
    pub session_id: String,
    pub event_count: u32,
    pub views: u32,
    /// 1 when the session started on this page.
    pub entrances: u32,
    /// 1 when the session started here and viewed no other page.
    pub bounces: u32,
    /// 1 when this was the session's last page.
    pub exits: u32,
    /// Revenue of the session's orders placed after its first view of this page (Google Analytics' page
    /// value numerator).
    pub value: Money,
    /// The session's last view of the page; `expires_at` is the latest expiry of its views.
    pub last_event_at: DateTime<Utc>,
    pub expires_at: i64,
}

/// The page entity: the page-level metrics behind UCI's `BounceRates`, `ExitRates` and `PageValues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageFeatures {
    pub path: String,
    pub views: u32,
    /// Sessions that viewed the page.
    pub unique_views: u32,
    pub entrances: u32,
    pub bounces: u32,
    pub exits: u32,
    pub value: Money,
    pub last_event_at: DateTime<Utc>,
    pub expires_at: i64,
}

impl PageFeatures {
    /// Single-page sessions that started here, over sessions that started here.
    pub fn bounce_rate(&self) -> f64 {
        ratio(self.bounces, self.entrances)
    }

    /// Sessions that ended here, over views of the page.
    pub fn exit_rate(&self) -> f64 {
        ratio(self.exits, self.views)
    }

    /// Revenue attributed to the page per session that viewed it, in minor units of `currency` (or of the
    /// page's only currency when none is given).
    pub fn page_value_minor(&self, currency: Option<&str>) -> f64 {
        let amount = match currency {
            Some(c) => self.value.get(c).copied().unwrap_or(0),
            None if self.value.len() == 1 => self.value.values().sum(),
            None => 0,
        };
        if self.unique_views == 0 {
            0.0
        } else {
            amount as f64 / f64::from(self.unique_views)
        }
    }
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        0.0
    } else {
        f64::from(a) / f64::from(b)
    }
}

impl Contribution for PageContribution {
    type Aggregate = PageFeatures;

    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn event_count(&self) -> u32 {
        self.event_count
    }

    fn event_count_mut(&mut self) -> &mut u32 {
        &mut self.event_count
    }

    fn empty(&self) -> PageFeatures {
        PageFeatures {
            path: self.path.clone(),
            views: 0,
            unique_views: 0,
            entrances: 0,
            bounces: 0,
            exits: 0,
            value: Money::new(),
            last_event_at: self.last_event_at,
            expires_at: self.expires_at,
        }
    }

    fn apply(&self, old: Option<&Self>, agg: &mut PageFeatures) {
        session_shift(&mut agg.unique_views, old);
        let o = |f: fn(&Self) -> u32| old.map_or(0, f);
        move_count(&mut agg.views, o(|c| c.views), self.views);
        move_count(&mut agg.entrances, o(|c| c.entrances), self.entrances);
        move_count(&mut agg.bounces, o(|c| c.bounces), self.bounces);
        move_count(&mut agg.exits, o(|c| c.exits), self.exits);
        if let Some(o) = old {
            add_money(&mut agg.value, &o.value, -1);
        }
        add_money(&mut agg.value, &self.value, 1);
        agg.last_event_at = agg.last_event_at.max(self.last_event_at);
        agg.expires_at = agg.expires_at.max(self.expires_at);
    }
}
