//! The off-policy evaluation engine's cost, one core: the five estimators and a 2,000-resample bootstrap
//! over 1,000,000 logged decisions, three runs (median), then the same work in numpy
//! (`infra/ope_reference.py bench`) in the same run, and the ratio. `make bench-ope` runs it; it writes
//! `target/bench/ope.json`.

use checkout_domain::ope::{evaluate, Row, Settings, SplitMix64};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn main() {
    let n: usize = std::env::var("OPE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let resamples = 2_000;
    // The same shape as the numpy side: 8 actions logged uniformly, a target in [0.02, 0.5), a 10%
    // chance of a reward in [10, 100).
    let mut rng = SplitMix64(1);
    let rows: Vec<Row> = (0..n)
        .map(|_| {
            let reward = if rng.uniform() < 0.1 {
                10.0 + 90.0 * rng.uniform()
            } else {
                0.0
            };
            Row {
                reward,
                logged_propensity: 1.0 / 8.0,
                target_propensity: 0.02 + 0.48 * rng.uniform(),
                logged_prediction: 10.0 * rng.uniform(),
                target_prediction: 10.0 * rng.uniform(),
                unsupported: false,
            }
        })
        .collect();
    let settings = Settings {
        resamples,
        ..Settings::default()
    };
    let mut seconds: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(evaluate(std::hint::black_box(&rows), settings));
            t.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    let ours = seconds[1];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut numpy: Vec<f64> = (0..3)
        .map(|seed| {
            let out = Command::new(root.join(".venv/bin/python"))
                .arg(root.join("infra/ope_reference.py"))
                .args([
                    "bench",
                    "--rows",
                    &n.to_string(),
                    "--resamples",
                    &resamples.to_string(),
                ])
                .args(["--seed", &(seed + 1).to_string()])
                // One core, like the Rust side: no BLAS threads in the matrix products.
                .env("OPENBLAS_NUM_THREADS", "1")
                .env("OMP_NUM_THREADS", "1")
                .env("MKL_NUM_THREADS", "1")
                .output()
                .expect("numpy runs (make venv)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            v["seconds"].as_f64().expect("seconds")
        })
        .collect();
    numpy.sort_by(f64::total_cmp);
    let report = json!({
        "rows": n, "resamples": resamples,
        "rust_seconds_runs": seconds, "rust_seconds_median": ours,
        "numpy_seconds_runs": numpy, "numpy_seconds_median": numpy[1],
        "ratio_numpy_over_rust": numpy[1] / ours,
    });
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(
        dir.join("ope.json"),
        serde_json::to_vec_pretty(&report).expect("json"),
    )
    .expect("written");
    println!(
        "off-policy evaluation, {n} rows, {resamples} Poisson-bootstrap resamples, five estimators, one core:\n  \
         Rust   median {ours:.2} s (runs {seconds:.2?})\n  numpy  median {:.2} s (runs {numpy:.2?})\n  \
         numpy / Rust = {:.1}x",
        numpy[1],
        numpy[1] / ours
    );
}
