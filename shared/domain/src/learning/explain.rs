//! Explains one decision from the event log and the registry alone: what the scorer saw, which model,
//! policy, rules and experiment decided, which guardrails fired, why the score is what it is, and what
//! happened afterwards. Every part that can be recomputed is, and says whether it agrees with the log:
//!
//! - **inputs**: a v3 decision logs the model's input columns and the policy's context features; their
//!   hash is recomputed and matched against the logged `feature_hash` (the log is what the scorer saw).
//!   The session's own columns are also folded from the session's events strictly before the decision,
//!   and compared column by column (a difference means the projection the scorer read lagged, or
//!   already held later events). Page-level rates (bounce, exit, page value) are site-wide aggregates
//!   and are not recomputed here (`checkout-ai policy dataset` does, over the whole log);
//! - **score and reason codes**: recomputed with the logged model version from the registry;
//! - **policy**: the logged distribution is replayed with the decision's own draw (the chosen action
//!   must come out), and a learned policy's distribution is recomputed from the logged context;
//! - **guardrails**: the candidates are replayed from the logged score, cart economics and the
//!   session's payment declines and offers, with the current rules when their version is the logged
//!   one. Cross-sell suggestions are not logged, so cross-sell counts as eligible when it was;
//! - **experiment**: the assignment is recomputed from the pseudonymous unit with the current
//!   experiment definition (seed, hash version, weights, coverage, namespace);
//! - **outcome**: the session's first order within the horizon.

use crate::decision::config::DecisionConfig;
use crate::decision::engine::{
    draws, hash_vectors, logged_model_input, model_input, CONTROL_POLICY_ID,
};
use crate::decision::learned::{sample, PolicyArtifact, CONTEXT_FEATURES};
use crate::decision::policy::{candidates, Action, Candidate, Signals};
use crate::decision::request::{Cart, CartLine, Placement};
use crate::event::{
    ActionProbability, DecisionServed, Event, EventBody, PolicyRef, CONFIGURED_POLICY_ID,
};
use crate::features::session::fold;
use crate::ingest::LogEntry;
use crate::learning::dataset::economics;
use crate::model::scorer::Model;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// How many reason codes to give (as the decision API does).
const REASONS: usize = 3;

/// What explaining a decision needs besides its log entries.
pub struct Sources<'a> {
    /// The logged model version from the registry (or the compiled-in fallback when that was logged).
    pub model: Option<&'a Model>,
    /// The logged learned policy version from the registry, when a learned policy served.
    pub policy: Option<&'a PolicyArtifact>,
    /// The decision config now in force (its rules version may differ from the logged one).
    pub config: Option<&'a DecisionConfig>,
    /// How long after the decision an order counts as its outcome.
    pub horizon: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub decision_id: String,
    pub session_id: String,
    /// Pseudonymous.
    pub user_id: Option<String>,
    pub decided_at: DateTime<Utc>,
    pub schema_version: u32,
    pub placement: String,
    pub degraded: bool,
    pub served: Served,
    pub inputs: Inputs,
    pub score: ScoreCheck,
    pub model: ModelInfo,
    pub policy: PolicyInfo,
    pub rules: RulesInfo,
    pub experiment: Option<ExperimentInfo>,
    pub guardrails: Guardrails,
    pub outcome: Outcome,
    /// One line per recomputation that disagrees with the log (empty: everything agrees).
    pub discrepancies: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Served {
    pub action: String,
    pub action_key: String,
    pub propensity: f64,
    pub policy: PolicyRef,
    pub eligible: Vec<ActionProbability>,
    /// The logged distribution with the decision's own draw picks the served action.
    pub draw_reproduces_choice: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    /// Whether the decision logged its inputs (schema v3).
    pub logged: bool,
    pub columns: Vec<Column>,
    pub policy_features: BTreeMap<String, f64>,
    pub feature_hash: String,
    /// The hash of the logged inputs (`None` when none were logged or the model is unavailable).
    pub recomputed_hash: Option<String>,
    pub hash_matches: Option<bool>,
}

