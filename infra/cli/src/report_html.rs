//! The learning loop's HTML pages: off-policy evaluation tables with interval plots, and the simulator's
//! margin and regret curves. Same stylesheet as the experiment reports; inline SVG, no scripts.

use checkout_domain::ope::Evaluation;
use checkout_domain::stats::html::{escape, STYLE};
use std::fmt::Write as _;

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    )
}

/// A page of evaluations: per section the diagnostics, a table of estimates, and their intervals on one
/// axis (with a dashed line at `truth` when it is known).
pub fn ope_page(
    title: &str,
    note: &str,
    sections: &[(String, &Evaluation, usize)],
    truth: Option<f64>,
) -> String {
    let mut h = head(title);
    let _ = writeln!(h, "<p class=\"muted\">{}</p>", escape(note));
    for (name, e, skipped) in sections {
        let d = &e.diagnostics;
        let _ = writeln!(
            h,
            "<h2>{}</h2>\n<p class=\"muted\">{} rows ({} skipped) · effective sample size {:.1} · largest weight {:.1} · \
             unsupported {:.1}% · {} {} bootstrap resamples, seed {}</p>",
            escape(name),
            d.rows,
            skipped,
            d.effective_sample_size,
            d.max_weight,
            100.0 * d.unsupported_share,
            e.settings.resamples,
            escape(&e.bootstrap),
            e.settings.seed
        );
        h.push_str("<table><tr><th>estimator</th><th></th><th>estimate</th><th>lower 95%</th><th>upper 95%</th></tr>\n");
        for x in &e.estimates {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td></td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                escape(&x.estimator),
                x.value,
                x.lower,
                x.upper
            );
        }
        h.push_str("</table>\n");
        h.push_str(&intervals(e, truth));
    }
    h.push_str("</body></html>\n");
    h
}

/// The estimates as points with interval whiskers on a shared axis.
fn intervals(e: &Evaluation, truth: Option<f64>) -> String {
    let finite: Vec<f64> = e
        .estimates
        .iter()
        .flat_map(|x| [x.lower, x.upper, x.value])
        .chain(truth)
        .filter(|v| v.is_finite())
        .collect();
    let (Some(lo), Some(hi)) = (
        finite.iter().cloned().reduce(f64::min),
        finite.iter().cloned().reduce(f64::max),
    ) else {
        return String::new();
    };
    let pad = ((hi - lo) * 0.08).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let (left, width, row) = (110.0, 560.0, 26.0);
    let x = |v: f64| left + (v - lo) / (hi - lo) * width;
    let height = row * e.estimates.len() as f64 + 30.0;
    let mut s = format!(
        "<svg viewBox=\"0 0 {} {height}\" width=\"100%\" role=\"img\" aria-label=\"estimates with 95% intervals\">",
        left + width + 20.0
    );
    for (i, est) in e.estimates.iter().enumerate() {
        let y = 15.0 + row * i as f64;
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y + 4.0,
            escape(&est.estimator)
        );
        if est.lower.is_finite() && est.upper.is_finite() {
            let _ = write!(
                s,
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#1e3a8a\" stroke-width=\"2\"/>",
                x(est.lower),
                x(est.upper)
            );
        }
        if est.value.is_finite() {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#1e3a8a\"/>",
                x(est.value)
            );
        }
    }
    let base = height - 12.0;
    if let Some(t) = truth.filter(|t| t.is_finite()) {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"4\" y2=\"{1:.1}\" stroke=\"#b91c1c\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\" fill=\"#b91c1c\">truth {t:.4}</text>",
            x(t),
            base - 6.0,
            base + 10.0
        );
    }
    for v in [lo + pad, hi - pad] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"muted\">{v:.4}</text>",
            x(v),
            base + 10.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A line chart with a legend, axis labels and round ticks on both axes.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series<'_>]) -> String {
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    let fold = |f: fn(f64, f64) -> f64, pick: fn(&(f64, f64)) -> f64| {
        all.iter().map(pick).filter(|v| v.is_finite()).reduce(f)
    };
    let (Some(x0), Some(x1), Some(y0), Some(y1)) = (
        fold(f64::min, |p| p.0),
        fold(f64::max, |p| p.0),
        fold(f64::min, |p| p.1),
        fold(f64::max, |p| p.1),
    ) else {
        return String::new();
    };
    let (xs, ys) = (ticks(x0.min(0.0), x1), ticks(y0.min(0.0), y1));
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    let (y0, y1) = (ys[0], ys[ys.len() - 1]);
    let (left, top, w, hgt) = (70.0, 20.0, 560.0, 240.0);
    let sx = |v: f64| left + (v - x0) / (x1 - x0).max(1e-9) * w;
    let sy = |v: f64| top + hgt - (v - y0) / (y1 - y0).max(1e-9) * hgt;
    let mut s = format!(
        "<h2>{}</h2>\n<svg viewBox=\"0 0 {} {}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        escape(title),
        left + w + 160.0,
        top + hgt + 45.0,
        escape(title)
    );
    for vy in &ys {
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#eceff4\"/>\
             <text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            left + w,
            sy(*vy),
            left - 6.0,
            sy(*vy) + 4.0,
            round_label(*vy),
        );
    }
    for vx in &xs {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            sx(*vx),
            top + hgt + 16.0,
            round_label(*vx)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
        left + w / 2.0,
        top + hgt + 38.0,
        escape(x_label),
        top + hgt / 2.0,
        top + hgt / 2.0,
        escape(y_label)
    );
    for (i, line) in series.iter().enumerate() {
        let path: Vec<String> = line
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{c}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            path.join(" "),
            left + w + 14.0,
            top + 10.0 + 18.0 * i as f64,
            left + w + 30.0,
            top + 14.0 + 18.0 * i as f64,
            escape(line.name),
            c = line.color
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering `[lo, hi]`, about five of them.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let first = (lo / step).floor() * step;
    let mut out = vec![first];
    while out[out.len() - 1] < hi - 1e-9 * span {
        out.push(out[out.len() - 1] + step);
    }
    out
}

/// A tick label: thousands as `k`, small numbers with a sensible number of decimals.
fn round_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1_000_000.0 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 10_000.0 {
        format!("{}k", trim(v / 1e3))
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A number without trailing zeros (`2.5`, `20`).
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub fn page(title: &str, body: &str) -> String {
    format!("{}{body}</body></html>\n", head(title))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 50_000.0),
            [0.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0, 50_000.0]
        );
        assert_eq!(ticks(0.0, 78.2), [0.0, 20.0, 40.0, 60.0, 80.0]);
        assert_eq!(*ticks(0.0, 120_000.0).last().unwrap(), 125_000.0);
        assert_eq!(round_label(80.0), "80");
        let t = ticks(0.0, 31_767_000.0);
        assert_eq!(
            (t[0], t[1], *t.last().unwrap()),
            (0.0, 10_000_000.0, 40_000_000.0)
        );
        assert_eq!(round_label(40_000_000.0), "40M");
        assert_eq!(round_label(2_500_000.0), "2.5M");
    }
}
