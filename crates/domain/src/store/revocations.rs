//! `revocations`.
