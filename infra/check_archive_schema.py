#!/usr/bin/env python3
"""The archive's columns and layout agree everywhere (part of `make test`; exit 1 when they do not):

- sql/archive_events.sql is the column list the local archiver writes to Parquet and the readout SQL
  reads; template.yaml's ArchiveEventsTable is the Glue schema Firehose converts the rows with and Athena
  reads. Names and types map one to one (DuckDB VARCHAR/INTEGER/BIGINT/BOOLEAN/TIMESTAMP/VARCHAR[] to
  Glue string/int/bigint/boolean/timestamp/array<string>), in the same order, and the partition keys are dt, hour.
- The layout is events/dt=YYYY-MM-DD/hour=HH/ in the three places that write or read it: the delivery
  stream's prefix, the table's partition projection, and the local archiver (DuckDB's PARTITION_BY (dt,
  hour) under events/, in infra/archive_sql.py).

- sql/erased_sessions.sql and template.yaml's ErasedSessionsTable (at erasures/ in the archive bucket,
  where `checkout-ai erase` writes) have the same columns.

ArchiveRow's fields are checked against sql/archive_events.sql by a unit test in checkout-domain.

    python3 infra/check_archive_schema.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_sql import ERASED_SQL, columns  # noqa: E402
from localstack import load_template  # noqa: E402

GLUE = {"VARCHAR": "string", "INTEGER": "int", "BIGINT": "bigint", "BOOLEAN": "boolean", "TIMESTAMP": "timestamp",
        "VARCHAR[]": "array<string>"}
PREFIX = "events/dt=!{partitionKeyFromQuery:dt}/hour=!{partitionKeyFromQuery:hour}/"
LOCATION = "s3://${ArchiveBucket}/events/dt=${!dt}/hour=${!hour}/"
LOCAL = "PARTITION_BY (dt, hour)"


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    resources = load_template(root / "template.yaml")["Resources"]
    table = resources["ArchiveEventsTable"]["Properties"]["TableInput"]
    glue = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    sql = [(name, GLUE.get(kind, f"?{kind}")) for name, kind in columns()]
    problems = []
    if glue != sql:
        problems.append("ArchiveEventsTable's columns differ from sql/archive_events.sql:")
        for i in range(max(len(glue), len(sql))):
            a = glue[i] if i < len(glue) else None
            b = sql[i] if i < len(sql) else None
            if a != b:
                problems.append(f"  column {i}: template {a} vs sql {b}")
    keys = [k["Name"] for k in table["PartitionKeys"]]
    if keys != ["dt", "hour"]:
        problems.append(f"ArchiveEventsTable's partition keys are {keys}, not dt, hour")
    prefix = resources["ArchiveDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]["Prefix"]
    if prefix != PREFIX:
        problems.append(f"the delivery stream writes under {prefix!r}, not {PREFIX!r}")
    location = table["Parameters"]["storage.location.template"]
    if location != {"Fn::Sub": LOCATION}:
        problems.append(f"the table's partitions are at {location!r}, not {LOCATION!r}")
    erased = resources["ErasedSessionsTable"]["Properties"]["TableInput"]
    erased_glue = [(c["Name"], c["Type"]) for c in erased["StorageDescriptor"]["Columns"]]
    erased_sql = [(name, GLUE.get(kind, f"?{kind}")) for name, kind in columns(ERASED_SQL)]
    if erased_glue != erased_sql:
        problems.append(f"ErasedSessionsTable's columns {erased_glue} differ from sql/erased_sessions.sql's {erased_sql}")
    if erased["StorageDescriptor"]["Location"] != {"Fn::Sub": "s3://${ArchiveBucket}/erasures/"}:
        problems.append("ErasedSessionsTable is not at s3://${ArchiveBucket}/erasures/, where the erasure writes")
    if LOCAL not in (root / "infra" / "archive_sql.py").read_text():
        problems.append(f"infra/archive_sql.py no longer writes with {LOCAL}")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"archive schema: {len(sql)} columns and the events/dt=…/hour=… layout agree between "
          "sql/archive_events.sql, ArchiveEventsTable, ArchiveDeliveryStream and the local archiver; "
          "sql/erased_sessions.sql and ErasedSessionsTable agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
