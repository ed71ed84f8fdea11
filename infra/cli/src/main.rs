//! `checkout-ai`: the operator CLI.

use checkout_shared::aws::stack::LocalStack;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

use checkout_ai as ops;

#[derive(Parser)]
#[command(name = "checkout-ai", version, about = "checkout-ai operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the JSON Schema of event schema v1 (committed as events/schema/event-v1.schema.json).
    Schema,
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

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schema => ops::schema(),
        Command::Replay {
            stack,
            file,
            dup_every,
            limit,
        } => match stack.load() {
            Ok(s) => ops::replay(&s, &file, dup_every, limit).await.map(|r| {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            }),
            Err(e) => Err(e),
        },
        Command::DriveIngest { stack } => match stack.load() {
            Ok(s) => ops::drive_ingest(&s).await.map(|r| {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            }),
            Err(e) => Err(e),
        },
        Command::DriveFeatures { stack } => match stack.load() {
            Ok(s) => ops::drive_features(&s).await.map(|r| {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            }),
            Err(e) => Err(e),
        },
        Command::RebuildFeatures { stack } => match stack.load() {
            Ok(s) => match ops::rebuild_features(&s).await {
                Ok(r) => {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    if r.differences > 0 {
                        eprintln!(
                            "checkout-ai: the live features table differs from the rebuild in {} items",
                            r.differences
                        );
                        std::process::exit(2);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        Command::Demo { stack, file, out } => match stack.load() {
            Ok(s) => ops::demo(&s, &file, &out).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        eprintln!("checkout-ai: error: {e}");
        let mut source = e.source();
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}
