//! Schema v2 (reading v1): decoding, reason codes for every kind of bad record, the v2 rules of
//! `decision_served`, the upcast of a v1 decision, and the committed JSON Schema.

use checkout_domain::event::{json_schema, DecodeError, Event, EventBody, EVENT_TYPES};
use serde_json::{json, Value};

const LIMIT: usize = 32 * 1024;

fn valid() -> Value {
    json!({
        "event_id": "0b8f0a6e-3c1e-4a51-9d1b-0c0f4f1d2a11",
        "event_type": "cart_item_added",
        "schema_version": 1,
        "occurred_at": "2026-11-20T10:15:00.250Z",
        "session_id": "s-1",
        "user_id": "user-42",
        "context": { "device": { "type": "mobile", "os": "iOS" }, "country": "DE", "ip": "203.0.113.7" },
        "data": { "product_id": "p-1", "quantity": 2, "unit_price": { "amount_minor": 1999, "currency": "EUR" } }
    })
}

fn decode(v: &Value) -> Result<Event, DecodeError> {
    Event::decode(v.to_string().as_bytes(), LIMIT)
}

fn reason(bytes: &[u8]) -> &'static str {
    Event::decode(bytes, LIMIT)
        .expect_err("must be rejected")
        .reason_code()
}

#[test]
fn a_valid_event_decodes_and_round_trips() {
    let e = decode(&valid()).expect("valid");
    assert_eq!(e.body.event_type(), "cart_item_added");
    assert!(
        matches!(&e.body, EventBody::CartItemAdded(c) if c.quantity == 2 && c.unit_price.amount_minor == 1999)
    );
    let again = Event::decode(
        serde_json::to_string(&e).expect("encodes").as_bytes(),
        LIMIT,
    )
    .expect("re-decodes");
    assert_eq!(again, e);
    // Field order on the wire does not matter.
    let reordered = r#"{"data":{"quantity":2,"unit_price":{"currency":"EUR","amount_minor":1999},"product_id":"p-1"},
        "session_id":"s-1","occurred_at":"2026-11-20T10:15:00.250Z","schema_version":1,"user_id":"user-42",
        "event_type":"cart_item_added","event_id":"0b8f0a6e-3c1e-4a51-9d1b-0c0f4f1d2a11",
        "context":{"country":"DE","ip":"203.0.113.7","device":{"os":"iOS","type":"mobile"}}}"#;
    assert_eq!(
        Event::decode(reordered.as_bytes(), LIMIT).expect("valid"),
        e
    );
}

#[test]
fn every_bad_record_kind_has_its_own_reason_code() {
    let mut future = valid();
    future["schema_version"] = json!(7);
    let mut future_shape = valid();
    future_shape["schema_version"] = json!(7);
    future_shape["occurred_at"] = json!(1_700_000_000);
    let mut unknown_type = valid();
    unknown_type["event_type"] = json!("wishlist_added");
    let mut no_id = valid();
    no_id.as_object_mut().expect("object").remove("event_id");
    let mut bad_type = valid();
    bad_type["data"]["quantity"] = json!("two");
    let mut extra = valid();
    extra["email"] = json!("a@b.c");
    let mut negative = valid();
    negative["data"]["unit_price"]["amount_minor"] = json!(-5);

    assert_eq!(reason(b"{\"event_id\": "), "invalid_json");
    assert_eq!(reason(b"not json at all"), "invalid_json");
    assert_eq!(reason(&[0x7b, 0xff, 0xfe, 0x7d]), "not_utf8");
    assert_eq!(reason(b"[1, 2, 3]"), "not_an_object");
    assert_eq!(
        reason(future.to_string().as_bytes()),
        "unsupported_schema_version"
    );
    assert_eq!(
        reason(future_shape.to_string().as_bytes()),
        "unsupported_schema_version"
    );
    assert_eq!(
        reason(unknown_type.to_string().as_bytes()),
        "unknown_event_type"
    );
    assert_eq!(
        reason(no_id.to_string().as_bytes()),
        "missing_required_field"
    );
    assert_eq!(reason(bad_type.to_string().as_bytes()), "invalid_field");
    assert_eq!(reason(extra.to_string().as_bytes()), "invalid_field");
    assert_eq!(reason(negative.to_string().as_bytes()), "invalid_field");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(LIMIT));
    assert_eq!(reason(big.as_bytes()), "payload_too_large");
}

