//! E-mail through a real SMTP server on loopback: Debian's python3-aiosmtpd
//! (`tests/smtp/server.py`), with a certificate made for the test by `openssl`, requiring
//! STARTTLS and a password, or TLS from the first byte. `footfall mail test` is run as a user
//! runs it, and what the server received is read back.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use footfall_tests::{footfall_command, free_port, workspace_root};
use serde_json::Value;

struct SmtpServer {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl SmtpServer {
    fn start(dir: &Path, mode: &str) -> SmtpServer {
        Self::start_on(dir, mode, free_port())
    }

    /// On `port` (a server started again where the collector expects it).
    fn start_on(dir: &Path, mode: &str, port: u16) -> SmtpServer {
        let out = dir.join(format!("received-{mode}.jsonl"));
        let mut child = Command::new("/usr/bin/python3")
            .arg(workspace_root().join("tests/smtp/server.py"))
            .args([
                &port.to_string(),
                mode,
                &dir.join("cert.pem").display().to_string(),
                &dir.join("key.pem").display().to_string(),
                "footfall",
                "p@ss word",
                &out.display().to_string(),
                "refused@example.org",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 with python3-aiosmtpd (scripts/test.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        SmtpServer { child, port, out }
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A private CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 (`cert.pem`,
/// `key.pem`), valid for a day.
fn certificate(dir: &Path) {
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("openssl");
        assert!(ok.success(), "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &["-days", "1", "-subj", "/CN=Footfall test CA"],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-subj",
                "/CN=smtp.test",
                "-keyout",
                "key.pem",
                "-out",
                "cert.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
}

fn env(dir: &Path, url: &str, ca: bool) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "FOOTFALL_DATA_DIR".to_string(),
            dir.join("data").display().to_string(),
        ),
        ("FOOTFALL_SMTP_URL".to_string(), url.to_string()),
        (
            "FOOTFALL_SMTP_FROM".to_string(),
            "Footfall <stats@example.org>".to_string(),
        ),
    ];
    if ca {
        env.push((
            "FOOTFALL_SMTP_CA_FILE".to_string(),
            dir.join("ca.pem").display().to_string(),
        ));
    }
    env
}

fn send(env: &[(String, String)], to: &str) -> (bool, String, String) {
    let (ok, out, err) = footfall_command(env, &["mail", "test", "--to", to]);
    assert!(!out.contains("p@ss") && !err.contains("p@ss"), "{out}{err}");
    (ok, out, err)
}

#[test]
fn a_test_message_goes_through_starttls_and_implicit_tls_and_refusals_are_told() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path());
    let starttls = SmtpServer::start(dir.path(), "starttls");
    let url = |user_pass: &str, port: u16, scheme: &str, query: &str| {
        format!("{scheme}://{user_pass}@127.0.0.1:{port}{query}")
    };
    let good = env(
        dir.path(),
        &url(
            "footfall:p%40ss%20word",
            starttls.port,
            "smtp",
            "?tls=required",
        ),
        true,
    );
    let (ok, out, err) = send(&good, "ann@example.org");
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "sent through 127.0.0.1:{} (STARTTLS); the server answered: 250 2.0.0 Ok: queued as TEST1",
            starttls.port
        )),
        "{out}"
    );
    let got = starttls.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["ann@example.org"]));
    assert_eq!(got[0]["mail_from"], "stats@example.org");
    assert_eq!(
        (got[0]["tls"].as_bool(), got[0]["authenticated"].as_bool()),
        (Some(true), Some(true))
    );
    let data = got[0]["data"].as_str().unwrap();
    assert!(data.contains("Subject: Footfall: test message"), "{data}");
    assert!(
        data.contains("From: Footfall <stats@example.org>"),
        "{data}"
    );
    assert!(
        data.contains("E-mail from this collector reaches you."),
        "{data}"
    );

    // What the server refuses is told as it said it.
    let (ok, _, err) = send(&good, "refused@example.org");
    assert!(
        !ok && err.contains("550") && err.contains("recipient refused"),
        "{err}"
    );
    let wrong = env(
        dir.path(),
        &url("footfall:wrong", starttls.port, "smtp", "?tls=required"),
        true,
    );
    let (ok, _, err) = send(&wrong, "ann@example.org");
    assert!(!ok && err.contains("535"), "{err}");
    // Without TLS the server (which requires STARTTLS) offers no login, so the password is
    // never sent.
    let plain = env(
        dir.path(),
        &url("footfall:p%40ss%20word", starttls.port, "smtp", ""),
        false,
    );
    let (ok, _, err) = send(&plain, "ann@example.org");
    assert!(
        !ok && err.contains("(no TLS)") && err.contains("No compatible authentication mechanism"),
        "{err}"
    );
    // A certificate nobody vouches for is refused.
    let untrusted = env(
        dir.path(),
        &url(
            "footfall:p%40ss%20word",
            starttls.port,
            "smtp",
            "?tls=required",
        ),
        false,
    );
    let (ok, _, err) = send(&untrusted, "ann@example.org");
    assert!(!ok && err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(starttls.received().len(), 1, "nothing else was accepted");

    // TLS from the first byte (smtps://, as on port 465).
    let implicit = SmtpServer::start(dir.path(), "implicit");
    let tls = env(
        dir.path(),
        &url("footfall:p%40ss%20word", implicit.port, "smtps", ""),
        true,
    );
    let (ok, out, err) = send(&tls, "bo@example.org");
    assert!(ok, "{err}");
    assert!(out.contains("(TLS); the server answered: 250"), "{out}");
    assert_eq!(
        implicit.received()[0]["rcpt_tos"],
        serde_json::json!(["bo@example.org"])
    );

    // Mistakes in the configuration are named before anything is sent.
    for (url, from, says) in [
        (
            "http://127.0.0.1:25",
            Some("a@example.org"),
            "smtp:// or smtps://",
        ),
        (
            "smtp://u:secret@mail.example.org:25",
            Some("a@example.org"),
            "in clear",
        ),
        ("smtp://127.0.0.1:25", None, "smtp_from"),
        (
            "smtp://127.0.0.1:25",
            Some("nobody"),
            "not an e-mail address",
        ),
    ] {
        let mut e = vec![
            (
                "FOOTFALL_DATA_DIR".to_string(),
                dir.path().join("data").display().to_string(),
            ),
            ("FOOTFALL_SMTP_URL".to_string(), url.to_string()),
        ];
        if let Some(f) = from {
            e.push(("FOOTFALL_SMTP_FROM".to_string(), f.to_string()));
        }
        let (ok, _, err) = footfall_command(&e, &["mail", "test", "--to", "ann@example.org"]);
        assert!(
            !ok && err.contains(says) && !err.contains("secret"),
            "{url}: {err}"
        );
    }
    let (ok, _, err) = footfall_command(&good, &["mail", "test", "--to", "not an address"]);
    assert!(!ok && err.contains("not an e-mail address"), "{err}");
}

