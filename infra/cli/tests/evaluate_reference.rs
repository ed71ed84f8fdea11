//! `checkout-ai evaluate` against the reference, for real: `infra/evaluate_reference.py` (from the repo's
//! virtualenv) cleans the same CSV with pandas by the documented rules and computes every number with
//! gbstats 0.8.0. Counts must be equal; statistics within 1e-6 relative or 1e-9 absolute.
//!
//! - `../shared/data/ab_data.csv` (the real, messy export): two-sided with Bayesian, and sequential.
//! - A generated export with three arms, a covariate (CUPED), a ratio, a guardrail and broken rows of
//!   every kind, under Benjamini-Hochberg.

use checkout_ai::evaluate::{evaluate, parse_weights, Spec};
use checkout_domain::stats::analysis::{Settings, Test};
use checkout_domain::stats::correction::Correction;
use checkout_domain::stats::report::Report;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(p.exists(), "{} is missing: run `make venv`", p.display());
    p
}

/// The reference's arguments for the same spec.
fn reference(csv: &Path, spec: &Spec) -> Value {
    let mut args: Vec<String> = vec![
        root()
            .join("infra/evaluate_reference.py")
            .display()
            .to_string(),
        "--csv".into(),
        csv.display().to_string(),
        "--unit".into(),
        spec.unit.clone(),
        "--variant".into(),
        spec.variant.clone(),
        "--control".into(),
        spec.control.clone(),
        "--alpha".into(),
        spec.settings.alpha.to_string(),
        "--correction".into(),
        match spec.settings.correction {
            Correction::None => "none",
            Correction::Holm => "holm",
            Correction::BenjaminiHochberg => "bh",
        }
        .into(),
    ];
    for m in &spec.metrics {
        let kind = match m.kind {
            checkout_domain::stats::tally::MetricKind::Proportion => "proportion",
            _ => "mean",
        };
        args.extend(["--metric".into(), format!("{}:{}:{kind}", m.name, m.column)]);
    }
    for r in &spec.ratios {
        args.extend([
            "--ratio".into(),
            format!("{}:{}:{}", r.name, r.numerator, r.denominator),
        ]);
    }
    if let Some(c) = &spec.covariate {
        args.extend(["--covariate".into(), c.clone()]);
    }
    if let Some(w) = &spec.weights {
        let w: Vec<String> = w.iter().map(|(n, x)| format!("{n}={x}")).collect();
        args.extend(["--weights".into(), w.join(",")]);
    }
    if spec.settings.test == Test::Sequential {
        args.push("--sequential".into());
    }
    if spec.settings.bayesian {
        args.push("--bayesian".into());
    }
    let out = Command::new(python())
        .args(&args)
        .output()
        .expect("run the reference");
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference JSON")
}

struct Deviation {
    fields: usize,
    max_relative: f64,
}

impl Deviation {
    fn check(&mut self, what: &str, ours: f64, theirs: &Value) {
        let Some(theirs) = theirs.as_f64() else {
            assert!(
                !ours.is_finite() || theirs.is_null(),
                "{what}: ours {ours}, reference {theirs}"
            );
            return;
        };
        let diff = (ours - theirs).abs();
        assert!(
            diff <= 1e-9 || diff <= 1e-6 * theirs.abs(),
            "{what}: ours {ours}, reference {theirs}"
        );
        self.fields += 1;
        if theirs.abs() > 1e-9 {
            self.max_relative = self.max_relative.max(diff / theirs.abs());
        }
    }
}

/// Every count and statistic of the report against the reference.
fn compare(report: &Report, reference: &Value) -> Deviation {
    let mut d = Deviation {
        fields: 0,
        max_relative: 0.0,
    };
    let data = &reference["data"];
    assert_eq!(report.data.rows, data["rows"].as_u64().unwrap(), "rows");
    assert_eq!(
        report.data.bad_row_count(),
        data["bad_rows"].as_u64().unwrap(),
        "bad rows {:?}",
        report.data.bad_rows
    );
    assert_eq!(
        report.data.repeated_rows,
        data["repeated_rows"].as_u64().unwrap()
    );
    assert_eq!(report.data.units, data["units"].as_u64().unwrap());
    assert_eq!(
        report
            .data
            .excluded_units
            .get("multi_variant")
            .copied()
            .unwrap_or(0),
        data["multi_variant"].as_u64().unwrap()
    );
    let arms = reference["arms"].as_array().unwrap();
    assert_eq!(report.arms.len(), arms.len());
    for (ours, theirs) in report.arms.iter().zip(arms) {
        assert_eq!(ours.variant, theirs["variant"].as_str().unwrap());
        assert_eq!(ours.units, theirs["units"].as_u64().unwrap());
    }
    d.check("srm p", report.srm.p_value, &reference["srm_p_value"]);
    let metrics = reference["metrics"].as_array().unwrap();
    assert_eq!(report.metrics.len(), metrics.len());
    for (m, r) in report.metrics.iter().zip(metrics) {
        assert_eq!(m.name, r["name"].as_str().unwrap());
        for (a, ra) in m.arms.iter().zip(r["arms"].as_array().unwrap()) {
            assert_eq!(a.n, ra["n"].as_u64().unwrap(), "{} {} n", m.name, a.variant);
            d.check(
                &format!("{} {} mean", m.name, a.variant),
                a.mean,
                &ra["mean"],
            );
        }
        let comparisons = r["comparisons"].as_array().unwrap();
        assert_eq!(m.comparisons.len(), comparisons.len());
        for (c, rc) in m.comparisons.iter().zip(comparisons) {
            let at = format!("{} {}", m.name, c.variant);
            assert_eq!(c.variant, rc["variant"].as_str().unwrap());
            assert_eq!(c.error.as_deref(), rc["error"].as_str(), "{at} error");
            d.check(&format!("{at} effect"), c.effect, &rc["effect"]);
            d.check(&format!("{at} ci low"), c.ci[0], &rc["ci"][0]);
            d.check(&format!("{at} ci high"), c.ci[1], &rc["ci"][1]);
            d.check(&format!("{at} p"), c.p_value, &rc["p_value"]);
            d.check(
                &format!("{at} adjusted p"),
                c.adjusted_p_value,
                &rc["adjusted_p_value"],
            );
            if let Some(b) = &c.bayesian {
                let rb = &rc["bayesian"];
                assert_eq!(
                    b.error.as_deref(),
                    rb["error"].as_str(),
                    "{at} bayesian error"
                );
                d.check(
                    &format!("{at} chance"),
                    b.chance_to_win,
                    &rb["chance_to_win"],
                );
                d.check(&format!("{at} b effect"), b.effect, &rb["effect"]);
                d.check(&format!("{at} b ci low"), b.ci[0], &rb["ci"][0]);
                d.check(&format!("{at} b ci high"), b.ci[1], &rb["ci"][1]);
                d.check(&format!("{at} risk c"), b.risk_control, &rb["risk_control"]);
                d.check(&format!("{at} risk v"), b.risk_variant, &rb["risk_variant"]);
            } else {
                assert!(rc.get("bayesian").is_none());
            }
        }
    }
    d
}

