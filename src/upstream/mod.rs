//! Upstream groups: parsed targets, round-robin selection and a pooled HTTP client each.
//!
//! One [`Upstream`] holds one `hyper_util` legacy client (keep-alive pool, h1/h2, TLS
//! through `hyper-rustls` with the `ring` provider) shared by all its targets.

mod tls;

use crate::body::Body;
use crate::config::{UpstreamConfig, UpstreamProtocol};
use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Errors building upstream groups.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A target URL is not usable.
    #[error("invalid target URL {url:?}: {reason}")]
    InvalidTarget {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TLS client configuration could not be built.
    #[error("upstream {upstream}: TLS setup failed: {reason}")]
    Tls {
        /// Upstream name.
        upstream: String,
        /// Reason.
        reason: String,
    },
}

/// One upstream base URL.
#[derive(Debug, Clone)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    /// Base path without a trailing slash (possibly empty) prepended to every request path.
    base_path: String,
}

impl Target {
    /// Parses `http(s)://host[:port][/base]`; queries, fragments and user info are rejected.
    pub fn parse(url: &str) -> Result<Target, UpstreamError> {
        let invalid = |reason| UpstreamError::InvalidTarget {
            url: url.to_string(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a valid URL"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            Some(_) => return Err(invalid("scheme must be http or https")),
            None => return Err(invalid("missing scheme (http:// or https://)")),
        };
        let authority = uri.authority().cloned().ok_or(invalid("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user info is not allowed"));
        }
        if authority.host().is_empty() {
            return Err(invalid("missing host"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query string is not allowed"));
        }
        Ok(Target {
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// Whether this target uses TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// The `host[:port]` of the target, used as the default Host header.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Builds the absolute upstream URI for `path` and optional `query`.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + 1 + query.map_or(0, str::len),
        );
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let pq = PathAndQuery::try_from(pq)?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}

/// The HTTP client type used for upstreams.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// A named group of targets sharing one connection pool.
pub struct Upstream {
    /// Group name from the configuration.
    pub name: Arc<str>,
    targets: Vec<Target>,
    /// TCP connect timeout, reported in 504 errors.
    pub connect_timeout: std::time::Duration,
    next: AtomicUsize,
    client: HttpClient,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .finish()
    }
}

impl Upstream {
    /// Builds the group and its client from validated configuration.
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, UpstreamError> {
        let targets = config
            .targets
            .iter()
            .map(|t| Target::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let tls =
            tls::client_config(config.ca_file.as_deref()).map_err(|reason| UpstreamError::Tls {
                upstream: config.name.clone(),
                reason,
            })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = match config.protocol {
            UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
            UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
            UpstreamProtocol::Auto => builder.enable_all_versions().wrap_connector(http),
        };
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(config.protocol == UpstreamProtocol::Http2);
        Ok(Upstream {
            name: Arc::from(config.name.as_str()),
            targets,
            connect_timeout: config.connect_timeout,
            next: AtomicUsize::new(0),
            client: client.build(connector),
        })
    }

    /// Picks the next target round robin.
    pub fn pick(&self) -> &Target {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.targets[i % self.targets.len()]
    }

    /// The pooled client of this group.
    pub fn client(&self) -> &HttpClient {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parsing() {
        let t = Target::parse("http://127.0.0.1:8000/base/").unwrap();
        assert_eq!(
            t.uri("/x", Some("a=1")).unwrap().to_string(),
            "http://127.0.0.1:8000/base/x?a=1"
        );
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("127.0.0.1:80").is_err());
        assert!(Target::parse("http://u:p@host").is_err());
        assert!(Target::parse("http://host/?q=1").is_err());
    }
}
