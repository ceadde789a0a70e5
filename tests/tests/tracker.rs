//! The tracker in a real browser: headless Chromium loads the test pages
//! (`tests/fixtures/pages`) from a local server and sends to a running `footfall serve`, and
//! each test asserts what was stored. The same is done with the official Plausible tracker
//! from npm. Every test saves a screenshot under `target/screenshots/`.

use std::time::{Duration, Instant};

use footfall::store::EventRow;
use footfall_tests::browser::{Browser, PageServer};
use footfall_tests::{Backend, Process, TestStore};
use serde_json::json;
use thirtyfour::prelude::*;

const WAIT: Duration = Duration::from_secs(15);

/// A collector with the site `shop.test`, the page server, and a browser.
struct Setup {
    t: TestStore,
    footfall: Process,
    pages: PageServer,
    browser: Browser,
    /// The collector as the pages see it: `http://stats.test:PORT`.
    stats: String,
    started: Instant,
}

impl Setup {
    async fn start(test: &str) -> Setup {
        Self::start_at(test, "stats.test").await
    }

    /// With the collector at `stats_host` as the pages see it: `127.0.0.1` is a potentially
    /// trustworthy origin, to which Chromium sends User-Agent Client Hints even over plain
    /// HTTP; `*.test` hosts over HTTP get none.
    async fn start_at(test: &str, stats_host: &str) -> Setup {
        let started = Instant::now();
        let t = TestStore::new(Backend::Sqlite, test).await;
        t.store.meta().add_site("shop.test", "UTC").await.unwrap();
        let mut env = t.env();
        env.push(("FOOTFALL_FLUSH_INTERVAL_MS".into(), "20".into()));
        let log = t.config.data_dir.with_file_name("footfall.log");
        let footfall = Process::serve(&env, log).await;
        let port = footfall.base.rsplit(':').next().unwrap().to_string();
        let stats = format!("http://{stats_host}:{port}");
        let pages = PageServer::start(&stats).await;
        let browser = Browser::start().await;
        Setup {
            t,
            footfall,
            pages,
            browser,
            stats,
            started,
        }
    }

    /// Notes a step in the test's output, which is shown when the test fails.
    fn step(&self, what: &str) {
        eprintln!("[{:6.2} s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn driver(&self) -> &WebDriver {
        self.browser.driver()
    }

    async fn goto(&self, host: &str, path: &str) {
        self.step(&format!("open {host}{path}"));
        self.driver()
            .goto(self.pages.url(host, path))
            .await
            .unwrap();
    }

    async fn click(&self, id: &str) {
        self.step(&format!("click #{id}"));
        self.driver()
            .find(By::Id(id))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
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

    /// Hides the current tab by opening another and switching to it; returns the first tab.
    async fn hide_tab(&self) -> WindowHandle {
        self.step("hide the tab");
        let first = self.driver().window().await.unwrap();
        let second = self.driver().new_tab().await.unwrap();
        self.driver().switch_to_window(second).await.unwrap();
        first
    }

    /// Closes the tab that hid `first` and shows `first` again.
    async fn show_tab(&self, first: WindowHandle) {
        self.step("show the tab again");
        self.driver().close_window().await.unwrap();
        self.driver().switch_to_window(first).await.unwrap();
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

    /// Waits until the stored events satisfy `done`, and returns them; fails with what was
    /// stored (and the collector's log) if they never do.
    async fn wait_until(&self, what: &str, done: impl Fn(&[EventRow]) -> bool) -> Vec<EventRow> {
        self.step(&format!("wait for {what}"));
        let start = Instant::now();
        loop {
            let events = self.t.events().await;
            if done(&events) {
                return events;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "waited for {what}; stored: {:#?}\nlog: {}",
                    summary(&events),
                    self.footfall.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish(self, screenshot: &str) {
        self.step("screenshot");
        self.browser.screenshot(screenshot).await;
        self.step("quit");
        let started = self.started;
        self.browser.quit().await;
        eprintln!("[{:6.2} s] done", started.elapsed().as_secs_f64());
    }
}

fn summary(events: &[EventRow]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {:?}={:?}",
                e.name, e.pathname, e.props_keys, e.props_values
            )
        })
        .collect()
}

fn named<'a>(events: &'a [EventRow], name: &str) -> Vec<&'a EventRow> {
    events.iter().filter(|e| e.name == name).collect()
}

fn prop<'a>(e: &'a EventRow, key: &str) -> Option<&'a str> {
    e.props_keys
        .iter()
        .position(|k| k == key)
        .map(|i| e.props_values[i].as_str())
}

