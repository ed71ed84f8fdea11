//! The decision policy: each guardrail, the arms, and the recorded propensity.

use checkout_domain::decision::policy::{candidates, choose, Action, Arm, PolicyConfig, Signals};
use checkout_domain::decision::request::{Cart, CartLine, Placement};

fn cart(value_minor: i64, cost_minor: Option<i64>) -> Cart {
    Cart {
        currency: "USD".into(),
        items: vec![CartLine {
            product_id: "p1".into(),
            quantity: 1,
            unit_price_minor: value_minor,
            unit_cost_minor: cost_minor,
        }],
    }
}

fn kinds(
    placement: Placement,
    s: &Signals<'_>,
    cfg: &PolicyConfig,
) -> (Vec<String>, Vec<(String, String)>) {
    let (c, b) = candidates(placement, s, cfg);
    (
        c.iter()
            .map(|c| match &c.action {
                Action::PercentDiscount { percent } => format!("discount_{percent}"),
                a => a.kind().to_owned(),
            })
            .collect(),
        b.iter()
            .map(|b| (b.action.to_owned(), b.guardrail.to_owned()))
            .collect(),
    )
}

fn blocked_by(blocked: &[(String, String)], guardrail: &str) -> Vec<String> {
    blocked
        .iter()
        .filter(|b| b.1 == guardrail)
        .map(|b| b.0.clone())
        .collect()
}

#[test]
fn a_healthy_cart_gets_every_incentive_under_the_cap() {
    let c = cart(10_000, Some(4_000));
    let s = Signals {
        propensity: 0.3,
        cart: Some(&c),
        ..Signals::default()
    };
    let (eligible, blocked) = kinds(Placement::Cart, &s, &PolicyConfig::default());
    assert_eq!(
        eligible,
        [
            "none",
            "free_shipping",
            "discount_5",
            "discount_10",
            "reminder"
        ]
    );
    assert_eq!(
        blocked_by(&blocked, "discount_cap"),
        ["percent_discount"],
        "15% is over the 10% cap"
    );
}

#[test]
fn the_margin_floor_removes_discounts_that_would_eat_the_margin() {
    // Margin 1,500 on 10,000: a 10% discount (1,000) leaves 500 of 9,000 paid, under 15%.
    let c = cart(10_000, Some(8_500));
    let s = Signals {
        propensity: 0.3,
        cart: Some(&c),
        ..Signals::default()
    };
    let (eligible, blocked) = kinds(Placement::Cart, &s, &PolicyConfig::default());
    assert!(
        !eligible.contains(&"discount_10".to_owned()),
        "{eligible:?}"
    );
    assert!(blocked_by(&blocked, "margin_floor").contains(&"percent_discount".to_owned()));
}

#[test]
fn without_line_costs_no_incentive_is_offered() {
    let c = cart(10_000, None);
    let s = Signals {
        propensity: 0.3,
        cart: Some(&c),
        ..Signals::default()
    };
    let (eligible, blocked) = kinds(Placement::Cart, &s, &PolicyConfig::default());
    assert_eq!(eligible, ["none", "reminder"]);
    assert_eq!(
        blocked_by(&blocked, "margin_unknown"),
        ["free_shipping", "percent_discount", "percent_discount"]
    );
}

#[test]
fn high_risk_sessions_get_no_incentive_and_are_stepped_up_at_checkout() {
    let c = cart(10_000, Some(4_000));
    let s = Signals {
        propensity: 0.3,
        cart: Some(&c),
        payment_declines: 2,
        ..Signals::default()
    };
    let cfg = PolicyConfig::default();
    let (eligible, blocked) = kinds(Placement::Checkout, &s, &cfg);
    assert_eq!(eligible, ["none", "step_up_verification"]);
    assert_eq!(blocked_by(&blocked, "risk_high").len(), 3);
    let (c, _) = candidates(Placement::Checkout, &s, &cfg);
    let chosen = choose(Arm::Treatment, &c, 0.2, 0.0, 0.0);
    assert_eq!(
        (chosen.action, chosen.propensity, chosen.explored),
        (Action::StepUpVerification, 1.0, false),
        "not explored away"
    );
}

#[test]
fn one_offer_per_session() {
    let c = cart(10_000, Some(4_000));
    let s = Signals {
        propensity: 0.3,
        cart: Some(&c),
        offers_in_session: 1,
        ..Signals::default()
    };
    let (eligible, blocked) = kinds(Placement::Cart, &s, &PolicyConfig::default());
    assert_eq!(eligible, ["none", "reminder"]);
    assert_eq!(blocked_by(&blocked, "one_offer_per_session").len(), 3);
}

