//! Every numeric and duration value of a configuration under its dotted key, for the
//! range check; an array element is named by its index (`upstreams[2].connect_timeout`).

use super::Value;
use crate::config::Config;

/// Every numeric and duration value of `config` under its dotted key, in file order.
pub fn values(config: &Config) -> Vec<(String, Value)> {
    let n = |v: usize| Value::Unsigned(u64::try_from(v).unwrap_or(u64::MAX));
    let (u, d) = (Value::Unsigned, Value::Duration);
    let (s, p, r, o) = (
        &config.server,
        &config.pipeline,
        &config.plugin_runtime,
        &config.oci,
    );
    let named = |pairs: &[(&str, Value)]| -> Vec<(String, Value)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    let mut out = named(&[
        ("server.workers", n(s.workers)),
        ("server.max_connections", n(s.max_connections)),
        ("server.header_read_timeout", d(s.header_read_timeout)),
        ("server.body_read_timeout", d(s.body_read_timeout)),
        ("server.idle_timeout", d(s.idle_timeout)),
        ("server.shutdown_timeout", d(s.shutdown_timeout)),
        ("server.max_header_count", n(s.max_header_count)),
        ("server.max_header_bytes", n(s.max_header_bytes)),
        ("server.max_body_bytes", u(s.max_body_bytes)),
        (
            "admin.health_check_interval",
            d(config.admin.health_check_interval),
        ),
    ]);
    for (i, up) in config.upstreams.iter().enumerate() {
        out.extend([
            (
                format!("upstreams[{i}].connect_timeout"),
                d(up.connect_timeout),
            ),
            (
                format!("upstreams[{i}].pool_idle_timeout"),
                d(up.pool_idle_timeout),
            ),
            (
                format!("upstreams[{i}].pool_max_idle_per_host"),
                n(up.pool_max_idle_per_host),
            ),
        ]);
        for (j, w) in up.weights.iter().enumerate() {
            out.push((format!("upstreams[{i}].weights[{j}]"), u(*w)));
        }
        out.extend([
            (format!("upstreams[{i}].max_fails"), u(up.max_fails)),
            (format!("upstreams[{i}].fail_timeout"), d(up.fail_timeout)),
            (
                format!("upstreams[{i}].max_fail_timeout"),
                d(up.max_fail_timeout),
            ),
        ]);
        if let Some(hc) = &up.health_check {
            let key = format!("upstreams[{i}].health_check");
            out.extend([
                (format!("{key}.interval"), d(hc.interval)),
                (format!("{key}.timeout"), d(hc.timeout)),
                (format!("{key}.healthy_threshold"), u(hc.healthy_threshold)),
                (
                    format!("{key}.unhealthy_threshold"),
                    u(hc.unhealthy_threshold),
                ),
            ]);
            for (j, s) in hc.expected_statuses.iter().enumerate() {
                out.push((format!("{key}.expected_statuses[{j}]"), u(*s)));
            }
        }
        if let Some(max) = up.max_requests {
            out.push((format!("upstreams[{i}].max_requests"), n(max)));
        }
        if let Some(max) = up.max_connections {
            out.push((format!("upstreams[{i}].max_connections"), n(max)));
        }
        if let Some(max) = up.max_pending {
            out.push((format!("upstreams[{i}].max_pending"), n(max)));
        }
        if let Some(llm) = &up.llm {
            out.extend([
                (
                    format!("upstreams[{i}].llm.key_cooldown"),
                    d(llm.key_cooldown),
                ),
                (
                    format!("upstreams[{i}].llm.key_auth_cooldown"),
                    d(llm.key_auth_cooldown),
                ),
                (
                    format!("upstreams[{i}].llm.key_cooldown_max"),
                    d(llm.key_cooldown_max),
                ),
            ]);
        }
    }
    for (i, route) in config.routes.iter().enumerate() {
        out.push((format!("routes[{i}].timeout"), d(route.timeout)));
        out.push((format!("routes[{i}].body_timeout"), d(route.body_timeout)));
        let retry = &route.retry;
        let k = |name: &str| format!("routes[{i}].retry.{name}");
        out.extend([
            (k("attempts"), u(retry.attempts)),
            (k("backoff"), d(retry.backoff)),
            (k("backoff_max"), d(retry.backoff_max)),
            (k("budget_percent"), u(retry.budget_percent)),
            (k("budget_min"), u(retry.budget_min)),
            (k("retry_after_max"), d(retry.retry_after_max)),
            (k("max_body_bytes"), u(retry.max_body_bytes)),
        ]);
        let up = &route.upgraded;
        out.extend([
            (
                format!("routes[{i}].upgraded.idle_timeout"),
                d(up.idle_timeout),
            ),
            (
                format!("routes[{i}].upgraded.max_duration"),
                d(up.max_duration),
            ),
            (
                format!("routes[{i}].upgraded.max_connections"),
                n(up.max_connections),
            ),
            (
                format!("routes[{i}].upgraded.max_message_bytes"),
                n(up.max_message_bytes),
            ),
        ]);
        if let Some(llm) = &route.llm {
            out.push((
                format!("routes[{i}].llm.default_max_tokens"),
                u(llm.default_max_tokens),
            ));
            if let Some(cache) = &llm.cache {
                out.push((format!("routes[{i}].llm.cache.ttl"), d(cache.ttl)));
            }
        }
    }
    for (i, plugin) in config.plugins.iter().enumerate() {
        let order = Value::Signed(i64::from(plugin.order));
        out.push((format!("plugins[{i}].order"), order));
        out.push((format!("plugins[{i}].timeout"), d(plugin.timeout)));
    }
    out.extend(named(&[
        (
            "pipeline.collect_queue_capacity",
            n(p.collect_queue_capacity),
        ),
        (
            "pipeline.max_response_buffer_bytes",
            n(p.max_response_buffer_bytes),
        ),
        (
            "pipeline.stream_accumulate_bytes",
            n(p.stream_accumulate_bytes),
        ),
        ("plugin_runtime.start_timeout", d(r.start_timeout)),
        ("plugin_runtime.ping_interval", d(r.ping_interval)),
        ("plugin_runtime.shutdown_grace", d(r.shutdown_grace)),
        (
            "plugin_runtime.max_restart_backoff",
            d(r.max_restart_backoff),
        ),
        ("oci.keep_versions", n(o.keep_versions)),
        ("oci.max_cache_bytes", u(o.max_cache_bytes)),
        ("oci.max_plugin_bytes", u(o.max_plugin_bytes)),
        ("oci.resolve_timeout", d(o.resolve_timeout)),
        ("llm.cache.max_bytes", u(config.llm.cache.max_bytes)),
        (
            "llm.cache.max_entry_bytes",
            u(config.llm.cache.max_entry_bytes),
        ),
    ]));
    if let Some(c) = &config.cluster {
        out.extend(named(&[
            ("cluster.timeout", d(c.timeout)),
            ("cluster.sync_interval", d(c.sync_interval)),
            ("cluster.retry_interval", d(c.retry_interval)),
        ]));
    }
    out
}
