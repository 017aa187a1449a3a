//! Conditional GETs: `ETag`, `If-None-Match` -> 304, and a `Cache-Control` max-age.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::documents::Document;

/// How long clients and proxies may keep a document.
const MAX_AGE: &str = "public, max-age=300";

/// RFC 9110 §13.1.2: `If-None-Match` matches when any listed tag (weak comparison) or `*` matches.
fn none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers().get_all(header::IF_NONE_MATCH).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    })
}

/// The document, or 304 when the client has it already.
pub fn respond(req: &HttpRequest, doc: &Document) -> HttpResponse {
    let not_modified = none_match(req, &doc.etag);
    let mut res = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static(MAX_AGE)));
    if let Ok(v) = HeaderValue::from_str(&doc.etag) {
        res.insert_header((header::ETAG, v));
    }
    if not_modified { res.finish() } else { res.content_type("application/json").body(doc.body.clone()) }
}
