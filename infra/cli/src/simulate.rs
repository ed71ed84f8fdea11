//! The closed-loop simulator: the real decision engine, serving real sessions, in a world whose effects
//! are known, learning and promoting as production would.
//!
//! **Sessions** are drawn (seeded, with replacement) from the UCI online-shoppers file: their page counts,
//! durations, page rates, month, visitor type and so on are real, and the engine scores them with the
//! champion propensity model, whose probability `p` is the world's true baseline chance of an order. What
//! UCI does not record is drawn per decision from fixed distributions: the placement (cart or checkout,
//! even odds), the device (mobile 50%, tablet 10%, desktop 40%), form errors (one or two in 20% of
//! sessions), and the cart (log-normal value around 67 USD, a 40% margin with known line costs).
//!
//! **The hidden truth** ([`Truth`]) gives each action a lift `δ` that depends on the context: positive
//! lifts convert that share of would-be non-buyers (`p' = p + δ(1 − p)`), negative ones lose that share of
//! buyers (`p' = p(1 + δ)`). A 10% discount wins price-sensitive, low-propensity sessions and only costs
//! margin on likely buyers; free shipping matters on small carts; the simplified form helps after a form
//! error and slightly hurts otherwise; guest checkout first helps new visitors and annoys returning ones;
//! wallets first help on mobile. The shapes (thresholds on cart value and on `p`) are not the learner's
//! (logistic in log cart value and logit `p`); every parameter is configurable, and each world jitters
//! them by ±20% from its truth seed, so the truth is not tuned to the learner.
//!
//! **The loop**, per round: the champion serves `per_round` decisions through [`decide`] (round 0: the
//! configured-uplift policy with ε-exploration, the cold start); each outcome is drawn from the truth; the
//! rows go to the same training-row type the event-log export writes; a challenger is trained with linfa
//! on every training row so far; it is evaluated with the off-policy estimators on the held-out rows
//! against the champion; and promoted by the production rule ([`promotion::decide`]).
//!
//! **Reported per round:** the expected margin per decision (from the truth, not the draws) of the loop's
//! serving policy, the configured-uplift policy (ε = 0), the oracle that knows the truth, and doing
//! nothing; the loop's share of the oracle's lift over doing nothing; cumulative regret; and each
//! estimator's estimate of the challenger's value against its true value on the held-out contexts.

use crate::BoxError;
use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::engine::{decide, policy_context, Features, Inputs};
use checkout_domain::decision::learned::{Exploration, PolicyArtifact};
use checkout_domain::decision::policy::{Arm, Economics};
use checkout_domain::decision::request::{Cart, CartLine, DecisionRequest, Placement};
use checkout_domain::event::{DeviceType, EventBody, VisitorType};
use checkout_domain::features::aggregate::Money;
use checkout_domain::features::session::{PageVisit, SessionFeatures};
use checkout_domain::features::{PageFeatures, UciSession};
use checkout_domain::learning::dataset::{Outcome, TrainingRow};
use checkout_domain::learning::promotion::{self, contender};
use checkout_domain::learning::targets::{ope_rows, Target};
use checkout_domain::model::scorer::Model;
use checkout_domain::ope::{evaluate, Estimate, Settings, SplitMix64};
use checkout_train::policy::{train_policy, PolicyTrainConfig};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The world's hidden effects (lifts `δ`, see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Truth {
    pub free_shipping_small_cart: f64,
    pub free_shipping_large_cart: f64,
    /// Carts below this value (minor units) count as small.
    pub small_cart_minor: i64,
    /// Per discount percent, for sessions with `p` below `price_sensitive_below`.
    pub discount_per_percent_sensitive: f64,
    pub discount_per_percent_other: f64,
    pub price_sensitive_below: f64,
    pub express_returning: f64,
    pub express_new: f64,
    pub reminder: f64,
    pub simplified_form_after_error: f64,
    pub simplified_form_otherwise: f64,
    pub guest_first_new: f64,
    pub guest_first_returning: f64,
    pub wallet_first_mobile: f64,
    pub wallet_first_other: f64,
}

