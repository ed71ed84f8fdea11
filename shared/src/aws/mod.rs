//! AWS adapters for the domain's ports. Everything that knows an AWS type lives under this module.
//!
//! Every client is built from one [`aws_config::SdkConfig`], so the standard `AWS_ENDPOINT_URL` override
//! points all of them at the local stack (moto on 127.0.0.1) without the functions knowing.

pub mod config;
pub mod dynamo;
pub mod error;
pub mod features;
pub mod kinesis;
pub mod local_esm;
pub mod models;
pub mod quarantine;
pub mod stack;

pub use config::{load_sdk_config, ConfigError, Env};
pub use error::store_error;
