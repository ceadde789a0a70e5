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
        let port = free_port();
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

mod links {
    //! Invitations and password resets by e-mail, through a running collector whose
    //! `smtp_url` is the test server and whose `public_url` is `https://stats.example.org`.

    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use chrono::Duration;
    use footfall::accounts::{self, Role, User};
    use footfall::config::{Secret, SmtpConfig};
    use footfall_tests::{Backend, TestApp};
    use serde_json::json;

    const PASSWORD: &str = "correct horse battery";

    async fn call(
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

    async fn login(t: &TestApp, email: &str, password: &str) -> Option<(String, String)> {
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
        let (port, ca) = (server.port, dir.path().join("ca.pem"));
        let t = TestApp::start_with(
            Backend::Sqlite,
            "mail_links",
            &[("shop.test", "UTC")],
            chrono::Utc::now(),
            move |c| {
                c.smtp = Some(SmtpConfig {
                    url: Secret(format!(
                        "smtp://footfall:p%40ss%20word@127.0.0.1:{port}?tls=required"
                    )),
                    from: "Footfall <stats@example.org>".into(),
                    ca_file: Some(ca),
                });
                c.public_url = Some("https://stats.example.org".into());
            },
        )
        .await;
        accounts::put_user(
            t.t.store.as_ref(),
            &User {
                email: "admin@example.org".into(),
                password_hash: accounts::hash_password(PASSWORD).unwrap(),
                role: Role::Admin,
                sites: vec![],
                created_at: 0,
            },
        )
        .await
        .unwrap();
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
