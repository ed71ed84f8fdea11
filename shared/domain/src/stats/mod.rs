//! Experiment statistics on sufficient statistics per variation, computed as GrowthBook's stats engine
//! (gbstats 0.8.0) computes them, so that a report's numbers can be checked against it. Pure: no I/O.
//!
//! - [`Statistic`]: proportion, mean, ratio (delta method) and regression adjustment (CUPED);
//! - [`frequentist`]: the two-sided and sequential tests; [`bayesian`]: chance to win and risk;
//! - [`srm`]: sample-ratio mismatch; [`correction`]: Holm-Bonferroni and Benjamini-Hochberg;
//! - [`tally`]: the design and the streaming per-arm tally; [`analysis`]: tally → report, with the guards
//!   and a recommendation; [`report`]: the versioned report contract; [`html`]: the report as a
//!   self-contained page.

pub mod analysis;
pub mod bayesian;
pub mod breakdown;
pub mod correction;
pub mod frequentist;
pub mod html;
pub mod report;
pub mod srm;
pub mod tally;

use serde::{Deserialize, Serialize};

/// A variation's sufficient statistics for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Statistic {
    /// Units converted (`sum`) out of `n`.
    Proportion { n: u64, sum: f64 },
    /// A per-unit value: its sum and sum of squares.
    Mean { n: u64, sum: f64, sum_squares: f64 },
    /// Sum of a numerator over sum of a denominator (e.g. revenue per order), by the delta method.
    Ratio {
        n: u64,
        numerator: Box<Statistic>,
        denominator: Box<Statistic>,
        sum_of_products: f64,
    },
    /// A post-exposure metric adjusted by a pre-exposure covariate (CUPED); `theta` is set by
    /// [`prepare`] from both arms.
    RegressionAdjusted {
        n: u64,
        post: Box<Statistic>,
        pre: Box<Statistic>,
        sum_of_products: f64,
        #[serde(default)]
        theta: f64,
    },
}

impl Statistic {
    pub fn n(&self) -> u64 {
        match self {
            Statistic::Proportion { n, .. }
            | Statistic::Mean { n, .. }
            | Statistic::Ratio { n, .. }
            | Statistic::RegressionAdjusted { n, .. } => *n,
        }
    }

    fn nf(&self) -> f64 {
        self.n() as f64
    }

    /// The sum of a proportion or a mean (ratios and adjusted statistics have none).
    fn sum(&self) -> f64 {
        match self {
            Statistic::Proportion { sum, .. } | Statistic::Mean { sum, .. } => *sum,
            _ => f64::NAN,
        }
    }

    pub fn mean(&self) -> f64 {
        match self {
            Statistic::Proportion { n, sum } | Statistic::Mean { n, sum, .. } => {
                if *n == 0 {
                    0.0
                } else {
                    sum / *n as f64
                }
            }
            Statistic::Ratio {
                numerator,
                denominator,
                ..
            } => {
                if denominator.sum() == 0.0 {
                    0.0
                } else {
                    numerator.sum() / denominator.sum()
                }
            }
            Statistic::RegressionAdjusted {
                post, pre, theta, ..
            } => post.mean() - theta * pre.mean(),
        }
    }

    /// The mean without regression adjustment (the baseline relative effects divide by).
    pub fn unadjusted_mean(&self) -> f64 {
        match self {
            Statistic::RegressionAdjusted { post, .. } => post.mean(),
            _ => self.mean(),
        }
    }

    pub fn variance(&self) -> f64 {
        match self {
            Statistic::Proportion { .. } => {
                let m = self.mean();
                m * (1.0 - m)
            }
            Statistic::Mean {
                n,
                sum,
                sum_squares,
            } => {
                if *n <= 1 {
                    return 0.0;
                }
                let n = *n as f64;
                (sum_squares - sum.powi(2) / n) / (n - 1.0)
            }
            Statistic::Ratio {
                numerator: m,
                denominator: d,
                ..
            } => {
                let dm = d.mean();
                if dm == 0.0 || self.n() <= 1 {
                    return 0.0;
                }
                m.variance() / dm.powi(2) - 2.0 * self.covariance() * m.mean() / dm.powi(3)
                    + m.mean().powi(2) * d.variance() / dm.powi(4)
            }
            Statistic::RegressionAdjusted {
                post, pre, theta, ..
            } => {
                if self.n() <= 1 {
                    return 0.0;
                }
                post.variance() + theta.powi(2) * pre.variance() - 2.0 * theta * self.covariance()
            }
        }
    }

