#!/usr/bin/env python3
"""`checkout-ai evaluate` against pandas + gbstats on the same file, in the same run: `make bench-evaluate`.

Both sides do the whole job from the CSV on disk: parse, drop bad rows, combine a unit's rows, exclude
units seen in two variants, aggregate per arm, and compute the same statistics (conversion with CUPED,
revenue per user with CUPED, average order value by the delta method; two-sided tests, Bayesian chance
to win and risk, Holm across arms and metrics, SRM). Ours also writes report.json and report.html. Each
side runs several times; medians of wall time are reported, with peak resident memory, and the two
results are checked to agree before any figure is printed.

    bench_evaluate.py CHECKOUT_AI_BINARY CSV [--runs 5] [--reference-runs 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--unit", "user_id", "--variant", "variant", "--control", "control",
        "--metric", "conversion:converted:proportion", "--metric", "revenue:revenue:mean",
        "--ratio", "aov:revenue:orders", "--covariate", "pre_revenue",
        "--weights", "control=0.5,treatment=0.5", "--bayesian"]


def timed(cmd):
    """Wall time, stdout and this child's own peak RSS (KiB, from wait4)."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{cmd[0]} failed: {child.stderr.read().decode()}")
        out.seek(0)
        return seconds, out.read().decode(), usage.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("csv")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reference-runs", type=int, default=3)
    a = ap.parse_args()
    rows = sum(1 for _ in open(a.csv, "rb")) - 1
    out_dir = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))

    ours, ours_peak = [], 0
    for _ in range(a.runs):
        s, _, peak = timed([a.binary, "evaluate", "--csv", a.csv, *ARGS, "--out", str(out_dir)])
        ours.append(s)
        ours_peak = max(ours_peak, peak)
    report = json.loads((out_dir / "report.json").read_text())

    ref, ref_peak, reference = [], 0, None
    for _ in range(a.reference_runs):
        s, stdout, peak = timed([sys.executable, str(ROOT / "infra" / "evaluate_reference.py"), "--csv", a.csv, *ARGS])
        ref.append(s)
        ref_peak = max(ref_peak, peak)
        reference = json.loads(stdout)

    # The same answer first: units per arm and every p-value.
    assert [x["units"] for x in report["arms"]] == [x["units"] for x in reference["arms"]], "units differ"
    for m, r in zip(report["metrics"], reference["metrics"]):
        for c, rc in zip(m["comparisons"], r["comparisons"]):
            assert abs(c["p_value"] - rc["p_value"]) <= max(1e-9, 1e-6 * abs(rc["p_value"])), (m["name"], c, rc)

    result = {
        "rows": rows,
        "units": report["data"]["units"],
        "bad_rows": sum(report["data"]["bad_rows"].values()),
        "ours_seconds": ours,
        "reference_seconds": ref,
        "ours_median_s": statistics.median(ours),
        "reference_median_s": statistics.median(ref),
        "reference_stage_median_s": reference["seconds"],
        "ratio_median": statistics.median(ref) / statistics.median(ours),
        "ours_peak_rss_mib": ours_peak / 1024,
        "reference_peak_rss_mib": ref_peak / 1024,
    }
    Path(ROOT / "target" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "target" / "bench" / "evaluate.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"evaluate, {rows:,} rows ({result['units']:,} units, {result['bad_rows']} bad rows), same results on both sides")
    print(f"  checkout-ai evaluate: median {result['ours_median_s']:.3f} s over {a.runs} runs "
          f"({', '.join(f'{x:.3f}' for x in ours)}), peak RSS {result['ours_peak_rss_mib']:.0f} MiB")
    print(f"  pandas + gbstats:     median {result['reference_median_s']:.3f} s over {a.reference_runs} runs "
          f"({', '.join(f'{x:.3f}' for x in ref)}), peak RSS {result['reference_peak_rss_mib']:.0f} MiB "
          f"(interpreter and imports included; its own stages: {json.dumps({k: round(v, 3) for k, v in reference['seconds'].items()})})")
    print(f"  ratio (median reference / median ours): {result['ratio_median']:.1f}x")
    for p in out_dir.iterdir():
        p.unlink()
    out_dir.rmdir()


if __name__ == "__main__":
    main()
