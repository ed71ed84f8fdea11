//! `ScorerFunction`: `POST /v1/decisions` and `GET /v1/health` behind an API Gateway HTTP API.
//!
//! A decision: validate the body ([`parse_request`]), pseudonymize the user id (the ingest key), read the
//! features within a budget, decide ([`decide`]: assignment, model, policy), put the `decision_served`
//! event on the stream, answer. Nothing on this path answers 5xx: a feature read that fails or overruns
//! its budget gives a safe `none` decision flagged `degraded`; a failed event put is retried once,
//! counted and logged with the whole event, and never fails the answer.

use checkout_aws::config::secret;
use checkout_aws::emf::{Metrics, Unit};
use checkout_aws::features::DynamoFeatureStore;
use checkout_aws::kinesis::KinesisProducer;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::decision::config::{ConfigCache, DEFAULT_CONFIG_KEY};
use checkout_domain::decision::engine::{decide, DecisionResponse, Inputs};
use checkout_domain::decision::learned::{load_policies, LoadedPolicies, DEFAULT_POLICY_NAME};
use checkout_domain::decision::read::{read_features, PageCache};
use checkout_domain::decision::request::{parse_request, RequestError};
use checkout_domain::event::Event;
use checkout_domain::features::Key;
use checkout_domain::model::registry::{load_or_fallback, Loaded};
use checkout_domain::model::DEFAULT_MODEL_NAME;
use checkout_domain::ports::BatchSink;
use checkout_domain::ports::FeatureReader;
use checkout_domain::ports::ObjectStore;
use checkout_domain::ports::OutRecord;
use checkout_domain::pseudonym::Pseudonymizer;
use checkout_domain::risk::model::{self as risk, LoadedRisk};
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Error, Request, Response};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Everything the function reads from its environment, once, at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    pub features_table: String,
    pub event_stream: String,
    pub models_bucket: String,
    pub model_name: String,
    /// The learned policy's registry name; its champion serves the treatment arm when there is one.
    pub policy_name: String,
    /// A published policy version to run in shadow mode (logged, never served).
    pub shadow_policy_version: Option<String>,
    pub config_key: String,
    pub config_ttl: Duration,
    pub config_fetch_budget: Duration,
    /// Budget for the feature reads of one decision.
    pub feature_budget: Duration,
    /// Budget for one attempt to put the decision event.
    pub event_put_budget: Duration,
    /// Budget for loading the champion model at cold start.
    pub model_load_budget: Duration,
    pub page_cache_ttl: Duration,
    pub page_cache_entries: usize,
}

fn millis(env: &Env, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(env.parsed(name, default)?))
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            features_table: env.required("FEATURES_TABLE")?.to_string(),
            event_stream: env.required("EVENT_STREAM")?.to_string(),
            models_bucket: env.required("MODELS_BUCKET")?.to_string(),
            model_name: env
                .optional("MODEL_NAME")
                .unwrap_or(DEFAULT_MODEL_NAME)
                .to_string(),
            policy_name: env
                .optional("POLICY_NAME")
                .unwrap_or(DEFAULT_POLICY_NAME)
                .to_string(),
            shadow_policy_version: env
                .optional("SHADOW_POLICY_VERSION")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            config_key: env
                .optional("DECISION_CONFIG_KEY")
                .unwrap_or(DEFAULT_CONFIG_KEY)
                .to_string(),
            config_ttl: Duration::from_secs(env.parsed("DECISION_CONFIG_TTL_SECONDS", 30)?),
            config_fetch_budget: millis(env, "DECISION_CONFIG_FETCH_BUDGET_MS", 150)?,
            feature_budget: millis(env, "FEATURE_BUDGET_MS", 60)?,
            event_put_budget: millis(env, "EVENT_PUT_BUDGET_MS", 100)?,
            model_load_budget: millis(env, "MODEL_LOAD_BUDGET_MS", 2000)?,
            page_cache_ttl: Duration::from_secs(env.parsed("PAGE_CACHE_TTL_SECONDS", 300)?),
            page_cache_entries: env.parsed("PAGE_CACHE_ENTRIES", 50_000usize)?,
        })
    }
}

/// Per-container counters, reported by `/v1/health` and in the logs.
#[derive(Debug, Default)]
pub struct Counters {
    pub decisions: AtomicU64,
    pub degraded: AtomicU64,
    pub rejected: AtomicU64,
    pub event_put_retries: AtomicU64,
    pub event_put_failures: AtomicU64,
    pub feature_batch_reads: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    fn snapshot(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "decisions": get(&self.decisions),
            "degraded": get(&self.degraded),
            "rejected": get(&self.rejected),
            "event_put_retries": get(&self.event_put_retries),
            "event_put_failures": get(&self.event_put_failures),
            "feature_batch_reads": get(&self.feature_batch_reads),
        })
    }
}

