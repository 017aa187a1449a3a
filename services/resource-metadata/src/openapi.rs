//! The OpenAPI 3.1 document of the authorization server's HTTP interface, served at
//! `{issuer}/oauth2/openapi.json`.
//!
//! The document is generated from the handlers' request and response types and their path
//! annotations (`utoipa`) in every service; only `sallyport`, which assembles the services, sees
//! them all, so it writes `openapi.json` beside this crate and a test there fails when the file
//! differs from what the code generates. This service embeds that file and fills in the issuer.

use serde_json::{Value, json};
use server::config::Issuer;

/// The generated document, before the issuer is known (`crates/sallyport/src/openapi.rs`).
pub const GENERATED: &str = include_str!("../openapi.json");

/// Where the document is served, under the issuer's path (the gateway forwards it to this service).
pub const PATH: &str = "/oauth2/openapi.json";

/// The document for `issuer`: its servers are the issuer, and the paths that live at the origin's
/// root whatever the issuer's path (the well-known documents, the health endpoints) say so; the
/// authorization-server metadata's path gets the issuer's path appended (RFC 8414 §3.1).
pub fn for_issuer(issuer: &Issuer) -> Result<Value, serde_json::Error> {
    let mut doc: Value = serde_json::from_str(GENERATED)?;
    doc["servers"] = json!([{"url": issuer.to_string(), "description": "the issuer"}]);
    if issuer.path().is_empty() {
        return Ok(doc);
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let at_root: Vec<String> = paths.keys().filter(|p| !p.starts_with("/oauth2/")).cloned().collect();
        for path in at_root {
            let Some(mut item) = paths.remove(&path) else { continue };
            item["servers"] = json!([{"url": issuer.origin(), "description": "the issuer's origin"}]);
            let path = if path == "/.well-known/oauth-authorization-server" { path + issuer.path() } else { path };
            paths.insert(path, item);
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_the_issuer() {
        let issuer = Issuer::parse("https://auth.example").expect("issuer");
        let doc = for_issuer(&issuer).expect("document");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "https://auth.example");
        assert!(doc["paths"]["/.well-known/oauth-authorization-server"].is_object());
        assert!(doc["paths"]["/oauth2/token"].get("servers").is_none());
    }

    #[test]
    fn an_issuer_path_moves_the_root_paths_to_the_origin() {
        let issuer = Issuer::parse("https://auth.example/tenant").expect("issuer");
        let doc = for_issuer(&issuer).expect("document");
        assert_eq!(doc["servers"][0]["url"], "https://auth.example/tenant");
        let paths = &doc["paths"];
        assert!(paths.get("/.well-known/oauth-authorization-server").is_none());
        let metadata = &paths["/.well-known/oauth-authorization-server/tenant"];
        assert_eq!(metadata["servers"][0]["url"], "https://auth.example");
        assert_eq!(paths["/healthz"]["servers"][0]["url"], "https://auth.example");
        assert!(paths["/oauth2/token"].get("servers").is_none());
    }
}
