//! Friction chosen by expected cost: what each friction costs on a genuine and on a fraudulent order, score
//! bands that map a risk score to a friction, and the bands that minimise the total cost on labelled,
//! scored orders.
//!
//! Costs are in the order's minor units. For an order of value `v` and margin `m`:
//!
//! | friction | fraud | genuine |
//! |---|---|---|
//! | allow | `v + fee` | 0 |
//! | step-up | `(1 − stop)·(v + fee)` | `abandon·m` |
//! | review | `review + (1 − catch)·(v + fee)` | `review + false_reject·m·(1 + ltv)` |
//! | decline | 0 | `m·(1 + ltv)` |
//!
//! `fee` is the chargeback fee, `stop` the share of frauds a step-up stops (a failed challenge, or the
//! liability shift of a passed 3-D Secure one), `abandon` the share of genuine shoppers a challenge
//! loses, `catch` and `false_reject` the reviewers' hit and error rates, and `ltv` the lifetime-value
//! factor: a falsely declined shopper takes this many more margins' worth of future orders elsewhere.

use serde::{Deserialize, Serialize};

pub use crate::event::Friction;

impl Friction {
    pub const ALL: [Friction; 4] = [
        Friction::Allow,
        Friction::StepUp,
        Friction::Review,
        Friction::Decline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Friction::Allow => "allow",
            Friction::StepUp => "step_up",
            Friction::Review => "review",
            Friction::Decline => "decline",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The merchant's costs, from which the bands are fitted (`risk.costs` in the decision config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrictionCosts {
    /// Chargeback fee and handling on top of the lost goods, per fraud let through.
    pub chargeback_fee_minor: i64,
    /// A false decline loses the order's margin and this many margins of future orders.
    pub ltv_factor: f64,
    /// Share of genuine shoppers who abandon at a challenge.
    pub step_up_abandon_rate: f64,
    /// Share of frauds a challenge stops.
    pub step_up_fraud_stop_rate: f64,
    /// Cost of one manual review.
    pub review_cost_minor: i64,
    /// Share of frauds a reviewer rejects.
    pub review_catch_rate: f64,
    /// Share of genuine orders a reviewer rejects.
    pub review_false_reject_rate: f64,
}

impl Default for FrictionCosts {
    /// Illustrative card-not-present figures (documented in docs/fraud.md): a 15.00 chargeback fee, a
    /// falsely declined shopper worth one more margin, 10% abandonment at a challenge that stops 85% of
    /// frauds, and a 3.00 review that catches 95% of frauds and rejects 2% of genuine orders.
    fn default() -> Self {
        Self {
            chargeback_fee_minor: 1500,
            ltv_factor: 1.0,
            step_up_abandon_rate: 0.10,
            step_up_fraud_stop_rate: 0.85,
            review_cost_minor: 300,
            review_catch_rate: 0.95,
            review_false_reject_rate: 0.02,
        }
    }
}

/// Why a cost configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    #[error("risk cost `{field}` must be {rule}, got {value}")]
    Invalid {
        field: &'static str,
        rule: &'static str,
        value: f64,
    },
}

impl FrictionCosts {
    pub fn validate(&self) -> Result<(), CostError> {
        let rate = |field, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(CostError::Invalid {
                    field,
                    rule: "a rate in [0, 1]",
                    value,
                })
            }
        };
        let non_negative = |field, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err(CostError::Invalid {
                    field,
                    rule: "finite and not negative",
                    value,
                })
            }
        };
        non_negative("chargeback_fee_minor", self.chargeback_fee_minor as f64)?;
        non_negative("ltv_factor", self.ltv_factor)?;
        non_negative("review_cost_minor", self.review_cost_minor as f64)?;
        rate("step_up_abandon_rate", self.step_up_abandon_rate)?;
        rate("step_up_fraud_stop_rate", self.step_up_fraud_stop_rate)?;
        rate("review_catch_rate", self.review_catch_rate)?;
        rate("review_false_reject_rate", self.review_false_reject_rate)
    }

    /// The cost of `friction` on an order of `value_minor` with `margin_minor`, if it is (`fraud`) or is
    /// not a fraud.
    pub fn cost(&self, friction: Friction, order: Order, fraud: bool) -> f64 {
        let loss = order.value_minor as f64 + self.chargeback_fee_minor as f64;
        let margin = order.margin_minor.max(0) as f64;
        let false_decline = margin * (1.0 + self.ltv_factor);
        match (friction, fraud) {
            (Friction::Allow, true) => loss,
            (Friction::Allow, false) => 0.0,
            (Friction::StepUp, true) => (1.0 - self.step_up_fraud_stop_rate) * loss,
            (Friction::StepUp, false) => self.step_up_abandon_rate * margin,
            (Friction::Review, true) => {
                self.review_cost_minor as f64 + (1.0 - self.review_catch_rate) * loss
            }
            (Friction::Review, false) => {
                self.review_cost_minor as f64 + self.review_false_reject_rate * false_decline
            }
            (Friction::Decline, true) => 0.0,
            (Friction::Decline, false) => false_decline,
        }
    }

    /// The expected cost of `friction` when the order is a fraud with probability `p`.
    pub fn expected_cost(&self, friction: Friction, order: Order, p: f64) -> f64 {
        p * self.cost(friction, order, true) + (1.0 - p) * self.cost(friction, order, false)
    }
}

