//! Logging for the Lambda functions.

/// JSON logs for CloudWatch, level from `RUST_LOG` (default `info`), without ANSI colours or timestamps
/// (Lambda adds its own).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
}
