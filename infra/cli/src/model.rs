//! `checkout-ai train`, `export-sessions` and `promote`: the propensity model's operator side.

use crate::local::stack::LocalStack;
use crate::BoxError;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_domain::decision::config::{update_config, DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::features::rebuild::rebuild;
use checkout_domain::model::artifact::ModelArtifact;
use checkout_domain::model::columns::{labelled_sessions, read_csv, write_csv, Dataset};
use checkout_domain::model::registry::{self, PromotionRecord};
use checkout_domain::ports::ObjectStore as _;
use checkout_train::{train, Naming, TrainConfig};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::Path;

/// Reads a labelled CSV in the UCI layout.
pub fn read_dataset(path: &Path) -> Result<Dataset, BoxError> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let data = read_csv(std::io::BufReader::new(file))?;
    if data.bad_rows > 0 {
        eprintln!(
            "checkout-ai: {} rows of {} could not be read and were skipped; first: {:?}",
            data.bad_rows,
            path.display(),
            data.bad_examples.first()
        );
    }
    Ok(data)
}

/// Trains on `csv` with the reference recipe.
pub fn train_file(
    csv: &Path,
    name: &str,
    version: Option<String>,
    created_at: DateTime<Utc>,
) -> Result<ModelArtifact, BoxError> {
    registry::check_segment("model name", name)?;
    if let Some(v) = &version {
        registry::check_segment("model version", v)?;
    }
    let data = read_dataset(csv)?;
    let naming = Naming {
        name: name.to_owned(),
        version,
        source: csv
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        created_at,
    };
    Ok(train(&data, &naming, &TrainConfig::default())?)
}

/// The human-readable training report.
pub fn print_report(a: &ModelArtifact) {
    let cv = &a.metrics.cross_validation;
    let h = &a.metrics.holdout;
    let t = &a.training;
    println!("model {}@{}", a.name, a.version);
    println!(
        "  data      {} ({} rows, {} positive, {} skipped), sha256 {}",
        t.source,
        t.rows,
        t.positives,
        t.bad_rows,
        &t.data_sha256[..12]
    );
    println!(
        "  features  {} columns (vectorizer v{}), feature schema v{}",
        a.coefficients.len(),
        a.vectorizer.version,
        a.feature_schema_version
    );
    let folds: Vec<String> = cv.fold_auc.iter().map(|x| format!("{x:.4}")).collect();
    println!(
        "  {}-fold stratified CV (seed {}): ROC AUC {} · mean {:.4} ± {:.4} · out-of-fold Brier {:.4}",
        cv.folds,
        cv.seed,
        folds.join(" "),
        cv.mean_auc,
        cv.std_auc,
        cv.brier
    );
    println!(
        "  holdout ({} rows, {:.0}%): ROC AUC {:.4} · Brier {:.4} · log loss {:.4} · positive rate {:.4}",
        t.holdout.rows,
        t.holdout.fraction * 100.0,
        h.auc,
        h.brier,
        h.log_loss,
        h.positive_rate
    );
    println!("  reliability (holdout): predicted bin → rows, mean predicted, observed rate");
    for b in &h.reliability {
        let f = |x: Option<f64>| x.map_or("     -".to_owned(), |v| format!("{v:6.3}"));
        println!(
            "    [{:.1}, {:.1})  {:5}  {}  {}",
            b.lower,
            b.upper,
            b.count,
            f(b.mean_predicted),
            f(b.observed_rate)
        );
    }
}

/// The model registry of the local stack.
pub async fn registry_store(stack: &LocalStack) -> Result<S3ObjectStore, BoxError> {
    let sdk = stack.sdk_config().await;
    Ok(S3ObjectStore {
        client: s3_client(&sdk),
        bucket: stack.resource("ModelsBucket")?.name.clone(),
    })
}

/// Shows, replaces (`file`) or edits (`kill_switch`) the decision config in the models bucket.
pub async fn decision_config(
    stack: &LocalStack,
    file: Option<&Path>,
    kill_switch: Option<&str>,
) -> Result<DecisionConfig, BoxError> {
    let store = registry_store(stack).await?;
    let replacement = match file {
        Some(f) => Some(DecisionConfig::decode(
            &std::fs::read(f).map_err(|e| format!("reading {}: {e}", f.display()))?,
        )?),
        None => None,
    };
    if replacement.is_none() && kill_switch.is_none() {
        return Ok(match store.get(DEFAULT_CONFIG_KEY).await? {
            Some(o) => DecisionConfig::decode(&o.bytes)?,
            None => DecisionConfig::default(),
        });
    }
    Ok(update_config(&store, DEFAULT_CONFIG_KEY, |c| {
        if let Some(r) = replacement {
            *c = r;
        }
        if let Some(k) = kill_switch {
            c.kill_switch = k == "on";
        }
    })
    .await?)
}

#[derive(Debug, Serialize)]
pub struct ExportReport {
    pub sessions: usize,
    pub with_order: usize,
    pub unreadable_events: usize,
}

/// Folds every session of the event log (as the feature updater does) and writes them, labelled with
/// "placed an order", in the UCI layout that `train` reads.
pub async fn export_sessions(stack: &LocalStack, out: &Path) -> Result<ExportReport, BoxError> {
    let (ddb, env) = crate::rebuild::feature_tables(stack).await?;
    let log = crate::census::scan_log(&ddb, env.required("EVENT_LOG_TABLE")?).await?;
    let (docs, unreadable) = rebuild(log);
    let rows = labelled_sessions(&docs);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file =
        std::fs::File::create(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    write_csv(file, rows.iter().map(|(_, row, label)| (row, *label)))?;
    Ok(ExportReport {
        sessions: rows.len(),
        with_order: rows.iter().filter(|r| r.2).count(),
        unreadable_events: unreadable.len(),
    })
}

/// Runs the promotion rule against the local stack's registry.
pub async fn promote(
    stack: &LocalStack,
    name: &str,
    version: &str,
    eval_csv: Option<&Path>,
    override_reason: Option<&str>,
) -> Result<PromotionRecord, BoxError> {
    let store = registry_store(stack).await?;
    let evaluation = eval_csv.map(read_dataset).transpose()?;
    Ok(registry::promote(
        &store,
        name,
        version,
        evaluation.as_ref(),
        override_reason,
        Utc::now(),
    )
    .await?)
}
