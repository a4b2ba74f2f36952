//! Compiles `proto/remote.proto` (remote write 1.0) with prost, using protox,
//! a protobuf compiler in Rust, so that a fresh machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/remote.proto");
    // Relative relocations packed (DT_RELR, glibc 2.36+): the PIE binary's
    // .rela.dyn shrinks from 500 KB, which the loader reads at every start
    // and which stayed resident, to a few KB.
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let descriptors = protox::compile(["proto/remote.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
