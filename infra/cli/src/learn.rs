//! `checkout-ai policy …`: the learning loop's operator side. Point-in-time rows from the event log,
//! off-policy evaluation tables (terminal, JSON, HTML), training and promotion of learned policies, and
//! the Open Bandit Dataset check of the estimators.

use crate::local::stack::LocalStack;
use crate::BoxError;
use checkout_domain::decision::learned::PolicyArtifact;
use checkout_domain::decision::policy::PolicyConfig;
use checkout_domain::learning::dataset::{build, DatasetSettings, DatasetSummary, TrainingRow};
use checkout_domain::learning::promotion::{self, PolicyPromotionRecord};
use checkout_domain::learning::targets::{report, Report, Target};
use checkout_domain::model::registry::{load_or_fallback, publish};
use checkout_domain::ope::{evaluate, Evaluation, Row, Settings};
use checkout_train::policy::{train_policy, PolicyTrainConfig};
use chrono::{Duration, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::Path;

/// Reads rows written by [`write_rows`] (one JSON object per line).
pub fn read_rows(path: &Path) -> Result<Vec<TrainingRow>, BoxError> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?,
        );
    }
    Ok(rows)
}

pub fn write_rows(path: &Path, rows: &[TrainingRow]) -> Result<(), BoxError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file =
        std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for r in rows {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a policy artifact file.
pub fn read_policy(path: &Path) -> Result<PolicyArtifact, BoxError> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(PolicyArtifact::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// The point-in-time rows of every decision in the local stack's event log, scored with the champion
/// propensity model (or the compiled-in one).
pub async fn dataset(
    stack: &LocalStack,
    out: &Path,
    horizon_hours: i64,
) -> Result<DatasetSummary, BoxError> {
    let (ddb, env) = crate::rebuild::feature_tables(stack).await?;
    let log = crate::census::scan_log(&ddb, env.required("EVENT_LOG_TABLE")?).await?;
    let store = crate::model::registry_store(stack).await?;
    let model = load_or_fallback(
        &store,
        checkout_domain::model::DEFAULT_MODEL_NAME,
        std::time::Duration::from_secs(10),
    )
    .await?
    .model;
    let settings = DatasetSettings {
        horizon: Duration::hours(horizon_hours),
        ..DatasetSettings::default()
    };
    let data = build(log, &model, settings);
    write_rows(out, &data.rows)?;
    Ok(data.summary)
}

/// Splits rows into (train, held out) by a hash of the decision id: stable across runs and machines.
pub fn split(rows: &[TrainingRow], held_out: f64) -> (Vec<TrainingRow>, Vec<TrainingRow>) {
    rows.iter().cloned().partition(|r| {
        let h = Sha256::digest(r.decision_id.as_bytes());
        let u = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) as f64
            / u64::MAX as f64;
        u >= held_out
    })
}

/// Evaluates the logged policies, doing nothing, the configured policy and each given policy on `rows`.
pub fn evaluate_policies(
    rows: &[TrainingRow],
    policies: &[PolicyArtifact],
    reward_model: Option<&PolicyArtifact>,
    configured: &PolicyConfig,
    settings: Settings,
) -> Report {
    let mut targets = vec![
        Target::Logged,
        Target::Nothing,
        Target::Configured(configured),
    ];
    targets.extend(policies.iter().map(Target::Learned));
    if rows.iter().any(|r| r.shadow.is_some()) {
        targets.push(Target::Shadow);
    }
    report(rows, &targets, reward_model, settings)
}

/// The estimates as a table, one line per target and estimator.
pub fn print_report(r: &Report) {
    println!(
        "{} decisions; logged mean margin {:.2} per decision; reward model: {}",
        r.rows,
        r.logged_mean_margin,
        r.reward_model
            .as_deref()
            .unwrap_or("none (DM = 0, DR = IPS)")
    );
    for t in &r.targets {
        print_evaluation(&t.target, &t.evaluation, t.skipped);
    }
}

fn print_evaluation(name: &str, e: &Evaluation, skipped: usize) {
    let d = &e.diagnostics;
    println!(
        "  {name}: {} rows ({skipped} skipped), ESS {:.1}, max weight {:.1}, unsupported {:.1}%",
        d.rows,
        d.effective_sample_size,
        d.max_weight,
        100.0 * d.unsupported_share
    );
    for x in &e.estimates {
        println!(
            "    {:<12} {:>12.4}  [{:>12.4}, {:>12.4}]",
            x.estimator, x.value, x.lower, x.upper
        );
    }
}

/// Writes `ope.json` and `ope.html` for a report.
pub fn write_report(r: &Report, out_dir: &Path, title: &str, note: &str) -> Result<(), BoxError> {
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(out_dir.join("ope.json"), serde_json::to_vec_pretty(r)?)?;
    let sections: Vec<(String, &Evaluation, usize)> = r
        .targets
        .iter()
        .map(|t| (t.target.clone(), &t.evaluation, t.skipped))
        .collect();
    std::fs::write(
        out_dir.join("ope.html"),
        crate::report_html::ope_page(title, note, &sections, None),
    )?;
    Ok(())
}

/// What `policy train` did.
#[derive(Debug, Serialize)]
pub struct Trained {
    pub name: String,
    pub version: String,
    pub train_rows: usize,
    pub held_out_rows: usize,
    pub actions_with_models: usize,
    pub published: Option<String>,
}

/// Trains a policy on the training split, evaluates it on the held-out split (embedded in the artifact),
/// writes it, and optionally publishes it to the local stack's registry.
pub async fn train(
    rows: &[TrainingRow],
    name: &str,
    version: Option<String>,
    held_out: f64,
    out: &Path,
    publish_to: Option<&LocalStack>,
) -> Result<Trained, BoxError> {
    let (train_rows, held) = split(rows, held_out);
    let version = version.unwrap_or_else(|| {
        format!(
            "{}-{}",
            Utc::now().format("%Y%m%dT%H%M%SZ"),
            &checkout_domain::learning::dataset::rows_sha256(rows)[..8]
        )
    });
    let mut artifact = train_policy(
        &train_rows,
        name,
        &version,
        Utc::now(),
        &PolicyTrainConfig::default(),
    )?;
    let evaluation = evaluate_policies(
        &held,
        std::slice::from_ref(&artifact),
        Some(&artifact),
        &PolicyConfig::default(),
        Settings::default(),
    );
    artifact.evaluation = serde_json::to_value(&evaluation)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, artifact.encode()?)?;
    let published = match publish_to {
        Some(stack) => {
            let store = crate::model::registry_store(stack).await?;
            Some(format!(
                "s3://{}/{}",
                store.bucket,
                publish(&store, &artifact).await?
            ))
        }
        None => None,
    };
    Ok(Trained {
        name: name.into(),
        version,
        train_rows: train_rows.len(),
        held_out_rows: held.len(),
        actions_with_models: artifact.outcome_models.len(),
        published,
    })
}

