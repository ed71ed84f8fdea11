#!/usr/bin/env python3
"""Checks that infra/moto_server.py's fixes change no answer: the same DynamoDB calls run once against
plain moto and once against the patched one (each in its own interpreter, in-process through boto3), and
every response (request metadata aside) and the table's final contents must be equal.

The calls cover each fix: transactions that commit and that are cancelled (their rollback), key queries
in both directions with pagination, scans with and without a projection, filters and pagination, and
every read that returns items, over every attribute type (binary values, sets, nested maps and lists).
They run on three tables: a plain one; one with a stream, as the event log has (batch writes, an
identical re-put, a committed and a cancelled transaction, and the stream's records read back); and one
with a global secondary index (index queries and scans, and a cancelled transaction that would have
moved an item between index partitions).

    python infra/check_moto_server.py          # runs both and compares; exit 1 on a difference
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def scenario():
    import boto3
    from botocore.exceptions import ClientError

    c = boto3.client("dynamodb", region_name="us-east-1")
    out = []

    def call(name, **kw):
        try:
            r = getattr(c, name)(**kw)
            r.pop("ResponseMetadata", None)
        except ClientError as e:
            r = {"error": e.response["Error"]["Code"], "reasons": e.response.get("CancellationReasons")}
        out.append([name, r])
        return r

    c.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rich = {"pk": {"S": "a"}, "sk": {"S": "1"}, "b": {"B": b"\x00\xff"}, "n": {"N": "1.50"},
            "m": {"M": {"x": {"L": [{"S": "é\u202e"}, {"NULL": True}, {"BOOL": False}, {"B": b"zz"}]}}},
            "ss": {"SS": ["a", "b"]}, "bs": {"BS": [b"1"]}, "ns": {"NS": ["1", "2"]}}
    call("put_item", TableName="t", Item=rich)
    for i in range(60):
        call("put_item", TableName="t", Item={"pk": {"S": f"p{i % 7}"}, "sk": {"S": f"{i:03d}"},
                                                "v": {"N": str(i)}, "doc": {"M": {"k": {"S": "x" * i}}}})
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    call("get_item", TableName="t", Key=key, ReturnConsumedCapacity="TOTAL")
    call("get_item", TableName="t", Key={"pk": {"S": "z"}, "sk": {"S": "1"}})
    call("get_item", TableName="t", Key=key, ProjectionExpression="m.x[0], b")
    for forward in (True, False):
        kw = {"TableName": "t", "KeyConditionExpression": "pk = :p", "Limit": 3, "ScanIndexForward": forward,
              "ExpressionAttributeValues": {":p": {"S": "p1"}}}
        pages(call, "query", **kw)
    call("query", TableName="t", KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
         ExpressionAttributeValues={":p": {"S": "p2"}, ":s": {"S": "0"}}, Select="COUNT")
    call("query", TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}})
    for projection in (None, "pk, v, #d", "pk, m.x"):
        kw = {"TableName": "t", "Limit": 9}
        if projection:
            kw["ProjectionExpression"] = projection
            if "#d" in projection:
                kw["ExpressionAttributeNames"] = {"#d": "doc"}
        pages(call, "scan", **kw)
    call("scan", TableName="t", Select="COUNT")
    call("scan", TableName="t", FilterExpression="v > :x", ExpressionAttributeValues={":x": {"N": "40"}},
         ProjectionExpression="v, sk")
    call("batch_get_item", RequestItems={"t": {"Keys": [key, {"pk": {"S": "p1"}, "sk": {"S": "001"}},
                                                        {"pk": {"S": "none"}, "sk": {"S": "1"}}],
                                               "ProjectionExpression": "pk, b"}},
         ReturnConsumedCapacity="TOTAL")
    put = {"Put": {"TableName": "t", "Item": {"pk": {"S": "tx"}, "sk": {"S": "1"}, "v": {"N": "1"}},
                   "ConditionExpression": "attribute_not_exists(pk)"}}
    bump = {"Update": {"TableName": "t", "Key": {"pk": {"S": "p0"}, "sk": {"S": "000"}},
                       "UpdateExpression": "SET v = v + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}}
    call("transact_write_items", TransactItems=[put, bump])
    call("transact_write_items", TransactItems=[bump, put])  # cancelled: the update must be rolled back
    out.append(["final table", table_items(c, "t")])
    stream_table(c, call, out)
    index_table(c, call, out)
    return out


def pages(call, name, **kw):
    """Every page of a paginated read, each recorded by `call`."""
    while True:
        r = call(name, **kw)
        if "LastEvaluatedKey" not in r:
            return
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]


def table_items(c, name):
    kw = {"TableName": name}
    items = []
    while True:
        r = c.scan(**kw)
        items += r["Items"]
        if "LastEvaluatedKey" not in r:
            break
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
    return sorted(items, key=lambda i: json.dumps(i, sort_keys=True, default=str))


def stream_table(c, call, out):
    """A table keyed like the event log, with a stream: what the feature updater reads."""
    import boto3

    c.create_table(
        TableName="log",
        KeySchema=[{"AttributeName": "session_id", "KeyType": "HASH"},
                   {"AttributeName": "event_id", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "session_id", "AttributeType": "S"},
                              {"AttributeName": "event_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    entry = lambda s, e: {"session_id": {"S": f"s{s}"}, "event_id": {"S": f"e{e:03d}"},  # noqa: E731
                          "body": {"S": "{}" * e}, "expires_at": {"N": str(1_900_000_000 + e)}}
    for chunk in range(3):
        call("batch_write_item", RequestItems={"log": [{"PutRequest": {"Item": entry(e % 4, e)}}
                                                       for e in range(chunk * 25, chunk * 25 + 25)]})
    call("put_item", TableName="log", Item=entry(1, 1))  # an identical re-put
    kw = {"TableName": "log", "KeyConditionExpression": "session_id = :s", "Limit": 7,
          "ExpressionAttributeValues": {":s": {"S": "s1"}}, "ConsistentRead": True}
    pages(call, "query", **kw)
    new = {"Put": {"TableName": "log", "Item": entry(9, 900), "ConditionExpression": "attribute_not_exists(event_id)"}}
    old = {"Put": {"TableName": "log", "Item": entry(1, 1), "ConditionExpression": "attribute_not_exists(event_id)"}}
    call("transact_write_items", TransactItems=[new])
    call("transact_write_items", TransactItems=[{"Put": {"TableName": "log", "Item": entry(8, 800)}}, old])
    out.append(["final log", table_items(c, "log")])
    # The stream: every record's kind, keys and images, in order (ids and times vary between runs).
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = c.describe_table(TableName="log")["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            r = streams.get_records(ShardIterator=it, Limit=40)
            records += [[x["eventName"], x["dynamodb"]["Keys"], x["dynamodb"].get("NewImage"),
                         x["dynamodb"].get("OldImage")] for x in r["Records"]]
            it = r.get("NextShardIterator") if r["Records"] else None
    out.append(["stream records", records])


def index_table(c, call, out):
    """A table with a global secondary index, queried through the index."""
    c.create_table(
        TableName="g",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"},
                              {"AttributeName": "gpk", "AttributeType": "S"},
                              {"AttributeName": "gsk", "AttributeType": "N"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "by_g",
            "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}, {"AttributeName": "gsk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["v"]},
        }],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(40):
        item = {"pk": {"S": f"p{i % 5}"}, "sk": {"S": f"{i:03d}"}, "v": {"N": str(i)}, "w": {"S": "x" * i}}
        if i % 4:
            item.update({"gpk": {"S": f"g{i % 3}"}, "gsk": {"N": str(100 - i)}})
        call("put_item", TableName="g", Item=item)
    for forward in (True, False):
        kw = {"TableName": "g", "IndexName": "by_g", "KeyConditionExpression": "gpk = :g AND gsk > :n",
              "ExpressionAttributeValues": {":g": {"S": "g1"}, ":n": {"N": "65"}}, "Limit": 4,
              "ScanIndexForward": forward}
        pages(call, "query", **kw)
    call("query", TableName="g", KeyConditionExpression="pk = :p",
         ExpressionAttributeValues={":p": {"S": "p2"}}, ProjectionExpression="sk, gpk, w")
    kw = {"TableName": "g", "IndexName": "by_g", "Limit": 11}
    pages(call, "scan", **kw)
    # Ties on the index's keys: the table's keys order them (the order must not come from the table's).
    for i in range(6):
        call("put_item", TableName="g", Item={"pk": {"S": f"t{5 - i}"}, "sk": {"S": f"{i % 2}"},
                                              "gpk": {"S": "gt"}, "gsk": {"N": "7"}, "v": {"N": str(i)}})
    for forward in (True, False):
        kw = {"TableName": "g", "IndexName": "by_g", "KeyConditionExpression": "gpk = :g AND gsk <= :n",
              "ExpressionAttributeValues": {":g": {"S": "gt"}, ":n": {"N": "7"}}, "Limit": 2,
              "ScanIndexForward": forward}
        pages(call, "query", **kw)
    move = {"Update": {"TableName": "g", "Key": {"pk": {"S": "p1"}, "sk": {"S": "001"}},
                       "UpdateExpression": "SET gpk = :g", "ExpressionAttributeValues": {":g": {"S": "g2"}}}}
    fail = {"ConditionCheck": {"TableName": "g", "Key": {"pk": {"S": "p0"}, "sk": {"S": "000"}},
                               "ConditionExpression": "attribute_exists(nope)"}}
    call("transact_write_items", TransactItems=[move, fail])  # cancelled: the item stays in g1
    call("query", TableName="g", IndexName="by_g", KeyConditionExpression="gpk = :g",
         ExpressionAttributeValues={":g": {"S": "g1"}})
    call("transact_write_items", TransactItems=[move])
    call("query", TableName="g", IndexName="by_g", KeyConditionExpression="gpk = :g",
         ExpressionAttributeValues={":g": {"S": "g2"}})
    out.append(["final index table", table_items(c, "g")])


def run(patched):
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    if patched:
        sys.path.insert(0, HERE)
        import moto_server  # noqa: F401  (the fixes apply on import)
    from moto import mock_aws

    with mock_aws():
        result = scenario()
    json.dump(result, sys.stdout, default=lambda b: b.hex() if isinstance(b, bytes) else str(b), sort_keys=True)


def main():
    if len(sys.argv) > 1:
        run(sys.argv[1] == "--patched")
        return 0
    plain, patched = (
        json.loads(subprocess.run([sys.executable, __file__, mode], check=True, capture_output=True).stdout)
        for mode in ("--plain", "--patched")
    )
    calls = len(plain)
    for i, (a, b) in enumerate(zip(plain, patched)):
        if a != b:
            print(f"call {i} ({a[0]}) differs:\n  plain:   {json.dumps(a)[:2000]}\n  patched: {json.dumps(b)[:2000]}")
            return 1
    if len(plain) != len(patched):
        print(f"{len(plain)} calls plain, {len(patched)} patched")
        return 1
    print(f"moto_server fixes: {calls} responses and the final table equal plain moto's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
