//! The report as one self-contained HTML page: inline CSS and SVG, no scripts, no network. Every string
//! that came from data or configuration is escaped.

use super::analysis::{effect_text, Settings, Test};
use super::breakdown::{Breakdown, Lasting};
use super::correction::Correction;
use super::frequentist::Difference;
use super::report::{Action, Comparison, Direction, MetricResult, Report, Status};
use crate::experiment::impact::ImpactReport;
use std::fmt::Write;

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn number(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:.2e}")
    } else {
        format!("{x:.4}")
    }
}

/// The stylesheet every HTML report shares.
pub const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2330}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde1e8;padding-bottom:.2rem}
.muted{color:#5c6577}.banner{padding:.8rem 1rem;border-radius:6px;margin:1rem 0;font-weight:600}
.ok{background:#e7f6ec;color:#14532d}.warning{background:#fff5dc;color:#6b4e00}.failed{background:#fde8e8;color:#7f1d1d}
.ship{background:#e7f6ec;color:#14532d}.keep_running{background:#eef2fb;color:#1e3a8a}.stop{background:#fde8e8;color:#7f1d1d}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:right;padding:.3rem .5rem;border-bottom:1px solid #eceff4}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}th{font-weight:600;background:#f6f7fa}
.better{color:#15803d;font-weight:600}.worse{color:#b91c1c;font-weight:600}ul{padding-left:1.2rem}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
.cohorts{table-layout:fixed}.cohorts th,.cohorts td{font-size:.8rem;overflow-wrap:anywhere}";

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.2}%", x * 100.0)
    } else {
        "–".into()
    }
}

/// A breakdown's tables: per dimension, each cohort's units and each metric's lift with its interval
/// (the first treatment arm's, and every arm's for more than two), then the heterogeneity tests.
fn breakdown_tables(h: &mut String, b: &Breakdown, metrics: &[MetricResult], s: &Settings) {
    for d in &b.dimensions {
        let _ = write!(
            h,
            "<h3>{}</h3>\n<table class=\"cohorts\"><tr><th>Cohort</th><th>Variant</th><th>Units</th>",
            escape(&d.name)
        );
        for m in metrics {
            let _ = write!(h, "<th>{}</th>", escape(&m.name));
        }
        h.push_str("</tr>");
        for c in &d.cohorts {
            let units: Vec<String> = c.units.iter().map(u64::to_string).collect();
            if c.too_small {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td></td><td>{}</td><td colspan=\"{}\" class=\"muted\" style=\"text-align:left\">too small (under {} units in an arm)</td></tr>",
                    escape(&c.value),
                    units.join(" / "),
                    metrics.len(),
                    b.min_units_per_arm
                );
                continue;
            }
            let variants: Vec<&str> = c
                .metrics
                .first()
                .map(|m| m.comparisons.iter().map(|x| x.variant.as_str()).collect())
                .unwrap_or_default();
            for (i, v) in variants.iter().enumerate() {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td>",
                    escape(&c.value),
                    escape(v),
                    units.join(" / ")
                );
                for m in &c.metrics {
                    match m.comparisons.get(i) {
                        Some(x) if x.error.is_none() => {
                            let class = match x.direction {
                                Direction::Better => "better",
                                Direction::Worse => "worse",
                                Direction::Inconclusive => "",
                            };
                            let _ = write!(
                                h,
                                "<td class=\"{class}\">{} [{}, {}]<br><span class=\"muted\">adj. p {}</span></td>",
                                effect_text(x.effect, s.difference),
                                effect_text(x.ci[0], s.difference),
                                effect_text(x.ci[1], s.difference),
                                number(x.adjusted_p_value)
                            );
                        }
                        Some(x) => {
                            let _ = write!(
                                h,
                                "<td class=\"muted\">{}</td>",
                                escape(x.error.as_deref().unwrap_or_default())
                            );
                        }
                        None => h.push_str("<td></td>"),
                    }
                }
                h.push_str("</tr>");
            }
        }
        h.push_str("</table>\n<ul>");
        for t in &d.heterogeneity {
            let _ = write!(
                h,
                "<li class=\"{}\">Heterogeneity of {} ({}) across {} cohorts: Q = {:.2}, df = {}, p = {}, adjusted p = {}{}</li>",
                if t.flagged.is_empty() { "" } else { "worse" },
                escape(&t.metric),
                escape(&t.variant),
                t.cohorts,
                t.q,
                t.df,
                number(t.p_value),
                number(t.adjusted_p_value),
                if t.flagged.is_empty() {
                    String::new()
                } else {
                    format!(
                        ". FLAGGED, effect opposite to the overall one with a significant interaction: {}",
                        escape(&t.flagged.join(", "))
                    )
                }
            );
        }
        h.push_str("</ul>\n");
    }
    let _ = writeln!(
        h,
        "<p class=\"muted\">Corrected: {}. Cohorts come from each unit's first exposure.</p>",
        escape(&b.correction)
    );
}

