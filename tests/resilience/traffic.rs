//! Traffic for the resilience suite: a background load that counts every failed
//! request, the python HTTP/2 attack client, and waiting for a plugin to be ready.

use http_body_util::BodyExt;
use hyper::Request;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests sent by [`Load`] and how many failed, with the first failures.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    pub samples: Vec<String>,
}

impl LoadReport {
    /// Asserts that requests were served and none failed.
    pub fn assert_clean(&self) {
        assert!(self.ok > 0, "no request was served");
        assert_eq!(
            self.failed,
            0,
            "{} of {} requests failed, first: {:?}",
            self.failed,
            self.ok + self.failed,
            self.samples
        );
    }
}

/// Background traffic: `workers` loops of GET requests on keep-alive connections.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` request loops against `addr` + `path`; every answer must be 200.
    pub fn start(addr: SocketAddr, path: &str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let url = format!("http://{addr}{path}");
        let tasks = (0..workers)
            .map(|_| {
                let (stop, ok, failures, url) =
                    (stop.clone(), ok.clone(), failures.clone(), url.clone());
                tokio::spawn(async move {
                    let client = crate::common::client::h1();
                    while !stop.load(Ordering::Relaxed) {
                        let req = Request::get(url.as_str())
                            .body(crate::common::client::empty())
                            .unwrap();
                        let sent = tokio::time::timeout(Duration::from_secs(10), async {
                            let resp = client.request(req).await?;
                            let status = resp.status();
                            let body = resp.into_body().collect().await?.to_bytes();
                            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
                        })
                        .await;
                        match sent {
                            Ok(Ok((status, _))) if status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Ok((status, body))) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{status}: {}", String::from_utf8_lossy(&body))),
                            Ok(Err(e)) => failures.lock().unwrap().push(format!("error: {e}")),
                            Err(_) => failures.lock().unwrap().push("timed out".into()),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            tasks,
        }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the loops and reports.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let failures = self.failures.lock().unwrap();
        LoadReport {
            ok: self.ok.load(Ordering::Relaxed),
            failed: failures.len() as u64,
            samples: failures.iter().take(5).cloned().collect(),
        }
    }
}

/// Runs `h2_attack.py MODE 127.0.0.1 PORT COUNT` and parses its JSON report.
pub async fn h2_attack(mode: &str, addr: SocketAddr, count: usize) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/resilience/h2_attack.py");
    let out = tokio::process::Command::new("python3")
        .args([
            script,
            mode,
            "127.0.0.1",
            &addr.port().to_string(),
            &count.to_string(),
        ])
        .output()
        .await
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "h2_attack.py {mode} failed (pip install h2): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "h2_attack.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Waits (at most 15 s) until the admin API reports plugin `name` as `ready`.
pub async fn plugin_ready(admin: SocketAddr, name: &str) {
    let mut last = String::new();
    for _ in 0..150 {
        let path = format!("/api/v1/plugins/{name}/health");
        let auth = [("authorization", crate::common::gateway::ADMIN_AUTH)];
        let reply = crate::common::get_with(admin, &path, &auth).await;
        if reply.status == 200 && reply.json()["state"] == "ready" {
            return;
        }
        last = reply.text();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("plugin {name} never became ready: {last}");
}
