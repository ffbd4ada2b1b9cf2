//! The plugin-side gRPC server and the go-plugin handshake, including go-plugin's
//! AutoMTLS: when the gateway offers a client certificate in `PLUGIN_CLIENT_CERT`, the
//! plugin answers with its own ephemeral certificate in the handshake and serves mutual
//! TLS that accepts exactly the gateway's certificate, on a unix socket and TCP alike.
//! The one exception: a unix socket stays plain when the gateway says its policy is
//! `tcp` (`MICROGATEWAY_AUTO_MTLS`), which accepts that.

use super::{Handler, pb};
use crate::plugin::proto::goplugin;
use crate::plugin::proto::goplugin::grpc_controller_server::{
    GrpcController, GrpcControllerServer,
};
use crate::plugin::proto::plugin_server::{Plugin as PluginService, PluginServer};
use crate::remote::automtls::{self, AutoMtlsError, Identity};
use crate::remote::{COOKIE_KEY, COOKIE_VALUE};
use futures_util::{Stream, StreamExt};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, Router};
use tonic::{Request, Response, Status};

/// Time a connecting gateway gets for the AutoMTLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// AutoMTLS could not be set up.
    #[error(transparent)]
    AutoMtls(#[from] AutoMtlsError),
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
    // AutoMTLS as go-plugin's plugin.Serve does it: answer an offered client
    // certificate with one of our own, announced in the sixth handshake field.
    let unix_dir = std::env::var("PLUGIN_UNIX_SOCKET_DIR")
        .ok()
        .filter(|dir| !dir.is_empty());
    // A gateway whose policy is `tcp` accepts a plain unix socket in the private
    // directory it made for us, and TLS there would only cost CPU on every call. Any
    // other host (or policy) gets go-plugin's behaviour: TLS whenever a certificate is
    // offered.
    let plain_unix =
        unix_dir.is_some() && std::env::var(automtls::POLICY_ENV).as_deref() == Ok("tcp");
    let tls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(client) if !client.is_empty() && !plain_unix => {
            let ours = Identity::generate()?;
            let config = automtls::server_config(&ours, &client)?;
            Some((
                ours.handshake_field(),
                tokio_rustls::TlsAcceptor::from(config),
            ))
        }
        _ => None,
    };
    let (cert, acceptor) = match tls {
        Some((cert, acceptor)) => (cert, Some(acceptor)),
        None => (String::new(), None),
    };
    match unix_dir {
        Some(dir) => {
            let path =
                std::path::Path::new(&dir).join(format!("plugin-{}.sock", std::process::id()));
            let listener = tokio::net::UnixListener::bind(&path).map_err(SdkError::Listen)?;
            handshake(&format!("1|1|unix|{}|grpc|{cert}", path.display()))?;
            let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
            serve_on(router, incoming, acceptor, shutdown).await
        }
        None => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(SdkError::Listen)?;
            let local = listener.local_addr().map_err(SdkError::Listen)?;
            handshake(&format!("1|1|tcp|{local}|grpc|{cert}"))?;
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            serve_on(router, incoming, acceptor, shutdown).await
        }
    }
}

/// Serves `router` on `incoming`, through the AutoMTLS `acceptor` when there is one.
async fn serve_on<S, IO>(
    router: Router,
    incoming: S,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), SdkError>
where
    S: Stream<Item = std::io::Result<IO>> + Send + Unpin + 'static,
    IO: AsyncRead + AsyncWrite + Connected + Send + Unpin + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
{
    match acceptor {
        None => Ok(router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?),
        Some(acceptor) => Ok(router
            .serve_with_incoming_shutdown(tls_incoming(incoming, acceptor), shutdown)
            .await?),
    }
}

/// Runs the TLS handshake of every accepted connection in its own task (one stalled
/// peer cannot hold up the others) and yields the connections that completed it.
fn tls_incoming<S, IO>(
    mut incoming: S,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<tokio_rustls::server::TlsStream<IO>>>
where
    S: Stream<Item = std::io::Result<IO>> + Send + Unpin + 'static,
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    crate::task::detach("sdk-tls-accept", async move {
        while let Some(conn) = incoming.next().await {
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("plugin: accept failed: {e}");
                    continue;
                }
            };
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            crate::task::detach("sdk-tls-handshake", async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => eprintln!("plugin: AutoMTLS handshake refused: {e}"),
                    Err(_) => eprintln!(
                        "plugin: AutoMTLS handshake not done within {TLS_HANDSHAKE_TIMEOUT:?}"
                    ),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
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

    async fn on_websocket_message(
        &self,
        req: Request<pb::WebsocketMessageRequest>,
    ) -> Result<Response<pb::WebsocketMessageResponse>, Status> {
        self.0
            .on_websocket_message(req.into_inner())
            .await
            .map(Response::new)
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
