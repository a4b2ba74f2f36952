//! Compiles `proto/remote.proto` (remote write 1.0), `proto/write_v2.proto`
//! (remote write 2.0) and `proto/metrics.proto`
//! (the protobuf exposition format) with prost, using protox, a protobuf
//! compiler in Rust, so that a fresh machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/remote.proto");
    println!("cargo:rerun-if-changed=proto/metrics.proto");
    println!("cargo:rerun-if-changed=proto/write_v2.proto");
    // Relative relocations packed (DT_RELR, glibc 2.36+): the PIE binary's
    // .rela.dyn shrinks from 500 KB, which the loader reads at every start
    // and which stayed resident, to a few KB.
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    commit();
    let descriptors = protox::compile(
        [
            "proto/remote.proto",
            "proto/write_v2.proto",
            "proto/metrics.proto",
        ],
        ["proto"],
    )?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}

/// `RELAY_COMMIT` for `relay --version`: the short hash of the commit
/// built, or `unknown` outside a git checkout (e.g. a source tarball).
fn commit() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RELAY_COMMIT={commit}");
    // A commit or a checkout moves HEAD or the branch it points to (a
    // worktree keeps HEAD apart from the shared refs).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    if let (Some(dir), Some(head)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        println!("cargo:rerun-if-changed={dir}/{head}");
    }
}
