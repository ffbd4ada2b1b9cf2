//! Browser-facing rules of `/api/v1`, checked before the token: the `Host` must name
//! this listener (closing DNS rebinding), a request carrying an `Origin` must come from
//! an allowed one (closing cross-site requests), and a body must be JSON (closing the
//! CORS "simple request" with `text/plain`).
//!
//! Probes and metrics (`/healthz`, `/readyz`, `/metrics`) are read-only and are asked
//! for by orchestrators under service names, so these rules apply to the API only.

use http::{HeaderMap, StatusCode, header};
use std::net::{IpAddr, SocketAddr};

/// A refused request: status, error type and message for the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 403 or 415.
    pub status: StatusCode,
    /// `forbidden_host`, `forbidden_origin` or `unsupported_media_type`.
    pub kind: &'static str,
    /// What was found and what is accepted.
    pub message: String,
}

/// The operator's `admin.allowed_hosts` and `admin.allowed_origins`, lower-cased.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Guard {
    /// Builds the rules from configured lists.
    pub fn new(hosts: &[String], origins: &[String]) -> Guard {
        let clean = |list: &[String]| {
            list.iter()
                .map(|h| h.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect()
        };
        Guard {
            hosts: clean(hosts),
            origins: clean(origins),
        }
    }

    /// Checks `Host` against `local` (the address this connection reached) and the
    /// loopback names, and `Origin` against the allowed origins.
    pub fn check_origin(&self, headers: &HeaderMap, local: SocketAddr) -> Result<(), Refusal> {
        let host = single(headers, header::HOST);
        if !host.is_some_and(|h| self.host_allowed(h, local)) {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                kind: "forbidden_host",
                message: format!(
                    "Host {:?} does not name this admin listener; use {local}, localhost:{} or add it to admin.allowed_hosts",
                    host.unwrap_or("<missing>"),
                    local.port()
                ),
            });
        }
        let mut origins = headers.get_all(header::ORIGIN).iter();
        if let Some(origin) = origins.next() {
            let text = origin.to_str().unwrap_or("<not text>");
            let value = text.trim_end_matches('/').to_ascii_lowercase();
            if origins.next().is_some() || !self.origins.contains(&value) {
                return Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    kind: "forbidden_origin",
                    message: format!(
                        "requests from Origin {text:?} are refused; list it in admin.allowed_origins to allow a browser page"
                    ),
                });
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str, local: SocketAddr) -> bool {
        let host = host.to_ascii_lowercase();
        if self.hosts.contains(&host) {
            return true;
        }
        let (name, port) = split_host(&host);
        if self.hosts.iter().any(|h| h == name) {
            return true;
        }
        if port.is_some_and(|p| p != local.port()) {
            return false;
        }
        let local_ip = match local.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name == local_ip
    }
}

/// `name` and optional port of a `Host` value (`[v6]:port` kept bracketed).
fn split_host(host: &str) -> (&str, Option<u16>) {
    let colon = if host.starts_with('[') {
        host.find("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    match colon {
        Some(i) => match host[i + 1..].parse::<u16>() {
            Ok(port) => (&host[..i], Some(port)),
            // An unparsable port never matches a listener.
            Err(_) => (host, Some(0)),
        },
        None => (host, None),
    }
}

/// The one header value named `name`; `None` when absent, repeated or not text.
fn single(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

/// A request with a body must declare `Content-Type: application/json`.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if !has_body {
        return Ok(());
    }
    let declared = single(headers, header::CONTENT_TYPE);
    let media = declared
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if media.as_deref() == Some("application/json") {
        return Ok(());
    }
    Err(Refusal {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        kind: "unsupported_media_type",
        message: format!(
            "request bodies must be Content-Type: application/json, got {:?}",
            declared.unwrap_or("<none>")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hosts() {
        let local: SocketAddr = "127.0.0.1:19090".parse().unwrap();
        let guard = Guard::new(&["admin.internal".into(), "gw:8443".into()], &[]);
        for ok in [
            "127.0.0.1:19090",
            "localhost:19090",
            "LOCALHOST",
            "[::1]:19090",
            "admin.internal:1",
            "gw:8443",
        ] {
            assert!(
                guard.check_origin(&headers(&[("host", ok)]), local).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "attacker.example:19090",
            "localhost:19091",
            "127.0.0.1:x",
            "gw:8444",
            "localhost.attacker.example",
        ] {
            let err = guard
                .check_origin(&headers(&[("host", bad)]), local)
                .unwrap_err();
            assert_eq!(err.kind, "forbidden_host", "{bad}");
        }
        assert!(guard.check_origin(&headers(&[]), local).is_err());
        let any: SocketAddr = "10.1.2.3:9090".parse().unwrap();
        assert!(
            guard
                .check_origin(&headers(&[("host", "10.1.2.3:9090")]), any)
                .is_ok()
        );
    }

    #[test]
    fn origins() {
        let local: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let guard = Guard::new(&[], &["https://console.example".into()]);
        let with = |o: &str| headers(&[("host", "localhost:9090"), ("origin", o)]);
        assert!(
            guard
                .check_origin(&with("https://console.example"), local)
                .is_ok()
        );
        assert!(
            guard
                .check_origin(&with("https://CONSOLE.example/"), local)
                .is_ok()
        );
        for bad in [
            "http://attacker.example",
            "null",
            "https://console.example.evil",
        ] {
            assert_eq!(
                guard.check_origin(&with(bad), local).unwrap_err().kind,
                "forbidden_origin"
            );
        }
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(&headers(&[])).is_ok());
        assert!(check_content_type(&headers(&[("content-length", "0")])).is_ok());
        let json = headers(&[
            ("content-length", "2"),
            ("content-type", "Application/JSON; charset=utf-8"),
        ]);
        assert!(check_content_type(&json).is_ok());
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            let h = headers(&[("content-length", "2"), ("content-type", bad)]);
            assert_eq!(check_content_type(&h).unwrap_err().status, 415);
        }
        let chunked = headers(&[("transfer-encoding", "chunked")]);
        assert!(check_content_type(&chunked).is_err());
    }
}
