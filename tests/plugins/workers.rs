//! Per-worker plugin connections: on a gateway with several proxy workers, each worker
//! opens its own connection to a `file://` plugin (and no more than one), and traffic
//! keeps flowing through a fresh process after the plugin is killed with SIGKILL.

use crate::common::{PluginEntry, TestUpstream, get};
use crate::support::{CHAOS, config, eventually};
use microgateway::plugin::HealthState;
use std::time::Duration;

/// Sends `n` requests at once, each on its own connection; returns the plugin pids seen.
async fn burst(addr: std::net::SocketAddr, n: usize) -> Vec<u32> {
    let replies = futures_util::future::join_all((0..n).map(|_| get(addr, "/x"))).await;
    replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text());
            r.echo().header("x-pid").unwrap().parse().unwrap()
        })
        .collect()
}

/// The connections accepted by the unix socket `pid` listens on (from `/proc/net/unix`:
/// accepted sockets carry the listener's path).
fn connections(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    // Num RefCount Protocol Flags Type St Inode Path
    let ours: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == 8 && inodes.iter().any(|i| i == f[6]))
        .collect();
    let listening: Vec<&Vec<&str>> = ours.iter().filter(|f| f[3] == "00010000").collect();
    assert_eq!(listening.len(), 1, "plugin {pid} sockets: {ours:?}");
    let path = listening[0][7];
    ours.iter().filter(|f| f[7] == path && f[5] == "03").count()
}

#[tokio::test]
async fn two_workers_keep_serving_through_a_killed_plugin() {
    let up = TestUpstream::start("up").await;
    let entry = PluginEntry::file("lanes", CHAOS, "pre_auth")
        .env("CHAOS_MODE", "pass")
        .extra("on_error = \"fail_closed\"")
        .toml();
    let gw = config(&up, &entry)
        .server("thread_per_core = true")
        .server("workers = 2")
        .start()
        .await;
    let first = burst(gw.proxy_addr, 16).await;
    let pid = first[0];
    assert!(first.iter().all(|&p| p == pid), "{first:?}");
    // The supervisor's connection, and one per worker that served (a single shared
    // connection would be 1).
    let open = connections(pid);
    assert!(
        (2..=3).contains(&open),
        "plugin {pid} has {open} connections"
    );
    burst(gw.proxy_addr, 16).await;
    let later = connections(pid);
    assert!(
        (open..=3).contains(&later),
        "plugin {pid} has {later} connections after {open}"
    );

    let instance = gw.proxy().plugins().instances()[0].clone();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let back = eventually(Duration::from_secs(10), async || {
        let h = instance.plugin.health();
        h.state == HealthState::Ready && h.restarts >= 1
    })
    .await;
    assert!(
        back,
        "plugin did not come back: {:?}",
        instance.plugin.health()
    );

    // Every worker drops its connection to the dead process and dials the new one.
    let after = burst(gw.proxy_addr, 16).await;
    let fresh = after[0];
    assert_ne!(fresh, pid);
    assert!(after.iter().all(|&p| p == fresh), "{after:?}");
    let reopened = connections(fresh);
    assert!(
        (2..=3).contains(&reopened),
        "plugin {fresh} has {reopened} connections"
    );
}
