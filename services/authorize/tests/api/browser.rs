//! A person in Debian's headless Chromium: opens the authorization URL, signs in, allows, and
//! arrives at the client with a code. Screenshots of the login and consent pages are kept.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use super::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_driver() -> (Driver, u16) {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: this test needs Debian's chromium and chromium-driver \
             (apt-get install chromium chromium-driver; .ci/run installs them)"
        );
    }
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (driver, port)
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("authorize-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).expect("screenshot file");
    assert!(bytes.len() > 1000, "{} is too small to be a page", path.display());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is a PNG", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_and_allows_in_chromium() {
    let (_driver, driver_port) = start_driver();
    // the client's redirect target: a page of its own
    let callback = testkit::spawn(None, |cfg: &mut web::ServiceConfig| {
        cfg.route(
            "/callback",
            web::get().to(|| async { HttpResponse::Ok().content_type("text/html").body("<h1>client got it</h1>") }),
        );
    });
    let redirect = callback.url("/callback");
    let env = Env::with_redirects(&[&redirect], "mcp:tools mcp:admin", |_| {}).await;
    let url = env
        .authorize_url(&format!("&scope=mcp:tools&resource={}", enc(RESOURCE)))
        .replace(&enc(REDIRECT), &enc(&redirect));

    let profile = tempfile::tempdir().expect("profile dir");
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        // a phone-sized window: the pages must read well there
        "--window-size=412,915".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": CHROMIUM, "args": args }));
    let c = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session with Chromium");

    let run = async {
        c.goto(&url).await?;
        let user = c.wait().for_element(Locator::Id("username")).await?;
        assert!(c.current_url().await?.as_str().contains("/oauth2/login?"));
        user.send_keys(USER).await?;
        c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
        let login_png = screenshot_dir().join("login.png");
        std::fs::write(&login_png, c.screenshot().await?).expect("write");
        assert_png(&login_png);
        c.find(Locator::Id("sign-in")).await?.click().await?;

        let allow = c.wait().for_element(Locator::Id("allow")).await?;
        let page = c.source().await?;
        assert!(page.contains("Test Client") && page.contains("Demo MCP") && page.contains("mcp:tools"), "{page}");
        let consent_png = screenshot_dir().join("consent.png");
        std::fs::write(&consent_png, c.screenshot().await?).expect("write");
        assert_png(&consent_png);
        eprintln!("screenshots: {} {}", login_png.display(), consent_png.display());
        allow.click().await?;

        let deadline = Instant::now() + Duration::from_secs(10);
        let landed = loop {
            let now = c.current_url().await?;
            if now.as_str().starts_with(&redirect) || Instant::now() > deadline {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let q = query(landed.as_str());
        assert!(q.get("code").is_some_and(|c| c.starts_with("spac_")), "{landed}");
        assert_eq!(q.get("iss").map(String::as_str), Some(env.issuer()));
        assert_eq!(q.get("state").map(String::as_str), Some("st&te"));
        Ok::<(), fantoccini::error::CmdError>(())
    };
    let outcome = run.await;
    c.close().await.ok();
    outcome.expect("the browser run");
    assert_eq!(env.count("authorization_codes").await, 1);
}
