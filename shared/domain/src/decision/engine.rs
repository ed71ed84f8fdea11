//! One decision, as a pure function: a validated request, the features read for it (or why they could
//! not be), the model and the config in, the response and the `decision_served` event out.
//!
//! The steps, in order:
//! 1. **Arm.** The kill switch forces control outside any experiment. Otherwise the unit (the pseudonymized
//!    user id) is assigned by the first live experiment of the placement that takes it; a unit no
//!    experiment takes, or a request without a user id, gets the config's `default_arm`.
//! 2. **Score.** The session's UCI columns (pages joined from the page features) go through the model,
//!    giving the purchase propensity and the top reason codes. A session with no features yet is scored as
//!    a fresh one.
//! 3. **Policy.** Candidates and guardrails ([`super::policy`]) from the propensity, the cart, the session's
//!    risk and offer counts and the cart items' co-occurrences. Control serves `none`. Treatment is served
//!    by the learned policy ([`super::learned`]) when one is loaded, else by the configured-uplift policy;
//!    either only ranks what the guardrails left. A shadow policy, when loaded, scores the same candidates
//!    and its choice and distribution are logged, never served.
//! 4. **Degraded.** When the features could not be read, nothing is scored and the action is `none`. The
//!    assignment is kept in the event (intention to treat: a read failure must not move units between
//!    arms), flagged `degraded`.

use super::config::DecisionConfig;
use super::learned::{sample, PolicyArtifact, PolicyContext, CONTEXT_FEATURES};
use super::policy::{self, Action, Arm, Blocked, Candidate, Economics, Signals};
use super::request::{DecisionRequest, Placement};
use crate::event::{
    ActionProbability, Context, DecisionCart, DecisionServed, Device, DeviceType, Event, EventBody,
    HoldoutServed, PolicyRef, RiskServed, ShadowChoice, VisitorType, CONFIGURED_POLICY_ID,
    SCHEMA_VERSION,
};
use crate::experiment::config::{assign, Assignment};
use crate::features::risk::signals::{RiskKey, RiskProfile};
pub use crate::features::session::{logged_model_input, model_input};
use crate::features::FEATURE_SCHEMA_VERSION;
use crate::features::{ItemFeatures, PageFeatures, SessionFeatures, UciSession, UserFeatures};
use crate::model::scorer::Model;
use crate::risk::model::RiskModelArtifact;
use chrono::{DateTime, Datelike, Utc, Weekday};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Reason codes returned per decision.
pub const TOP_REASONS: usize = 3;
/// Cross-sell suggestions offered at most.
pub const CROSS_SELL_MAX: usize = 3;

/// What the feature read returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub session: Option<SessionFeatures>,
    pub user: Option<UserFeatures>,
    /// The cart's products (for cross-sell).
    pub items: Vec<ItemFeatures>,
    /// The session's pages, by path.
    pub pages: HashMap<String, PageFeatures>,
    /// At `checkout`: the risk profiles of the user, card, IP and device that have one.
    pub risk: std::collections::BTreeMap<RiskKey, RiskProfile>,
}

/// Everything a decision depends on besides the request and the features.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub decision_id: &'a str,
    pub now: DateTime<Utc>,
    /// The pseudonymized user id: the experiment unit.
    pub unit: Option<&'a str>,
    pub model: &'a Model,
    pub config: &'a DecisionConfig,
    /// The learned policy that serves the treatment arm; `None`: the configured-uplift policy.
    pub policy: Option<&'a PolicyArtifact>,
    /// A challenger run in shadow mode: logged, never served.
    pub shadow: Option<&'a PolicyArtifact>,
    /// The fraud-risk model assessed at `checkout` (`None`: no risk assessment).
    pub risk_model: Option<&'a RiskModelArtifact>,
}

