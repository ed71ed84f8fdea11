//! Lift by cohort against the reference, for real: the evaluator's fold and breakdown
//! (`UnitFold::report`) on generated experiment units, and `infra/cohort_reference.py` (pandas slices
//! the same units, gbstats 0.8.0 tests every cohort, numpy and scipy compute Cochran's Q) from the repo's
//! virtualenv. Cohort counts must be equal, too-small cohorts the same, and every effect, interval,
//! p-value, adjusted p-value and Q within 1e-6.

use checkout_domain::experiment::config::Experiment;
use checkout_domain::experiment::evaluation::UnitFold;
use checkout_domain::features::aggregate::{Cohort, Money};
use checkout_domain::features::ExperimentUnit;
use checkout_domain::stats::analysis::Settings;
use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// 12,000 units over three arms; cohorts of every size (a country with a handful of units is too small);
/// desktop converts better under treatment, mobile worse (a real interaction).
fn units() -> Vec<ExperimentUnit> {
    let mut rng = StdRng::seed_from_u64(2_021);
    let exposed = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    (0..12_000)
        .map(|i| {
            let arm = rng.random_range(0..3usize);
            let variant = ["control", "treatment", "bold"][arm];
            let device = match rng.random_range(0..10u32) {
                0..=4 => "desktop",
                5..=7 => "mobile",
                8 => "tablet",
                _ => "",
            };
            let country = match rng.random_range(0..100u32) {
                0..=44 => "DE",
                45..=79 => "FR",
                80..=98 => "US",
                _ => "JP",
            };
            let visitor = if rng.random_bool(0.3) {
                "new"
            } else {
                "returning"
            };
            let lift = match (device, arm) {
                ("desktop", 1) => 0.04,
                ("mobile", 1) => -0.03,
                (_, 2) => 0.01,
                _ => 0.0,
            };
            let orders_before = u32::from(rng.random_bool(0.2));
            let p = 0.08 + 0.05 * f64::from(orders_before) + lift;
            let orders = if rng.random_bool(p) {
                1 + u32::from(rng.random_bool(0.15))
            } else {
                0
            };
            let value = |n: u32, rng: &mut StdRng| {
                (0..n)
                    .map(|_| rng.random_range(1_500..9_000i64))
                    .sum::<i64>()
            };
            let revenue = value(orders, &mut rng);
            let before = value(orders_before, &mut rng);
            ExperimentUnit {
                experiment_id: "cohorts".into(),
                user_id: format!("u{i:05}"),
                variant: variant.into(),
                first_exposure_at: exposed,
                decision_id: format!("d{i}"),
                variants_seen: 1,
                orders_after: orders,
                revenue_after: Money::from([("USD".to_string(), revenue)]),
                orders_before,
                revenue_before: Money::from([("USD".to_string(), before)]),
                orders_in_window: 0,
                revenue_in_window: Money::new(),
                unsubscribed_after: false,
                complete: true,
                expires_at: 4_000_000_000,
                cohort: Cohort {
                    device: device.into(),
                    visitor: visitor.into(),
                    country: country.into(),
                    placement: "cart".into(),
                },
                orders: Vec::new(),
            }
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn cohort_results_equal_gbstats_per_cohort() {
    let experiment: Experiment = serde_json::from_value(serde_json::json!({
        "id": "cohorts", "variations": ["control", "treatment", "bold"], "placement": "cart",
        "status": "running"
    }))
    .unwrap();
    let end = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
    let units = units();
    let mut fold = UnitFold::new(&experiment, "generated".into(), end, end, "USD");
    for u in &units {
        fold.add(Ok(u.clone()));
    }
    let settings = Settings::default();
    let report = serde_json::to_value(fold.report(&settings, end)).unwrap();

    let dir = std::env::temp_dir().join(format!("cohort-reference-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("units.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(f, "unit,variant,device,visitor,country,placement,converted,revenue,orders,orders_before,revenue_before").unwrap();
    for u in &units {
        writeln!(
            f,
            "{},{},{},{},{},{},{},{},{},{},{}",
            u.user_id,
            u.variant,
            u.cohort.device,
            u.cohort.visitor,
            u.cohort.country,
            u.cohort.placement,
            u8::from(u.orders_after > 0),
            u.revenue_after.get("USD").copied().unwrap_or(0),
            u.orders_after,
            u.orders_before,
            u.revenue_before.get("USD").copied().unwrap_or(0)
        )
        .unwrap();
    }
    drop(f);
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv`",
        python.display()
    );
    let out = Command::new(python)
        .arg(root().join("infra/cohort_reference.py"))
        .args([
            "--csv",
            &csv.display().to_string(),
            "--variants",
            "control,treatment,bold",
            "--min-units",
            "150",
            "--alpha",
            "0.05",
        ])
        .output()
        .expect("runs the reference");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value = serde_json::from_slice(&out.stdout).expect("reference JSON");

    let ours = &report["cohorts"];
    assert_eq!(ours["comparisons"], reference["comparisons"]);
    let mut checked = 0;
    let mut too_small = 0;
    for dim in ours["dimensions"].as_array().unwrap() {
        let name = dim["name"].as_str().unwrap();
        let theirs = &reference["cohorts"][name];
        assert_eq!(
            dim["cohorts"].as_array().unwrap().len(),
            theirs.as_object().unwrap().len(),
            "{name}: cohorts"
        );
        for c in dim["cohorts"].as_array().unwrap() {
            let value = c["value"].as_str().unwrap();
            let t = &theirs[value];
            assert_eq!(c["units"], t["units"], "{name}={value}: units");
            assert_eq!(c["too_small"], t["too_small"], "{name}={value}: too small");
            if c["too_small"] == true {
                too_small += 1;
                continue;
            }
            for m in c["metrics"].as_array().unwrap() {
                let metric = m["name"].as_str().unwrap();
                for (ours, theirs) in m["comparisons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(t["metrics"][metric].as_array().unwrap())
                {
                    assert_eq!(ours["variant"], theirs["variant"]);
                    for (field, a, b) in [
                        ("effect", &ours["effect"], &theirs["effect"]),
                        ("ci low", &ours["ci"][0], &theirs["ci"][0]),
                        ("ci high", &ours["ci"][1], &theirs["ci"][1]),
                        ("p", &ours["p_value"], &theirs["p_value"]),
                        (
                            "adjusted p",
                            &ours["adjusted_p_value"],
                            &theirs["adjusted_p_value"],
                        ),
                    ] {
                        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                        assert!(close(a, b), "{name}={value} {metric} {field}: {a} vs {b}");
                    }
                    checked += 1;
                }
            }
        }
        for h in dim["heterogeneity"].as_array().unwrap() {
            let t = reference["heterogeneity"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| {
                    t["dimension"] == name
                        && t["metric"] == h["metric"]
                        && t["variant"] == h["variant"]
                })
                .unwrap_or_else(|| panic!("{name} {h}: no reference test"));
            assert_eq!(h["cohorts"], t["cohorts"]);
            for field in ["q", "p_value", "adjusted_p_value"] {
                let (a, b) = (h[field].as_f64().unwrap(), t[field].as_f64().unwrap());
                assert!(close(a, b), "{name} {} Q {field}: {a} vs {b}", h["metric"]);
            }
        }
    }
    assert!(checked >= 50, "{checked} cohort comparisons checked");
    assert!(too_small >= 1, "the small country is shown as too small");
    // The planted interaction is found: mobile's conversion effect for `treatment` is flagged.
    let device = &ours["dimensions"][0];
    assert_eq!(device["name"], "device");
    let flagged: Vec<&Value> = device["heterogeneity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["metric"] == "conversion" && h["variant"] == "treatment")
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["flagged"], serde_json::json!(["mobile"]));
    println!(
        "{checked} cohort comparisons equal gbstats; device heterogeneity: {}",
        flagged[0]
    );
}