impl Default for Truth {
    fn default() -> Self {
        Self {
            free_shipping_small_cart: 0.03,
            free_shipping_large_cart: 0.0,
            small_cart_minor: 6_000,
            discount_per_percent_sensitive: 0.003,
            discount_per_percent_other: 0.0,
            price_sensitive_below: 0.15,
            express_returning: 0.02,
            express_new: 0.0,
            reminder: 0.003,
            simplified_form_after_error: 0.12,
            simplified_form_otherwise: -0.01,
            guest_first_new: 0.05,
            guest_first_returning: -0.03,
            wallet_first_mobile: 0.06,
            wallet_first_other: -0.01,
        }
    }
}

impl Truth {
    /// Every effect scaled by its own factor in [0.8, 1.2], drawn from `seed`.
    pub fn jittered(&self, seed: u64) -> Truth {
        let mut rng = SplitMix64(seed);
        let mut j = |x: f64| x * (0.8 + 0.4 * rng.uniform());
        Truth {
            free_shipping_small_cart: j(self.free_shipping_small_cart),
            free_shipping_large_cart: j(self.free_shipping_large_cart),
            small_cart_minor: self.small_cart_minor,
            discount_per_percent_sensitive: j(self.discount_per_percent_sensitive),
            discount_per_percent_other: j(self.discount_per_percent_other),
            price_sensitive_below: self.price_sensitive_below,
            express_returning: j(self.express_returning),
            express_new: j(self.express_new),
            reminder: j(self.reminder),
            simplified_form_after_error: j(self.simplified_form_after_error),
            simplified_form_otherwise: j(self.simplified_form_otherwise),
            guest_first_new: j(self.guest_first_new),
            guest_first_returning: j(self.guest_first_returning),
            wallet_first_mobile: j(self.wallet_first_mobile),
            wallet_first_other: j(self.wallet_first_other),
        }
    }

    /// The lift `δ` of an action (by key) in a context.
    pub fn lift(&self, action: &str, c: &World) -> f64 {
        match action {
            "free_shipping" if c.value_minor < self.small_cart_minor => {
                self.free_shipping_small_cart
            }
            "free_shipping" => self.free_shipping_large_cart,
            "express_checkout" if c.returning => self.express_returning,
            "express_checkout" => self.express_new,
            "reminder" => self.reminder,
            "simplified_form" if c.form_errors > 0 => self.simplified_form_after_error,
            "simplified_form" => self.simplified_form_otherwise,
            "guest_checkout_first" if c.returning => self.guest_first_returning,
            "guest_checkout_first" => self.guest_first_new,
            "wallet_first" if c.device == DeviceType::Mobile => self.wallet_first_mobile,
            "wallet_first" => self.wallet_first_other,
            k => match k
                .strip_prefix("percent_discount_")
                .and_then(|p| p.parse::<f64>().ok())
            {
                Some(percent) if c.p < self.price_sensitive_below => {
                    percent * self.discount_per_percent_sensitive
                }
                Some(percent) => percent * self.discount_per_percent_other,
                None => 0.0,
            },
        }
    }

    /// The true probability of an order after `action`.
    pub fn conversion(&self, action: &str, c: &World) -> f64 {
        let d = self.lift(action, c).clamp(-1.0, 1.0);
        if d >= 0.0 {
            c.p + d * (1.0 - c.p)
        } else {
            c.p * (1.0 + d)
        }
    }

    /// The true expected margin of serving `action` at `cost`.
    pub fn value(&self, action: &str, cost_minor: i64, c: &World) -> f64 {
        self.conversion(action, c) * (c.margin_minor - cost_minor) as f64
    }
}

/// What the world knows about one decision's shopper.
#[derive(Debug, Clone)]
pub struct World {
    pub p: f64,
    pub value_minor: i64,
    pub margin_minor: i64,
    pub device: DeviceType,
    pub returning: bool,
    pub form_errors: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimSettings {
    pub rounds: usize,
    pub per_round: usize,
    pub seed: u64,
    pub truth_seed: u64,
    /// The cold-start configured policy's exploration (round 0, until a learned policy is promoted).
    pub cold_start_epsilon: f64,
    /// Share of decisions held out for evaluation (never trained on).
    pub held_out: f64,
    pub resamples: usize,
    pub exploration: Exploration,
    pub truth: Truth,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            rounds: 6,
            per_round: 20_000,
            seed: 1,
            truth_seed: 7,
            cold_start_epsilon: 0.3,
            held_out: 0.5,
            resamples: 500,
            exploration: Exploration::default(),
            truth: Truth::default(),
        }
    }
}

