//! The `microgateway` command line: run the gateway, or check a configuration.

mod check_cmd;
mod plugin_cmd;

use anyhow::Context;
use clap::{Parser, Subcommand};
use microgateway::Config;
use std::path::PathBuf;

/// Embedded edge microgateway for LLM and API traffic.
///
/// Without a subcommand it runs the gateway. Configuration comes from the default
/// compiled into the binary, then `--config FILE`, then environment variables
/// `MICROGATEWAY_<SECTION>__<KEY>` (for example `MICROGATEWAY_SERVER__LISTEN=0.0.0.0:9000`).
/// Version, commit and what this build contains.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("MICROGATEWAY_GIT_HASH"),
    ")\nfeatures: http1 http2 tls-rustls-ring plugins-builtin plugins-file plugins-grpc plugins-oci cosign-p256 hickory-dns llm-openai llm-anthropic admin-api sd-notify"
);

#[derive(Parser, Debug)]
#[command(name = "microgateway", version = VERSION, about, long_about)]
struct Cli {
    /// TOML configuration file layered over the embedded default.
    #[arg(long, short, global = true, env = "MICROGATEWAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the configuration and plugin references (paths, allowlists, registries)
    /// and exit: 0 when valid, 1 with the offending key otherwise.
    Check {
        /// Also resolve and connect to grpc:// plugins and resolve oci:// references.
        #[arg(long)]
        online: bool,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Package, publish, sign, pull and verify OCI plugins.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The one chain printer, as for logs and API bodies: each cause once.
            eprintln!("error: {}", microgateway::error::chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Plugin(command) => plugin_cmd::run(command, cli.config.as_deref()),
        Command::DefaultConfig => {
            print!("{}", microgateway::config::EMBEDDED_DEFAULT);
            Ok(())
        }
        Command::Check { online } => {
            let (config, resolved) = Config::load_resolved(cli.config.as_deref())?;
            for note in check_cmd::run(&config, &resolved, online)? {
                println!("{note}");
            }
            println!(
                "configuration OK: {} upstream(s), {} route(s), {} plugin(s), proxy on {}, admin on {}",
                config.upstreams.len(),
                config.routes.len(),
                config.plugins.len(),
                config.server.listen,
                config.admin.listen
            );
            Ok(())
        }
        Command::Run => {
            let config = Config::load(cli.config.as_deref())?;
            microgateway::logging::init(&config.log);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(serve(config, cli.config.clone()))
        }
    }
}

async fn serve(config: Config, path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Handlers are installed before anything can signal readiness: a SIGHUP or SIGTERM
    // arriving right after READY=1 must reload or drain, not kill the process.
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let registry = microgateway::loader::Registry::with_builtins();
    let gateway = microgateway::server::start_full(config, registry, path).await?;
    let manager = gateway.manager().clone();
    #[expect(
        clippy::disallowed_methods,
        reason = "the SIGHUP loop lives as long as the process; nothing joins it"
    )]
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading plugins from the configuration file");
            microgateway::sdnotify::reloading();
            match manager.reload_config_file().await {
                Ok(()) => tracing::info!("plugins reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP"),
            }
            microgateway::sdnotify::notify("READY=1");
        }
    });
    microgateway::sdnotify::notify(&format!(
        "READY=1\nSTATUS=proxy on {}, admin on {}",
        gateway.proxy_addr, gateway.admin_addr
    ));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutdown signal received; draining (send the signal again to stop at once)");
    microgateway::sdnotify::notify("STOPPING=1");
    gateway.shutdown();
    tokio::select! {
        _ = gateway.wait() => {}
        _ = term.recv() => tracing::warn!("second signal: exiting without waiting for in-flight requests"),
        _ = int.recv() => tracing::warn!("second signal: exiting without waiting for in-flight requests"),
    }
    Ok(())
}
