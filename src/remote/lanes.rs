//! Per-worker plugin channels ("lanes"): one HTTP/2 connection per proxy worker per
//! plugin instance, so a hook call never leaves the worker's thread.
//!
//! tonic spawns a channel's buffer and connection tasks on the runtime that dials it. The
//! supervisor's channel lives on the shared runtime, and a call through it from a proxy
//! worker wakes another thread twice (request and response). So the first time a worker
//! calls a plugin it dials the plugin's [`Target`] itself, on its own single-threaded
//! runtime, and keeps that channel in a thread-local lane. The supervisor publishes a
//! new [`Live`] generation on every (re)start; a lane from an older generation is dropped
//! and redialled. A dial that fails makes the call `Unavailable` (the hook's `on_error`
//! applies), logs a warning, and is not retried on that worker for [`RETRY_AFTER`].
//! Like an idle upstream connection, a lane unused for [`IDLE`] is closed (a task on
//! the worker checks every second), and so is one whose plugin instance is gone, down
//! or restarted. Code off the workers (the shared runtime, tests) uses the supervisor's
//! channel.

use super::Shared;
use super::dial::Target;
use crate::plugin::PluginError;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tonic::transport::Channel;

/// How long a worker whose dial failed answers `Unavailable` before dialling again.
pub const RETRY_AFTER: Duration = Duration::from_millis(500);

/// How long a worker keeps a plugin connection it does not use.
pub const IDLE: Duration = Duration::from_secs(5);

/// One published instance of a running plugin.
pub struct Live {
    /// The supervisor's channel.
    pub channel: Channel,
    /// How workers open their own connections.
    pub target: Arc<Target>,
    /// Bounds a worker's dial.
    pub dial_timeout: Duration,
    /// Counts publications; a lane of another generation is stale.
    pub generation: u64,
}

/// One worker's connection to one generation of a plugin.
struct Lane {
    generation: u64,
    channel: OnceCell<Channel>,
    failed_at: Mutex<Option<Instant>>,
    /// When a call last took the channel.
    used: Mutex<Instant>,
}

thread_local! {
    /// This worker's lanes, by plugin instance. Few plugins run, so a list is enough.
    static LANES: RefCell<Vec<(Weak<Shared>, Arc<Lane>)>> = const { RefCell::new(Vec::new()) };
}

/// The lane of `shared` on this thread for `generation`, replacing a stale one. A new
/// lane gets a task on this worker that closes it when idle or stale.
fn lane(shared: &Arc<Shared>, generation: u64) -> Arc<Lane> {
    let (lane, fresh) = LANES.with(|lanes| {
        let mut lanes = lanes.borrow_mut();
        let found = lanes
            .iter_mut()
            .find(|(owner, _)| std::ptr::eq(owner.as_ptr(), Arc::as_ptr(shared)));
        match found {
            Some((_, lane)) if lane.generation == generation => (lane.clone(), false),
            Some((_, lane)) => {
                *lane = Arc::new(Lane::new(generation));
                (lane.clone(), true)
            }
            None => {
                let lane = Arc::new(Lane::new(generation));
                lanes.push((Arc::downgrade(shared), lane.clone()));
                (lane, true)
            }
        }
    });
    if fresh {
        crate::task::detach(
            "plugin-lane-reaper",
            reap(Arc::downgrade(shared), Arc::downgrade(&lane)),
        );
    }
    lane
}

/// Whether `lane` should be closed: unused for [`IDLE`], or its instance gone, down or
/// running another generation.
fn expired(owner: &Weak<Shared>, lane: &Lane) -> bool {
    let Some(shared) = owner.upgrade() else {
        return true;
    };
    let current = shared.live.load();
    let stale = current
        .as_deref()
        .is_none_or(|live| live.generation != lane.generation);
    let used = *lane.used.lock().unwrap_or_else(|p| p.into_inner());
    stale || used.elapsed() >= IDLE
}

/// Runs on the worker that made `lane`: removes it from this thread's lanes once it has
/// expired (in-flight calls keep their clone of the channel and finish), or ends when
/// the lane was replaced.
async fn reap(owner: Weak<Shared>, lane: Weak<Lane>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(current) = lane.upgrade() else {
            return;
        };
        if expired(&owner, &current) {
            LANES.with(|lanes| {
                lanes
                    .borrow_mut()
                    .retain(|(_, l)| !Arc::ptr_eq(l, &current));
            });
            return;
        }
    }
}

impl Lane {
    fn new(generation: u64) -> Lane {
        Lane {
            generation,
            channel: OnceCell::new(),
            failed_at: Mutex::new(None),
            used: Mutex::new(Instant::now()),
        }
    }

    /// The lane's channel, dialling `live.target` once; concurrent callers wait for the
    /// one dial.
    async fn channel(&self, name: &str, live: &Live) -> Result<Channel, PluginError> {
        *self.used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if let Some(channel) = self.channel.get() {
            return Ok(channel.clone());
        }
        let channel = self
            .channel
            .get_or_try_init(|| async {
                let recent = {
                    let failed = self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
                    failed.is_some_and(|at| at.elapsed() < RETRY_AFTER)
                };
                if recent {
                    return Err(PluginError::Unavailable(format!(
                        "plugin {name}: this worker's connection failed less than {RETRY_AFTER:?} ago"
                    )));
                }
                match live.target.connect(live.dial_timeout).await {
                    Ok(channel) => Ok(channel),
                    Err(e) => {
                        tracing::warn!(plugin = %name, worker = crate::worker::current(), error = %e, "cannot open this worker's plugin connection");
                        *self.failed_at.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(Instant::now());
                        Err(PluginError::Unavailable(format!(
                            "plugin {name}: this worker cannot connect: {e}"
                        )))
                    }
                }
            })
            .await?;
        Ok(channel.clone())
    }
}

/// The channel a hook call on this thread should use: this worker's lane, or the
/// supervisor's channel off the workers.
pub async fn channel(shared: &Arc<Shared>, live: Arc<Live>) -> Result<Channel, PluginError> {
    if crate::worker::current() == 0 {
        return Ok(live.channel.clone());
    }
    let lane = lane(shared, live.generation);
    lane.channel(&shared.name, &live).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::transport::Endpoint;

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_dial_is_unavailable_and_not_retried_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Unix(dir.path().join("missing.sock"));
        let live = Live {
            channel: Endpoint::from_static("http://unused.invalid").connect_lazy(),
            target: Arc::new(target),
            dial_timeout: Duration::from_secs(1),
            generation: 1,
        };
        let lane = Lane::new(1);
        let first = lane.channel("p", &live).await.unwrap_err();
        assert!(
            matches!(&first, PluginError::Unavailable(m) if m.contains("cannot connect")),
            "{first:?}"
        );
        let second = lane.channel("p", &live).await.unwrap_err();
        assert!(
            matches!(&second, PluginError::Unavailable(m) if m.contains("less than")),
            "{second:?}"
        );
    }
}
