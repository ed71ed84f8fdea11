//! The decoder: raw record bytes → a validated [`Event`], or a [`DecodeError`] whose reason code the
//! quarantine carries. One pass over the JSON with the envelope's fields in any order, `data` kept raw
//! until `event_type` and `schema_version` are known, unknown fields refused, and no panic on any input.

use super::*;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

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
    #[error("schema_version {0} is not supported (this build reads {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})")]
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
        self.check_v4()?;
        self.check_v5()?;
        self.check_v6()?;
        if let Some(c) = &self.context.country {
            check_country("context.country", c)?;
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
                check_decision_version(d, self.schema_version)
            }
            EventBody::OfferAccepted(o) => non_empty("data.decision_id", &o.decision_id),
            EventBody::ConsentChanged(c) => c
                .source
                .as_deref()
                .map_or(Ok(()), |s| non_empty("data.source", s)),
            EventBody::RecoveryMessageRequested(r) => {
                check_id("data.message_id", &r.message_id)?;
                check_id("data.decision_id", &r.decision_id)?;
                non_empty("data.action_key", &r.action_key)?;
                if r.due_at < r.recovery.abandoned_at {
                    return Err(DecodeError::invalid(
                        "data.due_at",
                        "must not be before the abandonment",
                    ));
                }
                Ok(())
            }
            EventBody::RecoveryMessageOutcome(o) => check_id("data.message_id", &o.message_id),
            EventBody::ChargebackReceived(c) => {
                check_id("data.order_id", &c.order_id)?;
                money("data.amount", &c.amount, false)?;
                c.reason_code
                    .as_deref()
                    .map_or(Ok(()), |r| non_empty("data.reason_code", r))
            }
            EventBody::FraudConfirmed(f) => check_id("data.order_id", &f.order_id),
            EventBody::ReviewUpdated(r) => check_review(r),
        }
    }

    /// What schema v6 added: refused in an event that says an older version; the holdout's arm is one of
    /// its two.
    fn check_v6(&self) -> Result<(), DecodeError> {
        let EventBody::DecisionServed(d) = &self.body else {
            return Ok(());
        };
        let v6 = self.schema_version >= 6;
        let older = |field: &str| {
            Err(DecodeError::invalid(
                field,
                format_args!(
                    "is a schema v6 addition; this event says schema_version {}",
                    self.schema_version
                ),
            ))
        };
        if d.visitor_type.is_some() && !v6 {
            return older("data.visitor_type");
        }
        match &d.holdout {
            None => Ok(()),
            Some(_) if !v6 => older("data.holdout"),
            Some(h) => {
                check_id("data.holdout.id", &h.id)?;
                if h.variant != super::HOLDOUT_VARIANT && h.variant != super::SERVED_VARIANT {
                    return Err(DecodeError::invalid(
                        "data.holdout.variant",
                        "must be `holdout` or `served`",
                    ));
                }
                Ok(())
            }
        }
    }

    /// What schema v5 added: refused in an event that says an older version; countries are alpha-2.
    fn check_v5(&self) -> Result<(), DecodeError> {
        let older = |field: &str| {
            Err(DecodeError::invalid(
                field,
                format_args!(
                    "is a schema v5 addition; this event says schema_version {}",
                    self.schema_version
                ),
            ))
        };
        let v5 = self.schema_version >= 5;
        if let Some(id) = self.context.device.as_ref().and_then(|d| d.id.as_deref()) {
            if !v5 {
                return older("context.device.id");
            }
            check_id("context.device.id", id)?;
        }
        if !v5 && super::V5_EVENT_TYPES.contains(&self.body.event_type()) {
            return older("event_type");
        }
        match &self.body {
            EventBody::PaymentAttempted(p) => {
                for (field, value) in [
                    ("data.card_fingerprint", &p.card_fingerprint),
                    ("data.billing_country", &p.billing_country),
                    ("data.shipping_country", &p.shipping_country),
                ] {
                    let Some(value) = value else { continue };
                    if !v5 {
                        return older(field);
                    }
                    if field == "data.card_fingerprint" {
                        check_id(field, value)?;
                    } else {
                        check_country(field, value)?;
                    }
                }
                Ok(())
            }
            EventBody::DecisionServed(d) => match &d.risk {
                Some(_) if !v5 => older("data.risk"),
                Some(risk) => check_risk(risk),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// What schema v4 added: refused in an event that says an older version; the time zone is an IANA
    /// name in shape (whether the zone exists is the reader's concern: an unknown one falls back to the
    /// configured zone, see `recovery`).
    fn check_v4(&self) -> Result<(), DecodeError> {
        let older = |field: &str| {
            Err(DecodeError::invalid(
                field,
                format_args!(
                    "is a schema v4 addition; this event says schema_version {}",
                    self.schema_version
                ),
            ))
        };
        if let Some(tz) = &self.context.time_zone {
            if self.schema_version < 4 {
                return older("context.time_zone");
            }
            let ok = (1..=64).contains(&tz.len())
                && tz
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'))
                && !tz.starts_with('/')
                && !tz.ends_with('/')
                && !tz.contains("//");
            if !ok {
                return Err(DecodeError::invalid(
                    "context.time_zone",
                    "must be an IANA time zone name, e.g. Europe/Berlin",
                ));
            }
        }
        let event_type = self.body.event_type();
        if self.schema_version < 4 && super::V4_EVENT_TYPES.contains(&event_type) {
            return older("event_type");
        }
        if let EventBody::CartItemAdded(a) = &self.body {
            match a.unit_cost_minor {
                Some(_) if self.schema_version < 4 => return older("data.unit_cost_minor"),
                Some(c) if c < 0 => {
                    return Err(DecodeError::invalid(
                        "data.unit_cost_minor",
                        "must not be negative",
                    ))
                }
                _ => {}
            }
        }
        if let EventBody::DecisionServed(d) = &self.body {
            let recovery_placement = d.placement == crate::placement::Placement::Recovery.as_str();
            match (&d.recovery, recovery_placement) {
                (Some(_), _) if self.schema_version < 4 => return older("data.recovery"),
                (Some(_), false) => {
                    return Err(DecodeError::invalid(
                        "data.recovery",
                        "only a decision at the recovery placement has a recovery step",
                    ))
                }
                (None, true) if self.schema_version >= 4 => {
                    return Err(DecodeError::MissingField("data.recovery"))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn check_country(field: &str, c: &str) -> Result<(), DecodeError> {
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(DecodeError::invalid(
            field,
            "must be an ISO 3166-1 alpha-2 code",
        ));
    }
    Ok(())
}

fn check_score(field: &str, score: f64) -> Result<(), DecodeError> {
    if !(0.0..=100.0).contains(&score) {
        return Err(DecodeError::invalid(
            field,
            "must be a risk score in [0, 100]",
        ));
    }
    Ok(())
}

fn check_codes(field: &str, codes: &[String]) -> Result<(), DecodeError> {
    if codes.len() > 32 || codes.iter().any(|c| c.is_empty() || c.len() > MAX_ID_LEN) {
        return Err(DecodeError::invalid(
            field,
            format_args!("at most 32 codes of 1..={MAX_ID_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_risk(r: &RiskServed) -> Result<(), DecodeError> {
    match (r.score, r.band, r.band_from, r.band_to) {
        (None, None, None, None) if r.degraded => {}
        (Some(score), Some(_), Some(from), Some(to)) if !r.degraded => {
            check_score("data.risk.score", score)?;
            check_score("data.risk.band_from", from)?;
            check_score("data.risk.band_to", to)?;
            if from > to {
                return Err(DecodeError::invalid(
                    "data.risk.band_from",
                    "must not be above band_to",
                ));
            }
        }
        _ => {
            return Err(DecodeError::invalid(
                "data.risk",
                "score, band, band_from and band_to are all present, or all absent when degraded",
            ))
        }
    }
    check_codes("data.risk.reasons", &r.reasons)?;
    check_codes("data.risk.rule_ids", &r.rule_ids)?;
    check_id("data.risk.model_id", &r.model_id)?;
    check_id("data.risk.model_version", &r.model_version)
}

fn check_review(r: &ReviewUpdated) -> Result<(), DecodeError> {
    check_id("data.case_id", &r.case_id)?;
    check_id("data.actor.id", &r.actor.id)?;
    check_id("data.decision_id", &r.decision_id)?;
    check_id("data.order_ref", &r.order_ref)?;
    check_score("data.score", r.score)?;
    check_codes("data.rule_ids", &r.rule_ids)?;
    check_codes("data.reasons", &r.reasons)?;
    if let Some(reason) = &r.reason {
        check_codes("data.reason", std::slice::from_ref(reason))?;
    }
    if !matches!(
        r.default_decision,
        ReviewTransition::Approved | ReviewTransition::Rejected
    ) {
        return Err(DecodeError::invalid(
            "data.default_decision",
            "must be approved or rejected",
        ));
    }
    // A person decides or claims; only the system opens, escalates and expires.
    let by_system = matches!(
        r.transition,
        ReviewTransition::Opened | ReviewTransition::Escalated | ReviewTransition::Expired
    );
    if by_system != (r.actor.kind == ActorKind::System)
        && r.transition != ReviewTransition::Released
    {
        return Err(DecodeError::invalid(
            "data.actor.kind",
            format_args!("{:?} is not done by a {:?}", r.transition, r.actor.kind),
        ));
    }
    Ok(())
}

/// A v1 decision carries none of the v2 fields; a v2 decision carries its policy, its key and a
/// distribution that sums to 1 and gives the served action its propensity.
fn check_decision_version(d: &DecisionServed, version: u32) -> Result<(), DecodeError> {
    if version < 2 {
        return match d.v2_fields() {
            Some(f) => Err(DecodeError::invalid(
                &format!("data.{f}"),
                "is a field of a later schema version; this event says schema_version 1",
            )),
            None => Ok(()),
        };
    }
    let key = d
        .action_key
        .as_deref()
        .ok_or(DecodeError::MissingField("data.action_key"))?;
    let policy = d
        .policy
        .as_ref()
        .ok_or(DecodeError::MissingField("data.policy"))?;
    check_id("data.policy.id", &policy.id)?;
    check_id("data.policy.version", &policy.version)?;
    check_distribution("data.eligible", &d.eligible, key, Some(d.propensity))?;
    if let Some(s) = &d.shadow {
        check_distribution("data.shadow.eligible", &s.eligible, &s.action_key, None)?;
    }
    if version < 3 {
        return match d.v3_fields() {
            Some(f) => Err(DecodeError::invalid(
                &format!("data.{f}"),
                format_args!("is a schema v3 field; this event says schema_version {version}"),
            )),
            None => Ok(()),
        };
    }
    check_inputs(d)
}

/// What the scorer saw: a score in [0, 1], and at most 64 named inputs of each kind (scalars; finite
/// numbers). All three are required unless the decision was degraded (then nothing was read).
fn check_inputs(d: &DecisionServed) -> Result<(), DecodeError> {
    if d.degraded {
        return match d.v3_fields() {
            Some(f) => Err(DecodeError::invalid(
                &format!("data.{f}"),
                "a degraded decision read no features",
            )),
            None => Ok(()),
        };
    }
    let score = d.score.ok_or(DecodeError::MissingField("data.score"))?;
    if !(0.0..=1.0).contains(&score) {
        return Err(DecodeError::invalid("data.score", "must be in [0, 1]"));
    }
    if d.model_input.is_empty() {
        return Err(DecodeError::MissingField("data.model_input"));
    }
    if d.policy_features.is_empty() {
        return Err(DecodeError::MissingField("data.policy_features"));
    }
    if d.model_input.len() > 64 || d.policy_features.len() > 64 {
        return Err(DecodeError::invalid(
            "data.model_input",
            "at most 64 inputs of each kind",
        ));
    }
    for (name, v) in &d.model_input {
        check_id("data.model_input", name)?;
        let ok = match v {
            serde_json::Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
            serde_json::Value::String(s) => s.len() <= 256,
            serde_json::Value::Bool(_) | serde_json::Value::Null => true,
            _ => false,
        };
        if !ok {
            return Err(DecodeError::invalid(
                &format!("data.model_input.{name}"),
                "must be a finite number, a string of at most 256 bytes, a boolean or null",
            ));
        }
    }
    for (name, v) in &d.policy_features {
        check_id("data.policy_features", name)?;
        if !v.is_finite() {
            return Err(DecodeError::invalid(
                &format!("data.policy_features.{name}"),
                "must be finite",
            ));
        }
    }
    Ok(())
}

/// Probabilities in [0, 1], distinct actions, a sum of 1, and the chosen action among them (with the
/// logged propensity, when there is one).
fn check_distribution(
    field: &'static str,
    eligible: &[ActionProbability],
    chosen: &str,
    propensity: Option<f64>,
) -> Result<(), DecodeError> {
    const TOLERANCE: f64 = 1e-6;
    if eligible.is_empty() || eligible.len() > 64 {
        return Err(DecodeError::invalid(field, "must list 1 to 64 actions"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for a in eligible {
        check_id(field, &a.action)?;
        if !(0.0..=1.0).contains(&a.probability) || !seen.insert(a.action.as_str()) {
            return Err(DecodeError::invalid(
                field,
                "each action once, with a probability in [0, 1]",
            ));
        }
    }
    let sum: f64 = eligible.iter().map(|a| a.probability).sum();
    if (sum - 1.0).abs() > TOLERANCE {
        return Err(DecodeError::invalid(
            field,
            format_args!("probabilities sum to {sum}, not 1"),
        ));
    }
    match eligible.iter().find(|a| a.action == chosen) {
        None => Err(DecodeError::invalid(
            field,
            format_args!("does not list the chosen action `{chosen}`"),
        )),
        Some(a) if propensity.is_some_and(|p| (p - a.probability).abs() > TOLERANCE) => {
            Err(DecodeError::invalid(
                field,
                "gives the chosen action a probability other than `propensity`",
            ))
        }
        Some(_) => Ok(()),
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
        let schema_version = u32::try_from(schema_version)
            .ok()
            .filter(|v| (OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(v))
            .ok_or(DecodeError::UnsupportedSchemaVersion(schema_version))?;
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
            schema_version,
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
        .filter(|v| !(u64::from(OLDEST_SCHEMA_VERSION)..=u64::from(SCHEMA_VERSION)).contains(v))
}
