//! `federated`: the whole authorization code flow with a sign-in at an OpenID provider, per
//! iteration, as a browser without a Sallyport session but signed in at its company's provider
//! does it: `GET /oauth2/authorize` -> 302 to the sign-in page; the page; its "Sign in with" button
//! posted -> 303 to the provider; the provider's authorization endpoint -> 302 back with a code;
//! the callback (Sallyport exchanges the code at the provider's token endpoint, validates the ID
//! token, admits and signs the user in) -> 303 to the pending request; `GET /oauth2/authorize` ->
//! 302 with a code (consent remembered: given once per user, untimed); `POST /oauth2/token` -> 200.
//!
//! The provider is the bench's own (`testkit::oidc`, in this process, single sign-on: it answers
//! at once). Its share of a flow is reported beside the row: the browser's wait on its
//! authorization endpoint plus its time serving Sallyport's requests (token endpoint, keys), as it
//! measures them; the rest of the flow is Sallyport's (and the browser's, which is the bench).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderValue, LOCATION};
use testkit::forms;
use testkit::oidc::{BusySnapshot, OpenIdProvider, SESSION_COOKIE};
use url::Url;

use super::oauth::{Pkce, PublicClient, authorize_base, code_from, register_public, with_challenge};
use super::{Bench, run_once};
use crate::client::{CookieJar, transport, unexpected};
use crate::endpoints::Endpoints;
use crate::report::{FlowSplit, Row};
use crate::runner::Worker;

/// The provider's `id` in the stack's `[[login.providers]]` (the button's value).
pub const PROVIDER_ID: &str = "bench-op";

/// One browser, signed in at the provider as its own user.
struct FederatedFlow {
    http: reqwest::Client,
    ep: Endpoints,
    /// The authorization request without challenge and state.
    base: String,
    client: PublicClient,
    resource: String,
    provider: Url,
    provider_cookie: HeaderValue,
    counter: u64,
    /// Allow on the consent page when it is shown (the untimed first flow of each user).
    consent: bool,
    /// Summed over every iteration that completed: the whole flow, and the browser's wait on the
    /// provider within it.
    flows: u64,
    flow_time: Duration,
    at_provider: Duration,
}

impl Worker for FederatedFlow {
    async fn call(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let waited = self.flow().await?;
        self.flows += 1;
        self.flow_time += started.elapsed();
        self.at_provider += waited;
        Ok(())
    }
}

/// A response's `Location`, resolved against the request's URL.
fn next(url: &Url, res: &reqwest::Response, method: &str) -> Result<String, String> {
    res.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: {} without Location", crate::client::what(method, url), res.status().as_u16()))
}

