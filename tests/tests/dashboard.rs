//! The dashboard in a real browser: headless Chromium against `footfall serve` over a store
//! seeded with known events (`footfall_tests::seed`). Each test checks what a person sees and
//! saves a screenshot under `target/screenshots/`.

use std::time::{Duration, Instant};

use footfall::accounts::{self, Role, User};
use footfall_tests::browser::{Browser, PageServer};
use footfall_tests::{Backend, Process, TestStore, seed};
use serde_json::json;
use thirtyfour::prelude::*;

const WAIT: Duration = Duration::from_secs(15);
const ADMIN: &str = "admin@shop.test";
const VIEWER: &str = "viewer@shop.test";
const PASSWORD: &str = "correct horse battery";

struct Dash {
    t: TestStore,
    footfall: Process,
    browser: Browser,
    started: Instant,
}

impl Dash {
    /// `shop.test` and `other.test`, each seeded; an admin, and a viewer of `shop.test`.
    async fn start(test: &str) -> Dash {
        Dash::start_with(test, &[], &[]).await
    }

    /// The same, with more sites (domain and events) and settings. The closed days are then
    /// rolled up before the collector starts, so what a page reads does not depend on how
    /// far the collector's own rollups have got.
    async fn start_with(
        test: &str,
        more: &[(&str, Vec<footfall::store::EventRow>)],
        settings: &[(&str, &str)],
    ) -> Dash {
        let started = Instant::now();
        let t = TestStore::new(Backend::Sqlite, test).await;
        let now = chrono::Utc::now();
        for domain in ["shop.test", "other.test"] {
            let site = t.store.meta().add_site(domain, "UTC").await.unwrap();
            t.store
                .insert_events(seed::events(site.id, domain, now).into())
                .await
                .unwrap();
        }
        for (domain, rows) in more {
            let site = t.store.meta().add_site(domain, "UTC").await.unwrap();
            let rows: Vec<_> = rows
                .iter()
                .cloned()
                .map(|mut e| {
                    e.site_id = site.id;
                    e
                })
                .collect();
            t.store.insert_events(rows.into()).await.unwrap();
        }
        if !more.is_empty() {
            let policy = footfall::query::run::Policy {
                now,
                raw_retention_days: 30,
                deadline: footfall::store::Deadline::after(WAIT),
                sample_threshold: 0,
            };
            footfall::query::rollup::roll_up_closed_days(t.store.as_ref(), &policy, usize::MAX)
                .await
                .unwrap();
        }
        let hash = accounts::hash_password(PASSWORD).unwrap();
        for (email, role, sites) in [
            (ADMIN, Role::Admin, vec![]),
            (VIEWER, Role::Viewer, vec![1]),
        ] {
            let user = User {
                email: email.into(),
                password_hash: hash.clone(),
                role,
                sites,
                created_at: 0,
            };
            accounts::put_user(t.store.as_ref(), &user).await.unwrap();
        }
        let log = t.config.data_dir.with_file_name("footfall.log");
        let mut env = t.env();
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let footfall = Process::serve(&env, log).await;
        let browser = Browser::start().await;
        Dash {
            t,
            footfall,
            browser,
            started,
        }
    }

