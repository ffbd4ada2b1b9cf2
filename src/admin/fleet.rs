//! Fleet-wide plugin changes (`cluster.plugins = true`): the admin API's plugin records
//! are one versioned document in Redis ([`crate::cluster::document`]).
//!
//! A change made through any gateway's API is applied there first (validated, built,
//! persisted to `plugins.json`, swapped), then published as the next version. Every
//! gateway watches the document (pub/sub, and a version check every second) and applies
//! a newer version through the same blue/green reload; the local `plugins.json` keeps
//! the last applied list for a start without Redis. A gateway that joins or reconnects
//! converges the same way. The fleet's last writer wins: a change made while Redis was
//! down is published when it answers again, replacing what others published meanwhile.

use super::records::PluginRecord;
use crate::cluster::Cluster;
use crate::cluster::document::Document;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a gateway compares its version with the fleet's, besides announcements.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The shared document's contents.
#[derive(serde::Serialize, serde::Deserialize)]
struct Shared {
    plugins: Vec<PluginRecord>,
}

/// Where this gateway stands against the fleet's plugin records.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FleetStatus {
    /// The fleet version this gateway runs (0: none applied yet).
    pub version: u64,
    /// A local change is waiting to be published (Redis was down).
    pub unpublished: bool,
    /// A newer version that could not be applied here, and why.
    pub failed_version: Option<u64>,
    /// Why `failed_version` could not be applied.
    pub error: Option<String>,
    /// Whether the fleet's Redis answers.
    pub redis_up: bool,
    /// SHA-256 of the document this gateway runs (a version number restarts with an
    /// emptied Redis; the contents decide).
    #[serde(skip)]
    applied: Option<[u8; 32]>,
    /// SHA-256 of the document that failed.
    #[serde(skip)]
    failed: Option<[u8; 32]>,
}

fn digest(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// This gateway's side of the fleet's plugin records.
pub struct Fleet {
    cluster: Arc<Cluster>,
    doc: Document,
    status: Mutex<FleetStatus>,
}

impl Fleet {
    /// The fleet's plugin records, when `cluster` shares them.
    pub fn new(cluster: Option<&Arc<Cluster>>) -> Option<Fleet> {
        let cluster = cluster.filter(|c| c.shares_plugins())?.clone();
        Some(Fleet {
            doc: Document::new(&cluster, "plugins"),
            cluster,
            status: Mutex::default(),
        })
    }

    fn status_mut(&self) -> std::sync::MutexGuard<'_, FleetStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where this gateway stands, for `GET /api/v1/plugins`.
    pub fn status(&self) -> FleetStatus {
        let mut status = self.status_mut().clone();
        status.redis_up = self.cluster.is_up();
        status
    }

    /// Publishes `api` (after a local change) as the fleet's next version; when Redis
    /// is down the change waits and is published when it answers.
    pub async fn publish(&self, api: &[PluginRecord]) {
        let text = match serde_json::to_string(&Shared {
            plugins: api.to_vec(),
        }) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "fleet: cannot encode plugin records");
                return;
            }
        };
        match self.doc.publish(&self.cluster, &text).await {
            Ok(version) => {
                let mut s = self.status_mut();
                s.version = version;
                s.unpublished = false;
                s.applied = Some(digest(&text));
                crate::metrics::cluster_plugin_sync("published");
                tracing::info!(
                    version,
                    plugins = api.len(),
                    "fleet: plugin records published"
                );
            }
            Err(e) => {
                self.status_mut().unpublished = true;
                crate::metrics::cluster_plugin_sync("deferred");
                tracing::warn!(error = %e, "fleet: plugin change applied here only; it is published when redis answers");
            }
        }
    }
}

/// A document of the fleet this gateway should apply.
pub(super) struct Next {
    /// Its version.
    pub version: u64,
    hash: Option<[u8; 32]>,
    /// Its API plugin records.
    pub records: Vec<PluginRecord>,
}

impl Fleet {
    /// Woken on every announcement and at least every second.
    pub(super) fn watch(&self) -> Arc<tokio::sync::Notify> {
        self.doc.watch(&self.cluster, CHECK_EVERY)
    }

    /// One comparison with the fleet, given this gateway's API records `api`: publishes
    /// a waiting local change, seeds an empty fleet, or returns a document other than
    /// the one this gateway runs.
    pub(super) async fn next(&self, api: &[PluginRecord]) -> Option<Next> {
        if !self.cluster.is_up() {
            return None;
        }
        let status = self.status();
        if status.unpublished {
            self.publish(api).await;
            return None;
        }
        let (version, text) = match self.doc.fetch(&self.cluster).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "fleet: cannot read plugin records");
                return None;
            }
        };
        if version == 0 {
            // The first gateway of a fleet brings what it has.
            if !api.is_empty() {
                self.publish(api).await;
            }
            return None;
        }
        let hash = text.as_deref().map(digest);
        if hash.is_some() && hash == status.applied {
            self.status_mut().version = version;
            return None;
        }
        if hash.is_some() && hash == status.failed {
            return None;
        }
        match text.as_deref().map(serde_json::from_str::<Shared>) {
            Some(Ok(shared)) => Some(Next {
                version,
                hash,
                records: shared.plugins,
            }),
            other => {
                let error = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "the document is missing".to_string(),
                };
                self.failed(
                    &Next {
                        version,
                        hash,
                        records: Vec::new(),
                    },
                    error,
                );
                None
            }
        }
    }

    /// `next` now runs here.
    pub(super) fn applied(&self, next: &Next) {
        crate::metrics::cluster_plugin_sync("applied");
        tracing::info!(version = next.version, "fleet: plugin records applied");
        let mut s = self.status_mut();
        s.version = next.version;
        s.applied = next.hash;
        s.failed_version = None;
        s.failed = None;
        s.error = None;
    }

    /// `next` could not be applied; it is not tried again until the fleet changes.
    pub(super) fn failed(&self, next: &Next, error: String) {
        crate::metrics::cluster_plugin_sync("failed");
        tracing::error!(version = next.version, error = %error, "fleet: plugin records not applied; running plugins unchanged");
        let mut s = self.status_mut();
        s.failed_version = Some(next.version);
        s.failed = next.hash;
        s.error = Some(error);
    }
}