#[test]
fn an_empty_cart_gets_no_incentive_and_post_purchase_only_cross_sells() {
    let s = Signals {
        propensity: 0.3,
        cross_sell: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        ..Signals::default()
    };
    let (eligible, blocked) = kinds(Placement::Cart, &s, &PolicyConfig::default());
    assert_eq!(eligible, ["none", "cross_sell"]);
    assert_eq!(blocked_by(&blocked, "empty_cart").len(), 3);
    let (c, _) = candidates(Placement::PostPurchase, &s, &PolicyConfig::default());
    assert_eq!(c.len(), 2);
    assert_eq!(
        c[1].action,
        Action::CrossSell {
            product_ids: vec!["a".into(), "b".into(), "c".into()]
        }
    );
}

#[test]
fn control_never_intervenes_and_treatment_takes_the_best_expected_value() {
    let c = cart(10_000, Some(4_000));
    let s = Signals {
        propensity: 0.3,
        cart: Some(&c),
        ..Signals::default()
    };
    let (cands, _) = candidates(Placement::Cart, &s, &PolicyConfig::default());
    let control = choose(Arm::Control, &cands, 0.5, 0.0, 0.9);
    assert_eq!((control.action, control.propensity), (Action::None, 1.0));
    let best = cands
        .iter()
        .max_by(|a, b| a.expected_value_minor.total_cmp(&b.expected_value_minor))
        .unwrap();
    let treated = choose(Arm::Treatment, &cands, 0.0, 0.5, 0.5);
    assert_eq!(treated.action, best.action);
    assert_eq!(treated.propensity, 1.0);
    // A buyer who will buy anyway: every incentive loses money, so nothing is offered.
    let s = Signals {
        propensity: 0.99,
        cart: Some(&c),
        ..Signals::default()
    };
    let (cands, _) = candidates(Placement::Cart, &s, &PolicyConfig::default());
    assert!(cands
        .iter()
        .filter(|c| c.action.is_incentive())
        .all(|c| c.expected_value_minor < 0.0));
}

#[test]
fn exploration_records_the_probability_of_what_it_served() {
    let c = cart(10_000, Some(4_000));
    let s = Signals {
        propensity: 0.3,
        cart: Some(&c),
        ..Signals::default()
    };
    let (cands, _) = candidates(Placement::Cart, &s, &PolicyConfig::default());
    let n = cands.len() as f64;
    let exploit = choose(Arm::Treatment, &cands, 0.1, 0.5, 0.0);
    assert!(!exploit.explored);
    assert!((exploit.propensity - (0.9 + 0.1 / n)).abs() < 1e-12);
    let explore_none = choose(Arm::Treatment, &cands, 0.1, 0.05, 0.0);
    assert!(explore_none.explored);
    assert_eq!(explore_none.action, Action::None);
    assert!((explore_none.propensity - 0.1 / n).abs() < 1e-12);
    // Propensities over all actions sum to one.
    let total: f64 = (0..cands.len())
        .map(|i| {
            let pick = (i as f64 + 0.5) / n;
            let explored = choose(Arm::Treatment, &cands, 0.1, 0.0, pick);
            if explored.action == exploit.action {
                exploit.propensity
            } else {
                explored.propensity
            }
        })
        .sum();
    assert!((total - 1.0).abs() < 1e-12, "{total}");
}

#[test]
fn checkout_offers_the_layout_actions_at_no_cost_and_every_distribution_sums_to_one() {
    let c = cart(10_000, Some(4_000));
    let s = Signals {
        propensity: 0.3,
        cart: Some(&c),
        ..Signals::default()
    };
    let cfg = PolicyConfig::default();
    let (eligible, _) = kinds(Placement::Checkout, &s, &cfg);
    for layout in ["simplified_form", "guest_checkout_first", "wallet_first"] {
        assert!(
            eligible.iter().any(|k| k == layout),
            "{layout} in {eligible:?}"
        );
    }
    let (c, _) = candidates(Placement::Checkout, &s, &cfg);
    for cand in &c {
        let free = !cand.action.is_incentive();
        assert_eq!(free, cand.cost_minor == 0, "{:?}", cand.action);
    }
    for (arm, epsilon) in [
        (Arm::Control, 0.3),
        (Arm::Treatment, 0.0),
        (Arm::Treatment, 0.3),
    ] {
        for draw in [0.0, 0.29, 0.31, 0.99] {
            let chosen = choose(arm, &c, epsilon, draw, 0.5);
            let sum: f64 = chosen.distribution.iter().sum();
            assert!((sum - 1.0).abs() < 1e-12, "{arm:?} ε={epsilon}: {sum}");
            let index = chosen.index.expect("candidates");
            assert_eq!(chosen.propensity, chosen.distribution[index]);
        }
    }
}
