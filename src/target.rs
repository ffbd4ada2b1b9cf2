//! Upstream target URLs: `http(s)://host[:port][/base]`, parsed once.
//!
//! A leaf, like linkerd's `addr` crate: configuration validation parses every target
//! to refuse a bad one before anything binds, and the upstream clients parse the same
//! way to build their pools, so neither depends on the other for it.

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};

/// A target URL that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target URL {url:?}: {reason}")]
pub struct InvalidTarget {
    /// The URL as configured.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One upstream base URL.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetUrl {
    scheme: Scheme,
    authority: Authority,
    /// Base path without a trailing slash (possibly empty) prepended to every request path.
    base_path: String,
}

impl std::fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

impl TargetUrl {
    /// Parses `http(s)://host[:port][/base]`; queries, fragments and user info are rejected.
    pub fn parse(url: &str) -> Result<TargetUrl, InvalidTarget> {
        let invalid = |reason| InvalidTarget {
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
        Ok(TargetUrl {
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

    /// Builds the absolute upstream URI for `path` and optional `query`. `authority`
    /// replaces the target's own in the URI (HTTP/2 `:authority`) when a route preserves
    /// the client's host; the connection still goes to this target.
    pub fn uri(
        &self,
        path: &str,
        query: Option<&str>,
        authority: Option<&str>,
    ) -> Result<Uri, http::Error> {
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
        let builder = Uri::builder().scheme(self.scheme.clone());
        let builder = match authority {
            Some(a) => builder.authority(a),
            None => builder.authority(self.authority.clone()),
        };
        builder.path_and_query(pq).build()
    }
}
