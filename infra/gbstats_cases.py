#!/usr/bin/env python3
"""Differential cases for the Rust statistics: random sufficient statistics (with edge cases), and what
gbstats 0.8.0 computes for them. Prints one JSON document: {"cases": [{"test", "config", "a", "b",
"expected"}]}. The Rust test (shared/domain/tests/gbstats_differential.rs) runs this script and compares.

    gbstats_cases.py --count 2000 --seed 7
"""
import argparse
import json
import math
import random

from gbstats.frequentist.tests import FrequentistConfig, SequentialConfig, SequentialTwoSidedTTest, TwoSidedTTest
from gbstats.models.statistics import (ProportionStatistic, RatioStatistic, RegressionAdjustedStatistic,
                                       SampleMeanStatistic)


def to_gb(s):
    t = s["type"]
    if t == "proportion":
        return ProportionStatistic(n=s["n"], sum=s["sum"])
    if t == "mean":
        return SampleMeanStatistic(n=s["n"], sum=s["sum"], sum_squares=s["sum_squares"])
    if t == "ratio":
        return RatioStatistic(n=s["n"], m_statistic=to_gb(s["numerator"]), d_statistic=to_gb(s["denominator"]),
                              m_d_sum_of_products=s["sum_of_products"])
    if t == "regression_adjusted":
        return RegressionAdjustedStatistic(n=s["n"], post_statistic=to_gb(s["post"]), pre_statistic=to_gb(s["pre"]),
                                           post_pre_sum_of_products=s["sum_of_products"], theta=0)
    raise ValueError(t)


def sample_values(r, n, kind):
    """Sufficient statistics of `n` drawn values (drawn, so they are internally consistent)."""
    k = min(n, 2000)  # draw at most 2000 values and scale up: consistent moments, any n
    scale = n / k
    if kind == "binary":
        p = r.choices([0.0, 1.0, r.random(), r.random() * 0.01], weights=[1, 1, 6, 2])[0]
        xs = [1.0 if r.random() < p else 0.0 for _ in range(k)]
    else:
        mu = r.choices([0.0, -5.0, r.uniform(-100, 100), r.uniform(0, 1e4)], weights=[1, 1, 4, 4])[0]
        sd = r.choices([0.0, r.uniform(0, 3), r.uniform(0, 1e3)], weights=[1, 4, 4])[0]
        xs = [r.gauss(mu, sd) for _ in range(k)]
    return xs, scale


def draw(r, n, kind):
    xs, scale = sample_values(r, n, kind)
    if kind == "binary":
        return {"type": "proportion", "n": n, "sum": float(round(sum(xs) * scale))}
    return {"type": "mean", "n": n, "sum": sum(xs) * scale, "sum_squares": sum(x * x for x in xs) * scale}


def paired(r, n, kind_a, kind_b, rho):
    """Two correlated per-unit values and their sum of products."""
    k = min(n, 2000)
    scale = n / k
    xs, ys = [], []
    for _ in range(k):
        z1, z2 = r.gauss(0, 1), r.gauss(0, 1)
        x = 10 + 3 * z1
        y = 10 + 3 * (rho * z1 + math.sqrt(max(0.0, 1 - rho * rho)) * z2)
        xs.append(float(x > 10) if kind_a == "binary" else x)
        ys.append(float(y > 10) if kind_b == "binary" else abs(y))
    def stat(v):
        if kind_a == "binary" and v is xs or kind_b == "binary" and v is ys:
            return {"type": "proportion", "n": n, "sum": sum(v) * scale}
        return {"type": "mean", "n": n, "sum": sum(v) * scale, "sum_squares": sum(t * t for t in v) * scale}
    return stat(xs), stat(ys), sum(x * y for x, y in zip(xs, ys)) * scale


def statistic(r, kind, n):
    if kind in ("proportion", "mean"):
        return draw(r, n, "binary" if kind == "proportion" else "real")
    if kind == "ratio":
        m, d, p = paired(r, n, "real", r.choice(["real", "binary"]), r.uniform(-0.9, 0.9))
        return {"type": "ratio", "n": n, "numerator": m, "denominator": d, "sum_of_products": p}
    post, pre, p = paired(r, n, r.choice(["real", "binary"]), "real", r.uniform(-0.9, 0.9))
    return {"type": "regression_adjusted", "n": n, "post": post, "pre": pre, "sum_of_products": p}