/// Expected margin per decision, from the truth.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Values {
    pub serving: f64,
    pub configured: f64,
    pub oracle: f64,
    pub nothing: f64,
}

impl Values {
    fn add(&mut self, o: &Values) {
        self.serving += o.serving;
        self.configured += o.configured;
        self.oracle += o.oracle;
        self.nothing += o.nothing;
    }

    fn scaled(&self, by: f64) -> Values {
        Values {
            serving: self.serving * by,
            configured: self.configured * by,
            oracle: self.oracle * by,
            nothing: self.nothing * by,
        }
    }

    /// The serving and the configured policy's shares of the oracle's lift over doing nothing.
    fn shares(&self) -> (f64, f64) {
        let lift = self.oracle - self.nothing;
        (
            (self.serving - self.nothing) / lift,
            (self.configured - self.nothing) / lift,
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EstimatorCheck {
    pub estimate: Estimate,
    pub error: f64,
    pub covers_truth: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    pub round: usize,
    /// Decisions served up to the end of this round.
    pub decisions: usize,
    /// The policy that served this round.
    pub serving_policy: String,
    pub per_decision: Values,
    pub cumulative: Values,
    pub share_of_oracle_lift: f64,
    pub configured_share_of_oracle_lift: f64,
    pub cumulative_regret: f64,
    pub feature_hash_match_rate: f64,
    pub challenger: String,
    /// The challenger's true value on the held-out contexts, as it would serve (with exploration).
    pub challenger_true_value: f64,
    /// The same without exploration (always its most probable action): what exploration costs.
    pub challenger_greedy_true_value: f64,
    pub estimators: Vec<EstimatorCheck>,
    pub promoted: bool,
    pub promotion_reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub settings: SimSettings,
    /// The jittered truth this world ran with.
    pub truth: Truth,
    pub rounds: Vec<RoundReport>,
    /// Decisions at the end of the first round whose serving policy reached 50% / 80% of the oracle's lift.
    pub decisions_to_50_percent: Option<usize>,
    pub decisions_to_80_percent: Option<usize>,
    pub final_share_of_oracle_lift: f64,
    pub configured_share_of_oracle_lift: f64,
}

struct Logged {
    row: TrainingRow,
    /// True expected margin of each eligible action.
    values: Vec<f64>,
    held_out: bool,
}

/// The session as the engine reads it: the UCI row's counts and rates, with the drawn device and errors.
fn features(row: &UciSession, w: &World, session_id: &str, now: DateTime<Utc>) -> Features {
    const N: f64 = 1_000_000.0;
    let ms = |s: f64| (s * 1000.0).round().max(0.0) as u64;
    let count = |x: f64| x.round().max(0.0) as u32;
    let session = SessionFeatures {
        session_id: session_id.to_string(),
        user_id: None,
        event_count: 1,
        first_event_at: now,
        last_event_at: now,
        expires_at: i64::MAX / 2,
        administrative: count(row.administrative),
        administrative_duration_ms: ms(row.administrative_duration),
        informational: count(row.informational),
        informational_duration_ms: ms(row.informational_duration),
        product_related: count(row.product_related),
        product_related_duration_ms: ms(row.product_related_duration),
        page_views: 1,
        pages: vec![PageVisit {
            path: "/sim".into(),
            views: 1,
        }],
        special_day: row.special_day,
        month: row.month,
        weekend: row.weekend,
        visitor_type: Some(row.visitor_type),
        traffic_type: row.traffic_type,
        region: row.region.clone(),
        operating_system: row.operating_systems.clone(),
        browser: row.browser.clone(),
        device: Some(w.device),
        country: None,
        cart_value_minor: w.value_minor,
        cart_currency: Some("USD".into()),
        cart_items: 1,
        checkout_started: false,
        checkout_step: 0,
        payment_attempts: 0,
        payment_declines: 0,
        coupon_attempts: 0,
        form_errors: w.form_errors,
        orders: 0,
        revenue: Money::new(),
        products_viewed: 1,
        decisions: 0,
        offers: 0,
    };
    let page = PageFeatures {
        path: "/sim".into(),
        views: N as u32,
        unique_views: N as u32,
        entrances: N as u32,
        bounces: (row.bounce_rates * N).round() as u32,
        exits: (row.exit_rates * N).round() as u32,
        value: Money::from([(
            "USD".to_string(),
            (row.page_values * 100.0 * N).round() as i64,
        )]),
        last_event_at: now,
        expires_at: i64::MAX / 2,
    };
    Features {
        session: Some(session),
        pages: [("/sim".to_string(), page)].into(),
        ..Features::default()
    }
}

/// Draws the parts of a shopper UCI does not record.
fn draw_world(rng: &mut SplitMix64, row: &UciSession) -> (World, Placement) {
    let placement = if rng.uniform() < 0.5 {
        Placement::Cart
    } else {
        Placement::Checkout
    };
    let u = rng.uniform();
    let device = if u < 0.5 {
        DeviceType::Mobile
    } else if u < 0.6 {
        DeviceType::Tablet
    } else {
        DeviceType::Desktop
    };
    let form_errors = if rng.uniform() < 0.2 {
        1 + u32::from(rng.uniform() < 0.3)
    } else {
        0
    };
    // Log-normal by Box-Muller: median e^4.2 ≈ 67 USD, σ 0.7.
    let (u1, u2) = (rng.uniform().max(1e-12), rng.uniform());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let value_minor = ((4.2 + 0.7 * z).exp() * 100.0).round().max(100.0) as i64;
    let world = World {
        p: 0.0,
        value_minor,
        margin_minor: (value_minor as f64 * 0.4).round() as i64,
        device,
        returning: row.visitor_type == VisitorType::Returning,
        form_errors,
    };
    (world, placement)
}

pub fn simulate(
    settings: &SimSettings,
    sessions: &[UciSession],
    model: &Model,
) -> Result<SimReport, BoxError> {
    if sessions.is_empty() {
        return Err("the simulator needs sessions".into());
    }
    let truth = settings.truth.jittered(settings.truth_seed);
    let mut rng = SplitMix64(settings.seed);
    let now = Utc
        .with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
        .single()
        .ok_or("time")?;
    let cold = DecisionConfig {
        default_arm: Arm::Treatment,
        policy: checkout_domain::decision::policy::PolicyConfig {
            epsilon: settings.cold_start_epsilon,
            ..Default::default()
        },
        ..DecisionConfig::default()
    };
    let configured = DecisionConfig {
        policy: checkout_domain::decision::policy::PolicyConfig {
            epsilon: 0.0,
            ..cold.policy.clone()
        },
        ..cold.clone()
    };
    let mut champion: Option<PolicyArtifact> = None;
    let mut logged: Vec<Logged> = Vec::new();
    let mut cumulative = Values::default();
    let mut rounds = Vec::new();
    let train_config = PolicyTrainConfig {
        exploration: settings.exploration,
        ..PolicyTrainConfig::default()
    };
    let ope = Settings {
        resamples: settings.resamples,
        seed: settings.seed,
        ..Settings::default()
    };
    for round in 0..settings.rounds {
        let mut sums = Values::default();
        let mut matches = 0usize;
        for i in 0..settings.per_round {
            let n = round * settings.per_round + i;
            let row = &sessions[(rng.next_u64() % sessions.len() as u64) as usize];
            let (mut world, placement) = draw_world(&mut rng, row);
            let session_id = format!("sim-{n}");
            let f = features(row, &world, &session_id, now);
            let request = DecisionRequest {
                session_id: session_id.clone(),
                user_id: Some(format!("user-{n}")),
                placement,
                device: Some(world.device.as_str().into()),
                country: None,
                cart: Some(Cart {
                    currency: "USD".into(),
                    items: vec![CartLine {
                        product_id: "sim".into(),
                        quantity: 1,
                        unit_price_minor: world.value_minor,
                        unit_cost_minor: Some(world.value_minor - world.margin_minor),
                    }],
                }),
                payment: None,
            };
            let id = format!(
                "{:016x}-sim",
                SplitMix64(n as u64 ^ settings.seed).next_u64()
            );
            let inputs = Inputs {
                decision_id: &id,
                now,
                unit: None,
                model,
                config: &cold,
                policy: champion.as_ref(),
                shadow: None,
                risk_model: None,
            };
            let d = decide(&request, Ok(&f), inputs);
            let EventBody::DecisionServed(served) = &d.event.body else {
                return Err("the engine logged no decision".into());
            };
            world.p = d
                .response
                .score
                .as_ref()
                .map_or(0.0, |s| s.purchase_probability);
            let values: Vec<f64> = served
                .eligible
                .iter()
                .map(|a| truth.value(&a.action, a.cost_minor, &world))
                .collect();
            let action = served.action_key.clone().unwrap_or_default();
            let cost = served
                .eligible
                .iter()
                .find(|a| a.action == action)
                .map_or(0, |a| a.cost_minor);
            let ordered = rng.uniform() < truth.conversion(&action, &world);
            let economics = Economics::of(request.cart.as_ref(), &cold.policy);
            let uci = checkout_domain::decision::engine::uci(&f, now);
            let context = policy_context(
                placement,
                world.p,
                &economics,
                Some(world.device),
                f.session.as_ref(),
                &uci,
            );
            let x = model.vectorize(&uci);
            let hash_matches = checkout_domain::decision::engine::feature_hash(&x, &context)
                == served.feature_hash;
            matches += usize::from(hash_matches);
            let row = TrainingRow {
                decision_id: id.clone(),
                session_id,
                decided_at: now,
                placement,
                policy: served.policy.clone().unwrap_or_default(),
                experiment: None,
                context,
                feature_hash: served.feature_hash.clone(),
                hash_matches,
                eligible: served.eligible.clone(),
                action,
                propensity: served.propensity,
                shadow: None,
                outcome: Outcome {
                    ordered,
                    revenue_minor: if ordered { world.value_minor } else { 0 },
                    margin_minor: if ordered {
                        (world.margin_minor - cost) as f64
                    } else {
                        0.0
                    },
                    order_at: ordered.then_some(now),
                },
            };
            // The configured policy without exploration, on the same candidates (what `decide` would
            // choose with ε = 0, computed from the row instead of a second engine call).
            let plain = Target::Configured(&configured.policy)
                .distribution(&row)
                .unwrap_or_default();
            let configured_index = (0..plain.len())
                .max_by(|a, b| plain[*a].total_cmp(&plain[*b]))
                .unwrap_or(0);
            let v = Values {
                serving: served
                    .eligible
                    .iter()
                    .zip(&values)
                    .map(|(a, v)| a.probability * v)
                    .sum(),
                configured: values.get(configured_index).copied().unwrap_or(0.0),
                oracle: values.iter().cloned().fold(f64::MIN, f64::max),
                nothing: served
                    .eligible
                    .iter()
                    .zip(&values)
                    .find(|(a, _)| a.action == "none")
                    .map_or(0.0, |(_, v)| *v),
            };
            sums.add(&v);
            logged.push(Logged {
                row,
                values,
                held_out: rng.uniform() < settings.held_out,
            });
        }
        cumulative.add(&sums);
        let per_decision = sums.scaled(1.0 / settings.per_round as f64);
        let (share, configured_share) = per_decision.shares();
        let serving_policy = d_policy_name(champion.as_ref(), &cold);

        // Learn, evaluate, promote.
        let train: Vec<TrainingRow> = logged
            .iter()
            .filter(|l| !l.held_out)
            .map(|l| l.row.clone())
            .collect();
        let held: Vec<&Logged> = logged.iter().filter(|l| l.held_out).collect();
        let held_rows: Vec<TrainingRow> = held.iter().map(|l| l.row.clone()).collect();
        let challenger = train_policy(
            &train,
            checkout_domain::decision::learned::DEFAULT_POLICY_NAME,
            &format!("sim-round-{round}"),
            now,
            &train_config,
        )?;
        let challenger_target = Target::Learned(&challenger);
        let (mut true_sum, mut greedy_sum, mut counted) = (0.0, 0.0, 0usize);
        for l in &held {
            if let Some(p) = challenger_target.distribution(&l.row) {
                true_sum += p.iter().zip(&l.values).map(|(p, v)| p * v).sum::<f64>();
                let mode = (0..p.len())
                    .max_by(|a, b| p[*a].total_cmp(&p[*b]))
                    .unwrap_or(0);
                greedy_sum += l.values.get(mode).copied().unwrap_or(0.0);
                counted += 1;
            }
        }
        let true_value = true_sum / counted.max(1) as f64;
        let greedy_value = greedy_sum / counted.max(1) as f64;
        let (rows, _) = ope_rows(&held_rows, &challenger_target, Some(&challenger));
        let estimators = evaluate(&rows, ope)
            .estimates
            .into_iter()
            .map(|e| EstimatorCheck {
                error: e.value - true_value,
                covers_truth: e.lower <= true_value && true_value <= e.upper,
                estimate: e,
            })
            .collect();
        let champion_target = match &champion {
            Some(c) => Target::Learned(c),
            None => Target::Configured(&cold.policy),
        };
        let ours = contender(&held_rows, &challenger_target, &challenger, ope);
        let theirs = contender(&held_rows, &champion_target, &challenger, ope);
        let decision = promotion::decide(&ours, &theirs, None);
        rounds.push(RoundReport {
            round,
            decisions: (round + 1) * settings.per_round,
            serving_policy,
            per_decision,
            cumulative,
            share_of_oracle_lift: share,
            configured_share_of_oracle_lift: configured_share,
            cumulative_regret: cumulative.oracle - cumulative.serving,
            feature_hash_match_rate: matches as f64 / settings.per_round.max(1) as f64,
            challenger: format!("{}@{}", challenger.name, challenger.version),
            challenger_true_value: true_value,
            challenger_greedy_true_value: greedy_value,
            estimators,
            promoted: decision.promote,
            promotion_reason: decision.reason,
        });
        if decision.promote {
            champion = Some(challenger);
        }
    }
    let crossing = |level: f64| {
        rounds
            .iter()
            .find(|r| r.share_of_oracle_lift >= level)
            .map(|r| r.decisions)
    };
    let last = rounds.last().ok_or("no rounds")?;
    let (final_share, configured_share) = (
        last.share_of_oracle_lift,
        last.configured_share_of_oracle_lift,
    );
    Ok(SimReport {
        decisions_to_50_percent: crossing(0.5),
        decisions_to_80_percent: crossing(0.8),
        final_share_of_oracle_lift: final_share,
        configured_share_of_oracle_lift: configured_share,
        settings: settings.clone(),
        truth,
        rounds,
    })
}

fn d_policy_name(champion: Option<&PolicyArtifact>, cold: &DecisionConfig) -> String {
    match champion {
        Some(c) => format!("{}@{}", c.name, c.version),
        None => format!(
            "configured-uplift@{} (ε = {})",
            cold.policy.rules_version, cold.policy.epsilon
        ),
    }
}

/// Runs the simulator on the UCI file with the compiled-in champion model, and writes
/// `simulation.json` and `simulation.html` to `out_dir`.
pub fn run(
    settings: &SimSettings,
    uci: &std::path::Path,
    out_dir: &std::path::Path,
) -> Result<SimReport, BoxError> {
    let data = crate::model::read_dataset(uci)?;
    let model = checkout_domain::model::registry::fallback_model()?;
    let report = simulate(settings, &data.rows, &model)?;
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(
        out_dir.join("simulation.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    std::fs::write(out_dir.join("simulation.html"), html(&report))?;
    Ok(report)
}

/// The per-round table.
pub fn print(r: &SimReport) {
    println!(
        "{:>5} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9}  serving policy",
        "round", "decided", "serving", "configd", "oracle", "nothing", "share", "cfg", "regret"
    );
    for x in &r.rounds {
        let v = &x.per_decision;
        println!(
            "{:>5} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6.1}% {:>6.1}% {:>9.0}  {}",
            x.round,
            x.decisions,
            v.serving,
            v.configured,
            v.oracle,
            v.nothing,
            100.0 * x.share_of_oracle_lift,
            100.0 * x.configured_share_of_oracle_lift,
            x.cumulative_regret,
            x.serving_policy
        );
    }
    println!(
        "\nchallenger evaluation on held-out decisions (estimate [95% interval] vs true value):"
    );
    for x in &r.rounds {
        let cells: Vec<String> = x
            .estimators
            .iter()
            .map(|e| {
                format!(
                    "{} {:.1} [{:.1}, {:.1}]{}",
                    e.estimate.estimator,
                    e.estimate.value,
                    e.estimate.lower,
                    e.estimate.upper,
                    if e.covers_truth { "" } else { " ✗" }
                )
            })
            .collect();
        println!(
            "  {} true {:.1}: {} → {}",
            x.challenger,
            x.challenger_true_value,
            cells.join("; "),
            if x.promoted { "promoted" } else { "kept" }
        );
    }
    let at = |d: Option<usize>| d.map_or("never".to_string(), |d| format!("{d} decisions"));
    println!(
        "\nshare of the oracle's lift: learned loop {:.1}% (50% at {}, 80% at {}), configured policy {:.1}%",
        100.0 * r.final_share_of_oracle_lift,
        at(r.decisions_to_50_percent),
        at(r.decisions_to_80_percent),
        100.0 * r.configured_share_of_oracle_lift
    );
}

/// The report page: margin, regret and share-of-lift curves, and the estimators against the truth.
pub fn html(r: &SimReport) -> String {
    use crate::report_html::{line_chart, page, Series};
    use checkout_domain::stats::html::escape;
    use std::fmt::Write as _;
    let at = |f: &dyn Fn(&RoundReport) -> f64| -> Vec<(f64, f64)> {
        std::iter::once((0.0, 0.0))
            .chain(r.rounds.iter().map(|x| (x.decisions as f64, f(x))))
            .collect()
    };
    let mut body = format!(
        "<p class=\"muted\">{} rounds of {} decisions, seed {}, truth seed {}. The learned loop reached \
         <b>{:.1}%</b> of the oracle's margin lift over doing nothing in its last round (the configured-uplift \
         policy: {:.1}%); 50% at {}, 80% at {}. Values are expected margins per decision in minor units, \
         computed from the known truth.</p>",
        r.settings.rounds,
        r.settings.per_round,
        r.settings.seed,
        r.settings.truth_seed,
        100.0 * r.final_share_of_oracle_lift,
        100.0 * r.configured_share_of_oracle_lift,
        r.decisions_to_50_percent.map_or("never".into(), |d| format!("{d} decisions")),
        r.decisions_to_80_percent.map_or("never".into(), |d| format!("{d} decisions")),
    );
    body.push_str(&line_chart(
        "Cumulative expected margin",
        "decisions",
        "margin (minor units)",
        &[
            Series {
                name: "oracle",
                color: "#15803d",
                points: at(&|x| x.cumulative.oracle),
            },
            Series {
                name: "learned loop",
                color: "#1e3a8a",
                points: at(&|x| x.cumulative.serving),
            },
            Series {
                name: "configured",
                color: "#b45309",
                points: at(&|x| x.cumulative.configured),
            },
            Series {
                name: "nothing",
                color: "#6b7280",
                points: at(&|x| x.cumulative.nothing),
            },
        ],
    ));
    body.push_str(&line_chart(
        "Cumulative regret against the oracle",
        "decisions",
        "margin lost (minor units)",
        &[
            Series {
                name: "learned loop",
                color: "#1e3a8a",
                points: at(&|x| x.cumulative_regret),
            },
            Series {
                name: "configured",
                color: "#b45309",
                points: at(&|x| x.cumulative.oracle - x.cumulative.configured),
            },
        ],
    ));
    let share = |f: &dyn Fn(&RoundReport) -> f64| -> Vec<(f64, f64)> {
        r.rounds
            .iter()
            .map(|x| (x.decisions as f64, 100.0 * f(x)))
            .collect()
    };
    body.push_str(&line_chart(
        "Share of the oracle's lift, per round",
        "decisions",
        "% of the oracle's lift over nothing",
        &[
            Series {
                name: "learned loop",
                color: "#1e3a8a",
                points: share(&|x| x.share_of_oracle_lift),
            },
            Series {
                name: "configured",
                color: "#b45309",
                points: share(&|x| x.configured_share_of_oracle_lift),
            },
        ],
    ));
    body.push_str(
        "<h2>Each round's challenger, evaluated off-policy on the held-out decisions</h2>\n<table><tr><th>round</th>\
         <th>challenger</th><th>true value</th><th>IPS</th><th>clipped IPS</th><th>SNIPS</th><th>DM</th><th>DR</th>\
         <th>promoted</th></tr>\n",
    );
    for x in &r.rounds {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td>",
            x.round,
            escape(&x.challenger),
            x.challenger_true_value
        );
        for e in &x.estimators {
            let _ = write!(
                body,
                "<td class=\"{}\">{:.1} [{:.1}, {:.1}]</td>",
                if e.covers_truth { "" } else { "worse" },
                e.estimate.value,
                e.estimate.lower,
                e.estimate.upper
            );
        }
        let _ = writeln!(
            body,
            "<td title=\"{}\">{}</td></tr>",
            escape(&x.promotion_reason),
            if x.promoted { "yes" } else { "no" }
        );
    }
    body.push_str("</table><p class=\"muted\">An interval in red misses the true value.</p>\n");
    page("Closed-loop simulation", &body)
}
