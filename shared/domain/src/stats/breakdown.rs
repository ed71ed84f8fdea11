//! Lift by cohort, time effects and the long-run tail: the same tests as the overall report
//! ([`super::analysis::compare`]), run on slices of the units.
//!
//! **Cohorts.** A dimension's cohorts (device, new or returning, country, placement) come from the unit's
//! first exposure, so they cannot change after assignment. A cohort with fewer than the minimum sample in
//! any arm is reported as too small, without numbers. Every comparison of every cohort of every dimension
//! (× metric × arm) is one family for the multiple-comparison correction.
//!
//! **Heterogeneity.** For each dimension, metric and arm, Cochran's Q tests whether the cohorts' effects
//! differ more than their standard errors allow: `Q = Σ wᵢ (δᵢ − δ̄)²`, `wᵢ = 1/σᵢ²`, `δ̄` the
//! inverse-variance mean, `Q ~ χ²(k − 1)` under no heterogeneity. The Q tests are their own family,
//! corrected the same way. A cohort is flagged when its dimension's Q is significant after the
//! correction, its effect has the opposite sign to the overall effect, and its interaction with the
//! rest of the dimension (its effect against the inverse-variance mean of the other cohorts, a z-test)
//! is significant at alpha. Q is a fixed-horizon test: it reads the cohorts as they are now.
//!
//! **Time.** The same slices by day of first exposure (the daily series) and by weekday, a warning while
//! the experiment has not run a whole number of weeks, and a novelty check: the effect on units first
//! exposed in the first week against those exposed later (Q with two cohorts: a two-sided z-test).
//!
//! **Long run.** After an experiment stops, its units are still read for a tail (30 days by default);
//! each unit's orders are split at the stop. The effect on what happened after the stop says whether the
//! effect held (same sign, significant), reversed (opposite sign, significant: purchases were pulled
//! forward) or faded.

use super::analysis::{compare, correct, correct_metrics, Settings};
use super::correction::adjust;
use super::report::{Comparison, MetricResult};
use super::tally::{Design, Tally};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};
use std::collections::BTreeMap;

/// Tallies per dimension and value, of one design.
#[derive(Debug, Clone)]
pub struct Slices {
    design: Design,
    pub tallies: BTreeMap<String, BTreeMap<String, Tally>>,
}

impl Slices {
    pub fn new(design: Design) -> Self {
        Self {
            design,
            tallies: BTreeMap::new(),
        }
    }

