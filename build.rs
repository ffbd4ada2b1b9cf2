//! Compiles the plugin contract in `proto/` (and go-plugin's controller and stdio
//! services) with protox (pure Rust, no protoc) and generates tonic clients and servers;
//! and Tyk AI Studio's contract (`proto/tyk/plugin.proto`, package `plugin` like
//! go-plugin's services) into its own directory, `OUT_DIR/tyk`, as a client only.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/microgateway/plugin/v1/plugin.proto",
        "proto/go-plugin/grpc_controller.proto",
        "proto/go-plugin/grpc_stdio.proto",
    ];
    for proto in protos.iter().chain(&["proto/tyk/plugin.proto"]) {
        println!("cargo:rerun-if-changed={proto}");
    }
    // `microgateway --version` reports the commit it was built from.
    // Only paths that exist: in a git worktree `.git` is a file, and a missing path
    // would make cargo re-run this script (and rebuild the crate) on every build.
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let hash = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MICROGATEWAY_GIT_HASH={hash}");
    let fds = protox::compile(protos, ["proto", "proto/go-plugin"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".microgateway.plugin.v1")
        .compile_fds(fds)?;
    // Same package name as go-plugin's services, so a directory of its own.
    let tyk_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("tyk");
    std::fs::create_dir_all(&tyk_dir)?;
    let fds = protox::compile(["proto/tyk/plugin.proto"], ["proto/tyk"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .bytes(".plugin")
        .out_dir(&tyk_dir)
        .compile_fds(fds)?;
    Ok(())
}
