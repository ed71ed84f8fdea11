#!/usr/bin/env python3
"""Checks that infra/moto_server.py's fixes change no answer: the same DynamoDB calls run once against
plain moto and once against the patched one (each in its own interpreter, in-process through boto3), and
every response (request metadata aside) and the table's final contents must be equal.

The calls cover each fix: transactions that commit and that are cancelled (their rollback), key queries
in both directions with pagination, scans with and without a projection, filters and pagination, and
every read that returns items, over every attribute type (binary values, sets, nested maps and lists).

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
        while True:
            r = call("query", **kw)
            if "LastEvaluatedKey" not in r:
                break
            kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
    call("query", TableName="t", KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
         ExpressionAttributeValues={":p": {"S": "p2"}, ":s": {"S": "0"}}, Select="COUNT")
    call("query", TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}})
    for projection in (None, "pk, v, #d", "pk, m.x"):
        kw = {"TableName": "t", "Limit": 9}
        if projection:
            kw["ProjectionExpression"] = projection
            if "#d" in projection:
                kw["ExpressionAttributeNames"] = {"#d": "doc"}
        while True:
            r = call("scan", **kw)
            if "LastEvaluatedKey" not in r:
                break
            kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
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
    kw = {"TableName": "t"}
    items = []
    while True:
        r = c.scan(**kw)
        items += r["Items"]
        if "LastEvaluatedKey" not in r:
            break
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
    out.append(["final table", sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))])
    return out


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