impl FederatedFlow {
    /// One flow; the time the browser waited on the provider.
    async fn flow(&mut self) -> Result<Duration, String> {
        self.counter += 1;
        let pkce = Pkce::new();
        let state = format!("f{}", self.counter);
        let mut jar = CookieJar::default();

        let url = Url::parse(&with_challenge(&self.base, &pkce.challenge, &state)).map_err(|e| e.to_string())?;
        let res = self.get(&url, &jar).await?;
        jar.absorb(res.headers());
        if res.status() != StatusCode::FOUND {
            return Err(unexpected("GET", &url, res).await);
        }
        let login = self.follow(&url, &next(&url, &res, "GET")?)?;

        let res = self.get(&login, &jar).await?;
        jar.absorb(res.headers());
        if res.status() != StatusCode::OK {
            return Err(unexpected("GET", &login, res).await);
        }
        let html = res.text().await.map_err(|e| transport("GET", &login, &e))?;
        let form = forms::parse(&html)
            .into_iter()
            .find(|f| f.has_button("provider", PROVIDER_ID))
            .ok_or_else(|| format!("GET {}: no button for the provider {PROVIDER_ID}", login.path()))?;
        let action = self.follow(&login, &form.action)?;
        let fields = form.submission(&[], Some(("provider", PROVIDER_ID)));
        let res = self.send(self.http.post(action.clone()).form(&fields), &jar, "POST", &action).await?;
        jar.absorb(res.headers());
        if res.status() != StatusCode::SEE_OTHER {
            return Err(unexpected("POST", &action, res).await);
        }
        let at_provider = Url::parse(&next(&action, &res, "POST")?).map_err(|e| e.to_string())?;
        if at_provider.origin() != self.provider.origin() {
            return Err(format!("POST {}: sent elsewhere than the provider", action.path()));
        }

        // at the provider, with its session cookie only
        let asked = Instant::now();
        let res = self
            .http
            .get(at_provider.clone())
            .header(COOKIE, self.provider_cookie.clone())
            .send()
            .await
            .map_err(|e| transport("GET", &at_provider, &e))?;
        let waited = asked.elapsed();
        if res.status() != StatusCode::FOUND {
            return Err(unexpected("GET", &at_provider, res).await);
        }
        let callback = self.follow(&at_provider, &next(&at_provider, &res, "GET")?)?;

        let res = self.get(&callback, &jar).await?;
        jar.absorb(res.headers());
        if res.status() != StatusCode::SEE_OTHER {
            return Err(unexpected("GET", &callback, res).await);
        }
        let pending = self.follow(&callback, &next(&callback, &res, "GET")?)?;

        let res = self.get(&pending, &jar).await?;
        jar.absorb(res.headers());
        let location = match res.status() {
            StatusCode::FOUND => next(&pending, &res, "GET")?,
            StatusCode::OK if self.consent => self.allow(&pending, res, &jar).await?,
            _ => return Err(unexpected("GET", &pending, res).await),
        };
        let code = code_from(&location, &self.client.redirect_uri, &state, self.ep.issuer_str())?;

        let token = self.ep.url("/oauth2/token").map_err(|e| e.to_string())?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.client.redirect_uri.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
            ("client_id", self.client.client_id.as_str()),
            ("resource", self.resource.as_str()),
        ];
        let res = self.http.post(token.clone()).form(&form).send().await.map_err(|e| transport("POST", &token, &e))?;
        if res.status() != StatusCode::OK {
            return Err(unexpected("POST", &token, res).await);
        }
        Ok(waited)
    }

    /// Allows on the consent page: the `Location` of the answer.
    async fn allow(&self, page: &Url, res: reqwest::Response, jar: &CookieJar) -> Result<String, String> {
        let html = res.text().await.map_err(|e| transport("GET", page, &e))?;
        let form = forms::parse(&html)
            .into_iter()
            .find(|f| f.has_button("decision", "allow"))
            .ok_or_else(|| format!("GET {}: a page without a consent form", page.path()))?;
        let action = self.follow(page, &form.action)?;
        let fields = form.submission(&[], Some(("decision", "allow")));
        let res = self.send(self.http.post(action.clone()).form(&fields), jar, "POST", &action).await?;
        if res.status() != StatusCode::FOUND && res.status() != StatusCode::SEE_OTHER {
            return Err(unexpected("POST", &action, res).await);
        }
        next(&action, &res, "POST")
    }

    fn follow(&self, base: &Url, location: &str) -> Result<Url, String> {
        self.ep.follow(base, location).map_err(|e| e.to_string())
    }

    async fn get(&self, url: &Url, jar: &CookieJar) -> Result<reqwest::Response, String> {
        self.send(self.http.get(url.clone()), jar, "GET", url).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        jar: &CookieJar,
        method: &str,
        url: &Url,
    ) -> Result<reqwest::Response, String> {
        let req = match jar.header() {
            Some(c) => req.header(COOKIE, c),
            None => req,
        };
        req.send().await.map_err(|e| transport(method, url, &e))
    }
}

/// The provider's share of `flows` flows that took `flow_time` in all, of which the browsers
/// waited `at_provider` on it, while it spent `busy` serving.
pub fn split(flows: u64, flow_time: Duration, at_provider: Duration, busy: BusySnapshot) -> Option<FlowSplit> {
    if flows == 0 {
        return None;
    }
    let per = |d: f64| d / flows as f64;
    let back_channel_us = busy.back_channel_ns as f64 / 1_000.0;
    Some(FlowSplit {
        party: "OpenID provider".into(),
        flow_mean_us: per(flow_time.as_secs_f64() * 1e6),
        party_mean_us: per(at_provider.as_secs_f64() * 1e6 + back_channel_us),
        party_serving_mean_us: per((busy.authorize_ns + busy.back_channel_ns) as f64 / 1_000.0),
    })
}

