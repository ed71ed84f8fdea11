//! Every function binary under the Lambda Runtime API: `cargo lambda watch --only-lambda-apis` (the
//! emulator, from the repo's virtualenv) serves the Runtime API, the function's binary runs against it
//! with the `<Function>.env` file `infra/localstack.py` writes for a fresh local stack, and `cargo lambda
//! invoke` sends it its `events/` fixture, as docs/local-stack.md and each function's README show. The
//! answers and their effects are checked: ingest reports no batch item failures and logs the valid
//! events and quarantines the poison ones, the feature updater projects the logged session, the scorer
//! answers the API Gateway event with a 200 decision and the invalid one with a 400, the evaluator
//! answers the scheduler event with its run summary, the item and page batch run writes the item its
//! (seeded) query result describes.
//!
//! The binaries are the ones `sam build` made when `CHECKOUT_AI_BOOTSTRAPS` names its build folder
//! (`make test` runs the SAM build check first and passes it: one build serves both); otherwise the test
//! builds each package itself (`cargo build -p <package>`), so a plain `cargo test` is never stale.

use checkout_ai_integration_tests::{
    athena_result, fresh_stack_in, logged_ids, quarantine_messages, repo_root, seed_athena,
};
use checkout_aws::features::DynamoFeatureStore;
use checkout_aws::s3::{s3_client, S3ObjectStore};
use checkout_domain::decision::config::{DecisionConfig, DEFAULT_CONFIG_KEY};
use checkout_domain::features::batch::{ItemRow, PageRow};
use checkout_domain::features::{Doc, Key};
use checkout_domain::ports::FeatureReader as _;
use checkout_domain::ports::{Condition, ObjectStore};
use serde_json::{json, Value};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cargo_lambda() -> PathBuf {
    let p = repo_root().join(".venv/bin/cargo-lambda");
    assert!(p.exists(), "{} is missing: run `make venv`", p.display());
    p
}

/// The Runtime API emulator and one function running against it; both killed when dropped.
struct Watch {
    emulator: Child,
    function: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.emulator] {
            // Each runs in its own process group: end the group.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }
}

