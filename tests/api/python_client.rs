//! The README's Python example, run as written: stubs generated from
//! `proto/` with `grpcio-tools`, then `check.py` against a real server.
//! CI installs grpcio-tools (`.ci/run`) and requires this test to run
//! (`PORTCULLIS_REQUIRE_PYTHON`); elsewhere it says why it did not.

use crate::helpers::*;
use std::process::Command;

/// The README's ```python block that holds `CheckServiceStub`.
fn example() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut blocks = readme.split("```python\n").skip(1);
    blocks
        .find_map(|b| {
            let code = b.split("\n```").next()?;
            code.contains("CheckServiceStub")
                .then(|| format!("{code}\n"))
        })
        .expect("the README has the Python example")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_python_example_checks_through_generated_stubs() {
    let have = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("PORTCULLIS_REQUIRE_PYTHON").is_none(),
            "grpcio-tools is required (pip install grpcio-tools==1.76.0 grpcio==1.76.0)"
        );
        eprintln!("python3 with grpcio-tools missing: the Python example was not run");
        return;
    }
    let app = spawn_app().await;
    app.user("bob").await;
    app.resource("workflow:invoice-sync", None).await;
    app.resource("workflow:payroll", None).await;
    app.grant("bob", "editor", "workflow:invoice-sync").await;

    let dir = tempfile::tempdir().expect("dir");
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let files: Vec<String> = std::fs::read_dir(format!("{proto}/portcullis/v1"))
        .expect("protos")
        .map(|e| e.expect("entry").path().display().to_string())
        .filter(|p| p.ends_with(".proto"))
        .collect();
    std::fs::create_dir(dir.path().join("gen")).expect("gen");
    let generated = Command::new("python3")
        .current_dir(dir.path())
        .args(["-m", "grpc_tools.protoc", "-I", proto])
        .args(["--python_out=gen", "--grpc_python_out=gen"])
        .args(&files)
        .output()
        .expect("protoc");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    std::fs::write(dir.path().join("check.py"), example()).expect("check.py");
    let run = |args: [&str; 4]| {
        let o = Command::new("python3")
            .current_dir(dir.path())
            .arg("check.py")
            .args(args)
            .env("PORTCULLIS_ADDR", app.addr.to_string())
            .env("PORTCULLIS_KEY", CHECK_KEY)
            .output()
            .expect("python3 check.py");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(
        run(["bob", "execute", "workflow", "invoice-sync"]),
        "allowed REASON_GRANTED"
    );
    let denied = app.check_full("bob", "execute", "workflow:payroll").await;
    assert!(
        portcullis::grpc::pb::Reason::try_from(denied.reason).is_ok(),
        "a known reason"
    );
    assert_eq!(
        run(["bob", "execute", "workflow", "payroll"]),
        format!("denied {}", portcullis::grpc::reason_name(denied.reason))
    );
}
