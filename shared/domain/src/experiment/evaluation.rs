//! The scheduled evaluation of running experiments: the experiment-unit projection, read page by page
//! and folded into per-arm tallies (memory bounded by arms × metrics, never by units), analysed, and
//! written as a report per window.
//!
//! | key (reports bucket) | what |
//! |---|---|
//! | `reports/<experiment>/<window-end>.html` | the page, written first |
//! | `reports/<experiment>/<window-end>.json` | the report; written once (`If-None-Match: *`): its presence means the window is done |
//! | `reports/<experiment>/latest.json` | the newest window's report; never replaced by an older window |
//!
//! `<window-end>` is the window's end in UTC, `YYYYMMDDTHHMMZ`. A unit belongs to the window when it was
//! first exposed before its end. Re-running a window that has its JSON report changes nothing.

use super::config::{Experiment, Status};
use super::holdout::UniversalHoldout;
use crate::features::aggregate::{Cohort, UnitOrder};
use crate::features::ExperimentUnit;
use crate::placement::Placement;
use crate::ports::{
    Condition, ObjectStore, PutError, ReadoutQuery, ReadoutSource, StoreError, UnitSource,
};
use crate::stats::analysis::{analyse, Settings};
use crate::stats::breakdown::{
    breakdown, long_run, time_effects, Slices, DAY, FIRST_WEEK, LATER_WEEKS, LONG_RUN_METRICS,
    WEEK, WEEKDAY,
};
use crate::stats::html;
use crate::stats::report::{Action, Check, DataSummary, Report, Status as CheckStatus, Window};
use crate::stats::tally::{Design, MetricDef, MetricKind, Role, Tally};
use chrono::{DateTime, Datelike, Duration, Utc};
use serde::Serialize;

/// The metrics an experiment is read on, from its experiment units: every experiment on the decision
/// API on conversion, revenue per user and average order value after the first exposure; the recovery
/// experiment on the recovered-cart rate, revenue per abandoned cart and the unsubscribe rate.
pub fn unit_design(experiment: &Experiment, currency: &str) -> Design {
    let metric = |name: &str, kind, role, covariate: Option<&str>, source: String| MetricDef {
        name: name.into(),
        kind,
        role,
        inverse: false,
        covariate: covariate.map(str::to_string),
        source,
    };
    let days = crate::features::aggregate::ATTRIBUTION_DAYS;
    let metrics = if experiment.placement == Placement::Recovery {
        vec![
            metric(
                "recovered_cart_rate",
                MetricKind::Proportion,
                Role::Goal,
                Some("orders_before"),
                format!(
                    "users with an order within {days} days of their first recovery decision \
                     (1 h after their cart's abandonment, when nothing was ordered yet)"
                ),
            ),
            metric(
                "revenue_per_abandoned_cart",
                MetricKind::Mean,
                Role::Goal,
                Some("revenue_before"),
                format!("revenue within {days} days of the first recovery decision, {currency} minor units per user"),
            ),
            MetricDef {
                inverse: true,
                ..metric(
                    "unsubscribe_rate",
                    MetricKind::Proportion,
                    Role::Guardrail,
                    None,
                    "users who unsubscribed or withdrew consent after their first recovery decision".into(),
                )
            },
        ]
    } else {
        vec![
            metric(
                "conversion",
                MetricKind::Proportion,
                Role::Goal,
                Some("orders_before"),
                "users with an order at or after their first exposure".into(),
            ),
            metric(
                "revenue_per_user",
                MetricKind::Mean,
                Role::Goal,
                Some("revenue_before"),
                format!("revenue at or after first exposure, {currency} minor units per user"),
            ),
            metric(
                "average_order_value",
                MetricKind::Ratio,
                Role::Guardrail,
                None,
                format!("revenue / orders after first exposure, {currency} minor units"),
            ),
        ]
    };
    Design {
        experiment_id: experiment.id.clone(),
        variants: experiment.variations.clone(),
        weights: experiment.weights.clone().unwrap_or_else(|| {
            vec![1.0 / experiment.variations.len() as f64; experiment.variations.len()]
        }),
        metrics,
    }
}

/// The impact report's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct ImpactSettings {
    /// The rolling window: units first exposed in the last this many days.
    pub rolling_days: u32,
    /// The margin ratio of an order whose session logged no decision cart.
    pub assumed_margin_ratio: f64,
    /// The power the minimum detectable effect is stated at.
    pub power: f64,
}

impl Default for ImpactSettings {
    fn default() -> Self {
        Self {
            rolling_days: 28,
            assumed_margin_ratio: 0.3,
            power: 0.8,
        }
    }
}

/// The universal holdout's design: the holdout is the control, everyone else the treatment.
pub fn impact_design(holdout: &UniversalHoldout, currency: &str) -> Design {
    use crate::event::{HOLDOUT_VARIANT, SERVED_VARIANT};
    use crate::features::aggregate::ATTRIBUTION_DAYS;
    let metric =
        |name: &str, kind, role, inverse, covariate: Option<&str>, source: String| MetricDef {
            name: name.into(),
            kind,
            role,
            inverse,
            covariate: covariate.map(str::to_string),
            source,
        };
    Design {
        experiment_id: holdout.id.clone(),
        variants: vec![HOLDOUT_VARIANT.into(), SERVED_VARIANT.into()],
        weights: vec![holdout.share, 1.0 - holdout.share],
        metrics: vec![
            metric("conversion", MetricKind::Proportion, Role::Goal, false, Some("orders_before"),
                "visitors with an order at or after their first decision".into()),
            metric("revenue_per_visitor", MetricKind::Mean, Role::Goal, false, Some("revenue_before"),
                format!("revenue at or after the first decision, {currency} minor units per visitor")),
            metric("average_order_value", MetricKind::Ratio, Role::Guardrail, false, None,
                format!("revenue / orders after the first decision, {currency} minor units")),
            metric("incentive_cost_per_visitor", MetricKind::Mean, Role::Guardrail, true, None,
                format!("what incentives gave away on orders (the served incentive's logged cost, redeemed \
                         by an order in the same session, or a recovery message's by the user's next order \
                         within {ATTRIBUTION_DAYS} days), {currency} minor units per visitor")),
            metric("margin_per_visitor", MetricKind::Mean, Role::Goal, false, None,
                format!("order margin (the decision cart's margin ratio, else the assumed ratio) minus \
                         incentive cost, {currency} minor units per visitor")),
            metric("repeat_purchase_rate", MetricKind::Ratio, Role::Goal, false, None,
                format!("buyers with a second order within {REPEAT_DAYS} days of their first (after the \
                         first decision) / buyers; first orders less than {REPEAT_DAYS} days old have not \
                         had their whole chance yet, equally in both arms")),
        ],
    }
}

