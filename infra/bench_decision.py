#!/usr/bin/env python3
"""Puts scikit-learn's single-row predict_proba, measured now, beside the scorer's decision compute.

    bench_decision.py target/bench/decision-rust.json      # written by `cargo bench -p scorer --bench decision`

The sklearn side is the same model recipe as bench_model.py (one-hot + scaling + logistic regression,
C=1, fitted on the UCI file), timed on one already-vectorized row per call: only the model call, while
the Rust figure is the whole decision (assignment, vectorize, score, reasons, policy, ranking, response
JSON). Writes target/bench/decision.json and prints the medians and ratios. `make bench-decision` runs it.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_model import DATA, encode, fit


def main():
    rust_path = Path(sys.argv[1])
    rust = json.loads(rust_path.read_text())
    frame = pd.read_csv(DATA)
    y = frame.pop("Revenue").astype(int).values
    columns, scaler, model = fit(frame, y)
    vectors = scaler.transform(encode(frame, columns).values)
    rows = [vectors[i : i + 1] for i in range(len(vectors))]
    for i in range(2000):
        model.predict_proba(rows[i % len(rows)])
    ns = []
    for i in range(20_000):
        row = rows[i % len(rows)]
        t = time.perf_counter_ns()
        model.predict_proba(row)
        ns.append(time.perf_counter_ns() - t)
    ns.sort()
    q = lambda p: float(ns[min(len(ns) - 1, max(0, int(np.ceil(p * len(ns))) - 1))])
    sk = {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "n": len(ns)}
    ours = rust["decision_compute_ns"]
    report = {
        **rust,
        "sklearn_predict_proba_one_row_ns": sk,
        "p50_ratio_sklearn_over_decision": sk["p50"] / ours["p50"],
        "p99_ratio_sklearn_over_decision": sk["p99"] / ours["p99"],
    }
    out = rust_path.with_name("decision.json")
    out.write_text(json.dumps(report, indent=2))
    full = rust["request_to_response_and_event_ns"]
    print("scorer (medians; one machine, one run)")
    print(f"  decision compute (features in hand -> response JSON)  p50 {ours['p50']/1e3:7.2f} us  p99 {ours['p99']/1e3:7.2f} us")
    for name, label in (("decision_compute_learned_ns", "with a learned policy"),
                        ("decision_compute_learned_shadow_ns", "with a learned policy and a shadow")):
        x = rust[name]
        print(f"  decision compute {label:<34}  p50 {x['p50']/1e3:7.2f} us  p99 {x['p99']/1e3:7.2f} us")
    print(f"  the shadow adds {rust['shadow_added_p99_ns']/1e3:.2f} us to the p99")
    print(f"  body -> validated -> pseudonymized -> decided -> response + event JSON  p50 {full['p50']/1e3:7.2f} us  p99 {full['p99']/1e3:7.2f} us")
    print(f"  sklearn predict_proba, one vectorized row            p50 {sk['p50']/1e3:7.2f} us  p99 {sk['p99']/1e3:7.2f} us")
    print(f"  -> sklearn's model call alone is {report['p50_ratio_sklearn_over_decision']:.0f}x (p50) and "
          f"{report['p99_ratio_sklearn_over_decision']:.0f}x (p99) our whole decision")
    for name in ("cold_start_ms_local_stack", "cold_start_ms_stack_stopped"):
        if name in rust:
            c = rust[name]
            print(f"  {name.replace('_', ' ')}: exec -> first /next  p50 {c['p50']:.1f} ms  p90 {c['p90']:.1f} ms  (n={c['n']})")
    print(f"  release binary {rust['binary']}: {rust['binary_bytes']/1e6:.2f} MB")
    print(f"  written to {out}")


if __name__ == "__main__":
    main()