/// Lift by cohort, the time effects and the long run, where the report has them.
fn breakdowns(h: &mut String, report: &Report) {
    let s = &report.settings;
    if let Some(b) = &report.cohorts {
        h.push_str("<h2>Lift by cohort</h2>\n");
        breakdown_tables(h, b, &report.metrics, s);
    }
    if let Some(t) = &report.time {
        let _ = write!(
            h,
            "<h2>Time</h2>\n<p>Started {}; {:.1} days covered.</p>",
            t.start.to_rfc3339(),
            t.days_covered
        );
        if let Some(w) = &t.warning {
            let _ = write!(h, "<div class=\"banner warning\">{}</div>", escape(w));
        }
        if let Some(n) = &t.novelty {
            let _ = write!(
                h,
                "<p><b>Novelty ({}):</b> {}</p>",
                escape(&n.metric),
                escape(&n.summary)
            );
        }
        h.push_str("<p class=\"muted\">By day of first exposure (UTC), then by weekday.</p>");
        breakdown_tables(h, &t.series, &report.metrics, s);
    }
    if let Some(l) = &report.long_run {
        let _ = write!(
            h,
            "<h2>Long run</h2>\n<div class=\"banner {}\">{}</div><p class=\"muted\">Stopped {}; tail of {} days{}.</p>",
            match l.verdict {
                Lasting::Held => "ok",
                Lasting::Reversed => "failed",
                Lasting::Faded | Lasting::TooEarly => "warning",
            },
            escape(&l.summary),
            l.stopped_at.to_rfc3339(),
            l.tail_days,
            if l.tail_complete { ", complete" } else { ", still running" }
        );
        for m in &l.metrics {
            metric_table(h, m, s);
        }
    }
}

/// A page's head, its title as the heading, and an open muted paragraph for the subtitle.
fn page_head(title: &str) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n<p class=\"muted\">",
        escape(title),
        escape(title)
    );
    h
}

/// Renders the system impact report.
pub fn render_impact(r: &ImpactReport) -> String {
    let mut h = page_head(&format!("System impact: {}", r.holdout.id));
    let _ = write!(
        h,
        "Everyone checkout-ai serves against the universal holdout ({:.1}% of users, never treated), units first \
         seen before {}. Generated {}. Report format {} v{}.</p>",
        r.holdout.share * 100.0,
        r.window.end.to_rfc3339(),
        r.generated_at.to_rfc3339(),
        r.format,
        r.version
    );
    let _ = write!(
        h,
        "<div class=\"banner {}\">{}</div>\n<ul>",
        if r.holdout.reshuffled.is_some() {
            "failed"
        } else if r.too_early {
            "warning"
        } else {
            "keep_running"
        },
        escape(&r.summary)
    );
    for reason in &r.reasons {
        let _ = write!(h, "<li>{}</li>", escape(reason));
    }
    let _ = write!(
        h,
        "</ul>\n<h2>Holdout</h2>\n<table><tr><th>Arm</th><th>Units</th><th>Share</th></tr>\
         <tr><td>holdout</td><td>{}</td><td>{:.1}%</td></tr><tr><td>served</td><td>{}</td><td>{:.1}%</td></tr></table>",
        r.holdout.holdout_units,
        r.holdout.share * 100.0,
        r.holdout.served_units,
        (1.0 - r.holdout.share) * 100.0
    );
    for (name, reading) in [
        ("Since the holdout began", &r.since_start),
        (
            &*format!("Rolling {} days", r.settings.rolling_days),
            &r.rolling,
        ),
    ] {
        let rep = &reading.report;
        let _ = write!(
            h,
            "<h2>{}</h2>\n<p class=\"muted\">Units first seen from {}: {} held out, {} served.</p>\
             <table><tr><th>Metric</th><th>Effect</th><th>Detectable now (MDE, {:.0}% power)</th></tr>",
            escape(name),
            reading.from.map_or("the first decision".to_string(), |t| t.to_rfc3339()),
            rep.arms.first().map_or(0, |a| a.units),
            rep.arms.get(1).map_or(0, |a| a.units),
            r.settings.power * 100.0
        );
        for p in &reading.power {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.metric),
                p.effect.map_or("–".into(), pct),
                p.mde.map_or("not computable yet".into(), |m| format!(
                    "±{:.1}%",
                    m * 100.0
                ))
            );
        }
        h.push_str("</table>\n");
        for m in &rep.metrics {
            metric_table(&mut h, m, &rep.settings);
        }
        if let Some(b) = &rep.cohorts {
            let _ = writeln!(h, "<h3>Lift by cohort ({})</h3>", escape(name));
            breakdown_tables(&mut h, b, &rep.metrics, &rep.settings);
        }
    }
    h.push_str(
        "<h2>Method</h2>\n<p>The unit is the pseudonymous user; the holdout is assigned by GrowthBook's hash in its own \
         namespace and gets the control decision everywhere (no incentive, no layout action, no recovery message). \
         Sequential confidence sequences (valid however often this page is read), CUPED on the 30 days before the first \
         decision where a covariate exists, Holm-corrected across metrics, and separately across cohorts. The minimum \
         detectable effect is the interval's half-width plus z(power) standard errors.</p>\n</body></html>\n",
    );
    h
}