/// Which metrics a fold reads from a unit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Decision,
    Recovery,
    /// The universal holdout's impact design, with the margin ratio assumed for an order whose session
    /// logged no cart.
    Impact {
        assumed_margin_ratio: f64,
    },
}

/// A repeat purchase: a second order within this many days of the first (after the first exposure).
pub const REPEAT_DAYS: i64 = 30;

/// Folds units into a tally, one at a time, and into the slices of the report's breakdowns.
pub struct UnitFold {
    pub tally: Tally,
    kind: Kind,
    pub data: DataSummary,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
    currency: String,
    /// Units first exposed before this are left out (`exposed_before_window`).
    exposed_from: Option<DateTime<Utc>>,
    /// By the cohort's dimensions.
    cohorts: Slices,
    /// By day of first exposure (the weekday and week slices are merged from these).
    days: Slices,
    /// The stop and the tail, and the long-run tally, once the experiment has stopped.
    long_run: Option<(DateTime<Utc>, u32, Tally)>,
    /// The configured start, else the earliest first exposure analysed.
    start: Option<DateTime<Utc>>,
    first_exposure: Option<DateTime<Utc>>,
}

/// Revenue in `currency` minor units, or `None` when some of it is in another currency.
fn revenue_in(money: &crate::features::aggregate::Money, currency: &str) -> Option<f64> {
    let mut total = 0.0;
    for (c, minor) in money {
        if *minor == 0 {
            continue;
        }
        if c != currency {
            return None;
        }
        total += *minor as f64;
    }
    Some(total)
}

/// The sum of `value` over orders, or `None` when an order with a non-zero total is in another currency.
fn orders_sum<'a>(
    orders: impl IntoIterator<Item = &'a UnitOrder>,
    currency: &str,
    value: impl Fn(&UnitOrder) -> f64,
) -> Option<f64> {
    let mut total = 0.0;
    for o in orders {
        if o.currency != currency && o.total_minor != 0 {
            return None;
        }
        total += value(o);
    }
    Some(total)
}

/// Whether the unit ordered again within [`REPEAT_DAYS`] of its first order after exposure.
pub fn repeat_purchase(orders: &[UnitOrder]) -> bool {
    let mut at: Vec<DateTime<Utc>> = orders.iter().map(|o| o.at).collect();
    at.sort();
    matches!(at.as_slice(), [first, second, ..] if *second - *first <= Duration::days(REPEAT_DAYS))
}

/// The long-run design: [`LONG_RUN_METRICS`] of `design`'s arms.
fn long_run_design(design: &Design, currency: &str) -> Design {
    let metric = |i: usize, kind| MetricDef {
        name: LONG_RUN_METRICS[i].into(),
        kind,
        role: Role::Goal,
        inverse: false,
        covariate: None,
        source: if i.is_multiple_of(2) {
            format!("orders from first exposure to the stop ({currency} minor units, or any order)")
        } else {
            format!("orders from the stop to the end of the tail ({currency} minor units, or any order)")
        },
    };
    Design {
        metrics: vec![
            metric(0, MetricKind::Mean),
            metric(1, MetricKind::Mean),
            metric(2, MetricKind::Proportion),
            metric(3, MetricKind::Proportion),
        ],
        ..design.clone()
    }
}

impl UnitFold {
    pub fn new(
        experiment: &Experiment,
        source: String,
        window_end: DateTime<Utc>,
        now: DateTime<Utc>,
        currency: &str,
    ) -> Self {
        let kind = if experiment.placement == Placement::Recovery {
            Kind::Recovery
        } else {
            Kind::Decision
        };
        let mut fold = Self::with(
            unit_design(experiment, currency),
            kind,
            source,
            window_end,
            now,
            currency,
        );
        fold.start = experiment.start;
        if let (Status::Stopped, Some(end)) = (experiment.status, experiment.end) {
            fold.long_run = Some((
                end,
                experiment.tail_days,
                Tally::new(long_run_design(&fold.tally.design, currency)),
            ));
        }
        fold
    }

    fn with(
        design: Design,
        kind: Kind,
        source: String,
        window_end: DateTime<Utc>,
        now: DateTime<Utc>,
        currency: &str,
    ) -> Self {
        Self {
            cohorts: Slices::new(design.clone()),
            days: Slices::new(design.clone()),
            tally: Tally::new(design),
            kind,
            data: DataSummary {
                source,
                ..DataSummary::default()
            },
            window_end,
            now,
            currency: currency.to_string(),
            exposed_from: None,
            long_run: None,
            start: None,
            first_exposure: None,
        }
    }

    /// The universal holdout's impact fold: units first exposed from `from` (the rolling window's start,
    /// or the holdout's `since`) to `window_end`.
    pub fn impact(
        holdout: &UniversalHoldout,
        settings: &ImpactSettings,
        source: String,
        from: Option<DateTime<Utc>>,
        window_end: DateTime<Utc>,
        now: DateTime<Utc>,
        currency: &str,
    ) -> Self {
        let mut fold = Self::with(
            impact_design(holdout, currency),
            Kind::Impact {
                assumed_margin_ratio: settings.assumed_margin_ratio,
            },
            source,
            window_end,
            now,
            currency,
        );
        fold.exposed_from = from;
        fold.start = from;
        fold
    }

