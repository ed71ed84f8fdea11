//! The decision request: strict validation with stable error codes, unknown fields tolerated.
//!
//! Parsing goes through an untyped JSON value first (serde_json bounds nesting at 128 levels, so deep
//! input is an error, not a stack overflow), then each field is checked by hand so that every refusal
//! names the field and a reason a storefront developer can act on.

use serde::Serialize;
use serde_json::{Map, Value};

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most cart lines.
pub const MAX_CART_ITEMS: usize = 100;
/// Longest identifier.
pub const MAX_ID_CHARS: usize = 128;
const MAX_QUANTITY: u64 = 1_000;
const MAX_PRICE_MINOR: u64 = 1_000_000_000;

pub use crate::placement::Placement;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CartLine {
    pub product_id: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
    /// The merchant's unit cost, when it shares it: needed for the margin floor.
    pub unit_cost_minor: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cart {
    /// ISO 4217, three upper-case letters.
    pub currency: String,
    pub items: Vec<CartLine>,
}

impl Cart {
    pub fn value_minor(&self) -> i64 {
        self.items
            .iter()
            .map(|l| l.unit_price_minor * i64::from(l.quantity))
            .sum()
    }

    /// Cart margin in minor units, if every line has a cost.
    pub fn margin_minor(&self) -> Option<i64> {
        self.items
            .iter()
            .map(|l| Some((l.unit_price_minor - l.unit_cost_minor?) * i64::from(l.quantity)))
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRequest {
    pub session_id: String,
    /// The raw user id as the storefront knows it; pseudonymized before any use.
    pub user_id: Option<String>,
    pub placement: Placement,
    pub device: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub cart: Option<Cart>,
    /// What the risk assessment at `checkout` reads: raw identifiers, pseudonymized before any use.
    pub payment: Option<PaymentContext>,
}

impl DecisionRequest {
    /// Replaces the payment context's raw identifiers by their pseudonyms (the ingest key, so they match
    /// the risk profiles' keys). The scorer calls this before anything reads them.
    pub fn pseudonymize_payment(&mut self, p: &crate::pseudonym::Pseudonymizer) {
        use crate::pseudonym::IdKind;
        if let Some(pay) = self.payment.as_mut() {
            for (kind, id) in [
                (IdKind::Card, &mut pay.card_fingerprint),
                (IdKind::Device, &mut pay.device_id),
                (IdKind::Ip, &mut pay.ip),
            ] {
                if let Some(raw) = id.as_mut() {
                    *raw = p.pseudonymize(kind, raw);
                }
            }
        }
    }
}

/// `context.payment` and the request's device and IP, for the risk assessment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PaymentContext {
    /// The payment service's card fingerprint (never the card number: a body that holds one is refused).
    pub card_fingerprint: Option<String>,
    pub billing_country: Option<String>,
    pub shipping_country: Option<String>,
    /// `context.device_id`: the storefront's device identifier.
    pub device_id: Option<String>,
    /// `context.ip`: the shopper's IP address.
    pub ip: Option<String>,
    /// The storefront's reference of the payment or order, named in a review case.
    pub order_ref: Option<String>,
}

/// A refused request: the HTTP status, a stable code, the field at fault and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    #[serde(skip)]
    pub status: u16,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl RequestError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            code: "invalid_field",
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    fn missing(field: &str) -> Self {
        Self {
            status: 400,
            code: "missing_field",
            field: Some(field.to_owned()),
            message: format!("`{field}` is required"),
        }
    }
}

/// Parses and validates a request body.
pub fn parse_request(body: &[u8]) -> Result<DecisionRequest, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError {
            status: 413,
            code: "body_too_large",
            field: None,
            message: format!(
                "the body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
                body.len()
            ),
        });
    }
    if !crate::event::pan::find(body).is_empty() {
        return Err(RequestError {
            status: 400,
            code: "card_number_detected",
            field: None,
            message:
                "the body holds what looks like a card number; send the payment service's card \
                      fingerprint in context.payment.card_fingerprint, never the number"
                    .into(),
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| RequestError {
        status: 400,
        code: "malformed_json",
        field: None,
        message: format!("the body is not valid JSON: {e}"),
    })?;
    let root = value.as_object().ok_or_else(|| RequestError {
        status: 400,
        code: "malformed_json",
        field: None,
        message: "the body must be a JSON object".into(),
    })?;
    let placement = required_str(root, "placement")?;
    // `recovery` is the recovery sweep's own placement, never a storefront's.
    let placement = Placement::parse(placement)
        .filter(|p| *p != Placement::Recovery)
        .ok_or_else(|| {
            RequestError::invalid(
                "placement",
                "must be one of `cart`, `checkout`, `post_purchase`",
            )
        })?;
    let context = match root.get("context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => Some(c),
        Some(_) => return Err(RequestError::invalid("context", "must be an object")),
    };
    let empty = Map::new();
    let context = context.unwrap_or(&empty);
    let payment = match context.get("payment") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => {
            return Err(RequestError::invalid(
                "context.payment",
                "must be an object",
            ))
        }
    };
    let payment_context = PaymentContext {
        card_fingerprint: match payment {
            Some(p) => identifier(p, "card_fingerprint", "context.payment.card_fingerprint")?,
            None => None,
        },
        billing_country: match payment {
            Some(p) => code(p, "billing_country", "context.payment.billing_country", 2)?,
            None => None,
        },
        shipping_country: match payment {
            Some(p) => code(p, "shipping_country", "context.payment.shipping_country", 2)?,
            None => None,
        },
        device_id: identifier(context, "device_id", "context.device_id")?,
        ip: identifier(context, "ip", "context.ip")?,
        order_ref: match payment {
            Some(p) => identifier(p, "order_ref", "context.payment.order_ref")?,
            None => None,
        },
    };
    Ok(DecisionRequest {
        session_id: identifier(root, "session_id", "session_id")?
            .ok_or_else(|| RequestError::missing("session_id"))?,
        user_id: identifier(root, "user_id", "user_id")?,
        placement,
        device: token(context, "device", "context.device", 32)?,
        country: code(context, "country", "context.country", 2)?,
        cart: match context.get("cart") {
            None | Some(Value::Null) => None,
            Some(Value::Object(cart)) => Some(parse_cart(cart)?),
            Some(_) => return Err(RequestError::invalid("context.cart", "must be an object")),
        },
        payment: (payment_context != PaymentContext::default()).then_some(payment_context),
    })
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, RequestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(RequestError::missing(key)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(RequestError::invalid(key, "must be a string")),
    }
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, RequestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RequestError::invalid(field, "must be a string")),
    }
}

