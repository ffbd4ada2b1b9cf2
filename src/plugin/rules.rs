//! What a plugin may change in headers: the one rule every header a plugin returns, and
//! every header a built-in is configured to set, is checked against.
//!
//! A plugin may never touch framing or hop-by-hop headers, and values may not contain
//! CR, LF or NUL. It is part of the contract so the pipeline (which applies plugin
//! decisions) and the built-ins (which check their configuration up front) share it.

use super::types::PluginError;
use http::header::{self, HeaderName, HeaderValue};

/// Names plugins may not set, add or remove.
const FORBIDDEN: [HeaderName; 11] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Rejects forbidden names and values containing CR, LF or NUL.
pub fn check_header(name: &HeaderName, value: Option<&HeaderValue>) -> Result<(), PluginError> {
    if FORBIDDEN.contains(name) {
        return Err(PluginError::Invalid(format!(
            "header {name} is a framing or hop-by-hop header and cannot be changed by plugins"
        )));
    }
    if let Some(v) = value
        && v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0))
    {
        return Err(PluginError::Invalid(format!(
            "value of header {name} contains CR, LF or NUL"
        )));
    }
    Ok(())
}
