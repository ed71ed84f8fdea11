//! From a tally to a report: every arm against control for every metric, with the SRM check, the
//! guards, the multiple-comparison correction and a plain-language recommendation.
//!
//! The tally is [`super::tally`]; the report's versioned layout is [`super::report`]; [`super::html`]
//! renders the same report for people.

use super::bayesian::{self, Prior};
use super::correction::{adjust, Correction};
use super::frequentist::{self, Difference, SEQUENTIAL_TUNING};
use super::report::*;
use super::srm::{srm_p_value, SRM_ALPHA, SRM_MIN_UNITS};
use super::tally::{Role, Tally};
use super::{prepare, Statistic};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The minimum-sample guard's default: below this many units in any arm the report will not recommend
/// shipping or stopping on the metrics.
pub const MIN_SAMPLE_PER_ARM: u64 = 150;
/// Units exposed to more than one variant, as a share of all units, above which the report warns.
pub const MULTI_VARIANT_WARN_SHARE: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Fixed horizon: valid when read once, at the planned sample size.
    TwoSided,
    /// Confidence sequences: valid however often the report is read.
    Sequential,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub alpha: f64,
    pub difference: Difference,
    pub test: Test,
    pub sequential_tuning: f64,
    pub correction: Correction,
    /// Whether Bayesian results (chance to win, risk) accompany the frequentist ones.
    pub bayesian: bool,
    pub prior: Prior,
    pub min_sample_per_arm: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            difference: Difference::Relative,
            test: Test::TwoSided,
            sequential_tuning: SEQUENTIAL_TUNING,
            correction: Correction::Holm,
            bayesian: false,
            prior: bayesian::Config::default().prior,
            min_sample_per_arm: MIN_SAMPLE_PER_ARM,
        }
    }
}

/// Analyses a tally.
pub fn analyse(
    tally: &Tally,
    settings: &Settings,
    data: DataSummary,
    window: Option<Window>,
    generated_at: DateTime<Utc>,
) -> Report {
    let design = &tally.design;
    let total: u64 = tally.units.iter().sum();
    let weight_sum: f64 = design.weights.iter().sum();
    let arms: Vec<ArmSection> = design
        .variants
        .iter()
        .zip(&design.weights)
        .zip(&tally.units)
        .map(|((variant, &weight), &units)| ArmSection {
            variant: variant.clone(),
            weight,
            units,
            expected_units: if weight_sum > 0.0 {
                weight / weight_sum * total as f64
            } else {
                0.0
            },
        })
        .collect();
    let srm_p = srm_p_value(&tally.units, &design.weights);
    let enough_for_srm = tally.units.iter().all(|&u| u >= SRM_MIN_UNITS);
    let srm = SrmSection {
        p_value: srm_p,
        alarm: enough_for_srm && srm_p < SRM_ALPHA,
        threshold: SRM_ALPHA,
        min_units_per_arm: SRM_MIN_UNITS,
    };

    let mut metrics = compare(tally, settings);
    correct_metrics(&mut metrics, settings);

    let health = health(tally, settings, &data, &srm, &metrics);
    let recommendation = recommend(tally, settings, &srm, &metrics);
    Report {
        format: REPORT_FORMAT,
        version: REPORT_VERSION,
        experiment: ExperimentSection {
            id: design.experiment_id.clone(),
            control: design.variants.first().cloned().unwrap_or_default(),
            variants: design.variants.clone(),
            weights: design.weights.clone(),
        },
        window,
        generated_at,
        settings: *settings,
        data,
        arms,
        srm,
        health,
        metrics,
        recommendation,
        cohorts: None,
        time: None,
        long_run: None,
    }
}

