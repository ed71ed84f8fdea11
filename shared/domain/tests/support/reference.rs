//! Runs one of the independent reference implementations under `infra/` (numpy, gbstats) in the
//! repository's virtualenv, and returns what it printed. Shared by the differential tests
//! (`ope.rs`, `drift.rs`, `gbstats_differential.rs`) through `#[path]`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// `.venv/bin/python infra/<script> <args…>`, with `input` as JSON on its standard input; panics with
/// its standard error if it fails.
pub fn run(script: &str, args: &[&str], input: Option<&serde_json::Value>) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make venv`",
        python.display()
    );
    let mut child = Command::new(python)
        .arg(root.join("infra").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("runs {script}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(input) = input {
        serde_json::to_writer(&mut stdin, input).expect("writes the input");
        stdin.flush().expect("flushes the input");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("waits");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
