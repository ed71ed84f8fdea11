//! The decision policy: candidate actions per placement, eligibility rules and guardrails, and the choice by
//! expected value with optional ε-exploration, recording the propensity of the chosen action.
//!
//! **Expected value** is the expected change in merchant margin, in minor units of the cart's currency:
//! `p' · (margin − cost) − p · margin`, where `p` is the model's purchase propensity, `p' = p + u·(1 − p)`
//! with `u` the action's configured uplift (the share of would-be non-buyers it converts), and `cost` what
//! the action gives away (the discount, or the shipping the merchant pays). Without line costs, the margin
//! is estimated as `assumed_margin_ratio` of the cart value, and incentives (which must clear the margin
//! floor) are not offered at all.
//!
//! **Guardrails**, each reported by name when it removes a candidate: `discount_cap`, `margin_floor`,
//! `margin_unknown`, `risk_high` (no incentive once the session has had `high_risk_declines` payment
//! declines), `one_offer_per_session`, `empty_cart`. At checkout with high risk, the treatment arm always
//! steps up verification.
//!
//! **Layout actions** at checkout (cost 0): `simplified_form` (hide optional fields),
//! `guest_checkout_first`, `wallet_first` (wallets first in the payment methods). They compete with
//! `express_checkout` unless the session is high-risk. Their configured uplifts are guesses; the learned
//! policy ([`super::learned`]) finds out whom each one helps.
//!
//! **Recovery** (the `recovery` placement: a message about an abandoned cart, decided by the recovery
//! sweep). The candidates are `none` (send nothing), `reminder`, and the incentives under the same
//! guardrails. Every message costs `message_cost_minor`, and a message's uplift is `recovery_reminder`
//! plus the incentive's own: so a shopper predicted to come back anyway (a high propensity) gets a
//! plain reminder rather than an incentive that would only cost margin, or nothing when even the
//! reminder is not worth its cost.
//!
//! **Arms.** Control is no intervention (propensity 1). Treatment takes the candidate with the highest
//! positive expected value (else none); with ε > 0 it instead picks uniformly among the eligible actions
//! with probability ε, and the recorded propensity is `(1 − ε)·[best] + ε / eligible`.

use super::request::{Cart, Placement};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    None,
    FreeShipping,
    PercentDiscount {
        percent: u8,
    },
    ExpressCheckout,
    Reminder,
    StepUpVerification,
    CrossSell {
        product_ids: Vec<String>,
    },
    /// Checkout layout: hide the optional form fields.
    SimplifiedForm,
    /// Checkout layout: offer guest checkout before sign-in.
    GuestCheckoutFirst,
    /// Checkout layout: put wallets (Apple Pay, Google Pay, PayPal) first in the payment methods.
    WalletFirst,
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::None => "none",
            Action::FreeShipping => "free_shipping",
            Action::PercentDiscount { .. } => "percent_discount",
            Action::ExpressCheckout => "express_checkout",
            Action::Reminder => "reminder",
            Action::StepUpVerification => "step_up_verification",
            Action::CrossSell { .. } => "cross_sell",
            Action::SimplifiedForm => "simplified_form",
            Action::GuestCheckoutFirst => "guest_checkout_first",
            Action::WalletFirst => "wallet_first",
        }
    }

    /// The action's identity for learning and off-policy evaluation: its kind, except that each discount
    /// step is an action of its own (`percent_discount_10`). Cross-sell is one action whatever it suggests.
    pub fn key(&self) -> String {
        match self {
            Action::PercentDiscount { percent } => format!("percent_discount_{percent}"),
            a => a.kind().to_string(),
        }
    }

    /// The action an [`Action::key`] names (cross-sell without its suggestions); `None` for an unknown key.
    pub fn from_key(key: &str) -> Option<Action> {
        Some(match key {
            "none" => Action::None,
            "free_shipping" => Action::FreeShipping,
            "express_checkout" => Action::ExpressCheckout,
            "reminder" => Action::Reminder,
            "step_up_verification" => Action::StepUpVerification,
            "cross_sell" => Action::CrossSell {
                product_ids: Vec::new(),
            },
            "simplified_form" => Action::SimplifiedForm,
            "guest_checkout_first" => Action::GuestCheckoutFirst,
            "wallet_first" => Action::WalletFirst,
            k => Action::PercentDiscount {
                percent: k.strip_prefix("percent_discount_")?.parse().ok()?,
            },
        })
    }

    /// An incentive costs the merchant money.
    pub fn is_incentive(&self) -> bool {
        is_incentive_kind(self.kind())
    }
}