#[test]
fn errors_name_the_offending_field() {
    let mut no_id = valid();
    no_id.as_object_mut().expect("object").remove("event_id");
    assert_eq!(
        decode(&no_id).expect_err("rejected").field(),
        Some("event_id")
    );
    let mut extra = valid();
    extra["email"] = json!("a@b.c");
    assert_eq!(decode(&extra).expect_err("rejected").field(), Some("email"));
    let mut bad_country = valid();
    bad_country["context"]["country"] = json!("Germany");
    assert_eq!(
        decode(&bad_country).expect_err("rejected").field(),
        Some("context.country")
    );
    let mut bad_time = valid();
    bad_time["occurred_at"] = json!("yesterday");
    assert_eq!(
        decode(&bad_time).expect_err("rejected").field(),
        Some("occurred_at")
    );
    let mut dup = valid().to_string();
    dup.insert_str(1, "\"session_id\":\"other\",");
    let err = Event::decode(dup.as_bytes(), LIMIT).expect_err("duplicate key");
    assert_eq!(
        (err.reason_code(), err.field()),
        ("invalid_field", Some("session_id"))
    );
}

#[test]
fn no_input_panics() {
    // A cheap fuzz over truncations and byte flips of a valid record: every outcome is Ok or a coded error.
    let bytes = valid().to_string().into_bytes();
    for cut in 0..bytes.len() {
        let _ = Event::decode(&bytes[..cut], LIMIT);
    }
    for i in 0..bytes.len() {
        for flip in [0x00u8, 0x22, 0x5c, 0x7b, 0x7d, 0xff] {
            let mut b = bytes.clone();
            b[i] = flip;
            if let Err(e) = Event::decode(&b, LIMIT) {
                assert!(!e.reason_code().is_empty());
            }
        }
    }
}

/// The committed schema must be exactly what the types generate. Regenerate with
/// `make schema` (`checkout-ai schema > events/schema/event-v6.schema.json`). The v1 to v5 files stay as
/// they were published: the contracts their producers were given.
#[test]
fn committed_json_schema_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/schema/event-v6.schema.json"
    );
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema file is committed"))
            .expect("schema file is JSON");
    assert_eq!(
        committed,
        json_schema(),
        "events/schema/event-v6.schema.json is stale; regenerate it"
    );
    // And it names every event type.
    let text = committed.to_string();
    for t in EVENT_TYPES {
        assert!(text.contains(&format!("\"{t}\"")), "schema lacks {t}");
    }
}

fn decision_v1() -> Value {
    json!({
        "event_id": "d-1", "event_type": "decision_served", "schema_version": 1,
        "occurred_at": "2026-11-20T10:15:00Z", "session_id": "s-1", "user_id": "user-42",
        "data": {"decision_id": "d-1", "placement": "cart", "action": "free_shipping",
                 "experiment_id": "e", "variant": "treatment", "propensity": 1.0,
                 "model_id": "purchase-propensity", "model_version": "v1", "feature_schema_version": 1,
                 "rules_version": "rules-1", "feature_hash": "ab", "degraded": false}
    })
}

fn decision_v2() -> Value {
    let mut v = decision_v1();
    v["schema_version"] = json!(2);
    v["data"]["propensity"] = json!(0.9);
    v["data"]["action_key"] = json!("free_shipping");
    v["data"]["policy"] = json!({"id": "configured-uplift", "version": "rules-1"});
    v["data"]["eligible"] = json!([
        {"action": "none", "probability": 0.05},
        {"action": "free_shipping", "probability": 0.9, "cost_minor": 499},
        {"action": "reminder", "probability": 0.05}
    ]);
    v["data"]["cart"] =
        json!({"currency": "EUR", "value_minor": 7999, "margin_minor": 3999, "margin_known": true});
    v
}

#[test]
fn a_v1_decision_reads_and_upcasts_and_round_trips_as_v1() {
    let e = decode(&decision_v1()).expect("v1 still reads");
    assert_eq!(e.schema_version, 1);
    let EventBody::DecisionServed(d) = &e.body else {
        panic!("not a decision")
    };
    let up = d.upcast();
    assert_eq!(up.action_key.as_deref(), Some("free_shipping"));
    let policy = up.policy.expect("upcast names the policy");
    assert_eq!(
        (policy.id.as_str(), policy.version.as_str()),
        ("configured-uplift", "rules-1")
    );
    assert_eq!(
        up.eligible.len(),
        1,
        "propensity 1: the distribution is known"
    );
    assert_eq!(up.eligible[0].probability, 1.0);
    // Below 1 the rest of the distribution was never logged: it stays unknown, not invented.
    let mut explored = decision_v1();
    explored["data"]["propensity"] = json!(0.3);
    let e2 = decode(&explored).expect("reads");
    let EventBody::DecisionServed(d2) = &e2.body else {
        panic!("not a decision")
    };
    assert!(d2.upcast().eligible.is_empty());
    // Re-encoding keeps it a v1 document.
    let again = serde_json::to_value(&e).expect("encodes");
    assert_eq!(again, decision_v1());
}

