use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::keys::{SigningAlg, SigningKey};

const NOW: i64 = 1_800_000_000;

fn key() -> SigningKey {
    SigningKey::generate(SigningAlg::Es256).expect("key").0
}

fn claims() -> Value {
    json!({
        "iss": "https://op.example", "sub": "u-1", "aud": "sallyport", "exp": NOW + 300, "iat": NOW,
        "nonce": "n-1", "email": "a@example.com", "email_verified": true, "groups": ["mcp-users"],
    })
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

fn set(keys: &[&SigningKey]) -> JwkSet {
    JwkSet { keys: keys.iter().map(|k| k.public_jwk.clone()).collect() }
}

fn expect() -> IdTokenExpectations<'static> {
    IdTokenExpectations {
        issuer: "https://op.example",
        client_id: "sallyport",
        nonce: "n-1",
        algorithms: &[Algorithm::ES256],
        now: NOW,
        leeway: 60,
    }
}

fn with(change: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut c = claims();
    change(c.as_object_mut().expect("object"));
    c
}

#[test]
fn a_valid_token_passes_with_its_claims() {
    let k = key();
    let c = verify_id_token(&sign(&k, &claims()), &set(&[&k]), &expect()).expect("valid");
    assert_eq!((c.sub.as_str(), c.iss.as_str()), ("u-1", "https://op.example"));
    assert!(claim_has(&c.other, "groups", "mcp-users") && !claim_has(&c.other, "groups", "admins"));
    assert!(email_verified(&c.other));
    assert_eq!(claim_text(&c.other, "email").as_deref(), Some("a@example.com"));
}

#[test]
fn every_broken_claim_is_refused() {
    let k = key();
    let keys = set(&[&k]);
    let check = |c: Value| verify_id_token(&sign(&k, &c), &keys, &expect()).map(|_| ());
    let cases: Vec<(Value, IdTokenError)> = vec![
        (with(|c| drop(c.insert("iss".into(), json!("https://evil.example")))), IdTokenError::Issuer),
        (with(|c| drop(c.insert("aud".into(), json!("another-client")))), IdTokenError::Audience),
        (with(|c| drop(c.insert("aud".into(), json!(["sallyport", "other"])))), IdTokenError::AuthorizedParty),
        (
            with(|c| {
                c.insert("aud".into(), json!(["sallyport", "other"]));
                c.insert("azp".into(), json!("other"));
            }),
            IdTokenError::AuthorizedParty,
        ),
        (with(|c| drop(c.insert("azp".into(), json!("other")))), IdTokenError::AuthorizedParty),
        (with(|c| drop(c.insert("exp".into(), json!(NOW - 61)))), IdTokenError::Expired),
        (with(|c| drop(c.insert("iat".into(), json!(NOW + 61)))), IdTokenError::IssuedInFuture),
        (with(|c| drop(c.insert("nonce".into(), json!("n-2")))), IdTokenError::Nonce),
        (with(|c| drop(c.remove("nonce"))), IdTokenError::Nonce),
        (with(|c| drop(c.remove("sub"))), IdTokenError::Malformed),
        (with(|c| drop(c.remove("exp"))), IdTokenError::Malformed),
    ];
    for (c, want) in cases {
        assert_eq!(check(c.clone()), Err(want), "{c}");
    }
    // within the leeway
    assert!(check(with(|c| drop(c.insert("exp".into(), json!(NOW - 30))))).is_ok());
    assert!(check(with(|c| drop(c.insert("iat".into(), json!(NOW + 30))))).is_ok());
    let several = with(|c| {
        c.insert("aud".into(), json!(["sallyport", "other"]));
        c.insert("azp".into(), json!("sallyport"));
    });
    assert!(check(several).is_ok(), "several audiences with our azp");
}

