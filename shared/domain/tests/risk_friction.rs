//! Friction bands fitted from costs: exact against a brute-force search, and recomputed when the costs
//! change.

use checkout_domain::ope::SplitMix64;
use checkout_domain::risk::friction::{
    best_block, block_curve, evaluate, fit_bands, Band, BandError, Bands, Friction, FrictionCosts,
    Labelled, Order,
};

/// Orders whose fraud probability rises with the score, on a coarse score grid so that the brute force is
/// small.
fn orders(seed: u64, n: usize) -> Vec<Labelled> {
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|_| {
            let score = (rng.uniform() * 20.0).floor() * 5.0 + 0.5;
            let value = 1000 + (rng.uniform() * 20_000.0) as i64;
            Labelled {
                score,
                order: Order {
                    value_minor: value,
                    margin_minor: value * 3 / 10,
                },
                fraud: rng.uniform() < (score / 100.0).powi(2),
            }
        })
        .collect()
}

fn bands(starts: [Option<f64>; 3]) -> Option<Bands> {
    let mut v = vec![Band {
        from: 0.0,
        friction: Friction::Allow,
    }];
    for (start, friction) in starts.into_iter().zip(&Friction::ALL[1..]) {
        if let Some(from) = start {
            v.push(Band {
                from,
                friction: *friction,
            });
        }
    }
    // A band at 0 replaces `allow` as the first.
    while v.len() > 1 && v[1].from == 0.0 {
        v.remove(0);
    }
    Bands::try_from(v).ok()
}

/// Every way to place the step-up, review and decline starts on the rows' score steps (or leave a band
/// out): the least cost.
fn brute_force(costs: &FrictionCosts, rows: &[Labelled]) -> f64 {
    let mut steps: Vec<Option<f64>> = vec![None, Some(0.0)];
    steps.extend((1..20).map(|i| Some(f64::from(i) * 5.0)));
    let mut best = f64::INFINITY;
    for &a in &steps {
        for &b in &steps {
            for &c in &steps {
                if let Some(bands) = bands([a, b, c]) {
                    best = best.min(evaluate(costs, &bands, rows).cost_minor);
                }
            }
        }
    }
    best
}

#[test]
fn fitted_bands_cost_what_the_best_of_every_placement_costs() {
    let variants = [
        FrictionCosts::default(),
        FrictionCosts {
            review_cost_minor: 0,
            ..FrictionCosts::default()
        },
        FrictionCosts {
            step_up_abandon_rate: 0.5,
            ltv_factor: 0.0,
            ..FrictionCosts::default()
        },
    ];
    for (i, costs) in variants.iter().enumerate() {
        for seed in 0..4 {
            let rows = orders(seed * 31 + i as u64, 400);
            let fitted = fit_bands(costs, &rows, &Friction::ALL);
            let cost = evaluate(costs, &fitted, &rows).cost_minor;
            let best = brute_force(costs, &rows);
            assert!(
                (cost - best).abs() <= 1e-6 * best.max(1.0),
                "costs {i}, seed {seed}: fitted {cost} vs brute force {best}; {fitted:?}"
            );
        }
    }
}

#[test]
fn thresholds_are_recomputed_when_the_costs_change() {
    let rows = orders(7, 5000);
    let base = FrictionCosts::default();
    let fitted = fit_bands(&base, &rows, &Friction::ALL);
    let frictions = |b: &Bands| b.bands().iter().map(|b| b.friction).collect::<Vec<_>>();
    assert_eq!(frictions(&fitted).first(), Some(&Friction::Allow));

    // Reviews that cost more than any order: no review band.
    let dear_review = FrictionCosts {
        review_cost_minor: 1_000_000,
        ..base.clone()
    };
    let no_review = fit_bands(&dear_review, &rows, &Friction::ALL);
    assert!(
        !frictions(&no_review).contains(&Friction::Review),
        "{no_review:?}"
    );

    // Shoppers worth a fortune: never decline.
    let precious = FrictionCosts {
        ltv_factor: 1e6,
        ..base.clone()
    };
    let never_decline = fit_bands(&precious, &rows, &Friction::ALL);
    assert!(!frictions(&never_decline).contains(&Friction::Decline));

    // A dearer chargeback moves the first friction to a lower score.
    let dear_fraud = FrictionCosts {
        chargeback_fee_minor: 20_000,
        ..base.clone()
    };
    let first_friction = |b: &Bands| b.bands().get(1).map_or(101.0, |b| b.from);
    assert!(
        first_friction(&fit_bands(&dear_fraud, &rows, &Friction::ALL)) < first_friction(&fitted),
        "a dearer fraud must start friction lower"
    );

    // Restricted to allow/decline, the fit is the best single block threshold.
    let block_only = fit_bands(&base, &rows, &[Friction::Decline]);
    let (_, best_cost) = best_block(&base, &rows);
    assert!((evaluate(&base, &block_only, &rows).cost_minor - best_cost).abs() < 1e-6);
    // And the banded policy is never dearer than it.
    assert!(evaluate(&base, &fitted, &rows).cost_minor <= best_cost + 1e-6);
}