#[test]
fn a_v2_decision_carries_a_whole_distribution() {
    let e = decode(&decision_v2()).expect("valid v2");
    let again = Event::decode(serde_json::to_string(&e).unwrap().as_bytes(), LIMIT).unwrap();
    assert_eq!(again, e);

    let field = |v: &Value| match decode(v) {
        Err(DecodeError::InvalidField { field, message }) => format!("{field}: {message}"),
        Err(DecodeError::MissingField(f)) => format!("missing {f}"),
        other => panic!("should be refused: {other:?}"),
    };
    let mut v1_with_v2_field = decision_v2();
    v1_with_v2_field["schema_version"] = json!(1);
    assert!(field(&v1_with_v2_field).contains("later schema version"));
    let mut no_policy = decision_v2();
    no_policy["data"].as_object_mut().unwrap().remove("policy");
    assert_eq!(field(&no_policy), "missing data.policy");
    let mut short = decision_v2();
    short["data"]["eligible"][0]["probability"] = json!(0.01);
    assert!(field(&short).contains("sum to"));
    let mut other_propensity = decision_v2();
    other_propensity["data"]["propensity"] = json!(0.05);
    assert!(field(&other_propensity).contains("other than `propensity`"));
    let mut unlisted = decision_v2();
    unlisted["data"]["action_key"] = json!("percent_discount_10");
    assert!(field(&unlisted).contains("does not list the chosen action"));
    let mut twice = decision_v2();
    twice["data"]["eligible"][2]["action"] = json!("none");
    assert!(field(&twice).contains("each action once"));
    let mut bad_shadow = decision_v2();
    bad_shadow["data"]["shadow"] = json!({"policy": {"id": "c", "version": "1"}, "action_key": "none",
        "eligible": [{"action": "none", "probability": 0.5}]});
    assert!(field(&bad_shadow).starts_with("data.shadow.eligible"));
}

fn decision_v3() -> Value {
    let mut v = decision_v2();
    v["schema_version"] = json!(3);
    v["data"]["score"] = json!(0.42);
    v["data"]["model_input"] = json!({"page_values": 12.5, "month": 11, "browser": "2",
                                      "visitor_type": "returning", "weekend": false, "region": null});
    v["data"]["policy_features"] = json!({"intercept": 1.0, "logit_propensity": -0.32});
    v
}

#[test]
fn a_v3_decision_logs_what_the_scorer_saw_unless_degraded() {
    let e = decode(&decision_v3()).expect("valid v3");
    let again = Event::decode(serde_json::to_string(&e).unwrap().as_bytes(), LIMIT).unwrap();
    assert_eq!(again, e);
    // v2 still reads, without them.
    assert!(decode(&decision_v2()).is_ok());

    let field = |v: &Value| match decode(v) {
        Err(DecodeError::InvalidField { field, message }) => format!("{field}: {message}"),
        Err(DecodeError::MissingField(f)) => format!("missing {f}"),
        other => panic!("should be refused: {other:?}"),
    };
    let mut v2_with_v3_field = decision_v3();
    v2_with_v3_field["schema_version"] = json!(2);
    assert_eq!(
        field(&v2_with_v3_field),
        "data.score: is a schema v3 field; this event says schema_version 2"
    );
    for missing in ["score", "model_input", "policy_features"] {
        let mut v = decision_v3();
        v["data"].as_object_mut().unwrap().remove(missing);
        assert_eq!(field(&v), format!("missing data.{missing}"));
    }
    let mut out_of_range = decision_v3();
    out_of_range["data"]["score"] = json!(1.5);
    assert_eq!(field(&out_of_range), "data.score: must be in [0, 1]");
    let mut nested = decision_v3();
    nested["data"]["model_input"]["page_values"] = json!([1, 2]);
    assert!(field(&nested).starts_with("data.model_input.page_values"));
    let mut degraded = decision_v3();
    degraded["data"]["degraded"] = json!(true);
    assert_eq!(
        field(&degraded),
        "data.score: a degraded decision read no features"
    );
    let mut degraded_bare = decision_v2();
    degraded_bare["schema_version"] = json!(3);
    degraded_bare["data"]["degraded"] = json!(true);
    assert!(
        decode(&degraded_bare).is_ok(),
        "a degraded v3 decision logs none of them"
    );
}

