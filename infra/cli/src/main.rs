//! `checkout-ai`: the operator CLI.

use checkout_ai::local::stack::LocalStack;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use checkout_ai as ops;

#[derive(Parser)]
#[command(name = "checkout-ai", version, about = "checkout-ai operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The learning loop: point-in-time training rows from the event log, off-policy evaluation, training
    /// and promotion of learned policies, and the Open Bandit Dataset check of the estimators.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The fraud-risk model in the registry: publish an artifact (`fraud-bench` writes one), and promote a
    /// published version when it ranks fraud at least as well at no more cost than the champion, on the
    /// same held-out rows.
    #[command(subcommand)]
    RiskModel(RiskModelCommand),
    /// Run the closed-loop simulator: the real decision engine on UCI sessions in a world with a known,
    /// context-dependent effect per action; learn, evaluate off-policy and promote in rounds. Writes
    /// simulation.json and simulation.html.
    Simulate {
        #[arg(long, default_value = "../shared/data/online_shoppers_intention.csv")]
        uci: PathBuf,
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        #[arg(long, default_value_t = 20_000)]
        per_round: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 7)]
        truth_seed: u64,
        /// Bootstrap resamples of each round's off-policy evaluation.
        #[arg(long, default_value_t = 500)]
        resamples: usize,
        /// A JSON file overriding the truth's effects (see docs/learning.md).
        #[arg(long)]
        truth: Option<PathBuf>,
        #[arg(long, default_value = "target/simulation")]
        out_dir: PathBuf,
    },
    /// Archive the local event log (its stream, INSERTs in and erasures' REMOVEs out) as Parquet by event
    /// hour under `out`, as Firehose does in AWS, and read every experiment with units both from the
    /// evaluator's DynamoDB units and with `sql/experiment_readout.sql` on the archive (DuckDB).
    Archive {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long, default_value = "out/archive")]
        out: PathBuf,
    },
    /// One batch run of the item and page features (a stack in batch mode, `ItemPageFeatures=batch`): the
    /// log archived under `out` as Firehose would, `sql/item_features.sql` and `sql/page_features.sql` on
    /// DuckDB, and each item or page that changed since the last run written once, as the scheduled
    /// `ItemPageBatchFunction` does with Athena in AWS.
    BatchFeatures {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long, default_value = "out/archive")]
        out: PathBuf,
    },
    /// The cross-sell hit rate on held-out REES46 sessions (the last third, by first event) for each co-view
    /// window, with the pair counts each keeps: the trade-off of bounding co-occurrence.
    CrossSellBench {
        #[arg(long, default_value = "../shared/data/rees46-2019-10-01-head.csv")]
        file: PathBuf,
    },
    /// What the feature updater's writes cost, measured in memory through the real updater: the REES46
    /// replay in the stream mapping's batches, write units per event (by item size, transactions
    /// doubled) and the hottest partition keys.
    WriteCost {
        #[arg(long, default_value = "../shared/data/rees46-2019-10-01-head.csv")]
        file: PathBuf,
        #[arg(long, default_value_t = checkout_ai::write_cost::TEMPLATE_BATCH_SIZE)]
        batch_size: usize,
        /// Only the first N rows.
        #[arg(long)]
        limit: Option<usize>,
        /// Instead of REES46, the skewed synthetic load with this many events (one product at
        /// `--hot-share` of all views), and the hottest partition key's rate at `--events-per-second`.
        #[arg(long)]
        skew_events: Option<usize>,
        #[arg(long, default_value_t = 0.05)]
        hot_share: f64,
        #[arg(long, default_value_t = 50_000.0)]
        events_per_second: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The offline fraud benchmark with known fraud: the fraud-detection handbook's transaction simulator
    /// and protocol (train a week, wait a week for labels, test a week), the risk model's ROC AUC, average
    /// precision and card precision@100 against the handbook's logistic regression, and the expected cost
    /// of friction bands fitted from the costs against a single block threshold and no gating. Writes
    /// bench.json and cost-curve.svg.
    FraudBench {
        /// Simulated worlds: seeds `first-seed .. first-seed + seeds`.
        #[arg(long, default_value_t = 8)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// A JSON file of friction costs (see docs/fraud.md; default: the documented defaults).
        #[arg(long)]
        costs: Option<PathBuf>,
        /// The order margin as a share of its value.
        #[arg(long, default_value_t = 0.3)]
        margin_rate: f64,
        #[arg(long, default_value = "target/fraud")]
        out_dir: PathBuf,
    },
    /// The drift monitor's measured behaviour on the UCI sessions: false alarms of windows without drift
    /// by size, and detection of a 0.25σ shift of each input at n = 10,000. Prints a table; `--out`
    /// writes JSON.
    DriftSimulate {
        #[arg(long, default_value = "../shared/data/online_shoppers_intention.csv")]
        uci: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Resamples at n = 1,000 (proportionally fewer for larger windows, at least 100).
        #[arg(long, default_value_t = 1000)]
        resamples: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase everything held about one person (GDPR Art. 17): their sessions from the event log and
    /// every projection (aggregates recomputed without them), quarantined payloads that carry the id,
    /// and a tombstone so that ingest drops their events until the retention has passed. Writes a
    /// PII-free receipt to the reports bucket and prints it; `--out` writes it too.
    Erase {
        #[command(flatten)]
        stack: StackArg,
        /// The raw user id, as the storefront knows it (pseudonymized here with the ingest key).
        #[arg(long)]
        user: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the JSON Schema of event schema v6 (committed as events/schema/event-v6.schema.json).
    Schema,
    /// Explain one decision from the event log and the registry alone: what the scorer saw (and whether
    /// it hashes to the logged feature hash), the model, policy and rules versions with their training
    /// data and metrics, the experiment and its bucketing, the guardrails that fired, the reason codes
    /// and the outcome. Prints text; `--out` also writes JSON. Exits 2 when a recomputed part disagrees
    /// with the log.
    Explain {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long)]
        decision: String,
        /// The decision's session, when known (saves the index lookup).
        #[arg(long)]
        session: Option<String>,
        /// Hours after the decision within which an order is its outcome.
        #[arg(long, default_value_t = 24)]
        horizon_hours: i64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replay the REES46 clickstream into the event stream as v1 events (PutRecords, ≤ 500 per call).
    Replay {
        #[command(flatten)]
        stack: StackArg,
        /// The REES46 CSV.
        #[arg(long, default_value = "../shared/data/rees46-2019-10-01-head.csv")]
        file: PathBuf,
        /// Also send every Nth record twice, back to back (a producer retry), to exercise de-duplication.
        #[arg(long)]
        dup_every: Option<usize>,
        /// Only the first N rows.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Drive the ingest handler from the stream, per shard and in batches, as Lambda's event source
    /// mapping would (moto runs none).
    DriveIngest {
        #[command(flatten)]
        stack: StackArg,
    },
    /// Drive the feature updater from the event log's DynamoDB stream, as Lambda's event source mapping
    /// would (INSERT records only, as the template's filter).
    DriveFeatures {
        #[command(flatten)]
        stack: StackArg,
    },
    /// Recompute every feature from the event log (in memory) and diff it against the live features
    /// table. Exits 2 when they differ.
    RebuildFeatures {
        #[command(flatten)]
        stack: StackArg,
    },
    /// Train the purchase-propensity model (linfa logistic regression) on a labelled CSV in the UCI layout:
    /// the UCI online-shoppers file or `export-sessions` output. Prints 5-fold CV AUC, holdout AUC, Brier
    /// score and a reliability table; writes the artifact and optionally publishes it to the registry.
    Train {
        #[arg(long, default_value = "../shared/data/online_shoppers_intention.csv")]
        csv: PathBuf,
        #[arg(long, default_value = checkout_domain::model::DEFAULT_MODEL_NAME)]
        name: String,
        /// Default: `<UTC time>-<first 8 hex of the data's SHA-256>`.
        #[arg(long)]
        version: Option<String>,
        /// Write the artifact here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also publish it to the local stack's model registry (`models/<name>/<version>/model.json`).
        #[arg(long)]
        publish: bool,
        /// Exit 2, writing and publishing nothing, when the mean cross-validated AUC is below this.
        #[arg(long)]
        min_auc: Option<f64>,
        #[command(flatten)]
        stack: StackArg,
    },
    /// Export every session of the event log (folded as the feature updater does), labelled with "placed
    /// an order", as a CSV in the UCI layout for `train`.
    ExportSessions {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long, default_value = "out/sessions.csv")]
        out: PathBuf,
    },
    /// Make a published version the champion if its AUC is at least the champion's on the same data (the
    /// recorded holdout when both share it, else `--eval-csv`), or with `--override`. Writes a promotion
    /// record either way; exits 3 when the pointer was not moved.
    Promote {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long, default_value = checkout_domain::model::DEFAULT_MODEL_NAME)]
        name: String,
        #[arg(long)]
        version: String,
        /// Score champion and challenger on this labelled CSV (rows neither trained on).
        #[arg(long)]
        eval_csv: Option<PathBuf>,
        /// Promote even if the rule refuses; the reason is logged and recorded.
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
    },
    /// Show or change the scorer's decision config (policy, experiments, kill switch) in the models
    /// bucket. Changes are validated and written only if nobody changed it meanwhile; scorers pick them up
    /// within their config TTL.
    DecisionConfig {
        #[command(flatten)]
        stack: StackArg,
        /// Replace the whole config with this JSON document.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Force every decision to control (`on`), or resume (`off`).
        #[arg(long, value_parser = ["on", "off"])]
        kill_switch: Option<String>,
    },
    /// Evaluate an experiment from a CSV export (one row per unit, or several to combine): writes
    /// report.json and report.html. Bad rows are counted, units in two variants excluded.
    Evaluate(EvaluateArgs),
    /// Replay, ingest and summarise: the demo's main job (the stack must be up; `make demo` does it all).
    Demo {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long, default_value = "../shared/data/rees46-2019-10-01-head.csv")]
        file: PathBuf,
        /// Where the summary goes.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct EvaluateArgs {
    #[arg(long)]
    csv: PathBuf,
    /// The unit column (e.g. the user id).
    #[arg(long)]
    unit: String,
    /// The variant column.
    #[arg(long)]
    variant: String,
    /// The control variant's value.
    #[arg(long)]
    control: String,
    /// NAME:COLUMN:proportion|mean (repeatable).
    #[arg(long = "metric")]
    metrics: Vec<ops::evaluate::MetricArg>,
    /// NAME:NUMERATOR_COLUMN:DENOMINATOR_COLUMN, by the delta method (repeatable).
    #[arg(long = "ratio")]
    ratios: Vec<ops::evaluate::RatioArg>,
    /// A pre-exposure column: regression-adjusts (CUPED) every proportion and mean metric.
    #[arg(long)]
    covariate: Option<String>,
    /// The configured split, e.g. control=0.5,treatment=0.5 (default: equal). Rows of other variants
    /// are bad rows.
    #[arg(long)]
    weights: Option<ops::evaluate::Weights>,
    /// A metric that must not get worse (repeatable); the others are goal metrics.
    #[arg(long = "guardrail", value_name = "METRIC")]
    guardrails: Vec<String>,
    /// A metric where lower is better (repeatable).
    #[arg(long = "inverse", value_name = "METRIC")]
    inverse: Vec<String>,
    /// Sequential test (confidence sequences): valid under continuous monitoring.
    #[arg(long)]
    sequential: bool,
    #[arg(long, default_value_t = checkout_domain::stats::frequentist::SEQUENTIAL_TUNING)]
    sequential_tuning: f64,
    /// Add Bayesian chance to win and risk.
    #[arg(long)]
    bayesian: bool,
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// Multiple-comparison correction across arms and metrics: holm, bh or none.
    #[arg(long, default_value = "holm")]
    correction: checkout_domain::stats::correction::Correction,
    /// No decision below this many units in any arm.
    #[arg(long, default_value_t = checkout_domain::stats::analysis::MIN_SAMPLE_PER_ARM)]
    min_sample: u64,
    /// Where report.json and report.html go.
    #[arg(long)]
    out: PathBuf,
}

