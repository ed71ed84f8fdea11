//! Classifying SDK errors at the edge: transient (retry, report a batch item failure) or permanent.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use checkout_domain::ports::StoreError;
use std::error::Error as StdError;

/// Error codes AWS services use for throttling and server-side faults.
const TRANSIENT_CODES: [&str; 12] = [
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "KMSThrottlingException",
    "SlowDown",
];

/// Whether `code` names a throttle or a server-side fault.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Wraps an SDK error as a [`StoreError`], keeping it as the source.
pub fn store_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => se.err().code().is_some_and(is_transient_code),
        _ => false,
    };
    let server_fault = err
        .raw_response()
        .is_some_and(|r| r.status().is_server_error());
    StoreError {
        operation,
        retryable: retryable || server_fault,
        source: Box::new(err),
    }
}
