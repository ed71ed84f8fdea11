//! Event schema v1: the contract between producers and the event log.
//!
//! Wire shape (one JSON object per Kinesis record):
//!
//! ```json
//! { "event_id": "…", "event_type": "product_viewed", "schema_version": 1,
//!   "occurred_at": "2019-10-01T00:00:00Z", "session_id": "…", "user_id": "…",
//!   "context": { "device": { "type": "mobile" }, "country": "DE" },
//!   "data": { "product_id": "44600062", … } }
//! ```
//!
//! The envelope is common to every event; `data` is the payload of the variant named by `event_type`
//! ([`EventBody`] is one serde enum tagged on `event_type`). The schema is closed: unknown fields are
//! rejected rather than dropped, because an unknown field could carry personal data that pseudonymization
//! does not know about, and silently discarding it would lose data. Additions go through a new
//! `schema_version`; a version this build does not know is quarantined, never guessed at.
//!
//! Money is always integer minor units plus an ISO 4217 currency code, never a float.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

/// The only schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// One event: the common envelope plus a typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(title = "checkout-ai event, schema v1", deny_unknown_fields)]
pub struct Event {
    /// Producer-assigned identity of the event (a UUID or another stable id). Redeliveries carry the same id.
    pub event_id: String,
    /// Always 1 for this schema.
    #[schemars(range(min = 1, max = 1))]
    pub schema_version: u32,
    /// When the event happened, stamped by the producer (RFC 3339). Projections order by this, not by arrival.
    pub occurred_at: DateTime<Utc>,
    /// The storefront session the event belongs to. Also the Kinesis partition key.
    pub session_id: String,
    /// The shopper's id. Raw on the wire; replaced by a keyed pseudonym at ingest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Device and request context.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
    /// `event_type` and its `data`.
    #[serde(flatten)]
    pub body: EventBody,
}

/// Where the event was produced. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Producer-defined region code (the UCI dataset's `Region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Client IP address. Personal data: replaced by a keyed pseudonym at ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// BCP 47 locale, e.g. `en-GB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Acquisition channel / traffic source id (the UCI dataset's `TrafficType`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_type: Option<u16>,
}

impl Context {
    pub fn is_empty(&self) -> bool {
        *self == Context::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    #[serde(rename = "type")]
    pub kind: DeviceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    Other,
}

/// An amount of money in integer minor units (cents for USD, yen for JPY) and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    pub amount_minor: i64,
    /// ISO 4217 alphabetic code: three upper-case ASCII letters.
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,
}

/// The payload, tagged on `event_type` with the body under `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event_type", content = "data", rename_all = "snake_case")]
pub enum EventBody {
    SessionStarted(SessionStarted),
    PageViewed(PageViewed),
    ProductViewed(ProductViewed),
    CartItemAdded(CartItemAdded),
    CartItemRemoved(CartItemRemoved),
    CheckoutStarted(CheckoutStarted),
    CheckoutStepCompleted(CheckoutStepCompleted),
    FormError(FormError),
    CouponApplied(CouponApplied),
    PaymentAttempted(PaymentAttempted),
    PaymentDeclined(PaymentDeclined),
    OrderPlaced(OrderPlaced),
    DecisionServed(DecisionServed),
    OfferAccepted(OfferAccepted),
}

/// Every `event_type` this schema version knows, in declaration order.
pub const EVENT_TYPES: [&str; 14] = [
    "session_started",
    "page_viewed",
    "product_viewed",
    "cart_item_added",
    "cart_item_removed",
    "checkout_started",
    "checkout_step_completed",
    "form_error",
    "coupon_applied",
    "payment_attempted",
    "payment_declined",
    "order_placed",
    "decision_served",
    "offer_accepted",
];

