//! The authorize service over real HTTP against a real Postgres: the front channel with a cookie
//! jar (login, consent, code), every failure path, and one run in headless Chromium.

mod api {
    pub mod support;

    mod browser;
    mod documents;
    mod failures;
    mod federation;
    mod flow;
    mod login;
    mod malformed;
    mod sessions;
}