/// An in-process collector on `b` that sends mail through the test server at `port` (STARTTLS
/// and a password, trusting the test CA in `dir`), with `public_url` and an admin,
/// `admin@example.org`, whose password is `correct horse battery`.
async fn collector(
    b: footfall_tests::Backend,
    test: &str,
    sites: &[(&str, &str)],
    start: chrono::DateTime<chrono::Utc>,
    (port, dir): (u16, &Path),
    public_url: &str,
) -> footfall_tests::TestApp {
    use footfall::accounts::{self, Role, User};
    use footfall::config::{Secret, SmtpConfig};
    let ca = dir.join("ca.pem");
    let public_url = public_url.to_string();
    let t = footfall_tests::TestApp::start_with(b, test, sites, start, move |c| {
        c.smtp = Some(SmtpConfig {
            url: Secret(format!(
                "smtp://footfall:p%40ss%20word@127.0.0.1:{port}?tls=required"
            )),
            from: "Footfall <stats@example.org>".into(),
            ca_file: Some(ca),
        });
        c.public_url = Some(public_url);
    })
    .await;
    accounts::put_user(
        t.t.store.as_ref(),
        &User {
            email: "admin@example.org".into(),
            password_hash: accounts::hash_password("correct horse battery").unwrap(),
            role: Role::Admin,
            sites: vec![],
            created_at: 0,
        },
    )
    .await
    .unwrap();
    t
}

mod links {
    //! Invitations and password resets by e-mail, through a running collector whose
    //! `smtp_url` is the test server and whose `public_url` is `https://stats.example.org`.

    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use chrono::Duration;
    use footfall_tests::{Backend, TestApp};
    use serde_json::json;

    const PASSWORD: &str = "correct horse battery";

