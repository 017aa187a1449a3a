//! `refresh_tokens`.
