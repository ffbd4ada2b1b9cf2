//! The floor for the load benchmark: the smallest hyper reverse proxy with the gateway's
//! architecture (one single-threaded runtime per core accepting from one listener, one
//! pooled hyper-util client per worker, TCP_NODELAY) and none of its logic: no routing,
//! limits, headers, metrics, logs or plugins. `benches/load/run.py` runs it beside the
//! gateway, so the table shows how much of the distance to nginx is hyper itself.
//!
//! Usage: `mg-hyper-baseline LISTEN_ADDR UPSTREAM_ADDR [WORKERS]`.
// A stand-alone floor for the benchmark, outside the crate's task rules.
#![allow(clippy::disallowed_methods)]

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;

type Error = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, hyper::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: mg-hyper-baseline LISTEN_ADDR UPSTREAM_ADDR [WORKERS]";
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let workers = match args.next() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let threads = (0..workers)
        .map(|_| {
            let listener = listener.try_clone()?;
            Ok(std::thread::spawn(move || worker(listener, upstream)))
        })
        .collect::<Result<Vec<_>, std::io::Error>>()?;
    for thread in threads {
        thread.join().map_err(|_| "worker thread panicked")??;
    }
    Ok(())
}

fn worker(listener: std::net::TcpListener, upstream: SocketAddr) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build(connector);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let client = client.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let client = client.clone();
                    async move { Ok::<_, Infallible>(forward(&client, upstream, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Sends `req` to `upstream` and returns its response, or an empty 502 on any failure.
async fn forward(
    client: &Client<HttpConnector, Incoming>,
    upstream: SocketAddr,
    mut req: hyper::Request<Incoming>,
) -> hyper::Response<ProxyBody> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Ok(uri) = format!("http://{upstream}{path}").parse() {
        *req.uri_mut() = uri;
        if let Ok(response) = client.request(req).await {
            return response.map(BodyExt::boxed);
        }
    }
    let mut response = hyper::Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    response
}
