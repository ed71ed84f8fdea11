#!/usr/bin/env python3
"""The capacity and cost model: docs/capacity.md, from measured unit counts.

    make capacity            # measures (checkout-ai write-cost, REES46 and the skewed load), then writes docs/capacity.md
    python3 infra/capacity_model.py <rees46 write-cost JSON> <skew write-cost JSON> <out.md>

What is measured (by `checkout-ai write-cost`, the real feature updater in memory, batches of 1,000 as
the template's mapping delivers them, every write billed by its item size and doubled in a transaction):
the feature updater's write units, feature items read and log items read per event, on the REES46 day
and on the skewed synthetic load (whose batches hold about one event per session, as a high event rate
gives), and the hottest partition key's share. What is derived from the code (stated below): the log's
write units per event (the item and the indexes it lands in), the scorer's reads per decision
(`decision::read::first_keys`). What is assumed (stated, not measured here: the local stack is moto):
request latencies, and so Lambda durations; the list prices, with their date.
"""
from __future__ import annotations

import json
import math
import sys
from datetime import date
from pathlib import Path

# --- prices: us-east-1 list prices, on demand, as AWS published them in 2025 (DynamoDB after its
# November 2024 cut). Not re-checked on the day of the run (this machine reaches only package
# registries): check https://aws.amazon.com/pricing before quoting.
PRICES_AS_OF = "2025 (AWS public pricing pages, us-east-1); not re-checked on " + date.today().isoformat()
P = {
    "ddb_wru": 0.625 / 1e6,        # DynamoDB on-demand, per write request unit
    "ddb_rru": 0.125 / 1e6,        # per read request unit (a strongly consistent read of <= 4 KB is 1)
    "kinesis_shard_hour": 0.015,   # provisioned shard
    "kinesis_put_unit": 0.014 / 1e6,  # per 25 KB PUT payload unit
    "lambda_gb_s": 0.0000133334,   # arm64
    "lambda_request": 0.20 / 1e6,
    "http_api_request": 1.00 / 1e6,
    "firehose_gb": 0.029,          # Direct PUT ingestion (each record billed as at least 5 KB; rows are packed)
    "firehose_conversion_gb": 0.018,
    "firehose_partitioning_gb": 0.020,
    "firehose_objects": 0.005 / 1000,
    "s3_gb_month": 0.023,
    "athena_tb": 5.0,
}
HOURS = 730
SECONDS = HOURS * 3600

# --- limits (AWS documentation)
PARTITION_WCU = 1000      # per partition key
KINESIS_SHARD_RECORDS = 1000   # records/s per shard (and 1 MB/s)
KINESIS_SHARD_BYTES = 1_000_000
LAMBDA_CONCURRENCY_DEFAULT = 1000  # account default per region (raisable)

# --- derived from the code and the template
EVENT_BYTES = 620            # a REES46 event as produced (JSON), measured from the replay's records
LOG_ITEM_BYTES = 900         # a log item: key, attributes and the canonical body
LOG_WCU_PER_EVENT = 2        # the item (<= 1 KB) and its `by-user` index entry (events with a user)
DECISION_LOG_WCU = 4         # a decision_served item also lands in the two decision indexes
READS_PER_CART_DECISION = 4  # session, user, two cart products (first_keys; page features are cached)
READS_PER_CHECKOUT_DECISION = 8  # and the user, card, IP and device risk profiles
ARCHIVE_ROW_BYTES = 700      # an ArchiveRow as JSON
PARQUET_RATIO = 0.15         # Parquet (Snappy) over JSON for these rows: assumed
# The columns sql/item_features.sql and sql/page_features.sql read, per event in the archive's Parquet:
# measured 2026-11-30 on the demo's local archive (17,824 rows; event and session ids are most of it).
FEATURES_SQL_BYTES_PER_EVENT = 67
RETENTION_DAYS = 400         # the template's EventRetentionDays

