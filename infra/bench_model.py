"""scikit-learn beside linfa, in the same run: `make bench-model`.

Reads target/bench/model-rust.json (written by `cargo bench -p checkout-train --bench model` just before),
measures scikit-learn on the same UCI file, the same protocol (log1p of numeric columns, one-hot of Month,
VisitorType, OperatingSystems, Browser, Region, TrafficType, standard scaling fitted on the training rows,
LogisticRegression C=1) and the same five folds, and prints both with ratios. Medians throughout.

Timed work, on both sides, starts from parsed rows: encoder and scaler fit, transform, model fit. Inference
on the sklearn side is `predict_proba` on one already-vectorized row (1 x 74), the usual single-row call.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "online_shoppers_intention.csv"
CATEGORICAL = ["Month", "VisitorType", "OperatingSystems", "Browser", "Region", "TrafficType"]


def encode(frame, columns=None):
    numeric = np.log1p(frame.drop(columns=CATEGORICAL).astype(float))
    dummies = pd.get_dummies(frame[CATEGORICAL].astype(str)).astype(float)
    x = pd.concat([numeric, dummies], axis=1)
    return x if columns is None else x.reindex(columns=columns, fill_value=0.0)


def fit(frame, y):
    x = encode(frame)
    scaler = StandardScaler().fit(x.values)
    model = LogisticRegression(C=1.0, max_iter=1000, tol=1e-4).fit(scaler.transform(x.values), y)
    return x.columns, scaler, model


def predict(fitted, frame):
    columns, scaler, model = fitted
    return model.predict_proba(scaler.transform(encode(frame, columns).values))[:, 1]


def median_secs(runs, f):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main():
    rust_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "bench" / "model-rust.json"
    rust = json.loads(rust_path.read_text())
    frame = pd.read_csv(DATA)
    y = frame.pop("Revenue").astype(int).values
    folds = np.array(rust["train"]["folds"])

    fit_median, fit_runs = median_secs(7, lambda: fit(frame, y))

    def cv():
        aucs = []
        for k in range(5):
            train, test = folds != k, folds == k
            fitted = fit(frame[train], y[train])
            aucs.append(roc_auc_score(y[test], predict(fitted, frame[test])))
        return aucs

    aucs = []
    cv_median, cv_runs = median_secs(3, lambda: aucs.__setitem__(slice(None), cv()))

    columns, scaler, model = fit(frame, y)
    vectors = scaler.transform(encode(frame, columns).values)
    rows = [vectors[i : i + 1] for i in range(len(vectors))]
    for i in range(2000):
        model.predict_proba(rows[i % len(rows)])
    calls = 20_000
    ns = []
    for i in range(calls):
        row = rows[i % len(rows)]
        t = time.perf_counter_ns()
        model.predict_proba(row)
        ns.append(time.perf_counter_ns() - t)
    ns.sort()
    q = lambda p: ns[min(len(ns) - 1, max(0, int(np.ceil(p * len(ns))) - 1))]

    r_train, r_inf = rust["train"], rust["inference"]
    score = r_inf["score_row_top3"]
    prob = r_inf["probability_from_vector"]
    report = {
        "rows": rust["rows"],
        "features": rust["features"],
        "training": {
            "linfa_fit_median_s": r_train["fit_median_s"],
            "sklearn_fit_median_s": fit_median,
            "fit_ratio_sklearn_over_linfa": fit_median / r_train["fit_median_s"],
            "linfa_cv5_median_s": r_train["cv5_median_s"],
            "sklearn_cv5_median_s": cv_median,
            "cv5_ratio_sklearn_over_linfa": cv_median / r_train["cv5_median_s"],
            "same_folds_auc": {"linfa": r_train["cv5_fold_auc"], "sklearn": aucs},
            "max_fold_auc_difference": max(abs(a - b) for a, b in zip(r_train["cv5_fold_auc"], aucs)),
            "linfa_mean_auc": r_train["cv5_mean_auc"],
            "sklearn_mean_auc": float(np.mean(aucs)),
        },
        "inference_ns": {
            "linfa_model_score_row_top3": score,
            "linfa_model_probability_from_vector": prob,
            "timer_overhead": r_inf["timer_overhead"],
            "sklearn_predict_proba_one_row": {"p50_ns": q(0.5), "p90_ns": q(0.9), "p99_ns": q(0.99), "calls": calls},
            "p50_ratio_sklearn_over_score": q(0.5) / score["p50_ns"],
            "p99_ratio_sklearn_over_score": q(0.99) / score["p99_ns"],
        },
        "artifact_bytes": rust["artifact_bytes"],
    }
    out = rust_path.with_name("model.json")
    out.write_text(json.dumps(report, indent=2))
    t, i = report["training"], report["inference_ns"]
    print(f"propensity model, {report['rows']} rows x {report['features']} features (medians; one machine, one run)")
    print(f"  fit         linfa {t['linfa_fit_median_s']*1e3:8.1f} ms   sklearn {t['sklearn_fit_median_s']*1e3:8.1f} ms   sklearn/linfa {t['fit_ratio_sklearn_over_linfa']:.2f}x")
    print(f"  5-fold CV   linfa {t['linfa_cv5_median_s']*1e3:8.1f} ms   sklearn {t['sklearn_cv5_median_s']*1e3:8.1f} ms   sklearn/linfa {t['cv5_ratio_sklearn_over_linfa']:.2f}x")
    print(f"  same folds  AUC linfa {' '.join(f'{a:.4f}' for a in t['same_folds_auc']['linfa'])} (mean {t['linfa_mean_auc']:.4f})")
    print(f"              AUC sklearn {' '.join(f'{a:.4f}' for a in aucs)} (mean {t['sklearn_mean_auc']:.4f}); max |diff| {t['max_fold_auc_difference']:.5f}")
    sk = i["sklearn_predict_proba_one_row"]
    print(f"  one row     score+reasons p50 {score['p50_ns']:.0f} ns p99 {score['p99_ns']:.0f} ns;"
          f" probability from vector p50 {prob['p50_ns']:.0f} ns p99 {prob['p99_ns']:.0f} ns;"
          f" timer {r_inf['timer_overhead']['p50_ns']:.0f} ns")
    print(f"              sklearn predict_proba p50 {sk['p50_ns']:.0f} ns p99 {sk['p99_ns']:.0f} ns"
          f" -> {i['p50_ratio_sklearn_over_score']:.0f}x (p50), {i['p99_ratio_sklearn_over_score']:.0f}x (p99) slower than ours")
    print(f"  artifact    {report['artifact_bytes']} bytes")
    print(f"  written to {out}")


if __name__ == "__main__":
    main()