/// An optional string field that must satisfy `valid`; otherwise `invalid_field`, explained by `rule`.
fn checked(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    valid: impl Fn(&str) -> bool,
    rule: impl FnOnce() -> String,
) -> Result<Option<String>, RequestError> {
    match optional_str(obj, key, field)? {
        None => Ok(None),
        Some(s) if valid(s) => Ok(Some(s.to_owned())),
        Some(_) => Err(RequestError::invalid(field, rule())),
    }
}

/// 1–128 printable ASCII characters without spaces.
fn identifier(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, RequestError> {
    let valid = |s: &str| {
        !s.is_empty() && s.len() <= MAX_ID_CHARS && s.bytes().all(|b| b.is_ascii_graphic())
    };
    checked(obj, key, field, valid, || {
        format!("must be 1–{MAX_ID_CHARS} printable ASCII characters without spaces")
    })
}

/// A short lower-case token such as a device class.
fn token(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    max: usize,
) -> Result<Option<String>, RequestError> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    checked(obj, key, field, valid, || {
        format!("must be 1–{max} of [a-z0-9_]")
    })
}

/// An upper-case code of exactly `len` letters (ISO country or currency).
fn code(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    len: usize,
) -> Result<Option<String>, RequestError> {
    let valid = |s: &str| s.len() == len && s.bytes().all(|b| b.is_ascii_uppercase());
    checked(obj, key, field, valid, || {
        format!("must be {len} upper-case letters")
    })
}

fn integer(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    max: u64,
) -> Result<Option<u64>, RequestError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= max => Ok(Some(v)),
            _ => Err(RequestError::invalid(
                field,
                format!("must be an integer from 0 to {max} (minor units)"),
            )),
        },
        Some(_) => Err(RequestError::invalid(field, "must be an integer")),
    }
}

fn parse_cart(cart: &Map<String, Value>) -> Result<Cart, RequestError> {
    let currency = code(cart, "currency", "context.cart.currency", 3)?
        .ok_or_else(|| RequestError::missing("context.cart.currency"))?;
    let items: &[Value] = match cart.get("items") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(RequestError::invalid(
                "context.cart.items",
                "must be an array",
            ))
        }
    };
    if items.len() > MAX_CART_ITEMS {
        return Err(RequestError::invalid(
            "context.cart.items",
            format!("at most {MAX_CART_ITEMS} lines"),
        ));
    }
    let mut lines = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("context.cart.items[{i}].{name}");
        let Value::Object(item) = item else {
            return Err(RequestError::invalid(
                &format!("context.cart.items[{i}]"),
                "must be an object",
            ));
        };
        let product_id = identifier(item, "product_id", &field("product_id"))?
            .ok_or_else(|| RequestError::missing(&field("product_id")))?;
        let quantity = integer(item, "quantity", &field("quantity"), MAX_QUANTITY)?
            .ok_or_else(|| RequestError::missing(&field("quantity")))?;
        if quantity == 0 {
            return Err(RequestError::invalid(
                &field("quantity"),
                "must be at least 1",
            ));
        }
        let price = integer(
            item,
            "unit_price_minor",
            &field("unit_price_minor"),
            MAX_PRICE_MINOR,
        )?
        .ok_or_else(|| RequestError::missing(&field("unit_price_minor")))?;
        let cost = integer(
            item,
            "unit_cost_minor",
            &field("unit_cost_minor"),
            MAX_PRICE_MINOR,
        )?;
        lines.push(CartLine {
            product_id,
            quantity: quantity as u32,
            unit_price_minor: price as i64,
            unit_cost_minor: cost.map(|c| c as i64),
        });
    }
    Ok(Cart {
        currency,
        items: lines,
    })
}
