//! Micro-benchmarks of the primitives on Sallyport's hot paths, one core each:
//! - JWT access tokens (`protocol::jwt`, ES256 with aws-lc-rs): sign (every token issued); verify
//!   from a JWK set (introspection: the key is built from the JWK every call); verify with a
//!   cached decoding key (the gateway's path on a token it has not seen yet).
//! - PKCE S256 verification (`protocol::pkce::verify`, every code exchange).
//! - Secret hashing (`protocol::secret::SecretHash::of`, every code, refresh token, client secret and
//!   session lookup) and secret generation.
//! - argon2id password verification (every login), for scale.
//!
//! `cargo bench -p sallyport-bench --bench primitives`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use protocol::jwt::{AccessTokenClaims, Audience, Expectations};
use protocol::keys::{SigningAlg, SigningKey};
use protocol::secret::{PlainSecret, SecretHash, SecretKind};

const ISSUER: &str = "https://auth.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const NOW: i64 = 1_790_000_000;

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: uuid::Uuid::now_v7().to_string(),
        aud: Audience::One(RESOURCE.into()),
        client_id: "6f1c2d9e-0b7a-4c7e-9d3b-2a5f8e1c4b6d".into(),
        scope: "mcp files:read".into(),
        iat: NOW,
        exp: NOW + 900,
        nbf: None,
        jti: uuid::Uuid::now_v7(),
        auth_time: Some(NOW - 60),
        gid: Some(uuid::Uuid::now_v7()),
    }
}

fn expectations() -> Expectations<'static> {
    Expectations { issuer: ISSUER, audience: Some(RESOURCE), now: NOW, leeway: 30 }
}

fn jwt(c: &mut Criterion) {
    let Ok((key, _)) = SigningKey::generate(SigningAlg::Es256) else { panic!("ES256 key generation failed") };
    let claims = claims();
    let Ok(token) = protocol::jwt::sign(&claims, &key) else { panic!("signing failed") };
    let set = JwkSet { keys: vec![key.public_jwk.clone()] };
    let Ok(decoding) = DecodingKey::from_jwk(&key.public_jwk) else { panic!("decoding key") };
    let Ok(header) = jsonwebtoken::decode_header(&token) else { panic!("header") };
    assert!(protocol::jwt::verify(&token, &set, &expectations()).is_ok(), "the benchmarked token verifies");

    let mut g = c.benchmark_group("jwt_es256");
    g.bench_function("sign", |b| b.iter(|| protocol::jwt::sign(black_box(&claims), &key)));
    g.bench_function("verify_from_jwks", |b| {
        b.iter(|| protocol::jwt::verify(black_box(&token), &set, &expectations()))
    });
    g.bench_function("verify_cached_key", |b| {
        b.iter(|| {
            let header = jsonwebtoken::decode_header(black_box(&token)).map_err(|_| ());
            header.map(|h| protocol::jwt::verify_with_key(&token, &h, &decoding, &expectations()))
        })
    });
    g.bench_function("verify_cached_key_and_header", |b| {
        b.iter(|| protocol::jwt::verify_with_key(black_box(&token), &header, &decoding, &expectations()))
    });
    g.finish();
}

fn pkce(c: &mut Criterion) {
    // RFC 7636 Appendix B
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert_eq!(protocol::pkce::verify(Some(verifier), challenge), Ok(()));
    c.bench_function("pkce_s256_verify", |b| b.iter(|| protocol::pkce::verify(Some(black_box(verifier)), challenge)));
}

fn secrets(c: &mut Criterion) {
    let secret = PlainSecret::generate(SecretKind::RefreshToken).into_inner();
    let stored = SecretHash::of(&secret).to_vec();
    let mut g = c.benchmark_group("secret");
    g.bench_function("sha256_hash", |b| b.iter(|| SecretHash::of(black_box(&secret))));
    g.bench_function("hash_and_compare", |b| b.iter(|| SecretHash::of(black_box(&secret)).matches(&stored)));
    g.bench_function("generate", |b| b.iter(|| PlainSecret::generate(SecretKind::RefreshToken)));
    g.finish();
}

fn argon2(c: &mut Criterion) {
    let Ok(stored) = store::password::hash("correct horse battery staple") else { panic!("hashing failed") };
    let mut g = c.benchmark_group("password");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.bench_function("argon2id_verify", |b| {
        b.iter(|| store::password::verify(black_box("correct horse battery staple"), &stored))
    });
    g.finish();
}

fn config() -> Criterion {
    // short: the machine has two cores shared with other work
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = hot_paths; config = config(); targets = jwt, pkce, secrets, argon2 }
criterion_main!(hot_paths);
