//! The drift monitor: its PSI equals an independent numpy implementation (which fits the bins itself)
//! to 1e-12; a window drawn from the reference rarely warns, a window below the minimum never alarms,
//! a large shift alarms; and a format-1 model artifact still loads, without a reference.

use checkout_domain::model::drift::{
    column_drift, drift, overall, Cell, ColumnReference, Reference, Status, Window, ALARM, EPSILON,
    MIN_WINDOW, WARN,
};
use checkout_domain::ope::SplitMix64;
use serde_json::{json, Value};

#[path = "support/reference.rs"]
mod reference;

fn normal(rng: &mut SplitMix64) -> f64 {
    let (u, v) = (rng.uniform().max(1e-300), rng.uniform());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn cells_json(cells: &[Cell]) -> Vec<Value> {
    cells
        .iter()
        .map(|c| match c {
            Cell::Number(x) => json!(x),
            Cell::Category(s) => json!(s),
            Cell::Missing => Value::Null,
        })
        .collect()
}

#[test]
fn psi_equals_an_independent_numpy_implementation() {
    let mut rng = SplitMix64(17);
    let mut columns = Vec::new();
    // Continuous with missing values; integer-valued with heavy ties (fewer than ten bins); a skewed
    // one; categorical with a rare tail, missing values, and unseen categories live.
    let continuous = |rng: &mut SplitMix64, shift: f64, n: usize| -> Vec<Cell> {
        (0..n)
            .map(|_| {
                if rng.uniform() < 0.05 {
                    Cell::Missing
                } else {
                    Cell::Number(normal(rng) + shift)
                }
            })
            .collect()
    };
    let ties = |rng: &mut SplitMix64, p: f64, n: usize| -> Vec<Cell> {
        (0..n)
            .map(|_| {
                Cell::Number(if rng.uniform() < p {
                    0.0
                } else {
                    (rng.uniform() * 4.0).floor()
                })
            })
            .collect()
    };
    let skewed = |rng: &mut SplitMix64, scale: f64, n: usize| -> Vec<Cell> {
        (0..n)
            .map(|_| Cell::Number((normal(rng) * scale).exp()))
            .collect()
    };
    let categories = |rng: &mut SplitMix64, unseen: f64, n: usize| -> Vec<Cell> {
        (0..n)
            .map(|_| {
                let u = rng.uniform();
                if u < 0.03 {
                    Cell::Missing
                } else if u < 0.03 + unseen {
                    Cell::Category(format!("new-{}", (rng.uniform() * 5.0) as u32))
                } else {
                    Cell::Category(format!("c{}", (normal(rng).abs() * 30.0) as u32))
                }
            })
            .collect()
    };
    let cases: Vec<(&str, &str, Vec<Cell>, Vec<Cell>)> = vec![
        (
            "continuous",
            "numeric",
            continuous(&mut rng, 0.0, 20_000),
            continuous(&mut rng, 0.3, 3_000),
        ),
        (
            "ties",
            "numeric",
            ties(&mut rng, 0.6, 20_000),
            ties(&mut rng, 0.4, 3_000),
        ),
        (
            "skewed",
            "numeric",
            skewed(&mut rng, 1.0, 20_000),
            skewed(&mut rng, 1.3, 3_000),
        ),
        (
            "category",
            "categorical",
            categories(&mut rng, 0.0, 20_000),
            categories(&mut rng, 0.04, 3_000),
        ),
    ];
    let mut ours = serde_json::Map::new();
    for (name, kind, reference, live) in &cases {
        let r = ColumnReference::fit(name, reference);
        let d = column_drift(&r, live);
        assert_eq!(d.kind, *kind);
        ours.insert(name.to_string(), json!(d.psi));
        columns.push(
            json!({"name": name, "kind": kind, "reference": cells_json(reference),
                            "live": cells_json(live)}),
        );
    }
    let out = reference::run(
        "psi_reference.py",
        &["psi"],
        Some(&json!({"epsilon": EPSILON, "columns": columns})),
    );
    let numpy: Value = serde_json::from_slice(&out).unwrap();
    for (name, value) in &ours {
        let (a, b) = (value.as_f64().unwrap(), numpy[name].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-12, "{name}: {a} vs numpy {b}");
        assert!(a > 0.0, "{name}: a shifted window has a positive PSI");
    }
}

/// A reference of 50,000 standard normal values and a uniform category, and windows drawn from it.
fn reference(rng: &mut SplitMix64) -> (ColumnReference, Vec<Cell>) {
    let training: Vec<Cell> = (0..50_000).map(|_| Cell::Number(normal(rng))).collect();
    (ColumnReference::fit("x", &training), training)
}

#[test]
fn windows_from_the_reference_rarely_warn_and_small_ones_never_alarm() {
    let mut rng = SplitMix64(2026);
    let (r, training) = reference(&mut rng);
    let draw = |rng: &mut SplitMix64, n: usize| -> Vec<Cell> {
        (0..n)
            .map(|_| {
                training[(rng.uniform() * training.len() as f64) as usize % training.len()].clone()
            })
            .collect()
    };
    // n = 1,000, 1,000 resamples: the expected PSI is about 9/1000, far below the warning line.
    let mut warned = 0;
    for _ in 0..1000 {
        let d = column_drift(&r, &draw(&mut rng, 1000));
        warned += usize::from(d.psi >= WARN);
        assert!(
            (d.noise_floor - 9.0 / 1000.0).abs() < 1e-12,
            "10 bins + missing"
        );
    }
    assert!(warned <= 10, "{warned} of 1000 reference windows warned");
    // A window below the minimum is insufficient, whatever its PSI.
    let tiny = column_drift(&r, &draw(&mut rng, 40));
    assert_eq!(tiny.status, Status::Insufficient);
    let shifted: Vec<Cell> = (0..MIN_WINDOW - 1)
        .map(|_| Cell::Number(normal(&mut rng) + 3.0))
        .collect();
    let d = column_drift(&r, &shifted);
    assert!(d.psi >= ALARM);
    assert_eq!(
        d.status,
        Status::Insufficient,
        "big shift, too few decisions: reported, not alarmed"
    );
    // A large shift in a full window alarms; a missing column is its own bin.
    let shifted: Vec<Cell> = (0..5_000)
        .map(|_| Cell::Number(normal(&mut rng) + 1.0))
        .collect();
    assert_eq!(column_drift(&r, &shifted).status, Status::Alarm);
    let gone: Vec<Cell> = (0..5_000).map(|_| Cell::Missing).collect();
    let d = column_drift(&r, &gone);
    assert_eq!((d.status, d.missing_share_live), (Status::Alarm, 1.0));
}

#[test]
fn a_window_is_judged_by_its_worst_column_including_the_score() {
    let mut rng = SplitMix64(5);
    let rows: Vec<checkout_domain::features::UciSession> = Vec::new();
    let empty = Reference::fit(&rows.iter().collect::<Vec<_>>(), &[]);
    assert!(empty.inputs.is_empty());
    let scores: Vec<Cell> = (0..20_000).map(|_| Cell::Number(rng.uniform())).collect();
    let browsers: Vec<Cell> = (0..20_000)
        .map(|i| Cell::Category(["1", "2", "3"][i % 3].to_string()))
        .collect();
    let reference = Reference {
        rows: 20_000,
        inputs: vec![ColumnReference::fit("browser", &browsers)],
        score: ColumnReference::fit("score", &scores),
    };
    let window = Window {
        inputs: (0..2_000)
            .map(|i| {
                [("browser".to_string(), json!(["1", "2", "3", "9"][i % 4]))]
                    .into_iter()
                    .collect()
            })
            .collect(),
        scores: (0..2_000).map(|_| rng.uniform()).collect(),
    };
    let columns = drift(&reference, &window);
    assert_eq!(columns.len(), 2);
    let browser = &columns[0];
    assert_eq!(browser.out_of_vocabulary_share, Some(0.25));
    assert!(browser.psi >= ALARM, "a quarter unseen: {}", browser.psi);
    assert_eq!(columns[1].name, "score");
    assert_eq!(columns[1].status, Status::Ok);
    assert_eq!(overall(&columns), Status::Alarm);
}
