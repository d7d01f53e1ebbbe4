//! telemetry: the tracing subscriber (env filter; JSON lines, or text on a
//! terminal).

use crate::config::LogConfig;
use std::io::IsTerminal;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber; `RUST_LOG` overrides the configured filter.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    let json = match cfg.format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}
