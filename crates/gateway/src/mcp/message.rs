//! Reading a JSON-RPC request body of an MCP route: one message or a batch (JSON-RPC 2.0 §6,
//! MCP 2025-03-26), and of each message only what the policy and the audit need. Nothing is
//! rewritten: the body goes upstream byte for byte.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

/// One JSON-RPC message of the request, as far as the gateway cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `None` for a notification; a request's id comes back in any error the gateway answers.
    pub id: Option<Value>,
    pub method: String,
    /// `params.name` of `tools/call` and `prompts/get`, `params.uri` of `resources/read`.
    pub name: Option<String>,
}

impl Call {
    pub fn is_tool_call(&self) -> bool {
        self.method == "tools/call"
    }

    /// The tool a `tools/call` names.
    pub fn tool(&self) -> Option<&str> {
        if self.is_tool_call() { self.name.as_deref() } else { None }
    }
}

/// The messages of one request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub calls: Vec<Call>,
    pub batch: bool,
}

/// Why a body is not a JSON-RPC request the gateway can judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all: JSON-RPC -32700.
    NotJson,
    /// JSON, but not a request object (or a non-empty array of them): JSON-RPC -32600.
    Invalid(&'static str),
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<RawParams<'a>>,
}

#[derive(Deserialize)]
struct RawParams<'a> {
    #[serde(borrow, default)]
    name: Option<MaybeStr<'a>>,
    #[serde(borrow, default)]
    uri: Option<MaybeStr<'a>>,
}

/// A member that matters only when it is a string (`params.name` of a method the gateway does not
/// read may be anything); other values are skipped without being built.
enum MaybeStr<'a> {
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(MaybeStr::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(MaybeStr::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl Raw<'_> {
    /// Responses (no `method`) are messages a client sends back to server requests: passed on.
    fn into_call(self) -> Result<Option<Call>, ParseError> {
        let Some(method) = self.method else {
            return Ok(None);
        };
        let params = self.params;
        let name = match method.as_ref() {
            "tools/call" | "prompts/get" => params.and_then(|p| p.name),
            "resources/read" => params.and_then(|p| p.uri),
            _ => None,
        };
        let name = match name {
            Some(MaybeStr::Str(name)) => Some(name),
            Some(MaybeStr::Other) => return Err(ParseError::Invalid("params.name or params.uri is not a string")),
            None => None,
        };
        if method == "tools/call" && name.is_none() {
            return Err(ParseError::Invalid("tools/call without params.name"));
        }
        Ok(Some(Call { id: self.id, method: method.into_owned(), name: name.map(Cow::into_owned) }))
    }
}

/// Parses a request body. `params` other than `name`/`uri` are skipped, not built.
pub fn parse(body: &[u8]) -> Result<Request, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let (raws, batch) = match first {
        Some(b'[') => {
            let raws: Vec<Raw<'_>> = serde_json::from_slice(body).map_err(|e| shape(&e))?;
            if raws.is_empty() {
                return Err(ParseError::Invalid("an empty batch"));
            }
            (raws, true)
        }
        Some(b'{') => (vec![serde_json::from_slice::<Raw<'_>>(body).map_err(|e| shape(&e))?], false),
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
            return Err(ParseError::Invalid("not a JSON-RPC message"));
        }
        _ => return Err(ParseError::NotJson),
    };
    let mut calls = Vec::with_capacity(raws.len());
    for raw in raws {
        if let Some(call) = raw.into_call()? {
            calls.push(call);
        }
    }
    Ok(Request { calls, batch })
}

fn shape(e: &serde_json::Error) -> ParseError {
    if e.is_data() { ParseError::Invalid("not a JSON-RPC message") } else { ParseError::NotJson }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_messages() {
        let r = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":[1,{"a":"b"}]}}}"#)
            .expect("parses");
        assert!(!r.batch);
        assert_eq!(
            r.calls,
            vec![Call { id: Some(json!(7)), method: "tools/call".into(), name: Some("search".into()) }]
        );
        assert_eq!(r.calls[0].tool(), Some("search"));
        let r = parse(br#" {"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///x\u0041"}}"#)
            .expect("parses");
        assert_eq!(r.calls[0].name.as_deref(), Some("file:///xA"), "escapes are decoded");
        assert_eq!(r.calls[0].tool(), None);
        let r = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).expect("parses");
        assert_eq!(r.calls[0].id, None);
        let r = parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).expect("a response");
        assert!(r.calls.is_empty());
    }

    #[test]
    fn batches() {
        let r = parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}},{"jsonrpc":"2.0","method":"notifications/progress","params":{"name":7}}]"#,
        );
        let r = r.expect("parses");
        assert!(r.batch);
        assert_eq!(r.calls.len(), 3);
        assert_eq!(r.calls[1].tool(), Some("x"));
        assert_eq!(r.calls[2].name, None, "a notification's params are not read");
        assert_eq!(parse(b"[]"), Err(ParseError::Invalid("an empty batch")));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(b""), Err(ParseError::NotJson));
        assert_eq!(parse(b"{\"method\":"), Err(ParseError::NotJson));
        assert_eq!(parse(b"42"), Err(ParseError::Invalid("not a JSON-RPC message")));
        assert_eq!(parse(br#"{"method":5}"#), Err(ParseError::Invalid("not a JSON-RPC message")));
        assert_eq!(
            parse(br#"{"id":1,"method":"tools/call"}"#),
            Err(ParseError::Invalid("tools/call without params.name"))
        );
        assert_eq!(
            parse(br#"{"id":1,"method":"tools/call","params":{"name":["a"]}}"#),
            Err(ParseError::Invalid("params.name or params.uri is not a string"))
        );
        // two readers of one body must not see two different calls
        assert_eq!(
            parse(br#"{"id":1,"method":"tools/list","method":"tools/call","params":{"name":"a"}}"#),
            Err(ParseError::Invalid("not a JSON-RPC message"))
        );
        assert_eq!(
            parse(br#"{"id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#),
            Err(ParseError::Invalid("not a JSON-RPC message"))
        );
        assert_eq!(parse(b"[1]"), Err(ParseError::Invalid("not a JSON-RPC message")));
    }
}
