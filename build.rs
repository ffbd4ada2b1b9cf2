//! Compiles the plugin contract in `proto/` (and go-plugin's controller and stdio
//! services) with protox (pure Rust, no protoc) and generates tonic clients and servers.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/microgateway/plugin/v1/plugin.proto",
        "proto/go-plugin/grpc_controller.proto",
        "proto/go-plugin/grpc_stdio.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    // `microgateway --version` reports the commit it was built from.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
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
    Ok(())
}
