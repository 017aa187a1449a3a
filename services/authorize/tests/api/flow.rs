//! The whole front channel: login, consent, code; remembered consent; prompt=consent; scope growth.

use chrono::TimeDelta;
use protocol::secret::SecretHash;
use store::codes::{self, Redemption};
use store::consents;

use super::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn login_consent_and_code() {
    let env = Env::new().await;
    let b = browser();
    let url = env.authorize_url(&format!("&resource={}&scope=mcp:tools+offline_access", enc(RESOURCE)));

    // not signed in: the authorization endpoint sends the browser to the login page
    let res = b.get(&url).send().await.expect("authorize");
    assert_eq!(res.status(), 302);
    let login = location(&res);
    let page = b.get(&login).send().await.expect("login page");
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    let csp = h.get("content-security-policy").expect("csp").to_str().expect("ascii").to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("form-action 'self'") && csp.contains("http://127.0.0.1:3000"), "{csp}");
    assert_eq!(h.get("x-frame-options").expect("xfo"), "DENY");
    assert_eq!(h.get("referrer-policy").expect("rp"), "no-referrer");
    assert_eq!(h.get("cache-control").expect("cc"), "no-store");
    assert!(h.get("content-type").expect("ct").to_str().expect("ascii").starts_with("text/html"));
    let html = page.text().await.expect("html");
    assert!(html.contains("Test Client") && !html.contains("<script"), "{html}");

    // signing in sets the session cookie and returns to the authorization endpoint
    let res = post_login(&env, &b, &html, USER, PASSWORD).await;
    assert_eq!(res.status(), 303);
    let cookies = set_cookies(&res);
    let session = cookies.iter().find(|c| c.starts_with("sallyport_session=spss_")).expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/oauth2"] {
        assert!(session.split("; ").any(|a| a == attr), "{session}");
    }
    assert!(!session.contains("Secure"), "http issuer: no Secure: {session}");
    let back = location(&res);
    assert!(back.starts_with(&format!("{}/oauth2/authorize?", env.issuer())), "{back}");

    // the consent page names the client, where it redirects, the resource and the scopes
    let res = b.get(&back).send().await.expect("consent page");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("x-frame-options").expect("xfo"), "DENY");
    let html = res.text().await.expect("html");
    for shown in ["Test Client", "client.example.org", "127.0.0.1", "Demo MCP", RESOURCE, "mcp:tools", "alice"] {
        assert!(html.contains(shown), "consent page lacks {shown}: {html}");
    }
    assert!(!html.contains("mcp:admin"), "only the requested scope is shown");
    assert!(html.contains("warning-self-registered") && html.contains("warning-loopback"), "{html}");

    // allow: a code at the redirect URI, with state and the exact issuer
    let res = decide(&env, &b, &html, "allow").await;
    assert_eq!(res.status(), 303);
    let to = location(&res);
    assert!(to.starts_with("http://127.0.0.1:3000/callback?code=spac_"), "{to}");
    let q = query(&to);
    assert_eq!(q["state"], "st&te");
    assert_eq!(q["iss"], env.issuer());
    let code = &q["code"];
    assert_eq!(code.len(), "spac_".len() + 43, "256 random bits");

    // the row the token service redeems
    let mut conn = env.db.conn().await;
    let Redemption::Fresh(row) =
        codes::redeem(&mut conn, SecretHash::of(code).as_bytes(), env.clock.now()).await.expect("redeem")
    else {
        panic!("the code is stored by its hash and fresh");
    };
    assert_eq!(row.client_id, env.client_id);
    assert_eq!(row.redirect_uri, REDIRECT);
    assert!(row.redirect_uri_sent);
    assert_eq!(row.code_challenge, CHALLENGE);
    assert_eq!(row.resources, vec![Some(RESOURCE.to_owned())]);
    assert_eq!(row.scope, "mcp:tools", "offline_access is never stored as scope");
    assert_eq!(row.expires_at - row.created_at, TimeDelta::seconds(60));
    assert!(row.auth_time <= row.created_at);
    assert_eq!(protocol::pkce::verify(Some(VERIFIER), &row.code_challenge), Ok(()));

    // remembered: the next request goes straight to the client with a new code
    let res = b.get(&url).send().await.expect("authorize again");
    assert_eq!(res.status(), 302);
    let again = location(&res);
    assert!(again.starts_with("http://127.0.0.1:3000/callback?code=spac_"), "{again}");
    assert_eq!(query(&again)["iss"], env.issuer());
    assert_ne!(query(&again)["code"], *code);

    // prompt=consent asks again; so does a request for more scope
    let res = b.get(format!("{url}&prompt=consent")).send().await.expect("prompt=consent");
    assert_eq!(res.status(), 200);
    assert!(res.text().await.expect("html").contains("consent-form"));
    let grown = env.authorize_url(&format!("&resource={}&scope=mcp:tools+mcp:admin", enc(RESOURCE)));
    let res = b.get(&grown).send().await.expect("more scope");
    assert_eq!(res.status(), 200, "scope grew: the consent page again");
    let html = res.text().await.expect("html");
    assert!(html.contains("mcp:admin"));
    // prompt=none cannot show it
    let res = b.get(format!("{grown}&prompt=none")).send().await.expect("prompt=none");
    assert_error_redirect(&env, &location(&res), "consent_required");

    // allowing the larger set remembers the union; the smaller request is still covered
    let res = decide(&env, &b, &html, "allow").await;
    assert!(location(&res).contains("code=spac_"));
    let user = store::users::find_by_username(&mut conn, USER).await.expect("q").expect("alice");
    let remembered = consents::find(&mut conn, user.id, &env.client_id, &[RESOURCE.to_owned()]).await.expect("q");
    assert_eq!(remembered.len(), 1);
    assert_eq!(remembered[0].scope_tokens().collect::<Vec<_>>(), vec!["mcp:admin", "mcp:tools"]);
    let res = b.get(format!("{grown}&prompt=none")).send().await.expect("covered now");
    assert!(location(&res).contains("code=spac_"), "{}", location(&res));

    // no resource and no scope: the only resource and the defaults
    let res = b.get(env.authorize_url("")).send().await.expect("defaults");
    assert_eq!(res.status(), 302, "the defaults (mcp:admin mcp:tools) are covered now");
    assert!(location(&res).contains("code=spac_"), "{}", location(&res));
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_redirect_on_another_port_is_accepted() {
    let env = Env::new().await;
    let b = browser();
    let other = "http://127.0.0.1:49999/callback";
    let url = env.authorize_url("").replace(&enc(REDIRECT), &enc(other));
    let html = consent_page(&env, &b, &url).await;
    assert!(html.contains("127.0.0.1"));
    let res = decide(&env, &b, &html, "allow").await;
    let to = location(&res);
    assert!(to.starts_with("http://127.0.0.1:49999/callback?code=spac_"), "{to}");
    let code = query(&to)["code"].clone();
    let mut conn = env.db.conn().await;
    let Redemption::Fresh(row) =
        codes::redeem(&mut conn, SecretHash::of(&code).as_bytes(), env.clock.now()).await.expect("redeem")
    else {
        panic!("fresh code");
    };
    assert_eq!(row.redirect_uri, other, "the code remembers where the browser went");
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_sends_access_denied() {
    let env = Env::new().await;
    let b = browser();
    let html = consent_page(&env, &b, &env.authorize_url("")).await;
    let res = decide(&env, &b, &html, "deny").await;
    assert_eq!(res.status(), 303);
    assert_error_redirect(&env, &location(&res), "access_denied");
    assert_eq!(env.count("authorization_codes").await, 0);
    assert_eq!(env.count("consents").await, 0, "nothing remembered");
    let res = decide(&env, &b, &html, "maybe").await;
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn post_to_the_authorization_endpoint() {
    let env = Env::new().await;
    let b = browser();
    let url = env.authorize_url("");
    let (endpoint, query) = url.split_once('?').expect("query");
    let res = b
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query.to_owned())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303, "RFC 6749 §3.1: POST works like GET");
    assert!(location(&res).contains("/oauth2/login?"));
    let res = b.post(endpoint).json(&serde_json::json!({})).send().await.expect("json");
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_session() {
    let env = Env::new().await;
    let b = browser();
    let url = env.authorize_url("");
    let html = consent_page(&env, &b, &url).await;
    assert_eq!(env.count("sessions").await, 1);
    // the logout form's token
    let start = html.find("id=\"logout-form\"").expect("logout form");
    let form = &html[start..];
    let token = field(form, "csrf_token").expect("token");
    let res = b
        .post(format!("{}/oauth2/logout", env.server.url))
        .form(&[("request", field(form, "request").expect("request")), ("csrf_token", "wrong".into())])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), 403);
    assert_eq!(env.count("sessions").await, 1);
    // no csrf_token at all is refused the same way (README: 403), be it a form without the field
    // or a POST without a form
    let without = b
        .post(format!("{}/oauth2/logout", env.server.url))
        .form(&[("request", field(form, "request").expect("request"))])
        .send()
        .await
        .expect("logout");
    assert_eq!(without.status(), 403);
    assert!(without.text().await.expect("page").contains("you are still signed in"));
    let empty = b.post(format!("{}/oauth2/logout", env.server.url)).send().await.expect("logout");
    assert_eq!(empty.status(), 403);
    assert_eq!(env.count("sessions").await, 1);
    let res = b
        .post(format!("{}/oauth2/logout", env.server.url))
        .form(&[("request", field(form, "request").expect("request")), ("csrf_token", token)])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), 303);
    assert!(location(&res).contains("/oauth2/login?"));
    assert_eq!(env.count("sessions").await, 0);
    let res = b.get(&url).send().await.expect("authorize");
    assert!(location(&res).contains("/oauth2/login?"), "signed out");
}

