#!/usr/bin/env python3
"""An independent numpy implementation of the drift monitor's population stability index.

    psi < doc.json  ->  {"<column>": psi, ...}

`doc.json` is {"epsilon": e, "columns": [{"name", "kind": "numeric"|"categorical", "reference": [...],
"live": [...]}]}, values null when missing. From the reference values it computes the bins itself:
numeric, the nearest-rank 10th..90th percentiles of the non-missing values (repeats and the maximum
dropped) as upper bin bounds; categorical, the 64 most frequent categories. Then one bin for missing
values (and one for unseen categories), each share smoothed as (p + e) / (1 + K e), and
PSI = sum((a - e) * ln(a / e)). shared/domain/tests/drift.rs checks the Rust monitor against it to 1e-12.
"""
import json
import math
import sys
from collections import Counter

import numpy as np


def numeric_bins(values):
    v = np.sort(np.array([x for x in values if x is not None], dtype=float))
    edges = []
    for j in range(1, 10):
        rank = max(1, math.ceil(j * len(v) / 10))
        q = v[rank - 1]
        if (not edges or edges[-1] != q) and q != v[-1]:
            edges.append(q)
    return np.array(edges, dtype=float)


def shares_numeric(values, edges):
    k = len(edges) + 2  # value bins, then missing
    counts = np.zeros(k)
    for x in values:
        if x is None:
            counts[-1] += 1
        else:
            counts[np.searchsorted(edges, x, side="left")] += 1
    return counts / len(values)


def vocabulary(values):
    counts = Counter(x for x in values if x is not None)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:64]
    return sorted(c for c, _ in ranked)


def shares_categorical(values, vocab):
    index = {c: i for i, c in enumerate(vocab)}
    counts = np.zeros(len(vocab) + 2)  # categories, missing, out of vocabulary
    for x in values:
        if x is None:
            counts[len(vocab)] += 1
        elif x in index:
            counts[index[x]] += 1
        else:
            counts[len(vocab) + 1] += 1
    return counts / len(values)


def psi(expected, actual, eps):
    k = len(expected)
    a = (actual + eps) / (1 + k * eps)
    e = (expected + eps) / (1 + k * eps)
    return float(np.sum((a - e) * np.log(a / e)))


def main():
    doc = json.load(sys.stdin)
    eps = doc["epsilon"]
    out = {}
    for c in doc["columns"]:
        if c["kind"] == "numeric":
            edges = numeric_bins(c["reference"])
            e, a = shares_numeric(c["reference"], edges), shares_numeric(c["live"], edges)
        else:
            vocab = vocabulary(c["reference"])
            e, a = shares_categorical(c["reference"], vocab), shares_categorical(c["live"], vocab)
        out[c["name"]] = psi(e, a, eps)
    json.dump(out, sys.stdout)


if __name__ == "__main__" and sys.argv[1:] == ["psi"]:
    main()
