#!/usr/bin/env python3
"""The reference for lift by cohort: pandas slices one row per experiment unit by each dimension, gbstats
0.8.0 computes every cohort's tests, numpy and scipy the heterogeneity (Cochran's Q). Written independently
of the Rust code (shared/domain/src/stats/breakdown.rs) for the differential test
infra/cli/tests/cohort_reference.rs.

    cohort_reference.py --csv UNITS --variants control,treatment,bold --min-units 150 --alpha 0.05

UNITS columns: unit, variant, device, visitor, country, placement, converted
(0/1), revenue, orders, orders_before, revenue_before. The metrics are the decision API's: conversion
(CUPED on orders_before), revenue_per_user (CUPED on revenue_before), average_order_value
(revenue / orders). Cohorts with fewer than --min-units units in an arm are `too_small`. Every cohort
comparison is one Holm family; the Q tests (one per dimension and metric) are a second.
"""
import argparse
import json

import numpy as np
import pandas as pd
from scipy.stats import chi2

from evaluate_reference import holm, num  # the same helpers as the main reference (same folder)
from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
from gbstats.models.statistics import (ProportionStatistic, RatioStatistic, RegressionAdjustedStatistic,
                                       SampleMeanStatistic)

DIMENSIONS = ["device", "visitor", "country", "placement"]


def mean_stat(x):
    return SampleMeanStatistic(n=len(x), sum=float(x.sum()), sum_squares=float((x * x).sum()))


def statistics(d):
    n = len(d)
    conv = d["converted"].astype(float)
    rev = d["revenue"].astype(float)
    orders = d["orders"].astype(float)
    ob = d["orders_before"].astype(float)
    rb = d["revenue_before"].astype(float)
    return {
        "conversion": RegressionAdjustedStatistic(
            n=n, post_statistic=ProportionStatistic(n=n, sum=float(conv.sum())), pre_statistic=mean_stat(ob),
            post_pre_sum_of_products=float((conv * ob).sum()), theta=0),
        "revenue_per_user": RegressionAdjustedStatistic(
            n=n, post_statistic=mean_stat(rev), pre_statistic=mean_stat(rb),
            post_pre_sum_of_products=float((rev * rb).sum()), theta=0),
        "average_order_value": RatioStatistic(
            n=n, m_statistic=mean_stat(rev), d_statistic=mean_stat(orders),
            m_d_sum_of_products=float((rev * orders).sum())),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--min-units", type=int, default=150)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--variants", required=True, help="comma-separated, control first")
    a = ap.parse_args()
    df = pd.read_csv(a.csv, dtype={"device": str, "visitor": str, "country": str, "placement": str},
                     keep_default_na=False)
    for c in ["device", "visitor", "country", "placement"]:
        df[c] = df[c].replace("", "unknown")
    variants = a.variants.split(",")
    config = FrequentistConfig(alpha=a.alpha, difference_type="relative")
    out, family = {}, []
    for dim in DIMENSIONS:
        out[dim] = {}
        for value, d in sorted(df.groupby(dim), key=lambda kv: kv[0]):
            units = [int((d["variant"] == v).sum()) for v in variants]
            cohort = {"units": units, "too_small": any(u < a.min_units for u in units), "metrics": {}}
            out[dim][value] = cohort
            if cohort["too_small"]:
                continue
            st = {v: statistics(d[d["variant"] == v]) for v in variants}
            for metric in ["conversion", "revenue_per_user", "average_order_value"]:
                comps = []
                for v in variants[1:]:
                    r = TwoSidedTTest(st[variants[0]][metric], st[v][metric], config).compute_result()
                    c = {"variant": v, "effect": num(r.expected), "ci": [num(r.ci[0]), num(r.ci[1])],
                         "p_value": num(r.p_value), "stddev": num(r.uplift.stddev), "error": r.error_message}
                    comps.append(c)
                    family.append(c)
                cohort["metrics"][metric] = comps
    for c, adj in zip(family, holm([c["p_value"] if c["p_value"] is not None else 1.0 for c in family])):
        c["adjusted_p_value"] = adj
    # Cochran's Q per dimension, metric and arm: Σ w (δ − δ̄)², w = 1/σ², against χ²(k − 1).
    tests = []
    for dim in DIMENSIONS:
        for metric in ["conversion", "revenue_per_user", "average_order_value"]:
            for i, v in enumerate(variants[1:]):
                eff = [(c["metrics"][metric][i]["effect"], c["metrics"][metric][i]["stddev"])
                       for c in out[dim].values() if not c["too_small"]
                       and c["metrics"][metric][i]["error"] is None
                       and c["metrics"][metric][i]["stddev"]]
                if len(eff) < 2:
                    continue
                e = np.array([x for x, _ in eff])
                w = 1.0 / np.array([s for _, s in eff]) ** 2
                mean = float((w * e).sum() / w.sum())
                q = float((w * (e - mean) ** 2).sum())
                tests.append({"dimension": dim, "metric": metric, "variant": v, "cohorts": len(eff), "q": q,
                              "p_value": float(chi2.sf(q, len(eff) - 1))})
    for t, adj in zip(tests, holm([t["p_value"] for t in tests])):
        t["adjusted_p_value"] = adj
    print(json.dumps({"cohorts": out, "heterogeneity": tests, "comparisons": len(family)}))


if __name__ == "__main__":
    main()