/// Renders the report.
pub fn render(report: &Report) -> String {
    let mut h = page_head(&format!("Experiment report: {}", report.experiment.id));
    if let Some(w) = &report.window {
        let _ = write!(h, "Units first exposed before {}. ", w.end.to_rfc3339());
    }
    let _ = writeln!(
        h,
        "Generated {} from {}. Report format {} v{}.</p>",
        report.generated_at.to_rfc3339(),
        escape(&report.data.source),
        report.format,
        report.version
    );

    // Recommendation and SRM first: what to do, and whether to trust it.
    let action = match report.recommendation.action {
        Action::Ship => "ship",
        Action::KeepRunning => "keep_running",
        Action::Stop => "stop",
    };
    let _ = write!(
        h,
        "<div class=\"banner {action}\">{}</div>\n<ul>",
        escape(&report.recommendation.summary)
    );
    for r in &report.recommendation.reasons {
        let _ = write!(h, "<li>{}</li>", escape(r));
    }
    h.push_str("</ul>\n");
    let srm = &report.srm;
    let _ = writeln!(
        h,
        "<div class=\"banner {}\">{}</div>",
        if srm.alarm { "failed" } else { "ok" },
        if srm.alarm {
            format!(
                "SAMPLE RATIO MISMATCH (p = {:.2e}): the split does not match the weights. Do not act on these results.",
                srm.p_value
            )
        } else {
            format!(
                "Traffic split as configured: no sample ratio mismatch (p = {:.4}).",
                srm.p_value
            )
        }
    );

    h.push_str("<h2>Health checks</h2>\n<table><tr><th>Check</th><th>Status</th><th style=\"text-align:left\">Detail</th></tr>");
    for c in &report.health {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "failed",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td><span class=\"{status}\">{status}</span></td><td style=\"text-align:left\">{}</td></tr>",
            c.name,
            escape(&c.message)
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Sample sizes</h2>\n<table><tr><th>Variant</th><th>Role</th><th>Weight</th><th>Units</th><th>Expected</th></tr>");
    for (i, a) in report.arms.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{:.0}</td></tr>",
            escape(&a.variant),
            if i == 0 { "control" } else { "treatment" },
            a.weight,
            a.units,
            a.expected_units
        );
    }
    h.push_str("</table>\n");

    let difference = report.settings.difference;
    h.push_str("<h2>Lift by metric</h2>\n");
    h.push_str(&chart(&report.metrics, difference));
    h.push_str("<h2>Results</h2>\n");
    for m in &report.metrics {
        metric_table(&mut h, m, &report.settings);
    }
    breakdowns(&mut h, report);

    let d = &report.data;
    let _ = write!(
        h,
        "<h2>Data</h2>\n<p>{} rows read, {} units found, {} repeated rows combined into their unit, {} rows unusable.</p><ul>",
        d.rows,
        d.units,
        d.repeated_rows,
        d.bad_row_count()
    );
    for (reason, n) in &d.bad_rows {
        let _ = write!(h, "<li>bad rows, {}: {n}</li>", escape(reason));
    }
    for (reason, n) in &d.excluded_units {
        let _ = write!(h, "<li>units excluded, {}: {n}</li>", escape(reason));
    }
    for (reason, n) in &d.flagged_units {
        let _ = write!(
            h,
            "<li>units kept but flagged, {}: {n}</li>",
            escape(reason)
        );
    }
    for b in &d.bad_row_examples {
        let _ = write!(
            h,
            "<li class=\"muted\">line {}: {}</li>",
            b.line,
            escape(&b.reason)
        );
    }
    h.push_str("</ul>\n");

    let s = &report.settings;
    let test = match s.test {
        Test::TwoSided => "a fixed-horizon two-sided Welch t-test (valid when read once, at the planned sample size)".to_string(),
        Test::Sequential => format!(
            "sequential confidence sequences (tuning {}; valid however often the report is read)",
            s.sequential_tuning
        ),
    };
    let correction = match s.correction {
        Correction::None => "no multiple-comparison correction",
        Correction::Holm => "Holm-Bonferroni adjusted p-values (family-wise error) across every arm and metric",
        Correction::BenjaminiHochberg => "Benjamini-Hochberg adjusted p-values (false discovery rate) across every arm and metric",
    };
    let _ = write!(
        h,
        "<h2>Method</h2>\n<p>The unit is the user. Each variant is compared with control by {test}, on the {} effect, \
         at alpha = {}, with {correction}. A result is significant when its adjusted p-value is below alpha; intervals are \
         not widened for the correction. Ratio metrics use the delta method; metrics with a covariate are \
         regression-adjusted (CUPED) with a coefficient pooled over both arms. Sample ratio mismatch is a chi-square \
         test against the configured weights, alarming at p &lt; 0.001 once every arm has 8 units. No decision is \
         recommended below {} units per arm. {}The statistics reproduce GrowthBook's gbstats 0.8.0.</p>\n</body></html>\n",
        match difference {
            Difference::Relative => "relative",
            Difference::Absolute => "absolute",
        },
        s.alpha,
        s.min_sample_per_arm,
        if s.bayesian {
            "Bayesian chance to win and risk (expected loss) use a normal approximation of the effect. "
        } else {
            ""
        }
    );
    h
}

