#!/usr/bin/env python3
"""Writes the Lambda event fixtures under events/ (run from the repo root: `make fixtures`).

The same files drive the handler unit tests (include_str!), `cargo lambda invoke --data-file` and
`sam local invoke -e`. They are generated so that every payload is visible here, in plain JSON, and
committed so that nobody needs this script to use them.
"""
import base64
import datetime
import hashlib
import json
import pathlib

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/checkout-ai-events"
ARRIVAL = 1763633700.0  # 2025-11-20T10:15:00Z
SESSION = "sess-7f3a"


def envelope(event_id, event_type, data, seconds, user_id="shopper-1001", **extra):
    e = {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": f"2025-11-20T10:{seconds // 60:02d}:{seconds % 60:02d}.000Z",
        "session_id": SESSION,
        "user_id": user_id,
        "context": {"device": {"type": "mobile", "os": "iOS", "browser": "Safari"},
                    "country": "DE", "ip": "203.0.113.7", "traffic_type": 2},
        "data": data,
    }
    e.update(extra)
    return e


def eur(minor):
    return {"amount_minor": minor, "currency": "EUR"}


def record(payload: bytes, n: int, partition_key=SESSION):
    seq = f"49656{n:040d}"
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": seq,
            "data": base64.b64encode(payload).decode(),
            "approximateArrivalTimestamp": ARRIVAL + n,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/checkout-ai-ingest",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
    }


def js(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


funnel = [
    envelope("evt-0001", "session_started", {"visitor_type": "returning", "landing_page": "/"}, 0),
    envelope("evt-0002", "page_viewed", {"page_type": "product_related", "path": "/p/sku-1", "time_on_page_ms": 41000}, 5),
    envelope("evt-0003", "product_viewed", {"product_id": "sku-1", "category_code": "electronics.audio", "brand": "acme", "price": eur(7999)}, 6),
    envelope("evt-0004", "cart_item_added", {"product_id": "sku-1", "quantity": 1, "unit_price": eur(7999)}, 50),
    envelope("evt-0005", "checkout_started", {"cart_value": eur(7999), "item_count": 1}, 70),
    envelope("evt-0006", "checkout_step_completed", {"step": "contact", "step_index": 1}, 95),
    envelope("evt-0007", "form_error", {"step": "shipping", "field": "postal_code", "error_code": "invalid_format"}, 120),
    envelope("evt-0008", "coupon_applied", {"code": "WELCOME10", "outcome": "accepted", "discount": eur(800)}, 130),
    envelope("evt-0009", "payment_attempted", {"payment_attempt_id": "pa-1", "method": "card", "amount": eur(7199)}, 150),
    envelope("evt-0010", "payment_declined", {"payment_attempt_id": "pa-1", "decline_code": "insufficient_funds", "amount": eur(7199)}, 152),
    envelope("evt-0011", "payment_attempted", {"payment_attempt_id": "pa-2", "method": "wallet", "amount": eur(7199)}, 170),
    envelope("evt-0012", "order_placed", {"order_id": "ord-1", "total": eur(7199), "email": "Shopper@Example.com",
                                          "lines": [{"product_id": "sku-1", "quantity": 1, "unit_price_minor": 7999}]}, 172),
]

valid = {"Records": [record(js(e), i) for i, e in enumerate(funnel)]}

future = envelope("evt-0104", "product_viewed", {"product_id": "sku-2"}, 200)
future["schema_version"] = 7
unknown = envelope("evt-0103", "wishlist_added", {"product_id": "sku-2"}, 200)
no_id = envelope("evt-0105", "product_viewed", {"product_id": "sku-2"}, 200)
del no_id["event_id"]
oversize = envelope("evt-0106", "product_viewed", {"product_id": "sku-2", "brand": "x" * 40000}, 200)
ok_a = envelope("evt-0100", "product_viewed", {"product_id": "sku-2", "price": eur(2500)}, 180)
ok_b = envelope("evt-0107", "cart_item_added", {"product_id": "sku-2", "quantity": 1, "unit_price": eur(2500)}, 210)
poison_payloads = [
    js(ok_a),                                  # 0 valid
    b'{"event_id": "evt-0101", "event_type": ',  # 1 invalid JSON (truncated)
    b'{"event_id":"evt-0102","note":"\xff\xfe"}',  # 2 not UTF-8
    js(ok_a),                                  # 3 duplicate of 0 in the same batch
    js(unknown),                               # 4 unknown event_type
    js(future),                                # 5 future schema_version (6)
    js(no_id),                                 # 6 missing event_id
    js(oversize),                              # 7 over the 32 KiB limit
    js(ok_b),                                  # 8 valid
    js(ok_b),                                  # 9 duplicate of 8
]
poison = {"Records": [record(p, 100 + i) for i, p in enumerate(poison_payloads)]}

# The event log's stream, as the feature updater receives it: one INSERT per log entry (the item ingest
# writes: pseudonymized ids, canonical body, TTL), plus a MODIFY that the mapping's filter would drop.
TABLE_STREAM_ARN = ("arn:aws:dynamodb:us-east-1:123456789012:table/checkout-ai-EventLogTable/stream/"
                    "2025-11-20T00:00:00.000")
RETENTION = 400 * 86400


def pseudonym(prefix, value):
    # Illustrative only: ingest uses a keyed HMAC; any `u_` + 32 hex digits reads the same downstream.
    return prefix + hashlib.sha256(value.encode()).hexdigest()[:32]


def log_item(e):
    e = json.loads(json.dumps(e))
    e["user_id"] = pseudonym("u_", e["user_id"])
    e["context"]["ip"] = pseudonym("ip_", e["context"]["ip"])
    if "email" in e["data"]:
        e["data"]["email"] = pseudonym("e_", e["data"]["email"])
    occurred = datetime.datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))
    return {
        "session_id": {"S": e["session_id"]},
        "event_id": {"S": e["event_id"]},
        "event_type": {"S": e["event_type"]},
        "occurred_at": {"S": e["occurred_at"]},
        "user_id": {"S": e["user_id"]},
        "expires_at": {"N": str(int(occurred.timestamp()) + RETENTION)},
        "body": {"S": json.dumps(e, separators=(",", ":"))},
    }


