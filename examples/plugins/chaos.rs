//! Test plugin: misbehaves on purpose, chosen by the `CHAOS_MODE` environment variable
//! (set through the plugin entry's `env` table).
//!
//! | mode | behaviour |
//! |---|---|
//! | `crash_after:N` | exits with status 3 on the N-th hook call |
//! | `hang` | hook calls never answer |
//! | `garbage` | prints junk instead of a handshake |
//! | `bad_handshake` | offers a non-loopback TCP address |
//! | `silent` | never prints a handshake |
//! | `huge` | answers with a 6 MiB header value |
//! | `env` | returns the names of its environment variables in `x-env` |
//! | `spawn_child` | starts a `sleep` grandchild, returns its pid in `x-child-pid` |
//! | anything else | passes (and counts calls in `x-calls`) |
//!
//! Passing answers also carry the plugin's own pid in `x-pid`. The plugin also takes
//! response body chunks (`CHUNKS` mode, `on_response` entries): `crash_after:N` and
//! `hang` count and act on chunk calls the same way; other modes pass chunks unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use microgateway::sdk::{self, Handler, pb};
use std::sync::atomic::{AtomicU64, Ordering};
use tonic::Status;

struct Chaos {
    mode: String,
    calls: AtomicU64,
}

impl Handler for Chaos {
    fn manifest(&self) -> pb::Manifest {
        pb::Manifest {
            response_body: pb::BodyMode::Chunks as i32,
            ..sdk::manifest(
                "chaos",
                &[
                    pb::Hook::PreAuth,
                    pb::Hook::Auth,
                    pb::Hook::PostAuth,
                    pb::Hook::OnResponseChunk,
                ],
            )
        }
    }

    async fn pre_auth(&self, req: pb::HookRequest) -> Result<pb::HookResponse, Status> {
        self.act(req).await
    }

    async fn auth(&self, req: pb::HookRequest) -> Result<pb::HookResponse, Status> {
        let _ = self.act(req).await?;
        Ok(sdk::authenticated("chaos-user", "chaos", Vec::new()))
    }

    async fn post_auth(&self, req: pb::HookRequest) -> Result<pb::HookResponse, Status> {
        self.act(req).await
    }

    async fn on_response_chunk(&self, _req: pb::ChunkRequest) -> Result<pb::ChunkResponse, Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.maybe_crash(n);
        if self.mode == "hang" {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        Ok(pb::ChunkResponse {
            action: Some(pb::chunk_response::Action::Pass(true)),
        })
    }
}

impl Chaos {
    /// Exits with status 3 when the mode is `crash_after:N` and this is call N or later.
    fn maybe_crash(&self, n: u64) {
        if let Some(limit) = self
            .mode
            .strip_prefix("crash_after:")
            .and_then(|v| v.parse::<u64>().ok())
            && n >= limit
        {
            eprintln!("chaos: crashing on call {n}");
            std::process::exit(3);
        }
    }

    async fn act(&self, _req: pb::HookRequest) -> Result<pb::HookResponse, Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.maybe_crash(n);
        match self.mode.as_str() {
            "hang" => {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                Ok(sdk::pass())
            }
            "huge" => Ok(sdk::continue_with(sdk::set_header(
                "x-huge",
                &"x".repeat(6 * 1024 * 1024),
            ))),
            "env" => {
                let mut names: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                names.sort();
                Ok(sdk::continue_with(sdk::set_header(
                    "x-env",
                    &names.join(","),
                )))
            }
            "spawn_child" => {
                let child = std::process::Command::new("sleep")
                    .arg("1000")
                    .spawn()
                    .map_err(|e| Status::internal(e.to_string()))?;
                Ok(with_pid(sdk::set_header(
                    "x-child-pid",
                    &child.id().to_string(),
                )))
            }
            _ => Ok(with_pid(sdk::set_header("x-calls", &n.to_string()))),
        }
    }
}

/// Adds `x-pid` (this process) to a `Continue`.
fn with_pid(mut changes: pb::Continue) -> pb::HookResponse {
    if let Some(h) = changes.headers.as_mut() {
        h.set
            .push(sdk::header("x-pid", &std::process::id().to_string()));
    }
    sdk::continue_with(changes)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = std::env::var("CHAOS_MODE").unwrap_or_default();
    match mode.as_str() {
        "garbage" => {
            println!("hello, I am definitely not a plugin handshake");
            std::thread::sleep(std::time::Duration::from_secs(60));
            return;
        }
        "bad_handshake" => {
            println!("1|1|tcp|10.1.2.3:4000|grpc");
            std::thread::sleep(std::time::Duration::from_secs(60));
            return;
        }
        "silent" => {
            std::thread::sleep(std::time::Duration::from_secs(60));
            return;
        }
        _ => {}
    }
    if let Err(e) = sdk::serve(Chaos {
        mode,
        calls: AtomicU64::new(0),
    })
    .await
    {
        eprintln!("chaos: {e}");
        std::process::exit(1);
    }
}