# --- assumed latencies (in-region p50), hence Lambda durations
INGEST_MS_PER_BATCH = 120    # 500 records: decode, pseudonymize, BatchWriteItem in 25s, 8 in flight
ARCHIVER_MS_PER_BATCH = 80   # 1,000 rows, PutRecordBatch of 500
SCORER_MS = 25               # BatchGetItem + PutRecord + compute (compute is ~10 us: docs/benchmarks.md)
UPDATER_MS_PER_REQUEST = 8   # one DynamoDB round trip; the updater keeps 16 in flight
UPDATER_IN_FLIGHT = 16


def updater_ms_per_batch(m: dict, batch: int) -> float:
    """Round trips per batch (reads: sessions, log queries, aggregates; commits), 16 in flight."""
    c = m["counts"]
    per_event_requests = (c["commits"] + c["sessions"] * 2 + m["batches"] * 4) / m["events"]
    return per_event_requests * batch * UPDATER_MS_PER_REQUEST / UPDATER_IN_FLIGHT


def model(rees: dict, skew: dict) -> tuple[list[dict], dict]:
    at_scale = skew  # at a high event rate a batch holds about one event per session: the skew load's shape
    wcu_event = at_scale["write_units_per_event"]
    c = at_scale["counts"]
    rru_event = (c["feature_items_read"] + c["log_entries_read"] * LOG_ITEM_BYTES / 4096) / at_scale["events"]
    hottest = at_scale["hottest"][0]
    rows = []
    for events_s, decisions_s in [(1_000, 0), (10_000, 0), (50_000, 0), (0, 1_000), (0, 10_000)]:
        # A decision is also an event: its decision_served goes through ingest and the updater.
        ev = events_s + decisions_s
        shards = max(math.ceil(ev / KINESIS_SHARD_RECORDS), math.ceil(ev * EVENT_BYTES / KINESIS_SHARD_BYTES), 1)
        ingest_wcu = events_s * LOG_WCU_PER_EVENT + decisions_s * DECISION_LOG_WCU
        updater_wcu = ev * wcu_event
        updater_rru = ev * rru_event
        scorer_rru = decisions_s * READS_PER_CART_DECISION
        wcu = ingest_wcu + updater_wcu
        rru = updater_rru + scorer_rru
        hot_key = hottest["units_per_event"] * ev
        # Lambda: stream functions run one instance per shard (ParallelizationFactor 1).
        ingest_conc = shards
        updater_ms = updater_ms_per_batch(at_scale, 1000)
        updater_batches_s = ev / 1000
        updater_conc_needed = updater_batches_s * updater_ms / 1000
        scorer_conc = decisions_s * SCORER_MS / 1000
        gb_s = (
            (ev / 500) * INGEST_MS_PER_BATCH / 1000 * 0.256
            + updater_batches_s * updater_ms / 1000 * 0.512
            + (ev / 1000) * ARCHIVER_MS_PER_BATCH / 1000 * 0.256
            + decisions_s * SCORER_MS / 1000 * 0.512
        )
        requests_s = ev / 500 + updater_batches_s + ev / 1000 + decisions_s
        # The archiver packs up to 500 rows per record, so the 5 KB minimum per record does not apply.
        firehose_gb_s = ev * ARCHIVE_ROW_BYTES / 1e9
        json_gb_s = ev * ARCHIVE_ROW_BYTES / 1e9
        parquet_gb_month = json_gb_s * PARQUET_RATIO * SECONDS
        month = {
            "dynamodb": (wcu * P["ddb_wru"] + rru * P["ddb_rru"]) * SECONDS,
            "kinesis": shards * P["kinesis_shard_hour"] * HOURS + ev * P["kinesis_put_unit"] * SECONDS,
            "lambda": (gb_s * P["lambda_gb_s"] + requests_s * P["lambda_request"]) * SECONDS,
            "api": decisions_s * P["http_api_request"] * SECONDS,
            "firehose": (firehose_gb_s * P["firehose_gb"]
                         + json_gb_s * (P["firehose_conversion_gb"] + P["firehose_partitioning_gb"])) * SECONDS
            # One object per hour partition per 300 s buffer, or per 128 MB.
            + max(SECONDS / 300, json_gb_s * SECONDS / 0.128) * P["firehose_objects"],
            # The month's archive, stored (the first month's share of the retention).
            "s3": parquet_gb_month * P["s3_gb_month"],
            # A readout a day that scans 1% of the month's archive (partition pruning by date).
            "athena": 30 * parquet_gb_month * 0.01 / 1000 * P["athena_tb"],
        }
        limits = []
        if hot_key > PARTITION_WCU:
            limits.append(f"hottest key {hottest['pk'].split('#')[0]}#… at {hot_key:,.0f} WCU/s > {PARTITION_WCU}")
        if updater_conc_needed > shards:
            limits.append(f"updater needs {updater_conc_needed:.1f} instances, the stream gives {shards}")
        if scorer_conc + shards * 3 > LAMBDA_CONCURRENCY_DEFAULT:
            limits.append("account concurrency 1,000")
        rows.append({
            "events_s": events_s, "decisions_s": decisions_s, "shards": shards,
            "wcu": wcu, "rru": rru, "hot_key_wcu": hot_key,
            "lambda": {"ingest": ingest_conc, "updater": updater_conc_needed, "updater_ms": updater_ms,
                       "archiver": shards, "scorer": scorer_conc},
            "firehose_mb_s": firehose_gb_s * 1000, "s3_gb_month": parquet_gb_month,
            "month": month, "total": sum(month.values()), "limits": limits,
        })
    inputs = {
        "updater_wcu_per_event_rees46": rees["write_units_per_event"],
        "updater_wcu_per_event_at_scale": wcu_event,
        "updater_rru_per_event_at_scale": rru_event,
        "hottest_key": hottest["pk"], "hottest_units_per_event": hottest["units_per_event"],
        "by_entity_at_scale": {k: v / at_scale["events"] for k, v in at_scale["write_units_by_entity"].items()},
        "micro_batch_rees46": rees.get("micro_batch"),
    }
    return rows, inputs