def case(r):
    kind = r.choice(["proportion", "mean", "ratio", "regression_adjusted"])
    # Edge sizes (1, 2, 3, 10^9) in about a fifth of the cases; the rest realistic.
    n_a = r.choices([1, 2, 3, 10, 150, r.randint(2, 5000), 10**6, 10**9], weights=[1, 1, 1, 2, 3, 8, 2, 1])[0]
    n_b = r.choices([n_a, 1, 2, r.randint(2, 5000), 10**9], weights=[6, 1, 1, 6, 1])[0]
    a, b = statistic(r, kind, n_a), statistic(r, kind, n_b)
    if kind == "regression_adjusted" and a["post"]["type"] != b["post"]["type"]:
        b["post"] = dict(a["post"], n=n_b)
    config = {"alpha": r.choice([0.05, 0.1, 0.01]), "difference": r.choice(["relative", "absolute"]),
              "test_value": 0.0}
    test = r.choice(["two_sided", "sequential", "bayesian"])
    gb_config = dict(alpha=config["alpha"], difference_type=config["difference"])
    if test == "bayesian":
        from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
        prior = {"mean": r.choice([0.0, 0.1, -0.05]), "variance": r.choice([1.0, 0.3, 0.01]), "proper": r.random() < 0.5}
        config.update(inverse=r.random() < 0.3, prior_on=r.choice(["relative", "absolute"]), prior=prior)
        try:
            result = EffectBayesianABTest(to_gb(a), to_gb(b), EffectBayesianConfig(
                **gb_config, inverse=config["inverse"], prior_type=config["prior_on"],
                prior_effect=GaussianPrior(**prior))).compute_result()
        except ZeroDivisionError:
            # gbstats raises when a prior on the absolute effect meets a zero baseline in a relative test.
            return {"test": test, "config": config, "a": a, "b": b, "expected": {
                "expected": None, "ci": [None, None], "p_value": None, "uplift_mean": None,
                "uplift_stddev": None, "error": "RAISES_ZeroDivisionError"}}
        num = lambda x: None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)
        expected = {"chance_to_win": num(result.chance_to_win), "expected": num(result.expected),
                    "ci": [num(result.ci[0]), num(result.ci[1])], "uplift_mean": num(result.uplift.mean),
                    "uplift_stddev": num(result.uplift.stddev), "risk": [num(result.risk[0]), num(result.risk[1])],
                    "p_value": None, "error": result.error_message}
        return {"test": test, "config": config, "a": a, "b": b, "expected": expected}
    if test == "two_sided":
        result = TwoSidedTTest(to_gb(a), to_gb(b), FrequentistConfig(**gb_config)).compute_result()
    else:
        result = SequentialTwoSidedTTest(to_gb(a), to_gb(b), SequentialConfig(**gb_config)).compute_result()
    num = lambda x: None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)
    expected = {"expected": num(result.expected), "ci": [num(result.ci[0]), num(result.ci[1])],
                "p_value": num(result.p_value), "uplift_mean": num(result.uplift.mean),
                "uplift_stddev": num(result.uplift.stddev), "error": result.error_message}
    return {"test": test, "config": config, "a": a, "b": b, "expected": expected}


def srm_case(r):
    from gbstats.utils import check_srm
    k = r.choice([2, 2, 3, 4])
    weights = r.choice([[1.0 / k] * k, [r.random() + 0.01 for _ in range(k)]])
    if r.random() < 0.1:
        weights[r.randrange(k)] = 0.0
    scale = r.choice([0, 1, 10, 1000, 10**6])
    units = [int(r.random() * scale * w) + r.choice([0, 0, r.randint(0, 50)]) for w in weights]
    return {"units": units, "weights": weights, "p_value": float(check_srm(units, weights))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    r = random.Random(args.seed)
    print(json.dumps({"gbstats": __import__("gbstats").__version__ if hasattr(__import__("gbstats"), "__version__") else "0.8.0",
                      "cases": [case(r) for _ in range(args.count)],
                      "srm": [srm_case(r) for _ in range(args.count)]}))


if __name__ == "__main__":
    main()
