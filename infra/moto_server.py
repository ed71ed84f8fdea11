#!/usr/bin/env python3
"""moto server for the local stack and the integration tests, with five performance fixes.

They make a DynamoDB call cost about what it costs in DynamoDB (proportional to the items it touches and
returns) instead of proportional to the table, or to moto's generic machinery. None changes what a call
returns, accepts or rejects: conditions, cancellation reasons, errors, ordering and pagination all still
come from moto's own code. `infra/check_moto_server.py` (part of `make test`) runs the same calls against
plain moto and this server and compares every response.

1. `TransactWriteItems` (moto 5.2) deep-copies every table a transaction touches, once per action, to
   roll back on a failed condition. Against a features table of tens of thousands of items that made
   each call take seconds and the server grow to gigabytes. Here the rollback keeps the *touched items*:
   the table copy becomes the table itself (moto's own rollback then assigns it back, a no-op), and
   before the transaction runs each touched item's previous attributes (or its absence) are recorded and,
   if moto raises, written back in reverse order, and the stream records the attempt and the write-back
   added are dropped (as plain moto's restored table copies drop them, and as DynamoDB emits none).
2. `Query` on a table's primary key sorts and filters *every item of the table* (`Table.all_items`) to
   find one partition: 0.4 s per query on the 17k-event log. Here, while a base-table query runs,
   `all_items` yields only the queried partition (in the same sorted order), so moto's filter and sort
   see exactly the items they would have kept.
   The same for a `Query` of a global secondary index: moto collects its candidates from `all_items`,
   which sorts the whole table first (about 2 s per query on the ~110k-item features table), and then
   sorts the candidates by the index's keys and the table's, a total order of its own. While an index
   query runs, `all_items` yields, unsorted, only the items whose attributes equal the query's hash-key
   conditions: the candidates moto would have kept, which it then sorts the same way.
3. A `Scan` deep-copies every item it returns and, to apply a projection, turns the whole item into JSON
   and back. When the projection names only top-level attributes, the result here is built from the
   item's own attribute objects (nothing downstream modifies them): the demo's census of the ~100k-item
   features table reads `pk` and three small attributes.
4. Responses are written by moto's generic, model-driven serializer, about 1 ms per returned item. For
   the reads that return items (`GetItem`, `BatchGetItem`, `Query`, `Scan`), whose results moto has
   already reduced to DynamoDB JSON, the body is `json.dumps` of that result, with binary values in
   base64 as the serializer writes them. Anything else (a key outside the operation's output shape, a
   value `json` cannot write) falls back to the serializer.

Everything else is plain `moto_server`; the arguments are the same.

The fixes replace private moto internals, so they are written for one moto version: importing this
module with any other refuses to start (`MOTO_VERSION`). To move to another version, pin it in
`requirements-dev.txt`, re-read the replaced functions against its source, update `MOTO_VERSION`, and
run `infra/check_moto_server.py`.
"""
import base64
import copy
import json
import sys
import threading

import moto

# The moto version these fixes were written and checked against (requirements-dev.txt pins the same).
MOTO_VERSION = "5.2.5"
if moto.__version__ != MOTO_VERSION:
    sys.exit(
        f"infra/moto_server.py: moto {moto.__version__} is installed, but these fixes patch private "
        f"internals of moto {MOTO_VERSION} and are not safe on another version. Install the pinned one "
        f"(`make venv` after `rm -rf .venv`), or port the fixes and update MOTO_VERSION."
    )

from moto.dynamodb import models as ddb
from moto.dynamodb.models import table as _table_module
from moto.dynamodb.models.dynamo_type import LimitedSizeDict
from moto.dynamodb.responses import DynamoResult
from moto.server import main

_deepcopy = copy.deepcopy


class _CopyModule:
    """Stands in for the `copy` module inside a moto module: `deepcopy` returns `x` itself when `shared(x)`."""

    def __init__(self, shared):
        self._shared = shared

    def __getattr__(self, name):
        return getattr(copy, name)

    def deepcopy(self, x, memo=None):
        return x if self._shared(x) else _deepcopy(x, memo)


ddb.copy = _CopyModule(lambda x: isinstance(x, ddb.Table))
_transact = ddb.DynamoDBBackend.transact_write_items


