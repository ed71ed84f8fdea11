//! `checkout-ai evaluate`: an experiment from a CSV export, in one streaming pass.
//!
//! How a messy export is read (docs/experiments.md, "Offline", documents the same rules):
//! - **Bad rows** (wrong field count, a missing or unparseable unit, variant or value, a proportion value
//!   other than 0 or 1, a variant not in `--weights`) are dropped, counted by reason, and the first few
//!   are listed with their line numbers. They never stop the run.
//! - **Repeated rows for a unit** are combined into one unit: a proportion column is 1 when any row is 1;
//!   mean, ratio numerator and denominator columns are summed (rows are events, such as orders); the
//!   covariate takes its largest value (a pre-exposure value is a property of the unit).
//! - **Units in more than one variant** are excluded from every metric and counted.
//!
//! Memory: rows are never stored. One small record per distinct unit is kept (its arm and its combined
//! values), because de-duplication and the multi-variant check need it; then the units are folded into
//! per-arm moments, bounded by arms × metrics.

use crate::BoxError;
use checkout_domain::stats::analysis::{analyse, Settings};
use checkout_domain::stats::html;
use checkout_domain::stats::report::{DataSummary, Report};
use checkout_domain::stats::tally::{Design, MetricDef, MetricKind, Role, Tally};
use std::io::Read;
use std::path::Path;

/// At most this many distinct variants (a wrong `--variant` column would otherwise make one per row).
pub const MAX_VARIANTS: usize = 64;

/// `--metric NAME:COL:proportion|mean`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricArg {
    pub name: String,
    pub column: String,
    pub kind: MetricKind,
}

impl std::str::FromStr for MetricArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let [name, column, kind] = parts[..] else {
            return Err(format!("expected NAME:COLUMN:proportion|mean, got {s:?}"));
        };
        let kind = match kind {
            "proportion" => MetricKind::Proportion,
            "mean" => MetricKind::Mean,
            other => {
                return Err(format!(
                    "unknown metric type {other:?} (proportion or mean)"
                ))
            }
        };
        if name.is_empty() || column.is_empty() {
            return Err(format!("empty metric name or column in {s:?}"));
        }
        Ok(Self {
            name: name.into(),
            column: column.into(),
            kind,
        })
    }
}

/// `--ratio NAME:NUMCOL:DENCOL`.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioArg {
    pub name: String,
    pub numerator: String,
    pub denominator: String,
}

impl std::str::FromStr for RatioArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts[..] {
            [name, numerator, denominator]
                if !name.is_empty() && !numerator.is_empty() && !denominator.is_empty() =>
            {
                Ok(Self {
                    name: name.into(),
                    numerator: numerator.into(),
                    denominator: denominator.into(),
                })
            }
            _ => Err(format!(
                "expected NAME:NUMERATOR_COLUMN:DENOMINATOR_COLUMN, got {s:?}"
            )),
        }
    }
}

/// `--weights control=0.5,treatment=0.5`.
pub fn parse_weights(s: &str) -> Result<Vec<(String, f64)>, String> {
    let weights: Vec<(String, f64)> = s
        .split(',')
        .map(|part| {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("expected NAME=WEIGHT, got {part:?}"))?;
            let w: f64 = w
                .parse()
                .map_err(|_| format!("weight of {name:?} is not a number: {w:?}"))?;
            if !(w.is_finite() && w > 0.0) || name.is_empty() {
                return Err(format!("{part:?}: weights must be positive"));
            }
            Ok((name.to_string(), w))
        })
        .collect::<Result<_, String>>()?;
    let mut names: Vec<&String> = weights.iter().map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    if names.len() != weights.len() || weights.len() < 2 {
        return Err("weights need at least two distinct variants".into());
    }
    Ok(weights)
}

/// `--weights` as clap parses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights(pub Vec<(String, f64)>);

impl std::str::FromStr for Weights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_weights(s).map(Weights)
    }
}