/// Runs the promotion rule against the local stack's registry on the held-out split of `rows`.
pub async fn promote(
    stack: &LocalStack,
    name: &str,
    version: &str,
    rows: &[TrainingRow],
    held_out: f64,
    override_reason: Option<&str>,
) -> Result<PolicyPromotionRecord, BoxError> {
    let store = crate::model::registry_store(stack).await?;
    let (_, held) = split(rows, held_out);
    let configured = crate::model::decision_config(stack, None, None)
        .await?
        .policy;
    Ok(promotion::promote(
        &store,
        name,
        version,
        &held,
        &configured,
        override_reason,
        Settings::default(),
        Utc::now(),
    )
    .await?)
}

/// The Open Bandit Dataset check: the uniform-random policy's click rate estimated from the Bernoulli
/// Thompson sampling logs, against the random logs' own on-policy click rate.
#[derive(Debug, Serialize)]
pub struct ObdCheck {
    pub campaign: String,
    pub items: usize,
    pub bts_rows: usize,
    pub random_rows: usize,
    /// The random policy's on-policy click rate and its 95% interval (normal approximation).
    pub on_policy_ctr: f64,
    pub on_policy_interval: (f64, f64),
    pub estimates: Evaluation,
    /// Per estimator: whether its interval covers the on-policy click rate.
    pub covers: Vec<(String, bool)>,
}

struct ObdRow {
    item: usize,
    position: usize,
    click: f64,
    propensity: f64,
}

fn read_obd(path: &Path) -> Result<Vec<ObdRow>, BoxError> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{} has no `{name}` column", path.display()))
    };
    let (item, position, click, propensity) = (
        col("item_id")?,
        col("position")?,
        col("click")?,
        col("propensity_score")?,
    );
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let field = |c: usize| -> Result<f64, BoxError> {
            Ok(record
                .get(c)
                .unwrap_or("")
                .parse::<f64>()
                .map_err(|e| format!("{} row {}: {e}", path.display(), i + 1))?)
        };
        rows.push(ObdRow {
            item: field(item)? as usize,
            position: field(position)? as usize,
            click: field(click)?,
            propensity: field(propensity)?,
        });
    }
    Ok(rows)
}

