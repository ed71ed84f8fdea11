#!/usr/bin/env python3
"""A deterministic, realistically messy experiment export: the same seed and size give the same bytes.

Columns: user_id, variant, converted (0/1), orders, revenue, pre_revenue (the 30 days before exposure).
About 15% of rows repeat a unit (same variant), 0.2% of units also appear in another variant, and about
0.1% of rows are broken in one of the ways real exports break (missing or unparseable values, a
conversion of 2, a truncated or over-long row, an unknown variant). Treatments lift conversion by a
few percent and leave pre_revenue alone.

    gen_experiment_csv.py --rows 1000000 --seed 1 --arms 2 --out target/bench/experiment-1m.csv
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--arms", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    r = random.Random(a.seed)
    arms = ["control"] + (["treatment"] if a.arms == 2 else [f"treatment_{i}" for i in range(1, a.arms)])
    lift = {v: 0.03 * i for i, v in enumerate(arms)}
    units = []  # (user_id, variant, pre_revenue) for repeats
    with open(a.out, "w", newline="") as f:
        f.write("user_id,variant,converted,orders,revenue,pre_revenue\n")
        for i in range(a.rows):
            if units and r.random() < 0.15:
                user, variant, pre = units[r.randrange(len(units))]
                if r.random() < 0.013:
                    variant = r.choice([v for v in arms if v != variant])
            else:
                user = f"u{len(units):07d}"
                variant = arms[r.randrange(len(arms))]
                pre = round(r.expovariate(1 / 40.0), 2) if r.random() < 0.3 else 0.0
                units.append((user, variant, pre))
            p = 0.08 * (1 + lift[variant]) + (0.04 if pre > 0 else 0.0)
            converted = 1 if r.random() < p else 0
            orders = (1 + (r.random() < 0.1)) if converted else 0
            revenue = round(sum(r.lognormvariate(3.6, 0.6) for _ in range(orders)), 2)
            row = [user, variant, str(converted), str(orders), f"{revenue:.2f}", f"{pre:.2f}"]
            if r.random() < 0.001:
                kind = r.randrange(6)
                if kind == 0:
                    row[4] = ""
                elif kind == 1:
                    row[4] = "n/a"
                elif kind == 2:
                    row[2] = "2"
                elif kind == 3:
                    row = row[:4]
                elif kind == 4:
                    row.append("extra")
                else:
                    row[1] = "contrl"
            f.write(",".join(row) + "\n")


if __name__ == "__main__":
    main()