pub use crate::event::is_incentive_kind;

impl Uplifts {
    /// The configured uplift of an action (`None` for one that is forced or has none).
    pub fn of(&self, action: &Action) -> Option<f64> {
        Some(match action {
            Action::None => 0.0,
            Action::FreeShipping => self.free_shipping,
            Action::PercentDiscount { percent } => self.per_discount_percent * f64::from(*percent),
            Action::ExpressCheckout => self.express_checkout,
            Action::Reminder => self.reminder,
            Action::CrossSell { .. } => self.cross_sell,
            Action::SimplifiedForm => self.simplified_form,
            Action::GuestCheckoutFirst => self.guest_checkout_first,
            Action::WalletFirst => self.wallet_first,
            Action::StepUpVerification => return None,
        })
    }
}

/// The configured policy's expected change in margin for an action: `p' · (margin − cost) − p · margin`
/// with `p' = p + u·(1 − p)`; infinite for a forced action (step-up).
pub fn configured_value(uplifts: &Uplifts, action: &Action, p: f64, margin: f64, cost: f64) -> f64 {
    uplifts
        .of(action)
        .map_or(f64::INFINITY, |u| lifted_value(u, p, margin, cost))
}

/// `p' · (margin − cost) − p · margin` with `p' = p + u·(1 − p)`.
fn lifted_value(u: f64, p: f64, margin: f64, cost: f64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    let lifted = p + u.clamp(0.0, 1.0) * (1.0 - p);
    lifted * (margin - cost) - p * margin
}

/// The configured policy's expected value of a recovery message (`none`: no message, 0): the message's
/// uplift is `recovery_reminder` plus the incentive's, and every message costs `message_cost_minor`.
pub fn recovery_value(cfg: &PolicyConfig, action: &Action, p: f64, margin: f64, cost: f64) -> f64 {
    if *action == Action::None {
        return 0.0;
    }
    let incentive = if action.is_incentive() {
        cfg.uplift.of(action).unwrap_or(0.0)
    } else {
        0.0
    };
    lifted_value(cfg.uplift.recovery_reminder + incentive, p, margin, cost)
        - cfg.message_cost_minor as f64
}

/// Assumed uplifts `u` (share of would-be non-buyers converted) per action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uplifts {
    pub free_shipping: f64,
    pub per_discount_percent: f64,
    pub express_checkout: f64,
    pub reminder: f64,
    pub cross_sell: f64,
    #[serde(default = "layout_uplift")]
    pub simplified_form: f64,
    #[serde(default = "layout_uplift")]
    pub guest_checkout_first: f64,
    #[serde(default = "layout_uplift")]
    pub wallet_first: f64,
    /// A recovery message's own uplift on an abandoned cart (before any incentive it carries).
    #[serde(default = "recovery_reminder_uplift")]
    pub recovery_reminder: f64,
}

/// The configured guess for a recovery reminder.
fn recovery_reminder_uplift() -> f64 {
    0.03
}

/// The configured guess for each layout action (a config written before they existed gets it).
fn layout_uplift() -> f64 {
    0.01
}

