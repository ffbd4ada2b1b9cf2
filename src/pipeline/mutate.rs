//! Validation and application of plugin-returned headers, paths and responses.
//!
//! A plugin may never touch framing or hop-by-hop headers, and values may not contain
//! CR, LF or NUL. All mutations of one decision are validated before any is applied,
//! so a rejected decision leaves the request unchanged. The header rule itself is part
//! of the plugin contract ([`check_header`]), which the built-ins share.

use crate::body::{self, Body};
pub use crate::plugin::check_header;
use crate::plugin::{HeaderMutations, ImmediateResponse, PluginError};
use http::header::HeaderMap;
use http::uri::{PathAndQuery, Uri};
use http::{Response, StatusCode};

/// Validates every mutation, then applies them in the order remove, set, add.
pub fn apply_headers(headers: &mut HeaderMap, changes: HeaderMutations) -> Result<(), PluginError> {
    if changes.is_empty() {
        return Ok(());
    }
    for name in &changes.remove {
        check_header(name, None)?;
    }
    for (name, value) in changes.set.iter().chain(changes.add.iter()) {
        check_header(name, Some(value))?;
    }
    for name in &changes.remove {
        headers.remove(name);
    }
    for (name, value) in changes.set {
        headers.insert(name, value);
    }
    for (name, value) in changes.add {
        headers.append(name, value);
    }
    Ok(())
}

/// Replaces the path and/or query of `uri`, keeping scheme and authority.
pub fn rewrite_uri(uri: &Uri, path: Option<&str>, query: Option<&str>) -> Result<Uri, PluginError> {
    let path = path.unwrap_or(uri.path());
    if !path.starts_with('/') {
        return Err(PluginError::Invalid(format!(
            "path {path:?} must start with '/'"
        )));
    }
    let query = match query {
        Some(q) => (!q.is_empty()).then_some(q),
        None => uri.query(),
    };
    let pq = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let pq = PathAndQuery::try_from(pq)
        .map_err(|e| PluginError::Invalid(format!("invalid path or query: {e}")))?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts).map_err(|e| PluginError::Invalid(format!("invalid URI: {e}")))
}

/// Turns a plugin's immediate response into an HTTP response after validation.
pub fn immediate(response: ImmediateResponse) -> Result<Response<Body>, PluginError> {
    if response.status.is_informational() || response.status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(PluginError::Invalid(format!(
            "status {} cannot be used for a response",
            response.status
        )));
    }
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for (name, value) in response.headers {
        check_header(&name, Some(&value))?;
        headers.append(name, value);
    }
    let mut out = Response::new(body::full(response.body));
    *out.status_mut() = response.status;
    *out.headers_mut() = headers;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{self, HeaderName, HeaderValue};

    #[test]
    fn forbidden_and_control_characters_rejected() {
        let mut h = HeaderMap::new();
        let bad = HeaderMutations {
            set: vec![(header::CONTENT_LENGTH, HeaderValue::from_static("1"))],
            ..Default::default()
        };
        assert!(apply_headers(&mut h, bad).is_err());
        // HeaderValue refuses CR/LF itself; a value smuggled past it is still caught.
        let smuggled = HeaderValue::from_bytes(b"a\x00b");
        assert!(
            smuggled.is_err() || check_header(&header::ACCEPT, smuggled.as_ref().ok()).is_err()
        );
        let ok = HeaderMutations {
            set: vec![(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("1"),
            )],
            add: vec![(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("2"),
            )],
            remove: vec![header::ACCEPT],
        };
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        apply_headers(&mut h, ok).unwrap();
        assert_eq!(h.get_all("x-a").iter().count(), 2);
        assert!(h.get(header::ACCEPT).is_none());
    }

    #[test]
    fn uri_rewrite_keeps_authority() {
        let uri: Uri = "http://a.example/x?q=1".parse().unwrap();
        let new = rewrite_uri(&uri, Some("/y"), None).unwrap();
        assert_eq!(new.to_string(), "http://a.example/y?q=1");
        assert!(rewrite_uri(&uri, Some("y"), None).is_err());
        let cleared = rewrite_uri(&uri, None, Some("")).unwrap();
        assert_eq!(cleared.to_string(), "http://a.example/x");
    }
}