/// The function's binary: `sam build`'s `bootstrap` when `CHECKOUT_AI_BOOTSTRAPS` names its build
/// folder, else the package built here (a no-op when it is up to date).
fn binary(package: &str, function: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("CHECKOUT_AI_BOOTSTRAPS") {
        let p = Path::new(&dir).join(function).join("bootstrap");
        assert!(
            p.exists(),
            "{} is missing (CHECKOUT_AI_BOOTSTRAPS)",
            p.display()
        );
        return p;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args(["build", "--locked", "-p", package, "--bin", package])
        .status()
        .expect("cargo build runs");
    assert!(status.success(), "cargo build -p {package} failed");
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("../debug")
        .join(package)
}

/// `KEY=VALUE` lines of a dotenv file.
fn dotenv(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `cargo lambda watch --only-lambda-apis` on a free port, and the function's binary against it with the
/// environment of `<dir>/<function>.env`.
fn watch(package: &str, dir: &Path, function: &str) -> Watch {
    use std::os::unix::process::CommandExt;
    let binary = binary(package, function);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let emulator = Command::new(cargo_lambda())
        .current_dir(repo_root())
        .args(["lambda", "watch", "--only-lambda-apis"])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("cargo lambda watch starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch --only-lambda-apis did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = dir.join(format!("{function}.log"));
    let out = std::fs::File::create(&log).expect("log file");
    let function = Command::new(&binary)
        .envs(dotenv(&dir.join(format!("{function}.env"))))
        // What the emulator asks a function it does not start to be given (the default function, `_`).
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    Watch {
        emulator,
        function,
        port,
        log,
    }
}

/// Generous: a cold start against the local stack on a loaded machine.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// `cargo lambda invoke --data-file events/<fixture>`: the function's JSON answer.
fn invoke(w: &Watch, fixture: &str) -> Value {
    let mut child = Command::new(cargo_lambda())
        .current_dir(repo_root())
        .args(["lambda", "invoke", "_", "--data-file"])
        .arg(format!("events/{fixture}"))
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &w.port.to_string(),
        ])
        .args(["--output-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo lambda invoke runs");
    let log = || std::fs::read_to_string(&w.log).unwrap_or_default();
    // A function that dies leaves the invocation waiting: give up after the timeout.
    let deadline = Instant::now() + INVOKE_TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{fixture}: no answer within {INVOKE_TIMEOUT:?}; the function's log:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("invoke output");
    assert!(
        out.status.success(),
        "{fixture}: {}{}\nthe function's log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{fixture}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_runs_under_the_runtime_api_with_its_fixtures() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("runtime-{}", std::process::id()));
    let stack = fresh_stack_in("runtime", &dir);
    // The evaluator's one-experiment fixture names a running experiment.
    let sdk = stack.sdk_config().await;
    let config = DecisionConfig {
        experiments: vec![serde_json::from_value(json!({"id": "checkout-offers",
            "variations": ["control", "treatment"], "placement": "cart", "status": "running"}))
        .unwrap()],
        ..DecisionConfig::default()
    };
    S3ObjectStore {
        client: s3_client(&sdk),
        bucket: stack.resource("ModelsBucket").unwrap().name.clone(),
    }
    .put(DEFAULT_CONFIG_KEY, config.encode(), Condition::Absent)
    .await
    .unwrap();

    let w = watch("ingest", &dir, "IngestFunction");
    assert_eq!(
        invoke(&w, "kinesis-valid.json"),
        json!({"batchItemFailures": []})
    );
    let valid: std::collections::BTreeSet<String> =
        (1..=12).map(|i| format!("evt-{i:04}")).collect();
    assert_eq!(logged_ids(&stack).await, valid);
    assert_eq!(
        invoke(&w, "kinesis-poison.json"),
        json!({"batchItemFailures": []})
    );
    drop(w);
    let mut logged = valid;
    logged.extend(["evt-0100".to_string(), "evt-0107".to_string()]);
    assert_eq!(logged_ids(&stack).await, logged);
    assert_eq!(quarantine_messages(&stack).await.len(), 6);

    let w = watch("feature-updater", &dir, "FeatureUpdaterFunction");
    let answer = invoke(&w, "dynamodb-event-log-inserts.json");
    assert_eq!(answer, json!({"batchItemFailures": []}));
    drop(w);
    let store = DynamoFeatureStore {
        client: aws_sdk_dynamodb::Client::new(&sdk),
        table: stack.resource("FeaturesTable").unwrap().name.clone(),
    };
    let key = Key::session("sess-7f3a");
    match store
        .get_many(std::slice::from_ref(&key))
        .await
        .unwrap()
        .remove(&key)
    {
        Some(stored) => match stored.doc {
            Doc::Session(s) => assert_eq!(s.event_count as usize, logged.len(), "{s:?}"),
            other => panic!("not a session: {other:?}"),
        },
        None => panic!("the feature updater did not project sess-7f3a"),
    }

    let w = watch("scorer", &dir, "ScorerFunction");
    let ok = invoke(&w, "apigw-decision.json");
    assert_eq!(ok["statusCode"], 200, "{ok}");
    let body: Value = serde_json::from_str(ok["body"].as_str().unwrap()).unwrap();
    assert!(
        body["decision_id"].is_string() && body["actions"][0]["action"]["type"].is_string(),
        "{body}"
    );
    let bad = invoke(&w, "apigw-decision-invalid.json");
    assert_eq!(bad["statusCode"], 400, "{bad}");
    let health = invoke(&w, "apigw-health.json");
    assert_eq!(health["statusCode"], 200, "{health}");
    drop(w);

    let w = watch("experiment-evaluator", &dir, "ExperimentEvaluatorFunction");
    let run = invoke(&w, "scheduler-evaluate.json");
    assert_eq!(run["window_end"], "2025-11-20T11:00:00Z", "{run}");
    assert_eq!(
        run["reports"][0]["experiment_id"], "checkout-offers",
        "{run}"
    );
    assert_eq!(run["reports"][0]["outcome"], "written", "{run}");
    let again = invoke(&w, "scheduler-evaluate-one.json");
    assert_eq!(again["reports"][0]["outcome"], "exists", "{again}");
    drop(w);

    // Recovery: the abandoned cart is ingested and projected (its due item written), and the sweep's
    // schedule fixture, an hour and a half after the abandonment, decides and sends its first message,
    // or logs the holdout's decision, as the user's assignment says.
    let w = watch("ingest", &dir, "IngestFunction");
    assert_eq!(
        invoke(&w, "kinesis-abandoned-cart.json"),
        json!({"batchItemFailures": []})
    );
    drop(w);
    let w = watch("feature-updater", &dir, "FeatureUpdaterFunction");
    assert_eq!(
        invoke(&w, "dynamodb-abandoned-cart-inserts.json"),
        json!({"batchItemFailures": []})
    );
    drop(w);
    let user = checkout_ai_integration_tests::log_items(&stack)
        .await
        .into_iter()
        .find(|e| e.session_id == "sess-9c21")
        .and_then(|e| e.user_id)
        .expect("the cart's pseudonymous user");
    let treated = DecisionConfig::default()
        .recovery
        .experiment()
        .assign(&user)
        .is_some_and(|a| a.variant == checkout_domain::recovery::TREATMENT);
    let w = watch("recovery-sweep", &dir, "RecoverySweepFunction");
    let run = invoke(&w, "scheduler-recovery-sweep.json");
    drop(w);
    assert_eq!(run["due_items"], 1, "{run}");
    let messages =
        checkout_ai_integration_tests::queue_messages(&stack, "RecoveryOutboundQueue").await;
    if treated {
        assert_eq!(run["sent_by_step"]["0"], 1, "{run}");
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0]["cart_token"], "sess-9c21");
        assert_eq!(messages[0]["user"], user.as_str());
    } else {
        assert_eq!(run["holdout"], 1, "{run}");
        assert!(messages.is_empty());
    }
    let types: Vec<String> = checkout_ai_integration_tests::log_items(&stack)
        .await
        .into_iter()
        .filter(|e| e.session_id == "sess-9c21")
        .map(|e| e.event_type)
        .collect();
    assert!(types.contains(&"decision_served".to_string()), "{types:?}");
    assert_eq!(
        types.contains(&"recovery_message_requested".to_string()),
        treated,
        "{types:?}"
    );

    // The item and page batch run: its two queries answered by moto with seeded results (it runs no SQL).
    let workgroup = stack
        .env("ItemPageBatchFunction")
        .unwrap()
        .required("ARCHIVE_WORKGROUP")
        .unwrap()
        .to_string();
    aws_sdk_athena::Client::new(&sdk)
        .create_work_group()
        .name(&workgroup)
        .send()
        .await
        .unwrap();
    let item = json!({"row_kind": "item", "product_id": "sku-batch", "views": 2, "cart_adds": 0,
        "purchases": 0, "units": 0, "sessions": 1, "last_event_at": "2026-11-30 12:00:00",
        "expires_at": 4_000_000_000u64});
    seed_athena(
        checkout_ai_integration_tests::moto(),
        vec![
            athena_result(&ItemRow::COLUMNS, &[item]),
            athena_result(&PageRow::COLUMNS, &[]),
        ],
    );
    let w = watch("item-page-batch", &dir, "ItemPageBatchFunction");
    let run = invoke(&w, "scheduler-item-page-batch.json");
    drop(w);
    assert_eq!(
        (&run["computed"], &run["written"]),
        (&json!(1), &json!(1)),
        "{run}"
    );
    let key = Key::item("sku-batch");
    assert!(matches!(
        store.get_many(std::slice::from_ref(&key)).await.unwrap().remove(&key).map(|s| s.doc),
        Some(Doc::Item(i)) if i.views == 2
    ));
    std::fs::remove_dir_all(&dir).ok();
}