#[test]
fn the_block_curve_is_each_thresholds_cost() {
    let costs = FrictionCosts::default();
    let rows = orders(3, 600);
    for (threshold, cost) in block_curve(&costs, &rows) {
        let direct = evaluate(&costs, &Bands::block_at(threshold), &rows).cost_minor;
        assert!(
            (direct - cost).abs() < 1e-6,
            "{threshold}: {cost} vs {direct}"
        );
    }
}

#[test]
fn costs_follow_the_documented_table() {
    let c = FrictionCosts::default();
    let order = Order {
        value_minor: 10_000,
        margin_minor: 3_000,
    };
    assert_eq!(c.cost(Friction::Allow, order, true), 11_500.0);
    assert_eq!(c.cost(Friction::Allow, order, false), 0.0);
    assert!((c.cost(Friction::StepUp, order, true) - 0.15 * 11_500.0).abs() < 1e-9);
    assert!((c.cost(Friction::StepUp, order, false) - 300.0).abs() < 1e-9);
    assert!((c.cost(Friction::Review, order, true) - (300.0 + 0.05 * 11_500.0)).abs() < 1e-9);
    assert!((c.cost(Friction::Review, order, false) - (300.0 + 0.02 * 6_000.0)).abs() < 1e-9);
    assert_eq!(c.cost(Friction::Decline, order, true), 0.0);
    assert_eq!(c.cost(Friction::Decline, order, false), 6_000.0);
    assert!((c.expected_cost(Friction::Allow, order, 0.1) - 1_150.0).abs() < 1e-9);
    assert!(c.validate().is_ok());
    assert!(FrictionCosts {
        review_catch_rate: 1.5,
        ..c
    }
    .validate()
    .is_err());
}

