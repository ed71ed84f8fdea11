//! `checkout-ai drift simulate`: the drift monitor's measured behaviour on the real UCI sessions, against
//! the compiled-in model's reference (fitted on those sessions' training split), with a fixed seed:
//!
//! - **false alarms**: windows resampled from the UCI sessions themselves (no drift), at several sizes;
//!   the share whose worst column reaches the warning line (0.1) and the alarm line (0.25);
//! - **detection**: every numeric input in turn shifted by a quarter of its standard deviation in
//!   windows of 10,000; the share of windows in which that column reaches 0.1, and its mean PSI;
//! - the same for a clean case, a standard normal column with its own reference, where the shift is
//!   exactly 0.25σ of a symmetric distribution.

use crate::BoxError;
use checkout_domain::features::session::model_input;
use checkout_domain::model::drift::{
    column_drift, drift, Bins, Cell, ColumnReference, Window, ALARM, WARN,
};
use checkout_domain::model::registry::fallback_model;
use checkout_domain::ope::SplitMix64;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Behaviour {
    pub dataset: String,
    pub sessions: usize,
    pub seed: u64,
    pub reference_rows: u64,
    /// By window size: resamples, and the shares of windows whose worst column warned or alarmed.
    pub false_alarms: Vec<FalseAlarms>,
    /// By shifted column (windows of `detection_window`).
    pub detection: Vec<Detection>,
    pub detection_window: usize,
    pub detection_resamples: usize,
    /// A standard normal column with a 50,000-row reference, shifted by 0.25σ.
    pub normal_shift: Detection,
}

#[derive(Debug, Clone, Serialize)]
pub struct FalseAlarms {
    pub window: usize,
    pub resamples: usize,
    pub warn_rate: f64,
    pub alarm_rate: f64,
    pub mean_max_psi: f64,
    pub p99_max_psi: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    pub column: String,
    pub shift: f64,
    pub warn_rate: f64,
    pub alarm_rate: f64,
    pub mean_psi: f64,
}

