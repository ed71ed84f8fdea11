//! The scorer's costs, one core, medians:
//!
//! 1. **Decision compute**: features in hand → serialized response. `decide` (assignment, vectorize,
//!    score with top-3 reasons, candidates and guardrails, choice, ranking, the event) plus
//!    `serde_json` of the response: with the configured policy, with a learned policy, and with a learned
//!    policy plus a shadow challenger (the shadow's cost is the difference of the last two p99s); and at
//!    `checkout` without and with the fraud-risk assessment over four full risk profiles (the risk's
//!    cost is the difference of those p99s). Also the whole in-process path of a request: parse and validate the
//!    body, pseudonymize the user id, decide, serialize the response and the event.
//! 2. **Cold start**: process exec → the first Runtime API `GET …/invocation/next`, against a stub Runtime
//!    API on 127.0.0.1. Init loads the decision config and the model and warms DynamoDB: against the
//!    local stack when `BENCH_STACK` names its description (`make bench-decision` starts one), and with
//!    the stack stopped (every call refused; the compiled-in model and default config serve).
//! 3. **Binary size** of the release binary (stripped, as deployed).
//!
//! Writes `target/bench/decision-rust.json`; `infra/bench_decision.py` adds scikit-learn's single-row
//! `predict_proba`, measured in the same run, and prints the ratios.

use base64::Engine as _;
use checkout_domain::decision::config::DecisionConfig;
use checkout_domain::decision::engine::{decide, Features, Inputs};
use checkout_domain::decision::learned::{
    Exploration, OutcomeModel, PolicyArtifact, PolicyTraining, CONTEXT_FEATURES,
};
use checkout_domain::decision::policy::Arm;
use checkout_domain::decision::request::parse_request;
use checkout_domain::event::Event;
use checkout_domain::features::rebuild::rebuild;
use checkout_domain::features::Doc;
use checkout_domain::ingest::LogEntry;
use checkout_domain::model::metrics::{per_call_ns, quantile};
use checkout_domain::model::registry::fallback_model;
use checkout_domain::pseudonym::Pseudonymizer;
use serde_json::json;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn summary(sorted: &[f64]) -> serde_json::Value {
    json!({"p50": quantile(sorted, 0.5), "p90": quantile(sorted, 0.9), "p99": quantile(sorted, 0.99),
           "n": sorted.len()})
}

/// The features of the `events/` fixture's session, through the rebuild path.
fn fixture() -> (Features, String, String) {
    let text = std::fs::read_to_string(root().join("events/kinesis-valid.json")).expect("fixture");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let b64 = base64::engine::general_purpose::STANDARD;
    let entries: Vec<LogEntry> = doc["Records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            let data = b64
                .decode(r["kinesis"]["data"].as_str().expect("data"))
                .expect("b64");
            let e = Event::decode(&data, usize::MAX).expect("event");
            LogEntry::of(&e, i64::MAX).expect("entry")
        })
        .collect();
    let (docs, _) = rebuild(entries);
    let mut f = Features::default();
    let (mut session, mut user) = (String::new(), String::new());
    for d in docs.into_values() {
        match d {
            Doc::Session(s) => {
                session = s.session_id.clone();
                f.session = Some(s);
            }
            Doc::User(u) => {
                user = u.user_id.clone();
                f.user = Some(u);
            }
            Doc::Item(i) => f.items.push(i),
            Doc::Page(p) => {
                f.pages.insert(p.path.clone(), p);
            }
            _ => {}
        }
    }
    (f, session, user)
}

/// A learned policy with an outcome model for every action the cart can get (seeded weights).
fn policy(name: &str, seed: u64) -> PolicyArtifact {
    let mut state = seed;
    let mut weight = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.4
    };
    let outcome_models = [
        "none",
        "free_shipping",
        "percent_discount_5",
        "percent_discount_10",
        "reminder",
        "cross_sell",
    ]
    .iter()
    .map(|k| {
        let mut weights: Vec<f64> = (0..CONTEXT_FEATURES.len()).map(|_| weight()).collect();
        weights[0] -= 2.0;
        (
            k.to_string(),
            OutcomeModel {
                weights,
                rows: 1000,
                orders: 100,
            },
        )
    })
    .collect();
    PolicyArtifact {
        name: name.into(),
        version: "bench".into(),
        created_at: chrono::Utc::now(),
        features: CONTEXT_FEATURES.iter().map(|f| f.to_string()).collect(),
        outcome_models,
        exploration: Exploration::default(),
        training: PolicyTraining {
            data_sha256: "0".repeat(64),
            rows: 6000,
            horizon_hours: 24,
            library: "bench".into(),
            alpha: 1.0,
        },
        evaluation: serde_json::Value::Null,
    }
}