    /// The unit's value (and denominator or covariate) of each metric of the design; `None` where the
    /// unit is left out of a metric (revenue in another currency), and whether that happened.
    fn values(&self, u: &ExperimentUnit) -> (Vec<Option<(f64, f64)>>, bool) {
        let flag = |b: bool| f64::from(u8::from(b));
        let c = &self.currency;
        match self.kind {
            Kind::Recovery => {
                let revenue =
                    revenue_in(&u.revenue_in_window, c).zip(revenue_in(&u.revenue_before, c));
                (
                    vec![
                        Some((flag(u.orders_in_window > 0), f64::from(u.orders_before))),
                        revenue,
                        Some((flag(u.unsubscribed_after), 0.0)),
                    ],
                    revenue.is_none(),
                )
            }
            Kind::Decision => {
                let revenue = revenue_in(&u.revenue_after, c).zip(revenue_in(&u.revenue_before, c));
                (
                    vec![
                        Some((flag(u.orders_after > 0), f64::from(u.orders_before))),
                        revenue,
                        revenue.map(|(after, _)| (after, f64::from(u.orders_after))),
                    ],
                    revenue.is_none(),
                )
            }
            Kind::Impact {
                assumed_margin_ratio,
            } => {
                let revenue = revenue_in(&u.revenue_after, c).zip(revenue_in(&u.revenue_before, c));
                let incentive = orders_sum(&u.orders, c, |o| o.incentive_minor as f64);
                let margin = orders_sum(&u.orders, c, |o| {
                    o.margin_minor
                        .map_or(o.total_minor as f64 * assumed_margin_ratio, |m| m as f64)
                        - o.incentive_minor as f64
                });
                let ok = revenue.is_some() && incentive.is_some() && margin.is_some();
                let bought = !u.orders.is_empty();
                (
                    vec![
                        Some((flag(u.orders_after > 0), f64::from(u.orders_before))),
                        revenue.filter(|_| ok),
                        revenue
                            .filter(|_| ok)
                            .map(|(after, _)| (after, f64::from(u.orders_after))),
                        incentive.filter(|_| ok).map(|x| (x, 0.0)),
                        margin.filter(|_| ok).map(|x| (x, 0.0)),
                        Some((flag(repeat_purchase(&u.orders)), flag(bought))),
                    ],
                    !ok,
                )
            }
        }
    }

    pub fn add(&mut self, item: Result<ExperimentUnit, String>) {
        self.data.rows += 1;
        let u = match item {
            Ok(u) => u,
            Err(reason) => {
                self.data.bad_row(self.data.rows, &reason);
                return;
            }
        };
        // Retention is enforced on read: DynamoDB's TTL deletion lags.
        if u.expires_at <= self.now.timestamp() {
            self.data.exclude("expired");
            return;
        }
        self.data.units += 1;
        if u.first_exposure_at >= self.window_end {
            self.data.exclude("exposed_after_window");
            return;
        }
        if self
            .exposed_from
            .is_some_and(|from| u.first_exposure_at < from)
        {
            self.data.exclude("exposed_before_window");
            return;
        }
        if u.variants_seen > 1 {
            self.data.exclude("multi_variant");
            return;
        }
        let Some(arm) = self.tally.arm(&u.variant) else {
            self.data.exclude("unknown_variant");
            return;
        };
        // To the millisecond, as the event log's and the archive's timestamps keep it.
        let first = chrono::SubsecRound::trunc_subsecs(u.first_exposure_at, 3);
        self.first_exposure = Some(self.first_exposure.map_or(first, |t| t.min(first)));
        let (values, mismatch) = self.values(&u);
        if mismatch {
            self.data.exclude("revenue_in_another_currency");
        }
        let day = u.first_exposure_at.format("%Y-%m-%d").to_string();
        let observe = |t: &mut Tally| {
            t.unit(arm);
            for (metric, v) in values.iter().enumerate() {
                if let Some((x, y)) = v {
                    t.observe(metric, arm, *x, *y);
                }
            }
        };
        observe(&mut self.tally);
        observe(self.days.get(DAY, &day));
        for dim in Cohort::DIMENSIONS {
            observe(self.cohorts.get(dim, u.cohort.value(dim)));
        }
        if let Some((stop, tail, t)) = &mut self.long_run {
            let end = *stop + Duration::days(i64::from(*tail));
            let during = || u.orders.iter().filter(|o| o.at < *stop);
            let after = || u.orders.iter().filter(|o| o.at >= *stop && o.at < end);
            t.unit(arm);
            if let (Some(d), Some(a)) = (
                orders_sum(during(), &self.currency, |o| o.total_minor as f64),
                orders_sum(after(), &self.currency, |o| o.total_minor as f64),
            ) {
                t.observe(0, arm, d, 0.0);
                t.observe(1, arm, a, 0.0);
            }
            t.observe(2, arm, f64::from(u8::from(during().next().is_some())), 0.0);
            t.observe(3, arm, f64::from(u8::from(after().next().is_some())), 0.0);
        }
        if !u.complete {
            *self
                .data
                .flagged_units
                .entry("orders_window_incomplete".into())
                .or_default() += 1;
        }
    }

    /// The earliest first exposure analysed so far.
    pub fn first_exposure(&self) -> Option<DateTime<Utc>> {
        self.first_exposure
    }

