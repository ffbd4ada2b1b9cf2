//! Generated protobuf and gRPC types of the plugin contract (`proto/microgateway/plugin/v1`).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("microgateway.plugin.v1");