/// Every non-control arm against control for every metric of the tally, before any correction
/// (`adjusted_p_value` is the raw p-value until [`correct`] runs over the family).
pub fn compare(tally: &Tally, settings: &Settings) -> Vec<MetricResult> {
    let design = &tally.design;
    let control = 0;
    let frequentist = frequentist::Config {
        alpha: settings.alpha,
        difference: settings.difference,
        test_value: 0.0,
    };
    design
        .metrics
        .iter()
        .zip(&tally.cells)
        .map(|(def, cells)| {
            let stats: Vec<Statistic> = cells.iter().map(|m| m.statistic(def)).collect();
            let arms = design
                .variants
                .iter()
                .zip(&stats)
                .map(|(variant, s)| ArmMetric {
                    variant: variant.clone(),
                    n: s.n(),
                    mean: s.unadjusted_mean(),
                    variance: s.variance(),
                    statistic: s.clone(),
                })
                .collect();
            let comparisons = (0..design.variants.len())
                .filter(|&arm| arm != control)
                .map(|arm| {
                    let (a, b) = (&stats[control], &stats[arm]);
                    let r = match settings.test {
                        Test::TwoSided => frequentist::two_sided(a, b, &frequentist),
                        Test::Sequential => {
                            frequentist::sequential(a, b, &frequentist, settings.sequential_tuning)
                        }
                    };
                    let cuped_theta = match prepare(a, b).0 {
                        Statistic::RegressionAdjusted { theta, .. } => theta,
                        _ => 0.0,
                    };
                    let bayesian = settings.bayesian.then(|| {
                        let config = bayesian::Config {
                            alpha: settings.alpha,
                            difference: settings.difference,
                            inverse: def.inverse,
                            prior_on: settings.difference,
                            prior: settings.prior,
                        };
                        let r = bayesian::effect_test(a, b, &config);
                        BayesianComparison {
                            chance_to_win: r.chance_to_win,
                            effect: r.expected,
                            ci: r.ci,
                            risk_control: r.risk[0],
                            risk_variant: r.risk[1],
                            error: r.error.map(str::to_string),
                        }
                    });
                    Comparison {
                        variant: design.variants[arm].clone(),
                        effect: r.expected,
                        ci: r.ci,
                        p_value: r.p_value,
                        adjusted_p_value: r.p_value,
                        significant: false,
                        direction: Direction::Inconclusive,
                        effect_stddev: r.uplift_stddev,
                        cuped_theta,
                        error: r.error.map(str::to_string),
                        bayesian,
                    }
                })
                .collect();
            MetricResult {
                name: def.name.clone(),
                kind: def.kind,
                role: def.role,
                inverse: def.inverse,
                covariate: def.covariate.clone(),
                source: def.source.clone(),
                arms,
                comparisons,
            }
        })
        .collect()
}

/// Corrects every comparison of `metrics` as one family.
pub fn correct_metrics(metrics: &mut [MetricResult], settings: &Settings) {
    correct(
        metrics
            .iter_mut()
            .flat_map(|m| {
                let inverse = m.inverse;
                m.comparisons.iter_mut().map(move |c| (c, inverse))
            })
            .collect(),
        settings,
    );
}

/// Corrects a family of comparisons (each with whether its metric is lower-is-better) for multiple
/// testing, and sets their significance and direction.
pub fn correct(family: Vec<(&mut Comparison, bool)>, settings: &Settings) {
    let p_values: Vec<f64> = family.iter().map(|(c, _)| c.p_value).collect();
    let adjusted = adjust(&p_values, settings.correction);
    for ((c, inverse), adjusted) in family.into_iter().zip(adjusted) {
        c.adjusted_p_value = adjusted;
        c.significant = c.error.is_none() && c.adjusted_p_value < settings.alpha;
        c.direction = if !c.significant {
            Direction::Inconclusive
        } else if (c.effect > 0.0) != inverse {
            Direction::Better
        } else {
            Direction::Worse
        };
    }
}

fn small_arms(tally: &Tally, settings: &Settings) -> Vec<String> {
    tally
        .design
        .variants
        .iter()
        .zip(&tally.units)
        .filter(|(_, &u)| u < settings.min_sample_per_arm)
        .map(|(v, u)| format!("{v} ({u})"))
        .collect()
}