/// Runs the measurements on the UCI file (`resamples` at n = 1,000; proportionally fewer elsewhere).
pub fn simulate(uci: &Path, seed: u64, resamples: usize) -> Result<Behaviour, BoxError> {
    let data = checkout_domain::model::columns::read_csv(
        std::fs::File::open(uci).map_err(|e| format!("{}: {e}", uci.display()))?,
    )?;
    let model = fallback_model()?;
    let reference = model
        .artifact()
        .reference
        .clone()
        .ok_or("the compiled-in model has no drift reference")?;
    let rows: Vec<(BTreeMap<String, Value>, f64)> = data
        .rows
        .iter()
        .map(|r| (model_input(r), model.probability(&model.vectorize(r))))
        .collect();
    let mut rng = SplitMix64(seed);
    let sample = |n: usize, rng: &mut SplitMix64| -> Window {
        let mut w = Window::default();
        for _ in 0..n {
            let (inputs, score) = &rows[(rng.uniform() * rows.len() as f64) as usize % rows.len()];
            w.inputs.push(inputs.clone());
            w.scores.push(*score);
        }
        w
    };
    let mut false_alarms = Vec::new();
    for n in [50, 100, 200, 500, 1000, 5000] {
        let k = (resamples * 1000 / n).clamp(100, resamples);
        let mut maxes: Vec<f64> = (0..k)
            .map(|_| {
                drift(&reference, &sample(n, &mut rng))
                    .iter()
                    .map(|c| c.psi)
                    .fold(0.0, f64::max)
            })
            .collect();
        maxes.sort_by(f64::total_cmp);
        false_alarms.push(FalseAlarms {
            window: n,
            resamples: k,
            warn_rate: maxes.iter().filter(|p| **p >= WARN).count() as f64 / k as f64,
            alarm_rate: maxes.iter().filter(|p| **p >= ALARM).count() as f64 / k as f64,
            mean_max_psi: maxes.iter().sum::<f64>() / k as f64,
            p99_max_psi: maxes[((k as f64 * 0.99) as usize).min(k - 1)],
        });
    }
    let detection_window = 10_000;
    let detection_resamples = (resamples / 10).max(20);
    let mut detection = Vec::new();
    for column in reference
        .inputs
        .iter()
        .filter(|c| matches!(c.bins, Bins::Numeric { .. }))
    {
        let values: Vec<f64> = rows
            .iter()
            .filter_map(|(m, _)| m.get(&column.name).and_then(Value::as_f64))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
            / values.len().max(1) as f64)
            .sqrt();
        let shift = 0.25 * sd;
        let psis: Vec<f64> = (0..detection_resamples)
            .map(|_| {
                let w = sample(detection_window, &mut rng);
                let cells: Vec<Cell> = w
                    .inputs
                    .iter()
                    .map(|m| match Cell::of(m.get(&column.name)) {
                        Cell::Number(x) => Cell::Number(x + shift),
                        other => other,
                    })
                    .collect();
                column_drift(column, &cells).psi
            })
            .collect();
        detection.push(rates(&column.name, shift, &psis));
    }
    // The clean case.
    let normal = |rng: &mut SplitMix64| {
        let (u, v) = (rng.uniform().max(1e-300), rng.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let training: Vec<Cell> = (0..50_000)
        .map(|_| Cell::Number(normal(&mut rng)))
        .collect();
    let clean = ColumnReference::fit("standard_normal", &training);
    let psis: Vec<f64> = (0..detection_resamples)
        .map(|_| {
            let cells: Vec<Cell> = (0..detection_window)
                .map(|_| Cell::Number(normal(&mut rng) + 0.25))
                .collect();
            column_drift(&clean, &cells).psi
        })
        .collect();
    Ok(Behaviour {
        dataset: uci
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sessions: rows.len(),
        seed,
        reference_rows: reference.rows,
        false_alarms,
        detection,
        detection_window,
        detection_resamples,
        normal_shift: rates("standard_normal", 0.25, &psis),
    })
}

fn rates(column: &str, shift: f64, psis: &[f64]) -> Detection {
    let n = psis.len().max(1) as f64;
    Detection {
        column: column.to_string(),
        shift,
        warn_rate: psis.iter().filter(|p| **p >= WARN).count() as f64 / n,
        alarm_rate: psis.iter().filter(|p| **p >= ALARM).count() as f64 / n,
        mean_psi: psis.iter().sum::<f64>() / n,
    }
}

pub fn print(b: &Behaviour) {
    println!(
        "drift monitor on {} ({} sessions; reference of {} training rows; seed {})",
        b.dataset, b.sessions, b.reference_rows, b.seed
    );
    println!("  no drift: windows resampled from the sessions themselves; the worst of 18 columns");
    println!("    window  resamples  warn (≥0.1)  alarm (≥0.25)  mean max PSI  p99 max PSI");
    for f in &b.false_alarms {
        println!(
            "    {:>6}  {:>9}  {:>10.1}%  {:>12.1}%  {:>12.4}  {:>11.4}",
            f.window,
            f.resamples,
            100.0 * f.warn_rate,
            100.0 * f.alarm_rate,
            f.mean_max_psi,
            f.p99_max_psi
        );
    }
    println!(
        "  a 0.25σ mean shift of one column, windows of {} ({} each)",
        b.detection_window, b.detection_resamples
    );
    println!("    column                      shift      detected (≥0.1)  alarm (≥0.25)  mean PSI");
    for d in b.detection.iter().chain(std::iter::once(&b.normal_shift)) {
        println!(
            "    {:<26} {:>9.4}  {:>14.1}%  {:>12.1}%  {:>8.4}",
            d.column,
            d.shift,
            100.0 * d.warn_rate,
            100.0 * d.alarm_rate,
            d.mean_psi
        );
    }
}