/// The handler with its ports; generic so unit tests run it over in-memory stores.
pub struct Scorer<F = DynamoFeatureStore, O = S3ObjectStore, K = KinesisProducer> {
    pub settings: Config,
    pub features: F,
    pub decision_config: ConfigCache<O>,
    pub model: Loaded,
    pub policies: LoadedPolicies,
    /// The fraud-risk model assessed at `checkout`.
    pub risk_model: LoadedRisk,
    pub events: K,
    pub pseudonymizer: Pseudonymizer,
    pub pages: PageCache,
    pub counters: Counters,
    /// This invocation's metrics, flushed at its end by [`Self::handle`] (one invocation at a time per
    /// container, so the lock is never contended on Lambda).
    pub metrics: Mutex<Metrics>,
}

impl Scorer {
    /// Cold start: config, key, clients, the decision config, the champion model (or the compiled-in
    /// fallback), and a first DynamoDB call so that the connection is warm for the first decision. The
    /// independent steps run concurrently.
    pub async fn from_env() -> Result<Self, Error> {
        Self::new(&Env::from_process(), &load_sdk_config().await).await
    }

    pub async fn new(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let settings = Config::from_env(env)?;
        let sdk = &Self::latency_tuned(sdk);
        let store = S3ObjectStore {
            client: s3_client(sdk),
            bucket: settings.models_bucket.clone(),
        };
        let features = DynamoFeatureStore {
            client: aws_sdk_dynamodb::Client::new(sdk),
            table: settings.features_table.clone(),
        };
        let events = KinesisProducer {
            client: aws_sdk_kinesis::Client::new(sdk),
            stream: settings.event_stream.clone(),
        };
        Self::assemble(settings, features, store, events, async {
            secret(env, sdk, "PSEUDONYM_KEY_PARAMETER", "PSEUDONYM_KEY").await
        })
        .await
    }
}

impl Scorer {
    /// The SDK's defaults retry up to 3 times with backoff from 1 s, which suits batch work, not a request
    /// path with a budget of tens of milliseconds: the scorer tries twice, 10 ms apart at first, and gives
    /// up on a connection after 250 ms. Its own budgets still bound every call.
    fn latency_tuned(sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
        sdk.to_builder()
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(10)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(250))
                    .build(),
            )
            .build()
    }
}

impl<F: FeatureReader, O: ObjectStore + Send + Sync, K: BatchSink<OutRecord>> Scorer<F, O, K> {
    /// Builds the scorer over any ports (the cold start of [`Scorer::new`], and tests).
    pub async fn assemble(
        settings: Config,
        features: F,
        store: O,
        events: K,
        key: impl std::future::Future<Output = Result<String, ConfigError>>,
    ) -> Result<Self, Error> {
        let decision_config = ConfigCache::new(
            store,
            settings.config_key.clone(),
            settings.config_ttl,
            settings.config_fetch_budget,
        );
        let warm = async {
            let probe = [Key::new("warmup#", "warmup#")];
            let r =
                tokio::time::timeout(settings.feature_budget * 10, features.get_many(&probe)).await;
            if !matches!(r, Ok(Ok(_))) {
                tracing::warn!(
                    "the DynamoDB warm-up read failed; the first decision may be slower"
                );
            }
        };
        // Independent, so concurrent: the cold start costs the slowest of them, not their sum.
        let (key, model, policies, risk_model, _, ()) = tokio::join!(
            key,
            load_or_fallback(
                decision_config.store(),
                &settings.model_name,
                settings.model_load_budget
            ),
            load_policies(
                decision_config.store(),
                &settings.policy_name,
                settings.shadow_policy_version.as_deref(),
                settings.model_load_budget
            ),
            risk::load_or_fallback(decision_config.store(), settings.model_load_budget),
            decision_config.current(),
            warm,
        );
        let scorer = Self {
            decision_config,
            pages: PageCache::new(settings.page_cache_ttl, settings.page_cache_entries),
            model: model?,
            policies,
            risk_model: risk_model?,
            pseudonymizer: Pseudonymizer::new(key?.as_bytes())?,
            settings,
            features,
            events,
            counters: Counters::default(),
            metrics: Mutex::new(Metrics::new(SERVICE)),
        };
        Ok(scorer)
    }

    /// The Lambda entry point: never an `Err` (that would be a 5xx from API Gateway).
    pub async fn handle(&self, request: Request) -> Result<Response<Body>, Error> {
        let response = self.handle_at(request, chrono::Utc::now()).await;
        self.take_metrics().flush();
        response
    }

