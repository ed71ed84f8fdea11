//! The local event archive and the experiment readout on it.
//!
//! In AWS, the archiver function puts each event the log admits to a Firehose delivery stream, which
//! converts the rows to Parquet with the Glue table's schema and writes them to the archive bucket by
//! event date and hour; Athena runs `sql/experiment_readout.sql` on them. Firehose and Athena do not run
//! on the local stack, so here the same rows ([`ArchiveRow`], from the event log's stream, mapped by
//! the archiver's own [`archiver::archive_row`]) are staged as JSON lines and `infra/archive_sql.py`
//! does Firehose's conversion (same layout, same columns) and runs the same SQL files with DuckDB.

use crate::local::esm::{DynamoStreamMapping, Positions};
use crate::local::stack::LocalStack;
use crate::BoxError;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use checkout_domain::archive::ArchiveRow;
use checkout_domain::experiment::config::Experiment;
use checkout_domain::experiment::evaluation::{ReadoutRow, UnitFold};
use checkout_domain::features::batch::{self, ItemRow, PageRow};
use checkout_domain::features::rebuild::{self, count_by_entity, Difference};
use checkout_domain::features::{Doc, Key};
use checkout_domain::ports::ReadoutQuery;
use checkout_domain::stats::analysis::Settings;
use checkout_domain::stats::report::Report;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What an archive run wrote.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ArchiveReport {
    pub rows: usize,
    /// Log entries that could not be archived (logged; the rest goes on).
    pub unarchivable: usize,
    pub partitions: usize,
    /// Rows in the Parquet files, as DuckDB counts them.
    pub parquet_rows: usize,
    pub dir: PathBuf,
}

/// The repository: the nearest directory up from the working directory that has the SQL files.
fn repo_root() -> Result<PathBuf, BoxError> {
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .find(|d| d.join("sql/experiment_readout.sql").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("no sql/experiment_readout.sql above {}", cwd.display()).into())
}

/// The dev virtualenv's Python, which has DuckDB (`CHECKOUT_AI_PYTHON` overrides it).
fn python(root: &Path) -> PathBuf {
    std::env::var_os("CHECKOUT_AI_PYTHON")
        .map_or_else(|| root.join(".venv/bin/python"), PathBuf::from)
}

fn run_python(args: &[&str]) -> Result<Vec<u8>, BoxError> {
    let root = repo_root()?;
    let python = python(&root);
    let out = Command::new(&python)
        .arg(root.join("infra/archive_sql.py"))
        .args(args)
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "infra/archive_sql.py {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out.stdout)
}

/// Archives every event in the local event log: the log's stream from its start (an INSERT archives an
/// event, an erasure's REMOVE takes it back out), staged as JSON lines under `dir/staging`, then written
/// as Parquet under `dir/events/dt=…/hour=…/`. Rebuilds the archive from scratch on every run.
pub async fn archive_log(stack: &LocalStack, dir: &Path) -> Result<ArchiveReport, BoxError> {
    let sdk = stack.sdk_config().await;
    let table = stack.resource("EventLogTable")?;
    let stream_arn = table
        .stream_arn
        .clone()
        .ok_or("the event log table has no stream")?;
    let mapping = DynamoStreamMapping {
        streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
        stream_arn,
        batch_size: 1000,
        max_retries: 0,
        event_names: vec!["INSERT".into(), "REMOVE".into()],
        on_failure: None,
    };
    // What the log holds at the end of its stream: an erasure's REMOVEs take events back out, so the
    // archive never keeps what the log no longer has.
    let rows =
        std::cell::RefCell::new(std::collections::BTreeMap::<(String, String), ArchiveRow>::new());
    let unarchivable = std::cell::Cell::new(0usize);
    mapping
        .drain(&Positions::new(), |event: StreamEvent| {
            let (rows, unarchivable) = (&rows, &unarchivable);
            async move {
                let mut rows = rows.borrow_mut();
                for record in &event.records {
                    if record.event_name == "REMOVE" {
                        let key: Result<LogEntryKey, _> =
                            serde_dynamo::from_item(record.change.keys.clone());
                        if let Ok(k) = key {
                            rows.remove(&(k.session_id, k.event_id));
                        }
                        continue;
                    }
                    match archiver::archive_row(record) {
                        Ok(row) => {
                            rows.insert((row.session_id.clone(), row.event_id.clone()), row);
                        }
                        Err(e) => {
                            eprintln!("not archived: {e}");
                            unarchivable.set(unarchivable.get() + 1);
                        }
                    }
                }
                Ok(DynamoDbEventResponse::default())
            }
        })
        .await?;
    let rows = rows.into_inner();
    let mut report = write_archive(dir, rows.values())?;
    report.unarchivable = unarchivable.get();
    Ok(report)
}

