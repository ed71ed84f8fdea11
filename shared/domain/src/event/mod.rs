//! Event schema v5: the contract between producers and the event log.
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

//!
//! This module is the schema (the types, which also generate the committed JSON Schema); [`decode`] is
//! the hand-written decoder that turns raw bytes into an [`Event`] or a [`DecodeError`] with a stable
//! reason code, never panicking.

mod decode;
pub mod pan;

pub use decode::DecodeError;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema version this build writes. It reads every version from [`OLDEST_SCHEMA_VERSION`] up to this.
///
/// - **v1**: the original schema.
/// - **v2**: `decision_served` gains what off-policy evaluation needs: `action_key`, the serving policy
///   (`policy`), its full distribution over the eligible actions (`eligible`), the cart's economics
///   (`cart`) and an optional `shadow` choice. Every other event type is unchanged, so a v1 producer's
///   events only need their `schema_version` bumped. A v1 `decision_served` is upcast on read
///   ([`DecisionServed::upcast`]).
/// - **v3**: `decision_served` also logs what the scorer saw, so that any decision can be explained and
///   the model's inputs monitored for drift from the log alone: `score` (the purchase probability),
///   `model_input` (the model's input columns by name, at `feature_schema_version`) and
///   `policy_features` (the policy's context features by name). Required unless the decision was
///   degraded; refused in an event that says an older version.
/// - **v4**: abandoned-cart recovery. `context.time_zone` (the shopper's IANA time zone, for quiet
///   hours); `cart_item_added.unit_cost_minor` (the merchant's cost, for the margin floor); three event types: `consent_changed` (marketing consent given or withdrawn, per channel),
///   `recovery_message_requested` (written by the recovery sweep) and `recovery_message_outcome`
///   (delivered, opened, clicked, unsubscribed, bounced: from the merchant's messaging service); and
///   `decision_served.recovery` (which cart sequence and step a `recovery` decision is for). Each is
///   refused in an event that says an older version.
/// - **v5**: fraud-resilient gating. `context.device.id` (the storefront's device identifier,
///   pseudonymized at ingest); `payment_attempted.card_fingerprint` (the payment service's card
///   fingerprint, never the card number; pseudonymized at ingest), `billing_country` and
///   `shipping_country`; `decision_served.risk` (the risk score, its band, the recommended friction and
///   the reason codes); three event types: `chargeback_received` and `fraud_confirmed` (labels, which
///   arrive weeks late) and `review_updated` (every transition of a manual-review case, with who acted).
///   Each is refused in an event that says an older version.
/// - **v6**: proof of worth. `decision_served.holdout` (the user's arm of the universal holdout: `holdout`
///   or `served`) and `decision_served.visitor_type` (new or returning, as the decision saw it: a cohort
///   dimension recorded at first exposure). Each is refused in an event that says an older version.
pub const SCHEMA_VERSION: u32 = 6;
/// The oldest schema version this build still reads.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// One event: the common envelope plus a typed payload.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(
    title = "checkout-ai event, schema v6 (reads v1 to v5)",
    deny_unknown_fields
)]
pub struct Event {
    /// Producer-assigned identity of the event (a UUID or another stable id). Redeliveries carry the same id.
    pub event_id: String,
    /// 6 for this schema; 1 to 5 are still read (each version's additions are refused in older ones).
    #[schemars(range(min = 1, max = 6))]
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
    /// **v4.** The shopper's IANA time zone (`Europe/Berlin`), when the storefront knows it: quiet hours
    /// for recovery messages are kept in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
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
    /// **v5.** The storefront's device identifier (a cookie or app-install id). Personal data: replaced by
    /// a keyed pseudonym at ingest. Risk velocity is counted per device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    Other,
}

impl DeviceType {
    /// The wire name (what a decision request's `device` says).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Other => "other",
        }
    }
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
    /// Boxed: the largest payload by far, and the rarest.
    DecisionServed(Box<DecisionServed>),
    OfferAccepted(OfferAccepted),
    /// **v4.**
    ConsentChanged(ConsentChanged),
    /// **v4.**
    RecoveryMessageRequested(RecoveryMessageRequested),
    /// **v4.**
    RecoveryMessageOutcome(RecoveryMessageOutcome),
    /// **v5.**
    ChargebackReceived(ChargebackReceived),
    /// **v5.**
    FraudConfirmed(FraudConfirmed),
    /// **v5.**
    ReviewUpdated(Box<ReviewUpdated>),
}

