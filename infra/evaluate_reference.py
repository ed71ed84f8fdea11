#!/usr/bin/env python3
"""The reference for `checkout-ai evaluate`: pandas cleans the CSV by the documented rules, gbstats 0.8.0
computes every number. Prints one JSON document with the same quantities as report.json (and the time
each stage took), for the differential test (infra/cli/tests/evaluate_reference.rs) and the benchmark
(make bench-evaluate).

Cleaning rules (docs/experiments.md, "Offline"), implemented here independently of the Rust code:
- a bad row (wrong field count; empty unit or variant; a value that is missing, not a finite number, or
  not 0/1 for a proportion; a variant not in --weights) is dropped and counted;
- a unit's rows combine: proportion = any (max), mean and ratio columns = sum, covariate = max;
- units seen in more than one variant are excluded.

    evaluate_reference.py --csv F --unit U --variant V --control C --metric NAME:COL:proportion|mean ...
        [--ratio NAME:NUM:DEN] [--covariate COL] [--weights a=0.5,b=0.5] [--sequential] [--bayesian]
        [--alpha 0.05] [--correction holm|bh|none]
"""
import argparse
import json
import math
import time

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import FrequentistConfig, SequentialConfig, SequentialTwoSidedTTest, TwoSidedTTest
from gbstats.models.statistics import (ProportionStatistic, RatioStatistic, RegressionAdjustedStatistic,
                                       SampleMeanStatistic)
from gbstats.utils import check_srm


def num(x):
    return None if x is None or not math.isfinite(float(x)) else float(x)


def holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def adjust(p, method):
    p = [1.0 if not math.isfinite(x) else x for x in p]
    if method == "none" or not p:
        return p
    if method == "holm":
        return holm(p)
    return [float(x) for x in false_discovery_control(np.array(p), method="bh")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--unit", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--control", required=True)
    ap.add_argument("--metric", action="append", default=[])
    ap.add_argument("--ratio", action="append", default=[])
    ap.add_argument("--covariate")
    ap.add_argument("--weights")
    ap.add_argument("--sequential", action="store_true")
    ap.add_argument("--bayesian", action="store_true")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--correction", default="holm")
    a = ap.parse_args()
    t0 = time.perf_counter()

    metrics = [dict(zip(("name", "col", "kind"), m.split(":"))) for m in a.metric]
    ratios = [dict(zip(("name", "num", "den"), r.split(":"))) for r in a.ratio]
    binary = {m["col"] for m in metrics if m["kind"] == "proportion"}
    summed = {m["col"] for m in metrics if m["kind"] == "mean"} | {r["num"] for r in ratios} | {r["den"] for r in ratios}
    value_cols = sorted(binary | summed | ({a.covariate} if a.covariate else set()))

    with open(a.csv, "rb") as f:
        lines = sum(1 for _ in f) - 1
    df = pd.read_csv(a.csv, dtype=str, keep_default_na=False, on_bad_lines="skip", engine="c")
    bad = lines - len(df)  # rows with too many fields
    ok = df.notna().all(axis=1)  # too few fields leave NaN
    unit = df[a.unit].fillna("").str.strip()
    variant = df[a.variant].fillna("").str.strip()
    ok &= (unit != "") & (variant != "")
    if a.weights:
        weights = dict((k, float(v)) for k, v in (p.split("=") for p in a.weights.split(",")))
        ok &= variant.isin(list(weights))
    values = {}
    for c in value_cols:
        v = pd.to_numeric(df[c].fillna("").str.strip(), errors="coerce")
        good = np.isfinite(v)
        if c in binary:
            good &= v.isin([0.0, 1.0])
        ok &= good
        values[c] = v
    bad += int((~ok).sum())
    clean = pd.DataFrame({"unit": unit[ok], "variant": variant[ok], **{c: values[c][ok] for c in value_cols}})
    t_clean = time.perf_counter()

    agg = {"variant": ["nunique", "first"]}
    for c in value_cols:
        agg[c] = []
        if c in binary:
            agg[c].append("max")
        if c in summed:
            agg[c].append("sum")
        if c == a.covariate:
            agg[c].append("max")
        agg[c] = sorted(set(agg[c]))
    units = clean.groupby("unit", sort=False).agg(agg)
    multi = int((units[("variant", "nunique")] > 1).sum())
    kept = units[units[("variant", "nunique")] == 1]
    arm = kept[("variant", "first")]
    found = sorted(set(arm.unique()) - {a.control})
    if a.weights:
        variants = [a.control] + [k for k in weights if k != a.control]
        w = [weights[v] for v in variants]
    else:
        variants = [a.control] + found
        w = [1.0 / len(variants)] * len(variants)
    t_units = time.perf_counter()

    def col(c, how):
        return kept[(c, how)].astype(float)

    def stats(metric, v):
        sel = arm == v
        n = int(sel.sum())
        if metric.get("kind") == "ratio":
            x, y = col(metric["num"], "sum")[sel], col(metric["den"], "sum")[sel]
            return RatioStatistic(n=n, m_statistic=SampleMeanStatistic(n=n, sum=x.sum(), sum_squares=(x * x).sum()),
                                  d_statistic=SampleMeanStatistic(n=n, sum=y.sum(), sum_squares=(y * y).sum()),
                                  m_d_sum_of_products=(x * y).sum())
        if metric["kind"] == "proportion":
            x = col(metric["col"], "max")[sel]
            post = ProportionStatistic(n=n, sum=x.sum())
        else:
            x = col(metric["col"], "sum")[sel]
            post = SampleMeanStatistic(n=n, sum=x.sum(), sum_squares=(x * x).sum())
        if not a.covariate:
            return post
        y = col(a.covariate, "max")[sel]
        return RegressionAdjustedStatistic(n=n, post_statistic=post,
                                           pre_statistic=SampleMeanStatistic(n=n, sum=y.sum(), sum_squares=(y * y).sum()),
                                           post_pre_sum_of_products=(x * y).sum(), theta=0)

    out_metrics = []
    for m in metrics + [dict(r, kind="ratio") for r in ratios]:
        st = {v: stats(m, v) for v in variants}
        comps = []
        for v in variants[1:]:
            cfg = dict(alpha=a.alpha, difference_type="relative")
            if a.sequential:
                r = SequentialTwoSidedTTest(st[a.control], st[v], SequentialConfig(**cfg)).compute_result()
            else:
                r = TwoSidedTTest(st[a.control], st[v], FrequentistConfig(**cfg)).compute_result()
            comp = {"variant": v, "effect": num(r.expected), "ci": [num(r.ci[0]), num(r.ci[1])],
                    "p_value": num(r.p_value), "error": r.error_message}
            if a.bayesian:
                b = EffectBayesianABTest(st[a.control], st[v], EffectBayesianConfig(
                    **cfg, prior_type="relative", prior_effect=GaussianPrior(mean=0, variance=1, proper=False))
                ).compute_result()
                comp["bayesian"] = {"chance_to_win": num(b.chance_to_win), "effect": num(b.expected),
                                    "ci": [num(b.ci[0]), num(b.ci[1])], "risk_control": num(b.risk[0]),
                                    "risk_variant": num(b.risk[1]), "error": b.error_message}
            comps.append(comp)
        out_metrics.append({"name": m["name"],
                            "arms": [{"variant": v, "n": int(st[v].n), "mean": num(st[v].unadjusted_mean
                                                                              if hasattr(st[v], "unadjusted_mean")
                                                                              else st[v].mean)}
                                     for v in variants],
                            "comparisons": comps})
    flat = [c["p_value"] if c["p_value"] is not None else 1.0 for m in out_metrics for c in m["comparisons"]]
    adjusted = iter(adjust(flat, a.correction))
    for m in out_metrics:
        for c in m["comparisons"]:
            c["adjusted_p_value"] = next(adjusted)
    counts = [int((arm == v).sum()) for v in variants]
    t_stats = time.perf_counter()
    print(json.dumps({
        "data": {"rows": lines, "bad_rows": bad, "repeated_rows": int(len(clean) - len(units)),
                 "units": int(len(units)), "multi_variant": multi},
        "arms": [{"variant": v, "units": c, "weight": x} for v, c, x in zip(variants, counts, w)],
        "srm_p_value": float(check_srm(counts, w)),
        "metrics": out_metrics,
        "seconds": {"read_and_clean": t_clean - t0, "units": t_units - t_clean, "statistics": t_stats - t_units,
                    "total": t_stats - t0},
    }))


if __name__ == "__main__":
    main()