/// Writes rows as the archive under `dir` (staged JSON lines, then Parquet by event hour), replacing
/// what was there.
pub fn write_archive<'a>(
    dir: &Path,
    rows: impl IntoIterator<Item = &'a ArchiveRow>,
) -> Result<ArchiveReport, BoxError> {
    let staging = dir.join("staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    let mut lines = Vec::new();
    let mut n = 0;
    for row in rows {
        serde_json::to_writer(&mut lines, row)?;
        lines.push(b'\n');
        n += 1;
    }
    std::fs::File::create(staging.join("events.json"))?.write_all(&lines)?;
    let written: serde_json::Value =
        serde_json::from_slice(&run_python(&["parquet", &dir.display().to_string()])?)?;
    Ok(ArchiveReport {
        rows: n,
        unarchivable: 0,
        partitions: written["partitions"].as_u64().unwrap_or(0) as usize,
        parquet_rows: written["rows"].as_u64().unwrap_or(0) as usize,
        dir: dir.to_path_buf(),
    })
}

/// The event log's key, as a stream record's `Keys` carries it.
#[derive(serde::Deserialize)]
struct LogEntryKey {
    session_id: String,
    event_id: String,
}

/// The readout SQL's rows for one query, over the archive under `dir`.
pub fn readout(dir: &Path, q: &ReadoutQuery) -> Result<Vec<ReadoutRow>, BoxError> {
    let (long_run, stop, tail_end) = q.long_run_parameters();
    let flag = |b: bool| if b { "1" } else { "0" };
    let out = run_python(&[
        "readout",
        &dir.display().to_string(),
        &q.experiment_id,
        flag(q.recovery),
        &ReadoutQuery::timestamp(q.window_end),
        &q.now.timestamp().to_string(),
        &q.currency,
        flag(long_run),
        &stop,
        &tail_end,
    ])?;
    Ok(serde_json::from_slice(&out)?)
}

/// The item and page features `sql/item_features.sql` and `sql/page_features.sql` compute over the
/// archive under `dir`, leaving out events past retention at `now` (epoch seconds), as features-table
/// items by key.
pub fn batch_features(dir: &Path, now: i64) -> Result<BTreeMap<Key, Doc>, BoxError> {
    #[derive(serde::Deserialize)]
    struct Rows {
        items: Vec<ItemRow>,
        pages: Vec<PageRow>,
    }
    let out = run_python(&["features", &dir.display().to_string(), &now.to_string()])?;
    let rows: Rows = serde_json::from_slice(&out)?;
    Ok(batch::docs(
        batch::items(&rows.items)?,
        batch::pages(&rows.pages)?,
    ))
}

/// One batch run of the item and page features on the local stack
/// ([`checkout_domain::features::ItemPageMode::Batch`]): the log archived under `dir` as Firehose would
/// have it, then [`run_on_archive`]. In AWS the scheduled `ItemPageBatchFunction` does the same with
/// Athena.
pub async fn batch_run(
    stack: &LocalStack,
    dir: &Path,
    now: DateTime<Utc>,
) -> Result<batch::RunCounts, BoxError> {
    archive_log(stack, dir).await?;
    Ok(run_on_archive(stack, dir, now).await?.1)
}

/// The archive's SQL (DuckDB) over the archive already under `dir` at `now`, and each item or page that
/// changed since the last run written once ([`batch::run_docs`]): what it computed, and what it did.
async fn run_on_archive(
    stack: &LocalStack,
    dir: &Path,
    now: DateTime<Utc>,
) -> Result<(BTreeMap<Key, Doc>, batch::RunCounts), BoxError> {
    let computed = batch_features(dir, now.timestamp())?;
    let (ddb, env) = crate::rebuild::feature_tables(stack).await?;
    let table = env.required("FEATURES_TABLE")?.to_string();
    let store = checkout_aws::features::DynamoFeatureStore { client: ddb, table };
    let run = batch::run_docs(&store, &computed, now, 16).await?;
    Ok((computed, run))
}

/// [`batch_run`] at the current time on a stack in batch mode, printed with its time; nothing on a stack
/// in stream mode.
pub async fn batch_run_if_batch(
    stack: &LocalStack,
    dir: &Path,
) -> Result<Option<batch::RunCounts>, BoxError> {
    if stack.item_page_mode()? != checkout_domain::features::ItemPageMode::Batch {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let run = batch_run(stack, dir, Utc::now()).await?;
    println!(
        "  {} ({:.1} s)",
        describe_run(&run),
        started.elapsed().as_secs_f64()
    );
    Ok(Some(run))
}

/// One line for a batch run.
pub fn describe_run(run: &batch::RunCounts) -> String {
    format!(
        "batch run of the item and page features: {} computed, {} written, {} unchanged ({} write units)",
        run.computed, run.written, run.unchanged, run.write_units
    )
}

/// The experiment's report from the archive: the readout's rows folded as the evaluator folds units.
pub fn report_from_archive(
    dir: &Path,
    experiment: &Experiment,
    settings: &Settings,
    currency: &str,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Report, BoxError> {
    let mut fold = UnitFold::new(
        experiment,
        format!("sql:{}", dir.join("events").display()),
        window_end,
        now,
        currency,
    );
    for row in &readout(dir, &fold.readout_query(&experiment.id))? {
        fold.add_readout(row);
    }
    Ok(fold.report(settings, now))
}

/// The fields two reports of the same data must agree on: all but the data's source.
fn comparable(report: &Report) -> Result<serde_json::Value, BoxError> {
    let mut v = serde_json::to_value(report)?;
    if let Some(data) = v.get_mut("data").and_then(|d| d.as_object_mut()) {
        data.remove("source");
    }
    Ok(v)
}

/// Archives the log under `dir` and reads every experiment both ways at one clock (now, the window
/// ending at its minute), and compares the item and page features of the archive's SQL with the table's
/// (on a stack in batch mode, after a batch run from the same archive): what `checkout-ai archive` and
/// the demo's last phase do.
pub async fn archive_and_compare(
    stack: &LocalStack,
    dir: &Path,
) -> Result<ArchiveComparison, BoxError> {
    let written = archive_log(stack, dir).await?;
    let now = Utc::now();
    let window_end =
        chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::minutes(1)).unwrap_or(now);
    let readouts = compare_readouts(stack, dir, window_end, now).await?;
    // In batch mode the table's items and pages are the last run's: run one on this archive first.
    let (sql, batch_run) =
        if stack.item_page_mode()? == checkout_domain::features::ItemPageMode::Batch {
            let (sql, run) = run_on_archive(stack, dir, now).await?;
            (sql, Some(run))
        } else {
            // Every archived event, as the live projection counts them (it keeps an aggregate until the
            // aggregate itself expires).
            (batch_features(dir, i64::MIN)?, None)
        };
    let (ddb, env) = crate::rebuild::feature_tables(stack).await?;
    let live =
        crate::census::scan_entities(&ddb, env.required("FEATURES_TABLE")?, &["item", "page"])
            .await?;
    let features = compare_features(&live, &sql);
    Ok(ArchiveComparison {
        written,
        readouts,
        features,
        batch_run,
    })
}

/// What `checkout-ai archive` and the demo's last phase find.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveComparison {
    pub written: ArchiveReport,
    /// Each experiment with units, read from DynamoDB and from the archive's SQL.
    pub readouts: Vec<ReadoutComparison>,
    pub features: FeaturesComparison,
    /// The batch run made before the comparison (a stack in batch mode).
    pub batch_run: Option<batch::RunCounts>,
}

/// The item and page features of the archive's SQL against the live features table's.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturesComparison {
    pub items: usize,
    pub pages: usize,
    /// Products and pages whose features differ, or that only one side has.
    pub differences: usize,
    /// The first few, in key order.
    pub sample: Vec<String>,
}

