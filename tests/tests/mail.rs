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
