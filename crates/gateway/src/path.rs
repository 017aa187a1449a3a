//! One canonical path. The gateway chooses a route by comparing the request path byte for byte
//! with its prefixes and forwards that very path; an upstream then decodes it its own way. Where
//! decoders disagree, the route checked is not the resource served: `/%6dcp` is `/mcp` after
//! RFC 3986 §6.2.2.2 normalisation, `//mcp` after slash merging, `/x/..;/mcp` for a servlet
//! container, `/mcp/..%2f` for a decoder that splits after decoding. A path whose meaning could
//! change in any decoder is refused before a route is chosen, so that what was matched is what
//! every upstream serves.

/// Why a path is not canonical, or `None` when it is.
pub fn non_canonical(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("the path must start with /");
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Some("the path contains a backslash"),
            // RFC 3986 §3.3 segment parameters: servlet containers drop `;...` before matching
            b';' => return Some("the path contains ; parameters"),
            b'%' => {
                let decoded = match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => (h << 4) | l,
                    _ => return Some("the path contains a malformed percent-encoding"),
                };
                if let Some(why) = ambiguous_octet(decoded) {
                    return Some(why);
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let mut segments = path[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => return Some("the path contains dot segments"),
            // a trailing slash is a path of its own; an empty segment elsewhere is `//`
            "" if segments.peek().is_some() => return Some("the path contains an empty segment (//)"),
            _ => {}
        }
    }
    None
}

/// A percent-encoded octet whose decoding changes how the path is split or matched.
fn ambiguous_octet(octet: u8) -> Option<&'static str> {
    match octet {
        // RFC 3986 §2.3: unreserved characters are equivalent encoded or not, so `%6d` is `m`
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
            Some("the path percent-encodes an unreserved character")
        }
        b'/' | b'\\' => Some("the path contains an encoded slash or backslash"),
        b';' => Some("the path contains encoded ; parameters"),
        0 => Some("the path contains an encoded NUL"),
        _ => None,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass() {
        for ok in [
            "/",
            "/mcp",
            "/mcp/",
            "/mcp/a.b",
            "/mcp/..a",
            "/mcp/a..",
            "/mcp/.well-known/x",
            "/mcp/a%20b",
            "/mcp/%C3%A9t%C3%A9",
            "/mcp/%3A%40%21",
            "/mcp/a%25b",
            "/oauth2/register/abc-DEF_123~",
        ] {
            assert_eq!(non_canonical(ok), None, "{ok}");
        }
    }

    #[test]
    fn decoder_dependent_paths_are_refused() {
        for bad in [
            "",
            "*",
            "mcp",
            "/%6dcp",
            "/%6Dcp",
            "/m%63p",
            "/mcp%2F",
            "/mcp/..%2f",
            "/mcp%2fadmin",
            "/mcp%5cadmin",
            "/mcp\\admin",
            "/x/..;/mcp",
            "/mcp;jsessionid=1",
            "/mcp%3bx",
            "//mcp",
            "/public//mcp",
            "/x/../mcp",
            "/x/./mcp",
            "/mcp/..",
            "/mcp/.",
            "/x/%2e%2e/mcp",
            "/x/%2E./mcp",
            "/x/.%2e/mcp",
            "/mcp%00",
            "/mcp%",
            "/mcp%4",
            "/mcp%zz",
        ] {
            assert!(non_canonical(bad).is_some(), "{bad} must be refused");
        }
    }
}
