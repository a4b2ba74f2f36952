//! Compiles `proto/remote.proto` (remote write 1.0) with prost, using protox,
//! a protobuf compiler in Rust, so that a fresh machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/remote.proto");
    let descriptors = protox::compile(["proto/remote.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