/// The paths of the events named `name`, sorted: stored times are whole seconds, so the order
/// within one second is not kept.
fn paths<'a>(events: &'a [EventRow], name: &str) -> Vec<&'a str> {
    let mut paths: Vec<&str> = named(events, name)
        .iter()
        .map(|e| e.pathname.as_str())
        .collect();
    paths.sort();
    paths
}

/// Chromium sends `Sec-CH-UA: "Not:A-Brand";v="8", "Chromium";v="156"`, `?0` and `"Linux"`
/// with its beacons to a trustworthy origin. The test browser's user-agent string says
/// Chrome (it is overridden, see `BROWSER_UA`): the stored brand is the hints' Chromium.
#[tokio::test]
async fn client_hints_name_the_browser_where_chromium_sends_them() {
    let s = Setup::start_at("tracker_client_hints", "127.0.0.1").await;
    s.goto("shop.test", "/").await;
    let events = s
        .wait_until("the pageview", |e| !named(e, "pageview").is_empty())
        .await;
    let pv = named(&events, "pageview")[0];
    assert_eq!(
        (pv.browser.as_str(), pv.os.as_str(), pv.device.as_str()),
        ("Chromium", "GNU/Linux", "Desktop"),
        "{pv:?}"
    );
    assert!(pv.browser_version.parse::<u32>().unwrap() >= 100, "{pv:?}");
    s.finish("tracker_client_hints").await;
}

#[tokio::test]
async fn pageview_keeps_referrer_utm_and_runs_queued_calls() {
    let s = Setup::start("tracker_pageview").await;
    s.goto("news.test", "/news.html").await;
    s.click("go").await;
    let events = s
        .wait_until("a pageview and the queued event", |e| {
            !named(e, "pageview").is_empty() && !named(e, "Early Bird").is_empty()
        })
        .await;
    let pv = named(&events, "pageview")[0];
    assert_eq!(pv.hostname, "shop.test");
    assert_eq!(pv.pathname, "/");
    assert_eq!(pv.utm_source, "newsletter");
    assert_eq!(pv.utm_campaign, "autumn");
    assert!(pv.referrer.contains("news.test"), "{pv:?}");
    // No client hints reach a plain-HTTP `*.test` host: the user-agent string names it.
    assert_eq!(pv.browser, "Chrome");
    assert_eq!(pv.os, "GNU/Linux");
    assert_eq!(pv.interactive, 1);
    // The call queued before the script loaded ran once it did, on the same visit.
    let early = named(&events, "Early Bird")[0];
    assert_eq!(prop(early, "queued"), Some("yes"));
    assert_eq!(early.session_id, pv.session_id);
    assert_eq!(named(&events, "pageview").len(), 1);
    // The page made no request but to the collector (and the page server itself).
    let stats = &s.stats;
    let requests = s
        .js("return performance.getEntriesByType('resource').map((r) => r.name)")
        .await;
    let requests: Vec<String> = serde_json::from_value(requests).unwrap();
    assert!(!requests.is_empty());
    let own = s.pages.url("shop.test", "/");
    for url in &requests {
        assert!(
            url.starts_with(stats.as_str()) || url.starts_with(&own),
            "{url} is neither {stats} nor {own}"
        );
    }
    // Nothing on the page's side: no cookie, no storage written.
    let left = s
        .js("return [document.cookie, localStorage.length, sessionStorage.length]")
        .await;
    assert_eq!(left, json!(["", 0, 0]));
    s.finish("tracker_pageview").await;
}

