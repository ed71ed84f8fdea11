//! `ReviewFunction`: the manual-review queue (`checkout_domain::risk::queue`).
//!
//! - **Reviewer API**, routes of the decision API (payload format 2.0):
//!   `GET /v1/reviews` (open cases, soonest deadline first), `GET /v1/reviews/{case_id}`,
//!   `POST /v1/reviews/{case_id}/claim`, `POST /v1/reviews/{case_id}/release`,
//!   `POST /v1/reviews/{case_id}/decision` with `{"decision": "approve" | "reject", "reason": "<code>"}`.
//!   Only reviewers: API Gateway checks a JWT with the reviewer scope (or, with IAM, a policy that only
//!   reviewers hold), and this function checks again: a JWT must carry the scope, an IAM caller must be
//!   one of `REVIEWER_PRINCIPALS`. Anyone else gets 403. The reviewer is the JWT's `sub` or the IAM
//!   caller's ARN; every action is a `review_updated` event in the log, with who acted.
//! - **SLA sweep**, on a schedule (`{"now": "<aws.scheduler.scheduled-time>"}`): escalates cases near
//!   their deadline, releases lapsed claims, expires cases at the deadline with the default decision.

use checkout_aws::dynamo::{DynamoEventLog, DynamoLogIndex};
use checkout_aws::emf::{Metrics, Unit};
use checkout_aws::features::DynamoFeatureStore;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_aws::{load_sdk_config, ConfigError, Env};
use checkout_domain::decision::config::{ConfigCache, ConfigOrigin, DEFAULT_CONFIG_KEY};
use checkout_domain::features::review::{Command, ReviewConfig, ReviewError};
use checkout_domain::ports::{AppendOnce, FeatureWriter, ObjectStore, SessionLog};
use checkout_domain::risk::queue::{Queue, QueueError, SlaReport};
use chrono::{DateTime, Duration, Utc};
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;
use serde_json::{json, Value};

pub const SERVICE: &str = "review";
/// How long the decision config's `review` section is reused before it is read again.
pub const CONFIG_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// How long one read of the decision config may take.
pub const CONFIG_FETCH_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);
/// The JWT scope a reviewer's token carries.
pub const DEFAULT_REVIEWER_SCOPE: &str = "checkout-ai/review";

