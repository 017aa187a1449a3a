//! node-oidc-provider (tests/oidc-provider), a maintained OpenID provider from npm, as the federation
//! tests' company IdP and as the upstream authorization server of an `oauth2` route.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// How the provider is started (tests/oidc-provider/provider.mjs reads these from its environment).
pub struct OpOptions<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub redirect_uri: &'a str,
    /// More accounts, in a JSON file read on every lookup (`OP_ACCOUNTS`).
    pub accounts: Option<&'a Path>,
    /// RFC 7009 revocation and RFC 7662 introspection on (`OP_REVOCATION`).
    pub revocation: bool,
}

/// The provider on `port`, stopped when dropped.
pub struct Op {
    child: Child,
    pub port: u16,
}

impl Op {
    /// Starts the provider, with a fresh signing key, and waits until it serves.
    pub fn start(port: u16, options: &OpOptions<'_>) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "node-oidc-provider is not installed: run `npm ci --prefix tests/oidc-provider` (tests/run does)"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("OP_PORT", port.to_string())
            .env("OP_CLIENT_ID", options.client_id)
            .env("OP_CLIENT_SECRET", options.client_secret)
            .env("OP_REDIRECT_URIS", options.redirect_uri)
            .env("OP_ACCOUNTS", options.accounts.map(Path::as_os_str).unwrap_or_default())
            .env("OP_REVOCATION", if options.revocation { "1" } else { "" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs (Node.js 20 or later)");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the provider's first line");
        assert!(line.starts_with("listening"), "the provider did not start: {line}");
        // keep reading: a provider writing to a closed pipe would die of EPIPE
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, port }
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
