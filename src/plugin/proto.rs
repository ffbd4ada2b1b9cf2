//! Generated protobuf and gRPC types: the plugin contract (`proto/microgateway/plugin/v1`)
//! and go-plugin's controller and stdio services (`proto/go-plugin`).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("microgateway.plugin.v1");

/// go-plugin's `plugin` package: `GRPCController` and `GRPCStdio`.
pub mod goplugin {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("plugin");
}
