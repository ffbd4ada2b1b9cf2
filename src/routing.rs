//! Route table: match a request's host and path to a route, and rewrite the path.
//!
//! Matching picks, among routes whose host pattern accepts the request host, the one
//! with the longest path prefix; on equal prefixes an exact host beats a wildcard,
//! which beats "any host". Prefixes match on segment boundaries only.

use crate::config::{RetryOn, RouteConfig};
use std::sync::Arc;
use std::time::Duration;

/// How a route's host pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// Suffix including the leading dot, e.g. `.example.com`.
    Wildcard(String),
}

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }

    fn rank(&self) -> u8 {
        match self {
            HostMatch::Exact(_) => 2,
            HostMatch::Wildcard(_) => 1,
            HostMatch::Any => 0,
        }
    }
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Route name, used in logs and metrics.
    pub name: Arc<str>,
    /// Position of the route in the configuration (index into plugin plans).
    pub index: usize,
    /// Index of the upstream group in the upstream table.
    pub upstream: usize,
    /// Upstream response-header timeout.
    pub timeout: Duration,
    /// Longest silence of the upstream response body before it is cut.
    pub body_timeout: Duration,
    /// Forward the client's Host header.
    pub preserve_host: bool,
    /// Accept `%2F` and `%5C` in request paths (dot segments are refused regardless).
    pub allow_encoded_slashes: bool,
    /// When another attempt is made, compiled from `retry` and `retry_non_idempotent`.
    pub retry: RetryPolicy,
    /// Indices of the `fallback` upstream groups, in order.
    pub fallback: Vec<usize>,
    /// `[routes.llm]`: the models listed and the front door's defaults.
    pub llm: Option<Arc<crate::config::RouteLlmConfig>>,
    /// Upgrade protocols passed upstream, lower case.
    pub upgrade: Vec<String>,
    /// Limits of the route's upgraded connections.
    pub upgraded: crate::config::UpgradedConfig,
    /// One permit per upgraded connection open (`upgraded.max_connections`).
    pub upgrade_slots: Arc<tokio::sync::Semaphore>,
    host: HostMatch,
    prefix: String,
    replacement: Option<String>,
}

impl Route {
    /// Compiles a validated route config; `upstream` is the resolved upstream index and
    /// `index` the route's position in the configuration.
    pub fn new(config: &RouteConfig, upstream: usize, index: usize) -> Route {
        let host = match config.host.as_deref() {
            None => HostMatch::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Wildcard(suffix.to_ascii_lowercase()),
                None => HostMatch::Exact(h.to_ascii_lowercase()),
            },
        };
        let prefix = config.path_prefix.trim_end_matches('/').to_string();
        let replacement = if config.strip_prefix {
            Some(String::new())
        } else {
            config
                .rewrite_prefix
                .as_ref()
                .map(|r| r.trim_end_matches('/').to_string())
        };
        Route {
            name: Arc::from(config.name.as_str()),
            index,
            upstream,
            timeout: config.timeout,
            body_timeout: config.body_timeout,
            preserve_host: config.preserve_host,
            allow_encoded_slashes: config.allow_encoded_slashes,
            retry: RetryPolicy::new(config),
            fallback: Vec::new(),
            llm: config.llm.clone().map(Arc::new),
            upgrade: config
                .upgrade
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
            upgraded: config.upgraded.clone(),
            upgrade_slots: Arc::new(tokio::sync::Semaphore::new(
                config
                    .upgraded
                    .max_connections
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            host,
            prefix,
            replacement,
        }
    }

    /// Sets the resolved indices of the route's `fallback` groups.
    pub fn with_fallback(mut self, fallback: Vec<usize>) -> Route {
        self.fallback = fallback;
        self
    }

    fn matches_path(&self, path: &str) -> bool {
        // An empty prefix is "/", which matches everything.
        path.starts_with(&self.prefix)
            && matches!(path.as_bytes().get(self.prefix.len()), None | Some(b'/'))
    }

    /// Applies strip/rewrite to `path` (which must match this route) and returns the upstream path.
    pub fn rewrite_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.replacement {
            None => std::borrow::Cow::Borrowed(path),
            Some(replacement) => {
                let rest = &path[self.prefix.len().min(path.len())..];
                let joined = format!("{replacement}{rest}");
                if joined.is_empty() {
                    std::borrow::Cow::Borrowed("/")
                } else {
                    std::borrow::Cow::Owned(joined)
                }
            }
        }
    }
}