    /// The report: the overall analysis, then lift by cohort, the time effects and the long-run tail.
    pub fn report(self, settings: &Settings, now: DateTime<Utc>) -> Report {
        let mut report = analyse(
            &self.tally,
            settings,
            self.data,
            Some(Window {
                end: self.window_end,
            }),
            now,
        );
        report.cohorts = Some(breakdown(
            &self.cohorts,
            &Cohort::DIMENSIONS,
            &report.metrics,
            settings,
        ));
        if let Some(start) = self.start.or(self.first_exposure) {
            let mut time = self.days.clone();
            let first_week_ends = (start + Duration::days(7)).date_naive();
            if let Some(days) = self.days.tallies.get(DAY) {
                for (day, t) in days {
                    let Ok(d) = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
                        continue;
                    };
                    time.get(
                        WEEKDAY,
                        &format!(
                            "{}-{:?}",
                            d.weekday().num_days_from_monday() + 1,
                            d.weekday()
                        ),
                    )
                    .merge(t);
                    let week = if d < first_week_ends {
                        FIRST_WEEK
                    } else {
                        LATER_WEEKS
                    };
                    time.get(WEEK, week).merge(t);
                }
            }
            let t = time_effects(&time, &report.metrics, start, self.window_end, settings);
            if let Some(w) = &t.warning {
                report.recommendation.reasons.push(w.clone());
                report.health.push(Check {
                    name: "whole_weeks",
                    status: CheckStatus::Warning,
                    message: w.clone(),
                });
            }
            report.time = Some(t);
        }
        if let Some((stop, tail, t)) = &self.long_run {
            report.long_run = Some(long_run(t, *stop, *tail, self.window_end, settings));
        }
        report
    }
}

/// One row of the archive's experiment readout (`sql/experiment_readout.sql`): the units of one variant
/// with one status in one slice, and, for `ok` units, the moments of the slice's metrics, as integer
/// sums.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ReadoutRow {
    /// `''` for every unit; a cohort dimension ([`Cohort::DIMENSIONS`]) or [`DAY`] for the `ok` units
    /// by cohort; [`LONG_RUN`] for the `ok` units' long-run metrics.
    pub dimension: String,
    /// The cohort within the dimension (`''` overall and for the long run).
    pub cohort: String,
    pub variant: String,
    /// `ok`, `expired`, `exposed_after_window` or `multi_variant`.
    pub status: String,
    /// The row's earliest first exposure, epoch milliseconds.
    pub first_at_ms: i64,
    pub units: u64,
    /// Units whose revenue is partly in another currency (no revenue metrics for them).
    pub currency_mismatch: u64,
    pub m0_n: u64,
    pub m0_sx: i128,
    pub m0_sxx: i128,
    pub m0_sy: i128,
    pub m0_syy: i128,
    pub m0_sxy: i128,
    pub m1_n: u64,
    pub m1_sx: i128,
    pub m1_sxx: i128,
    pub m1_sy: i128,
    pub m1_syy: i128,
    pub m1_sxy: i128,
    pub m2_n: u64,
    pub m2_sx: i128,
    pub m2_sxx: i128,
    pub m2_sy: i128,
    pub m2_syy: i128,
    pub m2_sxy: i128,
    pub m3_n: u64,
    pub m3_sx: i128,
    pub m3_sxx: i128,
    pub m3_sy: i128,
    pub m3_syy: i128,
    pub m3_sxy: i128,
}

/// The readout's dimension of the long-run rows.
pub const LONG_RUN: &str = "long_run";

