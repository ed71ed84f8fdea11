//! The decision request contract: what is accepted, what is refused and how.

use checkout_domain::decision::request::{parse_request, Placement, MAX_BODY_BYTES};
use proptest::prelude::*;
use serde_json::json;

fn parse(
    v: serde_json::Value,
) -> Result<checkout_domain::decision::request::DecisionRequest, (u16, &'static str, Option<String>)>
{
    parse_request(v.to_string().as_bytes()).map_err(|e| (e.status, e.code, e.field))
}

#[test]
fn a_full_request_is_read_and_unknown_fields_are_tolerated() {
    let r = parse(json!({
        "session_id": "s-1", "user_id": "u-42", "placement": "checkout", "client_version": "9.1",
        "context": {"device": "mobile", "country": "DE", "ab_flags": [1, 2],
                    "cart": {"currency": "EUR", "items": [
                        {"product_id": "p1", "quantity": 2, "unit_price_minor": 1999, "unit_cost_minor": 1200, "color": "red"},
                        {"product_id": "p2", "quantity": 1, "unit_price_minor": 500}]}}
    }))
    .unwrap();
    assert_eq!(r.placement, Placement::Checkout);
    assert_eq!(r.user_id.as_deref(), Some("u-42"));
    let cart = r.cart.unwrap();
    assert_eq!(cart.value_minor(), 2 * 1999 + 500);
    assert_eq!(cart.margin_minor(), None, "one line has no cost");
    assert_eq!(
        (r.device.as_deref(), r.country.as_deref()),
        (Some("mobile"), Some("DE"))
    );
}

#[test]
fn a_minimal_request_needs_only_a_session_and_a_placement() {
    let r = parse(json!({"session_id": "s", "placement": "cart"})).unwrap();
    assert_eq!((r.user_id, r.cart), (None, None));
}

#[test]
fn each_refusal_names_its_field_with_a_stable_code() {
    let cases = [
        (json!([1, 2]), 400, "malformed_json", None),
        (
            json!({"placement": "cart"}),
            400,
            "missing_field",
            Some("session_id"),
        ),
        (
            json!({"session_id": "s"}),
            400,
            "missing_field",
            Some("placement"),
        ),
        (
            json!({"session_id": "s", "placement": "home"}),
            400,
            "invalid_field",
            Some("placement"),
        ),
        (
            json!({"session_id": 7, "placement": "cart"}),
            400,
            "invalid_field",
            Some("session_id"),
        ),
        (
            json!({"session_id": "a b", "placement": "cart"}),
            400,
            "invalid_field",
            Some("session_id"),
        ),
        (
            json!({"session_id": "s".repeat(129), "placement": "cart"}),
            400,
            "invalid_field",
            Some("session_id"),
        ),
        (
            json!({"session_id": "s", "placement": "cart", "context": 3}),
            400,
            "invalid_field",
            Some("context"),
        ),
        (
            json!({"session_id": "s", "placement": "cart", "context": {"country": "de"}}),
            400,
            "invalid_field",
            Some("context.country"),
        ),
        (
            json!({"session_id": "s", "placement": "cart", "context": {"cart": {"items": []}}}),
            400,
            "missing_field",
            Some("context.cart.currency"),
        ),
        (
            json!({"session_id": "s", "placement": "cart", "context": {"cart": {"currency": "USD", "items": [{"product_id": "p", "quantity": 0, "unit_price_minor": 1}]}}}),
            400,
            "invalid_field",
            Some("context.cart.items[0].quantity"),
        ),
        (
            json!({"session_id": "s", "placement": "cart", "context": {"cart": {"currency": "USD", "items": [{"product_id": "p", "quantity": 1, "unit_price_minor": -5}]}}}),
            400,
            "invalid_field",
            Some("context.cart.items[0].unit_price_minor"),
        ),
        (
            json!({"session_id": "s", "placement": "cart", "context": {"cart": {"currency": "USD", "items": [{"product_id": "p", "quantity": 1.5, "unit_price_minor": 5}]}}}),
            400,
            "invalid_field",
            Some("context.cart.items[0].quantity"),
        ),
    ];
    for (body, status, code, field) in cases {
        let got = parse(body.clone()).unwrap_err();
        assert_eq!(got, (status, code, field.map(str::to_owned)), "{body}");
    }
    let e = parse_request(b"{\"session_id\": ").unwrap_err();
    assert_eq!((e.status, e.code), (400, "malformed_json"));
    assert!(e.message.contains("EOF"), "{}", e.message);
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert_eq!(parse_request(&big).unwrap_err().status, 413);
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    assert_eq!(
        parse_request(deep.as_bytes()).unwrap_err().code,
        "malformed_json"
    );
}

#[path = "support/hostile.rs"]
mod hostile;

/// A valid request, for the generator's one-field replacements.
fn valid() -> serde_json::Value {
    json!({"session_id": "s", "user_id": "u", "placement": "cart",
           "context": {"cart": {"currency": "USD", "items": [{"product_id": "p", "quantity": 1, "unit_price_minor": 5}]}}})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]
    #[test]
    fn no_body_panics_or_gets_anything_but_a_4xx(body in hostile::hostile_body(valid())) {
        match parse_request(&body) {
            Ok(r) => prop_assert!(!r.session_id.is_empty()),
            Err(e) => {
                prop_assert!((400..500).contains(&e.status), "{e:?}");
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