    /// The tally of one cohort, created empty on first use.
    pub fn get(&mut self, dimension: &str, value: &str) -> &mut Tally {
        self.tallies
            .entry(dimension.to_string())
            .or_default()
            .entry(value.to_string())
            .or_insert_with(|| Tally::new(self.design.clone()))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// How the comparisons were corrected, in words.
    pub correction: String,
    /// Comparisons in the correction's family.
    pub comparisons: usize,
    pub min_units_per_arm: u64,
    pub dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dimension {
    pub name: String,
    pub cohorts: Vec<CohortResult>,
    /// One test per metric and arm, over the cohorts that are not too small.
    pub heterogeneity: Vec<Heterogeneity>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CohortResult {
    pub value: String,
    /// Units per arm.
    pub units: Vec<u64>,
    /// Below the minimum sample in some arm: no numbers are shown.
    pub too_small: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Heterogeneity {
    pub metric: String,
    pub variant: String,
    /// Cohorts in the test.
    pub cohorts: usize,
    pub q: f64,
    pub df: usize,
    pub p_value: f64,
    pub adjusted_p_value: f64,
    pub significant: bool,
    /// Cohorts whose effect has the opposite sign to the overall effect with a significant interaction.
    pub flagged: Vec<String>,
}

/// Cochran's Q over effects with their standard errors: `(Q, degrees of freedom, p-value)`, or `None`
/// with fewer than two usable effects (finite, with a positive standard error).
pub fn cochran_q(effects: &[(f64, f64)]) -> Option<(f64, usize, f64)> {
    let usable: Vec<(f64, f64)> = effects
        .iter()
        .copied()
        .filter(|(e, s)| e.is_finite() && s.is_finite() && *s > 0.0)
        .collect();
    if usable.len() < 2 {
        return None;
    }
    let (mean, _) = pooled(&usable)?;
    let q: f64 = usable
        .iter()
        .map(|(e, s)| (e - mean).powi(2) / (s * s))
        .sum();
    let df = usable.len() - 1;
    let p = ChiSquared::new(df as f64).map(|c| 1.0 - c.cdf(q)).ok()?;
    Some((q, df, p))
}

/// The inverse-variance weighted mean of effects and its standard error.
fn pooled(effects: &[(f64, f64)]) -> Option<(f64, f64)> {
    let w: f64 = effects.iter().map(|(_, s)| 1.0 / (s * s)).sum();
    if w <= 0.0 || !w.is_finite() {
        return None;
    }
    let mean = effects.iter().map(|(e, s)| e / (s * s)).sum::<f64>() / w;
    Some((mean, (1.0 / w).sqrt()))
}

/// The two-sided p-value of a cohort's effect against the pooled effect of the rest.
pub fn interaction_p(cohort: (f64, f64), rest: &[(f64, f64)]) -> Option<f64> {
    let (mean, se) = pooled(rest)?;
    let z = (cohort.0 - mean) / (cohort.1 * cohort.1 + se * se).sqrt();
    let normal = Normal::new(0.0, 1.0).ok()?;
    z.is_finite().then(|| 2.0 * (1.0 - normal.cdf(z.abs())))
}

fn usable(c: &Comparison) -> Option<(f64, f64)> {
    (c.error.is_none() && c.effect.is_finite() && c.effect_stddev > 0.0)
        .then_some((c.effect, c.effect_stddev))
}

/// Analyses the slices of `dimensions` (in that order; a dimension with no units is left out), with
/// every comparison in one correction family, and tests each dimension for heterogeneity against the
/// `overall` results.
pub fn breakdown(
    slices: &Slices,
    dimensions: &[&str],
    overall: &[MetricResult],
    settings: &Settings,
) -> Breakdown {
    let mut out: Vec<Dimension> = dimensions
        .iter()
        .filter_map(|&name| {
            let cohorts = slices.tallies.get(name)?;
            Some(Dimension {
                name: name.to_string(),
                cohorts: cohorts
                    .iter()
                    .map(|(value, tally)| {
                        let too_small =
                            tally.units.iter().any(|&u| u < settings.min_sample_per_arm);
                        CohortResult {
                            value: value.clone(),
                            units: tally.units.clone(),
                            too_small,
                            metrics: if too_small {
                                Vec::new()
                            } else {
                                compare(tally, settings)
                            },
                        }
                    })
                    .collect(),
                heterogeneity: Vec::new(),
            })
        })
        .collect();
    let family: Vec<(&mut Comparison, bool)> = out
        .iter_mut()
        .flat_map(|d| d.cohorts.iter_mut())
        .flat_map(|c| c.metrics.iter_mut())
        .flat_map(|m| {
            let inverse = m.inverse;
            m.comparisons.iter_mut().map(move |c| (c, inverse))
        })
        .collect();
    let comparisons = family.len();
    correct(family, settings);

    // Heterogeneity, per dimension × metric × arm.
    let mut tests: Vec<(usize, Heterogeneity)> = Vec::new();
    for (d, dim) in out.iter().enumerate() {
        for (m, metric) in overall.iter().enumerate() {
            for (a, all) in metric.comparisons.iter().enumerate() {
                let effects: Vec<(&str, (f64, f64))> = dim
                    .cohorts
                    .iter()
                    .filter_map(|c| {
                        let cmp = c.metrics.get(m)?.comparisons.get(a)?;
                        Some((c.value.as_str(), usable(cmp)?))
                    })
                    .collect();
                let values: Vec<(f64, f64)> = effects.iter().map(|(_, e)| *e).collect();
                let Some((q, df, p)) = cochran_q(&values) else {
                    continue;
                };
                let flagged = effects
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, (e, _)))| {
                        all.effect.is_finite() && e.signum() != all.effect.signum() && *e != 0.0
                    })
                    .filter(|(i, (_, e))| {
                        let rest: Vec<(f64, f64)> = values
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| j != i)
                            .map(|(_, v)| *v)
                            .collect();
                        interaction_p(*e, &rest).is_some_and(|p| p < settings.alpha)
                    })
                    .map(|(_, (v, _))| v.to_string())
                    .collect();
                tests.push((
                    d,
                    Heterogeneity {
                        metric: metric.name.clone(),
                        variant: all.variant.clone(),
                        cohorts: values.len(),
                        q,
                        df,
                        p_value: p,
                        adjusted_p_value: p,
                        significant: false,
                        flagged,
                    },
                ));
            }
        }
    }
    let adjusted = adjust(
        &tests.iter().map(|(_, t)| t.p_value).collect::<Vec<_>>(),
        settings.correction,
    );
    for ((d, mut t), adjusted) in tests.into_iter().zip(adjusted) {
        t.adjusted_p_value = adjusted;
        t.significant = adjusted < settings.alpha;
        if !t.significant {
            t.flagged.clear();
        }
        out[d].heterogeneity.push(t);
    }
    Breakdown {
        correction: format!(
            "{:?} across all {comparisons} cohort comparisons (every cohort of every dimension × metric × arm); \
             the heterogeneity tests are a second family, corrected the same way",
            settings.correction
        ),
        comparisons,
        min_units_per_arm: settings.min_sample_per_arm,
        dimensions: out,
    }
}