/// A request holds one pool connection at a time: with a pool of one, the whole flow still works
/// (a request that held one while waiting for another would deadlock when the pool runs dry).
#[tokio::test(flavor = "multi_thread")]
async fn one_pool_connection_is_enough() {
    let env = Env::with(|s| {
        s.database.pool_size = 1;
        s.database.acquire_timeout_ms = std::time::Duration::from_secs(2);
    })
    .await;
    let b = browser();
    let html = consent_page(&env, &b, &env.authorize_url("")).await;
    let res = decide(&env, &b, &html, "allow").await;
    assert!(location(&res).contains("code=spac_"));
    let res = b.get(env.authorize_url("")).send().await.expect("authorize");
    assert!(location(&res).contains("code=spac_"), "{}", location(&res));
}

/// A client ID metadata document: resolved, warned about as self-registered, granted like others,
/// but never approved by a remembered consent while it redirects to loopback.
#[tokio::test(flavor = "multi_thread")]
async fn metadata_document_client() {
    use actix_web::{HttpResponse, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let doc_url = format!("http://127.0.0.1:{}/client.json", listener.local_addr().expect("addr").port());
    let doc = serde_json::json!({
        "client_id": doc_url,
        "client_name": "Document Client",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    })
    .to_string();
    let _docs = testkit::spawn_on(listener, None, move |cfg: &mut web::ServiceConfig| {
        let doc = doc.clone();
        cfg.route(
            "/client.json",
            web::get().to(move || {
                let doc = doc.clone();
                async move { HttpResponse::Ok().content_type("application/json").body(doc) }
            }),
        );
    });
    let env = Env::new().await;
    let b = browser();
    let url = env.authorize_url("").replace(&enc(&env.client_id), &enc(&doc_url));
    let html = consent_page(&env, &b, &url).await;
    assert!(html.contains("Document Client") && html.contains("warning-self-registered"), "{html}");
    assert!(html.contains("published at <code>127.0.0.1</code>"), "{html}");
    let res = decide(&env, &b, &html, "allow").await;
    let to = location(&res);
    assert!(to.contains("code=spac_"), "{to}");
    let code = query(&to)["code"].clone();
    let mut conn = env.db.conn().await;
    let Redemption::Fresh(row) =
        codes::redeem(&mut conn, SecretHash::of(&code).as_bytes(), env.clock.now()).await.expect("redeem")
    else {
        panic!("fresh code");
    };
    assert_eq!(row.client_id, doc_url);
    // RFC 8252 §8.6: anyone can present a document's URL and listen on a loopback port, so the
    // remembered consent does not stand in for the user: the page again, and prompt=none fails
    let other_port = url.replace(&enc(REDIRECT), &enc("http://127.0.0.1:4444/callback"));
    let res = b.get(&other_port).send().await.expect("again");
    assert_eq!(res.status(), 200, "the consent page, not a code: {:?}", res.headers().get("location"));
    assert!(res.text().await.expect("html").contains("consent-form"));
    let res = b.get(format!("{url}&prompt=none")).send().await.expect("prompt=none");
    assert_error_redirect(&env, &location(&res), "consent_required");
}

/// RFC 8252 §8.6 (issue 13): a public client that registered itself, redirecting to loopback or a
/// private-use scheme, is asked every time: its id is no secret and any local program can listen
/// there. The same client with an https redirect keeps its remembered consent.
#[tokio::test(flavor = "multi_thread")]
async fn public_self_registered_client_is_asked_every_time_on_local_redirects() {
    let https = "https://app.example.org/cb";
    let env = Env::new().await;
    let scope = "mcp:tools mcp:admin";
    let public = add_client(
        &env.db.pool(),
        "Public",
        &[REDIRECT, "com.example.app:/cb", https],
        scope,
        protocol::client::ClientSource::Dynamic,
        "none",
    )
    .await;
    let b = browser();
    let url = env.authorize_url("").replace(&enc(&env.client_id), &enc(&public));
    let html = consent_page(&env, &b, &url).await;
    let res = decide(&env, &b, &html, "allow").await;
    assert!(location(&res).contains("code=spac_"), "{}", location(&res));
    assert_eq!(env.count("consents").await, 1, "the consent is remembered (for the https redirect)");

    for redirect in [REDIRECT, "http://127.0.0.1:4444/callback", "com.example.app:/cb"] {
        let again = url.replace(&enc(REDIRECT), &enc(redirect));
        let res = b.get(&again).send().await.expect("again");
        assert_eq!(res.status(), 200, "{redirect}: the consent page, not a code: {:?}", res.headers().get("location"));
        assert!(res.text().await.expect("html").contains("consent-form"));
    }
    let res = b.get(format!("{url}&prompt=none")).send().await.expect("prompt=none");
    assert_error_redirect(&env, &location(&res), "consent_required");

    // the same client and grant with its https redirect: remembered
    let to_https = url.replace(&enc(REDIRECT), &enc(https));
    let res = b.get(&to_https).send().await.expect("https");
    assert_eq!(res.status(), 302);
    assert!(location(&res).starts_with(&format!("{https}?code=spac_")), "{}", location(&res));

    // the confidential self-registered client of `Env` keeps its remembered consent on loopback
    let res = b.get(env.authorize_url("")).send().await.expect("signed in already");
    assert_eq!(res.status(), 200, "its consent page");
    decide(&env, &b, &res.text().await.expect("html"), "allow").await;
    let res = b.get(env.authorize_url("")).send().await.expect("remembered");
    assert!(location(&res).contains("code=spac_"), "{}", location(&res));
}
