//! `checkout-ai fraud-bench`: the offline fraud benchmark with known fraud (the handbook's simulator and
//! protocol, `checkout_train::fraud`), printed as tables, written as JSON, with the cost curve as SVG.

use crate::BoxError;
use checkout_domain::risk::friction::FrictionCosts;
use checkout_train::fraud::{run_seeds, sim::SimConfig, Bench, Protocol, Seeds, HANDBOOK_LOGISTIC};
use std::fmt::Write as _;
use std::path::Path;

/// Runs the benchmark over the worlds of `seeds` and writes `bench.json`, and for the first seed
/// `cost-curve.svg` and the served model's artifact `risk-model.json`, to `out_dir`.
pub fn run(
    seeds: std::ops::Range<u64>,
    costs: &FrictionCosts,
    margin_rate: f64,
    out_dir: &Path,
) -> Result<Seeds, BoxError> {
    costs.validate()?;
    let report = run_seeds(
        &SimConfig::default(),
        &Protocol::default(),
        costs,
        margin_rate,
        seeds,
    )?;
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(
        out_dir.join("bench.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    std::fs::write(
        out_dir.join("cost-curve.svg"),
        cost_curve_svg(&report.runs[0]),
    )?;
    std::fs::write(
        out_dir.join("risk-model.json"),
        report.runs[0].artifact.encode()?,
    )?;
    Ok(report)
}

pub fn print(r: &Seeds) {
    let first = &r.runs[0];
    let d = &first.data;
    println!(
        "seed {}: {} transactions, {} frauds ({:.2}%): {}",
        first.config.seed,
        d.transactions,
        d.frauds,
        100.0 * d.frauds as f64 / d.transactions as f64,
        d.by_scenario
            .iter()
            .map(|(s, n)| format!(
                "{} {n}",
                serde_json::to_value(s)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "protocol: train days {}–{}, delay {} days, test {} days; seed 0 train {} rows ({} frauds), test {} rows ({} frauds)\n",
        first.protocol.train_start_day,
        first.protocol.train_start_day + first.protocol.train_days - 1,
        first.protocol.delay_days,
        first.protocol.test_days,
        d.train_rows,
        d.train_frauds,
        d.test_rows,
        d.test_frauds
    );
    println!(
        "{:<46} {:>22} {:>22} {:>22}",
        "test week, over seeds (mean [min, max])",
        "ROC AUC",
        "average precision",
        "card precision@100"
    );
    let cell = |m: f64, lo: f64, hi: f64| format!("{m:.3} [{lo:.3}, {hi:.3}]");
    for m in &r.models {
        println!(
            "{:<46} {:>22} {:>22} {:>22}",
            m.name,
            cell(m.mean.auc, m.min.auc, m.max.auc),
            cell(
                m.mean.average_precision,
                m.min.average_precision,
                m.max.average_precision
            ),
            cell(
                m.mean.card_precision_100,
                m.min.card_precision_100,
                m.max.card_precision_100
            )
        );
    }
    let h = HANDBOOK_LOGISTIC;
    println!(
        "{:<46} {:>22.3} {:>22.3} {:>22.3}\n",
        "handbook's published logistic regression",
        h.auc,
        h.average_precision,
        h.card_precision_100
    );
    println!(
        "expected cost on the test week, seed {} (costs {}; margin {:.0}% of value)",
        first.config.seed,
        serde_json::to_string(&first.costs).unwrap_or_default(),
        100.0 * first.margin_rate
    );
    println!(
        "{:<62} {:>12} {:>8} {:>8} {:>8} {:>8} {:>10}  bands",
        "policy", "cost", "allow", "step-up", "review", "decline", "false dec."
    );
    for p in &first.policies {
        let bands: Vec<String> = p
            .bands
            .bands()
            .iter()
            .map(|b| format!("{}≥{}", b.friction.as_str(), b.from))
            .collect();
        let f = &p.test.by_friction;
        println!(
            "{:<62} {:>12.2} {:>8} {:>8} {:>8} {:>8} {:>9.4}%  {}",
            p.policy,
            p.test.cost_minor / 100.0,
            f[0],
            f[1],
            f[2],
            f[3],
            100.0 * p.test.false_decline_rate,
            bands.join(" ")
        );
    }
    println!(
        "\nreview queue over the test week (seed {}; deadline 7 days, escalation 1 day before, expiry approves):",
        first.config.seed
    );
    for w in [&first.review_week, &first.review_week_half_staffed] {
        println!(
        "  {:>3} decisions a day: {} opened ({} frauds), {} claimed, {} approved, {} rejected ({} frauds, {} genuine), {} escalated, {} expired",
        w.capacity_per_day,
        w.opened,
        w.frauds,
        w.claimed,
        w.approved,
        w.rejected,
        w.frauds_rejected,
        w.genuine_rejected,
        w.escalated,
        w.expired
    );
    }
    let [m, lo, hi] = r.banded_over_block;
    let [mo, loo, hio] = r.banded_over_block_oracle;
    println!(
        "\nbanded / best single block threshold over {} seeds: {m:.3} [{lo:.3}, {hi:.3}] (fitted on the training week); {mo:.3} [{loo:.3}, {hio:.3}] (threshold best on the test week in hindsight)",
        r.runs.len()
    );
}

/// The single block threshold's cost against its threshold (log scale: the costs move where the scores
/// are, below 30), with no gating and the fitted bands as lines: the trade-off a merchant sets its
/// thresholds on.
pub fn cost_curve_svg(b: &Bench) -> String {
    let (w, h, left, bottom, top, right) = (760.0, 420.0, 80.0, 50.0, 40.0, 20.0);
    let (x_min, x_max) = (0.1f64, 100.0f64);
    let cost = |name: &str| {
        b.policies
            .iter()
            .find(|p| p.policy.starts_with(name))
            .map_or(0.0, |p| p.test.cost_minor / 100.0)
    };
    let (none, block, banded) = (
        cost("no gating"),
        cost("best single block threshold (fitted"),
        cost("friction bands"),
    );
    // Declining nearly everyone costs far more than no gating: cut the axis at 1.6 times that.
    let y_max = none * 1.6;
    let px = |x: f64| {
        let t = (x.clamp(x_min, x_max).ln() - x_min.ln()) / (x_max.ln() - x_min.ln());
        left + t * (w - left - right)
    };
    let py = |y: f64| top + (1.0 - y.min(y_max) / y_max) * (h - top - bottom);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="22" font-size="14" font-weight="bold">Cost of the test week against the block threshold (simulated world, seed {seed})</text>
"##,
        seed = b.config.seed
    );
    for i in 0..=4 {
        let y = y_max * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{y1:.1}" y2="{y1:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{label:.0}</text>"##,
            x2 = w - right,
            y1 = py(y),
            tx = left - 6.0,
            ty = py(y) + 4.0,
            label = y
        );
    }
    for x in [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0] {
        let _ = writeln!(
            s,
            r##"<line x1="{tx:.1}" x2="{tx:.1}" y1="{top}" y2="{yb}" stroke="#eee"/><text x="{tx:.1}" y="{ty}" text-anchor="middle">{x}</text>"##,
            tx = px(x),
            yb = h - bottom,
            ty = h - bottom + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{cx}" y="{cy}" text-anchor="middle">block threshold: decline from this risk score (0–100, log scale)</text>"##,
        cx = (left + w - right) / 2.0,
        cy = h - 10.0
    );
    let points: Vec<String> = b
        .block_curve
        .iter()
        .filter(|p| p.0 <= x_max)
        .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1 / 100.0)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    );
    for (value, colour, label, dy) in [
        (none, "#d62728", "no gating", -6.0),
        (block, "#1f77b4", "best block threshold", -6.0),
        (
            banded,
            "#2ca02c",
            "friction bands (allow / step-up / review / decline)",
            16.0,
        ),
    ] {
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="{colour}" stroke-dasharray="6 4" stroke-width="1.5"/><text x="{tx}" y="{ty:.1}" fill="{colour}" text-anchor="end">{label}: {value:.0}</text>"##,
            x2 = w - right,
            y = py(value),
            tx = w - right - 4.0,
            ty = py(value) + dy
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{tx}" y="{ty}" fill="#1f77b4">single block threshold (allow below, decline from)</text>"##,
        tx = left + 10.0,
        ty = top + 16.0
    );
    let _ = writeln!(s, "</svg>");
    s
}