/// The id of the policy that serves the control arm (always `none`).
pub const CONTROL_POLICY_ID: &str = "control";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedAction {
    pub rank: u32,
    pub action: Action,
    /// Expected change in margin, minor units of the cart's currency (`null` for a forced action).
    pub expected_value_minor: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonCode {
    pub feature: &'static str,
    pub value: String,
    /// Log-odds contribution relative to a training-average session.
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreOut {
    /// The model's purchase propensity for the session.
    pub purchase_probability: f64,
    pub reasons: Vec<ReasonCode>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentOut {
    pub id: String,
    pub variant: String,
    pub variation: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelOut {
    pub id: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Versions {
    pub feature_schema: u32,
    pub rules: String,
}

/// Why the unit is in its arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmReason {
    Experiment,
    Default,
    KillSwitch,
    NoUser,
    /// The user is in the universal holdout: control, outside every experiment, whatever the config.
    Holdout,
}

/// The body of a `200` answer to `POST /v1/decisions` (see `api/openapi.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionResponse {
    pub decision_id: String,
    pub placement: Placement,
    /// Best first; the first is the one to show.
    pub actions: Vec<RankedAction>,
    /// Probability that the policy chose `actions[0]` (for off-policy evaluation).
    pub propensity: f64,
    pub explored: bool,
    /// `null` when degraded.
    pub score: Option<ScoreOut>,
    pub experiment: Option<ExperimentOut>,
    pub arm: Arm,
    pub arm_reason: ArmReason,
    /// The policy that chose: `control`, `configured-uplift` or a learned policy's name and version.
    pub policy: PolicyRef,
    pub model: ModelOut,
    pub versions: Versions,
    pub blocked: Vec<Blocked>,
    pub degraded: bool,
    pub degraded_reason: Option<String>,
    pub ttl_seconds: u32,
    /// At `checkout`: the recommended friction, the risk score, its band and reason codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskServed>,
}

/// A decision: what to answer and what to log.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub response: DecisionResponse,
    pub event: Event,
    /// When the friction is `review`: the event that opens the case (case id = decision id).
    pub review: Option<Event>,
}

/// Decides. `features` is `Err(reason)` when they could not be read in time.
pub fn decide(
    request: &DecisionRequest,
    features: Result<&Features, &str>,
    inputs: Inputs<'_>,
) -> Decision {
    let config = inputs.config;
    // The user's side of the universal holdout: decides the arm, and is logged.
    let holdout = inputs.unit.and_then(|u| config.holdout.arm(u, inputs.now));
    let (arm, arm_reason, assignment) = arm(
        request,
        inputs,
        holdout == Some(crate::event::HOLDOUT_VARIANT),
    );
    let rules = &config.policy;

    let mut logged = Logged::default();
    let (score, choice, ranked, blocked, feature_hash) = match features {
        Err(_) => (None, none_choice(), Vec::new(), Vec::new(), String::new()),
        Ok(f) => {
            let row = uci(f, inputs.now);
            let x = inputs.model.vectorize(&row);
            let scored = inputs.model.score_vectorized(&row, &x, TOP_REASONS);
            let session = f.session.as_ref();
            let signals = Signals {
                propensity: scored.probability,
                cart: request.cart.as_ref(),
                payment_declines: session.map_or(0, |s| s.payment_declines),
                offers_in_session: session.map_or(0, |s| s.offers),
                cross_sell: cross_sell(request, &f.items),
            };
            let (mut candidates, blocked) = policy::candidates(request.placement, &signals, rules);
            let economics = Economics::of(request.cart.as_ref(), rules);
            let context = policy_context(
                request.placement,
                scored.probability,
                &economics,
                request.device.as_deref().map(device_type),
                session,
                &row,
            );
            let (draw, pick) = draws(inputs.decision_id);
            let choice = match (arm, inputs.policy) {
                (Arm::Treatment, Some(p)) => {
                    let learned = p.distribution(&context, &candidates);
                    relabel(&mut candidates, &learned.reward);
                    logged.policy = Some(p);
                    learned_choice(&candidates, learned.probabilities, pick)
                }
                _ => policy::choose(arm, &candidates, rules.epsilon, draw, pick),
            };
            if let Some(shadow) = inputs.shadow {
                let s = shadow.distribution(&context, &candidates);
                logged.shadow = Some(ShadowChoice {
                    policy: shadow.policy_ref(),
                    action_key: s.keys[sample(&s.probabilities, pick)].clone(),
                    eligible: distribution(&candidates, &s.probabilities),
                });
            }
            logged.eligible = distribution(&candidates, &choice.distribution);
            logged.visitor_type = Some(row.visitor_type);
            logged.score = Some(scored.probability);
            logged.model_input = model_input(&row);
            logged.policy_features = CONTEXT_FEATURES
                .iter()
                .zip(context.features())
                .map(|(name, v)| (name.to_string(), v))
                .collect();
            logged.cart = request.cart.as_ref().map(|c| DecisionCart {
                currency: c.currency.clone(),
                value_minor: economics.value_minor as i64,
                margin_minor: economics.margin_minor.round() as i64,
                margin_known: economics.margin_known,
            });
            let ranked = if arm == Arm::Treatment {
                candidates
            } else {
                Vec::new()
            };
            let score = ScoreOut {
                purchase_probability: scored.probability,
                reasons: scored
                    .reasons
                    .into_iter()
                    .map(|r| ReasonCode {
                        feature: r.feature.name(),
                        value: r.value,
                        contribution: r.contribution,
                    })
                    .collect(),
            };
            (
                Some(score),
                choice,
                ranked,
                blocked,
                feature_hash(&x, &context),
            )
        }
    };
    let policy = match (arm, logged.policy) {
        (Arm::Control, _) => PolicyRef {
            id: CONTROL_POLICY_ID.into(),
            version: rules.rules_version.clone(),
        },
        (Arm::Treatment, Some(p)) => p.policy_ref(),
        (Arm::Treatment, None) => PolicyRef {
            id: CONFIGURED_POLICY_ID.into(),
            version: rules.rules_version.clone(),
        },
    };
    let actions = rank(&choice, ranked);
    let degraded_reason = features.err().map(str::to_string);
    let experiment = assignment.as_ref().map(|a| ExperimentOut {
        id: a.experiment_id.clone(),
        variant: a.variant.clone(),
        variation: a.variation,
    });
    let model = inputs.model;
    let response = DecisionResponse {
        decision_id: inputs.decision_id.to_string(),
        placement: request.placement,
        propensity: choice.propensity,
        explored: choice.explored,
        actions,
        score,
        experiment,
        arm,
        arm_reason,
        policy,
        model: ModelOut {
            id: model.name().to_string(),
            version: model.version().to_string(),
        },
        versions: Versions {
            feature_schema: FEATURE_SCHEMA_VERSION,
            rules: rules.rules_version.clone(),
        },
        blocked,
        degraded: degraded_reason.is_some(),
        degraded_reason,
        ttl_seconds: config.response_ttl_seconds,
        risk: super::gate::assess(
            request,
            features,
            inputs.risk_model,
            &config.risk,
            inputs.now,
        ),
    };
    logged.holdout = holdout.map(|variant| HoldoutServed {
        id: config.holdout.id.clone(),
        variant: variant.to_string(),
    });
    let event = served_event(request, &response, feature_hash, logged, inputs.now);
    let review = response
        .risk
        .as_ref()
        .filter(|r| r.friction == crate::event::Friction::Review && !r.degraded)
        .map(|risk| {
            let order_ref = request
                .payment
                .as_ref()
                .and_then(|p| p.order_ref.as_deref())
                .unwrap_or(inputs.decision_id);
            let opened = crate::features::review::open(
                inputs.decision_id,
                order_ref,
                risk,
                &config.review,
                inputs.now,
            );
            Event {
                event_id: crate::features::review::event_id(inputs.decision_id, 0),
                schema_version: event.schema_version,
                occurred_at: event.occurred_at,
                session_id: event.session_id.clone(),
                user_id: event.user_id.clone(),
                context: event.context.clone(),
                body: EventBody::ReviewUpdated(Box::new(opened)),
            }
        });
    Decision {
        response,
        event,
        review,
    }
}

/// What the event logs beyond the response.
#[derive(Default)]
struct Logged<'a> {
    policy: Option<&'a PolicyArtifact>,
    eligible: Vec<ActionProbability>,
    cart: Option<DecisionCart>,
    shadow: Option<ShadowChoice>,
    score: Option<f64>,
    model_input: BTreeMap<String, serde_json::Value>,
    policy_features: BTreeMap<String, f64>,
    holdout: Option<HoldoutServed>,
    visitor_type: Option<VisitorType>,
}

fn none_choice() -> policy::Choice {
    policy::choose(Arm::Control, &[], 0.0, 0.0, 0.0)
}

/// The learned policy's pick; `explored` when it is not the most probable action.
fn learned_choice(candidates: &[Candidate], distribution: Vec<f64>, draw: f64) -> policy::Choice {
    let index = sample(&distribution, draw);
    let mode = (0..distribution.len())
        .max_by(|a, b| distribution[*a].total_cmp(&distribution[*b]))
        .unwrap_or(0);
    policy::Choice {
        index: Some(index),
        action: candidates[index].action.clone(),
        expected_value_minor: candidates[index].expected_value_minor,
        propensity: distribution[index],
        explored: index != mode,
        distribution,
    }
}

/// Under the learned policy, a candidate's expected value is its predicted margin over `none`'s (`NaN`,
/// shown as `null`, where there is no prediction); a forced action stays forced.
fn relabel(candidates: &mut [Candidate], reward: &[Option<f64>]) {
    let none = reward.first().copied().flatten();
    for (c, r) in candidates.iter_mut().zip(reward) {
        if c.expected_value_minor.is_finite() {
            c.expected_value_minor = match (r, none) {
                (Some(r), Some(n)) => r - n,
                _ => f64::NAN,
            };
        }
    }
}

/// The logged distribution: each candidate's key, probability and cost.
fn distribution(candidates: &[Candidate], probabilities: &[f64]) -> Vec<ActionProbability> {
    candidates
        .iter()
        .zip(probabilities)
        .map(|(c, p)| ActionProbability {
            action: c.action.key(),
            probability: *p,
            cost_minor: c.cost_minor,
        })
        .collect()
}

/// The policy's context: device from the request (else the session), returning from the visitor type
/// (else the user's earlier sessions, as [`uci`] decided), form errors from the session. The point-in-time
/// training export rebuilds it with the same function.
pub fn policy_context(
    placement: Placement,
    propensity: f64,
    economics: &Economics,
    request_device: Option<DeviceType>,
    session: Option<&SessionFeatures>,
    row: &UciSession,
) -> PolicyContext {
    PolicyContext::new(
        placement,
        propensity,
        economics,
        request_device.or_else(|| session.and_then(|s| s.device)),
        row.visitor_type == VisitorType::Returning,
        session.map_or(0, |s| s.form_errors),
    )
}

/// The request's device string as the event schema's device type.
pub fn device_type(d: &str) -> DeviceType {
    match d {
        "desktop" => DeviceType::Desktop,
        "mobile" => DeviceType::Mobile,
        "tablet" => DeviceType::Tablet,
        _ => DeviceType::Other,
    }
}

fn arm(
    request: &DecisionRequest,
    inputs: Inputs<'_>,
    held_out: bool,
) -> (Arm, ArmReason, Option<Assignment>) {
    let config = inputs.config;
    if config.kill_switch {
        return (Arm::Control, ArmReason::KillSwitch, None);
    }
    let Some(unit) = inputs.unit else {
        return (config.default_arm, ArmReason::NoUser, None);
    };
    if held_out {
        return (Arm::Control, ArmReason::Holdout, None);
    }
    let recovery;
    let experiments = if request.placement == Placement::Recovery {
        recovery = [config.recovery.experiment()];
        &recovery[..]
    } else {
        &config.experiments[..]
    };
    match assign(experiments, request.placement, unit, inputs.now) {
        Some(a) => {
            let arm = if a.variation == 0 {
                Arm::Control
            } else {
                Arm::Treatment
            };
            (arm, ArmReason::Experiment, Some(a))
        }
        None => (config.default_arm, ArmReason::Default, None),
    }
}

/// The chosen action first, then the other eligible candidates by expected value.
fn rank(choice: &policy::Choice, mut rest: Vec<Candidate>) -> Vec<RankedAction> {
    let finite = |v: f64| v.is_finite().then_some(v);
    rest.retain(|c| c.action != choice.action);
    // Unpredicted (NaN) last.
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    rest.sort_by(|a, b| key(b.expected_value_minor).total_cmp(&key(a.expected_value_minor)));
    std::iter::once((choice.action.clone(), choice.expected_value_minor))
        .chain(rest.into_iter().map(|c| (c.action, c.expected_value_minor)))
        .zip(1..)
        .map(|((action, ev), rank)| RankedAction {
            rank,
            action,
            expected_value_minor: finite(ev),
        })
        .collect()
}

/// The session's UCI row; a session without features yet is a fresh one at `now`.
pub fn uci(f: &Features, now: DateTime<Utc>) -> UciSession {
    let returning_user = f.user.as_ref().is_some_and(|u| u.sessions > 0);
    uci_at(
        f.session.as_ref(),
        |path| f.pages.get(path),
        returning_user,
        now,
    )
}

/// [`uci`] from its parts: the session (if it has features), its pages, and whether the user has been
/// seen before (what decides new or returning for a session without features).
pub fn uci_at<'p>(
    session: Option<&SessionFeatures>,
    pages: impl Fn(&str) -> Option<&'p PageFeatures>,
    returning_user: bool,
    now: DateTime<Utc>,
) -> UciSession {
    match session {
        Some(s) => s.uci(pages),
        None => UciSession {
            administrative: 0.0,
            administrative_duration: 0.0,
            informational: 0.0,
            informational_duration: 0.0,
            product_related: 0.0,
            product_related_duration: 0.0,
            bounce_rates: 0.0,
            exit_rates: 0.0,
            page_values: 0.0,
            special_day: crate::features::session::special_day(now.date_naive()),
            month: now.month(),
            operating_systems: None,
            browser: None,
            region: None,
            traffic_type: None,
            visitor_type: if returning_user {
                VisitorType::Returning
            } else {
                VisitorType::New
            },
            weekend: matches!(now.weekday(), Weekday::Sat | Weekday::Sun),
        },
    }
}

