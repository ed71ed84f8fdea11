//! Frequentist tests, as gbstats 0.8.0 computes them: Welch's two-sided t-test and the sequential
//! two-sided test (asymptotic confidence sequences, Waudby-Smith et al. 2023).

use super::{effect_and_variance, prepare, Statistic};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// gbstats' error messages, verbatim.
pub const BASELINE_VARIATION_ZERO: &str = "ZERO_NEGATIVE_BASELINE_VARIATION";
pub const ZERO_NEGATIVE_VARIANCE: &str = "ZERO_NEGATIVE_VARIANCE";

/// Relative (`(b − a) / a`) or absolute (`b − a`) effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    Relative,
    Absolute,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Config {
    pub alpha: f64,
    pub difference: Difference,
    pub test_value: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            difference: Difference::Relative,
            test_value: 0.0,
        }
    }
}

/// The default sequential tuning parameter.
pub const SEQUENTIAL_TUNING: f64 = 5000.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    pub expected: f64,
    pub ci: [f64; 2],
    pub p_value: f64,
    /// The effect's normal approximation: mean and standard deviation.
    pub uplift_mean: f64,
    pub uplift_stddev: f64,
    pub error: Option<&'static str>,
}

impl TestResult {
    fn uninformative(error: &'static str) -> Self {
        Self {
            expected: 0.0,
            ci: [0.0, 0.0],
            p_value: 1.0,
            uplift_mean: 0.0,
            uplift_stddev: 0.0,
            error: Some(error),
        }
    }
}

/// What both tests share: the prepared statistics, the effect and its variance.
struct Effect {
    a: Statistic,
    b: Statistic,
    estimate: f64,
    variance: f64,
}

fn effect(a: &Statistic, b: &Statistic, config: &Config) -> Result<Effect, TestResult> {
    let (a, b) = prepare(a, b);
    if a.mean() == 0.0 || a.unadjusted_mean() == 0.0 {
        return Err(TestResult::uninformative(BASELINE_VARIATION_ZERO));
    }
    if a.has_zero_variance() || b.has_zero_variance() {
        return Err(TestResult::uninformative(ZERO_NEGATIVE_VARIANCE));
    }
    let (estimate, variance) = effect_and_variance(&a, &b, config.difference);
    Ok(Effect {
        a,
        b,
        estimate,
        variance,
    })
}

impl Effect {
    /// Welch–Satterthwaite degrees of freedom.
    fn dof(&self) -> f64 {
        let (va, vb) = (self.a.variance(), self.b.variance());
        let (na, nb) = (self.a.n() as f64, self.b.n() as f64);
        (vb / nb + va / na).powi(2)
            / (vb.powi(2) / (nb.powi(2) * (nb - 1.0)) + va.powi(2) / (na.powi(2) * (na - 1.0)))
    }

    fn result(&self, ci: [f64; 2], p_value: f64) -> TestResult {
        TestResult {
            expected: self.estimate,
            ci,
            p_value,
            uplift_mean: self.estimate,
            uplift_stddev: self.variance.sqrt(),
            error: None,
        }
    }
}

/// Past this many degrees of freedom the t distribution is the normal one to well under 1e-8 (its
/// quantiles differ by about z³ / 4ν), and statrs' t quantile search no longer converges quickly.
const NORMAL_DOF: f64 = 1e7;

/// Student's t with the given degrees of freedom, or the normal distribution past [`NORMAL_DOF`].
enum T {
    Student(StudentsT),
    Normal(Normal),
}

impl T {
    fn new(dof: f64) -> Option<Self> {
        if dof.is_nan() || dof <= 0.0 {
            None
        } else if dof >= NORMAL_DOF {
            Normal::new(0.0, 1.0).ok().map(T::Normal)
        } else {
            StudentsT::new(0.0, 1.0, dof).ok().map(T::Student)
        }
    }

    fn cdf(&self, x: f64) -> f64 {
        match self {
            T::Student(t) => t.cdf(x),
            T::Normal(n) => n.cdf(x),
        }
    }

    fn quantile(&self, p: f64) -> f64 {
        match self {
            T::Student(t) => t_quantile(t, p),
            T::Normal(n) => n.inverse_cdf(p),
        }
    }
}

/// The `p`-quantile of `t`, refined by Newton's method on its CDF: statrs' own search stops at a
/// tolerance that leaves errors near 1e-4 at large degrees of freedom.
fn t_quantile(t: &StudentsT, p: f64) -> f64 {
    use statrs::distribution::Continuous;
    let mut x = t.inverse_cdf(p);
    for _ in 0..50 {
        let step = (t.cdf(x) - p) / t.pdf(x);
        if !step.is_finite() {
            break;
        }
        x -= step;
        if step.abs() <= 1e-15 * x.abs().max(1.0) {
            break;
        }
    }
    x
}

/// Welch's two-sided t-test of `b` against the control `a`.
pub fn two_sided(a: &Statistic, b: &Statistic, config: &Config) -> TestResult {
    let e = match effect(a, b, config) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let dof = e.dof();
    let sd = e.variance.sqrt();
    let z = (e.estimate - config.test_value) / sd;
    let Some(t) = T::new(dof) else {
        return TestResult::uninformative(ZERO_NEGATIVE_VARIANCE);
    };
    let p_value = 2.0 * (1.0 - t.cdf(z.abs()));
    let width = t.quantile(1.0 - config.alpha / 2.0) * sd;
    e.result([e.estimate - width, e.estimate + width], p_value)
}

/// The sequential two-sided test: a confidence sequence valid under continuous monitoring, with tuning
/// parameter `tuning` ([`SEQUENTIAL_TUNING`] by default).
pub fn sequential(a: &Statistic, b: &Statistic, config: &Config, tuning: f64) -> TestResult {
    let e = match effect(a, b, config) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let alpha = config.alpha;
    let n = (e.a.n() + e.b.n()) as f64;
    let rho = ((-2.0 * alpha.ln() + (-2.0 * alpha.ln() + 1.0).ln()) / tuning).sqrt();
    let s2 = e.variance * n;
    let nr2p1 = n * rho.powi(2) + 1.0;
    let width =
        s2.sqrt() * ((2.0 * nr2p1) * (nr2p1.sqrt() / alpha).ln() / (n * rho).powi(2)).sqrt();
    let st2 = (e.estimate - config.test_value).powi(2) * n / e.variance;
    let evalue = (rho.powi(2) * st2 / (2.0 * nr2p1)).exp() / nr2p1.sqrt();
    let p_value = (1.0 / evalue).min(1.0);
    e.result([e.estimate - width, e.estimate + width], p_value)
}
