//! Generates the gRPC code from `proto/cairn.proto`, with the `protoc` shipped by the
//! `protoc-bin-vendored` crate so a fresh machine needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts run single-threaded: this only tells prost-build which protoc to run.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/cairn.proto");
    tonic_prost_build::configure().compile_protos(&["proto/cairn.proto"], &["proto"])?;
    Ok(())
}
