//! Tracing subscriber setup: text or JSON lines on stderr, filtered by `log.level`.
//!
//! `RUST_LOG`, when set, takes precedence over the configured level. Text lines are
//! coloured only when stderr is a terminal and `NO_COLOR` is unset.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// ANSI colours only on a terminal, and never when `NO_COLOR` is set to anything
/// non-empty (<https://no-color.org>).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber; later calls (as in tests) are ignored.
pub fn init(config: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A subscriber already installed (tests, embedding programs) is not an error.
    drop(result);
}