/// Products bought or viewed with the cart's products, most sessions first, not already in the cart.
fn cross_sell(request: &DecisionRequest, items: &[ItemFeatures]) -> Vec<String> {
    let in_cart: Vec<&str> = request
        .cart
        .iter()
        .flat_map(|c| c.items.iter().map(|l| l.product_id.as_str()))
        .collect();
    cross_sell_for(&in_cart, items)
}

/// The cross-sell suggestions for a set of products from their item features: co-purchases rank above
/// co-views (any co-purchase beats any co-view), then by sessions summed over the products, ties by id;
/// at most [`CROSS_SELL_MAX`], none of the products themselves.
pub fn cross_sell_for(products: &[&str], items: &[ItemFeatures]) -> Vec<String> {
    let mut score: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for item in items {
        for p in &item.co_purchased {
            score.entry(&p.product_id).or_default().0 += u64::from(p.sessions);
        }
        for p in &item.co_viewed {
            score.entry(&p.product_id).or_default().1 += u64::from(p.sessions);
        }
    }
    let mut ranked: Vec<(&str, (u64, u64))> = score
        .into_iter()
        .filter(|(id, _)| !products.contains(id))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(CROSS_SELL_MAX)
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Two uniform draws in `[0, 1)` from the decision id, so a decision can be replayed exactly.
/// The decision's two uniform draws (exploration, then the pick), from its id: replayable.
pub fn draws(decision_id: &str) -> (f64, f64) {
    let d = Sha256::digest(decision_id.as_bytes());
    let unit = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        (u64::from_be_bytes(w) >> 11) as f64 / (1u64 << 53) as f64
    };
    (unit(&d[..8]), unit(&d[8..16]))
}

