//! The experiment report: the documented, versioned JSON contract (`docs/experiments.md` describes every
//! field). A change to a field's meaning or a removal needs a new [`REPORT_VERSION`]; additions are
//! backwards compatible. [`super::analysis`] fills it in; [`super::html`] renders it for people.

use super::analysis::Settings;
use super::tally::{MetricKind, Role};
use super::Statistic;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const REPORT_FORMAT: &str = "checkout-ai.experiment-report";
pub const REPORT_VERSION: u32 = 1;
/// A rejected input row (or item), for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadRow {
    /// 1-based line (CSV) or item ordinal.
    pub line: u64,
    pub reason: String,
}

/// How the input was read and what was left out, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// A CSV file name or `dynamodb:<table>/experiment#<id>`.
    pub source: String,
    /// Data rows (CSV) or items read.
    pub rows: u64,
    /// Rows that could not be used, by reason.
    pub bad_rows: BTreeMap<String, u64>,
    /// The first few bad rows.
    pub bad_row_examples: Vec<BadRow>,
    /// Rows after a unit's first, combined into that unit (see docs/experiments.md for how).
    pub repeated_rows: u64,
    /// Distinct units found.
    pub units: u64,
    /// Units left out of the analysis, by reason (`multi_variant`, `exposed_after_window`, ...).
    pub excluded_units: BTreeMap<String, u64>,
    /// Units kept in the analysis but worth knowing about, by reason (e.g. `orders_window_incomplete`).
    #[serde(default)]
    pub flagged_units: BTreeMap<String, u64>,
}

pub const BAD_ROW_EXAMPLES: usize = 10;

impl DataSummary {
    pub fn bad_row(&mut self, line: u64, reason: &str) {
        *self.bad_rows.entry(reason.to_string()).or_default() += 1;
        if self.bad_row_examples.len() < BAD_ROW_EXAMPLES {
            self.bad_row_examples.push(BadRow {
                line,
                reason: reason.to_string(),
            });
        }
    }

    pub fn exclude(&mut self, reason: &str) {
        *self.excluded_units.entry(reason.to_string()).or_default() += 1;
    }

    pub fn bad_row_count(&self) -> u64 {
        self.bad_rows.values().sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub version: u32,
    pub experiment: ExperimentSection,
    /// The evaluation window (scheduled reports); `None` for a CSV.
    pub window: Option<Window>,
    pub generated_at: DateTime<Utc>,
    pub settings: Settings,
    pub data: DataSummary,
    pub arms: Vec<ArmSection>,
    pub srm: SrmSection,
    pub health: Vec<Check>,
    pub metrics: Vec<MetricResult>,
    pub recommendation: Recommendation,
    /// Lift by cohort, from the dimensions recorded at first exposure ([`super::breakdown`]); scheduled
    /// reports read from the experiment units only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohorts: Option<super::breakdown::Breakdown>,
    /// The daily effect series, the day-of-week breakdown, whole weeks and the novelty check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<super::breakdown::TimeEffects>,
    /// After the experiment stopped: whether the effect held, faded or reversed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_run: Option<super::breakdown::LongRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSection {
    pub id: String,
    pub control: String,
    pub variants: Vec<String>,
    pub weights: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Units first exposed before this instant are analysed.
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArmSection {
    pub variant: String,
    pub weight: f64,
    pub units: u64,
    /// Units expected from the weights and the total.
    pub expected_units: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SrmSection {
    pub p_value: f64,
    pub alarm: bool,
    pub threshold: f64,
    /// Units every arm needs before the check can alarm.
    pub min_units_per_arm: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `srm`, `min_sample`, `multi_variant_units`, `bad_rows`, `errors`.
    pub name: &'static str,
    pub status: Status,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricResult {
    pub name: String,
    pub kind: MetricKind,
    pub role: Role,
    pub inverse: bool,
    pub covariate: Option<String>,
    pub source: String,
    pub arms: Vec<ArmMetric>,
    /// Every non-control arm against control.
    pub comparisons: Vec<Comparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArmMetric {
    pub variant: String,
    /// Units in this metric (a unit can be left out of one metric, e.g. a revenue in another currency).
    pub n: u64,
    /// The unadjusted mean (the ratio for a ratio metric).
    pub mean: f64,
    pub variance: f64,
    /// The sufficient statistic the tests used (reproducible with gbstats).
    pub statistic: Statistic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Better,
    Worse,
    Inconclusive,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub variant: String,
    /// Relative (`(b − a) / a`) or absolute effect, as [`Settings::difference`].
    pub effect: f64,
    /// The (1 − alpha) confidence interval, or confidence sequence when sequential. Not widened for the
    /// correction.
    pub ci: [f64; 2],
    pub p_value: f64,
    /// After the multiple-comparison correction across every arm and metric.
    pub adjusted_p_value: f64,
    /// `adjusted_p_value < alpha` and no error.
    pub significant: bool,
    pub direction: Direction,
    pub effect_stddev: f64,
    /// The CUPED coefficient pooled over both arms (0 without a covariate, or when it could not be
    /// estimated and the test fell back to the unadjusted metric).
    pub cuped_theta: f64,
    /// gbstats' error for a degenerate comparison (e.g. `ZERO_NEGATIVE_VARIANCE`).
    pub error: Option<String>,
    pub bayesian: Option<BayesianComparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BayesianComparison {
    /// Probability the variant beats control (accounting for `inverse`).
    pub chance_to_win: f64,
    pub effect: f64,
    /// Credible interval.
    pub ci: [f64; 2],
    /// Expected loss of choosing control.
    pub risk_control: f64,
    /// Expected loss of choosing the variant.
    pub risk_variant: f64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Ship,
    KeepRunning,
    Stop,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub action: Action,
    /// The arm to ship.
    pub variant: Option<String>,
    /// One plain sentence.
    pub summary: String,
    /// Why, one reason per line.
    pub reasons: Vec<String>,
}