impl EvaluateArgs {
    fn run(self) -> Result<(), ops::BoxError> {
        use checkout_domain::stats::analysis::{Settings, Test};
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(format!("--alpha must be in (0, 1), got {}", self.alpha).into());
        }
        if !(self.sequential_tuning.is_finite() && self.sequential_tuning > 0.0) {
            return Err("--sequential-tuning must be positive".into());
        }
        let spec = ops::evaluate::Spec {
            unit: self.unit,
            variant: self.variant,
            control: self.control,
            metrics: self.metrics,
            ratios: self.ratios,
            covariate: self.covariate,
            weights: self.weights.map(|w| w.0),
            guardrails: self.guardrails,
            inverse: self.inverse,
            settings: Settings {
                alpha: self.alpha,
                test: if self.sequential {
                    Test::Sequential
                } else {
                    Test::TwoSided
                },
                sequential_tuning: self.sequential_tuning,
                correction: self.correction,
                bayesian: self.bayesian,
                min_sample_per_arm: self.min_sample,
                ..Settings::default()
            },
        };
        let report = ops::evaluate::evaluate(&self.csv, &spec, &self.out)?;
        print!("{}", ops::evaluate::summary(&report));
        println!(
            "  wrote {} and {}",
            self.out.join("report.json").display(),
            self.out.join("report.html").display()
        );
        Ok(())
    }
}