def batch_mode(inputs: dict) -> list[dict]:
    """ItemPageFeatures=batch against stream, per event rate: the updater's writes in each mode, the batch
    runs' writes, and what a run that reads the whole archive costs in Athena (15-minute and hourly runs)."""
    plan = inputs["micro_batch_rees46"]
    if not plan:
        return []
    stream_units = inputs["updater_wcu_per_event_at_scale"]
    # The updater in batch mode keeps everything but the item and page keys (measured at scale).
    kept = sum(v for k, v in inputs["by_entity_at_scale"].items() if not k.startswith(("item", "page")))
    # Each changed item and page once per run: REES46's measured share, an upper bound at a higher rate
    # (a run writes a product once however many of its events it covers).
    runs_units = plan["batch_units_per_event"]
    out = []
    for ev in (1_000, 10_000, 50_000):
        archive_tb = ev * RETENTION_DAYS * 86_400 * FEATURES_SQL_BYTES_PER_EVENT / 1e12
        month = lambda units: units * ev * SECONDS * P["ddb_wru"]  # noqa: E731
        scan = lambda minutes: SECONDS / (minutes * 60) * archive_tb * P["athena_tb"]  # noqa: E731
        out.append({
            "events_s": ev, "stream": month(stream_units), "batch_updater": month(kept), "batch_runs": month(runs_units),
            "archive_tb": archive_tb, "athena_15": scan(15), "athena_60": scan(60),
        })
    return out


