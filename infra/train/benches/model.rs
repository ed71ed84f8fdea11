//! The propensity model's costs on the UCI file, one core: training time (the whole recipe from parsed rows:
//! vectorizer fit, transform, linfa fit; and the 5-fold cross-validation) and single-row inference latency
//! (vectorize + score + top-3 reasons, per call).
//!
//! Writes `target/bench/model-rust.json`, which `infra/bench_model.py` reads to put scikit-learn's figures,
//! measured in the same run on the same data, protocol and folds, beside these. `make bench-model` runs both.
//! Medians throughout; per-call latencies are single `Instant` reads around each call (timer overhead,
//! measured and reported, is about 20–30 ns here).

use checkout_domain::model::columns::{read_csv, Dataset};
use checkout_domain::model::metrics::{per_call_ns, quantile, stratified_folds};
use checkout_domain::model::registry::fallback_model;
use checkout_train::{cross_validate, fit, TrainConfig};
use serde_json::json;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

fn median_secs(runs: usize, mut f: impl FnMut()) -> (f64, Vec<f64>) {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times)
}

fn summary(sorted_ns: &[f64]) -> serde_json::Value {
    json!({
        "p50_ns": quantile(sorted_ns, 0.5),
        "p90_ns": quantile(sorted_ns, 0.9),
        "p99_ns": quantile(sorted_ns, 0.99),
        "calls": sorted_ns.len(),
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("../shared/data/online_shoppers_intention.csv");
    let data: Dataset = match std::fs::File::open(&path) {
        Ok(f) => read_csv(std::io::BufReader::new(f)).expect("the UCI file reads"),
        Err(e) => {
            eprintln!("SKIPPED: {}: {e}", path.display());
            return;
        }
    };
    let config = TrainConfig::default();
    let rows: Vec<_> = data.rows.iter().collect();

    let (fit_median, fit_runs) = median_secs(7, || {
        black_box(fit(&rows, &data.labels, &config).expect("fits"));
    });
    let mut cv = None;
    let (cv_median, cv_runs) = median_secs(3, || {
        cv = Some(cross_validate(&data, &config).expect("cross-validates"));
    });
    let cv = cv.expect("ran");

    let model = fallback_model().expect("the compiled-in model");
    let n = data.rows.len();
    let calls = 200_000;
    // Warm caches and branch predictors first.
    for i in 0..10_000 {
        black_box(model.score(&data.rows[i % n], 3));
    }
    let timer = per_call_ns(calls, |i| {
        black_box(i);
    });
    let score = per_call_ns(calls, |i| {
        black_box(model.score(black_box(&data.rows[i % n]), 3));
    });
    let vectors: Vec<Vec<f64>> = data.rows.iter().map(|r| model.vectorize(r)).collect();
    let probability = per_call_ns(calls, |i| {
        black_box(model.probability(black_box(&vectors[i % n])));
    });

    let report = json!({
        "rows": n,
        "features": model.artifact().vectorizer.width(),
        "train": {
            "fit_median_s": fit_median,
            "fit_runs_s": fit_runs,
            "cv5_median_s": cv_median,
            "cv5_runs_s": cv_runs,
            "cv5_fold_auc": cv.fold_auc,
            "cv5_mean_auc": cv.mean_auc,
            "folds": stratified_folds(&data.labels, config.folds, config.seed),
        },
        "inference": {
            "timer_overhead": summary(&timer),
            "score_row_top3": summary(&score),
            "probability_from_vector": summary(&probability),
        },
        "artifact_bytes": model.artifact().encode().expect("encodes").len(),
    });
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir).expect("target/bench");
    let out = out_dir.join("model-rust.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&report).expect("json")).expect("writes");
    println!(
        "linfa: fit median {:.3} s, 5-fold CV median {:.3} s (mean AUC {:.4}); score p50 {} ns p99 {} ns → {}",
        fit_median,
        cv_median,
        cv.mean_auc,
        report["inference"]["score_row_top3"]["p50_ns"],
        report["inference"]["score_row_top3"]["p99_ns"],
        out.display()
    );
}
