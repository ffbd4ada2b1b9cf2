//! The ranges table against the configuration it describes.

use super::*;

/// The embedded default with one plugin and every optional upstream key, so every
/// key of the table has a value.
fn full() -> Config {
    let mut config = Config::from_toml(concat!(
        "[[plugins]]\nname = \"h\"\ncommand = \"builtin://headers\"\nhook_type = \"pre_auth\"\n",
        "[[upstreams]]\nname = \"local-app\"\ntargets = [\"http://127.0.0.1:8000\"]\n",
        "balance = \"weighted\"\nweights = [2]\nmax_requests = 10\n",
        "max_connections = 10\nmax_pending = 5\n",
        "health_check = { expected_statuses = [200] }\n",
        "[cluster]\nredis_url = \"redis://127.0.0.1:6379\"\n",
    ))
    .unwrap();
    // An LLM upstream, so the `upstreams[].llm.*` keys have values too.
    config.upstreams[0].llm = Some(crate::config::LlmUpstreamConfig {
        provider: crate::config::Provider::Openai,
        api_key_env: None,
        api_key_file: None,
        api_keys_env: Some(vec!["K".into()]),
        api_keys_file: None,
        key_cooldown: Duration::from_secs(60),
        key_auth_cooldown: Duration::from_secs(600),
        key_cooldown_max: Duration::from_secs(900),
    });
    // A cached LLM route, so the `routes[].llm.*` keys have values too.
    config.routes[0].llm = Some(crate::config::RouteLlmConfig {
        cache: Some(crate::config::RouteCacheConfig {
            ttl: Duration::from_secs(300),
            scope: crate::config::CacheScope::App,
            tool_results: false,
        }),
        ..Default::default()
    });
    config
}

#[test]
fn every_value_has_exactly_one_range_of_its_kind() {
    let config = full();
    let values = values(&config);
    for (key, value) in &values {
        let range = range_of(key).unwrap_or_else(|| panic!("{key} has no range"));
        assert!(
            range.limit.admits(*value),
            "default {key} outside {}",
            range.limit
        );
    }
    for range in RANGES {
        let n = values
            .iter()
            .filter(|(k, _)| generic_key(k) == range.key)
            .count();
        assert_eq!(n, 1, "{} has {n} values", range.key);
    }
}

#[test]
fn errors_name_the_key_and_both_ends() {
    let mut config = full();
    config.server.idle_timeout = Duration::new(u64::MAX, 0);
    let e = check(&config).unwrap_err().to_string();
    assert!(
        e.starts_with("invalid configuration: server.idle_timeout: must be between 1ms and 1day, got 584542046090years"),
        "{e}"
    );
    let mut config = full();
    config.upstreams[0].pool_max_idle_per_host = usize::MAX;
    let e = check(&config).unwrap_err().to_string();
    assert!(
        e.contains("upstreams[0].pool_max_idle_per_host: must be between 0 and 100000, got 18446744073709551615"),
        "{e}"
    );
    let mut config = full();
    config.server.max_header_bytes = 100;
    let e = check(&config).unwrap_err().to_string();
    assert!(
        e.ends_with("must be between 256 B and 1 MiB, got 100 B"),
        "{e}"
    );
}

#[test]
fn generic_keys_drop_indices() {
    assert_eq!(generic_key("routes[12].timeout"), "routes[].timeout");
    assert_eq!(generic_key("server.workers"), "server.workers");
}
