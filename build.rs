//! Compiles the plugin contract in `proto/` with protox (pure Rust, no protoc) and
//! generates the tonic client and server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/microgateway/plugin/v1/plugin.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".microgateway.plugin.v1")
        .compile_fds(fds)?;
    Ok(())
}