/// Everything `evaluate` needs besides the file.
#[derive(Debug, Clone)]
pub struct Spec {
    pub unit: String,
    pub variant: String,
    pub control: String,
    pub metrics: Vec<MetricArg>,
    pub ratios: Vec<RatioArg>,
    pub covariate: Option<String>,
    pub weights: Option<Vec<(String, f64)>>,
    /// Metric names that are guardrails (the rest are goals).
    pub guardrails: Vec<String>,
    /// Metric names where lower is better.
    pub inverse: Vec<String>,
    pub settings: Settings,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Combine {
    /// A proportion column (values 0 or 1): 1 when any row is.
    Any,
    Sum,
    Max,
}

/// A column a metric reads, with how a unit's rows combine.
#[derive(Debug, Clone, PartialEq)]
struct Slot {
    column: usize,
    name: String,
    combine: Combine,
}

/// Where a metric's `x` and `y` come from.
struct MetricSlots {
    x: usize,
    y: Option<usize>,
}

struct Layout {
    unit: usize,
    variant: usize,
    slots: Vec<Slot>,
    metrics: Vec<MetricSlots>,
    defs: Vec<MetricDef>,
    width: usize,
}

fn layout(headers: &csv::StringRecord, spec: &Spec) -> Result<Layout, BoxError> {
    let column = |name: &str| -> Result<usize, BoxError> {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                format!(
                    "column {name:?} is not in the header ({})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
                .into()
            })
    };
    let mut slots: Vec<Slot> = Vec::new();
    let mut slot = |name: &str, combine: Combine| -> Result<usize, BoxError> {
        let column = column(name)?;
        if let Some(i) = slots
            .iter()
            .position(|s| s.column == column && s.combine == combine)
        {
            return Ok(i);
        }
        slots.push(Slot {
            column,
            name: name.to_string(),
            combine,
        });
        Ok(slots.len() - 1)
    };
    let mut metrics = Vec::new();
    let mut defs = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for m in &spec.metrics {
        let combine = match m.kind {
            MetricKind::Proportion => Combine::Any,
            _ => Combine::Sum,
        };
        let x = slot(&m.column, combine)?;
        let y = match &spec.covariate {
            Some(c) => Some(slot(c, Combine::Max)?),
            None => None,
        };
        metrics.push(MetricSlots { x, y });
        defs.push(def(&m.name, m.kind, &m.column, spec));
    }
    for r in &spec.ratios {
        let x = slot(&r.numerator, Combine::Sum)?;
        let y = Some(slot(&r.denominator, Combine::Sum)?);
        metrics.push(MetricSlots { x, y });
        defs.push(def(
            &r.name,
            MetricKind::Ratio,
            &format!("{} / {}", r.numerator, r.denominator),
            spec,
        ));
    }
    for d in &defs {
        if !names.insert(d.name.clone()) {
            return Err(format!("metric {:?} is defined twice", d.name).into());
        }
    }
    for name in spec.guardrails.iter().chain(&spec.inverse) {
        if !names.contains(name) {
            return Err(format!("--guardrail/--inverse names an unknown metric {name:?}").into());
        }
    }
    if defs.is_empty() {
        return Err("no metric: give at least one --metric or --ratio".into());
    }
    Ok(Layout {
        unit: column(&spec.unit)?,
        variant: column(&spec.variant)?,
        slots,
        metrics,
        defs,
        width: headers.len(),
    })
}

fn def(name: &str, kind: MetricKind, source: &str, spec: &Spec) -> MetricDef {
    MetricDef {
        name: name.to_string(),
        kind,
        role: if spec.guardrails.iter().any(|g| g == name) {
            Role::Guardrail
        } else {
            Role::Goal
        },
        inverse: spec.inverse.iter().any(|g| g == name),
        covariate: match kind {
            MetricKind::Ratio => None,
            _ => spec.covariate.clone(),
        },
        source: format!("column {source}"),
    }
}

/// The units found so far, in three flat arrays (no allocation per unit): their ids back to back, a
/// record per unit, and `slots` combined values per unit. A hash table of record indices finds a unit.
struct Units {
    table: hashbrown::HashTable<usize>,
    hasher: foldhash::fast::RandomState,
    ids: Vec<u8>,
    records: Vec<UnitRecord>,
    values: Vec<f64>,
    slots: usize,
}

#[derive(Clone, Copy)]
struct UnitRecord {
    id_start: usize,
    id_len: usize,
    /// Its arm, or [`MULTI`] once it was seen in two.
    arm: u8,
}

const MULTI: u8 = u8::MAX;