impl ReadoutRow {
    /// The readout's text columns (the rest are integers).
    pub const TEXT_COLUMNS: [&'static str; 4] = ["dimension", "cohort", "variant", "status"];

    /// The readout's columns, in the SQL's order.
    pub const COLUMNS: [&'static str; 31] = [
        "dimension",
        "cohort",
        "variant",
        "status",
        "first_at_ms",
        "units",
        "currency_mismatch",
        "m0_n",
        "m0_sx",
        "m0_sxx",
        "m0_sy",
        "m0_syy",
        "m0_sxy",
        "m1_n",
        "m1_sx",
        "m1_sxx",
        "m1_sy",
        "m1_syy",
        "m1_sxy",
        "m2_n",
        "m2_sx",
        "m2_sxx",
        "m2_sy",
        "m2_syy",
        "m2_sxy",
        "m3_n",
        "m3_sx",
        "m3_sxx",
        "m3_sy",
        "m3_syy",
        "m3_sxy",
    ];

    fn moments(&self, metric: usize) -> crate::stats::tally::Moments {
        let (n, sx, sxx, sy, syy, sxy) = match metric {
            0 => (
                self.m0_n,
                self.m0_sx,
                self.m0_sxx,
                self.m0_sy,
                self.m0_syy,
                self.m0_sxy,
            ),
            1 => (
                self.m1_n,
                self.m1_sx,
                self.m1_sxx,
                self.m1_sy,
                self.m1_syy,
                self.m1_sxy,
            ),
            2 => (
                self.m2_n,
                self.m2_sx,
                self.m2_sxx,
                self.m2_sy,
                self.m2_syy,
                self.m2_sxy,
            ),
            _ => (
                self.m3_n,
                self.m3_sx,
                self.m3_sxx,
                self.m3_sy,
                self.m3_syy,
                self.m3_sxy,
            ),
        };
        crate::stats::tally::Moments {
            n,
            sum: sx as f64,
            sum_squares: sxx as f64,
            sum_y: sy as f64,
            sum_y_squares: syy as f64,
            sum_products: sxy as f64,
        }
    }
}

impl UnitFold {
    /// Folds in one readout row: the same exclusions, in the same order, as [`UnitFold::add`] makes
    /// unit by unit, and the row's moments added to its arm, overall or in its slice. With integer sums
    /// below 2^53 (any realistic experiment's counts and minor-unit revenue) the tallies are the ones
    /// the units give.
    pub fn add_readout(&mut self, row: &ReadoutRow) {
        let n = row.units;
        fn exclude(data: &mut DataSummary, reason: &str, k: u64) {
            if k > 0 {
                *data.excluded_units.entry(reason.to_string()).or_default() += k;
            }
        }
        if !row.dimension.is_empty() {
            self.add_slice(row);
            return;
        }
        self.data.rows += n;
        if row.status == "expired" {
            exclude(&mut self.data, "expired", n);
            return;
        }
        self.data.units += n;
        if row.status != "ok" {
            exclude(&mut self.data, &row.status, n);
            return;
        }
        let Some(arm) = self.tally.arm(&row.variant) else {
            exclude(&mut self.data, "unknown_variant", n);
            return;
        };
        let first = DateTime::from_timestamp_millis(row.first_at_ms);
        self.first_exposure = match (self.first_exposure, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        merge_row(&mut self.tally, arm, row);
        exclude(
            &mut self.data,
            "revenue_in_another_currency",
            row.currency_mismatch,
        );
    }

    /// A slice's row (only `ok` units have them): into its cohort's or day's tally, or the long run's.
    fn add_slice(&mut self, row: &ReadoutRow) {
        let Some(arm) = self.tally.arm(&row.variant) else {
            return;
        };
        let tally = match row.dimension.as_str() {
            LONG_RUN => match &mut self.long_run {
                Some((_, _, t)) => t,
                None => return,
            },
            DAY => self.days.get(DAY, &row.cohort),
            dim => self.cohorts.get(dim, &row.cohort),
        };
        merge_row(tally, arm, row);
    }

    /// The readout query of this fold's experiment: its design, window, clock, currency and, once it
    /// has stopped, its long-run tail.
    pub fn readout_query(&self, experiment_id: &str) -> ReadoutQuery {
        ReadoutQuery {
            experiment_id: experiment_id.to_string(),
            recovery: self.kind == Kind::Recovery,
            window_end: self.window_end,
            now: self.now,
            currency: self.currency.clone(),
            long_run: self
                .long_run
                .as_ref()
                .map(|(stop, tail, _)| (*stop, *stop + Duration::days(i64::from(*tail)))),
        }
    }

    /// Folds in every unit of the experiment, page by page.
    pub async fn read_all<U: UnitSource>(
        &mut self,
        units: &U,
        experiment_id: &str,
    ) -> Result<(), StoreError> {
        for_each_unit(units, experiment_id, |unit| self.add(unit)).await
    }
}

/// A readout row's units and moments added to `arm` of `tally` (the row's metrics are the tally's).
fn merge_row(tally: &mut Tally, arm: usize, row: &ReadoutRow) {
    tally.units[arm] += row.units;
    for (metric, cells) in tally.cells.iter_mut().enumerate() {
        cells[arm].merge(&row.moments(metric));
    }
}

/// Reads every unit of an experiment, page by page, into `f`.
pub async fn for_each_unit<U: UnitSource>(
    units: &U,
    experiment_id: &str,
    mut f: impl FnMut(Result<ExperimentUnit, String>),
) -> Result<(), StoreError> {
    let mut after: Option<String> = None;
    loop {
        let page = units.page(experiment_id, after.as_deref()).await?;
        page.units.into_iter().for_each(&mut f);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// The window's name in keys.
pub fn window_name(end: DateTime<Utc>) -> String {
    end.format("%Y%m%dT%H%MZ").to_string()
}

pub fn report_keys(experiment_id: &str, end: DateTime<Utc>) -> (String, String) {
    let base = format!("reports/{experiment_id}/{}", window_name(end));
    (format!("{base}.json"), format!("{base}.html"))
}

pub fn latest_key(experiment_id: &str) -> String {
    format!("reports/{experiment_id}/latest.json")
}

/// What happened to one experiment in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub experiment_id: String,
    /// `written`, or `exists` when the window was already evaluated.
    pub outcome: &'static str,
    pub json_key: String,
    pub html_key: String,
    pub units: Option<Vec<u64>>,
    pub srm_alarm: Option<bool>,
    pub action: Option<Action>,
    /// Whether `latest.json` now holds this window.
    pub latest_updated: bool,
    /// Each arm's mean of each metric in the written report (the dashboard's readout), empty when the
    /// window already existed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readout: Vec<ArmReadout>,
}

/// One arm's mean of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReadout {
    pub metric: String,
    pub variant: String,
    pub n: u64,
    pub mean: f64,
}

impl Outcome {
    /// A window already written (the fields a written one fills stay empty).
    pub fn exists(id: &str, json_key: &str, html_key: &str) -> Self {
        Self {
            experiment_id: id.to_string(),
            outcome: "exists",
            json_key: json_key.to_string(),
            html_key: html_key.to_string(),
            units: None,
            srm_alarm: None,
            action: None,
            latest_updated: false,
            readout: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encode the report: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("latest.json kept changing under us")]
    LatestRaced,
}

impl EvaluationError {
    /// Whether a retry may succeed: a transient store fault or a raced `latest.json`; not a permanent
    /// store error or a report that cannot be encoded.
    pub fn retryable(&self) -> bool {
        match self {
            EvaluationError::Store(e) => e.retryable,
            EvaluationError::Encode(_) => false,
            EvaluationError::LatestRaced => true,
        }
    }
}

impl From<PutError> for EvaluationError {
    fn from(e: PutError) -> Self {
        match e {
            PutError::Store(s) => Self::Store(s),
            PutError::Precondition => Self::LatestRaced,
        }
    }
}

/// The experiments a run evaluates: running and started before the window's end, or stopped (with an
/// `end`) less than their tail plus a day ago.
pub fn due(experiments: &[Experiment], window_end: DateTime<Utc>) -> Vec<&Experiment> {
    experiments
        .iter()
        .filter(|e| {
            let started = e.start.is_none_or(|s| s < window_end);
            match (e.status, e.end) {
                (Status::Running, _) => started,
                // The long-run tail, and one more day for the final report past it.
                (Status::Stopped, Some(end)) => {
                    started && window_end < end + Duration::days(i64::from(e.tail_days) + 1)
                }
                _ => false,
            }
        })
        .collect()
}

/// The archive's readout, for experiments at least `min_units` large (by their latest report): their
/// tallies come from SQL over the archive instead of a read of every unit.
pub struct LargeExperiments<'a, Q> {
    pub source: &'a Q,
    pub min_units: u64,
}

/// No readout source: every experiment is read unit by unit.
pub struct UnitsOnly;

impl ReadoutSource for UnitsOnly {
    fn name(&self) -> String {
        "none".into()
    }
    async fn readout(&self, _: &ReadoutQuery) -> Result<Vec<ReadoutRow>, StoreError> {
        Ok(Vec::new())
    }
}

/// Evaluates one experiment for the window ending at `window_end`, unless that window is done, from its
/// experiment units.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_experiment<U: UnitSource, R: ObjectStore>(
    units: &U,
    reports: &R,
    experiment: &Experiment,
    settings: &Settings,
    currency: &str,
    source: &str,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Outcome, EvaluationError> {
    evaluate_experiment_with::<U, R, UnitsOnly>(
        units, None, reports, experiment, settings, currency, source, window_end, now,
    )
    .await
}

/// The report at a `latest.json` key, if there is one (`null` when it cannot be read).
pub(crate) async fn read_latest<R: ObjectStore>(
    reports: &R,
    key: &str,
) -> Result<Option<serde_json::Value>, EvaluationError> {
    Ok(reports
        .get(key)
        .await?
        .map(|latest| serde_json::from_slice(&latest.bytes).unwrap_or_default()))
}

/// The units the experiment's latest report counted, if it has one.
async fn latest_units<R: ObjectStore>(
    reports: &R,
    experiment_id: &str,
) -> Result<Option<u64>, EvaluationError> {
    Ok(read_latest(reports, &latest_key(experiment_id))
        .await?
        .and_then(|v| {
            v["arms"]
                .as_array()
                .map(|arms| arms.iter().map(|a| a["units"].as_u64().unwrap_or(0)).sum())
        }))
}

/// [`evaluate_experiment`], reading an experiment whose latest report counted at least
/// `large.min_units` units from the archive's SQL readout instead (the same report, see
/// [`UnitFold::add_readout`]); the report's data source says which.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_experiment_with<U: UnitSource, R: ObjectStore, Q: ReadoutSource>(
    units: &U,
    large: Option<LargeExperiments<'_, Q>>,
    reports: &R,
    experiment: &Experiment,
    settings: &Settings,
    currency: &str,
    source: &str,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Outcome, EvaluationError> {
    let (json_key, html_key) = report_keys(&experiment.id, window_end);
    let mut outcome = Outcome::exists(&experiment.id, &json_key, &html_key);
    if reports.get(&json_key).await?.is_some() {
        return Ok(outcome);
    }
    let sql = match &large {
        Some(l) if latest_units(reports, &experiment.id).await? >= Some(l.min_units) => Some(l),
        _ => None,
    };
    let mut fold = UnitFold::new(
        experiment,
        match sql {
            Some(l) => format!("{}/archive_events/{}", l.source.name(), experiment.id),
            None => format!("{source}/experiment#{}", experiment.id),
        },
        window_end,
        now,
        currency,
    );
    match sql {
        Some(l) => {
            for row in l
                .source
                .readout(&fold.readout_query(&experiment.id))
                .await?
            {
                fold.add_readout(&row);
            }
        }
        None => fold.read_all(units, &experiment.id).await?,
    }
    let report = fold.report(settings, now);
    write_report(
        reports,
        &report,
        &json_key,
        &html_key,
        html::render(&report),
    )
    .await?;
    outcome.outcome = "written";
    outcome.units = Some(report.arms.iter().map(|a| a.units).collect());
    outcome.srm_alarm = Some(report.srm.alarm);
    outcome.action = Some(report.recommendation.action);
    outcome.readout = report
        .metrics
        .iter()
        .flat_map(|m| {
            m.arms.iter().map(|a| ArmReadout {
                metric: m.name.clone(),
                variant: a.variant.clone(),
                n: a.n,
                mean: a.mean,
            })
        })
        .collect();
    outcome.latest_updated = update_latest(
        reports,
        &latest_key(&experiment.id),
        report.window,
        serde_json::to_vec_pretty(&report)?,
    )
    .await?;
    Ok(outcome)
}

/// Writes a window's page, then its JSON once: the page first, the JSON last, because the JSON's
/// presence is what marks the window done.
pub(crate) async fn write_report<R: ObjectStore, T: Serialize>(
    reports: &R,
    report: &T,
    json_key: &str,
    html_key: &str,
    page: String,
) -> Result<(), EvaluationError> {
    let json = serde_json::to_vec_pretty(report)?;
    reports
        .put(html_key, page.into_bytes(), Condition::Always)
        .await?;
    match reports.put(json_key, json, Condition::Absent).await {
        Ok(()) | Err(PutError::Precondition) => Ok(()),
        Err(PutError::Store(e)) => Err(e.into()),
    }
}

/// Points `latest.json` at this report unless it already holds a window at least as new.
pub(crate) async fn update_latest<R: ObjectStore>(
    reports: &R,
    key: &str,
    window: Option<Window>,
    json: Vec<u8>,
) -> Result<bool, EvaluationError> {
    let key = key.to_string();
    let ours = window.map(|w| w.end);
    for _ in 0..3 {
        let condition = match reports.get(&key).await? {
            Some(existing) => {
                let theirs = serde_json::from_slice::<serde_json::Value>(&existing.bytes)
                    .ok()
                    .and_then(|v| v["window"]["end"].as_str().map(str::to_string))
                    .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                    .map(|t| t.with_timezone(&Utc));
                if theirs.is_some() && theirs >= ours {
                    return Ok(false);
                }
                Condition::Matches(existing.etag)
            }
            None => Condition::Absent,
        };
        match reports.put(&key, json.clone(), condition).await {
            Ok(()) => return Ok(true),
            Err(PutError::Precondition) => continue,
            Err(PutError::Store(e)) => return Err(e.into()),
        }
    }
    Err(EvaluationError::LatestRaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::aggregate::Money;
    use crate::features::Doc;
    use crate::memory::{MemoryFeatureStore, MemoryObjectStore};
    use crate::placement::Placement;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, 0, 0).unwrap()
    }