impl EventBody {
    /// The `event_type` tag of this payload.
    pub fn event_type(&self) -> &'static str {
        let i = match self {
            EventBody::SessionStarted(_) => 0,
            EventBody::PageViewed(_) => 1,
            EventBody::ProductViewed(_) => 2,
            EventBody::CartItemAdded(_) => 3,
            EventBody::CartItemRemoved(_) => 4,
            EventBody::CheckoutStarted(_) => 5,
            EventBody::CheckoutStepCompleted(_) => 6,
            EventBody::FormError(_) => 7,
            EventBody::CouponApplied(_) => 8,
            EventBody::PaymentAttempted(_) => 9,
            EventBody::PaymentDeclined(_) => 10,
            EventBody::OrderPlaced(_) => 11,
            EventBody::DecisionServed(_) => 12,
            EventBody::OfferAccepted(_) => 13,
        };
        EVENT_TYPES[i]
    }

    /// Decodes `data` for a known `event_type`. `None` when the type is unknown.
    fn from_parts(event_type: &str, data: &str) -> Option<serde_json::Result<EventBody>> {
        fn parse<'a, T: Deserialize<'a>>(
            data: &'a str,
            wrap: fn(T) -> EventBody,
        ) -> serde_json::Result<EventBody> {
            serde_json::from_str(data).map(wrap)
        }
        Some(match event_type {
            "session_started" => parse(data, EventBody::SessionStarted),
            "page_viewed" => parse(data, EventBody::PageViewed),
            "product_viewed" => parse(data, EventBody::ProductViewed),
            "cart_item_added" => parse(data, EventBody::CartItemAdded),
            "cart_item_removed" => parse(data, EventBody::CartItemRemoved),
            "checkout_started" => parse(data, EventBody::CheckoutStarted),
            "checkout_step_completed" => parse(data, EventBody::CheckoutStepCompleted),
            "form_error" => parse(data, EventBody::FormError),
            "coupon_applied" => parse(data, EventBody::CouponApplied),
            "payment_attempted" => parse(data, EventBody::PaymentAttempted),
            "payment_declined" => parse(data, EventBody::PaymentDeclined),
            "order_placed" => parse(data, EventBody::OrderPlaced),
            "decision_served" => parse(data, EventBody::DecisionServed),
            "offer_accepted" => parse(data, EventBody::OfferAccepted),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitorType {
    New,
    Returning,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionStarted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_type: Option<VisitorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

/// Page families, as the UCI online-shoppers dataset groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PageType {
    Administrative,
    Informational,
    ProductRelated,
    Cart,
    Checkout,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageViewed {
    pub page_type: PageType,
    /// Path of the page, without query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time spent on the page, when the producer knows it (sent on page exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_on_page_ms: Option<u64>,
}

/// Catalogue attributes shared by product-level events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductViewed {
    pub product_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<String>,
    /// Dotted category path, e.g. `electronics.smartphone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemAdded {
    pub product_id: String,
    pub quantity: u32,
    pub unit_price: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemRemoved {
    pub product_id: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutStarted {
    pub cart_value: Money,
    pub item_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStep {
    Contact,
    Shipping,
    Delivery,
    Payment,
    Review,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutStepCompleted {
    pub step: CheckoutStep,
    /// 1-based position of the step in this storefront's flow.
    pub step_index: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormError {
    pub step: CheckoutStep,
    /// The form field, e.g. `postal_code`. Never the value the shopper typed.
    pub field: String,
    /// Producer-defined machine code, e.g. `invalid_format`.
    pub error_code: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponOutcome {
    Accepted,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponApplied {
    pub code: String,
    pub outcome: CouponOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Money>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Card,
    Wallet,
    BankTransfer,
    BuyNowPayLater,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentAttempted {
    pub payment_attempt_id: String,
    pub method: PaymentMethod,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentDeclined {
    pub payment_attempt_id: String,
    /// Processor decline code, e.g. `insufficient_funds`.
    pub decline_code: String,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub product_id: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderPlaced {
    pub order_id: String,
    /// Order total, in the currency every line is priced in.
    pub total: Money,
    pub lines: Vec<OrderLine>,
    /// Contact e-mail. Personal data: replaced by a keyed pseudonym at ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionServed {
    pub decision_id: String,
    /// `cart`, `checkout` or `post_purchase`.
    pub placement: String,
    /// The action served, e.g. `free_shipping` or `none`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Probability with which the policy chose this action (for off-policy evaluation).
    pub propensity: f64,
    pub model_id: String,
    pub model_version: String,
    pub feature_schema_version: u32,
    pub rules_version: String,
    /// Hash of the feature vector the model scored.
    pub feature_hash: String,
    pub degraded: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferAccepted {
    pub decision_id: String,
    pub action: String,
}

/// Why a record cannot become an event. Each variant maps to one stable, machine-readable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is {size} bytes, over the {limit}-byte limit")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("payload is not valid UTF-8: {0}")]
    NotUtf8(String),
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("payload is not a JSON object")]
    NotAnObject,
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("unknown event_type `{0}`")]
    UnknownEventType(String),
    #[error("schema_version {0} is not supported (this build reads {SCHEMA_VERSION})")]
    UnsupportedSchemaVersion(u64),
    #[error("field `{field}` is invalid: {message}")]
    InvalidField { field: String, message: String },
}

impl DecodeError {
    /// The stable reason code carried by a quarantined record.
    pub fn reason_code(&self) -> &'static str {
        match self {
            DecodeError::PayloadTooLarge { .. } => "payload_too_large",
            DecodeError::NotUtf8(_) => "not_utf8",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::MissingField(_) => "missing_required_field",
            DecodeError::UnknownEventType(_) => "unknown_event_type",
            DecodeError::UnsupportedSchemaVersion(_) => "unsupported_schema_version",
            DecodeError::InvalidField { .. } => "invalid_field",
        }
    }

    /// The offending field, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            DecodeError::MissingField(f) => Some(f),
            DecodeError::InvalidField { field, .. } => Some(field),
            DecodeError::UnknownEventType(_) => Some("event_type"),
            DecodeError::UnsupportedSchemaVersion(_) => Some("schema_version"),
            _ => None,
        }
    }

    fn invalid(field: &str, message: impl fmt::Display) -> Self {
        DecodeError::InvalidField {
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

const MAX_ID_LEN: usize = 128;

impl Event {
    /// Decodes and validates one record. Never panics, whatever the bytes.
    ///
    /// Order of checks: size, UTF-8, JSON syntax, envelope (version before type, so a future version
    /// with an unknown type is reported as a version problem), payload, then semantic rules.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Event, DecodeError> {
        if bytes.len() > max_bytes {
            return Err(DecodeError::PayloadTooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8(e.to_string()))?;
        let event = Wire::parse(text)?.into_event()?;
        event.validate()?;
        Ok(event)
    }

    /// Semantic rules that types alone do not express.
    pub fn validate(&self) -> Result<(), DecodeError> {
        check_id("event_id", &self.event_id)?;
        check_id("session_id", &self.session_id)?;
        if let Some(u) = &self.user_id {
            check_id("user_id", u)?;
        }
        if let Some(c) = &self.context.country {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(DecodeError::invalid(
                    "context.country",
                    "must be an ISO 3166-1 alpha-2 code",
                ));
            }
        }
        let money = |field: &'static str, m: &Money, allow_negative: bool| {
            if m.currency.len() != 3 || !m.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(DecodeError::invalid(
                    field,
                    "currency must be an ISO 4217 code",
                ));
            }
            if !allow_negative && m.amount_minor < 0 {
                return Err(DecodeError::invalid(field, "amount must not be negative"));
            }
            Ok(())
        };
        let non_empty = |field: &'static str, s: &str| {
            if s.is_empty() || s.len() > MAX_ID_LEN {
                Err(DecodeError::invalid(
                    field,
                    format_args!("must be 1..={MAX_ID_LEN} bytes"),
                ))
            } else {
                Ok(())
            }
        };
        let positive = |field: &'static str, q: u32| {
            if q == 0 {
                Err(DecodeError::invalid(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        match &self.body {
            EventBody::SessionStarted(_) | EventBody::PageViewed(_) => Ok(()),
            EventBody::ProductViewed(p) => {
                non_empty("data.product_id", &p.product_id)?;
                p.price
                    .as_ref()
                    .map_or(Ok(()), |m| money("data.price", m, false))
            }
            EventBody::CartItemAdded(c) => {
                non_empty("data.product_id", &c.product_id)?;
                positive("data.quantity", c.quantity)?;
                money("data.unit_price", &c.unit_price, false)
            }
            EventBody::CartItemRemoved(c) => {
                non_empty("data.product_id", &c.product_id)?;
                positive("data.quantity", c.quantity)
            }
            EventBody::CheckoutStarted(c) => money("data.cart_value", &c.cart_value, false),
            EventBody::CheckoutStepCompleted(s) => {
                if s.step_index == 0 {
                    return Err(DecodeError::invalid("data.step_index", "is 1-based"));
                }
                Ok(())
            }
            EventBody::FormError(f) => {
                non_empty("data.field", &f.field)?;
                non_empty("data.error_code", &f.error_code)
            }
            EventBody::CouponApplied(c) => {
                non_empty("data.code", &c.code)?;
                c.discount
                    .as_ref()
                    .map_or(Ok(()), |m| money("data.discount", m, false))
            }
            EventBody::PaymentAttempted(p) => {
                non_empty("data.payment_attempt_id", &p.payment_attempt_id)?;
                money("data.amount", &p.amount, false)
            }
            EventBody::PaymentDeclined(p) => {
                non_empty("data.payment_attempt_id", &p.payment_attempt_id)?;
                non_empty("data.decline_code", &p.decline_code)?;
                money("data.amount", &p.amount, false)
            }
            EventBody::OrderPlaced(o) => {
                non_empty("data.order_id", &o.order_id)?;
                money("data.total", &o.total, false)?;
                for line in &o.lines {
                    non_empty("data.lines.product_id", &line.product_id)?;
                    positive("data.lines.quantity", line.quantity)?;
                    if line.unit_price_minor < 0 {
                        return Err(DecodeError::invalid(
                            "data.lines.unit_price_minor",
                            "must not be negative",
                        ));
                    }
                }
                Ok(())
            }
            EventBody::DecisionServed(d) => {
                non_empty("data.decision_id", &d.decision_id)?;
                if !(d.propensity > 0.0 && d.propensity <= 1.0) {
                    return Err(DecodeError::invalid("data.propensity", "must be in (0, 1]"));
                }
                Ok(())
            }
            EventBody::OfferAccepted(o) => non_empty("data.decision_id", &o.decision_id),
        }
    }
}

fn check_id(field: &'static str, value: &str) -> Result<(), DecodeError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(DecodeError::invalid(
            field,
            format_args!("must be 1..={MAX_ID_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(DecodeError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The envelope as it arrives, with `data` kept raw until `event_type` and `schema_version` are known.
/// Field order on the wire does not matter.
struct Wire<'a> {
    event_id: Option<String>,
    event_type: Option<Cow<'a, str>>,
    schema_version: Option<u64>,
    occurred_at: Option<DateTime<Utc>>,
    session_id: Option<String>,
    user_id: Option<String>,
    context: Option<Context>,
    data: Option<&'a RawValue>,
}

impl Wire<'_> {
    fn into_event(self) -> Result<Event, DecodeError> {
        let schema_version = self
            .schema_version
            .ok_or(DecodeError::MissingField("schema_version"))?;
        if schema_version != u64::from(SCHEMA_VERSION) {
            return Err(DecodeError::UnsupportedSchemaVersion(schema_version));
        }
        let event_type = self
            .event_type
            .ok_or(DecodeError::MissingField("event_type"))?;
        let event_id = self.event_id.ok_or(DecodeError::MissingField("event_id"))?;
        let occurred_at = self
            .occurred_at
            .ok_or(DecodeError::MissingField("occurred_at"))?;
        let session_id = self
            .session_id
            .ok_or(DecodeError::MissingField("session_id"))?;
        let data = self.data.ok_or(DecodeError::MissingField("data"))?;
        let body = match EventBody::from_parts(&event_type, data.get()) {
            None => return Err(DecodeError::UnknownEventType(event_type.into_owned())),
            Some(Err(e)) => return Err(DecodeError::invalid("data", e)),
            Some(Ok(body)) => body,
        };
        Ok(Event {
            event_id,
            schema_version: SCHEMA_VERSION,
            occurred_at,
            session_id,
            user_id: self.user_id,
            context: self.context.unwrap_or_default(),
            body,
        })
    }

    /// Parses the envelope, reporting precisely which field failed and how.
    fn parse(text: &str) -> Result<Wire<'_>, DecodeError> {
        use serde_json::error::Category;
        let at = Cell::new("");
        let unknown = RefCell::new(None::<String>);
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = WireSeed {
            at: &at,
            unknown: &unknown,
        }
        .deserialize(&mut de)
        .and_then(|w| de.end().map(|()| w));
        let e = match parsed {
            Ok(w) => return Ok(w),
            Err(e) => e,
        };
        if matches!(
            e.classify(),
            Category::Syntax | Category::Eof | Category::Io
        ) {
            return Err(DecodeError::InvalidJson(e.to_string()));
        }
        let field = match (unknown.into_inner(), at.get()) {
            (Some(name), _) => name,
            (None, "") => return Err(DecodeError::NotAnObject),
            (None, f) => f.to_string(),
        };
        // A future version may change the envelope's shape: report the version, not the symptom.
        if field != "schema_version" {
            if let Some(v) = future_version(text) {
                return Err(DecodeError::UnsupportedSchemaVersion(v));
            }
        }
        Err(DecodeError::InvalidField {
            field,
            message: e.to_string(),
        })
    }
}

/// Decodes the envelope while recording the field being read (`at`) and any unknown field name.
struct WireSeed<'c> {
    at: &'c Cell<&'static str>,
    unknown: &'c RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for WireSeed<'_> {
    type Value = Wire<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Wire<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for WireSeed<'_> {
    type Value = Wire<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        fn put<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
            map: &mut A,
            slot: &mut Option<T>,
        ) -> Result<(), A::Error> {
            let v = map.next_value::<Option<T>>()?;
            if slot.is_some() {
                return Err(de::Error::custom("duplicate field"));
            }
            *slot = v;
            Ok(())
        }
        let mut w = Wire {
            event_id: None,
            event_type: None,
            schema_version: None,
            occurred_at: None,
            session_id: None,
            user_id: None,
            context: None,
            data: None,
        };
        while let Some(key) = map.next_key::<FieldName<'de>>()? {
            let name = match ENVELOPE_FIELDS.iter().find(|f| **f == key.0.as_ref()) {
                Some(name) => *name,
                None => {
                    *self.unknown.borrow_mut() = Some(key.0.into_owned());
                    return Err(de::Error::custom("unknown field"));
                }
            };
            self.at.set(name);
            match name {
                "event_id" => put(&mut map, &mut w.event_id)?,
                "event_type" => {
                    // Borrowed from the input (no allocation) unless it has escapes.
                    let v = map.next_value::<Option<FieldName<'de>>>()?;
                    if w.event_type.is_some() {
                        return Err(de::Error::custom("duplicate field"));
                    }
                    w.event_type = v.map(|f| f.0);
                }
                "schema_version" => put(&mut map, &mut w.schema_version)?,
                "occurred_at" => put(&mut map, &mut w.occurred_at)?,
                "session_id" => put(&mut map, &mut w.session_id)?,
                "user_id" => put(&mut map, &mut w.user_id)?,
                "context" => put(&mut map, &mut w.context)?,
                _ => {
                    let raw: &'de RawValue = map.next_value()?;
                    if w.data.replace(raw).is_some() {
                        return Err(de::Error::custom("duplicate field"));
                    }
                }
            }
        }
        self.at.set("");
        Ok(w)
    }
}

/// The envelope's field names.
const ENVELOPE_FIELDS: [&str; 8] = [
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "session_id",
    "user_id",
    "context",
    "data",
];

/// A string (a map key or `event_type`), borrowed from the input when it has no escapes.
struct FieldName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// The `schema_version` of a payload whose envelope did not decode, if it is a version we do not read.
fn future_version(text: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct VersionOnly {
        schema_version: Option<u64>,
    }
    serde_json::from_str::<VersionOnly>(text)
        .ok()
        .and_then(|v| v.schema_version)
        .filter(|v| *v != u64::from(SCHEMA_VERSION))
}

/// The JSON Schema of [`Event`], as committed under `events/schema/`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Event)).unwrap_or_default()
}

/// Whether an action kind (as a `decision_served` event names it) is an incentive: what the one-offer-per-
/// session guardrail counts.
pub fn is_incentive_kind(kind: &str) -> bool {
    matches!(kind, "free_shipping" | "percent_discount")
}