impl Units {
    fn new(slots: usize) -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            ids: Vec::new(),
            records: Vec::new(),
            values: Vec::new(),
            slots,
        }
    }

    fn id<'a>(ids: &'a [u8], r: &UnitRecord) -> &'a [u8] {
        &ids[r.id_start..r.id_start + r.id_len]
    }

    /// Adds a row's values to its unit (a new one, or combined into the one already seen). Returns
    /// whether the unit was already there.
    fn add(&mut self, id: &[u8], arm: u8, row: &[f64], combine: &[Combine]) -> bool {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(id);
        let (ids, records) = (&self.ids, &self.records);
        if let Some(&i) = self.table.find(hash, |&i| Self::id(ids, &records[i]) == id) {
            let r = &mut self.records[i];
            if r.arm != arm {
                r.arm = MULTI;
            }
            let have = &mut self.values[i * self.slots..(i + 1) * self.slots];
            for ((h, v), c) in have.iter_mut().zip(row).zip(combine) {
                *h = match c {
                    Combine::Sum => *h + v,
                    Combine::Any | Combine::Max => h.max(*v),
                };
            }
            return true;
        }
        let index = self.records.len();
        self.records.push(UnitRecord {
            id_start: self.ids.len(),
            id_len: id.len(),
            arm,
        });
        self.ids.extend_from_slice(id);
        self.values.extend_from_slice(row);
        let (ids, records, hasher) = (&self.ids, &self.records, &self.hasher);
        self.table.insert_unique(hash, index, |&i| {
            hasher.hash_one(Self::id(ids, &records[i]))
        });
        false
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    /// Each unit's arm and combined values.
    fn iter(&self) -> impl Iterator<Item = (u8, &[f64])> {
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.arm, &self.values[i * self.slots..(i + 1) * self.slots]))
    }
}

fn parse_value(field: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(field).ok()?.trim();
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some(value)
}

/// A proportion cell: `0`/`1` (as any number equal to them), or `true`/`false` or `yes`/`no` in any
/// case, as exports from spreadsheets, BI tools and pandas write them. `Err` tells a number that is not
/// 0 or 1 from something that is not a flag at all.
fn parse_flag(field: &[u8]) -> Result<f64, &'static str> {
    let text = std::str::from_utf8(field).map_err(|_| "invalid:")?.trim();
    for (word, value) in [("true", 1.0), ("yes", 1.0), ("false", 0.0), ("no", 0.0)] {
        if text.eq_ignore_ascii_case(word) {
            return Ok(value);
        }
    }
    match text.parse::<f64>() {
        Ok(v) if v == 0.0 || v == 1.0 => Ok(v),
        Ok(_) => Err("not_0_or_1:"),
        Err(_) if text.is_empty() => Err("missing:"),
        Err(_) => Err("invalid:"),
    }
}

/// What the rows that could not be used were, for an error when none could: each reason with its count,
/// and the first offending line.
fn bad_rows_text(data: &DataSummary) -> String {
    if data.bad_row_count() == 0 {
        return format!("{} data rows, none bad", data.rows);
    }
    let mut reasons: Vec<(&String, &u64)> = data.bad_rows.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
    let first = data
        .bad_row_examples
        .first()
        .map(|b| format!("; first at line {} ({})", b.line, b.reason))
        .unwrap_or_default();
    format!(
        "{} of {} data rows were bad: {}{first}",
        data.bad_row_count(),
        data.rows,
        reasons.join(", ")
    )
}