/// Every `event_type` this schema version knows, in declaration order.
pub const EVENT_TYPES: [&str; 20] = [
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
    "consent_changed",
    "recovery_message_requested",
    "recovery_message_outcome",
    "chargeback_received",
    "fraud_confirmed",
    "review_updated",
];

/// The event types schema v5 added (refused in an event that says an older version).
pub const V5_EVENT_TYPES: [&str; 3] = ["chargeback_received", "fraud_confirmed", "review_updated"];

/// The event types schema v4 added (refused in an event that says an older version).
pub const V4_EVENT_TYPES: [&str; 3] = [
    "consent_changed",
    "recovery_message_requested",
    "recovery_message_outcome",
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
            EventBody::ConsentChanged(_) => 14,
            EventBody::RecoveryMessageRequested(_) => 15,
            EventBody::RecoveryMessageOutcome(_) => 16,
            EventBody::ChargebackReceived(_) => 17,
            EventBody::FraudConfirmed(_) => 18,
            EventBody::ReviewUpdated(_) => 19,
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
            "decision_served" => parse(data, |d| EventBody::DecisionServed(Box::new(d))),
            "offer_accepted" => parse(data, EventBody::OfferAccepted),
            "consent_changed" => parse(data, EventBody::ConsentChanged),
            "recovery_message_requested" => parse(data, EventBody::RecoveryMessageRequested),
            "recovery_message_outcome" => parse(data, EventBody::RecoveryMessageOutcome),
            "chargeback_received" => parse(data, EventBody::ChargebackReceived),
            "fraud_confirmed" => parse(data, EventBody::FraudConfirmed),
            "review_updated" => parse(data, |r| EventBody::ReviewUpdated(Box::new(r))),
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
    /// **v4.** The merchant's unit cost in the price's currency, when it shares it: what lets a recovery
    /// message carry an incentive within the margin floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_cost_minor: Option<i64>,
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
    /// **v5.** The payment service's card fingerprint (the same card gives the same fingerprint across
    /// merchants' customers), never the card number: a value that looks like one is refused at ingest.
    /// Replaced by a keyed pseudonym at ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_fingerprint: Option<String>,
    /// **v5.** ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_country: Option<String>,
    /// **v5.** ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_country: Option<String>,
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    /// **v2, required.** The served action's identity for learning: `action`, except that each discount
    /// step is its own action (`percent_discount_10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_key: Option<String>,
    /// **v2, required.** The policy that served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// **v2, required.** Every eligible action with the serving policy's probability of choosing it
    /// (summing to 1; `action_key` is among them with probability `propensity`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligible: Vec<ActionProbability>,
    /// **v2.** The cart's value and margin as the policy saw them (absent without a cart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart: Option<DecisionCart>,
    /// **v2.** What a challenger policy in shadow mode would have done (never served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowChoice>,
    /// **v3, required unless degraded.** The propensity model's purchase probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// **v3, required unless degraded.** The model's input columns as the scorer read them, by name
    /// (numbers, strings, booleans or null), at `feature_schema_version`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_input: BTreeMap<String, serde_json::Value>,
    /// **v3, required unless degraded.** The policy's context features by name (the learned policy's
    /// inputs; with the model's vector, what `feature_hash` covers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policy_features: BTreeMap<String, f64>,
    /// **v4, required at the `recovery` placement and only there.** The cart sequence and step the
    /// decision is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryStep>,
    /// **v5.** The risk assessment of a `checkout` decision: what gating was recommended and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskServed>,
    /// **v6.** The user's arm of the universal holdout, logged with every decision for a known user while
    /// the holdout is active: the holdout's members get the control decision and stay measurable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutServed>,
    /// **v6.** New or returning, as the decision saw it (absent when degraded): a cohort dimension that the
    /// experiment units keep from their first exposure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_type: Option<VisitorType>,
}