pub fn obd(data: &Path, settings: Settings) -> Result<ObdCheck, BoxError> {
    let bts = read_obd(&data.join("bts/men.csv"))?;
    let random = read_obd(&data.join("random/men.csv"))?;
    let items = bts
        .iter()
        .chain(&random)
        .map(|r| r.item + 1)
        .max()
        .unwrap_or(0);
    let positions = bts.iter().map(|r| r.position + 1).max().unwrap_or(0);
    if items == 0 || bts.is_empty() || random.is_empty() {
        return Err("the Open Bandit Dataset files are empty".into());
    }
    // The reward model, cross-fitted: rows of one half are predicted from the other half's click rates
    // per (item, position), shrunk towards the position's rate.
    let fit = |half: usize| {
        let mut cell = vec![vec![(0.0f64, 0.0f64); positions]; items];
        let mut pos = vec![(0.0f64, 0.0f64); positions];
        for (i, r) in bts.iter().enumerate() {
            if i % 2 == half {
                cell[r.item][r.position].0 += r.click;
                cell[r.item][r.position].1 += 1.0;
                pos[r.position].0 += r.click;
                pos[r.position].1 += 1.0;
            }
        }
        (0..items)
            .map(|a| {
                (0..positions)
                    .map(|p| {
                        let prior = pos[p].0 / pos[p].1.max(1.0);
                        (cell[a][p].0 + 20.0 * prior) / (cell[a][p].1 + 20.0)
                    })
                    .collect::<Vec<f64>>()
            })
            .collect::<Vec<_>>()
    };
    let models = [fit(1), fit(0)];
    let uniform = 1.0 / items as f64;
    let rows: Vec<Row> = bts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let m = &models[i % 2];
            Row {
                reward: r.click,
                logged_propensity: r.propensity,
                target_propensity: uniform,
                logged_prediction: m[r.item][r.position],
                target_prediction: (0..items).map(|a| m[a][r.position]).sum::<f64>() * uniform,
                unsupported: false,
            }
        })
        .collect();
    let estimates = evaluate(&rows, settings);
    let n = random.len() as f64;
    let ctr = random.iter().map(|r| r.click).sum::<f64>() / n;
    let se = (ctr * (1.0 - ctr) / n).sqrt();
    let covers = estimates
        .estimates
        .iter()
        .map(|e| (e.estimator.clone(), e.lower <= ctr && ctr <= e.upper))
        .collect();
    Ok(ObdCheck {
        campaign: "men".into(),
        items,
        bts_rows: bts.len(),
        random_rows: random.len(),
        on_policy_ctr: ctr,
        on_policy_interval: (ctr - 1.96 * se, ctr + 1.96 * se),
        estimates,
        covers,
    })
}

pub fn print_obd(c: &ObdCheck) {
    println!(
        "Open Bandit Dataset, \"{}\" campaign: the uniform-random policy's CTR from {} Bernoulli-TS impressions",
        c.campaign, c.bts_rows
    );
    println!(
        "  on-policy (random logs, {} impressions): {:.5} [{:.5}, {:.5}]",
        c.random_rows, c.on_policy_ctr, c.on_policy_interval.0, c.on_policy_interval.1
    );
    for (e, (_, covers)) in c.estimates.estimates.iter().zip(&c.covers) {
        println!(
            "  {:<12} {:.5} [{:.5}, {:.5}] {}",
            e.estimator,
            e.value,
            e.lower,
            e.upper,
            if *covers { "covers" } else { "misses" }
        );
    }
    let d = &c.estimates.diagnostics;
    println!(
        "  ESS {:.0} of {}, max weight {:.1}",
        d.effective_sample_size, d.rows, d.max_weight
    );
}

/// The Open Bandit check as a page.
pub fn obd_html(c: &ObdCheck) -> String {
    let note = format!(
        "The \"{}\" campaign: the uniform-random policy's click rate estimated from {} impressions logged by \
         Bernoulli Thompson sampling (evaluation probability 1/{} per item and position), against the random \
         logs' own on-policy rate over {} impressions: {:.5} [{:.5}, {:.5}] (dashed).",
        c.campaign,
        c.bts_rows,
        c.items,
        c.random_rows,
        c.on_policy_ctr,
        c.on_policy_interval.0,
        c.on_policy_interval.1
    );
    crate::report_html::ope_page(
        "Open Bandit Dataset: off-policy estimate against on-policy truth",
        &note,
        &[(
            "uniform random, from the Thompson-sampling logs".into(),
            &c.estimates,
            0,
        )],
        Some(c.on_policy_ctr),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_obd_check_reads_the_real_logs_and_gives_plausible_estimates_inside_their_intervals() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/obd");
        assert!(
            data.exists(),
            "{} is missing: the Open Bandit Dataset is expected beside the repository",
            data.display()
        );
        let c = obd(
            &data,
            Settings {
                resamples: 300,
                ..Settings::default()
            },
        )
        .expect("reads");
        assert_eq!((c.items, c.bts_rows, c.random_rows), (34, 10_000, 10_000));
        assert!(
            (c.on_policy_ctr - 0.0046).abs() < 1e-9,
            "{}",
            c.on_policy_ctr
        );
        for e in &c.estimates.estimates {
            assert!(e.lower <= e.value && e.value <= e.upper, "{e:?}");
            assert!(e.value > 0.0 && e.value < 0.02, "{e:?}");
        }
    }
}

