//! `consents`.
