//! The SSRF guard for `grpc://` plugin targets: addresses that embed an internal IPv4
//! address (NAT64, 6to4, Teredo, SIIT) or are special-purpose themselves are refused by
//! `microgateway check` and by a starting gateway, with a message naming the address;
//! public addresses in the same forms stay allowed.

use crate::common::binary::check;
use crate::common::{GatewayConfig, PluginEntry, TestUpstream};
use std::net::IpAddr;

/// Internal targets and the address the refusal must name.
const INTERNAL: &[(&str, &str)] = &[
    // NAT64 (well-known prefix) of 169.254.169.254, 127.0.0.1 and 10.0.0.1.
    ("grpc://[64:ff9b::a9fe:a9fe]:80", "64:ff9b::a9fe:a9fe"),
    ("grpc://[64:ff9b::7f00:1]:50051", "64:ff9b::7f00:1"),
    ("grpcs://[64:ff9b::10.0.0.1]:443", "64:ff9b::a00:1"),
    ("grpc://[64:ff9b:1::a9fe:a9fe]:80", "64:ff9b:1::a9fe:a9fe"),
    // 6to4 of 10.0.0.1 and 169.254.169.254.
    ("grpc://[2002:0a00:0001::1]:80", "2002:a00:1::1"),
    ("grpc://[2002:a9fe:a9fe::1]:80", "2002:a9fe:a9fe::1"),
    // Teredo with client 127.0.0.1 (stored inverted) behind a public server.
    (
        "grpc://[2001:0:4136:e378:8000:63bf:80ff:fffe]:80",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ),
    // SIIT IPv4-translated 127.0.0.1, site-local, documentation.
    ("grpc://[::ffff:0:7f00:1]:80", "::ffff:0:7f00:1"),
    ("grpc://[fec0::1]:80", "fec0::1"),
    ("grpc://[2001:db8::1]:80", "2001:db8::1"),
    // IPv4 special-purpose ranges the guard used to miss.
    ("grpc://198.18.0.1:80", "198.18.0.1"),
    ("grpc://240.0.0.1:80", "240.0.0.1"),
    ("grpc://192.0.0.8:80", "192.0.0.8"),
    ("grpc://203.0.113.5:80", "203.0.113.5"),
    ("grpc://192.88.99.1:80", "192.88.99.1"),
];

/// A `[[plugins]]` entry for `command`.
fn plugin(command: &str) -> PluginEntry {
    PluginEntry::new("p", command, "pre_auth")
}

#[test]
fn check_refuses_internal_grpc_targets_by_address() {
    for (command, address) in INTERNAL {
        let run = check(
            &plugin(command).toml(),
            &[("ALLOW_INTERNAL_NETWORK_ACCESS", "false")],
        );
        let out = format!("{}{}", run.stdout, run.stderr);
        assert!(!run.status.success(), "{command} passed check: {out}");
        assert!(out.contains("internal address"), "{command}: {out}");
        assert!(
            out.contains(address),
            "{command} must name {address}: {out}"
        );
    }
}

#[test]
fn check_allows_public_addresses_in_translated_forms() {
    for command in [
        "grpc://8.8.8.8:80",
        "grpc://[2606:4700::1111]:443",
        "grpc://[2001:4860:4860::8888]:443",
        "grpc://[64:ff9b::808:808]:80",
        "grpc://[2002:808:808::1]:80",
    ] {
        let run = check(
            &plugin(command).toml(),
            &[("ALLOW_INTERNAL_NETWORK_ACCESS", "false")],
        );
        assert!(
            run.status.success(),
            "{command}: {}{}",
            run.stdout,
            run.stderr
        );
    }
}

#[tokio::test]
async fn gateway_refuses_to_load_internal_grpc_plugins() {
    let up = TestUpstream::start("up").await;
    // A short start timeout bounds a test run against a guard that dials these.
    let starts = INTERNAL.iter().map(|(command, address)| {
        let config = GatewayConfig::new()
            .upstream("main", &[&up])
            .route("main", "main", "path_prefix = \"/\"")
            .raw("[plugin_runtime]\nstart_timeout = \"1s\"\n")
            .plugin(plugin(command));
        async move {
            match microgateway::start(config.config()).await {
                Ok(_) => panic!("{command}: the gateway started"),
                Err(e) => (*command, *address, e.to_string()),
            }
        }
    });
    for (command, address, err) in futures_util::future::join_all(starts).await {
        assert!(err.contains("internal address"), "{command}: {err}");
        let shown: IpAddr = address.parse().unwrap();
        assert!(err.contains(&shown.to_string()), "{command}: {err}");
    }
}
