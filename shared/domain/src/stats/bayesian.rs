//! The Bayesian effect test, as gbstats 0.8.0's `EffectBayesianABTest` computes it: a normal
//! approximation of the effect, an optional Gaussian prior on it, chance to win, a credible interval and
//! the risk (expected loss) of choosing either arm.

use super::frequentist::{Difference, BASELINE_VARIATION_ZERO, ZERO_NEGATIVE_VARIANCE};
use super::{effect_and_variance, prepare, Statistic};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Continuous, ContinuousCDF, Normal};

pub const NO_UNITS_IN_VARIATION: &str = "NO_UNITS_IN_VARIATION";

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    pub mean: f64,
    pub variance: f64,
    /// An improper (flat) prior leaves the data alone.
    pub proper: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub alpha: f64,
    pub difference: Difference,
    /// A metric where lower is better.
    pub inverse: bool,
    /// Whether the prior is on the relative or the absolute effect.
    pub prior_on: Difference,
    pub prior: Prior,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            difference: Difference::Relative,
            inverse: false,
            prior_on: Difference::Relative,
            prior: Prior {
                mean: 0.0,
                variance: 1.0,
                proper: false,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BayesianResult {
    pub chance_to_win: f64,
    pub expected: f64,
    pub ci: [f64; 2],
    pub uplift_mean: f64,
    pub uplift_stddev: f64,
    /// Expected loss of choosing control, then of choosing the variation.
    pub risk: [f64; 2],
    pub error: Option<&'static str>,
}

impl BayesianResult {
    fn uninformative(error: &'static str) -> Self {
        Self {
            chance_to_win: 0.5,
            expected: 0.0,
            ci: [0.0, 0.0],
            uplift_mean: 0.0,
            uplift_stddev: 0.0,
            risk: [0.0, 0.0],
            error: Some(error),
        }
    }
}

pub fn effect_test(a: &Statistic, b: &Statistic, config: &Config) -> BayesianResult {
    let (a, b) = prepare(a, b);
    let relative = config.difference == Difference::Relative;
    let base = a.unadjusted_mean();
    let prior = match (config.difference, config.prior_on) {
        (Difference::Relative, Difference::Absolute) => Prior {
            mean: config.prior.mean / base.abs(),
            variance: config.prior.variance / base.powi(2),
            ..config.prior
        },
        (Difference::Absolute, Difference::Relative) => Prior {
            mean: config.prior.mean * base.abs(),
            variance: config.prior.variance * base.powi(2),
            ..config.prior
        },
        _ => config.prior,
    };
    if relative && (a.mean() == 0.0 || base == 0.0) {
        return BayesianResult::uninformative(BASELINE_VARIATION_ZERO);
    }
    if a.n() == 0 || b.n() == 0 {
        return BayesianResult::uninformative(NO_UNITS_IN_VARIATION);
    }
    if a.has_zero_variance() || b.has_zero_variance() {
        return BayesianResult::uninformative(ZERO_NEGATIVE_VARIANCE);
    }
    let (data_mean, data_variance) = effect_and_variance(&a, &b, config.difference);
    let proper = f64::from(u8::from(prior.proper));
    let precision = 1.0 / data_variance + proper / prior.variance;
    let mean = if prior.proper {
        (data_mean / data_variance + prior.mean / prior.variance) / precision
    } else {
        data_mean
    };
    let sd = (1.0 / precision).sqrt();
    let Ok(posterior) = Normal::new(mean, sd) else {
        return BayesianResult::uninformative(ZERO_NEGATIVE_VARIANCE);
    };
    let win = posterior.sf(0.0);
    let chance_to_win = if config.inverse { 1.0 - win } else { win };
    let ci = [
        posterior.inverse_cdf(config.alpha / 2.0),
        posterior.inverse_cdf(1.0 - config.alpha / 2.0),
    ];
    // Expected loss, in closed form: E[max(X, 0)] for choosing control, E[max(−X, 0)] for the variation.
    let std = Normal::new(0.0, 1.0).expect("standard normal");
    let z = mean / sd;
    let risk_control = mean * std.cdf(z) + sd * std.pdf(z);
    let risk_variation = sd * std.pdf(z) - mean * std.cdf(-z);
    let risk = if config.inverse {
        [risk_variation, risk_control]
    } else {
        [risk_control, risk_variation]
    };
    BayesianResult {
        chance_to_win,
        expected: mean,
        ci,
        uplift_mean: mean,
        uplift_stddev: sd,
        risk,
        error: None,
    }
}