/// The report's time section.
#[derive(Debug, Clone, Serialize)]
pub struct TimeEffects {
    /// The experiment's start (configured, else its first exposure).
    pub start: DateTime<Utc>,
    pub days_covered: f64,
    /// Whether the window ends within a day after a whole number (at least one) of weeks.
    pub whole_weeks: bool,
    /// The warning, while not whole weeks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// By day of first exposure (UTC), then by weekday: in their own correction family.
    pub series: Breakdown,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub novelty: Option<Novelty>,
}

/// The first week's effect against the later weeks', for the first metric and each arm.
#[derive(Debug, Clone, Serialize)]
pub struct Novelty {
    pub metric: String,
    pub variant: String,
    pub first_week: Option<[f64; 3]>,
    pub later: Option<[f64; 3]>,
    /// The two-sided test of a difference between them (absent until both are readable).
    pub p_value: Option<f64>,
    pub summary: String,
}

pub const DAY: &str = "day";
pub const WEEKDAY: &str = "weekday";
pub const WEEK: &str = "week";
pub const FIRST_WEEK: &str = "first_week";
pub const LATER_WEEKS: &str = "later_weeks";

/// Whether `covered` is a whole number of weeks (at least one), to within a day.
pub fn whole_weeks(covered: Duration) -> bool {
    covered >= Duration::days(7)
        && Duration::seconds(covered.num_seconds() % Duration::days(7).num_seconds())
            < Duration::days(1)
}

/// The time section from the day, weekday and week slices.
pub fn time_effects(
    slices: &Slices,
    overall: &[MetricResult],
    start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    settings: &Settings,
) -> TimeEffects {
    let covered = window_end - start;
    let days = covered.num_seconds() as f64 / 86_400.0;
    let whole = whole_weeks(covered);
    let warning = (!whole).then(|| {
        format!(
            "The experiment has run {days:.1} days, not a whole number of weeks: weekdays are unevenly \
             represented, so a decision now may reflect the day-of-week mix. Read it at {} days.",
            ((days / 7.0).floor() as i64 + 1) * 7
        )
    });
    let series = breakdown(slices, &[DAY, WEEKDAY], overall, settings);
    let weeks = breakdown(slices, &[WEEK], overall, settings);
    let novelty = overall.first().and_then(|metric| {
        let all = metric.comparisons.first()?;
        let dim = weeks.dimensions.first();
        let effect = |value: &str| {
            dim?.cohorts
                .iter()
                .find(|c| c.value == value)?
                .metrics
                .first()?
                .comparisons
                .first()
                .filter(|c| c.error.is_none())
                .map(|c| [c.effect, c.ci[0], c.ci[1]])
        };
        let (first, later) = (effect(FIRST_WEEK), effect(LATER_WEEKS));
        let p = dim
            .and_then(|d| d.heterogeneity.iter().find(|h| h.metric == metric.name))
            .map(|h| h.p_value);
        let summary = match (first, later, p) {
            (_, None, _) | (None, _, _) => {
                "Not yet readable: it needs units first exposed in the first week and later, each \
                 above the minimum sample."
                    .to_string()
            }
            (Some(f), Some(l), Some(p)) if p < settings.alpha => format!(
                "The first week's effect ({:+.2}%) differs from the later weeks' ({:+.2}%), p = {p:.4}: \
                 a novelty (or learning) effect; trust the later weeks.",
                f[0] * 100.0,
                l[0] * 100.0
            ),
            (Some(f), Some(l), _) => format!(
                "No novelty effect detected: first week {:+.2}%, later weeks {:+.2}%.",
                f[0] * 100.0,
                l[0] * 100.0
            ),
        };
        Some(Novelty {
            metric: metric.name.clone(),
            variant: all.variant.clone(),
            first_week: first,
            later,
            p_value: p,
            summary,
        })
    });
    TimeEffects {
        start,
        days_covered: days,
        whole_weeks: whole,
        warning,
        series,
        novelty,
    }
}

/// Whether the effect lasted after the experiment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lasting {
    /// The effect after the stop has the sign of the effect during it, significantly.
    Held,
    /// Nothing significant after the stop, over the whole tail.
    Faded,
    /// The effect after the stop has the opposite sign, significantly: purchases were pulled forward.
    Reversed,
    /// The tail is still running and nothing is significant yet.
    TooEarly,
}

