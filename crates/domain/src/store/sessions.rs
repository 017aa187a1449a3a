//! `sessions`.