    /// Covariance of the two parts of a ratio or an adjusted statistic.
    fn covariance(&self) -> f64 {
        let (a, b, products) = match self {
            Statistic::Ratio {
                numerator,
                denominator,
                sum_of_products,
                ..
            } => (numerator, denominator, sum_of_products),
            Statistic::RegressionAdjusted {
                post,
                pre,
                sum_of_products,
                ..
            } => (post, pre, sum_of_products),
            _ => return 0.0,
        };
        if self.n() <= 1 {
            return 0.0;
        }
        (products - a.sum() * b.sum() / self.nf()) / (self.nf() - 1.0)
    }

    pub fn has_zero_variance(&self) -> bool {
        self.variance() <= 0.0
    }
}

/// The effect of `b` against the control `a` and its variance, relative (`(b − a) / a`, with the delta
/// method's variance) or absolute: gbstats' `frequentist_diff` and `frequentist_variance`, which its
/// Bayesian test uses as its data likelihood too.
pub fn effect_and_variance(
    a: &Statistic,
    b: &Statistic,
    difference: frequentist::Difference,
) -> (f64, f64) {
    let (va, vb) = (a.variance(), b.variance());
    let (na, nb) = (a.n() as f64, b.n() as f64);
    match difference {
        frequentist::Difference::Relative => {
            let base = a.unadjusted_mean();
            let mb = b.unadjusted_mean();
            (
                (b.mean() - a.mean()) / base,
                vb / (base.powi(2) * nb) + va * mb.powi(2) / (base.powi(4) * na),
            )
        }
        frequentist::Difference::Absolute => (b.mean() - a.mean(), vb / nb + va / na),
    }
}

/// Both arms' statistics as the tests use them: regression-adjusted statistics get the pooled `theta`,
/// or fall back to their unadjusted post statistic when it is 0 (as gbstats does).
pub fn prepare(a: &Statistic, b: &Statistic) -> (Statistic, Statistic) {
    if let (
        Statistic::RegressionAdjusted {
            n: na,
            post: pa,
            pre: qa,
            sum_of_products: sa,
            ..
        },
        Statistic::RegressionAdjusted {
            n: nb,
            post: pb,
            pre: qb,
            sum_of_products: sb,
            ..
        },
    ) = (a, b)
    {
        let n = na + nb;
        let joint = |x: &Statistic, y: &Statistic| match (x, y) {
            (Statistic::Proportion { sum: s1, .. }, Statistic::Proportion { sum: s2, .. }) => {
                Statistic::Proportion { n, sum: s1 + s2 }
            }
            _ => Statistic::Mean {
                n,
                sum: x.sum() + y.sum(),
                sum_squares: sum_squares(x) + sum_squares(y),
            },
        };
        let post = joint(pa, pb);
        let pre = joint(qa, qb);
        let theta = if pre.variance() == 0.0 || post.variance() == 0.0 {
            0.0
        } else {
            let pooled = Statistic::RegressionAdjusted {
                n,
                post: Box::new(post),
                pre: Box::new(pre.clone()),
                sum_of_products: sa + sb,
                theta: 0.0,
            };
            pooled.covariance() / pre.variance()
        };
        if theta == 0.0 {
            return ((**pa).clone(), (**pb).clone());
        }
        let with = |s: &Statistic| match s {
            Statistic::RegressionAdjusted {
                n,
                post,
                pre,
                sum_of_products,
                ..
            } => Statistic::RegressionAdjusted {
                n: *n,
                post: post.clone(),
                pre: pre.clone(),
                sum_of_products: *sum_of_products,
                theta,
            },
            other => other.clone(),
        };
        return (with(a), with(b));
    }
    (a.clone(), b.clone())
}

/// A proportion's sum of squares is its sum (every value is 0 or 1).
fn sum_squares(s: &Statistic) -> f64 {
    match s {
        Statistic::Proportion { sum, .. } => *sum,
        Statistic::Mean { sum_squares, .. } => *sum_squares,
        _ => f64::NAN,
    }
}
