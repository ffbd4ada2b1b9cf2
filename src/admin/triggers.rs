//! Reload triggers besides the API: configuration-file changes (notify), periodic
//! health checks, and the fleet's plugin records (`cluster.plugins`). SIGHUP is handled by the binary, which calls
//! [`PluginManager::reload_config_file`](super::manager::PluginManager::reload_config_file).

use super::manager::PluginManager;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Reloads the configuration file's plugins whenever the file changes (debounced).
pub fn watch_config(manager: Arc<PluginManager>, path: PathBuf, stop: CancellationToken) {
    use notify::Watcher as _;
    let Some(dir) = path.parent().map(|d| {
        if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d.to_path_buf()
        }
    }) else {
        return;
    };
    let name = path.file_name().map(|n| n.to_os_string());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the configuration file; use SIGHUP to reload");
            return;
        }
    };
    // Editors replace files, so the directory is watched, not the file.
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the configuration directory; use SIGHUP to reload");
        return;
    }
    crate::task::detach("config-watch", async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                event = rx.recv() => if event.is_none() { return },
            }
            // Let a burst of writes settle.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while rx.try_recv().is_ok() {}
            tracing::info!(path = %path.display(), "configuration file changed; reloading plugins");
            match manager.reload_config_file().await {
                Ok(()) => tracing::info!("plugins reloaded from the configuration file"),
                Err(e) => {
                    tracing::error!(error = %e, "configuration file change")
                }
            }
        }
    });
}

/// Reloads the plugin set when an instance has given up (state `failed`), and retries
/// plugins that could not load, every `every`.
pub fn watch_health(manager: Arc<PluginManager>, every: Duration, stop: CancellationToken) {
    crate::task::detach("plugin-health", async move {
        let start = crate::deadline::after(tokio::time::Instant::now(), every);
        let mut ticker = tokio::time::interval_at(start, every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if manager.any_failed() {
                tracing::warn!("a plugin instance failed; reloading the plugin set");
                if let Err(e) = manager.reload().await {
                    tracing::error!(error = %e, "health-triggered reload failed");
                }
            }
            // Plugins that could not load are retried on the same beat, alone.
            manager.retry_stand_ins().await;
        }
    });
}

/// With `cluster.plugins`: keeps `manager`'s API plugins in step with the fleet's until
/// `stop` (see `admin::fleet`).
pub async fn watch_fleet(manager: Arc<PluginManager>, stop: CancellationToken) {
    let Some(changed) = manager.fleet().map(|f| f.watch()) else {
        return;
    };
    loop {
        if let Some(fleet) = manager.fleet()
            && let Some(next) = fleet.next(&manager.api()).await
        {
            match manager.apply_fleet(next.records.clone()).await {
                Ok(()) => fleet.applied(&next),
                Err(e) => fleet.failed(&next, e.to_string()),
            }
        }
        tokio::select! {
            () = changed.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}
