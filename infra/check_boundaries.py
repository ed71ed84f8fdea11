#!/usr/bin/env python3
"""The crate boundaries, checked with `cargo tree` (part of `make test`; exit 1 on a breach).

- `checkout-domain`, with every feature on, depends on no AWS crate at all: no `aws-*`, `aws_*`,
  `serde_dynamo` or `lambda_*` anywhere in its normal or build dependencies.
- Each Lambda links exactly the SDK clients it calls (`aws-sdk-sts` aside: aws-config's default
  credential chain needs it for web-identity credentials, and the function never calls it), and none of
  the operator crates: no `csv`, `linfa*`, `ndarray`, `clap`, `indicatif`, and no `statrs` except in the
  evaluator, the one function that computes statistics.

    python3 infra/check_boundaries.py
"""
import subprocess
import sys

CREDENTIALS = {"aws-sdk-sts"}
FUNCTIONS = {
    "ingest": {"aws-sdk-dynamodb", "aws-sdk-s3", "aws-sdk-sqs", "aws-sdk-ssm"},
    "feature-updater": {"aws-sdk-dynamodb", "aws-sdk-sqs"},
    "scorer": {"aws-sdk-dynamodb", "aws-sdk-kinesis", "aws-sdk-s3", "aws-sdk-ssm"},
    "experiment-evaluator": {"aws-sdk-athena", "aws-sdk-dynamodb", "aws-sdk-s3"},
    "recovery-sweep": {"aws-sdk-dynamodb", "aws-sdk-s3", "aws-sdk-sqs"},
    "review": {"aws-sdk-dynamodb", "aws-sdk-s3"},
    "archiver": {"aws-sdk-firehose"},
    "item-page-batch": {"aws-sdk-athena", "aws-sdk-dynamodb"},
}
OPERATOR_ONLY = {"csv", "ndarray", "clap", "indicatif", "statrs"}
STATISTICS = {"experiment-evaluator": {"statrs"}}


def crates(package, *args):
    out = subprocess.run(
        ["cargo", "tree", "--locked", "-p", package, "--prefix", "none", "--format", "{p}", *args],
        check=True, capture_output=True, text=True,
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def main():
    problems = []
    domain = crates("checkout-domain", "-e", "normal,build", "--all-features")
    aws = sorted(c for c in domain if c.startswith(("aws-", "aws_", "lambda_", "lambda-")) or c == "serde_dynamo")
    if aws:
        problems.append(f"checkout-domain depends on AWS crates: {', '.join(aws)}")
    for function, calls in FUNCTIONS.items():
        tree = crates(function, "-e", "normal")
        sdks = {c for c in tree if c.startswith("aws-sdk-")}
        extra = sorted(sdks - calls - CREDENTIALS)
        missing = sorted(calls - sdks)
        if extra:
            problems.append(f"{function} links SDK clients it does not call: {', '.join(extra)}")
        if missing:
            problems.append(f"{function} is expected to call {', '.join(missing)} (update this check)")
        heavy = sorted(c for c in tree if (c in OPERATOR_ONLY or c.startswith("linfa"))
                       and c not in STATISTICS.get(function, set()))
        if heavy:
            problems.append(f"{function} links operator-only crates: {', '.join(heavy)}")
        print(f"{function}: {len(tree)} crates; SDK clients {', '.join(sorted(sdks - CREDENTIALS))}")
    for p in problems:
        print(f"boundary breached: {p}")
    if not problems:
        print("crate boundaries hold: the domain has no AWS dependency; each Lambda links only its own clients")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
