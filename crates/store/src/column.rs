//! The edge between protocol types and Postgres columns. A `text` or `text[]` column is read into
//! [`Text`] or [`TextArray`] and parsed there into the protocol type of the row's field (the rows'
//! `deserialize_as`), so a service only ever sees `ResourceUri`, `RedirectUri`, `GrantType` or
//! `Scopes`; a value that does not parse (a hand-edited row, a bug) fails the query with
//! [`InvalidColumn`], never a panic. Written values go out as their protocol string form.
//!
//! The types are public only because the row derives name them; nothing outside the crate uses them.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types;
use protocol::client::GrantType;
use protocol::scope::Scopes;
use protocol::uri::{RedirectUri, ResourceUri};

/// A protocol value kept as one `text` (or one element of a `text[]`): its string form.
pub trait StoredText: Sized {
    /// What it is, for the error naming a value that does not parse.
    const WHAT: &'static str;
    fn as_text(&self) -> &str;
    fn into_text(self) -> String {
        self.as_text().to_owned()
    }
    fn from_text(raw: String) -> Option<Self>;
}

impl StoredText for ResourceUri {
    const WHAT: &'static str = "resource URI";
    fn as_text(&self) -> &str {
        self.as_str()
    }
    fn into_text(self) -> String {
        self.into()
    }
    fn from_text(raw: String) -> Option<Self> {
        Self::parse(&raw).ok()
    }
}

impl StoredText for RedirectUri {
    const WHAT: &'static str = "redirect URI";
    fn as_text(&self) -> &str {
        self.as_str()
    }
    fn into_text(self) -> String {
        self.into()
    }
    fn from_text(raw: String) -> Option<Self> {
        Self::try_from(raw).ok()
    }
}

impl StoredText for GrantType {
    const WHAT: &'static str = "grant type";
    fn as_text(&self) -> &str {
        GrantType::as_str(*self)
    }
    fn from_text(raw: String) -> Option<Self> {
        Self::parse(&raw)
    }
}

/// Free text (`contacts`, `response_types`): anything Postgres held is kept as it is.
impl StoredText for String {
    const WHAT: &'static str = "text";
    fn as_text(&self) -> &str {
        self
    }
    fn into_text(self) -> String {
        self
    }
    fn from_text(raw: String) -> Option<Self> {
        Some(raw)
    }
}

/// A stored value its protocol type refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored {what} is invalid: {}", shown(.value))]
pub struct InvalidColumn {
    pub what: &'static str,
    /// The offending element (`None`: a NULL element in an array).
    pub value: Option<String>,
}

fn shown(value: &Option<String>) -> String {
    value.as_ref().map_or_else(|| "NULL".to_owned(), |v| format!("{v:?}"))
}

/// What a `text[]` column is read into: a list of one protocol type, or a scope set.
pub trait FromTexts: Sized {
    fn from_texts(raw: Vec<Option<String>>) -> Result<Self, InvalidColumn>;
}

impl<T: StoredText> FromTexts for Vec<T> {
    fn from_texts(raw: Vec<Option<String>>) -> Result<Self, InvalidColumn> {
        raw.into_iter()
            .map(|v| {
                let v = v.ok_or(InvalidColumn { what: T::WHAT, value: None })?;
                // the error keeps its own copy: the parse consumes `v`
                let shown = v.clone();
                T::from_text(v).ok_or(InvalidColumn { what: T::WHAT, value: Some(shown) })
            })
            .collect()
    }
}

/// A scope set kept one token per element (RFC 6749 §3.3 tokens; the order does not matter).
impl FromTexts for Scopes {
    fn from_texts(raw: Vec<Option<String>>) -> Result<Self, InvalidColumn> {
        let bad = |value| InvalidColumn { what: "scope token", value };
        let tokens = raw.into_iter().map(|t| t.ok_or_else(|| bad(None))).collect::<Result<Vec<_>, _>>()?;
        Scopes::from_tokens(&tokens).map_err(|_| bad(Some(tokens.join(" "))))
    }
}

/// A `text` column on its way to a protocol type.
#[derive(Debug, FromSqlRow)]
pub struct Text(String);

impl FromSql<sql_types::Text, Pg> for Text {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <String as FromSql<sql_types::Text, Pg>>::from_sql(value).map(Self)
    }
}

impl Text {
    /// The `try_into` of the rows' `deserialize_as`.
    pub fn try_into<T: StoredText>(self) -> Result<T, InvalidColumn> {
        let shown = self.0.clone();
        T::from_text(self.0).ok_or(InvalidColumn { what: T::WHAT, value: Some(shown) })
    }
}

/// A `text[]` column (diesel reads one as `Vec<Option<String>>`) on its way to, or from, a
/// protocol list.
#[derive(Debug, Clone, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql_types::Array<sql_types::Nullable<sql_types::Text>>)]
pub struct TextArray(Vec<Option<String>>);

impl FromSql<sql_types::Array<sql_types::Nullable<sql_types::Text>>, Pg> for TextArray {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <Vec<Option<String>> as FromSql<sql_types::Array<sql_types::Nullable<sql_types::Text>>, Pg>>::from_sql(value)
            .map(Self)
    }
}

