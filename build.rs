//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and embeds the
//! descriptor set so the server can offer gRPC reflection.
use prost::Message;
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "portcullis/v1/types.proto",
    "portcullis/v1/check_service.proto",
    "portcullis/v1/list_accessible_service.proto",
    "portcullis/v1/admin_service.proto",
    "portcullis/v1/operator_service.proto",
    "portcullis/v1/watch_service.proto",
    "portcullis/v1/tenant_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // The PostgreSQL variants of the tests are marked ignored (and reported
    // so) unless a test database is configured: `cargo test` never counts
    // a test it did not run as passed.
    println!("cargo:rustc-check-cfg=cfg(portcullis_pg)");
    println!("cargo:rerun-if-env-changed=PORTCULLIS_TEST_DATABASE_URL");
    if env::var("PORTCULLIS_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=portcullis_pg");
    }
    // The commit the binary was built from, for its startup line; `unknown`
    // outside a git checkout (a source tarball, a container build context
    // without `.git`).
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PORTCULLIS_GIT_REVISION={revision}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("portcullis_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Undecodable requests are INVALID_ARGUMENT (src/grpc/codec.rs).
        .codec_path("crate::grpc::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
