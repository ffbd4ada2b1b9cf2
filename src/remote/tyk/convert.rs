//! Conversions between the gateway's views and decisions and Tyk's messages.
//!
//! Tyk passes headers as a map of one value per name, with Go's canonical spelling
//! (`Content-Type`); the gateway sends the first value of each header that way. What a
//! plugin returns is parsed strictly, like microgateway's contract: a name or value that
//! does not parse, or a status outside 200–599, is [`PluginError::Invalid`]. Framing and
//! hop-by-hop names a plugin echoes back (Tyk plugins copy the headers they were given)
//! are skipped rather than refused, since the plugin did not ask to change them.

use super::pb;
use crate::plugin::{
    AuthResult, Decision, HeaderMutations, ImmediateResponse, Mutations, PluginError, RequestView,
    check_header,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::collections::HashMap;

/// Go's canonical header spelling: upper case after the start and after each dash.
pub fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// The first value of every header, under its canonical name.
pub fn headers_to_map(headers: &HeaderMap) -> HashMap<String, String> {
    let mut map = HashMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        if let Some(value) = headers.get(name) {
            map.insert(
                canonical(name.as_str()),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        }
    }
    map
}

/// The request as Tyk's `PluginRequest`.
pub fn plugin_request(view: &RequestView<'_>, context: pb::PluginContext) -> pb::PluginRequest {
    pb::PluginRequest {
        method: view.method.to_string(),
        path: view.uri.path().to_string(),
        headers: headers_to_map(view.headers),
        body: view.body.cloned().unwrap_or_default(),
        context: Some(context),
        remote_addr: view.client_ip.to_string(),
    }
}

/// The credential Tyk hands `Authenticate`: the bearer token of `Authorization`, else
/// the whole `Authorization` value, else `X-API-Key`.
pub fn credential(headers: &HeaderMap) -> String {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("authorization") {
        Some(v) => v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string(),
        None => text("x-api-key").unwrap_or_default().to_string(),
    }
}

/// A name a plugin may change, or `None` for a framing or hop-by-hop name.
fn changeable(name: &str) -> Result<Option<HeaderName>, PluginError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| PluginError::Invalid(format!("invalid header name {name:?}")))?;
    Ok(check_header(&name, None).is_ok().then_some(name))
}

fn value(name: &HeaderName, v: &str) -> Result<HeaderValue, PluginError> {
    HeaderValue::from_str(v).map_err(|_| {
        PluginError::Invalid(format!(
            "invalid value for header {name} (control characters?)"
        ))
    })
}

/// Request headers a hook returned: each is set (Tyk's `Header.Set`), none removed.
pub fn set_headers(returned: HashMap<String, String>) -> Result<HeaderMutations, PluginError> {
    let mut m = HeaderMutations::default();
    for (name, v) in returned {
        if let Some(name) = changeable(&name)? {
            let v = value(&name, &v)?;
            m.set.push((name, v));
        }
    }
    Ok(m)
}

/// Response headers a hook returned: the whole new set (Tyk plugins copy the headers
/// they were given and change them). Changed or new values are set; names it left out
/// are removed. An empty map changes nothing.
pub fn replace_headers(
    original: &HeaderMap,
    returned: HashMap<String, String>,
) -> Result<HeaderMutations, PluginError> {
    let mut m = HeaderMutations::default();
    if returned.is_empty() {
        return Ok(m);
    }
    let mut kept = Vec::with_capacity(returned.len());
    for (name, v) in returned {
        let Some(name) = changeable(&name)? else {
            continue;
        };
        let v = value(&name, &v)?;
        if original.get(&name) != Some(&v) {
            m.set.push((name.clone(), v));
        }
        kept.push(name);
    }
    for name in original.keys() {
        if !kept.contains(name) && check_header(name, None).is_ok() {
            m.remove.push(name.clone());
        }
    }
    Ok(m)
}

fn status(code: i32) -> Result<StatusCode, PluginError> {
    if code == 0 {
        return Ok(StatusCode::FORBIDDEN);
    }
    u16::try_from(code)
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| PluginError::Invalid(format!("status {code} is not between 200 and 599")))
}

