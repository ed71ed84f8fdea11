//! The object-store port on S3: the model registry's bucket.

use super::error::store_error;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use checkout_domain::ports::StoreError;
use checkout_domain::ports::{Condition, Object, ObjectStore, PutError};

/// An S3 client for `sdk`. Path-style addressing when an endpoint override is set (the local stack on
/// 127.0.0.1 has no per-bucket host names); virtual-hosted style against AWS.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The media type of an object, from its key's suffix (HTML reports are served to browsers).
fn content_type(key: &str) -> &'static str {
    if key.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    }
}

/// One bucket as an [`ObjectStore`].
#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
}

impl ObjectStore for S3ObjectStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let output = match response {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(store_error("S3 GetObject", e)),
        };
        let etag = output.e_tag().unwrap_or_default().to_owned();
        let bytes = output.body.collect().await.map_err(|e| StoreError {
            operation: "S3 GetObject body",
            retryable: true,
            source: Box::new(e),
        })?;
        Ok(Some(Object {
            bytes: bytes.into_bytes().to_vec(),
            etag,
        }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, condition: Condition) -> Result<(), PutError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type(key))
            .body(ByteStream::from(bytes));
        request = match condition {
            Condition::Absent => request.if_none_match("*"),
            Condition::Matches(etag) => request.if_match(etag),
            Condition::Always => request,
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                Err(PutError::Precondition)
            }
            Err(e) => Err(PutError::Store(store_error("S3 PutObject", e))),
        }
    }
}
