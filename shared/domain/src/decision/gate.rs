//! Fraud-resilient gating at `checkout`: the risk model's score over the payment's signals, its band and
//! friction, stricter rules on top, and the configured safe friction when the signals cannot be read in
//! time (fail open, by default to `allow`). The storefront and the payment service act on the friction;
//! the decision only recommends it, and logs it in `decision_served.risk`.

use super::engine::Features;
use super::request::{DecisionRequest, Placement};
use crate::event::{Friction, RiskServed};
use crate::features::risk::signals::{RiskKey, RiskProfile};
use crate::risk::inputs::{compute, History, Payment, Windows};
use crate::risk::model::RiskModelArtifact;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `risk` section of the decision config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    /// Assess payments at `checkout`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What to recommend when the signals cannot be read in time.
    #[serde(default = "allow")]
    pub safe_friction: Friction,
    /// Rule `session_declines`: at least a step-up once the session has had this many payment
    /// declines (0 turns the rule off).
    #[serde(default = "two")]
    pub step_up_after_declines: u32,
}

fn yes() -> bool {
    true
}

fn allow() -> Friction {
    Friction::Allow
}

fn two() -> u32 {
    2
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            safe_friction: Friction::Allow,
            step_up_after_declines: 2,
        }
    }
}

/// The risk assessment of a `checkout` decision; `None` at other placements, when disabled, or with no
/// model.
pub fn assess(
    request: &DecisionRequest,
    features: Result<&Features, &str>,
    model: Option<&RiskModelArtifact>,
    config: &RiskConfig,
    now: DateTime<Utc>,
) -> Option<RiskServed> {
    let model = model.filter(|_| config.enabled && request.placement == Placement::Checkout)?;
    let served = |friction, degraded| RiskServed {
        score: None,
        band: None,
        band_from: None,
        band_to: None,
        friction,
        reasons: Vec::new(),
        rule_ids: Vec::new(),
        model_id: model.name.clone(),
        model_version: model.version.clone(),
        degraded,
    };
    let Ok(f) = features else {
        return Some(served(config.safe_friction, true));
    };
    let profile = |key: RiskKey| -> Option<&dyn Windows> {
        f.risk.get(&key).map(|p: &RiskProfile| p as &dyn Windows)
    };
    let currency = request.cart.as_ref().map(|c| c.currency.as_str());
    let history = f.user.as_ref().map_or(History::default(), |u| History {
        orders: u.orders,
        revenue_minor: currency
            .and_then(|c| u.revenue.get(c).copied())
            .unwrap_or(0),
    });
    let pay = request.payment.as_ref();
    let payment = Payment {
        value_minor: request.cart.as_ref().map_or(0, |c| c.value_minor()),
        billing_country: pay.and_then(|p| p.billing_country.clone()),
        shipping_country: pay.and_then(|p| p.shipping_country.clone()),
        ip_country: request.country.clone(),
    };
    let x = compute(&profile, history, &payment, now);
    let scored = model.score(&x);
    let mut friction = scored.friction;
    let mut rule_ids = Vec::new();
    let declines = f.session.as_ref().map_or(0, |s| s.payment_declines);
    if config.step_up_after_declines > 0 && declines >= config.step_up_after_declines {
        rule_ids.push("session_declines".to_string());
        friction = friction.max(Friction::StepUp);
    }
    Some(RiskServed {
        score: Some(scored.score),
        band: Some(scored.band as u32),
        band_from: Some(scored.band_from),
        band_to: Some(scored.band_to),
        friction,
        reasons: scored.reasons.iter().map(|r| r.to_string()).collect(),
        rule_ids,
        ..served(friction, false)
    })
}
