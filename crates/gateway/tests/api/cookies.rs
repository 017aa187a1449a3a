//! Sallyport's cookies stay home: an upstream route neither receives the session (or the pre-login
//! cookie) nor sets one; the authorization server's own services get them, and other cookies pass.

use reqwest::StatusCode;
use serde_json::Value;

use super::support::Stack;

const COOKIES: &str = "theme=dark; sallyport_session=spss_stolen; sallyport_session_login=abc; \
                       __Secure-sallyport_session=spss_stolen2; lang=en";

async fn seen_cookies(s: &Stack, path: &str, token: Option<&str>) -> Vec<String> {
    let mut req = s.http.get(s.url(path)).header("cookie", COOKIES);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let seen: Value = res.json().await.expect("json");
    seen["headers"]["cookie"]
        .as_array()
        .map(|v| v.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn upstreams_never_receive_sallyports_cookies() {
    let s = Stack::start().await;
    // a public route and a protected one: neither upstream learns the session
    assert_eq!(seen_cookies(&s, "/public/x", None).await, ["theme=dark; lang=en"]);
    assert_eq!(seen_cookies(&s, "/mcp/x", Some(&s.token())).await, ["theme=dark; lang=en"]);
    // the authorization server's services are Sallyport: they get what the browser sent
    assert_eq!(seen_cookies(&s, "/oauth2/authorize", None).await, [COOKIES]);
    // a request that carries only Sallyport's cookies reaches the upstream without any
    let res =
        s.http.get(s.url("/public/x")).header("cookie", "sallyport_session=spss_x").send().await.expect("request");
    let seen: Value = res.json().await.expect("json");
    assert!(seen["headers"].get("cookie").is_none(), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_cannot_plant_a_session() {
    let s = Stack::start().await;
    let res = s.http.get(s.url("/public/set-cookies")).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let set: Vec<&str> = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii")).collect();
    assert_eq!(set, ["upstream_pref=1; Path=/"], "only the upstream's own cookie passes");
}
