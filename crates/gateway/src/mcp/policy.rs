//! The tool policy of one MCP route: `tools.allow` / `tools.deny` name patterns (deny wins) and
//! `tool_scopes`, the extra scopes a tool needs on top of the route's own.

use protocol::scope::Scopes;
use server::config::RouteSettings;

/// A name pattern: `*` matches any run of characters (also none), everything else itself. Split
/// at its stars once, when the route is loaded, so matching a name allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Before the first `*` (the whole pattern without one).
    first: String,
    /// Between stars, in order.
    middle: Vec<String>,
    /// After the last `*`; `None` without a star.
    last: Option<String>,
}

impl Pattern {
    pub fn new(p: &str) -> Self {
        let mut parts = p.split('*');
        let first = parts.next().unwrap_or_default().to_owned();
        let mut middle: Vec<String> = parts.map(str::to_owned).collect();
        let last = middle.pop();
        Self { first, middle, last }
    }

    pub fn matches(&self, name: &str) -> bool {
        let Some(mut rest) = name.strip_prefix(self.first.as_str()) else { return false };
        let Some(last) = &self.last else {
            return rest.is_empty();
        };
        for part in &self.middle {
            match rest.find(part.as_str()) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last.as_str())
    }
}

/// What the policy says about one tool for one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Not exposed on this route; the reason is for the audit only.
    Deny(&'static str),
    /// Exposed, but the token lacks scopes: the full set the call needs (route scopes included).
    NeedScopes(Scopes),
}

impl Decision {
    /// Whether the tool appears in this caller's `tools/list`.
    pub fn visible(&self) -> bool {
        matches!(self, Self::Allow)
    }
}

/// A compiled policy.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
    scopes: Vec<(Pattern, Scopes)>,
    route_scopes: Scopes,
}

impl ToolPolicy {
    /// The route's settings were validated at load; an invalid scope here is a bug worth naming.
    pub fn from_route(route: &RouteSettings) -> Result<Self, String> {
        let scopes = route
            .tool_scopes
            .iter()
            .map(|(p, s)| Ok((Pattern::new(p), Scopes::from_tokens(s).map_err(|e| format!("tool_scopes.{p}: {e}"))?)))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            allow: route.tools.allow.iter().map(|p| Pattern::new(p)).collect(),
            deny: route.tools.deny.iter().map(|p| Pattern::new(p)).collect(),
            scopes,
            route_scopes: Scopes::from_tokens(&route.scopes).map_err(|e| format!("scopes: {e}"))?,
        })
    }

    /// Whether any rule exists (without one, `tools/list` is passed on untouched).
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.scopes.is_empty()
    }

    /// Decides a tool for a caller holding `granted` (`None`: an unauthenticated route).
    pub fn decide(&self, tool: &str, granted: Option<&Scopes>) -> Decision {
        if self.deny.iter().any(|p| p.matches(tool)) {
            return Decision::Deny("denied by tools.deny");
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(tool)) {
            return Decision::Deny("not in tools.allow");
        }
        let mut needed: Option<Scopes> = None;
        for (pattern, scopes) in &self.scopes {
            if pattern.matches(tool) {
                needed = Some(needed.map_or_else(|| scopes.clone(), |n| n.union(scopes)));
            }
        }
        match (needed, granted) {
            (Some(needed), Some(granted)) if !needed.is_subset(granted) => {
                // SEP-835: every scope the call needs, including those the token already has
                let mut all = self.route_scopes.union(&needed);
                all = all.iter().filter(|s| *s != "offline_access").map(str::to_owned).collect();
                Decision::NeedScopes(all)
            }
            _ => Decision::Allow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::config::ToolRules;

    #[test]
    fn patterns() {
        let m = |p: &str, n: &str| Pattern::new(p).matches(n);
        assert!(m("echo", "echo"));
        assert!(!m("echo", "echoes"));
        assert!(!m("echo", "ech"));
        assert!(m("admin_*", "admin_reset"));
        assert!(m("admin_*", "admin_"));
        assert!(!m("admin_*", "xadmin_reset"));
        assert!(m("*_issue", "delete_issue"));
        assert!(!m("*_issue", "delete_issues"));
        assert!(m("*", "anything"));
        assert!(m("a*b*c", "a-b-b-c"));
        assert!(!m("a*b*c", "a-c"));
        assert!(!m("ab*ba", "aba"), "the parts may not overlap");
        assert!(m("ab*ba", "abba"));
    }

    fn route(allow: &[&str], deny: &[&str], scopes: &[(&str, &[&str])]) -> RouteSettings {
        RouteSettings {
            prefix: "/mcp".into(),
            upstream: server::config::HttpUrl::parse("http://up").expect("upstream"),
            resource: Some("http://gw/mcp".into()),
            scopes: vec!["mcp".into()],
            method_scopes: Default::default(),
            auth: true,
            allowed_origins: vec![],
            allow_form_token: false,
            allow_query_token: false,
            mcp: true,
            tools: ToolRules {
                allow: allow.iter().map(|s| (*s).to_owned()).collect(),
                deny: deny.iter().map(|s| (*s).to_owned()).collect(),
            },
            tool_scopes: scopes
                .iter()
                .map(|(p, s)| ((*p).to_owned(), s.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
            upstream_auth: Default::default(),
            upstream_api_key: None,
            upstream_headers: Default::default(),
            upstream_oauth: None,
        }
    }

    #[test]
    fn deny_wins_and_allow_limits() {
        let p = ToolPolicy::from_route(&route(&["search_*", "drop_*"], &["drop_*"], &[])).expect("policy");
        let mcp = Scopes::parse("mcp").expect("scopes");
        assert_eq!(p.decide("search_issues", Some(&mcp)), Decision::Allow);
        assert_eq!(p.decide("drop_database", Some(&mcp)), Decision::Deny("denied by tools.deny"));
        assert_eq!(p.decide("echo", Some(&mcp)), Decision::Deny("not in tools.allow"));
        let open = ToolPolicy::from_route(&route(&[], &["drop_*"], &[])).expect("policy");
        assert_eq!(open.decide("echo", Some(&mcp)), Decision::Allow);
        assert!(ToolPolicy::from_route(&route(&[], &[], &[])).expect("policy").is_empty());
    }

    #[test]
    fn tool_scopes_name_the_full_set() {
        let p = ToolPolicy::from_route(&route(
            &[],
            &[],
            &[("delete_issue", &["mcp:admin"]), ("admin_*", &["mcp:admin"]), ("*_issue", &["issues:write"])],
        ))
        .expect("policy");
        let mcp = Scopes::parse("mcp").expect("scopes");
        assert_eq!(
            p.decide("delete_issue", Some(&mcp)),
            Decision::NeedScopes(Scopes::parse("issues:write mcp mcp:admin").expect("scopes"))
        );
        let admin = Scopes::parse("mcp mcp:admin issues:write").expect("scopes");
        assert_eq!(p.decide("delete_issue", Some(&admin)), Decision::Allow);
        assert_eq!(p.decide("admin_reset", Some(&admin)), Decision::Allow);
        assert_eq!(p.decide("search", Some(&mcp)), Decision::Allow);
        assert!(!p.decide("admin_reset", Some(&mcp)).visible());
    }
}