/// Reads the CSV and tallies it. Fails only on an unreadable file, a header without the named columns,
/// or a control variant that never appears.
pub fn tally_csv(
    input: impl Read,
    source: &str,
    spec: &Spec,
) -> Result<(Tally, DataSummary), BoxError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(input);
    let headers = reader.headers()?.clone();
    let layout = layout(&headers, spec)?;
    let mut data = DataSummary {
        source: source.to_string(),
        ..DataSummary::default()
    };
    // Arms: the configured ones, control first; or control first, then as found.
    let mut variants: Vec<String> = vec![spec.control.clone()];
    if let Some(w) = &spec.weights {
        if !w.iter().any(|(v, _)| v == &spec.control) {
            return Err(
                format!("--weights has no weight for the control {:?}", spec.control).into(),
            );
        }
        variants.extend(
            w.iter()
                .map(|(v, _)| v.clone())
                .filter(|v| v != &spec.control),
        );
    }
    let fixed = spec.weights.is_some();
    let combine: Vec<Combine> = layout.slots.iter().map(|s| s.combine).collect();
    let mut units = Units::new(layout.slots.len());
    let mut record = csv::ByteRecord::new();
    let mut values = vec![0.0; layout.slots.len()];
    let mut line: u64 = 1;
    let mut reason = String::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                if e.is_io_error() {
                    return Err(e.into());
                }
                line += 1;
                data.rows += 1;
                data.bad_row(line, "unparseable_csv");
                continue;
            }
        }
        line = record.position().map_or(line + 1, |p| p.line());
        data.rows += 1;
        if record.len() != layout.width {
            data.bad_row(line, "wrong_field_count");
            continue;
        }
        let unit = record.get(layout.unit).unwrap_or_default().trim_ascii();
        if unit.is_empty() {
            data.bad_row(line, &format!("missing:{}", spec.unit));
            continue;
        }
        let Ok(variant) = std::str::from_utf8(record.get(layout.variant).unwrap_or_default())
        else {
            data.bad_row(line, &format!("invalid:{}", spec.variant));
            continue;
        };
        let variant = variant.trim();
        if variant.is_empty() {
            data.bad_row(line, &format!("missing:{}", spec.variant));
            continue;
        }
        let arm = match variants.iter().position(|v| v == variant) {
            Some(arm) => arm,
            None if fixed => {
                data.bad_row(line, "unknown_variant");
                continue;
            }
            None if variants.len() >= MAX_VARIANTS => {
                data.bad_row(line, "too_many_variants");
                continue;
            }
            None => {
                variants.push(variant.to_string());
                variants.len() - 1
            }
        };
        let mut ok = true;
        for (slot, value) in layout.slots.iter().zip(values.iter_mut()) {
            let field = record.get(slot.column).unwrap_or_default();
            reason.clear();
            if slot.combine == Combine::Any {
                match parse_flag(field) {
                    Ok(v) => *value = v,
                    Err(why) => reason.push_str(why),
                }
            } else {
                match parse_value(field) {
                    Some(v) => *value = v,
                    None if field.trim_ascii().is_empty() => reason.push_str("missing:"),
                    None => reason.push_str("invalid:"),
                }
            }
            if !reason.is_empty() {
                reason.push_str(&slot.name);
                data.bad_row(line, &reason);
                ok = false;
                break;
            }
        }
        if !ok {
            continue;
        }
        let arm = u8::try_from(arm).unwrap_or(MULTI);
        if units.add(unit, arm, &values, &combine) {
            data.repeated_rows += 1;
        }
    }
    if units.iter().next().is_none() {
        return Err(format!("no usable rows: {}", bad_rows_text(&data)).into());
    }
    if !units.iter().any(|(arm, _)| arm == 0) {
        return Err(format!(
            "the control variant {:?} has no units (variants found: {}; {})",
            spec.control,
            variants.join(", "),
            bad_rows_text(&data)
        )
        .into());
    }
    let weights = match &spec.weights {
        Some(w) => variants
            .iter()
            .map(|v| w.iter().find(|(n, _)| n == v).map_or(0.0, |(_, w)| *w))
            .collect(),
        None => vec![1.0 / variants.len() as f64; variants.len()],
    };
    // Non-control arms in a stable order when they were discovered (not configured).
    let order: Vec<usize> = if fixed {
        (0..variants.len()).collect()
    } else {
        let mut rest: Vec<usize> = (1..variants.len()).collect();
        rest.sort_by(|&a, &b| variants[a].cmp(&variants[b]));
        std::iter::once(0).chain(rest).collect()
    };
    let mut position = vec![0usize; variants.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    let mut tally = Tally::new(Design {
        experiment_id: source.to_string(),
        variants: order.iter().map(|&i| variants[i].clone()).collect(),
        weights: order.iter().map(|&i| weights[i]).collect(),
        metrics: layout.defs.clone(),
    });
    data.units = units.len() as u64;
    for (arm, values) in units.iter() {
        if arm == MULTI {
            data.exclude("multi_variant");
            continue;
        }
        let arm = position[usize::from(arm)];
        tally.unit(arm);
        for (m, slots) in layout.metrics.iter().enumerate() {
            let y = slots.y.map_or(0.0, |y| values[y]);
            tally.observe(m, arm, values[slots.x], y);
        }
    }
    Ok((tally, data))
}

