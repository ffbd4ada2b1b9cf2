//! A throw-away `docker-registry` on 127.0.0.1 with a temp storage dir, optionally
//! protected by htpasswd, plus helpers to build OCI stores and artifacts.

use microgateway::config::OciConfig;
use microgateway::oci::OciStore;
use microgateway::oci::settings::OciSettings;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

pub struct Registry {
    pub host: String,
    pub dir: tempfile::TempDir,
    pub log: Arc<Mutex<String>>,
    child: Option<tokio::process::Child>,
}

impl Registry {
    pub async fn start() -> Registry {
        Self::start_with(None).await
    }

    /// With `Some((user, password))` the registry requires Basic auth.
    pub async fn start_with(credentials: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            let out = std::process::Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = tokio::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry must be installed (apt-get install docker-registry)");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let sink = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let host = format!("127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&host).await.is_ok() {
                return Registry {
                    host,
                    dir,
                    log,
                    child: Some(child),
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("docker-registry did not start: {}", log.lock().unwrap());
    }

    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Access-log lines fetching the blob `digest` successfully.
    pub fn blob_downloads(&self, digest: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter(|l| {
                l.contains("GET /v2/")
                    && l.contains(&format!("/blobs/{digest}"))
                    && l.contains("\" 200 ")
            })
            .count()
    }

    /// The registry's storage file for blob `digest`.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

/// OCI settings for a cache dir and an insecure local registry.
pub fn settings(cache: &std::path::Path, registry: &Registry) -> OciSettings {
    let config = OciConfig {
        cache_dir: cache.to_path_buf(),
        insecure_registries: vec![registry.host.clone()],
        ..OciConfig::default()
    };
    OciSettings::with_env(&config, &|_| None).unwrap()
}

/// A store whose credential lookup sees only `vars`.
pub fn store(settings: OciSettings, vars: &[(&str, &str)]) -> OciStore {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    OciStore::with_env(
        settings,
        Arc::new(move |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())),
    )
    .unwrap()
}

/// Credential variables for `registry`.
pub fn creds(registry: &Registry, user: &str, password: &str) -> Vec<(String, String)> {
    let prefix = microgateway::oci::settings::registry_env_prefix(&registry.host);
    vec![
        (format!("{prefix}_USERNAME"), user.to_string()),
        (format!("{prefix}_PASSWORD"), password.to_string()),
    ]
}

/// Pushes `data` as a plugin artifact and returns the manifest digest.
pub async fn push(store: &OciStore, reference: &str, data: &[u8]) -> String {
    microgateway::oci::push::push(store, reference, data, "test-plugin")
        .await
        .unwrap()
}