def _key(table, op_type, op):
    if op_type == "Put":
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    return op.get("Key")


def transact_write_items(self, transact_items):
    before = []
    # Stream records a cancelled transaction must not leave behind (plain moto restores whole table copies,
    # streams included; DynamoDB emits nothing for a cancelled transaction): each touched table's length.
    streams = {}
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName"))
        key = _key(table, op_type, op) if table is not None else None
        if key is None:
            continue
        shard = getattr(table, "stream_shard", None)
        if shard is not None:
            streams.setdefault(id(shard), (shard, len(shard.items)))
        current = self.get_item(op["TableName"], key)
        before.append((op["TableName"], key, None if current is None else current.to_json()["Attributes"]))
    try:
        return _transact(self, transact_items)
    except Exception:
        for table_name, key, attrs in reversed(before):
            if attrs is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attrs)
        for shard, length in streams.values():
            del shard.items[length:]
        raise


ddb.DynamoDBBackend.transact_write_items = transact_write_items

Table = ddb.Table
_query = Table.query
_all_items = Table.all_items
_partition = threading.local()


def _equals(found, expected):
    # moto's own test: a missing (or empty) attribute never matches.
    return bool(found) and found == expected


def all_items(self):
    index = getattr(_partition, "index", None)
    if index is not None and index[0] is self:
        conditions = index[1]
        matched = []
        # Snapshots: a put on another request thread may add a partition or an item meanwhile.
        for hash_set in list(self.items.values()):
            for item in (list(hash_set.values()) if self.range_key_attr else (hash_set,)):
                if all(_equals(item.attrs.get(name), value) for name, value in conditions):
                    matched.append(item)
        return matched
    hint = getattr(_partition, "hint", None)
    if hint is None or hint[0] is not self:
        return _all_items(self)
    items = self.items.get(hint[1])
    if items is None:
        return []
    if not self.range_key_attr:
        return [items]
    return sorted(items.values(), key=lambda x: x.range_key)


def query(self, hash_key, *args, **kwargs):
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name is not None:
        _partition.index = (self, list(kwargs.get("hash_key_conditions") or []))
        try:
            return _query(self, hash_key, *args, **kwargs)
        finally:
            _partition.index = None
    if hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    _partition.hint = (self, hash_key)
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _partition.hint = None


Table.all_items = all_items
Table.query = query

# 3. A projected scan of top-level attributes shares the stored attribute objects.
_projecting = threading.local()
_table_module.copy = _CopyModule(lambda x: getattr(_projecting, "on", False) and isinstance(x, ddb.Item))
_project = ddb.Item.project


def project(self, projection_expressions):
    if not getattr(_projecting, "on", False):
        return _project(self, projection_expressions)
    result = ddb.Item.__new__(ddb.Item)
    result.hash_key, result.range_key = self.hash_key, self.range_key
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.__init__(attrs)
    for (name,) in projection_expressions:
        if name in self.attrs:
            dict.__setitem__(attrs, name, self.attrs[name])
    result.attrs = attrs
    return result


_scan = Table.scan


def scan(self, filters, limit, exclusive_start_key, filter_expression=None, index_name=None,
         consistent_read=False, projection_expression=None, segments=(None, None)):
    _projecting.on = bool(
        index_name is None
        and projection_expression
        and all(len(path) == 1 and "[" not in path[0] for path in projection_expression)
    )
    try:
        return _scan(self, filters, limit, exclusive_start_key, filter_expression, index_name,
                     consistent_read, projection_expression, segments)
    finally:
        _projecting.on = False


ddb.Item.project = project
Table.scan = scan

# 4. Item-returning responses written with json.dumps.
_ITEM_READS = {"BatchGetItem", "GetItem", "Query", "Scan"}
_execute_result = DynamoResult.execute_result


def _wire(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)


def execute_result(self, context):
    result = self.result
    output = context.operation_model.output_shape
    if (
        context.operation_model.name in _ITEM_READS
        and isinstance(result, dict)
        and output is not None
        and all(k in output.members and v is not None for k, v in result.items())
    ):
        try:
            body = json.dumps(result, default=_wire)
        except TypeError:
            return _execute_result(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
    return _execute_result(self, context)


DynamoResult.execute_result = execute_result

if __name__ == "__main__":
    sys.exit(main())
