//! Proxy header semantics: hop-by-hop stripping, forwarding headers and request ids.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

/// Headers that describe one transport hop (RFC 9110 §7.6.1) and are never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Returns true for names that are hop-by-hop or describe message framing.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::UPGRADE
}

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(&name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Appends the client address to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (the latter only when the client sent a host).
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, https: bool, host: Option<&str>) {
    let client = client.to_canonical().to_string();
    let xff = HeaderName::from_static("x-forwarded-for");
    // Every X-Forwarded-For line counts: repeated fields form one list (RFC 9110 §5.3).
    let mut hops: Vec<&str> = headers
        .get_all(&xff)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    hops.push(&client);
    let joined = hops.join(", ");
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(xff, value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    if let Some(value) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(HeaderName::from_static("x-forwarded-host"), value);
    }
}

/// Keeps a client-supplied request id when it is 1–128 visible ASCII characters,
/// otherwise generates a UUIDv4.
pub fn request_id(headers: &HeaderMap, name: &HeaderName) -> HeaderValue {
    if let Some(v) = headers.get(name) {
        let bytes = v.as_bytes();
        if !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let id = uuid::Uuid::new_v4();
    let mut buf = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Size of a header block as counted for `server.max_header_bytes`: names plus values.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum()
}

/// The delay a `Retry-After` header asks for: delta-seconds or an HTTP date (a date in the
/// past is zero). `None` when the header is absent or unreadable.
pub fn retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<std::time::Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(std::time::Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// True for a `text/event-stream` response.
pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// Context values that become OpenAI-style rate-limit response headers: a built-in
/// limiter (`rate_limit`, `llm_policy`) sets `ratelimit.limit-requests` and the like when
/// it admits a request, and the proxy answers with `x-ratelimit-limit-requests`. Only
/// these six names are turned into headers.
pub const RATELIMIT_NAMES: [&str; 6] = [
    "limit-requests",
    "remaining-requests",
    "reset-requests",
    "limit-tokens",
    "remaining-tokens",
    "reset-tokens",
];

/// The context-value prefix of [`RATELIMIT_NAMES`].
pub const RATELIMIT_CONTEXT: &str = "ratelimit.";

/// Each of [`RATELIMIT_NAMES`] as its context key and its response header, made once.
const RATELIMIT_TABLE: [(&str, HeaderName); 6] = [
    (
        "ratelimit.limit-requests",
        HeaderName::from_static("x-ratelimit-limit-requests"),
    ),
    (
        "ratelimit.remaining-requests",
        HeaderName::from_static("x-ratelimit-remaining-requests"),
    ),
    (
        "ratelimit.reset-requests",
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ),
    (
        "ratelimit.limit-tokens",
        HeaderName::from_static("x-ratelimit-limit-tokens"),
    ),
    (
        "ratelimit.remaining-tokens",
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
    ),
    (
        "ratelimit.reset-tokens",
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ),
];

/// The three values of one limit (`kind` is `requests` or `tokens`) as
/// `(header suffix, value)`: the limit, what remains, and when it is whole again, in
/// OpenAI's format (`20ms`, `45s`, `6m0s`).
pub fn ratelimit_values(
    kind: &str,
    limit: u64,
    remaining: u64,
    reset: std::time::Duration,
) -> [(String, String); 3] {
    let ms = reset.as_millis();
    // Whole seconds, rounded up once, so 59.5 s reads `1m0s`, never `60s`.
    let s = ms.div_ceil(1000);
    let reset = match ms {
        0..1000 => format!("{ms}ms"),
        _ if s < 60 => format!("{s}s"),
        _ => format!("{}m{}s", s / 60, s % 60),
    };
    [
        (format!("limit-{kind}"), limit.to_string()),
        (format!("remaining-{kind}"), remaining.to_string()),
        (format!("reset-{kind}"), reset),
    ]
}

/// [`ratelimit_values`] as context values for the proxy to answer with.
pub fn ratelimit_context(
    values: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    values
        .into_iter()
        .map(|(name, value)| (format!("{RATELIMIT_CONTEXT}{name}"), value))
        .collect()
}

/// [`ratelimit_values`] as `x-ratelimit-*` headers of an answer given at once (a 429).
pub fn ratelimit_headers(
    values: impl IntoIterator<Item = (String, String)>,
) -> Vec<(HeaderName, HeaderValue)> {
    values
        .into_iter()
        .filter_map(|(name, value)| {
            let name = HeaderName::from_bytes(format!("x-ratelimit-{name}").as_bytes()).ok()?;
            Some((name, HeaderValue::from_str(&value).ok()?))
        })
        .collect()
}

/// Adds the `x-ratelimit-*` headers named by `values` (context values with the
/// [`RATELIMIT_CONTEXT`] prefix) to `headers`.
pub fn add_ratelimit_headers(
    values: &std::collections::HashMap<String, String>,
    headers: &mut HeaderMap,
) {
    // Most requests passed no limiter: nothing to look up.
    if values.is_empty() {
        return;
    }
    for (key, name) in &RATELIMIT_TABLE {
        if let Some(v) = values.get(*key).and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            retry_after(&h, now),
            Some(std::time::Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(now + std::time::Duration::from_secs(30));
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(&later).unwrap(),
        );
        assert_eq!(
            retry_after(&h, now),
            Some(std::time::Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - std::time::Duration::from_secs(30));
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(&past).unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(std::time::Duration::ZERO));
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn strips_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert_eq!(h.get("x-kept").unwrap(), "1");
    }

    #[test]
    fn appends_forwarded_for() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        set_forwarded(
            &mut h,
            "::ffff:127.0.0.1".parse().unwrap(),
            true,
            Some("a.example"),
        );
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.0.0.1, 127.0.0.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "a.example");
    }

    #[test]
    fn ratelimit_reset_in_openai_format() {
        let v = |ms| {
            ratelimit_values("requests", 10, 3, std::time::Duration::from_millis(ms))[2]
                .1
                .clone()
        };
        assert_eq!(
            (v(20), v(45_000), v(360_000), v(61_500)),
            ("20ms".into(), "45s".into(), "6m0s".into(), "1m2s".into())
        );
        // Rounding up to a whole minute carries into the minutes.
        assert_eq!((v(59_500), v(119_500)), ("1m0s".into(), "2m0s".into()));
        let mut values = std::collections::HashMap::new();
        for (k, v) in ratelimit_values("tokens", 100, 40, std::time::Duration::from_secs(2)) {
            values.insert(format!("{RATELIMIT_CONTEXT}{k}"), v);
        }
        values.insert(format!("{RATELIMIT_CONTEXT}evil"), "x".into());
        let mut h = HeaderMap::new();
        add_ratelimit_headers(&values, &mut h);
        assert_eq!(h.len(), 3);
        assert_eq!(h["x-ratelimit-remaining-tokens"], "40");
        assert_eq!(h["x-ratelimit-reset-tokens"], "2s");
    }

    #[test]
    fn the_header_table_matches_the_names() {
        for (name, (key, header)) in RATELIMIT_NAMES.iter().zip(&RATELIMIT_TABLE) {
            assert_eq!(*key, format!("{RATELIMIT_CONTEXT}{name}"));
            assert_eq!(header.as_str(), format!("x-ratelimit-{name}"));
        }
    }

    #[test]
    fn request_id_kept_or_generated() {
        let name = HeaderName::from_static("x-request-id");
        let mut h = HeaderMap::new();
        h.insert(name.clone(), HeaderValue::from_static("abc-1"));
        assert_eq!(request_id(&h, &name), "abc-1");
        h.insert(name.clone(), HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h, &name).len(), 36);
    }
}