#[test]
fn a_v1_decision_log_still_folds() {
    use checkout_domain::features::session::fold;
    use checkout_domain::ingest::LogEntry;
    let v1 = decode(&decision_v1()).unwrap();
    let mut v2 = decision_v2();
    v2["event_id"] = json!("d-2");
    v2["data"]["decision_id"] = json!("d-2");
    v2["occurred_at"] = json!("2026-11-20T10:16:00Z");
    let v2 = decode(&v2).unwrap();
    let entries = [LogEntry::of(&v1, 0).unwrap(), LogEntry::of(&v2, 0).unwrap()];
    let (projection, unreadable) = fold(&entries);
    assert!(unreadable.is_empty(), "{unreadable:?}");
    let p = projection.expect("folds");
    assert_eq!((p.session.decisions, p.session.offers), (2, 2));
    let exposure = &p.users[0].exposures["e"];
    assert_eq!(exposure.decision_id, "d-1", "{exposure:?}");
}

fn v5(event_type: &str, data: Value) -> Value {
    json!({
        "event_id": "e-5", "event_type": event_type, "schema_version": 5,
        "occurred_at": "2026-11-20T10:15:00Z", "session_id": "s-1", "user_id": "user-42",
        "data": data
    })
}

fn review(transition: &str, actor_kind: &str) -> Value {
    v5(
        "review_updated",
        json!({
            "case_id": "case-1", "transition": transition,
            "actor": { "kind": actor_kind, "id": "reviewer-9" },
            "decision_id": "d-1", "order_ref": "pa-1", "score": 12.5, "band": 2,
            "rule_ids": ["card_declines_1h"], "reasons": ["amount_over_history"],
            "deadline_at": "2026-11-27T10:15:00Z", "default_decision": "approved"
        }),
    )
}

#[test]
fn schema_v5_additions_decode_and_are_refused_in_older_versions() {
    let payment = v5(
        "payment_attempted",
        json!({ "payment_attempt_id": "pa-1", "method": "card",
                "amount": { "amount_minor": 100, "currency": "EUR" },
                "card_fingerprint": "fp_1", "billing_country": "DE", "shipping_country": "FR" }),
    );
    decode(&payment).expect("a v5 payment");
    let mut old = payment.clone();
    old["schema_version"] = json!(4);
    let err = decode(&old).expect_err("v4 has no card fingerprint");
    assert_eq!(err.field(), Some("data.card_fingerprint"));
    let mut bad = payment.clone();
    bad["data"]["shipping_country"] = json!("France");
    assert_eq!(
        decode(&bad).expect_err("alpha-2").field(),
        Some("data.shipping_country")
    );

    let mut device = valid();
    device["context"]["device"]["id"] = json!("dev-1");
    assert_eq!(
        decode(&device).expect_err("v1").field(),
        Some("context.device.id")
    );
    device["schema_version"] = json!(5);
    decode(&device).expect("a v5 device id");

    for (t, data) in [
        (
            "chargeback_received",
            json!({ "order_id": "o-1", "amount": { "amount_minor": 100, "currency": "EUR" },
                    "reason_code": "10.4", "fraud": true }),
        ),
        (
            "fraud_confirmed",
            json!({ "order_id": "o-1", "source": "issuer" }),
        ),
    ] {
        let e = v5(t, data);
        assert_eq!(decode(&e).expect("v5").body.event_type(), t);
        let mut old = e.clone();
        old["schema_version"] = json!(4);
        assert_eq!(decode(&old).expect_err("v4").field(), Some("event_type"));
    }
    assert!(EVENT_TYPES.contains(&"review_updated"));
    decode(&review("opened", "system")).expect("the system opens a case");
    decode(&review("approved", "reviewer")).expect("a reviewer decides");
    decode(&review("released", "system")).expect("a claim lapses");
    decode(&review("released", "reviewer")).expect("a reviewer lets go");
    for (t, k) in [
        ("opened", "reviewer"),
        ("approved", "system"),
        ("expired", "reviewer"),
    ] {
        assert_eq!(
            decode(&review(t, k)).expect_err("wrong actor").field(),
            Some("data.actor.kind"),
            "{t} by {k}"
        );
    }
    let mut out_of_range = review("opened", "system");
    out_of_range["data"]["score"] = json!(140);
    assert_eq!(
        decode(&out_of_range).expect_err("0–100").field(),
        Some("data.score")
    );
}