/// Compares the live table's item and page items with the SQL's, with the rebuild's diff.
pub fn compare_features(live: &BTreeMap<Key, Doc>, sql: &BTreeMap<Key, Doc>) -> FeaturesComparison {
    let differences = rebuild::diff(sql, live);
    let counts = count_by_entity(sql.values());
    FeaturesComparison {
        items: counts["item"],
        pages: counts["page"],
        differences: differences.len(),
        sample: differences
            .iter()
            .take(5)
            .map(|d| match d {
                Difference::Missing { key, .. } => format!("{key}: not in the table"),
                Difference::Unexpected { key, .. } => format!("{key}: not in the SQL"),
                Difference::Changed { key, .. } => format!("{key}: differs"),
            })
            .collect(),
    }
}

/// One experiment's report read both ways.
#[derive(Debug, Clone, Serialize)]
pub struct ReadoutComparison {
    pub experiment_id: String,
    /// Units per arm, from the experiment units in DynamoDB and from the archive's SQL.
    pub units_dynamodb: Vec<u64>,
    pub units_sql: Vec<u64>,
    pub identical: bool,
    /// The first fields that differ (JSON pointers), when not identical.
    pub differences: Vec<String>,
}

/// Reads every experiment of the local decision config that has units both ways, the evaluator's way
/// (its experiment units in DynamoDB, through its own port) and from the archive's SQL, at the same
/// `window_end` and clock, and compares the two reports field by field (all but the data's source).
pub async fn compare_readouts(
    stack: &LocalStack,
    dir: &Path,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<ReadoutComparison>, BoxError> {
    use checkout_domain::ports::ObjectStore as _;
    let sdk = stack.sdk_config().await;
    let function =
        experiment_evaluator::Function::new(&stack.env("ExperimentEvaluatorFunction")?, &sdk)
            .map_err(|e| e.to_string())?;
    let config = function
        .config_store
        .get(&function.config.decision_config_key)
        .await?
        .ok_or("no decision config in the models bucket")?;
    let experiments = checkout_domain::decision::config::DecisionConfig::decode(&config.bytes)
        .map_err(|e| e.to_string())?
        .all_experiments();
    let (settings, currency) = (&function.config.settings, &function.config.currency);
    let mut out = Vec::new();
    for experiment in &experiments {
        let mut fold = UnitFold::new(experiment, "dynamodb".into(), window_end, now, currency);
        fold.read_all(&function.units, &experiment.id).await?;
        if fold.data.rows == 0 {
            continue;
        }
        let from_units = fold.report(settings, now);
        let from_sql = report_from_archive(dir, experiment, settings, currency, window_end, now)?;
        let differences = differences(&from_units, &from_sql)?;
        out.push(ReadoutComparison {
            experiment_id: experiment.id.clone(),
            units_dynamodb: from_units.arms.iter().map(|a| a.units).collect(),
            units_sql: from_sql.arms.iter().map(|a| a.units).collect(),
            identical: differences.is_empty(),
            differences,
        });
    }
    Ok(out)
}

/// JSON pointers where two reports of the same data differ (all but the data's source; at most 10).
pub fn differences(a: &Report, b: &Report) -> Result<Vec<String>, BoxError> {
    let mut out = Vec::new();
    diff("", &comparable(a)?, &comparable(b)?, &mut out);
    Ok(out)
}

/// JSON pointers where `a` and `b` differ (at most 10).
fn diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    if out.len() >= 10 {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                diff(
                    &format!("{path}/{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}/{i}"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}