/// Missing fields take their defaults; unknown fields are refused (a typo must not pass silently).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub rules_version: String,
    pub discount_steps: Vec<u8>,
    pub max_discount_percent: u8,
    /// Least margin, as a share of what the customer pays, that an incentive must leave.
    pub margin_floor: f64,
    pub assumed_margin_ratio: f64,
    pub shipping_cost_minor: i64,
    pub high_risk_declines: u32,
    pub uplift: Uplifts,
    pub epsilon: f64,
    /// What one recovery message costs to send (minor units of the cart's currency).
    pub message_cost_minor: i64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            rules_version: "rules-1".into(),
            discount_steps: vec![5, 10, 15],
            max_discount_percent: 10,
            margin_floor: 0.15,
            assumed_margin_ratio: 0.3,
            shipping_cost_minor: 499,
            high_risk_declines: 2,
            uplift: Uplifts {
                free_shipping: 0.06,
                per_discount_percent: 0.01,
                express_checkout: 0.03,
                reminder: 0.01,
                cross_sell: 0.02,
                simplified_form: layout_uplift(),
                guest_checkout_first: layout_uplift(),
                wallet_first: layout_uplift(),
                recovery_reminder: recovery_reminder_uplift(),
            },
            epsilon: 0.0,
            message_cost_minor: 2,
        }
    }
}

/// What the policy knows about the session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signals<'a> {
    pub propensity: f64,
    pub cart: Option<&'a Cart>,
    pub payment_declines: u32,
    pub offers_in_session: u32,
    /// Co-viewed or co-purchased products not already in the cart, best first.
    pub cross_sell: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub action: Action,
    pub expected_value_minor: f64,
    /// What the action gives away if the shopper buys (minor units): the discount or the shipping.
    pub cost_minor: i64,
}

/// The cart's value and margin as the policy sees them (minor units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Economics {
    pub value_minor: f64,
    /// The cart's margin: from the line costs when every line has one, else `assumed_margin_ratio` of the
    /// value.
    pub margin_minor: f64,
    pub margin_known: bool,
}

impl Economics {
    pub fn of(cart: Option<&Cart>, cfg: &PolicyConfig) -> Self {
        let value = cart.map_or(0, Cart::value_minor) as f64;
        let known = cart.and_then(Cart::margin_minor).map(|m| m as f64);
        Self {
            value_minor: value,
            margin_minor: known.unwrap_or(value * cfg.assumed_margin_ratio),
            margin_known: known.is_some(),
        }
    }
}

/// A candidate a guardrail removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocked {
    pub action: &'static str,
    pub guardrail: &'static str,
}

