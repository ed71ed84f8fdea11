use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    checkout_aws::telemetry::init_tracing();
    let function = item_page_batch::Function::from_env().await?;
    run(service_fn(|event: LambdaEvent<_>| function.handle(event))).await
}