fn metric_table(h: &mut String, m: &MetricResult, s: &Settings) {
    let _ = write!(
        h,
        "<h3>{} <span class=\"muted\">({:?}, {:?}{}{})</span></h3>\n<p class=\"muted\">{}</p>",
        escape(&m.name),
        m.kind,
        m.role,
        if m.inverse { ", lower is better" } else { "" },
        m.covariate
            .as_ref()
            .map(|c| format!(", CUPED on {}", escape(c)))
            .unwrap_or_default(),
        escape(&m.source)
    );
    h.push_str("<table><tr><th>Variant</th><th>Result</th><th>n</th><th>Mean</th><th>Lift</th><th>CI</th><th>p</th><th>Adjusted p</th>");
    if s.bayesian {
        h.push_str("<th>Chance to win</th><th>Risk (variant)</th>");
    }
    h.push_str("</tr>");
    for (i, a) in m.arms.iter().enumerate() {
        let c: Option<&Comparison> = m.comparisons.iter().find(|c| c.variant == a.variant);
        let (class, label) = match c.map(|c| c.direction) {
            None => ("", if i == 0 { "control" } else { "" }),
            Some(Direction::Better) => ("better", "better"),
            Some(Direction::Worse) => ("worse", "worse"),
            Some(Direction::Inconclusive) => ("", "inconclusive"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{class}\">{label}</td><td>{}</td><td>{}</td>",
            escape(&a.variant),
            a.n,
            number(a.mean)
        );
        match c {
            Some(c) if c.error.is_some() => {
                let _ = write!(
                    h,
                    "<td colspan=\"{}\">{}</td>",
                    if s.bayesian { 6 } else { 4 },
                    escape(c.error.as_deref().unwrap_or_default())
                );
            }
            Some(c) => {
                let _ = write!(
                    h,
                    "<td>{}</td><td>[{}, {}]</td><td>{}</td><td>{}</td>",
                    effect_text(c.effect, s.difference),
                    effect_text(c.ci[0], s.difference),
                    effect_text(c.ci[1], s.difference),
                    number(c.p_value),
                    number(c.adjusted_p_value)
                );
                if let Some(b) = &c.bayesian {
                    let _ = write!(
                        h,
                        "<td>{:.1}%</td><td>{}</td>",
                        b.chance_to_win * 100.0,
                        number(b.risk_variant)
                    );
                }
            }
            None => {
                let _ = write!(
                    h,
                    "<td colspan=\"{}\"></td>",
                    if s.bayesian { 6 } else { 4 }
                );
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>\n");
}

/// A round step for an axis that spans ±`extent`: 1, 2 or 5 × 10^k, so that the axis has two or three
/// ticks a side, each a round number.
fn tick_step(extent: f64) -> f64 {
    let target = extent / 3.0;
    let magnitude = 10f64.powf(target.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= target)
        .unwrap_or(10.0 * magnitude)
}

/// A tick's label with as many decimals as the step needs: `-20%`, `+2.5%`, `+0.05`.
fn tick_text(value: f64, step: f64, difference: Difference) -> String {
    let (value, step, unit) = match difference {
        Difference::Relative => (value * 100.0, step * 100.0, "%"),
        Difference::Absolute => (value, step, ""),
    };
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    // Ticks are whole multiples of the step: round away the float noise, and print 0 without a sign.
    let value = (value / step).round() * step;
    if value == 0.0 {
        return format!("0{unit}");
    }
    format!("{value:+.decimals$}{unit}")
}

/// A forest plot: one row per metric and treatment arm, its effect and interval on a shared axis
/// around zero.
fn chart(metrics: &[MetricResult], difference: Difference) -> String {
    let rows: Vec<(&MetricResult, &Comparison)> = metrics
        .iter()
        .flat_map(|m| m.comparisons.iter().map(move |c| (m, c)))
        .collect();
    let extent = rows
        .iter()
        .filter(|(_, c)| c.error.is_none())
        .flat_map(|(_, c)| [c.ci[0].abs(), c.ci[1].abs(), c.effect.abs()])
        .filter(|x| x.is_finite())
        .fold(0.0_f64, f64::max);
    let step = tick_step(if extent > 0.0 { extent * 1.05 } else { 0.01 });
    // The axis ends on a tick: ±(a whole number of round steps).
    let ticks_a_side = ((extent * 1.05) / step).ceil().max(1.0);
    let extent = ticks_a_side * step;
    let (label_w, plot_w, row_h, top) = (260.0, 440.0, 28.0, 24.0);
    // Room on the right for half of the last tick's label.
    let width = label_w + plot_w + 36.0;
    let height = top + row_h * rows.len() as f64 + 30.0;
    let x = |v: f64| label_w + (v.clamp(-extent, extent) + extent) / (2.0 * extent) * plot_w;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"100%\" viewBox=\"0 0 {width} {height}\" \
         aria-label=\"Effect and interval per metric and variant\">"
    );
    let n = ticks_a_side as i64;
    for i in -n..=n {
        let tick = i as f64;
        let v = tick * step;
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2:.1}\" stroke=\"{3}\" stroke-width=\"1\"/>\
             <text x=\"{0:.1}\" y=\"{4:.1}\" text-anchor=\"middle\">{5}</text>",
            x(v),
            top - 6.0,
            height - 26.0,
            if tick == 0.0 { "#5c6577" } else { "#e3e6ec" },
            height - 10.0,
            escape(&tick_text(v, step, difference))
        );
    }
    for (i, (m, c)) in rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.1}\">{} · {}</text>",
            y + 4.0,
            escape(&m.name),
            escape(&c.variant)
        );
        if c.error.is_some() || !c.effect.is_finite() {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#5c6577\">not computable</text>",
                x(0.0),
                y + 4.0
            );
            continue;
        }
        let colour = match c.direction {
            Direction::Better => "#15803d",
            Direction::Worse => "#b91c1c",
            Direction::Inconclusive => "#475569",
        };
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"{colour}\"><title>{} {}: {} [{}, {}]</title></circle>",
            x(c.ci[0]),
            x(c.ci[1]),
            x(c.effect),
            escape(&m.name),
            escape(&c.variant),
            escape(&effect_text(c.effect, difference)),
            escape(&effect_text(c.ci[0], difference)),
            escape(&effect_text(c.ci[1], difference)),
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::analysis::*;
    use super::super::report::DataSummary;
    use super::super::tally::{Design, MetricDef, MetricKind, Role, Tally};
    use super::*;
    use chrono::DateTime;

    fn hostile_report() -> Report {
        let name = "<script>alert('x')</script>&\"";
        let mut t = Tally::new(Design {
            experiment_id: name.into(),
            variants: vec!["control".into(), name.into()],
            weights: vec![0.5, 0.5],
            metrics: vec![MetricDef {
                name: name.into(),
                kind: MetricKind::Proportion,
                role: Role::Goal,
                inverse: false,
                covariate: Some(name.into()),
                source: name.into(),
            }],
        });
        for arm in 0..2 {
            for i in 0..400 {
                t.unit(arm);
                t.observe(
                    0,
                    arm,
                    f64::from(u8::from(i % (7 + arm) == 0)),
                    (i % 3) as f64,
                );
            }
        }
        let mut data = DataSummary {
            source: name.into(),
            ..DataSummary::default()
        };
        data.bad_row(3, name);
        let settings = Settings {
            bayesian: true,
            ..Settings::default()
        };
        analyse(&t, &settings, data, None, DateTime::UNIX_EPOCH)
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_every_name() {
        let page = render(&hostile_report());
        assert!(!page.contains("<script"), "unescaped input in the page");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
        let outside_svg_namespace = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for remote in ["http://", "https://", "src=", "<link", "@import"] {
            assert!(
                !outside_svg_namespace.contains(remote),
                "{remote} in the page"
            );
        }
        assert!(page.contains("<svg") && page.contains("<circle"));
        assert!(page.contains("Traffic split as configured"));
        assert!(page.contains("Chance to win"));
    }

    #[test]
    fn the_axis_has_round_ticks() {
        let relative = Difference::Relative;
        // The case: an interval of [-199.57%, +99.79%] used to label the axis with fractions of it.
        let step = tick_step(1.9957 * 1.05);
        assert_eq!(step, 1.0);
        let labels: Vec<String> = (-3..=3)
            .map(|i| tick_text(f64::from(i) * step, step, relative))
            .collect();
        assert_eq!(
            labels,
            ["-300%", "-200%", "-100%", "0%", "+100%", "+200%", "+300%"]
        );
        assert_eq!(tick_step(0.034 * 1.05), 0.02);
        assert_eq!(tick_text(0.02 * 2.0, 0.02, relative), "+4%");
        assert_eq!(tick_step(0.0123), 0.005);
        assert_eq!(tick_text(-0.005 * 3.0, 0.005, relative), "-1.5%");
        assert_eq!(tick_text(0.05, 0.05, Difference::Absolute), "+0.05");
        assert_eq!(tick_text(-4.0, 2.0, Difference::Absolute), "-4");
        // Every step gives two or three ticks a side, whatever the extent.
        for e in [1e-6, 0.0007, 0.01, 0.33, 1.0, 2.5, 9.99, 120.0] {
            let a_side = (e / tick_step(e)).ceil();
            assert!((1.0..=3.0).contains(&a_side), "{e}: {a_side}");
        }
        // And the page uses them: symmetric, evenly spaced, round labels around 0.
        let page = render(&hostile_report());
        let labels: Vec<&str> = page
            .split("text-anchor=\"middle\">")
            .skip(1)
            .filter_map(|rest| rest.split('<').next())
            .filter(|l| *l != "not computable")
            .collect();
        assert!(labels.len() >= 5 && labels.len() % 2 == 1, "{labels:?}");
        assert_eq!(labels[labels.len() / 2], "0%", "{labels:?}");
        let values: Vec<f64> = labels
            .iter()
            .map(|l| l.trim_end_matches('%').parse().expect("a number"))
            .collect();
        let step = values[1] - values[0];
        for (i, v) in values.iter().enumerate() {
            let expected = values[0] + step * i as f64;
            assert!((v - expected).abs() < 1e-9, "{labels:?}");
        }
        assert!(
            labels
                .iter()
                .all(|l| l.split('.').nth(1).is_none_or(|d| d.len() <= 2)),
            "{labels:?}"
        );
    }

    #[test]
    fn an_srm_alarm_is_a_banner() {
        let mut r = hostile_report();
        r.srm.alarm = true;
        r.srm.p_value = 1e-9;
        let page = render(&r);
        assert!(
            page.contains("SAMPLE RATIO MISMATCH (p = 1.00e-9)"),
            "{page}"
        );
    }
}