    /// The metrics recorded since the last call (what [`Self::handle`] flushes).
    pub fn take_metrics(&self) -> Metrics {
        let mut guard = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *guard, Metrics::warm(SERVICE))
    }

    fn record(&self, f: impl FnOnce(&mut Metrics)) {
        f(&mut self.metrics.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// [`Self::handle`] at a given time (a simulated storefront replaying recorded traffic decides at
    /// the time of the recorded request).
    pub async fn handle_at(
        &self,
        request: Request,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Response<Body>, Error> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let answer = self
            .respond(
                request.method(),
                request.uri().path(),
                content_type,
                request.body().as_ref(),
                now,
            )
            .await;
        Ok(answer.into_response())
    }

    /// Routes and answers one request.
    pub async fn respond(
        &self,
        method: &Method,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Answer {
        let answer = match (path, method) {
            ("/v1/decisions", &Method::POST) => {
                match self.decision(content_type, body, now).await {
                    Ok(response) => Answer::json(StatusCode::OK, &response),
                    Err(e) => Answer::error(&e),
                }
            }
            ("/v1/health", &Method::GET) => Answer::json(StatusCode::OK, &self.health().await),
            ("/v1/decisions", _) => Answer::not_allowed("POST"),
            ("/v1/health", _) => Answer::not_allowed("GET"),
            _ => Answer::error(&RequestError {
                status: 404,
                code: "not_found",
                field: None,
                message: format!("no route {path}; see /v1/decisions and /v1/health"),
            }),
        };
        if answer.status.is_client_error() {
            Counters::bump(&self.counters.rejected, 1);
            self.record(|m| {
                m.add_with(
                    &[("status", answer.status.as_str())],
                    "Rejected",
                    Unit::Count,
                    1.0,
                )
            });
        }
        answer
    }

    /// One decision, from a raw body.
    pub async fn decision(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<DecisionResponse, RequestError> {
        if let Some(ct) = content_type {
            let essence = ct.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(RequestError {
                    status: 415,
                    code: "unsupported_media_type",
                    field: None,
                    message: format!("content-type is `{ct}`; send application/json"),
                });
            }
        }
        let mut request = parse_request(body)?;
        request.pseudonymize_payment(&self.pseudonymizer);
        let began = tokio::time::Instant::now();
        let unit = request
            .user_id
            .as_deref()
            .map(|u| self.pseudonymizer.user_id(u));
        let snapshot = self.decision_config.current().await;
        let started = tokio::time::Instant::now();
        let read = read_features(
            &self.features,
            &self.pages,
            &request,
            unit.as_deref(),
            now,
            self.settings.feature_budget,
        )
        .await;
        let feature_read = started.elapsed();
        let decision_id = new_decision_id();
        let decision = decide(
            &request,
            read.as_ref()
                .map(|(f, _)| f)
                .map_err(|u| u.message.as_str()),
            Inputs {
                decision_id: &decision_id,
                now,
                unit: unit.as_deref(),
                model: &self.model.model,
                config: &snapshot.config,
                policy: self.policies.champion.as_ref(),
                shadow: self.policies.shadow.as_ref(),
                risk_model: Some(&self.risk_model.model),
            },
        );
        let c = &self.counters;
        Counters::bump(&c.decisions, 1);
        match &read {
            Ok((_, cost)) => Counters::bump(&c.feature_batch_reads, u64::from(cost.batch_reads)),
            Err(reason) => {
                Counters::bump(&c.degraded, 1);
                tracing::warn!(decision_id, reason = reason.message, "degraded decision");
            }
        }
        let put = self.emit(&decision.event).await;
        // A `review` friction opens a case (id = the decision id) in the same session.
        let review_put = match &decision.review {
            Some(opened) => Some(self.emit(opened).await),
            None => None,
        };
        let r = &decision.response;
        let total = began.elapsed();
        self.record(|m| {
            let action = r.actions[0].action.kind();
            let variant = r.experiment.as_ref().map_or("none", |e| e.variant.as_str());
            let placement = r.placement.as_str();
            m.add_with(
                &[
                    ("placement", placement),
                    ("action", action),
                    ("variant", variant),
                ],
                "Decisions",
                Unit::Count,
                1.0,
            );
            m.add_with(&[("action", action)], "DecisionsByAction", Unit::Count, 1.0);
            m.count("DecisionCount", 1);
            if let Some(p) = review_put {
                m.count("ReviewsOpened", 1);
                m.count("EventPutFailures", usize::from(p == EventPut::Failed));
            }
            if let Some(risk) = &r.risk {
                m.add_with(
                    &[("friction", risk.friction.as_str())],
                    "RiskFriction",
                    Unit::Count,
                    1.0,
                );
            }
            m.count("Degraded", usize::from(r.degraded));
            if let Err(reason) = &read {
                m.add_with(
                    &[("reason", reason.code)],
                    "DegradedByReason",
                    Unit::Count,
                    1.0,
                );
            }
            m.add("FeatureReadLatency", Unit::Milliseconds, ms(feature_read));
            m.add("DecisionLatency", Unit::Milliseconds, ms(total));
            m.count("EventPutRetries", usize::from(put != EventPut::Ok));
            m.count("EventPutFailures", usize::from(put == EventPut::Failed));
        });
        tracing::info!(
            decision_id,
            placement = r.placement.as_str(),
            action = r.actions[0].action.kind(),
            arm = ?r.arm,
            experiment = r.experiment.as_ref().map(|e| e.id.as_str()),
            degraded = r.degraded,
            feature_read_us = feature_read.as_micros() as u64,
            event_put = ?put,
            "decision"
        );
        Ok(decision.response)
    }

    /// Puts the decision event: one retry, then counted and logged whole (so it can be recovered from
    /// the logs), never an error to the caller.
    async fn emit(&self, event: &Event) -> EventPut {
        let record = OutRecord {
            partition_key: event.session_id.clone(),
            data: serde_json::to_vec(event).unwrap_or_default(),
        };
        for attempt in 1..=2 {
            let outcome =
                tokio::time::timeout(self.settings.event_put_budget, self.events.put(&[&record]))
                    .await;
            let error = match outcome {
                Ok(Ok(failed)) if failed.is_empty() => {
                    return if attempt == 1 {
                        EventPut::Ok
                    } else {
                        EventPut::Retried
                    };
                }
                Ok(Ok(_)) => "the record was throttled".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!(
                    "no answer within {} ms",
                    self.settings.event_put_budget.as_millis()
                ),
            };
            if attempt == 1 {
                Counters::bump(&self.counters.event_put_retries, 1);
                tracing::warn!(decision_id = %event.event_id, error, "decision event put failed; retrying once");
            } else {
                Counters::bump(&self.counters.event_put_failures, 1);
                tracing::error!(decision_id = %event.event_id, error,
                    event = %String::from_utf8_lossy(&record.data), "decision event lost from the stream");
            }
        }
        EventPut::Failed
    }

    async fn health(&self) -> serde_json::Value {
        let snapshot = self.decision_config.current().await;
        let model = &self.model;
        serde_json::json!({
            "status": "ok",
            "model": {"id": model.model.name(), "version": model.model.version(), "origin": model.origin},
            "risk_model": {"id": self.risk_model.model.name, "version": self.risk_model.model.version,
                           "origin": self.risk_model.origin},
            "policy": {"name": self.settings.policy_name, "serving": self.policies.origin,
                       "shadow": self.policies.shadow.as_ref().map(|p| &p.version),
                       "shadow_problem": self.policies.shadow_problem},
            "config": {"origin": snapshot.origin, "stale_because": snapshot.stale_because,
                       "kill_switch": snapshot.config.kill_switch,
                       "experiments": snapshot.config.experiments.iter().map(|e| &e.id).collect::<Vec<_>>()},
            "page_cache_entries": self.pages.len(),
            "counters": self.counters.snapshot(),
        })
    }
}

/// The `service` dimension of this function's metrics.
pub const SERVICE: &str = "scorer";

/// Every metric this function emits (besides `ColdStart`); the dashboard check reads it.
pub const METRICS: &[&str] = &[
    "Decisions",
    "DecisionsByAction",
    "DecisionCount",
    "Degraded",
    "DegradedByReason",
    "FeatureReadLatency",
    "DecisionLatency",
    "EventPutRetries",
    "EventPutFailures",
    "Rejected",
    "RiskFriction",
    "ReviewsOpened",
];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What happened to a decision's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPut {
    Ok,
    Retried,
    Failed,
}

/// A random (v4) UUID.
pub fn new_decision_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// An HTTP answer: status, JSON body and extra headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub allow: Option<&'static str>,
}

impl Answer {
    fn json(status: StatusCode, body: &impl Serialize) -> Self {
        Self {
            status,
            body: serde_json::to_vec(body).unwrap_or_default(),
            allow: None,
        }
    }

    fn error(e: &RequestError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        Self::json(status, &serde_json::json!({ "error": e }))
    }

    fn not_allowed(allow: &'static str) -> Self {
        let mut a = Self::error(&RequestError {
            status: 405,
            code: "method_not_allowed",
            field: None,
            message: format!("use {allow}"),
        });
        a.allow = Some(allow);
        a
    }

    pub fn into_response(self) -> Response<Body> {
        let mut builder = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store");
        if let Some(allow) = self.allow {
            builder = builder.header(header::ALLOW, allow);
        }
        builder
            .body(Body::from(self.body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}