#[tokio::test]
async fn single_page_navigation_counts_each_new_path_once() {
    let s = Setup::start("tracker_spa").await;
    s.goto("shop.test", "/").await;
    s.wait_until("the first pageview", |e| named(e, "pageview").len() == 1)
        .await;
    s.js("history.pushState({}, '', '/spa/cart')").await;
    s.wait_until("the pushState pageview", |e| {
        named(e, "pageview").len() == 2
    })
    .await;
    // A query change on the same path is not a new page; a new path by replaceState is.
    s.js("history.replaceState({}, '', '/spa/cart?step=2')")
        .await;
    s.js("history.replaceState({}, '', '/spa/checkout')").await;
    s.wait_until("the replaceState pageview", |e| {
        named(e, "pageview").len() == 3
    })
    .await;
    s.js("history.back()").await;
    let events = s
        .wait_until("the popstate pageview", |e| named(e, "pageview").len() == 4)
        .await;
    assert_eq!(
        paths(&events, "pageview"),
        ["/", "/", "/spa/cart", "/spa/checkout"]
    );
    let session = events[0].session_id;
    assert!(events.iter().all(|e| e.session_id == session));
    // Leaving a page for the next reports the engagement on the page left.
    let engaged = paths(&events, "engagement");
    assert!(engaged.contains(&"/spa/cart"), "{engaged:?}");
    s.finish("tracker_spa").await;
}

#[tokio::test]
async fn hash_routes_are_pages_in_hash_mode() {
    let s = Setup::start("tracker_hash").await;
    s.goto("shop.test", "/app.html#/inbox").await;
    s.wait_until("the first pageview", |e| named(e, "pageview").len() == 1)
        .await;
    s.js("location.hash = '#/settings'").await;
    let events = s
        .wait_until("the hash-change pageview", |e| {
            named(e, "pageview").len() == 2
        })
        .await;
    assert_eq!(
        paths(&events, "pageview"),
        ["/app.html#/inbox", "/app.html#/settings"]
    );
    s.finish("tracker_hash").await;
}

#[tokio::test]
async fn custom_event_with_props_revenue_and_callback() {
    let s = Setup::start("tracker_custom").await;
    s.goto("shop.test", "/").await;
    s.wait_until("the pageview", |e| named(e, "pageview").len() == 1)
        .await;
    let status = s
        .js_async(
            "footfall('Purchase', {
               props: { plan: 'pro', seats: 3 },
               revenue: { amount: 29.99, currency: 'EUR' },
               callback: (result) => done(result && result.status),
             });",
        )
        .await;
    assert_eq!(status, json!(202));
    s.js("footfall('Autoplay', { interactive: false })").await;
    let events = s
        .wait_until("both custom events", |e| {
            !named(e, "Purchase").is_empty() && !named(e, "Autoplay").is_empty()
        })
        .await;
    let purchase = named(&events, "Purchase")[0];
    assert_eq!(prop(purchase, "plan"), Some("pro"));
    assert_eq!(prop(purchase, "seats"), Some("3"));
    assert_eq!(purchase.revenue_micros, 29_990_000);
    assert_eq!(purchase.revenue_currency, "EUR");
    assert_eq!(purchase.interactive, 1);
    assert_eq!(purchase.pathname, "/");
    assert_eq!(named(&events, "Autoplay")[0].interactive, 0);
    s.finish("tracker_custom").await;
}