impl ToSql<sql_types::Array<sql_types::Nullable<sql_types::Text>>, Pg> for TextArray {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Vec<Option<String>> as ToSql<sql_types::Array<sql_types::Nullable<sql_types::Text>>, Pg>>::to_sql(&self.0, out)
    }
}

impl TextArray {
    /// The `try_into` of the rows' `deserialize_as`.
    pub fn try_into<C: FromTexts>(self) -> Result<C, InvalidColumn> {
        C::from_texts(self.0)
    }
}

impl<T: StoredText> From<Vec<T>> for TextArray {
    fn from(v: Vec<T>) -> Self {
        Self(v.into_iter().map(|t| Some(t.into_text())).collect())
    }
}

impl From<Scopes> for TextArray {
    fn from(s: Scopes) -> Self {
        Self(s.iter().map(|t| Some(t.to_owned())).collect())
    }
}

/// A list's elements as a borrowed `text[]` parameter (no string is copied).
pub(crate) fn texts<T: StoredText>(v: &[T]) -> Vec<Option<&str>> {
    v.iter().map(|t| Some(t.as_text())).collect()
}

/// A scope set as a borrowed `text[]` parameter, one token per element.
pub(crate) fn scope_texts(s: &Scopes) -> Vec<Option<&str>> {
    s.iter().map(Some).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn owned(v: Vec<Option<&str>>) -> Vec<Option<String>> {
        v.into_iter().map(|t| t.map(str::to_owned)).collect()
    }

    /// Resource identifiers as an operator or a client writes them: any case, ports, trailing slashes.
    fn resource() -> impl Strategy<Value = String> {
        (
            "(http|https|HTTPS)",
            "[a-zA-Z][a-zA-Z0-9-]{0,10}(\\.[a-z]{1,5}){0,2}",
            prop::option::of(1u16..),
            "(/[a-z0-9._~-]{0,6}){0,3}/?",
        )
            .prop_map(|(s, h, p, path)| format!("{s}://{h}{}{path}", p.map(|p| format!(":{p}")).unwrap_or_default()))
    }

    proptest! {
        /// What the store writes it reads back unchanged, whatever the list.
        #[test]
        fn resource_lists_round_trip(raw in prop::collection::vec(resource(), 0..6)) {
            let list: Vec<ResourceUri> = raw.iter().map(|r| ResourceUri::parse(r).expect("generated valid")).collect();
            let read: Vec<ResourceUri> = FromTexts::from_texts(owned(texts(&list))).expect("parses");
            prop_assert_eq!(&read, &list);
            let TextArray(written) = TextArray::from(list.clone());
            prop_assert_eq!(Vec::<ResourceUri>::from_texts(written).expect("parses"), list);
        }

        #[test]
        fn scope_sets_round_trip(raw in prop::collection::btree_set("[!#-\\[\\]-~]{1,12}", 0..8)) {
            let scopes = Scopes::from_tokens(&raw).expect("generated valid");
            prop_assert_eq!(Scopes::from_texts(owned(scope_texts(&scopes))).expect("parses"), scopes.clone());
            let TextArray(written) = TextArray::from(scopes.clone());
            prop_assert_eq!(Scopes::from_texts(written).expect("parses"), scopes);
        }

        /// Any array Postgres could hold: parsed exactly when every element is there and valid for
        /// its type, and then element for element; otherwise an error, never a panic.
        #[test]
        fn any_array_parses_or_errs(raw in prop::collection::vec(prop::option::weighted(0.95, ".{0,40}|https?://[a-z]{1,8}(/[a-z]{0,4}){0,2}"), 0..5)) {
            let resources = Vec::<ResourceUri>::from_texts(raw.clone());
            let each: Option<Vec<ResourceUri>> =
                raw.iter().map(|r| r.as_deref().and_then(|r| ResourceUri::parse(r).ok())).collect();
            prop_assert_eq!(resources.ok(), each);
            let grants = Vec::<GrantType>::from_texts(raw.clone());
            let each: Option<Vec<GrantType>> = raw.iter().map(|g| g.as_deref().and_then(GrantType::parse)).collect();
            prop_assert_eq!(grants.ok(), each);
            let scopes = Scopes::from_texts(raw.clone());
            let each: Option<Vec<&str>> = raw.iter().map(Option::as_deref).collect();
            prop_assert_eq!(scopes.ok(), each.and_then(|t| Scopes::from_tokens(t).ok()));
        }
    }

    #[test]
    fn errors_name_the_value() {
        let err =
            Vec::<RedirectUri>::from_texts(vec![Some("https://a.example/cb".into()), Some("javascript:x".into())])
                .expect_err("a dangerous scheme");
        assert_eq!(err, InvalidColumn { what: "redirect URI", value: Some("javascript:x".into()) });
        assert_eq!(err.to_string(), "a stored redirect URI is invalid: \"javascript:x\"");
        let null = Vec::<ResourceUri>::from_texts(vec![None]).expect_err("NULL element");
        assert_eq!(null.to_string(), "a stored resource URI is invalid: NULL");
        assert!(Scopes::from_texts(vec![Some("a b".into())]).is_err(), "a space is no token character");
        assert_eq!(
            Text("https://H.example/".into()).try_into::<ResourceUri>().map(String::from),
            Ok("https://h.example".into())
        );
    }
}
