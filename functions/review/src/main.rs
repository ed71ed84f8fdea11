use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    checkout_aws::telemetry::init_tracing();
    let function = review::Function::from_env().await?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        function.handle(event)
    }))
    .await
}