fn health(
    tally: &Tally,
    settings: &Settings,
    data: &DataSummary,
    srm: &SrmSection,
    metrics: &[MetricResult],
) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(Check {
        name: "srm",
        status: if srm.alarm {
            Status::Failed
        } else {
            Status::Ok
        },
        message: if srm.alarm {
            format!(
                "Sample ratio mismatch: p = {:.2e} < {}. Units per arm {:?} do not match the weights {:?}; \
                 assignment or exposure logging is broken, and no metric result can be trusted.",
                srm.p_value, srm.threshold, tally.units, tally.design.weights
            )
        } else if tally.units.iter().any(|&u| u < SRM_MIN_UNITS) {
            format!(
                "Not checked yet: every arm needs {} units (p = {:.4}).",
                SRM_MIN_UNITS, srm.p_value
            )
        } else {
            format!("No sample ratio mismatch (p = {:.4}).", srm.p_value)
        },
    });
    let small = small_arms(tally, settings);
    checks.push(Check {
        name: "min_sample",
        status: if small.is_empty() {
            Status::Ok
        } else {
            Status::Failed
        },
        message: if small.is_empty() {
            format!(
                "Every arm has at least {} units.",
                settings.min_sample_per_arm
            )
        } else {
            format!(
                "Below the minimum of {} units: {}.",
                settings.min_sample_per_arm,
                small.join(", ")
            )
        },
    });
    let multi = data
        .excluded_units
        .get("multi_variant")
        .copied()
        .unwrap_or(0);
    let share = if data.units > 0 {
        multi as f64 / data.units as f64
    } else {
        0.0
    };
    checks.push(Check {
        name: "multi_variant_units",
        status: if share > MULTI_VARIANT_WARN_SHARE {
            Status::Warning
        } else {
            Status::Ok
        },
        message: format!(
            "{multi} units ({:.2}%) were exposed to more than one variant and are excluded{}.",
            share * 100.0,
            if share > MULTI_VARIANT_WARN_SHARE {
                "; check for assignment leaks (changed seeds or weights, shared devices)"
            } else {
                ""
            }
        ),
    });
    let bad = data.bad_row_count();
    checks.push(Check {
        name: "bad_rows",
        status: if bad > 0 { Status::Warning } else { Status::Ok },
        message: format!("{bad} of {} rows could not be used.", data.rows),
    });
    let errors: Vec<String> = metrics
        .iter()
        .flat_map(|m| {
            m.comparisons.iter().filter_map(move |c| {
                c.error
                    .as_ref()
                    .map(|e| format!("{} / {}: {e}", m.name, c.variant))
            })
        })
        .collect();
    checks.push(Check {
        name: "errors",
        status: if errors.is_empty() {
            Status::Ok
        } else {
            Status::Warning
        },
        message: if errors.is_empty() {
            "Every comparison could be computed.".to_string()
        } else {
            format!("Not computable: {}.", errors.join("; "))
        },
    });
    checks
}

/// An effect for people: `+1.23%` (relative) or `+0.0123` (absolute); `–` when not finite.
pub fn effect_text(effect: f64, difference: Difference) -> String {
    if !effect.is_finite() {
        return "–".into();
    }
    match difference {
        Difference::Relative => format!("{:+.2}%", effect * 100.0),
        Difference::Absolute => format!("{effect:+.4}"),
    }
}