/// What the demo's learning phase found.
#[derive(Debug, Clone, Serialize)]
pub struct DemoLearning {
    pub dataset: DatasetSummary,
    /// Per target: the doubly robust estimate and its interval (margin per decision, minor units), and
    /// the share of rows the logs cannot support for it.
    pub dr: Vec<(String, f64, f64, f64, f64)>,
    pub reading: String,
    pub simulation_rounds: usize,
    pub simulation_decisions: usize,
    pub learned_share_of_oracle_lift: f64,
    pub configured_share_of_oracle_lift: f64,
    pub simulation_html: String,
    pub ope_html: String,
}

/// `make demo`'s learning phase: the point-in-time rows of the demo's own decisions and their off-policy
/// evaluation, then a short closed loop in the simulator.
pub async fn demo_phase(
    stack: &LocalStack,
    uci: &Path,
    out: &Path,
) -> Result<DemoLearning, BoxError> {
    let dir = out.join("learning");
    let rows_path = dir.join("rows.jsonl");
    let dataset = dataset(stack, &rows_path, 24).await?;
    let rows = read_rows(&rows_path)?;
    let configured = crate::model::decision_config(stack, None, None)
        .await?
        .policy;
    let report = evaluate_policies(&rows, &[], None, &configured, Settings::default());
    let reading = "REES46's outcomes were recorded before any of these decisions, so nothing served could \
        change them: the true effect of any policy against another is zero, and these estimates are the same \
        orders re-weighted, with wide intervals. Where a target needs an action the logs never gave it \
        (control only served none; the treatment arm's configured policy, with no exploration, never did), \
        the importance-weighted estimators see no reward: the unsupported share says how much of an estimate \
        that is, and such a gap is a gap in the logs, not an effect (exploration is what closes it). The \
        feature-hash match rate is low because the demo asks for decisions after replaying the whole day, so \
        the scorer read sessions that already held their later events, which the point-in-time rebuild \
        (rightly) leaves out."
        .to_string();
    write_report(
        &report,
        &dir,
        "Off-policy evaluation of the demo's decisions",
        &reading,
    )?;
    let settings = crate::simulate::SimSettings {
        rounds: 5,
        per_round: 10_000,
        ..crate::simulate::SimSettings::default()
    };
    let sim = crate::simulate::run(&settings, uci, &dir)?;
    let dr = report
        .targets
        .iter()
        .filter_map(|t| {
            t.evaluation.get("dr").map(|e| {
                let unsupported = t.evaluation.diagnostics.unsupported_share;
                (t.target.clone(), e.value, e.lower, e.upper, unsupported)
            })
        })
        .collect();
    Ok(DemoLearning {
        dataset,
        dr,
        reading,
        simulation_rounds: settings.rounds,
        simulation_decisions: settings.rounds * settings.per_round,
        learned_share_of_oracle_lift: sim.final_share_of_oracle_lift,
        configured_share_of_oracle_lift: sim.configured_share_of_oracle_lift,
        simulation_html: dir.join("simulation.html").display().to_string(),
        ope_html: dir.join("ope.html").display().to_string(),
    })
}

pub fn print_demo(l: &DemoLearning) {
    let d = &l.dataset;
    println!(
        "  learning: {} decisions → {} point-in-time rows ({} degraded left out), {} with an order within 24 h; \
         feature-hash match rate {:.1}%",
        d.decisions,
        d.rows,
        d.degraded_skipped,
        d.orders_within_horizon,
        100.0 * d.hash_match_rate
    );
    for (target, v, lo, hi, unsupported) in &l.dr {
        println!(
            "    DR {target:<28} {v:>9.1} [{lo:>9.1}, {hi:>9.1}] margin per decision, {:>5.1}% unsupported",
            100.0 * unsupported
        );
    }
    println!("    {}", l.reading);
    println!(
        "  simulator ({} rounds, {} decisions): the learned loop reached {:.1}% of the oracle's margin lift, \
         the configured policy {:.1}% ({})",
        l.simulation_rounds,
        l.simulation_decisions,
        100.0 * l.learned_share_of_oracle_lift,
        100.0 * l.configured_share_of_oracle_lift,
        l.simulation_html
    );
}
