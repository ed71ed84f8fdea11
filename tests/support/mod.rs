//! Test support: moto server on 127.0.0.1 started by the tests themselves, a fresh stack per test created
//! from template.yaml, and helpers to build Lambda events and read the stores back.

pub mod faults;

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use checkout_ai::census::scan_log;
use checkout_ai::local::stack::LocalStack;
use checkout_domain::ingest::{LogEntry, QuarantineRecord};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The scorer's budgets for tests against the local stack: generous, so that no outcome depends on a
/// wall-clock budget being met on a loaded machine. (The template's own budgets, tens of milliseconds, are
/// what `make bench-decision` and the demo exercise; the in-memory handler tests check the budget paths
/// on tokio's paused clock.)
pub fn generous_budgets(env: checkout_aws::Env) -> checkout_aws::Env {
    env.with("FEATURE_BUDGET_MS", "30000")
        .with("EVENT_PUT_BUDGET_MS", "30000")
        .with("DECISION_CONFIG_FETCH_BUDGET_MS", "30000")
        .with("MODEL_LOAD_BUDGET_MS", "30000")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv_bin(name: &str) -> PathBuf {
    let p = repo_root().join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `make venv` (make test does it)",
        p.display()
    );
    p
}

/// The REES46 file from ../shared/data, or `None` (the test then says it is skipped).
pub fn rees46() -> Option<PathBuf> {
    let p = repo_root().join("../shared/data/rees46-2019-10-01-head.csv");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} is absent", p.display());
        None
    }
}

static MOTO: OnceLock<String> = OnceLock::new();

/// The endpoint of this test binary's moto server, started on first use on a free 127.0.0.1 port.
///
/// The server is spawned from a thread that never ends, with `PR_SET_PDEATHSIG`, so the kernel kills it
/// when the test process exits, however it exits: no stray process is left behind.
pub fn moto() -> &'static str {
    MOTO.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // moto server with the transaction rollback fix (see infra/moto_server.py).
        let exe = venv_bin("python3");
        let launcher = repo_root().join("infra/moto_server.py");
        let log = std::env::temp_dir().join(format!("checkout-ai-moto-{port}.log"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut cmd = Command::new(exe);
            cmd.arg(&launcher)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).map_or(Stdio::null(), Stdio::from));
            // SAFETY: prctl is async-signal-safe and only affects the child being set up.
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let spawned = cmd.spawn().map(|c| c.id());
            let _ = tx.send(spawned);
            loop {
                std::thread::park();
            }
        });
        rx.recv()
            .expect("spawner thread")
            .expect("moto_server starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto server did not come up on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
}

static STACKS: AtomicUsize = AtomicUsize::new(0);

/// A fresh set of the template's resources on moto, under a unique prefix.
pub fn fresh_stack(name: &str) -> LocalStack {
    create_stack(name, None)
}

/// [`fresh_stack`], also writing the stack's files into `dir` as `make stack-up` writes them into
/// `.local/`: `stack.json`, `stack.sam-env.json` and one `<Function>.env` per function.
pub fn fresh_stack_in(name: &str, dir: &Path) -> LocalStack {
    create_stack(name, Some(dir))
}

fn create_stack(name: &str, dir: Option<&Path>) -> LocalStack {
    let endpoint = moto();
    let prefix = format!(
        "{name}-{}-{}",
        std::process::id(),
        STACKS.fetch_add(1, Ordering::SeqCst)
    );
    let mut command = Command::new(venv_bin("python"));
    command.arg(repo_root().join("infra/localstack.py")).args([
        "create",
        "--endpoint",
        endpoint,
        "--prefix",
        &prefix,
        "--param",
        "EventRetentionDays=36500",
    ]);
    let description = dir.map(|d| d.join("stack.json"));
    if let Some(path) = &description {
        command.arg("--out").arg(path);
    }
    let out = command.output().expect("runs infra/localstack.py");
    assert!(
        out.status.success(),
        "localstack.py create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = match &description {
        Some(path) => std::fs::read(path).expect("stack.json"),
        None => out.stdout,
    };
    serde_json::from_slice(&text).expect("stack description")
}

/// Every item of the stack's event log.
pub async fn log_items(stack: &LocalStack) -> Vec<LogEntry> {
    let sdk = stack.sdk_config().await;
    let table = &stack.resource("EventLogTable").expect("table").name;
    let mut items = scan_log(&aws_sdk_dynamodb::Client::new(&sdk), table)
        .await
        .expect("scan");
    items.sort_by(|a, b| (&a.session_id, &a.event_id).cmp(&(&b.session_id, &b.event_id)));
    items
}

/// The event ids in the stack's event log.
pub async fn logged_ids(stack: &LocalStack) -> std::collections::BTreeSet<String> {
    log_items(stack)
        .await
        .into_iter()
        .map(|e| e.event_id)
        .collect()
}

/// Every message in the stack's quarantine queue (received, then deleted).
pub async fn quarantine_messages(stack: &LocalStack) -> Vec<QuarantineRecord> {
    queue_messages(stack, "QuarantineQueue")
        .await
        .into_iter()
        .map(|m| serde_json::from_value(m).expect("quarantine record JSON"))
        .collect()
}

/// Receives and deletes every message of one of the stack's queues, as JSON.
pub async fn queue_messages(stack: &LocalStack, queue: &str) -> Vec<serde_json::Value> {
    checkout_ai::local::queue_messages(stack, queue)
        .await
        .expect("the queue drains")
}

/// A Kinesis event for payloads, as Lambda would deliver them from one shard.
pub fn kinesis_event(payloads: &[Vec<u8>], stream_arn: &str) -> KinesisEvent {
    let b64 = base64::engine::general_purpose::STANDARD;
    let records: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let seq = format!("4960{i:036}");
            serde_json::json!({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": seq,
                            "data": b64.encode(p), "approximateArrivalTimestamp": 1_700_000_000.0},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record", "awsRegion": "us-east-1", "eventSourceARN": stream_arn,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("Kinesis event")
}

/// Seeds moto's next Athena results, one per query in the order the queries start. Each result is
/// `{"rows": [...]}` as Athena's `GetQueryResults` returns rows: a header row, then the data rows.
pub fn seed_athena(endpoint: &str, results: Vec<serde_json::Value>) {
    use std::io::{Read, Write};
    let body = serde_json::json!({"region": "us-east-1", "results": results}).to_string();
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("moto");
    write!(
        s,
        "POST /moto-api/static/athena/query-results HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 201") || answer.starts_with("HTTP/1.0 201"),
        "{answer}"
    );
}

/// One Athena result: a header of `columns`, then each row's cells as text (a JSON string as it is, any
/// other value as its JSON text), SQL NULL (JSON null or a missing field) as a cell without a value.
pub fn athena_result(columns: &[&str], rows: &[serde_json::Value]) -> serde_json::Value {
    use serde_json::json;
    let mut all = vec![
        json!({"Data": columns.iter().map(|c| json!({"VarCharValue": c})).collect::<Vec<_>>()}),
    ];
    for r in rows {
        let cells: Vec<serde_json::Value> = columns
            .iter()
            .map(|c| match r.get(*c).unwrap_or(&serde_json::Value::Null) {
                serde_json::Value::Null => json!({}),
                serde_json::Value::String(s) => json!({"VarCharValue": s}),
                other => json!({"VarCharValue": other.to_string()}),
            })
            .collect();
        all.push(json!({"Data": cells}));
    }
    json!({"rows": all})
}
