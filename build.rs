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
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
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
