//! Upstream groups: parsed targets with a pooled HTTP client each, balancing
//! (`balance.rs`), passive health (`health.rs`), active checks (`probe.rs`), the
//! circuit breaker (`breaker.rs`), selection and reports (`pick.rs`) and the admin
//! view (`status.rs`).
//!
//! Every target holds `hyper_util` legacy clients (keep-alive pool, h1/h2, TLS through
//! `hyper-rustls` with the `ring` provider): one per proxy worker thread plus one for
//! everything else, so a request always uses connections owned by its own thread.

mod balance;
mod breaker;
mod connections;
mod dns;
mod health;
mod pick;
mod probe;
mod status;
mod tls;

pub use connections::ConnectionPermit;
pub use dns::resolver;
pub use pick::{Affinity, Outcome, Overloaded, Pick};
pub use status::{TargetStatus, UpstreamStatus};

use crate::body::{Body, BoxError};
use crate::config::{UpstreamConfig, UpstreamProtocol};
use crate::target::TargetUrl;
use http::Uri;
use http::uri::Authority;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;

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
    /// The LLM provider key could not be loaded.
    #[error("upstream {upstream}: {reason}")]
    Credentials {
        /// Upstream name.
        upstream: String,
        /// Why the provider key could not be read (the setting is named, never the key).
        reason: String,
    },
    /// The TLS client configuration could not be built.
    #[error("upstream {upstream}: TLS setup failed: {reason}")]
    Tls {
        /// Upstream name.
        upstream: String,
        /// Why the CA bundle or client configuration could not be loaded.
        reason: String,
    },
}

/// One upstream base URL and the pooled client that connects to it.
#[derive(Clone)]
pub struct Target {
    /// The parsed base URL.
    url: TargetUrl,
    /// Index 0 for non-worker threads, then one per proxy worker (see [`crate::worker`]).
    clients: Vec<HttpClient>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.url, f)
    }
}

impl Target {
    /// Parses `http(s)://host[:port][/base]`; queries, fragments and user info are rejected.
    pub fn parse(url: &str) -> Result<Target, UpstreamError> {
        let url = TargetUrl::parse(url).map_err(|e| UpstreamError::InvalidTarget {
            url: e.url,
            reason: e.reason,
        })?;
        Ok(Target {
            url,
            clients: Vec::new(),
        })
    }

    /// Whether this target uses TLS.
    pub fn is_https(&self) -> bool {
        self.url.is_https()
    }

    /// The `host[:port]` of the target, used as the default Host header.
    pub fn authority(&self) -> &Authority {
        self.url.authority()
    }

    /// Builds the absolute upstream URI for `path` and optional `query`. `authority`
    /// replaces the target's own in the URI (HTTP/2 `:authority`) when a route preserves
    /// the client's host; the connection still goes to this target.
    pub fn uri(
        &self,
        path: &str,
        query: Option<&str>,
        authority: Option<&str>,
    ) -> Result<Uri, http::Error> {
        self.url.uri(path, query, authority)
    }

    /// The pooled client connecting to this target, owned by the calling worker thread.
    pub fn client(&self) -> Option<&HttpClient> {
        self.clients
            .get(crate::worker::current())
            .or_else(|| self.clients.first())
    }

    /// `http://host:port` with the scheme's default port made explicit, for the connector.
    fn dial_uri(&self) -> Result<Uri, UpstreamError> {
        let authority = self.authority();
        let port = authority
            .port_u16()
            .unwrap_or(if self.is_https() { 443 } else { 80 });
        format!("http://{}:{port}", authority.host())
            .parse()
            .map_err(|_| UpstreamError::InvalidTarget {
                url: authority.to_string(),
                reason: "unusable host",
            })
    }
}

/// The HTTP client type used for upstreams.
pub type HttpClient = Client<HttpsConnector<FixedConnector>, Body>;

/// A connector that always dials one target, whatever host the request URI names (the
/// URI may carry the client's host when a route preserves it).
#[derive(Clone)]
pub struct FixedConnector {
    inner: HttpConnector<dns::HickoryResolve>,
    dial: Uri,
}

