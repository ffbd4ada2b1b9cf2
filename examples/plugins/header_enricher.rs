//! Example plugin: header enricher.
//!
//! Request stages: sets the configured `headers` (default `x-enriched-by: header-enricher`)
//! plus `x-plugin-request-id` and records `enriched=true` in the request context.
//! `on_response`: sets the configured `response_headers`.
//!
//! Config: `{ headers = { name = "value" }, response_headers = { name = "value" } }`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use microgateway::sdk::{self, Handler, pb};
use std::collections::BTreeMap;
use std::sync::RwLock;
use tonic::Status;

#[derive(Default)]
struct Enricher {
    headers: RwLock<BTreeMap<String, String>>,
    response_headers: RwLock<BTreeMap<String, String>>,
}

fn table(config: &serde_json::Value, key: &str) -> Result<BTreeMap<String, String>, String> {
    match config.get(key) {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{key}: {e}")),
    }
}

impl Handler for Enricher {
    fn manifest(&self) -> pb::Manifest {
        sdk::manifest(
            "header-enricher",
            &[
                pb::Hook::PreAuth,
                pb::Hook::PostAuth,
                pb::Hook::OnResponseHeaders,
            ],
        )
    }

    async fn initialize(&self, config: serde_json::Value) -> Result<(), String> {
        let mut headers = table(&config, "headers")?;
        if headers.is_empty() {
            headers.insert("x-enriched-by".into(), "header-enricher".into());
        }
        *self.headers.write().unwrap() = headers;
        *self.response_headers.write().unwrap() = table(&config, "response_headers")?;
        Ok(())
    }

    async fn pre_auth(&self, req: pb::HookRequest) -> Result<pb::HookResponse, Status> {
        Ok(self.enrich(&req))
    }

    async fn post_auth(&self, req: pb::HookRequest) -> Result<pb::HookResponse, Status> {
        Ok(self.enrich(&req))
    }

    async fn on_response_headers(
        &self,
        _req: pb::ResponseHeadersRequest,
    ) -> Result<pb::ResponseHeadersResponse, Status> {
        let set = self
            .response_headers
            .read()
            .unwrap()
            .iter()
            .map(|(k, v)| sdk::header(k, v))
            .collect();
        Ok(pb::ResponseHeadersResponse {
            headers: Some(pb::HeaderMutations {
                set,
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

impl Enricher {
    fn enrich(&self, req: &pb::HookRequest) -> pb::HookResponse {
        let mut set: Vec<pb::Header> = self
            .headers
            .read()
            .unwrap()
            .iter()
            .map(|(k, v)| sdk::header(k, v))
            .collect();
        if let Some(info) = &req.request {
            set.push(sdk::header("x-plugin-request-id", &info.request_id));
        }
        sdk::continue_with(pb::Continue {
            headers: Some(pb::HeaderMutations {
                set,
                ..Default::default()
            }),
            context: [("enriched".to_string(), "true".to_string())].into(),
            ..Default::default()
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = sdk::serve(Enricher::default()).await {
        eprintln!("header-enricher: {e}");
        std::process::exit(1);
    }
}