/// An order's value and margin, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub value_minor: i64,
    pub margin_minor: i64,
}

/// Where a band starts: scores at or above `from` (and below the next band's) get `friction`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub from: f64,
    pub friction: Friction,
}

/// Score bands: the first starts at 0, the starts rise, and each friction is stricter than the last. A
/// friction with no band is never recommended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "Vec<Band>", into = "Vec<Band>")]
pub struct Bands(Vec<Band>);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BandError {
    #[error("risk bands are empty")]
    Empty,
    #[error("the first risk band must start at score 0, not {0}")]
    FirstNotZero(f64),
    #[error("risk band starts must rise and stay within 0–100, and frictions must get stricter (band {0})")]
    Order(usize),
}

impl TryFrom<Vec<Band>> for Bands {
    type Error = BandError;

    fn try_from(bands: Vec<Band>) -> Result<Self, BandError> {
        let first = bands.first().ok_or(BandError::Empty)?;
        if first.from != 0.0 {
            return Err(BandError::FirstNotZero(first.from));
        }
        for (i, pair) in bands.windows(2).enumerate() {
            let rises = pair[0].from < pair[1].from && pair[1].from <= 100.0;
            if !rises || pair[0].friction >= pair[1].friction {
                return Err(BandError::Order(i + 1));
            }
        }
        Ok(Self(bands))
    }
}

impl From<Bands> for Vec<Band> {
    fn from(bands: Bands) -> Self {
        bands.0
    }
}

impl Bands {
    /// The band `score` falls in (0-based) and its friction.
    pub fn classify(&self, score: f64) -> (usize, Friction) {
        let i = self.0.iter().rposition(|b| score >= b.from).unwrap_or(0);
        (i, self.0[i].friction)
    }

    pub fn bands(&self) -> &[Band] {
        &self.0
    }

    /// The score range `[from, to)` of band `i` (`to` is 100 for the last; a score of 100 falls in it).
    pub fn range(&self, i: usize) -> (f64, f64) {
        let from = self.0[i].from;
        let to = self.0.get(i + 1).map_or(100.0, |b| b.from);
        (from, to)
    }

    /// A single block threshold: allow below `threshold`, decline from it.
    pub fn block_at(threshold: f64) -> Self {
        let mut bands = vec![Band {
            from: 0.0,
            friction: Friction::Allow,
        }];
        if threshold > 0.0 && threshold <= 100.0 {
            bands.push(Band {
                from: threshold,
                friction: Friction::Decline,
            });
        } else if threshold <= 0.0 {
            bands[0].friction = Friction::Decline;
        }
        Self(bands)
    }
}

/// One labelled, scored order: what fitting and evaluating bands read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    /// The risk score, 0–100.
    pub score: f64,
    pub order: Order,
    pub fraud: bool,
}

/// The scores bands may start at: a grid of 0.01 points.
const GRID: f64 = 100.0;

fn bucket(score: f64) -> usize {
    (score.clamp(0.0, 100.0) * GRID).floor() as usize
}

fn bucket_start(b: usize) -> f64 {
    b as f64 / GRID
}

/// The total cost of each friction on the orders of each 0.01-point score bucket, in bucket order.
fn bucket_costs(costs: &FrictionCosts, rows: &[Labelled]) -> Vec<(usize, [f64; 4])> {
    let mut by_bucket: std::collections::BTreeMap<usize, [f64; 4]> = Default::default();
    for r in rows {
        let entry = by_bucket.entry(bucket(r.score)).or_insert([0.0; 4]);
        for f in Friction::ALL {
            entry[f.index()] += costs.cost(f, r.order, r.fraud);
        }
    }
    by_bucket.into_iter().collect()
}

