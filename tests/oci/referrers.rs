//! A registry with the OCI 1.1 referrers API, for the API path of bundle lookup: no
//! Debian registry implements `GET /v2/<repo>/referrers/<digest>`, so this small proxy
//! in front of `docker-registry` does, as a registry would: it records every manifest
//! pushed with a `subject` and lists them under that subject. It hides the fallback tags
//! (`sha256-<hex>` answers 404), so a lookup can only succeed through the API.

use crate::registry::Registry;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `(repository, subject digest)` → referrer descriptors.
type Referrers = Arc<Mutex<HashMap<(String, String), Vec<serde_json::Value>>>>;

pub struct ReferrersRegistry {
    /// `127.0.0.1:<port>` of the proxy.
    pub host: String,
    /// The registry behind it.
    pub inner: Registry,
    /// Referrers API requests answered.
    pub api_hits: Arc<Mutex<usize>>,
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}

/// `/v2/<repo>/<kind>/<reference>` split at the last `/<kind>/`.
fn split<'a>(path: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let rest = path.strip_prefix("/v2/")?;
    let at = rest.rfind(&format!("/{kind}/"))?;
    Some((&rest[..at], &rest[at + kind.len() + 2..]))
}

impl ReferrersRegistry {
    pub async fn start() -> ReferrersRegistry {
        let inner = Registry::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let upstream = inner.host.clone();
        let referrers: Referrers = Arc::default();
        let api_hits = Arc::new(Mutex::new(0));
        let hits = api_hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (upstream, referrers, hits) =
                    (upstream.clone(), referrers.clone(), hits.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, upstream.clone(), referrers.clone(), hits.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        ReferrersRegistry {
            host,
            inner,
            api_hits,
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    upstream: String,
    referrers: Referrers,
    hits: Arc<Mutex<usize>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    if req.method() == hyper::Method::GET
        && let Some((repo, digest)) = split(&path, "referrers")
    {
        *hits.lock().unwrap() += 1;
        let artifact_type = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("artifactType="))
            .map(|t| t.replace("%2B", "+").replace("%2F", "/"));
        let mut manifests = referrers
            .lock()
            .unwrap()
            .get(&(repo.to_string(), digest.to_string()))
            .cloned()
            .unwrap_or_default();
        if let Some(t) = &artifact_type {
            manifests.retain(|m| m["artifactType"] == t.as_str());
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let mut response = Response::new(Full::new(Bytes::from(index.to_string())));
        response.headers_mut().insert(
            "content-type",
            "application/vnd.oci.image.index.v1+json".parse().unwrap(),
        );
        return Ok(response);
    }
    if let Some((_, reference)) = split(&path, "manifests")
        && reference.starts_with("sha256-")
        && req.method() != hyper::Method::PUT
    {
        let mut response = Response::new(Full::new(Bytes::from_static(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    if parts.method == hyper::Method::PUT
        && let Some((repo, _)) = split(&path, "manifests")
        && let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(subject) = manifest["subject"]["digest"].as_str()
    {
        let entry = serde_json::json!({
            "mediaType": manifest["mediaType"],
            "digest": sha256(&body),
            "size": body.len(),
            "artifactType": manifest["artifactType"],
            "annotations": manifest["annotations"],
        });
        referrers
            .lock()
            .unwrap()
            .entry((repo.to_string(), subject.to_string()))
            .or_default()
            .push(entry);
    }
    let uri = format!(
        "http://{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut forward = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let answer = match client.request(forward.body(Full::new(body)).unwrap()).await {
        Ok(a) => a,
        Err(e) => {
            let mut response = Response::new(Full::new(Bytes::from(e.to_string())));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(response);
        }
    };
    let (parts, body) = answer.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