#[derive(Subcommand)]
enum RiskModelCommand {
    /// Publish a risk-model artifact under models/fraud-risk/<version>/ (idempotent for the same bytes).
    Publish {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long)]
        artifact: PathBuf,
    },
    /// Compare a published version with the champion, move the pointer if the rule allows, and write the
    /// promotion record either way. Exit 3 when not promoted.
    Promote {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long)]
        version: String,
        /// Promote even if the rule refuses, recording this reason.
        #[arg(long = "override")]
        override_reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Write one point-in-time row per decision in the local stack's event log (JSON lines) and print the
    /// summary, with the feature-hash match rate.
    Dataset {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long, default_value = "target/learning/rows.jsonl")]
        out: PathBuf,
        /// An order within this many hours after a decision is its outcome.
        #[arg(long, default_value_t = 24)]
        horizon_hours: i64,
    },
    /// Estimate off-policy what each policy would have earned on the rows: the logged policies, doing
    /// nothing, the configured policy and every `--policy` artifact. Prints the table; writes ope.json and
    /// ope.html.
    Evaluate {
        #[arg(long, default_value = "target/learning/rows.jsonl")]
        rows: PathBuf,
        /// A learned policy artifact to evaluate (repeatable).
        #[arg(long)]
        policy: Vec<PathBuf>,
        /// The artifact whose outcome models are the reward model (default: the first `--policy`).
        #[arg(long)]
        reward_model: Option<PathBuf>,
        #[arg(long, default_value_t = 2000)]
        resamples: usize,
        #[arg(long, default_value_t = 20_261_130)]
        seed: u64,
        #[arg(long, default_value = "target/learning")]
        out_dir: PathBuf,
    },
    /// Train a learned policy (linfa) on the training split of the rows, evaluate it on the held-out
    /// split, write the artifact and optionally publish it to the local stack's registry.
    Train {
        #[arg(long, default_value = "target/learning/rows.jsonl")]
        rows: PathBuf,
        #[arg(long, default_value = checkout_domain::decision::learned::DEFAULT_POLICY_NAME)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// Share of decisions held out (chosen by a hash of the decision id).
        #[arg(long, default_value_t = 0.3)]
        held_out: f64,
        #[arg(long, default_value = "target/learning/policy.json")]
        out: PathBuf,
        #[arg(long)]
        publish: bool,
        #[command(flatten)]
        stack: StackArg,
    },
    /// Promote a published policy if its doubly robust lower 95% bound beats the champion's estimate on
    /// the held-out rows (or with --override). Writes a record either way; exits 3 when not promoted.
    Promote {
        #[command(flatten)]
        stack: StackArg,
        #[arg(long, default_value = checkout_domain::decision::learned::DEFAULT_POLICY_NAME)]
        name: String,
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "target/learning/rows.jsonl")]
        rows: PathBuf,
        #[arg(long, default_value_t = 0.3)]
        held_out: f64,
        #[arg(long = "override")]
        override_reason: Option<String>,
    },
    /// Estimate the uniform-random policy's click rate on the Open Bandit Dataset from the Thompson-sampling
    /// logs and compare it with the random logs' own rate. Writes obd.json and obd.html.
    Obd {
        #[arg(long, default_value = "../shared/data/obd")]
        data: PathBuf,
        #[arg(long, default_value = "target/learning")]
        out_dir: PathBuf,
    },
}

