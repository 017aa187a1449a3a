//! Logging and traces for binaries: `tracing` to stderr, as text or JSON, filtered by `RUST_LOG`
//! or config; and, when `telemetry.otlp_endpoint` is set, OpenTelemetry spans exported over
//! OTLP/HTTP (protobuf) to a collector.
//!
//! Traces off costs the request path nothing: no span middleware is installed, and the spans of
//! the store's statements and the gateway's upstream calls are at level TRACE under [`TARGET`],
//! which the log filter disables (a static level compare at each call site). With traces on, the
//! filter lets [`TARGET`] through at every level, and the OpenTelemetry layer turns those spans
//! into OTLP spans; JSON log lines inside one carry its `trace_id` and `span_id`.

mod export;
pub mod json;
pub mod propagation;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// The target of every span meant for traces (store statements, requests, upstream calls). Level
/// TRACE, so that the log filter turns them off unless traces are on.
pub const TARGET: &str = "sallyport::trace";

/// The name of the span a server opens per request (`propagation::request_span`): the root of a
/// trace, or the child of a trusted caller's.
pub const REQUEST_SPAN: &str = "request";

/// Installs the global subscriber for logs alone, once; later calls (tests, `sallyport up`) are no-ops.
pub fn init(settings: &LogSettings) {
    let _ = install(settings, None);
}

/// What [`init_traced`] started: flush it with [`Traces::shutdown`] before the process exits, or
/// the spans of the last seconds are lost.
#[must_use = "shut it down before exiting, or the last spans are lost"]
pub struct Traces(Option<SdkTracerProvider>);

impl Traces {
    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Sends what is queued now (blocking, as [`Traces::shutdown`]).
    pub fn flush(&self) {
        if let Some(provider) = &self.0
            && let Err(e) = provider.force_flush()
        {
            tracing::warn!(error = %e, "traces: spans could not be sent");
        }
    }

    /// Sends what is still queued and stops the exporter (blocking: call it off the async runtime,
    /// e.g. in `spawn_blocking`).
    pub fn shutdown(self) {
        if let Some(provider) = self.0
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "traces: the last spans could not be sent");
        }
    }
}

/// Installs the global subscriber once: logs as [`init`], and with `telemetry.otlp_endpoint` an
/// OpenTelemetry layer exporting this process's spans as `service` (the resource's
/// `service.name`). When a subscriber is already installed, nothing changes and no exporter starts.
pub fn init_traced(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    service: &str,
) -> Result<Traces, Box<dyn std::error::Error + Send + Sync>> {
    let provider = match &telemetry.otlp_endpoint {
        Some(endpoint) => Some(export::provider(endpoint, telemetry.sample_ratio, service)?),
        None => None,
    };
    match install(log, provider.as_ref()) {
        Ok(()) => {
            if let Some(endpoint) = &telemetry.otlp_endpoint {
                tracing::info!(endpoint = %endpoint.base(), service, "traces: spans go to the OTLP collector");
            }
            Ok(Traces(provider))
        }
        Err(_) => {
            // someone else's subscriber (a test's): ours would never see a span
            if let Some(p) = provider {
                let _ = p.shutdown();
            }
            Ok(Traces(None))
        }
    }
}

fn install(settings: &LogSettings, provider: Option<&SdkTracerProvider>) -> Result<(), TryInitError> {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    if provider.is_some()
        && let Ok(directive) = format!("{TARGET}=trace").parse()
    {
        filter = filter.add_directive(directive);
    }
    // colours only for a person at a terminal, not in a file or a log collector
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    subscriber(settings.format, ansi, provider, std::io::stderr).with(filter).try_init()
}

/// The layers below the filter: the OpenTelemetry layer when there is a provider, and the log
/// lines (text or JSON with trace ids) written to `writer`.
fn subscriber<W>(
    format: LogFormat,
    ansi: bool,
    provider: Option<&SdkTracerProvider>,
    writer: W,
) -> impl tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let otel = provider.map(|p| {
        tracing_opentelemetry::layer().with_tracer(p.tracer("sallyport")).with_filter(
            tracing_subscriber::filter::dynamic_filter_fn(|meta, cx| {
                if meta.is_span() {
                    // a trace starts at a request: a statement of a background task (the key
                    // reload every few seconds) is no trace of its own
                    meta.target() == TARGET && (meta.name() == REQUEST_SPAN || cx.lookup_current().is_some())
                } else {
                    // log events become span events from warnings up; spans carry the rest
                    *meta.level() <= tracing::Level::WARN
                }
            }),
        )
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = match format {
        LogFormat::Json => fmt
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::WithTraceIds(tracing_subscriber::fmt::format().json()))
            .boxed(),
        LogFormat::Text => fmt.with_ansi(ansi).boxed(),
    };
    Registry::default().with(otel).with(fmt)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(lines: &Lines) -> Vec<serde_json::Value> {
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    /// Inside a traced request, a JSON line carries the trace's id and its span's id as top-level
    /// keys; outside any span it has neither, and stays the JSON it was.
    #[test]
    fn json_lines_inside_a_span_carry_its_trace_id() {
        let provider = SdkTracerProvider::builder().build();
        let out = Lines::default();
        let writer = out.clone();
        let subscriber = subscriber(LogFormat::Json, false, Some(&provider), move || writer.clone());
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("before");
            let span = tracing::trace_span!(target: TARGET, REQUEST_SPAN);
            json::remember_ids(&span);
            let _entered = span.enter();
            let statement = tracing::trace_span!(target: TARGET, "refresh_tokens.rotate");
            let _inner = statement.enter();
            tracing::warn!(status = 500, "inside");
            let cx = span.context();
            let ids = cx.span().span_context().clone();
            (ids.trace_id().to_string(), ids.span_id().to_string())
        });
        let lines = lines(&out);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
        assert_eq!(lines[0]["fields"]["message"], "before");
        assert_eq!(lines[1]["fields"]["message"], "inside");
        assert_eq!(lines[1]["fields"]["status"], 500);
        assert_eq!(trace_id.len(), 32);
        assert_eq!(lines[1]["trace_id"], trace_id.as_str());
        assert_eq!(lines[1]["span_id"], span_id.as_str());
    }

    /// Without a provider (traces off) the trace spans are off too: no trace id in any line.
    #[test]
    fn without_traces_json_lines_have_no_trace_id() {
        let out = Lines::default();
        let writer = out.clone();
        let subscriber = subscriber(LogFormat::Json, false, None, move || writer.clone()).with(EnvFilter::new("info"));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::trace_span!(target: TARGET, REQUEST_SPAN);
            assert!(span.is_disabled(), "the filter turns trace spans off");
            let _entered = span.enter();
            tracing::warn!("inside");
        });
        let lines = lines(&out);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
    }
}