pub const METRICS: &[&str] = &[
    "ReviewRequests",
    "ReviewActions",
    "ReviewConflicts",
    "ReviewForbidden",
    "ReviewsOpen",
    "ReviewsEscalated",
    "ReviewsExpired",
    "ReviewClaimsReleased",
    "ReviewsOverdue",
    "ReviewSweepFailures",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub event_log_table: String,
    pub features_table: String,
    pub models_bucket: String,
    pub decision_config_key: String,
    pub retention_days: i64,
    pub reviewer_scope: String,
    /// IAM mode: the role or user ARNs (prefixes) of reviewers.
    pub reviewer_principals: Vec<String>,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            event_log_table: env.required("EVENT_LOG_TABLE")?.to_string(),
            features_table: env.required("FEATURES_TABLE")?.to_string(),
            models_bucket: env.required("MODELS_BUCKET")?.to_string(),
            decision_config_key: env
                .optional("DECISION_CONFIG_KEY")
                .unwrap_or(DEFAULT_CONFIG_KEY)
                .to_string(),
            retention_days: env.parsed("RETENTION_DAYS", 400i64)?.clamp(1, 3_650),
            reviewer_scope: env
                .optional("REVIEWER_SCOPE")
                .unwrap_or(DEFAULT_REVIEWER_SCOPE)
                .to_string(),
            reviewer_principals: env
                .optional("REVIEWER_PRINCIPALS")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

pub struct Function<
    L = DynamoLogIndex,
    W = DynamoEventLog,
    S = DynamoFeatureStore,
    C = S3ObjectStore,
> {
    pub config: Config,
    pub log: L,
    pub sink: W,
    pub store: S,
    pub decision_config: ConfigCache<C>,
}

impl Function {
    pub async fn from_env() -> Result<Self, Error> {
        Self::new(&Env::from_process(), &load_sdk_config().await)
    }

    /// The function over the AWS adapters, from an environment (the local stack's `<Function>.env`).
    pub fn new(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        let config = Config::from_env(env)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        Ok(Self {
            log: DynamoLogIndex {
                client: dynamodb.clone(),
                table: config.event_log_table.clone(),
            },
            sink: DynamoEventLog {
                client: dynamodb.clone(),
                table: config.event_log_table.clone(),
            },
            store: DynamoFeatureStore {
                client: dynamodb,
                table: config.features_table.clone(),
            },
            decision_config: ConfigCache::new(
                S3ObjectStore {
                    client: s3_client(sdk),
                    bucket: config.models_bucket.clone(),
                },
                config.decision_config_key.clone(),
                CONFIG_TTL,
                CONFIG_FETCH_BUDGET,
            ),
            config,
        })
    }
}

/// An HTTP answer in API Gateway's payload-2.0 response shape.
pub fn answer(status: u16, body: Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}

fn error(status: u16, code: &str, message: impl Into<String>) -> Value {
    answer(
        status,
        json!({"error": {"code": code, "message": message.into()}}),
    )
}

/// Who is calling, as API Gateway's authorizer says: a reviewer's id, or why not.
pub fn reviewer(event: &Value, config: &Config) -> Result<String, &'static str> {
    let authorizer = &event["requestContext"]["authorizer"];
    if let Some(claims) = authorizer["jwt"]["claims"].as_object() {
        let scopes: Vec<&str> = match &authorizer["jwt"]["scopes"] {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => claims
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or("")
                .split(' ')
                .collect(),
        };
        if !scopes.contains(&config.reviewer_scope.as_str()) {
            return Err("the token does not carry the reviewer scope");
        }
        return claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .map(str::to_string)
            .ok_or("the token has no subject");
    }
    if let Some(arn) = authorizer["iam"]["userArn"].as_str() {
        return if config
            .reviewer_principals
            .iter()
            .any(|p| arn.starts_with(p.as_str()))
        {
            Ok(arn.to_string())
        } else {
            Err("the caller is not a reviewer principal")
        };
    }
    Err("no authorizer context")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    reason: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invocation {
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
}

impl<L: SessionLog, W: AppendOnce, S: FeatureWriter, C: ObjectStore> Function<L, W, S, C> {
    /// The decision config's `review` section, from the per-container cache (refreshed after its TTL;
    /// the last good one when a refresh fails). Refused only when no good config was ever read and the
    /// store could not be read.
    async fn review_config(&self) -> Result<ReviewConfig, String> {
        let snapshot = self.decision_config.current().await;
        match (&snapshot.origin, snapshot.stale_because) {
            (ConfigOrigin::Defaults, Some(why)) => Err(why),
            _ => Ok(snapshot.config.review.clone()),
        }
    }

    /// The Lambda entry point: an API Gateway request, or the SLA schedule.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let mut metrics = Metrics::new(SERVICE);
        let out = if event.payload.get("requestContext").is_some() {
            Ok(self.http(&event.payload, Utc::now(), &mut metrics).await)
        } else {
            self.scheduled(event.payload, Utc::now(), &mut metrics)
                .await
                .map(|r| serde_json::to_value(r).unwrap_or_default())
        };
        metrics.flush();
        out
    }

    /// The SLA sweep.
    pub async fn scheduled(
        &self,
        payload: Value,
        clock: DateTime<Utc>,
        m: &mut Metrics,
    ) -> Result<SlaReport, Error> {
        let invocation: Invocation = serde_json::from_value(payload).map_err(|e| {
            format!("invalid input: {e} (expected {{\"now\": RFC 3339, optional}})")
        })?;
        let now = invocation
            .now
            .unwrap_or(clock)
            .min(clock + Duration::minutes(5));
        let config = self.review_config().await?;
        let queue = self.queue(&config);
        match queue.sweep(now).await {
            Ok(r) => {
                let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
                m.count("ReviewsOpen", n(r.open));
                m.count("ReviewsEscalated", n(r.escalated));
                m.count("ReviewsExpired", n(r.expired));
                m.count("ReviewClaimsReleased", n(r.released));
                m.count("ReviewsOverdue", n(r.overdue_for_escalation));
                tracing::info!(report = %serde_json::to_string(&r).unwrap_or_default(), "review SLA sweep");
                Ok(r)
            }
            Err(e) => {
                m.count("ReviewSweepFailures", 1);
                tracing::warn!(error = %e, "review SLA sweep failed; Lambda retries it");
                Err(e.to_string().into())
            }
        }
    }

    fn queue<'a>(&'a self, config: &'a ReviewConfig) -> Queue<'a, S, L, W> {
        Queue {
            store: &self.store,
            log: &self.log,
            sink: &self.sink,
            config,
            retention: Duration::days(self.config.retention_days),
        }
    }

    /// One reviewer API request.
    pub async fn http(&self, event: &Value, now: DateTime<Utc>, m: &mut Metrics) -> Value {
        m.count("ReviewRequests", 1);
        let who = match reviewer(event, &self.config) {
            Ok(who) => who,
            Err(why) => {
                m.count("ReviewForbidden", 1);
                return error(403, "forbidden", why);
            }
        };
        let method = event["requestContext"]["http"]["method"]
            .as_str()
            .unwrap_or("");
        let path = event["rawPath"].as_str().unwrap_or("");
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let config = match self.review_config().await {
            Ok(c) => c,
            Err(e) => return error(503, "config_unavailable", e),
        };
        let queue = self.queue(&config);
        let result: Result<Value, QueueError> = match (method, parts.as_slice()) {
            ("GET", ["v1", "reviews"]) => queue
                .list()
                .await
                .map(|cases| json!({"cases": cases}))
                .map_err(Into::into),
            ("GET", ["v1", "reviews", id]) => match queue.show(id).await {
                Ok(Some(view)) => Ok(serde_json::to_value(view).unwrap_or_default()),
                Ok(None) => Err(ReviewError::NotFound(id.to_string()).into()),
                Err(e) => Err(e),
            },
            ("POST", ["v1", "reviews", id, action]) => {
                let command = match *action {
                    "claim" => Command::Claim,
                    "release" => Command::Release,
                    "decision" => match body(event) {
                        Ok(b) if b.decision == "approve" || b.decision == "reject" => {
                            Command::Decide {
                                approve: b.decision == "approve",
                                reason: b.reason,
                            }
                        }
                        Ok(_) => {
                            return error(
                                400,
                                "invalid_field",
                                "decision must be approve or reject",
                            )
                        }
                        Err(e) => return error(400, "malformed_body", e),
                    },
                    _ => return error(404, "not_found", format!("no action {action}")),
                };
                m.count("ReviewActions", 1);
                queue
                    .act(id, &who, command, now)
                    .await
                    .map(|case| serde_json::to_value(case).unwrap_or_default())
            }
            (_, ["v1", "reviews", ..]) => {
                return error(405, "method_not_allowed", method.to_string())
            }
            _ => return error(404, "not_found", path.to_string()),
        };
        match result {
            Ok(body) => answer(200, body),
            Err(QueueError::Review(ReviewError::NotFound(id))) => {
                error(404, "not_found", format!("no case {id}"))
            }
            Err(QueueError::Review(e @ ReviewError::Conflict { .. })) => {
                m.add("ReviewConflicts", Unit::Count, 1.0);
                error(409, "conflict", e.to_string())
            }
            Err(e) => {
                tracing::error!(error = %e, "review request failed");
                error(503, "unavailable", "the review store is unavailable; retry")
            }
        }
    }
}

fn body(event: &Value) -> Result<DecisionBody, String> {
    let raw = event["body"].as_str().unwrap_or("");
    let bytes = if event["isBase64Encoded"].as_bool() == Some(true) {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|e| e.to_string())?
    } else {
        raw.as_bytes().to_vec()
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        format!("{e}: expected {{\"decision\": \"approve\" | \"reject\", \"reason\": \"<code>\"}}")
    })
}
