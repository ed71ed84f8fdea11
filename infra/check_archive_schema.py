#!/usr/bin/env python3
"""The archive's columns in three places agree (part of `make test`; exit 1 when they do not):

- sql/archive_events.sql, the column list the local archiver writes to Parquet and the readout SQL reads;
- template.yaml's ArchiveEventsTable, the Glue schema Firehose converts the rows with and Athena reads;
- the names and types map one to one (DuckDB VARCHAR/INTEGER/BIGINT/BOOLEAN/TIMESTAMP to Glue
  string/int/bigint/boolean/timestamp), in the same order.

ArchiveRow's fields are checked against sql/archive_events.sql by a unit test in checkout-domain.

    python3 infra/check_archive_schema.py
"""
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_sql import columns  # noqa: E402

GLUE = {"VARCHAR": "string", "INTEGER": "int", "BIGINT": "bigint", "BOOLEAN": "boolean", "TIMESTAMP": "timestamp"}


class Loader(yaml.SafeLoader):
    pass


def _any(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


Loader.add_multi_constructor("!", _any)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    template = yaml.load((root / "template.yaml").read_text(), Loader=Loader)
    table = template["Resources"]["ArchiveEventsTable"]["Properties"]["TableInput"]
    glue = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    sql = [(name, GLUE.get(kind, f"?{kind}")) for name, kind in columns()]
    if glue != sql:
        print("ArchiveEventsTable's columns differ from sql/archive_events.sql:")
        for i in range(max(len(glue), len(sql))):
            a = glue[i] if i < len(glue) else None
            b = sql[i] if i < len(sql) else None
            if a != b:
                print(f"  column {i}: template {a} vs sql {b}")
        return 1
    keys = [k["Name"] for k in table["PartitionKeys"]]
    if keys != ["dt", "hour"]:
        print(f"ArchiveEventsTable's partition keys are {keys}, not dt, hour")
        return 1
    print(f"archive schema: {len(sql)} columns agree between sql/archive_events.sql and ArchiveEventsTable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
