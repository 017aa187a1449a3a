//! JSON log lines that name the trace they belong to: the `tracing-subscriber` JSON line, with
//! `trace_id` and `span_id` of the request being served (W3C hex, as a trace viewer shows and
//! searches them) added as top-level keys, so a log search and a trace link both ways.

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The ids of a request span, kept in its extensions for the log lines written inside it.
#[derive(Debug, Clone, Copy)]
struct TraceIds {
    trace_id: TraceId,
    span_id: SpanId,
}

/// Remembers the OpenTelemetry ids of `span` (a request span, once its parent is set) for the
/// log lines written inside it; nothing when it is not traced.
pub fn remember_ids(span: &tracing::Span) {
    // the context first: the OpenTelemetry layer locks the extensions to build it
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    if !ids.is_valid() {
        return;
    }
    span.with_subscriber(|(id, dispatch)| {
        if let Some(found) = dispatch.downcast_ref::<Registry>().and_then(|registry| registry.span(id)) {
            found.extensions_mut().insert(TraceIds { trace_id: ids.trace_id(), span_id: ids.span_id() });
        }
    });
}

pub struct WithTraceIds(pub Format<Json>);

impl<S, N> FormatEvent<S, N> for WithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let ids = ctx
            .lookup_current()
            .and_then(|current| current.scope().find_map(|span| span.extensions().get::<TraceIds>().copied()));
        let Some(TraceIds { trace_id, span_id }) = ids else { return self.0.format_event(ctx, writer, event) };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // the JSON formatter writes one object and a newline: the ids become its last keys
        match line.trim_end().strip_suffix('}') {
            Some(object) => writeln!(writer, r#"{object},"trace_id":"{trace_id}","span_id":"{span_id}"}}"#),
            None => writer.write_str(&line),
        }
    }
}
