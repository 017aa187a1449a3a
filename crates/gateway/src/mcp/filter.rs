//! Filtering `tools/list` answers: tools the caller may not call are removed from the response
//! to the ids the client sent `tools/list` with, whether the upstream answers with one JSON
//! document or with Server-Sent Events. Events are rewritten one by one as they complete, so a
//! stream stays a stream; every other event passes byte for byte.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// Largest JSON answer or single event the filter holds; beyond it the answer is refused.
pub const MAX_HELD: usize = 16 * 1024 * 1024;

/// Which responses to filter and which tools to keep.
pub struct ToolsFilter<K> {
    /// The ids of the client's `tools/list` requests.
    pub ids: Vec<Value>,
    pub keep: K,
}

impl<K: Fn(&str) -> bool> ToolsFilter<K> {
    /// Filters one JSON-RPC message in place; `true` when it was a targeted response.
    fn message(&self, msg: &mut Value) -> bool {
        let targeted = msg.get("id").is_some_and(|id| self.ids.contains(id));
        let Some(tools) = msg.get_mut("result").and_then(|r| r.get_mut("tools")).and_then(Value::as_array_mut) else {
            return false;
        };
        if !targeted {
            return false;
        }
        // a tool without a name cannot be judged: it is not shown
        tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(|n| (self.keep)(n)));
        true
    }

    /// Filters a JSON body (one response or a batch of them); `None` when it is not JSON.
    pub fn json(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut doc: Value = serde_json::from_slice(body).ok()?;
        let changed = match &mut doc {
            Value::Array(items) => items.iter_mut().fold(false, |acc, m| self.message(m) | acc),
            msg => self.message(msg),
        };
        if changed { serde_json::to_vec(&doc).ok() } else { Some(body.to_vec()) }
    }

    /// Rewrites one complete SSE event: `raw` is its lines without the blank line that ends it,
    /// `whole` the event as received, passed on when it needs no change.
    fn event(&self, raw: &[u8], whole: &[u8], out: &mut BytesMut) {
        let text = String::from_utf8_lossy(raw);
        let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
        let data: Vec<&str> =
            lines.iter().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
        if !data.is_empty()
            && let Ok(mut msg) = serde_json::from_str::<Value>(&data.join("\n"))
            && self.message(&mut msg)
        {
            for line in lines.iter().filter(|l| !l.starts_with("data:")) {
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\n");
            }
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(msg.to_string().as_bytes());
            out.extend_from_slice(b"\n\n");
            return;
        }
        out.extend_from_slice(whole);
    }
}

/// An SSE stream being filtered: bytes in, complete (possibly rewritten) events out.
pub struct SseFilter<K> {
    filter: ToolsFilter<K>,
    held: BytesMut,
}

/// An event longer than [`MAX_HELD`].
#[derive(Debug)]
pub struct TooLong;

impl<K: Fn(&str) -> bool> SseFilter<K> {
    pub fn new(filter: ToolsFilter<K>) -> Self {
        Self { filter, held: BytesMut::new() }
    }

    /// Takes a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, TooLong> {
        self.held.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        while let Some((end, next)) = event_end(&self.held) {
            let event = self.held.split_to(next);
            self.filter.event(&event[..end], &event, &mut out);
        }
        if self.held.len() > MAX_HELD {
            return Err(TooLong);
        }
        Ok(out.freeze())
    }

    /// The end of the stream: an unterminated last event is still judged.
    pub fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if !self.held.iter().all(u8::is_ascii_whitespace) {
            let rest = self.held.split();
            self.filter.event(rest.strip_suffix(b"\n").unwrap_or(&rest), &rest, &mut out);
        }
        out.freeze()
    }
}

/// Where the first event in `buf` ends: (end of its lines, start of what follows). Lines end with
/// LF or CRLF; an empty line ends an event (WHATWG HTML, "Server-sent events").
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, b) in buf.iter().enumerate() {
        if *b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some((line_start.saturating_sub(1), i + 1));
            }
            line_start = i + 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter() -> ToolsFilter<impl Fn(&str) -> bool> {
        ToolsFilter { ids: vec![json!(2)], keep: |n: &str| n != "secret" }
    }

    const LIST: &str =
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo"},{"name":"secret"},{"title":"nameless"}]}}"#;

    #[test]
    fn json_answers() {
        let out = filter().json(LIST.as_bytes()).expect("json");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["result"]["tools"], json!([{"name":"echo"}]));
        let other = LIST.replace("\"id\":2", "\"id\":3");
        assert_eq!(filter().json(other.as_bytes()).expect("json"), other.as_bytes(), "other ids pass untouched");
        let batch = format!("[{LIST},{{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{{}}}}]");
        let v: Value = serde_json::from_slice(&filter().json(batch.as_bytes()).expect("json")).expect("json");
        assert_eq!(v[0]["result"]["tools"], json!([{"name":"echo"}]));
        assert_eq!(filter().json(b"not json"), None);
    }

    #[test]
    fn events_split_anywhere() {
        let stream = format!(
            "id: 1\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\nid: 2\r\ndata: {LIST}\r\n\r\n: keep-alive\n\n"
        );
        for cut in [1, 7, 40, 90, stream.len() - 1] {
            let mut f = SseFilter::new(filter());
            let mut out = Vec::new();
            out.extend_from_slice(&f.push(&stream.as_bytes()[..cut]).expect("push"));
            out.extend_from_slice(&f.push(&stream.as_bytes()[cut..]).expect("push"));
            out.extend_from_slice(&f.finish());
            let out = String::from_utf8(out).expect("utf8");
            assert!(
                out.starts_with(
                    "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
                ),
                "{out}"
            );
            assert!(out.contains("id: 2\ndata: {"), "{out}");
            assert!(!out.contains("secret") && out.contains("echo"), "{out}");
            assert!(out.ends_with(": keep-alive\n\n"), "{out}");
        }
    }

    #[test]
    fn an_unterminated_last_event_is_filtered_too() {
        let mut f = SseFilter::new(filter());
        assert!(f.push(format!("data: {LIST}\n").as_bytes()).expect("push").is_empty());
        let out = f.finish();
        assert!(!String::from_utf8_lossy(&out).contains("secret"));
    }
}