/// A `ProcessPreAuth` / `ProcessPostAuth` answer. `block` answers the client with
/// `status_code` (403 when 0), `headers` and `body` (JSON unless the plugin names a
/// type); `modified` applies `headers` and a non-empty `body` to the request;
/// `context_updates` always reach later hooks.
pub fn decision(r: pb::PluginResponse) -> Result<Decision, PluginError> {
    if r.block {
        let mut headers = Vec::with_capacity(r.headers.len() + 1);
        for (name, v) in &r.headers {
            if let Some(name) = changeable(name)? {
                let v = value(&name, v)?;
                headers.push((name, v));
            }
        }
        if !r.body.is_empty() && !headers.iter().any(|(n, _)| n == http::header::CONTENT_TYPE) {
            headers.push((
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ));
        }
        return Ok(Decision::Respond(ImmediateResponse {
            status: status(r.status_code)?,
            headers,
            body: r.body,
        }));
    }
    let mut mutations = Mutations {
        context: r.context_updates.into_iter().collect(),
        ..Default::default()
    };
    if r.modified {
        mutations.headers = set_headers(r.headers)?;
        mutations.body = (!r.body.is_empty()).then_some(r.body);
    }
    Ok(Decision::Continue(mutations))
}

/// An `Authenticate` answer: an identity (the user id, else the app id) when
/// `authenticated`, else nothing, so the auth stage answers 401 unless another plugin
/// authenticates the caller.
pub fn auth_decision(r: pb::AuthResponse) -> Decision {
    if !r.authenticated {
        if !r.error_message.is_empty() {
            tracing::debug!(error = %r.error_message, "Tyk auth plugin rejected the caller");
        }
        return Decision::pass();
    }
    let mut claims: Vec<(String, String)> = r.claims.into_iter().collect();
    claims.sort();
    let identity = if r.user_id.is_empty() {
        r.app_id.clone()
    } else {
        r.user_id
    };
    Decision::Continue(Mutations {
        auth: Some(AuthResult {
            identity,
            app_id: r.app_id,
            claims,
            cache_ttl: None,
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn canonical_names_like_go() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-api-key"), "X-Api-Key");
        assert_eq!(canonical("te"), "Te");
    }

    #[test]
    fn block_without_status_is_403_with_json_body() {
        let r = pb::PluginResponse {
            block: true,
            body: Bytes::from_static(b"{}"),
            headers: [("Content-Length".to_string(), "2".to_string())].into(),
            ..Default::default()
        };
        let Decision::Respond(answer) = decision(r).unwrap() else {
            panic!("not blocked");
        };
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.headers.len(), 1, "{:?}", answer.headers);
        assert_eq!(answer.headers[0].0, http::header::CONTENT_TYPE);
    }

    #[test]
    fn unmodified_changes_only_context() {
        let r = pb::PluginResponse {
            headers: [("X-A".to_string(), "1".to_string())].into(),
            context_updates: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let Decision::Continue(m) = decision(r).unwrap() else {
            panic!("blocked");
        };
        assert!(m.headers.is_empty());
        assert_eq!(m.context, vec![("k".to_string(), "v".to_string())]);
        assert!(
            decision(pb::PluginResponse {
                block: true,
                status_code: 99,
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn replaced_response_headers_set_and_remove() {
        let mut original = HeaderMap::new();
        original.insert("content-length", "5".parse().unwrap());
        original.insert("x-keep", "1".parse().unwrap());
        original.insert("x-drop", "1".parse().unwrap());
        let returned = [("Content-Length", "5"), ("X-Keep", "1"), ("X-New", "yes")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let m = replace_headers(&original, returned).unwrap();
        assert_eq!(m.set.len(), 1);
        assert_eq!(m.set[0].0.as_str(), "x-new");
        assert_eq!(m.remove, vec![HeaderName::from_static("x-drop")]);
    }

    #[test]
    fn credential_prefers_bearer_token() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "k".parse().unwrap());
        assert_eq!(credential(&h), "k");
        h.insert("authorization", "Bearer t0k".parse().unwrap());
        assert_eq!(credential(&h), "t0k");
    }
}