#[test]
fn signature_key_and_algorithm_are_enforced() {
    let (k, other) = (key(), key());
    let token = sign(&k, &claims());
    // a tampered payload
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let tampered = with(|c| drop(c.insert("sub".into(), json!("admin"))));
    parts[1] = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, tampered.to_string());
    assert_eq!(verify_id_token(&parts.join("."), &set(&[&k]), &expect()).map(|_| ()), Err(IdTokenError::Signature));
    // signed by a key the provider does not publish, under its kid
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(k.kid.clone());
    let forged = jsonwebtoken::encode(&header, &claims(), &other.encoding).expect("sign");
    assert_eq!(verify_id_token(&forged, &set(&[&k]), &expect()).map(|_| ()), Err(IdTokenError::Signature));
    // an unknown kid: the caller refetches the keys
    assert_eq!(
        verify_id_token(&token, &set(&[&other]), &expect()).map(|_| ()),
        Err(IdTokenError::UnknownKey(Some(k.kid.clone())))
    );
    assert_eq!(peek_kid(&token), Ok(Some(k.kid.clone())));
    // HS256 keyed with the public key's bytes, and alg none: never accepted
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(k.kid.clone());
    let hmac = jsonwebtoken::encode(&hs, &claims(), &EncodingKey::from_secret(k.kid.as_bytes())).expect("sign");
    assert_eq!(verify_id_token(&hmac, &set(&[&k]), &expect()).map(|_| ()), Err(IdTokenError::Algorithm));
    let none = format!(
        "{}.{}.",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, r#"{"alg":"none"}"#),
        parts[1]
    );
    assert!(verify_id_token(&none, &set(&[&k]), &expect()).is_err());
    // an algorithm the provider does not use
    let rs_only = IdTokenExpectations { algorithms: &[Algorithm::RS256], ..expect() };
    assert_eq!(verify_id_token(&token, &set(&[&k]), &rs_only).map(|_| ()), Err(IdTokenError::Algorithm));
    // without a kid: the one fitting key
    let bare = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims(), &k.encoding).expect("sign");
    assert!(verify_id_token(&bare, &set(&[&k]), &expect()).is_ok());
    assert!(matches!(verify_id_token(&bare, &set(&[&k, &other]), &expect()), Err(IdTokenError::UnknownKey(None))));
}

#[test]
fn discovery_documents_are_checked() {
    let doc = |v: Value| serde_json::from_value::<ProviderMetadata>(v).expect("doc");
    let base = json!({
        "issuer": "https://op.example", "authorization_endpoint": "https://op.example/auth",
        "token_endpoint": "https://op.example/token", "jwks_uri": "https://op.example/jwks",
    });
    let m = doc(base.clone());
    assert_eq!(m.check("https://op.example", false), Ok(()));
    assert_eq!(m.client_auth(), Ok(ClientAuth::Basic));
    assert_eq!(m.algorithms(), vec![Algorithm::RS256]);
    assert!(matches!(m.check("https://op.example/", false), Err(MetadataError::IssuerMismatch(_))));
    let mut http = base.clone();
    http["token_endpoint"] = json!("http://op.example/token");
    assert_eq!(doc(http.clone()).check("https://op.example", false), Err(MetadataError::BadEndpoint("token_endpoint")));
    assert_eq!(doc(http).check("https://op.example", true), Ok(()));
    let mut post = base.clone();
    post["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt", "client_secret_post"]);
    assert_eq!(doc(post).client_auth(), Ok(ClientAuth::Post));
    let mut none = base.clone();
    none["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
    assert_eq!(doc(none).check("https://op.example", false), Err(MetadataError::NoClientAuth));
    let mut algs = base;
    algs["id_token_signing_alg_values_supported"] = json!(["HS256", "none", "ES256"]);
    assert_eq!(doc(algs.clone()).algorithms(), vec![Algorithm::ES256]);
    algs["id_token_signing_alg_values_supported"] = json!(["HS256", "none"]);
    assert_eq!(doc(algs).check("https://op.example", false), Err(MetadataError::NoAlgorithm));
    assert_eq!(email_domain("A@Example.COM").as_deref(), Some("example.com"));
    assert_eq!(email_domain("nobody"), None);
}