impl tower::Service<Uri> for FixedConnector {
    type Response = <HttpConnector<dns::HickoryResolve> as tower::Service<Uri>>::Response;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        tower::Service::<Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, _requested: Uri) -> Self::Future {
        let connecting = tower::Service::call(&mut self.inner, self.dial.clone());
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// A named group of targets balanced round robin, each with its own connection pool.
pub struct Upstream {
    /// Group name from the configuration.
    pub name: Arc<str>,
    /// TCP connect timeout, reported in 504 errors.
    pub connect_timeout: std::time::Duration,
    /// LLM provider credentials injected into every request, when configured.
    pub llm: Option<crate::llm::ProviderAuth>,
    targets: Vec<Target>,
    /// The target URLs as configured, for labels and the admin API.
    names: Vec<String>,
    config: UpstreamConfig,
    policy: balance::Policy,
    health: Arc<health::GroupHealth>,
    breaker: breaker::Breaker,
    connections: Option<connections::Connections>,
    /// Cancels the active checkers when the group is dropped.
    _checks: Option<tokio_util::sync::DropGuard>,
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
    /// Builds the group from validated configuration, with `workers + 1` clients (and
    /// so connection pools) per target: one per proxy worker and one for other threads.
    pub fn new(config: &UpstreamConfig, workers: usize) -> Result<Upstream, UpstreamError> {
        let parsed = config
            .targets
            .iter()
            .map(|url| Target::parse(url).map(|t| t.url))
            .collect::<Result<Vec<_>, _>>()?;
        Self::with_targets(config, &parsed, workers)
    }

    /// Like [`Upstream::new`] with targets validation already parsed
    /// ([`Resolved::targets`](crate::config::Resolved::targets)).
    pub fn with_targets(
        config: &UpstreamConfig,
        parsed: &[TargetUrl],
        workers: usize,
    ) -> Result<Upstream, UpstreamError> {
        let tls =
            tls::client_config(config.ca_file.as_deref()).map_err(|reason| UpstreamError::Tls {
                upstream: config.name.clone(),
                reason,
            })?;
        let mut targets = Vec::with_capacity(parsed.len());
        for url in parsed {
            let mut target = Target {
                url: url.clone(),
                clients: Vec::new(),
            };
            for _ in 0..=workers {
                let client = build_client(config, &target, tls.clone())?;
                target.clients.push(client);
            }
            targets.push(target);
        }
        let llm = config
            .llm
            .as_ref()
            .map(|llm| crate::llm::ProviderAuth::load(&config.name, llm))
            .transpose()
            .map_err(|reason| UpstreamError::Credentials {
                upstream: config.name.clone(),
                reason,
            })?;
        let names: Vec<String> = parsed.iter().map(|u| u.authority().to_string()).collect();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let passive = health::Passive {
            max_fails: u32::try_from(config.max_fails).unwrap_or(u32::MAX),
            base_ms: ms(config.fail_timeout),
            // A cap below the first ejection is raised to it.
            max_ms: ms(config.max_fail_timeout).max(ms(config.fail_timeout)),
        };
        let health = Arc::new(health::GroupHealth::new(&config.name, &names, passive));
        let policy = balance::Policy::new(
            config.balance,
            &config.weights,
            config.hash_on.as_ref(),
            &names,
        );
        let checks = config
            .health_check
            .as_ref()
            .and_then(|hc| probe::start(hc, &targets, &health));
        Ok(Upstream {
            name: Arc::from(config.name.as_str()),
            connect_timeout: config.connect_timeout,
            llm,
            targets,
            names,
            breaker: breaker::Breaker::new(&config.name, config.max_requests),
            connections: connections::Connections::new(
                &config.name,
                config.max_connections,
                config.max_pending,
            ),
            config: config.clone(),
            policy,
            health,
            _checks: checks,
        })
    }

    /// How many targets the group has.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the group has no targets (validation refuses such a group).
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

impl Upstream {
    /// One of the group's `max_connections` for an attempt, waiting up to `wait` in the
    /// `max_pending` queue; `Ok(None)` when the group has no connection limit. Hold the
    /// permit until the response body ends.
    pub async fn connection(
        &self,
        wait: std::time::Duration,
    ) -> Result<Option<ConnectionPermit>, Overloaded> {
        match &self.connections {
            Some(limit) => limit.acquire(wait).await.map(Some),
            None => Ok(None),
        }
    }

    /// Whether passive health has ejected target `index` while another target of the
    /// group is still healthy (for the retry budget: a request that failed on a dead
    /// target fails over to a live one without a budget slot; when the whole group is
    /// down, retries stay within the budget).
    pub fn fails_over_from(&self, index: usize) -> bool {
        let targets = &self.health.targets;
        targets.get(index).is_some_and(|h| !h.passively_healthy())
            && targets
                .iter()
                .enumerate()
                .any(|(i, h)| i != index && h.passively_healthy())
    }

    /// `(connections in use, attempts waiting)` under `max_connections`, if set.
    pub fn connection_load(&self) -> Option<(usize, usize)> {
        self.connections
            .as_ref()
            .map(connections::Connections::load)
    }
}

fn build_client(
    config: &UpstreamConfig,
    target: &Target,
    tls: rustls::ClientConfig,
) -> Result<HttpClient, UpstreamError> {
    let mut http = HttpConnector::new_with_resolver(dns::HickoryResolve);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    let connector = FixedConnector {
        inner: http,
        dial: target.dial_uri()?,
    };
    let host = target
        .authority()
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let server_name =
        rustls::pki_types::ServerName::try_from(host).map_err(|e| UpstreamError::Tls {
            upstream: config.name.clone(),
            reason: format!("invalid TLS server name: {e}"),
        })?;
    // Certificates are verified against the target's host even when the request URI
    // carries the client's host.
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server_name));
    let connector = match config.protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(connector),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(connector),
        UpstreamProtocol::Auto => builder.enable_all_versions().wrap_connector(connector),
    };
    let mut client = Client::builder(TokioExecutor::new());
    client
        // The pool's idle sweeper adds the timeout to the current time.
        .pool_idle_timeout(crate::deadline::cap(config.pool_idle_timeout))
        // With max_connections the idle pool holds no more than may be in use.
        .pool_max_idle_per_host(
            config
                .pool_max_idle_per_host
                .min(config.max_connections.unwrap_or(usize::MAX)),
        )
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(config.protocol == UpstreamProtocol::Http2);
    Ok(client.build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parsing() {
        let t = Target::parse("http://127.0.0.1:8000/base/").unwrap();
        assert_eq!(
            t.uri("/x", Some("a=1"), None).unwrap().to_string(),
            "http://127.0.0.1:8000/base/x?a=1"
        );
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("127.0.0.1:80").is_err());
        assert!(Target::parse("http://u:p@host").is_err());
        assert!(Target::parse("http://host/?q=1").is_err());
    }
}
