//! The operator CLI's operations, as a library so the integration tests run exactly what the CLI runs.
//!
//! | module | what |
//! |---|---|
//! | [`replay`] | a dataset into the event stream |
//! | [`archive`] | the local event archive (Parquet by event hour) and the SQL experiment readout on it |
//! | [`drivers`] | the local event-source-mapping drivers of ingest and the feature updater |
//! | [`rebuild`] | projections rebuilt from the log and diffed against the live table |
//! | [`demo`], [`demo_loop`] | `make demo`: the whole loop |
//! | [`evaluate`] | offline experiment evaluation of a CSV export |
//! | [`model`] | training, export, publication and promotion |
//! | [`cross_sell`] | the cross-sell hit rate on held-out REES46 sessions per co-view window |
//! | [`census`] | whole-table scans of the local stack |
//! | [`local`] | the local stack's description and stream pollers |
//! | [`rees46`] | the REES46 clickstream mapped to v1 events |
//! | [`learn`] | point-in-time rows, off-policy evaluation, policy training and promotion, the Open Bandit check |
//! | [`simulate`] | the closed-loop simulator with a known truth |
//! | [`report_html`] | the learning loop's HTML pages |
//! | [`write_cost`] | the feature updater's write units per event and per partition key, in memory |

pub mod archive;
pub mod census;
pub mod cross_sell;
pub mod demo;
pub mod demo_loop;
pub mod demo_ops;
pub mod demo_recovery;
pub mod drift;
pub mod drivers;
pub mod erase;
pub mod evaluate;
pub mod explain;
pub mod fraud;
pub mod learn;
pub mod local;
pub mod model;
pub mod rebuild;
pub mod rees46;
pub mod replay;
pub mod report_html;
pub mod simulate;
pub mod write_cost;

pub use demo::demo;
pub use drivers::{
    drive_features, drive_features_after, drive_features_with, drive_ingest, drive_ingest_after,
    drive_ingest_with, FeaturesRun, IngestRun,
};
pub use rebuild::{compare, rebuild_features, RebuildReport};
pub use replay::{replay, ReplayReport};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn schema() -> Result<(), BoxError> {
    println!(
        "{}",
        serde_json::to_string_pretty(&checkout_domain::event::json_schema())?
    );
    Ok(())
}
