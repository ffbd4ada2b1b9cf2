//! The plugin-side gRPC server and the go-plugin handshake.

use super::{Handler, pb};
use crate::plugin::proto::goplugin;
use crate::plugin::proto::goplugin::grpc_controller_server::{
    GrpcController, GrpcControllerServer,
};
use crate::plugin::proto::plugin_server::{Plugin as PluginService, PluginServer};
use crate::remote::{COOKIE_KEY, COOKIE_VALUE};
use std::io::Write;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Why a plugin process could not serve.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// Started directly instead of by the gateway.
    #[error(
        "this is a microgateway plugin: configure it as file:///path/to/it in microgateway, or run it with --listen ADDR to serve grpc://"
    )]
    NotLaunchedByHost,
    /// The gateway offered no protocol version this plugin speaks.
    #[error("the gateway offers plugin protocol versions {0:?}; this plugin speaks 1")]
    Version(String),
    /// Socket or listener setup failed.
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Serves `handler` as described in the [module documentation](super).
pub async fn serve<H: Handler>(handler: H) -> Result<(), SdkError> {
    let listen = std::env::args()
        .skip_while(|a| a != "--listen")
        .nth(1)
        .or_else(|| std::env::var("MICROGATEWAY_PLUGIN_LISTEN").ok());
    let stop = CancellationToken::new();
    let adapter = Adapter(Arc::new(handler));
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let router = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(GrpcControllerServer::new(Controller(stop.clone())))
        .add_service(PluginServer::new(adapter));
    let shutdown = {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    };
    if let Some(addr) = listen {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(SdkError::Listen)?;
        let local = listener.local_addr().map_err(SdkError::Listen)?;
        eprintln!("plugin serving grpc://{local}");
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        return Ok(router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?);
    }
    if std::env::var(COOKIE_KEY).as_deref() != Ok(COOKIE_VALUE) {
        return Err(SdkError::NotLaunchedByHost);
    }
    let versions = std::env::var("PLUGIN_PROTOCOL_VERSIONS").unwrap_or_default();
    if !versions.split(',').any(|v| v.trim() == "1") {
        return Err(SdkError::Version(versions));
    }
    match std::env::var("PLUGIN_UNIX_SOCKET_DIR") {
        Ok(dir) if !dir.is_empty() => {
            let path =
                std::path::Path::new(&dir).join(format!("plugin-{}.sock", std::process::id()));
            let listener = tokio::net::UnixListener::bind(&path).map_err(SdkError::Listen)?;
            handshake(&format!("1|1|unix|{}|grpc", path.display()))?;
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            Ok(router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?)
        }
        _ => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(SdkError::Listen)?;
            let local = listener.local_addr().map_err(SdkError::Listen)?;
            handshake(&format!("1|1|tcp|{local}|grpc"))?;
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            Ok(router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?)
        }
    }
}

fn handshake(line: &str) -> Result<(), SdkError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(SdkError::Listen)
}

struct Controller(CancellationToken);

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(
        &self,
        _: Request<goplugin::Empty>,
    ) -> Result<Response<goplugin::Empty>, Status> {
        self.0.cancel();
        Ok(Response::new(goplugin::Empty {}))
    }
}

struct Adapter<H>(Arc<H>);

#[tonic::async_trait]
impl<H: Handler> PluginService for Adapter<H> {
    async fn get_manifest(&self, _: Request<pb::Empty>) -> Result<Response<pb::Manifest>, Status> {
        Ok(Response::new(self.0.manifest()))
    }

    async fn initialize(
        &self,
        req: Request<pb::InitializeRequest>,
    ) -> Result<Response<pb::InitializeResponse>, Status> {
        let text = req.into_inner().config_json;
        let config = if text.is_empty() {
            Ok(serde_json::Value::Null)
        } else {
            serde_json::from_str(&text)
        };
        let result = match config {
            Ok(c) => self.0.initialize(c).await,
            Err(e) => Err(format!("config is not JSON: {e}")),
        };
        Ok(Response::new(match result {
            Ok(()) => pb::InitializeResponse {
                ok: true,
                error: String::new(),
            },
            Err(error) => pb::InitializeResponse { ok: false, error },
        }))
    }

    async fn pre_auth(
        &self,
        req: Request<pb::HookRequest>,
    ) -> Result<Response<pb::HookResponse>, Status> {
        self.0.pre_auth(req.into_inner()).await.map(Response::new)
    }

    async fn auth(
        &self,
        req: Request<pb::HookRequest>,
    ) -> Result<Response<pb::HookResponse>, Status> {
        self.0.auth(req.into_inner()).await.map(Response::new)
    }

    async fn post_auth(
        &self,
        req: Request<pb::HookRequest>,
    ) -> Result<Response<pb::HookResponse>, Status> {
        self.0.post_auth(req.into_inner()).await.map(Response::new)
    }

    async fn on_response_headers(
        &self,
        req: Request<pb::ResponseHeadersRequest>,
    ) -> Result<Response<pb::ResponseHeadersResponse>, Status> {
        self.0
            .on_response_headers(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn on_response_body(
        &self,
        req: Request<pb::ResponseBodyRequest>,
    ) -> Result<Response<pb::ResponseBodyResponse>, Status> {
        self.0
            .on_response_body(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn on_response_chunk(
        &self,
        req: Request<pb::ChunkRequest>,
    ) -> Result<Response<pb::ChunkResponse>, Status> {
        self.0
            .on_response_chunk(req.into_inner())
            .await
            .map(Response::new)
    }

    async fn on_stream_complete(
        &self,
        req: Request<pb::StreamCompleteRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.0
            .on_stream_complete(req.into_inner())
            .await
            .map(|()| Response::new(pb::Empty {}))
    }

    async fn collect(
        &self,
        req: Request<pb::CollectRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.0
            .collect(req.into_inner())
            .await
            .map(|()| Response::new(pb::Empty {}))
    }

    async fn ping(
        &self,
        req: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {
            nonce: req.into_inner().nonce,
        }))
    }
}