def stream_record(e, n, name="INSERT"):
    image = log_item(e)
    return {
        "eventID": f"{n:032x}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": ARRIVAL + n,
            "Keys": {"session_id": image["session_id"], "event_id": image["event_id"]},
            "NewImage": image,
            "SequenceNumber": f"{1000000 + n:021d}",
            "SizeBytes": len(json.dumps(image)),
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": TABLE_STREAM_ARN,
    }


inserts = [stream_record(e, i) for i, e in enumerate(funnel)]
inserts.append(stream_record(funnel[0], len(funnel), "MODIFY"))
stream_batch = {"Records": inserts}

# --- abandoned-cart recovery: a cart left in another session (schema v4: the shopper's time zone and the
# merchant's unit cost), as ingest receives it and as the feature updater's stream delivers it. Abandoned
# at 11:05 (idle 60 min), its first message falls due at 12:05 UTC, 13:05 in Berlin.
ABANDONED = "sess-9c21"
abandoned_cart = [
    dict(envelope("evt-0201", "page_viewed", {"page_type": "product_related", "path": "/p/sku-2"}, 240,
                  user_id="shopper-2002", session_id=ABANDONED), schema_version=4),
    dict(envelope("evt-0202", "cart_item_added", {"product_id": "sku-2", "quantity": 2, "unit_price": eur(4999),
                                                   "unit_cost_minor": 2500}, 300,
                  user_id="shopper-2002", session_id=ABANDONED), schema_version=4),
]
for e in abandoned_cart:
    e["context"]["time_zone"] = "Europe/Berlin"
abandoned_records = {"Records": [record(js(e), 200 + i, ABANDONED) for i, e in enumerate(abandoned_cart)]}
abandoned_inserts = {"Records": [stream_record(e, 200 + i) for i, e in enumerate(abandoned_cart)]}

root = pathlib.Path(__file__).resolve().parent.parent / "events"
(root / "kinesis-abandoned-cart.json").write_text(json.dumps(abandoned_records, indent=2) + "\n")
(root / "dynamodb-abandoned-cart-inserts.json").write_text(json.dumps(abandoned_inserts, indent=2) + "\n")
(root / "kinesis-valid.json").write_text(json.dumps(valid, indent=2) + "\n")
(root / "kinesis-poison.json").write_text(json.dumps(poison, indent=2) + "\n")
(root / "dynamodb-event-log-inserts.json").write_text(json.dumps(stream_batch, indent=2) + "\n")
print("wrote", root / "kinesis-valid.json", root / "kinesis-poison.json", root / "dynamodb-event-log-inserts.json")


# --- the scorer: API Gateway HTTP API (payload format 2.0) requests, as the $default stage delivers them
def http_api(method, path, body=None, request_id="Jk1mXgAmliAEMpQ="):
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com",
                    "user-agent": "storefront/1.0"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123", "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                               "sourceIp": "203.0.113.7", "userAgent": "storefront/1.0"},
            "requestId": request_id, "routeKey": f"{method} {path}", "stage": "$default",
            "time": "20/Nov/2025:10:15:00 +0000", "timeEpoch": 1763633700000,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body, separators=(",", ":"))
    return event


decision_request = {
    "session_id": SESSION, "user_id": "shopper-1001", "placement": "cart",
    "context": {"device": "mobile", "country": "DE", "cart": {"currency": "EUR", "items": [
        {"product_id": "sku-1", "quantity": 1, "unit_price_minor": 7999, "unit_cost_minor": 4000}]}},
}
(root / "apigw-decision.json").write_text(json.dumps(http_api("POST", "/v1/decisions", decision_request), indent=2) + "\n")
(root / "apigw-decision-invalid.json").write_text(json.dumps(
    http_api("POST", "/v1/decisions", {"session_id": SESSION, "placement": "basket"}), indent=2) + "\n")
(root / "apigw-health.json").write_text(json.dumps(http_api("GET", "/v1/health"), indent=2) + "\n")

# ---- the experiment evaluator: the input EventBridge Scheduler sends (template: ScheduleV2 Input, with
# <aws.scheduler.scheduled-time> filled in).
(root / "scheduler-evaluate.json").write_text(json.dumps({"window_end": "2025-11-20T11:00:00Z"}, indent=2) + "\n")
# ---- the recovery sweep: the input of its schedule (every 5 minutes), as of 12:30 UTC that day.
(root / "scheduler-recovery-sweep.json").write_text(json.dumps({"now": "2025-11-20T12:30:00Z"}, indent=2) + "\n")
(root / "scheduler-evaluate-one.json").write_text(json.dumps(
    {"window_end": "2025-11-20T11:00:00Z", "experiment_id": "checkout-offers"}, indent=2) + "\n")
