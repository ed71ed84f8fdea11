//! Hostile decision-request bodies for property tests: random bytes, JSON of the wrong shapes with the
//! contract's field names, huge strings, control and bidi characters, valid requests with one field
//! replaced, and deep nesting (balanced, and unterminated past the body limit). Shared by
//! `shared/domain/tests/decision_request.rs` and `functions/scorer/tests/handler.rs` (through `#[path]`).

use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON trees whose object keys are mostly the contract's field names.
pub fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::from),
        "[\\x00-\\x1f\\u{7f}\\u{202e}\\u{feff}]{1,20}".prop_map(Value::from),
        (0usize..20_000).prop_map(|n| Value::from("x".repeat(n))),
        prop_oneof![
            Just("cart"),
            Just("checkout"),
            Just("post_purchase"),
            Just("GBP"),
            Just("GB")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("session_id".to_string()),
                    Just("user_id".to_string()),
                    Just("placement".to_string()),
                    Just("context".to_string()),
                    Just("cart".to_string()),
                    Just("items".to_string()),
                    Just("currency".to_string()),
                    Just("product_id".to_string()),
                    Just("quantity".to_string()),
                    Just("unit_price_minor".to_string()),
                    Just("unit_cost_minor".to_string()),
                    "\\PC{0,12}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Hostile bodies; `valid` is a valid request whose fields get replaced.
pub fn hostile_body(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => hostile_json().prop_map(|v| v.to_string().into_bytes()),
        3 => (hostile_json(), prop_oneof![Just("session_id"), Just("user_id"), Just("placement"), Just("context")])
            .prop_map(move |(v, field)| {
                let mut base = valid.clone();
                base[field] = v;
                base.to_string().into_bytes()
            }),
        2 => prop::collection::vec(any::<u8>(), 0..2048),
        1 => (1usize..4000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        1 => (1usize..50_000).prop_map(|depth| format!("{}1", "{\"a\":".repeat(depth)).into_bytes()),
    ]
}