def render(rows: list[dict], inputs: dict) -> str:
    out = ["# Capacity and cost model", "",
           "Generated by `make capacity` (`infra/capacity_model.py`); do not edit by hand. "
           f"Run on {date.today().isoformat()}.", "",
           "## Measured inputs", "",
           "| input | value | how |", "|---|---|---|",
           f"| feature-updater write units per event, REES46 replay | {inputs['updater_wcu_per_event_rees46']:.2f} | `checkout-ai write-cost` (item sizes, transactions doubled) |",
           f"| the same at scale (about one event per session per batch) | {inputs['updater_wcu_per_event_at_scale']:.2f} | `checkout-ai write-cost --skew-events 60000` |",
           f"| feature-updater read units per event at scale | {inputs['updater_rru_per_event_at_scale']:.2f} | items read + log items read × {LOG_ITEM_BYTES} B / 4 KB |",
           f"| hottest partition key (one product at 5% of views) | `{inputs['hottest_key']}`, {inputs['hottest_units_per_event']:.3f} WCU per event | the same run |",
           ]
    plan = inputs["micro_batch_rees46"]
    if plan:
        out.append(f"| write units per event in batch mode (`ItemPageFeatures=batch`), REES46 replay | {plan['total_units_per_event']:.2f} "
                   f"({plan['stream_units_per_event']:.2f} updater + {plan['batch_units_per_event']:.2f} batch runs) | "
                   f"`checkout-ai write-cost`: the updater in batch mode over the same batches, and the batch run's own code "
                   f"writing each changed item and page once per {plan['interval_minutes']}-minute run of event time ({plan['runs']} runs) |")
    for k, v in sorted(inputs["by_entity_at_scale"].items()):
        out.append(f"| write units per event on `{k}#…` keys | {v:.2f} | the same run |")
    out += ["", f"Derived from the code: log item ≤ 1 KB plus its `by-user` index entry ({LOG_WCU_PER_EVENT} WCU per event, "
            f"{DECISION_LOG_WCU} for a decision, which also lands in the two decision indexes); a cart decision reads "
            f"{READS_PER_CART_DECISION} items (session, user, two cart products; page features are cached), a checkout "
            f"decision {READS_PER_CHECKOUT_DECISION} (plus four risk profiles).",
            "",
            f"Assumed (in-region p50, not measured here: the local stack is moto): ingest {INGEST_MS_PER_BATCH} ms per batch "
            f"of 500, archiver {ARCHIVER_MS_PER_BATCH} ms per 1,000, scorer {SCORER_MS} ms per decision, "
            f"{UPDATER_MS_PER_REQUEST} ms per DynamoDB round trip with {UPDATER_IN_FLIGHT} in flight in the updater; "
            f"Parquet at {PARQUET_RATIO:.0%} of the JSON. The archiver packs up to 500 rows per Firehose record, so "
            "Firehose's 5 KB minimum per record does not apply.",
            "",
            f"Prices: {PRICES_AS_OF}: DynamoDB on demand ${P['ddb_wru'] * 1e6:.3f} per million write and "
            f"${P['ddb_rru'] * 1e6:.3f} per million read request units; Kinesis ${P['kinesis_shard_hour']} per shard-hour "
            f"and ${P['kinesis_put_unit'] * 1e6:.3f} per million 25 KB PUT units; Lambda arm64 ${P['lambda_gb_s']:.10f} per GB-s "
            f"and ${P['lambda_request'] * 1e6:.2f} per million requests; HTTP API ${P['http_api_request'] * 1e6:.2f} per "
            f"million; Firehose ${P['firehose_gb']} per GB ingested, ${P['firehose_conversion_gb']} per GB converted, "
            f"${P['firehose_partitioning_gb']:.3f} per GB dynamically partitioned; S3 ${P['s3_gb_month']} per GB-month; "
            f"Athena ${P['athena_tb']:.0f} per TB scanned (1% of the archive read daily assumed).",
            "", "## The table", "",
            "| load | Kinesis shards | DynamoDB WCU/s | DynamoDB RCU/s | hottest key WCU/s | Lambda concurrency (ingest / updater / archiver / scorer) | Firehose MB/s billed | S3 GB/month | $/month DynamoDB | Lambda | Kinesis | Firehose | S3 + Athena | API | **total** | first limit |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        load = f"{r['events_s']:,} events/s" if r["events_s"] else f"{r['decisions_s']:,} decisions/s"
        m = r["month"]
        lam = r["lambda"]
        out.append(
            f"| {load} | {r['shards']} | {r['wcu']:,.0f} | {r['rru']:,.0f} | {r['hot_key_wcu']:,.0f} | "
            f"{lam['ingest']} / {lam['updater']:.1f} (of {r['shards']}) / {lam['archiver']} / {lam['scorer']:.0f} | "
            f"{r['firehose_mb_s']:.1f} | {r['s3_gb_month']:,.0f} | {m['dynamodb']:,.0f} | {m['lambda']:,.0f} | "
            f"{m['kinesis']:,.0f} | {m['firehose']:,.0f} | {m['s3'] + m['athena']:,.0f} | {m['api']:,.0f} | "
            f"**{r['total']:,.0f}** | {'; '.join(r['limits']) or 'none'} |")
    out += ["", "## Where the first limit is hit, and what to change", "",
            "- **The hottest partition key.** A popular product's session contributions and pair counts are spread over 16 "
            "write shards each (`AGGREGATE_SHARDS`), and its own item is written once per commit of many sessions, so a product "
            "at 5% of views puts the `hottest key` column's rate on its busiest shard. Past 1,000 WCU/s DynamoDB throttles a key: "
            "at a higher rate or a larger share, raise `AGGREGATE_SHARDS` (a shard count change moves keys: rebuild the table).",
            "- **DynamoDB write cost** dominates the bill at every event rate in stream mode (the table above): the updater's "
            "write units per event, most of them the item and page contributions and pair counts, in transactions. Batch mode "
            "(below) moves those to a scheduled run; as built, a run reads the whole archive, so it pays in Athena instead.",
            "- **Firehose** bills a record as at least 5 KB and a row is about 0.7 KB: the archiver already packs up to 500 "
            "rows per record (Firehose de-aggregates them), which keeps that line about 7× below one row per record.",
            "- **Kinesis**: one shard per 1,000 records/s; the stream's shard count is the `StreamShardCount` parameter "
            "(or on-demand mode). Ingest and the updater scale with it, one instance per shard.",
            "- **The feature updater's instances**: one per shard with `ParallelizationFactor` 1 (ordering per session needs only "
            "per-key order, which Lambda keeps at any factor): where the table says it needs more instances than shards, raise "
            "the factor (up to 10) before adding shards.",
            "- **Lambda account concurrency** (1,000 by default) is far off: the scorer needs about decisions/s × 25 ms.",
            "- **On-demand against provisioned**: at a steady rate, provisioned capacity with auto scaling costs a fraction of "
            "on-demand for the same units; the table prices on demand, the template's mode.",
            ""]
    batch = batch_mode(inputs)
    if batch:
        out += ["## Batch mode against stream mode", "",
                f"`ItemPageFeatures=batch`: the updater keeps sessions, users and risk profiles, and `ItemPageBatchFunction` "
                f"recomputes the item and page features from the archive on a schedule, writing each changed one once. "
                f"DynamoDB writes of the feature path only (the log's, the scorer's and the rest are the same in both modes), "
                f"and the Athena bytes of runs that read the whole archive at a {RETENTION_DAYS}-day retention "
                f"({FEATURES_SQL_BYTES_PER_EVENT} B per event: the columns the two queries read, measured in Parquet). "
                f"The runs' writes are REES46's per-event share, an upper bound at a higher rate.", "",
                "| load | stream mode: updater writes $/month | batch mode: updater writes | batch runs' writes | archive read per run | Athena, runs every 15 min | Athena, hourly | **batch mode total, 15 min / hourly** |",
                "|---|---|---|---|---|---|---|---|"]
        for b in batch:
            base = b["batch_updater"] + b["batch_runs"]
            out.append(f"| {b['events_s']:,} events/s | {b['stream']:,.0f} | {b['batch_updater']:,.0f} | {b['batch_runs']:,.0f} | "
                       f"{b['archive_tb']:,.1f} TB | {b['athena_15']:,.0f} | {b['athena_60']:,.0f} | "
                       f"**{base + b['athena_15']:,.0f} / {base + b['athena_60']:,.0f}** |")
        out += ["", "Batch mode cuts the feature path's write units by three quarters, and the hottest key to one write per "
                "run, but a run that reads the whole archive costs more in Athena than the writes it saves once the archive "
                "holds months of events. What to change: runs that read only what changed (the sessions with new events since "
                "the last run and their earlier events), moving each aggregate by those sessions' new contributions minus "
                "their old ones (docs/features.md); until then, batch mode pays with hourly runs or short retention.", ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    rees = json.loads(Path(argv[1]).read_text())
    skew = json.loads(Path(argv[2]).read_text())["cost"]
    rows, inputs = model(rees, skew)
    Path(argv[3]).write_text(render(rows, inputs))
    print(f"{argv[3]} written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
