//! Just enough HTML to fill in the login and consent forms like a browser: each `<form>`'s action
//! and method, its named inputs with their values (hidden fields included), and its named submit
//! buttons. Tests and the bench fill in the documented field names (`username`, `password`,
//! `decision=allow`) and submits everything else as it came.

/// A form found in a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub id: Option<String>,
    pub action: String,
    pub method: String,
    /// Named `<input>` elements with their values, in document order.
    pub inputs: Vec<(String, String)>,
    /// Named submit buttons (`<button name value>` or `<input type=submit name value>`).
    pub buttons: Vec<(String, String)>,
}

impl Form {
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|(n, _)| n == name)
    }

    pub fn has_button(&self, name: &str, value: &str) -> bool {
        self.buttons.iter().any(|(n, v)| n == name && v == value)
    }

    /// The fields a browser would submit: the inputs with `fill` applied (replacing a value or
    /// adding the field), then the button pressed.
    pub fn submission(&self, fill: &[(&str, &str)], button: Option<(&str, &str)>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .inputs
            .iter()
            .map(|(n, v)| match fill.iter().find(|(f, _)| f == n) {
                Some((_, value)) => (n.clone(), (*value).to_owned()),
                None => (n.clone(), v.clone()),
            })
            .collect();
        for (name, value) in fill {
            if !self.has_input(name) {
                out.push(((*name).to_owned(), (*value).to_owned()));
            }
        }
        if let Some((name, value)) = button {
            out.push((name.to_owned(), value.to_owned()));
        }
        out
    }
}

/// Every form in `html`.
pub fn parse(html: &str) -> Vec<Form> {
    let mut forms = Vec::new();
    let mut current: Option<Form> = None;
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if let Some(after) = rest.strip_prefix("!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let Some((tag, attrs, after)) = read_tag(rest) else { break };
        rest = after;
        match tag.as_str() {
            "form" => {
                if let Some(done) = current.take() {
                    forms.push(done);
                }
                current = Some(Form {
                    id: attr(&attrs, "id"),
                    action: attr(&attrs, "action").unwrap_or_default(),
                    method: attr(&attrs, "method").unwrap_or_else(|| "get".into()).to_ascii_lowercase(),
                    ..Form::default()
                });
            }
            "/form" => {
                if let Some(done) = current.take() {
                    forms.push(done);
                }
            }
            "input" | "button" => {
                let Some(form) = current.as_mut() else { continue };
                let Some(name) = attr(&attrs, "name") else { continue };
                let kind =
                    attr(&attrs, "type").unwrap_or_else(|| if tag == "button" { "submit" } else { "text" }.into());
                let value = attr(&attrs, "value").unwrap_or_default();
                match kind.to_ascii_lowercase().as_str() {
                    "submit" => form.buttons.push((name, value)),
                    "button" | "reset" | "image" | "file" => {}
                    "checkbox" | "radio" if attrs.iter().all(|(k, _)| k != "checked") => {}
                    _ => form.inputs.push((name, value)),
                }
            }
            _ => {}
        }
    }
    if let Some(done) = current {
        forms.push(done);
    }
    forms
}

type Attrs = Vec<(String, String)>;

fn attr(attrs: &Attrs, name: &str) -> Option<String> {
    attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// Reads a tag after its `<`: the lowercased name (with a leading `/` for a closing tag), the
/// attributes with decoded values, and the text after the `>`.
fn read_tag(s: &str) -> Option<(String, Attrs, &str)> {
    let name_end = s.find(|c: char| c.is_ascii_whitespace() || c == '>' || (c == '/' && !s.starts_with('/')))?;
    let name = s[..name_end].to_ascii_lowercase();
    let mut attrs = Vec::new();
    let bytes = s.as_bytes();
    let mut i = name_end;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'>' {
            return Some((name, attrs, &s[i + 1..]));
        }
        let key_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let key = s[key_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let start = i + 1;
                let end = start + s[start..].find(quote as char)?;
                value = decode_entities(&s[start..end]);
                i = end + 1;
            } else {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&s[start..i]);
            }
        }
        if !key.is_empty() {
            attrs.push((key, value));
        }
    }
}

/// Decodes the character references a template engine writes: the five named ones and numeric ones.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((ch, end))
        });
        match decoded {
            Some((ch, end)) => {
                out.push(ch);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = r#"<!doctype html><html><body>
<!-- <form action="/nope"> -->
<form method="post" action="http://127.0.0.1:8080/oauth2/login" id="login-form">
<input type="hidden" name="request" value="response_type=code&amp;client_id=abc&amp;state=x%2Fy&#x27;z">
<input type="hidden" name="csrf_token" value="tok&#43;en">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="" autocomplete="username" required autofocus>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" class="primary" id="sign-in">Sign in</button>
</form></body></html>"#;

    const CONSENT: &str = r#"<form method="post" action="/oauth2/consent" id="consent-form">
<input type="hidden" name="request" value="a=1">
<input type=hidden name=csrf_token value=abc>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
<button type="submit" name="decision" value="allow" class="primary" id="allow">Allow</button>
</form>
<form method="post" action="/oauth2/logout" id="logout-form"><input type="hidden" name="csrf_token" value="lo"/>
<button type="submit" class="link" id="logout">Sign out</button></form>"#;

    #[test]
    fn login_form() {
        let forms = parse(LOGIN);
        assert_eq!(forms.len(), 1, "{forms:?}");
        let f = &forms[0];
        assert_eq!(f.id.as_deref(), Some("login-form"));
        assert_eq!(f.action, "http://127.0.0.1:8080/oauth2/login");
        assert_eq!(f.method, "post");
        assert_eq!(
            f.inputs,
            vec![
                ("request".into(), "response_type=code&client_id=abc&state=x%2Fy'z".into()),
                ("csrf_token".into(), "tok+en".into()),
                ("username".into(), String::new()),
                ("password".into(), String::new()),
            ]
        );
        assert!(f.buttons.is_empty(), "an unnamed button submits nothing");
        let sent = f.submission(&[("username", "bench"), ("password", "pw")], None);
        assert_eq!(sent[2], ("username".into(), "bench".into()));
        assert_eq!(sent[3], ("password".into(), "pw".into()));
        assert_eq!(sent.len(), 4);
    }

    #[test]
    fn consent_form_and_buttons() {
        let forms = parse(CONSENT);
        assert_eq!(forms.len(), 2);
        let f = &forms[0];
        assert_eq!(f.action, "/oauth2/consent");
        assert_eq!(f.inputs, vec![("request".into(), "a=1".into()), ("csrf_token".into(), "abc".into())]);
        assert!(f.has_button("decision", "allow") && f.has_button("decision", "deny"));
        let sent = f.submission(&[], Some(("decision", "allow")));
        assert_eq!(sent.last(), Some(&("decision".into(), "allow".into())));
        assert_eq!(sent.len(), 3);
        assert_eq!(forms[1].inputs, vec![("csrf_token".into(), "lo".into())]);
    }

    #[test]
    fn entities() {
        assert_eq!(decode_entities("a&amp;b&lt;&gt;&quot;&#39;&#x2F;&unknown;&"), "a&b<>\"'/&unknown;&");
        assert_eq!(decode_entities("no entities"), "no entities");
    }

    #[test]
    fn truncated_html_does_not_panic() {
        assert!(parse("<form action=\"x").is_empty());
        assert_eq!(parse("<form action=x><input name=a value=1").len(), 1);
        assert!(parse("<").is_empty());
    }
}
