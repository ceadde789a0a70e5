//! The README's commands, read out of README.md itself and run as written on an empty data
//! directory: the "Run it" line (site add, user add with the password on stdin, serve), then
//! `/healthz`, the "Sending events" curl line, the pixel and the script tag of "Adding it to a
//! site" in a real browser, the login page and a login with that password.
//!
//! The run line builds the release binary the first time (`scripts/test.sh` builds it first).
//! The Docker snippet's `footfall` commands run without Docker (no engine runs here).

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use footfall_tests::browser::{BROWSER_UA, Browser};
use footfall_tests::{free_port, workspace_root};

const PASSWORD: &str = "correct horse battery staple";

/// The first fenced block of `language` after the line that contains `marker`.
fn block_after(readme: &str, marker: &str, language: &str) -> String {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no `{marker}`"));
    let fence = format!("```{language}\n");
    let open = start
        + readme[start..]
            .find(&fence)
            .unwrap_or_else(|| panic!("no ```{language} block after `{marker}`"))
        + fence.len();
    let close = open + readme[open..].find("```").expect("the block ends");
    readme[open..close].trim().to_string()
}

/// A shell running a README block in its own process group, killed with it.
struct Shell {
    child: Child,
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        // Until every process of the group is gone, not only the shell: the collector it ran
        // drains and lets go of its store after the shell has exited.
        let group = format!("-{}", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let _ = self.child.try_wait();
            let alive = Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !alive {
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

async fn written(http: &reqwest::Client, base: &str) -> u64 {
    let Ok(r) = http.get(format!("{base}/metrics")).send().await else {
        return 0;
    };
    r.text()
        .await
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("footfall_events_written_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_written(http: &reqwest::Client, base: &str, want: u64, log: &std::path::Path) {
    let start = Instant::now();
    while written(http, base).await < want {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{want} events were not written: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_readme_commands_run_as_written() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let run = block_after(&readme, "**Run it**", "sh");
    assert!(run.contains("cargo run"), "{run}");
    let data = tempfile::tempdir().unwrap();
    // The README's address when it is free (the curl line below names it), else another.
    let port = if std::net::TcpListener::bind("127.0.0.1:8000").is_ok() {
        8000
    } else {
        free_port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let log = data.path().join("run.log");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&run)
        .current_dir(&root)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(data.path().join("run.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap());
    // A user's shell: no Footfall settings, and none of the variables cargo sets for a test
    // (build scripts that track them, ring's among them, would rerun, and DuckDB's engine would
    // be compiled again because of it).
    for (k, _) in std::env::vars() {
        let cargo_set = (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR")
            || k == "CARGO"
            || k == "OUT_DIR"
            || k == "RUSTC_BOOTSTRAP";
        if k.starts_with("FOOTFALL_") || cargo_set {
            cmd.env_remove(&k);
        }
    }
    cmd.env("FOOTFALL_DATA_DIR", data.path().join("data"))
        .env("FOOTFALL_LISTEN", format!("127.0.0.1:{port}"))
        .env("FOOTFALL_FLUSH_INTERVAL_MS", "50");
    let mut child = cmd.spawn().expect("sh");
    // `user add` reads the password from the first line of stdin when it is not a terminal.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let _shell = Shell { child };

    // Serving: the first run builds the release binary, which takes minutes.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "the run line did not serve: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // "Sending events": the curl line, to the address the README names.
    let curl = block_after(&readme, "## Sending events", "sh")
        .replace("http://127.0.0.1:8000", &base)
        .replace("\\\n", " ");
    let have_curl = Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut want = 0;
    if have_curl {
        let out = Command::new("sh")
            .args(["-c", &format!("{curl} -s -D - -o /dev/null")])
            .output()
            .unwrap();
        let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(headers.starts_with("http/1.1 202"), "{curl}: {headers}");
        assert!(!headers.contains("x-footfall-dropped"), "{curl}: {headers}");
        want += 1;
    } else {
        eprintln!("curl is not installed: the curl line is sent by reqwest instead");
        let r = http
            .post(format!("{base}/api/event"))
            .header("user-agent", BROWSER_UA)
            .header("content-type", "text/plain")
            .body(r#"{"n":"pageview","u":"https://example.com/pricing","d":"example.com","r":"https://www.google.com/"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        want += 1;
    }
    wait_written(&http, &base, want, &log).await;

    // "Adding it to a site": the pixel as written (its host is the collector's).
    let pixel = block_after(&readme, "Pages without JavaScript", "html");
    let src = pixel
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the pixel's src")
        .replace("https://stats.example.com", &base)
        .replace("&amp;", "&");
    let r = http
        .get(&src)
        .header("user-agent", BROWSER_UA)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{src}");
    assert_eq!(r.headers()["content-type"], "image/gif");
    assert!(r.headers().get("x-footfall-dropped").is_none(), "{src}");
    want += 1;
    wait_written(&http, &base, want, &log).await;

    // The script tag as written, on a page of the site, in Chromium.
    let tag = block_after(&readme, "## Adding it to a site", "html")
        .replace("https://stats.example.com", &base);
    assert!(tag.contains("data-domain=\"example.com\""), "{tag}");
    // The tracker sends nothing from an automated browser unless the page says it is a test.
    let page = format!(
        "<!doctype html><html><head><title>Pricing</title><script>window.__footfall = true</script>{tag}</head><body><h1>Pricing</h1></body></html>"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/pricing",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let browser = Browser::start().await;
    browser
        .driver()
        .goto(format!("http://pages.example.test:{page_port}/pricing"))
        .await
        .unwrap();
    want += 1;
    wait_written(&http, &base, want, &log).await;
    browser.quit().await;
    server.abort();

    // The login page, and a login with the password given on stdin.
    let r = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let r = http.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<html"));
    let r = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "admin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    // What was stored: the curl pageview, the pixel and the browser's pageview, each under
    // example.com (the site the run line added) and with its own page.
    drop(_shell);
    // The default store of this build, as the run line used it.
    let config = footfall::config::Config::load(
        None,
        [(
            "FOOTFALL_DATA_DIR".to_string(),
            data.path().join("data").display().to_string(),
        )],
    )
    .unwrap();
    let store = footfall::cli::open_store(&config).unwrap();
    let site = store
        .meta()
        .sites()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.domain == "example.com")
        .expect("the run line added example.com");
    assert_eq!(site.timezone, "Europe/Copenhagen");
    let events = store.read_events(site.id, 0, u32::MAX, 100).await.unwrap();
    let mut pages: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.name == "pageview")
        .map(|e| (e.hostname.as_str(), e.pathname.as_str()))
        .collect();
    pages.sort_unstable();
    assert_eq!(
        pages,
        [
            ("example.com", "/pricing"),
            ("example.com", "/pricing"),
            ("pages.example.test", "/pricing")
        ],
        "{events:?}"
    );
}

/// The Docker section's commands, less `docker compose exec [-it] footfall` (no Docker engine
/// runs here): the same `footfall` commands, run by the release binary the run line built, on
/// an empty data directory, with the password on stdin.
#[tokio::test]
async fn the_docker_sections_footfall_commands_run() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = block_after(&readme, "## Docker", "sh");
    // It asserts the binary is there (scripts/test.sh builds it).
    let bin = footfall_tests::footfall_bin();
    let data = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let args = line
            .strip_prefix("docker compose exec -it footfall footfall ")
            .or_else(|| line.strip_prefix("docker compose exec footfall footfall "))
            .unwrap_or_else(|| {
                panic!("not a `docker compose exec footfall footfall` line: {line}")
            });
        let mut child = Command::new(&bin)
            .args(args.split_whitespace())
            .env("FOOTFALL_DATA_DIR", data.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert_eq!(ran, 2, "{block}");
    let users = Command::new(&bin)
        .args(["user", "list"])
        .env("FOOTFALL_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&users.stdout).contains("admin@example.com"));
}