/// A route's retry settings as the proxy applies them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per group; 0 = one per target.
    pub attempts: u64,
    /// Bit `1 << (RetryOn as u8)` for each class `retry.on` names.
    on: u8,
    /// Backoff base and cap.
    pub backoff: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
    /// Retries in flight allowed per hundred requests in flight.
    pub budget_percent: u64,
    /// Retries in flight always allowed.
    pub budget_min: u64,
    /// The longest `Retry-After` waited for.
    pub retry_after_max: Duration,
    /// Request bodies up to this size are kept for replay.
    pub max_body_bytes: u64,
    /// Non-idempotent methods retry too.
    pub non_idempotent: bool,
}

impl RetryPolicy {
    fn new(config: &RouteConfig) -> RetryPolicy {
        let r = &config.retry;
        RetryPolicy {
            attempts: r.attempts,
            on: r.on.iter().fold(0, |mask, c| mask | 1 << (*c as u8)),
            backoff: r.backoff,
            backoff_max: r.backoff_max,
            budget_percent: r.budget_percent,
            budget_min: r.budget_min,
            retry_after_max: r.retry_after_max,
            max_body_bytes: r.max_body_bytes,
            non_idempotent: config.retry_non_idempotent,
        }
    }

    /// Whether `retry.on` names `class`.
    pub fn retries(&self, class: RetryOn) -> bool {
        self.on & (1 << (class as u8)) != 0
    }

    /// Attempts allowed in a group of `targets` targets.
    pub fn attempts_for(&self, targets: usize) -> usize {
        match self.attempts {
            0 => targets.max(1),
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    /// Whether `method` may be retried: the idempotent methods of RFC 9110 §9.2.2, or
    /// any with `retry_non_idempotent`.
    pub fn allows(&self, method: &http::Method) -> bool {
        use http::Method;
        self.non_idempotent
            || matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::PUT
                    | Method::DELETE
                    | Method::TRACE
            )
    }
}

/// An immutable, ordered route table.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds a table; routes are sorted by specificity once here, not per request.
    pub fn new(mut routes: Vec<Route>) -> Router {
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(b.host.rank().cmp(&a.host.rank()))
        });
        Router { routes }
    }

    /// Finds the most specific route for `host` (port already removed) and `path`.
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.host.matches(host) && r.matches_path(path))
    }

    /// All routes, most specific first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// Removes an optional `:port` from a Host header value, keeping IPv6 brackets intact.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        name: &str,
        host: Option<&str>,
        prefix: &str,
        strip: bool,
        rewrite: Option<&str>,
    ) -> Route {
        Route::new(
            &RouteConfig {
                name: name.into(),
                host: host.map(Into::into),
                path_prefix: prefix.into(),
                upstream: "u".into(),
                strip_prefix: strip,
                rewrite_prefix: rewrite.map(Into::into),
                timeout: Duration::from_secs(1),
                body_timeout: Duration::from_secs(60),
                preserve_host: false,
                allow_encoded_slashes: false,
                retry: Default::default(),
                retry_non_idempotent: false,
                fallback: Vec::new(),
                llm: None,
                upgrade: Vec::new(),
                upgraded: Default::default(),
            },
            0,
            0,
        )
    }

    #[test]
    fn longest_prefix_and_host_specificity() {
        let r = Router::new(vec![
            route("root", None, "/", false, None),
            route("api", None, "/api", false, None),
            route("api-a", Some("a.example.com"), "/api", false, None),
            route("wild", Some("*.example.com"), "/api", false, None),
        ]);
        assert_eq!(&*r.find("x", "/api/v1").unwrap().name, "api");
        assert_eq!(&*r.find("A.Example.com", "/api").unwrap().name, "api-a");
        assert_eq!(&*r.find("b.example.com", "/api/x").unwrap().name, "wild");
        assert_eq!(&*r.find("example.com", "/api/x").unwrap().name, "api");
        assert_eq!(&*r.find("x", "/apix").unwrap().name, "root");
    }

    #[test]
    fn strip_and_rewrite() {
        let s = route("s", None, "/svc/", true, None);
        assert_eq!(s.rewrite_path("/svc/a/b"), "/a/b");
        assert_eq!(s.rewrite_path("/svc"), "/");
        let w = route("w", None, "/old", false, Some("/new/v2"));
        assert_eq!(w.rewrite_path("/old/x"), "/new/v2/x");
        assert_eq!(w.rewrite_path("/old"), "/new/v2");
    }

    #[test]
    fn host_port_removed() {
        assert_eq!(host_without_port("a.com:8080"), "a.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("a.com"), "a.com");
    }
}