    fn experiment() -> Experiment {
        serde_json::from_value(serde_json::json!({
            "id": "checkout-offer", "variations": ["control", "treatment"], "placement": "cart",
            "status": "running"
        }))
        .unwrap()
    }

    fn unit(i: usize, variant: &str, orders: u32, exposed: DateTime<Utc>) -> ExperimentUnit {
        ExperimentUnit {
            experiment_id: "checkout-offer".into(),
            user_id: format!("u{i:05}"),
            variant: variant.into(),
            first_exposure_at: exposed,
            decision_id: format!("d{i}"),
            variants_seen: 1,
            orders_after: orders,
            revenue_after: Money::from([(
                "USD".to_string(),
                i64::from(orders) * (2_000 + (i % 7) as i64 * 300),
            )]),
            orders_before: u32::from(i.is_multiple_of(3)),
            revenue_before: Money::from([(
                "USD".to_string(),
                if i.is_multiple_of(3) { 1_500 } else { 0 },
            )]),
            orders_in_window: 0,
            revenue_in_window: Money::new(),
            unsubscribed_after: false,
            complete: true,
            expires_at: 4_000_000_000,
            cohort: crate::features::aggregate::Cohort {
                device: if i.is_multiple_of(3) {
                    "mobile"
                } else {
                    "desktop"
                }
                .into(),
                ..Default::default()
            },
            orders: Vec::new(),
        }
    }