fn recommend(
    tally: &Tally,
    settings: &Settings,
    srm: &SrmSection,
    metrics: &[MetricResult],
) -> Recommendation {
    let keep = |summary: String, reasons: Vec<String>| Recommendation {
        action: Action::KeepRunning,
        variant: None,
        summary,
        reasons,
    };
    if srm.alarm {
        return Recommendation {
            action: Action::Stop,
            variant: None,
            summary: "Stop: the traffic split is broken (sample ratio mismatch), so no result here can be trusted."
                .to_string(),
            reasons: vec![format!(
                "SRM p = {:.2e} < {}: find the cause (assignment, exposure logging, bots) before restarting.",
                srm.p_value, srm.threshold
            )],
        };
    }
    let small = small_arms(tally, settings);
    if !small.is_empty() {
        return keep(
            "Keep running: not enough units yet to read the metrics.".to_string(),
            vec![format!(
                "Below the minimum of {} units per arm: {}.",
                settings.min_sample_per_arm,
                small.join(", ")
            )],
        );
    }
    let mut reasons = Vec::new();
    let treatments = &tally.design.variants[1..];
    let mut harmed = Vec::new();
    let mut winners = Vec::new();
    for variant in treatments {
        let results = metrics.iter().filter_map(|m| {
            m.comparisons
                .iter()
                .find(|c| &c.variant == variant)
                .map(|c| (m, c))
        });
        let mut harm = false;
        let mut best_goal: Option<f64> = None;
        for (m, c) in results {
            match c.direction {
                Direction::Worse => {
                    harm = true;
                    reasons.push(format!(
                        "{variant}: {} {} got worse, {} (adjusted p = {:.4}).",
                        match m.role {
                            Role::Goal => "goal metric",
                            Role::Guardrail => "guardrail",
                        },
                        m.name,
                        effect_text(c.effect, settings.difference),
                        c.adjusted_p_value
                    ));
                }
                Direction::Better if m.role == Role::Goal => {
                    reasons.push(format!(
                        "{variant}: {} improved, {} (adjusted p = {:.4}).",
                        m.name,
                        effect_text(c.effect, settings.difference),
                        c.adjusted_p_value
                    ));
                    let first = best_goal.is_none();
                    if first || best_goal.is_some_and(|p| c.adjusted_p_value < p) {
                        best_goal = Some(c.adjusted_p_value);
                    }
                }
                _ => {}
            }
        }
        if harm {
            harmed.push(variant.clone());
        } else if let Some(p) = best_goal {
            winners.push((variant.clone(), p));
        }
    }
    winners.sort_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((variant, _)) = winners.first() {
        return Recommendation {
            action: Action::Ship,
            variant: Some(variant.clone()),
            summary: format!(
                "Ship {variant}: a goal metric improved significantly after correction, and no goal or guardrail metric got worse."
            ),
            reasons,
        };
    }
    if !treatments.is_empty() && harmed.len() == treatments.len() {
        return Recommendation {
            action: Action::Stop,
            variant: None,
            summary: "Stop: every variant made a goal or guardrail metric significantly worse."
                .to_string(),
            reasons,
        };
    }
    if reasons.is_empty() {
        reasons.push(format!(
            "No metric differs significantly from control after the {} correction.",
            match settings.correction {
                Correction::None => "(no)",
                Correction::Holm => "Holm-Bonferroni",
                Correction::BenjaminiHochberg => "Benjamini-Hochberg",
            }
        ));
    }
    if settings.test == Test::TwoSided {
        reasons.push(
            "Fixed-horizon test: read it once, at the planned sample size. Checking it repeatedly and stopping at the first \
             significant result inflates false positives; use the sequential test to monitor."
                .to_string(),
        );
    }
    keep(
        "Keep running: no variant is a clear win yet.".to_string(),
        reasons,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::tally::{Design, MetricDef, MetricKind, Moments};

    fn design(metrics: Vec<MetricDef>) -> Design {
        Design {
            experiment_id: "exp".into(),
            variants: vec!["control".into(), "treatment".into()],
            weights: vec![0.5, 0.5],
            metrics,
        }
    }

    fn metric(name: &str, kind: MetricKind, role: Role) -> MetricDef {
        MetricDef {
            name: name.into(),
            kind,
            role,
            inverse: false,
            covariate: None,
            source: name.into(),
        }
    }

    /// A tally of `units` per arm converting at the given rates, deterministically spread.
    fn conversions(units: [u64; 2], rates: [f64; 2], role: Role) -> Tally {
        let mut t = Tally::new(design(vec![metric(
            "conversion",
            MetricKind::Proportion,
            role,
        )]));
        for arm in 0..2 {
            let converted = (units[arm] as f64 * rates[arm]).round() as u64;
            for i in 0..units[arm] {
                t.unit(arm);
                t.observe(0, arm, f64::from(u8::from(i < converted)), 0.0);
            }
        }
        t
    }

    fn report(t: &Tally, settings: Settings) -> Report {
        analyse(
            t,
            &settings,
            DataSummary::default(),
            None,
            DateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn moments_make_the_statistic_gbstats_expects() {
        let mut m = Moments::default();
        for (x, y) in [(1.0, 2.0), (0.0, 1.0), (3.0, 3.0)] {
            m.add(x, y);
        }
        let mut def = metric("r", MetricKind::Ratio, Role::Goal);
        match m.statistic(&def) {
            Statistic::Ratio {
                n,
                numerator,
                denominator,
                sum_of_products,
            } => {
                assert_eq!(n, 3);
                assert_eq!(numerator.mean(), 4.0 / 3.0);
                assert_eq!(denominator.mean(), 2.0);
                assert_eq!(sum_of_products, 2.0 + 0.0 + 9.0);
            }
            other => panic!("{other:?}"),
        }
        def.kind = MetricKind::Mean;
        def.covariate = Some("pre".into());
        assert!(matches!(
            m.statistic(&def),
            Statistic::RegressionAdjusted { n: 3, .. }
        ));
        def.covariate = None;
        assert_eq!(
            m.statistic(&def),
            Statistic::Mean {
                n: 3,
                sum: 4.0,
                sum_squares: 10.0
            }
        );
    }

    #[test]
    fn a_clear_goal_win_ships_and_an_equal_split_raises_no_srm() {
        let t = conversions([5000, 5000], [0.10, 0.13], Role::Goal);
        let r = report(&t, Settings::default());
        assert!(!r.srm.alarm);
        assert!((r.srm.p_value - 1.0).abs() < 1e-12);
        let c = &r.metrics[0].comparisons[0];
        assert!(c.significant && c.direction == Direction::Better, "{c:?}");
        assert!((c.effect - 0.3).abs() < 1e-9);
        assert_eq!(r.recommendation.action, Action::Ship);
        assert_eq!(r.recommendation.variant.as_deref(), Some("treatment"));
    }

    #[test]
    fn a_broken_split_stops_whatever_the_metrics_say() {
        let t = conversions([5000, 4500], [0.10, 0.13], Role::Goal);
        let r = report(&t, Settings::default());
        assert!(r.srm.alarm, "p = {}", r.srm.p_value);
        assert_eq!(r.recommendation.action, Action::Stop);
        assert_eq!(r.health[0].status, Status::Failed);
    }

    #[test]
    fn the_minimum_sample_guard_holds_back_a_decision() {
        let t = conversions([100, 100], [0.05, 0.60], Role::Goal);
        let r = report(&t, Settings::default());
        assert!(r.metrics[0].comparisons[0].significant);
        assert_eq!(r.recommendation.action, Action::KeepRunning);
        let guard = r.health.iter().find(|c| c.name == "min_sample").unwrap();
        assert_eq!(guard.status, Status::Failed);
        assert!(guard.message.contains("control (100)"), "{}", guard.message);
    }

    #[test]
    fn a_guardrail_loss_blocks_shipping_and_inverse_flips_the_direction() {
        let mut t = conversions([5000, 5000], [0.10, 0.13], Role::Goal);
        t.design.metrics.push(MetricDef {
            inverse: true,
            ..metric("decline_rate", MetricKind::Proportion, Role::Guardrail)
        });
        t.cells.push(vec![Moments::default(); 2]);
        for arm in 0..2 {
            let rate = [0.02, 0.04][arm];
            for i in 0..5000 {
                t.observe(1, arm, f64::from(u8::from((i as f64) < 5000.0 * rate)), 0.0);
            }
        }
        let r = report(&t, Settings::default());
        let guard = &r.metrics[1].comparisons[0];
        assert!(guard.effect > 0.0 && guard.direction == Direction::Worse);
        assert_eq!(r.recommendation.action, Action::Stop);
        assert!(r
            .recommendation
            .reasons
            .iter()
            .any(|s| s.contains("guardrail decline_rate")));
    }

    #[test]
    fn the_correction_can_take_away_a_marginal_win() {
        // p ≈ 0.03 alone; three more null metrics make Holm multiply it by four.
        let mut t = conversions([20_000, 20_000], [0.100, 0.1065], Role::Goal);
        for k in 0..3 {
            t.design.metrics.push(metric(
                &format!("null{k}"),
                MetricKind::Proportion,
                Role::Goal,
            ));
            t.cells.push(t.cells[0].clone());
            t.cells[k + 1][1] = t.cells[0][0];
        }
        let alone = report(
            &conversions([20_000, 20_000], [0.100, 0.1065], Role::Goal),
            Settings::default(),
        );
        assert!(
            alone.metrics[0].comparisons[0].significant,
            "{:?}",
            alone.metrics[0].comparisons[0]
        );
        let holm = report(&t, Settings::default());
        let c = &holm.metrics[0].comparisons[0];
        assert!((c.adjusted_p_value - (4.0 * c.p_value).min(1.0)).abs() < 1e-12);
        assert!(!c.significant);
        assert_eq!(holm.recommendation.action, Action::KeepRunning);
        let none = report(
            &t,
            Settings {
                correction: Correction::None,
                ..Settings::default()
            },
        );
        assert!(none.metrics[0].comparisons[0].significant);
    }

    #[test]
    fn sequential_intervals_are_wider_and_bayesian_results_are_optional() {
        let t = conversions([5000, 5000], [0.10, 0.12], Role::Goal);
        let fixed = report(&t, Settings::default());
        let seq = report(
            &t,
            Settings {
                test: Test::Sequential,
                bayesian: true,
                ..Settings::default()
            },
        );
        let (f, s) = (
            &fixed.metrics[0].comparisons[0],
            &seq.metrics[0].comparisons[0],
        );
        assert!(s.ci[1] - s.ci[0] > f.ci[1] - f.ci[0]);
        assert!(f.bayesian.is_none());
        let b = s.bayesian.as_ref().unwrap();
        assert!(b.chance_to_win > 0.99 && b.risk_variant < b.risk_control);
    }

    #[test]
    fn degenerate_comparisons_carry_gbstats_errors_and_never_count_as_significant() {
        let t = conversions([500, 500], [0.0, 0.2], Role::Goal);
        let r = report(&t, Settings::default());
        let c = &r.metrics[0].comparisons[0];
        assert_eq!(
            c.error.as_deref(),
            Some(frequentist::BASELINE_VARIATION_ZERO)
        );
        assert!(!c.significant);
        assert_eq!(
            r.health.iter().find(|h| h.name == "errors").unwrap().status,
            Status::Warning
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["format"], REPORT_FORMAT);
        assert_eq!(json["version"], REPORT_VERSION);
    }
}