/// SHA-256 of the decision's inputs as little-endian f64s: the model's vector, then the policy's context
/// features ([`PolicyContext::features`]); first 16 bytes in hex.
pub fn feature_hash(x: &[f64], context: &PolicyContext) -> String {
    hash_vectors(x, &context.features())
}

/// [`feature_hash`] from the two vectors: the model's and the policy's context features (what a v3
/// decision event logs as `policy_features`, in [`CONTEXT_FEATURES`] order).
pub fn hash_vectors(x: &[f64], policy_features: &[f64]) -> String {
    let mut h = Sha256::new();
    for v in x.iter().chain(policy_features) {
        h.update(v.to_le_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// The `decision_served` event. It carries the raw user id, as every producer's events do: ingest
/// pseudonymizes it with the same key the scorer used for the unit, so both meet on one pseudonym.
fn served_event(
    request: &DecisionRequest,
    r: &DecisionResponse,
    feature_hash: String,
    logged: Logged<'_>,
    now: DateTime<Utc>,
) -> Event {
    let device = request.device.as_deref().map(|d| Device {
        id: None,
        kind: device_type(d),
        os: None,
        browser: None,
    });
    let chosen = &r.actions[0].action;
    let eligible = if logged.eligible.is_empty() {
        // Degraded: nothing was eligible but `none`.
        vec![ActionProbability {
            action: chosen.key(),
            probability: 1.0,
            cost_minor: 0,
        }]
    } else {
        logged.eligible
    };
    Event {
        event_id: r.decision_id.clone(),
        schema_version: SCHEMA_VERSION,
        occurred_at: now,
        session_id: request.session_id.clone(),
        user_id: request.user_id.clone(),
        context: Context {
            device,
            country: request.country.clone(),
            ..Context::default()
        },
        body: EventBody::DecisionServed(Box::new(DecisionServed {
            decision_id: r.decision_id.clone(),
            placement: r.placement.as_str().to_string(),
            action: chosen.kind().to_string(),
            experiment_id: r.experiment.as_ref().map(|e| e.id.clone()),
            variant: r.experiment.as_ref().map(|e| e.variant.clone()),
            propensity: r.propensity,
            model_id: r.model.id.clone(),
            model_version: r.model.version.clone(),
            feature_schema_version: r.versions.feature_schema,
            rules_version: r.versions.rules.clone(),
            feature_hash,
            degraded: r.degraded,
            action_key: Some(chosen.key()),
            policy: Some(r.policy.clone()),
            eligible,
            cart: logged.cart,
            shadow: logged.shadow,
            score: logged.score,
            model_input: logged.model_input,
            policy_features: logged.policy_features,
            recovery: None,
            risk: r.risk.clone(),
            holdout: logged.holdout,
            visitor_type: logged.visitor_type,
        })),
    }
}