/// The bands among `allowed` (a subset of frictions, in any order; `allow` is always possible) that
/// minimise the total cost on `rows`, with bands starting on the 0.01-point grid. Exact: a dynamic
/// programme over the score buckets in which the friction never gets milder as the score rises. Ties go
/// to the milder friction. With no rows, everything is allowed.
pub fn fit_bands(costs: &FrictionCosts, rows: &[Labelled], allowed: &[Friction]) -> Bands {
    let buckets = bucket_costs(costs, rows);
    let usable = |f: Friction| f == Friction::Allow || allowed.contains(&f);
    // best[k]: the least cost of the buckets so far with the last one at friction k; from[i][k]: the
    // friction of bucket i − 1 on that path.
    let mut best = [0.0f64; 4];
    let mut from = Vec::with_capacity(buckets.len());
    for (i, (_, cost)) in buckets.iter().enumerate() {
        let mut next = [f64::INFINITY; 4];
        let mut back = [0usize; 4];
        for k in 0..4 {
            if !usable(Friction::ALL[k]) {
                continue;
            }
            let (prev, value) = if i == 0 {
                (0, 0.0)
            } else {
                (0..=k)
                    .map(|j| (j, best[j]))
                    .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
            };
            next[k] = value + cost[k];
            back[k] = prev;
        }
        best = next;
        from.push(back);
    }
    if buckets.is_empty() {
        return Bands::block_at(101.0);
    }
    let mut k = 0;
    for j in 1..4 {
        if best[j] < best[k] {
            k = j;
        }
    }
    // Walk back: the friction of each bucket, then the first bucket of each friction.
    let mut assigned = vec![0usize; buckets.len()];
    for i in (0..buckets.len()).rev() {
        assigned[i] = k;
        k = from[i][k];
    }
    let mut bands: Vec<Band> = Vec::new();
    for (i, &k) in assigned.iter().enumerate() {
        let friction = Friction::ALL[k];
        if bands.last().map(|b| b.friction) != Some(friction) {
            // Between the last bucket of the milder friction and this one, the grid points all cost the
            // same on these rows: start the band halfway, so unseen scores go to the nearer side.
            let start = if i == 0 {
                0.0
            } else {
                bucket_start((buckets[i - 1].0 + 1 + buckets[i].0) / 2)
            };
            bands.push(Band {
                from: start,
                friction,
            });
        }
    }
    Bands::try_from(bands).unwrap_or_else(|_| Bands::block_at(101.0))
}

/// What a policy costs on labelled orders, and what it does to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyCost {
    pub orders: u64,
    pub frauds: u64,
    /// Total cost, minor units.
    pub cost_minor: f64,
    /// Orders given each friction: allow, step-up, review, decline.
    pub by_friction: [u64; 4],
    /// Genuine orders declined outright, as a share of genuine orders.
    pub false_decline_rate: f64,
    /// Frauds allowed without friction, as a share of frauds.
    pub fraud_allowed_rate: f64,
}

/// The cost of `bands` on `rows`.
pub fn evaluate(costs: &FrictionCosts, bands: &Bands, rows: &[Labelled]) -> PolicyCost {
    let mut out = PolicyCost::default();
    let (mut genuine_declined, mut fraud_allowed) = (0u64, 0u64);
    for r in rows {
        let (_, friction) = bands.classify(r.score);
        out.orders += 1;
        out.frauds += u64::from(r.fraud);
        out.cost_minor += costs.cost(friction, r.order, r.fraud);
        out.by_friction[friction.index()] += 1;
        genuine_declined += u64::from(!r.fraud && friction == Friction::Decline);
        fraud_allowed += u64::from(r.fraud && friction == Friction::Allow);
    }
    let genuine = out.orders - out.frauds;
    out.false_decline_rate = genuine_declined as f64 / genuine.max(1) as f64;
    out.fraud_allowed_rate = fraud_allowed as f64 / out.frauds.max(1) as f64;
    out
}

/// The cost of a single block threshold at each grid point where it can change (one per observed
/// bucket, plus "never"): the cost curve of the simplest policy. Sorted by threshold.
pub fn block_curve(costs: &FrictionCosts, rows: &[Labelled]) -> Vec<(f64, f64)> {
    let buckets = bucket_costs(costs, rows);
    let total_decline: f64 = buckets.iter().map(|b| b.1[Friction::Decline.index()]).sum();
    let mut curve = Vec::with_capacity(buckets.len() + 1);
    // Threshold at bucket i: buckets below allowed, from it declined.
    let (mut allowed, mut declined) = (0.0, total_decline);
    for (b, cost) in &buckets {
        curve.push((bucket_start(*b), allowed + declined));
        allowed += cost[Friction::Allow.index()];
        declined -= cost[Friction::Decline.index()];
    }
    curve.push((101.0, allowed));
    curve
}

/// The best single block threshold on `rows` and its cost.
pub fn best_block(costs: &FrictionCosts, rows: &[Labelled]) -> (f64, f64) {
    block_curve(costs, rows)
        .into_iter()
        .fold((101.0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
}