/// **v6.** A decision's place in the universal holdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldoutServed {
    /// The holdout's id (its experiment id in the units and the impact report).
    pub id: String,
    /// `holdout` (never treated) or `served` (everyone else).
    pub variant: String,
}

/// The universal holdout's two arms.
pub const HOLDOUT_VARIANT: &str = "holdout";
pub const SERVED_VARIANT: &str = "served";

/// What the storefront and the payment service are told to do about a payment. Ordered by how much it
/// costs a genuine shopper.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Friction {
    Allow,
    /// A 3-D Secure challenge or a one-time code.
    StepUp,
    /// Hold the order for a human reviewer.
    Review,
    /// Decline recommended.
    Decline,
}

/// **v5.** The risk assessment logged with a decision (and returned with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskServed {
    /// The risk score, 0–100: the model's probability of fraud, in percent. Absent when degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The band the score fell in (0 = the lowest) and its score range `[band_from, band_to)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_from: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_to: Option<f64>,
    /// What to do: the band's friction, made stricter by any rule that fired; the configured safe
    /// friction when degraded.
    pub friction: Friction,
    /// Reason codes (model inputs that raised the score), strongest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Rules that fired (they can only make the friction stricter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_ids: Vec<String>,
    pub model_id: String,
    pub model_version: String,
    /// The signals could not be read in time: the configured safe friction was served.
    #[serde(default)]
    pub degraded: bool,
}

/// Which message of which abandoned cart's sequence a recovery decision is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryStep {
    /// When the cart was abandoned (its last shopper event plus the idle time): the sequence's basis.
    pub abandoned_at: DateTime<Utc>,
    /// 0-based step of the sequence.
    pub step: u32,
}

/// A policy's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    /// `configured-uplift` for the configured policy, else the learned policy's registry name.
    pub id: String,
    /// The rules version of the configured policy, or the learned policy's registry version.
    pub version: String,
}

/// One eligible action and the probability the policy gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionProbability {
    /// The action key (see `action_key`).
    pub action: String,
    pub probability: f64,
    /// What the action gives away if the shopper buys (minor units of the cart's currency).
    #[serde(default)]
    pub cost_minor: i64,
}

/// The cart's economics at decision time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionCart {
    pub currency: String,
    pub value_minor: i64,
    /// From the merchant's line costs when `margin_known`, else the configured assumed margin ratio.
    pub margin_minor: i64,
    pub margin_known: bool,
}

/// A shadow policy's choice and distribution for the same decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowChoice {
    pub policy: PolicyRef,
    pub action_key: String,
    pub eligible: Vec<ActionProbability>,
}

/// The id the configured-uplift policy logs as `policy.id`.
pub const CONFIGURED_POLICY_ID: &str = "configured-uplift";

impl DecisionServed {
    /// The served action's key (`action` for a v1 decision).
    pub fn served_key(&self) -> &str {
        self.action_key.as_deref().unwrap_or(&self.action)
    }

    /// What the served action gives away if the shopper buys, from the logged distribution (0 when
    /// unknown).
    pub fn served_cost_minor(&self) -> i64 {
        let key = self.served_key();
        self.eligible
            .iter()
            .find(|a| a.action == key)
            .map_or(0, |a| a.cost_minor)
    }

    /// The v2 reading of this decision, whatever version it was logged in. A v1 event names no policy (it
    /// was the configured one, at `rules_version`) and no key (the kind is used: a v1 discount's step is
    /// unknown). Its distribution is known only when the served action had probability 1; otherwise
    /// `eligible` stays empty, and off-policy evaluation can use only the served action's propensity.
    pub fn upcast(&self) -> DecisionServed {
        let mut d = self.clone();
        d.action_key.get_or_insert_with(|| self.action.clone());
        d.policy.get_or_insert_with(|| PolicyRef {
            id: CONFIGURED_POLICY_ID.into(),
            version: self.rules_version.clone(),
        });
        if d.eligible.is_empty() && self.propensity == 1.0 {
            d.eligible = vec![ActionProbability {
                action: self.action.clone(),
                probability: 1.0,
                cost_minor: 0,
            }];
        }
        d
    }