fn out_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn ab_data_matches_gbstats_on_the_same_cleaned_data() {
    let csv = root().join("../shared/data/ab_data.csv");
    assert!(csv.exists(), "{} is missing", csv.display());
    for (name, test, bayesian) in [
        ("ab-two-sided", Test::TwoSided, true),
        ("ab-sequential", Test::Sequential, false),
    ] {
        let spec = Spec {
            unit: "user_id".into(),
            variant: "group".into(),
            control: "control".into(),
            metrics: vec!["conversion:converted:proportion".parse().unwrap()],
            ratios: vec![],
            covariate: None,
            weights: Some(parse_weights("control=0.5,treatment=0.5").unwrap()),
            guardrails: vec![],
            inverse: vec![],
            settings: Settings {
                test,
                bayesian,
                ..Settings::default()
            },
        };
        let report = evaluate(&csv, &spec, &out_dir(name)).expect("evaluate ab_data.csv");
        let d = compare(&report, &reference(&csv, &spec));
        // The export's known mess: 3,894 repeated rows, 1,895 users in both groups.
        assert_eq!(report.data.rows, 294_478);
        assert_eq!(report.data.repeated_rows, 3_894);
        assert_eq!(report.data.excluded_units["multi_variant"], 1_895);
        assert!(!report.srm.alarm);
        let c = &report.metrics[0].comparisons[0];
        println!(
            "ab_data {name}: units {:?}, conversion {:.5} vs {:.5}, effect {:+.4} CI [{:+.4}, {:+.4}], p {:.4}, SRM p {:.4}, chance to win {:?}; {} fields, max relative deviation {:.1e}",
            report.arms.iter().map(|a| a.units).collect::<Vec<_>>(),
            report.metrics[0].arms[0].mean,
            report.metrics[0].arms[1].mean,
            c.effect,
            c.ci[0],
            c.ci[1],
            c.p_value,
            report.srm.p_value,
            c.bayesian.as_ref().map(|b| b.chance_to_win),
            d.fields,
            d.max_relative
        );
        assert!(std::fs::metadata(out_dir(name).join("report.html")).is_ok());
    }
}

#[test]
fn a_messy_three_arm_export_with_cuped_and_a_ratio_matches_gbstats() {
    let dir = out_dir("generated");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("experiment-30k.csv");
    let status = Command::new(python())
        .arg(root().join("infra/gen_experiment_csv.py"))
        .args(["--rows", "30000", "--seed", "11", "--arms", "3", "--out"])
        .arg(&csv)
        .status()
        .unwrap();
    assert!(status.success());
    for (test, covariate, correction) in [
        (
            Test::TwoSided,
            Some("pre_revenue"),
            Correction::BenjaminiHochberg,
        ),
        (Test::Sequential, None, Correction::Holm),
    ] {
        let spec = Spec {
            unit: "user_id".into(),
            variant: "variant".into(),
            control: "control".into(),
            metrics: vec![
                "conversion:converted:proportion".parse().unwrap(),
                "revenue:revenue:mean".parse().unwrap(),
                "orders:orders:mean".parse().unwrap(),
            ],
            ratios: vec!["aov:revenue:orders".parse().unwrap()],
            covariate: covariate.map(str::to_string),
            weights: Some(
                parse_weights("control=0.3333,treatment_1=0.3333,treatment_2=0.3334").unwrap(),
            ),
            guardrails: vec!["orders".into()],
            inverse: vec![],
            settings: Settings {
                test,
                bayesian: true,
                correction,
                ..Settings::default()
            },
        };
        let report = evaluate(&csv, &spec, &dir).expect("evaluate the generated export");
        // Every kind of broken row is there.
        for reason in [
            "missing:revenue",
            "invalid:revenue",
            "not_0_or_1:converted",
            "wrong_field_count",
            "unknown_variant",
        ] {
            assert!(
                report.data.bad_rows.contains_key(reason),
                "{reason} not in {:?}",
                report.data.bad_rows
            );
        }
        if covariate.is_some() {
            assert!(report.metrics[0].comparisons[0].cuped_theta != 0.0);
        }
        let d = compare(&report, &reference(&csv, &spec));
        println!(
            "generated {test:?}/{correction:?}: {} fields, max relative deviation {:.1e}",
            d.fields, d.max_relative
        );
        assert!(d.fields > 60);
    }
}