/// Evaluates the file and writes `report.json` and `report.html` into `out`.
pub fn evaluate(csv: &Path, spec: &Spec, out: &Path) -> Result<Report, BoxError> {
    let file = std::fs::File::open(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let source = csv.file_name().map_or_else(
        || csv.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (tally, data) = tally_csv(file, &source, spec)?;
    let report = analyse(&tally, &spec.settings, data, None, chrono::Utc::now());
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    std::fs::write(out.join("report.html"), html::render(&report))?;
    Ok(report)
}

/// A few lines for the terminal.
pub fn summary(report: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {}",
        report.experiment.id, report.recommendation.summary
    );
    for a in &report.arms {
        let _ = writeln!(s, "  {:<12} {:>9} units", a.variant, a.units);
    }
    let _ = writeln!(
        s,
        "  SRM p = {:.4}{}",
        report.srm.p_value,
        if report.srm.alarm { "  ALARM" } else { "" }
    );
    for m in &report.metrics {
        for c in &m.comparisons {
            let _ = writeln!(
                s,
                "  {:<22} {:<12} effect {:+.4} CI [{:+.4}, {:+.4}] p {:.4} adjusted {:.4}{}",
                m.name,
                c.variant,
                c.effect,
                c.ci[0],
                c.ci[1],
                c.p_value,
                c.adjusted_p_value,
                c.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            unit: "user".into(),
            variant: "group".into(),
            control: "control".into(),
            metrics: vec!["conversion:converted:proportion".parse().unwrap()],
            ratios: vec!["aov:revenue:orders".parse().unwrap()],
            covariate: None,
            weights: None,
            guardrails: vec![],
            inverse: vec![],
            settings: Settings::default(),
        }
    }

    #[test]
    fn messy_rows_are_counted_repeats_combined_and_switchers_excluded() {
        let csv = "user,group,converted,revenue,orders\n\
                   u1,control,0,0,0\n\
                   u1,control,1,10,1\n\
                   u2,treatment,1,20,2\n\
                   u3,control,0,0,0\n\
                   u3,treatment,0,0,0\n\
                   u4,treatment,2,0,0\n\
                   u5,treatment,x,0,0\n\
                   ,control,0,0,0\n\
                   u6,control,1\n\
                   u7,,0,0,0\n\
                   u8,treatment,0,,0\n\
                   u9,treatment,1,inf,1\n";
        let (t, d) = tally_csv(csv.as_bytes(), "mem", &spec()).unwrap();
        assert_eq!(d.rows, 12);
        assert_eq!(d.bad_row_count(), 7);
        assert_eq!(d.bad_rows["not_0_or_1:converted"], 1);
        assert_eq!(d.bad_rows["invalid:converted"], 1);
        assert_eq!(d.bad_rows["missing:user"], 1);
        assert_eq!(d.bad_rows["wrong_field_count"], 1);
        assert_eq!(d.bad_rows["missing:group"], 1);
        assert_eq!(d.bad_rows["missing:revenue"], 1);
        assert_eq!(d.bad_rows["invalid:revenue"], 1);
        assert_eq!(d.bad_row_examples[0].line, 7);
        assert_eq!(d.repeated_rows, 2);
        assert_eq!(d.units, 3);
        assert_eq!(d.excluded_units["multi_variant"], 1);
        assert_eq!(t.design.variants, ["control", "treatment"]);
        assert_eq!(t.units, [1, 1]);
        // u1: converted in any row, revenue and orders summed.
        let c = t.cells[0][0];
        assert_eq!((c.n, c.sum), (1, 1.0));
        let aov = t.cells[1][0];
        assert_eq!((aov.sum, aov.sum_y), (10.0, 1.0));
        assert_eq!((t.cells[1][1].sum, t.cells[1][1].sum_y), (20.0, 2.0));
    }

    #[test]
    fn configured_weights_fix_the_arms_and_reject_strangers() {
        let mut s = spec();
        s.weights = Some(parse_weights("treatment=0.25,control=0.75").unwrap());
        let csv = "user,group,converted,revenue,orders\nu1,control,1,1,1\nu2,b,1,1,1\nu3,treatment,0,0,0\n";
        let (t, d) = tally_csv(csv.as_bytes(), "mem", &s).unwrap();
        assert_eq!(t.design.variants, ["control", "treatment"]);
        assert_eq!(t.design.weights, [0.75, 0.25]);
        assert_eq!(d.bad_rows["unknown_variant"], 1);
    }

    #[test]
    fn discovered_arms_are_sorted_after_control_and_the_covariate_takes_the_largest_value() {
        let mut s = spec();
        s.covariate = Some("pre".into());
        s.ratios.clear();
        let csv =
            "user,group,converted,pre\nu1,zeta,1,3\nu2,control,0,1\nu2,control,0,4\nu3,alpha,0,0\n";
        let (t, _) = tally_csv(csv.as_bytes(), "mem", &s).unwrap();
        assert_eq!(t.design.variants, ["control", "alpha", "zeta"]);
        assert_eq!(t.design.weights.len(), 3);
        assert_eq!(t.cells[0][0].sum_y, 4.0);
        assert_eq!(t.cells[0][2].sum_products, 3.0);
    }

    #[test]
    fn proportion_cells_take_the_booleans_real_exports_write() {
        let s = spec();
        let ones = "user,group,converted,revenue,orders\n\
            u1,control,1,10,1\nu2,control,0,0,0\nu3,treatment,1,5,1\nu4,treatment,0,0,0\n\
            u5,control,1,7,1\nu6,treatment,0,0,0\n";
        let (expected, data) = tally_csv(ones.as_bytes(), "mem", &s).unwrap();
        assert_eq!(data.bad_row_count(), 0);
        for (t, f) in [
            ("true", "false"),
            ("TRUE", "FALSE"),
            ("True", "False"),
            ("yes", "no"),
            ("YES", "No"),
            (" 1.0", "0.0 "),
        ] {
            let csv = ones
                .lines()
                .map(|l| {
                    let mut cells: Vec<&str> = l.split(',').collect();
                    if cells[2] == "1" {
                        cells[2] = t;
                    } else if cells[2] == "0" {
                        cells[2] = f;
                    }
                    cells.join(",")
                })
                .collect::<Vec<_>>()
                .join("\n");
            let (tally, data) = tally_csv(csv.as_bytes(), "mem", &s).unwrap();
            assert_eq!(data.bad_row_count(), 0, "{t}/{f}: {:?}", data.bad_rows);
            assert_eq!(tally, expected, "{t}/{f} reads as 1/0");
        }
        for bad in ["2", "-1", "0.5", "maybe", "t", "y"] {
            let csv = format!(
                "user,group,converted,revenue,orders\nu1,control,{bad},1,1\nu2,control,1,1,1\n"
            );
            let (_, data) = tally_csv(csv.as_bytes(), "mem", &s).unwrap();
            assert_eq!(data.bad_row_count(), 1, "{bad} is refused");
        }
    }

    #[test]
    fn when_every_row_is_bad_the_error_names_the_reasons_and_the_first_line() {
        let csv = "user,group,converted,revenue,orders\n\
            u1,control,maybe,1,1\nu2,treatment,perhaps,1,1\nu3,control,1,x,1\nu4,control\n";
        let e = tally_csv(csv.as_bytes(), "mem", &spec())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("no usable rows: 4 of 4 data rows were bad"),
            "{e}"
        );
        assert!(e.contains("invalid:converted ×2"), "{e}");
        assert!(e.contains("invalid:revenue ×1"), "{e}");
        assert!(e.contains("wrong_field_count ×1"), "{e}");
        assert!(e.contains("first at line 2 (invalid:converted)"), "{e}");
    }

    #[test]
    fn setup_mistakes_are_errors_with_a_message() {
        let csv = "user,group,converted,revenue,orders\nu1,treatment,1,1,1\n";
        let e = tally_csv(csv.as_bytes(), "mem", &spec())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("control variant \"control\" has no units"),
            "{e}"
        );
        let mut s = spec();
        s.unit = "nope".into();
        let e = tally_csv(csv.as_bytes(), "mem", &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("column \"nope\" is not in the header"), "{e}");
        assert!("a:b".parse::<MetricArg>().is_err());
        assert!("a:b:median".parse::<MetricArg>().is_err());
        assert!("a::c".parse::<RatioArg>().is_err());
        assert!(parse_weights("a=0.5").is_err());
        assert!(parse_weights("a=0.5,a=0.5").is_err());
        assert!(parse_weights("a=-1,b=1").is_err());
        s = spec();
        s.guardrails = vec!["missing".into()];
        let e = tally_csv(csv.as_bytes(), "mem", &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown metric"), "{e}");
    }

    #[test]
    fn hostile_bytes_never_panic() {
        use proptest::prelude::*;
        proptest!(ProptestConfig::with_cases(300), |(body in proptest::collection::vec(any::<u8>(), 0..400))| {
            let mut input = b"user,group,converted,revenue,orders\nu0,control,1,1,1\n".to_vec();
            input.extend_from_slice(&body);
            let result = tally_csv(input.as_slice(), "mem", &spec());
            let (t, d) = result.expect("the control row is always there");
            prop_assert!(d.rows >= 1);
            prop_assert!(t.units[0] >= 1 || d.excluded_units.contains_key("multi_variant"));
        });
    }
}