fn compute() -> serde_json::Value {
    let (features, session, user) = fixture();
    let model = fallback_model().expect("model");
    let config = DecisionConfig {
        default_arm: Arm::Treatment,
        ..DecisionConfig::default()
    };
    let body = json!({"session_id": session, "user_id": user, "placement": "cart",
        "context": {"device": "mobile", "country": "DE", "cart": {"currency": "EUR", "items": [
            {"product_id": "sku-1", "quantity": 1, "unit_price_minor": 7999, "unit_cost_minor": 4000},
            {"product_id": "sku-2", "quantity": 2, "unit_price_minor": 1999, "unit_cost_minor": 900}]}}})
    .to_string()
    .into_bytes();
    let request = parse_request(&body).expect("valid");
    let pseudonymizer = Pseudonymizer::new(&[7u8; 32]).expect("key");
    let unit = pseudonymizer.user_id(&user);
    let ids: Vec<String> = (0..1024)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let now = chrono::Utc::now();
    let inputs = |i: usize| Inputs {
        decision_id: &ids[i % ids.len()],
        now,
        unit: Some(&unit),
        model: &model,
        config: &config,
        policy: None,
        shadow: None,
        risk_model: None,
    };
    let one = decide(&request, Ok(&features), inputs(0));
    assert!(
        one.response.actions.len() > 1,
        "a treated decision with candidates"
    );
    let response_bytes = serde_json::to_vec(&one.response).expect("json").len();

    let calls = 200_000;
    let warm = |n| {
        for i in 0..n {
            black_box(
                serde_json::to_vec(&decide(&request, Ok(&features), inputs(i)).response).ok(),
            );
        }
    };
    warm(20_000);
    let compute = per_call_ns(calls, |i| {
        let d = decide(black_box(&request), Ok(black_box(&features)), inputs(i));
        black_box(serde_json::to_vec(&d.response).ok());
    });
    let full = per_call_ns(calls, |i| {
        let request = parse_request(black_box(&body)).expect("valid");
        let unit = pseudonymizer.user_id(request.user_id.as_deref().unwrap_or(""));
        let d = decide(
            &request,
            Ok(black_box(&features)),
            Inputs {
                unit: Some(&unit),
                ..inputs(i)
            },
        );
        black_box(serde_json::to_vec(&d.response).ok());
        black_box(serde_json::to_vec(&d.event).ok());
    });
    // The learned policy serving, alone and with a shadow challenger, on the same requests.
    let champion = policy("champion", 1);
    let challenger = policy("challenger", 2);
    let learned = |shadow: bool| {
        per_call_ns(calls, |i| {
            let d = decide(
                black_box(&request),
                Ok(black_box(&features)),
                Inputs {
                    policy: Some(&champion),
                    shadow: shadow.then_some(&challenger),
                    ..inputs(i)
                },
            );
            black_box(serde_json::to_vec(&d.response).ok());
        })
    };
    let learned_alone = learned(false);
    let learned_shadow = learned(true);
    // At checkout with the risk assessment, worst case: all four profiles full (256 signals each).
    let risk_model = checkout_domain::risk::model::fallback().expect("risk model");
    let mut risky = features.clone();
    for key in checkout_domain::risk::signals::RiskKey::ALL {
        let signals: Vec<checkout_domain::risk::signals::Signal> = (0..256)
            .map(|i| checkout_domain::risk::signals::Signal {
                at: now - chrono::Duration::minutes(i * 37),
                event_id: format!("e{i}"),
                kind: checkout_domain::risk::signals::SignalKind::Attempt,
                card: Some(format!("c{}", i % 7)),
                fraud_label_at: (i % 5 == 0).then(|| now - chrono::Duration::hours(1)),
            })
            .collect();
        let mut p = checkout_domain::risk::signals::RiskProfile::default();
        p.add(&signals);
        risky.risk.insert(key, p);
    }
    let checkout_body = json!({"session_id": session, "user_id": user, "placement": "checkout",
        "context": {"device": "mobile", "country": "DE", "device_id": "dev-1", "ip": "198.51.100.7",
            "payment": {"card_fingerprint": "fp-1", "billing_country": "DE", "shipping_country": "FR"},
            "cart": {"currency": "EUR", "items": [
            {"product_id": "sku-1", "quantity": 1, "unit_price_minor": 7999, "unit_cost_minor": 4000}]}}})
    .to_string()
    .into_bytes();
    let checkout = parse_request(&checkout_body).expect("valid");
    let at_checkout = |risk: bool| {
        per_call_ns(calls, |i| {
            let d = decide(
                black_box(&checkout),
                Ok(black_box(&risky)),
                Inputs {
                    risk_model: risk.then_some(&risk_model),
                    ..inputs(i)
                },
            );
            black_box(serde_json::to_vec(&d.response).ok());
        })
    };
    let checkout_plain = at_checkout(false);
    let checkout_risk = at_checkout(true);
    let assessed = decide(
        &checkout,
        Ok(&risky),
        Inputs {
            risk_model: Some(&risk_model),
            ..inputs(0)
        },
    );
    let friction = assessed
        .response
        .risk
        .as_ref()
        .filter(|r| r.score.is_some())
        .map(|r| r.friction.as_str())
        .expect("assessed");
    let timer = per_call_ns(calls, |i| {
        black_box(i);
    });
    json!({
        "decision_compute_ns": summary(&compute),
        "decision_compute_learned_ns": summary(&learned_alone),
        "decision_compute_learned_shadow_ns": summary(&learned_shadow),
        "shadow_added_p99_ns": quantile(&learned_shadow, 0.99).unwrap_or(0.0) - quantile(&learned_alone, 0.99).unwrap_or(0.0),
        "decision_compute_checkout_ns": summary(&checkout_plain),
        "decision_compute_checkout_risk_ns": summary(&checkout_risk),
        "risk_added_p99_ns": quantile(&checkout_risk, 0.99).unwrap_or(0.0) - quantile(&checkout_plain, 0.99).unwrap_or(0.0),
        "checkout_risk_friction": friction,
        "request_to_response_and_event_ns": summary(&full),
        "timer_overhead_ns": summary(&timer),
        "response_bytes": response_bytes,
        "candidates": one.response.actions.len(),
    })
}