async fn policy(command: PolicyCommand) -> Result<ExitCode, ops::BoxError> {
    use checkout_domain::ope::Settings;
    use ops::learn;
    match command {
        PolicyCommand::Dataset {
            stack,
            out,
            horizon_hours,
        } => print_json(&learn::dataset(&stack.load()?, &out, horizon_hours).await?)?,
        PolicyCommand::Evaluate {
            rows,
            policy,
            reward_model,
            resamples,
            seed,
            out_dir,
        } => {
            let rows = learn::read_rows(&rows)?;
            let policies = policy
                .iter()
                .map(|p| learn::read_policy(p))
                .collect::<Result<Vec<_>, _>>()?;
            let reward = reward_model
                .as_deref()
                .map(learn::read_policy)
                .transpose()?;
            let settings = Settings {
                resamples,
                seed,
                ..Settings::default()
            };
            let report = learn::evaluate_policies(
                &rows,
                &policies,
                reward.as_ref().or(policies.first()),
                &checkout_domain::decision::policy::PolicyConfig::default(),
                settings,
            );
            learn::write_report(
                &report,
                &out_dir,
                "Off-policy evaluation",
                "Each policy's estimated margin per decision on the logged decisions.",
            )?;
            learn::print_report(&report);
        }
        PolicyCommand::Train {
            rows,
            name,
            version,
            held_out,
            out,
            publish,
            stack,
        } => {
            let rows = learn::read_rows(&rows)?;
            let stack = if publish { Some(stack.load()?) } else { None };
            print_json(&learn::train(&rows, &name, version, held_out, &out, stack.as_ref()).await?)?
        }
        PolicyCommand::Promote {
            stack,
            name,
            version,
            rows,
            held_out,
            override_reason,
        } => {
            let rows = learn::read_rows(&rows)?;
            let record = learn::promote(
                &stack.load()?,
                &name,
                &version,
                &rows,
                held_out,
                override_reason.as_deref(),
            )
            .await?;
            print_json(&record)?;
            return Ok(promotion_exit(
                record.pointer_moved,
                &record.decision.reason,
            ));
        }
        PolicyCommand::Obd { data, out_dir } => {
            let check = learn::obd(&data, Settings::default())?;
            std::fs::create_dir_all(&out_dir)?;
            std::fs::write(out_dir.join("obd.json"), serde_json::to_vec_pretty(&check)?)?;
            std::fs::write(out_dir.join("obd.html"), learn::obd_html(&check))?;
            learn::print_obd(&check);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
struct StackArg {
    /// The local stack description written by `make stack-up`.
    #[arg(long, env = "CHECKOUT_AI_STACK", default_value = ".local/stack.json")]
    stack: PathBuf,
}

impl StackArg {
    fn load(&self) -> Result<LocalStack, ops::BoxError> {
        LocalStack::load(&self.stack)
    }
}

async fn train(
    csv: &std::path::Path,
    name: &str,
    version: Option<String>,
    out: Option<&std::path::Path>,
    publish: Option<&StackArg>,
    min_auc: Option<f64>,
) -> Result<ExitCode, ops::BoxError> {
    let artifact = ops::model::train_file(csv, name, version, chrono::Utc::now())?;
    // The gate comes first, so that a model below it is neither written nor published; files are written
    // before anything is printed, so that a closed stdout (`| head`) cannot lose them.
    let mean = artifact.metrics.cross_validation.mean_auc;
    if let Some(floor) = min_auc.filter(|&f| mean < f) {
        ops::model::print_report(&artifact);
        eprintln!("checkout-ai: mean CV AUC {mean:.4} is below --min-auc {floor}; nothing written");
        return Ok(ExitCode::from(2));
    }
    let bytes = artifact.encode()?;
    if let Some(path) = out {
        std::fs::write(path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let published = match publish {
        Some(stack) => {
            let store = ops::model::registry_store(&stack.load()?).await?;
            let key = checkout_domain::model::registry::publish(&store, &artifact).await?;
            Some(format!("s3://{}/{key}", store.bucket))
        }
        None => None,
    };
    ops::model::print_report(&artifact);
    if let Some(path) = out {
        println!("  artifact  {} ({} bytes)", path.display(), bytes.len());
    }
    if let Some(url) = published {
        println!("  published {url}");
    }
    Ok(ExitCode::SUCCESS)
}

/// 0 when the pointer moved, else 3 (not promoted, with the reason on stderr).
fn promotion_exit(moved: bool, reason: &str) -> ExitCode {
    if moved {
        ExitCode::SUCCESS
    } else {
        eprintln!("checkout-ai: not promoted: {reason}");
        ExitCode::from(3)
    }
}

/// Prints a result as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<(), ops::BoxError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs one command. `Ok` carries the exit code: 0, or the documented code of a refusal that is not an
/// error (2: a gate or a difference, 3: not promoted).
async fn run(command: Command) -> Result<ExitCode, ops::BoxError> {
    match command {
        Command::Schema => ops::schema()?,
        Command::Replay {
            stack,
            file,
            dup_every,
            limit,
        } => print_json(&ops::replay(&stack.load()?, &file, dup_every, limit).await?)?,
        Command::DriveIngest { stack } => print_json(&ops::drive_ingest(&stack.load()?).await?)?,
        Command::DriveFeatures { stack } => {
            print_json(&ops::drive_features(&stack.load()?).await?)?
        }
        Command::RebuildFeatures { stack } => {
            let report = ops::rebuild_features(&stack.load()?).await?;
            print_json(&report)?;
            if report.differences > 0 {
                eprintln!(
                    "checkout-ai: the live features table differs from the rebuild in {} items",
                    report.differences
                );
                return Ok(ExitCode::from(2));
            }
        }
        Command::Train {
            csv,
            name,
            version,
            out,
            publish,
            min_auc,
            stack,
        } => {
            return train(
                &csv,
                &name,
                version,
                out.as_deref(),
                publish.then_some(&stack),
                min_auc,
            )
            .await
        }
        Command::ExportSessions { stack, out } => {
            print_json(&ops::model::export_sessions(&stack.load()?, &out).await?)?
        }
        Command::Promote {
            stack,
            name,
            version,
            eval_csv,
            override_reason,
        } => {
            let record = ops::model::promote(
                &stack.load()?,
                &name,
                &version,
                eval_csv.as_deref(),
                override_reason.as_deref(),
            )
            .await?;
            print_json(&record)?;
            return Ok(promotion_exit(
                record.pointer_moved,
                &record.decision.reason,
            ));
        }
        Command::DecisionConfig {
            stack,
            file,
            kill_switch,
        } => {
            let config = ops::model::decision_config(
                &stack.load()?,
                file.as_deref(),
                kill_switch.as_deref(),
            )
            .await?;
            print!("{}", String::from_utf8_lossy(&config.encode()));
        }
        Command::Evaluate(args) => args.run()?,
        Command::Policy(command) => return policy(command).await,
        Command::RiskModel(command) => {
            use checkout_domain::risk::model::{promote, RiskModelArtifact};
            match command {
                RiskModelCommand::Publish { stack, artifact } => {
                    let store = ops::model::registry_store(&stack.load()?).await?;
                    let a = RiskModelArtifact::decode(&std::fs::read(&artifact)?)?;
                    let key = checkout_domain::model::registry::publish(&store, &a).await?;
                    println!("published {}@{} at {key}", a.name, a.version);
                }
                RiskModelCommand::Promote {
                    stack,
                    version,
                    override_reason,
                } => {
                    let store = ops::model::registry_store(&stack.load()?).await?;
                    let record = promote(
                        &store,
                        &version,
                        override_reason.as_deref(),
                        chrono::Utc::now(),
                    )
                    .await?;
                    print_json(&record)?;
                    return Ok(promotion_exit(
                        record.pointer_moved,
                        &record.decision.reason,
                    ));
                }
            }
        }
        Command::Simulate {
            uci,
            rounds,
            per_round,
            seed,
            truth_seed,
            resamples,
            truth,
            out_dir,
        } => {
            let mut settings = ops::simulate::SimSettings {
                rounds,
                per_round,
                seed,
                truth_seed,
                resamples,
                ..Default::default()
            };
            if let Some(path) = truth {
                settings.truth = serde_json::from_slice(&std::fs::read(&path)?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let report = ops::simulate::run(&settings, &uci, &out_dir)?;
            ops::simulate::print(&report);
        }
        Command::Archive { stack, out } => {
            print_json(&checkout_ai::archive::archive_and_compare(&stack.load()?, &out).await?)?;
        }
        Command::BatchFeatures { stack, out } => print_json(
            &checkout_ai::archive::batch_run(&stack.load()?, &out, chrono::Utc::now()).await?,
        )?,
        Command::CrossSellBench { file } => print_json(&checkout_ai::cross_sell::run(
            &file,
            &[None, Some(1), Some(2), Some(3), Some(5)],
        )?)?,
        Command::WriteCost {
            file,
            batch_size,
            limit,
            skew_events,
            hot_share,
            events_per_second,
            seed,
        } => match skew_events {
            Some(n) => print_json(
                &checkout_ai::write_cost::skew(n, hot_share, seed, batch_size, events_per_second)
                    .await?,
            )?,
            None => print_json(&checkout_ai::write_cost::rees46(&file, batch_size, limit).await?)?,
        },
        Command::FraudBench {
            seeds,
            first_seed,
            costs,
            margin_rate,
            out_dir,
        } => {
            let costs = match costs {
                Some(path) => serde_json::from_slice(&std::fs::read(&path)?)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                None => Default::default(),
            };
            let report = ops::fraud::run(
                first_seed..first_seed + seeds,
                &costs,
                margin_rate,
                &out_dir,
            )?;
            ops::fraud::print(&report);
        }
        Command::DriftSimulate {
            uci,
            seed,
            resamples,
            out,
        } => {
            let b = ops::drift::simulate(&uci, seed, resamples)?;
            ops::drift::print(&b);
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_vec_pretty(&b)?)?;
                println!("wrote {}", path.display());
            }
        }
        Command::Erase { stack, user, out } => {
            let receipt = ops::erase::run(&stack.load()?, &user).await?;
            ops::erase::print(&receipt);
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_vec_pretty(&receipt)?)?;
                println!("wrote {}", path.display());
            }
        }
        Command::Explain {
            stack,
            decision,
            session,
            horizon_hours,
            out,
        } => {
            let x = ops::explain::run(&stack.load()?, &decision, session.as_deref(), horizon_hours)
                .await?;
            ops::explain::print(&x);
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_vec_pretty(&x)?)?;
                println!("wrote {}", path.display());
            }
            if !x.discrepancies.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Demo { stack, file, out } => ops::demo(&stack.load()?, &file, &out).await?,
    }
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("checkout-ai: error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    #[test]
    fn evaluate_parses_every_documented_option() {
        let cli = parse(
            "checkout-ai evaluate --csv f.csv --unit u --variant v --control c \
             --metric conv:converted:proportion --metric rev:revenue:mean --ratio aov:revenue:orders \
             --covariate pre --weights c=0.5,t=0.5 --guardrail rev --inverse rev --sequential --bayesian \
             --correction bh --out o",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Evaluate(args) = cli.command else {
            panic!("not evaluate");
        };
        assert_eq!(args.metrics.len(), 2);
        assert_eq!(args.ratios.len(), 1);
        assert_eq!(
            args.weights.map(|w| w.0),
            Some(vec![("c".to_string(), 0.5), ("t".to_string(), 0.5)])
        );
        assert!(args.sequential && args.bayesian);
        let base = "checkout-ai evaluate --csv f --unit u --variant v --control c --out o";
        for wrong in [
            "--metric x:y:median",
            "--ratio a:b",
            "--weights c=1",
            "--correction bonferroni",
        ] {
            assert!(
                parse(&format!("{base} {wrong}")).is_err(),
                "{wrong} was accepted"
            );
        }
    }
}
