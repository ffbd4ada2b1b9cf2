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
    let fds = protox::compile(protos, ["proto", "proto/go-plugin"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".microgateway.plugin.v1")
        .compile_fds(fds)?;
    Ok(())
}
