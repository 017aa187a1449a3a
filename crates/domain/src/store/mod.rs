//! One module per table: its row types (never sent over the wire) and its queries. Query functions
//! take `&mut AsyncPgConnection` so they compose inside a transaction.

pub mod audit;
pub mod clients;
pub mod codes;
pub mod consents;
pub mod refresh_tokens;
pub mod resources;
pub mod revocations;
pub mod sessions;
pub mod signing_keys;
pub mod users;

/// Postgres `text[]` columns read back as `Vec<Option<String>>`; none of ours hold NULL elements.
pub(crate) fn flat(v: Vec<Option<String>>) -> Vec<String> {
    v.into_iter().flatten().collect()
}

pub(crate) fn wrap(v: impl IntoIterator<Item = impl Into<String>>) -> Vec<Option<String>> {
    v.into_iter().map(|s| Some(s.into())).collect()
}