/// The eligible candidates (always including `none`) and what the guardrails removed.
pub fn candidates(
    placement: Placement,
    s: &Signals<'_>,
    cfg: &PolicyConfig,
) -> (Vec<Candidate>, Vec<Blocked>) {
    let p = s.propensity.clamp(0.0, 1.0);
    let economics = Economics::of(s.cart, cfg);
    let (value, margin) = (economics.value_minor, economics.margin_minor);
    let ev = |action: &Action, cost: f64| {
        if placement == Placement::Recovery {
            recovery_value(cfg, action, p, margin, cost)
        } else {
            configured_value(&cfg.uplift, action, p, margin, cost)
        }
    };
    let high_risk = s.payment_declines >= cfg.high_risk_declines;
    let free = |action: Action| Candidate {
        expected_value_minor: ev(&action, 0.0),
        action,
        cost_minor: 0,
    };
    let mut out = vec![free(Action::None)];
    let mut blocked = Vec::new();

    let mut incentives: Vec<(Action, f64)> = Vec::new();
    if matches!(
        placement,
        Placement::Cart | Placement::Checkout | Placement::Recovery
    ) {
        incentives.push((Action::FreeShipping, cfg.shipping_cost_minor as f64));
        for &percent in &cfg.discount_steps {
            let action = Action::PercentDiscount { percent };
            if percent > cfg.max_discount_percent {
                blocked.push(Blocked {
                    action: action.kind(),
                    guardrail: "discount_cap",
                });
                continue;
            }
            incentives.push((action, value * f64::from(percent) / 100.0));
        }
    }
    for (action, cost) in incentives {
        let guardrail = if value <= 0.0 {
            Some("empty_cart")
        } else if high_risk {
            Some("risk_high")
        } else if s.offers_in_session > 0 {
            Some("one_offer_per_session")
        } else if !economics.margin_known {
            Some("margin_unknown")
        } else {
            let paid = value
                - if matches!(action, Action::PercentDiscount { .. }) {
                    cost
                } else {
                    0.0
                };
            ((margin - cost) < cfg.margin_floor * paid).then_some("margin_floor")
        };
        match guardrail {
            Some(g) => blocked.push(Blocked {
                action: action.kind(),
                guardrail: g,
            }),
            None => out.push(Candidate {
                expected_value_minor: ev(&action, cost),
                action,
                cost_minor: cost.round() as i64,
            }),
        }
    }
    match placement {
        Placement::Checkout => {
            if high_risk {
                out.push(free(Action::StepUpVerification));
            } else {
                // Step-up at high risk is the whole answer; otherwise the layout actions compete too.
                out.push(free(Action::ExpressCheckout));
                out.push(free(Action::SimplifiedForm));
                out.push(free(Action::GuestCheckoutFirst));
                out.push(free(Action::WalletFirst));
            }
        }
        Placement::Recovery => {
            if value > 0.0 {
                out.push(free(Action::Reminder));
            }
        }
        Placement::Cart | Placement::PostPurchase => {
            if placement == Placement::Cart && value > 0.0 {
                out.push(free(Action::Reminder));
            }
            if !s.cross_sell.is_empty() {
                let product_ids = s.cross_sell.iter().take(3).cloned().collect();
                out.push(free(Action::CrossSell { product_ids }));
            }
        }
    }
    (out, blocked)
}

/// The experiment arm the unit is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Control,
    Treatment,
}

/// The chosen action, the probability the policy had of choosing it, and its whole distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    /// Index of the chosen candidate (`None`: no candidates, the action is `none`).
    pub index: Option<usize>,
    pub action: Action,
    pub expected_value_minor: f64,
    pub propensity: f64,
    pub explored: bool,
    /// The policy's probability of each candidate, aligned with them (empty without candidates).
    pub distribution: Vec<f64>,
}

/// The configured policy. Chooses among `candidates` (which always hold `none` first). `draw` and `pick` are
/// uniform in `[0, 1)`, derived by the caller from the decision id so that a decision can be replayed.
pub fn choose(arm: Arm, candidates: &[Candidate], epsilon: f64, draw: f64, pick: f64) -> Choice {
    if candidates.is_empty() {
        return Choice {
            index: None,
            action: Action::None,
            expected_value_minor: 0.0,
            propensity: 1.0,
            explored: false,
            distribution: Vec::new(),
        };
    }
    let n = candidates.len();
    let chosen = |index: usize, distribution: Vec<f64>, explored: bool| Choice {
        index: Some(index),
        action: candidates[index].action.clone(),
        expected_value_minor: candidates[index].expected_value_minor,
        propensity: distribution[index],
        explored,
        distribution,
    };
    if arm == Arm::Control {
        return chosen(0, super::learned::one_hot(n, 0), false);
    }
    let best = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.expected_value_minor > 0.0)
        .max_by(|a, b| {
            a.1.expected_value_minor
                .total_cmp(&b.1.expected_value_minor)
        })
        .map_or(0, |(i, _)| i);
    let forced = candidates[best].expected_value_minor.is_infinite();
    let epsilon = if forced { 0.0 } else { epsilon.clamp(0.0, 1.0) };
    let (index, explored) = if draw < epsilon {
        (
            ((pick.clamp(0.0, 1.0 - f64::EPSILON)) * n as f64) as usize,
            true,
        )
    } else {
        (best, false)
    };
    let distribution = (0..n)
        .map(|i| (1.0 - epsilon) * f64::from(u8::from(i == best)) + epsilon / n as f64)
        .collect();
    chosen(index, distribution, explored)
}
