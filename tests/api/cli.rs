//! The `portcullis` binary as an operator uses it (issue 12): strict
//! configuration (a typo is an error naming the key and the nearest known
//! one), keys in JSON and secrets from files, and the CLI's commands
//! against a real server: `check` (exit 0 allowed, 3 denied), `--explain`,
//! `list`, `health`, `keygen`, `config check`, `migrate status`.

use crate::helpers::{spawn_app, ADMIN_KEY, CHECK_KEY, TENANT};
use crate::process::ServerProcess;
use std::process::{Command, Output, Stdio};

/// Runs the binary with a clean `PORTCULLIS_*` environment plus `envs`.
pub(crate) fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("PORTCULLIS_")) {
            cmd.env_remove(k);
        }
    }
    cmd.env("PORTCULLIS_LOG__FORMAT", "json")
        .envs(envs.iter().copied())
        .args(args)
        .stdin(Stdio::null());
    cmd.output().expect("run portcullis")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}\n{}", stdout(o), stderr(o)))
}

#[test]
fn a_typo_in_a_variable_or_the_file_is_an_error_naming_the_nearest_key() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}/x.db?mode=rwc", dir.path().display());
    let o = run(&["serve"], &[("PORTCULLIS_DATABSE__URL", &db)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("`PORTCULLIS_DATABSE__URL`") && e.contains("`PORTCULLIS_DATABASE`"),
        "{e}"
    );
    assert!(
        !dir.path().join("x.db").exists(),
        "nothing was served or created"
    );

    let o = run(&["serve"], &[("PORTCULLIS_DATABASE__ULR", &db)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("did you mean `PORTCULLIS_DATABASE__URL`?"),
        "{}",
        stderr(&o)
    );

    let file = dir.path().join("portcullis.toml");
    std::fs::write(&file, format!("[database]\nulr = \"{db}\"\n")).expect("write");
    let o = run(&["--config", file.to_str().expect("utf-8"), "serve"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("`database.ulr`") && e.contains("did you mean `database.url`?"),
        "{e}"
    );

    // JSON files are read too, with the same strictness.
    let file = dir.path().join("portcullis.json");
    std::fs::write(&file, r#"{"grpc": {"max_in_fligt": 3}}"#).expect("write");
    let o = run(
        &["--config", file.to_str().expect("utf-8"), "config", "check"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("did you mean `grpc.max_in_flight`?"),
        "{}",
        stderr(&o)
    );

    // The variables of the tools themselves are not configuration.
    let o = run(
        &["config", "check", "-o", "json"],
        &[
            ("PORTCULLIS_ADDR", "http://127.0.0.1:1"),
            ("PORTCULLIS_TEST_DATABASE_URL", "x"),
            ("PORTCULLIS_DATABASE__URL", &db),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    // Secrets from files (Kubernetes secret volumes), keys as JSON.
    let url_file = dir.path().join("url");
    std::fs::write(
        &url_file,
        "postgres://app:hunter2-password@db.internal/authz?sslmode=verify-full\n",
    )
    .expect("write");
    let keys = dir.path().join("keys.json");
    std::fs::write(
        &keys,
        r#"[{"name": "svc", "key": "key-from-a-file-0123456789", "scope": "check"}]"#,
    )
    .expect("write");
    let o = run(
        &["config", "check", "-o", "json"],
        &[
            (
                "PORTCULLIS_DATABASE__URL_FILE",
                url_file.to_str().expect("utf-8"),
            ),
            ("PORTCULLIS_API_KEYS_FILE", keys.to_str().expect("utf-8")),
            ("PORTCULLIS_GRPC__MAX_IN_FLIGHT", "77"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        !text.contains("hunter2") && !text.contains("key-from-a-file"),
        "{text}"
    );
    let v = json(&o);
    assert_eq!(v["grpc"]["max_in_flight"], 77);
    assert_eq!(
        v["database"]["url"],
        "postgres://app:***@db.internal/authz?sslmode=verify-full"
    );
    assert_eq!(v["api_keys"][0]["name"], "svc");
    assert_eq!(v["api_keys"][0]["key"], "***");

    // Keys in a variable as JSON, as well as TOML's inline syntax.
    let o = run(
        &["config", "check", "-o", "json"],
        &[(
            "PORTCULLIS_API_KEYS",
            r#"[{"name": "a", "key": "0123456789abcdef0123", "scope": "admin"}]"#,
        )],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["api_keys"][0]["scope"], "admin");
    // Both ways of giving keys at once is refused.
    let o = run(
        &["config", "check"],
        &[
            ("PORTCULLIS_API_KEYS_FILE", keys.to_str().expect("utf-8")),
            (
                "PORTCULLIS_API_KEYS",
                r#"[{name="a",key="0123456789abcdef0123",scope="admin"}]"#,
            ),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("api_keys_file"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_with_json_keys_and_a_url_file_serves_with_them() {
    let dir = tempfile::tempdir().expect("dir");
    let url_file = dir.path().join("url");
    std::fs::write(
        &url_file,
        format!("sqlite://{}/s.db?mode=rwc", dir.path().display()),
    )
    .expect("write");
    let server = ServerProcess::try_start(
        &[
            (
                "PORTCULLIS_API_KEYS",
                format!(
                    r#"[{{"name": "op", "key": "{}", "scope": "operator"}}, {{"name": "chk", "key": "{CHECK_KEY}", "scope": "check"}}]"#,
                    crate::helpers::OPERATOR_KEY
                ),
            ),
            (
                "PORTCULLIS_DATABASE__URL_FILE",
                url_file.display().to_string(),
            ),
        ],
        &[],
    )
    .await
    .expect("serves");
    server.create_test_tenant().await;
    assert!(dir.path().join("s.db").exists(), "the URL from the file");
    let addr = format!("http://{}", server.addr());
    let o = run(&["health", "--addr", &addr, "-o", "json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["status"], "SERVING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_list_and_health_from_the_shell() {
    let app = spawn_app().await;
    app.resource("folder:f1", None).await;
    app.resource("workflow:w1", Some("folder:f1")).await;
    app.resource("workflow:w2", None).await;
    app.user("alice").await;
    let g = app.grant("alice", "editor", "folder:f1").await;
    let addr = format!("http://{}", app.addr);
    let key = [
        ("PORTCULLIS_KEY", CHECK_KEY),
        ("PORTCULLIS_ADDR", addr.as_str()),
    ];

    let o = run(
        &["check", "-t", TENANT, "alice", "edit", "workflow:w1"],
        &key,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("ALLOWED: alice edit workflow:w1"),
        "{}",
        stdout(&o)
    );

    let o = run(
        &["check", "-t", TENANT, "alice", "edit", "workflow:w2"],
        &key,
    );
    assert_eq!(o.status.code(), Some(3), "a denial exits 3: {}", stderr(&o));
    assert!(stdout(&o).starts_with("DENIED"), "{}", stdout(&o));

    let o = run(
        &[
            "check",
            "-t",
            TENANT,
            "alice",
            "edit",
            "workflow:w1",
            "--explain",
            "-o",
            "json",
        ],
        &key,
    );
    let v = json(&o);
    assert_eq!(v["allowed"], true);
    assert_eq!(v["reason"], "REASON_GRANTED");
    assert_eq!(v["explanation"]["grant_id"], g.id.as_str());
    assert_eq!(v["explanation"]["scope"]["id"], "f1");

    let o = run(
        &[
            "list", "-t", TENANT, "alice", "view", "workflow", "-o", "json",
        ],
        &key,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["ids"], serde_json::json!(["w1"]));

    // Bad input is named, and the key matters.
    let o = run(&["check", "-t", TENANT, "alice", "edit", "w1"], &key);
    assert_eq!(
        o.status.code(),
        Some(2),
        "clap refuses `w1`: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("type:id"), "{}", stderr(&o));
    let o = run(
        &[
            "check",
            "-t",
            TENANT,
            "alice",
            "edit",
            "workflow:w1",
            "--key",
            "wrong-key-0123456789",
        ],
        &[("PORTCULLIS_ADDR", addr.as_str())],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Unauthenticated") || stderr(&o).contains("unauthenticated"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &[
            "list", "-t", TENANT, "alice", "view", "workflow", "--key", ADMIN_KEY,
        ],
        &[("PORTCULLIS_ADDR", addr.as_str())],
    );
    assert!(
        o.status.success(),
        "an admin key may list too: {}",
        stderr(&o)
    );

    let o = run(&["health", "--addr", &addr], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "server: SERVING");
    let o = run(
        &[
            "health",
            "--addr",
            "http://127.0.0.1:1",
            "--timeout-ms",
            "500",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "nothing listens there");
}

#[test]
fn keygen_and_migrate_status() {
    let o = run(
        &["keygen", "--name", "svc", "--scope", "admin", "-o", "json"],
        &[],
    );
    assert!(o.status.success());
    let v = json(&o);
    let key = v["key"].as_str().expect("key");
    assert_eq!(key.len(), 43, "256 bits, base64url");
    assert_eq!(v["entry"]["scope"], "admin");
    let again = json(&run(&["keygen", "-o", "json"], &[]));
    assert_ne!(again["key"], v["key"]);

    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}/m.db?mode=rwc", dir.path().display());
    let env = [("PORTCULLIS_DATABASE__URL", db.as_str())];
    let o = run(&["migrate", "status", "-o", "json"], &env);
    assert_eq!(
        o.status.code(),
        Some(1),
        "pending migrations: {}",
        stderr(&o)
    );
    let before = json(&o);
    assert!(before["pending"].as_u64().expect("count") > 0);
    let o = run(&["migrate"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["migrate", "status"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(", 0 pending"), "{}", stdout(&o));
}
