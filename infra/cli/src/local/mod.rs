//! The local stack, as the CLI, the demo and the integration tests drive it: the description that
//! `infra/localstack.py` writes ([`stack`]) and the event-source-mapping drivers that stand in for
//! Lambda's pollers, which moto does not run ([`esm`]). None of this is deployed.

pub mod esm;
pub mod stack;

use crate::BoxError;
use stack::LocalStack;

/// Receives and deletes every message of one of the stack's queues, as JSON (what a consumer
/// of the queue would do: the merchant's messaging service, an operator draining a dead-letter queue).
pub async fn queue_messages(
    stack: &LocalStack,
    queue: &str,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let sdk = stack.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = stack
        .resource(queue)?
        .url
        .clone()
        .ok_or("the queue has no url")?;
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await?;
        if got.messages().is_empty() {
            return Ok(out);
        }
        for m in got.messages() {
            out.push(serde_json::from_str(m.body().unwrap_or("null"))?);
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
    }
}
