//! Differential test against gbstats 0.8.0 (two-sided and sequential t-tests, the Bayesian effect test,
//! SRM), run for real: `infra/gbstats_cases.py` (from the repo's
//! virtualenv) generates sufficient statistics with edge cases and what gbstats computes for them; every
//! field must match within 1e-6 relative or 1e-9 absolute, errors included.

use checkout_domain::stats::bayesian;
use checkout_domain::stats::frequentist::{self, Config, TestResult};
use checkout_domain::stats::Statistic;
use serde::Deserialize;

#[path = "support/reference.rs"]
mod reference;

#[derive(Deserialize)]
struct Expected {
    #[serde(default)]
    chance_to_win: Option<f64>,
    #[serde(default)]
    risk: Option<[Option<f64>; 2]>,
    expected: Option<f64>,
    ci: [Option<f64>; 2],
    p_value: Option<f64>,
    uplift_mean: Option<f64>,
    uplift_stddev: Option<f64>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Case {
    test: String,
    config: serde_json::Value,
    a: Statistic,
    b: Statistic,
    expected: Expected,
}

/// A result field: name, ours, gbstats' (`None` when it is not finite there).
type Field = (&'static str, f64, Option<f64>);

#[derive(Deserialize)]
struct SrmCase {
    units: Vec<u64>,
    weights: Vec<f64>,
    p_value: f64,
}

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
    srm: Vec<SrmCase>,
}

fn gbstats_cases(count: usize, seed: u64) -> Cases {
    let out = reference::run(
        "gbstats_cases.py",
        &["--count", &count.to_string(), "--seed", &seed.to_string()],
        None,
    );
    serde_json::from_slice::<Cases>(&out).expect("cases")
}

/// Within 1e-6 relative, or 1e-9 absolute near zero; a non-finite gbstats value must be non-finite here.
fn close(ours: f64, theirs: Option<f64>) -> bool {
    match theirs {
        None => !ours.is_finite(),
        Some(t) => (ours - t).abs() <= (1e-6 * t.abs()).max(1e-9),
    }
}

#[test]
fn frequentist_bayesian_and_srm_results_match_gbstats() {
    let all = gbstats_cases(4000, 20261124);
    let cases = &all.cases;
    let mut failures = Vec::new();
    let mut informative = 0;
    let mut worst = (0.0f64, String::new());
    for (i, c) in cases.iter().enumerate() {
        let e = &c.expected;
        if e.error.as_deref() == Some("RAISES_ZeroDivisionError") {
            // gbstats raises on a zero baseline with a prior on the absolute effect; we report the
            // baseline error it reports everywhere else.
            let config: bayesian::Config =
                serde_json::from_value(c.config.clone()).expect("config");
            let r = bayesian::effect_test(&c.a, &c.b, &config);
            assert_eq!(
                r.error,
                Some(frequentist::BASELINE_VARIATION_ZERO),
                "case {i}"
            );
            continue;
        }
        let (fields, error): (Vec<Field>, Option<&str>) = if c.test == "bayesian" {
            let config: bayesian::Config =
                serde_json::from_value(c.config.clone()).expect("config");
            let r = bayesian::effect_test(&c.a, &c.b, &config);
            let risk = e.risk.unwrap_or([None, None]);
            (
                vec![
                    ("chance_to_win", r.chance_to_win, e.chance_to_win),
                    ("expected", r.expected, e.expected),
                    ("ci.lower", r.ci[0], e.ci[0]),
                    ("ci.upper", r.ci[1], e.ci[1]),
                    ("uplift.mean", r.uplift_mean, e.uplift_mean),
                    ("uplift.stddev", r.uplift_stddev, e.uplift_stddev),
                    ("risk.control", r.risk[0], risk[0]),
                    ("risk.variation", r.risk[1], risk[1]),
                ],
                r.error,
            )
        } else {
            let config: Config = serde_json::from_value(c.config.clone()).expect("config");
            let r: TestResult = match c.test.as_str() {
                "two_sided" => frequentist::two_sided(&c.a, &c.b, &config),
                _ => frequentist::sequential(&c.a, &c.b, &config, frequentist::SEQUENTIAL_TUNING),
            };
            (
                vec![
                    ("expected", r.expected, e.expected),
                    ("ci.lower", r.ci[0], e.ci[0]),
                    ("ci.upper", r.ci[1], e.ci[1]),
                    ("p_value", r.p_value, e.p_value),
                    ("uplift.mean", r.uplift_mean, e.uplift_mean),
                    ("uplift.stddev", r.uplift_stddev, e.uplift_stddev),
                ],
                r.error,
            )
        };
        for (name, ours, theirs) in fields {
            if let Some(t) = theirs {
                let rel = (ours - t).abs() / t.abs().max(1e-3);
                if rel > worst.0 {
                    worst = (rel, format!("case {i} {name}"));
                }
            }
            if !close(ours, theirs) {
                failures.push(format!(
                    "case {i} ({} {:?}): {name} ours {ours} gbstats {theirs:?}",
                    c.test, c.a
                ));
            }
        }
        if error.map(str::to_string) != e.error {
            failures.push(format!(
                "case {i}: error ours {error:?} gbstats {:?}",
                e.error
            ));
        }
        informative += usize::from(e.error.is_none());
    }
    eprintln!(
        "{} cases, {informative} informative; largest deviation {:.3e} ({})",
        cases.len(),
        worst.0,
        worst.1
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    assert!(
        informative > cases.len() / 2,
        "too few informative cases: {informative}"
    );

    let mut srm_worst = 0.0f64;
    for (i, c) in all.srm.iter().enumerate() {
        let ours = checkout_domain::stats::srm::srm_p_value(&c.units, &c.weights);
        srm_worst = srm_worst.max((ours - c.p_value).abs() / c.p_value.abs().max(1e-3));
        assert!(
            close(ours, Some(c.p_value)),
            "SRM case {i} {:?} {:?}: ours {ours} gbstats {}",
            c.units,
            c.weights,
            c.p_value
        );
    }
    eprintln!(
        "{} SRM cases; largest deviation {srm_worst:.3e}",
        all.srm.len()
    );
}