pub async fn run(b: &Bench) -> anyhow::Result<Vec<Row>> {
    let op: &Arc<OpenIdProvider> =
        b.op.as_ref()
            .context("the federated scenario needs the OpenID provider of a stack the bench starts (--start)")?;
    let client = register_public(b, "sallyport-bench federated").await?;
    let base = authorize_base(b, &client)?.to_string();
    let provider = Url::parse(&op.issuer)?;
    let mut workers = (0..b.workers)
        .map(|i| {
            Ok(FederatedFlow {
                http: crate::client::build(2)?,
                ep: b.ep.clone(),
                base: base.clone(),
                client: client.clone(),
                resource: b.resource.clone(),
                provider: provider.clone(),
                provider_cookie: HeaderValue::from_str(&format!("{SESSION_COOKIE}=bench-fed-{i}"))?,
                counter: 0,
                consent: true,
                flows: 0,
                flow_time: Duration::ZERO,
                at_provider: Duration::ZERO,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // one untimed flow per worker: its user is created and consents once, as a person would
    for (i, w) in workers.iter_mut().enumerate() {
        w.call().await.map_err(anyhow::Error::msg).with_context(|| format!("federated sign-in {}", i + 1))?;
        w.consent = false;
        (w.flows, w.flow_time, w.at_provider) = (0, Duration::ZERO, Duration::ZERO);
    }
    let url = b.ep.url("/oauth2/authorize")?;
    let before = op.busy.snapshot();
    let mut runs = Vec::with_capacity(b.runs);
    for i in 0..b.runs {
        let (s, back) = run_once(b, &format!("federated run {}/{}", i + 1, b.runs), workers).await;
        workers = back;
        runs.push(s);
    }
    let busy = op.busy.snapshot() - before;
    let flows = workers.iter().map(|w| w.flows).sum();
    let flow_time = workers.iter().map(|w| w.flow_time).sum();
    let at_provider = workers.iter().map(|w| w.at_provider).sum();
    let mut row = Row::new(
        "federated",
        "authorize, sign-in page, provider, callback, authorize -> 302, POST /oauth2/token -> 200",
        &url.origin().ascii_serialization(),
        runs,
    );
    row.split = split(flows, flow_time, at_provider, busy);
    if let Some(s) = &row.split {
        eprintln!(
            "  federated: {:.0} µs a flow, {:.0} µs of it at the provider ({:.0} µs serving)",
            s.flow_mean_us, s.party_mean_us, s.party_serving_mean_us
        );
    }
    Ok(vec![row])
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::oidc::{IdTokenExpectations, ProviderMetadata, verify_id_token};

    /// The bench's provider speaks the code flow as Sallyport's authorize service expects it: its
    /// discovery document passes Sallyport's checks, a code comes only with a provider session,
    /// once, for the right verifier, and its ID token passes Sallyport's validation.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_bench_provider_answers_as_sallyport_expects() {
        let callback = "http://127.0.0.1:9/oauth2/login/bench-op/callback";
        let op = OpenIdProvider::start(callback);
        let http = crate::client::build(1).expect("client");
        let meta: ProviderMetadata = http
            .get(format!("{}/.well-known/openid-configuration", op.issuer))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json");
        meta.check(&op.issuer, true).expect("Sallyport accepts the document");
        let keys: jsonwebtoken::jwk::JwkSet =
            http.get(&meta.jwks_uri).send().await.expect("jwks").json().await.expect("json");

        let pkce = Pkce::new();
        let mut url = Url::parse(&meta.authorization_endpoint).expect("url");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &op.client_id)
            .append_pair("redirect_uri", callback)
            .append_pair("scope", "openid email")
            .append_pair("state", "st")
            .append_pair("nonce", "n-1")
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        let location =
            |res: &reqwest::Response| Url::parse(res.headers()[LOCATION].to_str().expect("ascii")).expect("a URL");
        let query = |u: &Url, k: &str| u.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
        let res = http.get(url.clone()).send().await.expect("authorize");
        assert_eq!(query(&location(&res), "error").as_deref(), Some("login_required"), "no session, no code");
        let res =
            http.get(url.clone()).header(COOKIE, format!("{SESSION_COOKIE}=ann")).send().await.expect("authorize");
        assert_eq!(res.status(), StatusCode::FOUND);
        let back = location(&res);
        assert!(back.as_str().starts_with(callback));
        assert_eq!((query(&back, "state"), query(&back, "iss")), (Some("st".into()), Some(op.issuer.clone())));
        let code = query(&back, "code").expect("code");
        let mut bad = url.clone();
        bad.query_pairs_mut().append_pair("redirect_uri", "https://elsewhere.example/cb");
        let res = http.get(bad).header(COOKIE, format!("{SESSION_COOKIE}=ann")).send().await.expect("authorize");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "never redirects to another URI");

        let exchange = |verifier: String| {
            let (http, endpoint, code) = (http.clone(), meta.token_endpoint.clone(), code.clone());
            let (id, secret) = (op.client_id.clone(), op.client_secret.clone());
            async move {
                let form = [
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", callback),
                    ("code_verifier", verifier.as_str()),
                    ("client_id", id.as_str()),
                    ("client_secret", secret.as_str()),
                ];
                let res = http.post(endpoint).form(&form).send().await.expect("token");
                (res.status(), res.json::<serde_json::Value>().await.expect("json"))
            }
        };
        let (status, body) = exchange("a-wrong-verifier-that-is-long-enough-for-rfc-7636-000000".into()).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
        let before = op.busy.snapshot();
        // the wrong verifier spent the code, as a replay would: a new one
        let res = http.get(url).header(COOKIE, format!("{SESSION_COOKIE}=ann")).send().await.expect("authorize");
        let code = query(&location(&res), "code").expect("code");
        let exchange_again = {
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", callback),
                ("code_verifier", pkce.verifier.as_str()),
                ("client_id", op.client_id.as_str()),
                ("client_secret", op.client_secret.as_str()),
            ];
            http.post(&meta.token_endpoint).form(&form)
        };
        let res = exchange_again.try_clone().expect("clone").send().await.expect("token");
        assert_eq!(res.status(), StatusCode::OK);
        let body: serde_json::Value = res.json().await.expect("json");
        let expect = IdTokenExpectations {
            issuer: &op.issuer,
            client_id: &op.client_id,
            nonce: "n-1",
            algorithms: &meta.algorithms(),
            now: chrono::Utc::now().timestamp(),
            leeway: 60,
        };
        let claims = verify_id_token(body["id_token"].as_str().expect("id_token"), &keys, &expect).expect("valid");
        assert_eq!(claims.sub, "op-ann");
        assert_eq!(claims.other["groups"], serde_json::json!([testkit::oidc::GROUP]));
        let res = exchange_again.send().await.expect("token");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "a code is exchanged once");
        let spent = op.busy.snapshot() - before;
        assert_eq!((spent.authorize_requests, spent.back_channel_requests), (1, 2));
        assert!(spent.authorize_ns > 0 && spent.back_channel_ns > 0);
    }

    #[test]
    fn the_providers_share_of_a_flow() {
        let busy = BusySnapshot {
            authorize_ns: 40_000_000,
            authorize_requests: 400,
            back_channel_ns: 120_000_000,
            back_channel_requests: 401,
        };
        let s = split(400, Duration::from_secs(2), Duration::from_millis(100), busy).expect("split");
        assert!((s.flow_mean_us - 5_000.0).abs() < 1e-6, "2 s over 400 flows");
        // the browser's 250 µs at the authorization endpoint plus 300 µs serving the back channel
        assert!((s.party_mean_us - 550.0).abs() < 1e-6, "{s:?}");
        assert!((s.party_serving_mean_us - 400.0).abs() < 1e-6, "{s:?}");
        assert!((s.rest_us() - 4_450.0).abs() < 1e-6);
        assert!(split(0, Duration::ZERO, Duration::ZERO, BusySnapshot::default()).is_none());
    }
}
