//! Headless Chromium driven through Debian's chromedriver, and a static server for the test
//! pages in `tests/fixtures/pages`.
//!
//! `scripts/test.sh` installs `chromium` and `chromium-driver` and the official Plausible tracker
//! from npm (`tests/npm`). Chromium starts headless with its background networking off (this
//! machine has no internet) and maps every `*.test` host to 127.0.0.1, so one page server
//! serves several origins.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use thirtyfour::prelude::*;

use crate::{free_port, workspace_root};

/// Chromium and the driver, as Debian installs them (overridable for other systems).
fn chromium_paths() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("FOOTFALL_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let driver = std::env::var_os("FOOTFALL_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    for path in [&chromium, &driver] {
        assert!(
            path.exists(),
            "{} is missing: scripts/test.sh installs Debian's chromium and chromium-driver",
            path.display()
        );
    }
    (chromium, driver)
}

/// The user-agent the test browser sends: a desktop Chrome on Linux. Headless Chromium's own
/// says `HeadlessChrome`, which the collector rightly drops as automation.
pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/// One headless Chromium session with its own chromedriver and empty profile.
pub struct Browser {
    /// `None` once quit. (Dropping a live `WebDriver` would block the test's runtime while it
    /// ends the session synchronously, for minutes when the browser is stuck.)
    driver: Option<WebDriver>,
    chromedriver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let (chromium, driver_path) = chromium_paths();
        let port = free_port();
        let log = std::env::temp_dir().join(format!("footfall-chromedriver-{port}.log"));
        // Its own process group, so the browser it starts can be killed with it.
        let chromedriver = Command::new(driver_path)
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&chromium.display().to_string()).unwrap();
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-features=Translate,MediaRouter,OptimizationHints",
            "--window-size=1200,800",
            "--host-resolver-rules=MAP *.test 127.0.0.1",
        ] {
            caps.add_arg(arg).unwrap();
        }
        caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))
            .unwrap();
        caps.add_arg(&format!("--user-agent={BROWSER_UA}")).unwrap();
        let driver = WebDriver::new(url, caps)
            .await
            .expect("a Chromium session from chromedriver");
        Browser {
            driver: Some(driver),
            chromedriver,
            _profile: profile,
        }
    }

    pub fn driver(&self) -> &WebDriver {
        self.driver.as_ref().expect("the browser is running")
    }

    /// Saves a screenshot under `target/screenshots/NAME.png`, for a person to look at.
    pub async fn screenshot(&self, name: &str) {
        let dir = workspace_root().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        self.driver()
            .screenshot(&dir.join(format!("{name}.png")))
            .await
            .unwrap();
    }

    pub async fn quit(mut self) {
        if let Some(driver) = self.driver.take() {
            let _ = driver.quit().await;
        }
    }
}

impl Drop for Browser {
    /// Kills chromedriver and the browser (its process group). After a failed test the session
    /// was not quit: its handle is leaked rather than dropped, which would block (see above).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.chromedriver.id())])
            .status();
        let _ = self.chromedriver.wait();
        if let Some(driver) = self.driver.take() {
            std::mem::forget(driver);
        }
    }
}

/// Where `npm ci --prefix tests/npm` put the official Plausible tracker.
pub fn plausible_tracker() -> PathBuf {
    let path =
        workspace_root().join("tests/npm/node_modules/@plausible-analytics/tracker/plausible.js");
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh runs `npm ci --prefix tests/npm`",
        path.display()
    );
    path
}

/// The test pages over HTTP, with `{{STATS}}` and `{{PAGES}}` filled in.
pub struct PageServer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Pages {
    stats: String,
    port: u16,
}

impl PageServer {
    /// Serves the pages for a collector at `stats` (e.g. `http://stats.test:1234`).
    pub async fn start(stats: &str) -> PageServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let pages = Pages {
            stats: stats.to_string(),
            port,
        };
        let app = axum::Router::new()
            .route("/", axum::routing::get(index))
            .route("/vendor/plausible.js", axum::routing::get(vendor))
            .route("/{page}", axum::routing::get(page))
            .with_state(pages);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        PageServer { port, task }
    }

    /// The address of `path` on `host` (a `*.test` name).
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn index(State(pages): State<Pages>) -> Response {
    page(State(pages), Path("index.html".to_string())).await
}

async fn page(State(pages): State<Pages>, Path(name): Path<String>) -> Response {
    let valid = name.ends_with(".html")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let path = workspace_root().join("tests/fixtures/pages").join(&name);
    match std::fs::read_to_string(&path) {
        Ok(text) if valid => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            text.replace("{{STATS}}", &pages.stats)
                .replace("{{PAGES}}", &pages.port.to_string()),
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn vendor() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        std::fs::read(plausible_tracker()).unwrap(),
    )
        .into_response()
}
