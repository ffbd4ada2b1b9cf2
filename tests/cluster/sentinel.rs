//! Redis Sentinel: the gateway finds the master through a real Sentinel, and when the
//! master dies and the Sentinel promotes its replica, the fleet's counters go on there.

use crate::common::binary::GatewayProcess;
use crate::common::redis::Redis;
use crate::fleet::{chat, config, metric, prefix, provider};
use std::time::{Duration, Instant};

const POLICY: &str = r#"{ window = "1h", apps = { "app-s" = { requests_per_window = 3 } } }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_moves_the_gateway_to_the_new_master() {
    let mut master = Redis::start();
    let replica = Redis::start_replica_of(&master);
    let sentinel = Redis::start_sentinel(&master, "mymaster");
    // The replica is in sync and the Sentinel knows it.
    let until = Instant::now() + Duration::from_secs(20);
    while !(replica
        .cli(&["INFO", "replication"])
        .contains("master_link_status:up")
        && sentinel
            .cli(&["SENTINEL", "REPLICAS", "mymaster"])
            .contains(&replica.port.to_string()))
    {
        assert!(
            Instant::now() < until,
            "the replica or the sentinel never got ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (provider, prefix) = (provider().await, prefix());
    let lines = format!(
        "redis_url = \"{}\"\nsentinel_master = \"mymaster\"\nkey_prefix = \"{prefix}\"\non_unavailable = \"deny\"\nretry_interval = \"100ms\"",
        sentinel.url()
    );
    let gw = GatewayProcess::spawn(&config(provider, &lines, POLICY)).await;
    for _ in 0..2 {
        let reply = chat(gw.proxy_addr, "/v1/chat/completions", "k-s").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // Replicated before the master dies.
    let pattern = format!("{prefix}*requests");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let key = replica.cli(&["--scan", "--pattern", &pattern]);
        if !key.is_empty() && replica.cli(&["GET", key.trim()]) == "2" {
            break;
        }
        assert!(
            Instant::now() < until,
            "the counter never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    master.kill();
    let killed = Instant::now();
    // The Sentinel promotes the replica; the gateway asks it again and moves.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let up = metric(gw.admin_addr, "microgateway_cluster_up").await == Some(1.0);
        if up && replica.cli(&["ROLE"]).starts_with("master") {
            let reply = chat(gw.proxy_addr, "/v1/chat/completions", "k-s").await;
            if reply.status == 200 {
                eprintln!(
                    "first request served on the new master {:?} after the kill",
                    killed.elapsed()
                );
                break;
            }
        }
        assert!(
            Instant::now() < until,
            "no failover within 30 s; log:\n{}",
            gw.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The third request of the budget was counted on the new master; the fourth is over.
    let reply = chat(gw.proxy_addr, "/v1/chat/completions", "k-s").await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "requests_budget_exceeded");
    assert!(
        gw.log
            .lock()
            .unwrap()
            .contains("the sentinels name a new master")
    );
}