    /// The fields schemas before v3 do not have, by name, where present.
    fn v3_fields(&self) -> Option<&'static str> {
        if self.score.is_some() {
            Some("score")
        } else if !self.model_input.is_empty() {
            Some("model_input")
        } else if !self.policy_features.is_empty() {
            Some("policy_features")
        } else {
            None
        }
    }

    /// The fields schema v1 does not have, by name, where present.
    fn v2_fields(&self) -> Option<&'static str> {
        if self.action_key.is_some() {
            Some("action_key")
        } else if self.policy.is_some() {
            Some("policy")
        } else if !self.eligible.is_empty() {
            Some("eligible")
        } else if self.cart.is_some() {
            Some("cart")
        } else if self.shadow.is_some() {
            Some("shadow")
        } else {
            self.v3_fields()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferAccepted {
    pub decision_id: String,
    pub action: String,
}

/// A channel a recovery message goes out on, and that consent is given for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

/// **v4.** The shopper gave or withdrew marketing consent (an opt-out is `granted: false`). Produced by
/// the storefront or the messaging service; applies to the pseudonymous user, or to the session when
/// there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChanged {
    /// The channel; absent means every channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub granted: bool,
    /// Where the change came from, e.g. `preference_center`, `unsubscribe_link`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// **v4.** The recovery sweep asked the merchant's messaging service to send a message. The event id is
/// the message id, which is also the outbound record's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryMessageRequested {
    pub message_id: String,
    /// The recovery decision that chose the message's content.
    pub decision_id: String,
    /// The decision's `action_key`: `reminder`, `free_shipping`, `percent_discount_10`, ….
    pub action_key: String,
    pub channel: Channel,
    /// The sequence's basis and this message's step.
    pub recovery: RecoveryStep,
    /// When the step fell due; the message was requested at `occurred_at` (later under quiet hours or
    /// a channel cap).
    pub due_at: DateTime<Utc>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MessageOutcome {
    Delivered,
    Opened,
    Clicked,
    /// The shopper unsubscribed from the channel: an opt-out as well.
    Unsubscribed,
    Bounced,
}

/// **v4.** What became of a requested message, reported by the messaging service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryMessageOutcome {
    pub message_id: String,
    pub channel: Channel,
    pub outcome: MessageOutcome,
}

/// **v5.** A chargeback (a dispute) arrived for an order: a label, weeks after the order. Reason codes are
/// the network's (`10.4`, `4837`, …) or the payment service's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargebackReceived {
    pub order_id: String,
    pub amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// Whether the dispute is for fraud (not, say, goods not received): only a fraud dispute is a fraud
    /// label.
    pub fraud: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FraudSource {
    /// The merchant's own investigation.
    Merchant,
    /// The issuer reported it (a fraud notification such as a TC40 or SAFE report).
    Issuer,
}

/// **v5.** An order was confirmed as fraud outside the review queue: a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FraudConfirmed {
    pub order_id: String,
    pub source: FraudSource,
}

/// A manual-review case's transitions: `opened → assigned → approved | rejected | expired`; an assigned
/// case can be `released` back to the queue, and an open one `escalated` when its deadline nears.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReviewTransition {
    Opened,
    Assigned,
    Released,
    Escalated,
    Approved,
    Rejected,
    Expired,
}

/// Who moved a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewActor {
    /// `reviewer` (a person, by the identity provider's subject) or `system` (the decision API opening a
    /// case, the SLA sweep escalating or expiring one).
    pub kind: ActorKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Reviewer,
    System,
}

/// **v5.** One transition of a manual-review case, with the assessment it was opened on and who acted.
/// The case is a fold of these events; an `approved` or `rejected` one is also a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewUpdated {
    pub case_id: String,
    pub transition: ReviewTransition,
    pub actor: ReviewActor,
    /// The checkout decision that recommended the review.
    pub decision_id: String,
    /// The payment attempt or order under review, as the storefront named it.
    pub order_ref: String,
    /// The assessment the case was opened on.
    pub score: f64,
    pub band: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Why this transition: a reviewer's reason code (`stolen_card`, `verified_customer`, …) or the
    /// system's (`sla_escalation`, `authorisation_expiry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the case must be decided: before this, the automatic default applies.
    pub deadline_at: DateTime<Utc>,
    /// The decision applied automatically at the deadline.
    pub default_decision: ReviewTransition,
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
