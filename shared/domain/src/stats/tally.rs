//! What an analysis reads: the design (variants, weights, metrics) and the streaming tally of units per arm
//! and moments per metric and arm. Memory is bounded by arms × metrics, never by units.

use super::Statistic;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Share of units with the event (values 0 or 1).
    Proportion,
    /// Mean of a per-unit value.
    Mean,
    /// Sum of a numerator over sum of a denominator (delta method), e.g. revenue per order.
    Ratio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A metric the experiment is meant to move: a significant win can ship an arm.
    Goal,
    /// A metric that must not get worse: a significant loss blocks an arm.
    Guardrail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDef {
    pub name: String,
    pub kind: MetricKind,
    pub role: Role,
    /// Lower is better (e.g. a decline rate).
    #[serde(default)]
    pub inverse: bool,
    /// The pre-exposure covariate of a regression adjustment (CUPED), by name; proportion and mean
    /// metrics only.
    #[serde(default)]
    pub covariate: Option<String>,
    /// What the metric's columns or fields are, for the reader.
    pub source: String,
}

/// Sums over units of a value `x` and a second value `y` (a ratio's denominator or a covariate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_squares: f64,
    pub sum_y: f64,
    pub sum_y_squares: f64,
    pub sum_products: f64,
}

impl Moments {
    pub fn add(&mut self, x: f64, y: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_squares += x * x;
        self.sum_y += y;
        self.sum_y_squares += y * y;
        self.sum_products += x * y;
    }

    /// Adds another cell's sums (the same arm and metric, tallied elsewhere).
    pub fn merge(&mut self, other: &Moments) {
        self.n += other.n;
        self.sum += other.sum;
        self.sum_squares += other.sum_squares;
        self.sum_y += other.sum_y;
        self.sum_y_squares += other.sum_y_squares;
        self.sum_products += other.sum_products;
    }

    /// The metric's sufficient statistic, as gbstats models it.
    pub fn statistic(&self, metric: &MetricDef) -> Statistic {
        let n = self.n;
        let post = match metric.kind {
            MetricKind::Proportion => Statistic::Proportion { n, sum: self.sum },
            MetricKind::Mean | MetricKind::Ratio => Statistic::Mean {
                n,
                sum: self.sum,
                sum_squares: self.sum_squares,
            },
        };
        let second = Statistic::Mean {
            n,
            sum: self.sum_y,
            sum_squares: self.sum_y_squares,
        };
        match (metric.kind, &metric.covariate) {
            (MetricKind::Ratio, _) => Statistic::Ratio {
                n,
                numerator: Box::new(post),
                denominator: Box::new(second),
                sum_of_products: self.sum_products,
            },
            (_, Some(_)) => Statistic::RegressionAdjusted {
                n,
                post: Box::new(post),
                pre: Box::new(second),
                sum_of_products: self.sum_products,
                theta: 0.0,
            },
            (_, None) => post,
        }
    }
}

/// What is being analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Design {
    pub experiment_id: String,
    /// Variant keys; the first is the control.
    pub variants: Vec<String>,
    /// Configured traffic weights, one per variant (equal when not configured).
    pub weights: Vec<f64>,
    pub metrics: Vec<MetricDef>,
}

/// Streaming accumulation: units per arm and moments per metric and arm.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub design: Design,
    pub units: Vec<u64>,
    /// `[metric][arm]`.
    pub cells: Vec<Vec<Moments>>,
}

impl Tally {
    pub fn new(design: Design) -> Self {
        let arms = design.variants.len();
        let metrics = design.metrics.len();
        Self {
            units: vec![0; arms],
            cells: vec![vec![Moments::default(); arms]; metrics],
            design,
        }
    }

    /// The arm of a variant key.
    pub fn arm(&self, variant: &str) -> Option<usize> {
        self.design.variants.iter().position(|v| v == variant)
    }

    /// Counts a unit in `arm` (for SRM and the sample guard).
    pub fn unit(&mut self, arm: usize) {
        self.units[arm] += 1;
    }

    /// Adds another tally of the same design (a slice tallied elsewhere).
    pub fn merge(&mut self, other: &Tally) {
        for (u, o) in self.units.iter_mut().zip(&other.units) {
            *u += o;
        }
        for (cells, others) in self.cells.iter_mut().zip(&other.cells) {
            for (c, o) in cells.iter_mut().zip(others) {
                c.merge(o);
            }
        }
    }

    /// Adds a unit's value of `metric` (and its denominator or covariate, or 0).
    pub fn observe(&mut self, metric: usize, arm: usize, x: f64, y: f64) {
        self.cells[metric][arm].add(x, y);
    }
}
