//! A fault-injecting HTTP layer between the real SDK clients and moto.
//!
//! Only DynamoDB `BatchWriteItem` calls are touched; everything else passes through. Per call (numbered
//! from 1 in arrival order) a [`Plan`] chooses one of:
//! - [`Fault::Throttle`]: answer `400 ProvisionedThroughputExceededException` without forwarding;
//! - [`Fault::ServerErrorAfterWrite`]: forward (the write happens) but answer `500`, the ambiguous case;
//! - [`Fault::Partial`]: forward only the first half of the items and answer with the rest as
//!   `UnprocessedItems`, as DynamoDB does under load;
//! - [`Fault::Pass`].

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use serde_json::{json, Value};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Throttle,
    ServerErrorAfterWrite,
    Partial,
}

/// Chooses the fault for each `BatchWriteItem` call and counts what happened.
pub struct Plan {
    choose: Box<dyn Fn(u64) -> Fault + Send + Sync>,
    calls: AtomicU64,
    pub injected: AtomicU64,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plan(calls={})", self.calls.load(Ordering::SeqCst))
    }
}

impl Plan {
    pub fn new(choose: impl Fn(u64) -> Fault + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            choose: Box::new(choose),
            calls: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Wraps the SDK's own HTTP client.
#[derive(Debug, Clone)]
pub struct FaultyClient {
    pub inner: SharedHttpClient,
    pub plan: Arc<Plan>,
}

impl HttpClient for FaultyClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            plan: self.plan.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    plan: Arc<Plan>,
}

fn json_response(
    status: u16,
    body: Value,
) -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
    let mut r = Response::new(
        StatusCode::try_from(status).expect("status"),
        SdkBody::from(body.to_string()),
    );
    r.headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    r
}

impl HttpConnector for FaultyConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let is_batch_write = request
            .headers()
            .get("x-amz-target")
            .is_some_and(|t| t.ends_with(".BatchWriteItem"));
        if !is_batch_write {
            return self.inner.call(request);
        }
        let call = self.plan.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = (self.plan.choose)(call);
        if fault != Fault::Pass {
            self.plan.injected.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Fault::Pass => self.inner.call(request),
            Fault::Throttle => HttpConnectorFuture::ready(Ok(json_response(
                400,
                json!({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                       "message": "injected: rate of requests exceeds the allowed throughput"}),
            ))),
            Fault::ServerErrorAfterWrite => {
                let forwarded = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    forwarded.await?;
                    Ok(json_response(
                        500,
                        json!({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                               "message": "injected: internal server error after the write"}),
                    ))
                })
            }
            Fault::Partial => {
                let Some(mut body) = request
                    .body()
                    .bytes()
                    .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                else {
                    return self.inner.call(request);
                };
                let mut unprocessed = serde_json::Map::new();
                if let Some(tables) = body["RequestItems"].as_object_mut() {
                    for (table, writes) in tables.iter_mut() {
                        if let Some(list) = writes.as_array_mut() {
                            let keep = list.len().div_ceil(2);
                            let rest = list.split_off(keep);
                            if !rest.is_empty() {
                                unprocessed.insert(table.clone(), Value::Array(rest));
                            }
                        }
                    }
                }
                let bytes = body.to_string().into_bytes();
                request
                    .headers_mut()
                    .insert("content-length", bytes.len().to_string());
                *request.body_mut() = SdkBody::from(bytes);
                let forwarded = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    let response = forwarded.await?;
                    if !response.status().is_success() {
                        return Ok(response);
                    }
                    Ok(json_response(200, json!({"UnprocessedItems": unprocessed})))
                })
            }
        }
    }
}

/// The stack's SDK config with the fault layer in front of moto and fast SDK-level retries.
pub async fn faulty_sdk_config(
    stack: &checkout_ai::local::stack::LocalStack,
    plan: Arc<Plan>,
) -> aws_config::SdkConfig {
    let base = stack.sdk_config().await;
    // Plain HTTP to moto on 127.0.0.1; the SDK's own hyper-based client, built the way the default is.
    let inner = aws_smithy_http_client::Builder::new().build_http();
    base.to_builder()
        .http_client(FaultyClient { inner, plan })
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(std::time::Duration::from_millis(2)),
        )
        .build()
}
