//! Scope strings (RFC 6749 §3.3): space-delimited tokens of `%x21 / %x23-5B / %x5D-7E`.

use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope contains a character RFC 6749 §3.3 does not allow")]
pub struct ScopeError;

/// A set of scope tokens. Ordered, so that its string form is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Longest scope string accepted; protects every column and header that carries one.
pub const MAX_SCOPE_LEN: usize = 2000;

impl Scopes {
    /// Parses a scope parameter; the empty string is the empty set. Tokens are separated by single
    /// spaces per the ABNF, but runs of spaces are tolerated as real clients send them.
    pub fn parse(raw: &str) -> Result<Self, ScopeError> {
        if raw.len() > MAX_SCOPE_LEN {
            return Err(ScopeError);
        }
        raw.split(' ')
            .filter(|t| !t.is_empty())
            .map(|t| if valid_token(t) { Ok(t.to_owned()) } else { Err(ScopeError) })
            .collect()
    }

    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        tokens
            .into_iter()
            .map(|t| if valid_token(t.as_ref()) { Ok(t.as_ref().to_owned()) } else { Err(ScopeError) })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &Scopes) -> Scopes {
        Scopes(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn union(&self, other: &Scopes) -> Scopes {
        Scopes(self.0.union(&other.0).cloned().collect())
    }

    /// The tokens of `self` not in `other`.
    pub fn difference(&self, other: &Scopes) -> Scopes {
        Scopes(self.0.difference(&other.0).cloned().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
}

impl FromIterator<String> for Scopes {
    fn from_iter<T: IntoIterator<Item = String>>(iter: T) -> Self {
        Scopes(iter.into_iter().collect())
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(raw: &str) -> Scopes {
        Scopes::parse(raw).expect("valid scope")
    }

    #[test]
    fn parses_and_orders() {
        assert_eq!(s("tools:call  read offline_access read").to_string(), "offline_access read tools:call");
        assert!(s("").is_empty());
        assert!(s("   ").is_empty());
        assert_eq!(s("a").len(), 1);
        assert_eq!(s("https://example.com/scope!#$").len(), 1);
    }

    #[test]
    fn refuses_bad_characters() {
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "a\tb", "a\nb", "a\u{7f}"] {
            assert_eq!(Scopes::parse(bad), Err(ScopeError), "{bad:?}");
        }
        assert_eq!(Scopes::parse(&"a".repeat(MAX_SCOPE_LEN + 1)), Err(ScopeError));
        assert_eq!(Scopes::from_tokens(["ok", ""]), Err(ScopeError));
    }

    #[test]
    fn set_arithmetic() {
        let all = s("a b c");
        assert!(s("a c").is_subset(&all));
        assert!(!s("a d").is_subset(&all));
        assert!(s("").is_subset(&all));
        assert_eq!(s("a d").intersection(&all), s("a"));
        assert_eq!(s("a d").union(&all), s("a b c d"));
        assert_eq!(s("a d").difference(&all), s("d"));
    }
}