#[test]
fn bands_must_start_at_zero_rise_and_get_stricter() {
    let band = |from, friction| Band { from, friction };
    assert_eq!(Bands::try_from(vec![]), Err(BandError::Empty));
    assert_eq!(
        Bands::try_from(vec![band(5.0, Friction::Allow)]),
        Err(BandError::FirstNotZero(5.0))
    );
    assert_eq!(
        Bands::try_from(vec![
            band(0.0, Friction::Review),
            band(10.0, Friction::StepUp)
        ]),
        Err(BandError::Order(1))
    );
    assert_eq!(
        Bands::try_from(vec![
            band(0.0, Friction::Allow),
            band(0.0, Friction::StepUp)
        ]),
        Err(BandError::Order(1))
    );
    let ok = Bands::try_from(vec![
        band(0.0, Friction::Allow),
        band(2.5, Friction::StepUp),
        band(40.0, Friction::Decline),
    ])
    .unwrap();
    assert_eq!(ok.classify(0.0), (0, Friction::Allow));
    assert_eq!(ok.classify(2.5), (1, Friction::StepUp));
    assert_eq!(ok.classify(100.0), (2, Friction::Decline));
    assert_eq!(ok.range(1), (2.5, 40.0));
    let json = serde_json::to_string(&ok).unwrap();
    assert_eq!(serde_json::from_str::<Bands>(&json).unwrap(), ok);
    assert!(serde_json::from_str::<Bands>(r#"[{"from":1,"friction":"allow"}]"#).is_err());
}

#[test]
fn the_compiled_in_risk_model_reads_scores_and_refuses_tampering() {
    use checkout_domain::risk::inputs::{NAMES, WIDTH};
    use checkout_domain::risk::model::{fallback, RiskModelArtifact, RISK_MODEL_NAME};
    let model = fallback().expect("the compiled-in risk model reads");
    assert_eq!(model.name, RISK_MODEL_NAME);
    assert_eq!(model.training.label_delay_days, 7);
    let bytes = model.encode().expect("encodes");
    assert_eq!(
        RiskModelArtifact::decode(&bytes).expect("round trip"),
        model
    );

    // A small everyday payment by a known customer on a clean device, against the same payment on a
    // device with many recently confirmed frauds.
    let mut x = [0.0; WIDTH];
    let set = |x: &mut [f64; WIDTH], name: &str, v: f64| {
        x[NAMES.iter().position(|n| *n == name).expect("input")] = v;
    };
    set(&mut x, "amount", 40.0);
    set(&mut x, "log_amount", 41f64.ln());
    set(&mut x, "amount_over_user_mean_order", 1.0);
    set(&mut x, "device_attempts_30d", 40.0);
    let calm = model.score(&x);
    assert_eq!(calm.friction, Friction::Allow, "{calm:?}");
    set(&mut x, "log_device_known_frauds_14d", 20f64.ln());
    set(&mut x, "log_device_known_frauds_30d", 20f64.ln());
    set(&mut x, "device_known_fraud_share_14d", 0.8);
    set(&mut x, "device_known_fraud_share_30d", 0.5);
    let hot = model.score(&x);
    assert!(hot.score > calm.score * 10.0, "{calm:?} {hot:?}");
    assert_ne!(hot.friction, Friction::Allow, "{hot:?}");
    assert!(
        hot.reasons
            .iter()
            .any(|r| r.starts_with("log_device_known_frauds")),
        "{hot:?}"
    );
    assert!(hot.band_from <= hot.score && hot.score <= hot.band_to);

    let tampered = String::from_utf8(bytes.clone())
        .expect("utf-8")
        .replacen("\"intercept\":", "\"intercept\":1.0e-3+", 0)
        .replacen("fraud-risk", "fraud-risk2", 1);
    assert!(RiskModelArtifact::decode(tampered.as_bytes()).is_err());
    let mut renamed = model.clone();
    renamed.inputs[0] = "amount_usd".into();
    assert!(renamed.encode().is_err());
}

#[tokio::test]
async fn a_risk_challenger_is_promoted_only_when_better_on_the_same_rows() {
    use checkout_domain::memory::MemoryObjectStore;
    use checkout_domain::model::registry::{champion_pointer, publish};
    use checkout_domain::risk::model::{fallback, promote, RISK_MODEL_NAME};
    let store = MemoryObjectStore::default();
    let now = chrono::Utc::now();
    let first = fallback().unwrap();
    publish(&store, &first).await.unwrap();
    let r = promote(&store, &first.version, None, now).await.unwrap();
    assert!(r.pointer_moved, "{r:?}");
    // Worse ranking on the same rows: refused, and the pointer stays.
    let mut worse = first.clone();
    worse.version = "worse".into();
    worse.metrics.average_precision -= 0.05;
    publish(&store, &worse).await.unwrap();
    let r = promote(&store, "worse", None, now).await.unwrap();
    assert!(
        !r.pointer_moved && r.decision.reason.contains("not better"),
        "{r:?}"
    );
    let (pointer, _) = champion_pointer(&store, RISK_MODEL_NAME)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pointer.version, first.version);
    // Better on both, same rows: promoted. Measured elsewhere: refused unless overridden.
    let mut better = first.clone();
    better.version = "better".into();
    better.metrics.average_precision += 0.01;
    better.metrics.cost_over_block -= 0.01;
    publish(&store, &better).await.unwrap();
    assert!(
        promote(&store, "better", None, now)
            .await
            .unwrap()
            .pointer_moved
    );
    let mut elsewhere = better.clone();
    elsewhere.version = "elsewhere".into();
    elsewhere.training.source = "simulated:handbook:seed-9".into();
    elsewhere.metrics.average_precision += 0.1;
    publish(&store, &elsewhere).await.unwrap();
    let r = promote(&store, "elsewhere", None, now).await.unwrap();
    assert!(!r.pointer_moved && r.decision.reason.contains("different rows"));
    let r = promote(
        &store,
        "elsewhere",
        Some("retrained on the merchant's labels"),
        now,
    )
    .await
    .unwrap();
    assert!(r.pointer_moved && r.decision.overridden);
}