/// One model input column.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    /// As the scorer read it (logged).
    pub served: Option<Value>,
    /// Folded from the session's events before the decision (`None`: a site-wide rate, not recomputed).
    pub point_in_time: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreCheck {
    pub logged: Option<f64>,
    pub recomputed: Option<f64>,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub feature: String,
    pub value: String,
    pub contribution: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub id: String,
    pub version: String,
    pub feature_schema_version: u32,
    pub found: bool,
    pub training_data_sha256: Option<String>,
    pub training_rows: Option<u64>,
    pub cv_mean_auc: Option<f64>,
    pub holdout: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyInfo {
    pub id: String,
    pub version: String,
    /// Whether a learned policy served and its artifact was found.
    pub learned_found: Option<bool>,
    pub training_data_sha256: Option<String>,
    pub training_rows: Option<u64>,
    /// The learned policy's distribution recomputed from the logged context.
    pub recomputed: Option<Vec<ActionProbability>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RulesInfo {
    pub logged_version: String,
    pub current_version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentInfo {
    pub id: String,
    pub variant: String,
    /// The assignment's inputs as the current definition has them (`None`: no longer configured).
    pub bucketing: Option<Bucketing>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bucketing {
    /// The unit hashed: the pseudonymous user id.
    pub unit: String,
    pub seed: String,
    pub hash_version: u32,
    pub coverage: f64,
    pub weights: Option<Vec<f64>>,
    pub namespace: Option<Value>,
    pub bucket: Option<f64>,
    pub recomputed_variant: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Guardrails {
    /// Whether the replay used the logged rules version.
    pub replayed: bool,
    pub blocked: Vec<BlockedAction>,
    /// The replayed eligible actions (keys).
    pub eligible: Vec<String>,
    pub agrees_with_log: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockedAction {
    pub action: String,
    pub guardrail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub ordered: bool,
    pub order_at: Option<DateTime<Utc>>,
    pub revenue_minor: Option<i64>,
    pub currency: Option<String>,
}

/// Why a decision cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("no decision {0} among the session's events")]
    NotFound(String),
    #[error("the decision's log entry cannot be read: {0}")]
    Unreadable(String),
}

/// Explains the decision `decision_id` from its session's log entries.
pub fn explain(
    decision_id: &str,
    session: &[LogEntry],
    sources: &Sources<'_>,
) -> Result<Explanation, ExplainError> {
    // Each entry decoded once; the decision's own entry must read.
    let mut decoded: Vec<(&LogEntry, Event)> = Vec::new();
    let mut decision = None;
    for entry in session {
        match entry.event() {
            Ok(e) => {
                if entry.event_id == decision_id {
                    decision = Some(e.clone());
                }
                decoded.push((entry, e));
            }
            Err(e) if entry.event_id == decision_id => {
                return Err(ExplainError::Unreadable(e.to_string()))
            }
            Err(_) => {}
        }
    }
    let event = decision.ok_or_else(|| ExplainError::NotFound(decision_id.into()))?;
    let EventBody::DecisionServed(logged) = &event.body else {
        return Err(ExplainError::NotFound(decision_id.into()));
    };
    let d = logged.upcast();
    let t = event.occurred_at;
    let mut discrepancies = Vec::new();

    // The session strictly before the decision.
    let before: Vec<LogEntry> = decoded
        .iter()
        .filter(|(_, e)| e.occurred_at < t)
        .map(|(entry, _)| (*entry).clone())
        .collect();
    let session_then = fold(&before).0.map(|p| p.session);

    // Inputs and their hash.
    let served_row = logged_model_input(&d.model_input).ok();
    let point_in_time = session_then.as_ref().map(|s| model_input(&s.uci(|_| None)));
    let site_wide = ["bounce_rates", "exit_rates", "page_values"];
    let mut names: Vec<String> = d.model_input.keys().cloned().collect();
    if names.is_empty() {
        names = point_in_time
            .as_ref()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
    }
    let columns: Vec<Column> = names
        .iter()
        .map(|name| Column {
            name: name.clone(),
            served: d.model_input.get(name).cloned(),
            point_in_time: if site_wide.contains(&name.as_str()) {
                None
            } else {
                point_in_time.as_ref().and_then(|m| m.get(name).cloned())
            },
        })
        .collect();
    let policy_vector: Option<[f64; 8]> = (!d.policy_features.is_empty()).then(|| {
        let mut v = [0.0; 8];
        for (slot, name) in v.iter_mut().zip(CONTEXT_FEATURES) {
            *slot = d.policy_features.get(name).copied().unwrap_or(f64::NAN);
        }
        v
    });
    let model = sources
        .model
        .filter(|m| m.version() == d.model_version && m.name() == d.model_id);
    let x = model
        .zip(served_row.as_ref())
        .map(|(m, row)| m.vectorize(row));
    let recomputed_hash = x
        .as_ref()
        .zip(policy_vector.as_ref())
        .map(|(x, p)| hash_vectors(x, p));
    let hash_matches = recomputed_hash.as_ref().map(|h| *h == d.feature_hash);
    if hash_matches == Some(false) {
        discrepancies.push("the logged inputs do not hash to the logged feature_hash".into());
    }
    let inputs = Inputs {
        logged: !d.model_input.is_empty(),
        columns,
        policy_features: d.policy_features.clone(),
        feature_hash: d.feature_hash.clone(),
        recomputed_hash,
        hash_matches,
    };

    // Score and reasons.
    let scored = model
        .zip(served_row.as_ref())
        .zip(x.as_ref())
        .map(|((m, row), x)| m.score_vectorized(row, x, REASONS));
    let score = ScoreCheck {
        logged: d.score,
        recomputed: scored.as_ref().map(|s| s.probability),
        reasons: scored
            .as_ref()
            .map(|s| {
                s.reasons
                    .iter()
                    .map(|r| Reason {
                        feature: r.feature.name().to_string(),
                        value: r.value.clone(),
                        contribution: r.contribution,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    if let (Some(a), Some(b)) = (score.logged, score.recomputed) {
        if (a - b).abs() > 1e-12 {
            discrepancies.push(format!("score: logged {a}, recomputed {b}"));
        }
    }
    let model_info = ModelInfo {
        id: d.model_id.clone(),
        version: d.model_version.clone(),
        feature_schema_version: d.feature_schema_version,
        found: model.is_some(),
        training_data_sha256: model.map(|m| m.artifact().training.data_sha256.clone()),
        training_rows: model.map(|m| m.artifact().training.rows),
        cv_mean_auc: model.map(|m| m.artifact().metrics.cross_validation.mean_auc),
        holdout: model.and_then(|m| serde_json::to_value(&m.artifact().metrics.holdout).ok()),
    };
    if model.is_none() && !d.degraded {
        discrepancies.push(format!(
            "model {} {} is not in the registry",
            d.model_id, d.model_version
        ));
    }

    // The served choice, replayed with the decision's own draw.
    let action_key = d.action_key.clone().unwrap_or_else(|| d.action.clone());
    let (_, pick) = draws(&d.decision_id);
    let probabilities: Vec<f64> = d.eligible.iter().map(|a| a.probability).collect();
    let draw_reproduces_choice = (!d.eligible.is_empty() && d.propensity < 1.0).then(|| {
        d.eligible
            .get(sample(&probabilities, pick))
            .is_some_and(|a| a.action == action_key)
    });
    if draw_reproduces_choice == Some(false)
        && d.policy.as_ref().is_some_and(|p| p.id != CONTROL_POLICY_ID)
    {
        discrepancies.push("the decision's draw does not pick the served action".into());
    }
    let policy_ref = d.policy.clone().unwrap_or_default();
    let learned = sources
        .policy
        .filter(|p| p.name == policy_ref.id && p.version == policy_ref.version);
    let economics = economics(&d);
    let logged_candidates: Vec<Candidate> = d
        .eligible
        .iter()
        .filter_map(|a| {
            Action::from_key(&a.action).map(|action| Candidate {
                action,
                expected_value_minor: 0.0,
                cost_minor: a.cost_minor,
            })
        })
        .collect();
    let recomputed = learned.zip(policy_vector.as_ref()).map(|(p, v)| {
        let scored = p.distribution_over(v, economics.margin_minor, &logged_candidates);
        scored
            .keys
            .iter()
            .zip(&scored.probabilities)
            .zip(&logged_candidates)
            .map(|((k, p), c)| ActionProbability {
                action: k.clone(),
                probability: *p,
                cost_minor: c.cost_minor,
            })
            .collect::<Vec<_>>()
    });
    if let Some(r) = &recomputed {
        let forced = d.eligible.iter().any(|a| a.probability == 1.0);
        let agrees = r.len() == d.eligible.len()
            && r.iter()
                .zip(&d.eligible)
                .all(|(a, b)| a.action == b.action && (a.probability - b.probability).abs() < 1e-9);
        if !agrees && !forced {
            discrepancies
                .push("the learned policy's distribution differs from the logged one".into());
        }
    }
    let known_learned = policy_ref.id != CONTROL_POLICY_ID && policy_ref.id != CONFIGURED_POLICY_ID;
    let policy = PolicyInfo {
        id: policy_ref.id.clone(),
        version: policy_ref.version.clone(),
        learned_found: known_learned.then_some(learned.is_some()),
        training_data_sha256: learned.map(|p| p.training.data_sha256.clone()),
        training_rows: learned.map(|p| p.training.rows),
        recomputed,
    };

    // Rules and guardrails.
    let current = sources.config;
    let rules = RulesInfo {
        logged_version: d.rules_version.clone(),
        current_version: current.map(|c| c.policy.rules_version.clone()),
    };
    let same_rules = current.filter(|c| c.policy.rules_version == d.rules_version);
    let placement = Placement::parse(&d.placement);
    let guardrails = match (same_rules, placement, d.score) {
        (Some(config), Some(placement), Some(score)) if !d.degraded => {
            let cart = synthetic_cart(&d);
            let signals = Signals {
                propensity: score,
                cart: cart.as_ref(),
                payment_declines: session_then.as_ref().map_or(0, |s| s.payment_declines),
                offers_in_session: session_then.as_ref().map_or(0, |s| s.offers),
                cross_sell: if d.eligible.iter().any(|a| a.action == "cross_sell") {
                    vec!["(not logged)".into()]
                } else {
                    Vec::new()
                },
            };
            let (replayed, blocked) = candidates(placement, &signals, &config.policy);
            let keys: Vec<String> = replayed.iter().map(|c| c.action.key()).collect();
            let logged_keys: Vec<&str> = d.eligible.iter().map(|a| a.action.as_str()).collect();
            let agrees = keys
                .iter()
                .map(String::as_str)
                .eq(logged_keys.iter().copied());
            if !agrees {
                discrepancies.push(format!(
                    "replayed candidates {keys:?} differ from the logged {logged_keys:?}"
                ));
            }
            Guardrails {
                replayed: true,
                blocked: blocked
                    .iter()
                    .map(|b| BlockedAction {
                        action: b.action.into(),
                        guardrail: b.guardrail.into(),
                    })
                    .collect(),
                eligible: keys,
                agrees_with_log: Some(agrees),
            }
        }
        _ => Guardrails {
            replayed: false,
            blocked: Vec::new(),
            eligible: Vec::new(),
            agrees_with_log: None,
        },
    };

    // The experiment and its bucketing.
    let experiment = d
        .experiment_id
        .clone()
        .zip(d.variant.clone())
        .map(|(id, variant)| {
            let definition = current.and_then(|c| c.experiments.iter().find(|e| e.id == id));
            let bucketing = definition.zip(event.user_id.as_deref()).map(|(e, unit)| {
                let assignment = e.assign(unit);
                Bucketing {
                    unit: unit.to_string(),
                    seed: e.hash_seed.clone().unwrap_or_else(|| e.id.clone()),
                    hash_version: e.hash_version,
                    coverage: e.coverage,
                    weights: e.weights.clone(),
                    namespace: e
                        .namespace
                        .as_ref()
                        .and_then(|n| serde_json::to_value(n).ok()),
                    bucket: assignment.as_ref().map(|a| a.bucket),
                    recomputed_variant: assignment.map(|a| a.variant),
                }
            });
            if let Some(b) = &bucketing {
                if b.recomputed_variant.as_deref() != Some(variant.as_str()) {
                    discrepancies.push(format!(
                        "the current definition of {id} assigns {:?}, the log says {variant}",
                        b.recomputed_variant
                    ));
                }
            }
            ExperimentInfo {
                id,
                variant,
                bucketing,
            }
        });

    let outcome = decoded
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.occurred_at > t && e.occurred_at <= t + sources.horizon)
        .filter_map(|e| match &e.body {
            EventBody::OrderPlaced(o) => Some((e.occurred_at, o)),
            _ => None,
        })
        .min_by_key(|(at, _)| *at)
        .map(|(at, o)| Outcome {
            ordered: true,
            order_at: Some(at),
            revenue_minor: Some(o.total.amount_minor),
            currency: Some(o.total.currency.clone()),
        });

    Ok(Explanation {
        decision_id: d.decision_id.clone(),
        session_id: event.session_id.clone(),
        user_id: event.user_id.clone(),
        decided_at: t,
        schema_version: event.schema_version,
        placement: d.placement.clone(),
        degraded: d.degraded,
        served: Served {
            action: d.action.clone(),
            action_key,
            propensity: d.propensity,
            policy: policy_ref,
            eligible: d.eligible.clone(),
            draw_reproduces_choice,
        },
        inputs,
        score,
        model: model_info,
        policy,
        rules,
        experiment,
        guardrails,
        outcome: outcome.unwrap_or_default(),
        discrepancies,
    })
}

/// A one-line cart with the logged value and (when the merchant shared costs) margin: what the
/// guardrails look at. The lines themselves are not logged.
fn synthetic_cart(d: &DecisionServed) -> Option<Cart> {
    let c = d.cart.as_ref()?;
    Some(Cart {
        currency: c.currency.clone(),
        items: vec![CartLine {
            product_id: "(cart)".into(),
            quantity: 1,
            unit_price_minor: c.value_minor,
            unit_cost_minor: c.margin_known.then_some(c.value_minor - c.margin_minor),
        }],
    })
}
