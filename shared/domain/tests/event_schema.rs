//! Schema v1: decoding, reason codes for every kind of bad record, and the committed JSON Schema.

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
    future["schema_version"] = json!(2);
    let mut future_shape = valid();
    future_shape["schema_version"] = json!(3);
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
/// `make schema` (`checkout-ai schema > events/schema/event-v1.schema.json`).
#[test]
fn committed_json_schema_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/schema/event-v1.schema.json"
    );
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema file is committed"))
            .expect("schema file is JSON");
    assert_eq!(
        committed,
        json_schema(),
        "events/schema/event-v1.schema.json is stale; regenerate it"
    );
    // And it names every event type.
    let text = committed.to_string();
    for t in EVENT_TYPES {
        assert!(text.contains(&format!("\"{t}\"")), "schema lacks {t}");
    }
}
