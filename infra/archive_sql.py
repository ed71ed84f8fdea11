"""The local event archive and the SQL readout on it, with DuckDB from the dev virtualenv.

Firehose does not run on the local stack. `checkout-ai archive` reads the event log's stream as the
archive's producer does and stages one JSON line per event (shared/domain/src/archive.rs, `ArchiveRow`);
this script does what Firehose's record format conversion does in AWS: it writes those rows as Parquet in
the archive's layout, `events/dt=YYYY-MM-DD/hour=HH/`, with the columns of sql/archive_events.sql (the
Glue table's columns). `readout` runs sql/experiment_readout.sql, the file Athena runs, over those files;
`features` runs sql/item_features.sql and sql/page_features.sql.

    python infra/archive_sql.py parquet  <archive dir>
    python infra/archive_sql.py readout  <archive dir> <experiment> <recovery 0|1> <window end> <now epoch> <currency> <long run 0|1> <stop> <tail end>
    python infra/archive_sql.py features <archive dir> <now epoch>   # {"items": [...], "pages": [...]}
    python infra/archive_sql.py columns                     # the archive's columns, as JSON
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from decimal import Decimal
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_SQL = ROOT / "sql" / "archive_events.sql"
READOUT_SQL = ROOT / "sql" / "experiment_readout.sql"
ITEM_SQL = ROOT / "sql" / "item_features.sql"
PAGE_SQL = ROOT / "sql" / "page_features.sql"
ERASED_SQL = ROOT / "sql" / "erased_sessions.sql"


def columns(schema: Path = SCHEMA_SQL) -> list[tuple[str, str]]:
    """(name, DuckDB type) of each column of a CREATE TABLE file (by default the archive's,
    sql/archive_events.sql)."""
    text = "\n".join(line.split("--")[0] for line in schema.read_text().splitlines())
    body = text[text.index("(") + 1 : text.rindex(")")]
    out = []
    for line in body.splitlines():
        line = line.split("--")[0].strip().rstrip(",")
        if not line:
            continue
        name, kind = line.split(None, 1)
        out.append((name, kind.strip()))
    return out


def parquet(archive: Path) -> dict:
    """Staged JSON lines (archive/staging/*.json) -> archive/events/dt=…/hour=…/*.parquet."""
    staged = sorted((archive / "staging").glob("*.json"))
    events = archive / "events"
    if events.exists():
        shutil.rmtree(events)
    if not staged:
        return {"rows": 0, "partitions": 0}
    cols = columns()
    spec = {name: kind for name, kind in cols}
    spec.update({"dt": "VARCHAR", "hour": "VARCHAR"})
    con = duckdb.connect()
    files = [str(p) for p in staged]
    select = ", ".join(name for name, _ in cols)
    con.execute(
        f"""COPY (
              SELECT {select}, dt, hour
              FROM read_json(?, format = 'newline_delimited', columns = {duckdb_struct(spec)},
                             timestampformat = '%Y-%m-%dT%H:%M:%S.%gZ')
              ORDER BY dt, hour, occurred_at, event_id
            ) TO '{events}' (FORMAT PARQUET, PARTITION_BY (dt, hour), FILENAME_PATTERN 'events_{{i}}')""",
        [files],
    )
    rows = con.execute(f"SELECT COUNT(*) FROM read_parquet('{events}/*/*/*.parquet')").fetchone()[0]
    partitions = len(list(events.glob("dt=*/hour=*")))
    return {"rows": rows, "partitions": partitions}


def duckdb_struct(spec: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in spec.items()) + "}"


def connect(archive: Path) -> duckdb.DuckDBPyConnection:
    """A connection with the archive's Parquet files as the table `archive_events` (empty without any),
    and its erasures/*.json as `erased_sessions` (sql/erased_sessions.sql; empty without any)."""
    con = duckdb.connect()
    events = archive / "events"
    if any(events.glob("dt=*/hour=*/*.parquet")):
        con.execute(
            f"CREATE VIEW archive_events AS SELECT * EXCLUDE (dt, hour) "
            f"FROM read_parquet('{events}/*/*/*.parquet', hive_partitioning = true, union_by_name = true)"
        )
    else:
        con.execute(SCHEMA_SQL.read_text())
    erasures = archive / "erasures"
    if any(erasures.glob("*.json")):
        con.execute(
            f"CREATE VIEW erased_sessions AS SELECT session_id "
            f"FROM read_json('{erasures}/*.json', format = 'newline_delimited', columns = {{'session_id': 'VARCHAR'}})"
        )
    else:
        con.execute(ERASED_SQL.read_text())
    return con


def run(con: duckdb.DuckDBPyConnection, sql: Path, params: list) -> list[dict]:
    """One dict per result row; DuckDB's exact integer sums (DECIMAL) as ints."""
    cur = con.execute(sql.read_text(), params)
    names = [d[0] for d in cur.description]
    return [{n: (int(v) if isinstance(v, Decimal) else v) for n, v in zip(names, row)} for row in cur.fetchall()]


def readout(archive: Path, experiment: str, recovery: bool, window_end: str, now: int, currency: str,
            long_run: bool, stop: str, tail_end: str) -> list[dict]:
    """Runs the readout SQL over the archive's Parquet files; one dict per result row."""
    return run(connect(archive), READOUT_SQL,
               [experiment, recovery, window_end, now, currency, long_run, stop, tail_end])


def features(archive: Path, now: int) -> dict:
    """Runs the item and page features SQL over the archive's Parquet files."""
    con = connect(archive)
    return {"items": run(con, ITEM_SQL, [now]), "pages": run(con, PAGE_SQL, [now])}


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] == "parquet" and len(argv) == 3:
        print(json.dumps(parquet(Path(argv[2]))))
        return 0
    if len(argv) == 11 and argv[1] == "readout":
        _, _, archive, experiment, recovery, window_end, now, currency, long_run, stop, tail_end = argv
        for name, value in [("window end", window_end), ("stop", stop), ("tail end", tail_end)]:
            if not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", value):
                print(f"{name} must be 'YYYY-MM-DD HH:MM:SS', got {value!r}", file=sys.stderr)
                return 2
        rows = readout(Path(archive), experiment, recovery == "1", window_end, int(now), currency,
                       long_run == "1", stop, tail_end)
        print(json.dumps(rows))
        return 0
    if len(argv) == 4 and argv[1] == "features":
        print(json.dumps(features(Path(argv[2]), int(argv[3]))))
        return 0
    if len(argv) == 2 and argv[1] == "columns":
        print(json.dumps(columns()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