    fn step(&self, what: &str) {
        eprintln!("[{:6.2} s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn driver(&self) -> &WebDriver {
        self.browser.driver()
    }

    async fn open(&self, path: &str) {
        self.step(&format!("open {path}"));
        self.driver()
            .goto(format!("{}{path}", self.footfall.base))
            .await
            .unwrap();
    }

    /// The path and query of the page shown.
    async fn here(&self) -> String {
        let url = self.driver().current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits until `done` holds for the page's path and query.
    async fn wait_for_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        self.step(&format!("wait for the URL: {what}"));
        let start = Instant::now();
        loop {
            let here = self.here().await;
            if done(&here) {
                return here;
            }
            assert!(start.elapsed() < WAIT, "waited for {what}; at {here}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element `css` matches once it is not empty.
    async fn text(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            if let Ok(el) = self.driver().find(By::Css(css)).await
                && let Ok(text) = el.text().await
                && !text.trim().is_empty()
            {
                return text.trim().to_string();
            }
            assert!(
                start.elapsed() < WAIT,
                "nothing shown at `{css}` on {}",
                self.here().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the element at `css` shows `want`.
    async fn expect_text(&self, css: &str, want: &str) {
        self.step(&format!("expect `{css}` to show {want:?}"));
        let start = Instant::now();
        loop {
            let got = self.text(css).await;
            if got == want {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "`{css}` shows {got:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn expect_stat(&self, metric: &str, want: &str) {
        self.expect_text(&format!(".stat[data-metric='{metric}'] .value"), want)
            .await;
    }

    /// The (label, value) rows of the panel whose label is `panel`, once it has some.
    async fn rows(&self, panel: &str) -> Vec<(String, String)> {
        let css = format!("section[aria-label='{panel}'] button.row");
        self.text(&css).await;
        let rows = self
            .js(&format!("return [...document.querySelectorAll(\"{css}\")].map(b => [b.querySelector('.label').textContent, b.querySelector('.value').textContent])"))
            .await;
        serde_json::from_value(rows).unwrap()
    }

    /// Chooses `value` in the select labelled `label`, once it is shown.
    /// Chooses `value` in the select that `css` finds.
    async fn choose_named(&self, css: &str, value: &str) {
        self.text(css).await;
        self.js(&format!("const s = document.querySelector(\"{css}\"); s.value = '{value}'; s.dispatchEvent(new Event('change'))")).await;
    }

    async fn choose(&self, label: &str, value: &str) {
        self.text(&format!("select[aria-label='{label}']")).await;
        self.js(&format!("const s = document.querySelector(\"select[aria-label='{label}']\"); s.value = '{value}'; s.dispatchEvent(new Event('change'))")).await;
    }

    async fn click(&self, css: &str) {
        self.step(&format!("click {css}"));
        self.driver()
            .find(By::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Clicks the button whose text is `text` (waiting for it to appear).
    async fn click_text(&self, css: &str, text: &str) {
        self.step(&format!("click {css} {text:?}"));
        let start = Instant::now();
        loop {
            for el in self.driver().find_all(By::Css(css)).await.unwrap() {
                if el.text().await.unwrap_or_default().contains(text) {
                    el.click().await.unwrap();
                    return;
                }
            }
            assert!(start.elapsed() < WAIT, "no {css} with {text:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, css: &str, value: &str) {
        let el = self.driver().find(By::Css(css)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(value).await.unwrap();
    }

    async fn js(&self, script: &str) -> serde_json::Value {
        self.step(script);
        self.driver()
            .execute(script, Vec::new())
            .await
            .unwrap()
            .json()
            .clone()
    }

    /// Runs `script`, which ends by calling `done(value)`, and returns that value.
    async fn js_async(&self, script: &str) -> serde_json::Value {
        self.step(script);
        self.driver()
            .execute_async(
                format!("const done = arguments[arguments.length - 1];\n{script}"),
                Vec::new(),
            )
            .await
            .unwrap()
            .json()
            .clone()
    }

    /// Logs in on the login page shown, and waits to leave it.
    async fn log_in(&self, email: &str, password: &str) {
        self.step(&format!("log in as {email}"));
        self.wait_for_url("the login page", |u| u.starts_with("/login"))
            .await;
        self.fill("input[name=email]", email).await;
        self.fill("input[name=password]", password).await;
        self.click("form button[type=submit]").await;
        self.wait_for_url("to leave the login page", |u| !u.starts_with("/login"))
            .await;
    }

    /// Runs `script` until what it returns satisfies `ok`.
    async fn wait_for_js(
        &self,
        what: &str,
        script: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let got = self.js(script).await;
            if ok(&got) {
                return got;
            }
            assert!(start.elapsed() < WAIT, "waiting for {what}: {got}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finish(self, screenshot: &str) {
        self.step("screenshot");
        self.browser.screenshot(screenshot).await;
        self.browser.quit().await;
        eprintln!("[{:6.2} s] done", self.started.elapsed().as_secs_f64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_the_seeded_numbers_show() {
    let d = Dash::start("dash_numbers").await;
    d.open("/sites/shop.test").await;
    let login = d
        .wait_for_url("a redirect to the login", |u| u.starts_with("/login"))
        .await;
    assert_eq!(login, "/login?next=%2Fsites%2Fshop.test");
    d.browser.screenshot("dashboard-login").await;
    d.fill("input[name=email]", ADMIN).await;
    d.fill("input[name=password]", "not the password").await;
    d.click("form button[type=submit]").await;
    d.expect_text(".status.error", "wrong e-mail or password")
        .await;
    d.log_in(ADMIN, PASSWORD).await;
    assert_eq!(d.here().await, "/sites/shop.test");

    d.expect_stat("visitors", &seed::VISITORS_30D.to_string())
        .await;
    d.expect_stat("pageviews", &seed::PAGEVIEWS_30D.to_string())
        .await;
    d.expect_stat("bounce_rate", &format!("{}%", seed::BOUNCE_RATE_30D))
        .await;
    d.expect_stat("visits", "4").await;
    d.expect_stat("views_per_visit", "1.25").await;
    // Visit durations 20 s, 0, 0 and 30 s.
    d.expect_stat("visit_duration", "13s").await;
    d.expect_text(
        ".live",
        &format!("● {} current visitors", seed::VISITORS_TODAY),
    )
    .await;
    let row = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        d.rows("Sources").await,
        vec![
            row("Google", "2"),
            row("Direct / None", "1"),
            row("Hacker News", "1")
        ]
    );
    assert_eq!(
        d.rows("Pages").await,
        vec![row("/", "2"), row("/pricing", "2"), row("/blog", "1")]
    );
    // Countries are asked for by code; a tie goes by the code.
    assert_eq!(
        d.rows("Locations").await,
        vec![row("Germany", "2"), row("Denmark", "2")]
    );
    assert_eq!(d.rows("Custom events").await, vec![row("Signup", "1")]);
    // The chart has one point per day of the 30.
    let points = d
        .js("return document.querySelectorAll('.chart circle').length")
        .await;
    assert_eq!(points, json!(30));
    // An event's properties, from its row.
    d.click_text("section[aria-label='Custom events'] button.row", "Signup")
        .await;
    d.expect_text(".props h3", "Properties of “Signup”").await;
    assert_eq!(d.rows("plan").await, vec![row("pro", "1")]);
    // Downloads: a panel as CSV, and every panel as a ZIP.
    d.js("window.blobs = []; const make = URL.createObjectURL; URL.createObjectURL = (b) => { window.blobs.push(b); return make(b); }").await;
    d.click("section[aria-label=Sources] button[title^=Download]")
        .await;
    let csv = d
        .js_async("const wait = () => window.blobs.length ? window.blobs[0].text().then(done) : setTimeout(wait, 50); wait()")
        .await;
    assert_eq!(
        csv,
        json!(
            "Source,visitors,visits,pageviews\r\nGoogle,2,2,2\r\n,1,1,1\r\nHacker News,1,1,2\r\n"
        )
    );
    d.click_text("button", "Export ZIP").await;
    let zip = d
        .js_async("const wait = () => window.blobs.length > 1 ? window.blobs[1].arrayBuffer().then(a => done([window.blobs[1].type, String.fromCharCode(...new Uint8Array(a).slice(0, 2)), a.byteLength])) : setTimeout(wait, 50); wait()")
        .await;
    assert_eq!(zip[0], json!("application/zip"));
    assert_eq!(zip[1], json!("PK"));
    assert!(zip[2].as_u64().unwrap() > 1000, "{zip}");
    // Only this origin was contacted.
    let foreign = d
        .js("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))")
        .await;
    assert_eq!(foreign, json!([]));
    d.browser.screenshot("dashboard-admin").await;

    d.click("button[aria-label='Switch between light and dark theme']")
        .await;
    let bg = d
        .js("return getComputedStyle(document.body).backgroundColor")
        .await;
    d.step(&format!("background after the switch: {bg}"));
    let dark = d.js("return document.documentElement.dataset.theme").await;
    assert_eq!(dark, json!("dark"));
    d.browser.screenshot("dashboard-dark").await;
    d.driver().set_window_rect(0, 0, 390, 844).await.unwrap();
    d.open("/sites/shop.test").await;
    d.expect_stat("visitors", "4").await;
    let overflow = d
        .js("return document.documentElement.scrollWidth > window.innerWidth")
        .await;
    assert_eq!(overflow, json!(false), "the page is wider than a phone");
    d.finish("dashboard-phone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_ranges_and_comparison_live_in_the_url() {
    let d = Dash::start("dash_filters").await;
    d.open("/login").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.open("/sites/shop.test").await;
    d.expect_stat("visitors", "4").await;

    // A click on a row filters the whole dashboard.
    d.click_text("section[aria-label=Sources] button.row", "Google")
        .await;
    d.wait_for_url("the filter", |u| u.contains("f=visit%3Asource%3DGoogle"))
        .await;
    d.expect_text(".chips .chip", "Source is Google ✕").await;
    d.expect_stat("visitors", &seed::GOOGLE_VISITORS.to_string())
        .await;
    d.expect_stat("pageviews", "2").await;
    let pages: Vec<String> = d.rows("Pages").await.into_iter().map(|r| r.0).collect();
    assert_eq!(pages, ["/", "/pricing"]);
    d.browser.screenshot("dashboard-filtered").await;
    // Removing the chip removes the filter; the keyboard does it too.
    d.step("focus the chip and press Enter");
    let chip = d.driver().find(By::Css(".chips .chip")).await.unwrap();
    d.js("document.querySelector('.chips .chip').focus()").await;
    chip.send_keys(Key::Enter).await.unwrap();
    d.wait_for_url("no filter", |u| !u.contains("f=")).await;
    d.expect_stat("visitors", "4").await;
    assert!(d.driver().find(By::Css(".chips .chip")).await.is_err());

    // Another range.
    d.choose("Date range", "day").await;
    d.wait_for_url("today", |u| u.contains("period=day")).await;
    d.expect_stat("visitors", &seed::VISITORS_TODAY.to_string())
        .await;
    d.expect_stat("pageviews", "4").await;
    let hours = d
        .js("return document.querySelectorAll('.chart circle').length")
        .await;
    assert_eq!(hours, json!(24), "today is shown by hour");
    // The interval is chosen in the chart; by week, the last 30 days are 5 or 6 weeks.
    d.open("/sites/shop.test?period=30d").await;
    d.choose("Interval", "week").await;
    d.wait_for_url("by week", |u| u.contains("interval=week"))
        .await;
    d.step("wait for the weekly chart");
    let start = Instant::now();
    loop {
        let n = d
            .js("return document.querySelectorAll('.chart circle').length")
            .await;
        if n == json!(5) || n == json!(6) {
            break;
        }
        assert!(start.elapsed() < WAIT, "{n} points by week");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.open("/sites/shop.test?period=day").await;
    d.expect_stat("visitors", "3").await;

    // Comparison: a second, dashed line; the top stats show the change.
    d.click("label.toggle input").await;
    let url = d
        .wait_for_url("the comparison", |u| u.contains("compare=1"))
        .await;
    d.step("wait for the previous period's line");
    let start = Instant::now();
    while d
        .driver()
        .find(By::Css(".chart polyline.previous"))
        .await
        .is_err()
    {
        assert!(start.elapsed() < WAIT, "no comparison line");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.expect_text(".stat[data-metric=visitors] .change", "↑ 100%")
        .await;
    d.browser.screenshot("dashboard-compare").await;

    // The URL is the whole state: open it again, as from a bookmark, with a filter too.
    let bookmark = format!("{url}&f=visit%3Acountry_name%3DDenmark");
    d.open(&bookmark).await;
    d.expect_text(".chips .chip", "Country is Denmark ✕").await;
    d.expect_stat("visitors", "2").await;
    let state = d
        .js("return [document.querySelector('select[aria-label=\"Date range\"]').value, document.querySelector('label.toggle input').checked]")
        .await;
    assert_eq!(state, json!(["day", true]));

    // A custom range: three days ago only.
    let day = (chrono::Utc::now() - chrono::Duration::days(3))
        .date_naive()
        .to_string();
    d.open("/sites/shop.test").await;
    d.choose("Date range", "custom").await;
    d.js(&format!("document.querySelector('.custom input[name=from]').value = '{day}'; document.querySelector('.custom input[name=to]').value = '{day}'")).await;
    d.click(".custom button[type=submit]").await;
    d.wait_for_url("the custom range", |u| {
        u.contains(&format!("from={day}&to={day}"))
    })
    .await;
    d.expect_stat("visitors", "1").await;
    assert_eq!(
        d.rows("Pages").await,
        vec![("/pricing".to_string(), "1".to_string())]
    );
    d.finish("dashboard-custom-range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_link_is_framed_only_by_the_origins_it_lists() {
    let d = Dash::start("dash_embed").await;
    let pages = PageServer::start(&d.footfall.base).await;
    let store = d.t.store.as_ref();
    let blog = format!("http://blog.test:{}", pages.port);
    let (listed, _) = accounts::create_embeddable_share(store, 1, "blog", None, vec![blog], 0)
        .await
        .unwrap();
    let (unlisted, _) = accounts::create_share(store, 1, "press", None, 0)
        .await
        .unwrap();
    let frame = |host: &str, token: &str| {
        let src = format!(
            "{}/share/{token}?embed=true&theme=dark&background=%23102030",
            d.footfall.base
        );
        let src: String = src
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        pages.url(host, &format!("/frame.html?src={src}"))
    };
    // On the blog it lists: the dashboard, without its header, dark, on the blog's colour.
    d.step("open the blog's page");
    d.driver().goto(frame("blog.test", &listed)).await.unwrap();
    d.driver().enter_frame(0).await.unwrap();
    d.expect_stat("visitors", "4").await;
    let look = d
        .js("return [document.getElementById('top').children.length, document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor]")
        .await;
    assert_eq!(look, json!([0, "dark", "rgb(16, 32, 48)"]));
    d.driver().enter_default_frame().await.unwrap();
    d.browser.screenshot("embedded").await;
    // The same link on a page it does not list, and a link that lists no page: refused.
    for (host, token) in [("elsewhere.test", &listed), ("blog.test", &unlisted)] {
        d.step(&format!("open {host} framing a link"));
        d.driver().goto(frame(host, token)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        d.driver().enter_frame(0).await.unwrap();
        let shown = d
            .driver()
            .find_all(By::Css(".stat[data-metric='visitors']"))
            .await
            .unwrap();
        assert!(shown.is_empty(), "{host} shows the dashboard");
        d.driver().enter_default_frame().await.unwrap();
    }
    d.finish("embedded-refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_link_opens_logged_out_and_read_only() {
    let d = Dash::start("dash_shared").await;
    let store = d.t.store.as_ref();
    let (token, _) = accounts::create_share(store, 1, "press", None, 0)
        .await
        .unwrap();
    d.open(&format!("/share/{token}")).await;
    d.expect_stat("visitors", "4").await;
    d.expect_text("main h1", "shop.test").await;
    let links = d
        .js("return [...document.querySelectorAll('a, button')].map(e => e.textContent).filter(t => /Settings|Log out|Users/.test(t))")
        .await;
    assert_eq!(links, json!([]), "no management on a shared link");
    // A filter works on it too, and keeps the link.
    d.click_text("section[aria-label=Sources] button.row", "Hacker News")
        .await;
    let url = d
        .wait_for_url("the filter", |u| u.contains("f=visit%3Asource%3DHacker"))
        .await;
    assert!(url.starts_with(&format!("/share/{token}?")), "{url}");
    d.expect_stat("visitors", "1").await;
    // The page's own requests cannot change anything.
    let status = d
        .js_async(&format!("fetch('/api/sites', {{method: 'POST', headers: {{'content-type': 'application/json', 'x-footfall-share': '{token}'}}, body: JSON.stringify({{domain: 'evil.test'}})}}).then(r => done(r.status))"))
        .await;
    assert_eq!(status, json!(403));
    assert_eq!(d.t.store.meta().sites().await.unwrap().len(), 2);
    d.browser.screenshot("shared-link").await;

    // With a password: asked first, refused when wrong.
    let hash = accounts::hash_password("press password 1").unwrap();
    let (locked, _) = accounts::create_share(store, 1, "locked", Some(hash), 0)
        .await
        .unwrap();
    d.open(&format!("/share/{locked}")).await;
    d.expect_text("main h1", "This dashboard is protected")
        .await;
    d.browser.screenshot("shared-link-password").await;
    d.fill("input[name=password]", "wrong one").await;
    d.click("form button[type=submit]").await;
    d.expect_text(".status.error", "wrong password").await;
    d.fill("input[name=password]", "press password 1").await;
    d.click("form button[type=submit]").await;
    d.expect_stat("visitors", "4").await;
    // Revoked, the link shows nothing.
    accounts::revoke_share(store, &token[..8]).await.unwrap();
    d.open(&format!("/share/{token}")).await;
    d.expect_text("main .error", "this shared link is invalid or revoked")
        .await;
    d.finish("shared-link-revoked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_on_the_chart_are_added_shown_and_shared() {
    let d = Dash::start("dash_notes").await;
    d.open("/sites/shop.test").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.expect_stat("visitors", &seed::VISITORS_30D.to_string())
        .await;
    let ago = |n: i64| {
        (chrono::Utc::now() - chrono::Duration::days(n))
            .date_naive()
            .to_string()
    };
    let notes = "return [...document.querySelectorAll('.chart .notes li')].map(li => li.firstChild.textContent + ' ' + li.childNodes[1].textContent.trim())";
    let marks = "return [...document.querySelectorAll('.chart svg text.note title')].map(t => t.textContent)";
    for (day, text, personal) in [
        (ago(3), "Launched the pricing page", false),
        (ago(10), "Only mine", true),
    ] {
        d.click_text(".chart button", "Add note").await;
        d.js(&format!(
            "document.querySelector('.chart input[name=date]').value = '{day}'"
        ))
        .await;
        d.fill(".chart input[name=text]", text).await;
        if personal {
            d.click(".chart input[name=personal]").await;
        }
        d.click(".chart form button[type=submit]").await;
        d.wait_for_js("the note in the list", notes, |v| {
            v.as_array().unwrap().iter().any(|n| {
                n == &json!(format!(
                    "{day} {text}{}",
                    if personal { " (only you)" } else { "" }
                ))
            })
        })
        .await;
    }
    // Each is marked on its day of the chart.
    let mut shown: Vec<String> = serde_json::from_value(d.js(marks).await).unwrap();
    shown.sort();
    let mut want = vec![
        format!("{}: Launched the pricing page", ago(3)),
        format!("{}: Only mine", ago(10)),
    ];
    want.sort();
    assert_eq!(shown, want);
    let stored = footfall::annotations::list(
        d.t.store.as_ref(),
        1,
        chrono::NaiveDate::MIN,
        chrono::NaiveDate::MAX,
        None,
    )
    .await
    .unwrap();
    assert_eq!(stored.len(), 1, "the personal note is its author's only");
    assert_eq!(stored[0].author, ADMIN);
    d.browser.screenshot("chart-notes").await;

    // A shared link shows the site-wide note, with no way to add or delete one.
    let (token, _) = accounts::create_share(d.t.store.as_ref(), 1, "press", None, 0)
        .await
        .unwrap();
    d.driver().delete_all_cookies().await.unwrap();
    d.open(&format!("/share/{token}")).await;
    d.wait_for_js("the shared note", notes, |v| {
        v == &json!([format!("{} Launched the pricing page", ago(3))])
    })
    .await;
    let buttons = d
        .js("return [...document.querySelectorAll('.chart button')].map(b => b.textContent).filter(t => t === 'Add note' || t === '✕')")
        .await;
    assert_eq!(buttons, json!([]));
    d.finish("chart-notes-shared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_api_keys_are_made_shown_once_and_revoked_on_the_users_page() {
    let d = Dash::start("dash_sites_keys").await;
    d.open("/users").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.wait_for_js(
        "the keys card",
        "return !!document.querySelector(\"section[aria-label='Sites API keys'] input[name=label]\")",
        |v| v == &json!(true),
    )
    .await;
    d.fill(
        "section[aria-label='Sites API keys'] input[name=label]",
        "provisioning",
    )
    .await;
    d.choose_named(
        "section[aria-label='Sites API keys'] select[name=scope]",
        "sites:provision",
    )
    .await;
    d.click("section[aria-label='Sites API keys'] form button[type=submit]")
        .await;
    let key = d
        .wait_for_js(
            "the new key",
            "const c = document.querySelector(\"section[aria-label='Sites API keys'] code.secret\"); return c ? c.textContent : null",
            |v| v.as_str().is_some_and(|k| k.starts_with("ff_")),
        )
        .await;
    let key = key.as_str().unwrap().to_string();
    let listed = d
        .js("return [...document.querySelectorAll(\"section[aria-label='Sites API keys'] li\")].map(li => li.firstChild.textContent)")
        .await;
    assert_eq!(
        listed,
        json!([format!("{} · sites:provision · provisioning ", &key[3..11])])
    );
    // The key lists the sites through Plausible's route, then is revoked.
    let sites = format!(
        "fetch('/api/v1/sites', {{headers: {{authorization: 'Bearer {key}'}}}}).then(r => r.json().then(b => done([r.status, b])))"
    );
    let answer = d.js_async(&sites).await;
    assert_eq!(answer[0], 200, "{answer}");
    assert_eq!(answer[1]["sites"].as_array().unwrap().len(), 2, "{answer}");
    d.click_text("section[aria-label='Sites API keys'] li button", "Revoke")
        .await;
    d.wait_for_js(
        "the key to go",
        "return document.querySelectorAll(\"section[aria-label='Sites API keys'] li\").length",
        |v| v == &json!(0),
    )
    .await;
    let answer = d.js_async(&sites).await;
    assert_eq!(answer[0], 401, "{answer}");
    d.finish("sites-api-keys").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_refused_a_site_not_granted() {
    let d = Dash::start("dash_viewer").await;
    d.open("/").await;
    d.log_in(VIEWER, PASSWORD).await;
    let sites = d.text("ul.sites").await;
    assert!(
        sites.contains("shop.test") && !sites.contains("other.test"),
        "{sites}"
    );
    d.expect_text("ul.sites .muted", "4 visitors in 7 days")
        .await;
    d.open("/sites/other.test").await;
    d.expect_text(".stats .error", "no site `other.test` for this account")
        .await;
    d.browser.screenshot("viewer-refused").await;
    let status = d
        .js_async("fetch('/api/v2/query', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({site_id: 'other.test', metrics: ['visitors'], date_range: '30d'})}).then(r => done(r.status))")
        .await;
    assert_eq!(status, json!(404));
    d.open("/sites/shop.test/settings").await;
    d.expect_text("main .error", "only an admin may see this")
        .await;
    d.finish("viewer-settings-refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_without_the_csrf_token_is_refused() {
    let d = Dash::start("dash_csrf").await;
    d.open("/").await;
    d.log_in(ADMIN, PASSWORD).await;
    let add = "(csrf) => fetch('/api/sites', {method: 'POST', headers: Object.assign({'content-type': 'application/json'}, csrf ? {'x-csrf-token': csrf} : {}), body: JSON.stringify({domain: 'new.test'})}).then(r => r.status)";
    let without = d.js_async(&format!("({add})(null).then(done)")).await;
    assert_eq!(without, json!(403));
    assert_eq!(d.t.store.meta().sites().await.unwrap().len(), 2);
    let with = d
        .js_async(&format!(
            "fetch('/api/auth/me').then(r => r.json()).then(me => ({add})(me.csrf)).then(done)"
        ))
        .await;
    assert_eq!(with, json!(201));
    assert_eq!(d.t.store.meta().sites().await.unwrap().len(), 3);

    // The settings page: snippet, a new key shown once, a new shared link.
    d.open("/sites/shop.test/settings").await;
    let snippet = d.text(".secret code").await;
    assert!(
        snippet.contains("data-domain=\"shop.test\"") && snippet.contains("/js/script.js"),
        "{snippet}"
    );
    d.click_text("button", "New API key").await;
    let key = d.text("section:nth-of-type(3) .secret code").await;
    assert!(key.starts_with("ff_") && key.len() == 51, "{key}");
    assert_eq!(d.t.store.meta().api_keys().await.unwrap().len(), 1);
    d.browser.screenshot("settings").await;
    d.open("/users").await;
    let users = d.text("table").await;
    assert!(users.contains(VIEWER) && users.contains(ADMIN), "{users}");
    d.finish("users").await;
}

/// A count as the dashboard shows one under 10,000: with thousands separators.
fn shown(n: usize) -> String {
    assert!(n < 10_000, "the dashboard shows {n} in compact form");
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_dashboard_says_so_and_offers_the_exact_figures() {
    // 8,000 pageviews over the last 30 days and a threshold of 500 rows; the view is filtered
    // by a source. Once the collector has rolled up the closed days, the top stats read their
    // visit rows (about 2,000, plus today's raw events: one visitor in 5 fits), and the top
    // pages read raw events (about 7,800: one in 20). The page names the smallest share.
    let now = chrono::Utc::now();
    let rows: Vec<_> = footfall_tests::volume::events(8_000, now).collect();
    // The independent counts: visitor hashes per day over `30d` (the 30 UTC days up to today)
    // of the visits from Google; and of those, the visitors in the top stats' sample, the
    // lowest fifth of hashes.
    let first = now.date_naive() - chrono::Days::new(29);
    let visitors: std::collections::BTreeSet<_> = rows
        .iter()
        .filter(|e| e.referrer_source == "Google")
        .map(|e| {
            let day = chrono::DateTime::from_timestamp(i64::from(e.timestamp), 0).unwrap();
            (e.visitor_id, day.date_naive())
        })
        .filter(|(_, day)| *day >= first)
        .collect();
    let in_sample = visitors.iter().filter(|(v, _)| *v <= u64::MAX / 5).count();
    assert!(in_sample > 0 && in_sample < visitors.len(), "a real sample");
    let d = Dash::start_with(
        "dash_sampled",
        &[("big.test", rows)],
        &[("FOOTFALL_SAMPLING_THRESHOLD", "500")],
    )
    .await;
    d.open("/login").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.open("/sites/big.test?f=visit%3Asource%3DGoogle").await;
    d.expect_text(
        ".sample-note",
        "Estimated from 5% of visitors: counts are scaled up from a sample. Show exact figures",
    )
    .await;
    // Counted from the sample, scaled up by 5.
    d.expect_stat("visitors", &shown(in_sample * 5)).await;
    d.browser.screenshot("dashboard-sampled").await;
    d.click_text(".sample-note a", "Show exact figures").await;
    d.wait_for_url("the exact view", |u| {
        u.contains("exact=1") && u.contains("source%3DGoogle")
    })
    .await;
    d.expect_text(
        ".sample-note",
        "Exact figures: every visitor is counted. Allow estimates (faster)",
    )
    .await;
    d.expect_stat("visitors", &shown(visitors.len())).await;
    // A small site is never sampled: no note.
    d.open("/sites/shop.test").await;
    d.expect_stat("visitors", &seed::VISITORS_30D.to_string())
        .await;
    let hidden = d
        .js("return document.querySelector('.sample-note').hidden")
        .await;
    assert_eq!(hidden, json!(true));
    d.finish("dashboard-exact").await;
}

/// A Plausible export of `days` days (each with 10 visitors from Google, 20 pageviews),
/// the first `first_ago` days before today, in Plausible's file layout.
fn plausible_export(path: &std::path::Path, first_ago: i64, days: i64) {
    use std::io::Write as _;
    let today = chrono::Utc::now().date_naive();
    let dates: Vec<_> = (0..days)
        .map(|i| today - chrono::Duration::days(first_ago - i))
        .collect();
    let suffix = format!(
        "_{}_{}.csv",
        dates[0].format("%Y%m%d"),
        dates[dates.len() - 1].format("%Y%m%d")
    );
    let mut visitors = String::from(
        "\"date\",\"visitors\",\"pageviews\",\"bounces\",\"visits\",\"visit_duration\"\n",
    );
    let mut sources = String::from(
        "\"date\",\"source\",\"referrer\",\"utm_source\",\"utm_medium\",\"utm_campaign\",\"utm_content\",\"utm_term\",\"pageviews\",\"visitors\",\"visits\",\"visit_duration\",\"bounces\"\n",
    );
    let mut locations = String::from(
        "\"date\",\"country\",\"region\",\"city\",\"visitors\",\"visits\",\"visit_duration\",\"bounces\"\n",
    );
    for d in &dates {
        locations.push_str(&format!("\"{d}\",\"SE\",\"SE-AB\",0,10,10,300,5\n"));
        visitors.push_str(&format!("\"{d}\",10,20,5,10,300\n"));
        sources.push_str(&format!(
            "\"{d}\",\"Google\",\"google.com\",\"\",\"\",\"\",\"\",\"\",20,10,10,300,5\n"
        ));
    }
    let mut zip = zip::ZipWriter::new_stream(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in [
        ("visitors", visitors),
        ("sources", sources),
        ("locations", locations),
    ] {
        zip.start_file(format!("imported_{name}{suffix}"), options)
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_history_is_uploaded_marked_and_can_be_hidden() {
    let d = Dash::start("dash_imports").await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("shop_test_20261201.zip");
    // Three days, 12 to 10 days ago: no day of the seed's.
    plausible_export(&archive, 12, 3);
    d.open("/sites/shop.test/settings").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.expect_text("section:nth-of-type(4) h2", "Imports and exports")
        .await;
    d.expect_text(
        "section:nth-of-type(4) .muted + div .muted",
        "No imports yet.",
    )
    .await;
    d.driver()
        .find(By::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(archive.to_str().unwrap())
        .await
        .unwrap();
    d.click_text("button", "Import").await;
    let status = d.text("section:nth-of-type(4) p[role=status]").await;
    d.step(&format!("import status: {status}"));
    let start = Instant::now();
    loop {
        let status = d.text("section:nth-of-type(4) p[role=status]").await;
        if status.starts_with("imported 3 days") {
            break;
        }
        assert!(start.elapsed() < WAIT, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = d.text("section:nth-of-type(4) ul.plain li").await;
    assert!(
        listed.starts_with("Plausible: shop_test_20261201.zip") && listed.contains("3 days"),
        "{listed}"
    );
    d.browser.screenshot("settings-imports").await;

    // The dashboard adds the 30 imported visitors to the seed's 4, and says so.
    d.open("/sites/shop.test").await;
    d.expect_stat("visitors", &(seed::VISITORS_30D + 30).to_string())
        .await;
    let note = d.text(".import-note").await;
    assert!(note.contains("includes imported data"), "{note}");
    let row = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(d.rows("Sources").await[0], row("Google", "32"));
    // Countries come by code, so imported ones show, named like the tracker's.
    let countries = d.rows("Locations").await;
    assert_eq!(countries[0], row("Sweden", "30"), "{countries:?}");
    assert!(
        countries.iter().any(|(c, _)| c == "Denmark"),
        "{countries:?}"
    );
    d.browser.screenshot("dashboard-imports").await;
    d.click_text(".import-note a", "Hide imported data").await;
    d.wait_for_url("imports hidden", |u| u.contains("imports=0"))
        .await;
    d.expect_stat("visitors", &seed::VISITORS_30D.to_string())
        .await;
    d.expect_text(
        ".import-note",
        "Imported data is hidden. Show imported data",
    )
    .await;

    // Deleted from the settings: gone from the dashboard.
    d.open("/sites/shop.test/settings").await;
    d.click_text("section:nth-of-type(4) button", "Delete")
        .await;
    d.expect_text(
        "section:nth-of-type(4) .muted + div .muted",
        "No imports yet.",
    )
    .await;
    d.open("/sites/shop.test").await;
    d.expect_stat("visitors", &seed::VISITORS_30D.to_string())
        .await;
    d.finish("dashboard-imports-deleted").await;
}

/// Adds a goal through the settings form (open on the settings page) and waits for its name.
async fn add_goal(d: &Dash, kind: &str, target: &str, name: &str) {
    add_goal_with(d, kind, target, &[], name).await;
}

/// The same, filling more of the form's fields (by input name) first.
async fn add_goal_with(d: &Dash, kind: &str, target: &str, more: &[(&str, &str)], name: &str) {
    d.choose("Goal type", kind).await;
    d.fill("section:nth-of-type(6) input[name=target]", target)
        .await;
    for (field, value) in more {
        d.fill(
            &format!("section:nth-of-type(6) input[name={field}]"),
            value,
        )
        .await;
    }
    d.click_text("section:nth-of-type(6) button", "Add goal")
        .await;
    d.expect_text(
        "section:nth-of-type(6) p[role=status]",
        &format!("Added goal “{name}”."),
    )
    .await;
}

/// The seed's rows of the Goals panel: (goal, uniques, total, conversion rate).
async fn goal_rows(d: &Dash) -> Vec<Vec<String>> {
    let css = "section[aria-label='Goals'] button.row";
    d.text(css).await;
    let rows = d
        .js(&format!("return [...document.querySelectorAll(\"{css}\")].map(b => [...b.querySelectorAll('.label, .value')].map(s => s.textContent))"))
        .await;
    serde_json::from_value(rows).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_are_added_in_the_settings_and_shown_with_their_conversions() {
    let d = Dash::start("dash_goals").await;
    d.open("/sites/shop.test/settings").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.expect_text("section:nth-of-type(6) h2", "Goals").await;
    d.expect_text(
        "section:nth-of-type(6) .muted + div .muted",
        "No goals yet.",
    )
    .await;
    // A pageview goal, then a custom event goal.
    add_goal(&d, "pageview", "/pricing", "Visit /pricing").await;
    add_goal(&d, "event", "Signup", "Signup").await;
    // A mistake is named and adds nothing (the form starts again at a pageview goal).
    d.choose("Goal type", "event").await;
    d.fill("section:nth-of-type(6) input[name=target]", "Signup")
        .await;
    d.click_text("section:nth-of-type(6) button", "Add goal")
        .await;
    let status = d.text("section:nth-of-type(6) p.status.error").await;
    assert!(status.contains("already counts this"), "{status}");

    // The seed's 4 visitors: 2 saw /pricing, 1 signed up.
    d.open("/sites/shop.test").await;
    let rows = goal_rows(&d).await;
    assert_eq!(
        rows,
        vec![
            vec!["Visit /pricing", "2", "2", "50%"],
            vec!["Signup", "1", "1", "25%"]
        ],
        "{rows:?}"
    );
    d.browser.screenshot("dashboard-goals").await;
    // A click filters by the goal: the top stats are its conversions.
    d.click_text("section[aria-label='Goals'] button.row .label", "Signup")
        .await;
    d.wait_for_url("the goal filter", |u| u.contains("f=event%3Agoal%3DSignup"))
        .await;
    d.expect_text(".chips .chip", "Goal is Signup ✕").await;
    d.expect_stat("visitors", "1").await;
    d.expect_stat("conversion_rate", "25%").await;

    // Deleted in the settings: gone from the panel.
    d.open("/sites/shop.test/settings").await;
    d.text("section:nth-of-type(6) ul.plain li").await;
    d.click("button[aria-label='Delete goal Visit /pricing']")
        .await;
    d.open("/sites/shop.test").await;
    let rows = goal_rows(&d).await;
    assert_eq!(rows, vec![vec!["Signup", "1", "1", "25%"]], "{rows:?}");
    d.finish("dashboard-goals-deleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scroll_and_revenue_goals_show_in_the_goals_panel() {
    // Yesterday: visitor 1 read /article to 80 % and bought for €10; visitor 2 stopped at
    // 30 % (and came back to 40 %); visitor 3 bought for €5.50 from the home page.
    let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let at = |h: u32| {
        yesterday
            .and_hms_opt(h, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp() as u32
    };
    let row = |visitor: u64, ts: u32, name: &str, path: &str| footfall::store::EventRow {
        timestamp: ts,
        name: name.into(),
        hostname: "store.test".into(),
        pathname: path.into(),
        visitor_id: visitor,
        session_id: 100 + visitor,
        scroll_depth: 255,
        ..footfall::store::EventRow::default()
    };
    let engaged = |visitor: u64, ts: u32, path: &str, depth: u8| footfall::store::EventRow {
        engagement_ms: 5_000,
        scroll_depth: depth,
        ..row(visitor, ts, "engagement", path)
    };
    let bought = |visitor: u64, ts: u32, path: &str, micros: i64| footfall::store::EventRow {
        revenue_micros: micros,
        revenue_currency: "EUR".into(),
        ..row(visitor, ts, "Purchase", path)
    };
    let rows = vec![
        row(1, at(9), "pageview", "/article"),
        engaged(1, at(9) + 60, "/article", 80),
        bought(1, at(9) + 90, "/article", 10_000_000),
        row(2, at(10), "pageview", "/article"),
        engaged(2, at(10) + 30, "/article", 30),
        engaged(2, at(10) + 50, "/article", 40),
        row(3, at(11), "pageview", "/"),
        bought(3, at(11) + 20, "/", 5_500_000),
    ];
    let d = Dash::start_with("dash_goal_kinds", &[("store.test", rows)], &[]).await;
    d.open("/sites/store.test/settings").await;
    d.log_in(ADMIN, PASSWORD).await;
    add_goal_with(
        &d,
        "scroll",
        "/article",
        &[("scroll_threshold", "50")],
        "Scroll 50% on /article",
    )
    .await;
    add_goal_with(&d, "event", "Purchase", &[("currency", "eur")], "Purchase").await;
    let listed = d
        .js("return [...document.querySelectorAll('section:nth-of-type(6) ul.plain li')].map(l => l.textContent)")
        .await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "Scroll 50% on /article scroll past 50% of /article Delete"),
        "{listed}"
    );

    d.open("/sites/store.test?period=7d").await;
    let rows = goal_rows(&d).await;
    assert_eq!(
        rows,
        vec![
            vec!["Purchase", "2", "2", "66.7%", "€15.5"],
            vec!["Scroll 50% on /article", "1", "—", "33.3%", "—"]
        ],
        "{rows:?}"
    );
    d.finish("dashboard-goal-kinds").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privacy_notice_is_written_in_the_settings() {
    let d = Dash::start("dash_notice").await;
    d.open("/sites/shop.test/settings").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.expect_text("section:nth-of-type(7) h2", "Privacy notice")
        .await;
    d.choose_named("section:nth-of-type(7) select[name=lang]", "da")
        .await;
    d.fill(
        "section:nth-of-type(7) input[name=controller]",
        "Shop ApS, privacy@shop.test",
    )
    .await;
    d.click_text("section:nth-of-type(7) button", "Write notice")
        .await;
    d.expect_text(
        "section:nth-of-type(7) p[role=status]",
        "Written from the current settings.",
    )
    .await;
    let text: String = serde_json::from_value(
        d.js("return document.querySelector('textarea[name=notice]').value")
            .await,
    )
    .unwrap();
    assert!(
        text.starts_with("# Besøgsstatistik på shop.test\n"),
        "{text}"
    );
    assert!(
        text.contains("Shop ApS, privacy@shop.test er dataansvarlig"),
        "{text}"
    );
    // The collector's own retention (the test configuration's 30 days).
    assert!(text.contains("med den daglige kode): 30 dage"), "{text}");
    d.finish("dashboard-privacy-notice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitors_request_is_answered_in_the_settings() {
    let d = Dash::start("dash_subject").await;
    // A visit to shop.test from this machine, with a browser's user-agent.
    let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
    let sent = reqwest::Client::new()
        .post(format!("{}/api/event", d.footfall.base))
        .header("user-agent", ua)
        .header("content-type", "text/plain")
        .body(r#"{"n":"pageview","u":"https://shop.test/asked-about","d":"shop.test"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202, "{:?}", sent.headers());
    d.open("/sites/shop.test/settings").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.expect_text("section:nth-of-type(8) h2", "Visitor requests")
        .await;
    let ask = |action: &'static str| {
        let d = &d;
        async move {
            d.fill("section:nth-of-type(8) input[name=ip]", "127.0.0.1")
                .await;
            d.fill("section:nth-of-type(8) input[name=ua]", ua).await;
            d.choose_named("section:nth-of-type(8) select[name=action]", action)
                .await;
            d.js("window.confirm = () => true").await;
            d.click_text("section:nth-of-type(8) button", "Answer the request")
                .await;
        }
    };
    // The event is written within the collector's flush interval.
    let mut found = String::new();
    for _ in 0..20 {
        ask("find").await;
        found = d.text("section:nth-of-type(8) p[role=status]").await;
        if found == "Found 1 event(s)." {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(found, "Found 1 event(s).");
    let text = d.text("section:nth-of-type(8) pre.subject").await;
    assert!(text.contains("pageview shop.test/asked-about"), "{text}");
    ask("erase").await;
    d.expect_text(
        "section:nth-of-type(8) p[role=status]",
        "Erased 1 event(s).",
    )
    .await;
    ask("find").await;
    d.expect_text("section:nth-of-type(8) p[role=status]", "Found 0 event(s).")
        .await;
    let text = d.text("section:nth-of-type(8) pre.subject").await;
    assert!(text.contains("GDPR Article 11"), "{text}");
    d.finish("dashboard-visitor-request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_funnel_of_goals_is_drawn_from_the_chosen_steps() {
    let d = Dash::start("dash_funnel").await;
    d.open("/sites/shop.test/settings").await;
    d.log_in(ADMIN, PASSWORD).await;
    add_goal(&d, "pageview", "/pricing", "Visit /pricing").await;
    add_goal(&d, "event", "Signup", "Signup").await;
    // The seed: visitors 1 and 4 saw /pricing; visitor 4 then signed up in the same visit.
    d.open("/sites/shop.test").await;
    d.choose("Step 1", "Visit /pricing").await;
    d.choose("Step 2", "Signup").await;
    d.click_text("section[aria-label='Funnel'] button", "Show funnel")
        .await;
    let css = "section[aria-label='Funnel'] .row.step";
    d.text(css).await;
    let rows: Vec<Vec<String>> = serde_json::from_value(
        d.js(&format!("return [...document.querySelectorAll(\"{css}\")].map(b => [...b.querySelectorAll('.label, .value')].map(s => s.textContent))"))
            .await,
    )
    .unwrap();
    assert_eq!(
        rows,
        vec![
            vec!["1. Visit /pricing", "2", "", "100%"],
            vec!["2. Signup", "1", "1", "50%"]
        ],
        "{rows:?}"
    );
    // The funnel is kept in the URL: the link shows it again at once.
    let url = d
        .wait_for_url("the funnel", |u| {
            u.contains("funnel=Visit+%2Fpricing&funnel=Signup")
        })
        .await;
    d.open("/sites/other.test").await;
    d.open(&url).await;
    d.text(css).await;
    let again: Vec<Vec<String>> = serde_json::from_value(
        d.js(&format!("return [...document.querySelectorAll(\"{css}\")].map(b => [...b.querySelectorAll('.label, .value')].map(s => s.textContent))"))
            .await,
    )
    .unwrap();
    assert_eq!(again, rows);
    d.finish("dashboard-funnel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_exclusions_and_deletion_are_set_in_the_settings() {
    let d = Dash::start("dash_controls").await;
    d.open("/sites/shop.test/settings").await;
    d.log_in(ADMIN, PASSWORD).await;
    let rules = "section:nth-of-type(9)";
    d.expect_text(&format!("{rules} h2"), "Retention and exclusions")
        .await;
    d.fill(&format!("{rules} input[name=raw]"), "7").await;
    // This machine's own requests (the test sends from loopback), and a page.
    d.fill(&format!("{rules} textarea[name=ips]"), "127.0.0.0/8")
        .await;
    d.fill(&format!("{rules} textarea[name=pages]"), "/private/*")
        .await;
    d.click_text(&format!("{rules} button"), "Save retention and exclusions")
        .await;
    d.expect_text(
        &format!("{rules} p[role=status]"),
        "Saved: raw events kept 7 days, daily totals 1825 days; 1 address(es), 0 country(ies), 1 page(s) excluded.",
    )
    .await;
    // A mistake is named, and the saved settings stay.
    d.fill(&format!("{rules} textarea[name=countries]"), "Denmark")
        .await;
    d.click_text(&format!("{rules} button"), "Save retention and exclusions")
        .await;
    d.expect_text(
        &format!("{rules} p[role=status].error"),
        "`exclude_countries`: `Denmark` is not a two-letter country code such as DK",
    )
    .await;
    // The collector applies them at once: a pageview from here is not recorded.
    let sent = reqwest::Client::new()
        .post(format!("{}/api/event", d.footfall.base))
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        )
        .header("content-type", "text/plain")
        .body(r#"{"n":"pageview","u":"https://shop.test/from-the-office","d":"shop.test"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    assert_eq!(sent.headers()["x-footfall-dropped"], "excluded");
    // Shown again as saved.
    d.open("/sites/shop.test/settings").await;
    d.expect_text(&format!("{rules} h2"), "Retention and exclusions")
        .await;
    let saved: String = serde_json::from_value(
        d.js("return document.querySelector('textarea[name=ips]').value")
            .await,
    )
    .unwrap();
    assert_eq!(saved, "127.0.0.0/8");
    d.expect_text(
        "section:nth-of-type(2) p.muted",
        "Retention: raw events 7 days, daily aggregates 1825 days (the server keeps at most 30 and 1825; see Retention and exclusions below).",
    )
    .await;

    // Reports and alerts: without SMTP the section says why nothing can be sent, and saving
    // a report shows the server's refusal.
    let mail = "section:nth-of-type(10)";
    d.expect_text(&format!("{mail} h2"), "Reports and alerts by e-mail")
        .await;
    d.expect_text(
        &format!("{mail} p.status.error"),
        "Nothing can be sent yet: no SMTP server is configured: set smtp_url and smtp_from.",
    )
    .await;
    d.expect_text(
        &format!("{mail} table, {mail} p.muted:last-child"),
        "Nothing sent yet.",
    )
    .await;
    d.fill(
        &format!("{mail} textarea[name=recipients]"),
        "ann@example.org",
    )
    .await;
    d.click_text(&format!("{mail} button"), "Save reports and alerts")
        .await;
    d.expect_text(
        &format!("{mail} form p[role=status]"),
        "Saved: reports to 1, alerts to 0 address(es).",
    )
    .await;
    d.js("document.querySelector('input[name=weekly]').click(); return null")
        .await;
    d.click_text(&format!("{mail} button"), "Save reports and alerts")
        .await;
    d.expect_text(
        &format!("{mail} form p[role=status].error"),
        "no SMTP server is configured: set smtp_url and smtp_from",
    )
    .await;

    // Deleting the site asks for its domain, then takes it with its data.
    let danger = "section:nth-of-type(11)";
    d.expect_text(&format!("{danger} h2"), "Delete data").await;
    let delete_form = format!("{danger} form:nth-of-type(3)");
    d.fill(&format!("{delete_form} input[name=confirm]"), "other.test")
        .await;
    d.click_text(&format!("{delete_form} button"), "Delete site")
        .await;
    d.expect_text(
        &format!("{delete_form} p[role=status].error"),
        "type the site's domain (shop.test) in `confirm` to go ahead",
    )
    .await;
    let site = d.t.site("shop.test").await;
    assert!(!d.t.events().await.iter().all(|e| e.site_id != site.id));
    d.fill(&format!("{delete_form} input[name=confirm]"), "shop.test")
        .await;
    d.click_text(&format!("{delete_form} button"), "Delete site")
        .await;
    d.wait_for_url("the site list", |u| u == "/").await;
    let sites: Vec<String> =
        d.t.store
            .meta()
            .sites()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.domain)
            .collect();
    assert_eq!(sites, ["other.test"]);
    assert!(d.t.events().await.iter().all(|e| e.site_id != site.id));
    d.finish("dashboard-site-controls").await;
}

/// The code oathtool (oath-toolkit, an independent generator) gives for `secret` at `at`.
fn oathtool(secret: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", secret, "--now"])
        .arg(at.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .output()
        .expect("oathtool (scripts/test.sh installs it)");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_login_is_set_up_and_then_asked_for() {
    let d = Dash::start("dash_two_factor").await;
    d.open("/account").await;
    d.log_in(ADMIN, PASSWORD).await;
    d.click_text(
        "section[aria-label='Two-factor login'] button",
        "Set up two-factor login",
    )
    .await;
    let secret = d.text("code.totp-secret").await;
    assert_eq!(secret.len(), 32, "{secret}");
    let qr: bool =
        serde_json::from_value(d.js("return !!document.querySelector('.qr svg')").await).unwrap();
    assert!(qr, "the QR code is drawn");
    d.fill(
        "section[aria-label='Two-factor login'] input[name=code]",
        &oathtool(&secret, chrono::Utc::now()),
    )
    .await;
    d.click_text("section[aria-label='Two-factor login'] button", "Turn on")
        .await;
    let codes = d.text("pre.recovery").await;
    assert_eq!(codes.lines().count(), 10, "{codes}");
    // Logging in again asks for the code after the password.
    d.click_text("#top button", "Log out").await;
    d.wait_for_url("the login page", |u| u.starts_with("/login"))
        .await;
    d.fill("input[name=email]", ADMIN).await;
    d.fill("input[name=password]", PASSWORD).await;
    d.click("form button[type=submit]").await;
    d.expect_text(
        "form p[role=status]",
        "enter the code from your authenticator app (or a recovery code)",
    )
    .await;
    // The next step's code: the one it was turned on with is taken.
    let code = oathtool(&secret, chrono::Utc::now() + chrono::Duration::seconds(30));
    d.fill("input[name=code]", &code).await;
    d.click("form button[type=submit]").await;
    d.wait_for_url("to leave the login page", |u| !u.starts_with("/login"))
        .await;
    d.open("/account").await;
    d.expect_text(
        "section[aria-label='Two-factor login'] p",
        "Two-factor login is on; 10 recovery code(s) left.",
    )
    .await;
    d.finish("dashboard-two-factor").await;
}
