//! `microgateway check [--online]`: validate the configuration and every plugin
//! reference without starting anything (and, with `--online`, reach the network).

use anyhow::{Context, bail};
use microgateway::Config;
use microgateway::config::Resolved;
use microgateway::remote::security::{Policy, parse_ip_literal};

/// Runs every check; the error names the first problem.
pub fn run(config: &Config, resolved: &Resolved, online: bool) -> anyhow::Result<Vec<String>> {
    microgateway::server::preflight(config, resolved)?;
    let registry = microgateway::loader::Registry::with_builtins();
    let runtime = &config.plugin_runtime;
    let policy = Policy::from_allowlist(
        resolved.allowlist.clone(),
        runtime.allow_internal_network_access,
    )
    .block_internal(runtime.block_internal_urls);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut notes = network_policy(config, &|n| std::env::var(n).ok());
    for (i, plugin) in config.plugins.iter().enumerate() {
        let key = format!("plugins[{i}] ({})", plugin.name);
        let command = plugin.effective_command();
        registry
            .validate(plugin)
            .with_context(|| format!("invalid configuration: {key}"))?;
        if command.starts_with("file://") {
            let path = policy
                .check_file(&command)
                .with_context(|| format!("invalid configuration: {key}"))?;
            notes.push(format!("{key}: {} ok", path.display()));
        } else if let Some(rest) = command
            .strip_prefix("grpc://")
            .or_else(|| command.strip_prefix("grpcs://"))
        {
            let Some((host, port)) = rest.trim_end_matches('/').rsplit_once(':') else {
                bail!("invalid configuration: {key}: expected grpc://HOST:PORT");
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port
                .parse()
                .with_context(|| format!("invalid configuration: {key}: bad port"))?;
            let addrs = match parse_ip_literal(host) {
                Some(ip) => vec![ip],
                None if online => tokio
                    .block_on(async {
                        microgateway::upstream::resolver()
                            .map_err(|e| anyhow::anyhow!("{e}"))?
                            .lookup_ip(host)
                            .await
                            .map_err(anyhow::Error::from)
                    })
                    .with_context(|| format!("{key}: cannot resolve {host}"))?
                    .iter()
                    .collect(),
                None => {
                    notes.push(format!("{key}: {host} not resolved (use --online)"));
                    continue;
                }
            };
            let addr = policy
                .check_addresses(&command, host, port, &addrs)
                .with_context(|| format!("invalid configuration: {key}"))?;
            if online {
                tokio
                    .block_on(async {
                        tokio::time::timeout(
                            std::time::Duration::from_secs(5),
                            tokio::net::TcpStream::connect(addr),
                        )
                        .await
                    })
                    .map_err(|_| anyhow::anyhow!("{key}: {addr} did not answer within 5 s"))?
                    .with_context(|| format!("{key}: cannot connect to {addr}"))?;
                notes.push(format!("{key}: {addr} reachable"));
            }
        } else if let Some(reference) = command.strip_prefix("oci://") {
            let settings = microgateway::oci::settings::OciSettings::from_config(&config.oci)?;
            let parsed =
                microgateway::oci::parse_reference(reference, &settings.allowed_registries)
                    .with_context(|| format!("invalid configuration: {key}"))?;
            if online {
                let store = microgateway::oci::OciStore::new(settings)?;
                let digest = tokio
                    .block_on(async {
                        tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            store
                                .client()
                                .fetch_manifest_digest(&parsed, &store.auth(&parsed)),
                        )
                        .await
                    })
                    .map_err(|_| anyhow::anyhow!("{key}: registry did not answer within 10 s"))?
                    .map_err(|e| {
                        let why = microgateway::oci::settings::describe_registry_error(
                            parsed.resolve_registry(),
                            &|n| std::env::var(n).ok(),
                            &e,
                        );
                        anyhow::anyhow!("{key}: cannot resolve {reference}: {why}")
                    })?;
                notes.push(format!("{key}: {reference} → {digest}"));
            }
        }
    }
    Ok(notes)
}

/// The effective plugin network policy, one line per part, each naming where it came
/// from: internal addresses (`PLUGIN_BLOCK_INTERNAL_URLS` wins over
/// `ALLOW_INTERNAL_NETWORK_ACCESS`, each over its `[plugin_runtime]` key) and the
/// `grpc://` allowlist entries (`PLUGIN_COMMAND_ALLOWLIST` or the file).
fn network_policy(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let runtime = &config.plugin_runtime;
    let set = |name: &str| env(name).map(|v| format!("{name}={}", v.trim()));
    let allow_from = set("ALLOW_INTERNAL_NETWORK_ACCESS").unwrap_or_else(|| {
        format!(
            "plugin_runtime.allow_internal_network_access = {}",
            runtime.allow_internal_network_access
        )
    });
    let internal = if runtime.block_internal_urls {
        let block_from = set("PLUGIN_BLOCK_INTERNAL_URLS")
            .unwrap_or_else(|| "plugin_runtime.block_internal_urls = true".into());
        let over = if runtime.allow_internal_network_access {
            format!(", which wins over {allow_from}")
        } else {
            String::new()
        };
        format!("blocked, even when allowlisted ({block_from}{over})")
    } else if runtime.allow_internal_network_access {
        format!("allowed ({allow_from})")
    } else {
        format!("refused unless allowlisted as grpc://CIDR or grpc://HOST ({allow_from})")
    };
    let from_env: Vec<String> = env("PLUGIN_COMMAND_ALLOWLIST")
        .map(|l| l.split(',').map(|e| e.trim().to_string()).collect())
        .unwrap_or_default();
    let grpc: Vec<String> = runtime
        .command_allowlist
        .iter()
        .filter(|e| e.starts_with("grpc://") || e.starts_with("grpcs://"))
        .map(|e| {
            let from = if from_env.contains(e) {
                "PLUGIN_COMMAND_ALLOWLIST"
            } else {
                "plugin_runtime.command_allowlist"
            };
            format!("{e} ({from})")
        })
        .collect();
    let grpc = if grpc.is_empty() {
        "none (any public address)".to_string()
    } else {
        format!("only {}", grpc.join(", "))
    };
    vec![
        format!("plugin network policy: internal addresses {internal}"),
        format!("plugin network policy: grpc:// targets {grpc}"),
    ]
}
