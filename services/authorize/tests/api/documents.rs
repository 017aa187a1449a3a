//! Client ID metadata documents at the authorize endpoint: each fetch spends the client address's
//! budget (a cached document costs nothing), and a document that failed stays refused for a while
//! without being fetched again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use reqwest::StatusCode;

use super::support::{Env, REDIRECT, enc};

/// A document server that counts requests per path; `/missing.json` is a 404.
fn documents(hits: Arc<Mutex<HashMap<String, usize>>>) -> (testkit::TestServer, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let own = base.clone();
    let server = testkit::spawn_on(listener, None, move |cfg: &mut web::ServiceConfig| {
        let (hits, own) = (Arc::clone(&hits), own.clone());
        // `serve` installs its own default service: a scope catches every path first
        cfg.service(web::scope("").default_service(web::to(move |req: HttpRequest| {
            let (hits, own) = (Arc::clone(&hits), own.clone());
            async move {
                let path = req.path().to_owned();
                *hits.lock().expect("lock").entry(path.clone()).or_default() += 1;
                if path == "/missing.json" {
                    return HttpResponse::NotFound().finish();
                }
                HttpResponse::Ok().json(serde_json::json!({
                    "client_id": format!("{own}{path}"),
                    "client_name": "Document Client",
                    "redirect_uris": [REDIRECT],
                    "token_endpoint_auth_method": "none",
                }))
            }
        })));
    });
    (server, base)
}

#[tokio::test(flavor = "multi_thread")]
async fn fetches_are_budgeted_per_client_and_failures_are_cached() {
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let (_server, base) = documents(Arc::clone(&hits));
    let env = Env::with(|s| {
        s.trust_forwarded_for = true;
        s.metadata_documents.fetches_per_ip_per_minute = 2;
        s.metadata_documents.failure_cache_secs = std::time::Duration::from_secs(30);
    })
    .await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let hit = |path: &str| hits.lock().expect("lock").get(path).copied().unwrap_or(0);
    let ask = |doc: &str, ip: &'static str| {
        let url = env.authorize_url("").replace(&enc(&env.client_id), &enc(&format!("{base}{doc}")));
        http.get(url).header("x-sallyport-client-ip", ip).send()
    };

    // a document that failed is refused from the cache until failure_cache_secs have passed
    assert_eq!(ask("/missing.json", "192.0.2.1").await.expect("r").status(), StatusCode::BAD_REQUEST);
    assert_eq!(ask("/missing.json", "192.0.2.1").await.expect("r").status(), StatusCode::BAD_REQUEST);
    assert_eq!(ask("/missing.json", "192.0.2.9").await.expect("r").status(), StatusCode::BAD_REQUEST);
    assert_eq!(hit("/missing.json"), 1, "fetched once");
    env.clock.advance(31);
    assert_eq!(ask("/missing.json", "192.0.2.1").await.expect("r").status(), StatusCode::BAD_REQUEST);
    assert_eq!(hit("/missing.json"), 2, "fetched again once the failure expired");

    // two fetches a minute per client address; cached documents cost nothing
    assert_eq!(ask("/a.json", "192.0.2.2").await.expect("r").status(), StatusCode::FOUND, "to the login page");
    assert_eq!(ask("/b.json", "192.0.2.2").await.expect("r").status(), StatusCode::FOUND);
    assert_eq!(ask("/a.json", "192.0.2.2").await.expect("r").status(), StatusCode::FOUND, "from the cache");
    let res = ask("/c.json", "192.0.2.2").await.expect("r");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(hit("/c.json"), 0, "no fetch beyond the budget");
    assert_eq!(ask("/c.json", "192.0.2.3").await.expect("r").status(), StatusCode::FOUND, "another client");
    assert_eq!((hit("/a.json"), hit("/b.json"), hit("/c.json")), (1, 1, 1));
}