    fn population() -> Vec<ExperimentUnit> {
        let mut units: Vec<ExperimentUnit> = (0..1_000)
            .map(|i| {
                let variant = if i % 2 == 0 { "control" } else { "treatment" };
                unit(
                    i,
                    variant,
                    u32::from(i % 9 == 0) + u32::from(i % 17 == 0),
                    at(9),
                )
            })
            .collect();
        units.push(ExperimentUnit {
            variants_seen: 2,
            ..unit(5_000, "control", 1, at(9))
        });
        units.push(unit(5_001, "treatment", 1, at(13)));
        units.push(ExperimentUnit {
            expires_at: 1,
            ..unit(5_002, "treatment", 1, at(9))
        });
        units.push(unit(5_003, "retired-arm", 0, at(9)));
        units.push(ExperimentUnit {
            revenue_after: Money::from([("EUR".to_string(), 900)]),
            ..unit(5_004, "control", 1, at(9))
        });
        units
    }

    #[test]
    fn the_fold_applies_every_exclusion_and_counts_per_arm() {
        let mut fold = UnitFold::new(&experiment(), "mem".into(), at(12), at(12), "USD");
        for u in population() {
            fold.add(Ok(u));
        }
        fold.add(Err("undecodable item".into()));
        let d = &fold.data;
        assert_eq!(d.rows, 1_006);
        assert_eq!(d.bad_rows["undecodable item"], 1);
        assert_eq!(d.excluded_units["expired"], 1);
        assert_eq!(d.excluded_units["exposed_after_window"], 1);
        assert_eq!(d.excluded_units["multi_variant"], 1);
        assert_eq!(d.excluded_units["unknown_variant"], 1);
        assert_eq!(d.excluded_units["revenue_in_another_currency"], 1);
        assert_eq!(fold.tally.units, [501, 500]);
        // The EUR unit counts for conversion, not for revenue.
        assert_eq!(fold.tally.cells[0][0].n, 501);
        assert_eq!(fold.tally.cells[1][0].n, 500);
        let orders: f64 = fold.tally.cells[2].iter().map(|m| m.sum_y).sum();
        let expected: u32 = population()[..1_000].iter().map(|u| u.orders_after).sum();
        assert_eq!(orders, f64::from(expected));
    }

    /// The population's units in a memory store.
    fn stored_population() -> MemoryFeatureStore {
        let units = MemoryFeatureStore::default();
        for u in population() {
            units.insert(Doc::ExperimentUnit(u));
        }
        units
    }

    #[tokio::test]
    async fn a_window_is_written_once_and_latest_never_goes_back() {
        let units = stored_population();
        let reports = MemoryObjectStore::default();
        let settings = Settings::default();
        let e = experiment();
        let run =
            |end| evaluate_experiment(&units, &reports, &e, &settings, "USD", "mem", end, end);
        let first = run(at(12)).await.unwrap();
        assert_eq!(first.outcome, "written");
        assert_eq!(first.units, Some(vec![501, 500]));
        assert!(first.latest_updated);
        // 1,005 units over 16 shards (about 63 each), pages of 100: one page per shard.
        assert_eq!(units.calls(), u64::from(crate::features::UNIT_SHARDS));
        let (json, html) = report_keys("checkout-offer", at(12));
        assert_eq!(json, "reports/checkout-offer/20261124T1200Z.json");
        let written = reports.object(&json).unwrap();
        assert!(String::from_utf8(reports.object(&html).unwrap())
            .unwrap()
            .starts_with("<!DOCTYPE html>"));
        // Again for the same window: nothing is read or written.
        let again = run(at(12)).await.unwrap();
        assert_eq!(again.outcome, "exists");
        assert_eq!(reports.object(&json).unwrap(), written);
        assert_eq!(units.calls(), u64::from(crate::features::UNIT_SHARDS));
        // A later window moves latest; a late retry of an earlier one does not move it back.
        run(at(14)).await.unwrap();
        let late = run(at(11)).await.unwrap();
        assert_eq!(late.outcome, "written");
        assert!(!late.latest_updated);
        let latest: serde_json::Value =
            serde_json::from_slice(&reports.object(&latest_key("checkout-offer")).unwrap())
                .unwrap();
        assert_eq!(latest["window"]["end"], "2026-11-24T14:00:00Z");
        // The 13:00 exposure is in the 14:00 window only.
        assert_eq!(latest["arms"][1]["units"], 501);
    }