    pub(super) async fn call(
        t: &TestApp,
        cookie: Option<&(String, String)>,
        method: &str,
        path: &str,
        body: Value,
        host: Option<&str>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some((c, csrf)) = cookie {
            req = req.header(header::COOKIE, c).header("x-csrf-token", csrf);
        }
        if let Some(h) = host {
            req = req.header(header::HOST, h);
        }
        let r = t
            .send(
                "192.0.2.20",
                req.body(Body::from(body.to_string())).unwrap(),
            )
            .await;
        let status = r.status();
        let set = r
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            set,
        )
    }

    pub(super) async fn login(
        t: &TestApp,
        email: &str,
        password: &str,
    ) -> Option<(String, String)> {
        let (status, me, cookie) = call(
            t,
            None,
            "POST",
            "/api/auth/login",
            json!({"email": email, "password": password}),
            None,
        )
        .await;
        (status == StatusCode::OK)
            .then(|| (cookie.unwrap(), me["csrf"].as_str().unwrap().to_string()))
    }

    /// The link of `kind` in the last message sent to `to` (its text decoded from
    /// quoted-printable), waiting for it to arrive.
    async fn link(server: &SmtpServer, to: &str, kind: &str, count: usize) -> String {
        for _ in 0..100 {
            let got: Vec<Value> = server
                .received()
                .into_iter()
                .filter(|m| m["rcpt_tos"][0] == to)
                .collect();
            if got.len() >= count {
                let data = got[count - 1]["data"]
                    .as_str()
                    .unwrap()
                    .replace("=\r\n", "")
                    .replace("=\n", "");
                let prefix = format!("https://stats.example.org/{kind}/");
                let at = data.find(&prefix).unwrap_or_else(|| panic!("{data}"));
                return data[at + prefix.len()..at + prefix.len() + 64].to_string();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no message {count} to {to}")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invitations_and_password_resets_are_single_use_links_for_an_hour() {
        let dir = tempfile::tempdir().unwrap();
        certificate(dir.path());
        let server = SmtpServer::start(dir.path(), "starttls");
        let t = collector(
            Backend::Sqlite,
            "mail_links",
            &[("shop.test", "UTC")],
            chrono::Utc::now(),
            (server.port, dir.path()),
            "https://stats.example.org",
        )
        .await;
        let admin = login(&t, "admin@example.org", PASSWORD).await.unwrap();

        // An invitation: a viewer of shop.test, who chooses a password and is in.
        let (status, r, _) = call(
            &t,
            Some(&admin),
            "POST",
            "/api/users/invite",
            json!({"email": "New@Example.org", "role": "viewer", "sites": ["shop.test"]}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{r}");
        assert!(r["answer"].as_str().unwrap().starts_with("250 "), "{r}");
        let token = link(&server, "new@example.org", "invite", 1).await;
        let accept = |token: String, password: &'static str| {
            let t = &t;
            async move {
                call(
                    t,
                    None,
                    "POST",
                    "/api/auth/accept-invite",
                    json!({"token": token, "password": password}),
                    None,
                )
                .await
            }
        };
        let (status, e, _) = accept(token.clone(), "short").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        // A refused password does not use the link up; a wrong token changes nothing.
        let (status, me, cookie) = accept(token.clone(), "a long new password").await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(
            (me["email"].clone(), me["role"].clone(), me["sites"].clone()),
            (json!("new@example.org"), json!("viewer"), json!([1]))
        );
        let newcomer = (cookie.unwrap(), me["csrf"].as_str().unwrap().to_string());
        let (status, _, _) = accept(token, "a long new password").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a link works once");
        let (status, _, _) = accept("0".repeat(64), "a long new password").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // An invitation an hour and a minute old no longer works.
        call(
            &t,
            Some(&admin),
            "POST",
            "/api/users/invite",
            json!({"email": "late@example.org", "role": "admin"}),
            None,
        )
        .await;
        let late = link(&server, "late@example.org", "invite", 1).await;
        t.clock.advance(Duration::minutes(61));
        let (status, e, _) = accept(late, "a long new password").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert!(e["error"].as_str().unwrap().contains("expired"), "{e}");

        // A forgotten password: the same answer for any address; the link goes to
        // public_url, whatever Host the request named.
        let forgot = |email: &'static str| {
            let t = &t;
            async move {
                call(
                    t,
                    None,
                    "POST",
                    "/api/auth/forgot",
                    json!({"email": email}),
                    Some("evil.example"),
                )
                .await
            }
        };
        let (s1, a1, _) = forgot("nobody@example.org").await;
        let (s2, a2, _) = forgot("new@example.org").await;
        assert_eq!((s1, &a1), (s2, &a2));
        assert_eq!(s1, StatusCode::ACCEPTED);
        let reset = link(&server, "new@example.org", "reset", 2).await;
        assert!(
            !server
                .received()
                .iter()
                .any(|m| m["rcpt_tos"][0] == "nobody@example.org"
                    || m["data"].as_str().unwrap().contains("evil.example"))
        );
        let (status, _, _) = call(
            &t,
            None,
            "POST",
            "/api/auth/reset",
            json!({"token": reset, "password": "the newest password"}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // Every session of the user ended; the old password is refused, the new one works.
        let (status, _, _) = call(
            &t,
            Some(&newcomer),
            "GET",
            "/api/auth/me",
            json!(null),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            login(&t, "new@example.org", "a long new password")
                .await
                .is_none()
        );
        assert!(
            login(&t, "new@example.org", "the newest password")
                .await
                .is_some()
        );
        let (status, _, _) = call(
            &t,
            None,
            "POST",
            "/api/auth/reset",
            json!({"token": reset, "password": "yet another password"}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a link works once");
        t.app.shutdown().await;
    }
}

mod reports {
    //! Weekly and monthly reports and traffic alerts, through a collector whose SMTP server is
    //! the test's aiosmtpd. What the server received is read by Python's e-mail package; the
    //! figures are checked against a count of the visits the test made up and against the
    //! Stats API's answers for the same range.

    use std::collections::{BTreeMap, BTreeSet};

    use super::links::{call, login};
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use chrono::{DateTime, Duration, NaiveDate, Utc};
    use footfall::clock::Clock as _;
    use footfall::reports::chart;
    use footfall::store::EventRow;
    use footfall_tests::{Backend, TestApp, both_stores};
    use serde_json::json;

    both_stores!(
        weekly_and_monthly_reports_say_what_the_stats_api_says,
        failed_sends_are_retried_with_backoff_and_shown,
        spikes_and_drops_alert_at_most_twice_a_day
    );

    const PASSWORD: &str = "correct horse battery";
    const TZ: &str = "Europe/Berlin";

    /// One made-up visit: its visitor, its pages in order, its source, and whether it signed up.
    struct Visit {
        visitor: u64,
        session: u64,
        at: i64,
        pages: Vec<&'static str>,
        source: &'static str,
        signup: bool,
    }

    fn day_of(at: i64) -> NaiveDate {
        // Every visit is between 11:00 and 16:00 UTC: the same day in Berlin.
        DateTime::from_timestamp(at, 0).unwrap().date_naive()
    }

    /// Two weeks of visits (16–22 and 23–29 November 2026): 2 a day, then 3, 5, 0, 2, 7, 4
    /// and 1, and one visitor of the 24th who comes back later that day.
    fn visits() -> Vec<Visit> {
        let pages = ["/", "/pricing", "/blog/<b>&", "/docs"];
        let sources = ["Google", "Google", "", "Hacker News", "DuckDuckGo"];
        let weeks: [(&str, [i64; 7]); 2] = [
            ("2026-11-16", [2, 2, 2, 2, 2, 2, 2]),
            ("2026-11-23", [3, 5, 0, 2, 7, 4, 1]),
        ];
        let mut out = Vec::new();
        let mut n = 0u64;
        for (monday, counts) in weeks {
            let monday: NaiveDate = monday.parse().unwrap();
            for (i, count) in counts.iter().enumerate() {
                let day = monday + Duration::days(i as i64);
                for k in 0..*count {
                    n += 1;
                    let mut visited = vec![pages[(n % 4) as usize]];
                    if n.is_multiple_of(3) {
                        visited.push("/pricing");
                    }
                    out.push(Visit {
                        visitor: 1000 + n,
                        session: 5000 + n,
                        at: day.and_hms_opt(11, 0, 0).unwrap().and_utc().timestamp() + 60 * k,
                        pages: visited,
                        source: sources[(n % 5) as usize],
                        signup: n % 4 == 1,
                    });
                }
            }
        }
        let tuesday = out
            .iter()
            .find(|v| day_of(v.at).to_string() == "2026-11-24")
            .unwrap();
        // The same day: another day's salt would make the same person another visitor.
        let again = Visit {
            visitor: tuesday.visitor,
            session: 9999,
            at: "2026-11-24T15:00:00Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
                .timestamp(),
            pages: vec!["/docs"],
            source: tuesday.source,
            signup: false,
        };
        out.push(again);
        out
    }

    fn events(visits: &[Visit]) -> Vec<EventRow> {
        let mut out = Vec::new();
        for v in visits {
            let referrer = match v.source {
                "Google" => "google.com",
                "Hacker News" => "news.ycombinator.com",
                "DuckDuckGo" => "duckduckgo.com",
                _ => "",
            };
            let event = |name: &str, path: &str, at: i64| EventRow {
                site_id: 1,
                timestamp: u32::try_from(at).unwrap(),
                name: name.into(),
                hostname: "shop.test".into(),
                pathname: path.into(),
                visitor_id: v.visitor,
                session_id: v.session,
                referrer: referrer.into(),
                referrer_source: v.source.into(),
                channel: if v.source.is_empty() {
                    "Direct"
                } else {
                    "Organic Search"
                }
                .into(),
                browser: "Firefox".into(),
                os: "GNU/Linux".into(),
                device: "Desktop".into(),
                interactive: 1,
                entry_page: v.pages[0].into(),
                ..EventRow::default()
            };
            for (j, page) in v.pages.iter().enumerate() {
                out.push(event("pageview", page, v.at + 20 * j as i64));
            }
            if v.signup {
                out.push(event("Signup", v.pages[0], v.at + 5));
            }
        }
        out
    }

    /// What the visits of `first..=last` add up to, counted here.
    struct Expected {
        visitors: usize,
        visits: usize,
        pageviews: usize,
        per_day: Vec<(NaiveDate, usize)>,
        /// Top five (visitors desc, then name): page → (visitors, pageviews).
        pages: Vec<(String, Vec<i64>)>,
        sources: Vec<(String, Vec<i64>)>,
        signups: (usize, usize),
    }

    fn top(map: BTreeMap<&str, Vec<i64>>, empty: &str) -> Vec<(String, Vec<i64>)> {
        let mut rows: Vec<(&str, Vec<i64>)> = map.into_iter().collect();
        rows.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then(a.0.cmp(b.0)));
        rows.truncate(5);
        rows.into_iter()
            .map(|(k, v)| {
                (
                    if k.is_empty() {
                        empty.to_string()
                    } else {
                        k.to_string()
                    },
                    v,
                )
            })
            .collect()
    }

    fn expected(all: &[Visit], first: &str, last: &str) -> Expected {
        let (first, last): (NaiveDate, NaiveDate) = (first.parse().unwrap(), last.parse().unwrap());
        let vs: Vec<&Visit> = all
            .iter()
            .filter(|v| (first..=last).contains(&day_of(v.at)))
            .collect();
        let mut pages: BTreeMap<&str, (BTreeSet<u64>, i64)> = BTreeMap::new();
        let mut sources: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        for v in &vs {
            for p in &v.pages {
                let e = pages.entry(p).or_default();
                e.0.insert(v.visitor);
                e.1 += 1;
            }
            sources.entry(v.source).or_default().insert(v.visitor);
        }
        let signed: Vec<&&Visit> = vs.iter().filter(|v| v.signup).collect();
        Expected {
            visitors: vs.iter().map(|v| v.visitor).collect::<BTreeSet<_>>().len(),
            visits: vs.len(),
            pageviews: vs.iter().map(|v| v.pages.len()).sum(),
            per_day: first
                .iter_days()
                .take_while(|d| *d <= last)
                .map(|d| {
                    let n = vs
                        .iter()
                        .filter(|v| day_of(v.at) == d)
                        .map(|v| v.visitor)
                        .collect::<BTreeSet<_>>()
                        .len();
                    (d, n)
                })
                .collect(),
            pages: top(
                pages
                    .iter()
                    .map(|(k, (set, views))| (*k, vec![set.len() as i64, *views]))
                    .collect(),
                "(none)",
            ),
            sources: top(
                sources
                    .iter()
                    .map(|(k, set)| (*k, vec![set.len() as i64]))
                    .collect(),
                "Direct / None",
            ),
            signups: (
                signed
                    .iter()
                    .map(|v| v.visitor)
                    .collect::<BTreeSet<_>>()
                    .len(),
                signed.len(),
            ),
        }
    }

    /// The part of `m` (as the server's parser read it) of `kind`, depth first.
    fn part<'a>(m: &'a Value, kind: &str) -> Option<&'a Value> {
        if m["type"] == kind {
            return Some(m);
        }
        m["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|p| part(p, kind))
    }

    fn text(m: &Value) -> String {
        part(&m["body"], "text/plain").unwrap()["text"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The figure and change a report's text gives `label` (`Unique visitors: 1,234 (+5%)`).
    fn figure(text: &str, label: &str) -> (String, String) {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no {label} in\n{text}"));
        let (value, change) = line.split_once(" (").unwrap();
        (
            value.replace(',', ""),
            change.trim_end_matches(')').to_string(),
        )
    }

    /// A section of the text: the lines `  label: a, b` after the line starting `title`.
    fn section(text: &str, title: &str) -> Vec<(String, Vec<i64>)> {
        let mut lines = text.lines().skip_while(|l| !l.starts_with(title)).skip(1);
        let mut out = Vec::new();
        for l in lines.by_ref() {
            let Some(l) = l.strip_prefix("  ") else { break };
            if l == "none" {
                break;
            }
            let (label, figures) = l.rsplit_once(": ").unwrap();
            out.push((
                label.to_string(),
                figures
                    .split(", ")
                    .map(|f| {
                        f.trim_end_matches('%')
                            .replace(',', "")
                            .parse::<f64>()
                            .unwrap() as i64
                    })
                    .collect(),
            ));
        }
        out
    }

    fn seconds(d: &str) -> i64 {
        d.split(' ')
            .map(|p| {
                let (n, unit) = p.split_at(p.len() - 1);
                n.parse::<i64>().unwrap()
                    * match unit {
                        "h" => 3600,
                        "m" => 60,
                        _ => 1,
                    }
            })
            .sum()
    }

    async fn start(b: Backend, test: &str, port: u16, dir: &Path, at: &str) -> TestApp {
        // A public address with a slash at the end, as people write it.
        collector(
            b,
            test,
            &[("shop.test", TZ)],
            at.parse().unwrap(),
            (port, dir),
            "https://stats.example.org/",
        )
        .await
    }

    /// The Stats API's answer to `q` (its results).
    async fn api(t: &TestApp, admin: &(String, String), q: Value) -> Vec<Value> {
        let (status, r, _) = call(t, Some(admin), "POST", "/api/v2/query", q, None).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        r["results"].as_array().unwrap().clone()
    }

    /// A path and query from a link to `https://stats.example.org`.
    fn local(url: &str) -> String {
        url.trim_matches(|c| c == '<' || c == '>')
            .strip_prefix("https://stats.example.org")
            .unwrap_or_else(|| panic!("{url}"))
            .to_string()
    }

    async fn page(t: &TestApp, method: &str, path: &str) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(if method == "POST" {
                "List-Unsubscribe=One-Click"
            } else {
                ""
            }))
            .unwrap();
        let r = t.send("192.0.2.30", req).await;
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn metric(t: &TestApp, line: &str) -> u64 {
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        let r = t.send("127.0.0.1", req).await;
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let body = String::from_utf8(bytes.to_vec()).unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{line} ")))
            .unwrap_or_else(|| panic!("no {line} in\n{body}"))
            .parse()
            .unwrap()
    }

    /// Checks one report against the visits and the Stats API.
    async fn check_report(
        t: &TestApp,
        admin: &(String, String),
        m: &Value,
        all: &[Visit],
        (first, last): (&str, &str),
        before: (&str, &str),
    ) {
        let text = text(m);
        let want = expected(all, first, last);
        let was = expected(all, before.0, before.1);
        // The figures, counted here.
        assert_eq!(
            figure(&text, "Unique visitors").0,
            want.visitors.to_string(),
            "{text}"
        );
        assert_eq!(figure(&text, "Total visits").0, want.visits.to_string());
        assert_eq!(
            figure(&text, "Total pageviews").0,
            want.pageviews.to_string()
        );
        let change = |now: usize, then: usize| {
            if then == 0 {
                "+100%".to_string()
            } else {
                let c = (100.0 * (now as f64 - then as f64) / then as f64).round() as i64;
                format!("{}{c}%", if c > 0 { "+" } else { "" })
            }
        };
        assert_eq!(
            figure(&text, "Unique visitors").1,
            change(want.visitors, was.visitors)
        );
        assert_eq!(
            figure(&text, "Total pageviews").1,
            change(want.pageviews, was.pageviews)
        );
        let days = section(&text, "Visitors per day");
        assert_eq!(
            days.iter().map(|(_, v)| v[0] as usize).collect::<Vec<_>>(),
            want.per_day.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            "{text}"
        );
        assert_eq!(section(&text, "Top pages"), want.pages, "{text}");
        assert_eq!(section(&text, "Top sources"), want.sources, "{text}");
        let goals = section(&text, "Goals");
        assert_eq!(goals.len(), 1, "{text}");
        assert_eq!(goals[0].0, "Signup");
        assert_eq!(
            (goals[0].1[0] as usize, goals[0].1[1] as usize),
            want.signups,
            "{text}"
        );

        // The same figures from the Stats API for the same range.
        let range = json!([first, last]);
        let totals = &api(
            t,
            admin,
            json!({"site_id": "shop.test", "date_range": range,
                   "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"],
                   "include": {"comparisons": {"mode": "previous_period"}}}),
        )
        .await[0];
        let tm = &totals["metrics"];
        let c = &totals["comparison"]["change"];
        let f = |v: &Value| v.as_f64().unwrap();
        assert_eq!(figure(&text, "Unique visitors").0, tm[0].to_string());
        assert_eq!(figure(&text, "Total visits").0, tm[1].to_string());
        assert_eq!(figure(&text, "Total pageviews").0, tm[2].to_string());
        assert_eq!(figure(&text, "Bounce rate").0, format!("{}%", f(&tm[3])));
        assert_eq!(
            seconds(&figure(&text, "Visit duration").0),
            tm[4].as_i64().unwrap()
        );
        let sign = |v: &Value| if f(v) > 0.0 { "+" } else { "" };
        assert_eq!(
            figure(&text, "Total visits").1,
            format!("{}{}%", sign(&c[1]), f(&c[1]))
        );
        assert_eq!(
            figure(&text, "Bounce rate").1,
            format!("{}{} points", sign(&c[3]), f(&c[3]))
        );
        let by_day = api(
            t,
            admin,
            json!({"site_id": "shop.test", "date_range": range, "metrics": ["visitors"],
                   "dimensions": ["time:day"]}),
        )
        .await;
        for r in &by_day {
            let day: NaiveDate = r["dimensions"][0].as_str().unwrap()[..10].parse().unwrap();
            let i = want.per_day.iter().position(|(d, _)| *d == day).unwrap();
            assert_eq!(days[i].1[0], r["metrics"][0].as_i64().unwrap(), "{day}");
        }
        let goals_api = api(
            t,
            admin,
            json!({"site_id": "shop.test", "date_range": range,
                   "metrics": ["visitors", "events", "conversion_rate"],
                   "dimensions": ["event:goal"]}),
        )
        .await;
        assert_eq!(
            goals[0].1[2],
            goals_api[0]["metrics"][2].as_f64().unwrap() as i64
        );

        // The HTML part, with the chart inline; text from the paths escaped.
        let related = part(&m["body"], "multipart/related").expect("an HTML part with its chart");
        let html = part(related, "text/html").unwrap()["text"]
            .as_str()
            .unwrap();
        assert!(html.contains("src=\"cid:chart\""), "{html}");
        assert!(html.contains("/blog/&lt;b&gt;&amp;"), "{html}");
        assert!(!html.contains("<b>&"), "{html}");
        let png = part(related, "image/png").unwrap();
        assert_eq!(png["content_id"], "<chart>");
        assert_eq!(png["disposition"], "inline");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png["base64"].as_str().unwrap())
            .unwrap();
        let mut decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(::png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (info.width as usize, info.height as usize);
        // Each day's bar, measured down the middle of its column, in proportion to its
        // visitors (the tallest day fills the plot).
        let n = want.per_day.len();
        let max = want.per_day.iter().map(|(_, v)| *v).max().unwrap();
        for (i, (day, v)) in want.per_day.iter().enumerate() {
            let (x0, x1) = chart::bar_columns(i, n);
            let x = ((x0 + x1) / 2) as usize;
            let bar = (0..h)
                .filter(|y| buf[(y * w + x) * 3..][..3] == [0x4f, 0x46, 0xe5])
                .count();
            let want_px = if *v == 0 {
                0
            } else {
                ((*v as f64 / max as f64) * f64::from(chart::PLOT_HEIGHT))
                    .round()
                    .max(2.0) as usize
            };
            assert_eq!(bar, want_px, "{day}: {v} visitors");
        }
    }

    async fn weekly_and_monthly_reports_say_what_the_stats_api_says(b: Backend) {
        let dir = tempfile::tempdir().unwrap();
        certificate(dir.path());
        let server = SmtpServer::start(dir.path(), "starttls");
        // Monday 30 November, 07:59 in Berlin.
        let t = start(
            b,
            "mail_reports",
            server.port,
            dir.path(),
            "2026-11-30T06:59:00Z",
        )
        .await;
        let all = visits();
        t.t.store.insert_events(events(&all).into()).await.unwrap();
        let admin = login(&t, "admin@example.org", PASSWORD).await.unwrap();
        let (status, r, _) = call(
            &t,
            Some(&admin),
            "POST",
            "/api/sites/shop.test/goals",
            json!({"type": "event", "name": "Signup"}),
            None,
        )
        .await;
        assert!(status.is_success(), "{r}");

        // Mistakes are named and change nothing.
        for (body, says) in [
            (json!({"weekly": true}), "at least one address"),
            (json!({"recipients": ["ann"]}), "not an e-mail address"),
            (
                json!({"spike_threshold": 0, "alert_recipients": ["a@b.org"]}),
                "from 1 to",
            ),
            (json!({"weekly": "yes"}), ""),
            (json!({"daily": true}), "daily"),
        ] {
            let (status, r, _) = call(
                &t,
                Some(&admin),
                "PUT",
                "/api/sites/shop.test/mail",
                body,
                None,
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
            assert!(r.to_string().contains(says), "{r}");
        }
        let (status, r, _) = call(
            &t,
            Some(&admin),
            "PUT",
            "/api/sites/shop.test/mail",
            json!({"weekly": true, "monthly": true,
                   "recipients": ["ann@example.org", " Bob@Example.org"]}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(
            r["settings"]["recipients"],
            json!(["ann@example.org", "bob@example.org"])
        );
        assert_eq!(r["unavailable"], Value::Null);

        // Nothing before 08:00 on the Monday; at 08:00, last week's report to each.
        let reports = &t.app.state.reports;
        reports.tick().await.unwrap();
        assert!(server.received().is_empty());
        t.clock.advance(Duration::minutes(1));
        reports.tick().await.unwrap();
        let got = server.received();
        assert_eq!(got.len(), 2, "{got:?}");
        let to: BTreeSet<&str> = got
            .iter()
            .map(|m| m["rcpt_tos"][0].as_str().unwrap())
            .collect();
        assert_eq!(to, BTreeSet::from(["ann@example.org", "bob@example.org"]));
        let ann = got
            .iter()
            .find(|m| m["rcpt_tos"][0] == "ann@example.org")
            .unwrap();
        let bob = got
            .iter()
            .find(|m| m["rcpt_tos"][0] == "bob@example.org")
            .unwrap();
        assert!(ann["tls"].as_bool().unwrap() && ann["authenticated"].as_bool().unwrap());
        let want = expected(&all, "2026-11-23", "2026-11-29");
        assert_eq!(
            ann["headers"]["Subject"],
            format!(
                "Weekly report for shop.test: {} visitors ({})",
                want.visitors,
                figure(&text(ann), "Unique visitors").1
            )
        );
        assert_eq!(ann["body"]["type"], "multipart/alternative");
        assert_eq!(
            ann["headers"]["List-Unsubscribe-Post"],
            "List-Unsubscribe=One-Click"
        );
        let link = ann["headers"]["List-Unsubscribe"].as_str().unwrap();
        assert!(
            link.starts_with("<https://stats.example.org/unsubscribe?"),
            "{link}"
        );
        assert!(
            text(ann).contains(&local(link)),
            "the text part has the same link"
        );
        check_report(
            &t,
            &admin,
            ann,
            &all,
            ("2026-11-23", "2026-11-29"),
            ("2026-11-16", "2026-11-22"),
        )
        .await;

        // Queued once: another round sends nothing more.
        reports.tick().await.unwrap();
        assert_eq!(server.received().len(), 2);

        // Bob unsubscribes in one click. A link for another address, or changed, does nothing.
        let bob_link = local(bob["headers"]["List-Unsubscribe"].as_str().unwrap());
        let (status, body) = page(&t, "GET", &bob_link).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("bob@example.org") && body.contains("<form method=\"post\""));
        let forged = bob_link.replace("to=bob", "to=ann");
        assert_eq!(page(&t, "POST", &forged).await.0, StatusCode::BAD_REQUEST);
        let cut = &bob_link[..bob_link.len() - 1];
        assert_eq!(page(&t, "POST", cut).await.0, StatusCode::BAD_REQUEST);
        let (status, body) = page(&t, "POST", &bob_link).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("will get no more reports"), "{body}");
        assert_eq!(page(&t, "POST", &bob_link).await.0, StatusCode::OK);
        let (_, r, _) = mail_settings(&t, &admin).await;
        assert_eq!(r["settings"]["recipients"], json!(["ann@example.org"]));
        assert_eq!(r["settings"]["weekly"], json!(true));
        assert_eq!(r["outbox"].as_array().unwrap().len(), 2);
        assert!(r["outbox"].as_array().unwrap().iter().all(|m| m["status"] == "sent"
            && m["answer"].as_str().unwrap().starts_with("250 ")));

        // Tuesday 1 December, 08:00 in Berlin: November's report, to Ann alone.
        t.clock.advance(Duration::hours(24));
        reports.tick().await.unwrap();
        let got = server.received();
        assert_eq!(got.len(), 3, "{got:?}");
        let monthly = &got[2];
        assert_eq!(monthly["rcpt_tos"], json!(["ann@example.org"]));
        assert!(
            monthly["headers"]["Subject"]
                .as_str()
                .unwrap()
                .starts_with("Monthly report for shop.test: "),
            "{monthly}"
        );
        check_report(
            &t,
            &admin,
            monthly,
            &all,
            ("2026-11-01", "2026-11-30"),
            ("2026-10-02", "2026-10-31"),
        )
        .await;
        assert_eq!(
            metric(&t, "footfall_mail_sent_total{kind=\"weekly\"}").await,
            2
        );
        assert_eq!(
            metric(&t, "footfall_mail_sent_total{kind=\"monthly\"}").await,
            1
        );
    }

    async fn failed_sends_are_retried_with_backoff_and_shown(b: Backend) {
        let dir = tempfile::tempdir().unwrap();
        certificate(dir.path());
        let server = SmtpServer::start(dir.path(), "starttls");
        let port = server.port;
        let t = start(b, "mail_retries", port, dir.path(), "2026-11-30T06:59:00Z").await;
        let all = visits();
        t.t.store.insert_events(events(&all).into()).await.unwrap();
        let admin = login(&t, "admin@example.org", PASSWORD).await.unwrap();
        let (status, r, _) = call(
            &t,
            Some(&admin),
            "PUT",
            "/api/sites/shop.test/mail",
            json!({"weekly": true, "recipients": ["ann@example.org", "refused@example.org"]}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        // The server is down when the report is due.
        drop(server);
        t.clock.advance(Duration::minutes(1));
        let reports = &t.app.state.reports;
        reports.tick().await.unwrap();
        let outbox = |r: &Value| -> Vec<Value> { r["outbox"].as_array().unwrap().clone() };
        let by = |o: &[Value], to: &str| o.iter().find(|m| m["to"] == to).unwrap().clone();
        let (_, r, _) = mail_settings(&t, &admin).await;
        let now = t.clock.now().timestamp();
        for m in outbox(&r) {
            assert_eq!(m["status"], "pending", "{m}");
            assert_eq!(m["attempts"], 1);
            assert_eq!(m["next_at"], now + 60);
            assert!(
                m["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("refused or failed"),
                "{m}"
            );
        }
        assert_eq!(
            metric(&t, "footfall_mail_failures_total{kind=\"weekly\"}").await,
            2
        );
        assert_eq!(metric(&t, "footfall_mail_pending").await, 2);

        // Back up on the same port: nothing before the minute is over, then Ann's goes and
        // the refused address waits longer each time.
        let server = SmtpServer::start_on(dir.path(), "starttls", port);
        reports.tick().await.unwrap();
        assert!(server.received().is_empty());
        t.clock.advance(Duration::seconds(60));
        reports.tick().await.unwrap();
        assert_eq!(server.received().len(), 1);
        assert_eq!(server.received()[0]["rcpt_tos"], json!(["ann@example.org"]));
        let (_, r, _) = mail_settings(&t, &admin).await;
        let ann = by(&outbox(&r), "ann@example.org");
        assert_eq!(
            (ann["status"].as_str(), ann["attempts"].as_u64()),
            (Some("sent"), Some(2))
        );
        assert!(
            ann["answer"].as_str().unwrap().starts_with("250 2.0.0 Ok"),
            "{ann}"
        );
        let refused = by(&outbox(&r), "refused@example.org");
        assert_eq!(refused["attempts"], 2);
        assert!(
            refused["last_error"].as_str().unwrap().contains("550"),
            "{refused}"
        );
        assert_eq!(refused["next_at"], t.clock.now().timestamp() + 300);
        for wait in [300, 900, 3600, 10_800, 21_600] {
            t.clock.advance(Duration::seconds(wait - 1));
            reports.tick().await.unwrap();
            let (_, r, _) = mail_settings(&t, &admin).await;
            let before = by(&outbox(&r), "refused@example.org")["attempts"]
                .as_u64()
                .unwrap();
            t.clock.advance(Duration::seconds(1));
            reports.tick().await.unwrap();
            let (_, r, _) = mail_settings(&t, &admin).await;
            let m = by(&outbox(&r), "refused@example.org");
            assert_eq!(
                m["attempts"].as_u64().unwrap(),
                before + 1,
                "after {wait} s: {m}"
            );
            assert_eq!(m["status"], "pending");
        }
        t.clock.advance(Duration::seconds(43_200));
        reports.tick().await.unwrap();
        let (_, r, _) = mail_settings(&t, &admin).await;
        let given_up = by(&outbox(&r), "refused@example.org");
        assert_eq!(given_up["status"], "failed", "{given_up}");
        assert_eq!(given_up["attempts"], 8);
        let error = given_up["last_error"].as_str().unwrap();
        assert!(
            error.contains("550") && error.contains("5.1.1 <refused@example.org>"),
            "{error}"
        );
        assert_eq!(
            metric(&t, "footfall_mail_given_up_total{kind=\"weekly\"}").await,
            1
        );
        assert_eq!(metric(&t, "footfall_mail_undelivered").await, 1);
        assert_eq!(metric(&t, "footfall_mail_pending").await, 0);
        assert_eq!(
            metric(&t, "footfall_mail_failures_total{kind=\"weekly\"}").await,
            2 + 7
        );
        assert_eq!(
            metric(&t, "footfall_mail_sent_total{kind=\"weekly\"}").await,
            1
        );
        assert_eq!(server.received().len(), 1, "nothing more was sent");

        // Sent again by hand: a new first attempt (refused again), then waiting again.
        let id = given_up["id"].as_str().unwrap();
        let (status, r, _) = call(
            &t,
            Some(&admin),
            "POST",
            &format!("/api/sites/shop.test/mail/retry/{id}"),
            Value::Null,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let m = by(&outbox(&r), "refused@example.org");
        assert_eq!(
            (m["status"].as_str(), m["attempts"].as_u64()),
            (Some("pending"), Some(1))
        );
        let (status, _, _) = call(
            &t,
            Some(&admin),
            "POST",
            "/api/sites/shop.test/mail/retry/1:weekly:nothing",
            Value::Null,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // "Send now": the last whole month's report, at once.
        let (status, r, _) = call(
            &t,
            Some(&admin),
            "POST",
            "/api/sites/shop.test/mail/send",
            json!({"kind": "monthly"}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{r}");
        assert_eq!(
            (
                r["queued"].as_u64(),
                r["sent"].as_u64(),
                r["failed"].as_u64()
            ),
            (Some(2), Some(1), Some(1))
        );
        let last = server.received().pop().unwrap();
        assert!(
            last["headers"]["Subject"]
                .as_str()
                .unwrap()
                .starts_with("Monthly report for shop.test")
        );
        let (status, _, _) = call(
            &t,
            Some(&admin),
            "POST",
            "/api/sites/shop.test/mail/send",
            json!({"kind": "spike"}),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    /// What the settings page reads: `GET /api/sites/shop.test/mail`.
    async fn mail_settings(
        t: &TestApp,
        admin: &(String, String),
    ) -> (StatusCode, Value, Option<String>) {
        call(
            t,
            Some(admin),
            "GET",
            "/api/sites/shop.test/mail",
            Value::Null,
            None,
        )
        .await
    }

    async fn put_mail(t: &TestApp, admin: &(String, String), body: Value) {
        let (status, r, _) = call(
            t,
            Some(admin),
            "PUT",
            "/api/sites/shop.test/mail",
            body,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }

    /// A pageview of `path` by visitor `n` (its own address).
    async fn visit(t: &TestApp, n: u32, path: &str, referrer: &str) {
        let body = format!(
            r#"{{"n":"pageview","u":"https://shop.test{path}","d":"shop.test","r":"{referrer}"}}"#
        );
        let r = t
            .post_event(&format!("198.51.100.{n}"), footfall_tests::CHROME_UA, &body)
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }

    async fn spikes_and_drops_alert_at_most_twice_a_day(b: Backend) {
        let dir = tempfile::tempdir().unwrap();
        certificate(dir.path());
        let server = SmtpServer::start(dir.path(), "starttls");
        // Sunday 6 December, 10:00 in Berlin.
        let t = start(
            b,
            "mail_alerts",
            server.port,
            dir.path(),
            "2026-12-06T09:00:00Z",
        )
        .await;
        let admin = login(&t, "admin@example.org", PASSWORD).await.unwrap();
        put_mail(
            &t,
            &admin,
            json!({"spike_threshold": 3, "alert_recipients": ["ops@example.org"]}),
        )
        .await;
        let mut n = 0;
        let reports = &t.app.state.reports;
        n += 1;
        visit(&t, n, "/landing", "https://www.google.com/").await;
        n += 1;
        visit(&t, n, "/landing", "").await;
        t.t.wait_for_events(2, std::time::Duration::from_secs(10))
            .await;
        reports.tick().await.unwrap();
        assert!(
            server.received().is_empty(),
            "2 visitors are under the threshold"
        );
        n += 1;
        visit(&t, n, "/pricing", "https://www.google.com/").await;
        t.t.wait_for_events(3, std::time::Duration::from_secs(10))
            .await;
        reports.tick().await.unwrap();
        let got = server.received();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["rcpt_tos"], json!(["ops@example.org"]));
        assert_eq!(
            got[0]["headers"]["Subject"],
            "Traffic spike on shop.test: 3 current visitors"
        );
        let alert = text(&got[0]);
        assert_eq!(
            section(&alert, "Top sources"),
            vec![
                ("Google".to_string(), vec![2]),
                ("Direct / None".to_string(), vec![1])
            ],
            "{alert}"
        );
        assert_eq!(
            section(&alert, "Top pages"),
            vec![
                ("/landing".to_string(), vec![2]),
                ("/pricing".to_string(), vec![1])
            ]
        );
        let req = Request::get("/api/v2/realtime?site_id=shop.test")
            .header(header::COOKIE, &admin.0)
            .body(Body::empty())
            .unwrap();
        let r = t.send("192.0.2.20", req).await;
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let realtime: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            realtime["visitors"], 3,
            "the dashboard's current visitors agree"
        );

        // Still spiking: no second alert this half day.
        n += 1;
        visit(&t, n, "/landing", "").await;
        t.t.wait_for_events(4, std::time::Duration::from_secs(10))
            .await;
        reports.tick().await.unwrap();
        assert_eq!(server.received().len(), 1);
        // The afternoon (12:00 in Berlin): the morning's visitors are no longer current.
        t.clock.advance(Duration::hours(2));
        t.app.maintenance.tick().await.unwrap();
        reports.tick().await.unwrap();
        assert_eq!(server.received().len(), 1);
        for _ in 0..3 {
            n += 1;
            visit(&t, n, "/sale", "").await;
        }
        t.t.wait_for_events(7, std::time::Duration::from_secs(10))
            .await;
        reports.tick().await.unwrap();
        assert_eq!(server.received().len(), 2, "the afternoon's spike");
        t.clock.advance(Duration::minutes(30));
        for _ in 0..3 {
            n += 1;
            visit(&t, n, "/sale", "").await;
        }
        t.t.wait_for_events(10, std::time::Duration::from_secs(10))
            .await;
        reports.tick().await.unwrap();
        assert_eq!(server.received().len(), 2, "at most twice a day");

        // A drop: ten visitors in the last 12 hours is not below 10, is below 11.
        put_mail(
            &t,
            &admin,
            json!({"drop_threshold": 10, "alert_recipients": ["ops@example.org"]}),
        )
        .await;
        reports.tick().await.unwrap();
        assert_eq!(server.received().len(), 2);
        put_mail(
            &t,
            &admin,
            json!({"drop_threshold": 11, "alert_recipients": ["ops@example.org"]}),
        )
        .await;
        reports.tick().await.unwrap();
        let got = server.received();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[2]["headers"]["Subject"],
            "Traffic drop on shop.test: 10 visitors in 12 hours"
        );
        let now = t.clock.now();
        let twelve = api(
            &t,
            &admin,
            json!({"site_id": "shop.test", "metrics": ["visitors"],
                   "date_range": [(now - Duration::hours(12)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                                  now.format("%Y-%m-%dT%H:%M:%SZ").to_string()]}),
        )
        .await;
        assert_eq!(
            twelve[0]["metrics"][0], 10,
            "the Stats API counts the same window alike"
        );
        assert_eq!(
            section(&text(&got[2]), "Top pages")[0],
            ("/sale".to_string(), vec![6])
        );

        // The alert's own link takes ops off the alerts; nothing more is sent.
        let link = local(got[2]["headers"]["List-Unsubscribe"].as_str().unwrap());
        assert!(link.contains("list=alerts"), "{link}");
        let (status, body) = page(&t, "POST", &link).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, r, _) = mail_settings(&t, &admin).await;
        assert_eq!(r["settings"]["alert_recipients"], json!([]));
        assert_eq!(r["settings"]["drop_threshold"], Value::Null);
        t.clock.advance(Duration::hours(12));
        t.app.maintenance.tick().await.unwrap();
        reports.tick().await.unwrap();
        assert_eq!(server.received().len(), 3);
    }
}