#[derive(Debug, Clone, Serialize)]
pub struct LongRun {
    pub stopped_at: DateTime<Utc>,
    pub tail_days: u32,
    pub tail_complete: bool,
    /// Orders from first exposure to the stop, then from the stop to the end of the tail; corrected as
    /// one family.
    pub metrics: Vec<MetricResult>,
    pub verdict: Lasting,
    pub summary: String,
}

/// The long-run metrics' names: revenue and conversion during the experiment, then after it.
pub const LONG_RUN_METRICS: [&str; 4] = [
    "revenue_per_user_during",
    "revenue_per_user_after_stop",
    "conversion_during",
    "conversion_after_stop",
];

/// The long-run section from the tally of [`LONG_RUN_METRICS`].
pub fn long_run(
    tally: &Tally,
    stopped_at: DateTime<Utc>,
    tail_days: u32,
    window_end: DateTime<Utc>,
    settings: &Settings,
) -> LongRun {
    let mut metrics = compare(tally, settings);
    correct_metrics(&mut metrics, settings);
    let tail_complete = window_end >= stopped_at + Duration::days(i64::from(tail_days));
    let during = metrics.first().and_then(|m| m.comparisons.first());
    let after = metrics.get(1).and_then(|m| m.comparisons.first());
    let pct = |c: Option<&Comparison>| {
        c.map_or("–".to_string(), |c| format!("{:+.2}%", c.effect * 100.0))
    };
    let verdict = match after {
        Some(a) if a.significant => {
            let same = during.is_some_and(|d| d.effect.signum() == a.effect.signum());
            if same {
                Lasting::Held
            } else {
                Lasting::Reversed
            }
        }
        _ if tail_complete => Lasting::Faded,
        _ => Lasting::TooEarly,
    };
    let summary = match verdict {
        Lasting::Held => format!(
            "The effect held after the stop: revenue per user {} during, {} in the {tail_days} days after.",
            pct(during),
            pct(after)
        ),
        Lasting::Reversed => format!(
            "The effect reversed after the stop ({} during, {} after): purchases were pulled forward, \
             not added. Judge the experiment on the total.",
            pct(during),
            pct(after)
        ),
        Lasting::Faded => format!(
            "The effect faded: {} during, {} in the {tail_days} days after the stop (not significant).",
            pct(during),
            pct(after)
        ),
        Lasting::TooEarly => format!(
            "Too early: the {tail_days}-day tail after the stop is still running ({} after so far).",
            pct(after)
        ),
    };
    LongRun {
        stopped_at,
        tail_days,
        tail_complete,
        metrics,
        verdict,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cochran's Q against a second implementation of its formula: the weighted sum of squares about the
    /// weighted mean equals `Σ wᵢδᵢ² − (Σ wᵢδᵢ)² / Σ wᵢ`.
    #[test]
    fn q_is_the_weighted_sum_of_squares() {
        let effects = [(0.10, 0.05), (-0.02, 0.04), (0.05, 0.02), (0.00, 0.1)];
        let (q, df, p) = cochran_q(&effects).unwrap();
        let w: Vec<f64> = effects.iter().map(|(_, s)| 1.0 / (s * s)).collect();
        let sw: f64 = w.iter().sum();
        let swe: f64 = w.iter().zip(&effects).map(|(w, (e, _))| w * e).sum();
        let swe2: f64 = w.iter().zip(&effects).map(|(w, (e, _))| w * e * e).sum();
        assert!((q - (swe2 - swe * swe / sw)).abs() < 1e-9, "{q}");
        assert_eq!(df, 3);
        // χ²(3) survival at q, by its closed form: erfc(√(q/2)) + √(2q/π)·e^(−q/2).
        let expected = statrs::function::erf::erfc((q / 2.0).sqrt())
            + (2.0 * q / std::f64::consts::PI).sqrt() * (-q / 2.0).exp();
        assert!((p - expected).abs() < 1e-9, "{p} {expected}");
        assert!(cochran_q(&[(0.1, 0.02)]).is_none());
        assert!(cochran_q(&[(0.1, 0.02), (f64::NAN, 0.1)]).is_none());
    }

    #[test]
    fn two_cohorts_give_the_z_test_of_their_difference() {
        let (a, b) = ((0.08, 0.03), (-0.01, 0.04));
        let (_, _, p) = cochran_q(&[a, b]).unwrap();
        let p2 = interaction_p(a, &[b]).unwrap();
        assert!((p - p2).abs() < 1e-9, "{p} {p2}");
    }

    #[test]
    fn whole_weeks_are_counted_to_within_a_day() {
        assert!(!whole_weeks(Duration::hours(3)));
        assert!(!whole_weeks(Duration::days(6)));
        assert!(whole_weeks(Duration::days(7)));
        assert!(whole_weeks(Duration::days(14) + Duration::hours(23)));
        assert!(!whole_weeks(Duration::days(15)));
    }
}
