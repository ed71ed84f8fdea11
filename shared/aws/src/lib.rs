//! AWS adapters for the ports of `checkout-domain`. Everything that knows an AWS type lives in this crate.
//!
//! Each SDK client is behind a cargo feature (`dynamodb`, `kinesis`, `s3`, `sqs`, `ssm`), so a Lambda
//! compiles only the clients it calls. Every client is built from one [`aws_config::SdkConfig`], so the
//! standard `AWS_ENDPOINT_URL` override points all of them at the local stack (moto on 127.0.0.1)
//! without the functions knowing.
//!
//! | module | feature | implements |
//! |---|---|---|
//! | [`config`] | – | the typed environment ([`Env`]), SDK config, secrets (SSM with `ssm`) |
//! | [`error`] | – | classification of SDK errors as transient or permanent ([`store_error`]) |
//! | `dynamo` | `dynamodb` | `BatchSink<LogEntry>` (the event log) |
//! | `features` | `dynamodb` | `SessionLog`, `FeatureReader`, `FeatureWriter`, `UnitSource` |
//! | `kinesis` | `kinesis` | `BatchSink<OutRecord>` (decision events) |
//! | `s3` | `s3` | `ObjectStore` (registry, decision config, reports) |
//! | `sqs` | `sqs` | `BatchSink<UpdateFailure>` (the updater's on-failure destination) |
//! | `quarantine` | `sqs` + `s3` | `BatchSink<QuarantineRecord>` (SQS, large payloads claim-checked in S3) |
//! | [`emf`] | – | metrics in CloudWatch Embedded Metric Format |
//! | [`telemetry`] | – | JSON logs for CloudWatch |

#[cfg(feature = "athena")]
pub mod athena;
pub mod config;
#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod emf;
pub mod error;
#[cfg(feature = "dynamodb")]
pub mod features;
#[cfg(feature = "firehose")]
pub mod firehose;
#[cfg(feature = "kinesis")]
pub mod kinesis;
#[cfg(all(feature = "sqs", feature = "s3"))]
pub mod quarantine;
#[cfg(feature = "s3")]
pub mod s3;
pub mod schedule;
#[cfg(feature = "sqs")]
pub mod sqs;
pub mod telemetry;

pub use config::{load_sdk_config, ConfigError, Env};
pub use error::store_error;