/// Execs the scorer binary against a stub Runtime API and returns the time to its first `/next`. The
/// binary logs at `info`, as deployed; each run's log must contain `expect` (what init loaded).
fn cold_start(
    binary: &Path,
    env: &[(String, String)],
    runs: usize,
    expect: &str,
) -> serde_json::Value {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let api = listener.local_addr().expect("addr").to_string();
    let mut ms = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut child = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "scorer")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the scorer binary runs");
        let (stream, _) = listener.accept().expect("the runtime connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("request line");
        let elapsed = started.elapsed();
        assert!(line.contains("/runtime/invocation/next"), "{line}");
        ms.push(elapsed.as_secs_f64() * 1e3);
        let _ = child.kill();
        let out = child.wait_with_output().expect("the scorer's log");
        let log = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(log.contains(expect), "init did not log `{expect}`:\n{log}");
    }
    ms.sort_by(f64::total_cmp);
    summary(&ms)
}

/// Makes the cold start do its real work on the local stack: a champion to load (pointer, then artifact)
/// and a decision config with an experiment.
fn publish_champion_and_config(stack: &serde_json::Value) {
    use checkout_domain::model::registry::{promote, publish};
    use checkout_domain::ports::{Condition, ObjectStore};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sdk = checkout_aws::config::local_sdk_config(
            stack["endpoint"].as_str().expect("endpoint"),
            stack["region"].as_str().expect("region"),
        )
        .await;
        let store = checkout_aws::s3::S3ObjectStore {
            client: checkout_aws::s3::s3_client(&sdk),
            bucket: stack["resources"]["ModelsBucket"]["name"]
                .as_str()
                .expect("bucket")
                .to_string(),
        };
        let mut artifact = fallback_model().expect("model").artifact().clone();
        artifact.version = "bench-1".into();
        publish(&store, &artifact).await.expect("publish");
        let record = promote(
            &store,
            &artifact.name,
            "bench-1",
            None,
            None,
            chrono::Utc::now(),
        )
        .await
        .expect("promote");
        assert!(
            record.pointer_moved,
            "the first version becomes the champion"
        );
        let config = DecisionConfig {
            experiments: vec![serde_json::from_value(json!({"id": "checkout-offers",
                "variations": ["control", "treatment"], "placement": "cart", "status": "running"}))
            .expect("experiment")],
            ..DecisionConfig::default()
        };
        store
            .put(
                checkout_domain::decision::config::DEFAULT_CONFIG_KEY,
                config.encode(),
                Condition::Absent,
            )
            .await
            .expect("config");
    });
}

fn main() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_scorer"));
    let mut report = compute();
    let base = |endpoint: &str| -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("MODEL_LOAD_BUDGET_MS", "2000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let stopped_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut stopped = base(&format!("http://127.0.0.1:{stopped_port}"));
    stopped.extend(
        [
            ("FEATURES_TABLE", "features"),
            ("EVENT_STREAM", "events"),
            ("MODELS_BUCKET", "models"),
            (
                "PSEUDONYM_KEY",
                "bench-only-pseudonymization-key-0123456789",
            ),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    report["cold_start_ms_stack_stopped"] =
        cold_start(&binary, &stopped, 20, "serving the compiled-in fallback");
    if let Ok(path) = std::env::var("BENCH_STACK") {
        // The description `infra/localstack.py` writes (read as JSON: the CLI's reader is not a
        // dependency of a Lambda crate).
        let stack: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("stack")).expect("json");
        publish_champion_and_config(&stack);
        let mut env = base(stack["endpoint"].as_str().expect("endpoint"));
        let vars = stack["functions"]["ScorerFunction"]
            .as_object()
            .expect("ScorerFunction");
        env.extend(
            vars.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
        );
        report["cold_start_ms_local_stack"] =
            cold_start(&binary, &env, 20, "loaded the champion model");
    } else {
        eprintln!("BENCH_STACK unset: cold start measured with the stack stopped only");
    }
    report["binary_bytes"] = json!(std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0));
    report["binary"] = json!(binary.file_name().map(|n| n.to_string_lossy().to_string()));
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    let path = out.join("decision-rust.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report).expect("json")).expect("write");
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    println!("written to {}", path.display());
}
