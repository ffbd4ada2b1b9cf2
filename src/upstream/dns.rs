//! Upstream name resolution in-process with hickory (system `resolv.conf` and hosts
//! file), so the gateway never calls the C library's `getaddrinfo` and a fully static
//! binary resolves names the same way everywhere.

use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The process-wide resolver, built on first use from the system configuration.
pub fn resolver() -> Result<Arc<hickory_resolver::TokioResolver>, BoxError> {
    static RESOLVER: OnceLock<Result<Arc<hickory_resolver::TokioResolver>, String>> =
        OnceLock::new();
    RESOLVER
        .get_or_init(|| {
            hickory_resolver::Resolver::builder_tokio()
                .map(|b| Arc::new(b.build()))
                .map_err(|e| format!("cannot read the system resolver configuration: {e}"))
        })
        .clone()
        .map_err(Into::into)
}

/// A `hyper-util` resolver backed by hickory.
#[derive(Clone, Default)]
pub struct HickoryResolve;

impl tower::Service<Name> for HickoryResolve {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move {
            let resolver = resolver()?;
            let lookup = resolver.lookup_ip(name.as_str()).await?;
            // The connector fills in the port.
            let addrs: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addrs.into_iter())
        })
    }
}
