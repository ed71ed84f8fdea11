use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    checkout_aws::telemetry::init_tracing();
    let scorer = scorer::Scorer::from_env().await?;
    run(service_fn(|request: Request| scorer.handle(request))).await
}
