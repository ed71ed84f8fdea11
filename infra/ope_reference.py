#!/usr/bin/env python3
"""An independent numpy implementation of the off-policy estimators, from the textbook formulas.

    estimate  < rows.json      ->  {"ips", "clipped_ips", "snips", "dm", "dr", "ess", "max_weight"}
    bench --rows N --resamples B --seed S  ->  timing of the same estimators plus a Poisson bootstrap

`rows.json` is {"clip": M, "rows": [{"reward", "logged_propensity", "target_propensity",
"logged_prediction", "target_prediction"}, ...]}. The Rust engine (shared/domain/src/ope.rs) is tested against
`estimate` to 1e-9 and benchmarked against `bench` (make bench-ope).
"""
import argparse
import json
import sys
import time

import numpy as np


def estimators(r, mu, pi, q_logged, v_target, clip):
    """Dudík, Langford & Li (2011); Swaminathan & Joachims (2015) for SNIPS."""
    w = pi / mu
    ips = np.mean(w * r)
    clipped = np.mean(np.minimum(w, clip) * r)
    snips = np.sum(w * r) / np.sum(w)
    dm = np.mean(v_target)
    dr = dm + np.mean(w * (r - q_logged))
    ess = np.sum(w) ** 2 / np.sum(w**2)
    return {
        "ips": ips,
        "clipped_ips": clipped,
        "snips": snips,
        "dm": dm,
        "dr": dr,
        "ess": ess,
        "max_weight": np.max(w),
    }


def estimate():
    doc = json.load(sys.stdin)
    cols = {k: np.array([row[k] for row in doc["rows"]], dtype=np.float64) for k in doc["rows"][0]}
    out = estimators(
        cols["reward"],
        cols["logged_propensity"],
        cols["target_propensity"],
        cols["logged_prediction"],
        cols["target_prediction"],
        float(doc["clip"]),
    )
    json.dump({k: float(v) for k, v in out.items()}, sys.stdout)


def bench(n, resamples, seed, clip=10.0):
    rng = np.random.default_rng(seed)
    k = 8
    mu = np.full(n, 1.0 / k)
    pi = rng.uniform(0.02, 0.5, n)
    r = (rng.uniform(size=n) < 0.1).astype(np.float64) * rng.uniform(10, 100, n)
    q = rng.uniform(0, 10, n)
    v = rng.uniform(0, 10, n)
    start = time.perf_counter()
    point = estimators(r, mu, pi, q, v, clip)
    w = pi / mu
    terms = np.stack([np.ones(n), w * r, np.minimum(w, clip) * r, w, v, v + w * (r - q)])
    sums = np.zeros((resamples, terms.shape[0]))
    # Poisson(1) counts per (resample, row), in blocks of rows to bound memory: one matrix product each.
    block = max(1, 2_000_000 // resamples) * 16
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        counts = rng.poisson(1.0, size=(resamples, hi - lo)).astype(np.float64)
        sums += counts @ terms[:, lo:hi].T
    est = np.stack(
        [sums[:, 1] / sums[:, 0], sums[:, 2] / sums[:, 0], sums[:, 1] / sums[:, 3], sums[:, 4] / sums[:, 0],
         sums[:, 5] / sums[:, 0]]
    )
    intervals = np.percentile(est, [2.5, 97.5], axis=1)
    elapsed = time.perf_counter() - start
    json.dump(
        {"rows": n, "resamples": resamples, "seconds": elapsed, "dr": float(point["dr"]),
         "dr_interval": [float(intervals[0, 4]), float(intervals[1, 4])]},
        sys.stdout,
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("estimate")
    b = sub.add_parser("bench")
    b.add_argument("--rows", type=int, default=1_000_000)
    b.add_argument("--resamples", type=int, default=2000)
    b.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.cmd == "estimate":
        estimate()
    else:
        bench(a.rows, a.resamples, a.seed)


if __name__ == "__main__":
    main()
