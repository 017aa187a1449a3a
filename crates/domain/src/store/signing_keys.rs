//! `signing_keys`.
