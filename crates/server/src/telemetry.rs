//! Logging setup for binaries: `tracing` to stderr, as text or JSON, filtered by `RUST_LOG` or config.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once; later calls (tests, `sallyport up`) are no-ops.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    // colours only for a person at a terminal, not in a file or a log collector
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if settings.format == LogFormat::Json { builder.json().try_init() } else { builder.try_init() };
}