    /// A readout source with fixed rows, counting its calls.
    struct FixedReadout(Vec<ReadoutRow>, std::sync::atomic::AtomicUsize);

    impl ReadoutSource for FixedReadout {
        fn name(&self) -> String {
            "athena:test".into()
        }
        async fn readout(&self, q: &ReadoutQuery) -> Result<Vec<ReadoutRow>, StoreError> {
            assert_eq!(
                (q.experiment_id.as_str(), q.recovery),
                ("checkout-offer", false)
            );
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.0.clone())
        }
    }

    fn row(variant: &str, units: u64) -> ReadoutRow {
        sliced("", "", variant, units)
    }

    fn sliced(dimension: &str, cohort: &str, variant: &str, units: u64) -> ReadoutRow {
        let n = i128::from(units);
        ReadoutRow {
            dimension: dimension.into(),
            cohort: cohort.into(),
            variant: variant.into(),
            status: "ok".into(),
            first_at_ms: at(3).timestamp_millis(),
            units,
            currency_mismatch: 0,
            m0_n: units,
            m0_sx: n / 10,
            m0_sxx: n / 10,
            m0_sy: 0,
            m0_syy: 0,
            m0_sxy: 0,
            m1_n: units,
            m1_sx: n * 500,
            m1_sxx: n * 2_500_000,
            m1_sy: 0,
            m1_syy: 0,
            m1_sxy: 0,
            m2_n: units,
            m2_sx: n * 500,
            m2_sxx: n * 2_500_000,
            m2_sy: n / 10,
            m2_syy: n / 10,
            m2_sxy: n * 50,
            m3_n: 0,
            m3_sx: 0,
            m3_sxx: 0,
            m3_sy: 0,
            m3_syy: 0,
            m3_sxy: 0,
        }
    }

    #[tokio::test]
    async fn an_experiment_past_the_size_is_read_from_the_archive_sql() {
        let units = stored_population();
        let reports = MemoryObjectStore::default();
        let settings = Settings::default();
        let e = experiment();
        let sql = FixedReadout(
            vec![
                row("control", 40_000),
                row("treatment", 40_100),
                sliced("device", "desktop", "control", 30_000),
                sliced("device", "desktop", "treatment", 30_100),
                sliced("device", "mobile", "control", 10_000),
                sliced("device", "mobile", "treatment", 10_000),
                sliced(DAY, "2026-11-24", "control", 40_000),
                sliced(DAY, "2026-11-24", "treatment", 40_100),
                // A running experiment has no long run: such a row is ignored.
                sliced(LONG_RUN, "", "control", 1),
            ],
            0.into(),
        );
        let run = |end, min_units| {
            evaluate_experiment_with(
                &units,
                Some(LargeExperiments {
                    source: &sql,
                    min_units,
                }),
                &reports,
                &e,
                &settings,
                "USD",
                "mem",
                end,
                end,
            )
        };
        // No report yet: the units are read (the size is not known).
        let first = run(at(12), 1_000).await.unwrap();
        assert_eq!(first.units, Some(vec![501, 500]));
        assert_eq!(sql.1.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Below the size the next window still reads units; at or past it, the SQL.
        let second = run(at(13), 1_002).await.unwrap();
        assert_eq!(second.units, Some(vec![501, 500]));
        let third = run(at(14), 1_001).await.unwrap();
        assert_eq!(third.units, Some(vec![40_000, 40_100]));
        assert_eq!(sql.1.load(std::sync::atomic::Ordering::SeqCst), 1);
        let (json, _) = report_keys("checkout-offer", at(14));
        let report: serde_json::Value =
            serde_json::from_slice(&reports.object(&json).unwrap()).unwrap();
        assert_eq!(
            report["data"]["source"],
            "athena:test/archive_events/checkout-offer"
        );
        // The SQL's slices are the report's lift by cohort and time effects.
        let device = &report["cohorts"]["dimensions"][0];
        assert_eq!(device["name"], "device");
        let cohorts: Vec<(&str, &serde_json::Value)> = device["cohorts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["value"].as_str().unwrap(), &c["units"]))
            .collect();
        assert_eq!(
            cohorts,
            [
                ("desktop", &serde_json::json!([30_000, 30_100])),
                ("mobile", &serde_json::json!([10_000, 10_000]))
            ]
        );
        let days = &report["time"]["series"]["dimensions"][0];
        assert_eq!(
            (&days["name"], &days["cohorts"][0]["value"]),
            (&serde_json::json!("day"), &serde_json::json!("2026-11-24"))
        );
        assert!(report["long_run"].is_null());
        assert!(
            report["health"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["name"] != "breakdowns"),
            "{}",
            report["health"]
        );
    }

    #[test]
    fn only_running_experiments_that_have_started_are_due() {
        let mut stopped = experiment();
        stopped.id = "stopped".into();
        stopped.status = Status::Stopped;
        let mut later = experiment();
        later.id = "later".into();
        later.start = Some(at(15));
        let mut cart = experiment();
        cart.placement = Placement::Checkout;
        let all = [experiment(), stopped, later, cart];
        let due: Vec<&str> = due(&all, at(12)).iter().map(|e| e.id.as_str()).collect();
        assert_eq!(due, ["checkout-offer", "checkout-offer"]);
    }
}