#[tokio::test]
async fn plausible_snippets_work_after_changing_the_host() {
    let s = Setup::start("tracker_plausible_names").await;
    // The classic snippet: a variant name turns hash routes and outbound links on, and the
    // call queued on `plausible` before the script loaded is sent.
    s.goto("shop.test", "/snippet.html#/start").await;
    s.wait_until("the pageview and the queued Signup", |e| {
        named(e, "pageview").len() == 1 && named(e, "Signup").len() == 1
    })
    .await;
    s.js("plausible('Later', {props: {step: '2'}})").await;
    s.click("outbound").await;
    let events = s
        .wait_until("the later call and the outbound click", |e| {
            !named(e, "Later").is_empty() && !named(e, "Outbound Link: Click").is_empty()
        })
        .await;
    assert_eq!(paths(&events, "pageview"), ["/snippet.html#/start"]);
    assert_eq!(prop(named(&events, "Signup")[0], "plan"), Some("pro"));
    assert_eq!(prop(named(&events, "Later")[0], "step"), Some("2"));
    // The per-site script, configured by `plausible.init`.
    s.goto("shop.test", "/init.html#/x").await;
    s.wait_until("the per-site script's pageview", |e| {
        paths(e, "pageview").contains(&"/init.html#/x")
    })
    .await;
    s.click("outbound").await;
    s.wait_until("its outbound click", |e| {
        named(e, "Outbound Link: Click").len() == 2
    })
    .await;
    // A name with an extension Footfall has no feature for is refused, not served half-done.
    let r = reqwest::get(format!("{}/js/script.manual.js", s.footfall.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.finish("tracker_plausible_names").await;
}

#[tokio::test]
async fn outbound_click_download_and_form_submission() {
    let s = Setup::start("tracker_clicks").await;
    s.goto("shop.test", "/").await;
    s.wait_until("the pageview", |e| named(e, "pageview").len() == 1)
        .await;
    // A download (the `download` attribute keeps the page), and a mailto: link (not outbound).
    s.click("download").await;
    s.click("mail").await;
    s.wait_until("the download", |e| !named(e, "File Download").is_empty())
        .await;
    // A form that fails validation is not submitted, so not counted; a valid one is.
    s.click("submit").await;
    s.driver()
        .find(By::Id("email"))
        .await
        .unwrap()
        .send_keys("reader@example.com")
        .await
        .unwrap();
    s.click("submit").await;
    s.wait_until("the submission and the thanks page", |e| {
        !named(e, "Form: Submission").is_empty() && e.iter().any(|e| e.pathname == "/thanks.html")
    })
    .await;
    s.driver().back().await.unwrap();
    s.wait_until("the pageview after going back", |e| {
        named(e, "pageview").len() == 3
    })
    .await;
    s.click("outbound").await;
    let events = s
        .wait_until("the outbound click", |e| {
            !named(e, "Outbound Link: Click").is_empty()
        })
        .await;
    let download = named(&events, "File Download");
    assert_eq!(download.len(), 1, "{:?}", summary(&events));
    let port = s.pages.port;
    // Reported without its query string, which may carry a token.
    assert_eq!(
        prop(download[0], "url"),
        Some(format!("http://shop.test:{port}/files/report.pdf").as_str())
    );
    let forms = named(&events, "Form: Submission");
    assert_eq!(forms.len(), 1, "{:?}", summary(&events));
    assert_eq!(forms[0].pathname, "/");
    let outbound = named(&events, "Outbound Link: Click");
    assert_eq!(outbound.len(), 1, "{:?}", summary(&events));
    assert_eq!(
        prop(outbound[0], "url"),
        Some(format!("http://elsewhere.test:{port}/away.html?ref=shop").as_str())
    );
    assert!(!events.iter().any(|e| e.hostname == "elsewhere.test"));
    s.finish("tracker_clicks").await;
}

#[tokio::test]
async fn engagement_is_sent_when_the_page_is_hidden_and_when_it_is_left() {
    let s = Setup::start("tracker_engagement").await;
    s.goto("shop.test", "/long.html").await;
    s.wait_until("the pageview", |e| named(e, "pageview").len() == 1)
        .await;
    s.js("window.scrollTo(0, 2100)").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = s.hide_tab().await;
    let events = s
        .wait_until("engagement on hide", |e| !named(e, "engagement").is_empty())
        .await;
    let hidden = named(&events, "engagement")[0];
    assert_eq!(hidden.pathname, "/long.html");
    // (2100 + 800 px of viewport) of 5000: 58%, give or take the window's chrome.
    assert!(
        (50..=60).contains(&hidden.scroll_depth),
        "scroll depth {}",
        hidden.scroll_depth
    );
    assert!(hidden.engagement_ms >= 300, "{}", hidden.engagement_ms);
    assert_eq!(hidden.session_id, named(&events, "pageview")[0].session_id);
    // Back to the page, read to the end, leave: one more report, for the rest.
    s.show_tab(first).await;
    s.js("window.scrollTo(0, 5000)").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.goto("elsewhere.test", "/away.html").await;
    let events = s
        .wait_until("engagement on leaving", |e| {
            named(e, "engagement").len() == 2
        })
        .await;
    let left = named(&events, "engagement")[1];
    assert_eq!(left.scroll_depth, 100);
    assert!(left.engagement_ms >= 300, "{}", left.engagement_ms);
    assert_eq!(
        named(&events, "pageview").len(),
        1,
        "coming back is not a new pageview"
    );
    s.finish("tracker_engagement").await;
}

#[tokio::test]
async fn ignore_flag_localhost_automation_and_do_not_track_send_nothing() {
    let s = Setup::start("tracker_ignored").await;
    // Each ignored load is followed by one that counts: once the counted one is stored, the
    // ignored one would have been too (one browser, one collector, in order).
    s.goto("shop.test", "/").await;
    s.wait_until("the first pageview", |e| named(e, "pageview").len() == 1)
        .await;
    s.js("localStorage.footfall_ignore = 'true'").await;
    s.goto("shop.test", "/long.html").await;
    let ignored = s
        .js_async("footfall('Ignored', { callback: (result) => done(result === undefined) });")
        .await;
    assert_eq!(ignored, json!(true), "the callback runs, with nothing");
    s.js("localStorage.removeItem('footfall_ignore')").await;
    // Served from 127.0.0.1: a local page.
    s.driver()
        .goto(format!("http://127.0.0.1:{}/long.html", s.pages.port))
        .await
        .unwrap();
    // A page opened from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("saved.html");
    std::fs::write(
        &file,
        format!(
            r#"<!doctype html><script>window.__footfall = true</script><script data-domain="shop.test" src="{}/js/script.js"></script>"#,
            s.stats
        ),
    )
    .unwrap();
    s.driver()
        .goto(format!("file://{}", file.display()))
        .await
        .unwrap();
    // A robot: `?robot` leaves out the page's `__footfall` test flag.
    s.goto("shop.test", "/?robot").await;
    // A visitor with Global Privacy Control on a site that honours it; then one without.
    s.goto("shop.test", "/dnt.html?gpc").await;
    s.goto("shop.test", "/dnt.html").await;
    // Stored before the page is left: this test is about what is not sent.
    s.wait_until("the pageview without GPC", |e| {
        e.iter().any(|e| e.pathname == "/dnt.html")
    })
    .await;
    s.goto("shop.test", "/thanks.html").await;
    s.wait_until("the last pageview", |e| {
        e.iter().any(|e| e.pathname == "/thanks.html")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = s.t.events().await;
    let pages: Vec<&str> = events
        .iter()
        .filter(|e| e.name != "engagement")
        .map(|e| e.pathname.as_str())
        .collect();
    assert_eq!(
        pages,
        ["/", "/", "/dnt.html", "/thanks.html"],
        "{:?}",
        summary(&events)
    );
    assert!(named(&events, "Ignored").is_empty());
    s.finish("tracker_ignored").await;
}

#[tokio::test]
async fn without_fetch_the_beacon_carries_the_event() {
    let s = Setup::start("tracker_beacon").await;
    s.goto("shop.test", "/thanks.html?nofetch").await;
    let events = s
        .wait_until("the pageview", |e| named(e, "pageview").len() == 1)
        .await;
    assert_eq!(events[0].pathname, "/thanks.html");
    assert_eq!(s.js("return typeof window.fetch").await, json!("undefined"));
    s.finish("tracker_beacon").await;
}

#[tokio::test]
async fn official_plausible_tracker_from_npm_is_stored_the_same() {
    let s = Setup::start("tracker_plausible").await;
    s.goto("shop.test", "/plausible.html?utm_source=mastodon")
        .await;
    s.wait_until("the pageview", |e| named(e, "pageview").len() == 1)
        .await;
    let status = s
        .js_async(
            "window.track('Signup', {
               props: { plan: 'team' },
               revenue: { amount: 10.5, currency: 'USD' },
               callback: (result) => done(result && result.status),
             });",
        )
        .await;
    assert_eq!(status, json!(202));
    s.js("window.scrollTo(0, 3000)").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = s.hide_tab().await;
    s.wait_until("its engagement event", |e| {
        !named(e, "engagement").is_empty()
    })
    .await;
    s.show_tab(first).await;
    s.js("history.pushState({}, '', '/plausible/next')").await;
    let events = s
        .wait_until("the SPA pageview", |e| named(e, "pageview").len() == 2)
        .await;
    assert_eq!(
        paths(&events, "pageview"),
        ["/plausible.html", "/plausible/next"]
    );
    let first_pv = named(&events, "pageview")
        .into_iter()
        .find(|e| e.pathname == "/plausible.html")
        .unwrap();
    assert_eq!(first_pv.utm_source, "mastodon");
    assert_eq!(first_pv.browser, "Chrome");
    let signup = named(&events, "Signup")[0];
    assert_eq!(prop(signup, "plan"), Some("team"));
    assert_eq!(signup.revenue_micros, 10_500_000);
    assert_eq!(signup.revenue_currency, "USD");
    assert_eq!(signup.session_id, first_pv.session_id);
    let engagement = named(&events, "engagement")[0];
    assert_eq!(engagement.pathname, "/plausible.html");
    assert_eq!(engagement.session_id, first_pv.session_id);
    assert_eq!(engagement.scroll_depth, 100);
    assert!(
        engagement.engagement_ms >= 300,
        "{}",
        engagement.engagement_ms
    );
    // What the tracker sent, as goals and revenue in the Stats API.
    let site = s.t.site("shop.test").await;
    for (rule, currency) in [
        (
            footfall::goals::Rule::Event {
                name: "Signup".into(),
                props: [("plan".to_string(), "team".to_string())].into(),
            },
            Some("USD".to_string()),
        ),
        (
            footfall::goals::Rule::Pageview {
                path: "/plausible*".into(),
                props: Default::default(),
            },
            None,
        ),
    ] {
        let new = footfall::goals::NewGoal {
            rule,
            display_name: None,
            currency,
        };
        footfall::goals::add(s.t.store.as_ref(), site.id, new, 0)
            .await
            .unwrap();
    }
    let q = footfall::query::model::parse(&json!({"site_id": "shop.test",
        "metrics": ["visitors", "events", "total_revenue"], "date_range": "day",
        "dimensions": ["event:goal"], "order_by": [["events", "desc"]]}))
    .unwrap();
    let policy = footfall_tests::policy();
    let answer = footfall::query::run::run(s.t.store.as_ref(), &site, &q, &policy)
        .await
        .unwrap();
    assert_eq!(
        answer["results"],
        json!([
            {"dimensions": ["Visit /plausible*"], "metrics": [1, 2, null]},
            {"dimensions": ["Signup"], "metrics": [1, 1,
                {"value": 10.5, "currency": "USD", "short": "$10.5", "long": "$10.50"}]},
        ]),
        "{answer}"
    );
    s.finish("tracker_plausible").await;
}
